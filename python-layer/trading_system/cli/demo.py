"""``trading-system demo``: the main job (README command 1, :mod:`trading_system.demo`): both
engines and the monitor on loopback ports with a demo bot streaming a real series through the
monitor, health and each buy/sell point printed as they appear, a chart written, everything
stopped at the end or on Ctrl-C."""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack
from importlib.resources import as_file
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from trading_system import resources
from trading_system.cli import common
from trading_system.cli.exits import BAD_INPUT, Failure
from trading_system.cli.serve import missing_rust_server

if TYPE_CHECKING:
    from trading_system.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    d = sub.add_parser(
        "demo",
        help="the whole stack on loopback with a demo bot (README command 1)",
        description="Start the Rust engine, the Python engine and the monitor on free loopback "
        "ports, stream a real series through the monitor with the client library, print health "
        "and each buy/sell point as it appears, write a chart, and stop everything. With "
        "--monitor, only the bot, against a stack already running.",
    )
    d.add_argument(
        "--data",
        type=Path,
        help="the series (CSV or Parquet; default: the checkout's BTC/USD 30-minute bars)",
    )
    common.data_arguments(d)
    d.add_argument("--symbol", default="BTCUSD")
    d.add_argument("--timeframe", default="30m")
    d.add_argument("--rate", type=float, default=200.0, help="bars per second (0: at once)")
    d.add_argument(
        "--chart", type=Path, default=Path("var/demo/chart.html"), help="the chart to write"
    )
    d.add_argument("--no-chart", action="store_true", help="write no chart")
    d.add_argument(
        "--monitor",
        metavar="HOST:PORT",
        help="stream to this running monitor (a compose or Kubernetes stack) instead of "
        "starting one; TLS and the client token as the configuration's client section says "
        "(--config, or TRADING_SYSTEM__CLIENT__* variables)",
    )
    d.add_argument(
        "--config",
        type=Path,
        help="YAML configuration (default: the package's copy of config/default.yaml)",
    )
    d.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from trading_system import demo

    binary = resources.rust_server()
    if args.monitor is None and not os.access(binary, os.X_OK):
        raise missing_rust_server(binary)
    data = args.data or demo.DATA
    if data is None:
        raise Failure(
            f"error: no series: give --data FILE (the default, {demo.SERIES.as_posix()}, comes "
            "with a source checkout)",
            BAD_INPUT,
        )
    with ExitStack() as files:
        config = args.config or files.enter_context(
            as_file(resources.bundled(resources.DEFAULT_CONFIG))
        )
        return demo.main(
            data,
            args.symbol,
            args.timeframe,
            args.rate,
            None if args.no_chart else args.chart,
            Path(config),
            binary,
            out,
            common.load_options(args),
            err,
            args.monitor,
        )
