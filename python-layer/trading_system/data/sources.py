"""In-memory data as :class:`Bars`, and the one assembly every source ends in: columns picked
through the alias table, times by :mod:`trading_system.data.times`, prices as float64, volume
optional, a newest-first series reversed."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trading_system.data import columns as cols
from trading_system.data.bars import COLUMNS, Bars
from trading_system.data.times import (
    Place,
    arrow_of,
    check_tz,
    check_unit,
    compute,
    numpy_of,
    to_epoch_ms,
)
from trading_system.errors import DataError

I64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Options:
    """How to read a source: ``columns`` maps fields to the source's names (over the alias
    table), ``time_unit`` says what numbers in the time column are, ``tz`` is the zone of
    naive times and of every output (IANA name)."""

    columns: Mapping[str, str] = field(default_factory=dict)
    time_unit: str | None = None
    tz: str | None = None
    """None: not given; naive times are then UTC, and the output zone is the time column's own
    when it has one (a zone-aware timestamp column), else UTC."""

    @classmethod
    def of(
        cls,
        columns: Mapping[str, str] | str | None = None,
        time_unit: str | None = None,
        tz: str | None = None,
    ) -> Options:
        """Checked options; ``columns`` may be ``"time=trade_date,volume=vol"``. ValueError
        names a bad one."""
        mapping = cols.parse_mapping(columns) if isinstance(columns, str) else dict(columns or {})
        cols.check_mapping(mapping)
        return cls(mapping, check_unit(time_unit), None if tz is None else check_tz(tz))


@dataclass
class Loaded:
    """Bars and, for a file, whether the rows were reversed (to map a bar back to its line)."""

    bars: Bars
    reversed: bool = False


def assemble(
    get: Callable[[Any], Any],
    names: Sequence[Any],
    place: Place,
    options: Options,
    index: tuple[Any, Any] | None = None,
) -> Loaded:
    """Bars from a source's named columns (``get(name)`` reads one, as a pyarrow array, a numpy
    array or a pandas Series). ``index``: ``(name, values)`` of a DataFrame's index, a candidate
    for the time column."""
    candidates = list(names)
    if index is not None:
        candidates.append(index[0])
    picked = cols.pick(candidates, options.columns, place.source)
    notices: list[str] = []

    def read(f: str) -> Any:
        name = picked[f]
        return index[1] if index is not None and name is index[0] and f == "time" else get(name)

    time_name = picked["time"]
    times = _arrow(read("time"), place, str(time_name))
    zone = options.tz or _zone_of(times) or "UTC"
    time, said = to_epoch_ms(times, place, str(time_name), options.tz or "UTC", options.time_unit)
    notices += said
    values = {f: _floats(read(f), place, str(picked[f]), f) for f in COLUMNS[1:] if f in picked}
    if "volume" not in values:
        values["volume"] = np.zeros(len(time))
        notices.append("volume: the source has no volume column; every volume is 0")
    backwards = len(time) > 1 and bool(np.all(time[1:] < time[:-1]))
    if backwards:
        time = time[::-1]
        values = {f: v[::-1] for f, v in values.items()}
        notices.append("time: the rows are newest first; they were reversed (oldest first)")
    bars = Bars(time, *(values[f] for f in COLUMNS[1:]), tz=zone, notices=notices)
    return Loaded(bars, backwards)


# --- Columns as arrays ------------------------------------------------------------------------


def _zone_of(times: Any) -> str | None:
    """The IANA zone of a zone-aware timestamp column (None for others and fixed offsets)."""
    import pyarrow as pa

    t = times.type
    if pa.types.is_timestamp(t) and t.tz:
        try:
            return check_tz(t.tz)
        except ValueError:
            return None
    return None


def _arrow(values: Any, place: Place, column: str) -> Any:
    """A time column as a pyarrow array (what :func:`to_epoch_ms` reads)."""
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if type(values).__module__.split(".")[0] == "pandas":
        return pa.Array.from_pandas(values)
    a = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if a.ndim != 1:
        raise place.error(
            f"must be 1-dimensional, got shape {a.shape}", None, column, rule="array_shape"
        )
    if a.dtype.kind == "b":
        raise place.error(
            "cannot read times from a column of bool", None, column, rule="column_type"
        )
    if a.dtype.kind == "M" and np.isnat(a).any():
        i = int(np.argmax(np.isnat(a)))
        raise place.error("missing time (NaT)", i, column, rule="time_unparseable")
    if a.dtype.kind == "O":
        items = a.tolist()
        for i, x in enumerate(items):
            if isinstance(x, (bool, np.bool_)):
                raise place.error("a time cannot be a boolean", i, column, rule="time_unparseable")
            if isinstance(x, bytes):
                items[i] = x.decode("utf-8", "replace")
        try:
            return pa.array(items, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            first = _kind(items[0]) if items else ""
            i = next((i for i, x in enumerate(items) if _kind(x) != first), 0)
            raise place.error(
                f"time {items[i]!r} is not of the kind of the first row's ({items[0]!r}): "
                "write every time one way",
                i,
                column,
                rule="time_unparseable",
            ) from None
    if a.dtype.kind == "U" or a.dtype.kind == "S":
        return pa.array(a.astype(str).tolist(), pa.string())
    return arrow_of(a)


def _kind(x: Any) -> str:
    if isinstance(x, (int, np.integer)):
        return "int" if I64[0] <= int(x) <= I64[1] else "big"
    return type(x).__name__


def _number(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError("a boolean is not a number")
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            raise ValueError(f"not a number: {v!r}") from None
    if v is None:
        return math.nan
    return float(v)


def _floats(values: Any, place: Place, column: str, field: str) -> np.ndarray:
    """A price or volume column (of bar field ``field``) as float64; errors name the row."""
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return _arrow_floats(values, place, column, field)
    if type(values).__module__.split(".")[0] == "pandas":
        dtype = values.dtype
        if getattr(dtype, "kind", "O") in "fiu" and not isinstance(dtype, np.dtype):
            values = values.to_numpy(dtype="float64", na_value=np.nan)
        else:
            values = values.to_numpy()
    a = np.asarray(values)
    if a.ndim != 1:
        raise place.error(
            f"must be 1-dimensional, got shape {a.shape}",
            None,
            column,
            rule="array_shape",
            field=field,
        )
    if a.dtype.kind in "fiu":
        return a.astype(np.float64)
    if a.dtype.kind in "OUS":
        out = np.empty(len(a), dtype=np.float64)
        for i, v in enumerate(a.tolist()):
            try:
                out[i] = _number(v)
            except (ValueError, TypeError, OverflowError) as e:
                raise place.error(str(e), i, column, rule="number", field=field) from None
        return out
    raise place.error(
        f"cannot read numbers from a column of {a.dtype}",
        None,
        column,
        rule="column_type",
        field=field,
    )


def _arrow_floats(values: Any, place: Place, column: str, field: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.null_count:
        i = int(np.argmax(numpy_of(arr.is_null())))
        raise place.error("missing value (empty or null)", i, column, rule="number", field=field)
    if len(arr) == 0:
        return np.empty(0)
    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        return numpy_of(pc.cast(arr, pa.float64()))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = compute("utf8_trim_whitespace", arr)
        try:
            return numpy_of(pc.cast(s, pa.float64()))
        except pa.ArrowInvalid:
            for i, v in enumerate(s.to_pylist()):
                try:
                    pc.cast(pa.array([v]), pa.float64())
                except pa.ArrowInvalid:
                    raise place.error(
                        f"not a number: {v!r}", i, column, rule="number", field=field
                    ) from None
            raise
    raise place.error(
        f"cannot read numbers from a column of {t}", None, column, rule="column_type", field=field
    )


# --- In-memory sources ------------------------------------------------------------------------


def from_frame(df: Any, options: Options) -> Loaded:
    """A pandas DataFrame: its columns, or its DatetimeIndex (or named index) for the time. A
    yfinance frame with two column levels (field, ticker) of one ticker is read by the field
    level."""
    import pandas as pd

    place = Place("DataFrame")
    if isinstance(df.columns, pd.MultiIndex):
        df = _one_level(df, place)
    idx = df.index
    names = list(df.columns)
    index = None
    if isinstance(idx, pd.DatetimeIndex) and idx.name is None:
        # An unnamed DatetimeIndex is the time unless a column is.
        aliases = cols.table().fields
        if "time" not in options.columns and not any(
            aliases.get(cols.normalize(n)) == "time" for n in names
        ):
            index = ("<index>", pd.Series(idx))
            options = Options({**options.columns, "time": "<index>"}, options.time_unit, options.tz)
    elif idx.name is not None and not isinstance(idx, pd.RangeIndex):
        if not any(idx.name == n for n in names):  # a column of the same name is read instead
            index = (idx.name, pd.Series(idx))
    return assemble(lambda n: df[n], names, place, options, index)


def _one_level(df: Any, place: Place) -> Any:
    for level in range(df.columns.nlevels):
        aliases = cols.table().fields
        picked = [aliases.get(cols.normalize(n)) for n in df.columns.get_level_values(level)]
        others = {tuple(k for j, k in enumerate(key) if j != level) for key in df.columns.to_list()}
        if any(picked) and len(others) == 1:
            return df.droplevel([j for j in range(df.columns.nlevels) if j != level], axis=1)
    raise place.error(
        "a DataFrame with several column levels must hold one instrument (select one ticker)",
        rule="column_ambiguous",
        field=None,
    )


def from_mapping(data: Mapping[Any, Any], options: Options) -> Loaded:
    return assemble(data.__getitem__, list(data.keys()), Place("columns"), options)


def from_array(data: np.ndarray, options: Options) -> Loaded:
    if data.dtype.names:
        return assemble(data.__getitem__, list(data.dtype.names), Place("array"), options)
    if data.ndim == 2 and data.shape[1] == 6:
        columns = dict(zip(COLUMNS, data.T, strict=True))
        return assemble(columns.__getitem__, list(COLUMNS), Place("array"), options)
    raise DataError(
        f"an array of bars must be structured or of shape (n, 6), got {data.shape}",
        source="array",
        rule="array_shape",
    )


def from_rows(rows: Sequence[Any], options: Options) -> Loaded:
    """Bar rows ``(time, open, high, low, close, volume)``: ccxt's OHLCV lists are such rows."""
    place = Place("bars")
    for i, r in enumerate(rows):
        if isinstance(r, (str, bytes)) or not hasattr(r, "__len__") or len(r) != 6:
            got = (
                f"{len(r)} values"
                if hasattr(r, "__len__") and not isinstance(r, (str, bytes))
                else f"a {type(r).__name__}"
            )
            raise place.error(
                f"a bar must be (time, open, high, low, close, volume), got {got}",
                i,
                rule="row_shape",
                field=None,
            )
    if not rows:
        empty = np.empty(0)
        return Loaded(Bars(np.empty(0, dtype=np.int64), *[empty] * 5, tz=options.tz or "UTC"))
    columns: dict[str, Any] = {}
    for name, col in zip(COLUMNS, zip(*rows, strict=True), strict=True):
        kinds = set(map(type, col))
        if name != "time" and kinds <= {float, int}:
            columns[name] = np.array(col, dtype=np.float64)
        elif name == "time" and kinds == {int}:
            try:
                columns[name] = np.array(col, dtype=np.int64)
            except OverflowError:
                columns[name] = np.array(col, dtype=object)
        else:
            columns[name] = np.array(col, dtype=object)
    return assemble(columns.__getitem__, list(COLUMNS), place, options)


# --- One bar ----------------------------------------------------------------------------------


def bar_values(bar: Any) -> tuple[int, float, float, float, float, float]:
    """One bar streamed to a session (a 6-sequence or a mapping with the six fields, names as
    the alias table has them) as ``(time ms, open, high, low, close, volume)``. An integer time
    is epoch milliseconds, the engines' unit (a single bar has no column to tell its unit by);
    text and datetimes are read as in a column (naive: UTC). Raises DataError naming the
    field."""
    if type(bar) in (tuple, list) and len(bar) == 6:
        t, o, h, lo, c, v = bar
        # The common case, checked cheaply: an int time and float prices (no bool, no text).
        # Spelled out: a generator over the five values cost more than the engine's append.
        if (
            type(t) is int
            and type(o) is float
            and type(h) is float
            and type(lo) is float
            and type(c) is float
            and type(v) is float
            and I64[0] <= t <= I64[1]
        ):
            return t, o, h, lo, c, v
    place = Place("bar")
    if isinstance(bar, Mapping):
        picked = cols.pick(list(bar.keys()), None, "bar")
        values = [bar[picked[f]] if f in picked else 0.0 for f in COLUMNS]
    else:
        if isinstance(bar, (str, bytes)) or not hasattr(bar, "__len__") or len(bar) != 6:
            raise DataError(
                "a bar must be (time, open, high, low, close, volume)",
                source="bar",
                rule="row_shape",
            )
        values = list(bar)
    t = values[0]
    if isinstance(t, (bool, np.bool_)):
        raise DataError(
            "a time cannot be a boolean",
            source="bar",
            column="time",
            rule="time_unparseable",
            field="time",
        )
    if isinstance(t, (int, np.integer)):
        if not I64[0] <= int(t) <= I64[1]:
            raise DataError(
                f"time {t} is beyond the 64-bit range",
                source="bar",
                column="time",
                rule="time_unparseable",
                field="time",
            )
        time = int(t)
    elif isinstance(t, (float, np.floating)) and math.isfinite(t) and float(t).is_integer():
        time = int(t)
    else:
        ms, _ = to_epoch_ms(_arrow(np.array([t], dtype=object), place, "time"), place, "time")
        time = int(ms[0])
    out: list[float] = []
    for name, v in zip(COLUMNS[1:], values[1:], strict=True):
        try:
            out.append(_number(v))
        except (ValueError, TypeError, OverflowError) as e:
            raise DataError(str(e), source="bar", column=name, rule="number", field=name) from None
    o, h, lo, c, vol = out
    return time, o, h, lo, c, vol
