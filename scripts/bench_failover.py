#!/usr/bin/env python3
"""Benchmarks the monitor's failover and its overhead, with real processes on loopback (both
engine servers and the monitor in front of them, docs/MONITOR.md):

- crash: a lockstep stream through the monitor; after a warm-up, the active engine is killed
  (SIGKILL) and the next bar sent at once: the time from the kill to that bar's answer;
- hang: the same with the active engine stopped (SIGSTOP): a hang is found by the adaptive
  deadline only (``system.hang_deadline_factor`` times the engine's p99, at least
  ``system.min_deadline_ms``; on one quiet stream the floor), so this is run with the default
  floor and with a lower one;
- overhead: stream acknowledgement latency (one bar at a time) and Analyze round trips, direct
  to the Rust engine and through the monitor (which answers once the active engine applied the
  bar and the monitor journaled it; the standby is fed behind).

Fresh processes for every repeat of a fault; unique symbols everywhere. Prints markdown tables;
--json FILE writes the figures.
Usage: scripts/bench_failover.py [--repeat 5] [--warmup 200] [--hang-timeout-ms 300]
       [--bars 3000] [--calls 200]
Run on an otherwise idle machine: these are wall-clock times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

import bench_grpc  # noqa: E402  (this script's folder is on the path when it runs)
from cluster import columns, series  # noqa: E402
from servers import Server, monitor_command, spawn, start  # noqa: E402

from trading_system.proto import trading_pb2 as pb  # noqa: E402
from trading_system.proto import trading_pb2_grpc as rpc  # noqa: E402

OPTIONS = bench_grpc.OPTIONS
READY_S = 60.0
RUN = f"{os.getpid()}"
"""Part of every symbol, so sessions of two runs never meet."""


def bar_message(seq: int, b: pb.Bar) -> pb.StreamRequest:
    return pb.StreamRequest(bar=pb.BarMessage(seq=seq, op=pb.APPEND, bar=b))


@dataclass
class Cluster:
    engines: dict[str, Server]
    monitor: Server

    def status(self) -> pb.StatusResponse:
        with self.monitor.channel() as ch:
            return rpc.AdminStub(ch).Status(pb.StatusRequest(), timeout=10)

    def stop(self) -> None:
        for s in self.engines.values():
            if s.proc.poll() is None:
                os.kill(s.proc.pid, signal.SIGCONT)  # a stopped engine cannot act on SIGTERM
        for s in (self.monitor, *self.engines.values()):
            s.stop()


def start_cluster(sets: list[str]) -> Cluster:
    """Both engines and a monitor with ``sets``, once both engines are eligible and Rust (the
    primary) is active. Logs are discarded: reading them would compete with the client."""
    engines: dict[str, Server] = {}
    monitor: Server | None = None
    try:
        for e in ("rust", "python"):
            engines[e] = start(e, keep_log=False)
        argv = monitor_command(engines["rust"].address, engines["python"].address, sets)
        monitor = spawn("monitor", argv, keep_log=False)
        c = Cluster(engines, monitor)
        end = time.monotonic() + READY_S
        while True:
            st = c.status()
            if st.active == "rust" and all(e.eligible for e in st.engines):
                return c
            if time.monotonic() > end:
                raise RuntimeError(f"the cluster did not become ready: {st}")
            time.sleep(0.05)
    except BaseException:
        for s in (monitor, *engines.values()):
            if s is not None:
                s.stop()
        raise


# ---- Failover ----------------------------------------------------------------------------------


async def _through_fault(
    address: str, symbol: str, warmup: int, fault: Callable[[], None], victim: str
) -> tuple[float, bool]:
    bars = series(warmup + 11, seed=len(symbol))
    async with grpc.aio.insecure_channel(address, options=OPTIONS) as channel:
        call = rpc.TradingStub(channel).Stream()
        await call.write(bench_grpc.open_message(symbol))
        opened = await call.read()
        assert opened.WhichOneof("kind") == "opened", opened
        for seq in range(1, warmup + 1):
            await call.write(bar_message(seq, bars[seq - 1]))
            a = await call.read()
            assert a.seq == seq and a.engine == victim, a
        seq = warmup + 1
        t0 = time.perf_counter()
        fault()
        await call.write(bar_message(seq, bars[seq - 1]))
        a = await call.read()
        took = time.perf_counter() - t0
        assert a.WhichOneof("kind") == "update" and a.seq == seq, a
        assert a.engine != victim, a
        # Counted, not asserted: the answer should carry the new epoch (docs/MONITOR.md).
        stale = a.epoch <= opened.epoch
        for seq in range(warmup + 2, warmup + 12):  # the stream goes on, on the other engine
            await call.write(bar_message(seq, bars[seq - 1]))
            a = await call.read()
            assert a.WhichOneof("kind") == "update" and a.seq == seq, a
        await call.done_writing()
        return took, stale


def failover(kind: str, sets: list[str], repeat: int, warmup: int) -> tuple[list[float], int]:
    """Milliseconds from the fault on the active engine to the answer to the next bar, and how
    many of those answers came under the epoch before the fault."""
    out, stale = [], 0
    for r in range(repeat):
        c = start_cluster(sets)
        try:
            victim = c.status().active
            proc = c.engines[victim].proc

            def fault(proc: Any = proc) -> None:
                if kind == "crash":
                    proc.kill()
                else:
                    os.kill(proc.pid, signal.SIGSTOP)

            symbol = f"{kind.upper()}-{RUN}-{len(sets)}-{r}"
            took, old_epoch = asyncio.run(
                _through_fault(c.monitor.address, symbol, warmup, fault, victim)
            )
            out.append(took * 1e3)
            stale += old_epoch
        finally:
            c.stop()
    return out, stale


# ---- Overhead ----------------------------------------------------------------------------------


def ack_latency(address: str, symbol: str, bars: list[pb.Bar]) -> list[float]:
    """One bar at a time (asyncio client): seconds from sending a bar to reading its answer."""
    messages = [bar_message(i, b) for i, b in enumerate(bars, 1)]
    return bench_grpc.ack_latency(address, messages, symbol)


def analyze_latency(address: str, bars: list[pb.Bar], calls: int) -> list[float]:
    req = pb.AnalyzeRequest(bars=columns(bars))
    with grpc.insecure_channel(address, options=OPTIONS) as ch:
        stub = rpc.TradingStub(ch)
        for _ in range(10):  # connection and first-call costs out of the figures
            stub.Analyze(req, timeout=30)
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            a = stub.Analyze(req, timeout=30)
            out.append(time.perf_counter() - t0)
            assert a.analysis.bars == len(bars) and a.engine == "rust", a.engine
        return out


def pct_ms(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) * 1e3


def overhead(sets: list[str], n: int, calls: int, analyze_bars: int) -> dict[str, float]:
    c = start_cluster(sets)
    try:
        rust, python, monitor = c.engines["rust"].address, c.engines["python"].address, c.monitor
        bars = series(n, seed=3)
        ack_latency(rust, f"WARM-{RUN}", bars[:200])  # first-use costs out of the figures
        ack_latency(monitor.address, f"WARM-{RUN}-M", bars[:200])
        figures: dict[str, float] = {"stream_bars": n, "analyze_bars": analyze_bars}
        for name, address in (("rust", rust), ("python", python), ("monitor", monitor.address)):
            lat = ack_latency(address, f"ACK-{RUN}-{name}", bars)
            figures[f"ack_{name}_p50_ms"] = pct_ms(lat, 50)
            figures[f"ack_{name}_p99_ms"] = pct_ms(lat, 99)
        small = series(analyze_bars, seed=9)
        for name, address in (("rust", rust), ("monitor", monitor.address)):
            lat = analyze_latency(address, small, calls)
            figures[f"analyze_{name}_p50_ms"] = pct_ms(lat, 50)
            figures[f"analyze_{name}_p99_ms"] = pct_ms(lat, 99)
        return figures
    finally:
        c.stop()


# ---- Report ------------------------------------------------------------------------------------


def summary(xs: list[float]) -> dict[str, float]:
    return {"min_ms": min(xs), "median_ms": statistics.median(xs), "max_ms": max(xs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh clusters per fault")
    ap.add_argument("--warmup", type=int, default=200, help="bars streamed before the fault")
    ap.add_argument("--health-interval-ms", type=int, default=100)
    ap.add_argument("--hang-floor-ms", type=int, default=25, help="the lower deadline floor")
    ap.add_argument("--bars", type=int, default=3000, help="bars for the stream ack latency")
    ap.add_argument("--calls", type=int, default=200, help="Analyze calls for its latency")
    ap.add_argument("--analyze-bars", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    base = [f"system.health_check_interval_ms={args.health_interval_ms}"]
    low = [*base, f"system.min_deadline_ms={args.hang_floor_ms}"]
    default_floor = "config default"
    runs = [
        ("crash", "kill -9 active", base, default_floor),
        ("hang", "SIGSTOP active", base, default_floor),
        ("hang", "SIGSTOP active", low, str(args.hang_floor_ms)),
    ]
    faults = []
    for kind, what, sets, timeout in runs:
        ms, stale = failover(kind, sets, args.repeat, args.warmup)
        faults.append(
            {"fault": kind, "what": what, "min_deadline_ms": timeout, "ms": ms, "stale": stale}
        )
    over = overhead(base, args.bars, args.calls, args.analyze_bars)

    print(
        f"Failover through the monitor (health interval {args.health_interval_ms} ms): time from "
        f"the fault on the active engine\nto the answer to the next bar of a running lockstep "
        f"stream ({args.warmup} bars before), {args.repeat} fresh clusters each.\n"
    )
    print("| fault | system.min_deadline_ms | min | median | max | answer under the old epoch |")
    print("|---|---:|---:|---:|---:|---:|")
    for f in faults:
        s = summary(f["ms"])
        f.update(s)
        print(
            f"| {f['what']} | {f['min_deadline_ms']} | {s['min_ms']:.1f} ms "
            f"| {s['median_ms']:.1f} ms | {s['max_ms']:.1f} ms | {f['stale']}/{len(f['ms'])} |"
        )
    o = over
    print(
        f"\nMonitor overhead: stream ack latency ({args.bars:,} bars, one at a time; through the "
        f"monitor each bar is applied\nby the active engine and journaled), Analyze of "
        f"{args.analyze_bars:,} bars ({args.calls} calls; the monitor forwards it to Rust only).\n"
    )
    print("| measure | direct Rust p50 | p99 | via monitor p50 | p99 | added p50 | added p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, key in (("stream ack", "ack"), ("Analyze", "analyze")):
        d50, d99 = o[f"{key}_rust_p50_ms"], o[f"{key}_rust_p99_ms"]
        m50, m99 = o[f"{key}_monitor_p50_ms"], o[f"{key}_monitor_p99_ms"]
        print(
            f"| {label} | {d50:.3f} ms | {d99:.3f} ms | {m50:.3f} ms | {m99:.3f} ms "
            f"| {m50 - d50:+.3f} ms | {m99 - d99:+.3f} ms |"
        )
    print(
        f"\nFor reference, stream ack direct to the Python engine: p50 "
        f"{o['ack_python_p50_ms']:.3f} ms, p99 {o['ack_python_p99_ms']:.3f} ms."
    )
    if args.json:
        args.json.write_text(json.dumps({"failover": faults, "overhead": over}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
