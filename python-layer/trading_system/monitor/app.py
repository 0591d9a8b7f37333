"""Starting and stopping the monitor: the engine server's binding, TLS, token check and health
service, serving ``trading.v1.Trading`` (forwarded) and ``trading.v1.Admin``; prints ``listening
on HOST:PORT`` once ready and stops gracefully on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TextIO

import grpc

from trading_system import __version__
from trading_system.config import FileConfig
from trading_system.monitor.service import Admin, Monitor
from trading_system.proto import trading_pb2_grpc as rpc
from trading_system.server import log
from trading_system.server.app import StartError, address, credentials, options
from trading_system.server.auth import BearerAuth
from trading_system.server.health import Health


def engine_addresses(
    cfg: FileConfig, rust: str | None = None, python: str | None = None
) -> dict[str, str]:
    """The engines' addresses: the given ones, else ``server.host`` with their ports."""
    s = cfg.server
    return {
        "rust": rust or address(s.host, s.rust_port),
        "python": python or address(s.host, s.python_port),
    }


async def serve(cfg: FileConfig, port: int, engines: dict[str, str], out: TextIO) -> int:
    """Serves until SIGTERM or SIGINT; returns the exit status."""
    s = cfg.server
    monitor = Monitor(cfg, engines)
    health = Health()
    interceptors = [BearerAuth(s.auth_token)] if s.auth_token else []
    server = grpc.aio.server(interceptors=interceptors, options=options(cfg))
    server.add_generic_rpc_handlers((monitor.handler(),))
    rpc.add_AdminServicer_to_server(Admin(monitor), server)
    health.register(server)

    creds = credentials(cfg)
    where = address(s.host, port)
    try:
        bound = (
            server.add_insecure_port(where)
            if creds is None
            else server.add_secure_port(where, creds)
        )
    except RuntimeError:
        raise StartError(f"cannot listen on {where} (in use, or not an address here)") from None
    if bound == 0:
        raise StartError(f"cannot listen on {where}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # One round of probes first, so the first call already knows who serves.
    await monitor.probe_all()
    monitor.router.start()
    monitor.start()
    await server.start()
    await health.serving()
    print(f"listening on {address(s.host, bound)}", file=out, flush=True)
    log.logger().info(
        "monitor serving",
        addr=address(s.host, bound),
        rust=engines["rust"],
        python=engines["python"],
        version=__version__,
    )

    await stop.wait()
    log.logger().info("shutting down", grace_ms=s.shutdown_grace_ms)
    await health.shutting_down()
    await server.stop(s.shutdown_grace_ms / 1000)
    await monitor.close()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    log.logger().info("stopped")
    return 0


def run(
    cfg: FileConfig,
    port: int | None = None,
    engines: dict[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    """Runs the monitor on ``port`` (None: ``server.monitor_port``); the exit status."""
    try:
        log.configure(cfg.logging.level, cfg.logging.format, name="monitor")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(
            serve(
                cfg,
                cfg.server.monitor_port if port is None else port,
                engines or engine_addresses(cfg),
                out or sys.stdout,
            )
        )
    except StartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
