"""The ``trading.v1.Trading`` service over the pure-Python engine (docs/GRPC.md).

Handlers are registered by hand rather than through the generated ``add_TradingServicer_to_server``
so that each request's deserializer sees its encoded size: a unary request above
``server.max_message_bytes`` is refused (RESOURCE_EXHAUSTED) without being parsed.

Analyze and GetSnapshot build whole documents and run in a thread pool, so the event loop stays
free for health checks; a stream message is one bar's work and runs inline, which also makes
each message atomic with respect to the others. ``Replica.Apply`` carries stream messages of many
sessions: each is applied inline too, through the same :meth:`Session.handle`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from trading_system import __version__, convert
from trading_system.config import EngineConfig
from trading_system.display import show
from trading_system.engine.analysis import analyze
from trading_system.errors import InvalidBars, StateError
from trading_system.proto import trading_pb2 as pb
from trading_system.server import (
    ENGINE,
    PROTOCOL,
    REPLICA_SERVICE_NAME,
    SERVICE_NAME,
    log,
    requests,
)
from trading_system.server.sessions import (
    Session,
    Sessions,
    not_found,
    session_name,
    shown_name,
)
from trading_system.server.status import (
    Failure,
    FieldViolation,
    abort,
    invalid_bars,
    stream_error,
)

M = TypeVar("M", bound=Message)
P = ParamSpec("P")
T = TypeVar("T")

_CODES = {c.value[0]: c for c in grpc.StatusCode}


INLINE_CATCH_UP = 64
"""A catch-up entry of at most this many bars is applied on the event loop (well under a
millisecond); a longer one in a worker thread. The monitor's steady feed is a few bars per
session per call, where a thread hop per entry cost more than the bars themselves."""

NAMES_KEPT = 4096
"""Valid session names Apply remembers (symbol and timeframe checked once, not per message);
the memory is emptied when full."""


@dataclass(frozen=True, slots=True)
class Sized(Generic[M]):
    """A request and its encoded size; ``message`` is None when it was too large to parse or
    could not be decoded (``undecodable`` then names the message type)."""

    size: int
    message: M | None
    undecodable: str | None = None


def misread(m: Message) -> bool:
    """Whether a parsed message holds, at any depth, an unknown field whose number is one of its
    message's fields: a known field sent with the wrong wire type, which protobuf keeps as
    unknown where prost (the Rust server) refuses the message."""
    unknown = UnknownFieldSet(m)
    if len(unknown):
        numbers = m.DESCRIPTOR.fields_by_number
        if any(f.field_number in numbers for f in unknown):
            return True
    for fd, value in m.ListFields():
        if fd.message_type is None:
            continue
        if fd.is_repeated:
            if any(misread(x) for x in value):
                return True
        elif misread(value):
            return True
    return False


def undecodable(full_name: str) -> Failure:
    """INVALID_ARGUMENT for bytes that are not a valid message of the request type."""
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {full_name}")


class TradingService:
    """The service state: the configuration new sessions and Analyze calls start from, the
    sessions, and the limits."""

    def __init__(
        self,
        config: EngineConfig,
        max_message_bytes: int,
        replay_window: int,
        executor: Executor,
        max_sessions: int = 2**64 - 1,
    ) -> None:
        self.config = config
        self.max_message_bytes = max_message_bytes
        self.sessions = Sessions(replay_window, max_sessions)
        self.executor = executor
        self.started = time.monotonic()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._names: dict[tuple[str, str], str] = {}

    @property
    def busy(self) -> int:
        """How many calls are running in worker threads (a cancelled call's thread runs on)."""
        with self._busy_lock:
            return self._busy

    async def _in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        def work() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                with self._busy_lock:
                    self._busy -= 1

        with self._busy_lock:
            self._busy += 1
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    # --- Plumbing ------------------------------------------------------------------------------

    def _deserializer(self, cls: type[M], parse_all: bool = False) -> Callable[[bytes], Sized[M]]:
        limit = self.max_message_bytes

        full_name = cls.DESCRIPTOR.full_name

        def read(data: bytes) -> Sized[M]:
            n = len(data)
            if not parse_all and n > limit:
                return Sized(n, None)
            try:
                m = cls.FromString(data)
            except DecodeError:
                return Sized(n, None, full_name)
            if misread(m):
                return Sized(n, None, full_name)
            return Sized(n, m)

        return read

    def _too_large(self, size: int) -> Failure:
        return Failure(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"request of {size} bytes exceeds server.max_message_bytes ({self.max_message_bytes})",
        )

    def _unary(
        self,
        name: str,
        call: Callable[[Any], Awaitable[tuple[Message, str | None]]],
        request: type[Message],
        fields: Callable[[Any], dict[str, Any]] | None = None,
    ) -> grpc.RpcMethodHandler:
        """A unary handler; ``fields`` gives a request's extra fields for its log line."""

        async def handle(req: Sized[Any], context: grpc.aio.ServicerContext) -> Message:
            started = time.perf_counter()
            session: str | None = None
            extra = {} if fields is None or req.message is None else fields(req.message)
            # At debug, a line when a call starts too (shows what is in flight).
            log.logger().debug("call started", method=name)
            try:
                if req.undecodable is not None:
                    raise undecodable(req.undecodable)
                if req.message is None:
                    raise self._too_large(req.size)
                answer, session = await call(req.message)
            except Failure as f:
                session = f.session
                log.call(name, session, None, started, f.code, f.message, **extra)
                await abort(context, f)
            except asyncio.CancelledError:
                log.call(name, session, None, started, grpc.StatusCode.CANCELLED, **extra)
                raise
            except Exception as e:
                log.logger().exception("call failed", method=name)
                log.call(name, session, None, started, grpc.StatusCode.INTERNAL, str(e), **extra)
                await context.abort(grpc.StatusCode.INTERNAL, f"the call failed: {e}")
            log.call(name, session, None, started, grpc.StatusCode.OK, **extra)
            return answer

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=self._deserializer(request),
            response_serializer=_serialize,
        )

    def handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        """The handlers of both services (``Trading`` and ``Replica``), for
        ``server.add_generic_rpc_handlers``."""
        return (self.handler(), self.replica_handler())

    def replica_handler(self) -> grpc.GenericRpcHandler:
        """The ``Replica`` service's method handlers."""
        return grpc.method_handlers_generic_handler(
            REPLICA_SERVICE_NAME,
            {
                "CatchUp": self._unary(
                    "CatchUp", self.catch_up, pb.CatchUpRequest, fields=_catch_up_fields
                ),
                "CloseSessions": self._unary(
                    "CloseSessions", self.close_sessions, pb.CloseSessionsRequest
                ),
                # Parsed whatever their size: an oversized request is refused in-band,
                # message by message, with their sequence numbers.
                "Apply": grpc.stream_stream_rpc_method_handler(
                    self.apply,
                    request_deserializer=self._deserializer(pb.ApplyRequest, parse_all=True),
                    response_serializer=_serialize,
                ),
            },
        )

    def handler(self) -> grpc.GenericRpcHandler:
        """The ``Trading`` service's method handlers."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Analyze": self._unary("Analyze", self.analyze, pb.AnalyzeRequest),
                "GetSnapshot": self._unary("GetSnapshot", self.snapshot, pb.SnapshotRequest),
                "GetInfo": self._unary("GetInfo", self.info, pb.InfoRequest),
                "GetConfig": self._unary("GetConfig", self.get_config, pb.GetConfigRequest),
                "UpdateConfig": self._unary(
                    "UpdateConfig", self.update_config, pb.UpdateConfigRequest
                ),
                # Stream messages are always parsed: an oversized bar message is refused
                # in-band, with its sequence number.
                "Stream": grpc.stream_stream_rpc_method_handler(
                    self.stream,
                    request_deserializer=self._deserializer(pb.StreamRequest, parse_all=True),
                    response_serializer=_serialize,
                ),
            },
        )

    def _config_message(self) -> pb.EngineConfig:
        return convert.engine_config(self.config.to_dict())

    def _config_answer(self) -> pb.ConfigResponse:
        config = self._config_message()
        return pb.ConfigResponse(
            engine=ENGINE, config=config, config_version=convert.config_version(config)
        )

    # --- Unary calls: (answer, session name for the log) ---------------------------------------

    async def analyze(self, req: pb.AnalyzeRequest) -> tuple[pb.AnalyzeResponse, None]:
        cfg = requests.apply_config(self.config, req.config if req.HasField("config") else None)
        return await self._in_thread(_analyze, req, cfg), None

    async def snapshot(self, req: pb.SnapshotRequest) -> tuple[pb.SnapshotResponse, str]:
        name = session_name(req.symbol, req.timeframe, "")
        s = self.sessions.get(name)
        if s is None:
            missing = not_found(name)
            missing.session = name
            raise missing
        self.sessions.touch(s)
        async with s.lock:
            return await self._locked_in_thread(s.snapshot), name

    async def _locked_in_thread(self, fn: Callable[[], T]) -> T:
        """``fn`` in a worker thread, for a caller holding a session's lock."""
        work = asyncio.ensure_future(self._in_thread(fn))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # The thread still uses the session: keep it locked until the thread is done.
            await asyncio.wait([work])
            raise

    async def info(self, _: pb.InfoRequest) -> tuple[pb.InfoResponse, None]:
        config = self._config_message()
        return pb.InfoResponse(
            engine=ENGINE,
            version=__version__,
            uptime_ms=int((time.monotonic() - self.started) * 1000),
            sessions=len(self.sessions),
            config=config,
            protocol=PROTOCOL,
            config_version=convert.config_version(config),
        ), None

    async def get_config(self, _: pb.GetConfigRequest) -> tuple[pb.ConfigResponse, None]:
        return self._config_answer(), None

    async def update_config(self, req: pb.UpdateConfigRequest) -> tuple[pb.ConfigResponse, None]:
        # Validated as a whole; running sessions keep the configuration they were opened with.
        self.config = requests.apply_config(
            self.config, req.config if req.HasField("config") else None
        )
        return self._config_answer(), None

    # --- Replica ------------------------------------------------------------------------------

    async def catch_up(self, req: pb.CatchUpRequest) -> tuple[pb.CatchUpResponse, None]:
        """Each entry on its own, in order: refused entries are answered in-band."""
        answers = [await self._catch_up_one(entry) for entry in req.sessions]
        return pb.CatchUpResponse(engine=ENGINE, sessions=answers), None

    async def _catch_up_one(self, entry: pb.SessionCatchUp) -> pb.SessionCaughtUp:
        o = entry.open
        shown = shown_name(o.symbol, o.timeframe)
        found: Session | None = None
        try:
            name = session_name(o.symbol, o.timeframe, "open.")
            found = self.sessions.get(name)
            if entry.fresh:
                base = [] if convert.is_empty(entry.base) else requests.rows(entry.base, "base")
                if not base and entry.after_seq != 0:
                    why = f"must be 0 for a fresh session, got {entry.after_seq}"
                    raise Failure(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"invalid catch-up: after_seq {why}",
                        (FieldViolation("after_seq", why),),
                    )
                cfg = requests.apply_config(self.config, o.config if o.HasField("config") else None)
                s = Session(name, cfg, o.with_macd, self.sessions.replay_window)
                if len(base) + len(entry.bars) <= INLINE_CATCH_UP:
                    s.catch_up(entry.after_seq, entry.bars, base)
                else:
                    await self._in_thread(s.catch_up, entry.after_seq, entry.bars, base)
                self.sessions.add(s)
                found = s
            else:
                if not convert.is_empty(entry.base):
                    why = "base is only for a fresh session"
                    raise Failure(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"invalid catch-up: {why}",
                        (FieldViolation("base", f"invalid catch-up: {why}"),),
                    )
                if found is None:
                    raise not_found(name)
                s = found
                self.sessions.touch(s)
                async with s.lock:
                    # Checked under the lock: a stream or Apply message may have moved the
                    # session on (or a new open replaced it) while this waited for it.
                    if not self.sessions.is_current(s):
                        found = None
                        raise not_found(name)
                    if s.last_seq != entry.after_seq:
                        raise Failure(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"session at sequence {s.last_seq}, catch-up after {entry.after_seq}",
                            expected_seq=s.last_seq + 1,
                        )
                    if len(entry.bars) <= INLINE_CATCH_UP:
                        s.catch_up(entry.after_seq, entry.bars)
                    else:
                        await self._locked_in_thread(
                            lambda: s.catch_up(entry.after_seq, entry.bars)
                        )
        except Failure as f:
            return pb.SessionCaughtUp(
                session=shown,
                last_seq=0 if found is None else found.last_seq,
                bars=0 if found is None else found.bars,
                error=stream_error(f),
            )
        return pb.SessionCaughtUp(session=s.name, last_seq=s.last_seq, bars=s.bars)

    async def apply(
        self, requests: AsyncIterator[Sized[pb.ApplyRequest]], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ApplyResponse]:
        """Each request's messages in order, each as a stream of its session would apply it;
        one answer per request, one line of log per request. A request above
        ``server.max_message_bytes`` is applied not at all: each of its messages is answered
        with RESOURCE_EXHAUSTED in-band (as a stream answers such a message), the stream goes on.
        """
        started = time.perf_counter()
        count: int | None = None
        try:
            async for sized in requests:
                started, count = time.perf_counter(), None
                if sized.undecodable is not None:
                    raise undecodable(sized.undecodable)
                req = sized.message
                assert req is not None  # Apply requests are always parsed
                messages = req.messages
                count = len(messages)
                answers: list[pb.StreamResponse] = []
                if sized.size > self.max_message_bytes:
                    big = self._too_large(sized.size)
                    error = stream_error(big)
                    answers = [
                        pb.StreamResponse(seq=m.bar.seq, engine=ENGINE, error=error)
                        for m in messages
                    ]
                    log.call("Apply", None, None, started, big.code, big.message, messages=count)
                    yield pb.ApplyResponse(answers=answers)
                    continue
                for m in messages:
                    answer = self._apply_now(m)
                    if isinstance(answer, Session):  # its lock is held: wait for it
                        answer = await self._apply_locked(m.bar, answer)
                    answers.append(answer)
                log.call("Apply", None, None, started, grpc.StatusCode.OK, messages=count)
                yield pb.ApplyResponse(answers=answers)
        except Failure as f:
            log.call("Apply", None, None, started, f.code, f.message, messages=count)
            await abort(context, f)
        except Exception as e:
            log.logger().exception("stream failed", method="Apply")
            log.call("Apply", None, None, started, grpc.StatusCode.INTERNAL, str(e), messages=count)
            await context.abort(grpc.StatusCode.INTERNAL, f"the call failed: {e}")

    def _apply_now(self, m: pb.SessionMessage) -> pb.StreamResponse | Session:
        """The answer to one Apply message, or its session when that session's lock is held
        (a snapshot or a long catch-up is reading or changing it in a worker thread)."""
        bar = m.bar
        key = (m.session.symbol, m.session.timeframe)
        name = self._names.get(key)
        if name is None:
            try:
                name = session_name(*key, "open.")
            except Failure as f:
                return pb.StreamResponse(seq=bar.seq, engine=ENGINE, error=stream_error(f))
            if len(self._names) >= NAMES_KEPT:
                self._names.clear()
            self._names[key] = name
        s = self.sessions.get(name)
        if s is None:
            return _missing(bar.seq, name)
        if s.lock.locked():
            return s
        self.sessions.touch(s)
        return s.handle(bar)

    async def _apply_locked(self, bar: pb.BarMessage, s: Session) -> pb.StreamResponse:
        """One Apply message for ``s`` once its lock is free, on the session then holding the
        name (a new open or a fresh catch-up may have replaced ``s`` meanwhile)."""
        while True:
            async with s.lock:
                current = self.sessions.get(s.name)
                if current is s:
                    self.sessions.touch(s)
                    return s.handle(bar)
            if current is None:
                return _missing(bar.seq, s.name)
            s = current

    async def close_sessions(
        self, req: pb.CloseSessionsRequest
    ) -> tuple[pb.CloseSessionsResponse, None]:
        closed = self.sessions.close(f"{n.symbol}/{n.timeframe}" for n in req.sessions)
        return pb.CloseSessionsResponse(
            engine=ENGINE, closed=closed, sessions=len(self.sessions)
        ), None

    # --- Streams -------------------------------------------------------------------------------

    def _open(self, sized: Sized[pb.StreamRequest]) -> tuple[Session, pb.StreamResponse]:
        """Opens or resumes the session the first message of a stream names."""
        if sized.undecodable is not None:
            raise undecodable(sized.undecodable)
        if sized.size > self.max_message_bytes:
            raise self._too_large(sized.size)
        req = sized.message
        assert req is not None  # stream messages are always parsed
        if req.WhichOneof("kind") != "open":
            raise Failure(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message of a stream must be open"
            )
        o = req.open
        name = session_name(o.symbol, o.timeframe, "open.")
        if o.resume:
            s = self.sessions.resume(name)
            return s, s.opened(resumed=True)
        cfg = requests.apply_config(self.config, o.config if o.HasField("config") else None)
        s = self.sessions.create(name, cfg, o.with_macd)
        return s, s.opened(resumed=False)

    def _next(self, session: Session, sized: Sized[pb.StreamRequest]) -> pb.StreamResponse:
        """Answers one message after the open (a Failure ends the stream)."""
        if sized.undecodable is not None:
            raise undecodable(sized.undecodable)
        if session.closed:
            raise not_found(session.name)
        req = sized.message
        assert req is not None
        kind = req.WhichOneof("kind")
        if kind == "open":
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT, "a stream opens its session once")
        if kind is None:
            raise Failure(
                grpc.StatusCode.INVALID_ARGUMENT, "a stream message must carry open or bar"
            )
        if not self.sessions.is_current(session):
            raise Failure(
                grpc.StatusCode.ABORTED,
                f"session {show(session.name)} was replaced by a new open; open or resume it again",
            )
        self.sessions.touch(session)
        if sized.size > self.max_message_bytes:
            error = stream_error(self._too_large(sized.size))
            return pb.StreamResponse(seq=req.bar.seq, engine=ENGINE, error=error)
        return session.handle(req.bar)

    async def stream(
        self, requests: AsyncIterator[Sized[pb.StreamRequest]], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        session: Session | None = None
        started = time.perf_counter()
        try:
            async for sized in requests:
                started = time.perf_counter()
                if session is None:
                    session, answer = self._open(sized)
                    session.streams += 1
                else:
                    async with session.lock:
                        answer = self._next(session, sized)
                if answer.WhichOneof("kind") == "error":
                    code = _CODES.get(answer.error.code, grpc.StatusCode.UNKNOWN)
                    log.call(
                        "Stream", session.name, answer.seq, started, code, answer.error.message
                    )
                else:
                    log.call("Stream", session.name, answer.seq, started, grpc.StatusCode.OK)
                yield answer
        except Failure as f:
            name = None if session is None else session.name
            log.call("Stream", name, None, started, f.code, f.message)
            await abort(context, f)
        except Exception as e:
            log.logger().exception("stream failed", method="Stream")
            name = None if session is None else session.name
            log.call("Stream", name, None, started, grpc.StatusCode.INTERNAL, str(e))
            await context.abort(grpc.StatusCode.INTERNAL, f"the call failed: {e}")
        finally:
            if session is not None:
                session.streams -= 1


def _missing(seq: int, name: str) -> pb.StreamResponse:
    """The in-band answer to an Apply message for a session the engine does not hold: NOT_FOUND
    with the text a resume of it gets."""
    return pb.StreamResponse(seq=seq, engine=ENGINE, error=stream_error(not_found(name)))


def _catch_up_fields(req: pb.CatchUpRequest) -> dict[str, Any]:
    """A CatchUp's log fields: how many sessions and bars (messages and base bars) it carries."""
    bars = sum(len(e.bars) + len(e.base.time) for e in req.sessions)
    return {"sessions": len(req.sessions), "bars": bars}


def _serialize(m: Message) -> bytes:
    return m.SerializeToString()


def _analyze(req: pb.AnalyzeRequest, cfg: EngineConfig) -> pb.AnalyzeResponse:
    """The whole of an Analyze, in a worker thread: columns, engine, message."""
    bars = requests.bars(req.bars)
    try:
        doc = analyze(bars, cfg, req.with_macd)
    except InvalidBars as e:
        raise invalid_bars(e) from None
    except StateError as e:
        raise Failure(grpc.StatusCode.FAILED_PRECONDITION, str(e)) from None
    return pb.AnalyzeResponse(engine=ENGINE, analysis=convert.analysis(doc, bars.time.tolist()))
