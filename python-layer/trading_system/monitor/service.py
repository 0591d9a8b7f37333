"""The monitor's services: ``trading.v1.Trading`` forwarded to the engines, client streams
relayed to the active engine with the standby fed from the journal, health probes, the
replicated configuration, and ``trading.v1.Admin`` (docs/MONITOR.md).

- Batch calls (``Analyze``, ``GetSnapshot``, ``GetInfo``, ``GetConfig``) go to the active engine
  and, when it fails, to the other: they are idempotent. A snapshot is answered only by an
  engine level with the session's journal.
- ``UpdateConfig`` is replicated state: validated and applied by the active engine, kept by the
  monitor (and its state file), applied to the other engine, and applied again to any engine
  whose reported configuration differs before it takes traffic.
- A stream is relayed (:mod:`.relay`); the standby is fed in batches (:mod:`.replica`).
- Requests are decoded, checked and encoded again (:mod:`.decode`); only engine faults count
  against an engine, and latency is judged per message net of the monitor's own delay.
- Admission: concurrent streams and calls and the rate of stream opens are bounded
  (RESOURCE_EXHAUSTED beyond).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from trading_system import transport
from trading_system.config import FileConfig
from trading_system.convert import config_version
from trading_system.monitor import ENGINES
from trading_system.monitor.applier import Applier
from trading_system.monitor.decode import Undecodable, parse
from trading_system.monitor.journal import UNKNOWN, Journal, session_name
from trading_system.monitor.relay import Refused, Relay, engine_failed
from trading_system.monitor.replica import Feeder
from trading_system.monitor.router import NotServing, Router, other
from trading_system.monitor.store import Store
from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc
from trading_system.server import SERVICE_NAME, log
from trading_system.signal_store import SignalBook, SignalStore
from trading_system.stubs import Health, Trading

CHANNEL_OPTIONS = [
    # A restarted engine is seen within a probe interval or two, not after minutes of backoff:
    # the reconnect backoff is capped at a quarter of a second.
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]
BATCH = frozenset({"Analyze", "GetSnapshot"})
"""Calls whose size the client chooses: ``system.batch_timeout_ms`` instead of the call one, and
no latency sample (a million-bar Analyze says nothing about the engine's health)."""
UNARY = {
    "Analyze": (pb.AnalyzeRequest, pb.AnalyzeResponse),
    "GetSnapshot": (pb.SnapshotRequest, pb.SnapshotResponse),
    "GetInfo": (pb.InfoRequest, pb.InfoResponse),
    "GetConfig": (pb.GetConfigRequest, pb.ConfigResponse),
}
LOOP_TICK = 0.005
"""How often the monitor measures its own event-loop delay (seconds)."""
DEADLINE_REFRESH = 0.1
"""How often an engine's adaptive stream deadline is computed again (seconds)."""
SWEEP_INTERVAL = 1.0
"""How often idle sessions are looked for (seconds)."""


class EngineGone(Exception):
    """The engine a call waits on was found failed: the call goes to the other one."""


async def pass_through(context: grpc.aio.ServicerContext, e: grpc.aio.AioRpcError) -> None:
    """Ends the call with an engine's own error: code, message and trailers (the
    ``grpc-status-details-bin`` with the BadRequest details among them)."""
    trailers = tuple((k, v) for k, v in (e.trailing_metadata() or ()))
    await context.abort(e.code(), e.details() or "", trailers)


def _millis(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _with_epoch(m: Message, epoch: int) -> Message:
    if "epoch" in m.DESCRIPTOR.fields_by_name:
        # Only the answers whose type has the field (checked above); Message declares none.
        m.epoch = epoch  # pyright: ignore[reportAttributeAccessIssue]
    return m


class Monitor:
    """The monitor's state: the router, one channel per engine, the feeders, the sessions'
    journals and the replicated configuration."""

    def __init__(self, cfg: FileConfig, addresses: dict[str, str]) -> None:
        system = cfg.system
        self.router = Router(
            str(getattr(system.primary_engine, "value", system.primary_engine)), addresses, system
        )
        self.timeout = system.call_timeout_ms / 1000
        self.batch_timeout = system.batch_timeout_ms / 1000
        self.replay_window = cfg.server.replay_window
        self.catch_up_batch = system.catch_up_batch_bars
        # A tenth of the lag bound between two catch-up calls, at most 25 ms.
        self.catch_up_interval = min(0.025, system.max_standby_lag_ms / 10_000)
        self.max_lag_ms = float(system.max_standby_lag_ms)
        self.max_lag_bars = system.max_standby_lag_bars
        self.deadline_factor = float(system.hang_deadline_factor)
        self.min_deadline = system.min_deadline_ms / 1000
        self.max_streams = system.max_streams
        self.max_calls = system.max_calls
        self.max_opens = float(system.max_opens_per_s)
        self.max_sessions = system.max_sessions
        self.idle_after = system.session_idle_ms / 1000
        self.failures = {e: asyncio.Event() for e in ENGINES}
        """Set when the engine is found failed (then replaced by a fresh event)."""
        self.answered_at: dict[str, float] = dict.fromkeys(ENGINES, 0.0)
        """When each engine last answered a stream exchange, a bar batch or an open (the event
        loop's clock): an engine that answers is busy, not hung."""
        self.interval = system.health_check_interval_ms / 1000
        # The engines are reached like any server (TLS and client certificates per the shared
        # configuration): the client token on forwarded calls, the operator token on the
        # administrative ones (UpdateConfig, Replica).
        settings = transport.Settings.from_config(cfg)
        self.metadata = settings.metadata("client") or None
        self.admin_metadata = settings.metadata("operator") or None
        self.channels = {
            e: transport.channel(addresses[e], settings, options=CHANNEL_OPTIONS, aio=True)
            for e in ENGINES
        }
        self.stubs = {e: Trading(ch) for e, ch in self.channels.items()}
        self.replicas = {e: rpc.ReplicaStub(ch) for e, ch in self.channels.items()}
        # CatchUp requests are assembled from the journal's stored bytes: sent as they are.
        self.replica_stubs = {
            e: ch.unary_unary(
                "/trading.v1.Replica/CatchUp",
                request_serializer=None,
                response_deserializer=pb.CatchUpResponse.FromString,
            )
            for e, ch in self.channels.items()
        }
        self.health = {e: Health(ch) for e, ch in self.channels.items()}
        self.journals: dict[str, Journal] = {}
        """Every session streamed through this monitor, by name (``symbol/timeframe``)."""
        self.signals = SignalStore(system.signals_file) if system.signals_file else None
        self.books: dict[str, SignalBook] = {}
        """Per session, the buy/sell points its clients were given (kept in ``signals``)."""
        self.config: pb.EngineConfig | None = None
        """The runtime configuration both engines must hold (None until the first probes)."""
        self.engine_config: dict[str, str] = {e: "" for e in ENGINES}
        """The configuration digest each engine reported last."""
        self.store = Store(system.state_file) if system.state_file else None
        self.feeders = {e: Feeder(self, e) for e in ENGINES}
        self.closing: dict[str, set[str]] = {e: set() for e in ENGINES}
        """Sessions each engine must still drop (evicted by the monitor), sent in batches."""
        self._closer: dict[str, asyncio.Task[None] | None] = dict.fromkeys(ENGINES)
        self.appliers = {e: Applier(self, e) for e in ENGINES}
        if self.store is not None:
            self._restore(self.store)
        self.streaming: dict[str, Relay] = {}
        """The sessions a client is streaming right now."""
        self.streams = 0
        self.calls = 0
        self.refused = 0
        """Calls and streams refused by the admission limits."""
        self._opens = self.max_opens
        self._opens_at = time.monotonic()
        self.loop_lag = 0.0
        """The monitor's own event-loop delay lately (seconds): not the engines' latency."""
        self._deadlines: dict[str, tuple[float, float]] = {}
        self.router.synced = self.synced
        self.router.on_failed = self._engine_failed
        self.fenced = 0
        """Answers discarded because their engine was switched away from meanwhile."""
        self._tasks: list[asyncio.Task[None]] = []

    def _restore(self, store: Store) -> None:
        """Takes over a previous monitor's saved state (none: a first start). It vouches for
        no engine's position in any session: each is checked by a resume or rebuilt."""
        if store.load_router(self.router):
            self.router.restarted()
        else:
            store.save_router(self.router)
        self.router.on_change = lambda: store.save_router(self.router)
        self.config = store.load_config()
        for name, (opened, last_seq, series) in store.load_journals().items():
            j = Journal(name, opened, series, last_seq=last_seq, store=store)
            self.journals[name] = j
            for f in self.feeders.values():
                f.notify(j)

    # --- Sessions -------------------------------------------------------------------------------

    def adopt(self, j: Journal) -> None:
        """A session opened (or first resumed): it replaces one of the same name."""
        old = self.journals.pop(j.name, None)
        if old is not None:
            for f in self.feeders.values():
                f.forget(j.name)
        self.journals[j.name] = j
        if self.store is not None:
            self.store.save_session(j.name, j.open, j.last_seq)

    def make_room(self, name: str) -> None:
        """Before a new session opens: at ``max_sessions`` the least recently used session
        with no stream is closed (on both engines); if every one has a stream, the open is
        refused (RESOURCE_EXHAUSTED) — a running stream is never cut for a new one."""
        # Sessions being opened count too (their journal comes once the engine answered).
        held = len(self.journals) + sum(1 for n in self.streaming if n not in self.journals)
        if name in self.journals or held < self.max_sessions:
            return
        if not self._trim(held - self.max_sessions + 1, "session limit"):
            self.refused += 1
            raise Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many sessions (system.max_sessions = {self.max_sessions}),"
                " each with a stream",
            )

    def _trim(self, count: int, why: str) -> bool:
        """Closes the ``count`` least recently used sessions without a stream; False if there
        are not that many."""
        idle = [j for n, j in self.journals.items() if n not in self.streaming]
        if len(idle) < count:
            return False
        idle.sort(key=lambda j: j.used_at)
        self._evict(idle[:count], why)
        return True

    def _evict(self, victims: list[Journal], why: str) -> None:
        for v in victims:
            self.journals.pop(v.name, None)
            self.books.pop(v.name, None)
            for f in self.feeders.values():
                f.forget(v.name)
            if self.store is not None:
                self.store.drop_session(v.name)
        log.logger().info("sessions evicted", sessions=len(victims), reason=why)
        for e in ENGINES:
            self.close_on(e, [v.name for v in victims])

    def close_on(self, engine: str, names: list[str]) -> None:
        """``engine`` drops these sessions: queued, and sent by one closer task per engine in
        as few calls as the queue allows (a burst of opens evicts one session per open)."""
        self.closing[engine].update(names)
        closer = self._closer[engine]
        if closer is None or closer.done():
            self._closer[engine] = self._spawn(self._close_queued(engine))

    async def _close_queued(self, engine: str) -> None:
        """Sends the queued closes until none is left. A failed call is retried (after a
        pause) while the engine is up: a session the monitor dropped that an engine kept would
        count against its memory for ever. A down engine keeps the queue: closing a session an
        engine restarted without is a no-op."""
        while self.closing[engine]:
            if not self.router.engines[engine].up:
                await asyncio.sleep(self.interval)
                continue
            # A name opened again since it was queued is a new session: never closed.
            names = {n for n in self.closing[engine] if n not in self.journals}
            names -= self.streaming.keys()
            self.closing[engine] = set()
            if not names:
                return
            request = pb.CloseSessionsRequest(
                sessions=[
                    pb.SessionName(symbol=symbol, timeframe=timeframe)
                    for symbol, timeframe in (n.rsplit("/", 1) for n in sorted(names))
                ]
            )
            try:
                # Not a hang detector (probes and bars are): an engine busy catching up may
                # take long to get to it.
                await self.replicas[engine].CloseSessions(
                    request, timeout=self.batch_timeout, metadata=self.admin_metadata
                )
            except grpc.aio.AioRpcError as e:
                log.logger().warning(
                    "sessions not closed yet",
                    engine=engine,
                    sessions=len(names),
                    error=e.code().name,
                )
                self.closing[engine] |= names
                await asyncio.sleep(self.interval)

    async def _sweep_forever(self) -> None:
        """Closes sessions no client has used for ``session_idle_ms``."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            over = len(self.journals) - self.max_sessions
            if over > 0:  # streams that held their sessions have ended since
                self._trim(min(over, len(self.journals) - len(self.streaming)), "session limit")
            if self.idle_after <= 0:
                continue
            now = time.monotonic()
            idle = [
                j
                for n, j in self.journals.items()
                if n not in self.streaming and now - j.used_at > self.idle_after
            ]
            if idle:
                self._evict(idle, "idle")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)
        return task

    # --- Admission ------------------------------------------------------------------------------

    def admit_open(self) -> None:
        """One stream open under ``max_opens_per_s`` (a token bucket), else RESOURCE_EXHAUSTED."""
        now = time.monotonic()
        self._opens = min(self.max_opens, self._opens + (now - self._opens_at) * self.max_opens)
        self._opens_at = now
        if self._opens < 1:
            self.refused += 1
            raise Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many stream opens (system.max_opens_per_s = {self.max_opens:.0f})",
            )
        self._opens -= 1

    # --- Latency, deadlines, back-pressure ------------------------------------------------------

    async def _measure_loop(self) -> None:
        """The event loop's own delay: how late a short sleep wakes up. It is the monitor's
        queueing, never the engines': taken off latency samples, added to deadlines."""
        recent: list[float] = []
        while True:
            started = time.perf_counter()
            await asyncio.sleep(LOOP_TICK)
            late = max(0.0, time.perf_counter() - started - LOOP_TICK)
            recent.append(late)
            del recent[:-40]  # the last 200 ms or so
            self.loop_lag = max(recent)

    def net(self, millis: float) -> float:
        """A measured latency without the monitor's own delay."""
        return max(0.0, millis - self.loop_lag * 1000)

    def deadline(self, engine: str) -> float:
        """A stream message's deadline on ``engine`` (seconds): ``hang_deadline_factor`` times
        its recent p99, at least ``min_deadline_ms``, at most ``call_timeout_ms``, plus the
        monitor's own recent event-loop delay (a busy monitor must not take its lateness for a
        hung engine)."""
        now = time.monotonic()
        cached = self._deadlines.get(engine)
        if cached is None or now - cached[1] > DEADLINE_REFRESH:
            p99 = self.router.p(engine, 99) / 1000
            base = min(self.timeout, max(self.min_deadline, self.deadline_factor * p99))
            cached = (base, now)
            self._deadlines[engine] = cached
        return cached[0] + self.loop_lag

    def lagging(self, j: Journal) -> bool:
        """Is the standby past its lag bound for ``j`` (checked on every bar: cheap)?"""
        standby = other(self.router.active)
        if not j.complete or standby in j.broken or not self.router.engines[standby].eligible:
            return False
        return (
            self.feeders[standby].pending > self.max_lag_bars
            or j.lag_ms(standby, time.monotonic()) > self.max_lag_ms
        )

    async def back_pressure(self, j: Journal) -> None:
        """Before a new bar is applied: if the standby lags past its bound (this session's
        oldest unapplied bar too old, or too many bars in all), wait for it to catch up —
        unless it stops taking traffic, then it is not waited for (it is rebuilt later)."""
        standby = other(self.router.active)
        feeder = self.feeders[standby]
        h = self.router.engines[standby]
        if not j.complete or standby in j.broken:
            return
        waited = time.monotonic()
        while h.eligible:
            now = time.monotonic()
            if (
                j.lag_ms(standby, now) <= self.max_lag_ms
                and feeder.behind_total() <= self.max_lag_bars
            ):
                return
            if now - waited > self.timeout + self.batch_timeout:
                return  # never forever: the feeder's own deadline fails a stuck standby first
            await feeder.wait_progress(self.timeout)

    def synced(self, engine: str) -> bool:
        """Can ``engine`` take traffic by choice? Its configuration is the monitor's, it holds
        (or can be levelled at once with) every session: no afresh rebuild pending, its lag
        within bound."""
        if self.config is not None and self.engine_config[engine] != config_version(self.config):
            return False
        feeder = self.feeders[engine]
        if any(
            j.complete and j.applied[engine] == UNKNOWN and engine not in j.broken
            for j in self.journals.values()
        ):
            return False
        return feeder.lag_ms(time.monotonic()) <= self.max_lag_ms

    # --- Probes and configuration ---------------------------------------------------------------

    async def probe(self, engine: str) -> None:
        """One health check of ``engine`` with its own deadline, its configuration checked
        (and re-applied if it differs), then its latency check."""
        started = time.perf_counter()
        try:
            answer = await self.health[engine].Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as e:
            self.router.failed(engine, f"probe: {e.code().name}: {e.details()}")
            return
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            self.router.failed(engine, "probe: NOT_SERVING")
            return
        millis = _millis(started)
        if not await self._check_config(engine):
            return
        self.router.ok(engine, self.net(millis), probe=True)
        self.router.check_latency(engine)
        if self.router.engines[engine].up:
            self.feeders[engine].wake.set()

    async def _check_config(self, engine: str) -> bool:
        """Does ``engine`` hold the monitor's runtime configuration? If not it is given it
        (UpdateConfig with every key) before it takes traffic; the first engine the monitor
        hears from at start sets it (the primary's, as both read the same file)."""
        try:
            got = await self.stubs[engine].GetConfig(
                pb.GetConfigRequest(), timeout=self.timeout, metadata=self.metadata
            )
        except grpc.aio.AioRpcError as e:
            self.router.failed(engine, f"GetConfig: {e.code().name}: {e.details()}")
            return False
        if self.config is None:
            self.config = got.config
            if self.store is not None:
                self.store.save_config(got.config)
        want = config_version(self.config)
        self.engine_config[engine] = config_version(got.config)
        if self.engine_config[engine] == want:
            return True
        log.logger().warning("configuration differs: re-applied", engine=engine)
        try:
            got = await self.stubs[engine].UpdateConfig(
                pb.UpdateConfigRequest(config=self.config),
                timeout=self.timeout,
                metadata=self.admin_metadata,
            )
        except grpc.aio.AioRpcError as e:
            self.router.failed(engine, f"UpdateConfig: {e.code().name}: {e.details()}")
            return False
        self.engine_config[engine] = config_version(got.config)
        if self.engine_config[engine] != want:
            self.router.failed(engine, "its configuration differs from the monitor's")
            return False
        return True

    async def record_signals(
        self, request: pb.StreamRequest, answer: pb.StreamResponse, name: str
    ) -> None:
        """Keeps the session's buy/sell points from what its client was given: a fresh open
        starts an empty book; a session resumed that this monitor never saw starts from a
        snapshot of the engine's state; each update is applied (splices and tails are
        absolute, so an update applied twice changes nothing)."""
        if self.signals is None:
            return
        kind = answer.WhichOneof("kind")
        if kind == "opened":
            o = request.open
            book = self.books.get(name)
            if book is None or not o.resume:
                book = self.books[name] = SignalBook(self.signals, o.symbol, o.timeframe)
                if not o.resume:
                    book.reset([])
                else:
                    snapshot = await self.stubs[answer.engine].GetSnapshot(
                        pb.SnapshotRequest(symbol=o.symbol, timeframe=o.timeframe),
                        timeout=self.batch_timeout,
                        metadata=self.metadata,
                    )
                    a = snapshot.analysis
                    book.reset(list(a.signals), list(a.degrees))
        elif kind == "update" and name in self.books:
            self.books[name].apply(answer.update)

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(e) for e in ENGINES))

    async def _probe_forever(self, engine: str) -> None:
        # One loop per engine: a hung engine's probe (up to the deadline) does not delay the
        # other's.
        while True:
            await asyncio.sleep(self.interval)
            await self.probe(engine)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._probe_forever(e)) for e in ENGINES]
        self._tasks.append(loop.create_task(self._measure_loop()))
        self._tasks.append(loop.create_task(self._sweep_forever()))
        for f in self.feeders.values():
            f.start()
            f.wake.set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for f in self.feeders.values():
            await f.close()
        for a in self.appliers.values():
            await a.close()
        for ch in self.channels.values():
            await ch.close()
        if self.store is not None:
            self.store.close()
        if self.signals is not None:
            self.signals.close()

    # --- Batch calls ----------------------------------------------------------------------------

    def _timeout(self, context: grpc.aio.ServicerContext, limit: float | None = None) -> float:
        limit = self.timeout if limit is None else limit
        left = context.time_remaining()
        return limit if left is None else min(limit, left)

    def _engine_failed(self, engine: str) -> None:
        self.failures[engine].set()
        self.failures[engine] = asyncio.Event()
        # Every bar waiting on it fails over now, not at its own deadline.
        self.appliers[engine].fail(f"{engine} failed: {self.router.engines[engine].last_error}")

    async def _unless_failed(self, engine: str, call: Any) -> Message:
        """The call's answer, or EngineGone as soon as the engine is found failed elsewhere (a
        probe, a stream): a long Analyze on a hung engine does not wait for its deadline."""
        failed = asyncio.ensure_future(self.failures[engine].wait())
        answer = asyncio.ensure_future(call)
        try:
            await asyncio.wait({answer, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        if not answer.done():
            call.cancel()
            answer.cancel()
            raise EngineGone(engine)
        return answer.result()

    async def _level_for(self, engine: str, method: str, request: Message) -> bool:
        """A snapshot is answered only by an engine holding every acknowledged bar of the
        session: levelled with the journal first."""
        if method != "GetSnapshot" or not isinstance(request, pb.SnapshotRequest):
            return True
        j = self.journals.get(session_name(request))
        if j is None or j.behind(engine) == 0:
            return True
        return await self.feeders[engine].level(j, self.batch_timeout)

    async def _forward(
        self, method: str, request: Message, context: grpc.aio.ServicerContext
    ) -> Message:
        started = time.perf_counter()
        errors: list[str] = []
        tried: list[str] = []
        while untried := [e for e in self.router.order() if e not in tried]:
            engine = untried[0]
            tried.append(engine)
            timeout = self._timeout(context, self.batch_timeout if method in BATCH else None)
            if timeout <= 0:
                break
            if not await self._level_for(engine, method, request):
                errors.append(f"{engine}: not level with the journal")
                continue
            attempt, epoch = time.perf_counter(), self.router.epoch
            try:
                call = getattr(self.stubs[engine], method)(
                    request, timeout=timeout, metadata=self.metadata
                )
                answer = await self._unless_failed(engine, call)
            except EngineGone:
                errors.append(f"{engine}: failed meanwhile")
                continue
            except grpc.aio.AioRpcError as e:
                if engine_failed(e.code()):
                    self.router.failed(engine, f"{method}: {e.code().name}")
                    errors.append(f"{engine}: {e.code().name}")
                    continue
                # The engine's own answer to this request (a bad bar, an unknown session...).
                log.call(method, None, None, started, e.code(), e.details())
                await pass_through(context, e)
            if method not in BATCH:
                self.router.ok(engine, self.net(_millis(attempt)), probe=False)
            if self.router.epoch != epoch and engine != self.router.active:
                # Switched away from while it answered: fenced, the call goes to the active.
                self.fenced += 1
                log.logger().warning("late answer discarded", engine=engine, method=method)
                errors.append(f"{engine}: answered after a switch")
                continue
            log.call(method, None, None, started, grpc.StatusCode.OK)
            return _with_epoch(answer, self.router.epoch)
        message = "no engine serves" + (f" ({'; '.join(errors)})" if errors else "")
        log.call(method, None, None, started, grpc.StatusCode.UNAVAILABLE, message)
        await context.abort(grpc.StatusCode.UNAVAILABLE, message)
        raise AssertionError("unreachable")

    async def _admit_call(self, context: grpc.aio.ServicerContext) -> None:
        if self.calls >= self.max_calls:
            self.refused += 1
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many calls in flight (system.max_calls = {self.max_calls})",
            )

    def _unary(self, method: str, cls: type[Message]) -> Any:
        async def handle(data: bytes, context: grpc.aio.ServicerContext) -> Message:
            request = await self._decode(cls, data, context)
            await self._admit_call(context)
            self.calls += 1
            try:
                return await self._forward(method, request, context)
            finally:
                self.calls -= 1

        return handle

    async def _decode(self, cls: type[Any], data: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            return parse(cls, data)
        except Undecodable as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise AssertionError("unreachable") from None

    async def update_config(
        self, data: bytes, context: grpc.aio.ServicerContext
    ) -> pb.ConfigResponse:
        """Replicated: the active engine validates and applies it (a refusal passes through,
        nothing applied anywhere); the monitor keeps the result and gives the other engine
        every key of it. An engine that cannot take it now (down, restarting) is given it
        before it takes traffic again (its probe compares the digests)."""
        request = await self._decode(pb.UpdateConfigRequest, data, context)
        started = time.perf_counter()
        timeout = self._timeout(context)
        for engine in self.router.order():
            try:
                answer = await self.stubs[engine].UpdateConfig(
                    request, timeout=timeout, metadata=self.admin_metadata
                )
            except grpc.aio.AioRpcError as e:
                if not engine_failed(e.code()):
                    log.call("UpdateConfig", None, None, started, e.code(), e.details())
                    await pass_through(context, e)
                self.router.failed(engine, f"UpdateConfig: {e.code().name}")
                continue
            self.config = answer.config
            if self.store is not None:
                self.store.save_config(answer.config)
            self.engine_config[engine] = config_version(answer.config)
            rest = other(engine)
            if not await self._check_config(rest):
                log.logger().warning("configuration not applied yet", engine=rest)
            log.call("UpdateConfig", None, None, started, grpc.StatusCode.OK)
            answer.config_version = config_version(answer.config)
            return answer
        await context.abort(grpc.StatusCode.UNAVAILABLE, "no engine serves")
        raise AssertionError("unreachable")

    # --- Streams --------------------------------------------------------------------------------

    async def stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        if self.streams >= self.max_streams:
            self.refused += 1
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many streams (system.max_streams = {self.max_streams})",
            )
        self.streams += 1
        relay = Relay(
            self,
            lambda: self._timeout(context),
            lambda: self._timeout(context, self.batch_timeout),
        )
        try:
            async for data in requests:
                started = time.perf_counter()
                request = await self._decode(pb.StreamRequest, data, context)
                seq = request.bar.seq if request.HasField("bar") else 0
                try:
                    answer = await relay.handle(request)
                except Refused as r:
                    log.call("Stream", relay.name, seq, started, r.code, r.details)
                    await context.abort(r.code, r.details, r.trailers)
                log.call("Stream", relay.name, seq, started, grpc.StatusCode.OK)
                yield answer
        finally:
            self.streams -= 1
            relay.close()

    def handler(self) -> grpc.GenericRpcHandler:
        # Requests arrive as bytes and are decoded here: an undecodable one is INVALID_ARGUMENT
        # (grpcio's own decoding failure would be an INTERNAL naming a Python exception).
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._unary(name, req),
                request_deserializer=None,
                response_serializer=resp.SerializeToString,
            )
            for name, (req, resp) in UNARY.items()
        }
        handlers["UpdateConfig"] = grpc.unary_unary_rpc_method_handler(
            self.update_config,
            request_deserializer=None,
            response_serializer=pb.ConfigResponse.SerializeToString,
        )
        handlers["Stream"] = grpc.stream_stream_rpc_method_handler(
            self.stream,
            request_deserializer=None,
            response_serializer=pb.StreamResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    # --- Admin ----------------------------------------------------------------------------------

    def status(self) -> pb.StatusResponse:
        r = self.router
        now = time.monotonic()
        want = config_version(self.config) if self.config is not None else ""
        engines = []
        for e in ENGINES:
            h = r.engines[e]
            feeder = self.feeders[e]
            complete = [j for j in self.journals.values() if j.complete]
            engines.append(
                pb.EngineStatus(
                    engine=e,
                    address=h.address,
                    state=h.state,
                    eligible=h.eligible,
                    p50_ms=r.p(e, 50),
                    p99_ms=r.p(e, 99),
                    consecutive_ok=h.consecutive_ok,
                    consecutive_failed=h.consecutive_failed,
                    lag_bars=sum(max(0, j.behind(e)) for j in complete),
                    last_error=h.last_error,
                    slow=h.slow,
                    resyncing=sum(1 for j in complete if j.applied[e] == UNKNOWN),
                    lag_ms=feeder.lag_ms(now),
                    config_synced=bool(want) and self.engine_config[e] == want,
                    config_version=self.engine_config[e],
                )
            )
        serving = any(h.eligible for h in r.engines.values())
        return pb.StatusResponse(
            active=r.active if serving else "",
            epoch=r.epoch,
            mode=r.mode,
            engines=engines,
            sessions=len(self.journals),
            last_failover_ms=r.last_failover_ms,
            last_failover_reason=r.last_failover_reason,
            switches=[
                pb.Switch(epoch=w.epoch, engine=w.engine, at_ms=w.at_ms, reason=w.reason)
                for w in r.switches
            ],
        )


class Admin(rpc.AdminServicer):
    """``trading.v1.Admin``: the status and the manual overrides."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    async def Status(  # noqa: N802 (the generated servicer's name)
        self, request: pb.StatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.StatusResponse:
        return self.monitor.status()

    async def SetMode(  # noqa: N802
        self, request: pb.SetModeRequest, context: grpc.aio.ServicerContext
    ) -> pb.StatusResponse:
        try:
            self.monitor.router.set_mode(request.mode)
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotServing as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        log.logger().info("mode set", mode=request.mode, epoch=self.monitor.router.epoch)
        return self.monitor.status()
