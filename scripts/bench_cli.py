#!/usr/bin/env python3
"""Times the Rust command line whole-process: `trading-engine analyze FILE` (reading the file,
the analysis, the JSON document written to /dev/null, process start and exit), against chan.py
on the same bars (24,500 bars/s on this machine, issue 2).

Each file: 2 warm-up runs (the file in the page cache), then --runs timed runs; best, median and
the median CPU time (user + system) of the child. --head N also times the first N bars of each
file (a slice written to a temporary file): issue 16 states its target on a 68,145-bar series.
With --before BIN, that binary (say a build of the commit before a change) runs in the same
loop, taking turns, so both see the same machine.

Usage: scripts/bench_cli.py [--csv FILE ...] [--head N ...] [--runs 40]
                            [--engine target/release/trading-engine]
                            [--before OLD/trading-engine] [--json OUT]
Run on an otherwise idle machine: the figures are wall-clock times of one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANPY_BARS_PER_S = 68_145 / 7.5
"""chan.py's whole-process rate that issue 16 states its target against (7.5 s for 68,145
bars): the target's basis, as in scripts/bench_data.py."""
CHANPY_HERE = 24_500
"""chan.py's analysis rate measured on this machine (issue 2, another series): the stricter
basis, shown beside it."""
TARGET = 200  # issue 16: whole-process at least 200 times chan.py's speed


def bars_in(csv: Path) -> int:
    with csv.open("rb") as f:
        return sum(1 for line in f if line.strip()) - 1


def run_once(cmd: list[str]) -> tuple[float, float]:
    """Wall time and the child's CPU time (user + system) of one run, in seconds."""
    before = os.times()
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, action="append")
    ap.add_argument("--head", type=int, action="append", default=[])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--engine", type=Path, default=ROOT / "target" / "release" / "trading-engine")
    ap.add_argument("--before", type=Path, help="another build, timed in the same loop")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    given = args.csv or [ROOT.parent / "shared" / "data" / "000001.SH_1m.csv"]
    scratch = tempfile.TemporaryDirectory()
    files = []
    for csv in given:
        for n in args.head:
            if bars_in(csv) <= n:
                continue
            part = Path(scratch.name) / f"{csv.stem}_head{n}.csv"
            with csv.open("rb") as src, part.open("wb") as dst:
                for i, line in enumerate(src):
                    if i > n:
                        break
                    dst.write(line)
            files.append(part)
        files.append(csv)
    engines = [("this build", args.engine)]
    if args.before:
        engines.insert(0, ("before", args.before))
    results = []
    for csv in files:
        bars = bars_in(csv)
        cmds = {label: [str(exe), "analyze", str(csv)] for label, exe in engines}
        for cmd in cmds.values():
            for _ in range(2):
                run_once(cmd)
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in cmds}
        for _ in range(args.runs):
            for label, cmd in cmds.items():
                times[label].append(run_once(cmd))
        chanpy = bars / CHANPY_BARS_PER_S
        for label, got in times.items():
            walls = [w for w, _ in got]
            median = statistics.median(walls)
            results.append(
                {
                    "file": csv.name,
                    "bars": bars,
                    "build": label,
                    "runs": len(walls),
                    "best_s": min(walls),
                    "median_s": median,
                    "cpu_median_s": statistics.median(c for _, c in got),
                    "chanpy_s": chanpy,
                    "times_chanpy": chanpy / median,
                    "times_chanpy_here": bars / CHANPY_HERE / median,
                }
            )
    print(
        f"`trading-engine analyze FILE > /dev/null`, whole process; {args.runs} runs after 2 "
        f"warm-up runs; × chan.py: at {CHANPY_BARS_PER_S:,.0f} bars/s (issue 16's figure, 7.5 s "
        f"for 68,145 bars) and at {CHANPY_HERE:,} bars/s (measured here, issue 2) on the same "
        "bars.\n"
    )
    print(
        "| file | bars | build | runs | best | median | CPU (median) | × chan.py (median) "
        "| × chan.py here |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['file']} | {r['bars']:,} | {r['build']} | {r['runs']} | "
            f"{r['best_s'] * 1e3:.1f} ms | {r['median_s'] * 1e3:.1f} ms | "
            f"{r['cpu_median_s'] * 1e3:.0f} ms | {r['times_chanpy']:.0f}× | "
            f"{r['times_chanpy_here']:.0f}× |"
        )
    print()
    for r in results:
        if r["build"] != "this build":
            continue
        budget = r["chanpy_s"] / TARGET
        verdict = "met" if r["median_s"] <= budget else "NOT met"
        print(
            f"- {r['file']}: ≥ {TARGET}× chan.py (≤ {budget * 1e3:.1f} ms): "
            f"{r['median_s'] * 1e3:.1f} ms median, {r['times_chanpy']:.0f}× — {verdict}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
