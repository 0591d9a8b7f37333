"""``trading-system serve python|rust|monitor``: a server in the foreground until SIGTERM or
SIGINT, printing ``listening on HOST:PORT`` once ready.

``serve python`` runs the Python engine's gRPC server (docs/GRPC.md; the port defaults to
``server.python_port``, 0 is any free port); ``serve rust`` replaces this process with the Rust
one (``trading-engine serve`` with the same arguments: the binary of
:func:`trading_system.resources.rust_server`, ``TRADING_ENGINE_BIN``, else the checkout's
build, else ``trading-engine`` on ``PATH``); ``serve monitor`` runs the monitor in front of both
engines (docs/MONITOR.md; the port defaults to ``server.monitor_port``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TextIO

from trading_system import resources
from trading_system.cli import common
from trading_system.cli.exits import Failure

if TYPE_CHECKING:
    from trading_system.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    serve = sub.add_parser(
        "serve",
        help="run an engine's gRPC server (docs/GRPC.md)",
        description="Run an engine's gRPC server until SIGTERM or SIGINT.",
    )
    engines = serve.add_subparsers(dest="engine", required=True)
    for name, port_key, run in (
        ("python", "server.python_port", run_python),
        ("rust", "server.rust_port", run_rust),
    ):
        e = engines.add_parser(
            name,
            help=f"the {name} engine's server",
            description=f"Run the {name} engine's gRPC server; it prints 'listening on "
            "HOST:PORT' once ready.",
        )
        e.add_argument(
            "--port", type=common.port, help=f"the port (default: {port_key}; 0: any free port)"
        )
        common.config_arguments(e, "server.auth_token=s3cret")
        e.set_defaults(run=run)
    m = engines.add_parser(
        "monitor",
        help="the monitor: one address in front of both engines (docs/MONITOR.md)",
        description="Run the monitor: it forwards trading.v1 to both engines, fails over "
        "between them and mirrors streams; it prints 'listening on HOST:PORT' once ready.",
    )
    m.add_argument(
        "--port", type=common.port, help="the port (default: server.monitor_port; 0: any free port)"
    )
    m.add_argument(
        "--rust", metavar="ADDR", help="the Rust engine (default: server.host:server.rust_port)"
    )
    m.add_argument(
        "--python",
        metavar="ADDR",
        help="the Python engine (default: server.host:server.python_port)",
    )
    common.config_arguments(m)
    m.set_defaults(run=run_monitor)


def _needs_grpcio(what: str, e: ImportError) -> Failure:
    return Failure(f"error: {what} needs grpcio ({e}): install with scripts/setup.sh")


def run_python(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cfg = common.configuration(args)
    try:
        from trading_system.server.app import run
    except ImportError as e:
        raise _needs_grpcio("the server", e) from e
    return run(cfg, args.port, out)


def run_monitor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cfg = common.configuration(args)
    try:
        from trading_system.monitor.app import engine_addresses, run
    except ImportError as e:
        raise _needs_grpcio("the monitor", e) from e
    return run(cfg, args.port, engine_addresses(cfg, args.rust, args.python), out)


def missing_rust_server(binary: os.PathLike[str]) -> Failure:
    """The failure of a command that needs the Rust server and did not find it."""
    return Failure(
        f"error: the Rust server {os.fspath(binary)} is missing: build it with scripts/setup.sh "
        f"(or name it with {resources.RUST_SERVER_ENV}, or put trading-engine on PATH)"
    )


def run_rust(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    binary = resources.rust_server()
    argv = [str(binary), "serve"]
    if args.port is not None:
        argv += ["--port", str(args.port)]
    if args.config is not None:
        argv += ["--config", str(args.config)]
    for s in args.sets:
        argv += ["--set", s]
    if not os.access(binary, os.X_OK):
        raise missing_rust_server(binary)
    sys.stdout.flush()
    sys.stderr.flush()
    # The Rust server takes over this process: its signals, output and exit status.
    os.execv(binary, argv)
