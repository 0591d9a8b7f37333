//! Higher degrees (spec §13): segments of segments (线段的线段), their pivots and points.
//!
//! Degree n+1 reads every degree-n segment as a stroke, a [`Pen`] from its first pen's start to
//! its last pen's end, and runs the very code of degree 1 on those strokes: the segment engine
//! (§6), the pivots (§7) and the points (§9). Only finality differs: the final strokes are those
//! of the settled degree-n segments (confirmed or settled leading ones), always a prefix, where at
//! degree 1 they are every pen but the last.
//!
//! Each degree is kept as degree 1 is ([`LiveHigher`]): a settled part that grows as the degree
//! below settles segments, and a tail derived again when the degree below's tail changed. A
//! batch analysis takes every settled segment at once ([`higher_degrees`]); a session feeds them
//! bar by bar, and its debug check compares the two (§10).

use super::engine::{derive, Engine};
use super::tail::{show, Tail};
use crate::config::EngineConfig;
use crate::memory::Column;
use crate::pen::Pen;
use crate::pivot::Pivot;
use crate::segment::{FormingMemo, SegmentEngine, SegmentSpan};
use crate::signal::{Inputs, Signal, StrengthCache};

/// One degree above the first (线段的线段): its strokes, its segments (settled ones first, then
/// the non-confirmed tail), their pivots and their buy/sell points.
#[derive(Debug, Clone, PartialEq)]
pub struct Degree {
    /// 2 for segments of segments, and so on.
    pub degree: u32,
    /// The degree below's segments read as pens (spec §13, "Strokes").
    pub strokes: Vec<Pen>,
    pub segments: Vec<SegmentSpan>,
    /// `segments[..settled]` were settled by end tests that read final strokes only.
    pub settled: usize,
    /// Strokes `..finals` are final.
    pub finals: usize,
    pub pivots: Vec<Pivot>,
    pub signals: Vec<Signal>,
}

impl Degree {
    /// Whether segment `j` is confirmed (settled, not leading, at least 3 strokes).
    pub fn confirmed(&self, j: usize) -> bool {
        j < self.settled && self.segments[j].confirmable()
    }
}

/// The stroke of the degree above that segment `s` (over `pens`) is.
fn stroke(pens: &[Pen], s: &SegmentSpan) -> Pen {
    Pen {
        dir: s.dir,
        start: pens[s.first_pen as usize].start,
        end: pens[s.last_pen as usize].end,
    }
}

/// Degrees 2..=`structure.degrees` of an engine with its tail (empty when it is 1), derived
/// from scratch: every settled segment of each degree taken at once, then its tail. A session
/// keeps the same levels bar by bar; its debug check compares the two.
pub fn higher_degrees(engine: &Engine, tail: &Tail) -> Vec<Degree> {
    let mut live = LiveHigher::new(engine.config());
    live.sync(engine, tail, true);
    live.views()
}

/// One higher degree kept up to date bar by bar in a session: the settled part grows as the
/// degree below settles segments (its final strokes), the tail is derived again when the degree
/// below changed.
#[derive(Debug, Clone)]
struct LiveLevel {
    degree: u32,
    seg: SegmentEngine,
    /// The segment state before the current bar, taken when the bar first feeds it.
    backup: Option<SegmentEngine>,
    scratch: SegmentEngine,
    /// The final strokes (`..finals`), then those of the degree below's non-settled segments.
    strokes: Vec<Pen>,
    finals: usize,
    segments: Vec<SegmentSpan>,
    pivots: Vec<Pivot>,
    signals: Vec<Signal>,
    strengths: StrengthCache,
    tail: LevelTail,
    /// The strokes after `finals` are not those `tail` was derived from (a bar settled or was
    /// undone): the tail must be derived again whatever the degree below did.
    dirty: bool,
    /// The scans of the forming segments of the last tail derived, and how many strokes are
    /// surely the same as then (the memo resumes the scans that read only those).
    memo: FormingMemo,
    unchanged: usize,
    /// Working space: the next tail, swapped with `tail` once derived.
    fresh: LevelTail,
    /// The latest call changed the tail as output.
    tail_changed: bool,
}

/// A higher degree's non-settled segments with their pivots and points, and the chart points
/// they show (the output changes when those move, though the spans stay the same).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LevelTail {
    pub segments: Vec<SegmentSpan>,
    pub pivots: Vec<Pivot>,
    pub signals: Vec<Signal>,
    ends: Vec<(u32, f64)>,
}

/// One higher degree of a session, borrowed: its strokes (final ones, then the tail's), its
/// settled segments with their pivots and points, and its tail.
#[derive(Debug, Clone, Copy)]
pub struct LevelLists<'a> {
    pub degree: u32,
    pub strokes: &'a [Pen],
    pub segments: &'a [SegmentSpan],
    pub pivots: &'a [Pivot],
    pub signals: &'a [Signal],
    pub tail: &'a LevelTail,
}

/// The lengths of a level's settled lists before the current bar.
#[derive(Debug, Clone, Copy, Default)]
struct LevelMark {
    finals: usize,
    segments: usize,
    pivots: usize,
    signals: usize,
}

/// What one bar changed at one higher degree (spec §12.7): the settled lists are spliced from
/// `start` (their lengths before the bar, or before the replaced bar), the tail replaced whole
/// when `tail_changed`.
#[derive(Debug, Clone, PartialEq)]
pub struct DegreeChange {
    pub degree: u32,
    pub segments: std::ops::Range<usize>,
    pub pivots: std::ops::Range<usize>,
    pub signals: std::ops::Range<usize>,
    pub tail_changed: bool,
}

/// Degrees 2..=`structure.degrees` of a session (empty when it is 1).
#[derive(Debug, Clone, Default)]
pub(super) struct LiveHigher {
    levels: Vec<LiveLevel>,
    marks: Vec<LevelMark>,
    /// Working space: the strokes of the degree below's non-settled segments.
    extra: Vec<Pen>,
}

impl LiveLevel {
    fn new(degree: u32, cfg: &EngineConfig) -> Self {
        let seg = || {
            SegmentEngine::new(
                cfg.segment.feature_sequence_strict,
                cfg.segment.handle_inclusion,
            )
        };
        Self {
            degree,
            seg: seg(),
            backup: None,
            scratch: seg(),
            strokes: Vec::new(),
            finals: 0,
            segments: Vec::new(),
            pivots: Vec::new(),
            signals: Vec::new(),
            strengths: StrengthCache::default(),
            tail: LevelTail::default(),
            dirty: false,
            memo: FormingMemo::default(),
            unchanged: 0,
            fresh: LevelTail::default(),
            tail_changed: false,
        }
    }

    /// Takes the strokes of the degree below's newly settled segments as final ones.
    fn settle(&mut self, new: &[Pen], cfg: &EngineConfig, histogram: &Column<f64>) {
        if self.backup.is_none() {
            self.backup = Some(self.seg.clone());
        }
        // The strokes from `finals` on were the tail's; the new final ones may differ from them.
        self.unchanged = self.unchanged.min(self.finals);
        self.strokes.truncate(self.finals);
        self.strokes.extend_from_slice(new);
        self.finals = self.strokes.len();
        self.dirty = true;
        let first = self.segments.len();
        self.seg.run(&self.strokes, self.finals, &mut self.segments);
        let inputs = Inputs {
            pens: &self.strokes,
            finals: self.finals as u32,
            histogram,
            cfg: &cfg.signal,
        };
        for j in first..self.segments.len() {
            let (cache, pivots, signals) =
                (&mut self.strengths, &mut self.pivots, &mut self.signals);
            derive(&inputs, &self.segments[j], j, true, cache, pivots, signals);
        }
    }

    /// Derives the tail again with `extra`, the strokes of the degree below's non-settled
    /// segments; returns whether it changed as output. The same strokes as the tail was derived
    /// from give the same tail: nothing is derived then.
    fn retail(&mut self, extra: &[Pen], cfg: &EngineConfig, histogram: &Column<f64>) -> bool {
        let now = &self.strokes[self.finals.min(self.strokes.len())..];
        let same = now.iter().zip(extra).take_while(|(a, b)| a == b).count();
        if !self.dirty && same == extra.len() && same == now.len() {
            return false;
        }
        let stable = self.unchanged.min(self.finals + same);
        self.strokes.truncate(self.finals);
        self.strokes.extend_from_slice(extra);
        let t = &mut self.fresh;
        t.segments.clear();
        t.pivots.clear();
        t.signals.clear();
        (self.seg).tail(
            &self.strokes,
            &mut self.scratch,
            &mut self.memo,
            stable as u32,
            &mut t.segments,
        );
        self.unchanged = self.strokes.len();
        let inputs = Inputs {
            pens: &self.strokes,
            finals: self.finals as u32,
            histogram,
            cfg: &cfg.signal,
        };
        let first = self.segments.len();
        for (j, span) in t.segments.iter().enumerate() {
            let cache = &mut self.strengths;
            derive(
                &inputs,
                span,
                first + j,
                false,
                cache,
                &mut t.pivots,
                &mut t.signals,
            );
        }
        show(
            &self.strokes,
            &t.segments,
            &t.pivots,
            &t.signals,
            &mut t.ends,
        );
        let changed = self.fresh != self.tail;
        std::mem::swap(&mut self.fresh, &mut self.tail);
        self.dirty = false;
        changed
    }

    /// This degree as output: settled items, then the tail's.
    fn view(&self) -> Degree {
        Degree {
            degree: self.degree,
            strokes: self.strokes.clone(),
            segments: [&self.segments[..], &self.tail.segments].concat(),
            settled: self.segments.len(),
            finals: self.finals,
            pivots: [&self.pivots[..], &self.tail.pivots].concat(),
            // One pivot list here: a tail point's pivot comes after the settled ones.
            signals: (self.signals.iter().copied())
                .chain(self.tail.signals.iter().map(|g| Signal {
                    pivot: g.pivot + self.pivots.len() as u32,
                    ..*g
                }))
                .collect(),
        }
    }
}

impl LiveHigher {
    /// Empty levels for degrees 2..=`structure.degrees`.
    pub(super) fn new(cfg: &EngineConfig) -> Self {
        let levels: Vec<LiveLevel> = (2..=cfg.structure.degrees)
            .map(|d| LiveLevel::new(d, cfg))
            .collect();
        let marks = vec![LevelMark::default(); levels.len()];
        Self {
            levels,
            marks,
            extra: Vec::new(),
        }
    }

    /// Records the lengths the next bar may change (called on every append).
    pub(super) fn mark(&mut self) {
        for (lv, m) in self.levels.iter_mut().zip(&mut self.marks) {
            lv.backup = None;
            *m = LevelMark {
                finals: lv.finals,
                segments: lv.segments.len(),
                pivots: lv.pivots.len(),
                signals: lv.signals.len(),
            };
        }
    }

    /// Undoes what the bar since [`Self::mark`] settled (its tail stays, to compare with).
    pub(super) fn restore(&mut self) {
        for (lv, m) in self.levels.iter_mut().zip(&self.marks) {
            if let Some(b) = lv.backup.take() {
                lv.seg = b;
            }
            if lv.finals != m.finals {
                lv.strokes.truncate(m.finals);
                lv.unchanged = lv.unchanged.min(m.finals);
                lv.dirty = true;
            }
            lv.finals = m.finals;
            lv.segments.truncate(m.segments);
            lv.pivots.truncate(m.pivots);
            lv.signals.truncate(m.signals);
        }
    }

    /// Takes every segment the degree below settled as a final stroke, level by level.
    pub(super) fn settle(&mut self, engine: &Engine) {
        let cfg = engine.config();
        for k in 0..self.levels.len() {
            let (done, rest) = self.levels.split_at_mut(k);
            let lv = &mut rest[0];
            let (pens, settled): (&[Pen], &[SegmentSpan]) = match done.last() {
                None => (engine.pens(), &engine.segments),
                Some(b) => (&b.strokes, &b.segments),
            };
            debug_assert!(
                settled.len() >= lv.finals,
                "a level is restored with the engine"
            );
            if settled.len() > lv.finals {
                let new: Vec<Pen> = (settled[lv.finals..].iter())
                    .map(|s| stroke(pens, s))
                    .collect();
                lv.settle(&new, cfg, &engine.histogram);
            }
        }
    }

    /// Brings every level up to the engine and its degree-1 tail after a bar; `changed` says
    /// whether degree 1's tail changed as output since the last call (if not, its segments and
    /// the points they show are the same, and so this degree's strokes). Each level records
    /// whether its own tail changed ([`Self::changes`]).
    pub(super) fn sync(&mut self, engine: &Engine, tail: &Tail, changed: bool) {
        // Most bars change no degree: degree 1's tail is shown the same, it settled nothing new
        // and no level was undone.
        let settled = |lv: &LiveLevel| lv.finals == engine.segments.len();
        if !changed
            && self.levels.first().is_none_or(settled)
            && self.levels.iter().all(|lv| !lv.dirty)
        {
            for lv in &mut self.levels {
                lv.tail_changed = false;
            }
            return;
        }
        self.settle(engine);
        let cfg = engine.config();
        let mut below_changed = changed;
        for k in 0..self.levels.len() {
            let (done, rest) = self.levels.split_at_mut(k);
            let lv = &mut rest[0];
            let (pens, unsettled): (&[Pen], &[SegmentSpan]) = match done.last() {
                None => (engine.pens(), &tail.segments),
                Some(b) => (&b.strokes, &b.tail.segments),
            };
            lv.tail_changed = (below_changed || lv.dirty) && {
                let extra = &mut self.extra;
                extra.clear();
                extra.extend(unsettled.iter().map(|s| stroke(pens, s)));
                lv.retail(extra, cfg, &engine.histogram)
            };
            // The level above reads this one's segments: its settled ones (taken above, which
            // marks it dirty) and its tail's.
            below_changed = lv.tail_changed;
        }
    }

    /// What the latest call changed at each level: the settled lists since the mark (the
    /// lengths before the bar, or before the replaced bar), and whether the tail changed.
    pub(super) fn changes(&self) -> impl Iterator<Item = DegreeChange> + '_ {
        self.levels
            .iter()
            .zip(&self.marks)
            .map(|(lv, m)| DegreeChange {
                degree: lv.degree,
                segments: m.segments..lv.segments.len(),
                pivots: m.pivots..lv.pivots.len(),
                signals: m.signals..lv.signals.len(),
                tail_changed: lv.tail_changed,
            })
    }

    /// Every level's lists, borrowed, in order.
    pub(crate) fn lists(&self) -> impl Iterator<Item = LevelLists<'_>> {
        self.levels.iter().map(|lv| LevelLists {
            degree: lv.degree,
            strokes: &lv.strokes,
            segments: &lv.segments,
            pivots: &lv.pivots,
            signals: &lv.signals,
            tail: &lv.tail,
        })
    }

    /// Every level as output.
    pub(super) fn views(&self) -> Vec<Degree> {
        self.levels.iter().map(LiveLevel::view).collect()
    }
}
