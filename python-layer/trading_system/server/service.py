"""The ``trading.v1.Trading`` service over the pure-Python engine (docs/GRPC.md).

Handlers are registered by hand rather than through the generated ``add_TradingServicer_to_server``
so that each request's deserializer sees its encoded size: a unary request above
``server.max_message_bytes`` is refused (RESOURCE_EXHAUSTED) without being parsed.

Analyze and GetSnapshot build whole documents and run in a thread pool, so the event loop stays
free for health checks; a stream message is one bar's work and runs inline, which also makes
each message atomic with respect to the others.
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
from google.protobuf.message import Message

from trading_system import __version__
from trading_system.config import EngineConfig
from trading_system.engine.analysis import analyze
from trading_system.errors import InvalidBars, StateError
from trading_system.proto import trading_pb2 as pb
from trading_system.server import ENGINE, PROTOCOL, SERVICE_NAME, convert, log
from trading_system.server.sessions import Session, Sessions, not_found, session_name
from trading_system.server.status import Failure, abort, invalid_bars, stream_error

M = TypeVar("M", bound=Message)
P = ParamSpec("P")
T = TypeVar("T")

_CODES = {c.value[0]: c for c in grpc.StatusCode}


@dataclass(frozen=True, slots=True)
class Sized(Generic[M]):
    """A request and its encoded size; ``message`` is None when it was too large to parse."""

    size: int
    message: M | None


class TradingService:
    """The service state: the configuration new sessions and Analyze calls start from, the
    sessions, and the limits."""

    def __init__(
        self, config: EngineConfig, max_message_bytes: int, replay_window: int, executor: Executor
    ) -> None:
        self.config = config
        self.max_message_bytes = max_message_bytes
        self.sessions = Sessions(replay_window)
        self.executor = executor
        self.started = time.monotonic()
        self._busy = 0
        self._busy_lock = threading.Lock()

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

        def read(data: bytes) -> Sized[M]:
            n = len(data)
            return Sized(n, cls.FromString(data) if parse_all or n <= limit else None)

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
    ) -> grpc.RpcMethodHandler:
        async def handle(req: Sized[Any], context: grpc.aio.ServicerContext) -> Message:
            started = time.perf_counter()
            session: str | None = None
            # At debug, a line when a call starts too (shows what is in flight).
            log.logger().debug("call started", method=name)
            try:
                if req.message is None:
                    raise self._too_large(req.size)
                answer, session = await call(req.message)
            except Failure as f:
                session = f.session
                log.call(name, session, None, started, f.code, f.message)
                await abort(context, f)
            except asyncio.CancelledError:
                log.call(name, session, None, started, grpc.StatusCode.CANCELLED)
                raise
            except Exception as e:
                log.logger().exception("call failed", method=name)
                log.call(name, session, None, started, grpc.StatusCode.INTERNAL, str(e))
                await context.abort(grpc.StatusCode.INTERNAL, f"the call failed: {e}")
            log.call(name, session, None, started, grpc.StatusCode.OK)
            return answer

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=self._deserializer(request),
            response_serializer=_serialize,
        )

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's method handlers, for ``server.add_generic_rpc_handlers``."""
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

    # --- Unary calls: (answer, session name for the log) ---------------------------------------

    async def analyze(self, req: pb.AnalyzeRequest) -> tuple[pb.AnalyzeResponse, None]:
        cfg = convert.apply_config(self.config, req.config if req.HasField("config") else None)
        return await self._in_thread(_analyze, req, cfg), None

    async def snapshot(self, req: pb.SnapshotRequest) -> tuple[pb.SnapshotResponse, str]:
        name = session_name(req.symbol, req.timeframe, "")
        s = self.sessions.get(name)
        if s is None:
            missing = not_found(name)
            missing.session = name
            raise missing
        async with s.lock:
            work = asyncio.ensure_future(self._in_thread(s.snapshot))
            try:
                return await asyncio.shield(work), name
            except asyncio.CancelledError:
                # The thread still reads the session: keep it locked until the thread is done.
                await asyncio.wait([work])
                raise

    async def info(self, _: pb.InfoRequest) -> tuple[pb.InfoResponse, None]:
        return pb.InfoResponse(
            engine=ENGINE,
            version=__version__,
            uptime_ms=int((time.monotonic() - self.started) * 1000),
            sessions=len(self.sessions),
            config=self._config_message(),
            protocol=PROTOCOL,
        ), None

    async def get_config(self, _: pb.GetConfigRequest) -> tuple[pb.ConfigResponse, None]:
        return pb.ConfigResponse(engine=ENGINE, config=self._config_message()), None

    async def update_config(self, req: pb.UpdateConfigRequest) -> tuple[pb.ConfigResponse, None]:
        # Validated as a whole; running sessions keep the configuration they were opened with.
        self.config = convert.apply_config(
            self.config, req.config if req.HasField("config") else None
        )
        return pb.ConfigResponse(engine=ENGINE, config=self._config_message()), None

    # --- Streams -------------------------------------------------------------------------------

    def _open(self, sized: Sized[pb.StreamRequest]) -> tuple[Session, pb.StreamResponse]:
        """Opens or resumes the session the first message of a stream names."""
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
        cfg = convert.apply_config(self.config, o.config if o.HasField("config") else None)
        s = self.sessions.create(name, cfg, o.with_macd)
        return s, s.opened(resumed=False)

    def _next(self, session: Session, sized: Sized[pb.StreamRequest]) -> pb.StreamResponse:
        """Answers one message after the open (a Failure ends the stream)."""
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
                f"session {session.name} was replaced by a new open; open or resume it again",
            )
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


def _serialize(m: Message) -> bytes:
    return m.SerializeToString()


def _analyze(req: pb.AnalyzeRequest, cfg: EngineConfig) -> pb.AnalyzeResponse:
    """The whole of an Analyze, in a worker thread: columns, engine, message."""
    bars = convert.bars(req.bars)
    try:
        doc = analyze(bars, cfg, req.with_macd)
    except InvalidBars as e:
        raise invalid_bars(e) from None
    except StateError as e:
        raise Failure(grpc.StatusCode.FAILED_PRECONDITION, str(e)) from None
    return pb.AnalyzeResponse(engine=ENGINE, analysis=convert.analysis(doc, bars.time.tolist()))
