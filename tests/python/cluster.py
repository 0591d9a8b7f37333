"""A cluster of real processes on loopback for the monitor tests and the fault-injection
suite: both engine servers (optionally each behind a FaultProxy), the monitor in front, and the
clients' side (a lockstep stream, a recorder of acknowledgements) with the checker every fault
scenario ends with (docs/MONITOR.md, "Fault injection")."""

from __future__ import annotations

import queue
import random
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from faults import FaultProxy
from grpc_health.v1 import health_pb2
from servers import ROOT, Server, command, monitor_command, spawn, start
from typed import Health

from trading_system import convert
from trading_system.engine.document import UpdateDoc
from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc

WAIT = 60.0
"""The generous deadline conditions are awaited with (never asserted on)."""
ENGINES = ("rust", "python")


def wait_for(
    condition: Callable[[], bool], what: str | Callable[[], str], deadline: float = WAIT
) -> None:
    """Polls ``condition`` until it holds; ``what`` (or its result, for a message that shows
    the last state seen) names it when it does not within ``deadline``."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.05)


def series(n: int, seed: int = 5) -> list[pb.Bar]:
    """A deterministic random walk of valid bars, one minute apart."""
    rng = random.Random(seed)
    price = 100.0
    out = []
    for i in range(n):
        o = price
        c = max(1.0, o + rng.gauss(0, 1.5))
        hi = max(o, c) + abs(rng.gauss(0, 0.8))
        lo = max(0.5, min(o, c) - abs(rng.gauss(0, 0.8)))
        out.append(pb.Bar(time=(i + 1) * 60_000, open=o, high=hi, low=lo, close=c, volume=1.0))
        price = c
    return out


def columns(bars: list[pb.Bar]) -> pb.Bars:
    return pb.Bars(
        time=[b.time for b in bars],
        open=[b.open for b in bars],
        high=[b.high for b in bars],
        low=[b.low for b in bars],
        close=[b.close for b in bars],
        volume=[b.volume for b in bars],
    )


@dataclass
class Cluster:
    """Both engines and the monitor. With ``proxies`` the monitor reaches each engine through a
    FaultProxy (latency, hangs); engines restart on their port, the monitor on its own."""

    engines: dict[str, Server]
    monitor: Server
    monitor_argv: list[str]
    proxies: dict[str, FaultProxy] = field(default_factory=dict)
    channels: list[grpc.Channel] = field(default_factory=list)
    engine_sets: list[str] = field(default_factory=list)

    def stub(self, server: Server | None = None) -> rpc.TradingStub:
        ch = (server or self.monitor).channel()
        self.channels.append(ch)
        return rpc.TradingStub(ch)

    def admin(self) -> rpc.AdminStub:
        ch = self.monitor.channel()
        self.channels.append(ch)
        return rpc.AdminStub(ch)

    def status(self) -> pb.StatusResponse:
        return self.admin().Status(pb.StatusRequest(), timeout=10)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trading_system", *args, "--address", self.monitor.address],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=WAIT,
        )

    def engine_status(self, engine: str) -> pb.EngineStatus:
        return next(e for e in self.status().engines if e.engine == engine)

    def kill(self, engine: str) -> None:
        """kill -9, and waits until the process is gone."""
        proc = self.engines[engine].proc
        proc.kill()
        proc.wait()

    def pause(self, engine: str, paused: bool) -> None:
        """SIGSTOP / SIGCONT: a hang the monitor can only see through deadlines."""
        self.engines[engine].proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def restart(self, engine: str) -> None:
        """Starts ``engine`` again on the port it had (the monitor knows it by its address)."""
        old = self.engines[engine]
        old.proc.wait()
        argv = command(engine, self.engine_sets)
        argv[argv.index("--port") + 1] = old.address.rsplit(":", 1)[1]
        self.engines[engine] = spawn(engine, argv, True)

    def restart_monitor(self) -> None:
        """kill -9 of the monitor, then a new one on the same port with the same arguments."""
        self.monitor.proc.kill()
        self.monitor.proc.wait()
        argv = list(self.monitor_argv)
        argv[argv.index("--port") + 1] = self.monitor.address.rsplit(":", 1)[1]
        self.monitor = spawn("monitor", argv, True)

    def close(self) -> int:
        for ch in self.channels:
            ch.close()
        for e in ENGINES:
            if self.engines[e].proc.poll() is None:
                self.pause(e, False)
        code = self.monitor.stop()
        for s in self.engines.values():
            s.stop()
        for p in self.proxies.values():
            p.close()
        return code


def serving(server: Server) -> bool:
    with server.channel() as ch:
        try:
            answer = Health(ch).Check(
                health_pb2.HealthCheckRequest(service="trading.v1.Trading"), timeout=5
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@contextmanager
def cluster(
    sets: list[str], proxies: bool = False, engine_sets: list[str] | None = None
) -> Iterator[Cluster]:
    """Starts the engines and the monitor (with ``sets``), waits until both engines are
    eligible and checks the starting point: rust active, epoch 1 (or later with a state file
    that already had one). The monitor must stop cleanly at the end."""
    engines = {e: start(e, engine_sets) for e in ENGINES}
    fronts: dict[str, FaultProxy] = {}
    try:
        for e in engines.values():
            wait_for(lambda e=e: serving(e), f"{e.engine} serving")  # type: ignore[misc]
        if proxies:
            fronts = {e: FaultProxy(engines[e].address) for e in ENGINES}
        addresses = {e: fronts[e].address if proxies else engines[e].address for e in ENGINES}
        argv = monitor_command(addresses["rust"], addresses["python"], sets)
        monitor = spawn("monitor", argv, True)
    except BaseException:
        for s in engines.values():
            s.stop()
        for p in fronts.values():
            p.close()
        raise
    c = Cluster(engines, monitor, argv, fronts, engine_sets=list(engine_sets or []))
    try:
        wait_for(lambda: all(e.eligible for e in c.status().engines), "both engines eligible")
        assert c.status().active == "rust", c.status()
        yield c
    finally:
        assert c.close() == 0, "the monitor did not stop cleanly"


class Stream:
    """A client's single stream through the monitor, in lockstep (one message, one answer)."""

    def __init__(self, stub: rpc.TradingStub) -> None:
        self.requests: queue.Queue[pb.StreamRequest | None] = queue.Queue()
        self.call = stub.Stream(iter(self.requests.get, None))
        self.answers: list[pb.StreamResponse] = []

    def send(self, request: pb.StreamRequest) -> None:
        self.requests.put(request)

    def receive(self) -> pb.StreamResponse:
        answer = next(self.call)
        self.answers.append(answer)
        return answer

    def open(self, symbol: str, timeframe: str) -> pb.StreamResponse:
        self.send(pb.StreamRequest(open=pb.OpenSession(symbol=symbol, timeframe=timeframe)))
        return self.receive()

    def bar(self, seq: int, bar: pb.Bar) -> None:
        self.send(pb.StreamRequest(bar=pb.BarMessage(seq=seq, op=pb.APPEND, bar=bar)))

    def close(self) -> None:
        self.requests.put(None)

    def acks(self) -> list[Ack]:
        return [
            Ack(a.seq, a.engine, a.epoch, convert.update_document(a.update))
            for a in self.answers
            if a.WhichOneof("kind") == "update"
        ]


def without_epoch(m: pb.StreamResponse) -> pb.StreamResponse:
    m = type(m).FromString(m.SerializeToString())
    m.ClearField("epoch")
    return m


@dataclass
class Ack:
    """One acknowledgement as the client got it: its update document (§12.7) too."""

    seq: int
    engine: str
    epoch: int
    # As read off the wire (trading_system.convert), or as the client library gave it.
    doc: UpdateDoc | dict[str, Any] = field(default_factory=dict, repr=False)


def check(c: Cluster, symbol: str, bars: list[pb.Bar], acks: list[Ack]) -> None:
    """The checker every fault scenario ends with:

    - every sequence number acknowledged exactly once, in order;
    - no answer from an old epoch: epochs never go back, and each answer came from the engine
      the monitor made active in that epoch (its switch history);
    - every answer identical to the answer of a run without faults (the same bars streamed
      straight to an engine that serves, as a session of its own);
    - the session's final state (a snapshot through the monitor) equal to a batch analysis of
      the recorded input.
    """
    assert [a.seq for a in acks] == list(range(1, len(bars) + 1)), "acks not exactly once"
    epochs = [a.epoch for a in acks]
    assert epochs == sorted(epochs), "an answer from an older epoch after a newer one"
    history = {s.epoch: s.engine for s in c.status().switches}
    wrong = [a for a in acks if history.get(a.epoch) != a.engine]
    assert not wrong, f"answers not from their epoch's engine: {wrong[:3]} (history {history})"
    reference = no_fault_run(c, symbol, bars)
    differ = [a.seq for a, want in zip(acks, reference, strict=True) if a.doc != want]
    assert not differ, f"answers differ from a run without faults at seq {differ[:5]}"
    req = pb.SnapshotRequest(symbol=symbol, timeframe="1m")
    snap = c.stub().GetSnapshot(req, timeout=WAIT)
    assert snap.last_seq == len(bars)
    batch = c.stub().Analyze(pb.AnalyzeRequest(bars=columns(bars)), timeout=WAIT)
    assert snap.analysis.SerializeToString() == batch.analysis.SerializeToString()


def no_fault_run(c: Cluster, symbol: str, bars: list[pb.Bar]) -> list[UpdateDoc | dict[str, Any]]:
    """The update documents of ``bars`` streamed straight to an engine that serves."""
    engine = next(e for e in ENGINES if c.engines[e].proc.poll() is None and serving(c.engines[e]))
    s = Stream(c.stub(c.engines[engine]))
    assert s.open(f"REF-{symbol}", "1m").WhichOneof("kind") == "opened"
    for i, b in enumerate(bars, 1):
        s.bar(i, b)
        assert s.receive().seq == i
    s.close()
    return [a.doc for a in s.acks()]


def check_engines_agree(c: Cluster, symbol: str, bars: list[pb.Bar]) -> None:
    """Both engines hold the session's full state (the standby is in sync)."""
    req = pb.SnapshotRequest(symbol=symbol, timeframe="1m")
    snaps = [c.stub(c.engines[e]).GetSnapshot(req, timeout=WAIT) for e in ENGINES]
    assert snaps[0].last_seq == snaps[1].last_seq == len(bars)
    assert snaps[0].analysis.SerializeToString() == snaps[1].analysis.SerializeToString()


class Feeder(threading.Thread):
    """Streams ``n`` bars through the monitor on ONE lockstep stream (no reconnect: the stream
    must survive the fault), optionally paced to ``rate`` bars/s, recording every answer."""

    def __init__(self, c: Cluster, symbol: str, n: int, rate: float | None = None) -> None:
        super().__init__(daemon=True)
        self.symbol = symbol
        self.bars = series(n, seed=zlib.crc32(symbol.encode()))
        self.stream = Stream(c.stub())
        self.rate = rate
        self.done = 0
        self.error: BaseException | None = None
        self.elapsed = 0.0

    def run(self) -> None:
        started = time.monotonic()
        try:
            opened = self.stream.open(self.symbol, "1m")
            assert opened.WhichOneof("kind") == "opened", opened
            for i, b in enumerate(self.bars, 1):
                if self.rate:
                    time.sleep(max(0.0, started + i / self.rate - time.monotonic()))
                self.stream.bar(i, b)
                answer = self.stream.receive()
                assert answer.WhichOneof("kind") == "update" and answer.seq == i, answer
                self.done = i
        except BaseException as e:  # reported by finish()
            self.error = e
        finally:
            self.elapsed = time.monotonic() - started
            self.stream.close()

    def reach(self, n: int) -> None:
        wait_for(lambda: self.done >= n or self.error is not None or not self.is_alive(), f"{n}")
        if self.error is not None:
            raise self.error

    def finish(self) -> list[Ack]:
        self.join(WAIT * 5)
        assert not self.is_alive(), "the stream did not finish"
        if self.error is not None:
            raise self.error
        return self.stream.acks()
