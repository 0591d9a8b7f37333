"""``trading-system analyze FILE``: a readable summary (counts, then the last pens, segments,
pivots and buy/sell points), the analysis document (``--json``) and its chart (``--chart``).

Also what ``chart`` shares with it: the engine and configuration arguments, reading and
analyzing the file, rendering the page."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from trading_system import progress
from trading_system.api import analyze
from trading_system.cli import common
from trading_system.cli.exits import BAD_INPUT, OK, Failure
from trading_system.data import Bars, file_format, load_with_lines
from trading_system.errors import MAX_LISTED, InvalidBars
from trading_system.frames import FORMATS, FileFormat, write_frames
from trading_system.results import Analysis, Point
from trading_system.times import TimeFormat

if TYPE_CHECKING:
    from trading_system.cli.common import Subparsers

LAST = 5
"""How many of the latest pens, segments, pivots and points the summary shows."""
MAX_SHOWN = MAX_LISTED
"""How many bad bars an error lists before "… and N more"."""


FILE_HELP = "the bars: delimited text (.csv, .tsv, .txt) or Parquet (.parquet, .pq)"


def register(sub: Subparsers) -> None:
    a = sub.add_parser(
        "analyze",
        help="analyze a file of bars (CSV, TSV, TXT or Parquet)",
        description="Analyze a file of bars and print a summary. Columns are found by name "
        "(time, open, high, low, close, volume and their aliases in config/columns.yaml; "
        "volume is optional); times are ISO dates or date-times, YYYYMMDD or epoch numbers "
        "(docs/DATA.md).",
    )
    a.add_argument("file", type=Path, help=FILE_HELP)
    analysis_arguments(a)
    a.add_argument("--with-macd", action="store_true", help="include the MACD series")
    a.add_argument(
        "--json", metavar="OUT.json", help="write the analysis document there ('-': stdout)"
    )
    a.add_argument("--chart", metavar="OUT.html", help="write the chart there (docs/CHARTS.md)")
    a.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the results as data, one file per kind: bars (with MACD), fractals, pens, "
        "segments, pivots, signals (<kind>.csv or <kind>.parquet; columns: docs/DATA.md); "
        "times in the series' zone. DIR is made when missing; an existing non-empty DIR is "
        "refused unless --force",
    )
    a.add_argument(
        "--format",
        choices=FORMATS,
        help="the files --out writes: csv (times ISO-8601 with the zone's offset) or parquet "
        "(tz-aware timestamps) (default: csv)",
    )
    a.add_argument(
        "--force",
        action="store_true",
        help="let --out write into a non-empty DIR (files of the same names are replaced, "
        "others are left alone)",
    )
    a.set_defaults(run=run)


def analysis_arguments(p: argparse.ArgumentParser) -> None:
    """The engine and its configuration (``analyze``, ``chart``)."""
    p.add_argument(
        "--engine", choices=("rust", "python"), default="rust", help="engine (default: rust)"
    )
    common.data_arguments(p)
    common.config_arguments(p, "pen.definition=traditional")
    p.add_argument("--macd-preset", metavar="NAME", help="a named MACD preset")
    p.add_argument(
        "--presets",
        type=Path,
        help=f"the MACD presets file (default: {common.PRESETS.as_posix()} when it exists, "
        "else the presets the package carries)",
    )


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.format is not None and args.out is None:
        raise Failure("error: --format says how --out writes: give --out DIR too", BAD_INPUT)
    if args.out is not None:
        check_out_dir(args.out, args.force)
    # The frames' bars carry the MACD, so --out asks for it.
    bars, a = read_and_analyze(args, args.with_macd or args.out is not None, err)
    clock = TimeFormat.of(bars.time, a.tz)
    first = clock(bars.time[0]) if len(bars) else ""
    last = clock(bars.time[-1]) if len(bars) else ""
    text = summary(a, str(args.file), args.engine, first, last, clock)
    if args.out is not None:
        write_out(a, bars, args.out, args.format or "csv")
    # (file, page) of the chart asked for, if one was.
    chart = None if args.chart is None else (args.chart, chart_page(bars, a, args, args.file.name))
    if args.json == "-":
        if chart is not None:
            common.write_output(*chart)
        out.write(a.to_json() + "\n")
        err.write(text)
        return OK
    if args.json is not None:
        common.write_output(args.json, a.to_json() + "\n")
    if chart is not None:
        try:
            common.write_output(*chart)
        except Failure:
            if args.json is not None:
                Path(args.json).unlink(missing_ok=True)  # all outputs or none
            raise
    out.write(text)
    return OK


def check_out_dir(directory: Path, force: bool) -> None:
    """Refuses, before any work, an ``--out`` that is not a directory or is a non-empty one
    (without ``--force``): results of another run must not be mixed with these silently."""
    if directory.exists() and not directory.is_dir():
        raise Failure(f"error: --out {directory}: not a directory")
    if not force and directory.is_dir() and any(directory.iterdir()):
        raise Failure(
            f"error: --out {directory}: the directory is not empty (give --force to write "
            "into it, replacing files of the same names)"
        )


def write_out(a: Analysis, bars: Bars, directory: Path, fmt: FileFormat) -> None:
    """The results as files (``--out``): one per kind, all or none."""
    try:
        write_frames(a.to_frames(bars), directory, fmt)
    except OSError as e:
        raise Failure(f"error: writing {directory}: {e.strerror or e}") from e


def read_and_analyze(
    args: argparse.Namespace, with_macd: bool, err: TextIO | None = None
) -> tuple[Bars, Analysis]:
    """The bars of ``args.file`` (read as the data arguments say; the loader's notices on
    ``err``) and their analysis under the configuration the arguments name. Bad bars are a
    Failure naming each at its line (Parquet: row)."""
    cfg = common.analysis_configuration(args)
    try:
        with progress.busy(f"reading {args.file.name}"):
            bars, lines = load_with_lines(args.file, **common.load_options(args))
    except OSError as e:
        raise Failure(f"error: reading {args.file}: {e.strerror or e}") from e
    if err is not None:
        common.notices(bars, err)
    try:
        a = analyze(bars, cfg.engine(), engine=args.engine, with_macd=with_macd)
    except InvalidBars as e:
        unit = "row" if file_format(args.file) == "parquet" else "line"
        raise Failure(violations(e, args.file, lines, unit), BAD_INPUT) from e
    return bars, a


def chart_page(bars: Bars, a: Analysis, args: argparse.Namespace, title: str) -> str:
    """The chart's HTML page. Imported here: plotly takes a while to load, and only charts
    need it."""
    try:
        from trading_system.chart import render
    except ImportError as e:
        raise Failure(f"error: charts need plotly ({e}): install with scripts/setup.sh") from e
    with progress.busy("drawing the chart"):
        return render(bars, a, title, getattr(args, "last", None), engine=args.engine)


def violations(e: InvalidBars, file: Path, lines: Sequence[int], unit: str = "line") -> str:
    """The bad bars, each at its place in the file: ``unit`` ``lines[i]`` ("line N" in a CSV
    file, "row N" in a Parquet file)."""
    out = [
        f"error: {file}: {len(e.violations)} bar rule violation(s); nothing was analyzed:",
    ]
    for v in e.violations[:MAX_SHOWN]:
        if v.index is None:
            out.append(f"  {v.message} [rule {v.rule}]")
        else:
            line = lines[v.index] if v.index < len(lines) else v.index + 2
            out.append(f"  {unit} {line}: {v.message} [field {v.field}, rule {v.rule}]")
    if len(e.violations) > MAX_SHOWN:
        out.append(f"  … and {len(e.violations) - MAX_SHOWN} more")
    if any(v.rule in ("high_range", "low_range") for v in e.violations):
        out.append("hint: --set validation.repair=true widens such high/low instead")
    return "\n".join(out)


def _price(x: float) -> str:
    """A price for people: up to ten significant digits, no trailing zeros."""
    return f"{x:.10g}"


def _at(p: Point, clock: TimeFormat) -> list[str]:
    return [clock.text(p.time), _price(p.price)]


def _latest(n: int) -> range:
    return range(max(0, n - LAST), n)


def summary(
    a: Analysis,
    name: str,
    engine: str,
    first: str = "",
    last: str = "",
    clock: TimeFormat | None = None,
) -> str:
    """A readable digest of an analysis: counts, then the latest pens, segments, pivots and
    buy/sell points as aligned lines with times (in ``clock``'s zone, dates for a daily series;
    default: the document's UTC texts) and prices."""
    clock = clock or TimeFormat()
    confirmed = sum(s.confirmed for s in a.segments)
    span = f" ({first} .. {last})" if first else ""
    out = [
        f"{name}  ({engine} engine)",
        f"  {a.bars} bars{span}",
        f"  -> {a.merged_bars} merged bars, {len(a.fractals)} fractals, {len(a.pens)} pens, "
        f"{len(a.segments)} segments ({confirmed} confirmed), {len(a.pivots)} pivots, "
        f"{len(a.signals)} buy/sell points",
    ]
    if a.repairs:
        out.append(f"  {len(a.repairs)} bars repaired (high/low widened to cover open/close)")

    rows = []
    for i in _latest(len(a.pens)):
        p = a.pens[i]
        state = "" if p.final else "may extend"
        rows.append([f"#{i}", p.direction, *_at(p.start, clock), "->", *_at(p.end, clock), state])
    if a.forming_pen is not None:
        p = a.forming_pen
        rows.append(
            ["forming", p.direction, *_at(p.start, clock), "->", *_at(p.end, clock), "forming"]
        )
    out += ["last pens (笔):", *common.table(rows, {3, 6})]

    rows = []
    for i in _latest(len(a.segments)):
        s = a.segments[i]
        state = ("confirmed" if s.confirmed else "forming") + (", gap" if s.gap else "")
        pens = f"pens {s.first_pen}..{s.last_pen}"
        rows.append(
            [f"#{i}", s.direction, *_at(s.start, clock), "->", *_at(s.end, clock), pens, state]
        )
    out += ["last segments (线段):", *common.table(rows, {3, 6})]

    rows = []
    for i in _latest(len(a.pivots)):
        z = a.pivots[i]
        rows.append(
            [
                f"#{i}",
                "ZD",
                _price(z.zd),
                "ZG",
                _price(z.zg),
                "DD",
                _price(z.dd),
                "GG",
                _price(z.gg),
                clock.text(z.start.time),
                "->",
                clock.text(z.end.time),
                f"pens {z.first_pen}..{z.last_pen}",
                "confirmed" if z.confirmed else "forming",
            ]
        )
    out += ["last pivots (中枢):", *common.table(rows, {2, 4, 6, 8})]

    rows = []
    for i in _latest(len(a.signals)):
        g = a.signals[i]
        state = "final" if g.final else "may change"
        when = clock.text(g.time)
        rows.append([f"type {g.type}", g.side, when, _price(g.price), f"pen {g.pen}", state])
    out += ["last buy/sell points (买卖点):", *common.table(rows, {3})]
    return "\n".join(out) + "\n"
