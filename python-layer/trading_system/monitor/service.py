"""The monitor's services: ``trading.v1.Trading`` forwarded to the engines, mirrored streams,
health probes, and ``trading.v1.Admin`` (docs/MONITOR.md).

- Batch calls (``Analyze``, ``GetSnapshot``, ``GetInfo``, ``GetConfig``) go to the active engine
  and, when it fails (UNAVAILABLE, DEADLINE_EXCEEDED), to the other: they are idempotent.
  ``UpdateConfig`` goes to both (they must keep the same configuration).
- A stream is mirrored: every message goes to both engines, and the client gets the active
  engine's answer once both have answered (or the one that did not is known to have failed).
  Sequence numbers are the client's; exactly-once is the engines' own bookkeeping, which stays
  identical on both because both see the same messages in the same order.
- Every call to an engine has a deadline (``system.call_timeout_ms``); every probe too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trading_system.config import FileConfig
from trading_system.monitor import ENGINES
from trading_system.monitor.router import Router
from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc
from trading_system.server import SERVICE_NAME, log

FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Statuses that mean the engine failed (not the request): the call goes to the other engine."""
CHANNEL_OPTIONS = [
    # A restarted engine is seen within a probe interval or two, not after minutes of backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]
UNARY = {
    "Analyze": (pb.AnalyzeRequest, pb.AnalyzeResponse),
    "GetSnapshot": (pb.SnapshotRequest, pb.SnapshotResponse),
    "GetInfo": (pb.InfoRequest, pb.InfoResponse),
    "GetConfig": (pb.GetConfigRequest, pb.ConfigResponse),
}


async def pass_through(context: grpc.aio.ServicerContext, e: grpc.aio.AioRpcError) -> None:
    """Ends the call with an engine's own error: code, message and trailers (the
    ``grpc-status-details-bin`` with the BadRequest details among them)."""
    trailers = tuple((k, v) for k, v in (e.trailing_metadata() or ()))
    await context.abort(e.code(), e.details() or "", trailers)


class LegFailed(Exception):
    """An engine's side of a mirrored stream broke (the engine failed, not the request)."""


def _millis(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _with_epoch(m: Message, epoch: int) -> Message:
    if "epoch" in m.DESCRIPTOR.fields_by_name:
        m.epoch = epoch  # type: ignore[attr-defined]
    return m


@dataclass
class Journal:
    """What the monitor knows of one session: how it was opened, the bar messages it accepted
    (in order, for a re-sync), and per engine how many of them that engine has not applied (it
    left the session's mirror). ``complete``: the monitor saw the session opened (not resumed),
    so the journal holds every bar and can rebuild the session on an engine."""

    open: pb.OpenSession | None = None
    bars: list[pb.StreamRequest] = field(default_factory=list)
    last_seq: int = 0
    lag: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.open is not None


class Leg:
    """One engine's stream of a mirrored session."""

    def __init__(self, engine: str, call: Any) -> None:
        self.engine = engine
        self.call = call

    async def _exchange(self, request: pb.StreamRequest) -> pb.StreamResponse:
        try:
            await self.call.write(request)
            answer = await self.call.read()
        except asyncio.InvalidStateError as e:  # the call already ended
            raise LegFailed(f"stream closed: {e}") from None
        if answer is grpc.aio.EOF:
            code = await self.call.code()
            if code in FAILOVER_CODES or code is None or code == grpc.StatusCode.OK:
                raise LegFailed(f"stream ended ({code.name if code else 'no status'})")
            details = await self.call.details()
            raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)
        assert isinstance(answer, pb.StreamResponse)
        return answer

    async def exchange(self, request: pb.StreamRequest, timeout: float) -> pb.StreamResponse:
        """Sends one message and reads its answer within ``timeout``. Raises LegFailed when the
        engine failed, AioRpcError (not a failover code) when it ended the stream on purpose."""
        try:
            return await asyncio.wait_for(self._exchange(request), timeout)
        except TimeoutError:
            raise LegFailed("DEADLINE_EXCEEDED: no answer within the call timeout") from None
        except grpc.aio.AioRpcError as e:
            if e.code() in FAILOVER_CODES or e.code() == grpc.StatusCode.CANCELLED:
                raise LegFailed(f"{e.code().name}: {e.details()}") from None
            raise

    def cancel(self) -> None:
        self.call.cancel()


class Monitor:
    """The monitor's state: the router, one channel per engine, the sessions' journals."""

    def __init__(self, cfg: FileConfig, addresses: dict[str, str]) -> None:
        system = cfg.system
        self.router = Router(
            str(getattr(system.primary_engine, "value", system.primary_engine)),
            addresses,
            auto_failback=system.auto_failback,
            failover_enabled=system.failover_enabled,
        )
        self.timeout = system.call_timeout_ms / 1000
        self.interval = system.health_check_interval_ms / 1000
        token = cfg.server.auth_token
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.channels = {
            e: grpc.aio.insecure_channel(addresses[e], options=CHANNEL_OPTIONS) for e in ENGINES
        }
        self.stubs = {e: rpc.TradingStub(ch) for e, ch in self.channels.items()}
        self.health = {e: health_pb2_grpc.HealthStub(ch) for e, ch in self.channels.items()}
        self.journals: dict[str, Journal] = {}
        self._probing: asyncio.Task[None] | None = None

    # --- Probes ---------------------------------------------------------------------------------

    async def probe(self, engine: str) -> None:
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
        else:
            self.router.failed(engine, "probe: NOT_SERVING")

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(e) for e in ENGINES))

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.probe_all()

    def start(self) -> None:
        self._probing = asyncio.get_running_loop().create_task(self._probe_forever())

    async def close(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probing
        for ch in self.channels.values():
            await ch.close()

    # --- Batch calls ----------------------------------------------------------------------------

    def _timeout(self, context: grpc.aio.ServicerContext) -> float:
        left = context.time_remaining()
        return self.timeout if left is None else min(self.timeout, left)

    async def _forward(
        self, method: str, request: Message, context: grpc.aio.ServicerContext
    ) -> Message:
        started = time.perf_counter()
        errors = []
        for engine in self.router.order():
            timeout = self._timeout(context)
            if timeout <= 0:
                break
            attempt = time.perf_counter()
            try:
                answer = await getattr(self.stubs[engine], method)(
                    request, timeout=timeout, metadata=self.metadata
                )
            except grpc.aio.AioRpcError as e:
                if e.code() in FAILOVER_CODES:
                    self.router.failed(engine, f"{method}: {e.code().name}")
                    errors.append(f"{engine}: {e.code().name}")
                    continue
                # The engine's own answer to this request (a bad bar, an unknown session...).
                log.call(method, None, None, started, e.code(), e.details())
                await pass_through(context, e)
            self.router.ok(engine, _millis(attempt), probe=False)
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
            if isinstance(r, grpc.aio.AioRpcError) and r.code() not in FAILOVER_CODES:
                log.call("UpdateConfig", None, None, started, r.code(), r.details())
                await pass_through(context, r)
            self.router.failed(engine, f"UpdateConfig: {r}")
        await context.abort(grpc.StatusCode.UNAVAILABLE, "no engine serves")
        raise AssertionError("unreachable")

    # --- Streams --------------------------------------------------------------------------------

    async def stream(
        self, requests: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        legs = {e: Leg(e, self.stubs[e].Stream(metadata=self.metadata)) for e in ENGINES}
        journal: Journal | None = None
        try:
            async for request in requests:
                if journal is not None and journal.complete:
                    # An engine that left the mirror and is eligible again is rebuilt first.
                    for e in ENGINES:
                        if e not in legs and self.router.engines[e].eligible:
                            leg = await self._resync(e, journal)
                            if leg is not None:
                                legs[e] = leg
                started = time.perf_counter()
                seq = request.bar.seq if request.HasField("bar") else 0
                exchanges = {
                    e: asyncio.ensure_future(leg.exchange(request, self._timeout(context)))
                    for e, leg in legs.items()
                }
                answers: dict[str, pb.StreamResponse] = {}
                ended: dict[str, grpc.aio.AioRpcError] = {}
                for engine, task in exchanges.items():
                    try:
                        answers[engine] = await task
                        self.router.ok(engine, _millis(started), probe=False)
                    except grpc.aio.AioRpcError as e:
                        ended[engine] = e
                        legs.pop(engine).cancel()
                    except LegFailed as e:
                        self.router.failed(engine, f"Stream: {e}")
                        legs.pop(engine).cancel()
                order = self.router.order()
                chosen = next((e for e in order if e in answers), None)
                if chosen is None:
                    failed = next((ended[e] for e in order if e in ended), None)
                    if failed is not None:
                        log.call("Stream", None, seq, started, failed.code(), failed.details())
                        await pass_through(context, failed)
                    log.call("Stream", None, seq, started, grpc.StatusCode.UNAVAILABLE)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "no engine serves")
                answer = answers[chosen]
                if len(answers) == 2 and answers["rust"].WhichOneof("kind") != answers[
                    "python"
                ].WhichOneof("kind"):
                    log.logger().warning("engines answered differently", seq=seq, chosen=chosen)
                journal = self._account(journal, request, answer, legs)
                answer.epoch = self.router.epoch
                log.call("Stream", None, seq, started, grpc.StatusCode.OK)
                yield answer
        finally:
            for leg in legs.values():
                leg.cancel()

    def _account(
        self,
        journal: Journal | None,
        request: pb.StreamRequest,
        answer: pb.StreamResponse,
        legs: dict[str, Leg],
    ) -> Journal | None:
        """Keeps the session's journal: opened sessions, accepted bars, engines lagging."""
        kind = answer.WhichOneof("kind")
        if kind == "opened":
            opened = answer.opened
            known = self.journals.get(opened.session)
            if not opened.resumed:
                journal = Journal(open=request.open)
            elif known is not None and known.last_seq == opened.last_seq:
                journal = known
            else:  # resumed a session the monitor did not see: it cannot rebuild it
                journal = Journal(last_seq=opened.last_seq)
            self.journals[opened.session] = journal
            for e in ENGINES:
                if e not in legs:
                    journal.lag.setdefault(e, 0)
        elif kind == "update" and journal is not None and answer.seq == journal.last_seq + 1:
            journal.last_seq = answer.seq
            if journal.complete:
                journal.bars.append(request)
            for e in ENGINES:
                if e not in legs:
                    journal.lag[e] = journal.lag.get(e, 0) + 1
        return journal

    async def _resync(self, engine: str, journal: Journal) -> Leg | None:
        """Rebuilds a session on an engine that left its mirror and is eligible again: a fresh
        session (same symbol, timeframe, configuration) and every accepted bar replayed from the
        journal. The leg, or None if the engine failed again (then it is reported failed)."""
        assert journal.open is not None
        started = time.perf_counter()
        leg = Leg(engine, self.stubs[engine].Stream(metadata=self.metadata))
        fresh = pb.OpenSession()
        fresh.CopyFrom(journal.open)
        fresh.resume = False
        try:
            first = await leg.exchange(pb.StreamRequest(open=fresh), self.timeout)
            if first.WhichOneof("kind") != "opened":
                raise LegFailed(f"re-sync open refused: {first}")
            for request in journal.bars:
                answer = await leg.exchange(request, self.timeout)
                if answer.WhichOneof("kind") != "update" or answer.seq != request.bar.seq:
                    raise LegFailed(f"re-sync diverged at seq {request.bar.seq}")
        except (LegFailed, grpc.aio.AioRpcError) as e:
            leg.cancel()
            self.router.failed(engine, f"re-sync: {e}")
            return None
        journal.lag[engine] = 0
        log.logger().info(
            "re-synced",
            engine=engine,
            session=f"{fresh.symbol}/{fresh.timeframe}",
            bars=len(journal.bars),
            latency_ms=round(_millis(started), 3),
        )
        return leg

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
                    p50_ms=h.p(50),
                    p99_ms=h.p(99),
                    consecutive_ok=h.consecutive_ok,
                    consecutive_failed=h.consecutive_failed,
                    lag_bars=sum(j.lag.get(e, 0) for j in self.journals.values()),
                    last_error=h.last_error,
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
        log.logger().info("mode set", mode=request.mode, epoch=self.monitor.router.epoch)
        return self.monitor.status()
