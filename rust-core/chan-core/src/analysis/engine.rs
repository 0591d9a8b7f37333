//! The pipeline (spec §10): one incremental engine; batch analysis is a loop over it, so the two
//! cannot disagree. [`Session`] adds append / replace-last with change reports.

use std::ops::Range;

use crate::config::EngineConfig;
use crate::document::Document;
use crate::error::ChanError;
use crate::fractal::{classify, Fractal};
use crate::kline::{
    bar_ok, check_bar_slow, fold_bar, validate_series, Bar, MergedBar, MergedBars, Repair,
};
use crate::macd::{MacdPoint, MacdState};
use crate::memory::Column;
use crate::pen::{Pen, PenBuilder, PenEvent, PenMark};
use crate::pivot::{find_pivots, Pivot};
use crate::segment::{FormingMemo, SegmentEngine, SegmentSpan};
use crate::signal::{segment_signals, Inputs, Signal, StrengthCache};

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

    /// The pivots and points of segment `index` when it is `span` here.
    fn derived(&self, index: usize, span: &SegmentSpan) -> Option<(&[Pivot], &[Signal])> {
        let k = index.checked_sub(self.first)?;
        if self.segments.get(k) != Some(span) {
            return None;
        }
        Some(self.items(k))
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
        let at = |f: &Fractal| (f.index, f.price);
        let span = |a: u32, b: u32| [at(&pens[a as usize].start), at(&pens[b as usize].end)];
        let ends = &mut self.ends;
        ends.clear();
        ends.reserve(2 * (self.segments.len() + self.pivots.len()) + self.signals.len());
        for s in &self.segments {
            ends.extend_from_slice(&span(s.first_pen, s.last_pen));
        }
        for z in &self.pivots {
            ends.extend_from_slice(&span(z.first_pen, z.last_pen));
        }
        ends.extend(self.signals.iter().map(|g| at(&pens[g.pen as usize].end)));
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
}

impl Default for TailWork {
    fn default() -> Self {
        Self {
            // Overwritten from the engine's own before each use.
            segments: SegmentEngine::new(true, true),
            forming: FormingMemo::default(),
            strengths: StrengthCache::default(),
            signals: Vec::new(),
        }
    }
}

/// The incremental engine state. Lists hold only items that never change (fractals, final
/// pens but the last, confirmed segments with their pivots and points).
#[derive(Debug, Clone)]
pub struct Engine {
    cfg: EngineConfig,
    keep_macd: bool,
    pub(crate) times: Column<i64>,
    pub(crate) histogram: Column<f64>,
    pub(crate) dif: Column<f64>,
    pub(crate) dea: Column<f64>,
    macd: MacdState,
    last_macd: MacdPoint,
    pub(crate) merged: MergedBars,
    pub(crate) fractals: Column<Fractal>,
    pub(crate) pens: PenBuilder,
    seg: SegmentEngine,
    pub(crate) segments: Vec<SegmentSpan>,
    pub(crate) pivots: Vec<Pivot>,
    pub(crate) signals: Vec<Signal>,
    pub(crate) repairs: Vec<Repair>,
    scratch: Vec<SegmentSpan>,
    strengths: StrengthCache,
    /// While recording, the segment state as it was before the current bar (taken lazily, when
    /// `backed_up`): one buffer reused, as a new pen comes every few bars.
    recording: bool,
    backed_up: bool,
    seg_backup: SegmentEngine,
}

/// What one bar may change, to undo it when the bar is replaced.
#[derive(Debug, Clone, Copy)]
struct Mark {
    bars: usize,
    macd: MacdState,
    last_macd: MacdPoint,
    merged: usize,
    /// The last merged bar as it was (meaningful when `merged > 0`). A plain copy, not an
    /// `Option`: this record is written on every streamed bar.
    last_merged: MergedBar,
    fractals: usize,
    pen: PenMark,
    segments: usize,
    pivots: usize,
    signals: usize,
    repairs: usize,
}

impl Engine {
    /// An empty engine; `keep_macd` keeps the DIF and DEA series too (the histogram is always
    /// kept: divergence needs it).
    pub fn new(cfg: EngineConfig, keep_macd: bool) -> Self {
        Self::with_capacity(cfg, keep_macd, 0)
    }

    /// An empty engine with room for `bars` bars.
    pub fn with_capacity(cfg: EngineConfig, keep_macd: bool, bars: usize) -> Self {
        let macd_cap = if keep_macd { bars } else { 0 };
        Self {
            cfg,
            keep_macd,
            times: Column::with_capacity(bars),
            histogram: Column::with_capacity(bars),
            dif: Column::with_capacity(macd_cap),
            dea: Column::with_capacity(macd_cap),
            macd: MacdState::new(),
            last_macd: MacdPoint {
                dif: f64::NAN,
                dea: f64::NAN,
                histogram: f64::NAN,
            },
            merged: MergedBars::new(),
            fractals: Column::with_capacity(bars / 3 + 16),
            pens: PenBuilder::new(cfg.pen),
            seg: SegmentEngine::new(
                cfg.segment.feature_sequence_strict,
                cfg.segment.handle_inclusion,
            ),
            segments: Vec::new(),
            pivots: Vec::new(),
            signals: Vec::new(),
            repairs: Vec::new(),
            scratch: Vec::new(),
            strengths: StrengthCache::default(),
            recording: false,
            backed_up: false,
            seg_backup: SegmentEngine::new(
                cfg.segment.feature_sequence_strict,
                cfg.segment.handle_inclusion,
            ),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Whether DIF and DEA series are kept.
    pub fn keeps_macd(&self) -> bool {
        self.keep_macd
    }

    /// Number of raw bars applied.
    pub fn bars(&self) -> usize {
        self.times.len()
    }

    /// Merged bars (the last one may still grow).
    pub fn merged(&self) -> &MergedBars {
        &self.merged
    }

    /// All pens; every one but the last is final.
    pub fn pens(&self) -> &[Pen] {
        self.pens.pens()
    }

    /// The forming move after the last pen.
    pub fn forming_pen(&self) -> Option<Pen> {
        self.pens.forming(&self.merged)
    }

    /// Fractals classified so far (all final).
    pub fn fractals(&self) -> &Column<Fractal> {
        &self.fractals
    }

    /// Confirmed segments (never change).
    pub fn confirmed_segments(&self) -> &[SegmentSpan] {
        &self.segments
    }

    /// Pivots of the confirmed segments.
    pub fn confirmed_pivots(&self) -> &[Pivot] {
        &self.pivots
    }

    /// Final buy/sell points.
    pub fn final_signals(&self) -> &[Signal] {
        &self.signals
    }

    /// Repairs made under `validation.repair`.
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// MACD of the last bar.
    pub fn last_macd(&self) -> MacdPoint {
        self.last_macd
    }

    /// The time of every raw bar (epoch milliseconds, UTC).
    pub fn times(&self) -> &Column<i64> {
        &self.times
    }

    /// The MACD histogram of every raw bar (NaN where absent).
    pub fn histogram(&self) -> &Column<f64> {
        &self.histogram
    }

    /// DIF of every raw bar (NaN where absent); empty unless the engine keeps the MACD series.
    pub fn dif(&self) -> &Column<f64> {
        &self.dif
    }

    /// DEA of every raw bar (NaN where absent); empty unless the engine keeps the MACD series.
    pub fn dea(&self) -> &Column<f64> {
        &self.dea
    }

    /// Applies one valid bar. Returns whether the pen list changed.
    // Always inlined: a call per streamed bar (with its register saves) cost the session about
    // 7% in interleaved wall-clock runs, though callgrind counts slightly more instructions.
    #[inline(always)]
    pub(crate) fn push(&mut self, bar: &Bar) -> bool {
        let i = self.times.len() as u32;
        // Done before any change, so an undo to the state before this bar finds every bar it needs.
        let keep = self
            .pens
            .needs_from()
            .min(self.merged.len().saturating_sub(3));
        self.merged.forget_before(keep);
        self.times.push(bar.time);
        let m = self.macd.push(&self.cfg.macd, bar.close);
        self.last_macd = m;
        self.histogram.push(m.histogram);
        if self.keep_macd {
            self.dif.push(m.dif);
            self.dea.push(m.dea);
        }
        if !fold_bar(&mut self.merged, i, bar.high, bar.low) || self.merged.len() < 3 {
            return false;
        }
        let n = self.merged.len() - 2;
        let f = classify(&self.merged, n);
        if let Some(f) = f {
            self.fractals.push(f);
        }
        match self.pens.on_final_bar(&self.merged, n, f) {
            PenEvent::None => false,
            PenEvent::Extended => true,
            PenEvent::Added => {
                if self.pens.pens().len() >= 2 {
                    self.advance_segments();
                }
                true
            }
        }
    }

    /// What buy/sell points are read from.
    fn inputs(&self) -> Inputs<'_> {
        Inputs {
            pens: self.pens.pens(),
            histogram: &self.histogram,
            cfg: &self.cfg.signal,
        }
    }

    /// Feeds the newly final pen to the segment engine and settles what it confirms.
    fn advance_segments(&mut self) {
        if self.recording && !self.backed_up {
            self.seg_backup.clone_from(&self.seg);
            self.backed_up = true;
        }
        let pens = self.pens.pens();
        self.scratch.clear();
        self.seg.run(pens, pens.len() - 1, &mut self.scratch);
        debug_assert!(self.scratch.iter().all(|s| s.len() >= 3));
        // Fields borrowed one by one: the lists below are written while the inputs are read.
        let inputs = Inputs {
            pens,
            histogram: &self.histogram,
            cfg: &self.cfg.signal,
        };
        let first = self.segments.len();
        self.segments.extend_from_slice(&self.scratch);
        for (j, span) in self.scratch.iter().enumerate() {
            let (cache, pivots, signals) =
                (&mut self.strengths, &mut self.pivots, &mut self.signals);
            derive(&inputs, span, first + j, true, cache, pivots, signals);
        }
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
        let (scratch, memo) = (&mut work.segments, &mut work.forming);
        self.seg
            .tail(self.pens.pens(), scratch, memo, stable, &mut out.segments);
    }

    /// The pivots and points of the tail's segments, and the points they show.
    fn derive_tail(&self, out: &mut Tail, work: &mut TailWork, prev: Option<(&Tail, u32)>) {
        out.pivots.clear();
        out.signals.clear();
        out.bounds.clear();
        let pens = self.pens.pens();
        let inputs = self.inputs();
        let first = self.segments.len();
        out.first = first;
        for (j, span) in out.segments.iter().enumerate() {
            let (pivots, signals) = (&mut out.pivots, &mut out.signals);
            // A segment starts and ends with pens of its direction, and its pivots are made of
            // the pens between (its last pen is not read); its points read up to two pens after
            // it. What read only pens below `stable` is kept.
            let old = prev.and_then(|(old, stable)| Some((old.derived(first + j, span)?, stable)));
            match old {
                Some(((z, g), stable)) if span.last_pen + 2 < stable => {
                    pivots.extend(z.iter().copied());
                    signals.extend(g.iter().copied());
                }
                Some(((z, _), stable)) if span.last_pen <= stable => {
                    let from = pivots.len();
                    pivots.extend(z.iter().copied());
                    let cache = &mut work.strengths;
                    segment_signals(&inputs, span, &pivots[from..], false, cache, signals);
                }
                _ => derive(
                    &inputs,
                    span,
                    first + j,
                    false,
                    &mut work.strengths,
                    pivots,
                    signals,
                ),
            }
            out.bounds
                .push((out.pivots.len() as u32, out.signals.len() as u32));
        }
        out.show(pens);
    }

    /// The non-final tail.
    pub fn tail(&self) -> Tail {
        let mut t = Tail::default();
        self.tail_into(&mut t, &mut TailWork::default(), None);
        t
    }

    fn mark(&mut self) -> Mark {
        let mut m = Mark {
            bars: 0,
            macd: self.macd,
            last_macd: self.last_macd,
            merged: 0,
            last_merged: MergedBar::EMPTY,
            fractals: 0,
            pen: self.pens.mark(),
            segments: 0,
            pivots: 0,
            signals: 0,
            repairs: 0,
        };
        self.mark_into(&mut m);
        m
    }

    /// Records, in place, what the next bar may change (called on every append: no copies of
    /// the whole record).
    fn mark_into(&mut self, m: &mut Mark) {
        self.recording = true;
        self.backed_up = false;
        m.bars = self.times.len();
        m.macd = self.macd;
        m.last_macd = self.last_macd;
        m.merged = self.merged.len();
        if let Some(b) = self.merged.last() {
            m.last_merged = *b;
        }
        m.fractals = self.fractals.len();
        self.pens.mark_into(&mut m.pen);
        m.segments = self.segments.len();
        m.pivots = self.pivots.len();
        m.signals = self.signals.len();
        m.repairs = self.repairs.len();
    }

    fn restore(&mut self, m: &Mark) {
        self.times.truncate(m.bars);
        self.histogram.truncate(m.bars);
        self.dif.truncate(m.bars.min(self.dif.len()));
        self.dea.truncate(m.bars.min(self.dea.len()));
        self.macd = m.macd;
        self.last_macd = m.last_macd;
        self.merged.truncate(m.merged);
        if m.merged > 0 {
            self.merged.set_last(m.last_merged);
        }
        self.fractals.truncate(m.fractals);
        self.pens.restore(&m.pen);
        if self.backed_up {
            self.seg.clone_from(&self.seg_backup);
        }
        self.segments.truncate(m.segments);
        self.pivots.truncate(m.pivots);
        self.signals.truncate(m.signals);
        self.repairs.truncate(m.repairs);
    }
}

/// Appends the pivots and buy/sell points of `span`, segment `index`.
fn derive(
    inputs: &Inputs,
    span: &SegmentSpan,
    index: usize,
    confirmed: bool,
    cache: &mut StrengthCache,
    pivots: &mut Vec<Pivot>,
    signals: &mut Vec<Signal>,
) {
    let from = pivots.len();
    find_pivots(inputs.pens, span, index as u32, pivots);
    let settled = confirmed && span.len() >= 3;
    segment_signals(inputs, span, &pivots[from..], settled, cache, signals);
}

/// Bar indices are 32-bit.
const MAX_BARS: usize = u32::MAX as usize;

fn no_bar_to_replace() -> ChanError {
    ChanError::State("replace_last: the session has no bar to replace".into())
}

fn too_many_bars() -> ChanError {
    ChanError::State(format!("a series holds at most {MAX_BARS} bars"))
}

/// A batch analysis result: the engine after the whole series, with its tail.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub engine: Engine,
    pub tail: Tail,
}

impl Analysis {
    /// The analysis document (the JSON shape both engines produce).
    pub fn document(&self) -> Document {
        Document::build(&self.engine, &self.tail)
    }
}

/// Analyzes a whole series (spec §1–§9). Rejects it whole, naming every bad bar, unless valid.
pub fn analyze(bars: &[Bar], cfg: &EngineConfig, keep_macd: bool) -> Result<Analysis, ChanError> {
    cfg.validate()?;
    if bars.len() > MAX_BARS {
        return Err(too_many_bars());
    }
    if bars.is_empty() {
        // The rule-by-rule path names the error.
        return analyze_checked(bars, cfg, keep_macd);
    }
    // One pass: each bar is checked as it is applied (the input is read once, not twice). The
    // first bar that is not plainly valid hands the series to the rule-by-rule path, which names
    // every violation or applies the repairs; the partial engine is dropped, nothing escapes.
    let mut engine = Engine::with_capacity(*cfg, keep_macd, bars.len());
    let mut prev = None;
    for b in bars {
        if !bar_ok(b, prev, &cfg.validation) {
            drop(engine);
            return analyze_checked(bars, cfg, keep_macd);
        }
        prev = Some(b.time);
        engine.push(b);
    }
    let tail = engine.tail();
    Ok(Analysis { engine, tail })
}

/// The whole series validated first (every violation named, repairs made), then analyzed.
#[cold]
#[inline(never)]
fn analyze_checked(
    bars: &[Bar],
    cfg: &EngineConfig,
    keep_macd: bool,
) -> Result<Analysis, ChanError> {
    let (repairs, fixed) =
        validate_series(bars, &cfg.validation).map_err(ChanError::InvalidBars)?;
    let bars = fixed.as_deref().unwrap_or(bars);
    let mut engine = Engine::with_capacity(*cfg, keep_macd, bars.len());
    engine.repairs = repairs;
    for b in bars {
        engine.push(b);
    }
    let tail = engine.tail();
    Ok(Analysis { engine, tail })
}

/// What one stream message changed. Final lists are spliced: `list.truncate(r.start)` then
/// append the items `r` of the session's list (for a replace, `start` reaches back to before the
/// replaced bar). The tail (last pen, forming pen, non-final segments, pivots and points) is
/// replaced whole; `tail_changed` says whether its segments, pivots or points differ from the
/// previous answer's, as output: the chart points they show count too (a segment ending with the
/// last pen ends elsewhere when that pen is extended, though its span is the same).
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub index: usize,
    pub replaced: bool,
    pub macd: MacdPoint,
    pub fractals: Range<usize>,
    /// Final pens (all but the last pen).
    pub pens: Range<usize>,
    pub segments: Range<usize>,
    pub pivots: Range<usize>,
    pub signals: Range<usize>,
    pub tail_changed: bool,
    /// The bar was repaired (`validation.repair`); the repair is the engine's last one.
    pub repaired: bool,
}

/// One stream message of a batch ([`Session::apply_batch`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BarOp {
    /// Append a new bar.
    Append(Bar),
    /// Replace the last (still forming) bar.
    ReplaceLast(Bar),
}

/// A batch refused: the message at position `at` broke a rule; nothing was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchError {
    pub at: usize,
    pub error: ChanError,
}

/// An incremental session (spec §10): append bars, replace the last, read the state.
#[derive(Debug, Clone)]
pub struct Session {
    engine: Engine,
    /// The state before the last bar (valid when the session has a bar).
    mark: Mark,
    last_time: Option<i64>,
    prev_time: Option<i64>,
    tail: Tail,
    /// The tail being computed, then swapped with `tail`.
    fresh: Tail,
    work: TailWork,
}

impl Session {
    /// An empty session. Errors when the configuration is out of range.
    pub fn new(cfg: EngineConfig, keep_macd: bool) -> Result<Self, ChanError> {
        cfg.validate()?;
        let mut engine = Engine::new(cfg, keep_macd);
        let mark = engine.mark();
        Ok(Self {
            engine,
            mark,
            last_time: None,
            prev_time: None,
            tail: Tail::default(),
            fresh: Tail::default(),
            work: TailWork::default(),
        })
    }

    /// The engine state.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The current non-final tail.
    pub fn tail(&self) -> &Tail {
        &self.tail
    }

    /// Number of bars applied.
    pub fn bars(&self) -> usize {
        self.engine.bars()
    }

    /// The full analysis document of the series so far.
    pub fn document(&self) -> Document {
        Document::build(&self.engine, &self.tail)
    }

    /// Checks `bar` (spec §1), repairing it in place when that is configured.
    #[inline(always)]
    fn check(
        &self,
        index: usize,
        bar: &mut Bar,
        prev: Option<i64>,
    ) -> Result<Option<Repair>, ChanError> {
        if bar_ok(bar, prev, &self.engine.cfg.validation) {
            return Ok(None);
        }
        self.check_slow(index, bar, prev)
    }

    #[cold]
    fn check_slow(
        &self,
        index: usize,
        bar: &mut Bar,
        prev: Option<i64>,
    ) -> Result<Option<Repair>, ChanError> {
        let mut v = Vec::new();
        let fixed = check_bar_slow(index, bar, prev, &self.engine.cfg.validation, &mut v);
        if !v.is_empty() {
            return Err(ChanError::InvalidBars(v));
        }
        Ok(fixed.map(|(b, r)| {
            *bar = b;
            r
        }))
    }

    /// Appends a new bar. A bar that breaks a rule of spec §1 changes nothing.
    pub fn append(&mut self, mut bar: Bar) -> Result<Update, ChanError> {
        let index = self.engine.bars();
        if index >= MAX_BARS {
            return Err(too_many_bars());
        }
        let repair = self.check(index, &mut bar, self.last_time)?;
        self.engine.mark_into(&mut self.mark);
        if let Some(r) = repair {
            self.engine.repairs.push(r);
        }
        let pens_changed = self.engine.push(&bar);
        self.prev_time = self.last_time;
        self.last_time = Some(bar.time);
        Ok(self.report(index, false, pens_changed, repair))
    }

    /// Replaces the last (still forming) bar. Errors when the session has no bar.
    pub fn replace_last(&mut self, mut bar: Bar) -> Result<Update, ChanError> {
        if self.engine.bars() == 0 {
            return Err(no_bar_to_replace());
        }
        let index = self.engine.bars() - 1;
        let repair = self.check(index, &mut bar, self.prev_time)?;
        // One bar adds or moves at most one pen, so the count and the last pen tell whether the
        // replacement left the pens (and so the tail) as they were.
        let before = (self.engine.pens().len(), self.engine.pens().last().copied());
        let mark = self.mark;
        self.engine.restore(&mark);
        if let Some(r) = repair {
            self.engine.repairs.push(r);
        }
        self.engine.push(&bar);
        self.last_time = Some(bar.time);
        let after = (self.engine.pens().len(), self.engine.pens().last().copied());
        Ok(self.report(index, true, before != after, repair))
    }

    /// Applies many stream messages at batch speed: the state afterwards is exactly that of
    /// [`Self::append`] and [`Self::replace_last`] called one by one, but no change report is
    /// built and the tail is computed once, at the end. All or nothing: every message is checked
    /// first (against the times the messages before it leave), so a refused one, named by its
    /// position in `ops`, leaves the session as it was.
    pub fn apply_batch(&mut self, ops: &[BarOp]) -> Result<(), BatchError> {
        let fixed = self.checked_batch(ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        for (op, (bar, repair)) in ops.iter().zip(fixed) {
            match op {
                BarOp::Append(_) => {
                    self.engine.mark_into(&mut self.mark);
                    if let Some(r) = repair {
                        self.engine.repairs.push(r);
                    }
                    self.engine.push(&bar);
                    self.prev_time = self.last_time;
                }
                BarOp::ReplaceLast(_) => {
                    let mark = self.mark;
                    self.engine.restore(&mark);
                    if let Some(r) = repair {
                        self.engine.repairs.push(r);
                    }
                    self.engine.push(&bar);
                }
            }
            self.last_time = Some(bar.time);
        }
        // From scratch, as a batch analysis does: nothing of the tail before the batch is read
        // (the forming-segment memo and the strengths cached were for other pens).
        self.work = TailWork::default();
        self.engine.tail_into(&mut self.fresh, &mut self.work, None);
        std::mem::swap(&mut self.fresh, &mut self.tail);
        Ok(())
    }

    /// Checks a batch as [`Self::apply_batch`] does, without applying it.
    pub fn check_batch(&self, ops: &[BarOp]) -> Result<(), BatchError> {
        self.checked_batch(ops).map(drop)
    }

    /// Checks every message of a batch as the stream would, in order, without changing the
    /// session; returns each bar as it will be applied (repaired when that is configured).
    fn checked_batch(&self, ops: &[BarOp]) -> Result<Vec<(Bar, Option<Repair>)>, BatchError> {
        let (mut bars, mut last, mut prev) = (self.engine.bars(), self.last_time, self.prev_time);
        let mut out = Vec::with_capacity(ops.len());
        for (at, op) in ops.iter().enumerate() {
            let fail = |error| BatchError { at, error };
            let (mut bar, index, before) = match *op {
                BarOp::Append(b) => {
                    if bars >= MAX_BARS {
                        return Err(fail(too_many_bars()));
                    }
                    (b, bars, last)
                }
                BarOp::ReplaceLast(b) => {
                    if bars == 0 {
                        return Err(fail(no_bar_to_replace()));
                    }
                    (b, bars - 1, prev)
                }
            };
            let repair = self.check(index, &mut bar, before).map_err(fail)?;
            if matches!(op, BarOp::Append(_)) {
                bars += 1;
                prev = last;
            }
            last = Some(bar.time);
            out.push((bar, repair));
        }
        Ok(out)
    }

    /// The change report of the call that just ran. Inlined into `append` and `replace_last`
    /// (it runs on every bar); the tail, recomputed on the few bars that change the pens, is not.
    #[inline(always)]
    fn report(
        &mut self,
        index: usize,
        replaced: bool,
        pens_changed: bool,
        repair: Option<Repair>,
    ) -> Update {
        let tail_changed = pens_changed && self.refresh_tail(replaced);
        let (e, mark) = (&self.engine, &self.mark);
        let final_pens = |n: usize| n.saturating_sub(1);
        Update {
            index,
            replaced,
            macd: e.last_macd,
            fractals: mark.fractals..e.fractals.len(),
            pens: final_pens(mark.pen.count())..final_pens(e.pens.pens().len()),
            segments: mark.segments..e.segments.len(),
            pivots: mark.pivots..e.pivots.len(),
            signals: mark.signals..e.signals.len(),
            tail_changed,
            repaired: repair.is_some(),
        }
    }

    /// Whether the tail stays as it is when a streamed bar added a pen (the one before stays
    /// as it was) and left the tail's segments as they were. The points of types 2 and 3 that
    /// may read the new pen, those of a segment with a pivot ending two pens or less before it
    /// or with a point of type 1 two pens before it, are computed again and must come out the
    /// same (see [`Self::refresh_tail`] for why nothing else can change).
    fn new_pen_changes_no_point(&mut self, pens: usize) -> bool {
        let (engine, tail, work) = (&self.engine, &self.tail, &mut self.work);
        let newest = pens as u32 - 1;
        let inputs = engine.inputs();
        for (k, span) in tail.segments.iter().enumerate() {
            let (pivots, signals) = tail.items(k);
            let near = pivots.iter().any(|z| z.last_pen + 2 >= newest)
                || signals.iter().any(|g| g.kind == 1 && g.pen + 2 >= newest);
            if near {
                work.signals.clear();
                let (cache, out) = (&mut work.strengths, &mut work.signals);
                segment_signals(&inputs, span, pivots, false, cache, out);
                if work.signals[..] != *signals {
                    return false;
                }
            }
        }
        true
    }

    /// Updates the tail in place when the last pen moved on, the segments stay the same and
    /// the tail reads that pen (so it changes: the point it shows moved). The pivots stay (they
    /// lie before their segments' last pens); the points of the last segment are computed
    /// again, those of the segments before it must not read the last pen. Returns false, with
    /// the tail untouched, when that does not hold.
    fn points_moved_on(&mut self, pens: usize) -> bool {
        let (engine, tail) = (&self.engine, &mut self.tail);
        let last = pens as u32 - 1;
        let Some(k) = tail.segments.len().checked_sub(1) else {
            return false;
        };
        // A guard: segments follow one another with three pens or more, so the one before the
        // last reads at most the second pen of the last.
        if k > 0 && tail.segments[k - 1].last_pen + 2 >= last {
            return false;
        }
        let ((z0, g0), z1) = (tail.starts(k), tail.bounds[k].0);
        tail.signals.truncate(g0 as usize);
        let inputs = engine.inputs();
        let pivots = &tail.pivots[z0 as usize..z1 as usize];
        let cache = &mut self.work.strengths;
        segment_signals(
            &inputs,
            &tail.segments[k],
            pivots,
            false,
            cache,
            &mut tail.signals,
        );
        tail.bounds[k].1 = tail.signals.len() as u32;
        tail.show(engine.pens());
        true
    }

    /// Recomputes the tail after this call changed the pens; returns whether it changed.
    /// `replaced`: this call replaced the last bar.
    #[inline(never)]
    fn refresh_tail(&mut self, replaced: bool) -> bool {
        let pens = self.engine.pens().len();
        // Every earlier change of the pens refreshed the tail, and one bar extends the last pen
        // or adds one after it (leaving the one before as it was): the pens below `stable` are
        // those the current tail was computed from. A replacement undoes a bar and applies
        // another, so from the last pen before its bar on.
        let stable = if replaced {
            self.mark.pen.count().saturating_sub(1)
        } else {
            pens - 1
        } as u32;
        self.engine
            .tail_segments(&mut self.fresh, &mut self.work, stable);
        // A streamed bar moves the last pen on or adds one after it: with the same segments at
        // the same indices, only points can change. Every pivot lies inside its segment, before
        // the segment's last pen, every point reads at most two pens after its segment's end,
        // and every other pen is the same.
        if !replaced
            && self.fresh.segments == self.tail.segments
            && self.engine.segments.len() == self.tail.first
        {
            if pens == self.mark.pen.count() {
                // The last pen moved on (same start). No item reads it: nothing changes (a pen
                // that moves on only makes the breaks of types 2 and 3 it would complete harder
                // to reach; such points, if shown, read it). Else the tail changes.
                if (self.tail.reach() as usize) < pens {
                    return false;
                }
                if self.points_moved_on(pens) {
                    return true;
                }
            } else if self.new_pen_changes_no_point(pens) {
                return false;
            }
        }
        let prev = Some((&self.tail, stable));
        self.engine
            .derive_tail(&mut self.fresh, &mut self.work, prev);
        let changed = self.fresh != self.tail;
        // Kept even when equal as output: its segment indices are the current ones.
        std::mem::swap(&mut self.fresh, &mut self.tail);
        changed
    }
}
