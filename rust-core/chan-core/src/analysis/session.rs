//! An incremental session (spec §10): append bars, replace the last, read the state, with a
//! change report per stream message.

use std::ops::Range;

use super::engine::{Engine, Mark};
use super::higher::{DegreeChange, LiveHigher};
use super::tail::{LiveTail, PenChange, SpanChange, Tail};
use super::{no_bar_to_replace, too_many_bars, MAX_BARS};
use crate::config::EngineConfig;
use crate::document::Document;
use crate::error::ChanError;
use crate::kline::{bar_ok, check_bar_slow, Bar, Repair};
use crate::macd::MacdPoint;

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
    tail: LiveTail,
    /// Degrees 2..=`structure.degrees` (spec §13), kept up to date bar by bar.
    higher: LiveHigher,
}

impl Session {
    /// An empty session. Errors when the configuration is out of range.
    pub fn new(cfg: EngineConfig, keep_macd: bool) -> Result<Self, ChanError> {
        cfg.validate()?;
        let mut engine = Engine::new(cfg, keep_macd);
        let mark = engine.mark();
        let higher = LiveHigher::new(&cfg);
        Ok(Self {
            engine,
            mark,
            last_time: None,
            prev_time: None,
            tail: LiveTail::default(),
            higher,
        })
    }

    /// The engine state.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The current non-final tail.
    pub fn tail(&self) -> &Tail {
        self.tail.get()
    }

    /// Number of bars applied.
    pub fn bars(&self) -> usize {
        self.engine.bars()
    }

    /// Degrees 2..=`structure.degrees` as output (spec §13).
    pub fn higher(&self) -> Vec<super::Degree> {
        let views = self.higher.views();
        // Kept bar by bar, they must equal the degrees derived from scratch (§10 at every degree).
        debug_assert_eq!(
            views,
            super::higher_degrees(&self.engine, self.tail.get()),
            "a session's higher degrees differ from the batch derivation"
        );
        views
    }

    /// Unit tests: the higher degrees as kept.
    #[cfg(test)]
    pub(super) fn live_higher(&self) -> &LiveHigher {
        &self.higher
    }

    /// What the latest call changed at each higher degree, in order (nothing when
    /// `structure.degrees` is 1).
    pub fn degree_changes(&self) -> impl Iterator<Item = DegreeChange> + '_ {
        self.higher.changes()
    }

    /// Each higher degree's lists, borrowed, in order.
    pub fn degree_lists(&self) -> impl Iterator<Item = super::LevelLists<'_>> {
        self.higher.lists()
    }

    /// The full analysis document of the series so far.
    pub fn document(&self) -> Document {
        Document::build(&self.engine, self.tail.get(), &self.higher())
    }

    /// Checks `bar` (spec §1), repairing it in place when that is configured.
    // Always inlined: on every bar, measured (CHANGELOG, stage 1).
    #[allow(clippy::inline_always)]
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
        self.higher.mark();
        if let Some(r) = repair {
            self.engine.repairs.push(r);
        }
        let change = PenChange::of_append(self.engine.push(&bar));
        self.prev_time = self.last_time;
        self.last_time = Some(bar.time);
        Ok(self.report(index, false, change, repair))
    }

    /// Replaces the last (still forming) bar. Errors when the session has no bar.
    pub fn replace_last(&mut self, mut bar: Bar) -> Result<Update, ChanError> {
        if self.engine.bars() == 0 {
            return Err(no_bar_to_replace());
        }
        let index = self.engine.bars() - 1;
        let repair = self.check(index, &mut bar, self.prev_time)?;
        // The pen events of the bar undone and of the new one do not say how the pens compare
        // with those before the call. One bar adds or moves at most one pen, so the count and
        // the last pen do: they tell whether the replacement left the pens (and so the tail) as
        // they were.
        let before = (self.engine.pens().len(), self.engine.pens().last().copied());
        let mark = self.mark;
        self.engine.restore(&mark);
        self.higher.restore();
        if let Some(r) = repair {
            self.engine.repairs.push(r);
        }
        self.engine.push(&bar);
        self.last_time = Some(bar.time);
        let after = (self.engine.pens().len(), self.engine.pens().last().copied());
        let change = (before != after).then(|| PenChange::Replaced {
            from: mark.pen.count().saturating_sub(1) as u32,
        });
        Ok(self.report(index, true, change, repair))
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
                    // The higher degrees settle with the engine, so their mark is the engine's.
                    self.higher.settle(&self.engine);
                    self.higher.mark();
                    if let Some(r) = repair {
                        self.engine.repairs.push(r);
                    }
                    self.engine.push(&bar);
                    self.prev_time = self.last_time;
                }
                BarOp::ReplaceLast(_) => {
                    let mark = self.mark;
                    self.engine.restore(&mark);
                    self.higher.restore();
                    if let Some(r) = repair {
                        self.engine.repairs.push(r);
                    }
                    self.engine.push(&bar);
                }
            }
            self.last_time = Some(bar.time);
        }
        // From scratch, as a batch analysis does.
        self.tail.rebuild(&self.engine.source());
        let tail = self.tail.get();
        (self.higher).sync(&self.engine, tail, true, SpanChange::Any);
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
    // Always inlined: on every bar, measured (CHANGELOG, stage 1).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn report(
        &mut self,
        index: usize,
        replaced: bool,
        change: Option<PenChange>,
        repair: Option<Repair>,
    ) -> Update {
        let tail_changed = change.is_some_and(|c| self.tail.refresh(&self.engine.source(), c));
        let spans = self.tail.span_change();
        (self.higher).sync(&self.engine, self.tail.get(), tail_changed, spans);
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
}
