"""``trading-system signals [--symbol S] [--timeframe T] [--current] [--json] [--tz ZONE]``:
the buy/sell points the monitor recorded from streams (``system.signals_file``), by degree,
oldest bar first, times in ``--tz``, each with what it was derived from (its pivot; a type-1
point's strengths, a type-2 point's type-1 pen, a type-3 point's edge); a signal that
disappeared is shown as gone."""

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
    from trading_system.signal_store import StoredSignal


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
    from trading_system.signal_store import SignalStore, SignalStoreError

    try:
        store = SignalStore(path)
    except SignalStoreError as e:
        raise Failure(f"error: {e}") from None
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
            f"degree {r.degree}",
            f"{r.side} {r.type}",
            f"{r.price:g}",
            "final" if r.final else "not final",
            _pivot(r),
            _derivation(r),
            f"gone {now_clock(r.gone_ms)}" if r.gone_ms is not None else "",
        ]
        for r in rows
    ]
    if not table:
        out.write("no signals recorded" + (f" for {args.symbol}" if args.symbol else "") + "\n")
        return OK
    out.write("\n".join(common.table(table, set())) + "\n")
    return OK


def _number(x: float | None) -> str:
    """A recorded strength or ratio; ``-`` where the document has null (not a finite number)."""
    return "-" if x is None else f"{x:.4g}"


def _pivot(r: StoredSignal) -> str:
    """The pivot a point was derived from, ``pivot 2 [ZD, ZG]``; empty in rows recorded before
    points carried it."""
    if r.pivot is None:
        return ""
    return f"pivot {r.pivot} [{r.zd:g}, {r.zg:g}]"


def _derivation(r: StoredSignal) -> str:
    """Type 1: the strengths compared, ``leaving / entering = ratio``; type 2: the type-1 point
    it follows; type 3: the pivot edge cleared."""
    if r.pivot is None:
        return ""
    if r.type == "1":
        return (
            f"strength {_number(r.leaving_strength)} / {_number(r.entering_strength)}"
            f" = {_number(r.ratio)}"
        )
    if r.type == "2" and r.follows is not None:
        return f"follows pen {r.follows}"
    if r.type == "3" and r.edge is not None:
        return f"cleared {r.edge.upper()}"
    return ""
