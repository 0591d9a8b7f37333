#!/usr/bin/env python3
"""Benchmarks the two engine servers over gRPC from a Python client (grpcio), on loopback:

- Analyze round trip of a 1,000,000-bar random walk (request built once; the time covers
  sending, analysis, the answer and its decoding);
- stream acknowledgement latency per bar (send one bar, wait for its answer), p50/p90/p99;
- pipelined stream throughput (all bars sent without waiting, answers read as they come).
The streams use grpcio's asyncio client (faster per message than its threaded one); the
pipelined figure is bounded by the Python client's cost per message as much as by the server.

Prints a markdown table; --json FILE writes the figures. Starts its own servers (Rust:
target/service/trading-engine serve; Python: python -m trading_system serve python).
Usage: scripts/bench_grpc.py [--bars 1000000] [--stream 5000] [--pipelined 20000]
Run on an otherwise idle machine: these are wall-clock times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from servers import start  # noqa: E402

from trading_system.proto import trading_pb2 as pb  # noqa: E402
from trading_system.proto import trading_pb2_grpc as rpc  # noqa: E402

OPTIONS = [("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 1 << 30)]


def walk(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    """A random walk with wicks: valid bars, realistic structure."""
    rng = np.random.default_rng(seed)
    close = 1000.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    t = 1_600_000_000_000 + np.arange(n, dtype=np.int64) * 60_000
    return {"time": t, "open": open_, "high": high, "low": low, "close": close, "volume": high}


def analyze_round_trip(stub: Any, bars: dict[str, np.ndarray], repeat: int) -> list[float]:
    req = pb.AnalyzeRequest(bars=pb.Bars(**{k: v.tolist() for k, v in bars.items()}))
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = stub.Analyze(req, timeout=600)
        out.append(time.perf_counter() - t0)
        assert answer.analysis.bars == len(bars["time"])
    return out


def bar_messages(bars: dict[str, np.ndarray], n: int) -> list[Any]:
    cols = [bars[k][:n].tolist() for k in ("time", "open", "high", "low", "close", "volume")]
    return [
        pb.StreamRequest(
            bar=pb.BarMessage(
                seq=i + 1,
                op=pb.APPEND,
                bar=pb.Bar(time=t, open=o, high=h, low=lo, close=c, volume=v),
            )
        )
        for i, (t, o, h, lo, c, v) in enumerate(zip(*cols, strict=True))
    ]


def open_message(symbol: str) -> Any:
    return pb.StreamRequest(open=pb.OpenSession(symbol=symbol, timeframe="1m"))


async def _ack_latency(address: str, messages: list[Any], symbol: str) -> list[float]:
    async with grpc.aio.insecure_channel(address, options=OPTIONS) as channel:
        call = rpc.TradingStub(channel).Stream()
        await call.write(open_message(symbol))
        await call.read()
        out = []
        for m in messages:
            t0 = time.perf_counter()
            await call.write(m)
            a = await call.read()
            out.append(time.perf_counter() - t0)
            assert a.seq == m.bar.seq and a.HasField("update")
        await call.done_writing()
        return out


def ack_latency(address: str, messages: list[Any], symbol: str) -> list[float]:
    """One bar at a time (asyncio client): the time from sending a bar to reading its answer."""
    return asyncio.run(_ack_latency(address, messages, symbol))


async def _pipelined(address: str, messages: list[Any], symbol: str) -> float:
    async with grpc.aio.insecure_channel(address, options=OPTIONS) as channel:
        call = rpc.TradingStub(channel).Stream()

        async def send() -> None:
            await call.write(open_message(symbol))
            for m in messages:
                await call.write(m)
            await call.done_writing()

        t0 = time.perf_counter()
        writer = asyncio.create_task(send())
        n = 0
        async for a in call:
            n += 1
            assert not a.HasField("error")
        await writer
        assert n == len(messages) + 1
        return time.perf_counter() - t0


def pipelined(address: str, messages: list[Any], symbol: str) -> float:
    """All bars sent without waiting for answers; seconds until the last answer."""
    return asyncio.run(_pipelined(address, messages, symbol))


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--stream", type=int, default=5_000)
    ap.add_argument("--pipelined", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engines", default="rust,python")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    bars = walk(max(args.bars, args.stream, args.pipelined))
    big = {k: v[: args.bars] for k, v in bars.items()}
    sets = ["server.max_message_bytes=268435456"]
    figures: dict[str, dict[str, float]] = {}
    for engine in args.engines.split(","):
        server = start(engine, sets, keep_log=False)
        try:
            stub = rpc.TradingStub(grpc.insecure_channel(server.address, options=OPTIONS))
            repeat = args.repeat if engine == "rust" else 1
            rt = analyze_round_trip(stub, big, repeat)
            lat = ack_latency(server.address, bar_messages(bars, args.stream), f"LAT{engine}")
            secs = pipelined(server.address, bar_messages(bars, args.pipelined), f"PIPE{engine}")
            figures[engine] = {
                "analyze_bars": args.bars,
                "analyze_best_s": min(rt),
                "analyze_median_s": statistics.median(rt),
                "ack_p50_ms": pct(lat, 50) * 1e3,
                "ack_p90_ms": pct(lat, 90) * 1e3,
                "ack_p99_ms": pct(lat, 99) * 1e3,
                "pipelined_bars_per_s": args.pipelined / secs,
            }
        finally:
            server.stop()
    print(f"Python grpcio client on loopback; Analyze of {args.bars:,} bars (best of runs);")
    print(f"{args.stream:,} acknowledged bars one at a time; {args.pipelined:,} pipelined.\n")
    print("| server | Analyze round trip | ack p50 | ack p90 | ack p99 | pipelined |")
    print("|---|---:|---:|---:|---:|---:|")
    for engine, f in figures.items():
        print(
            f"| {engine} | {f['analyze_best_s']:.2f} s | {f['ack_p50_ms']:.3f} ms "
            f"| {f['ack_p90_ms']:.3f} ms | {f['ack_p99_ms']:.3f} ms "
            f"| {f['pipelined_bars_per_s']:,.0f} bars/s |"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
