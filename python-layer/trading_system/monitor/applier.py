"""Clients' bars to an engine over one stream (``Replica.Apply``, docs/MONITOR.md).

Every client stream's bar goes to the active engine. A stream per client session cost the
monitor two gRPC operations per bar on the engine side on top of the client's two, and the
monitor's event loop was the bottleneck with many bots. The ``Applier`` of an engine keeps one
``Apply`` stream: the bars that arrive while a request is being written go out together in the
next one, so under load one exchange carries the bars of many clients.

Answers come back in request order; each submitted bar gets its own future. When the engine
fails (the stream breaks, or a client's deadline finds it hung) every bar waiting on it fails
with ``LegFailed`` and its client stream fails over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import grpc

from trading_system.monitor.relay import LegFailed, engine_failed
from trading_system.monitor.wire import session_message
from trading_system.proto import trading_pb2 as pb
from trading_system.stubs import read

if TYPE_CHECKING:
    from trading_system.monitor.service import Monitor


MAX_BATCH = 128
"""Bars per ``Apply`` request at most. A hang is told from a busy engine by its answers (an
engine that answered within the deadline is busy, see ``Relay._patient``): bounded requests
keep the answers coming under a burst, where one request of thousands of bars would keep the
engine silent for longer than a deadline."""


class Batch:
    """Bars that go to the engine in one ``Apply`` request: their messages, their answers'
    futures, and when the request's write completed (the loop's clock). Until then a bar is
    the monitor's to send, not the engine's to answer: an engine is judged hung only on what
    it was given."""

    __slots__ = ("futures", "messages", "written_at")

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.futures: list[asyncio.Future[pb.StreamResponse]] = []
        self.written_at: float | None = None


class _Exchange:
    """One ``Apply`` call: its stream, the requests written on it that wait for their answers
    (send time and one future per bar), and the task reading the answers."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.inflight: deque[tuple[float, list[asyncio.Future[pb.StreamResponse]]]] = deque()
        self.reader: asyncio.Task[None] | None = None


class Applier:
    """One engine's ``Apply`` stream, shared by every client stream."""

    def __init__(self, monitor: Monitor, engine: str) -> None:
        self.m = monitor
        self.engine = engine
        self.current: _Exchange | None = None
        self.queue: deque[Batch] = deque()
        self.writing = False
        self.requests = 0
        self.messages = 0
        self._open = monitor.channels[engine].stream_stream(
            "/trading.v1.Replica/Apply",
            request_serializer=None,
            response_deserializer=pb.ApplyResponse.FromString,
        )

    def submit(
        self, session: bytes, message: bytes
    ) -> tuple[asyncio.Future[pb.StreamResponse], Batch]:
        """Queues one bar message (``session``: :func:`.wire.session_field`, ``message``: the
        serialized BarMessage): its answer's future and the batch it goes out in. Whoever finds
        no write under way writes (:meth:`flush`): one bot's bar goes out at once, without a
        hop through another task; under load the bars that arrive meanwhile go out together in
        the next writes."""
        future: asyncio.Future[pb.StreamResponse] = asyncio.get_running_loop().create_future()
        if not self.queue or len(self.queue[-1].futures) >= MAX_BATCH:
            self.queue.append(Batch())
        batch = self.queue[-1]
        batch.messages.append(session_message(session, message))
        batch.futures.append(future)
        return future, batch

    async def flush(self) -> None:
        """Writes what is queued, unless a write is under way (that writer sends it next). A
        write that does not complete within the call deadline (the engine stopped reading)
        fails the exchange like a broken stream."""
        if self.writing:
            return
        self.writing = True
        try:
            while self.queue:
                x = self.current or self._start()
                batch = self.queue.popleft()
                x.inflight.append((time.perf_counter(), batch.futures))
                self.requests += 1
                self.messages += len(batch.futures)
                # Shielded: a writer whose client went away mid-write must not leave a request
                # half sent (the others' bars are in it).
                write = asyncio.ensure_future(x.call.write(b"".join(batch.messages)))
                try:
                    async with asyncio.timeout(self.m.timeout):
                        await asyncio.shield(write)
                    batch.written_at = asyncio.get_running_loop().time()
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError) as e:
                    self._fail(x, f"Apply stream: {type(e).__name__}: {e}")
        finally:
            self.writing = False
            if self.queue:
                # This writer stopped early (its client went away): the bars queued meanwhile
                # still go out.
                asyncio.get_running_loop().create_task(self.flush())

    def _start(self) -> _Exchange:
        x = _Exchange(self._open(metadata=self.m.admin_metadata))
        x.reader = asyncio.get_running_loop().create_task(self._read(x))
        self.current = x
        return x

    async def _read(self, x: _Exchange) -> None:
        try:
            while True:
                answer = await read(x.call)
                if answer is None:
                    code = await x.call.code()
                    self._fail(x, f"Apply stream ended ({code.name if code else 'no status'})")
                    return
                if not x.inflight:
                    self._fail(x, "Apply: an answer to no request")
                    return
                sent, futures = x.inflight.popleft()
                self.m.answered_at[self.engine] = asyncio.get_running_loop().time()
                # One latency sample per exchange, from its write to its answer: the engine's
                # time (and the network's), not the bars' wait for their turn in the monitor.
                millis = (time.perf_counter() - sent) * 1000
                self.m.router.ok(self.engine, self.m.net(millis), probe=False)
                for f, a in zip(futures, answer.answers, strict=False):
                    if not f.done():
                        f.set_result(a)
                for f in futures[len(answer.answers) :]:
                    if not f.done():
                        f.set_exception(LegFailed("Apply: an answer was missing"))
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as e:
            why = f"{e.code().name}: {e.details()}"
            if not engine_failed(e.code()):
                why = f"Apply refused: {why}"
            self._fail(x, why)
        except Exception as e:  # never a silent reader: every waiting bar must hear of it
            self._fail(x, f"Apply stream: {type(e).__name__}: {e}")

    def _fail(self, x: _Exchange, why: str) -> None:
        """The exchange is given up: every bar waiting on it fails over; the next bar opens
        a new one."""
        if self.current is x:
            self.current = None
        x.call.cancel()
        if x.reader is not None and x.reader is not asyncio.current_task():
            x.reader.cancel()
        waiting = [f for _, batch in x.inflight for f in batch]
        x.inflight.clear()
        for f in waiting:
            if not f.done():
                f.set_exception(LegFailed(why))

    def fail(self, why: str) -> None:
        """The engine failed: the current exchange and every bar queued for it fail over."""
        if self.current is not None:
            self._fail(self.current, why)
        queued, self.queue = self.queue, deque()
        for batch in queued:
            for f in batch.futures:
                if not f.done():
                    f.set_exception(LegFailed(why))

    async def close(self) -> None:
        x = self.current
        self.fail("monitor stopping")
        if x is not None and x.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await x.reader
