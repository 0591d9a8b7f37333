"""The pipeline (spec §10): one incremental engine; batch analysis is a loop over it, so the two
cannot disagree. :class:`Session` adds append / replace-last with change reports (§12.7)."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from trading_system.config import MacdSeed, PenDefinition, Strength
from trading_system.engine.document import AnalysisDoc, UpdateDoc, build_document, build_update
from trading_system.engine.fractal import Fractal, classify
from trading_system.engine.kline import (
    Float64Array,
    Int64Array,
    MergedBars,
    MergedLast,
    Repair,
    bar_ok,
    check_bar,
    validate_series,
)
from trading_system.engine.macd import MacdSnapshot, MacdState, MacdValue
from trading_system.engine.pen import ADDED, NONE, Pen, PenBuilder, PenState
from trading_system.engine.pivot import Pivot, find_pivots
from trading_system.engine.segment import (
    LevelStrokes,
    PenLike,
    SegmentEngine,
    SegmentSpan,
    Stroke,
)
from trading_system.engine.signal import Signal, StrengthCache, segment_signals
from trading_system.errors import InvalidBars, StateError, Violation

if TYPE_CHECKING:
    from trading_system.config import EngineConfig

MAX_BARS = 2**32 - 1
"""Bar indices are 32-bit in the contract (§12.6)."""


class BarColumns(Protocol):
    """Columnar bars: ``time`` (int64 epoch ms) and float64 ``open`` … ``volume`` (read only
    here, so any object with these attributes will do, such as :class:`trading_system.data.Bars`).
    """

    @property
    def time(self) -> Int64Array: ...
    @property
    def open(self) -> Float64Array: ...
    @property
    def high(self) -> Float64Array: ...
    @property
    def low(self) -> Float64Array: ...
    @property
    def close(self) -> Float64Array: ...
    @property
    def volume(self) -> Float64Array: ...


Shown = tuple[
    list[tuple[SegmentSpan, Fractal, Fractal]],
    list[tuple[Pivot, Fractal, Fractal]],
    list[tuple[Signal, Fractal]],
]
"""The tail as the client sees it (:meth:`Tail.resolved`): each segment and pivot with the
start and end of its pens, each point with the end of its pen."""


LevelMark = tuple[int, int, int, int]
"""The lengths of a :class:`Level` 's strokes, segments, pivots and points."""


class Mark(NamedTuple):
    """What the next bar may change (:meth:`Engine.mark`), to undo it (:meth:`Engine.restore`):
    list lengths and the state of the parts that change in place."""

    bars: int
    macd: MacdSnapshot
    last_macd: MacdValue
    merged: int
    last_merged: MergedLast | None
    fractals: int
    pens: PenState
    segments: int
    pivots: int
    signals: int
    repairs: int
    levels: tuple[LevelMark, ...]


class Level:
    """Degree n ≥ 2 (§13, 线段的线段): the segment engine run on strokes, the degree-(n−1)
    segments read as pens. ``strokes`` holds the final strokes (the settled segments of the
    degree below); the lists hold what never changes, as the engine's degree-1 lists do."""

    __slots__ = ("seg", "strokes", "segments", "pivots", "signals", "strengths", "backup")

    def __init__(self, strict: bool, inclusion: bool) -> None:
        self.seg = SegmentEngine(strict, inclusion)
        self.strokes: list[Stroke] = []
        self.segments: list[SegmentSpan] = []
        self.pivots: list[Pivot] = []
        self.signals: list[Signal] = []
        self.strengths = StrengthCache()
        # While recording, the segment state as it was before the current bar (taken lazily).
        self.backup: SegmentEngine | None = None

    def mark(self) -> LevelMark:
        self.backup = None
        return (len(self.strokes), len(self.segments), len(self.pivots), len(self.signals))

    def restore(self, mark: LevelMark) -> None:
        strokes, segments, pivots, signals = mark
        if self.backup is not None:
            self.seg = self.backup.copy()
        del self.strokes[strokes:]
        del self.segments[segments:]
        del self.pivots[pivots:]
        del self.signals[signals:]


class LevelTail(NamedTuple):
    """The non-final part of one higher degree: the strokes made of the degree below's
    non-final segments (they follow the level's final strokes), and its own tail."""

    strokes: list[Stroke]
    segments: list[SegmentSpan]
    pivots: list[Pivot]
    signals: list[Signal]


class Tail:
    """The non-final part of the structure: segments that are not confirmed (ending with the
    last pen, pending a gap confirmation, or forming), their pivots and the points they give;
    ``higher`` the same for degrees 2 and up."""

    __slots__ = ("segments", "pivots", "signals", "higher")

    def __init__(
        self,
        segments: list[SegmentSpan] | None = None,
        pivots: list[Pivot] | None = None,
        signals: list[Signal] | None = None,
    ) -> None:
        self.segments = segments or []
        self.pivots = pivots or []
        self.signals = signals or []
        self.higher: list[LevelTail] = []

    def resolved(self, pens: Sequence[PenLike]) -> Shown:
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
            m.seed == MacdSeed.SMA,
        )
        self.last_macd: MacdValue = (np.nan, np.nan, np.nan)
        # Per-bar columns as packed arrays (8 bytes a bar each instead of a pointer and an
        # object): a streaming session's memory grows by what it must keep, not by boxes.
        self.times: array[int] = array("q")
        self.histogram: array[float] = array("d")
        self.dif: array[float] = array("d")
        self.dea: array[float] = array("d")
        self.merged = MergedBars()
        self.fractals: list[Fractal] = []
        self.pens = PenBuilder(
            cfg.pen.definition == PenDefinition.TRADITIONAL, bool(cfg.pen.strict_validation)
        )
        strict = bool(cfg.segment.feature_sequence_strict)
        inclusion = bool(cfg.segment.handle_inclusion)
        self.seg = SegmentEngine(strict, inclusion)
        self.levels = [Level(strict, inclusion) for _ in range(int(cfg.structure.degrees) - 1)]
        self.segments: list[SegmentSpan] = []
        self.pivots: list[Pivot] = []
        self.signals: list[Signal] = []
        self.repairs: list[Repair] = []
        s = cfg.signal
        self.measure = Strength(s.strength)
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
        n_final = len(pens) - 1
        self.seg.run(pens, n_final, new)
        if not new:
            return
        first = len(self.segments)
        self.segments.extend(new)
        self._derive(pens, n_final, new, first, True, self.strengths, self.pivots, self.signals)
        below: Sequence[PenLike] = pens
        for lv in self.levels:
            # The settled segments are the next degree's new final strokes (§13).
            if self.recording and lv.backup is None:
                lv.backup = lv.seg.copy()
            strokes = lv.strokes
            strokes.extend(s.stroke(below) for s in new)
            new = []
            lv.seg.run(strokes, len(strokes), new)
            if not new:
                return
            first = len(lv.segments)
            lv.segments.extend(new)
            self._derive(
                strokes, len(strokes), new, first, True, lv.strengths, lv.pivots, lv.signals
            )
            below = strokes

    def _derive(
        self,
        pens: Sequence[PenLike],
        n_final: int,
        spans: list[SegmentSpan],
        first: int,
        confirmed: bool,
        cache: StrengthCache,
        pivots: list[Pivot],
        signals: list[Signal],
    ) -> None:
        """Appends the pivots and points of ``spans`` (of ``pens``, the first ``n_final`` of
        them final), the first of which is segment ``first``."""
        for j, span in enumerate(spans):
            at = len(pivots)
            find_pivots(pens, span, first + j, pivots)
            segment_signals(
                pens,
                n_final,
                self.histogram,
                self.measure,
                self.divergence_rate,
                self.min_pivots,
                span,
                pivots[at:],
                at,
                confirmed and span.confirmed,
                cache,
                signals,
            )

    def tail(
        self, cache: StrengthCache | None = None, caches: list[StrengthCache] | None = None
    ) -> Tail:
        """The non-final tail at every degree, reusing strengths already in ``cache`` (degree 1)
        and ``caches`` (one per higher degree)."""
        pens = self.pens.pens
        t = Tail(self.seg.tail(pens))
        n_final = max(len(pens) - 1, 0)
        self._derive(
            pens,
            n_final,
            t.segments,
            len(self.segments),
            False,
            cache if cache is not None else StrengthCache(),
            t.pivots,
            t.signals,
        )
        if not self.levels:
            return t
        below: Sequence[PenLike] = pens
        segments = t.segments
        try:
            for k, lv in enumerate(self.levels):
                # The level's final strokes, then those of the segments below not settled:
                # appended for the computation, removed afterwards.
                strokes = lv.strokes
                n_final = len(strokes)
                extra = [s.stroke(below) for s in segments]
                strokes.extend(extra)
                segments = lv.seg.tail(strokes)
                lt = LevelTail(extra, segments, [], [])
                c = caches[k] if caches is not None else StrengthCache()
                self._derive(
                    strokes, n_final, segments, len(lv.segments), False, c, lt.pivots, lt.signals
                )
                t.higher.append(lt)
                below = strokes
        finally:
            for lv, lt in zip(self.levels, t.higher, strict=False):
                del lv.strokes[len(lv.strokes) - len(lt.strokes) :]
        return t

    def mark(self) -> Mark:
        """Records what the next bar may change."""
        self.recording = True
        self.seg_backup = None
        merged = self.merged
        return Mark(
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
            tuple(lv.mark() for lv in self.levels),
        )

    def restore(self, mark: Mark) -> None:
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
            levels,
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
        for lv, m in zip(self.levels, levels, strict=True):
            lv.restore(m)

    def stop_recording(self) -> None:
        """Nothing will restore the next bar: keep no segment state for it."""
        self.recording = False
        self.seg_backup = None
        for lv in self.levels:
            lv.backup = None

    def document(self, tail: Tail) -> AnalysisDoc:
        return build_document(self, tail)


def _f64(x: Float64Array) -> Float64Array:
    return np.ascontiguousarray(x, dtype=np.float64)


def _columns(
    bars: BarColumns,
) -> tuple[Int64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array]:
    return (
        np.ascontiguousarray(bars.time, dtype=np.int64),
        _f64(bars.open),
        _f64(bars.high),
        _f64(bars.low),
        _f64(bars.close),
        _f64(bars.volume),
    )


def analyze(
    bars: BarColumns,
    cfg: EngineConfig,
    with_macd: bool = False,
    each: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> AnalysisDoc:
    """Analyzes a whole series (spec §1–§9) into the analysis document. Rejects it whole,
    naming every bad bar (:class:`InvalidBars`), unless valid. ``each(rows, n)``, when given,
    wraps the loop over the bars (a progress bar)."""
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
    rows: Iterable[Any] = zip(t.tolist(), h.tolist(), lo.tolist(), c.tolist(), strict=True)
    if each is not None:
        rows = each(rows, len(t))
    for ti, hi, li, ci in rows:
        push(ti, hi, li, ci)
    return e.document(e.tail())


Bar = tuple[int, float, float, float, float, float]
"""One bar as the session takes it: time (epoch ms), open, high, low, close, volume."""
BatchOp = tuple[bool, Bar]
"""One message of a batch (:meth:`Session.catch_up`): whether it replaces the last bar, and the
bar."""


class BatchError(Exception):
    """A batch refused at its message ``index`` (nothing of it applied): ``error`` is what
    :meth:`Session.append` or :meth:`Session.replace_last` raises for that message, given the
    ones before it."""

    def __init__(self, index: int, error: InvalidBars | StateError) -> None:
        super().__init__(f"message {index}: {error}")
        self.index = index
        self.error = error


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
        self.tail = self.engine.tail()
        self._shown: Shown = self.tail.resolved([])
        self._strengths = StrengthCache()
        self._level_strengths = [StrengthCache() for _ in self.engine.levels]
        self._level_shown = self._levels_shown()

    @property
    def bars(self) -> int:
        return len(self.engine.times)

    def document(self) -> AnalysisDoc:
        return self.engine.document(self.tail)

    def _check(self, index: int, bar: Bar, prev: int | None) -> Repair | None:
        if bar_ok(*bar, prev, self._allow):
            return None
        out: list[Violation] = []
        r = check_bar(index, *bar, prev, self._allow, self._repair, out)
        if out:
            raise InvalidBars(out)
        return r

    def append(
        self, time: int, open: float, high: float, low: float, close: float, volume: float
    ) -> UpdateDoc:
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
    ) -> UpdateDoc:
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

    def check_batch(self, ops: Sequence[BatchOp]) -> list[Repair | None]:
        """What :meth:`catch_up` would do with ``ops``, without changing anything: each bar
        checked as :meth:`append` or :meth:`replace_last` would check it after the ones before
        it (the checks read only the bar count and the last two times, so they can be followed
        without applying anything). Returns each message's repair; raises :class:`BatchError`
        for the first message refused."""
        n = len(self.engine.times)
        last, prev = self._last_time, self._prev_time
        out: list[Repair | None] = []
        for k, (replace, bar) in enumerate(ops):
            try:
                if replace:
                    if n == 0:
                        raise StateError("replace_last: the session has no bar to replace")
                    out.append(self._check(n - 1, bar, prev))
                    last = bar[0]
                else:
                    if n >= MAX_BARS:
                        raise StateError(f"a series holds at most {MAX_BARS} bars")
                    out.append(self._check(n, bar, last))
                    prev, last = last, bar[0]
                    n += 1
            except (InvalidBars, StateError) as e:
                raise BatchError(k, e) from None
        return out

    def catch_up(self, ops: Sequence[BatchOp]) -> None:
        """Applies many messages at batch speed: all of them, or none when one is refused
        (:class:`BatchError`, raised before anything changes). The state afterwards is the one
        :meth:`append` and :meth:`replace_last` give applied one by one, but no update document
        is built, the replacement mark is taken only where a replacement or the next message
        may need it, and the tail is computed once at the end."""
        repairs = self.check_batch(ops)
        if not ops:
            return
        e = self.engine
        last = len(ops) - 1
        for k, (replace, bar) in enumerate(ops):
            repair = repairs[k]
            if replace:
                e.restore(self._mark)
            elif k == last or ops[k + 1][0]:
                # The last append of the batch (a later replace_last restores to before it) or
                # one a replacement follows: mark it as append() does.
                self._mark = e.mark()
            else:
                # Nothing will restore this bar: no mark, and no segment state kept for one.
                e.stop_recording()
            if repair is not None:
                e.repairs.append(repair)
                bar = (bar[0], bar[1], repair.new_high, repair.new_low, bar[4], bar[5])
            e.push(bar[0], bar[2], bar[3], bar[4])
            if not replace:
                self._prev_time = self._last_time
            self._last_time = bar[0]
        self.tail = e.tail(self._strengths, self._level_strengths)
        self._shown = self.tail.resolved(e.pens.pens)
        self._level_shown = self._levels_shown()

    def _levels_shown(self) -> list[Shown]:
        """Each higher degree's tail with the stroke ends it shows (as :meth:`Tail.resolved`)."""
        levels = zip(self.engine.levels, self.tail.higher, strict=True)
        return [
            Tail(lt.segments, lt.pivots, lt.signals).resolved(LevelStrokes(lv.strokes, lt.strokes))
            for lv, lt in levels
        ]

    def _report(self, index: int, replaced: bool, pens_changed: bool, repaired: bool) -> UpdateDoc:
        e, mark = self.engine, self._mark
        tail_changed = False
        levels_changed = [False] * len(e.levels)
        if pens_changed:
            fresh = e.tail(self._strengths, self._level_strengths)
            shown = fresh.resolved(e.pens.pens)
            # Kept even when shown the same: its segment indices are the current ones.
            self.tail = fresh
            if shown != self._shown:
                self._shown = shown
                tail_changed = True
            # Each higher degree is reported changed when its own tail is shown otherwise.
            for k, level_shown in enumerate(self._levels_shown()):
                if level_shown != self._level_shown[k]:
                    self._level_shown[k] = level_shown
                    levels_changed[k] = True
        pen_count = mark.pens[0]
        start = (mark.fractals, max(pen_count - 1, 0), mark.segments, mark.pivots, mark.signals)
        levels = (mark.levels, levels_changed)
        return build_update(e, self.tail, index, replaced, repaired, start, tail_changed, *levels)
