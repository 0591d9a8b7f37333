//! Higher degrees (spec §13): segments of segments (线段的线段), their pivots and points.
//!
//! Degree n+1 reads every degree-n segment as a stroke, a [`Pen`] from its first pen's start to
//! its last pen's end, and runs the very code of degree 1 on those strokes: the segment engine
//! (§6), the pivots (§7) and the points (§9). Only finality differs: the final strokes are those
//! of the settled degree-n segments (confirmed or settled leading ones), always a prefix, where at
//! degree 1 they are every pen but the last.
//!
//! Each degree is derived from the degree below as a whole (batch and session alike, so the two
//! agree by construction, §10): a few thousand strokes against millions of bars.

use super::engine::Engine;
use super::tail::Tail;
use crate::config::EngineConfig;
use crate::memory::Column;
use crate::pen::Pen;
use crate::pivot::{find_pivots, Pivot};
use crate::segment::{FormingMemo, SegmentEngine, SegmentSpan};
use crate::signal::{segment_signals, Inputs, Signal, StrengthCache};

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

/// The strokes of the degree above `spans` (segments over `pens`).
fn strokes_of(pens: &[Pen], spans: &[SegmentSpan]) -> Vec<Pen> {
    spans
        .iter()
        .map(|s| Pen {
            dir: s.dir,
            start: pens[s.first_pen as usize].start,
            end: pens[s.last_pen as usize].end,
        })
        .collect()
}

/// One degree from its strokes, of which `finals` are final.
fn build(
    degree: u32,
    strokes: Vec<Pen>,
    finals: usize,
    cfg: &EngineConfig,
    histogram: &Column<f64>,
) -> Degree {
    let (strict, inclusion) = (
        cfg.segment.feature_sequence_strict,
        cfg.segment.handle_inclusion,
    );
    let mut engine = SegmentEngine::new(strict, inclusion);
    let mut segments = Vec::new();
    engine.run(&strokes, finals, &mut segments);
    let settled = segments.len();
    let mut scratch = SegmentEngine::new(strict, inclusion);
    let memo = &mut FormingMemo::default();
    engine.tail(&strokes, &mut scratch, memo, 0, &mut segments);
    let inputs = Inputs {
        pens: &strokes,
        finals: finals as u32,
        histogram,
        cfg: &cfg.signal,
    };
    let (mut pivots, mut signals) = (Vec::new(), Vec::new());
    let mut cache = StrengthCache::default();
    for (j, span) in segments.iter().enumerate() {
        let from = pivots.len();
        find_pivots(&strokes, span, j as u32, &mut pivots);
        let confirmed = j < settled && span.confirmable();
        segment_signals(
            &inputs,
            span,
            &pivots[from..],
            from as u32,
            confirmed,
            &mut cache,
            &mut signals,
        );
    }
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

/// Degrees 2..=`structure.degrees` of an engine with its tail (empty when it is 1).
pub fn higher_degrees(engine: &Engine, tail: &Tail) -> Vec<Degree> {
    let cfg = engine.config();
    let mut out: Vec<Degree> = Vec::new();
    for degree in 2..=cfg.structure.degrees {
        let (strokes, finals) = match out.last() {
            None => {
                let spans: Vec<SegmentSpan> = engine
                    .segments
                    .iter()
                    .chain(&tail.segments)
                    .copied()
                    .collect();
                (strokes_of(engine.pens(), &spans), engine.segments.len())
            }
            Some(d) => (strokes_of(&d.strokes, &d.segments), d.settled),
        };
        out.push(build(degree, strokes, finals, cfg, &engine.histogram));
    }
    out
}
