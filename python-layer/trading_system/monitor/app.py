"""Starting and stopping the monitor: the engine server's binding, TLS, token check and health
service, serving ``trading.v1.Trading`` (forwarded) and ``trading.v1.Admin``; prints ``listening
on HOST:PORT`` once ready and stops gracefully on SIGTERM or SIGINT. With ``server.health_port``
set, the health-only listener too (:func:`~trading_system.server.app.health_only_server`)."""

from __future__ import annotations

import sys
from typing import TextIO

from trading_system import __version__
from trading_system.config import FileConfig
from trading_system.monitor.service import Admin, Monitor
from trading_system.proto import trading_pb2_grpc as rpc
from trading_system.server import log
from trading_system.server.app import (
    address,
    health_only_server,
    ignore_stop_signals,
    listen,
    new_server,
    run_until_stopped,
    shut_down,
    start_health_only,
    stop_health_only,
    stop_signals,
)


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
    server, health, drain = new_server(cfg)
    server.add_generic_rpc_handlers((monitor.handler(),))
    rpc.add_AdminServicer_to_server(Admin(monitor), server)
    bound, _ = listen(server, cfg, port)
    health_only = health_only_server(cfg, health, bound)
    stop = stop_signals()
    # One round of probes first, so the first call already knows who serves.
    await monitor.probe_all()
    monitor.router.start()
    monitor.start()
    await server.start()
    await start_health_only(health_only)
    await health.serving()
    print(f"listening on {address(s.host, bound)}", file=out, flush=True)
    log.logger().info(
        "monitor serving",
        addr=address(s.host, bound),
        health_addr=address(s.host, s.health_port) if health_only is not None else None,
        rust=engines["rust"],
        python=engines["python"],
        version=__version__,
    )

    await stop.wait()
    await shut_down(server, health, drain, s.shutdown_grace_ms, "shutting down")
    await stop_health_only(health_only)
    await monitor.close()
    ignore_stop_signals()
    log.logger().info("stopped")
    return 0


def run(
    cfg: FileConfig,
    port: int | None = None,
    engines: dict[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    """Runs the monitor on ``port`` (None: ``server.monitor_port``); the exit status."""
    chosen = cfg.server.monitor_port if port is None else port
    return run_until_stopped(
        cfg,
        "monitor",
        lambda: serve(cfg, chosen, engines or engine_addresses(cfg), out or sys.stdout),
    )
