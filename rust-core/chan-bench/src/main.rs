//! `chan-bench`: throughput and memory of the Chan theory core.
//!
//! For each series (a CSV file and a synthetic random walk) it measures, with CSV parsing and
//! data generation excluded:
//! - `batch`: `chan_core::analyze` (default config, no DIF/DEA kept);
//! - `incremental`: `Session::append` bar by bar;
//! - `incremental+replace`: each bar appended first as a provisional bar (half the move, half
//!   the volume), then `Session::replace_last` with the real one (two calls per bar);
//!
//! each once per `structure.degrees` asked for (`--degrees 1,2`: what the higher degrees of spec
//! §13 cost, as a ratio to degree 1 measured in the same run),
//! and, through a counting global allocator, the peak heap in use during the run beyond what was
//! in use before it (the input `Vec<Bar>` and the bench's own state), per input bar.

mod alloc;
mod data;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use chan_core::config::MAX_DEGREES;
use chan_core::{analyze, Analysis, Bar, EngineConfig, Session};
use clap::Parser;
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// The repository root (this crate is `rust-core/chan-bench`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// The doc comments below are the --help text, read in a terminal: no Markdown.
#[allow(clippy::doc_markdown)]
#[derive(Parser, Debug)]
#[command(
    name = "chan-bench",
    about = "Throughput (bars/s) and peak memory of chan-core: batch, incremental, replace-last"
)]
struct Args {
    /// CSV file (time,open,high,low,close,volume) [default: ../shared/data/000001.SH_1m.csv
    /// relative to the repository root]
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Skip the CSV series.
    #[arg(long)]
    no_csv: bool,
    /// Bars of the synthetic random walk (0 skips it).
    #[arg(long, default_value_t = 10_000_000)]
    synthetic: usize,
    /// Seed of the synthetic walk.
    #[arg(long, default_value_t = 0x00C4_A11B_E4C4)]
    seed: u64,
    /// Timed runs per measurement, at least (best and median are reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// More rounds until every mode has run this long in total (seconds): a short series
    /// (the CSV runs in milliseconds) needs many runs for its best to be steady on a noisy
    /// machine. 0 stops after `--repeat` rounds.
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    /// Modes to run, comma separated: batch, incremental, replace (incremental+replace).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "batch,incremental,replace"
    )]
    modes: Vec<Mode>,
    /// Values of structure.degrees to measure, comma separated (1 to 4): every mode runs once
    /// per value, in the same rounds, and each row is compared with degree 1 when it is listed.
    #[arg(long, value_delimiter = ',', default_value = "1,2", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DEGREES)))]
    degrees: Vec<u32>,
    /// Skip counting the structure (fractals, pens, segments...) found in each series.
    #[arg(long)]
    no_structure: bool,
    /// Heap policy during the runs: cold (every run maps fresh pages: page faults included),
    /// warm (freed memory is kept and reused: no page faults after the first run), or system
    /// (glibc's adaptive defaults, which make the figures depend on the order of the runs).
    #[arg(long, value_enum, default_value_t = alloc::Heap::Cold)]
    heap: alloc::Heap,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Batch,
    Incremental,
    Replace,
}

/// Rounds at most when `--min-seconds` asks for more.
const MAX_ROUNDS: usize = 10_000;

/// One measured (series, mode) pair.
struct Row {
    series: String,
    bars: usize,
    mode: &'static str,
    /// `structure.degrees` of the run.
    degrees: u32,
    /// Calls into the engine per bar (1, or 2 with replace).
    calls_per_bar: u32,
    secs: Vec<f64>,
    input_bytes: usize,
    /// Peak bytes beyond the baseline (realloc counted as copy: upper bound).
    extra_peak: usize,
    /// Same, realloc counted as in place (lower bound).
    extra_peak_inplace: usize,
    /// Bytes still held by the result (analysis or session) at the end.
    retained: usize,
}

impl Row {
    fn best(&self) -> f64 {
        self.secs.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn median(&self) -> f64 {
        let mut s = self.secs.clone();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            f64::midpoint(s[n / 2 - 1], s[n / 2])
        }
    }

    fn best_rate(&self) -> f64 {
        self.bars as f64 / self.best()
    }

    fn median_rate(&self) -> f64 {
        self.bars as f64 / self.median()
    }

    fn ns_per_bar(&self) -> f64 {
        self.best() * 1e9 / self.bars as f64
    }

    fn bytes_per_bar(&self) -> f64 {
        self.extra_peak as f64 / self.bars as f64
    }
}

struct Measured<T> {
    secs: f64,
    extra_peak: usize,
    extra_peak_inplace: usize,
    retained: usize,
    out: T,
}

/// Runs `f` once, timing it and recording the heap it used beyond what was in use before.
fn measure<T>(f: impl FnOnce() -> T) -> Measured<T> {
    let base = alloc::reset_peak();
    let t0 = Instant::now();
    let out = f();
    let secs = t0.elapsed().as_secs_f64();
    let (peak, peak_inplace) = alloc::peaks();
    let retained = alloc::current().saturating_sub(base);
    Measured {
        secs,
        extra_peak: peak - base,
        extra_peak_inplace: peak_inplace - base,
        retained,
        out,
    }
}

impl Row {
    fn new(
        series: &str,
        bars: &[Bar],
        mode: &'static str,
        degrees: u32,
        calls_per_bar: u32,
    ) -> Self {
        Row {
            series: series.to_string(),
            bars: bars.len(),
            mode,
            degrees,
            calls_per_bar,
            secs: Vec::new(),
            input_bytes: std::mem::size_of_val(bars),
            extra_peak: 0,
            extra_peak_inplace: 0,
            retained: 0,
        }
    }

    /// Runs `f` once into this row; `last` (the previous run's output) is dropped first.
    fn run<T>(&mut self, last: &mut Option<T>, f: impl FnOnce() -> T) {
        drop(last.take());
        let m = measure(f);
        self.secs.push(m.secs);
        self.extra_peak = self.extra_peak.max(m.extra_peak);
        self.extra_peak_inplace = self.extra_peak_inplace.max(m.extra_peak_inplace);
        self.retained = m.retained;
        *last = Some(m.out);
    }

    fn log(&self) {
        eprintln!(
            "  {:<12} {:<20} degrees {} best {:>8.3} s  median {:>8.3} s",
            self.series,
            self.mode,
            self.degrees,
            self.best(),
            self.median()
        );
    }
}

/// The bar as it might look part-way through its period: half the move, high/low from that.
fn provisional(b: &Bar) -> Bar {
    let close = b.open + (b.close - b.open) * 0.5;
    Bar::new(
        b.time,
        b.open,
        b.open.max(close),
        b.open.min(close),
        close,
        b.volume * 0.5,
    )
}

/// Panics unless `r` is `Ok`; keeps the result observable without moving it out (a move of the
/// large `Update` would add a copy per call that belongs to the bench, not the engine).
// Always inlined: a call here would be timed as part of the engine's work.
#[allow(clippy::inline_always)]
#[inline(always)]
fn consume<T, E: std::fmt::Debug>(r: &Result<T, E>) {
    if let Err(e) = r {
        panic!("engine rejected a valid bar: {e:?}");
    }
    black_box(r);
}

pub(crate) fn run_incremental(bars: &[Bar], cfg: &EngineConfig) -> Session {
    let mut s = Session::new(*cfg, false).expect("default config is valid");
    for b in bars {
        consume(&s.append(*b));
    }
    s
}

pub(crate) fn run_replace(bars: &[Bar], cfg: &EngineConfig) -> Session {
    let mut s = Session::new(*cfg, false).expect("default config is valid");
    for b in bars {
        consume(&s.append(provisional(b)));
        consume(&s.replace_last(*b));
    }
    s
}

/// The incremental engine must end where the batch one did, higher degrees included.
fn check_same(a: &Analysis, s: &Session, what: &str) -> Result<()> {
    let (e, f) = (&a.engine, s.engine());
    anyhow::ensure!(e.bars() == f.bars(), "{what}: bar counts differ");
    anyhow::ensure!(
        e.merged().len() == f.merged().len() && e.merged().last() == f.merged().last(),
        "{what}: merged bars differ"
    );
    anyhow::ensure!(e.pens() == f.pens(), "{what}: pens differ");
    anyhow::ensure!(&a.tail == s.tail(), "{what}: tails differ");
    anyhow::ensure!(
        a.document().degrees == s.document().degrees,
        "{what}: higher degrees differ"
    );
    Ok(())
}

/// The rows and last outputs of one `structure.degrees` value on one series.
struct PerDegree {
    cfg: EngineConfig,
    batch: Row,
    incr: Row,
    repl: Row,
    analysis: Option<Analysis>,
    s_incr: Option<Session>,
    s_repl: Option<Session>,
}

fn bench_series(
    name: &str,
    bars: &[Bar],
    args: &Args,
    rows: &mut Vec<Row>,
    info: &mut Vec<Value>,
) -> Result<()> {
    let r = args.repeat.max(1);
    let on = |m: Mode| args.modes.contains(&m);
    eprintln!("{name}: {} bars", bars.len());
    let mut degrees: Vec<u32> = args.degrees.clone();
    degrees.sort_unstable();
    degrees.dedup();
    let mut runs: Vec<PerDegree> = degrees
        .iter()
        .map(|&d| {
            let mut cfg = EngineConfig::default();
            cfg.structure.degrees = d;
            PerDegree {
                cfg,
                batch: Row::new(name, bars, "batch", d, 1),
                incr: Row::new(name, bars, "incremental", d, 1),
                repl: Row::new(name, bars, "incremental+replace", d, 2),
                analysis: None,
                s_incr: None,
                s_repl: None,
            }
        })
        .collect();
    // The modes and degrees take turns, run after run, so that a slow spell of the machine hits
    // them alike (the ratios between them are measured in the same rounds).
    let short = |row: &Row, m: Mode| on(m) && row.secs.iter().sum::<f64>() < args.min_seconds;
    let mut round = 0;
    while round < r
        || (round < MAX_ROUNDS
            && runs.iter().any(|p| {
                short(&p.batch, Mode::Batch)
                    || short(&p.incr, Mode::Incremental)
                    || short(&p.repl, Mode::Replace)
            }))
    {
        round += 1;
        for p in &mut runs {
            let cfg = p.cfg;
            if on(Mode::Batch) {
                p.batch.run(&mut p.analysis, || {
                    analyze(black_box(bars), &cfg, false).expect("valid series")
                });
            }
            if on(Mode::Incremental) {
                p.incr
                    .run(&mut p.s_incr, || run_incremental(black_box(bars), &cfg));
            }
            if on(Mode::Replace) {
                p.repl
                    .run(&mut p.s_repl, || run_replace(black_box(bars), &cfg));
            }
        }
    }
    let mut entry = json!({"series": name, "bars": bars.len()});
    for p in runs {
        let d = p.cfg.structure.degrees;
        // The batch result checks the incremental ones and gives the structure counts.
        let analysis = match p.analysis {
            Some(a) => a,
            None => analyze(bars, &p.cfg, false)?,
        };
        if let Some(s) = p.s_incr {
            check_same(&analysis, &s, &format!("incremental, degrees {d}"))?;
        }
        if let Some(s) = p.s_repl {
            check_same(&analysis, &s, &format!("incremental+replace, degrees {d}"))?;
        }
        for row in [p.batch, p.incr, p.repl] {
            if !row.secs.is_empty() {
                row.log();
                rows.push(row);
            }
        }
        // The structure of the highest degree asked for (degree 1 is the same in every run).
        if !args.no_structure && Some(&d) == degrees.iter().max() {
            let doc = analysis.document();
            let higher: Vec<Value> = doc
                .degrees
                .iter()
                .map(|g| {
                    json!({
                        "degree": g.degree,
                        "segments": g.segments.len(),
                        "pivots": g.pivots.len(),
                        "signals": g.signals.len(),
                    })
                })
                .collect();
            entry["structure"] = json!({
                "merged_bars": doc.merged_bars,
                "fractals": doc.fractals.len(),
                "pens": doc.pens.len(),
                "segments": doc.segments.len(),
                "pivots": doc.pivots.len(),
                "signals": doc.signals.len(),
                "degrees": higher,
            });
        }
    }
    if on(Mode::Incremental) || on(Mode::Replace) {
        eprintln!("  incremental results match batch (merged bars, pens, tail, higher degrees)");
    }
    info.push(entry);
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo_root())
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn fmt_rate(x: f64) -> String {
    format!("{:.2} M", x / 1e6)
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Before any large allocation, so that the input series follow the same policy.
    let heap_applied = alloc::set_heap(args.heap);
    if !heap_applied {
        eprintln!(
            "warning: --heap {} could not be applied (not glibc?)",
            args.heap.as_str()
        );
    }
    // Online CPUs of the machine (not of this process: the script pins it to one).
    let nproc = std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, std::num::NonZero::get));
    let cpu = cpu_model();
    // The load when the run starts: anything else running skews single-threaded timings.
    let load = std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
    let cpus = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Changes to what is measured (other work in the tree does not matter here).
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "rust-core/chan-core",
        "rust-core/chan-bench",
        "Cargo.lock",
    ])
    .is_some_and(|s| !s.is_empty());

    let mut series: Vec<(String, Vec<Bar>)> = Vec::new();
    if !args.no_csv {
        let path = args
            .csv
            .clone()
            .unwrap_or_else(|| repo_root().join("../shared/data/000001.SH_1m.csv"));
        let t = Instant::now();
        let bars = data::read_csv(&path)?;
        let name = path
            .file_stem()
            .map_or("csv".into(), |s| s.to_string_lossy().into_owned());
        eprintln!(
            "loaded {} bars from {} in {:.2} s (not timed)",
            bars.len(),
            path.display(),
            t.elapsed().as_secs_f64()
        );
        series.push((name, bars));
    }
    if args.synthetic > 0 {
        let t = Instant::now();
        let bars = data::random_walk(args.synthetic, args.seed);
        eprintln!(
            "generated {} synthetic bars in {:.2} s (not timed)",
            bars.len(),
            t.elapsed().as_secs_f64()
        );
        series.push(("synthetic".into(), bars));
    }

    let mut rows = Vec::new();
    let mut info = Vec::new();
    for (name, bars) in &series {
        bench_series(name, bars, &args, &mut rows, &mut info)?;
    }

    // The report.
    println!("## chan-core benchmark\n");
    println!(
        "- machine: {nproc} logical CPUs (nproc), {cpu}; load average at start {load}; runs on CPU(s) {cpus}\n- git commit: {commit}{}\n- repeats: at least {} runs and {} s of timed runs per mode (runs column; best and median of them, modes and degrees taking turns); default EngineConfig with structure.degrees = {} (degrees column), keep_macd=false; parsing/generation not timed\n- heap: {}{}",
        if dirty { " (with uncommitted changes to chan-core, chan-bench or Cargo.lock)" } else { "" },
        args.repeat.max(1),
        args.min_seconds,
        args.degrees.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        args.heap.as_str(),
        match args.heap {
            alloc::Heap::Cold => " (large blocks always freshly mmapped: the kernel's page faults and zeroing of the output are included)",
            alloc::Heap::Warm => " (freed memory kept mapped and reused: no page faults after the first run)",
            alloc::Heap::System => " (glibc's adaptive defaults)",
        }
    );
    println!(
        "- bytes/bar beyond input: peak heap during the run minus the heap in use before it (the input Vec<Bar>, {} B/bar, is not counted), realloc counted as alloc+copy+free (upper bound; the in-place figure is in the JSON)\n- incremental+replace: per bar, append(provisional bar) then replace_last(real bar); bars/s counts real bars\n",
        std::mem::size_of::<Bar>()
    );
    println!("- cost vs batch: ns/bar over batch's at the same degrees; cost vs degree 1: ns/bar over the same mode's at structure.degrees = 1 (best runs of the same rounds)\n");
    println!("| series | bars | degrees | mode | runs | best bars/s | median bars/s | ns/bar | bytes/bar beyond input | cost vs batch | cost vs degree 1 |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    // Best ns/bar of another row of the same series.
    let ns_of = |s: &str, mode: &str, degrees: u32| {
        rows.iter()
            .find(|r| r.series == s && r.mode == mode && r.degrees == degrees)
            .map(Row::ns_per_bar)
    };
    let vs_batch = |r: &Row| ns_of(&r.series, "batch", r.degrees).map(|b| r.ns_per_bar() / b);
    let vs_degree_1 = |r: &Row| ns_of(&r.series, r.mode, 1).map(|b| r.ns_per_bar() / b);
    let times = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.2}×"));
    let mut json_rows = Vec::new();
    for r in &rows {
        let ratio = vs_batch(r);
        let ratio_1 = vs_degree_1(r);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.1} | {} | {} |",
            r.series,
            r.bars,
            r.degrees,
            r.mode,
            r.secs.len(),
            fmt_rate(r.best_rate()),
            fmt_rate(r.median_rate()),
            r.ns_per_bar(),
            r.bytes_per_bar(),
            times(ratio),
            times(ratio_1),
        );
        json_rows.push(json!({
            "series": r.series,
            "bars": r.bars,
            "degrees": r.degrees,
            "mode": r.mode,
            "engine_calls_per_bar": r.calls_per_bar,
            "best_bars_per_s": r.best_rate(),
            "median_bars_per_s": r.median_rate(),
            "best_ns_per_bar": r.ns_per_bar(),
            "median_ns_per_bar": r.median() * 1e9 / r.bars as f64,
            "cost_vs_batch": ratio,
            "cost_vs_degree_1": ratio_1,
            "run_secs": r.secs,
            "input_bytes": r.input_bytes,
            "peak_bytes_beyond_input": r.extra_peak,
            "peak_bytes_beyond_input_inplace_realloc": r.extra_peak_inplace,
            "bytes_per_bar_beyond_input": r.bytes_per_bar(),
            "bytes_per_bar_beyond_input_inplace_realloc": r.extra_peak_inplace as f64 / r.bars as f64,
            "retained_bytes_after": r.retained,
        }));
    }
    println!();
    for i in info.iter().filter(|i| !i["structure"].is_null()) {
        println!(
            "- structure found in {}: {}",
            i["series"].as_str().unwrap_or("?"),
            i["structure"]
        );
    }
    // Targets.
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for r in &rows {
        let (label, ok) = match r.mode {
            "batch" => (
                format!("batch ≥ 25 M bars/s: {}", fmt_rate(r.best_rate())),
                r.best_rate() >= 25e6,
            ),
            "incremental" => {
                let x = vs_batch(r).unwrap_or(f64::NAN);
                (format!("incremental ≤ 2× batch cost: {x:.2}×"), x <= 2.0)
            }
            _ => continue,
        };
        println!(
            "- {} degrees {}: {label} — {}",
            r.series,
            r.degrees,
            verdict(ok)
        );
    }
    // Issue 17: the higher degrees cost at most 10% over degree 1 alone, batch and streaming.
    for r in rows
        .iter()
        .filter(|r| r.degrees > 1 && r.mode != "incremental+replace")
    {
        if let Some(x) = vs_degree_1(r) {
            println!(
                "- {} degrees {} {}: ≤ 1.10× degree 1: {x:.2}× — {}",
                r.series,
                r.degrees,
                r.mode,
                verdict(x <= 1.10)
            );
        }
    }
    for r in &rows {
        if r.mode == "batch" || r.mode == "incremental" {
            let b = r.bytes_per_bar();
            println!(
                "- {} degrees {} {}: ≤ 100 B/bar beyond input: {b:.1} — {}",
                r.series,
                r.degrees,
                r.mode,
                verdict(b <= 100.0)
            );
        }
    }

    if let Some(path) = &args.json {
        let doc = json!({
            "machine": {"nproc": nproc, "cpu_model": cpu, "loadavg_at_start": load, "cpus_allowed": cpus},
            "git": {"commit": commit, "dirty": dirty},
            "settings": {
                "repeat": args.repeat.max(1),
                "min_seconds": args.min_seconds,
                "synthetic_bars": args.synthetic,
                "seed": args.seed,
                "config": "EngineConfig::default(), structure.degrees per row",
                "degrees": args.degrees,
                "keep_macd": false,
                "heap": args.heap.as_str(),
                "heap_policy_applied": heap_applied,
                "bar_bytes": std::mem::size_of::<Bar>(),
            },
            "series": info,
            "rows": json_rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
