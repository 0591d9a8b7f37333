//! The non-final tail (spec §10) and how a session keeps it up to date.
//!
//! The tail is a function of the pens alone: [`Engine::tail`] derives it from scratch (as a
//! batch analysis does). A session does not: after each bar that changes the pens it chooses,
//! from a few named facts ([`TailFacts`]), one [`TailPlan`] (keep the tail, recompute the points
//! of its last segment, or derive it again reusing what read only unchanged pens) and carries it
//! out. `docs/design/incremental-tail.md` lists each fast path, the invariant it rests on and the
//! tests that guard it; in debug builds (tests included) every refresh is checked against a tail
//! derived from scratch.

use super::engine::{derive, Engine};
use crate::fractal::Fractal;
use crate::kline::Direction;
use crate::pen::{Pen, PenEvent};
use crate::pivot::Pivot;
use crate::segment::{FormingMemo, SegmentEngine, SegmentSpan};
use crate::signal::{segment_signals, Inputs, Signal, StrengthCache, POINT_READ_AHEAD};

/// The non-final part of the structure: segments that are not confirmed (ending with the last
/// pen, pending a gap confirmation, or forming), their pivots and the points they give.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    pub segments: Vec<SegmentSpan>,
    pub pivots: Vec<Pivot>,
    pub signals: Vec<Signal>,
    /// The chart points its items show (raw bar index and price of each segment's and pivot's
    /// start and end, each buy/sell point's pen end): the last pen can move while the spans stay
    /// the same, and then the tail as output changes.
    ends: Vec<(u32, f64)>,
    /// Index (in the whole segment list) of the first tail segment.
    first: usize,
    /// Per tail segment, where its pivots and its points end in `pivots` and `signals`.
    bounds: Vec<(u32, u32)>,
}

impl Tail {
    /// One past the last pen any item reads a point of. Segments come in pen order; a pivot
    /// lies inside its segment; a point may be read from a pen after its segment's end.
    fn reach(&self) -> u32 {
        let spans = self.segments.last().map_or(0, |s| s.last_pen + 1);
        let points = self.signals.iter().map(|g| g.pen + 1).max().unwrap_or(0);
        spans.max(points)
    }

    /// The pivots and points of segment `index` when it is `span` here, with where its pivots
    /// start in `pivots` (the points' `pivot` indices count from there).
    fn derived(&self, index: usize, span: &SegmentSpan) -> Option<(&[Pivot], &[Signal], u32)> {
        let k = index.checked_sub(self.first)?;
        if self.segments.get(k) != Some(span) {
            return None;
        }
        let (z, g) = self.items(k);
        Some((z, g, self.starts(k).0))
    }

    /// Where the pivots and points of tail segment `k` start in `pivots` and `signals`.
    #[inline]
    fn starts(&self, k: usize) -> (u32, u32) {
        if k == 0 {
            (0, 0)
        } else {
            self.bounds[k - 1]
        }
    }

    /// Records the chart points the items show with `pens`.
    fn show(&mut self, pens: &[Pen]) {
        show(
            pens,
            &self.segments,
            &self.pivots,
            &self.signals,
            &mut self.ends,
        );
    }

    /// [`Self::show`] after the points of the last segment were computed again, the segments
    /// and pivots the same and only the last pen's end moved: of the points shown, those may
    /// have moved that read that end (the end of a segment ending with the last pen; a pivot
    /// ends before its segment's last pen) and those of the last segment's points (the points
    /// of the segments before it read no pen that far: see [`plan`]).
    fn show_last(&mut self, pens: &[Pen]) {
        let k = self.segments.len() - 1;
        self.ends[2 * k + 1] = at(&pens[self.segments[k].last_pen as usize].end);
        let g0 = self.starts(k).1 as usize;
        self.ends
            .truncate(2 * (self.segments.len() + self.pivots.len()) + g0);
        (self.ends).extend(
            self.signals[g0..]
                .iter()
                .map(|g| at(&pens[g.pen as usize].end)),
        );
    }

    /// The pivots and points of tail segment `k`.
    #[inline]
    fn items(&self, k: usize) -> (&[Pivot], &[Signal]) {
        let (z0, g0) = self.starts(k);
        let (z1, g1) = self.bounds[k];
        (
            &self.pivots[z0 as usize..z1 as usize],
            &self.signals[g0 as usize..g1 as usize],
        )
    }
}

/// The chart point of a fractal: its raw bar index and price.
#[inline]
fn at(f: &Fractal) -> (u32, f64) {
    (f.index, f.price)
}

/// Writes into `ends` the chart points that `segments`, `pivots` and `signals` (over `pens`) show:
/// raw bar index and price of each segment's and pivot's start and end, each point's pen end.
pub(super) fn show(
    pens: &[Pen],
    segments: &[SegmentSpan],
    pivots: &[Pivot],
    signals: &[Signal],
    ends: &mut Vec<(u32, f64)>,
) {
    let span = |a: u32, b: u32| [at(&pens[a as usize].start), at(&pens[b as usize].end)];
    ends.clear();
    ends.reserve(2 * (segments.len() + pivots.len()) + signals.len());
    for s in segments {
        ends.extend_from_slice(&span(s.first_pen, s.last_pen));
    }
    for z in pivots {
        ends.extend_from_slice(&span(z.first_pen, z.last_pen));
    }
    ends.extend(signals.iter().map(|g| at(&pens[g.pen as usize].end)));
}

/// Equal as output: the same items showing the same points.
impl PartialEq for Tail {
    fn eq(&self, o: &Self) -> bool {
        // The points first: a tail that changes almost always shows a point elsewhere.
        self.ends == o.ends
            && self.segments == o.segments
            && self.pivots == o.pivots
            && self.signals == o.signals
    }
}

/// Working space for computing tails, kept across calls: the copy of the segment engine that is
/// run on the last pen (reused, not allocated per call), the scans of the forming segments, the
/// strengths already computed and the points of one segment computed again.
#[derive(Debug, Clone)]
struct TailWork {
    segments: SegmentEngine,
    forming: FormingMemo,
    strengths: StrengthCache,
    signals: Vec<Signal>,
    /// Unit tests: how often a tail segment kept its pivots and points, kept its pivots only,
    /// or was derived again.
    #[cfg(test)]
    reused: [u32; 3],
}

impl Default for TailWork {
    fn default() -> Self {
        Self {
            // Overwritten from the engine's own before each use.
            segments: SegmentEngine::new(true, true),
            forming: FormingMemo::default(),
            strengths: StrengthCache::default(),
            signals: Vec::new(),
            #[cfg(test)]
            reused: [0; 3],
        }
    }
}

/// What a tail is derived from, at any degree: the strokes (the pens at degree 1, a degree's
/// segments read as strokes above it, spec §13) with the points' inputs, and the segment engine
/// that settled the first `settled` segments of them.
#[derive(Debug, Clone, Copy)]
pub(super) struct TailSource<'a> {
    pub(super) seg: &'a SegmentEngine,
    pub(super) settled: usize,
    pub(super) inputs: Inputs<'a>,
    /// `seg` run further, over every stroke but the last, with the segments that run found: the
    /// tail's segments are those followed by what this engine's tail adds (the same, since the
    /// engine goes stroke by stroke), and its fast paths for a last stroke alone apply. Higher
    /// degrees keep one, as their settled strokes end well before the last.
    pub(super) ahead: Option<(&'a SegmentEngine, &'a [SegmentSpan])>,
}

impl TailSource<'_> {
    fn pens(&self) -> &[Pen] {
        self.inputs.pens
    }

    /// Computes the non-final tail into `out` with the working space `work`. `prev` is the
    /// tail computed before with every pen below `stable` the same as now: a segment found
    /// there again, at the same index and using only those pens, keeps its pivots and points.
    fn tail_into(&self, out: &mut Tail, work: &mut TailWork, prev: Option<(&Tail, u32)>) {
        self.tail_segments(out, work, prev.map_or(0, |(_, stable)| stable));
        self.derive_tail(out, work, prev);
    }

    /// The tail's segments into `out` (the rest of it is left to [`Self::derive_tail`]); the
    /// scans of forming segments in `work` that read only pens below `stable` are resumed.
    fn tail_segments(&self, out: &mut Tail, work: &mut TailWork, stable: u32) {
        out.segments.clear();
        let seg = match self.ahead {
            Some((ahead, found)) => {
                out.segments.extend_from_slice(found);
                ahead
            }
            None => self.seg,
        };
        let (scratch, memo) = (&mut work.segments, &mut work.forming);
        seg.tail(self.pens(), scratch, memo, stable, &mut out.segments);
    }

    /// The pivots and points of the tail's segments, and the points they show.
    fn derive_tail(&self, out: &mut Tail, work: &mut TailWork, prev: Option<(&Tail, u32)>) {
        out.pivots.clear();
        out.signals.clear();
        out.bounds.clear();
        let pens = self.pens();
        let inputs = self.inputs;
        let first = self.settled;
        out.first = first;
        for (j, span) in out.segments.iter().enumerate() {
            let (pivots, signals) = (&mut out.pivots, &mut out.signals);
            // A segment starts and ends with pens of its direction, and its pivots are made of
            // the pens between (its last pen is not read); its points read up to
            // `POINT_READ_AHEAD` pens after it. What read only pens below `stable` is kept.
            let old = prev.and_then(|(old, stable)| Some((old.derived(first + j, span)?, stable)));
            match old {
                Some(((z, g, z0), stable)) if span.last_pen + POINT_READ_AHEAD < stable => {
                    #[cfg(test)]
                    {
                        work.reused[0] += 1;
                    }
                    // The pivots move from `z0` to `from`: so do the points' pivot indices.
                    let from = pivots.len() as u32;
                    pivots.extend(z.iter().copied());
                    signals.extend(g.iter().map(|s| Signal {
                        pivot: s.pivot - z0 + from,
                        ..*s
                    }));
                }
                Some(((z, _, _), stable)) if span.last_pen <= stable => {
                    #[cfg(test)]
                    {
                        work.reused[1] += 1;
                    }
                    let from = pivots.len();
                    pivots.extend(z.iter().copied());
                    let cache = &mut work.strengths;
                    let first = from as u32;
                    segment_signals(&inputs, span, &pivots[from..], first, false, cache, signals);
                }
                _ => {
                    #[cfg(test)]
                    {
                        work.reused[2] += 1;
                    }
                    derive(
                        &inputs,
                        span,
                        first + j,
                        false,
                        &mut work.strengths,
                        pivots,
                        signals,
                    );
                }
            }
            out.bounds
                .push((out.pivots.len() as u32, out.signals.len() as u32));
        }
        out.show(pens);
    }

    /// The non-final tail from scratch (from the settled engine, not the one run ahead).
    pub(super) fn tail(&self) -> Tail {
        let mut t = Tail::default();
        let src = TailSource {
            ahead: None,
            ..*self
        };
        src.tail_into(&mut t, &mut TailWork::default(), None);
        t
    }
}

impl Engine {
    /// The tail's source: the pens, the segments settled and the points' inputs.
    pub(super) fn source(&self) -> TailSource<'_> {
        TailSource {
            seg: &self.seg,
            settled: self.segments.len(),
            inputs: self.inputs(),
            ahead: None,
        }
    }

    /// The non-final tail.
    pub fn tail(&self) -> Tail {
        self.source().tail()
    }
}

/// How the pens changed in the call whose tail is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PenChange {
    /// An appended bar moved the last pen's end on ([`PenEvent::Extended`]); its start and every
    /// pen before it are as they were.
    LastMovedOn,
    /// An appended bar added a pen ([`PenEvent::Added`]); every pen before it is as it was.
    Added,
    /// The last bar was replaced and the pens differ: those from pen `from` on (the last pen
    /// before the replaced bar) may be other than the tail was computed from.
    Replaced { from: u32 },
}

impl PenChange {
    /// The change an appended bar made, from what [`Engine::push`] returned; `None` when it
    /// left the pens (and so the tail) as they were.
    pub(super) fn of_append(event: PenEvent) -> Option<Self> {
        match event {
            PenEvent::None => None,
            PenEvent::Extended => Some(Self::LastMovedOn),
            PenEvent::Added => Some(Self::Added),
        }
    }

    /// How the strokes after the settled ones changed from `before` (those the tail was derived
    /// from) to `now`, the first `same` of them equal, `from` the index of the first one that
    /// differs: the last one moved on (same start and direction, its end strictly further), one
    /// added after them, or anything else. Higher degrees (§13) read a degree's segments as
    /// strokes: they move as pens do, and the same plans apply.
    pub(super) fn of_strokes(before: &[Pen], now: &[Pen], same: usize, from: u32) -> Self {
        let moved_on = |a: &Pen, b: &Pen| {
            a.dir == b.dir
                && a.start == b.start
                && match b.dir {
                    Direction::Up => b.end.price > a.end.price,
                    Direction::Down => b.end.price < a.end.price,
                }
        };
        if now.len() == before.len() && same + 1 == now.len() && moved_on(&before[same], &now[same])
        {
            Self::LastMovedOn
        } else if now.len() == before.len() + 1 && same == before.len() {
            Self::Added
        } else {
            Self::Replaced { from }
        }
    }

    /// The pens below this index are those the current tail was computed from, given `pens`
    /// pens now: one bar extends the last pen or adds one after it (leaving the one before as it
    /// was); a replacement undoes a bar and applies another.
    fn stable(self, pens: u32) -> u32 {
        match self {
            Self::LastMovedOn | Self::Added => pens - 1,
            Self::Replaced { from } => from,
        }
    }
}

/// What the choice of a [`TailPlan`] depends on, gathered before the tail is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TailFacts {
    /// How the pens changed.
    pub change: PenChange,
    /// Number of pens now.
    pub pens: u32,
    /// The pens below it are those the current tail was computed from.
    pub stable: u32,
    /// The tail's segments, computed again, are the same, at the same indices (no segment was
    /// confirmed meanwhile).
    pub same_segments: bool,
    /// One past the last pen any item of the current tail reads a point of ([`Tail::reach`]).
    pub reach: u32,
    /// One past the last pen the points of the tail segments before the last one may read (the
    /// one before the last's last pen plus [`POINT_READ_AHEAD`], plus one); 0 when the tail has
    /// fewer than two segments.
    pub earlier_reach: u32,
    /// Only when a pen was added and the segments are the same: whether the points that may
    /// read the new pen come out as they are when computed again ([`LiveTail::new_pen_changes_no_point`]).
    /// `None` when not checked (the plan does not need it).
    pub new_pen_changes_no_point: Option<bool>,
}

/// How the latest refresh changed what a degree above reads of the tail (spec §13, "Strokes"):
/// its segments' spans, with the start of each one's first pen and the end of its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum SpanChange {
    /// The same spans, at the same indices, over pens whose starts and ends they read are the
    /// same: the strokes above are as they were.
    Same,
    /// The same spans at the same indices; the last one ends with the last pen, whose end moved
    /// on: the last stroke above moved, nothing else.
    LastEndMoved,
    /// Anything else: compare the strokes.
    #[default]
    Any,
}

impl SpanChange {
    /// From how the pens changed, whether the spans are the same and the spans themselves.
    fn of(change: PenChange, same_segments: bool, segments: &[SegmentSpan], pens: u32) -> Self {
        match change {
            // A new pen is read by no span that was there before it.
            PenChange::Added if same_segments => Self::Same,
            // Only the last pen's end moved; a span starting with it reads its start.
            PenChange::LastMovedOn if same_segments => {
                if segments.last().is_some_and(|s| s.last_pen + 1 == pens) {
                    Self::LastEndMoved
                } else {
                    Self::Same
                }
            }
            _ => Self::Any,
        }
    }
}

/// What a refresh of the tail does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TailPlan {
    /// The tail stays as it is: nothing it shows reads a pen that changed. Reported unchanged.
    Keep,
    /// The last pen moved on and the tail reads it, with the same segments: the pivots stay, the
    /// points of the last segment are computed again in place (those of the segments before it
    /// do not read the last pen). Reported changed: a point it shows moved.
    RecomputeLastPoints,
    /// The pivots and points of the segments computed again, reusing those of a segment found
    /// at the same index that read only pens below `stable`; compared with the tail before.
    DeriveFrom { stable: u32 },
}

/// Chooses how to refresh the tail. Pure: every fact it reads is in `f`.
///
/// With the same segments at the same indices, only points can change: every pivot lies inside
/// its segment, before the segment's last pen; every point reads at most [`POINT_READ_AHEAD`]
/// pens after its segment's end (or its pivot's); every pen below `stable` is the same.
pub(super) fn plan(f: &TailFacts) -> TailPlan {
    let derive = TailPlan::DeriveFrom { stable: f.stable };
    if !f.same_segments {
        return derive;
    }
    match f.change {
        // A replaced bar may have moved the last pen back, or removed one: derived again.
        PenChange::Replaced { .. } => derive,
        PenChange::LastMovedOn => {
            let last = f.pens - 1;
            if f.reach <= last {
                // No item reads the last pen. A pen that moves on only makes the breaks of types
                // 2 and 3 it would complete harder to reach; such points, if shown, read it.
                TailPlan::Keep
            } else if f.earlier_reach <= last {
                TailPlan::RecomputeLastPoints
            } else {
                derive
            }
        }
        PenChange::Added => match f.new_pen_changes_no_point {
            Some(true) => TailPlan::Keep,
            _ => derive,
        },
    }
}

/// A session's tail kept up to date: the tail, the one being computed (then swapped with it)
/// and the working space both are computed with.
#[derive(Debug, Clone, Default)]
pub(super) struct LiveTail {
    tail: Tail,
    fresh: Tail,
    work: TailWork,
    /// What the latest refresh changed of what a degree above reads.
    span_change: SpanChange,
    /// Unit tests: how often each plan was carried out (Keep, `RecomputeLastPoints`, `DeriveFrom`).
    #[cfg(test)]
    taken: [u32; 3],
}

impl LiveTail {
    /// The current tail.
    pub(super) fn get(&self) -> &Tail {
        &self.tail
    }

    /// What the latest refresh (or rebuild) changed of what a degree above reads.
    pub(super) fn span_change(&self) -> SpanChange {
        self.span_change
    }

    /// The strengths the tail computed: a higher degree derives its newly settled segments with
    /// them, since their strokes were the tail's a bar ago.
    pub(super) fn strengths(&mut self) -> &mut StrengthCache {
        &mut self.work.strengths
    }

    /// Unit tests: how often each plan was carried out.
    #[cfg(test)]
    pub(super) fn taken(&self) -> [u32; 3] {
        self.taken
    }

    /// The tail from scratch, as a batch analysis computes it: nothing of the tail before is
    /// read (the forming-segment memo and the strengths cached were for other pens).
    pub(super) fn rebuild(&mut self, src: &TailSource) {
        self.work = TailWork::default();
        src.tail_into(&mut self.fresh, &mut self.work, None);
        std::mem::swap(&mut self.fresh, &mut self.tail);
        self.span_change = SpanChange::Any;
        self.check(src);
    }

    /// Recomputes the tail after the pens changed (`change`); returns whether it changed as
    /// output.
    #[inline(never)]
    pub(super) fn refresh(&mut self, src: &TailSource, change: PenChange) -> bool {
        let pens = src.pens().len() as u32;
        let stable = change.stable(pens);
        src.tail_segments(&mut self.fresh, &mut self.work, stable);
        let facts = self.facts(src, change, pens, stable);
        let plan = plan(&facts);
        #[cfg(test)]
        {
            self.taken[match plan {
                TailPlan::Keep => 0,
                TailPlan::RecomputeLastPoints => 1,
                TailPlan::DeriveFrom { .. } => 2,
            }] += 1;
        }
        let changed = match plan {
            TailPlan::Keep => false,
            TailPlan::RecomputeLastPoints => {
                self.recompute_last_points(src);
                true
            }
            TailPlan::DeriveFrom { stable } => {
                let prev = Some((&self.tail, stable));
                src.derive_tail(&mut self.fresh, &mut self.work, prev);
                let changed = self.fresh != self.tail;
                // Kept even when equal as output: its segment indices are the current ones.
                std::mem::swap(&mut self.fresh, &mut self.tail);
                changed
            }
        };
        let segments = &self.tail.segments;
        self.span_change = SpanChange::of(change, facts.same_segments, segments, pens);
        self.check(src);
        changed
    }

    /// The facts [`plan`] reads, with the fresh segments in `self.fresh`.
    fn facts(&mut self, src: &TailSource, change: PenChange, pens: u32, stable: u32) -> TailFacts {
        let tail = &self.tail;
        let same_segments = self.fresh.segments == tail.segments && src.settled == tail.first;
        let earlier_reach = match tail.segments.len().checked_sub(2) {
            Some(k) => tail.segments[k].last_pen + POINT_READ_AHEAD + 1,
            None => 0,
        };
        let reach = tail.reach();
        let new_pen_changes_no_point = (same_segments && change == PenChange::Added)
            .then(|| self.new_pen_changes_no_point(src, pens));
        TailFacts {
            change,
            pens,
            stable,
            same_segments,
            reach,
            earlier_reach,
            new_pen_changes_no_point,
        }
    }

    /// Whether the tail stays as it is when a streamed bar added a pen (the one before stays
    /// as it was) and left the tail's segments as they were. The points that may read the new
    /// pen, those of a segment with a pivot ending [`POINT_READ_AHEAD`] pens or less before it
    /// (type 3) or with a point of type 1 that close (type 2), are computed again and must come
    /// out the same (see [`plan`] for why nothing else can change).
    fn new_pen_changes_no_point(&mut self, src: &TailSource, pens: u32) -> bool {
        let (tail, work) = (&self.tail, &mut self.work);
        let newest = pens - 1;
        let inputs = src.inputs;
        for (k, span) in tail.segments.iter().enumerate() {
            let (pivots, signals) = tail.items(k);
            let first_pivot = tail.starts(k).0;
            let near = pivots
                .iter()
                .any(|z| z.last_pen + POINT_READ_AHEAD >= newest)
                || signals
                    .iter()
                    .any(|g| g.kind == 1 && g.pen + POINT_READ_AHEAD >= newest);
            if near {
                work.signals.clear();
                let (cache, out) = (&mut work.strengths, &mut work.signals);
                segment_signals(&inputs, span, pivots, first_pivot, false, cache, out);
                if work.signals[..] != *signals {
                    return false;
                }
            }
        }
        true
    }

    /// [`TailPlan::RecomputeLastPoints`]: the points of the last segment computed again in
    /// place, and the points the tail shows.
    fn recompute_last_points(&mut self, src: &TailSource) {
        let tail = &mut self.tail;
        // The plan chose this because an item reads the last pen: there is a segment.
        let k = tail.segments.len() - 1;
        let ((z0, g0), z1) = (tail.starts(k), tail.bounds[k].0);
        tail.signals.truncate(g0 as usize);
        let inputs = src.inputs;
        let pivots = &tail.pivots[z0 as usize..z1 as usize];
        let cache = &mut self.work.strengths;
        segment_signals(
            &inputs,
            &tail.segments[k],
            pivots,
            z0,
            false,
            cache,
            &mut tail.signals,
        );
        tail.bounds[k].1 = tail.signals.len() as u32;
        tail.show_last(src.pens());
    }

    /// Debug builds (tests included): the tail kept equals one derived from scratch, item by
    /// item, with the same bookkeeping. Compiled out of release builds.
    #[inline]
    fn check(&self, src: &TailSource) {
        #[cfg(debug_assertions)]
        {
            let fresh = src.tail();
            let kept = &self.tail;
            assert!(
                *kept == fresh && kept.first == fresh.first && kept.bounds == fresh.bounds,
                "the kept tail differs from one derived from scratch\nkept:  {kept:?}\nfresh: {fresh:?}"
            );
        }
        #[cfg(not(debug_assertions))]
        let _ = src;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::kline::Bar;

    /// Facts under which each fast path is possible: the segments are the same, the tail reads
    /// the last of 20 pens, and there is one segment.
    fn facts(change: PenChange) -> TailFacts {
        TailFacts {
            change,
            pens: 20,
            stable: 19,
            same_segments: true,
            reach: 20,
            earlier_reach: 0,
            new_pen_changes_no_point: None,
        }
    }

    const DERIVE: TailPlan = TailPlan::DeriveFrom { stable: 19 };

    #[test]
    fn other_segments_are_derived_again() {
        for change in [PenChange::LastMovedOn, PenChange::Added] {
            let f = TailFacts {
                same_segments: false,
                reach: 0,
                new_pen_changes_no_point: Some(true),
                ..facts(change)
            };
            assert_eq!(plan(&f), DERIVE, "{change:?}");
        }
    }

    #[test]
    fn a_replaced_bar_is_derived_from_the_pen_before_it() {
        let f = TailFacts {
            stable: 7,
            reach: 0,
            ..facts(PenChange::Replaced { from: 7 })
        };
        assert_eq!(plan(&f), TailPlan::DeriveFrom { stable: 7 });
    }

    #[test]
    fn a_last_pen_moving_on_unread_keeps_the_tail() {
        let f = |reach| TailFacts {
            reach,
            ..facts(PenChange::LastMovedOn)
        };
        assert_eq!(plan(&f(19)), TailPlan::Keep);
        assert_eq!(plan(&f(0)), TailPlan::Keep);
        assert_eq!(plan(&f(20)), TailPlan::RecomputeLastPoints);
    }

    #[test]
    fn a_last_pen_read_by_an_earlier_segment_derives_again() {
        let f = |earlier_reach| TailFacts {
            earlier_reach,
            ..facts(PenChange::LastMovedOn)
        };
        // The segment before the last reads pens below 19: only the last one reads pen 19.
        assert_eq!(plan(&f(19)), TailPlan::RecomputeLastPoints);
        assert_eq!(plan(&f(20)), DERIVE);
    }

    #[test]
    fn a_new_pen_keeps_the_tail_only_when_checked_to_change_no_point() {
        let f = |checked| TailFacts {
            new_pen_changes_no_point: checked,
            ..facts(PenChange::Added)
        };
        assert_eq!(plan(&f(Some(true))), TailPlan::Keep);
        assert_eq!(plan(&f(Some(false))), DERIVE);
        assert_eq!(plan(&f(None)), DERIVE);
    }

    #[test]
    fn append_events_map_to_changes() {
        assert_eq!(PenChange::of_append(PenEvent::None), None);
        assert_eq!(
            PenChange::of_append(PenEvent::Extended),
            Some(PenChange::LastMovedOn)
        );
        assert_eq!(
            PenChange::of_append(PenEvent::Added),
            Some(PenChange::Added)
        );
        assert_eq!(PenChange::LastMovedOn.stable(20), 19);
        assert_eq!(PenChange::Added.stable(20), 19);
        assert_eq!(PenChange::Replaced { from: 7 }.stable(20), 7);
    }

    /// A random walk of `n` one-minute bars on a 0.01 grid (a fixed linear congruential
    /// generator: the same series on every machine).
    pub(in crate::analysis) fn walk(n: usize) -> Vec<Bar> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |m: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % m
        };
        let mut close = 100_000_i64;
        (0..n)
            .map(|i| {
                let open = close;
                close = (open + next(41).cast_signed() - 20).max(1_000);
                let high = open.max(close) + next(6).cast_signed();
                let low = open.min(close) - next(6).cast_signed();
                let p = |c: i64| c as f64 / 100.0;
                let time = 1_600_000_000_000 + 60_000 * i64::try_from(i).unwrap();
                Bar::new(time, p(open), p(high), p(low), p(close), 1.0)
            })
            .collect()
    }

    /// The fast paths are taken, as often as the rules allow: a guard made stricter than its
    /// invariant needs leaves every tail right (the proptests and the debug check cannot see
    /// it) but takes a fast path less often, and changes these counts (the plans carried out,
    /// and how [`Engine::derive_tail`] treated each segment). After a change of the rules, check
    /// the new counts and pin them.
    #[test]
    fn the_fast_paths_are_taken() {
        let mut engine = Engine::new(EngineConfig::default(), false);
        let mut live = LiveTail::default();
        let mut changed = 0;
        for bar in walk(20_000) {
            if let Some(change) = PenChange::of_append(engine.push(&bar)) {
                changed += u32::from(live.refresh(&engine.source(), change));
            }
        }
        assert_eq!(*live.get(), engine.tail());
        let [keep, recompute, derive] = live.taken;
        let [kept, pivots_kept, derived] = live.work.reused;
        eprintln!(
            "keep {keep}, recompute last points {recompute}, derive {derive}, changed {changed}; \
             segments derived again: points kept {kept}, pivots kept {pivots_kept}, derived {derived}"
        );
        assert!(keep > 0 && recompute > 0 && derive > 0);
        assert!(kept > 0 && pivots_kept > 0 && derived > 0);
        assert_eq!((keep, recompute, derive, changed), (971, 787, 839, 1626));
        assert_eq!((kept, pivots_kept, derived), (467, 326, 570));
    }
}
