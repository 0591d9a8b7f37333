"""``trading-system signals [--symbol S] [--timeframe T] [--current] [--json] [--tz ZONE]``:
the buy/sell points the monitor recorded from streams (``system.signals_file``, read only),
oldest bar first, times in ``--tz``; a signal that disappeared is shown as gone."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from trading_system.cli import common
from trading_system.cli.exits import OK, Failure
from trading_system.times import TimeFormat, check_zone

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
    g.add_argument(
        "--tz",
        type=zone_argument,
        default="UTC",
        metavar="ZONE",
        help="show times in this IANA zone, e.g. Asia/Shanghai (default: UTC); a stream whose "
        "bar times are all midnight there shows dates",
    )
    common.config_arguments(g)
    g.set_defaults(run=run)


def zone_argument(text: str) -> str:
    """An argument type: an IANA time zone name."""
    try:
        return check_zone(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
    # Per stream (symbol, timeframe): dates when all its bar times are midnight in the zone.
    streams: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        streams.setdefault((r.symbol, r.timeframe), []).append(r.time_ms)
    clocks = {k: TimeFormat.of(v, args.tz) for k, v in streams.items()}
    # When a signal went is a moment of the monitor's clock, not a bar: always a full time.
    now_clock = TimeFormat(args.tz)
    table = [
        [
            f"{r.symbol}/{r.timeframe}",
            clocks[(r.symbol, r.timeframe)](r.time_ms),
            f"{r.side} {r.type}",
            f"{r.price:g}",
            "final" if r.final else "not final",
            f"gone {now_clock(r.gone_ms)}" if r.gone_ms is not None else "",
        ]
        for r in rows
    ]
    if not table:
        out.write("no signals recorded" + (f" for {args.symbol}" if args.symbol else "") + "\n")
        return OK
    out.write("\n".join(common.table(table, set())) + "\n")
    return OK
