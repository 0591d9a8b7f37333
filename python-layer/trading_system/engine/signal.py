"""Divergence (背驰) strength (spec §8) and buy/sell points (买卖点, spec §9)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from trading_system.config import Strength
from trading_system.engine.pivot import Pivot
from trading_system.engine.segment import PenLike, SegmentSpan


class Signal(NamedTuple):
    """A buy/sell point (买卖点) of type 1 (一类), 2 (二类) or 3 (三类) at the end of pen
    ``pen``; down pens give buy points, up pens sell points. ``pivot`` is the pivot it was
    derived from, as an index in the list its segment's pivots are kept in (the engine's final
    pivots, a tail's, a level's); ``entering`` and ``leaving`` the strengths a type-1 point's
    divergence test compared (0.0 for types 2 and 3, never NaN). A type-2 point follows the
    type-1 point two pens before it; a type-3 point clears the pivot edge its side says."""

    kind: int
    buy: bool
    pen: int
    final: bool
    pivot: int
    entering: float
    leaving: float


def ieee_div(a: float, b: float) -> float:
    """``a / b`` as IEEE-754 doubles (§12.5): Python raises on a zero divisor instead."""
    if b != 0.0:
        return a / b
    if a == 0.0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def strength(pen: PenLike, histogram: Sequence[float], measure: Strength) -> float:
    """A pen's strength (spec §8) over the raw bars from its start extreme to its end extreme
    (a stroke's, §13: from its start point's bar to its end point's bar)."""
    a, b = pen.start.index, pen.end.index
    s, e = pen.start.price, pen.end.price
    if measure == Strength.SLOPE:
        return ieee_div(ieee_div(abs(e - s), s), float(b - a + 1))
    if measure == Strength.AMPLITUDE:
        return ieee_div(abs(e - s), s)
    hs = histogram[a : b + 1]
    # Only bars whose histogram has the pen's sign count (NaN, absent, has none).
    signed = [h for h in hs if h > 0.0] if pen.up else [-h for h in hs if h < 0.0]
    if measure == Strength.PEAK:
        acc = 0.0
        for h in signed:
            if h > acc:
                acc = h
        return acc
    acc = 0.0
    for h in signed:  # added in bar order, as the spec says
        acc += h
    return acc


class StrengthCache:
    """Strengths already computed, by pen index. An entry is reused only while the pen keeps the
    same extreme bars: the histogram of bars before the last one never changes, and a pen always
    ends before the last bar."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[int, tuple[int, int, float]] = {}

    def get(
        self, pens: Sequence[PenLike], i: int, histogram: Sequence[float], measure: Strength
    ) -> float:
        p = pens[i]
        a, b = p.start.index, p.end.index
        hit = self.entries.get(i)
        if hit is not None and hit[0] == a and hit[1] == b:
            return hit[2]
        v = strength(p, histogram, measure)
        self.entries[i] = (a, b, v)
        return v


def segment_signals(
    pens: Sequence[PenLike],
    n_final: int,
    histogram: Sequence[float],
    measure: Strength,
    divergence_rate: float,
    min_pivots: int,
    span: SegmentSpan,
    pivots: list[Pivot],
    first_pivot: int,
    confirmed: bool,
    cache: StrengthCache,
    out: list[Signal],
) -> None:
    """Appends the buy/sell points of one segment (its pivots given, the first of them at index
    ``first_pivot`` of the list they are kept in), ordered by pen then type.
    A point is final only when the segment is confirmed and every pen it uses is final (the
    first ``n_final``: all pens but the last, or the strokes of settled segments, §13)."""
    n = len(pens)
    found: list[Signal] = []

    def add(kind: int, pen: int, pivot: int, entering: float = 0.0, leaving: float = 0.0) -> None:
        final = confirmed and pen < n_final
        found.append(
            Signal(kind, not pens[pen].up, pen, final, first_pivot + pivot, entering, leaving)
        )

    if pivots:
        # Type 1: the segment's last pen leaves its last pivot, breaks out to a new extreme and
        # diverges from the pen that entered the pivot.
        z = pivots[-1]
        p = span.last_pen
        pen = pens[p]
        if len(pivots) >= min_pivots and z.last_pen + 1 == p:
            if pen.up:
                breaks = pen.high > z.zg and pen.high >= z.gg
            else:
                breaks = pen.low < z.zd and pen.low <= z.dd
            if breaks:
                s_out = cache.get(pens, p, histogram, measure)
                s_in = cache.get(pens, z.first_pen - 1, histogram, measure)
                if s_out < divergence_rate * s_in:
                    last = len(pivots) - 1
                    add(1, p, last, s_in, s_out)
                    # Type 2: the next pullback stays short of the type-1 extreme.
                    if p + 2 < n:
                        q = pens[p + 2]
                        if (q.high < pen.high) if pen.up else (q.low > pen.low):
                            add(2, p + 2, last)
    # Type 3: a pen leaves a pivot and the pullback after it stays outside.
    for k, z in enumerate(pivots):
        leave = z.last_pen + 1
        if leave + 1 >= n:
            continue
        lp, back = pens[leave], pens[leave + 1]
        if lp.up:
            ok = lp.high > z.zg and back.low > z.zg
        else:
            ok = lp.low < z.zd and back.high < z.zd
        if ok:
            add(3, leave + 1, k)
    found.sort(key=lambda s: (s.pen, s.kind))
    out.extend(found)
