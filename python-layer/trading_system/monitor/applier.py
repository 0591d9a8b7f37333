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
        self.queue: list[tuple[bytes, asyncio.Future[pb.StreamResponse]]] = []
        self.writing = False
        self.answered_at = 0.0
        """When the engine last answered an exchange (the event loop's clock)."""
        self.requests = 0
        self.messages = 0
        self._open = monitor.channels[engine].stream_stream(
            "/trading.v1.Replica/Apply",
            request_serializer=None,
            response_deserializer=pb.ApplyResponse.FromString,
        )

    def submit(self, session: bytes, message: bytes) -> asyncio.Future[pb.StreamResponse]:
        """Queues one bar message (``session``: :func:`.wire.session_field`, ``message``: the
        serialized BarMessage); the future is its answer. Whoever finds no write under way
        writes (:meth:`flush`): one bot's bar goes out at once, without a hop through another
        task; under load the bars that arrive meanwhile go out together in the next write."""
        future: asyncio.Future[pb.StreamResponse] = asyncio.get_running_loop().create_future()
        self.queue.append((session_message(session, message), future))
        return future

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
                batch, self.queue = self.queue, []
                x.inflight.append((time.perf_counter(), [f for _, f in batch]))
                self.requests += 1
                self.messages += len(batch)
                # Shielded: a writer whose client went away mid-write must not leave a request
                # half sent (the others' bars are in it).
                write = asyncio.ensure_future(x.call.write(b"".join(m for m, _ in batch)))
                try:
                    async with asyncio.timeout(self.m.timeout):
                        await asyncio.shield(write)
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
                self.answered_at = asyncio.get_running_loop().time()
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
        queued, self.queue = self.queue, []
        for _, f in queued:
            if not f.done():
                f.set_exception(LegFailed(why))

    async def close(self) -> None:
        x = self.current
        self.fail("monitor stopping")
        if x is not None and x.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await x.reader
