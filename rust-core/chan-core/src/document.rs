//! The analysis document: the JSON shape every engine and interface produces.

use serde::Serialize;

use crate::analysis::{Engine, Tail};
use crate::config::EngineConfig;
use crate::fractal::Fractal;
use crate::kline::Repair;
use crate::pen::Pen;
use crate::pivot::Pivot;
use crate::segment::SegmentSpan;
use crate::signal::Signal;
use crate::timestamp::format_ms;

/// A point on the chart: raw bar index, its time (ISO-8601 UTC) and a price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub index: u32,
    pub time: String,
    pub price: f64,
}

/// A fractal (分型) as output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FractalDoc {
    pub kind: &'static str,
    pub merged_index: u32,
    pub index: u32,
    pub time: String,
    pub price: f64,
}

/// A pen (笔) as output; `final` is absent for the forming pen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PenDoc {
    pub direction: &'static str,
    pub start: Point,
    pub end: Point,
    #[serde(rename = "final", skip_serializing_if = "Option::is_none")]
    pub is_final: Option<bool>,
}

/// A segment (线段) as output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentDoc {
    pub direction: &'static str,
    pub start: Point,
    pub end: Point,
    pub first_pen: u32,
    pub last_pen: u32,
    pub confirmed: bool,
    pub gap: bool,
}

/// A pivot (中枢) as output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PivotDoc {
    pub segment: u32,
    pub first_pen: u32,
    pub last_pen: u32,
    pub zd: f64,
    pub zg: f64,
    pub dd: f64,
    pub gg: f64,
    pub start: Point,
    pub end: Point,
    pub confirmed: bool,
}

/// A buy/sell point (买卖点) as output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalDoc {
    #[serde(rename = "type")]
    pub kind: String,
    pub side: &'static str,
    pub pen: u32,
    pub index: u32,
    pub time: String,
    pub price: f64,
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// MACD series per raw bar; `null` where absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MacdDoc {
    pub dif: Vec<Option<f64>>,
    pub dea: Vec<Option<f64>>,
    pub histogram: Vec<Option<f64>>,
}

/// The analysis document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    pub bars: usize,
    pub merged_bars: usize,
    pub fractals: Vec<FractalDoc>,
    pub pens: Vec<PenDoc>,
    pub forming_pen: Option<PenDoc>,
    pub segments: Vec<SegmentDoc>,
    pub pivots: Vec<PivotDoc>,
    pub signals: Vec<SignalDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub macd: Option<MacdDoc>,
    pub repairs: Vec<Repair>,
    pub config: EngineConfig,
}

fn point(times: &[i64], f: &Fractal) -> Point {
    Point {
        index: f.index,
        time: format_ms(times[f.index as usize]),
        price: f.price,
    }
}

fn pen_doc(times: &[i64], p: &Pen, is_final: Option<bool>) -> PenDoc {
    PenDoc {
        direction: p.dir.as_str(),
        start: point(times, &p.start),
        end: point(times, &p.end),
        is_final,
    }
}

fn opt(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

impl Document {
    /// Renders the engine's state and tail.
    pub fn build(e: &Engine, tail: &Tail) -> Document {
        let t = &e.times[..];
        let pens = e.pens.pens();
        let seg = |s: &SegmentSpan, confirmed: bool| SegmentDoc {
            direction: s.dir.as_str(),
            start: point(t, &pens[s.first_pen as usize].start),
            end: point(t, &pens[s.last_pen as usize].end),
            first_pen: s.first_pen,
            last_pen: s.last_pen,
            confirmed,
            gap: s.gap,
        };
        let piv = |z: &Pivot, confirmed: bool| PivotDoc {
            segment: z.segment,
            first_pen: z.first_pen,
            last_pen: z.last_pen,
            zd: z.zd,
            zg: z.zg,
            dd: z.dd,
            gg: z.gg,
            start: point(t, &pens[z.first_pen as usize].start),
            end: point(t, &pens[z.last_pen as usize].end),
            confirmed,
        };
        let sig = |s: &Signal| {
            let end = &pens[s.pen as usize].end;
            SignalDoc {
                kind: s.kind.to_string(),
                side: s.side.as_str(),
                pen: s.pen,
                index: end.index,
                time: format_ms(t[end.index as usize]),
                price: end.price,
                is_final: s.is_final,
            }
        };
        let last = pens.len().saturating_sub(1);
        Document {
            bars: e.times.len(),
            merged_bars: e.merged.len(),
            fractals: e
                .fractals
                .iter()
                .map(|f| FractalDoc {
                    kind: f.kind.as_str(),
                    merged_index: f.merged,
                    index: f.index,
                    time: format_ms(t[f.index as usize]),
                    price: f.price,
                })
                .collect(),
            pens: pens
                .iter()
                .enumerate()
                .map(|(i, p)| pen_doc(t, p, Some(i < last)))
                .collect(),
            forming_pen: e.forming_pen().map(|p| pen_doc(t, &p, None)),
            segments: e
                .segments
                .iter()
                .map(|s| seg(s, s.len() >= 3))
                .chain(tail.segments.iter().map(|s| seg(s, false)))
                .collect(),
            pivots: e
                .pivots
                .iter()
                .map(|z| piv(z, e.segments[z.segment as usize].len() >= 3))
                .chain(tail.pivots.iter().map(|z| piv(z, false)))
                .collect(),
            signals: e
                .signals
                .iter()
                .chain(tail.signals.iter())
                .map(sig)
                .collect(),
            macd: e.keeps_macd().then(|| MacdDoc {
                dif: e.dif.iter().map(|&x| opt(x)).collect(),
                dea: e.dea.iter().map(|&x| opt(x)).collect(),
                histogram: e.histogram.iter().map(|&x| opt(x)).collect(),
            }),
            repairs: e.repairs.clone(),
            config: *e.config(),
        }
    }
}
