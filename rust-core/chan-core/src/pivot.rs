//! Pivots (中枢, spec §7): overlaps of counter-direction pens inside one segment.

use crate::pen::Pen;
use crate::segment::SegmentSpan;

/// A pivot (中枢): pens `first_pen..=last_pen` of segment `segment`, with its edges
/// `zd`/`zg` (ZD/ZG) and its extremes `dd`/`gg` (DD/GG).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pivot {
    pub segment: u32,
    pub first_pen: u32,
    pub last_pen: u32,
    pub zd: f64,
    pub zg: f64,
    pub dd: f64,
    pub gg: f64,
}

/// Finds the pivots of one segment (index `segment`), appending them to `out`.
///
/// # Panics
///
/// When `span` names pens beyond `pens`.
// Inlined: run for every tail segment each time the pens change.
#[inline]
pub fn find_pivots(pens: &[Pen], span: &SegmentSpan, segment: u32, out: &mut Vec<Pivot>) {
    let base = out.len();
    // The last pivot of this segment is still being extended.
    let mut open = false;
    let mut first: Option<u32> = None;
    // The counter-direction pens: a leading segment (spec §6.3) may begin with one.
    let mut c = if pens[span.first_pen as usize].dir == span.dir {
        span.first_pen + 1
    } else {
        span.first_pen
    };
    while c <= span.last_pen {
        let (h, l) = (pens[c as usize].high(), pens[c as usize].low());
        if open {
            let z = out.last_mut().expect("an open pivot exists");
            if h > z.zd && l < z.zg {
                z.last_pen = c;
                z.gg = z.gg.max(h);
                z.dd = z.dd.min(l);
            } else {
                open = false;
                first = Some(c);
            }
        } else {
            match first {
                // Pen 0 of the series cannot begin a pivot.
                None | Some(0) => first = Some(c),
                Some(a) => {
                    let (ah, al) = (pens[a as usize].high(), pens[a as usize].low());
                    let (zg, zd) = (ah.min(h), al.max(l));
                    if zg > zd {
                        let z = Pivot {
                            segment,
                            first_pen: a,
                            last_pen: c,
                            zd,
                            zg,
                            dd: al.min(l),
                            gg: ah.max(h),
                        };
                        let same_segment = out.len() > base;
                        match out.last_mut() {
                            Some(p) if same_segment && z.zg >= p.zd && p.zg >= z.zd => {
                                p.zd = p.zd.min(z.zd);
                                p.zg = p.zg.max(z.zg);
                                p.dd = p.dd.min(z.dd);
                                p.gg = p.gg.max(z.gg);
                                p.last_pen = c;
                            }
                            _ => out.push(z),
                        }
                        open = true;
                        first = None;
                    } else {
                        first = Some(c);
                    }
                }
            }
        }
        c += 2;
    }
}
