"""Pens (笔, spec §5): moves between a top fractal (顶分型) and a bottom fractal (底分型), built
one fractal at a time in the order fractals are classified, plus the forming move after the
last pen."""

from __future__ import annotations

from trading_system.engine.fractal import Fractal
from trading_system.engine.kline import MergedBars

INF = float("inf")

NONE, EXTENDED, ADDED = 0, 1, 2
"""What a final merged bar did to the pen list."""

PenState = tuple[int, Fractal | None, int, float, int, float, int]
"""What one bar may change in a :class:`PenBuilder` (pen count, the last pen's end, fractals
kept, the extremes since the last pen's end), to undo it."""


class Pen:
    """A pen (笔): an up pen from a bottom to a top fractal, or a down pen from a top to a
    bottom. Only the last pen's end can still move."""

    __slots__ = ("up", "start", "end")

    def __init__(self, up: bool, start: Fractal, end: Fractal) -> None:
        self.up = up
        self.start = start
        self.end = end

    @property
    def high(self) -> float:
        return self.end.price if self.up else self.start.price

    @property
    def low(self) -> float:
        return self.start.price if self.up else self.end.price

    def key(self) -> tuple[bool, Fractal, Fractal]:
        return (self.up, self.start, self.end)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pen) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"Pen(up={self.up}, start={self.start}, end={self.end})"


class PenBuilder:
    """Builds pens from fractals (spec §5.2). Between the last pen's end and the newest final
    merged bar it tracks the highest high and lowest low (latest on ties): that is rule 3 of §5.1
    for the next pen, and the end of the forming move."""

    __slots__ = ("traditional", "strict", "pens", "kept", "max_high", "max_at", "min_low", "min_at")

    def __init__(self, traditional: bool, strict: bool) -> None:
        self.traditional = traditional
        self.strict = strict
        self.pens: list[Pen] = []
        # Fractals seen before the first pen.
        self.kept: list[Fractal] = []
        self._clear_extremes()

    def _clear_extremes(self) -> None:
        self.max_high, self.max_at, self.min_low, self.min_at = -INF, -1, INF, -1

    def state(self) -> PenState:
        """What one bar may change, to undo it."""
        pens = self.pens
        return (
            len(pens),
            pens[-1].end if pens else None,
            len(self.kept),
            self.max_high,
            self.max_at,
            self.min_low,
            self.min_at,
        )

    def set_state(self, s: PenState) -> None:
        n, last_end, kept, self.max_high, self.max_at, self.min_low, self.min_at = s
        del self.pens[n:]
        if n and last_end is not None:
            self.pens[-1].end = last_end
        del self.kept[kept:]

    def on_final_bar(self, m: MergedBars, n: int, f: Fractal | None) -> int:
        """Merged bar ``n`` has become final (bar ``n + 1`` was just created from one raw bar),
        with the fractal it turned out to be."""
        ev = NONE if f is None else self._on_fractal(m, f)
        pens = self.pens
        if pens and n > pens[-1].end.merged:
            h, lo = m.high[n], m.low[n]
            if h >= self.max_high:
                self.max_high, self.max_at = h, n
            if lo <= self.min_low:
                self.min_low, self.min_at = lo, n
        return ev

    def _on_fractal(self, m: MergedBars, f: Fractal) -> int:
        pens = self.pens
        if not pens:
            return self._try_first_pen(m, f)
        last = pens[-1]
        end = last.end
        if f.top == end.top:
            if (f.price >= end.price) if f.top else (f.price <= end.price):
                last.end = f
                self._clear_extremes()
                return EXTENDED
            return NONE
        between_ok = self.max_high <= f.price if f.top else self.min_low >= f.price
        if between_ok and self.span_and_validity(m, end, f, f.merged + 1 < len(m)):
            self._push(end, f)
            return ADDED
        return NONE

    def _try_first_pen(self, m: MergedBars, f: Fractal) -> int:
        has_next = f.merged + 1 < len(m)
        for k in self.kept:
            if (
                k.top != f.top
                and self.span_and_validity(m, k, f, has_next)
                and _end_is_extreme(m, k.merged, f)
            ):
                self._push(k, f)
                return ADDED
        self.kept.append(f)
        return NONE

    def _push(self, start: Fractal, end: Fractal) -> None:
        self.pens.append(Pen(end.top, start, end))
        self._clear_extremes()

    def span_and_validity(self, m: MergedBars, s: Fractal, e: Fractal, has_next: bool) -> bool:
        """Rules 1 and 2 of spec §5.1 for ``s → e``; the bar after ``e`` is read as it is now."""
        si, ei = s.merged, e.merged
        if self.traditional:
            if ei - si < 4:
                return False
        elif ei - si < 3 or e.index - s.index - 1 < 3:
            # New pen: 3 raw bars strictly between the two extreme bars, besides the merged span.
            return False
        high, low = m.high, m.low
        if e.top:
            if self.strict:
                s_high = max(high[si - 1], high[si], high[si + 1])
                e_low = min(low[ei - 1], low[ei])
                if has_next:
                    e_low = min(e_low, low[ei + 1])
                return high[ei] > s_high and low[si] < e_low
            return high[ei] > high[si] and low[si] < low[ei]
        if self.strict:
            s_low = min(low[si - 1], low[si], low[si + 1])
            e_high = max(high[ei - 1], high[ei])
            if has_next:
                e_high = max(e_high, high[ei + 1])
            return low[ei] < s_low and high[si] > e_high
        return low[ei] < low[si] and high[si] > high[ei]

    def forming(self, m: MergedBars) -> Pen | None:
        """The forming move after the last pen (spec §5.2), if it would already make a pen."""
        if not self.pens:
            return None
        last = self.pens[-1]
        s = last.end.merged
        lm = len(m) - 1
        if lm == s:
            return None
        if last.up:
            if m.high[lm] >= last.end.price:
                return None
            v, at = self.min_low, self.min_at
            if m.low[lm] <= v:
                v, at = m.low[lm], lm
            end = Fractal(False, at, m.low_bar[at], v)
        else:
            if m.low[lm] <= last.end.price:
                return None
            v, at = self.max_high, self.max_at
            if m.high[lm] >= v:
                v, at = m.high[lm], lm
            end = Fractal(True, at, m.high_bar[at], v)
        # Rule 3 holds by construction: the end is the most extreme bar after the start.
        if self.span_and_validity(m, last.end, end, end.merged + 1 < len(m)):
            return Pen(not last.up, last.end, end)
        return None


def _end_is_extreme(m: MergedBars, s: int, e: Fractal) -> bool:
    """Rule 3 of spec §5.1 by scanning the merged bars strictly between ``s`` and ``e``."""
    if e.top:
        return all(h <= e.price for h in m.high[s + 1 : e.merged])
    return all(lo >= e.price for lo in m.low[s + 1 : e.merged])
