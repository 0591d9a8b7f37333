"""Many concurrent bots through the monitor (the load-and-fault suite, tests/python/
test_load.py, and scripts/bench_load.py): each bot is one stream in lockstep (a bar, its
acknowledgement, the next bar) over grpc.aio, all bots on one event loop in a thread of their
own, so the test can kill, stop and restart processes meanwhile.

A bot records every answer. It counts as a client-visible error anything a trading bot would
see: a stream ending with an error, an in-band error, an answer with another number. With
``resume`` it reconnects and resumes by sequence number on UNAVAILABLE within a retry budget,
as the client library does (used for a restart of the monitor itself, where the library's
retry is the documented recovery path); those reconnects are counted apart.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import zlib
from dataclasses import dataclass, field

import grpc
from cluster import series

from trading_system.proto import trading_pb2 as pb
from trading_system.stubs import StreamCall, Trading, read

TIMEFRAME = "1m"


def bars_for(symbol: str, n: int) -> list[pb.Bar]:
    """A deterministic random walk per symbol (valid bars, one minute apart)."""
    return series(n, seed=zlib.crc32(symbol.encode()))


@dataclass
class Bot:
    """One bot's run: its bars, the (seq, engine, epoch) of every acknowledgement it kept,
    its errors, reconnects and acknowledgement latencies (seconds)."""

    symbol: str
    bars: list[pb.Bar]
    acks: list[tuple[int, str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0
    latencies: list[float] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    """When each acknowledgement arrived (``time.perf_counter``)."""


async def _open(stub: Trading, symbol: str, resume: bool) -> tuple[StreamCall, int]:
    call = stub.Stream()
    request = pb.StreamRequest(
        open=pb.OpenSession(symbol=symbol, timeframe=TIMEFRAME, resume=resume)
    )
    try:
        await call.write(request)
    except grpc.aio.AioRpcError:
        # The server ended the call first: its own status, not grpcio's write failure.
        pass
    answer = await read(call)
    if answer is None:
        raise grpc.aio.AioRpcError(
            await call.code(), grpc.aio.Metadata(), grpc.aio.Metadata(), await call.details()
        )
    if answer.WhichOneof("kind") != "opened":
        raise AssertionError(f"open answered {answer}")
    return call, answer.opened.last_seq


async def run_bot(
    address: str,
    bot: Bot,
    pace: float = 0.0,
    resume: bool = False,
    budget: float = 30.0,
    started: asyncio.Event | None = None,
    opened: list[int] | None = None,
) -> Bot:
    """Streams the bot's bars through ``address``; ``pace``: seconds between bars (0: as fast
    as acknowledgements come)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = Trading(channel)
        try:
            call, _ = await _open(stub, bot.symbol, False)
        except (grpc.aio.AioRpcError, AssertionError) as e:
            bot.errors.append(f"open: {e}")
            return bot
        if opened is not None:
            opened.append(1)
        if started is not None:
            await started.wait()
        seq = 1
        broken_since: float | None = None
        last_refusal = ""
        while seq <= len(bot.bars):
            t0 = time.perf_counter()
            try:
                await call.write(
                    pb.StreamRequest(
                        bar=pb.BarMessage(seq=seq, op=pb.APPEND, bar=bot.bars[seq - 1])
                    )
                )
                answer = await read(call)
                if answer is None:
                    raise grpc.aio.AioRpcError(
                        await call.code(),
                        grpc.aio.Metadata(),
                        grpc.aio.Metadata(),
                        await call.details(),
                    )
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as e:
                code = e.code() if isinstance(e, grpc.aio.AioRpcError) else None
                # As the client library: UNAVAILABLE, or INTERNAL (grpcio's code for a write
                # on a connection that broke) reconnect and resume.
                if not resume or code not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.INTERNAL,
                    None,
                ):
                    bot.errors.append(f"seq {seq}: {e}")
                    return bot
                broken_since = broken_since or time.monotonic()
                if time.monotonic() - broken_since > budget:
                    why = f"{e}; last resume: {last_refusal}"
                    bot.errors.append(f"seq {seq}: gave up after {budget:.0f} s: {why}")
                    return bot
                await asyncio.sleep(0.05 + random.random() * 0.2)
                try:
                    call, last = await _open(stub, bot.symbol, True)
                except (grpc.aio.AioRpcError, AssertionError) as refused:
                    last_refusal = str(refused)
                    continue
                bot.reconnects += 1
                broken_since = None
                seq = last + 1
                continue
            now = time.perf_counter()
            bot.latencies.append(now - t0)
            bot.received.append(now)
            if answer.WhichOneof("kind") != "update" or answer.seq != seq:
                bot.errors.append(f"seq {seq}: answered {answer}")
                return bot
            bot.acks.append((seq, answer.engine, answer.epoch))
            seq += 1
            if pace:
                await asyncio.sleep(pace)
        call.cancel()
    return bot


class Bots(threading.Thread):
    """``count`` bots of ``n`` bars each, run on an event loop in this thread."""

    def __init__(
        self,
        address: str,
        count: int,
        n: int,
        prefix: str = "BOT",
        pace: float = 0.0,
        resume: bool = False,
    ) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.bots = [Bot(f"{prefix}{i}", bars_for(f"{prefix}{i}", n)) for i in range(count)]
        self.pace = pace
        self.resume = resume
        self.elapsed = 0.0
        self.error: BaseException | None = None

    @property
    def acked(self) -> int:
        return sum(len(b.acks) for b in self.bots)

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported by finish()
            self.error = e

    async def _main(self) -> None:
        go = asyncio.Event()
        opened: list[int] = []
        tasks = [
            asyncio.ensure_future(
                run_bot(self.address, b, self.pace, self.resume, started=go, opened=opened)
            )
            for b in self.bots
        ]
        # Every bot opens first, then they all stream: acks/s measures the bars, not the opens.
        while len(opened) < len(self.bots) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.02)
        started = time.perf_counter()
        go.set()
        await asyncio.gather(*tasks)
        self.elapsed = time.perf_counter() - started

    def reach(self, acked: int, deadline: float = 120.0) -> None:
        end = time.monotonic() + deadline
        while self.acked < acked:
            if self.error is not None or not self.is_alive() or time.monotonic() > end:
                break
            time.sleep(0.01)

    def finish(self, deadline: float = 600.0) -> list[Bot]:
        self.join(deadline)
        assert not self.is_alive(), "the bots did not finish"
        if self.error is not None:
            raise self.error
        return self.bots
