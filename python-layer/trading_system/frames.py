"""Results as data: an analysis as one pandas DataFrame per kind, and those frames as files.

:data:`FRAME_COLUMNS` is the one place the frames' columns are defined: for each kind, each
column's name, dtype and meaning. The names are stable (a new column may be added, none is
renamed) and follow the analysis document (docs/CHAN_THEORY.md §12.6) with each point
(``start``, ``end``) flattened into ``start_index``, ``start_time``, ``start_price`` …

- Every frame has a default RangeIndex; its first column (after ``degree``) numbers the rows
  as the document's list does (``pen`` 0, 1, …; from 0 again at each degree), the number other
  kinds refer to (a signal's ``pen``, a pivot's ``segment``).
- Times are tz-aware, ``datetime64[ms, <zone>]`` (pandas ``DatetimeTZDtype``) in the series'
  zone (``Analysis.tz``): the same instants as the document's ISO-8601 UTC texts.
- Degrees (docs/CHAN_THEORY.md §13, segments of segments 线段的线段): the segments, pivots and
  signals frames hold every degree's rows, degree 1 first (the document's top-level lists),
  then 2, 3 … (its ``degrees`` list, ``Analysis.degrees``), with ``degree`` saying which.
  Degree 1 is built on pens; a degree ``n + 1`` row is built on the degree-``n`` segments read
  as strokes, and its ``first_pen``, ``last_pen`` and ``pen`` number those strokes (the spec's
  "pen read as stroke"), its ``segment`` and ``pivot`` the lists of its own degree. A degree
  with no items has no rows.
- ``bars`` are the raw bars (the document holds only the count of merged bars; a fractal's
  ``merged_index`` numbers those), as given (a repaired bar is flagged, its prices are the
  input's: the repair itself is in ``Analysis.repairs``), with the MACD of each bar (NaN where
  absent: before the lookback, or when the analysis was made without ``with_macd``).
- The forming pen is not a pen (it is the candidate the next bars decide): it is
  ``Analysis.forming_pen``, not a row of ``pens``.
- An empty kind is an empty frame with every column and its dtype.

Files (:func:`write_frames`, ``trading-system analyze --out DIR --format csv|parquet``): one per
kind, ``<kind>.csv`` or ``<kind>.parquet`` (:func:`file_names`). CSV times are ISO-8601 with the
zone's offset (``2025-06-09T09:31:00+08:00``, ``.mmm`` when some time of the column has
milliseconds), booleans ``true``/``false``, absent numbers empty, no quotes (written by pyarrow's
CSV writer: all six files of a 239,550-bar 1-minute series in about 2 s); Parquet keeps the dtypes,
times as ``timestamp[ms, tz=<zone>]``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from trading_system.times import UTC, check_zone, timestamps

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from trading_system.data import Bars
    from trading_system.results import Analysis, Point

FileFormat = Literal["csv", "parquet"]
FORMATS: tuple[FileFormat, ...] = ("csv", "parquet")


class Column(NamedTuple):
    """One column of a frame: its dtype (``int64``, ``Int64`` — pandas' nullable integers, NA
    where absent —, ``float64`` (NaN where absent), ``bool``, ``string`` — pandas'
    ``StringDtype``, NA where absent — or ``time``, tz-aware milliseconds in the series' zone)
    and meaning."""

    dtype: str
    doc: str


def _point(prefix: str, what: str) -> dict[str, Column]:
    return {
        f"{prefix}_index": Column("int64", f"raw bar index of the {what}"),
        f"{prefix}_time": Column("time", f"that bar's time (the {what})"),
        f"{prefix}_price": Column("float64", f"price at the {what}"),
    }


_DEGREE = {"degree": Column("int64", "1: built on pens; n + 1: on degree-n segments (§13)")}

FRAME_COLUMNS: Mapping[str, Mapping[str, Column]] = MappingProxyType(
    {
        "bars": MappingProxyType(
            {
                "index": Column("int64", "raw bar index, 0 .. bars - 1"),
                "time": Column("time", "the bar's time"),
                "open": Column("float64", "open, as given"),
                "high": Column("float64", "high, as given"),
                "low": Column("float64", "low, as given"),
                "close": Column("float64", "close, as given"),
                "volume": Column("float64", "volume, as given (0 when the input had none)"),
                "dif": Column("float64", "MACD DIF (NaN where absent)"),
                "dea": Column("float64", "MACD DEA (NaN where absent)"),
                "histogram": Column("float64", "MACD histogram (NaN where absent)"),
                "repaired": Column("bool", "high/low were widened to cover open/close"),
            }
        ),
        "fractals": MappingProxyType(
            {
                "fractal": Column("int64", "number in the document's list"),
                "kind": Column("string", '"top" (顶分型) or "bottom" (底分型)'),
                "merged_index": Column("int64", "the merged bar (after 包含处理) of the fractal"),
                "index": Column("int64", "the raw bar holding its extreme"),
                "time": Column("time", "that raw bar's time"),
                "price": Column("float64", "the extreme: high of a top, low of a bottom"),
            }
        ),
        "pens": MappingProxyType(
            {
                "pen": Column("int64", "number: what segments, pivots and signals refer to"),
                "direction": Column("string", '"up" or "down"'),
                **_point("start", "start"),
                **_point("end", "end"),
                "final": Column("bool", "can no longer change (every pen but the last)"),
            }
        ),
        "segments": MappingProxyType(
            {
                **_DEGREE,
                "segment": Column("int64", "number within its degree (a pivot's segment)"),
                "direction": Column("string", '"up" or "down"'),
                **_point("start", "start"),
                **_point("end", "end"),
                "first_pen": Column("int64", "its first pen (stroke, at higher degrees)"),
                "last_pen": Column("int64", "its last pen (stroke, at higher degrees)"),
                "confirmed": Column("bool", "its end is confirmed"),
                "gap": Column("bool", "its end waited for a second-case (有缺口) confirmation"),
            }
        ),
        "pivots": MappingProxyType(
            {
                **_DEGREE,
                "pivot": Column("int64", "number within its degree"),
                "segment": Column("int64", "the segment (same degree) it lies in"),
                "first_pen": Column("int64", "its first pen (stroke, at higher degrees)"),
                "last_pen": Column("int64", "its last pen (stroke, at higher degrees)"),
                "zd": Column("float64", "ZD, the overlap's low"),
                "zg": Column("float64", "ZG, the overlap's high"),
                "dd": Column("float64", "DD, the lowest low of its pens"),
                "gg": Column("float64", "GG, the highest high of its pens"),
                **_point("start", "start"),
                **_point("end", "end"),
                "confirmed": Column("bool", "its segment is confirmed"),
            }
        ),
        "signals": MappingProxyType(
            {
                **_DEGREE,
                "signal": Column("int64", "number within its degree"),
                "type": Column("string", '"1", "2" or "3" (第一/二/三类买卖点)'),
                "side": Column("string", '"buy" or "sell"'),
                "pen": Column("int64", "the pen (stroke, at higher degrees) it ends"),
                "index": Column("int64", "raw bar index of the point"),
                "time": Column("time", "that bar's time"),
                "price": Column("float64", "the pen's end price"),
                "final": Column("bool", "can no longer change"),
                "pivot": Column("int64", "the pivot (same degree) it was derived from"),
                "zd": Column("float64", "that pivot's ZD"),
                "zg": Column("float64", "that pivot's ZG"),
                "entering_strength": Column(
                    "float64", "type 1: strength (§8) of the pen entering the pivot (else NaN)"
                ),
                "leaving_strength": Column(
                    "float64", "type 1: strength (§8) of the leaving pen (else NaN)"
                ),
                "ratio": Column(
                    "float64", "type 1: leaving / entering, compared with divergence_rate"
                ),
                "follows": Column("Int64", "type 2: the pen of the type-1 point it follows"),
                "edge": Column("string", 'type 3: the pivot edge cleared, "zg" (buy) or "zd"'),
            }
        ),
    }
)
"""For each kind, in order: its columns, in order, with dtype and meaning."""

KINDS: tuple[str, ...] = tuple(FRAME_COLUMNS)
"""The kinds, in the order :func:`to_frames` returns them and files are written."""


# --- Frames ------------------------------------------------------------------------------------


def _dtype(column: Column, tz: str) -> Any:
    import pandas as pd

    if column.dtype == "time":
        return pd.DatetimeTZDtype("ms", tz)
    if column.dtype == "string":
        return pd.StringDtype()
    if column.dtype == "Int64":
        return pd.Int64Dtype()
    return np.dtype(column.dtype)


def _iso_ms(texts: list[str]) -> np.ndarray:
    """The document's ISO-8601 UTC texts (``YYYY-MM-DDTHH:MM:SS[.mmm]Z``) as epoch ms, parsed as
    one array; texts of another shape (a year beyond 9999) by the package's own parser."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    a = np.array(texts)
    if bool(np.all(np.char.endswith(a, "Z"))):
        try:
            return np.char.rstrip(a, "Z").astype("datetime64[ms]").astype(np.int64)
        except ValueError:
            pass
    from trading_system.data import parse_time

    return np.array([parse_time(t) for t in texts], dtype=np.int64)


def _frame(kind: str, values: Mapping[str, Any], tz: str, rows: int) -> pd.DataFrame:
    """The frame of ``kind`` from column values (lists or arrays; a time column as epoch ms),
    each cast to its column's dtype."""
    import pandas as pd

    data: dict[str, Any] = {}
    for name, column in FRAME_COLUMNS[kind].items():
        v = values[name]
        if column.dtype == "time":
            if v is None:  # unknown times (bars without their source): NaT
                data[name] = pd.array([pd.NaT] * rows, dtype=_dtype(column, tz))
            else:
                data[name] = pd.array(timestamps(np.asarray(v, dtype=np.int64), tz))
        else:
            data[name] = pd.array(np.asarray(v) if len(v) else [], dtype=_dtype(column, tz))
    return pd.DataFrame(data, index=pd.RangeIndex(rows))


def _points(prefix: str, points: list[Point]) -> dict[str, Any]:
    return {
        f"{prefix}_index": np.array([p.index for p in points], dtype=np.int64),
        f"{prefix}_time": _iso_ms([p.time for p in points]),
        f"{prefix}_price": np.array([p.price for p in points], dtype=np.float64),
    }


def _numbers(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def _column(items: Iterable[Any], field: str, dtype: Any = None) -> Any:
    out = [getattr(x, field) for x in items]
    return out if dtype is None else np.array(out, dtype=dtype)


def bars_frame(a: Analysis, bars: Bars | None = None) -> pd.DataFrame:
    """The raw bars with their MACD (see the module's notes)."""
    n = a.bars
    source = bars if bars is not None else a.source_bars
    if source is not None and len(source) != n:
        raise ValueError(f"the analysis has {n} bars, the bars given {len(source)}")
    nan = np.full(n, np.nan)
    values: dict[str, Any] = {"index": _numbers(n)}
    if source is None:
        values |= {"time": None, **dict.fromkeys(("open", "high", "low", "close", "volume"), nan)}
    else:
        values |= {
            "time": source.time,
            "open": source.open,
            "high": source.high,
            "low": source.low,
            "close": source.close,
            "volume": source.volume,
        }
    macd = a.macd
    for name in ("dif", "dea", "histogram"):
        values[name] = nan if macd is None else getattr(macd, name)
    repaired = np.zeros(n, dtype=bool)
    repaired[[r.index for r in a.repairs]] = True
    values["repaired"] = repaired
    return _frame("bars", values, a.tz, n)


def fractals_frame(a: Analysis) -> pd.DataFrame:
    fs = a.fractals
    values = {
        "fractal": _numbers(len(fs)),
        "kind": _column(fs, "kind"),
        "merged_index": _column(fs, "merged_index", np.int64),
        "index": _column(fs, "index", np.int64),
        "time": _iso_ms(_column(fs, "time")),
        "price": _column(fs, "price", np.float64),
    }
    return _frame("fractals", values, a.tz, len(fs))


def pens_frame(a: Analysis) -> pd.DataFrame:
    ps = a.pens
    values = {
        "pen": _numbers(len(ps)),
        "direction": _column(ps, "direction"),
        **_points("start", [p.start for p in ps]),
        **_points("end", [p.end for p in ps]),
        # Every pen of the document's list has ``final`` (only the forming pen lacks it).
        "final": np.array([bool(p.final) for p in ps], dtype=bool),
    }
    return _frame("pens", values, a.tz, len(ps))


def _every_degree(a: Analysis, kind: str) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """The items of ``kind`` (``segments``, ``pivots``, ``signals``) of every degree, degree 1
    first, with each row's degree and its number within its degree (from 0 at each)."""
    levels = [a.degree(1), *a.degrees]
    lists = [getattr(level, kind) for level in levels]
    sizes = [len(x) for x in lists]
    degree = np.repeat(np.array([level.degree for level in levels], dtype=np.int64), sizes)
    numbers = np.concatenate([_numbers(n) for n in sizes])
    return [x for items in lists for x in items], degree, numbers


def segments_frame(a: Analysis) -> pd.DataFrame:
    ss, degree, numbers = _every_degree(a, "segments")
    n = len(ss)
    values = {
        "degree": degree,
        "segment": numbers,
        "direction": _column(ss, "direction"),
        **_points("start", [s.start for s in ss]),
        **_points("end", [s.end for s in ss]),
        "first_pen": _column(ss, "first_pen", np.int64),
        "last_pen": _column(ss, "last_pen", np.int64),
        "confirmed": _column(ss, "confirmed", bool),
        "gap": _column(ss, "gap", bool),
    }
    return _frame("segments", values, a.tz, n)


def pivots_frame(a: Analysis) -> pd.DataFrame:
    zs, degree, numbers = _every_degree(a, "pivots")
    n = len(zs)
    values = {
        "degree": degree,
        "pivot": numbers,
        "segment": _column(zs, "segment", np.int64),
        "first_pen": _column(zs, "first_pen", np.int64),
        "last_pen": _column(zs, "last_pen", np.int64),
        **{k: _column(zs, k, np.float64) for k in ("zd", "zg", "dd", "gg")},
        **_points("start", [z.start for z in zs]),
        **_points("end", [z.end for z in zs]),
        "confirmed": _column(zs, "confirmed", bool),
    }
    return _frame("pivots", values, a.tz, n)


def signals_frame(a: Analysis) -> pd.DataFrame:
    gs, degree, numbers = _every_degree(a, "signals")
    n = len(gs)
    values = {
        "degree": degree,
        "signal": numbers,
        "type": _column(gs, "type"),
        "side": _column(gs, "side"),
        "pen": _column(gs, "pen", np.int64),
        "index": _column(gs, "index", np.int64),
        "time": _iso_ms(_column(gs, "time")),
        "price": _column(gs, "price", np.float64),
        "final": _column(gs, "final", bool),
        "pivot": _column(gs, "pivot", np.int64),
        "zd": _column(gs, "zd", np.float64),
        "zg": _column(gs, "zg", np.float64),
        **{
            k: np.array([_nan(getattr(g, k)) for g in gs], dtype=np.float64)
            for k in ("entering_strength", "leaving_strength", "ratio")
        },
        "follows": _column(gs, "follows"),
        "edge": _column(gs, "edge"),
    }
    return _frame("signals", values, a.tz, n)


def _nan(x: float | None) -> float:
    return np.nan if x is None else x


_BUILDERS: Mapping[str, Callable[[Analysis], pd.DataFrame]] = {
    "fractals": fractals_frame,
    "pens": pens_frame,
    "segments": segments_frame,
    "pivots": pivots_frame,
    "signals": signals_frame,
}


def to_frames(a: Analysis, bars: Bars | None = None) -> dict[str, pd.DataFrame]:
    """Every kind of :data:`KINDS` as its frame (``Analysis.to_frames``)."""
    check_zone(a.tz)
    out = {"bars": bars_frame(a, bars)}
    for kind, build in _BUILDERS.items():
        out[kind] = build(a)
    return out


# --- Files -------------------------------------------------------------------------------------


def file_names(fmt: FileFormat) -> dict[str, str]:
    """The file of each kind in a directory written by :func:`write_frames`."""
    return {kind: f"{kind}.{fmt}" for kind in KINDS}


def _iso_column(s: pd.Series) -> np.ndarray:
    """A tz-aware column as ISO-8601 texts with the zone's offset (``+08:00``; ``Z`` in UTC, as
    the engines write), ``.mmm`` when some value has milliseconds; NaT as empty. Vectorized: a
    zone has few distinct offsets, each formatted once."""
    valid = s.notna().to_numpy()
    wall = s.dt.tz_localize(None).to_numpy().astype("datetime64[ms]")
    utc = s.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy().astype("datetime64[ms]")
    wall_ms = wall.astype(np.int64)
    unit = "ms" if bool(np.any((wall_ms % 1000 != 0) & valid)) else "s"
    text = np.datetime_as_string(wall, unit=unit)
    if str(s.dt.tz) == UTC:
        out = np.char.add(text, "Z")
    else:
        minutes = np.where(valid, (wall_ms - utc.astype(np.int64)) // 60_000, 0)
        distinct, which = np.unique(minutes, return_inverse=True)
        offsets = np.array(
            [f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in distinct]
        )
        out = np.char.add(text, offsets[which.reshape(-1)])
    return np.where(valid, out, "").astype(object)


def _csv_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as it is written to CSV: times as ISO-8601 texts with their offset; booleans
    are written ``true``/``false`` and absent numbers (NaN) as empty cells by pyarrow's
    writer."""
    import pandas as pd
    import pyarrow as pa

    out = frame.copy()
    for name, col in frame.items():
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            out[name] = _iso_column(col)
    return pa.Table.from_pandas(out, preserve_index=False)


def _write_csv(frame: pd.DataFrame, path: str) -> None:
    import pyarrow.csv as pa_csv

    # No value of a frame holds a comma, a quote or a line break (kinds, directions, sides,
    # times, numbers), so no quotes are needed; pyarrow refuses to write one that would.
    # pyarrow quotes the header's names whatever the style: the header is written here.
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as f:
        f.write((",".join(map(str, frame.columns)) + "\n").encode())
        pa_csv.write_csv(_csv_table(frame), f, options)


def write_frames(
    frames: Mapping[str, pd.DataFrame], directory: str | os.PathLike[str], fmt: FileFormat
) -> list[Path]:
    """Writes each frame to ``directory/<kind>.<fmt>`` (the directory is made when missing;
    files of the same names are replaced, others left alone). Every file is written to a
    temporary name first and the names are swapped in only once all are written, so a failure
    while writing (a full disk, an unwritable directory) leaves no partial file and no new
    one. Returns the paths written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    names = file_names(fmt)
    staged: list[tuple[Path, Path]] = []
    try:
        for kind, frame in frames.items():
            fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{kind}.", suffix=".tmp")
            os.close(fd)
            staged.append((Path(tmp), root / names[kind]))
            if fmt == "csv":
                _write_csv(frame, tmp)
            else:
                frame.to_parquet(tmp, engine="pyarrow", index=False)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a plain open() would not
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return [final for _, final in staged]
