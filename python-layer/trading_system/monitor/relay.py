"""Client streams through the monitor (docs/MONITOR.md, "Streams").

Each client stream has one leg: a stream to the active engine. A bar message goes to the
active engine only; once it answered with the update, the monitor journals the message and
acknowledges it, and the standby receives it afterwards in a batch (:mod:`.replica`). So a
client never waits for the standby — only when the standby lags past its bound
(``system.max_standby_lag_ms`` / ``max_standby_lag_bars``) do acknowledgements wait for it
(back-pressure), so that a failover always finds a standby a short catch-up away.

When the active engine fails on a message, the router switches; the stream levels the new
active engine with the journal (the catch-up the feeder was sending anyway), resumes the
session on it, and sends it the same message: the client's stream pauses, it does not fail.
No answer is ever given by an engine that lacks an acknowledged bar.

Exactly-once: sequence numbers are the client's. A message already acknowledged is answered by
the monitor from the journal (the same answer, or ABORTED for another payload), whichever
engine applied it; one older than the replay window, a gap or a zero go to the active engine,
which answers them as it always does.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from trading_system.display import show
from trading_system.monitor import ENGINES
from trading_system.monitor.journal import UNKNOWN, Journal, session_name
from trading_system.monitor.router import other
from trading_system.monitor.wire import session_field
from trading_system.proto import trading_pb2 as pb
from trading_system.server import log
from trading_system.stubs import StreamCall, read

if TYPE_CHECKING:
    from trading_system.monitor.applier import Batch
    from trading_system.monitor.service import Monitor

REQUEST_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.CANCELLED,
    }
)
"""Statuses an engine gives about the request itself (passed on to the client, never counted
against the engine). Any other status means the engine failed: not only UNAVAILABLE and
DEADLINE_EXCEEDED, also INTERNAL or UNKNOWN, which grpcio reports for a stream whose server was
killed mid-message (the engines answer an undecodable request with INVALID_ARGUMENT, so a
client cannot produce these on purpose)."""

ATTEMPTS = 3
"""Engines a message is tried on before the stream gives up (a failover, then a failback)."""


def engine_failed(code: grpc.StatusCode | None) -> bool:
    return code not in REQUEST_CODES


class LegFailed(Exception):
    """An engine's side of a stream broke (the engine failed, not the request)."""


class Refused(Exception):
    """The client's stream ends with this status (an engine's own, or UNAVAILABLE)."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: Any = ()) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailers = trailers

    @classmethod
    def of(cls, e: grpc.aio.AioRpcError) -> Refused:
        trailers = tuple((k, v) for k, v in (e.trailing_metadata() or ()))
        return cls(e.code(), e.details() or "", trailers)


class Leg:
    """One engine's stream for a client stream; ``millis``: the last exchange's latency."""

    def __init__(self, engine: str, call: StreamCall) -> None:
        self.engine = engine
        self.call = call
        self.millis = 0.0
        self.written_at: float | None = None
        """When the last request's write completed (the loop's clock): the engine has it."""

    async def _exchange(self, request: pb.StreamRequest) -> pb.StreamResponse:
        try:
            self.written_at = None
            await self.call.write(request)
            self.written_at = asyncio.get_running_loop().time()
            answer = await read(self.call)
        except asyncio.InvalidStateError as e:  # the call already ended
            raise LegFailed(f"stream closed: {e}") from None
        if answer is None:
            code = await self.call.code()
            if engine_failed(code):
                raise LegFailed(f"stream ended ({code.name if code else 'no status'})")
            details = await self.call.details()
            trailers = await self.call.trailing_metadata()
            raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details)
        return answer

    async def exchange(
        self,
        request: pb.StreamRequest,
        timeout: float,
        ceiling: float,
        patient: Callable[[], bool],
    ) -> pb.StreamResponse:
        """Sends one message and reads its answer, judged like a bar (:func:`answered`, with
        ``patient`` deciding past ``timeout``). Raises LegFailed when the engine failed,
        AioRpcError (not a failover code) when it ended the stream on purpose (an unknown
        session, a bad first message)."""
        started = time.perf_counter()
        # A task per exchange: only opens come here, a bar goes through the appliers.
        exchange = asyncio.ensure_future(self._exchange(request))
        loop = asyncio.get_running_loop()
        try:
            answer = await answered(exchange, timeout, ceiling, patient)
        except grpc.aio.AioRpcError as e:
            if engine_failed(e.code()):
                raise LegFailed(f"{e.code().name}: {e.details()}") from None
            raise
        finally:
            exchange.cancel()
        # The engine's time, from when it had the request: not the monitor's own queueing of
        # the write (a burst of opens), which a slow verdict must never count.
        w = self.written_at
        self.millis = (
            (loop.time() - w) * 1000 if w is not None else (time.perf_counter() - started) * 1000
        )
        return answer

    def cancel(self) -> None:
        # A hung engine's late answer arrives on a cancelled call: it is never read (fenced).
        self.call.cancel()


async def answered(
    future: asyncio.Future[pb.StreamResponse],
    timeout: float,
    ceiling: float,
    patient: Callable[[], bool],
) -> pb.StreamResponse:
    """The answer to a bar sent to an engine. ``timeout`` is the adaptive deadline (a hang is
    seen in tens of milliseconds); when it passes, the engine is judged: if ``patient()`` (no
    other engine could take over now, or a switch just happened) or the monitor's own event
    loop was late, the wait goes on up to ``ceiling`` — a latency spike is not a hang, and a
    failover that cannot help is not made. LegFailed when the engine failed or timed out."""
    loop = asyncio.get_running_loop()
    begun = loop.time()
    limit = begun + max(timeout, ceiling)
    waited = timeout
    judge: asyncio.TimerHandle | None = None
    try:
        # A timeout scope and a timer, not wait_for: no task per message.
        async with asyncio.timeout(limit) as scope:

            def verdict(due: float) -> None:
                nonlocal judge, waited
                now = loop.time()
                late = now - due > timeout  # the loop itself stalled (longer than a deadline)
                if (late or patient()) and now < limit:
                    # Judged again soon: a hang that starts now is seen within half a deadline
                    # of the deadline.
                    again = min(limit, now + timeout / 2)
                    judge = loop.call_at(again, verdict, again)
                    waited = again - begun
                    return
                scope.reschedule(now)

            judge = loop.call_at(begun + timeout, verdict, begun + timeout)
            return await future
    except TimeoutError:
        raise LegFailed(f"DEADLINE_EXCEEDED: no answer within {waited * 1000:.0f} ms") from None
    finally:
        if judge is not None:
            judge.cancel()


LOST_PLACE = frozenset(
    {
        grpc.StatusCode.NOT_FOUND.value[0],
        grpc.StatusCode.ABORTED.value[0],
        grpc.StatusCode.FAILED_PRECONDITION.value[0],
    }
)
"""In-band codes an engine gives a new bar (the journal's next number) when it does not stand
where the monitor thought: no session (it restarted), already past it, or behind (a gap)."""


class Relay:
    """One client stream through the monitor: its session's journal; its bars go to the
    active engine's applier."""

    def __init__(
        self, monitor: Monitor, timeout: Callable[[], float], patience: Callable[[], float]
    ) -> None:
        self.m = monitor
        self.router = monitor.router
        self.timeout = timeout
        """The call deadline, within the client's own."""
        self.patience = patience
        """How long an open may wait on an engine that is busy, not hung (the batch deadline,
        within the client's own)."""
        self.journal: Journal | None = None
        self.session = b""
        """The encoded session field of the Apply messages (:func:`.wire.session_field`)."""

    @property
    def name(self) -> str | None:
        """The session's name once it is open (for the logs)."""
        return None if self.journal is None else self.journal.name

    def close(self) -> None:
        if self.journal is not None:
            self.journal.used_at = time.monotonic()
            if self.m.streaming.get(self.journal.name) is self:
                del self.m.streaming[self.journal.name]

    async def handle(self, request: pb.StreamRequest) -> pb.StreamResponse:
        """The answer to one client message (its epoch set); raises Refused to end the stream."""
        if self.journal is None:
            answer = await self._first(request)
            self._started()
        else:
            answer = await self._next(request)
        answer.epoch = self.router.epoch
        if self.journal is not None and self.m.signals is not None:
            try:
                await self.m.record_signals(request, answer, self.journal.name)
            except Exception as e:  # the record must never cost the client its answer
                log.logger().error("signals not recorded", session=self.journal.name, error=str(e))
        return answer

    def _started(self) -> None:
        """After the first message: the session it opened (if it did) is this stream's."""
        if self.journal is not None:
            self.m.streaming[self.journal.name] = self
            symbol, timeframe = self.journal.name.rsplit("/", 1)
            self.session = session_field(symbol, timeframe)

    def _new_leg(self, engine: str) -> Leg:
        return Leg(engine, self.m.stubs[engine].Stream(metadata=self.m.metadata))

    def _lost(self, engine: str) -> None:
        """``engine``'s place in the session is unknown: rebuilt afresh from the journal."""
        if self.journal is not None:
            self.journal.set_applied(engine, UNKNOWN)
            self.m.feeders[engine].notify(self.journal)

    def _failed(self, engine: str, why: str) -> None:
        """The engine failed under this stream: reported (the router switches if it can, and
        every bar waiting on it fails over); it may have applied the bar it did not answer."""
        self.router.failed(engine, f"Stream: {why}")
        self._lost(engine)

    async def _attach(self, engine: str) -> bool:
        """Does ``engine`` hold the session at the journal's last number? If not it is levelled
        with the journal first (the client waits). False if it cannot be."""
        j = self.journal
        assert j is not None
        if j.applied[engine] == j.last_seq:
            return True
        if not self.router.engines[engine].up:
            return False
        return await self.m.feeders[engine].level(j, self.m.batch_timeout)

    def _patient(self, engine: str, deadline: float, sent: Batch | Leg) -> bool:
        """Past the adaptive deadline, wait longer for ``engine``? Yes when it has not had the
        message for a deadline yet (``sent``: the request it goes out in — a bar's batch, an
        open's leg — still being written by a busy monitor, or written less than a deadline
        ago); when it is not hung but busy —
        it answered an exchange within the last deadline (a hung engine answers nothing; one
        starved of CPU, or working through a burst, still does); or when failing it over could
        not help or would flap: no other engine takes traffic, or the last switch is within
        the hold-down (a latency that flaps must not switch on every flap)."""
        loop_now = asyncio.get_running_loop().time()
        written = sent.written_at
        if written is None or loop_now - written < deadline:
            return True
        if loop_now - self.m.answered_at[engine] < deadline:
            return True
        standby = self.router.engines[other(engine)]
        return not standby.eligible or self.router.held_down

    async def _serving_engine(self) -> str:
        """The engine to send to: the active one if it takes traffic, else the other if it
        does; when neither is up, a short wait (one call deadline) for one to come back before
        the stream fails closed."""
        if self.router.engines[self.router.active].eligible:
            return self.router.active
        end = time.monotonic() + self.m.timeout
        while not any(h.up for h in self.router.engines.values()) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        return self.router.serving or self.router.active

    def _switch_if_possible(self, failed: str) -> None:
        """``failed`` could not take the stream: the other takes over if it is up."""
        alternative = other(failed)
        if self.router.engines[alternative].up:
            self.router.take_over(alternative, f"{failed} could not serve a stream")

    # --- The first message: open or resume -----------------------------------------------------

    async def _first(self, request: pb.StreamRequest) -> pb.StreamResponse:
        o = request.open if request.WhichOneof("kind") == "open" else None
        if o is not None and o.resume:
            known = self.m.journals.get(session_name(o))
            if known is not None:
                return await self._resume_known(known)
        name = session_name(o) if o is not None else ""
        if o is not None:
            self.m.admit_open()
            if not o.resume:
                self.m.make_room(name)
            # Held by this stream from now on (not idle: never evicted while it opens).
            self.m.streaming[name] = self
        try:
            return await self._open(request, o)
        finally:
            if self.journal is None and self.m.streaming.get(name) is self:
                del self.m.streaming[name]

    async def _open(self, request: pb.StreamRequest, o: pb.OpenSession | None) -> pb.StreamResponse:
        """An open (or a resume the monitor does not know) on an engine's own stream, which
        ends once it answered: the bars then go through the appliers."""
        ended: list[grpc.aio.AioRpcError] = []
        for engine in self.router.order():
            leg = self._new_leg(engine)
            # The call deadline plus the monitor's own delay; past it, waited for while the
            # engine answers others: a burst of opens queues on both sides, it is no hang.
            deadline = self.timeout() + self.m.loop_lag
            try:
                answer = await leg.exchange(
                    request,
                    deadline,
                    self.patience(),
                    functools.partial(self._patient, engine, deadline, leg),
                )
            except LegFailed as e:
                leg.cancel()
                self.router.failed(engine, f"Stream open: {e}")
                continue
            except grpc.aio.AioRpcError as e:  # the request's fault: the engine's own error
                leg.cancel()
                ended.append(e)
                break
            leg.cancel()
            self.m.answered_at[engine] = asyncio.get_running_loop().time()
            if o is None or answer.WhichOneof("kind") != "opened":
                return answer
            self.router.ok(engine, self.m.net(leg.millis), probe=False)
            self.router.take_over(engine, f"{engine} opened a session the active could not")
            return self._opened(engine, o, answer)
        if ended:
            raise Refused.of(ended[0])
        raise Refused(grpc.StatusCode.UNAVAILABLE, "no engine serves")

    def _opened(
        self, engine: str, o: pb.OpenSession, answer: pb.StreamResponse
    ) -> pb.StreamResponse:
        """A session opened (``resume`` false) or resumed that this monitor did not know."""
        name = answer.opened.session
        if o.resume:
            # The monitor never saw it opened (it restarted without a state file): served,
            # but it cannot be rebuilt on the other engine.
            j = Journal(name, None, last_seq=answer.opened.last_seq, store=self.m.store)
        else:
            j = Journal(name, o, store=self.m.store)
        j.applied[engine] = j.last_seq
        self.m.adopt(j)
        self.journal = j
        self.m.feeders[other(engine)].notify(j)
        return answer

    async def _resume_known(self, j: Journal) -> pb.StreamResponse:
        """A resume of a session the monitor knows: answered from the journal once an engine
        holds it up to the journal's last number."""
        self.journal = j
        for _ in range(ATTEMPTS):
            engine = await self._serving_engine()
            if await self._attach(engine):
                j.used_at = time.monotonic()
                return pb.StreamResponse(
                    seq=0,
                    engine=engine,
                    opened=pb.Opened(
                        session=j.name,
                        last_seq=j.last_seq,
                        resumed=True,
                        bars=len(j.series),
                        config=j.open.config if j.open is not None else None,
                    ),
                )
            self._switch_if_possible(engine)
        self.journal = None
        raise Refused(grpc.StatusCode.UNAVAILABLE, f"no engine holds session {show(j.name)}")

    # --- Bars -----------------------------------------------------------------------------------

    async def _next(self, request: pb.StreamRequest) -> pb.StreamResponse:
        j = self.journal
        assert j is not None
        kind = request.WhichOneof("kind")
        if kind != "bar":
            # The engines' own refusals of a second open and of an empty message.
            why = (
                "a stream opens its session once"
                if kind == "open"
                else "a stream message must carry open or bar"
            )
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, why)
        if self.m.journals.get(j.name) is not j:
            raise Refused(
                grpc.StatusCode.ABORTED,
                f"session {show(j.name)} was replaced by a new open; open or resume it again",
            )
        seq = request.bar.seq
        message = request.bar.SerializeToString(deterministic=True)
        if 0 < seq <= j.last_seq:
            cached = j.cached(seq)
            if cached is not None:
                return self._duplicate(seq, message, *cached)
            return await self._on_active(request, message, new=False)
        if seq != j.last_seq + 1:
            # A gap or a zero: the engine's own answer.
            return await self._on_active(request, message, new=False)
        if self.m.lagging(j):
            await self.m.back_pressure(j)
        return await self._on_active(request, message, new=True)

    def _duplicate(
        self, seq: int, message: bytes, applied: bytes, answer: pb.StreamResponse
    ) -> pb.StreamResponse:
        if message == applied:
            again = pb.StreamResponse()
            again.CopyFrom(answer)
            return again
        return pb.StreamResponse(
            seq=seq,
            engine=answer.engine,
            error=pb.StreamError(
                code=grpc.StatusCode.ABORTED.value[0],
                message=f"sequence {seq} was applied with a different bar",
            ),
        )

    def _accept(
        self,
        engine: str,
        request: pb.StreamRequest,
        answer: pb.StreamResponse,
        message: bytes,
        fenced: str | None,
    ) -> None:
        """A new bar applied by ``engine``: journaled (the client hears of it after this), the
        other engine told. An engine whose answer to the same bar was fenced applied it too:
        it holds the journal as well."""
        j = self.journal
        assert j is not None
        if answer.WhichOneof("kind") != "update" or answer.seq != j.last_seq + 1:
            return
        j.accept(message, request.bar, answer, engine, self.m.replay_window)
        if fenced is not None and j.applied[fenced] == j.last_seq - 1:
            j.set_applied(fenced, j.last_seq)
        self.m.feeders[other(engine)].notify(j)

    async def _on_active(
        self, request: pb.StreamRequest, message: bytes, new: bool
    ) -> pb.StreamResponse:
        """The bar on the active engine (levelled with the journal first); on a failure, on
        the engine the router switched to. ``new``: the journal's next number (journaled when
        applied); otherwise a message that applies nothing (a duplicate, a gap)."""
        j = self.journal
        assert j is not None
        fenced: str | None = None
        for _ in range(ATTEMPTS):
            engine = self.router.active
            if not self.router.engines[engine].eligible:
                engine = await self._serving_engine()
            if not await self._attach(engine):
                self._switch_if_possible(engine)
                continue
            epoch = self.router.epoch
            applier = self.m.appliers[engine]
            future, batch = applier.submit(self.session, message)
            await applier.flush()
            try:
                deadline = self.m.deadline(engine)
                answer = await answered(
                    future,
                    deadline,
                    self.timeout(),
                    functools.partial(self._patient, engine, deadline, batch),
                )
            except LegFailed as e:
                self._failed(engine, str(e))
                continue
            if self.router.epoch != epoch and self.router.active != engine:
                # Switched away from while it answered: fenced (never delivered); the new
                # active answers the same bar. If this one applied it, it holds the journal
                # once the new active applied it too.
                self.m.fenced += 1
                if new and answer.WhichOneof("kind") == "update":
                    fenced = engine
                continue
            if new and answer.WhichOneof("kind") == "error" and self._lost_place(answer):
                # Not where the journal says (it restarted, or holds a bar never
                # acknowledged): rebuilt afresh, then the bar again.
                self._lost(engine)
                continue
            if new:
                self._accept(engine, request, answer, message, fenced)
            return answer
        raise Refused(grpc.StatusCode.UNAVAILABLE, "no engine serves")

    def _lost_place(self, answer: pb.StreamResponse) -> bool:
        e = answer.error
        if e.code not in LOST_PLACE:
            return False
        # FAILED_PRECONDITION is also the engine's answer to a replacement on a session with
        # no bar (expected_seq is then this very number): that one is the client's.
        return not (
            e.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and e.expected_seq == answer.seq
        )


__all__ = ["ENGINES", "LegFailed", "Refused", "Relay", "engine_failed"]
