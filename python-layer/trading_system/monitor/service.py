"""The monitor's services: ``trading.v1.Trading`` forwarded to the engines, mirrored streams,
health probes, and ``trading.v1.Admin`` (docs/MONITOR.md).

- Batch calls (``Analyze``, ``GetSnapshot``, ``GetInfo``, ``GetConfig``) go to the active engine
  and, when it fails (UNAVAILABLE, DEADLINE_EXCEEDED), to the other: they are idempotent.
  ``UpdateConfig`` goes to both (they must keep the same configuration).
- A stream is mirrored (:mod:`.mirror`).
- Every call to an engine has a deadline (``system.call_timeout_ms``); every probe too. After
  each round of probes the router checks the engines' latency (:mod:`.router`).
- Only the active engine's answers are delivered: an answer that arrives after a switch from
  the engine switched away from is discarded and the call sent to the active one (the fence).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trading_system.config import FileConfig
from trading_system.monitor import ENGINES
from trading_system.monitor.mirror import Journal, Mirror, Refused, engine_failed, rebuild
from trading_system.monitor.router import NotServing, Router
from trading_system.monitor.store import Store
from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc
from trading_system.server import SERVICE_NAME, log
from trading_system.signal_store import SignalBook, SignalStore

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
"""Calls whose size the client chooses: ``system.batch_timeout_ms`` instead of the call one."""
UNARY = {
    "Analyze": (pb.AnalyzeRequest, pb.AnalyzeResponse),
    "GetSnapshot": (pb.SnapshotRequest, pb.SnapshotResponse),
    "GetInfo": (pb.InfoRequest, pb.InfoResponse),
    "GetConfig": (pb.GetConfigRequest, pb.ConfigResponse),
}


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
        m.epoch = epoch  # type: ignore[attr-defined]
    return m


class Monitor:
    """The monitor's state: the router, one channel per engine, the sessions' journals."""

    def __init__(self, cfg: FileConfig, addresses: dict[str, str]) -> None:
        system = cfg.system
        self.router = Router(
            str(getattr(system.primary_engine, "value", system.primary_engine)), addresses, system
        )
        self.timeout = system.call_timeout_ms / 1000
        self.batch_timeout = system.batch_timeout_ms / 1000
        self.failures = {e: asyncio.Event() for e in ENGINES}
        """Set when the engine is found failed (then replaced by a fresh event)."""
        self.interval = system.health_check_interval_ms / 1000
        token = cfg.server.auth_token
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.channels = {
            e: grpc.aio.insecure_channel(addresses[e], options=CHANNEL_OPTIONS) for e in ENGINES
        }
        self.stubs = {e: rpc.TradingStub(ch) for e, ch in self.channels.items()}
        self.health = {e: health_pb2_grpc.HealthStub(ch) for e, ch in self.channels.items()}
        self.journals: dict[str, Journal] = {}
        """Every session streamed through this monitor, by name (``symbol/timeframe``)."""
        self.signals = SignalStore(system.signals_file) if system.signals_file else None
        self.books: dict[str, SignalBook] = {}
        """Per session, the buy/sell points its clients were given (kept in ``signals``)."""
        self.store = Store(system.state_file) if system.state_file else None
        if self.store is not None:
            self._restore(self.store)
        self.rebuilding: dict[str, int] = {e: 0 for e in ENGINES}
        """Sessions being rebuilt on each engine right now."""
        self.resyncs = 0
        self.streaming: dict[str, Mirror] = {}
        """The sessions a client is streaming right now (their mirror keeps them in sync)."""
        self._idle: dict[str, asyncio.Task[None]] = {}
        self.rebuild_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        """One rebuild per (session, engine) at a time."""
        self.router.synced = self.synced
        self.router.on_failed = self._engine_failed
        self.fenced = 0
        """Answers discarded because their engine was switched away from meanwhile."""
        self._probing: list[asyncio.Task[None]] = []

    def _restore(self, store: Store) -> None:
        """Takes over a previous monitor's saved state (none: a first start)."""
        if store.load_router(self.router):
            self.router.restarted()
        else:
            store.save_router(self.router)
        self.router.on_change = lambda: store.save_router(self.router)
        for name, (opened, last_seq, lag, bars) in store.load_journals().items():
            self.journals[name] = Journal(name, opened, bars, last_seq, lag, store)

    # --- Probes ---------------------------------------------------------------------------------

    async def probe(self, engine: str) -> None:
        """One health check of ``engine`` with its own deadline, then its latency check."""
        started = time.perf_counter()
        try:
            answer = await self.health[engine].Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as e:
            self.router.failed(engine, f"probe: {e.code().name}: {e.details()}")
            return
        if answer.status == health_pb2.HealthCheckResponse.SERVING:
            self.router.ok(engine, _millis(started), probe=True)
            self.router.check_latency(engine)
            self._resync_idle(engine)
        else:
            self.router.failed(engine, "probe: NOT_SERVING")

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
                    book.reset(list(snapshot.analysis.signals))
        elif kind == "update" and name in self.books:
            self.books[name].apply(answer.update)

    def synced(self, engine: str) -> bool:
        """Does ``engine`` hold every session the monitor can rebuild, up to date?"""
        return self.rebuilding[engine] == 0 and not any(
            j.complete and j.lag.get(engine, 0) for j in self.journals.values()
        )

    def _resync_idle(self, engine: str) -> None:
        """Starts rebuilding, one after the other, the sessions no client is streaming that
        ``engine`` lags on (a running stream's mirror rebuilds its own session)."""
        running = self._idle.get(engine)
        if not self.router.engines[engine].eligible or (running is not None and not running.done()):
            return
        lagging = [
            j
            for name, j in self.journals.items()
            if j.complete and j.lag.get(engine, 0) and name not in self.streaming
        ]
        if lagging:
            self._idle[engine] = asyncio.ensure_future(self._rebuild_idle(engine, lagging))

    async def _rebuild_idle(self, engine: str, journals: list[Journal]) -> None:
        for j in journals:
            if j.name in self.streaming or self.journals.get(j.name) is not j:
                continue  # a stream took it over, or it was opened afresh
            leg = await rebuild(self, j, engine)
            if leg is None:
                return
            leg.cancel()  # the session stays on the engine; only this stream ends
            j.set_lag(engine, 0)  # no await since the rebuild ended: it holds every bar

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
        self._probing = [loop.create_task(self._probe_forever(e)) for e in ENGINES]

    async def close(self) -> None:
        for task in [*self._probing, *self._idle.values()]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
            self.router.ok(engine, _millis(attempt), probe=False)
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

    def _unary(self, method: str) -> Any:
        async def handle(request: Message, context: grpc.aio.ServicerContext) -> Message:
            return await self._forward(method, request, context)

        return handle

    async def update_config(
        self, request: pb.UpdateConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ConfigResponse:
        """Applied on both engines (they must start new sessions alike); the active's answer."""
        started = time.perf_counter()
        timeout = self._timeout(context)
        results = await asyncio.gather(
            *(
                self.stubs[e].UpdateConfig(request, timeout=timeout, metadata=self.metadata)
                for e in ENGINES
            ),
            return_exceptions=True,
        )
        by_engine = dict(zip(ENGINES, results, strict=True))
        for engine in self.router.order():
            r = by_engine[engine]
            if isinstance(r, pb.ConfigResponse):
                log.call("UpdateConfig", None, None, started, grpc.StatusCode.OK)
                return r
            if isinstance(r, grpc.aio.AioRpcError) and not engine_failed(r.code()):
                log.call("UpdateConfig", None, None, started, r.code(), r.details())
                await pass_through(context, r)
            self.router.failed(engine, f"UpdateConfig: {r}")
        await context.abort(grpc.StatusCode.UNAVAILABLE, "no engine serves")
        raise AssertionError("unreachable")

    # --- Streams --------------------------------------------------------------------------------

    async def stream(
        self, requests: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        mirror = Mirror(self, lambda: self._timeout(context))
        try:
            async for request in requests:
                started = time.perf_counter()
                seq = request.bar.seq if request.HasField("bar") else 0
                try:
                    answer = await mirror.handle(request)
                except Refused as r:
                    log.call("Stream", mirror.name, seq, started, r.code, r.details)
                    await context.abort(r.code, r.details, r.trailers)
                log.call("Stream", mirror.name, seq, started, grpc.StatusCode.OK)
                yield answer
        finally:
            mirror.close()

    def handler(self) -> grpc.GenericRpcHandler:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._unary(name),
                request_deserializer=req.FromString,
                response_serializer=resp.SerializeToString,
            )
            for name, (req, resp) in UNARY.items()
        }
        handlers["UpdateConfig"] = grpc.unary_unary_rpc_method_handler(
            self.update_config,
            request_deserializer=pb.UpdateConfigRequest.FromString,
            response_serializer=pb.ConfigResponse.SerializeToString,
        )
        handlers["Stream"] = grpc.stream_stream_rpc_method_handler(
            self.stream,
            request_deserializer=pb.StreamRequest.FromString,
            response_serializer=pb.StreamResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    # --- Admin ----------------------------------------------------------------------------------

    def status(self) -> pb.StatusResponse:
        r = self.router
        engines = []
        for e in ENGINES:
            h = r.engines[e]
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
                    lag_bars=sum(j.lag.get(e, 0) for j in self.journals.values()),
                    last_error=h.last_error,
                    slow=h.slow,
                    resyncing=self.rebuilding[e],
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
