#!/usr/bin/env python3
"""Benchmarks the Python standby engine and the native binding against the pure-Rust core.

Figures, each the best (and median) of --repeat timed runs on one CSV series:
- python batch:        trading_system.engine.analyze (document included)
- python incremental:  Session.append bar by bar (update documents included)
- native analyze:      trading_system.native.analyze on numpy arrays (no document)
- native + document:   the same plus the JSON document
- rust core (chan-bench): the pure-Rust batch, with a cold and a warm heap
Then, per bar on a --walk-bars random walk (--sections session):
- native Session.append and trading_system.Session.append (engine "rust"): p50 and mean of
  each call timed alone, the mean of an untimed loop, and the same with the change report
  read (``.tail`` and the splices, as a client applying it does);
- the floor of a native call (a getter) and of the timer, and the pure-Rust core's own
  incremental cost per bar on the same bars (chan-bench), as baselines of the same run.
Prints markdown tables and the ratios the issue asks for; --json FILE writes the figures.

Usage: scripts/bench_engines.py [--csv ../shared/data/000001.SH_1m.csv] [--repeat 5]
                                [--sections batch,session] [--walk-bars 100000]
                                [--old-native OLD/native.so] [--no-python] [--no-rust]
--old-native adds the rows of another build of the module (say the commit before a change,
built and copied aside), measured in the same run, taking turns with the current build's.
Run on an otherwise idle machine: the figures are single-threaded wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHANPY_BARS_PER_S = 24_500  # chan.py on this machine (issue 2), the reference for the target


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def rust_core(
    csv: Path, repeat: int, mode: str = "batch", heaps: tuple[str, ...] = ("cold", "warm")
) -> dict[str, float]:
    """Pure-Rust bars/s of `mode` from chan-bench (best of its runs), per heap policy."""
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-q", "-p", "chan-bench"], cwd=ROOT, check=True
    )
    rates = {}
    for heap in heaps:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run(
                [
                    str(ROOT / "target" / "release" / "chan-bench"),
                    "--csv",
                    str(csv),
                    "--synthetic",
                    "0",
                    "--modes",
                    mode,
                    # The default configuration, as the Python engine and the binding run it.
                    "--degrees",
                    "2",
                    "--no-structure",
                    "--repeat",
                    str(repeat),
                    # As many runs as the Python side makes: the best of many more would
                    # favour the pure-Rust figure.
                    "--min-seconds",
                    "0",
                    "--heap",
                    heap,
                    "--json",
                    f.name,
                ],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            rows = json.loads(Path(f.name).read_text())["rows"]
            rates[heap] = max(r["best_bars_per_s"] for r in rows if r["mode"] == mode)
    return rates


def walk(n: int, seed: int = 7) -> list[tuple[int, float, float, float, float, float]]:
    """A random walk with wicks (scripts/bench_grpc.py's), as bar rows of Python numbers."""
    import numpy as np

    rng = np.random.default_rng(seed)
    close = 1000.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    t = 1_600_000_000_000 + np.arange(n, dtype=np.int64) * 60_000
    cols = [c.tolist() for c in (t, open_, high, low, close, high)]
    return list(zip(*cols, strict=True))


def per_call(fn: Callable[..., object], rows: list[Any]) -> list[int]:
    """Nanoseconds of each call `fn(*row)`, timed alone."""
    clock = time.perf_counter_ns
    out = [0] * len(rows)
    for i, r in enumerate(rows):
        t0 = clock()
        fn(*r)
        out[i] = clock() - t0
    return out


def loop(fn: Callable[..., object], rows: list[Any]) -> tuple[float, float]:
    """Mean nanoseconds per call of an untimed loop: wall clock, and the thread's CPU time
    (which a shared machine's other processes do not inflate: it excludes the time the thread
    waited to be scheduled)."""
    t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
    for r in rows:
        fn(*r)
    c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
    return (t1 - t0) / len(rows), (c1 - c0) / len(rows)


def typed_lists(a: Any) -> None:
    """Reads the typed lists of a results.Analysis."""
    a.fractals, a.pens, a.segments, a.pivots, a.signals  # noqa: B018


def read_report(u: Any) -> None:
    """What a client applying the change report reads of it."""
    if isinstance(u, str):  # the update document as JSON text (before typed results)
        json.loads(u)
        return
    u.tail  # noqa: B018
    u.fractals, u.pens, u.segments, u.pivots, u.signals  # noqa: B018
    u.last_pen, u.forming_pen  # noqa: B018


def load_native(path: Path) -> Any:
    """Another build of the native module (an older commit's, for a before/after comparison)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("native", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def session_figures(
    n: int, repeat: int, rust: bool, old: Path | None = None
) -> dict[str, dict[str, float]]:
    """Per-bar cost of a session's append on an n-bar walk (µs): p50 and mean of calls timed
    alone (each figure the median over `repeat` sessions), the untimed loop's mean."""
    from trading_system import Session, native

    rows = walk(n)
    api_rows = [(r,) for r in rows]
    cases: dict[str, tuple[Callable[[], Any], list[Any]]] = {}
    if old is not None:
        before = load_native(old)
        cases["old build: native Session.append"] = (lambda: before.Session().append, rows)
        cases["old build: native Session.append, report read"] = (
            lambda: (lambda s: lambda *r: read_report(s.append(*r)))(before.Session()),
            rows,
        )
    cases |= {
        "native Session.append": (lambda: native.Session().append, rows),
        "native Session.append, report read": (
            lambda: (lambda s: lambda *r: read_report(s.append(*r)))(native.Session()),
            rows,
        ),
        "Session.append (engine rust)": (lambda: Session(engine="rust").append, api_rows),
        "Session.append (engine rust), report read": (
            lambda: (lambda s: lambda r: read_report(s.append(r)))(Session(engine="rust")),
            api_rows,
        ),
        # Floors: a native call that does nothing much, and the timer itself.
        "native call floor (Session.bars getter)": (
            lambda: (lambda s: lambda *r: s.bars)(native.Session()),
            rows,
        ),
        "timer floor": (lambda: lambda *r: None, rows),
    }
    out: dict[str, dict[str, float]] = {}
    for name, (make, args) in cases.items():
        p50s, means, loops, cpu = [], [], [], []
        for _ in range(repeat):
            ns = per_call(make(), args)
            p50s.append(statistics.median(ns))
            means.append(statistics.fmean(ns))
            wall, thread = loop(make(), args)
            loops.append(wall)
            cpu.append(thread)
        out[name] = {
            "p50_us": statistics.median(p50s) / 1000,
            "mean_us": statistics.median(means) / 1000,
            "loop_mean_us": statistics.median(loops) / 1000,
            "loop_cpu_mean_us": statistics.median(cpu) / 1000,
        }
    if rust:
        with tempfile.NamedTemporaryFile("w", suffix=".csv") as f:
            f.write("time,open,high,low,close,volume\n")
            f.writelines(",".join(map(repr, r)) + "\n" for r in rows)
            f.flush()
            rate = rust_core(Path(f.name), repeat, "incremental", ("warm",))["warm"]
        us = 1e6 / rate
        out["rust core Session::append (chan-bench, warm heap)"] = {
            "p50_us": float("nan"),
            "mean_us": us,
            "loop_mean_us": us,
            "loop_cpu_mean_us": float("nan"),
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=ROOT.parent / "shared/data/000001.SH_1m.csv")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-rust", action="store_true", help="skip the chan-bench figures")
    ap.add_argument("--sections", default="batch,session", help="batch, session (comma list)")
    ap.add_argument("--walk-bars", type=int, default=100_000, help="bars of the session walk")
    ap.add_argument("--old-native", type=Path, help="another build of native*.so to compare with")
    ap.add_argument("--no-python", action="store_true", help="skip the Python engine (batch)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    results: dict[str, Any] = {}
    if "batch" in sections:
        results.update(batch(args))
    if "session" in sections:
        results["session"] = session(args)
    if args.json:
        args.json.write_text(json.dumps(results))
    return 0


def session(args: argparse.Namespace) -> dict[str, Any]:
    figures = session_figures(args.walk_bars, args.repeat, not args.no_rust, args.old_native)
    print(f"\nsession append on a {args.walk_bars:,}-bar random walk, median of {args.repeat}")
    print("sessions (µs per bar)\n")
    print("| what | p50 | mean | untimed loop mean | its CPU time |")
    print("|---|---:|---:|---:|---:|")
    show = lambda x: "" if x != x else f"{x:.3f}"  # noqa: E731
    for k, f in figures.items():
        row = (f["p50_us"], f["mean_us"], f["loop_mean_us"], f["loop_cpu_mean_us"])
        print(f"| {k} | " + " | ".join(map(show, row)) + " |")
    nat = figures["native Session.append"]
    print(
        f"\nnative Session.append: p50 {nat['p50_us']:.2f} µs, mean {nat['mean_us']:.2f} µs"
        " (targets <= 1 µs p50, <= 2 µs mean)"
    )
    return {"bars": args.walk_bars, **figures}


def batch(args: argparse.Namespace) -> dict[str, Any]:
    from trading_system import native
    from trading_system.config import engine_config
    from trading_system.data import load_csv
    from trading_system.engine import Session, analyze
    from trading_system.results import Analysis

    bars = load_csv(args.csv)
    n = len(bars)
    cfg = engine_config()
    rows = list(bars.rows())

    def incremental() -> None:
        s = Session(cfg)
        for r in rows:
            s.append(*r)

    cols = (bars.time, bars.open, bars.high, bars.low, bars.close, bars.volume)
    runs: dict[str, list[float]] = (
        {}
        if args.no_python
        else {
            "python batch": timed(lambda: analyze(bars, cfg), args.repeat),
            "python incremental": timed(incremental, max(1, args.repeat // 2)),
        }
    )
    builds = {"": native}
    if args.old_native is not None:
        builds["old build: "] = load_native(args.old_native)
    cases: dict[str, Callable[[], object]] = {}
    for tag, module in builds.items():
        cases[f"{tag}native analyze (numpy)"] = lambda m=module: m.analyze(*cols)
        cases[f"{tag}native analyze + JSON document"] = lambda m=module: m.analyze(*cols).to_json()
        # What trading_system.analyze(engine="rust") users read: the typed lists. The old
        # build answered in JSON text, parsed into the same classes.
        old = tag != ""
        cases[f"{tag}native analyze + typed lists (results.Analysis)"] = lambda m=module, old=old: (
            typed_lists(
                Analysis(text=m.analyze(*cols).to_json())
                if old
                else Analysis(native=m.analyze(*cols))
            )
        )
    # Builds and cases take turns, so that a slow spell of the machine hits them alike.
    for k in cases:
        runs[k] = []
    for _ in range(args.repeat):
        for k, fn in cases.items():
            runs[k] += timed(fn, 1)
    figures = {
        k: {"best_bars_per_s": n / min(v), "median_bars_per_s": n / statistics.median(v)}
        for k, v in runs.items()
    }
    if not args.no_rust:
        for heap, rate in rust_core(args.csv, args.repeat).items():
            figures[f"rust core batch ({heap} heap)"] = {
                "best_bars_per_s": rate,
                "median_bars_per_s": float("nan"),
            }

    print(f"series: {args.csv.name}, {n:,} bars, best / median of {args.repeat} runs\n")
    print("| what | best bars/s | median bars/s |")
    print("|---|---:|---:|")
    for k, f in figures.items():
        med = f["median_bars_per_s"]
        med_text = "" if med != med else f"{med:,.0f}"
        print(f"| {k} | {f['best_bars_per_s']:,.0f} | {med_text} |")
    if not args.no_python:
        py = figures["python batch"]["best_bars_per_s"]
        print(
            f"\npython batch / chan.py ({CHANPY_BARS_PER_S:,} bars/s): "
            f"{py / CHANPY_BARS_PER_S:.1f}x (target >= 5x, i.e. >= 125,000 bars/s)"
        )
    nat = figures["native analyze (numpy)"]["best_bars_per_s"]
    for heap in ("cold", "warm"):
        key = f"rust core batch ({heap} heap)"
        if key in figures:
            ratio = nat / figures[key]["best_bars_per_s"]
            print(f"native / pure Rust ({heap} heap): {ratio:.0%} (target >= 80%)")
    return {"series": str(args.csv.name), "bars": n, **figures}


if __name__ == "__main__":
    sys.exit(main())
