//! The incremental engine (spec §10): bar by bar, it keeps the items that never change (final
//! pens, confirmed segments with their pivots and points) and what a replaced bar undoes.

use crate::config::EngineConfig;
use crate::fractal::{classify, Fractal};
use crate::kline::{fold_bar, Bar, MergedBar, MergedBars, Repair};
use crate::macd::{MacdPoint, MacdState};
use crate::memory::Column;
use crate::pen::{Pen, PenBuilder, PenEvent, PenMark};
use crate::pivot::{find_pivots, Pivot};
use crate::segment::{SegmentEngine, SegmentSpan};
use crate::signal::{segment_signals, Inputs, Signal, StrengthCache};

/// The incremental engine state. Lists hold only items that never change (fractals, final
/// pens but the last, confirmed segments with their pivots and points).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) cfg: EngineConfig,
    keep_macd: bool,
    pub(crate) times: Column<i64>,
    pub(crate) histogram: Column<f64>,
    pub(crate) dif: Column<f64>,
    pub(crate) dea: Column<f64>,
    macd: MacdState,
    pub(super) last_macd: MacdPoint,
    pub(crate) merged: MergedBars,
    pub(crate) fractals: Column<Fractal>,
    pub(crate) pens: PenBuilder,
    pub(super) seg: SegmentEngine,
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
pub(super) struct Mark {
    bars: usize,
    macd: MacdState,
    last_macd: MacdPoint,
    merged: usize,
    /// The last merged bar as it was (meaningful when `merged > 0`). A plain copy, not an
    /// `Option`: this record is written on every streamed bar.
    last_merged: MergedBar,
    pub(super) fractals: usize,
    pub(super) pen: PenMark,
    pub(super) segments: usize,
    pub(super) pivots: usize,
    pub(super) signals: usize,
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

    /// Applies one valid bar. Returns what it did to the pens (a new pen is also fed to the
    /// segments).
    // Always inlined: a call per streamed bar (with its register saves) cost the session about
    // 7% in interleaved wall-clock runs, though callgrind counts slightly more instructions.
    // Always inlined: measured faster (docs/BENCHMARKS.md, "What the figures rest on").
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn push(&mut self, bar: &Bar) -> PenEvent {
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
            return PenEvent::None;
        }
        let n = self.merged.len() - 2;
        let f = classify(&self.merged, n);
        if let Some(f) = f {
            self.fractals.push(f);
        }
        let event = self.pens.on_final_bar(&self.merged, n, f);
        if event == PenEvent::Added && self.pens.pens().len() >= 2 {
            self.advance_segments();
        }
        event
    }

    /// What buy/sell points are read from.
    pub(super) fn inputs(&self) -> Inputs<'_> {
        let pens = self.pens.pens();
        Inputs {
            pens,
            finals: pens.len().saturating_sub(1) as u32,
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
        debug_assert!(self.scratch.iter().all(|s| s.leading || s.len() >= 3));
        // Fields borrowed one by one: the lists below are written while the inputs are read.
        let inputs = Inputs {
            pens,
            finals: pens.len() as u32 - 1,
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

    pub(super) fn mark(&mut self) -> Mark {
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
    pub(super) fn mark_into(&mut self, m: &mut Mark) {
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

    pub(super) fn restore(&mut self, m: &Mark) {
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
pub(super) fn derive(
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
    let settled = confirmed && span.confirmable();
    let first = from as u32;
    segment_signals(
        inputs,
        span,
        &pivots[from..],
        first,
        settled,
        cache,
        signals,
    );
}
