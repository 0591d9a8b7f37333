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

if TYPE_CHECKING:
    from trading_system.monitor.service import Monitor


class Applier:
    """One engine's ``Apply`` stream, shared by every client stream."""

    def __init__(self, monitor: Monitor, engine: str) -> None:
        self.m = monitor
        self.engine = engine
        self.call: Any = None
        self.queue: list[tuple[bytes, asyncio.Future[pb.StreamResponse]]] = []
        self.inflight: deque[tuple[float, list[asyncio.Future[pb.StreamResponse]]]] = deque()
        self.writing = False
        self.tasks: list[asyncio.Task[None]] = []
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
        if self.call is None:
            self._start()
        return future

    async def flush(self) -> None:
        """Writes what is queued, unless a write is under way (that writer sends it next)."""
        if self.writing:
            return
        self.writing = True
        call = self.call
        try:
            while self.queue and self.call is call and call is not None:
                batch, self.queue = self.queue, []
                self.inflight.append((time.perf_counter(), [f for _, f in batch]))
                self.requests += 1
                self.messages += len(batch)
                await call.write(b"".join(m for m, _ in batch))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as e:
            self.fail(f"Apply stream: {e}", call)
        finally:
            self.writing = False

    def _start(self) -> None:
        self.call = self._open(metadata=self.m.admin_metadata)
        self.tasks = [asyncio.get_running_loop().create_task(self._read(self.call))]

    async def _read(self, call: Any) -> None:
        try:
            while self.call is call:
                answer = await call.read()
                if answer is grpc.aio.EOF:
                    code = await call.code()
                    self.fail(f"Apply stream ended ({code.name if code else 'no status'})", call)
                    return
                sent, futures = self.inflight.popleft()
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
        except grpc.aio.AioRpcError as e:
            why = f"{e.code().name}: {e.details()}"
            if not engine_failed(e.code()):
                why = f"Apply refused: {why}"
            self.fail(why, call)
        except asyncio.InvalidStateError as e:
            self.fail(f"Apply stream: {e}", call)

    def fail(self, why: str, call: Any = None) -> None:
        """The stream is given up (the engine failed): every bar waiting on it fails over; the
        next bar opens a new stream."""
        if call is not None and call is not self.call:
            return
        if self.call is not None:
            self.call.cancel()
        self.call = None
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        self.tasks = []
        waiting = [f for _, batch in self.inflight for f in batch] + [f for _, f in self.queue]
        self.inflight.clear()
        self.queue = []
        for f in waiting:
            if not f.done():
                f.set_exception(LegFailed(why))

    async def close(self) -> None:
        self.fail("monitor stopping")
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
