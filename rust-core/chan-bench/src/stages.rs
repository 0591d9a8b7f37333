//! Where batch time goes: the batch pipeline rebuilt from chan-core's public parts (a copy of
//! `Engine::push` and `analyze`, stage by stage), timed with the stages added one at a time.
//!
//! Levels are cumulative: each adds one stage to the previous level, so the difference between
//! two consecutive levels is that stage's cost. The last level is checked against `analyze`.
//! Each level runs twice: with fresh output vectors (allocated per run, as `analyze` does, so
//! the kernel zero-fills their pages on first touch) and with warm ones (cleared and reused, their
//! pages already mapped), so the page-fault share can be read off.

use std::hint::black_box;
use std::time::Instant;

use chan_core::fractal::{classify, Fractal};
use chan_core::kline::{check_bar, fold_bar, validate_series, Bar, MergedBar};
use chan_core::macd::MacdState;
use chan_core::pen::{PenBuilder, PenEvent};
use chan_core::pivot::{find_pivots, Pivot};
use chan_core::segment::{SegmentEngine, SegmentSpan};
use chan_core::signal::{segment_signals, Signal};
use chan_core::{analyze, EngineConfig};
use serde_json::{json, Value};

const LEVELS: [&str; 7] = [
    "validate_series (§1 checks)",
    "+ times + MACD + histogram",
    "+ inclusion (fold_bar)",
    "+ fractals (classify)",
    "+ pens (PenBuilder::on_final_bar)",
    "+ segments, pivots, signals",
    "+ tail (= analyze)",
];

/// The engine's lists, as `Engine::with_capacity` sizes them.
struct Pipe {
    cfg: EngineConfig,
    times: Vec<i64>,
    histogram: Vec<f64>,
    macd: MacdState,
    merged: Vec<MergedBar>,
    fractals: Vec<Fractal>,
    pens: PenBuilder,
    seg: SegmentEngine,
    segments: Vec<SegmentSpan>,
    pivots: Vec<Pivot>,
    signals: Vec<Signal>,
    scratch: Vec<SegmentSpan>,
    tail: Vec<SegmentSpan>,
    tail_pivots: Vec<Pivot>,
    tail_signals: Vec<Signal>,
}

impl Pipe {
    fn new(cfg: EngineConfig, bars: usize) -> Self {
        Self {
            cfg,
            times: Vec::with_capacity(bars),
            histogram: Vec::with_capacity(bars),
            macd: MacdState::new(cfg.macd),
            merged: Vec::with_capacity(bars / 4 * 3),
            fractals: Vec::with_capacity(bars / 4),
            pens: PenBuilder::new(cfg.pen),
            seg: SegmentEngine::new(
                cfg.segment.feature_sequence_strict,
                cfg.segment.handle_inclusion,
            ),
            segments: Vec::new(),
            pivots: Vec::new(),
            signals: Vec::new(),
            scratch: Vec::new(),
            tail: Vec::new(),
            tail_pivots: Vec::new(),
            tail_signals: Vec::new(),
        }
    }

    /// Empties the lists, keeping their memory, and resets the running state.
    fn reset(&mut self) {
        let cfg = self.cfg;
        self.times.clear();
        self.histogram.clear();
        self.macd = MacdState::new(cfg.macd);
        self.merged.clear();
        self.fractals.clear();
        self.pens = PenBuilder::new(cfg.pen);
        self.seg = SegmentEngine::new(
            cfg.segment.feature_sequence_strict,
            cfg.segment.handle_inclusion,
        );
        self.segments.clear();
        self.pivots.clear();
        self.signals.clear();
    }

    /// `Engine::push` up to stage `L`; returns what happened to the pens.
    #[inline(always)]
    fn push<const L: u8>(&mut self, bar: &Bar) -> PenEvent {
        let i = self.times.len() as u32;
        self.times.push(bar.time);
        let m = self.macd.push(bar.close);
        self.histogram.push(m.histogram);
        if L < 2 {
            return PenEvent::None;
        }
        if !fold_bar(&mut self.merged, i, bar.high, bar.low) || self.merged.len() < 3 {
            return PenEvent::None;
        }
        if L < 3 {
            return PenEvent::None;
        }
        let n = self.merged.len() - 2;
        let f = classify(&self.merged, n);
        if let Some(f) = f {
            self.fractals.push(f);
        }
        if L < 4 {
            return PenEvent::None;
        }
        let ev = self.pens.on_final_bar(&self.merged, n, f);
        if ev == PenEvent::Added && L >= 5 && self.pens.pens().len() >= 2 {
            self.advance_segments();
        }
        ev
    }

    fn advance_segments(&mut self) {
        let pens = self.pens.pens();
        self.scratch.clear();
        self.seg.run(pens, pens.len() - 1, &mut self.scratch);
        for span in &self.scratch {
            let index = self.segments.len() as u32;
            self.segments.push(*span);
            let first_pivot = self.pivots.len();
            find_pivots(pens, span, index, &mut self.pivots);
            segment_signals(
                pens,
                &self.histogram,
                span,
                &self.pivots[first_pivot..],
                &self.cfg.signal,
                span.len() >= 3,
                &mut self.signals,
            );
        }
    }

    /// `Engine::tail_into`, into the pipe's own tail lists.
    fn tail(&mut self) {
        self.tail.clear();
        self.tail_pivots.clear();
        self.tail_signals.clear();
        let pens = self.pens.pens();
        self.seg.tail(pens, &mut self.tail);
        for (j, span) in self.tail.iter().enumerate() {
            let index = (self.segments.len() + j) as u32;
            let first_pivot = self.tail_pivots.len();
            find_pivots(pens, span, index, &mut self.tail_pivots);
            segment_signals(
                pens,
                &self.histogram,
                span,
                &self.tail_pivots[first_pivot..],
                &self.cfg.signal,
                false,
                &mut self.tail_signals,
            );
        }
    }
}

fn run_level<const L: u8>(p: &mut Pipe, bars: &[Bar]) {
    let (_, fixed) = validate_series(bars, &p.cfg.validation).expect("valid series");
    black_box(&fixed);
    if L == 0 {
        return;
    }
    for b in bars {
        black_box(p.push::<L>(b));
    }
    if L >= 6 {
        p.tail();
    }
}

fn run(level: usize, p: &mut Pipe, bars: &[Bar]) {
    match level {
        0 => run_level::<0>(p, bars),
        1 => run_level::<1>(p, bars),
        2 => run_level::<2>(p, bars),
        3 => run_level::<3>(p, bars),
        4 => run_level::<4>(p, bars),
        5 => run_level::<5>(p, bars),
        _ => run_level::<6>(p, bars),
    }
}

/// Best time of `repeat` runs of `level`, with fresh or warm (reused) lists.
fn time_level(level: usize, bars: &[Bar], repeat: usize, warm: bool) -> f64 {
    let cfg = EngineConfig::default();
    let mut best = f64::INFINITY;
    let mut reused = Pipe::new(cfg, bars.len());
    if warm {
        run(level, &mut reused, bars); // maps the pages once
    }
    for _ in 0..repeat {
        let t0 = Instant::now();
        if warm {
            reused.reset();
            run(level, &mut reused, bars);
            black_box(&reused.signals);
        } else {
            let mut p = Pipe::new(cfg, bars.len());
            run(level, &mut p, bars);
            black_box(&p.signals);
            let secs = t0.elapsed().as_secs_f64();
            best = best.min(secs);
            drop(p);
            continue;
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    best
}

/// The batch stage table for one series, as markdown text and JSON.
pub fn batch_report(name: &str, bars: &[Bar], repeat: usize) -> (String, Value) {
    use std::fmt::Write;
    // The rebuilt pipeline must be the real one.
    let cfg = EngineConfig::default();
    let a = analyze(bars, &cfg, false).expect("valid series");
    let mut p = Pipe::new(cfg, bars.len());
    run(6, &mut p, bars);
    let same = a.engine.merged() == p.merged.as_slice()
        && a.engine.pens() == p.pens.pens()
        && a.tail.segments == p.tail
        && a.tail.pivots == p.tail_pivots
        && a.tail.signals == p.tail_signals;
    drop((a, p));

    // Levels take turns round by round (a slow spell of the machine then hits them alike).
    let mut fresh = [f64::INFINITY; LEVELS.len()];
    let mut warm = [f64::INFINITY; LEVELS.len()];
    for _ in 0..repeat {
        for level in 0..LEVELS.len() {
            fresh[level] = fresh[level].min(time_level(level, bars, 1, false));
            warm[level] = warm[level].min(time_level(level, bars, 1, true));
        }
    }
    let n = bars.len() as f64;
    let mut out = String::new();
    let _ =
        writeln!(
        out,
        "\n### Where batch time goes: {name} ({} bars, best of {repeat}; rebuilt pipeline {})\n",
        bars.len(),
        if same { "matches analyze" } else { "DIFFERS from analyze" }
    );
    let _ = writeln!(
        out,
        "| level (cumulative) | fresh ns/bar | stage ns/bar (fresh) | warm ns/bar | stage ns/bar (warm) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let (mut prev_f, mut prev_w) = (0.0, 0.0);
    let mut rows = Vec::new();
    for (level, label) in LEVELS.iter().enumerate() {
        let f = fresh[level] * 1e9 / n;
        let w = warm[level] * 1e9 / n;
        let _ = writeln!(
            out,
            "| {label} | {f:.2} | {:.2} | {w:.2} | {:.2} |",
            f - prev_f,
            w - prev_w
        );
        rows.push(
            json!({"level": label, "fresh_ns_per_bar": f, "warm_ns_per_bar": w,
            "stage_fresh_ns": f - prev_f, "stage_warm_ns": w - prev_w}),
        );
        (prev_f, prev_w) = (f, w);
    }
    let json = json!({"series": name, "bars": bars.len(), "matches_analyze": same, "levels": rows});
    (out, json)
}

/// When the incremental loop recomputes the tail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TailWhen {
    Never,
    /// When the pen list changed (what `Session::append` does).
    PensChanged,
    /// After every bar (what `Session::replace_last` does: it always reports a pen change).
    EveryBar,
}

/// The rebuilt incremental loop: growing lists (`Engine::new` has no capacity), optionally the
/// per-bar checks and the tail recomputation of `Session`. Returns (seconds, tail recomputations).
fn incremental_level(bars: &[Bar], check: bool, when: TailWhen) -> (f64, usize) {
    let cfg = EngineConfig::default();
    let t0 = Instant::now();
    let mut p = Pipe::new(cfg, 0);
    let mut prev: Option<i64> = None;
    let mut tails = 0;
    let mut last_tail: (Vec<SegmentSpan>, Vec<Pivot>, Vec<Signal>) = Default::default();
    for (i, b) in bars.iter().enumerate() {
        if check {
            let mut v = Vec::new();
            black_box(check_bar(i, b, prev, &cfg.validation, &mut v));
            assert!(v.is_empty());
            prev = Some(b.time);
        }
        let ev = p.push::<5>(b);
        let recompute = match when {
            TailWhen::Never => false,
            TailWhen::PensChanged => ev != PenEvent::None,
            TailWhen::EveryBar => true,
        };
        if recompute {
            tails += 1;
            p.tail();
            // Session::report compares the fresh tail with the previous one and keeps it.
            if (&p.tail, &p.tail_pivots, &p.tail_signals)
                != (&last_tail.0, &last_tail.1, &last_tail.2)
            {
                std::mem::swap(&mut p.tail, &mut last_tail.0);
                std::mem::swap(&mut p.tail_pivots, &mut last_tail.1);
                std::mem::swap(&mut p.tail_signals, &mut last_tail.2);
            }
        }
    }
    black_box(&p.signals);
    let secs = t0.elapsed().as_secs_f64();
    drop(p);
    (secs, tails)
}

/// The incremental cost table: batch, then what `Session::append` adds, one piece at a time.
pub fn incremental_report(name: &str, bars: &[Bar], repeat: usize) -> (String, Value) {
    use std::fmt::Write;
    let cfg = EngineConfig::default();
    let n = bars.len() as f64;
    type Step<'a> = (&'static str, Box<dyn Fn() -> (f64, usize) + 'a>);
    let timed = |f: fn(&[Bar], &EngineConfig) -> chan_core::Session| {
        move || {
            let t0 = Instant::now();
            let s = f(bars, &cfg);
            let secs = t0.elapsed().as_secs_f64();
            drop(s);
            (secs, 0)
        }
    };
    let steps: Vec<Step> = vec![
        (
            "batch pipeline, lists sized up front (= analyze)",
            Box::new(|| (time_level(6, bars, 1, false), 0)),
        ),
        (
            "same, lists grown by push (Engine::new)",
            Box::new(|| incremental_level(bars, false, TailWhen::Never)),
        ),
        (
            "+ per-bar check_bar (Session::check)",
            Box::new(|| incremental_level(bars, true, TailWhen::Never)),
        ),
        (
            "+ tail recomputed when the pens change (Session::report)",
            Box::new(|| incremental_level(bars, true, TailWhen::PensChanged)),
        ),
        (
            "real Session::append (+ mark, seg backup, Update)",
            Box::new(timed(crate::run_incremental)),
        ),
        (
            "rebuilt, tail recomputed after every bar (as replace_last does)",
            Box::new(|| incremental_level(bars, true, TailWhen::EveryBar)),
        ),
        (
            "real append(provisional) + replace_last(real)",
            Box::new(timed(crate::run_replace)),
        ),
    ];
    // Steps take turns round by round.
    let mut best = vec![(f64::INFINITY, 0usize); steps.len()];
    for _ in 0..repeat {
        for (i, (_, f)) in steps.iter().enumerate() {
            let r = f();
            if r.0 < best[i].0 {
                best[i] = r;
            }
        }
    }
    let levels: Vec<(&str, f64, usize)> = steps
        .iter()
        .zip(&best)
        .map(|((label, _), &(t, k))| (*label, t, k))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Where incremental time goes: {name} ({} bars, best of {repeat})\n",
        bars.len()
    );
    let _ = writeln!(
        out,
        "| step | ns/bar | added ns/bar | tail recomputations per bar |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let mut rows = Vec::new();
    let mut prev = 0.0;
    for (i, (label, t, k)) in levels.iter().enumerate() {
        let ns = t * 1e9 / n;
        // The last two rows are alternatives, compared with the real append and the tail row.
        let base = match i {
            5 => levels[3].1 * 1e9 / n,
            6 => levels[4].1 * 1e9 / n,
            _ => prev,
        };
        let per = if *k > 0 {
            format!("{:.3}", *k as f64 / n)
        } else {
            "-".into()
        };
        let _ = writeln!(out, "| {label} | {ns:.2} | {:+.2} | {per} |", ns - base);
        rows.push(
            json!({"step": label, "ns_per_bar": ns, "added_ns_per_bar": ns - base,
            "tail_recomputations": k}),
        );
        if i < 5 {
            prev = ns;
        }
    }
    (
        out,
        json!({"series": name, "bars": bars.len(), "steps": rows}),
    )
}
