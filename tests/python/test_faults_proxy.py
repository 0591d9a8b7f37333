"""The fault proxy (``faults.FaultProxy``) against a real Python engine server: it forwards, its
delay slows answers down (a lower bound the fault causes, not a speed target), a blackhole makes
calls end by their deadline and delivers what it held when lifted, a flapping delay flaps, and a
cut ends an open stream."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from faults import FaultProxy
from servers import Server, start

from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = start("python")
    try:
        yield s
    finally:
        assert s.stop() == 0


@pytest.fixture
def proxy(server: Server) -> Iterator[FaultProxy]:
    with FaultProxy(server.address) as p:
        yield p


@pytest.fixture
def stub(proxy: FaultProxy) -> Iterator[rpc.TradingStub]:
    with grpc.insecure_channel(proxy.address) as ch:
        yield rpc.TradingStub(ch)


def info(stub: rpc.TradingStub, timeout: float = 10.0) -> float:
    """One GetInfo through the proxy; its round trip in seconds."""
    t0 = time.perf_counter()
    answer = stub.GetInfo(pb.InfoRequest(), timeout=timeout)
    assert answer.engine == "python" and answer.protocol == "trading.v1"
    return time.perf_counter() - t0


def bar(seq: int) -> pb.StreamRequest:
    b = pb.Bar(time=seq * 60_000, open=10.0, high=11.0, low=9.0, close=10.5, volume=1.0)
    return pb.StreamRequest(bar=pb.BarMessage(seq=seq, op=pb.APPEND, bar=b))


class Stream:
    """A lockstep stream whose answers are read by a thread, so a test can see that none came."""

    def __init__(self, stub: rpc.TradingStub, symbol: str) -> None:
        self.requests: queue.Queue[pb.StreamRequest | None] = queue.Queue()
        self.answers: queue.Queue[pb.StreamResponse | grpc.RpcError] = queue.Queue()
        self.call = stub.Stream(iter(self.requests.get, None))
        threading.Thread(target=self._read, daemon=True).start()
        self.requests.put(pb.StreamRequest(open=pb.OpenSession(symbol=symbol, timeframe="1m")))
        assert self.next().WhichOneof("kind") == "opened"

    def _read(self) -> None:
        try:
            for a in self.call:
                self.answers.put(a)
        except grpc.RpcError as e:
            self.answers.put(e)

    def send(self, request: pb.StreamRequest) -> None:
        self.requests.put(request)

    def next(self, timeout: float = 10.0) -> pb.StreamResponse:
        a = self.answers.get(timeout=timeout)
        if isinstance(a, grpc.RpcError):
            raise a
        return a

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()


def test_forwards(stub: rpc.TradingStub) -> None:
    info(stub)


def test_delay_slows_answers_on_an_open_connection(
    stub: rpc.TradingStub, proxy: FaultProxy
) -> None:
    info(stub)  # connected before the delay: it applies to existing connections
    proxy.set_delay(300)
    assert info(stub) >= 0.3
    proxy.set_delay(0)
    info(stub)


def test_delay_keeps_a_stream_in_order(stub: rpc.TradingStub, proxy: FaultProxy) -> None:
    s = Stream(stub, "DELAYED")
    proxy.set_delay(30)
    try:
        for seq in range(1, 11):
            s.send(bar(seq))
            a = s.next()
            assert a.WhichOneof("kind") == "update" and a.seq == seq
    finally:
        s.close()


def test_blackhole_ends_calls_by_deadline_then_delivers(
    stub: rpc.TradingStub, proxy: FaultProxy
) -> None:
    info(stub)
    proxy.blackhole(True)
    with pytest.raises(grpc.RpcError) as e:
        info(stub, timeout=0.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    proxy.blackhole(False)
    info(stub)


def test_blackhole_holds_a_stream_answer_until_lifted(
    stub: rpc.TradingStub, proxy: FaultProxy
) -> None:
    s = Stream(stub, "HELD")
    try:
        proxy.blackhole(True)
        s.send(bar(1))
        with pytest.raises(queue.Empty):
            s.next(timeout=0.5)  # neither answered nor closed: a hang
        proxy.blackhole(False)
        a = s.next()
        assert a.WhichOneof("kind") == "update" and a.seq == 1
    finally:
        s.close()


def eventually(condition: Callable[[], bool], deadline: float = 10.0) -> bool:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_toggle_delay_flaps_until_stopped(stub: rpc.TradingStub, proxy: FaultProxy) -> None:
    proxy.toggle_delay(200, 100)
    assert proxy.delay_ms == 200
    assert eventually(lambda: proxy.delay_ms == 0)
    assert eventually(lambda: proxy.delay_ms == 200)
    proxy.stop_toggle()
    assert proxy.delay_ms == 0
    time.sleep(0.25)  # the flapping has really stopped
    assert proxy.delay_ms == 0
    info(stub)


def test_cut_ends_an_open_stream_unavailable(stub: rpc.TradingStub, proxy: FaultProxy) -> None:
    s = Stream(stub, "CUT")
    try:
        s.send(bar(1))
        assert s.next().seq == 1
        proxy.cut()
        with pytest.raises(grpc.RpcError) as e:
            s.next()
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    finally:
        s.close()
    info(stub)  # a new connection through the same proxy works
