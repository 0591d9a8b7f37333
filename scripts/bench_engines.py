#!/usr/bin/env python3
"""Benchmarks the Python standby engine and the native binding against the pure-Rust core.

Figures, each the best (and median) of --repeat timed runs on one CSV series:
- python batch:        trading_system.engine.analyze (document included)
- python incremental:  Session.append bar by bar (update documents included)
- native analyze:      trading_system.native.analyze on numpy arrays (no document)
- native + document:   the same plus the JSON document
- rust core (chan-bench): the pure-Rust batch, with a cold and a warm heap
Prints a markdown table and the ratios the issue asks for; --json FILE writes the figures.

Usage: scripts/bench_engines.py [--csv ../shared/data/000001.SH_1m.csv] [--repeat 5]
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

ROOT = Path(__file__).resolve().parents[1]
CHANPY_BARS_PER_S = 24_500  # chan.py on this machine (issue 2), the reference for the target


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def rust_core(csv: Path, repeat: int) -> dict[str, float]:
    """Pure-Rust batch bars/s from chan-bench (best of its runs), cold and warm heap."""
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-q", "-p", "chan-bench"], cwd=ROOT, check=True
    )
    rates = {}
    for heap in ("cold", "warm"):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run(
                [
                    str(ROOT / "target" / "release" / "chan-bench"),
                    "--csv",
                    str(csv),
                    "--synthetic",
                    "0",
                    "--modes",
                    "batch",
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
            rates[heap] = max(r["best_bars_per_s"] for r in rows if r["mode"] == "batch")
    return rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=ROOT.parent / "shared/data/000001.SH_1m.csv")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-rust", action="store_true", help="skip the chan-bench figures")
    args = ap.parse_args()

    from trading_system import native
    from trading_system.config import engine_config
    from trading_system.data import load_csv
    from trading_system.engine import Session, analyze

    bars = load_csv(args.csv)
    n = len(bars)
    cfg = engine_config()
    rows = list(bars.rows())

    def incremental() -> None:
        s = Session(cfg)
        for r in rows:
            s.append(*r)

    cols = (bars.time, bars.open, bars.high, bars.low, bars.close, bars.volume)
    runs = {
        "python batch": timed(lambda: analyze(bars, cfg), args.repeat),
        "python incremental": timed(incremental, max(1, args.repeat // 2)),
        "native analyze (numpy)": timed(lambda: native.analyze(*cols), args.repeat),
        "native analyze + JSON document": timed(
            lambda: native.analyze(*cols).to_json(), args.repeat
        ),
    }
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
    py = figures["python batch"]["best_bars_per_s"]
    print(
        f"\npython batch / chan.py ({CHANPY_BARS_PER_S:,} bars/s): {py / CHANPY_BARS_PER_S:.1f}x"
        " (target >= 5x, i.e. >= 125,000 bars/s)"
    )
    nat = figures["native analyze (numpy)"]["best_bars_per_s"]
    for heap in ("cold", "warm"):
        key = f"rust core batch ({heap} heap)"
        if key in figures:
            ratio = nat / figures[key]["best_bars_per_s"]
            print(f"native / pure Rust ({heap} heap): {ratio:.0%} (target >= 80%)")
    if args.json:
        args.json.write_text(json.dumps({"series": str(args.csv.name), "bars": n, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
