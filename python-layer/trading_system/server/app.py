"""Starting and stopping the server (docs/GRPC.md, "Servers").

:func:`run` binds ``server.host`` and the port (refusing one in use: no ``SO_REUSEPORT``), serves
TLS or mutual TLS when the configuration names the files, prints ``listening on HOST:PORT`` on
stdout once ready (the real port when 0 was asked for), and on SIGTERM or SIGINT stops
gracefully: health NOT_SERVING first, no new calls, in-flight calls drained for up to
``server.shutdown_grace_ms``, then exit status 0.

With ``server.health_port`` set, :func:`health_only_server` also listens on
``server.host:health_port``: plaintext, no token check, ``grpc.health.v1.Health`` alone (any other
call there is UNIMPLEMENTED), the very :class:`Health` of the main port, so NOT_SERVING shows on
both from the start of a shutdown; it stops after the main server. The kubelet's native gRPC
probe speaks no TLS, and a health answer says nothing but SERVING or NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

import grpc

from trading_system import __version__
from trading_system.config import FileConfig, read_token_files
from trading_system.errors import ConfigError
from trading_system.server import ENGINE, log
from trading_system.server.auth import BearerAuth
from trading_system.server.drain import Drain
from trading_system.server.health import Health
from trading_system.server.service import TradingService

MAX_GRPC_MESSAGE = 2**31 - 1
"""grpcio's message limits are C ints."""


class StartError(Exception):
    """The server cannot start (a port in use, an unreadable certificate, a bad setting)."""


def address(host: str, port: int) -> str:
    """``host:port`` (``[host]:port`` for an IPv6 address)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


PENDING_CALLS = 100_000
"""How many calls the gRPC core holds before the server's event loop takes them. The core's
defaults (refusing at random above 1,000 and always above 3,000) turned a burst of 2,000 stream
opens into INTERNAL and CANCELLED errors with no message; the services' own admission limits
(``system.max_streams``, ``max_calls``, ``max_opens_per_s``, ``server.max_sessions``) refuse
what is too much, with RESOURCE_EXHAUSTED naming the limit."""


def options(cfg: FileConfig) -> list[tuple[str, int]]:
    """The channel options: no port sharing, the transport's own size limit at twice
    ``server.max_message_bytes`` (the service refuses anything above it with a clear message),
    and room for bursts of calls (:data:`PENDING_CALLS`)."""
    limit = min(2 * cfg.server.max_message_bytes, MAX_GRPC_MESSAGE)
    return [
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", -1),
        ("grpc.server.max_pending_requests", PENDING_CALLS),
        ("grpc.server.max_pending_requests_hard_limit", PENDING_CALLS),
    ]


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise StartError(f"reading {key} {path}: {e.strerror or e}") from None


def credentials(cfg: FileConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from ``server.tls_*`` (None: plaintext); with ``tls_client_ca_file``,
    clients must present a certificate signed by that CA."""
    s = cfg.server
    if bool(s.tls_cert_file) != bool(s.tls_key_file):
        raise StartError(
            "server.tls_cert_file and server.tls_key_file go together: set both or neither"
        )
    if not s.tls_cert_file:
        if s.tls_client_ca_file:
            raise StartError(
                "server.tls_client_ca_file needs server.tls_cert_file and server.tls_key_file"
            )
        return None
    cert = _read(s.tls_cert_file, "server.tls_cert_file")
    key = _read(s.tls_key_file, "server.tls_key_file")
    ca = _read(s.tls_client_ca_file, "server.tls_client_ca_file") if s.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def with_tokens(cfg: FileConfig) -> FileConfig:
    """``cfg`` with the tokens of ``server.auth_token_file`` and ``server.operator_token_file``
    read (StartError naming the key and the path when one cannot be)."""
    try:
        return read_token_files(cfg)
    except ConfigError as e:
        raise StartError(str(e)) from None


def new_server(cfg: FileConfig) -> tuple[grpc.aio.Server, Health, Drain]:
    """A grpcio asyncio server with the call drain, the token check by role (when
    ``server.auth_token`` or ``server.operator_token`` is set, or read from its file), the
    transport options and the health service registered."""
    s = with_tokens(cfg).server
    drain = Drain()
    interceptors: list[grpc.aio.ServerInterceptor] = [drain]
    if s.auth_token or s.operator_token:
        interceptors.append(BearerAuth(s.auth_token, s.operator_token))
    server = grpc.aio.server(interceptors=interceptors, options=options(cfg))
    health = Health()
    health.register(server)
    return server, health, drain


async def shut_down(
    server: grpc.aio.Server, health: Health, drain: Drain, grace_ms: int, message: str
) -> None:
    """Health NOT_SERVING first (probes see the shutdown before calls are refused), then new
    calls refused, ``message`` logged, the calls in flight drained (see
    :mod:`trading_system.server.drain`) and the server stopped: what still runs when the grace
    period is over is cancelled."""
    deadline = time.monotonic() + grace_ms / 1000
    await health.shutting_down()
    drain.begin()
    log.logger().info(message, grace_ms=grace_ms)
    await drain.wait(grace_ms / 1000)
    await server.stop(max(0.0, deadline - time.monotonic()))


HEALTH_ONLY_OPTIONS = [("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 64 * 1024)]
"""The health-only listener: no port sharing; its requests are a service name."""


def health_only_server(cfg: FileConfig, health: Health, main_port: int) -> grpc.aio.Server | None:
    """A server on ``server.host:server.health_port`` (None when the key is 0), plaintext, with
    no interceptor, serving ``health`` alone; not started. ``main_port`` is the port the main
    server bound, which the health port must not be."""
    port = cfg.server.health_port
    if port == 0:
        return None
    if port == main_port:
        raise _health_port_clash(port)
    server = grpc.aio.server(options=HEALTH_ONLY_OPTIONS)
    health.register(server)
    where = address(cfg.server.host, port)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise StartError(
            f"cannot listen on {where} (server.health_port: in use, or not an address here)"
        )
    return server


def _health_port_clash(port: int) -> StartError:
    """``server.health_port`` is the server's own port, ``port``."""
    return StartError(
        f"server.health_port and the server's own port are both {port}: the health port "
        "must be another one"
    )


async def start_health_only(server: grpc.aio.Server | None) -> None:
    """Starts the health-only server, if there is one (with the main one)."""
    if server is not None:
        await server.start()


async def stop_health_only(server: grpc.aio.Server | None) -> None:
    """Stops the health-only server (after the main one: probes see NOT_SERVING until then)."""
    if server is not None:
        await server.stop(0)


def listen(server: grpc.aio.Server, cfg: FileConfig, port: int) -> tuple[int, bool]:
    """Binds ``server.host:port`` (TLS when configured); returns the port bound (the real one
    when 0 was asked for) and whether it is TLS."""
    creds = credentials(cfg)
    where = address(cfg.server.host, port)
    if port != 0 and port == cfg.server.health_port:
        # Said before binding: the second bind would only say "in use".
        raise _health_port_clash(port)
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
    return bound, creds is not None


def stop_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def ignore_stop_signals() -> None:
    """For the rest of the teardown: closing the loop would restore the default handlers, and a
    second signal would then kill the process instead of letting it exit 0."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)


def run_until_stopped(
    cfg: FileConfig, name: str, main: Callable[[], Coroutine[Any, Any, int]]
) -> int:
    """Configures the log (as ``name``) and runs ``main``; the exit status: 2 for a bad log
    setting, 1 when the server cannot start."""
    try:
        log.configure(cfg.logging.level, cfg.logging.format, name=name)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(main())
    except StartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


async def serve(cfg: FileConfig, port: int, out: TextIO) -> int:
    """Serves until SIGTERM or SIGINT; returns the exit status."""
    cfg = with_tokens(cfg)
    s = cfg.server
    executor = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="rpc")
    service = TradingService(
        cfg.engine(), s.max_message_bytes, s.replay_window, executor, s.max_sessions
    )
    server, health, drain = new_server(cfg)
    server.add_generic_rpc_handlers(service.handlers())
    bound, tls = listen(server, cfg, port)
    health_only = health_only_server(cfg, health, bound)
    stop = stop_signals()
    await server.start()
    await start_health_only(health_only)
    await health.serving()
    print(f"listening on {address(s.host, bound)}", file=out, flush=True)
    log.logger().info(
        "serving",
        addr=address(s.host, bound),
        health_addr=address(s.host, s.health_port) if health_only is not None else None,
        tls=tls,
        mutual_tls=bool(s.tls_client_ca_file),
        auth=bool(s.auth_token),
        operator_auth=bool(s.operator_token),
        version=__version__,
    )

    await stop.wait()
    message = "shutting down: health NOT_SERVING, draining in-flight calls"
    await shut_down(server, health, drain, s.shutdown_grace_ms, message)
    await stop_health_only(health_only)
    if service.busy:
        # Threads cannot be stopped: past the grace period, leave without waiting for them.
        log.logger().warning(
            "shutdown grace period over: calls still running are cut off",
            grace_ms=s.shutdown_grace_ms,
        )
        log.logger().info("stopped")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    executor.shutdown(wait=True)
    ignore_stop_signals()
    log.logger().info("stopped")
    return 0


def run(cfg: FileConfig, port: int | None = None, out: TextIO | None = None) -> int:
    """Runs the Python server on ``port`` (None: ``server.python_port``); the exit status."""
    chosen = cfg.server.python_port if port is None else port
    return run_until_stopped(cfg, ENGINE, lambda: serve(cfg, chosen, out or sys.stdout))
