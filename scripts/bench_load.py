#!/usr/bin/env python3
"""Benchmarks the monitor under load (docs/MONITOR.md), real processes on loopback: both engine
servers and the monitor, bots streaming in lockstep through it (tests/python/load.py):

- throughput: acknowledged bars/s at 1, 50 and 200 concurrent bots, and the acknowledgement
  latency (p50/p99) each bot saw; the standby's lag (Admin.Status ``lag_ms``, sampled every
  50 ms while the bots run) p50/p99;
- failover under load: 200 bots, the active engine killed (SIGKILL) or stopped (SIGSTOP) once
  a third of the bars are acknowledged (--trials runs of each); the time from the fault to the
  last bot's first answer from the engine that took over, by the bots' own clocks (every bot
  waits for the failover at its next bar); a bot never answered after it counts as an error;
- a baseline in the same run: one bot streaming straight to the Rust engine (the ratio through
  the monitor is what the monitor costs).

Logging at warn (one JSON line per message would be the benchmark's cost). Prints markdown
tables; --json FILE writes the figures. Run on an otherwise idle machine: wall-clock times.
Usage: scripts/bench_load.py [--bars 1000] [--bots 1,50,200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from load import Bot, Bots, bars_for, run_bot  # noqa: E402
from servers import Server, monitor_command, spawn, start  # noqa: E402

from trading_system.proto import trading_pb2 as pb  # noqa: E402
from trading_system.proto import trading_pb2_grpc as rpc  # noqa: E402

QUIET = ["logging.level=warn"]
SETS = [*QUIET, "system.health_check_interval_ms=100", "system.max_opens_per_s=100000"]
RUN = f"{os.getpid()}"


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


class Stack:
    def __init__(self) -> None:
        self.engines = {e: start(e, QUIET, keep_log=False) for e in ("rust", "python")}
        argv = monitor_command(self.engines["rust"].address, self.engines["python"].address, SETS)
        self.monitor = spawn("monitor", argv, False)
        self.channel = grpc.insecure_channel(self.monitor.address)
        self.admin = rpc.AdminStub(self.channel)
        end = time.monotonic() + 60
        while not all(e.eligible for e in self.status().engines):
            if time.monotonic() > end:
                raise RuntimeError("engines never eligible")
            time.sleep(0.05)

    def status(self) -> pb.StatusResponse:
        return self.admin.Status(pb.StatusRequest(), timeout=10)

    def close(self) -> None:
        self.channel.close()
        for s in self.engines.values():
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGCONT)
        self.monitor.stop()
        for s in self.engines.values():
            s.stop()


class LagSampler(threading.Thread):
    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            with_lag = [e.lag_ms for e in self.stack.status().engines if e.engine == "python"]
            self.samples.extend(with_lag)


def throughput(bots: int, bars: int) -> dict[str, Any]:
    stack = Stack()
    try:
        sampler = LagSampler(stack)
        run = Bots(stack.monitor.address, bots, bars, prefix=f"T{RUN}-{bots}-")
        run.start()
        sampler.start()
        done = run.finish()
        sampler.stop.set()
        sampler.join()
        errors = sum(len(b.errors) for b in done)
        latencies = [x for b in done for x in b.latencies]
        switches = len(stack.status().switches) - 1
        return {
            "switches": switches,
            "bots": bots,
            "bars": bars,
            "acks_per_s": run.acked / run.elapsed,
            "ack_p50_ms": pct(latencies, 50) * 1000,
            "ack_p99_ms": pct(latencies, 99) * 1000,
            "lag_p50_ms": pct(sampler.samples, 50),
            "lag_p99_ms": pct(sampler.samples, 99),
            "errors": errors,
        }
    finally:
        stack.close()


def direct_baseline(bars: int) -> dict[str, Any]:
    """One bot straight to the Rust engine: the acknowledgement latency without the monitor."""
    server: Server = start("rust", QUIET, keep_log=False)
    try:
        bot = Bot(f"D{RUN}", bars_for(f"D{RUN}", bars))
        asyncio.run(run_bot(server.address, bot))
        return {
            "ack_p50_ms": pct(bot.latencies, 50) * 1000,
            "ack_p99_ms": pct(bot.latencies, 99) * 1000,
            "errors": len(bot.errors),
        }
    finally:
        server.stop()


def failover(kind: str, bots: int, bars: int) -> dict[str, Any]:
    stack = Stack()
    try:
        run = Bots(stack.monitor.address, bots, bars, prefix=f"F{RUN}-{kind}-")
        run.start()
        run.reach(bots * bars // 3)
        epoch = stack.status().epoch
        rust = stack.engines["rust"].proc
        at = time.perf_counter()
        if kind == "crash":
            rust.kill()
        else:
            rust.send_signal(signal.SIGSTOP)
        done = run.finish()
        if kind == "hang":
            rust.send_signal(signal.SIGCONT)
        # Each bot's first answer from the engine that took over (a later epoch), by the time
        # the bot itself received it: every bot waits for the failover at its next bar.
        times = sorted(
            (next(t for t, (_, _, e) in zip(b.received, b.acks, strict=True) if e > epoch) - at)
            * 1000
            for b in done
            if any(e > epoch for _, _, e in b.acks)
        )
        return {
            "kind": kind,
            "bots": bots,
            "errors": sum(len(b.errors) for b in done),
            "resumed": len(times),
            "all_resumed_ms": times[-1] if times else float("nan"),
            "median_resumed_ms": statistics.median(times) if times else float("nan"),
            "switches": len(stack.status().switches) - 1,
        }
    finally:
        stack.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1000)
    ap.add_argument("--bots", default="1,50,200")
    ap.add_argument("--trials", type=int, default=3, help="runs of each fault")
    ap.add_argument("--json")
    args = ap.parse_args()
    counts = [int(x) for x in args.bots.split(",")]
    runs = [throughput(n, args.bars) for n in counts]
    base = direct_baseline(args.bars)
    faults = {
        k: [failover(k, max(counts), max(200, args.bars // 2)) for _ in range(args.trials)]
        for k in ("crash", "hang")
    }
    print(
        "| bots | bars each | acknowledged bars/s | ack p50 / p99 (ms) "
        "| standby lag p50 / p99 (ms) | errors | switches |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r['bots']} | {r['bars']:,} | {r['acks_per_s']:,.0f} | "
            f"{r['ack_p50_ms']:.3f} / {r['ack_p99_ms']:.3f} | "
            f"{r['lag_p50_ms']:.1f} / {r['lag_p99_ms']:.1f} | {r['errors']} | {r['switches']} |"
        )
    print(
        f"| 1, straight to the Rust engine (baseline) | {args.bars:,} | — | "
        f"{base['ack_p50_ms']:.3f} / {base['ack_p99_ms']:.3f} | — | {base['errors']} | — |"
    )
    print()
    print(
        f"| fault under load | bots | every bot answered again after (ms), {args.trials} runs "
        "| worst | median bot (ms) | errors |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for kind, trials in faults.items():
        name = "kill -9 of the active" if kind == "crash" else "SIGSTOP of the active"
        each = ", ".join(f"{f['all_resumed_ms']:.0f}" for f in trials)
        worst = max(f["all_resumed_ms"] for f in trials)
        median = statistics.median(f["median_resumed_ms"] for f in trials)
        errors = sum(f["errors"] + f["bots"] - f["resumed"] for f in trials)
        print(f"| {name} | {trials[0]['bots']} | {each} | {worst:.0f} | {median:.0f} | {errors} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "baseline": base, "faults": faults}))


if __name__ == "__main__":
    main()
