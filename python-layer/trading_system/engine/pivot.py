"""Pivots (中枢, spec §7): overlaps of counter-direction pens inside one segment (strokes at
higher degrees, §13)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trading_system.engine.segment import PenLike, SegmentSpan


@dataclass(slots=True)
class Pivot:
    """A pivot (中枢): pens ``first_pen..=last_pen`` of segment ``segment``, with its edges
    ``zd``/``zg`` (ZD/ZG) and its extremes ``dd``/``gg`` (DD/GG)."""

    segment: int
    first_pen: int
    last_pen: int
    zd: float
    zg: float
    dd: float
    gg: float


def find_pivots(pens: Sequence[PenLike], span: SegmentSpan, segment: int, out: list[Pivot]) -> None:
    """Appends the pivots of one segment (index ``segment``) to ``out``: its counter pens taken
    two consecutive at a time; a pivot that touches the previous one of the segment merges."""
    base = len(out)
    open_ = False  # the last pivot of this segment is still being extended
    first: int | None = None
    # The counter pens: a leading segment (§6.3) may begin with one.
    begin = span.first_pen
    if pens[begin].up == span.up:
        begin += 1
    for c in range(begin, span.last_pen + 1, 2):
        pen = pens[c]
        h, lo = pen.high, pen.low
        if open_:
            z = out[-1]
            if h > z.zd and lo < z.zg:
                z.last_pen = c
                z.gg = max(z.gg, h)
                z.dd = min(z.dd, lo)
            else:
                open_ = False
                first = c
            continue
        if first is None or first == 0:
            # Pen 0 of the series cannot begin a pivot.
            first = c
            continue
        a = pens[first]
        ah, al = a.high, a.low
        zg, zd = min(ah, h), max(al, lo)
        if zg > zd:
            z = Pivot(segment, first, c, zd, zg, min(al, lo), max(ah, h))
            if len(out) > base and z.zg >= out[-1].zd and out[-1].zg >= z.zd:
                p = out[-1]
                p.zd = min(p.zd, z.zd)
                p.zg = max(p.zg, z.zg)
                p.dd = min(p.dd, z.dd)
                p.gg = max(p.gg, z.gg)
                p.last_pen = c
            else:
                out.append(z)
            open_ = True
            first = None
        else:
            first = c
