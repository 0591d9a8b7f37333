"""Network faults between a gRPC client and a server, for the failover tests and benchmarks: a
TCP forwarder (``FaultProxy``) whose connections can be cut, slowed down, made to flap or made to
hang.

Why each fault exists:

- ``cut()`` / ``cut_after_next_request()``: a broken connection, seen at once by both peers
  (a reset, a crashed host); with the second, a message that was applied but whose answer is
  lost, which resuming by sequence number must handle exactly once.
- ``set_delay(ms)``: a slow engine that still answers correctly, so latency-based failover can
  be tested without killing anything.
- ``toggle_delay(ms, period_ms)``: a flapping engine, slow and fast in turns, to check that
  failover on latency has a hold-down and does not ping-pong.
- ``blackhole(True)``: a hang (a partition, a stopped process): nothing arrives, nothing is
  closed, so the peer finds out by its deadlines only. ``blackhole(False)`` delivers what was
  held, like SIGCONT: late answers a fenced client must ignore.

Every switch applies to new and existing connections and returns once the proxy's event loop
has applied it, so the caller's next message sees it. Data is delayed or held, never reordered:
each direction of a connection has a FIFO queue drained by its own forwarding task.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
CHUNK = 65536
CUT_AFTER_S = 0.5
"""How long ``cut_after_next_request`` lets the server work on the message (its answer is
swallowed) before the connections are closed."""


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Connection:
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """A TCP forwarder from ``address`` (127.0.0.1, a free port) to ``target``, running in its
    own thread and event loop. The fault switches can be called from any thread."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._connections: set[_Connection] = set()
        self._delay = 0.0  # seconds added to every chunk from the server to the client
        self._holding = False  # blackholed
        self._armed = False
        self._swallowing = False
        self._toggler: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None
        self._server = self._call(self._start)
        self._address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    @property
    def address(self) -> str:
        return self._address

    @property
    def delay_ms(self) -> float:
        """The delay in force now (it changes by itself under ``toggle_delay``)."""
        return self._delay * 1000

    # ---- Switches (any thread; each returns once applied) -------------------------------------

    def cut(self) -> None:
        """Closes every connection now; new ones are accepted as before."""
        self._apply(self._cut)

    def cut_after_next_request(self) -> None:
        """Lets the client's next bytes reach the server, swallows what the server answers and
        closes every connection ``CUT_AFTER_S`` later: the message is applied, its answer lost."""

        def arm() -> None:
            self._armed = True

        self._apply(arm)

    def set_delay(self, ms: float) -> None:
        """Delays every chunk from the server to the client by ``ms`` (0: none). Ends a
        ``toggle_delay``."""

        def apply() -> None:
            self._stop_toggler()
            self._set_delay(ms / 1000)

        self._apply(apply)

    def toggle_delay(self, ms: float, period_ms: float) -> None:
        """Switches a delay of ``ms`` on and off every ``period_ms``, starting on."""

        async def flap() -> None:
            while True:
                self._set_delay(ms / 1000)
                await asyncio.sleep(period_ms / 1000)
                self._set_delay(0.0)
                await asyncio.sleep(period_ms / 1000)

        def apply() -> None:
            self._stop_toggler()
            self._set_delay(ms / 1000)  # on before this returns, not at the task's first step
            self._toggler = self._loop.create_task(flap())

        self._apply(apply)

    def stop_toggle(self) -> None:
        """Ends ``toggle_delay``; no delay afterwards."""
        self.set_delay(0)

    def blackhole(self, on: bool) -> None:
        """While on, nothing is forwarded and nothing closed, in either direction; turned off,
        what was held is delivered in order."""

        def apply() -> None:
            self._holding = on
            self._wake()

        self._apply(apply)

    def close(self) -> None:
        """Stops listening, closes every connection and ends the proxy's thread."""

        async def shut() -> None:
            self._stop_toggler()
            self._server.close()
            self._cut()

        if not self._loop.is_closed() and self._thread.is_alive():
            self._call(shut)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- The loop's side ----------------------------------------------------------------------

    def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def _apply(self, change: Callable[[], None]) -> None:
        async def run() -> None:
            change()

        self._call(run)

    async def _start(self) -> asyncio.Server:
        self._changed = asyncio.Event()
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    def _wake(self) -> None:
        """Wakes every forwarding task waiting on the current delay or blackhole."""
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    def _set_delay(self, seconds: float) -> None:
        self._delay = seconds
        self._wake()

    def _stop_toggler(self) -> None:
        if self._toggler is not None:
            self._toggler.cancel()
            self._toggler = None

    def _cut(self) -> None:
        for conn in self._connections:
            for t in conn.tasks:
                t.cancel()
            for w in conn.writers:
                w.close()
        self._connections.clear()
        self._swallowing = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()  # the server is gone: the client sees its connection refused, closed
            return
        conn = _Connection(writers=[writer, up_writer])
        self._connections.add(conn)
        for r, w, to_server in ((reader, up_writer, True), (up_reader, writer, False)):
            queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
            conn.tasks += [
                asyncio.create_task(self._read(r, queue)),
                asyncio.create_task(self._forward(queue, w, to_server)),
            ]
        # Cancelled tasks (a cut) come back as results here, not as this task's cancellation.
        await asyncio.gather(*conn.tasks, return_exceptions=True)
        self._connections.discard(conn)

    @staticmethod
    async def _read(
        r: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes | None]]
    ) -> None:
        """Queues what arrives with its arrival time; None for the end of the connection."""
        try:
            while data := await r.read(CHUNK):
                queue.put_nowait((time.monotonic(), data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((time.monotonic(), None))

    async def _forward(
        self,
        queue: asyncio.Queue[tuple[float, bytes | None]],
        w: asyncio.StreamWriter,
        to_server: bool,
    ) -> None:
        try:
            while True:
                arrived, data = await queue.get()
                await self._hold(arrived, to_server)
                if data is None:
                    break
                if to_server and self._armed:
                    self._armed, self._swallowing = False, True
                    self._loop.call_later(CUT_AFTER_S, self._cut)
                if not to_server and self._swallowing:
                    continue
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def _hold(self, arrived: float, to_server: bool) -> None:
        """Waits until a chunk may go: its delay (server to client) is over and no blackhole is
        on. Re-evaluated at every switch, so a change applies to what is already queued."""
        while True:
            assert self._changed is not None
            changed = self._changed
            wait = 0.0 if to_server else arrived + self._delay - time.monotonic()
            if not self._holding and wait <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), None if self._holding else wait)
