"""K-lines (K线): validation and repair of raw bars (spec §1) and inclusion handling (包含处理,
spec §3) that folds raw bars into merged bars.

Rule names, field names and messages are those of docs/CHAN_THEORY.md §12.1, shared with the
Rust engine word for word.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from trading_system.engine.timestamp import format_ms
from trading_system.errors import Violation

NON_EMPTY = "non_empty"
FINITE = "finite"
POSITIVE_PRICE = "positive_price"
NON_NEGATIVE_VOLUME = "non_negative_volume"
HIGH_RANGE = "high_range"
LOW_RANGE = "low_range"
TIME_ORDER = "time_order"
TIME_DUPLICATE = "time_duplicate"

UP = True
DOWN = False

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
MergedLast = tuple[float, float, int, int, int]
"""The mutable fields of the last merged bar (high, low, last, high_bar, low_bar)."""


def fmt_num(x: float) -> str:
    """A number as in messages: the shortest decimal that reads back to the same double, never in
    exponent form and without a trailing ``.0`` (``12.5``, ``11``, ``0.0000001``, ``NaN``)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(float(x))
    if "e" in text or "E" in text:
        # repr gives the shortest round-trip digits; Decimal writes them out without exponent.
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def empty_series() -> Violation:
    return Violation(None, "bars", NON_EMPTY, "the series is empty: at least one bar is required")


@dataclass(frozen=True, slots=True)
class Repair:
    """A high/low repair made under ``validation.repair`` (reported as a warning)."""

    index: int
    old_high: float
    old_low: float
    new_high: float
    new_low: float


def check_bar(
    index: int,
    time: int,
    o: float,
    h: float,
    lo: float,
    c: float,
    v: float,
    prev_time: int | None,
    allow_non_positive: bool,
    repair: bool,
    out: list[Violation],
) -> Repair | None:
    """Checks one bar against spec §1, appending what it breaks to ``out`` in the rule order of
    §12.1. Returns the repair when ``repair`` is on and only the high/low rule was broken."""
    prefix = f"bar {index}: "

    def push(field: str, rule: str, message: str) -> None:
        out.append(Violation(index, field, rule, prefix + message))

    if prev_time is not None:
        if time == prev_time:
            push(
                "time",
                TIME_DUPLICATE,
                f"time {format_ms(time)} duplicates the previous bar's time",
            )
        elif time < prev_time:
            push(
                "time",
                TIME_ORDER,
                f"time {format_ms(time)} is not after the previous bar's time "
                f"{format_ms(prev_time)}",
            )
    all_finite = True
    for field, x in (("open", o), ("high", h), ("low", lo), ("close", c)):
        if not math.isfinite(x):
            all_finite = False
            push(field, FINITE, f"{field} is {fmt_num(x)}, not a finite number")
        elif not allow_non_positive and x <= 0.0:
            push(field, POSITIVE_PRICE, f"{field} {fmt_num(x)} must be > 0")
    if not math.isfinite(v):
        push("volume", FINITE, f"volume is {fmt_num(v)}, not a finite number")
    elif v < 0.0:
        push("volume", NON_NEGATIVE_VOLUME, f"volume {fmt_num(v)} must be >= 0")
    if not all_finite:
        return None
    top, bottom = max(o, c), min(o, c)
    high_bad, low_bad = h < top, lo > bottom
    if not (high_bad or low_bad):
        return None
    if repair:
        return Repair(index, h, lo, max(o, h, lo, c), min(o, h, lo, c))
    if high_bad:
        push("high", HIGH_RANGE, f"high {fmt_num(h)} is below max(open, close) {fmt_num(top)}")
    if low_bad:
        push("low", LOW_RANGE, f"low {fmt_num(lo)} is above min(open, close) {fmt_num(bottom)}")
    return None


def bar_ok(
    time: int,
    o: float,
    h: float,
    lo: float,
    c: float,
    v: float,
    prev_time: int | None,
    allow_non_positive: bool,
) -> bool:
    """Whether one bar passes every rule (the quick test before :func:`check_bar`)."""
    # Comparisons with NaN are false, and an infinite price breaks a range or positivity test
    # unless all are infinite: the isfinite calls settle the rest.
    return (
        math.isfinite(o)
        and math.isfinite(h)
        and math.isfinite(lo)
        and math.isfinite(c)
        and math.isfinite(v)
        and (allow_non_positive or (o > 0.0 and h > 0.0 and lo > 0.0 and c > 0.0))
        and v >= 0.0
        and lo <= min(o, c)
        and h >= max(o, c)
        and (prev_time is None or time > prev_time)
    )


def validate_series(
    time: Int64Array,
    o: Float64Array,
    h: Float64Array,
    lo: Float64Array,
    c: Float64Array,
    v: Float64Array,
    allow_non_positive: bool,
    repair: bool,
) -> tuple[list[Repair], list[Violation]]:
    """Validates a whole series (spec §1): the repairs to make and every violation, bar by bar.

    The whole-array test finds the bars to look at; only those go through the rule-by-rule
    check, so a clean series costs a few array passes."""
    n = len(time)
    if n == 0:
        return [], [empty_series()]
    with np.errstate(invalid="ignore"):
        good = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)
        if not allow_non_positive:
            good &= (o > 0.0) & (h > 0.0) & (lo > 0.0) & (c > 0.0)
        good &= v >= 0.0
        good &= (lo <= np.minimum(o, c)) & (h >= np.maximum(o, c))
        good[1:] &= time[1:] > time[:-1]
    bad = np.flatnonzero(~good)
    repairs: list[Repair] = []
    violations: list[Violation] = []
    for i in bad.tolist():
        prev = int(time[i - 1]) if i > 0 else None
        r = check_bar(
            i,
            int(time[i]),
            float(o[i]),
            float(h[i]),
            float(lo[i]),
            float(c[i]),
            float(v[i]),
            prev,
            allow_non_positive,
            repair,
            violations,
        )
        if r is not None:
            repairs.append(r)
    return repairs, violations


class MergedBars:
    """Merged bars (合并K线), column by column: ``high``, ``low``, ``last`` (index of the last raw
    bar in it), ``high_bar``/``low_bar`` (the last raw bar whose high/low equals the merged one)
    and ``up`` (its direction from the previous merged bar, fixed at creation)."""

    __slots__ = ("high", "low", "last", "high_bar", "low_bar", "up")

    def __init__(self) -> None:
        # Packed columns (8 bytes a merged bar each): see Engine.times.
        self.high: array[float] = array("d")
        self.low: array[float] = array("d")
        self.last: array[int] = array("q")
        self.high_bar: array[int] = array("q")
        self.low_bar: array[int] = array("q")
        self.up: list[bool] = []

    def __len__(self) -> int:
        return len(self.high)

    def snapshot_last(self) -> MergedLast:
        """The mutable fields of the last merged bar, to undo a fold."""
        return (self.high[-1], self.low[-1], self.last[-1], self.high_bar[-1], self.low_bar[-1])

    def restore(self, length: int, last: MergedLast | None) -> None:
        for col in (self.high, self.low, self.last, self.high_bar, self.low_bar, self.up):
            del col[length:]
        if last is not None and length > 0:
            (self.high[-1], self.low[-1], self.last[-1], self.high_bar[-1], self.low_bar[-1]) = last

    def fold(self, i: int, high: float, low: float) -> bool:
        """Folds raw bar ``i`` in (spec §3). Returns whether it started a new merged bar."""
        mh, ml = self.high, self.low
        if mh:
            ch, cl = mh[-1], ml[-1]
            if (ch >= high and cl <= low) or (high >= ch and low <= cl):
                self._merge(i, high, low, ch, cl)
                return False
            up = high > ch
        else:
            up = UP  # the very first merged bar
        mh.append(high)
        ml.append(low)
        self.last.append(i)
        self.high_bar.append(i)
        self.low_bar.append(i)
        self.up.append(up)
        return True

    def _merge(self, i: int, high: float, low: float, ch: float, cl: float) -> None:
        self.last[-1] = i
        up = self.up[-1]
        # A flat bar at the edge the merge keeps leaves the prices as they are.
        if not (high == low and (high == ch if up else low == cl)):
            if up:
                ch = ch if ch >= high else high
                cl = cl if cl >= low else low
            else:
                ch = ch if ch <= high else high
                cl = cl if cl <= low else low
            self.high[-1] = ch
            self.low[-1] = cl
        if high == ch:
            self.high_bar[-1] = i
        if low == cl:
            self.low_bar[-1] = i
