"""Bars in, columns out: every accepted form of user data becomes :class:`Bars`, columnar numpy
arrays (``time`` int64 epoch milliseconds UTC, ``open`` … ``volume`` float64).

Accepted: a pandas DataFrame (columns ``time, open, high, low, close, volume`` in any case, or a
DatetimeIndex for the time; ``timestamp``, ``datetime`` and ``date`` are accepted names for the
time column), a mapping of arrays, a numpy structured array or an ``(n, 6)`` array, a sequence of
bar rows ``(time, open, high, low, close, volume)`` (ccxt's OHLCV lists are such rows), and CSV
or Parquet files (:func:`load`, the format chosen by the extension). A time is epoch
milliseconds (an integer), an ISO-8601 string (parsed exactly as the Rust engine's
``timestamp::parse_time``), a ``datetime``/``date`` (naive means UTC) or a numpy/pandas
datetime. Prices are not checked here: the engines check them (spec §1) and name every bad bar.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trading_system._legacy_text import WHITESPACE, debug_str, parse_rust_float
from trading_system.engine.timestamp import MAX_YEAR, MIN_YEAR, format_ms
from trading_system.errors import DataError

COLUMNS = ("time", "open", "high", "low", "close", "volume")
TIME_ALIASES = ("time", "timestamp", "datetime", "date")
CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_NAMES = 20
"""How many of a source's column names a "missing column" message lists."""
MS_PER_DAY = 86_400_000
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


# --- Calendar ----------------------------------------------------------------------------------


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days from 1970-01-01 to the proleptic Gregorian date ``y-m-d`` (any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def _valid_date(y: int, m: int, d: int) -> bool:
    if not (MIN_YEAR <= y <= MAX_YEAR and 1 <= m <= 12 and d >= 1):
        return False
    if m == 2:
        leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
        return d <= (29 if leap else 28)
    return d <= (30 if m in (4, 6, 9, 11) else 31)


def format_time(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC, exactly as the Rust engine writes them:
    ``YYYY-MM-DDTHH:MM:SSZ``, with ``.mmm`` only when the milliseconds are not 0; years outside
    0..9999 carry a sign (``+10000``, ``-0001``); beyond chrono's range, the number itself."""
    return format_ms(int(ms))


# --- Parsing times as chrono does --------------------------------------------------------------

# Items of chrono's strftime parser: ("n", field, width) a number (leading whitespace allowed,
# 1..width digits; the year is signed and then unbounded), ("l", text) a literal, ("s",)
# optional whitespace, ("f",) an optional "." and 1..9 fraction digits (more are skipped).
_DATE = (("n", "year", 4), ("l", "-"), ("n", "month", 2), ("l", "-"), ("n", "day", 2))
_HMS = (("n", "hour", 2), ("l", ":"), ("n", "minute", 2), ("l", ":"), ("n", "second", 2), ("f",))
_FORMATS = (
    (*_DATE, ("l", "T"), *_HMS),  # %Y-%m-%dT%H:%M:%S%.f
    (*_DATE, ("s",), *_HMS),  # %Y-%m-%d %H:%M:%S%.f
    (*_DATE, ("l", "T"), ("n", "hour", 2), ("l", ":"), ("n", "minute", 2)),  # %Y-%m-%dT%H:%M
)
_LIMITS = {
    "year": (-(2**31), 2**31 - 1),
    "month": (1, 12),
    "day": (1, 31),
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 60),
}
_ASCII_DIGITS = "0123456789"


def _digits(s: str, pos: int, most: int) -> tuple[int, int] | None:
    """chrono's ``scan::number``: 1..``most`` ASCII digits at ``pos`` fitting an i64."""
    end = pos
    while end < len(s) and end - pos < most and s[end] in _ASCII_DIGITS:
        end += 1
    if end == pos:
        return None
    v = int(s[pos:end])
    return (v, end) if v <= I64_MAX else None


def _fraction(s: str, pos: int) -> tuple[int, int] | None:
    """chrono's ``scan::nanosecond`` after the dot: nanoseconds and the position after it."""
    got = _digits(s, pos, 9)
    if got is None:
        return None
    v, end = got
    nano = v * 10 ** (9 - (end - pos))
    while end < len(s) and s[end] in _ASCII_DIGITS:
        end += 1
    return nano, end


def _scan(s: str, items: tuple[tuple[Any, ...], ...]) -> dict[str, int] | None:
    """Fields parsed by ``items`` from the whole of ``s`` (None when it does not match)."""
    out: dict[str, int] = {}
    pos = 0
    for item in items:
        if item[0] == "l":
            if not s.startswith(item[1], pos):
                return None
            pos += len(item[1])
        elif item[0] == "s":
            pos = len(s) - len(s[pos:].lstrip(WHITESPACE))
        elif item[0] == "f":
            if s.startswith(".", pos):
                got = _fraction(s, pos + 1)
                if got is None:
                    return None
                out["nano"], pos = got
        else:
            _, field, width = item
            pos = len(s) - len(s[pos:].lstrip(WHITESPACE))
            sign = s[pos : pos + 1]
            if field == "year" and sign in ("+", "-"):
                got = _digits(s, pos + 1, len(s))
                if got is not None and sign == "-":
                    got = (-got[0], got[1])
            else:
                got = _digits(s, pos, width)
            if got is None:
                return None
            value, pos = got
            lo, hi = _LIMITS[field]
            if not lo <= value <= hi:
                return None
            out[field] = value
    return out if pos == len(s) else None


def _naive_ms(f: dict[str, int]) -> int | None:
    """Milliseconds of parsed fields read as UTC; a second of 60 is a leap second (chrono adds
    it as one more second)."""
    y, m, d = f["year"], f["month"], f["day"]
    if not _valid_date(y, m, d):
        return None
    sec, nano = f.get("second", 0), f.get("nano", 0)
    if sec == 60:
        sec, nano = 59, nano + 1_000_000_000
    secs = (f.get("hour", 0) * 60 + f.get("minute", 0)) * 60 + sec
    return _days_from_civil(y, m, d) * MS_PER_DAY + secs * 1000 + nano // 1_000_000


def _rfc3339(s: str) -> int | None:
    """chrono's ``DateTime::parse_from_rfc3339``: ``YYYY-MM-DD[Tt ]HH:MM:SS[.f](Z|±HH:MM)``."""
    head = s[:19]
    if len(s.encode("utf-8")) < 19 or not head.isascii():
        return None
    digits = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)
    if any(head[i] not in _ASCII_DIGITS for i in digits):
        return None
    if head[4] != "-" or head[7] != "-" or head[10] not in "Tt " or head[13] != ":":
        return None
    if head[16] != ":":
        return None
    f = {
        "year": int(head[0:4]),
        "month": int(head[5:7]),
        "day": int(head[8:10]),
        "hour": int(head[11:13]),
        "minute": int(head[14:16]),
        "second": int(head[17:19]),
    }
    if f["hour"] > 23 or f["minute"] > 59 or f["second"] > 60:
        return None
    rest = s[19:]
    if rest.startswith("."):
        got = _fraction(rest, 1)
        if got is None:
            return None
        f["nano"], end = got
        rest = rest[end:]
    local = _naive_ms(f)
    if local is None:
        return None
    if rest[:1] in ("Z", "z"):
        return local if len(rest) == 1 else None
    if rest[:1] not in ("+", "-", "\u2212") or len(rest) != 6 or rest[3] != ":":
        return None
    hh, mm = rest[1:3], rest[4:6]
    if any(c not in _ASCII_DIGITS for c in hh + mm) or mm[0] > "5":
        return None
    offset = int(hh) * 3600 + int(mm) * 60
    if offset >= 86_400:
        return None
    return local - (offset if rest[0] == "+" else -offset) * 1000


_FAST = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z?)?",
    re.ASCII,
)


def parse_time(text: str) -> int:
    """A time given as epoch milliseconds, an ISO date (00:00 UTC) or an ISO date-time (``T`` or
    space separated, optional fraction, ``Z``, an offset, or nothing meaning UTC) as epoch
    milliseconds. Mirrors the Rust engine's ``timestamp::parse_time`` exactly, including
    chrono's leniencies (``2015-1-5``, a leap second ``:60``); raises ValueError with its
    message."""
    s = text.strip(WHITESPACE)
    if s and all(c in "0123456789-" for c in s) and "-" not in s[1:]:
        if s == "-":
            raise ValueError(
                f"bad epoch milliseconds {debug_str(s)}: invalid digit found in string"
            )
        v = int(s)
        if not I64_MIN <= v <= I64_MAX:
            why = "too large" if v > 0 else "too small"
            raise ValueError(
                f"bad epoch milliseconds {debug_str(s)}: number {why} to fit in target type"
            )
        return v
    m = _FAST.fullmatch(s)
    if m is not None:
        # The common shapes, computed directly (the general path below gives the same value).
        y, mo, d, hh, mi, ss, frac = m.groups()
        if _valid_date(int(y), int(mo), int(d)) and (
            hh is None or (int(hh) < 24 and int(mi) < 60 and int(ss) < 60)
        ):
            ms = _days_from_civil(int(y), int(mo), int(d)) * MS_PER_DAY
            if hh is not None:
                ms += ((int(hh) * 60 + int(mi)) * 60 + int(ss)) * 1000
                ms += int((frac or "0")[:3].ljust(3, "0"))
            return ms
    found = _rfc3339(s)
    for items in _FORMATS:
        if found is not None:
            break
        fields = _scan(s, items)
        found = None if fields is None else _naive_ms(fields)
    if found is None:
        date = _scan(s, _DATE)
        found = None if date is None else _naive_ms(date)
    if found is not None:
        return found
    raise ValueError(
        f"unparsable time {debug_str(s)}: expected epoch milliseconds, YYYY-MM-DD or an "
        "ISO-8601 date-time"
    )


_EPOCH = dt.datetime(1970, 1, 1)


def to_ms(value: Any) -> int:
    """One time as epoch milliseconds: an integer (ms), an integral float, an ISO-8601 string,
    a ``datetime`` (naive means UTC), a ``date`` (00:00 UTC), a ``numpy.datetime64`` or a pandas
    Timestamp. Raises ValueError or TypeError."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("a time cannot be a boolean")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise ValueError(f"time {value!r} is not a whole number of milliseconds")
        return int(value)
    if isinstance(value, str):
        return parse_time(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        delta: dt.timedelta = value.replace(tzinfo=None) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if isinstance(value, dt.date):
        return _days_from_civil(value.year, value.month, value.day) * MS_PER_DAY
    if isinstance(value, np.datetime64):
        ms: int = _datetime64_to_ms(np.asarray([value]), "time").tolist()[0]
        return ms
    raise TypeError(f"cannot read a time from {type(value).__name__}")


# --- Columns -----------------------------------------------------------------------------------

_PER_MS = {"us": 10**3, "ns": 10**6, "ps": 10**9, "fs": 10**12, "as": 10**15}


def _datetime64_to_ms(a: np.ndarray, source: str) -> np.ndarray:
    nat = np.isnat(a)
    if nat.any():
        raise DataError("time is missing (NaT)", source=source, index=int(np.argmax(nat)))
    unit, count = np.datetime_data(a.dtype)
    if unit in _PER_MS:
        # Finer than milliseconds: floor, as chrono's timestamp_millis does.
        ticks = a.view(np.int64) * count if count != 1 else a.view(np.int64)
        return np.floor_divide(ticks, _PER_MS[unit])
    return a.astype("datetime64[ms]").view(np.int64)


def _time_column(values: Any, source: str) -> np.ndarray:
    """A column of times as int64 epoch milliseconds; errors name the row."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise DataError(
            f"the time column must be 1-dimensional, got shape {a.shape}", source=source
        )
    kind = a.dtype.kind
    if kind == "M":
        return _datetime64_to_ms(a, source)
    if kind in "iu":
        if kind == "u" and a.size and int(a.max()) > I64_MAX:
            bad = int(np.argmax(a > I64_MAX))
            raise DataError(
                "time is beyond the int64 range", source=source, index=bad, column="time"
            )
        return a.astype(np.int64)
    if kind == "f":
        ok = np.isfinite(a) & (np.floor(a) == a)
        if not ok.all():
            bad = int(np.argmax(~ok))
            raise DataError(
                f"time {a[bad].item()!r} is not a whole number of milliseconds",
                source=source,
                index=bad,
                column="time",
            )
        return a.astype(np.int64)
    if kind in "OUS":
        out = np.empty(len(a), dtype=np.int64)
        for i, v in enumerate(a.tolist() if kind != "O" else a):
            try:
                if isinstance(v, bytes):
                    v = v.decode("utf-8")
                out[i] = to_ms(v)
            except (ValueError, TypeError, OverflowError) as e:
                raise DataError(str(e), source=source, index=i, column="time") from None
        return out
    raise DataError(f"cannot read times from a column of {a.dtype}", source=source, column="time")


def _number(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError("a boolean is not a number")
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, str):
        x = parse_rust_float(v.strip(WHITESPACE))
        if x is None:
            raise ValueError(f"not a number: {debug_str(v)}")
        return x
    if v is None:
        return math.nan
    return float(v)


def _float_column(values: Any, name: str, source: str) -> np.ndarray:
    """A column of prices or volumes as float64; errors name the row."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise DataError(f"must be 1-dimensional, got shape {a.shape}", source=source, column=name)
    kind = a.dtype.kind
    if kind in "fiu":
        return a.astype(np.float64)
    if kind in "OUS":
        out = np.empty(len(a), dtype=np.float64)
        for i, v in enumerate(a.tolist()):
            try:
                out[i] = _number(v)
            except (ValueError, TypeError, OverflowError) as e:
                raise DataError(str(e), source=source, index=i, column=name) from None
        return out
    raise DataError(f"cannot read numbers from a column of {a.dtype}", source=source, column=name)


def _readonly(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, slots=True, eq=False)
class Bars:
    """K-line bars (K线) in columns: ``time`` int64 epoch milliseconds (UTC), ``open``, ``high``,
    ``low``, ``close``, ``volume`` float64, all of one length. The arrays are read-only views."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for name in COLUMNS:
            a = np.asarray(getattr(self, name))
            if name == "time":
                a = a if a.dtype == np.int64 else _time_column(a, "bars")
            else:
                a = a if a.dtype == np.float64 else _float_column(a, name, "bars")
            a = np.ascontiguousarray(a)
            if a.ndim != 1:
                raise DataError(f"must be 1-dimensional, got shape {a.shape}", column=name)
            if n is not None and len(a) != n:
                raise DataError(f"has {len(a)} values, the time column {n}", column=name)
            n = len(a)
            object.__setattr__(self, name, _readonly(a))

    def __len__(self) -> int:
        return len(self.time)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bars):
            return NotImplemented
        return bool(np.array_equal(self.time, other.time)) and all(
            np.array_equal(getattr(self, c), getattr(other, c), equal_nan=True) for c in COLUMNS[1:]
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not len(self):
            return "Bars(0 bars)"
        first, last = format_time(self.time[0]), format_time(self.time[-1])
        return f"Bars({len(self)} bars, {first} .. {last})"

    def rows(self) -> Iterator[tuple[int, float, float, float, float, float]]:
        """The bars one by one as ``(time, open, high, low, close, volume)`` tuples."""
        return zip(
            self.time.tolist(),
            self.open.tolist(),
            self.high.tolist(),
            self.low.tolist(),
            self.close.tolist(),
            self.volume.tolist(),
            strict=True,
        )


# --- Sources -----------------------------------------------------------------------------------


def _pick(names: Sequence[Any], wanted: str) -> Any:
    """The first name equal to ``wanted`` ignoring ASCII case, or None."""
    for n in names:
        if isinstance(n, str) and n.isascii() and n.lower() == wanted:
            return n
    return None


def _missing_columns(missing: Sequence[str], names: Sequence[Any]) -> str:
    """The reason for missing columns: which ones, the ones needed and the ones there are."""
    listed = ", ".join(debug_str(c) for c in missing)
    if "time" in missing:
        listed += " (or timestamp, datetime, date)"
    found = [str(n) for n in names[:MAX_NAMES]]
    if len(names) > MAX_NAMES:
        found.append(f"… ({len(names)} in all)")
    return (
        f"missing column{'s' if len(missing) > 1 else ''} {listed} (need {','.join(COLUMNS)}; "
        f"found: {', '.join(found) if found else 'no columns'})"
    )


def _from_columns(get: Any, names: Sequence[Any], source: str, index_time: Any = None) -> Bars:
    """Bars from named columns (``get(name)`` reads one) picked by name, ignoring case; errors
    name every missing column and the columns there are."""
    time_name = next((n for a in TIME_ALIASES if (n := _pick(names, a)) is not None), None)
    picked = {c: _pick(names, c) for c in COLUMNS[1:]}
    missing = [c for c, n in picked.items() if n is None]
    if time_name is None and index_time is None:
        missing.insert(0, "time")
    if missing:
        raise DataError(_missing_columns(missing, names), source=source)
    cols = {c: _float_column(get(name), c, source) for c, name in picked.items()}
    time = _time_column(get(time_name) if time_name is not None else index_time, source)
    return Bars(time=time, **cols)


def _frame_column(series: Any) -> Any:
    """A pandas column as numpy: timezone-aware times in UTC, nullable values as NaN."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "fiub":
        if series.isna().any():
            return series.to_numpy(dtype="float64", na_value=np.nan)
        return series.to_numpy(dtype=getattr(dtype, "numpy_dtype", None))
    return series.to_numpy()


def _from_frame(df: Any) -> Bars:
    import pandas as pd

    names = list(df.columns)
    index_time = None
    if isinstance(df.index, pd.DatetimeIndex):
        idx = df.index
        index_time = (idx.tz_convert("UTC").tz_localize(None) if idx.tz else idx).to_numpy()
    return _from_columns(lambda n: _frame_column(df[n]), names, "DataFrame", index_time)


def _from_rows(rows: Sequence[Any], source: str) -> Bars:
    for i, r in enumerate(rows):
        if isinstance(r, (str, bytes)) or not hasattr(r, "__len__") or len(r) != 6:
            got = (
                f"{len(r)} values"
                if hasattr(r, "__len__") and not isinstance(r, (str, bytes))
                else f"a {type(r).__name__}"
            )
            raise DataError(
                f"a bar must be (time, open, high, low, close, volume), got {got}",
                source=source,
                index=i,
            )
    if not rows:
        empty = np.empty(0)
        return Bars(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
    columns = list(zip(*rows, strict=True))
    times = columns[0]
    if all(type(t) is int for t in times):
        try:
            time = np.array(times, dtype=np.int64)
        except OverflowError:
            time = _time_column(np.array(times, dtype=object), source)
    else:
        time = _time_column(np.array(times, dtype=object), source)
    out = {}
    for name, col in zip(COLUMNS[1:], columns[1:], strict=True):
        kinds = set(map(type, col))
        if kinds <= {float, int}:
            out[name] = np.array(col, dtype=np.float64)
        else:
            out[name] = _float_column(np.array(col, dtype=object), name, source)
    return Bars(time=time, **out)


def to_bars(data: Any) -> Bars:
    """Any accepted form of bars as :class:`Bars` (see the module's documentation). A ``str``
    or path is read as a file by :func:`load` (CSV or Parquet, by its extension)."""
    if isinstance(data, Bars):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load(data)
    if type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "columns"):
        return _from_frame(data)
    if isinstance(data, Mapping):
        return _from_columns(data.__getitem__, list(data.keys()), "columns")
    if isinstance(data, np.ndarray):
        if data.dtype.names:
            return _from_columns(data.__getitem__, list(data.dtype.names), "array")
        if data.ndim == 2 and data.shape[1] == 6:
            return _from_rows(data.tolist(), "array")
        raise DataError(
            f"an array of bars must be structured or of shape (n, 6), got {data.shape}",
            source="array",
        )
    if isinstance(data, Sequence) or hasattr(data, "__iter__"):
        return _from_rows(list(data), "bars")
    raise TypeError(f"cannot read bars from {type(data).__name__}")


def bar_values(bar: Any) -> tuple[int, float, float, float, float, float]:
    """One bar (a 6-sequence or a mapping with the six keys) as ``(time ms, open, high, low,
    close, volume)``; raises DataError naming the field."""
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
            and I64_MIN <= t <= I64_MAX
        ):
            return t, o, h, lo, c, v
    if isinstance(bar, Mapping):
        names = list(bar.keys())
        time_name = next((n for a in TIME_ALIASES if (n := _pick(names, a)) is not None), None)
        picked = [time_name] + [_pick(names, c) for c in COLUMNS[1:]]
        missing = [c for c, n in zip(COLUMNS, picked, strict=True) if n is None]
        if missing:
            raise DataError(f"missing {', '.join(missing)}", source="bar")
        values = [bar[n] for n in picked]
    else:
        if isinstance(bar, (str, bytes)) or not hasattr(bar, "__len__") or len(bar) != 6:
            raise DataError("a bar must be (time, open, high, low, close, volume)", source="bar")
        values = list(bar)
    try:
        time = to_ms(values[0])
        if not I64_MIN <= time <= I64_MAX:
            raise ValueError(f"time {time} is beyond the int64 range")
    except (ValueError, TypeError, OverflowError) as e:
        raise DataError(str(e), source="bar", column="time") from None
    out: list[float] = []
    for name, v in zip(COLUMNS[1:], values[1:], strict=True):
        try:
            out.append(_number(v))
        except (ValueError, TypeError, OverflowError) as e:
            raise DataError(str(e), source="bar", column=name) from None
    o, h, lo, c, vol = out
    return time, o, h, lo, c, vol


# --- CSV ---------------------------------------------------------------------------------------

_INT_COLUMN = re.compile(r"(?:-?[0-9]+\n)*-?[0-9]+", re.ASCII)
_FLOAT = r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
_FLOAT_COLUMN = re.compile(rf"(?:{_FLOAT}\n)*{_FLOAT}", re.IGNORECASE | re.ASCII)


def read_csv_text(text: str, source: str = "<csv>") -> tuple[Bars, list[int]]:
    """Bars from CSV text with the header ``time,open,high,low,close,volume`` (any order and
    case, other columns ignored, fields trimmed, blank lines skipped), and each bar's line
    number (1-based). Errors name the line and the column, as the Rust engine's do."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header: list[str] | None = None
    header_line = 1
    rows: list[list[str]] = []
    lines: list[int] = []
    last = 0
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise DataError(f"unreadable CSV row: {e}", source=source, line=last + 1) from None
        start, last = last + 1, reader.line_num
        if not rec:
            continue  # a blank line
        fields = [f.strip(WHITESPACE) for f in rec]
        if header is None:
            header, header_line = fields, start
            continue
        if len(fields) != len(header):
            raise DataError(
                f"unreadable CSV row: found {len(fields)} fields, the header has {len(header)}",
                source=source,
                line=start,
            )
        rows.append(fields)
        lines.append(start)
    at = []
    for name in COLUMNS:
        k = next((i for i, h in enumerate(header or []) if h.isascii() and h.lower() == name), None)
        if k is None:
            raise DataError(
                f"missing column {debug_str(name)} (need {','.join(COLUMNS)})",
                source=source,
                line=header_line,
            )
        at.append(k)
    columns = [[r[k] for r in rows] for k in at]
    time = _csv_times(columns[0], lines, source)
    values = {
        name: _csv_numbers(col, name, lines, source)
        for name, col in zip(COLUMNS[1:], columns[1:], strict=True)
    }
    return Bars(time=time, **values), lines


def _csv_times(col: list[str], lines: list[int], source: str) -> np.ndarray:
    joined = "\n".join(col)
    # One regex pass over the whole column; the count rules out fields holding a newline.
    if col and joined.count("\n") == len(col) - 1 and _INT_COLUMN.fullmatch(joined):
        try:
            return np.array(list(map(int, col)), dtype=np.int64)
        except OverflowError:
            pass  # a value beyond i64: the loop below names it
    out = np.empty(len(col), dtype=np.int64)
    for i, text in enumerate(col):
        try:
            out[i] = parse_time(text)
        except ValueError as e:
            raise DataError(str(e), source=source, line=lines[i], column="time") from None
    return out


def _csv_numbers(col: list[str], name: str, lines: list[int], source: str) -> np.ndarray:
    if not col:
        return np.empty(0)
    joined = "\n".join(col)
    if joined.count("\n") == len(col) - 1 and _FLOAT_COLUMN.fullmatch(joined):
        return np.array(list(map(float, col)), dtype=np.float64)
    out = np.empty(len(col), dtype=np.float64)
    for i, text in enumerate(col):
        x = parse_rust_float(text)
        if x is None:
            raise DataError(
                f"not a number: {debug_str(text)}", source=source, line=lines[i], column=name
            )
        out[i] = x
    return out


def load_csv_with_lines(path: str | os.PathLike[str]) -> tuple[Bars, list[int]]:
    """:func:`load_csv` and each bar's line number in the file."""
    source = os.fspath(path)
    raw = Path(path).read_bytes()  # a missing file is an OSError, not bad data
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError("not UTF-8 text", source=source, line=line) from None
    return read_csv_text(text, source)


def load_csv(path: str | os.PathLike[str]) -> Bars:
    """Reads bars from a CSV file: header ``time,open,high,low,close,volume``; ``time`` as epoch
    milliseconds, an ISO date (00:00 UTC) or an ISO date-time. Raises :class:`DataError` naming
    the file, the line and the column (missing columns, an unparsable time or number, a row
    with the wrong number of fields)."""
    return load_csv_with_lines(path)[0]


# --- Files: one loader for CSV and Parquet -----------------------------------------------------


def file_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"``, by the file's extension in any case (``.csv``, ``.txt``;
    ``.parquet``, ``.pq``); any other is a :class:`DataError` naming the path and these."""
    suffix = Path(path).suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    what = f"extension {debug_str(suffix)}" if suffix else "no extension"
    raise DataError(
        f"unknown file type ({what}): expected .csv or .txt (CSV), .parquet or .pq (Parquet)",
        source=os.fspath(path),
    )


def load_with_lines(path: str | os.PathLike[str]) -> tuple[Bars, list[int]]:
    """:func:`load` and where each bar is in the file: its 1-based line in a CSV file, its
    1-based row in a Parquet file (the file's errors say "line N" and "row N" likewise)."""
    if file_format(path) == "parquet":
        return _parquet_with_rows(path)
    return load_csv_with_lines(path)


def load(path: str | os.PathLike[str]) -> Bars:
    """Reads bars from a file, its format chosen by the extension (:func:`file_format`): CSV
    (:func:`load_csv`) or Parquet. A Parquet file's columns are found as a DataFrame's are
    (``time, open, high, low, close, volume`` in any case, ``timestamp``/``datetime``/``date``
    for the time, or the DatetimeIndex pandas stored; other columns are ignored); its time is
    epoch milliseconds (integers), a timestamp of any unit (with a time zone, or none meaning
    UTC), a date, or ISO-8601 text read by :func:`parse_time`; prices are numbers or numeric
    text. Raises :class:`DataError` naming the file and the line (CSV) or the 1-based row
    (Parquet) and the column: missing columns (with those the file has), an unparsable time, a
    value that is not a number, a missing value (null), an empty or non-Parquet file. A file
    that cannot be opened is an OSError."""
    return load_with_lines(path)[0]


def _pandas_index(schema: Any) -> str | None:
    """The column holding the index pandas stored with the table (None when there is none)."""
    meta = schema.pandas_metadata or {}
    index = meta.get("index_columns") or []
    first = index[0] if len(index) == 1 else None
    return first if isinstance(first, str) and first in schema.names else None


def _arrow_values(col: Any, column: str) -> np.ndarray:
    """An Arrow column as numpy (times with a zone in UTC); a null is an error naming its row
    (``index``, 0-based, turned into the file's row by the caller)."""
    import pyarrow as pa

    if col.null_count:
        first = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
        raise DataError("missing value (null)", index=first, column=column)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.to_numpy()


def _parquet_with_rows(path: str | os.PathLike[str]) -> tuple[Bars, list[int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = os.fspath(path)
    with pa.OSFile(source) as f:  # a file that cannot be opened is an OSError, not bad data
        if f.size() == 0:
            raise DataError("empty file (0 bytes), not a Parquet file", source=source)
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"not a Parquet file ({e})", source=source) from None
        names = pf.schema_arrow.names

        def get(name: str) -> np.ndarray:
            column = name.lower() if name.lower() in COLUMNS else "time"
            try:
                values = pf.read(columns=[name]).column(0)
            except (pa.ArrowException, OSError) as e:
                raise DataError(f"unreadable column: {e}", source=source, column=name) from None
            return _arrow_values(values, column)

        try:
            index_time = None
            index_name = _pandas_index(pf.schema_arrow)
            if index_name and all(_pick(names, a) is None for a in TIME_ALIASES):
                index_time = get(index_name)
            bars = _from_columns(get, names, source, index_time)
        except DataError as e:
            if e.index is None:
                raise
            # In-memory errors count rows from 0; a file's rows are counted from 1.
            raise DataError(e.reason, source=source, row=e.index + 1, column=e.column) from None
    return bars, list(range(1, len(bars) + 1))
