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
use super::tail::{LiveTail, PenChange, SpanChange, Tail, TailSource};
use crate::config::EngineConfig;
use crate::memory::Column;
use crate::pen::Pen;
use crate::pivot::Pivot;
use crate::segment::{SegmentEngine, SegmentSpan};
use crate::signal::{Inputs, Signal};

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

/// What a level reads of the degree below it (degree 1 for the first level, else the level
/// before it, `done`'s last): its strokes (pens at degree 1), its settled segments and its tail
/// (`None` at degree 1, whose tail the session keeps).
fn below<'a>(
    engine: &'a Engine,
    done: &'a [LiveLevel],
) -> (&'a [Pen], &'a [SegmentSpan], Option<&'a Tail>) {
    match done.last() {
        None => (engine.pens(), &engine.segments, None),
        Some(b) => (&b.strokes, &b.segments, Some(b.tail.get())),
    }
}

/// Appends to `out` the strokes of the degree above that `spans` (over `pens`) are.
fn strokes_into(out: &mut Vec<Pen>, pens: &[Pen], spans: &[SegmentSpan]) {
    out.extend(spans.iter().map(|s| stroke(pens, s)));
}

/// Degrees 2..=`structure.degrees` of an engine with its tail (empty when it is 1), derived
/// from scratch: every settled segment of each degree taken at once, then its tail. A session
/// keeps the same levels bar by bar; its debug check compares the two.
pub fn higher_degrees(engine: &Engine, tail: &Tail) -> Vec<Degree> {
    let mut live = LiveHigher::new(engine.config());
    live.sync(engine, tail, true, SpanChange::Any);
    live.levels.into_iter().map(LiveLevel::into_view).collect()
}

/// What a level's strokes after its final ones are to its tail, whatever the degree below did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stale {
    /// Those the tail was derived from, as far as the level knows.
    No,
    /// The current bar made some of them final: compare the rest with the degree below's
    /// non-settled segments again, even when its tail is shown the same.
    Settled,
    /// Not those the tail was derived from, or the tail's segment indices moved (a bar settled
    /// strokes or was undone): derive the tail again.
    Dirty,
}

/// One higher degree kept up to date bar by bar in a session: the settled part grows as the
/// degree below settles segments (its final strokes), the tail is derived again when the degree
/// below changed.
#[derive(Debug, Clone)]
struct LiveLevel {
    degree: u32,
    seg: SegmentEngine,
    /// The segment state before the current bar, taken when the bar first feeds it
    /// (`backed_up`); kept between bars so that taking it allocates nothing.
    backup: SegmentEngine,
    backed_up: bool,
    /// The final strokes (`..finals`), then those of the degree below's non-settled segments.
    strokes: Vec<Pen>,
    finals: usize,
    segments: Vec<SegmentSpan>,
    pivots: Vec<Pivot>,
    signals: Vec<Signal>,
    /// `seg` run over the strokes `..ahead_of` (every one but the last, when the tail was last
    /// derived), with the segments that run found: degree 1's final pens end one before the
    /// last, a higher degree's final strokes several before it, and this puts the tail's fast
    /// paths for a last stroke alone within reach. Valid while no stroke below `ahead_of`
    /// changed and `seg` did not move.
    ahead: SegmentEngine,
    ahead_found: Vec<SegmentSpan>,
    ahead_of: usize,
    /// The non-settled segments with their pivots and points, kept as degree 1's are (the same
    /// plans: keep, recompute the last points, derive again from the strokes that changed).
    tail: LiveTail,
    /// What the strokes after `finals` are to the tail, whatever the degree below did.
    stale: Stale,
    /// How many strokes are surely the same as those the tail was derived from.
    unchanged: usize,
    /// The latest call that looked at this level changed its tail as output (read with
    /// [`LiveHigher`]'s `synced`).
    tail_changed: bool,
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
    pub tail: &'a Tail,
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
    /// A level's lists or segment state may differ from its mark (so [`Self::mark`] takes them
    /// again).
    since_mark: bool,
    /// Degree 1's count of settled segments at which a bar that leaves its tail as shown (most
    /// bars) changes no degree and need not look at the levels: each took every segment settled
    /// below it and none is stale. `usize::MAX` when that is not so.
    quiet_at: usize,
    /// The latest call looked at the levels, so their `tail_changed` is its; when it did not,
    /// no level changed. A quiet bar after one that changed a level's tail then only clears
    /// this, instead of visiting every level to clear theirs.
    synced: bool,
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
            backup: seg(),
            backed_up: false,
            ahead: seg(),
            ahead_found: Vec::new(),
            ahead_of: 0,
            strokes: Vec::new(),
            finals: 0,
            segments: Vec::new(),
            pivots: Vec::new(),
            signals: Vec::new(),
            tail: LiveTail::default(),
            stale: Stale::No,
            unchanged: 0,
            tail_changed: false,
        }
    }

    /// Takes the strokes that `spans` (over `pens`), the degree below's newly settled segments,
    /// are as final ones. Built in place: a batch settles every segment at once, and a copy of
    /// them all would be fresh memory to fault in.
    fn settle(
        &mut self,
        pens: &[Pen],
        spans: &[SegmentSpan],
        cfg: &EngineConfig,
        histogram: &Column<f64>,
    ) {
        if !self.backed_up {
            self.backup.clone_from(&self.seg);
            self.backed_up = true;
        }
        // The strokes from `finals` on were the tail's. Mostly the new final ones are the first
        // of them (a segment below settles as the tail showed it): the tail was derived from
        // these very strokes, and it stays unless this degree settles a segment too.
        let end = self.finals + spans.len();
        let same = self.stale != Stale::Dirty
            && self
                .strokes
                .get(self.finals..end)
                .is_some_and(|had| (had.iter().zip(spans)).all(|(a, s)| *a == stroke(pens, s)));
        if !same {
            self.unchanged = self.unchanged.min(self.finals);
            self.strokes.truncate(self.finals);
            strokes_into(&mut self.strokes, pens, spans);
        }
        self.finals = end;
        let first = self.segments.len();
        self.seg.run(&self.strokes, self.finals, &mut self.segments);
        // A segment settled here leaves the tail, whose indices then move.
        self.stale = if same && self.segments.len() == first {
            self.stale.max(Stale::Settled)
        } else {
            Stale::Dirty
        };
        let inputs = Inputs {
            pens: &self.strokes,
            finals: self.finals as u32,
            histogram,
            cfg: &cfg.signal,
        };
        for j in first..self.segments.len() {
            let (cache, pivots, signals) =
                (self.tail.strengths(), &mut self.pivots, &mut self.signals);
            derive(&inputs, &self.segments[j], j, true, cache, pivots, signals);
        }
    }

    /// Brings the tail up to `extra`, the strokes of the degree below's non-settled segments;
    /// returns whether it changed as output. The same strokes as the tail was derived from give
    /// the same tail: nothing is derived then.
    fn retail(&mut self, extra: &[Pen], cfg: &EngineConfig, histogram: &Column<f64>) -> bool {
        let before = &self.strokes[self.finals.min(self.strokes.len())..];
        let same = before.iter().zip(extra).take_while(|(a, b)| a == b).count();
        if self.stale != Stale::Dirty && same == extra.len() && same == before.len() {
            return false;
        }
        let from = (self.finals + same).min(self.unchanged) as u32;
        let change = if self.stale == Stale::Dirty {
            PenChange::Replaced { from }
        } else {
            PenChange::of_strokes(before, extra, same, from)
        };
        self.strokes.truncate(self.finals);
        self.strokes.extend_from_slice(extra);
        self.rederive(change, from as usize, cfg, histogram)
    }

    /// [`Self::retail`] when the degree below kept its segments and only its last one's end
    /// moved ([`SpanChange::LastEndMoved`]): `last` is the stroke it now reads as, and every
    /// other stroke is as it was.
    fn move_last(&mut self, last: Pen, cfg: &EngineConfig, histogram: &Column<f64>) -> bool {
        let n = self.strokes.len();
        debug_assert!(
            self.stale == Stale::No && n > self.finals,
            "a tail stroke to move"
        );
        let before = self.strokes[n - 1];
        if before == last {
            return false;
        }
        let from = (n - 1).min(self.unchanged) as u32;
        let change = PenChange::of_strokes(&[before], &[last], 0, from);
        self.strokes[n - 1] = last;
        self.rederive(change, from as usize, cfg, histogram)
    }

    /// Refreshes the tail after the strokes changed (`change`), those below `stable` the same as
    /// it was derived from; returns whether it changed as output.
    fn rederive(
        &mut self,
        change: PenChange,
        stable: usize,
        cfg: &EngineConfig,
        histogram: &Column<f64>,
    ) -> bool {
        // Every stroke but the last run ahead, from where the run stopped when the strokes
        // below it are the same (a dirty level's `seg` moved: run again from it).
        let upto = (self.strokes.len().saturating_sub(1)).max(self.finals);
        if self.stale == Stale::Dirty || self.ahead_of > stable || self.ahead_of > upto {
            self.ahead.clone_from(&self.seg);
            self.ahead_found.clear();
        }
        (self.ahead).run(&self.strokes, upto, &mut self.ahead_found);
        self.ahead_of = upto;
        let src = TailSource {
            seg: &self.seg,
            settled: self.segments.len(),
            inputs: Inputs {
                pens: &self.strokes,
                finals: self.finals as u32,
                histogram,
                cfg: &cfg.signal,
            },
            ahead: Some((&self.ahead, &self.ahead_found)),
        };
        let changed = self.tail.refresh(&src, change);
        self.unchanged = self.strokes.len();
        self.stale = Stale::No;
        changed
    }

    /// This degree as output: settled items, then the tail's.
    fn view(&self) -> Degree {
        let lists = (self.strokes.clone(), self.segments.clone());
        let items = (self.pivots.clone(), self.signals.clone());
        output(self.degree, self.finals, lists, items, self.tail.get())
    }

    /// [`Self::view`] with the level's lists moved out, not copied: the last use of a batch
    /// derivation, whose lists hold every stroke of the series.
    fn into_view(self) -> Degree {
        let lists = (self.strokes, self.segments);
        output(
            self.degree,
            self.finals,
            lists,
            (self.pivots, self.signals),
            self.tail.get(),
        )
    }
}

/// A degree as output from its lists (strokes, settled segments; settled pivots and points) and
/// its tail, whose items follow the settled ones.
fn output(
    degree: u32,
    finals: usize,
    (strokes, mut segments): (Vec<Pen>, Vec<SegmentSpan>),
    (mut pivots, mut signals): (Vec<Pivot>, Vec<Signal>),
    tail: &Tail,
) -> Degree {
    let settled = segments.len();
    // One pivot list here: a tail point's pivot comes after the settled ones.
    let first_pivot = pivots.len() as u32;
    segments.extend_from_slice(&tail.segments);
    pivots.extend_from_slice(&tail.pivots);
    signals.extend(tail.signals.iter().map(|g| Signal {
        pivot: g.pivot + first_pivot,
        ..*g
    }));
    Degree {
        degree,
        strokes,
        segments,
        settled,
        finals,
        pivots,
        signals,
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
            since_mark: false,
            quiet_at: usize::MAX,
            synced: false,
        }
    }

    /// Records the lengths the next bar may change (called on every append).
    #[inline]
    pub(super) fn mark(&mut self) {
        if !self.since_mark {
            return;
        }
        self.since_mark = false;
        for (lv, m) in self.levels.iter_mut().zip(&mut self.marks) {
            lv.backed_up = false;
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
        if !self.since_mark {
            return;
        }
        self.since_mark = false;
        self.quiet_at = usize::MAX;
        for (lv, m) in self.levels.iter_mut().zip(&self.marks) {
            if lv.backed_up {
                lv.seg.clone_from(&lv.backup);
                lv.backed_up = false;
            }
            if lv.finals != m.finals {
                lv.strokes.truncate(m.finals);
                lv.unchanged = lv.unchanged.min(m.finals);
                lv.stale = Stale::Dirty;
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
            let (pens, settled, _) = below(engine, done);
            debug_assert!(
                settled.len() >= lv.finals,
                "a level is restored with the engine"
            );
            if settled.len() > lv.finals {
                lv.settle(pens, &settled[lv.finals..], cfg, &engine.histogram);
                self.since_mark = true;
                self.quiet_at = usize::MAX;
            }
        }
    }

    /// Brings every level up to the engine and its degree-1 tail after a bar; `changed` says
    /// whether degree 1's tail changed as output since the last call (if not, its segments and
    /// the points they show are the same, and so this degree's strokes), and `spans` how, when
    /// it did. Each level records whether its own tail changed ([`Self::changes`]).
    #[inline]
    pub(super) fn sync(&mut self, engine: &Engine, tail: &Tail, changed: bool, spans: SpanChange) {
        // Most bars change no degree: degree 1's tail is shown the same and it settled nothing
        // new. Checked inline, on every bar.
        if (!changed || self.levels.is_empty()) && self.quiet_at == engine.segments.len() {
            self.synced = false;
            return;
        }
        self.sync_levels(engine, tail, changed, spans);
    }

    /// [`Self::sync`] when a degree may change.
    #[inline(never)]
    fn sync_levels(&mut self, engine: &Engine, tail: &Tail, changed: bool, spans: SpanChange) {
        self.settle(engine);
        let cfg = engine.config();
        let histogram = &engine.histogram;
        let mut moved = (changed, spans);
        for k in 0..self.levels.len() {
            let (done, rest) = self.levels.split_at_mut(k);
            let lv = &mut rest[0];
            let (pens, _, below_tail) = below(engine, done);
            let unsettled = &below_tail.unwrap_or(tail).segments;
            // What the strokes after `finals` may have become: the degree below's non-settled
            // segments, compared stroke by stroke unless it says which moved.
            lv.tail_changed = match moved {
                _ if lv.stale != Stale::No || moved == (true, SpanChange::Any) => {
                    self.extra.clear();
                    strokes_into(&mut self.extra, pens, unsettled);
                    lv.retail(&self.extra, cfg, histogram)
                }
                (true, SpanChange::LastEndMoved) => match unsettled.last() {
                    Some(s) => lv.move_last(stroke(pens, s), cfg, histogram),
                    None => unreachable!("the last end moved: there is a span"),
                },
                _ => false,
            };
            // Compared or derived again above.
            lv.stale = Stale::No;
            // The level above reads this one's segments: its settled ones (taken above) and its
            // tail's.
            moved = (lv.tail_changed, lv.tail.span_change());
        }
        // Every level took every segment below it and is derived again.
        self.quiet_at = engine.segments.len();
        self.synced = true;
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
                tail_changed: self.synced && lv.tail_changed,
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
            tail: lv.tail.get(),
        })
    }

    /// Every level as output.
    pub(super) fn views(&self) -> Vec<Degree> {
        self.levels.iter().map(LiveLevel::view).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tail::tests::walk;
    use super::super::Session;
    use crate::config::EngineConfig;

    /// Degree 2's tail takes the fast paths of degree 1's (the same plans over its strokes):
    /// most bars that move degree 1's tail leave it as it is or recompute its last points.
    /// A guard made stricter than its invariant needs changes these counts (see
    /// `the_fast_paths_are_taken` in `tail`); after a change of the rules, check and pin them.
    #[test]
    fn degree_two_takes_the_fast_paths() {
        let mut cfg = EngineConfig::default();
        cfg.structure.degrees = 2;
        let mut s = Session::new(cfg, false).unwrap();
        for bar in walk(60_000) {
            s.append(bar).unwrap();
        }
        let [keep, recompute, derive] = s.live_higher().levels[0].tail.taken();
        eprintln!("degree 2: keep {keep}, recompute last points {recompute}, derive {derive}");
        assert!(keep > 0 && recompute > 0 && derive > 0);
        assert_eq!((keep, recompute, derive), (1604, 1121, 662));
    }
}
