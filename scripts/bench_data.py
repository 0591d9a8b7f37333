#!/usr/bin/env python3
"""Benchmarks the Python loader (trading_system.data) and the command line around it.

Figures, each the best (and median) of --repeat runs on one CSV series:
- load:              trading_system.data.load(FILE) in a warm process
- pandas.read_csv:   the same file, the baseline of the same run (the ratio is what to compare
                     across machines)
- first load:        a fresh process importing trading_system.data and loading FILE once
                     (imports and first-call set-up included), and the import alone
- analyze --engine rust / python: `trading-system analyze FILE` whole-process, wall clock
Prints a markdown table and the targets of issue 16; --json FILE writes the figures.

Usage: scripts/bench_data.py [--csv ../shared/data/000001.SH_1m.csv] [--repeat 5] [--json OUT]
Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# chan.py, whole-process, as issue 16 measured it: 7.5 s on a 68,145-bar file.
CHANPY_BARS_PER_S = 68_145 / 7.5


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def process(argv: list[str]) -> Callable[[], object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python-layer")}

    def run() -> object:
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr.decode()}")
        return done

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--csv", type=Path, default=ROOT.parent / "shared" / "data" / "000001.SH_1m.csv"
    )
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "python-layer"))
    import pandas as pd

    from trading_system.data import load

    csv = args.csv.resolve()
    bars = load(csv)
    n = len(bars)
    py = sys.executable
    rows: dict[str, tuple[float, float]] = {
        "load (trading_system.data)": timed(lambda: load(csv), args.repeat),
        "pandas.read_csv (baseline)": timed(lambda: pd.read_csv(csv), args.repeat),
        "first load, fresh process": timed(
            process([py, "-c", f"from trading_system.data import load; load({str(csv)!r})"]),
            args.repeat,
        ),
        "import trading_system.data, fresh process": timed(
            process([py, "-c", "import trading_system.data"]), args.repeat
        ),
        "python -c pass (interpreter start)": timed(process([py, "-c", "pass"]), args.repeat),
    }
    cli = [py, "-m", "trading_system", "analyze", str(csv)]
    for engine in ("rust", "python"):
        rows[f"trading-system analyze --engine {engine}"] = timed(
            process([*cli, "--engine", engine]), args.repeat
        )

    print(f"series: {csv.name}, {n:,} bars, best / median of {args.repeat} runs\n")
    print("| what | best s | median s |")
    print("|---|---:|---:|")
    for what, (best, median) in rows.items():
        print(f"| {what} | {best:.3f} | {median:.3f} |")
    load_s = rows["load (trading_system.data)"][0]
    pandas_s = rows["pandas.read_csv (baseline)"][0]
    rust_s = rows["trading-system analyze --engine rust"][0]
    python_s = rows["trading-system analyze --engine python"][0]
    chanpy_s = n / CHANPY_BARS_PER_S
    print(
        f"\nload / pandas.read_csv: {load_s / pandas_s:.2f}x; load {load_s:.3f} s "
        f"(target <= 0.5 s)\n"
        f"analyze --engine rust whole-process: {rust_s:.2f} s (target <= 2 s)\n"
        f"analyze --engine python whole-process: {python_s:.2f} s; chan.py at "
        f"{CHANPY_BARS_PER_S:,.0f} bars/s (7.5 s for 68,145 bars) would take {chanpy_s:.1f} s: "
        f"{chanpy_s / python_s:.1f}x (target >= 10x)"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"bars": n, "seconds": {k: v[0] for k, v in rows.items()}}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
