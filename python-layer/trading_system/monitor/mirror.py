"""Mirrored streams (docs/MONITOR.md, "Streams"): every client stream is opened on both
engines and every message sent to both; the client gets the active engine's answer once both
have answered, or the one that did not is known to have failed. The monitor journals every bar
it acknowledged, so an engine that left a session's mirror (it failed, or was slow as a
standby) is rebuilt from the journal in the background and rejoins; one that is the only one
left is rebuilt on the spot.

Sequence numbers are the client's and exactly-once is the engines' own bookkeeping (cached
answers, gaps): both see the same messages in the same order, so it stays identical on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from trading_system.monitor import ENGINES
from trading_system.proto import trading_pb2 as pb
from trading_system.server import log

if TYPE_CHECKING:
    from trading_system.monitor.service import Monitor
    from trading_system.monitor.store import Store

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
    }
)
"""Statuses an engine gives about the request itself (passed on to the client). Any other
status means the engine failed and the call goes to the other one: not only UNAVAILABLE and
DEADLINE_EXCEEDED, also INTERNAL or UNKNOWN, which grpcio reports for a stream whose server was
killed mid-message."""


def engine_failed(code: grpc.StatusCode | None) -> bool:
    return code not in REQUEST_CODES


def _millis(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class LegFailed(Exception):
    """An engine's side of a mirrored stream broke (the engine failed, not the request)."""


@dataclass
class Journal:
    """What the monitor knows of one session: how it was opened, the bar messages it accepted
    (acknowledged to a client), in order, and per engine how many of them that engine has not
    applied (it left the session's mirror). ``complete``: the monitor saw the session opened
    (not resumed), so the journal holds every bar and can rebuild the session on an engine.
    With a state file (``store``) every change is written before the client hears of it."""

    name: str
    open: pb.OpenSession | None = None
    bars: list[pb.StreamRequest] = field(default_factory=list)
    last_seq: int = 0
    lag: dict[str, int] = field(default_factory=dict)
    store: Store | None = None

    @property
    def complete(self) -> bool:
        return self.open is not None

    def saved(self) -> Journal:
        """Writes the whole journal header (a session opened or first resumed)."""
        if self.store is not None:
            self.store.save_session(self.name, self.open, self.last_seq, self.lag)
        return self

    def set_lag(self, engine: str, bars: int) -> None:
        if self.lag.get(engine) != bars:
            self.lag[engine] = bars
            if self.store is not None:
                self.store.save_lag(self.name, self.lag)

    def accept(
        self, request: pb.StreamRequest, answer: pb.StreamResponse, mirror: set[str]
    ) -> None:
        """Records an answer given to the client: a bar applied for the first time is
        journaled, and counted as missing on every engine outside the mirror."""
        if answer.WhichOneof("kind") != "update" or answer.seq != self.last_seq + 1:
            return  # a cached answer, an in-band error: nothing new was applied
        self.last_seq = answer.seq
        if self.complete:
            self.bars.append(request)
        for e in ENGINES:
            if e not in mirror:
                self.lag[e] = self.lag.get(e, 0) + 1
        if self.store is not None:
            kept = request if self.complete else None
            self.store.save_bar(self.name, kept, self.last_seq, self.lag)


class Leg:
    """One engine's stream of a mirrored session. ``position``: how many of the journal's bars
    it has applied (for a rebuild catching up)."""

    def __init__(self, engine: str, call: Any) -> None:
        self.engine = engine
        self.call = call
        self.position = 0
        self.millis = 0.0

    async def _exchange(self, request: pb.StreamRequest) -> pb.StreamResponse:
        try:
            await self.call.write(request)
            answer = await self.call.read()
        except asyncio.InvalidStateError as e:  # the call already ended
            raise LegFailed(f"stream closed: {e}") from None
        if answer is grpc.aio.EOF:
            code = await self.call.code()
            if engine_failed(code):
                raise LegFailed(f"stream ended ({code.name if code else 'no status'})")
            details = await self.call.details()
            raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)
        assert isinstance(answer, pb.StreamResponse)
        return answer

    async def exchange(self, request: pb.StreamRequest, timeout: float) -> pb.StreamResponse:
        """Sends one message and reads its answer within ``timeout`` (its latency in
        ``millis``). Raises LegFailed when the engine failed, AioRpcError (not a failover code)
        when it ended the stream on purpose (an unknown session, a bad first message)."""
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(self._exchange(request), timeout)
        except TimeoutError:
            raise LegFailed("DEADLINE_EXCEEDED: no answer within the call timeout") from None
        except grpc.aio.AioRpcError as e:
            if engine_failed(e.code()):
                raise LegFailed(f"{e.code().name}: {e.details()}") from None
            raise
        self.millis = _millis(started)
        return answer

    def cancel(self) -> None:
        # A hung engine's late answer arrives on a cancelled call: it is never read (fenced).
        self.call.cancel()


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


def _name(o: pb.OpenSession) -> str:
    return f"{o.symbol}/{o.timeframe}"


async def rebuild(m: Monitor, journal: Journal, engine: str) -> Leg | None:
    """Brings ``engine`` to the journal's end for its session and returns the open leg; one
    rebuild per session and engine at a time (a second waits, then finds little to do).

    First a resume: an engine holding exactly the bars the journal says it has (all but its
    ``lag`` last ones) only gets those replayed. Otherwise (it restarted, or applied a message
    the monitor never acknowledged) a fresh session (same symbol, timeframe and
    configuration) and every journaled bar replayed in order, each answer checked. The journal
    may grow meanwhile: the replay goes on to its end. None if the engine failed (then reported
    failed) or the session was replaced meanwhile."""
    async with m.rebuild_locks[(journal.name, engine)]:
        return await _rebuild(m, journal, engine)


async def _rebuild(m: Monitor, journal: Journal, engine: str) -> Leg | None:
    assert journal.open is not None
    started = time.perf_counter()
    name = journal.name
    m.rebuilding[engine] += 1
    leg = Leg(engine, m.stubs[engine].Stream(metadata=m.metadata))
    try:
        resume = pb.OpenSession()
        resume.CopyFrom(journal.open)
        resume.resume = True
        try:
            first = await leg.exchange(pb.StreamRequest(open=resume), m.timeout)
            held = first.opened.last_seq if first.WhichOneof("kind") == "opened" else -1
        except grpc.aio.AioRpcError:  # NOT_FOUND: the engine restarted since
            held = -1
        missing = journal.lag.get(engine, 0)
        if held == journal.last_seq - missing and missing <= len(journal.bars):
            leg.position = len(journal.bars) - missing
        else:
            leg.cancel()
            leg = Leg(engine, m.stubs[engine].Stream(metadata=m.metadata))
            fresh = pb.OpenSession()
            fresh.CopyFrom(journal.open)
            fresh.resume = False
            first = await leg.exchange(pb.StreamRequest(open=fresh), m.timeout)
            if first.WhichOneof("kind") != "opened":
                raise LegFailed(f"re-sync open refused: {first}")
        replayed = len(journal.bars) - leg.position
        while leg.position < len(journal.bars):
            await replay(leg, journal.bars[leg.position], m.timeout)
    except LegFailed as e:
        leg.cancel()
        m.router.failed(engine, f"re-sync of {name}: {e}")
        return None
    except grpc.aio.AioRpcError as e:  # on purpose: the session was replaced meanwhile
        leg.cancel()
        log.logger().warning("re-sync abandoned", engine=engine, session=name, code=e.code().name)
        return None
    except BaseException:
        leg.cancel()
        raise
    finally:
        m.rebuilding[engine] -= 1
    log.logger().info(
        "re-synced",
        engine=engine,
        session=name,
        replayed=replayed,
        latency_ms=round(_millis(started), 3),
    )
    return leg


async def replay(leg: Leg, request: pb.StreamRequest, timeout: float) -> None:
    """One journaled bar sent again: it must be applied with its number (else LegFailed)."""
    answer = await leg.exchange(request, timeout)
    if answer.WhichOneof("kind") != "update" or answer.seq != request.bar.seq:
        raise LegFailed(f"re-sync diverged at seq {request.bar.seq}: {answer}")
    leg.position += 1


class Mirror:
    """One client stream through the monitor: its legs (one stream per engine in the mirror),
    the session's journal, and the rebuilds under way."""

    def __init__(self, monitor: Monitor, timeout: Callable[[], float]) -> None:
        self.m = monitor
        self.router = monitor.router
        self.timeout = timeout
        self.legs: dict[str, Leg] = {}
        self.journal: Journal | None = None
        self.rebuilds: dict[str, asyncio.Task[Leg | None]] = {}

    @property
    def name(self) -> str | None:
        """The session's name once it is open (for the logs)."""
        return None if self.journal is None else self.journal.name

    def close(self) -> None:
        for leg in self.legs.values():
            leg.cancel()
        for task in self.rebuilds.values():
            task.cancel()
        self.legs.clear()
        if self.journal is not None and self.m.streaming.get(self.journal.name) is self:
            del self.m.streaming[self.journal.name]

    async def handle(self, request: pb.StreamRequest) -> pb.StreamResponse:
        """The answer to one client message (its epoch set); raises Refused to end the stream."""
        if self.journal is None:
            answer = await self._first(request)
            if self.journal is not None:
                self.m.streaming[self.journal.name] = self
        else:
            await self._maintain()
            answer = await self._next(request)
        answer.epoch = self.router.epoch
        if self.journal is not None:
            try:
                await self.m.record_signals(request, answer, self.journal.name)
            except Exception as e:  # the record must never cost the client its answer
                log.logger().error("signals not recorded", session=self.journal.name, error=str(e))
        return answer

    # --- Exchanges ------------------------------------------------------------------------------

    def _new_leg(self, engine: str) -> Leg:
        return Leg(engine, self.m.stubs[engine].Stream(metadata=self.m.metadata))

    def _cut(self, engine: str, why: str) -> None:
        """Takes an engine out of this session's mirror: it lags from now on."""
        leg = self.legs.pop(engine, None)
        if leg is not None:
            leg.cancel()
            if self.journal is not None:
                self.journal.set_lag(engine, self.journal.lag.get(engine, 0))
            log.logger().warning("left the mirror", engine=engine, reason=why)

    async def _exchange_all(
        self, request: pb.StreamRequest
    ) -> tuple[dict[str, pb.StreamResponse], dict[str, grpc.aio.AioRpcError], set[str]]:
        """Sends a message on every leg at once: the answers, the engines that ended the
        stream on purpose, and those that failed (cut and reported failed)."""
        legs = dict(self.legs)
        timeout = self.timeout()
        results = await asyncio.gather(
            *(leg.exchange(request, timeout) for leg in legs.values()), return_exceptions=True
        )
        answers: dict[str, pb.StreamResponse] = {}
        ended: dict[str, grpc.aio.AioRpcError] = {}
        failed: set[str] = set()
        for (engine, leg), r in zip(legs.items(), results, strict=True):
            if isinstance(r, pb.StreamResponse):
                answers[engine] = r
                self.router.ok(engine, leg.millis, probe=False)
            elif isinstance(r, grpc.aio.AioRpcError):
                ended[engine] = r
                self._cut(engine, f"ended the stream: {r.code().name}")
            elif isinstance(r, LegFailed):
                failed.add(engine)
                self.router.failed(engine, f"Stream: {r}")
                self._cut(engine, str(r))
            else:
                raise r
        return answers, ended, failed

    def _choose(
        self, answers: dict[str, pb.StreamResponse], seq: int, compare: bool = True
    ) -> pb.StreamResponse:
        """The active engine's answer (the fence: only the active's answers are delivered).
        If the active failed on this message, the engine that answered takes over. Engines
        whose answer differs from the chosen one leave the mirror (rebuilt from the journal)."""
        if self.router.active not in answers:
            for e in self.router.order():
                if e in answers:
                    self.router.take_over(e, f"{self.router.active} failed on a stream message")
                    break
        chosen = self.router.active
        if chosen not in answers:
            raise Refused(
                grpc.StatusCode.UNAVAILABLE,
                f"the active engine ({chosen}) failed and automatic failover is off",
            )
        answer = answers[chosen]
        for e, other in answers.items():
            if compare and e != chosen and not _same(other, answer):
                log.logger().error("engines answered differently", seq=seq, engine=e, chosen=chosen)
                self._cut(e, "answered differently")
                if self.journal is not None:
                    # Its state cannot be trusted: a lag beyond the journal forces a fresh
                    # rebuild (every bar replayed), not a resume.
                    self.journal.set_lag(e, self.journal.last_seq + 1)
        return answer

    # --- The first message: open or resume -----------------------------------------------------

    async def _first(self, request: pb.StreamRequest) -> pb.StreamResponse:
        o = request.open if request.WhichOneof("kind") == "open" else None
        known = self.m.journals.get(_name(o)) if o is not None else None
        resume_known = o is not None and o.resume and known is not None
        # Engines not taking traffic stay out (a hung one would hold the open for a timeout),
        # and a lagging one is not asked to resume: both are rebuilt from the journal later.
        taking = [e for e in ENGINES if self.router.engines[e].eligible] or list(ENGINES)
        for e in taking:
            if not (resume_known and known is not None and known.lag.get(e, 0) > 0):
                self.legs[e] = self._new_leg(e)
        answers, ended, _ = await self._exchange_all(request)
        if o is None or not answers:
            return await self._first_failed(request, known, ended)
        if not o.resume:
            journal = Journal(_name(o), o, lag={e: 0 for e in ENGINES}, store=self.m.store)
            self.m.journals[_name(o)] = journal.saved()
            self.journal = journal
            for e in ENGINES:
                if e not in self.legs:  # it missed the open: one message behind, at least
                    journal.set_lag(e, 1)
            return await self._deliver(request, answers, 0)
        return await self._resumed(request, known, answers)

    async def _first_failed(
        self,
        request: pb.StreamRequest,
        known: Journal | None,
        ended: dict[str, grpc.aio.AioRpcError],
    ) -> pb.StreamResponse:
        """No engine opened the session: a resume the monitor can rebuild is rebuilt; else the
        engines' own error (an unknown session, a bad first message) or UNAVAILABLE."""
        if known is not None and known.complete and request.open.resume:
            self.journal = known
            for e in self.router.order():
                # One that just refused the resume (NOT_FOUND: restarted empty) is up too.
                up = self.router.engines[e].up or e in ended
                if up and await self._bring_up(e):
                    self.router.take_over(e, f"only {e} holds session {known.name}")
                    return self._opened(e, known.last_seq, request.open)
            self.journal = None
        for e in self.router.order():
            if e in ended:
                raise Refused.of(ended[e])
        raise Refused(grpc.StatusCode.UNAVAILABLE, "no engine serves")

    def _opened(self, engine: str, last_seq: int, o: pb.OpenSession) -> pb.StreamResponse:
        return pb.StreamResponse(
            seq=0,
            engine=engine,
            opened=pb.Opened(session=_name(o), resumed=True, last_seq=last_seq),
        )

    async def _resumed(
        self,
        request: pb.StreamRequest,
        known: Journal | None,
        answers: dict[str, pb.StreamResponse],
    ) -> pb.StreamResponse:
        """A resume some engines answered. Engines behind the monitor's last acknowledged bar
        leave the mirror (rebuilt later); the client is told the lowest ``last_seq`` of the
        rest, so it resends what one of them lacks (the other answers from its cache)."""
        o = request.open
        seqs = {e: a.opened.last_seq for e, a in answers.items()}
        if known is not None:
            floor = known.last_seq
        else:
            # The monitor never saw this session (it restarted without a state file): the
            # engines' word. One message apart is a message in flight, which the client
            # resends; more is a lag.
            floor = max(seqs.values()) - 1
        for e, seq in seqs.items():
            if seq < floor:
                self._cut(e, f"behind: at {seq}, the session at {floor}")
        in_sync = {e: s for e, s in seqs.items() if e in self.legs}
        if known is None:
            known = Journal(_name(o), last_seq=min(in_sync.values()), store=self.m.store)
            self.m.journals[_name(o)] = known.saved()
        self.journal = known
        for e in ENGINES:
            if e not in self.legs:
                known.set_lag(e, max(known.lag.get(e, 0), known.last_seq - seqs.get(e, 0)))
        if not in_sync or self.router.active not in in_sync:
            # The active is behind: bring it to the journal's end first, the client waiting.
            for e in self.router.order():
                if self.router.engines[e].up and e not in self.legs and await self._bring_up(e):
                    self.router.take_over(e, f"only {e} holds session {known.name}")
                    break
            if self.router.active in self.legs:
                return self._opened(self.router.active, known.last_seq, o)
            if not in_sync:
                raise Refused(grpc.StatusCode.UNAVAILABLE, "no engine holds the session")
        low = min(in_sync.values())
        # Their answers differ by last_seq: the lowest is the one the client hears.
        answer = self._choose({e: answers[e] for e in in_sync}, 0, compare=False)
        answer.opened.last_seq = low
        return answer

    # --- Bars -----------------------------------------------------------------------------------

    async def _next(self, request: pb.StreamRequest) -> pb.StreamResponse:
        seq = request.bar.seq if request.HasField("bar") else 0
        answers, ended, failed = await self._exchange_all(request)
        if not answers:
            for e in self.router.order():
                if e in ended:
                    raise Refused.of(ended[e])
        answer = await self._deliver(request, answers, seq, failed)
        journal = self.journal
        assert journal is not None
        journal.accept(request, answer, set(self.legs))
        for leg in self.legs.values():
            leg.position = len(journal.bars)
        return answer

    async def _deliver(
        self,
        request: pb.StreamRequest,
        answers: dict[str, pb.StreamResponse],
        seq: int,
        failed: set[str] | None = None,
    ) -> pb.StreamResponse:
        """The answer the client gets. If the active engine is not in this session's mirror
        (it lags: a failback or an override moved traffic to it, or every engine in the mirror
        failed), it is brought to the journal's end now and answers this message itself."""
        active = self.router.active
        if active not in answers and active not in (failed or set()) and self.journal:
            if active not in self.legs and await self._bring_up(active):
                answers = {**answers, **await self._ask(active, request)}
        if not answers:
            # Every engine in the mirror failed: any other that answers probes is brought up.
            for e in self.router.order():
                if e not in self.legs and self.router.engines[e].up and await self._bring_up(e):
                    answers = await self._ask(e, request)
                    if answers:
                        self.router.take_over(e, f"{e} rebuilt: the only engine left")
                        break
            if not answers:
                raise Refused(grpc.StatusCode.UNAVAILABLE, "no engine serves")
        return self._choose(answers, seq)

    async def _ask(self, engine: str, request: pb.StreamRequest) -> dict[str, pb.StreamResponse]:
        """The message on one leg only (an engine just brought up)."""
        leg = self.legs[engine]
        try:
            answer = await leg.exchange(request, self.timeout())
        except LegFailed as e:
            self.router.failed(engine, f"Stream: {e}")
            self._cut(engine, str(e))
            return {}
        except grpc.aio.AioRpcError as e:
            self._cut(engine, f"ended the stream: {e.code().name}")
            raise Refused.of(e) from None
        return {engine: answer}

    async def _bring_up(self, engine: str) -> bool:
        """Rebuilds ``engine`` for this session now (a background rebuild is cancelled) and
        puts it in the mirror; False if that failed or the journal cannot rebuild it."""
        journal = self.journal
        if journal is None or not journal.complete:
            return False
        task = self.rebuilds.pop(engine, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        leg = await rebuild(self.m, journal, engine)
        return leg is not None and await self._join(leg)

    async def _maintain(self) -> None:
        """Before a message: a standby that stopped taking traffic (failing, slow) leaves the
        mirror, so the client does not wait for it; finished rebuilds join it; engines taking
        traffic again that are not in it start being rebuilt in the background."""
        for e in list(self.legs):
            if e != self.router.active and not self.router.engines[e].eligible:
                self._cut(e, f"not taking traffic ({self.router.engines[e].state})")
        journal = self.journal
        if journal is None or not journal.complete:
            return
        for e, task in list(self.rebuilds.items()):
            if task.done():
                del self.rebuilds[e]
                leg = None if task.cancelled() else task.result()
                if leg is not None:
                    await self._join(leg)
        for e in ENGINES:
            if e not in self.legs and e not in self.rebuilds and self.router.engines[e].eligible:
                self.rebuilds[e] = asyncio.ensure_future(rebuild(self.m, journal, e))

    async def _join(self, leg: Leg) -> bool:
        """A rebuilt leg catches up with the bars accepted since its rebuild ended (usually
        none) and joins the mirror."""
        journal = self.journal
        assert journal is not None
        try:
            for request in journal.bars[leg.position :]:
                await replay(leg, request, self.m.timeout)
        except (LegFailed, grpc.aio.AioRpcError) as e:
            leg.cancel()
            self.router.failed(leg.engine, f"re-sync: {e}")
            return False
        self.legs[leg.engine] = leg
        journal.set_lag(leg.engine, 0)
        self.m.resyncs += 1
        return True


def _same(a: pb.StreamResponse, b: pb.StreamResponse) -> bool:
    """The same answer but for the engine's name and the epoch: the same number and payload
    (compared serialized: NaN MACD values compare unequal as floats). No copies: this runs on
    every mirrored message."""
    kind = a.WhichOneof("kind")
    if a.seq != b.seq or kind != b.WhichOneof("kind"):
        return False
    if kind is None:
        return True
    x, y = getattr(a, kind), getattr(b, kind)
    return x.SerializeToString(deterministic=True) == y.SerializeToString(deterministic=True)
