"""``trading-system signals [--symbol S] [--timeframe T] [--current] [--json]``: the buy/sell
points the monitor recorded from streams (``system.signals_file``, read only), oldest bar
first; a signal that disappeared is shown as gone."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from trading_system.cli import common
from trading_system.cli.exits import OK, Failure
from trading_system.data import format_time

if TYPE_CHECKING:
    from trading_system.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    g = sub.add_parser(
        "signals",
        help="list the buy/sell points the monitor recorded from streams",
        description="List the buy/sell points the monitor recorded (system.signals_file), "
        "oldest bar first; a signal that disappeared is shown as gone.",
    )
    g.add_argument("--symbol", help="only this symbol")
    g.add_argument("--timeframe", help="only this timeframe")
    g.add_argument("--current", action="store_true", help="only signals that have not gone")
    g.add_argument("--file", type=Path, help="the SQLite file (default: system.signals_file)")
    g.add_argument("--json", action="store_true", help="one JSON object per line")
    common.config_arguments(g)
    g.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cfg = common.configuration(args)
    path = args.file or (Path(cfg.system.signals_file) if cfg.system.signals_file else None)
    if path is None:
        raise Failure("error: no signals file: system.signals_file is empty (give --file)")
    if not path.is_file():
        raise Failure(f"error: {path}: no such signals file (the monitor writes it)")
    from trading_system.signal_store import SignalStore

    store = SignalStore(path)
    try:
        rows = store.list(args.symbol, args.timeframe, args.current)
    finally:
        store.close()
    if args.json:
        for r in rows:
            out.write(json.dumps(r.to_dict()) + "\n")
        return OK
    table = [
        [
            f"{r.symbol}/{r.timeframe}",
            format_time(r.time_ms),
            f"{r.side} {r.type}",
            f"{r.price:g}",
            "final" if r.final else "not final",
            f"gone {format_time(r.gone_ms)}" if r.gone_ms is not None else "",
        ]
        for r in rows
    ]
    if not table:
        out.write("no signals recorded" + (f" for {args.symbol}" if args.symbol else "") + "\n")
        return OK
    out.write("\n".join(common.table(table, set())) + "\n")
    return OK
