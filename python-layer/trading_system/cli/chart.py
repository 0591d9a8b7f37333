"""``trading-system chart FILE -o OUT.html``: the chart of a file's analysis (docs/CHARTS.md),
one standalone HTML page (plotly, inline: it works offline) with the candlesticks, pens,
segments, pivots, buy/sell points (of every configured degree) and MACD, the last N bars with
``--last``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from trading_system.cli import common
from trading_system.cli.analyze import (
    FILE_HELP,
    analysis_arguments,
    chart_page,
    read_and_analyze,
)
from trading_system.cli.exits import OK

if TYPE_CHECKING:
    from trading_system.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    c = sub.add_parser(
        "chart",
        help="write the chart of a file's analysis as one HTML page (docs/CHARTS.md)",
        description="Analyze a file of bars (CSV, TSV, TXT or Parquet) and write its chart: "
        "candlesticks, pens, segments, pivots, buy/sell points (every higher degree in its own "
        "colour, toggled from the legend) and MACD in one standalone HTML page that works "
        "offline.",
    )
    c.add_argument("file", type=Path, help=FILE_HELP)
    c.add_argument(
        "-o", "--output", metavar="OUT.html", required=True, help="the HTML file to write"
    )
    analysis_arguments(c)
    c.add_argument(
        "--last",
        type=common.positive,
        metavar="N",
        help="show only the last N bars (a browser draws about 10,000 candles comfortably)",
    )
    c.add_argument("--title", help="the chart's title (default: the file name)")
    c.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    bars, a = read_and_analyze(args, True, err)
    page = chart_page(bars, a, args, args.title or args.file.name)
    common.write_output(args.output, page)
    shown = len(bars) if args.last is None else min(args.last, len(bars))
    out.write(f"{args.output}: chart of {args.file} ({shown} of {len(bars)} bars shown)\n")
    return OK
