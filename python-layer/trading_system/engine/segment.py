"""Segments (线段, spec §6): runs of pens ended through the feature sequence (特征序列).

:class:`SegmentEngine` consumes pens in order and emits segment ends. The analysis feeds it
only final pens, so what it emits never changes; the non-final tail comes from a copy that is
fed the last pen too. At higher degrees (§13) the same code runs on :class:`Stroke` s, the
segments of the degree below read as pens: everything here reads only a pen's ``up``,
``high``, ``low`` and ``end.price`` (the :class:`PenLike` protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, overload

from trading_system.engine.fractal import Fractal


class PenLike(Protocol):
    """What segments, pivots and points read of a pen (笔) or a stroke (a lower-degree segment):
    its direction, its interval and its end points."""

    @property
    def up(self) -> bool: ...
    @property
    def high(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def start(self) -> Fractal: ...
    @property
    def end(self) -> Fractal: ...


class Stroke:
    """A degree-n segment read as a pen of degree n+1 (spec §13): its direction, its start and
    end points, and the interval ``[min(start, end), max(start, end)]``."""

    __slots__ = ("up", "start", "end", "high", "low")

    def __init__(self, up: bool, start: Fractal, end: Fractal) -> None:
        self.up, self.start, self.end = up, start, end
        a, b = start.price, end.price
        self.high, self.low = (a, b) if a >= b else (b, a)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stroke) and (self.up, self.start, self.end) == (
            other.up,
            other.start,
            other.end,
        )

    def __hash__(self) -> int:
        return hash((self.up, self.start, self.end))

    def __repr__(self) -> str:
        return f"Stroke(up={self.up}, start={self.start}, end={self.end})"


class LevelStrokes(Sequence[PenLike]):
    """A level's strokes: its final ones, then its tail's, read in place. Not a copy: the final
    strokes grow with the series, and a level's tail is compared or rendered on many bars."""

    __slots__ = ("final", "extra")

    def __init__(self, final: Sequence[PenLike], extra: Sequence[PenLike]) -> None:
        self.final, self.extra = final, extra

    def __len__(self) -> int:
        return len(self.final) + len(self.extra)

    @overload
    def __getitem__(self, i: int) -> PenLike: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[PenLike]: ...
    def __getitem__(self, i: int | slice) -> PenLike | Sequence[PenLike]:
        if isinstance(i, slice):
            return [*self.final, *self.extra][i]
        n = len(self.final)
        if i < 0:
            i += len(self)
        return self.final[i] if i < n else self.extra[i - n]


class SegmentSpan(NamedTuple):
    """A segment (线段): pens ``first_pen..=last_pen``, starting and ending with pens of its
    direction; ``gap`` says its end had a gap (缺口) in the feature sequence (second case).
    A ``leading`` segment (§6.3) is a piece of the first run before the first segment: it takes
    its last pen's direction, may hold an even number of pens and is never confirmed."""

    up: bool
    first_pen: int
    last_pen: int
    gap: bool
    leading: bool = False

    def __len__(self) -> int:
        return self.last_pen - self.first_pen + 1

    @property
    def confirmed(self) -> bool:
        """Whether a settled segment is confirmed (§6.3): ≥ 3 pens and not a leading one."""
        return not self.leading and self.last_pen - self.first_pen >= 2

    def stroke(self, pens: Sequence[PenLike]) -> Stroke:
        """The segment read as a stroke of the next degree (§13)."""
        return Stroke(self.up, pens[self.first_pen].start, pens[self.last_pen].end)


def split_first_run(pens: Sequence[PenLike], last: int) -> list[tuple[int, int]]:
    """The pieces of the first run, pens ``0..=last`` (§6.3): with E = ``last`` ≥ 3, m is the
    pen among 0..E−3 against pen E's direction whose end is the most extreme (earliest on
    ties); when m = 0 or pen m ends beyond pen 0, the run splits into ``0..=m`` (split again)
    and ``m+1..=E``. One piece ``(0, last)`` when it does not split."""
    pieces: list[tuple[int, int]] = []
    e = last
    while e >= 3:
        up = pens[e].up
        m = (e + 1) % 2  # the first pen of the other direction (e − m odd)
        best = pens[m].end.price
        for j in range(m + 2, e - 2, 2):
            x = pens[j].end.price
            if (x < best) if up else (x > best):
                m, best = j, x
        beyond = best < pens[0].low if up else best > pens[0].high
        if not (m == 0 or beyond):
            break
        pieces.append((m + 1, e))
        e = m
    pieces.append((0, e))
    pieces.reverse()
    return pieces


class Element:
    """A feature element (特征序列元素) in mirrored prices: an up window reads a pen as
    ``(high, low)``, a down window as ``(-low, -high)``, so one set of comparisons serves both."""

    __slots__ = ("hi", "lo", "last", "peak")

    def __init__(self, hi: float, lo: float, p: int) -> None:
        self.hi, self.lo, self.last, self.peak = hi, lo, p, p

    def merge(self, hi: float, lo: float, p: int) -> None:
        """Merges in the segment's direction: (mirrored) high = max, low = max."""
        if hi > self.hi:
            self.hi = hi
        if lo > self.lo:
            self.lo = lo
        self.last = p
        # The peak pen is the latest whose high equals the element's.
        if hi >= self.hi:
            self.peak = p


CONTINUE, RESET, END = 0, 1, 2


class FeatureWindow:
    """The three-element window of a segment of direction ``up`` (spec §6.1)."""

    __slots__ = ("up", "strict", "inclusion", "start", "last_fed", "e", "awaiting")

    def __init__(self, up: bool, strict: bool, inclusion: bool) -> None:
        self.up, self.strict, self.inclusion = up, strict, inclusion
        self.start = -1  # the first pen fed since the last reset
        self.last_fed = 0
        self.e: list[Element] = []
        # A top candidate waits for the next feature pen (the real-break check).
        self.awaiting = False

    def copy(self) -> FeatureWindow:
        w = FeatureWindow(self.up, self.strict, self.inclusion)
        w.start, w.last_fed, w.awaiting = self.start, self.last_fed, self.awaiting
        w.e = [Element(x.hi, x.lo, x.last) for x in self.e]
        for new, old in zip(w.e, self.e, strict=True):
            new.peak = old.peak
        return w

    def elements(self) -> int:
        return len(self.e)

    def _mirror(self, pen: PenLike) -> tuple[float, float]:
        if self.up:
            return pen.high, pen.low
        return -pen.low, -pen.high

    def feed(self, pens: Sequence[PenLike], p: int) -> tuple[int, bool] | None:
        """Feeds feature pen ``p``; returns ``(peak pen, gap)`` when the window forms its top
        (bottom for a down segment)."""
        if self.start < 0:
            self.start = p
        self.last_fed = p
        step = self._step(pens, p)
        if step == CONTINUE:
            return None
        if step == END:
            return self._end()
        return self.reset(pens)

    def _end(self) -> tuple[int, bool]:
        e0, e1 = self.e[0], self.e[1]
        return e1.peak, e0.hi < e1.lo

    def reset(self, pens: Sequence[PenLike]) -> tuple[int, bool] | None:
        """Drops the first pen fed and feeds the others again, as often as needed."""
        while True:
            self.start += 2
            self.e = []
            self.awaiting = False
            p = self.start
            again = False
            while p <= self.last_fed:
                step = self._step(pens, p)
                if step == END:
                    return self._end()
                if step == RESET:
                    again = True
                    break
                p += 2
            if not again:
                return None

    def _step(self, pens: Sequence[PenLike], p: int) -> int:
        h, lo = self._mirror(pens[p])
        e = self.e
        n = len(e)
        if n == 0:
            e.append(Element(h, lo, p))
            return CONTINUE
        if n == 1:
            e0 = e[0]
            if self.inclusion and e0.hi >= h and e0.lo <= lo:
                e0.merge(h, lo, p)
                return CONTINUE
            e.append(Element(h, lo, p))
            return RESET if h < e0.hi else CONTINUE
        if n == 2:
            e0, e1 = e
            included = (e1.hi >= h and e1.lo <= lo) or (h >= e1.hi and lo <= e1.lo)
            if self.inclusion and included and not (h == e1.hi and lo < e1.lo):
                e1.merge(h, lo, p)
                return CONTINUE
            e.append(Element(h, lo, p))
            if not (e0.hi < e1.hi and h <= e1.hi and lo < e1.lo):
                return RESET
            if not self.strict:
                return END
            # Merging may have lifted e1's low: demand a break below its last pen's low.
            if lo < self._mirror(pens[e1.last])[1]:
                return END
            self.awaiting = True
            return CONTINUE
        # Waiting for the real break: this is the pen q of spec §6.1.
        return END if lo < e[2].lo else RESET


@dataclass
class PendingEnd:
    """An end found with a gap, waiting for the opposite feature sequence to confirm it: the
    segments it settles (for the first end, the first segment or the leading segments)."""

    spans: list[SegmentSpan]


class SegmentEngine:
    """Finds segment ends pen by pen (spec §6). Before the first end, two windows run (``first``
    phase, only the pursued one fed while one is); after it, one window for the segment that
    starts at ``start``."""

    __slots__ = (
        "strict",
        "inclusion",
        "first",
        "up_w",
        "down_w",
        "pursued",
        "start",
        "up",
        "window",
        "pending",
        "cursor",
    )

    def __init__(self, strict: bool, inclusion: bool) -> None:
        self.strict, self.inclusion = strict, inclusion
        self.first = True
        self.up_w = FeatureWindow(True, strict, inclusion)
        self.down_w = FeatureWindow(False, strict, inclusion)
        self.pursued: bool | None = None  # the pursued window's direction (up = True)
        self.start = 0
        self.up = True
        self.window = FeatureWindow(True, strict, inclusion)  # unused until the first end
        self.pending: list[PendingEnd] = []
        self.cursor = 0  # the next pen to process

    def copy(self) -> SegmentEngine:
        c = SegmentEngine.__new__(SegmentEngine)
        c.strict, c.inclusion, c.first = self.strict, self.inclusion, self.first
        c.up_w, c.down_w = self.up_w.copy(), self.down_w.copy()
        c.pursued, c.start, c.up = self.pursued, self.start, self.up
        c.window = self.window.copy()
        # Pending ends are never changed in place, only appended and cleared.
        c.pending = list(self.pending)
        c.cursor = self.cursor
        return c

    def run(self, pens: Sequence[PenLike], available: int, out: list[SegmentSpan]) -> None:
        """Processes pens ``cursor..available``, appending each segment whose end is settled."""
        while self.cursor < available:
            k = self.cursor
            self.cursor += 1
            if not self.first:
                if (k - self.start) % 2 == 1:
                    end = self.window.feed(pens, k)
                    if end is not None:
                        span = SegmentSpan(self.up, self.start, end[0] - 1, end[1])
                        self._on_end([span], end, out)
                continue
            just = not pens[k].up
            pursued = self.pursued
            if pursued is not None and pursued != just:
                # While one window is pursued the other is not fed (§6.3).
                continue
            w = self.up_w if just else self.down_w
            end = w.feed(pens, k)
            # Only the pursued window may end the first segment; for a window not pursued
            # before this pen an end counts as a reset (§12.4).
            while end is not None and pursued is None:
                end = w.reset(pens)
            if end is not None:
                self._on_end(self._first_spans(pens, just, end), end, out)
                continue
            if pursued is not None and w.elements() < 2:
                self.pursued = pursued = None
            if pursued is None and w.elements() >= 2:
                self.pursued = just
                # The other window is emptied when one becomes pursued.
                if just:
                    self.down_w = FeatureWindow(False, self.strict, self.inclusion)
                else:
                    self.up_w = FeatureWindow(True, self.strict, self.inclusion)

    @staticmethod
    def _first_spans(pens: Sequence[PenLike], up: bool, end: tuple[int, bool]) -> list[SegmentSpan]:
        """The first segment, or the leading segments, of the run ``0..peak−1`` (§6.3)."""
        peak, gap = end
        pieces = split_first_run(pens, peak - 1)
        if len(pieces) == 1 and pens[0].up == up:
            return [SegmentSpan(up, 0, peak - 1, gap)]
        # The gap is the end's, so only the last piece (ending at the top) carries it.
        last = len(pieces) - 1
        return [
            SegmentSpan(pens[b].up, a, b, gap and i == last, True)
            for i, (a, b) in enumerate(pieces)
        ]

    def _count(self, up: bool) -> int:
        return (self.up_w if up else self.down_w).elements()

    def _on_end(
        self, spans: list[SegmentSpan], end: tuple[int, bool], out: list[SegmentSpan]
    ) -> None:
        peak, gap = end
        up = spans[-1].up
        self.pending.append(PendingEnd(spans))
        if not gap:
            # A first-case end settles itself and every gap end before it.
            for p in self.pending:
                out.extend(p.spans)
            self.pending.clear()
        self.first = False
        self.start, self.up = peak, not up
        self.window = FeatureWindow(not up, self.strict, self.inclusion)
        self.cursor = peak + 1

    def tail(self, pens: Sequence[PenLike]) -> list[SegmentSpan]:
        """The non-final segments: ends that need the last pen, pending gap ends, and forming
        segments (spec §6.3), in order."""
        out: list[SegmentSpan] = []
        if not pens:
            return out
        c = self.copy()
        c.run(pens, len(pens), out)
        for p in c.pending:
            out.extend(p.spans)
        if c.first:
            s, d = 0, pens[0].up
        else:
            s, d = c.start, c.up
        n = len(pens)
        while s + 2 < n:
            best = s + 2
            for k in range(best + 2, n, 2):
                x, b = pens[k].end.price, pens[best].end.price
                if (x >= b) if d else (x <= b):
                    best = k
            out.append(SegmentSpan(d, s, best, False))
            s, d = best + 1, not d
        return out
