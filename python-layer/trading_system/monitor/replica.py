"""Keeping an engine level with the journals (docs/MONITOR.md, "The standby keeps up").

The active engine applies each bar and answers it; the monitor journals the bar and
acknowledges it. The other engine gets the journaled messages afterwards through
``Replica.CatchUp``: one call carries the pending messages of many sessions, and the engine
applies them at batch speed without building per-bar answers. One ``Feeder`` per engine sends
those calls one at a time, so an engine's position in a session changes in one place only.

The same feeder levels an engine that must answer now (a failover, a snapshot): the caller
marks the session urgent and waits until the engine holds every journaled message, which the
next call (usually already on its way) brings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import grpc

from trading_system.monitor.journal import UNKNOWN, Journal
from trading_system.monitor.wire import length_delimited
from trading_system.proto import trading_pb2 as pb
from trading_system.server import log

if TYPE_CHECKING:
    from trading_system.monitor.service import Monitor

MAX_CALL_BARS = 65_536
"""Bars in one CatchUp call at most, over all its sessions (a few MB)."""
PER_BAR_MS = 0.05
"""Time allowed per bar of a CatchUp on top of the call deadline (the Python engine applies
well over 100 k bars/s in a catch-up; this allows 20 k)."""


def session_catch_up(journal: Journal, fresh: bool, after: int, messages: list[bytes]) -> bytes:
    """A ``SessionCatchUp`` encoded from the journal's stored message bytes (no decoding and
    encoding again of every bar); a fresh one starts from the journal's whole series."""
    assert journal.open is not None
    head = pb.SessionCatchUp(open=journal.open, fresh=fresh, after_seq=after)
    head.open.resume = False
    if fresh and len(journal.series):
        head.base.CopyFrom(journal.series.bars())
    return head.SerializeToString() + b"".join(length_delimited(4, m) for m in messages)


class Feeder:
    """Sends one engine the journaled messages it lacks, one CatchUp call at a time."""

    def __init__(self, monitor: Monitor, engine: str) -> None:
        self.m = monitor
        self.engine = engine
        self.dirty: dict[str, Journal] = {}
        """Sessions this engine lacks messages of (complete journals only)."""
        self.urgent: set[str] = set()
        """Sessions someone waits on (they go first)."""
        self.wake = asyncio.Event()
        self.advanced = asyncio.Event()
        """Set (and replaced) after every call: waiters check their condition again."""
        self.calls = 0
        self.bars = 0
        self.pending = 0
        """Bars this engine lacks in all (see ``behind_total``)."""
        self.busy = False
        self._task: asyncio.Task[None] | None = None
        self.call = monitor.replica_stubs[engine]

    # --- What the others call -------------------------------------------------------------------

    def notify(self, journal: Journal) -> None:
        """``journal`` grew (or this engine lost its place in it)."""
        if journal.complete and journal.behind(self.engine) > 0:
            self.dirty[journal.name] = journal
            self.pending += 1
            self.wake.set()

    def forget(self, name: str) -> None:
        self.dirty.pop(name, None)
        self.urgent.discard(name)

    def behind_total(self) -> int:
        """Bars this engine lacks in all: counted exactly after each call, estimated (one per
        message journaled) in between — this is asked on every message."""
        return self.pending

    def _count(self) -> None:
        self.pending = sum(j.behind(self.engine) for j in self.dirty.values())

    def lag_ms(self, now: float) -> float:
        return max((j.lag_ms(self.engine, now) for j in self.dirty.values()), default=0.0)

    async def level(self, journal: Journal, timeout: float) -> bool:
        """Waits until this engine holds every message of ``journal`` (False: it failed, or
        not within ``timeout`` seconds)."""
        if not journal.complete:
            return journal.behind(self.engine) == 0
        deadline = time.monotonic() + timeout
        while journal.behind(self.engine) > 0:
            if not self._can_feed():
                return False
            self.urgent.add(journal.name)
            self.notify(journal)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            advanced = self.advanced
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(advanced.wait(), left)
        return True

    async def wait_progress(self, timeout: float) -> None:
        """Waits for the next call to end (back-pressure), at most ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.advanced.wait(), timeout)

    # --- The loop -------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _can_feed(self) -> bool:
        return self.m.router.engines[self.engine].up

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.dirty and self._can_feed():
                if not self.urgent:
                    # Bars gather for a moment: a call carries more bars per session (the
                    # engine's cost is mostly per session entry), far inside the lag bound.
                    await asyncio.sleep(self.m.catch_up_interval)
                try:
                    await self._round()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a bug must not stop replication for good
                    log.logger().error("catch-up round failed", engine=self.engine, error=str(e))
                    await asyncio.sleep(0.05)
            self._signal()

    def _signal(self) -> None:
        self._count()
        advanced, self.advanced = self.advanced, asyncio.Event()
        advanced.set()

    def _batch(self) -> tuple[list[Journal], list[bytes], int]:
        """The sessions of the next call (urgent ones first), their encoded entries, bars."""
        limit = self.m.catch_up_batch
        order = [self.dirty[n] for n in self.urgent if n in self.dirty]
        order += [j for n, j in self.dirty.items() if n not in self.urgent]
        journals: list[Journal] = []
        entries: list[bytes] = []
        total = 0
        for j in order:
            if total >= MAX_CALL_BARS:
                break
            fresh, after, messages = j.pending(self.engine, limit)
            journals.append(j)
            entries.append(session_catch_up(j, fresh, after, messages))
            total += len(messages) + (len(j.series) if fresh else 0)
            if fresh:
                j.pin(self.engine, after)  # the messages after it are sent next
        return journals, entries, total

    async def _round(self) -> None:
        journals, entries, total = self._batch()
        if not journals:
            self.dirty.clear()
            return
        sent = {j.name: j.pending(self.engine, self.m.catch_up_batch)[:2] for j in journals}
        request = b"".join(length_delimited(1, e) for e in entries)
        timeout = self.m.timeout + total * PER_BAR_MS / 1000
        started = time.perf_counter()
        self.busy = True
        try:
            answer: pb.CatchUpResponse = await self.call(
                request, timeout=timeout, metadata=self.m.admin_metadata
            )
        except grpc.aio.AioRpcError as e:
            self.m.router.failed(self.engine, f"CatchUp: {e.code().name}: {e.details()}")
            return
        finally:
            self.busy = False
            for j in journals:
                j.unpin(self.engine)
        self.calls += 1
        self.bars += total
        for j, result in zip(journals, answer.sessions, strict=False):
            self._settle(j, result, sent[j.name])
        self._signal()
        log.logger().debug(
            "caught up",
            engine=self.engine,
            sessions=len(journals),
            bars=total,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    def _settle(self, j: Journal, result: pb.SessionCaughtUp, sent: tuple[bool, int]) -> None:
        if self.m.journals.get(j.name) is not j:
            self.forget(j.name)  # replaced or evicted meanwhile
            if j.name not in self.m.journals and not result.HasField("error"):
                # Evicted while this call was under way: its close may have reached the engine
                # before the call made the session there. Closed again, after it.
                self.m.close_on(self.engine, [j.name])
            return
        fresh, after = sent
        if result.HasField("error"):
            # Not where the monitor thought (restarted, or it applied a message that was never
            # acknowledged), or refused: rebuilt afresh. A fresh rebuild refused means the
            # engines disagree on the rules: reported, not retried for ever.
            code = result.error.code
            if fresh and code == grpc.StatusCode.INVALID_ARGUMENT.value[0]:
                log.logger().error(
                    "rebuild refused",
                    engine=self.engine,
                    session=j.name,
                    error=result.error.message,
                )
                self.forget(j.name)
                j.broken.add(self.engine)
                return
            log.logger().warning(
                "catch-up refused: rebuilt afresh",
                engine=self.engine,
                session=j.name,
                fresh=fresh,
                after_seq=after,
                code=code,
                error=result.error.message,
            )
            j.set_applied(self.engine, UNKNOWN)
        else:
            j.set_applied(self.engine, result.last_seq)
        if j.behind(self.engine) <= 0:
            self.dirty.pop(j.name, None)
            self.urgent.discard(j.name)
