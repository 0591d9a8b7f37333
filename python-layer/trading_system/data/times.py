"""Times, never guessed (docs/DATA.md, "Times"): a time column as int64 epoch milliseconds UTC.

A column is read as a whole, one way, by Arrow's own parsers and numpy's calendar:

- timestamps (numpy, pandas, Arrow; with a zone: that instant; naive: wall time in ``tz``) and
  dates (that day, 00:00 in ``tz``);
- text: ISO dates and date-times (``T`` or a space, ``/`` or ``-`` in the date, optional
  fraction), with an offset (``Z``, ``+08:00``, ``-0400``: that instant) or without (wall time
  in ``tz``), and ``YYYYMMDD``; a column of digits only is read as numbers;
- numbers (integers or integral floats): ``YYYYMMDD`` when every value is a valid date in
  1971..2100, else epoch seconds, milliseconds, microseconds or nanoseconds, the one unit whose
  reading of every value falls in 1971..2100 (the four ranges do not overlap); a notice names
  the unit. ``unit`` (``--time-unit``) says it instead: ``s``, ``ms``, ``us``, ``ns`` or
  ``date``, and then any year from 1 to 9999 is accepted, as for text.

Anything else is a :class:`~trading_system.errors.DataError` naming the column, the first
offending row (through :class:`Place`), the value as written and how to say what it is.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trading_system.engine.timestamp import format_ms
from trading_system.errors import DataError, DataRule

if TYPE_CHECKING:
    import pyarrow as pa

UNITS = ("s", "ms", "us", "ns", "date")
"""What ``--time-unit`` may say."""
UNIT_NAMES = {
    "s": "epoch seconds",
    "ms": "epoch milliseconds",
    "us": "epoch microseconds",
    "ns": "epoch nanoseconds",
    "date": "YYYYMMDD dates",
}
TICKS_PER_S = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
MS_PER_DAY = 86_400_000

# Seconds of the ranges: what a number read by magnitude must fall in (1971-01-01 up to
# 2101-01-01, exclusive), and what any time must fall in (years 1 to 9999, the engines' text).
GUESS_S = (31_536_000, 4_133_980_800)
ENGINE_S = (-62_135_596_800, 253_402_300_800)
I64 = (-(2**63), 2**63 - 1)

UNIT_HINT = "say what it is with --time-unit s|ms|us|ns|date (Python: time_unit=)"
TZ_HINT = "give the zone with --tz (Python: tz=), or write the times with an offset"


def check_tz(tz: str) -> str:
    """``tz`` when it is an IANA zone name (``UTC``, ``Asia/Shanghai``); ValueError otherwise."""
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as e:
        raise ValueError(f"unknown time zone {tz!r} (an IANA name such as Asia/Shanghai)") from e
    return tz


def check_unit(unit: str | None) -> str | None:
    if unit is not None and unit not in UNITS:
        raise ValueError(f"unknown time unit {unit!r} (one of {', '.join(UNITS)})")
    return unit


def format_time(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC, as the engines write them (``…T01:31:00Z``)."""
    return format_ms(int(ms))


# --- Where a row is -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """How errors name a row of one source: ``kind`` ``"line"`` (a text file: ``at(i)`` is the
    physical line of row ``i``), ``"row"`` (a Parquet file, 1-based) or ``"index"`` (in-memory
    data, 0-based)."""

    source: str | None
    kind: str = "index"
    at: Callable[[int], int] | None = None

    def position(self, i: int) -> int:
        if self.at is not None:
            return self.at(i)
        return i + 1 if self.kind == "row" else i

    def error(
        self,
        reason: str,
        i: int | None = None,
        column: str | None = None,
        hint: str | None = None,
        *,
        rule: DataRule,
        field: str | None = "time",
    ) -> DataError:
        """The error at row ``i`` (None: the whole column) of ``column`` (the source's name),
        breaking ``rule`` (docs/DATA.md, "Errors") on bar field ``field``."""
        where: dict[str, int] = {}
        if i is not None:
            where[self.kind] = self.position(i)
        return DataError(
            reason, source=self.source, column=column, hint=hint, rule=rule, field=field, **where
        )


# --- The column ---------------------------------------------------------------------------------


def numpy_of(arr: Any) -> np.ndarray:
    """A null-free Arrow array of fixed-width values as numpy, read from its data buffer
    (pyarrow's ``to_numpy`` imports pandas, a long import for the command line): numbers
    as they are, times as their int64 ticks, booleans through uint8."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    boolean = pa.types.is_boolean(t)
    if boolean:
        arr, t = arr.cast(pa.uint8()), pa.uint8()
    if pa.types.is_timestamp(t) or pa.types.is_date64(t):
        arr, t = arr.view(pa.int64()), pa.int64()
    dtype = np.dtype(t.to_pandas_dtype())
    if len(arr) == 0:
        return np.empty(0, dtype=dtype)
    data = arr.buffers()[1]
    out = np.frombuffer(data, dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)
    return out.astype(bool) if boolean else out


def arrow_of(a: np.ndarray) -> Any:
    """A numpy array of numbers or datetime64 as an Arrow array over the same memory (without
    pandas, which ``pyarrow.array`` imports for numpy input)."""
    import pyarrow as pa

    a = np.ascontiguousarray(a)
    if a.dtype.kind == "M":
        unit, count = np.datetime_data(a.dtype)
        if unit in ("s", "ms", "us", "ns") and count == 1:
            return arrow_of(a.view(np.int64)).view(pa.timestamp(unit))
        return arrow_of(a.astype("datetime64[ns]"))
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    t = pa.from_numpy_dtype(a.dtype)
    return pa.Array.from_buffers(t, len(a), [None, pa.py_buffer(a)])


def compute(name: str, *args: Any, options: Any = None) -> Any:
    """An Arrow compute function by name (pyarrow generates most of them at import, so type
    checkers do not see them as attributes)."""
    import pyarrow.compute as pc

    return pc.call_function(name, list(args), options)


def _matches(s: Any, pattern: str) -> Any:
    import pyarrow.compute as pc

    return compute("match_substring_regex", s, options=pc.MatchSubstringOptions(pattern))


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _shown(value: Any) -> str:
    return repr(value.as_py() if hasattr(value, "as_py") else value)


def to_epoch_ms(
    values: pa.Array | pa.ChunkedArray,
    place: Place,
    column: str,
    tz: str = "UTC",
    unit: str | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The column as int64 epoch milliseconds UTC and the notices its reading gave (the unit a
    number column was read in). ``column`` is the name errors give (the source's own)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.null_count:
        i = _first(numpy_of(arr.is_null()))
        raise place.error("missing time (empty or null)", i, column, rule="time_unparseable")
    if len(arr) == 0:
        return np.empty(0, dtype=np.int64), []
    t = arr.type
    if pa.types.is_timestamp(t):
        ticks = numpy_of(arr)
        ms = _floor_ms(ticks, t.unit)
        if t.tz is None:
            ms = _localize(ms, tz, place, column, arr)
        return _in_range(ms, ENGINE_S, place, column, arr), []
    if pa.types.is_date32(t) or pa.types.is_date64(t):
        ms = numpy_of(pc.cast(arr, pa.date64()))
        return _in_range(_localize(ms, tz, place, column, arr), ENGINE_S, place, column, arr), []
    if pa.types.is_integer(t):
        return _numbers(arr, place, column, tz, unit)
    if pa.types.is_floating(t):
        f = numpy_of(arr)
        bad = ~(np.isfinite(f) & (np.floor(f) == f) & (np.abs(f) < 2.0**63))
        if bad.any():
            i = _first(bad)
            raise place.error(
                f"time {float(f[i])!r} is not a whole number",
                i,
                column,
                UNIT_HINT,
                rule="time_unparseable",
            )
        return _numbers(arrow_of(f.astype(np.int64)), place, column, tz, unit)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _text(arr, place, column, tz, unit)
    raise place.error(f"cannot read times from a column of {t}", None, column, rule="column_type")


def _floor_ms(ticks: np.ndarray, unit: str) -> np.ndarray:
    per_ms = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}[unit]
    if per_ms is None:
        return ticks.astype(np.int64) * 1000
    return ticks.astype(np.int64) if per_ms == 1 else np.floor_divide(ticks, per_ms)


def _localize(
    ms: np.ndarray, tz: str, place: Place, column: str, arr: Any, idx: np.ndarray | None = None
) -> np.ndarray:
    """Wall times (naive epoch milliseconds) in ``tz`` as instants; a wall time the zone skips
    or repeats (a daylight-saving change) is an error naming its row (``idx[i]`` of ``arr``
    when ``ms`` is a part of the column)."""
    if tz == "UTC" or not len(ms):
        return ms
    import pyarrow as pa
    import pyarrow.compute as pc

    naive = arrow_of(ms).view(pa.timestamp("ms"))
    early, late = (
        compute(
            "assume_timezone",
            naive,
            options=pc.AssumeTimezoneOptions(tz, ambiguous=way, nonexistent=way),
        )
        for way in ("earliest", "latest")
    )
    a = numpy_of(early)
    b = numpy_of(late)
    if not np.array_equal(a, b):
        i = _first(a != b)
        i = i if idx is None else int(idx[i])
        raise place.error(
            f"time {_shown(arr[i])} does not exist or happens twice in {tz} (a daylight-saving "
            "change)",
            i,
            column,
            TZ_HINT,
            rule="time_zone",
        )
    return a


def _in_range(
    ms: np.ndarray, seconds: tuple[int, int], place: Place, column: str, arr: Any
) -> np.ndarray:
    lo, hi = seconds[0] * 1000, seconds[1] * 1000
    bad = (ms < lo) | (ms >= hi)
    if bad.any():
        i = _first(bad)
        raise place.error(
            f"time {_shown(arr[i])} is {format_time(ms[i])}, outside years 1..9999",
            i,
            column,
            rule="time_range",
        )
    return ms


# --- Numbers ------------------------------------------------------------------------------------


def _yyyymmdd(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each integer is a valid ``YYYYMMDD`` date (years 1..9999), and its day number
    (days since 1970-01-01; meaningless where not valid)."""
    y, m, d = v // 10_000, v // 100 % 100, v % 100
    shape_ok = (v >= 10_000_101) & (v <= 99_991_231) & (m >= 1) & (m <= 12) & (d >= 1)
    ys = np.where(shape_ok, y, 1970)
    ms_ = np.where(shape_ok, m, 1)
    ds = np.where(shape_ok, d, 1)
    month = (ys - 1970).astype("datetime64[Y]").astype("datetime64[M]") + (ms_ - 1)
    day = month.astype("datetime64[D]") + (ds - 1)
    ok = shape_ok & (day.astype("datetime64[M]") == month)
    return ok, day.astype(np.int64)


def _epoch(v: np.ndarray, unit: str) -> np.ndarray:
    per_s = TICKS_PER_S[unit]
    if per_s >= 1000:
        return np.floor_divide(v, per_s // 1000)
    return v * (1000 // per_s)


def _numbers(
    arr: pa.Array, place: Place, column: str, tz: str, unit: str | None
) -> tuple[np.ndarray, list[str]]:
    import pyarrow as pa

    if pa.types.is_unsigned_integer(arr.type):
        u = numpy_of(arr)
        if len(u) and int(u.max()) > I64[1]:
            i = _first(u > I64[1])
            raise place.error(
                f"time {int(u[i])} is beyond the 64-bit range", i, column, rule="time_unparseable"
            )
    v = numpy_of(arr).astype(np.int64)
    if not len(v):
        return v, []
    if unit == "date":
        ok, days = _yyyymmdd(v)
        if not ok.all():
            i = _first(~ok)
            raise place.error(
                f"time {int(v[i])} is not a YYYYMMDD date", i, column, UNIT_HINT, rule="time_range"
            )
        return _localize(days * MS_PER_DAY, tz, place, column, arr), []
    if unit is not None:
        per_s = TICKS_PER_S[unit]
        lo, hi = (max(I64[0], s * per_s) for s in ENGINE_S)
        bad = (v < lo) | (v >= min(hi, I64[1]))
        if bad.any():
            i = _first(bad)
            raise place.error(
                f"time {int(v[i])} read as {UNIT_NAMES[unit]} is outside years 1..9999",
                i,
                column,
                UNIT_HINT,
                rule="time_range",
            )
        return _epoch(v, unit), []
    # By magnitude: a valid date in 1971..2100 is YYYYMMDD; else the one epoch unit whose range
    # holds the value. Every value must be read the same way.
    ok, days = _yyyymmdd(v)
    is_date = ok & (v >= 19_710_101) & (v <= 21_001_231)
    kind = np.full(len(v), -1, dtype=np.int8)
    kind[is_date] = 4
    for k, u in enumerate(("s", "ms", "us", "ns")):
        per_s = TICKS_PER_S[u]
        inside = (v >= GUESS_S[0] * per_s) & (v < GUESS_S[1] * per_s) & ~is_date
        kind[inside] = k
    names = ("s", "ms", "us", "ns", "date")
    if (kind < 0).any():
        i = _first(kind < 0)
        readings = ", ".join(
            f"{format_time(int(x))} as {u}"
            for u in ("s", "ms")
            if I64[0] // 1000 < (x := _epoch(v[i : i + 1], u)[0]) < I64[1] // 1000
        )
        raise place.error(
            f"time {int(v[i])} is no YYYYMMDD date and, read as epoch seconds, milliseconds, "
            f"microseconds or nanoseconds, falls outside 1971..2100 ({readings})",
            i,
            column,
            UNIT_HINT,
            rule="time_unit",
        )
    if (kind != kind[0]).any():
        i = _first(kind != kind[0])
        raise place.error(
            f"time {int(v[i])} reads as {UNIT_NAMES[names[kind[i]]]} but row "
            f"{place.position(0)} ({int(v[0])}) as {UNIT_NAMES[names[kind[0]]]}: mixed units",
            i,
            column,
            UNIT_HINT,
            rule="time_unit",
        )
    found = names[kind[0]]
    if found == "date":
        return _localize(days * MS_PER_DAY, tz, place, column, arr), []
    notice = (
        f"{column}: read as {UNIT_NAMES[found]} (the only unit that puts every value in "
        f"1971..2100); --time-unit says otherwise"
    )
    return _epoch(v, found), [notice]


# --- Text ---------------------------------------------------------------------------------------

_DIGITS = r"^[+-]?[0-9]+$"
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE8 = r"^[0-9]{8}$"
_OFFSET = r"[T ][0-9]{2}(:[0-9]{2}){0,2}(\.[0-9]+)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
DATE8_RANGE = (19_710_101, 21_001_231)
"""The 8-digit numbers a text column may hold: dates in 1971..2100."""


def _integral(s: pa.Array, place: Place, column: str, arr: pa.Array) -> pa.Array:
    """Text numbers (``1403560800``, ``1403560800.0``, ``1.4e9``) as int64; a fraction or a
    value beyond 64 bits is a value the column cannot be read with, named by its row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(s, pa.int64())
    except pa.ArrowInvalid:
        pass
    f = numpy_of(pc.cast(s, pa.float64()))
    digits = numpy_of(_matches(s, _DIGITS))
    bad = ~(np.isfinite(f) & (np.floor(f) == f) & (np.abs(f) < 2.0**63))
    bad |= digits & ~(np.abs(f) < 2.0**63)
    if digits.all():  # integers only, one beyond 64 bits (as floats they may round inside)
        bad = np.array([not I64[0] <= int(x) <= I64[1] for x in s.to_pylist()])
    if bad.any():
        i = _first(bad)
        what = "is beyond the 64-bit range" if digits[i] else "is not a whole number"
        raise place.error(
            f"time {_shown(arr[i])} {what}", i, column, UNIT_HINT, rule="time_unparseable"
        )
    ints = [int(x) if d else int(float(x)) for x, d in zip(s.to_pylist(), digits, strict=True)]
    return pa.array(ints, pa.int64())


def _text(
    arr: pa.Array, place: Place, column: str, tz: str, unit: str | None
) -> tuple[np.ndarray, list[str]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    # Fast paths, one cast each: a column all of one common shape (the first value's) needs
    # no classification.
    first = str(arr[0].as_py()) if len(arr) else ""
    if first.isascii() and first.isdigit():
        try:
            numbers = pc.cast(arr, pa.int64())
        except (pa.ArrowInvalid, OverflowError):
            numbers = None
        if numbers is not None:
            return _numbers(numbers, place, column, tz, unit)
    zoned = re.search(_OFFSET, first) is not None
    to = pa.timestamp("us", "UTC") if zoned else pa.timestamp("us")
    try:
        got = None if unit is not None else pc.cast(arr, to)
    except pa.ArrowInvalid:
        got = None
    if got is not None:
        ms = np.floor_divide(numpy_of(got), 1000)
        if to.tz is None:
            ms = _localize(ms, tz, place, column, arr)
        return _in_range(ms, ENGINE_S, place, column, arr), []
    s = compute("utf8_trim_whitespace", arr)
    # A column of numbers (integral floats too) is a number column; with --time-unit every
    # value must be one.
    number = numpy_of(_matches(s, _NUMBER))
    if unit is not None and not number.all():
        i = _first(~number)
        raise place.error(
            f"time {_shown(arr[i])} is not a number, which --time-unit {unit} reads",
            i,
            column,
            UNIT_HINT,
            rule="time_unparseable",
        )
    if len(s) and number.all():
        return _numbers(_integral(s, place, column, arr), place, column, tz, unit)
    # A text column: each row by the text forms; the offending row is the first that no form
    # reads (a number other than an 8-digit date in 1971..2100 included).
    slashes = pc.ReplaceSubstringOptions("/", "-")
    s = compute("replace_substring", compute("utf8_upper", s), options=slashes)
    out = np.zeros(len(s), dtype=np.int64)
    date8 = numpy_of(_matches(s, _DATE8))
    unread = number & ~date8  # numbers other than 8 digits: no text form reads them
    if date8.any():
        idx = np.flatnonzero(date8)
        v = numpy_of(pc.cast(pc.take(s, arrow_of(idx)), pa.int64()))
        ok, days = _yyyymmdd(v)
        ok &= (v >= DATE8_RANGE[0]) & (v <= DATE8_RANGE[1])
        unread[idx[~ok]] = True
        out[idx] = days * MS_PER_DAY
    zoned = numpy_of(_matches(s, _OFFSET)) & ~number
    naive = ~zoned & ~number
    for mask, to in ((naive, pa.timestamp("us")), (zoned, pa.timestamp("us", "UTC"))):
        if mask.any():
            idx = np.flatnonzero(mask)
            got_ms, bad = _parse(pc.take(s, arrow_of(idx)), to)
            if bad is not None:
                unread[idx[bad]] = True
            else:
                out[idx] = got_ms
    if unread.any():
        i = _first(unread)
        reason = (
            f"time {_shown(arr[i])} is a number among dates: write every time one way"
            if number[i] and not date8[i]
            else f"time {_shown(arr[i])} is not a date or date-time this loader reads (ISO "
            "YYYY-MM-DD[ HH:MM[:SS[.fff]]] with an optional offset, YYYY/MM/DD, YYYYMMDD, or "
            "epoch numbers)"
        )
        raise place.error(reason, i, column, rule="time_unparseable")
    wall = naive | date8
    if wall.any() and tz != "UTC":
        idx = np.flatnonzero(wall)
        out[idx] = _localize(out[idx], tz, place, column, arr, idx)
    return _in_range(out, ENGINE_S, place, column, arr), []


def _parse(s: pa.Array, to: pa.DataType) -> tuple[np.ndarray, int | None]:
    """ISO text as epoch milliseconds (floored) through Arrow's ISO-8601 parser, and the
    position of the first value it cannot read (found by halving, without a loop per row),
    None when it reads all."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def parses(part: pa.Array) -> pa.Array | None:
        try:
            return pc.cast(part, to)
        except pa.ArrowInvalid:
            return None

    got = parses(s)
    if got is None:
        # Finer than microseconds: Arrow refuses it; the digits beyond are dropped (floor).
        finer = pc.ReplaceSubstringOptions(r"(\.[0-9]{6})[0-9]+", r"\1")
        s = compute("replace_substring_regex", s, options=finer)
        got = parses(s)
    if got is None:
        lo, hi = 0, len(s)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if parses(s.slice(lo, mid - lo)) is None:
                hi = mid
            else:
                lo = mid
        return np.empty(0, dtype=np.int64), lo
    return np.floor_divide(numpy_of(got), 1000), None
