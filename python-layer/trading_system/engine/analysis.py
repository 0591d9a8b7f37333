"""The pipeline (spec §10): one incremental engine; batch analysis is a loop over it, so the two
cannot disagree. :class:`Session` adds append / replace-last with change reports (§12.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from trading_system.engine.document import Doc, build_document, build_update
from trading_system.engine.fractal import Fractal, classify
from trading_system.engine.kline import MergedBars, Repair, bar_ok, check_bar, validate_series
from trading_system.engine.macd import MacdState
from trading_system.engine.pen import ADDED, NONE, Pen, PenBuilder
from trading_system.engine.pivot import Pivot, find_pivots
from trading_system.engine.segment import SegmentEngine, SegmentSpan
from trading_system.engine.signal import Signal, StrengthCache, segment_signals
from trading_system.errors import InvalidBars, StateError, Violation

if TYPE_CHECKING:
    from trading_system.config import EngineConfig

MAX_BARS = 2**32 - 1
"""Bar indices are 32-bit in the contract (§12.6)."""


def _value(x: Any) -> Any:
    """An enum member's value, or the value itself (configs may carry either)."""
    return getattr(x, "value", x)


class BarColumns(Protocol):
    """Columnar bars: ``time`` (int64 epoch ms) and float64 ``open`` … ``volume``."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


class Tail:
    """The non-final part of the structure: segments that are not confirmed (ending with the
    last pen, pending a gap confirmation, or forming), their pivots and the points they give."""

    __slots__ = ("segments", "pivots", "signals")

    def __init__(
        self,
        segments: list[SegmentSpan] | None = None,
        pivots: list[Pivot] | None = None,
        signals: list[Signal] | None = None,
    ) -> None:
        self.segments = segments or []
        self.pivots = pivots or []
        self.signals = signals or []

    def resolved(self, pens: list[Pen]) -> tuple[Any, ...]:
        """The tail with the pen ends it shows: a segment, pivot or point on the last pen moves
        when that pen extends, with the same pen indices (§12.7 reports what the client sees)."""
        return (
            [(s, pens[s.first_pen].start, pens[s.last_pen].end) for s in self.segments],
            [(z, pens[z.first_pen].start, pens[z.last_pen].end) for z in self.pivots],
            [(g, pens[g.pen].end) for g in self.signals],
        )


class Engine:
    """The incremental engine state. Lists hold only items that never change (fractals, final
    pens but the last, confirmed segments with their pivots and points)."""

    def __init__(self, cfg: EngineConfig, keep_macd: bool) -> None:
        self.cfg = cfg
        self.keep_macd = keep_macd
        m = cfg.macd
        self.macd = MacdState(
            m.fast_period,
            m.slow_period,
            m.signal_period,
            float(m.histogram_scale),
            _value(m.seed) == "sma",
        )
        self.last_macd: tuple[float, float, float] = (np.nan, np.nan, np.nan)
        self.times: list[int] = []
        self.histogram: list[float] = []
        self.dif: list[float] = []
        self.dea: list[float] = []
        self.merged = MergedBars()
        self.fractals: list[Fractal] = []
        self.pens = PenBuilder(
            _value(cfg.pen.definition) == "traditional", bool(cfg.pen.strict_validation)
        )
        self.seg = SegmentEngine(
            bool(cfg.segment.feature_sequence_strict), bool(cfg.segment.handle_inclusion)
        )
        self.segments: list[SegmentSpan] = []
        self.pivots: list[Pivot] = []
        self.signals: list[Signal] = []
        self.repairs: list[Repair] = []
        s = cfg.signal
        self.measure: str = _value(s.strength)
        self.divergence_rate = float(s.divergence_rate)
        self.min_pivots = int(s.min_pivots)
        self.strengths = StrengthCache()
        # While recording, the segment state as it was before the current bar (taken lazily).
        self.recording = False
        self.seg_backup: SegmentEngine | None = None

    def forming_pen(self) -> Pen | None:
        return self.pens.forming(self.merged)

    def push(self, time: int, high: float, low: float, close: float) -> bool:
        """Applies one valid bar. Returns whether the pen list changed."""
        times = self.times
        i = len(times)
        times.append(time)
        m = self.macd.push(close)
        self.last_macd = m
        self.histogram.append(m[2])
        if self.keep_macd:
            self.dif.append(m[0])
            self.dea.append(m[1])
        merged = self.merged
        if not merged.fold(i, high, low):
            return False
        n = len(merged.high) - 2
        if n < 1:
            return False
        f = classify(merged, n)
        if f is not None:
            self.fractals.append(f)
        ev = self.pens.on_final_bar(merged, n, f)
        if ev == NONE:
            return False
        if ev == ADDED and len(self.pens.pens) >= 2:
            self._advance_segments()
        return True

    def _advance_segments(self) -> None:
        """Feeds the newly final pen to the segment engine and settles what it confirms."""
        if self.recording and self.seg_backup is None:
            self.seg_backup = self.seg.copy()
        pens = self.pens.pens
        new: list[SegmentSpan] = []
        self.seg.run(pens, len(pens) - 1, new)
        first = len(self.segments)
        self.segments.extend(new)
        self._derive(new, first, True, self.strengths, self.pivots, self.signals)

    def _derive(
        self,
        spans: list[SegmentSpan],
        first: int,
        confirmed: bool,
        cache: StrengthCache,
        pivots: list[Pivot],
        signals: list[Signal],
    ) -> None:
        """Appends the pivots and points of ``spans``, the first of which is segment ``first``."""
        pens = self.pens.pens
        for j, span in enumerate(spans):
            at = len(pivots)
            find_pivots(pens, span, first + j, pivots)
            segment_signals(
                pens,
                self.histogram,
                self.measure,
                self.divergence_rate,
                self.min_pivots,
                span,
                pivots[at:],
                confirmed and len(span) >= 3,
                cache,
                signals,
            )

    def tail(self, cache: StrengthCache | None = None) -> Tail:
        """The non-final tail, reusing strengths already in ``cache``."""
        t = Tail(self.seg.tail(self.pens.pens))
        self._derive(
            t.segments,
            len(self.segments),
            False,
            cache if cache is not None else StrengthCache(),
            t.pivots,
            t.signals,
        )
        return t

    def mark(self) -> tuple[Any, ...]:
        """Records what the next bar may change."""
        self.recording = True
        self.seg_backup = None
        merged = self.merged
        return (
            len(self.times),
            self.macd.state(),
            self.last_macd,
            len(merged),
            merged.snapshot_last() if len(merged) else None,
            len(self.fractals),
            self.pens.state(),
            len(self.segments),
            len(self.pivots),
            len(self.signals),
            len(self.repairs),
        )

    def restore(self, mark: tuple[Any, ...]) -> None:
        """Undoes everything after ``mark``."""
        (
            bars,
            macd,
            last_macd,
            merged,
            last_merged,
            fractals,
            pens,
            segments,
            pivots,
            signals,
            repairs,
        ) = mark
        del self.times[bars:]
        del self.histogram[bars:]
        del self.dif[bars:]
        del self.dea[bars:]
        self.macd.set_state(macd)
        self.last_macd = last_macd
        self.merged.restore(merged, last_merged)
        del self.fractals[fractals:]
        self.pens.set_state(pens)
        if self.seg_backup is not None:
            self.seg = self.seg_backup.copy()
        del self.segments[segments:]
        del self.pivots[pivots:]
        del self.signals[signals:]
        del self.repairs[repairs:]

    def document(self, tail: Tail) -> Doc:
        return build_document(self, tail)


def _columns(bars: BarColumns) -> tuple[np.ndarray, ...]:
    return tuple(
        np.ascontiguousarray(getattr(bars, k), dtype=np.int64 if k == "time" else np.float64)
        for k in ("time", "open", "high", "low", "close", "volume")
    )


def analyze(bars: BarColumns, cfg: EngineConfig, with_macd: bool = False) -> Doc:
    """Analyzes a whole series (spec §1–§9) into the analysis document. Rejects it whole,
    naming every bad bar (:class:`InvalidBars`), unless valid."""
    t, o, h, lo, c, v = _columns(bars)
    if len(t) > MAX_BARS:
        raise StateError(f"a series holds at most {MAX_BARS} bars")
    val = cfg.validation
    repairs, violations = validate_series(
        t, o, h, lo, c, v, bool(val.allow_non_positive_prices), bool(val.repair)
    )
    if violations:
        raise InvalidBars(violations)
    if repairs:
        h, lo = h.copy(), lo.copy()
        for r in repairs:
            h[r.index], lo[r.index] = r.new_high, r.new_low
    e = Engine(cfg, with_macd)
    e.repairs = repairs
    push = e.push
    for ti, hi, li, ci in zip(t.tolist(), h.tolist(), lo.tolist(), c.tolist(), strict=True):
        push(ti, hi, li, ci)
    return e.document(e.tail())


class Session:
    """An incremental session (spec §10): append bars, replace the last, read the state. Every
    call returns the update document; a rejected bar changes nothing."""

    def __init__(self, cfg: EngineConfig, with_macd: bool = False) -> None:
        self.engine = Engine(cfg, with_macd)
        val = cfg.validation
        self._allow = bool(val.allow_non_positive_prices)
        self._repair = bool(val.repair)
        self._mark = self.engine.mark()
        self._last_time: int | None = None
        self._prev_time: int | None = None
        self.tail = Tail()
        self._shown = self.tail.resolved([])
        self._strengths = StrengthCache()

    @property
    def bars(self) -> int:
        return len(self.engine.times)

    def document(self) -> Doc:
        return self.engine.document(self.tail)

    def _check(
        self, index: int, bar: tuple[int, float, float, float, float, float], prev: int | None
    ) -> Repair | None:
        if bar_ok(*bar, prev, self._allow):
            return None
        out: list[Violation] = []
        r = check_bar(index, *bar, prev, self._allow, self._repair, out)
        if out:
            raise InvalidBars(out)
        return r

    def append(
        self, time: int, open: float, high: float, low: float, close: float, volume: float
    ) -> Doc:
        """Appends a new bar."""
        e = self.engine
        index = len(e.times)
        if index >= MAX_BARS:
            raise StateError(f"a series holds at most {MAX_BARS} bars")
        bar = (int(time), float(open), float(high), float(low), float(close), float(volume))
        repair = self._check(index, bar, self._last_time)
        self._mark = e.mark()
        if repair is not None:
            e.repairs.append(repair)
            bar = (bar[0], bar[1], repair.new_high, repair.new_low, bar[4], bar[5])
        changed = e.push(bar[0], bar[2], bar[3], bar[4])
        self._prev_time, self._last_time = self._last_time, bar[0]
        return self._report(index, False, changed, repair is not None)

    def replace_last(
        self, time: int, open: float, high: float, low: float, close: float, volume: float
    ) -> Doc:
        """Replaces the last (still forming) bar."""
        e = self.engine
        if not e.times:
            raise StateError("replace_last: the session has no bar to replace")
        index = len(e.times) - 1
        bar = (int(time), float(open), float(high), float(low), float(close), float(volume))
        repair = self._check(index, bar, self._prev_time)
        # One bar adds or moves at most one pen, so the count and the last pen tell whether the
        # replacement left the pens (and so the tail) as they were.
        pens = e.pens.pens
        before = (len(pens), pens[-1].key() if pens else None)
        e.restore(self._mark)
        if repair is not None:
            e.repairs.append(repair)
            bar = (bar[0], bar[1], repair.new_high, repair.new_low, bar[4], bar[5])
        e.push(bar[0], bar[2], bar[3], bar[4])
        self._last_time = bar[0]
        after = (len(pens), pens[-1].key() if pens else None)
        return self._report(index, True, before != after, repair is not None)

    def _report(self, index: int, replaced: bool, pens_changed: bool, repaired: bool) -> Doc:
        e, mark = self.engine, self._mark
        tail_changed = False
        if pens_changed:
            fresh = e.tail(self._strengths)
            shown = fresh.resolved(e.pens.pens)
            if shown != self._shown:
                self.tail, self._shown = fresh, shown
                tail_changed = True
        pen_count = mark[6][0]
        start = (mark[5], max(pen_count - 1, 0), mark[7], mark[8], mark[9])
        return build_update(e, self.tail, index, replaced, repaired, start, tail_changed)
