//! Divergence (背驰) strength (spec §8) and buy/sell points (买卖点, spec §9).

use serde::Serialize;

use crate::config::{SignalConfig, Strength};
use crate::kline::Direction;
use crate::memory::Column;
use crate::pen::Pen;
use crate::pivot::Pivot;
use crate::segment::SegmentSpan;

/// Buy (买) or sell (卖).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

/// Shown as its name in the document (`as_str`); width and alignment apply.
impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Side {
    /// `"buy"` or `"sell"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    fn of(pen: &Pen) -> Side {
        match pen.dir {
            Direction::Down => Side::Buy,
            Direction::Up => Side::Sell,
        }
    }
}

/// A buy/sell point (买卖点) of type 1 (一类), 2 (二类) or 3 (三类), at the end of pen `pen`,
/// with what it was derived from (§12.5): its pivot and, for type 1, the strengths compared.
/// A type-2 point follows the type-1 point two pens before it; a type-3 point clears the edge of
/// its pivot its side says (ZG for a buy, ZD for a sell): neither needs a field of its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    pub kind: u8,
    pub side: Side,
    pub is_final: bool,
    pub pen: u32,
    /// The pivot (中枢) it was derived from, as an index in the list its segment's pivots are
    /// kept in (the engine's final pivots, a tail's, a higher degree's): type 1 the segment's
    /// last pivot, type 2 that of its type-1 point, type 3 the pivot its leaving pen left.
    pub pivot: u32,
    /// Type 1: the strength (§8) of the pen that entered the pivot, and of the leaving pen; 0
    /// for types 2 and 3. Never NaN (a NaN strength never diverges), so `==` is exact.
    pub entering: f64,
    pub leaving: f64,
}

/// The edge of a pivot a type-3 point's leaving pen cleared: ZG (上沿, a buy) or ZD (下沿, a
/// sell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Edge {
    Zd,
    Zg,
}

impl Edge {
    /// `"zd"` or `"zg"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Edge::Zd => "zd",
            Edge::Zg => "zg",
        }
    }
}

impl Signal {
    /// For a type-2 point, the pen of the type-1 point it follows (§9: two pens before it).
    pub fn follows(&self) -> Option<u32> {
        (self.kind == 2).then(|| self.pen - 2)
    }

    /// For a type-3 point, the pivot edge its leaving pen cleared.
    pub fn edge(&self) -> Option<Edge> {
        (self.kind == 3).then_some(match self.side {
            Side::Buy => Edge::Zg,
            Side::Sell => Edge::Zd,
        })
    }

    /// For a type-1 point, the strengths compared (entering, leaving) and their ratio
    /// `leaving / entering` (the quantity compared with `signal.divergence_rate`), as IEEE-754
    /// doubles.
    pub fn strengths(&self) -> Option<(f64, f64, f64)> {
        (self.kind == 1).then(|| (self.entering, self.leaving, self.leaving / self.entering))
    }
}

/// A pen's strength for divergence (spec §8), from the MACD histogram of its raw bars.
pub fn strength(pen: &Pen, histogram: &Column<f64>, measure: Strength) -> f64 {
    let (a, b) = (pen.start.index as usize, pen.end.index as usize);
    let (s, e) = (pen.start.price, pen.end.price);
    match measure {
        Strength::Area | Strength::Peak => fold_signed(0.0, histogram, a..b + 1, pen.dir, measure),
        Strength::Slope => (e - s).abs() / s / (b - a + 1) as f64,
        Strength::Amplitude => (e - s).abs() / s,
    }
}

/// Folds the histogram bars `r` on the pen's side (positive for an up pen, negative for a down
/// one) into `acc`: their absolute values summed (area) or their largest (peak), in bar order
/// (the same bits however the range is cut).
#[inline]
fn fold_signed(
    mut acc: f64,
    histogram: &Column<f64>,
    r: std::ops::Range<usize>,
    dir: Direction,
    measure: Strength,
) -> f64 {
    let up = dir == Direction::Up;
    for bars in histogram.slices(r) {
        let signed = bars
            .iter()
            .copied()
            .filter(move |&h| if up { h > 0.0 } else { h < 0.0 });
        acc = match measure {
            Strength::Peak => signed.fold(acc, |m: f64, h| m.max(h.abs())),
            _ => signed.fold(acc, |sum, h| sum + h.abs()),
        };
    }
    acc
}

/// Strengths already computed, for the pens looked at lately. An entry is reused only while
/// its pen keeps the same extreme bars: the histogram of bars before the last one never changes,
/// and a pen always ends before the last bar, so a matching entry is still exact. A pen extended
/// from the same start (the last pen, as the market moves on) continues its entry's sum or
/// maximum over the new bars only: the same operations in the same order as a fresh fold, so the
/// same bits.
///
/// Direct-mapped on the pen index: points are looked for near the end of the series, so a few
/// hundred slots keep nearly every hit in constant memory (a list by pen index would grow, and
/// be copied as it grows, with the whole series). A pen whose slot was taken is computed again.
#[derive(Debug, Clone)]
pub struct StrengthCache {
    entries: Box<[CachedStrength; SLOTS]>,
}

/// Slots of a [`StrengthCache`]: a power of two.
const SLOTS: usize = 256;

#[derive(Debug, Clone, Copy)]
struct CachedStrength {
    pen: u32,
    start: u32,
    end: u32,
    dir: Direction,
    value: f64,
}

impl Default for StrengthCache {
    fn default() -> Self {
        let empty = CachedStrength {
            pen: u32::MAX,
            start: u32::MAX,
            end: u32::MAX,
            dir: Direction::Up,
            value: f64::NAN,
        };
        Self {
            entries: Box::new([empty; SLOTS]),
        }
    }
}

impl StrengthCache {
    /// The strength of pen `i`, computed once while it stays in the cache.
    // Inlined: mostly a hit, looked up by every tail segment that breaks out of its pivot.
    #[inline]
    pub fn get(&mut self, pens: &[Pen], i: u32, histogram: &Column<f64>, measure: Strength) -> f64 {
        let p = &pens[i as usize];
        let (start, end) = (p.start.index, p.end.index);
        let c = &mut self.entries[i as usize % SLOTS];
        if c.pen == i && c.start == start && c.dir == p.dir {
            if c.end == end {
                return c.value;
            }
            if c.end < end && matches!(measure, Strength::Area | Strength::Peak) {
                let more = c.end as usize + 1..end as usize + 1;
                c.value = fold_signed(c.value, histogram, more, p.dir, measure);
                c.end = end;
                return c.value;
            }
        }
        Self::insert(c, i, p, histogram, measure)
    }

    #[cold]
    fn insert(
        c: &mut CachedStrength,
        i: u32,
        p: &Pen,
        histogram: &Column<f64>,
        measure: Strength,
    ) -> f64 {
        let value = strength(p, histogram, measure);
        *c = CachedStrength {
            pen: i,
            start: p.start.index,
            end: p.end.index,
            dir: p.dir,
            value,
        };
        value
    }
}

/// What buy/sell points are derived from: the pens, the MACD histogram and the parameters.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub pens: &'a [Pen],
    /// The pens below this index are final (degree 1: every pen but the last; §13: the strokes
    /// of confirmed and settled leading segments).
    pub finals: u32,
    pub histogram: &'a Column<f64>,
    pub cfg: &'a SignalConfig,
}

/// How many pens past its anchor a buy/sell point rule reads: type 2 reads the second pen after
/// its type-1 point (the segment's last pen), type 3 the pen leaving a pivot and the pullback
/// after it (the first and second pens after the pivot's last pen). A pivot ends before its
/// segment's last pen, so no rule reads further than this past the segment.
///
/// The incremental tail relies on it: a segment whose last pen lies this far below the pens a
/// bar may change keeps its points, and only points anchored this close to a new pen can read
/// it. [`segment_signals`] asserts every read against it (debug builds, tests included).
pub const POINT_READ_AHEAD: u32 = 2;

/// Appends the buy/sell points of one segment (its pivots given, the first of them at index
/// `first_pivot` of the list they are kept in), sorted by pen then type. `confirmed` says whether
/// the segment is; a point is final only if every pen it uses is final too (all pens but the
/// last).
// Inlined: run for every tail segment each time the pens change.
#[inline]
pub fn segment_signals(
    inputs: &Inputs,
    span: &SegmentSpan,
    pivots: &[Pivot],
    first_pivot: u32,
    confirmed: bool,
    cache: &mut StrengthCache,
    out: &mut Vec<Signal>,
) {
    let Inputs {
        pens,
        finals,
        histogram,
        cfg,
    } = *inputs;
    let base = out.len();
    // The pen `i` read past the pen `anchor` (the segment's last pen or a pivot's last pen), when
    // it exists; a read further than the tail's guards allow fails here, not in a stream.
    let after = |anchor: u32, i: u32| {
        debug_assert!(
            i <= anchor + POINT_READ_AHEAD,
            "a point rule reads pen {i}, more than POINT_READ_AHEAD past pen {anchor}"
        );
        pens.get(i as usize)
    };
    debug_assert!(
        pivots
            .iter()
            .all(|z| span.first_pen <= z.first_pen && z.last_pen < span.last_pen),
        "a pivot lies inside its segment, before its last pen"
    );
    let mut add = |kind: u8, pen: u32, pivot: usize, (entering, leaving): (f64, f64)| {
        out.push(Signal {
            kind,
            side: Side::of(&pens[pen as usize]),
            // A point is final when the pens it reads are (the point's pen is the last read).
            is_final: confirmed && pen < finals,
            pen,
            pivot: first_pivot + pivot as u32,
            entering,
            leaving,
        });
    };
    // Type 1: the segment's last pen leaves its last pivot, breaks out to a new extreme and
    // diverges from the pen that entered the pivot.
    if let Some(z) = pivots.last() {
        let p = span.last_pen;
        let pen = &pens[p as usize];
        if pivots.len() as u32 >= cfg.min_pivots && z.last_pen + 1 == p {
            let breaks = match pen.dir {
                Direction::Up => pen.high() > z.zg && pen.high() >= z.gg,
                Direction::Down => pen.low() < z.zd && pen.low() <= z.dd,
            };
            if breaks {
                let s_out = cache.get(pens, p, histogram, cfg.strength);
                let s_in = cache.get(pens, z.first_pen - 1, histogram, cfg.strength);
                if s_out < cfg.divergence_rate * s_in {
                    let last = pivots.len() - 1;
                    debug_assert!(!s_in.is_nan() && !s_out.is_nan(), "NaN never diverges");
                    add(1, p, last, (s_in, s_out));
                    // Type 2: the next pullback stays short of the type-1 extreme.
                    if let Some(q) = after(p, p + 2) {
                        let holds = match pen.dir {
                            Direction::Up => q.high() < pen.high(),
                            Direction::Down => q.low() > pen.low(),
                        };
                        if holds {
                            add(2, p + 2, last, (0.0, 0.0));
                        }
                    }
                }
            }
        }
    }
    // Type 3: a pen leaves a pivot and the pullback after it stays outside.
    for (k, z) in pivots.iter().enumerate() {
        let l = z.last_pen + 1;
        let (Some(lp), Some(back)) = (after(z.last_pen, l), after(z.last_pen, l + 1)) else {
            continue;
        };
        let ok = match lp.dir {
            Direction::Up => lp.high() > z.zg && back.low() > z.zg,
            Direction::Down => lp.low() < z.zd && back.high() < z.zd,
        };
        if ok {
            add(3, l + 1, k, (0.0, 0.0));
        }
    }
    out[base..].sort_by_key(|s| (s.pen, s.kind));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fractal::{Fractal, FractalKind};

    fn pen(dir: Direction, from: (u32, f64), to: (u32, f64)) -> Pen {
        let f = |kind, (index, price): (u32, f64)| Fractal {
            kind,
            merged: index,
            index,
            price,
        };
        let (a, b) = match dir {
            Direction::Up => (FractalKind::Bottom, FractalKind::Top),
            Direction::Down => (FractalKind::Top, FractalKind::Bottom),
        };
        Pen {
            dir,
            start: f(a, from),
            end: f(b, to),
        }
    }

    #[test]
    fn strength_measures() {
        let h: Column<f64> = [1.0, -2.0, 3.0, -4.0, 0.5].into_iter().collect();
        let up = pen(Direction::Up, (0, 10.0), (4, 12.0));
        assert_eq!(strength(&up, &h, Strength::Area), 4.5);
        assert_eq!(strength(&up, &h, Strength::Peak), 3.0);
        assert_eq!(strength(&up, &h, Strength::Amplitude), 0.2);
        assert_eq!(strength(&up, &h, Strength::Slope), 2.0 / 10.0 / 5.0);
        let down = pen(Direction::Down, (1, 12.0), (3, 9.0));
        assert_eq!(strength(&down, &h, Strength::Area), 6.0);
        assert_eq!(strength(&down, &h, Strength::Peak), 4.0);
    }

    /// A pen extended from the same start continues its cached fold: the same bits as a fresh
    /// fold over the longer pen, for each measure; a pen with another start is recomputed.
    #[test]
    fn cache_extends_an_extended_pen_exactly() {
        let h: Column<f64> = (0..40)
            .map(|i| (f64::from(i * 37 % 11) - 4.7) * 0.1)
            .collect();
        for measure in [
            Strength::Area,
            Strength::Peak,
            Strength::Slope,
            Strength::Amplitude,
        ] {
            let mut cache = StrengthCache::default();
            for end in 3..40 {
                let p = pen(Direction::Up, (2, 10.0), (end, 10.0 + f64::from(end)));
                let got = cache.get(std::slice::from_ref(&p), 0, &h, measure);
                let fresh = strength(&p, &h, measure);
                assert_eq!(got.to_bits(), fresh.to_bits(), "{measure:?} end {end}");
            }
            let other = pen(Direction::Down, (5, 20.0), (30, 12.0));
            let got = cache.get(std::slice::from_ref(&other), 0, &h, measure);
            assert_eq!(got.to_bits(), strength(&other, &h, measure).to_bits());
            let shorter = pen(Direction::Down, (5, 20.0), (9, 12.0));
            let got = cache.get(std::slice::from_ref(&shorter), 0, &h, measure);
            assert_eq!(got.to_bits(), strength(&shorter, &h, measure).to_bits());
        }
    }

    /// Pens sharing a slot evict each other and are computed again: never another pen's value.
    #[test]
    fn cache_slot_shared_by_two_pens() {
        let h: Column<f64> = (0..600)
            .map(|i| (f64::from(i * 13 % 7) - 3.1) * 0.2)
            .collect();
        let mut pens = vec![pen(Direction::Up, (0, 1.0), (1, 2.0)); SLOTS + 2];
        pens[1] = pen(Direction::Up, (10, 10.0), (40, 12.0));
        pens[SLOTS + 1] = pen(Direction::Down, (300, 20.0), (350, 12.0));
        let mut cache = StrengthCache::default();
        for _ in 0..3 {
            for i in [1, SLOTS as u32 + 1] {
                let got = cache.get(&pens, i, &h, Strength::Area);
                let fresh = strength(&pens[i as usize], &h, Strength::Area);
                assert_eq!(got.to_bits(), fresh.to_bits(), "pen {i}");
            }
        }
    }

    /// §12.5: IEEE-754 division, whatever the start price.
    #[test]
    fn zero_start_price_gives_ieee_values() {
        let h: Column<f64> = [0.0; 3].into_iter().collect();
        let p = pen(Direction::Up, (0, 0.0), (2, 1.0));
        assert_eq!(strength(&p, &h, Strength::Amplitude), f64::INFINITY);
        let flat = pen(Direction::Up, (0, 0.0), (2, 0.0));
        assert!(strength(&flat, &h, Strength::Slope).is_nan());
        let neg = pen(Direction::Up, (0, -2.0), (2, -1.0));
        assert_eq!(strength(&neg, &h, Strength::Amplitude), -0.5);
    }
}
