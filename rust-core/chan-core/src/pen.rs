//! Pens (笔, spec §5): moves between a top fractal (顶分型) and a bottom fractal (底分型), built
//! one fractal at a time, plus the forming move after the last pen.

use crate::config::{PenConfig, PenDefinition};
use crate::fractal::{Fractal, FractalKind};
use crate::kline::{Direction, MergedBar, MergedBars};

/// A pen (笔): a directed move from a start fractal to an end fractal of the opposite kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pen {
    pub dir: Direction,
    pub start: Fractal,
    pub end: Fractal,
}

impl Pen {
    /// The pen's highest price (its top end).
    #[inline]
    pub fn high(&self) -> f64 {
        match self.dir {
            Direction::Up => self.end.price,
            Direction::Down => self.start.price,
        }
    }

    /// The pen's lowest price (its bottom end).
    #[inline]
    pub fn low(&self) -> f64 {
        match self.dir {
            Direction::Up => self.start.price,
            Direction::Down => self.end.price,
        }
    }
}

/// What a fractal did to the pen list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PenEvent {
    /// Nothing changed.
    None,
    /// The last pen's end moved to a more extreme fractal of its kind.
    Extended,
    /// A new pen was appended (the one before it, if any, became final).
    Added,
}

/// Highest high and lowest low (latest on ties) of the final merged bars after the last pen's end.
#[derive(Debug, Clone, Copy)]
struct Extremes {
    max_high: f64,
    max_at: u32,
    min_low: f64,
    min_at: u32,
}

impl Extremes {
    const EMPTY: Extremes = Extremes {
        max_high: f64::NEG_INFINITY,
        max_at: u32::MAX,
        min_low: f64::INFINITY,
        min_at: u32::MAX,
    };

    #[inline]
    fn fold(&mut self, m: &MergedBar, at: u32) {
        if m.high >= self.max_high {
            self.max_high = m.high;
            self.max_at = at;
        }
        if m.low <= self.min_low {
            self.min_low = m.low;
            self.min_at = at;
        }
    }
}

/// Builds pens from fractals in the order they are classified (spec §5.2).
#[derive(Debug, Clone)]
pub struct PenBuilder {
    cfg: PenConfig,
    pens: Vec<Pen>,
    /// Fractals seen before the first pen.
    kept: Vec<Fractal>,
    ext: Extremes,
}

/// What is needed to undo one bar's effect on the builder.
#[derive(Debug, Clone, Copy)]
pub struct PenMark {
    pens: usize,
    /// Only the last pen's end can move (meaningful when `pens > 0`; a plain copy, as this
    /// record is written on every streamed bar).
    last_end: Fractal,
    kept: usize,
    ext: Extremes,
}

impl PenMark {
    /// How many pens there were.
    pub fn count(&self) -> usize {
        self.pens
    }
}

impl PenBuilder {
    /// An empty builder.
    pub fn new(cfg: PenConfig) -> Self {
        Self {
            cfg,
            pens: Vec::new(),
            kept: Vec::new(),
            ext: Extremes::EMPTY,
        }
    }

    /// All pens; every one but the last is final.
    #[inline]
    pub fn pens(&self) -> &[Pen] {
        &self.pens
    }

    /// Called when merged bar `n` has become final (bar `n + 1` was just created from one raw bar),
    /// with the fractal that `n` turned out to be, if any.
    #[inline]
    pub fn on_final_bar(
        &mut self,
        merged: &MergedBars,
        n: usize,
        fractal: Option<Fractal>,
    ) -> PenEvent {
        let ev = match fractal {
            Some(f) => self.on_fractal(merged, f),
            None => PenEvent::None,
        };
        if let Some(last) = self.pens.last() {
            if n as u32 > last.end.merged {
                self.ext.fold(&merged[n], n as u32);
            }
        }
        ev
    }

    fn on_fractal(&mut self, merged: &MergedBars, f: Fractal) -> PenEvent {
        let Some(last) = self.pens.last_mut() else {
            return self.try_first_pen(merged, f);
        };
        if f.kind == last.end.kind {
            let further = match f.kind {
                FractalKind::Top => f.price >= last.end.price,
                FractalKind::Bottom => f.price <= last.end.price,
            };
            if further {
                last.end = f;
                self.ext = Extremes::EMPTY;
                return PenEvent::Extended;
            }
            return PenEvent::None;
        }
        let start = last.end;
        let between_ok = match f.kind {
            FractalKind::Top => self.ext.max_high <= f.price,
            FractalKind::Bottom => self.ext.min_low >= f.price,
        };
        let n = f.merged as usize;
        if between_ok && self.span_and_validity(merged, &start, &f, merged.get(n + 1)) {
            self.push(start, f);
            return PenEvent::Added;
        }
        PenEvent::None
    }

    fn try_first_pen(&mut self, merged: &MergedBars, f: Fractal) -> PenEvent {
        let n = f.merged as usize;
        let found = self.kept.iter().copied().find(|k| {
            k.kind != f.kind
                && self.span_and_validity(merged, k, &f, merged.get(n + 1))
                && end_is_extreme(merged, k.merged as usize, &f)
        });
        if let Some(k) = found {
            self.push(k, f);
            PenEvent::Added
        } else {
            self.kept.push(f);
            PenEvent::None
        }
    }

    fn push(&mut self, start: Fractal, end: Fractal) {
        let dir = match end.kind {
            FractalKind::Top => Direction::Up,
            FractalKind::Bottom => Direction::Down,
        };
        self.pens.push(Pen { dir, start, end });
        self.ext = Extremes::EMPTY;
    }

    /// Rules 1 and 2 of spec §5.1 for `s → e`; `next` is the bar after `e` as it is now, if any.
    #[allow(clippy::int_plus_one)] // written as the spec words it
    fn span_and_validity(
        &self,
        merged: &MergedBars,
        s: &Fractal,
        e: &Fractal,
        next: Option<&MergedBar>,
    ) -> bool {
        let (si, ei) = (s.merged as usize, e.merged as usize);
        let span = match self.cfg.definition {
            PenDefinition::Traditional => ei >= si + 4,
            PenDefinition::New3Kline => {
                // At least 3 raw bars strictly between the two extreme bars.
                ei >= si + 3 && i64::from(e.index) - i64::from(s.index) - 1 >= 3
            }
        };
        if !span {
            return false;
        }
        let (ms, me) = (&merged[si], &merged[ei]);
        let (sp, sn, ep) = (&merged[si - 1], &merged[si + 1], &merged[ei - 1]);
        if e.kind == FractalKind::Top {
            if self.cfg.strict_validation {
                let s_high = sp.high.max(ms.high).max(sn.high);
                let e_low = next.map_or(ep.low.min(me.low), |x| ep.low.min(me.low).min(x.low));
                me.high > s_high && ms.low < e_low
            } else {
                me.high > ms.high && ms.low < me.low
            }
        } else if self.cfg.strict_validation {
            let s_low = sp.low.min(ms.low).min(sn.low);
            let e_high = next.map_or(ep.high.max(me.high), |x| ep.high.max(me.high).max(x.high));
            me.low < s_low && ms.high > e_high
        } else {
            me.low < ms.low && ms.high > me.high
        }
    }

    /// The forming move after the last pen (spec §5.2), if it would already make a pen.
    pub fn forming(&self, merged: &MergedBars) -> Option<Pen> {
        let last = self.pens.last()?;
        let s = last.end.merged as usize;
        let lm = merged.len() - 1;
        if lm == s {
            return None;
        }
        let lb = &merged[lm];
        let end = match last.dir {
            Direction::Up => {
                if lb.high >= last.end.price {
                    return None;
                }
                let (mut v, mut at) = (self.ext.min_low, self.ext.min_at);
                if lb.low <= v {
                    (v, at) = (lb.low, lm as u32);
                }
                Fractal {
                    kind: FractalKind::Bottom,
                    merged: at,
                    index: merged[at as usize].low_bar,
                    price: v,
                }
            }
            Direction::Down => {
                if lb.low <= last.end.price {
                    return None;
                }
                let (mut v, mut at) = (self.ext.max_high, self.ext.max_at);
                if lb.high >= v {
                    (v, at) = (lb.high, lm as u32);
                }
                Fractal {
                    kind: FractalKind::Top,
                    merged: at,
                    index: merged[at as usize].high_bar,
                    price: v,
                }
            }
        };
        let next = merged.get(end.merged as usize + 1);
        // Rule 3 holds by construction: `end` is the most extreme bar after the start.
        self.span_and_validity(merged, &last.end, &end, next)
            .then_some(Pen {
                dir: last.dir.opposite(),
                start: last.end,
                end,
            })
    }

    /// The oldest merged bar the builder can still read: the one before the last pen's end, or
    /// before the oldest fractal kept while there is no pen.
    pub fn needs_from(&self) -> usize {
        match (self.pens.last(), self.kept.first()) {
            (Some(p), _) => p.end.merged as usize - 1,
            (None, Some(k)) => k.merged as usize - 1,
            (None, None) => usize::MAX,
        }
    }

    /// Records what one bar may change.
    pub fn mark(&self) -> PenMark {
        let mut m = PenMark {
            pens: 0,
            last_end: Fractal::EMPTY,
            kept: 0,
            ext: Extremes::EMPTY,
        };
        self.mark_into(&mut m);
        m
    }

    /// Records, in place, what one bar may change.
    pub fn mark_into(&self, m: &mut PenMark) {
        m.pens = self.pens.len();
        if let Some(p) = self.pens.last() {
            m.last_end = p.end;
        }
        m.kept = self.kept.len();
        m.ext = self.ext;
    }

    /// Restores the state recorded by [`PenBuilder::mark`].
    pub fn restore(&mut self, m: &PenMark) {
        self.pens.truncate(m.pens);
        if m.pens > 0 {
            self.pens[m.pens - 1].end = m.last_end;
        }
        self.kept.truncate(m.kept);
        self.ext = m.ext;
    }
}

/// Rule 3 of spec §5.1 by scanning: no merged bar strictly between `s` and `e` beyond `e`.
fn end_is_extreme(merged: &MergedBars, s: usize, e: &Fractal) -> bool {
    let between = merged.range(s + 1, e.merged as usize);
    match e.kind {
        FractalKind::Top => between.iter().all(|m| m.high <= e.price),
        FractalKind::Bottom => between.iter().all(|m| m.low >= e.price),
    }
}
