//! Segments (线段, spec §6): runs of pens ended through the feature sequence (特征序列).
//!
//! [`SegmentEngine`] consumes pens in order and emits segment ends. It is fed only final pens,
//! so what it emits never changes; the non-final tail comes from a clone fed the last pen too.

use crate::kline::Direction;
use crate::pen::Pen;

/// A segment (线段): pens `first_pen..=last_pen`, starting and ending with pens of `dir`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentSpan {
    pub dir: Direction,
    pub first_pen: u32,
    pub last_pen: u32,
    /// The end had a gap (缺口) in the feature sequence (second case).
    pub gap: bool,
    /// A leading segment (spec §6.3): a piece of the first run, never confirmed.
    pub leading: bool,
}

impl SegmentSpan {
    /// Number of pens.
    #[inline]
    pub fn len(&self) -> u32 {
        self.last_pen - self.first_pen + 1
    }

    /// Confirmed once settled (spec §6.3): not a leading segment, and at least 3 pens.
    #[inline]
    pub fn confirmable(&self) -> bool {
        !self.leading && self.len() >= 3
    }

    /// Never true: a span holds at least one pen.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A feature element (特征序列元素), in mirrored prices: an up window reads pens as they are, a
/// down window reads `(-low, -high)`, so one set of comparisons serves both directions.
#[derive(Debug, Clone, Copy, Default)]
struct Element {
    hi: f64,
    lo: f64,
    /// The latest pen merged into it.
    last: u32,
    /// The latest pen whose (mirrored) high equals `hi`.
    peak: u32,
}

impl Element {
    fn new(hi: f64, lo: f64, p: u32) -> Self {
        Self {
            hi,
            lo,
            last: p,
            peak: p,
        }
    }

    /// Merges in the segment's direction: (mirrored) high = max, low = max.
    #[inline]
    fn merge(&mut self, hi: f64, lo: f64, p: u32) {
        self.hi = self.hi.max(hi);
        self.lo = self.lo.max(lo);
        self.last = p;
        if hi >= self.hi {
            self.peak = p;
        }
    }
}

/// The end a feature window found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowEnd {
    /// The peak pen: the segment ends at the pen before it; the next one starts at it.
    pub peak: u32,
    /// `e0.high < e1.low` (up): the end needs second-case confirmation.
    pub gap: bool,
}

enum Step {
    Continue,
    Reset,
    End,
}

/// The feature sequence window (特征序列, spec §6.1): up to three elements of the pens against a
/// segment of direction `dir`.
#[derive(Debug, Clone, Copy)]
pub struct FeatureWindow {
    dir: Direction,
    strict: bool,
    inclusion: bool,
    /// First pen fed since the last reset (`u32::MAX` before any).
    start: u32,
    last_fed: u32,
    n: u8,
    e: [Element; 3],
    /// A top candidate waits for the next feature pen (the real-break check).
    awaiting: bool,
}

impl FeatureWindow {
    /// An empty window; feature pens come every second pen.
    pub fn new(dir: Direction, strict: bool, inclusion: bool) -> Self {
        Self {
            dir,
            strict,
            inclusion,
            start: u32::MAX,
            last_fed: 0,
            n: 0,
            e: [Element::default(); 3],
            awaiting: false,
        }
    }

    /// How many elements the window holds (0 to 3).
    #[inline]
    pub fn elements(&self) -> usize {
        self.n as usize
    }

    #[inline]
    fn mirror(&self, pen: &Pen) -> (f64, f64) {
        match self.dir {
            Direction::Up => (pen.high(), pen.low()),
            Direction::Down => (-pen.low(), -pen.high()),
        }
    }

    /// Feeds the next feature pen `p`; returns the end when the window forms its top (bottom).
    pub fn feed(&mut self, pens: &[Pen], p: u32) -> Option<WindowEnd> {
        if self.start == u32::MAX {
            self.start = p;
        }
        self.last_fed = p;
        match self.step(pens, p) {
            Step::Continue => None,
            Step::End => Some(self.end()),
            Step::Reset => self.reset(pens),
        }
    }

    fn end(&self) -> WindowEnd {
        WindowEnd {
            peak: self.e[1].peak,
            gap: self.e[0].hi < self.e[1].lo,
        }
    }

    /// Drops the first pen fed and feeds the others again, as often as needed.
    pub fn reset(&mut self, pens: &[Pen]) -> Option<WindowEnd> {
        'again: loop {
            self.start += 2;
            self.n = 0;
            self.awaiting = false;
            let mut p = self.start;
            while p <= self.last_fed {
                match self.step(pens, p) {
                    Step::Continue => {}
                    Step::End => return Some(self.end()),
                    Step::Reset => continue 'again,
                }
                p += 2;
            }
            return None;
        }
    }

    fn step(&mut self, pens: &[Pen], p: u32) -> Step {
        let (h, l) = self.mirror(&pens[p as usize]);
        match self.n {
            0 => {
                self.e[0] = Element::new(h, l, p);
                self.n = 1;
                Step::Continue
            }
            1 => {
                let e0 = &mut self.e[0];
                if self.inclusion && e0.hi >= h && e0.lo <= l {
                    e0.merge(h, l, p);
                    return Step::Continue;
                }
                self.e[1] = Element::new(h, l, p);
                self.n = 2;
                if self.e[1].hi < self.e[0].hi {
                    Step::Reset
                } else {
                    Step::Continue
                }
            }
            2 => {
                let e1 = &mut self.e[1];
                let included = (e1.hi >= h && e1.lo <= l) || (h >= e1.hi && l <= e1.lo);
                if self.inclusion && included && !(h == e1.hi && l < e1.lo) {
                    e1.merge(h, l, p);
                    return Step::Continue;
                }
                let e1 = *e1;
                self.e[2] = Element::new(h, l, p);
                self.n = 3;
                if !(self.e[0].hi < e1.hi && h <= e1.hi && l < e1.lo) {
                    return Step::Reset;
                }
                if !self.strict {
                    return Step::End;
                }
                // Merging may have lifted e1's low: demand a break below its last pen's low.
                let (_, last_lo) = self.mirror(&pens[e1.last as usize]);
                if l < last_lo {
                    return Step::End;
                }
                self.awaiting = true;
                Step::Continue
            }
            _ => {
                debug_assert!(self.awaiting);
                if l < self.e[2].lo {
                    Step::End
                } else {
                    Step::Reset
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Looking for the first segment with two windows side by side (spec §6.3).
    First {
        up: FeatureWindow,
        down: FeatureWindow,
        pursued: Option<Direction>,
    },
    /// Inside the segment that starts at pen `start`.
    Normal {
        start: u32,
        dir: Direction,
        window: FeatureWindow,
    },
}

/// Finds segment ends pen by pen (spec §6).
#[derive(Debug)]
pub struct SegmentEngine {
    strict: bool,
    inclusion: bool,
    phase: Phase,
    /// Segments whose end (found with a gap) waits for the opposite feature sequence to confirm
    /// it, with the leading segments (spec §6.3) of a first end that waits.
    pending: Vec<SegmentSpan>,
    /// The next pen to process.
    cursor: u32,
}

impl Clone for SegmentEngine {
    fn clone(&self) -> Self {
        Self {
            strict: self.strict,
            inclusion: self.inclusion,
            phase: self.phase,
            pending: self.pending.clone(),
            cursor: self.cursor,
        }
    }

    /// Copies without allocating when `self` already has room (the tail reuses one scratch).
    fn clone_from(&mut self, src: &Self) {
        self.strict = src.strict;
        self.inclusion = src.inclusion;
        self.phase = src.phase;
        // Mostly empty: no call to copy nothing.
        if src.pending.is_empty() {
            self.pending.clear();
        } else {
            self.pending.clone_from(&src.pending);
        }
        self.cursor = src.cursor;
    }
}

impl SegmentEngine {
    /// A fresh engine.
    pub fn new(feature_sequence_strict: bool, handle_inclusion: bool) -> Self {
        let w = |d| FeatureWindow::new(d, feature_sequence_strict, handle_inclusion);
        Self {
            strict: feature_sequence_strict,
            inclusion: handle_inclusion,
            phase: Phase::First {
                up: w(Direction::Up),
                down: w(Direction::Down),
                pursued: None,
            },
            pending: Vec::new(),
            cursor: 0,
        }
    }

    /// Processes pens `cursor..available`, pushing each segment whose end is settled to `out`.
    pub fn run(&mut self, pens: &[Pen], available: usize, out: &mut Vec<SegmentSpan>) {
        while (self.cursor as usize) < available {
            let k = self.cursor;
            self.cursor += 1;
            match self.phase {
                Phase::Normal {
                    start,
                    dir,
                    mut window,
                } => {
                    if (k - start) % 2 == 1 {
                        let end = window.feed(pens, k);
                        self.phase = Phase::Normal { start, dir, window };
                        if let Some(end) = end {
                            self.on_end(start, dir, end, out);
                        }
                    }
                }
                Phase::First {
                    mut up,
                    mut down,
                    mut pursued,
                } => {
                    let just = pens[k as usize].dir.opposite();
                    // While one window is pursued the other is not fed (spec §6.3).
                    if pursued.is_some_and(|d| d != just) {
                        continue;
                    }
                    let w = if just == Direction::Up {
                        &mut up
                    } else {
                        &mut down
                    };
                    let mut end = w.feed(pens, k);
                    // Only the pursued window may end the first segment; for a window not
                    // pursued (yet) an end counts as a reset (§12.4).
                    while end.is_some() && pursued != Some(just) {
                        end = w.reset(pens);
                    }
                    if let Some(e) = end {
                        self.on_first_end(pens, just, e, out);
                        continue;
                    }
                    let fed = w.elements();
                    if pursued.is_some() && fed < 2 {
                        pursued = None;
                    } else if pursued.is_none() && fed >= 2 {
                        // The window just fed is pursued; the other one is emptied.
                        pursued = Some(just);
                        let other =
                            FeatureWindow::new(just.opposite(), self.strict, self.inclusion);
                        if just == Direction::Up {
                            down = other;
                        } else {
                            up = other;
                        }
                    }
                    self.phase = Phase::First { up, down, pursued };
                }
            }
        }
    }

    /// The pursued window of direction `dir` ended the first run at `end` (spec §6.3): the run
    /// is the first segment, or it splits into leading segments.
    fn on_first_end(
        &mut self,
        pens: &[Pen],
        dir: Direction,
        end: WindowEnd,
        out: &mut Vec<SegmentSpan>,
    ) {
        let last = end.peak - 1;
        let at = self.pending.len();
        split_first_run(pens, last, &mut self.pending);
        let pieces = self.pending.len() - at;
        if pieces == 1 && pens[0].dir == dir {
            self.pending.pop();
            self.on_end(0, dir, end, out);
            return;
        }
        // The last piece ends where the window's end test did: it carries the end's gap.
        if let Some(p) = self.pending.last_mut() {
            p.gap = end.gap;
        }
        self.settle_or_wait(dir, end);
        self.flush(end, out);
    }

    fn on_end(&mut self, start: u32, dir: Direction, end: WindowEnd, out: &mut Vec<SegmentSpan>) {
        self.pending.push(SegmentSpan {
            dir,
            first_pen: start,
            last_pen: end.peak - 1,
            gap: end.gap,
            leading: false,
        });
        self.settle_or_wait(dir, end);
        self.flush(end, out);
    }

    /// A first-case end settles itself and every end waiting before it.
    fn flush(&mut self, end: WindowEnd, out: &mut Vec<SegmentSpan>) {
        if !end.gap {
            out.append(&mut self.pending);
        }
    }

    /// The search goes on at the peak pen in the opposite direction.
    fn settle_or_wait(&mut self, dir: Direction, end: WindowEnd) {
        let next = dir.opposite();
        self.phase = Phase::Normal {
            start: end.peak,
            dir: next,
            window: FeatureWindow::new(next, self.strict, self.inclusion),
        };
        self.cursor = end.peak + 1;
    }

    /// The non-final segments: ends that need the last pen, pending gap ends, and forming
    /// segments (spec §6.3), in order.
    /// `scratch` is working space (its contents are overwritten); `memo` holds the scans of the
    /// forming segments of the last tail computed with it, of which those that read only pens
    /// below `stable` (the same now as then) are resumed (an empty memo: none).
    pub fn tail(
        &self,
        pens: &[Pen],
        scratch: &mut SegmentEngine,
        memo: &mut FormingMemo,
        stable: u32,
        out: &mut Vec<SegmentSpan>,
    ) {
        if pens.is_empty() {
            return;
        }
        if self.settled_by(pens.len()) || self.last_feed_ends_nothing(pens) {
            self.pending_and_forming(pens, memo, stable, out);
        } else {
            self.tail_by_run(pens, scratch, memo, stable, out);
        }
    }

    /// [`Self::tail`] the long way: a copy of the engine runs the last pen.
    fn tail_by_run(
        &self,
        pens: &[Pen],
        scratch: &mut SegmentEngine,
        memo: &mut FormingMemo,
        stable: u32,
        out: &mut Vec<SegmentSpan>,
    ) {
        scratch.clone_from(self);
        scratch.run(pens, pens.len(), out);
        scratch.pending_and_forming(pens, memo, stable, out);
    }

    /// The rest of the tail once every pen has run: pending gap ends, then forming segments.
    fn pending_and_forming(
        &self,
        pens: &[Pen],
        memo: &mut FormingMemo,
        stable: u32,
        out: &mut Vec<SegmentSpan>,
    ) {
        out.extend_from_slice(&self.pending);
        self.forming(pens, memo, stable, out);
    }

    /// Whether running the last of `pens` pens would change nothing: it is a pen of the
    /// segment's own direction (not fed to the feature window) and every pen before it has run.
    /// Then this engine is already what the run gives.
    fn settled_by(&self, pens: usize) -> bool {
        let own_direction = match self.phase {
            Phase::Normal { start, .. } => (self.cursor - start).is_multiple_of(2),
            Phase::First { .. } => false,
        };
        own_direction && self.cursor as usize + 1 == pens
    }

    /// Whether the last pen, fed to a copy of the window alone (every pen before it has run),
    /// ends nothing: then the run would leave the pending ends and the segment's start as they
    /// are, which is all the tail reads, and the whole engine need not be copied.
    fn last_feed_ends_nothing(&self, pens: &[Pen]) -> bool {
        match self.phase {
            Phase::Normal { mut window, .. } if self.cursor as usize + 1 == pens.len() => {
                window.feed(pens, self.cursor).is_none()
            }
            _ => false,
        }
    }

    /// The forming segments (spec §6.3) from the current segment's start to the last pen.
    fn forming(
        &self,
        pens: &[Pen],
        memo: &mut FormingMemo,
        stable: u32,
        out: &mut Vec<SegmentSpan>,
    ) {
        let (mut s, mut d) = match self.phase {
            Phase::Normal { start, dir, .. } => (start, dir),
            Phase::First { .. } => (0, pens[0].dir),
        };
        let n = pens.len() as u32;
        // The scans are kept up to the last two pens: a streamed bar moves the last pen on or
        // adds one, and a replaced bar may also move the one before.
        let keep = n.saturating_sub(2);
        let mut k = 0;
        while s + 2 < n {
            // Candidate ends are the pens of the segment's direction; ties go to the later one.
            // A kept scan read only pens below `keep` then, and those stay below `stable` now
            // (the test is a guard). The direction follows from the first pen: not kept.
            let (mut best, mut c) = match memo.scans.get(k) {
                Some(m) if m.start == s && m.next <= stable => (m.best, m.next),
                _ => (s + 2, s + 4),
            };
            let ends_better = |c: u32, best: u32| {
                let (x, b) = (pens[c as usize].end.price, pens[best as usize].end.price);
                match d {
                    Direction::Up => x >= b,
                    Direction::Down => x <= b,
                }
            };
            while c < keep {
                if ends_better(c, best) {
                    best = c;
                }
                c += 2;
            }
            let scan = Scan {
                start: s,
                best,
                next: c,
            };
            match memo.scans.get_mut(k) {
                Some(m) => *m = scan,
                None => memo.scans.push(scan),
            }
            while c < n {
                if ends_better(c, best) {
                    best = c;
                }
                c += 2;
            }
            out.push(SegmentSpan {
                dir: d,
                first_pen: s,
                last_pen: best,
                gap: false,
                leading: false,
            });
            s = best + 1;
            d = d.opposite();
            k += 1;
        }
        memo.scans.truncate(k);
    }
}

/// Splits the first run, pens `0..=last`, into pieces (spec §6.3), appended to `out` in order as
/// leading segments (each in its last pen's direction, without a gap).
pub fn split_first_run(pens: &[Pen], last: u32, out: &mut Vec<SegmentSpan>) {
    let e = &pens[last as usize];
    if last >= 3 {
        // m: among pens 0..=last-3 against pen `last`, the one ending most extreme (earliest on
        // ties); pens alternate, so they are every second pen from last-3 down.
        let up = e.dir == Direction::Up;
        let mut m = (last - 3) % 2;
        let mut c = m + 2;
        while c <= last - 3 {
            let (x, b) = (pens[c as usize].end.price, pens[m as usize].end.price);
            if (up && x < b) || (!up && x > b) {
                m = c;
            }
            c += 2;
        }
        let first = &pens[0];
        let x = pens[m as usize].end.price;
        let beyond = if up {
            x < first.low()
        } else {
            x > first.high()
        };
        if m == 0 || beyond {
            split_first_run(pens, m, out);
            out.push(SegmentSpan {
                dir: e.dir,
                first_pen: m + 1,
                last_pen: last,
                gap: false,
                leading: true,
            });
            return;
        }
    }
    out.push(SegmentSpan {
        dir: e.dir,
        first_pen: 0,
        last_pen: last,
        gap: false,
        leading: true,
    });
}

/// The scans of the forming segments of the last tail computed, so the next one resumes them
/// instead of scanning every segment from its start again (most of them are the same).
#[derive(Debug, Clone, Default)]
pub struct FormingMemo {
    scans: Vec<Scan>,
}

/// The forming segment from pen `start` ends, among the candidates before pen `next`, at pen
/// `best`.
#[derive(Debug, Clone, Copy)]
struct Scan {
    start: u32,
    best: u32,
    next: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fractal::{Fractal, FractalKind};
    use proptest::prelude::*;

    /// Pens joining the turning points `p`, alternating up and down.
    fn pens(first_up: bool, moves: &[f64]) -> Vec<Pen> {
        let mut price = 100.0;
        let mut up = first_up;
        let mut out = Vec::new();
        for (i, m) in moves.iter().enumerate() {
            let next = if up { price + m } else { price - m };
            let at = |index: usize, price: f64, top: bool| Fractal {
                kind: if top {
                    FractalKind::Top
                } else {
                    FractalKind::Bottom
                },
                merged: index as u32,
                index: index as u32,
                price,
            };
            let dir = if up { Direction::Up } else { Direction::Down };
            out.push(Pen {
                dir,
                start: at(i, price, !up),
                end: at(i + 1, next, up),
            });
            price = next;
            up = !up;
        }
        out
    }

    proptest! {
        /// The tail computed without copying the engine (the last pen's feed ends nothing, or it
        /// is not fed) equals the tail of a copy that runs the last pen, after every pen.
        #[test]
        fn tail_shortcuts_equal_the_run(
            first_up in any::<bool>(),
            moves in prop::collection::vec(prop::sample::select(vec![1.0, 2.0, 3.0, 4.0, 6.0]), 1..80),
            strict in any::<bool>(),
            inclusion in any::<bool>(),
        ) {
            let pens = pens(first_up, &moves);
            let mut engine = SegmentEngine::new(strict, inclusion);
            let mut scratch = SegmentEngine::new(strict, inclusion);
            let (mut settled, mut fast, mut slow) = (Vec::new(), Vec::new(), Vec::new());
            let mut memo = FormingMemo::default();
            for n in 1..=pens.len() {
                engine.run(&pens, n - 1, &mut settled);
                fast.clear();
                slow.clear();
                // Every pen before the new one is as it was: the memo's scans are resumed.
                engine.tail(&pens[..n], &mut scratch, &mut memo, n as u32 - 1, &mut fast);
                let fresh = &mut FormingMemo::default();
                engine.tail_by_run(&pens[..n], &mut scratch, fresh, 0, &mut slow);
                prop_assert_eq!(&fast, &slow, "after {} pens", n);
            }
        }
    }
}
