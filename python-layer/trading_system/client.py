"""A client of the engine servers (``proto/trading.proto``, docs/GRPC.md) for bots: typed
results, the package's errors, deadlines, retries and streams that survive broken connections.

``AsyncClient`` (grpc.aio) holds the logic; ``Client`` is the same API, blocking: it runs an
``AsyncClient`` on a private event loop in a daemon thread, so the retry and resume rules exist
once and behave identically in both.

- :meth:`AsyncClient.analyze` → :class:`RemoteAnalysis` (a :class:`~trading_system.results.Analysis`
  whose ``to_dict()`` is the analysis document, plus ``engine``). The idempotent calls
  (``Analyze``, ``GetSnapshot``, ``GetInfo``, ``GetConfig``) are retried on ``UNAVAILABLE`` /
  ``DEADLINE_EXCEEDED`` with exponential backoff and full jitter within a total budget
  (:class:`Retry`: 30 s by default, enough to ride out a supervised restart of the monitor);
  ``UpdateConfig`` is sent once.
- :meth:`AsyncClient.stream` → a session: ``append`` / ``replace_last`` → :class:`RemoteUpdate`
  (plus ``seq``, ``engine``). When the connection breaks, the session reconnects, resumes
  (``resume = true``) and resends the unacknowledged message, within the same budget per
  message; the server answers a message it had already applied from its cache, so nothing is
  lost or applied twice.
- Connection settings (TLS, mutual TLS, the client and operator tokens) come from
  :mod:`trading_system.transport`: explicit arguments, or a configuration
  (:meth:`AsyncClient.from_config`, the ``client`` and ``server`` sections).
- Operations: :meth:`AsyncClient.status` and :meth:`AsyncClient.set_mode` call the monitor's
  ``Admin`` service with the operator token; :meth:`AsyncClient.health` is a ``grpc.health.v1``
  Check of any server (no token). When one of them ends ``UNAVAILABLE`` because TLS failed (a
  certificate not trusted or refused, TLS on one side only) it raises :class:`TlsError`, which
  says what to set (:func:`trading_system.transport.tls_problem`).
- Several stacks (docs/DEPLOY.md): :func:`stack_for` (from :mod:`trading_system.stacks`) names
  the stack that serves a symbol.
- Errors: :class:`~trading_system.errors.InvalidBars` (violations decoded from
  ``google.rpc.BadRequest`` or the in-band ``StreamError``),
  :class:`~trading_system.errors.ConfigError` (``config.<section>.<key>``), anything else
  :class:`ClientError` with the gRPC status code (:class:`TlsError` for a TLS failure named).
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
import grpc.aio
from google.protobuf.message import Message
from google.rpc.error_details_pb2 import BadRequest
from google.rpc.status_pb2 import Status
from grpc_health.v1 import health_pb2

from trading_system import convert, stubs, transport
from trading_system.config import FileConfig
from trading_system.data import bar_values, to_bars
from trading_system.engine.document import AnalysisDoc, UpdateDoc
from trading_system.errors import ChanError, ConfigError, InvalidBars, Violation
from trading_system.proto import trading_pb2 as pb
from trading_system.results import Analysis, Update
from trading_system.stacks import stack_for

__all__ = [
    "AsyncClient",
    "AsyncStreamSession",
    "Client",
    "ClientError",
    "RemoteAnalysis",
    "RemoteUpdate",
    "Retry",
    "StreamSession",
    "TlsError",
    "stack_for",
]

T = TypeVar("T")
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Pem = transport.Pem
Metadata = tuple[tuple[str, str], ...]
StreamCall = stubs.StreamCall

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Codes after which a call may be sent again (the request may or may not have been applied)."""

RECONNECT = RETRYABLE | {grpc.StatusCode.INTERNAL}
"""Codes after which a stream reconnects and resends: also INTERNAL, which grpcio gives a write
on a connection that just broke; resending is safe there, the server drops duplicates."""

TRADING_SERVICE = "trading.v1.Trading"
"""The service :meth:`AsyncClient.health` checks by default (the contract's)."""

MODES = ("auto", "rust", "python")
"""The monitor's routing modes (:meth:`AsyncClient.set_mode`): by health, or held on one engine."""

TLS_PROBE_S = transport.TLS_PROBE_S
"""The longest the diagnosis of a failed call waits for its own TLS handshake."""

_CODES = {c.value[0]: c for c in grpc.StatusCode}
_BAR_FIELD = re.compile(r"bars\[(\d+)\]\.(\w+)")
_DETAILS_KEY = "grpc-status-details-bin"


# --- Results and errors --------------------------------------------------------------------------


def _plain(document: AnalysisDoc | UpdateDoc) -> dict[str, Any]:
    # The result views (trading_system.results) take a document as dict[str, Any], which a
    # TypedDict is not assignable to; it is that dict.
    return cast("dict[str, Any]", document)


class RemoteAnalysis(Analysis):
    """An analysis as a server answered it: ``engine`` (``"rust"`` / ``"python"``) and, for a
    snapshot, the session's ``last_seq``."""

    def __init__(self, document: AnalysisDoc, engine: str, last_seq: int | None = None) -> None:
        super().__init__(_plain(document))
        self.engine = engine
        self.last_seq = last_seq


class RemoteUpdate(Update):
    """A stream answer: the update document (§12.7), its sequence number, the engine and the
    monitor's epoch it was given under (0 from an engine directly)."""

    def __init__(self, document: UpdateDoc, engine: str, seq: int, epoch: int = 0) -> None:
        super().__init__(_plain(document))
        self.engine = engine
        self.seq = seq
        self.epoch = epoch


class ClientError(ChanError):
    """A call that failed for another reason than bad bars or a bad configuration: ``code`` is
    the gRPC status code (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ``UNAUTHENTICATED``,
    ``NOT_FOUND`` …); ``expected_seq`` is set for an in-band ``FAILED_PRECONDITION``."""

    def __init__(
        self, code: grpc.StatusCode, message: str, expected_seq: int | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.expected_seq = expected_seq
        super().__init__(f"{code.name}: {message}")


class TlsError(ClientError):
    """A call that ended ``UNAVAILABLE`` because TLS failed: ``problem`` names the side and
    what to set (an untrusted or mismatched certificate, TLS against plaintext or plaintext
    against TLS, a client certificate missing or refused under mutual TLS); ``message`` is
    gRPC's own text. ``str()`` is ``TLS: <problem>``."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, message)
        self.problem = problem

    def __str__(self) -> str:
        return f"TLS: {self.problem}"


def _violation(field: str, description: str) -> Violation | None:
    """A ``bars[<i>].<field>`` / ``bars`` field violation as a Violation; None for others."""
    rule, _, message = description.partition(": ")
    if field == "bars":
        return Violation(None, "bars", rule, message)
    m = _BAR_FIELD.fullmatch(field)
    return Violation(int(m[1]), m[2], rule, message) if m else None


def _decode(
    code: grpc.StatusCode,
    message: str,
    fields: list[tuple[str, str]],
    expected_seq: int | None = None,
) -> ChanError:
    """The package's error for a status and its field violations."""
    if code == grpc.StatusCode.INVALID_ARGUMENT and fields:
        for field, description in fields:
            if field.startswith("config."):
                return ConfigError(field.removeprefix("config."), description)
        violations = [_violation(f, d) for f, d in fields]
        if all(v is not None for v in violations):
            return InvalidBars([v for v in violations if v is not None])
    return ClientError(code, message, expected_seq)


def _error(e: grpc.aio.AioRpcError) -> ChanError:
    """A failed call's status, with the ``google.rpc.BadRequest`` it carries, as an error."""
    fields: list[tuple[str, str]] = []
    for key, value in e.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        for detail in Status.FromString(value).details:
            bad = BadRequest()
            if detail.Unpack(bad):
                fields += [(v.field, v.description) for v in bad.field_violations]
    return _decode(e.code(), e.details() or "", fields)


def _stream_error(err: pb.StreamError) -> ChanError:
    code = _CODES.get(err.code, grpc.StatusCode.UNKNOWN)
    fields = [(v.field, v.description) for v in err.field_violations]
    return _decode(code, err.message, fields, err.expected_seq or None)


# --- Requests ------------------------------------------------------------------------------------


def _bar(op: pb.Op, seq: int, bar: Any) -> pb.StreamRequest:
    b = convert.bar_message(bar_values(bar))
    return pb.StreamRequest(bar=pb.BarMessage(seq=seq, op=op, bar=b))


@dataclass(frozen=True)
class Retry:
    """When to send a failed call (or stream message) again: exponential backoff with full
    jitter within a total budget.

    After attempt ``n`` (from 1) fails with a retryable code, the client waits a random time in
    ``[0, min(cap, base·2^(n-1)))`` (full jitter: many bots do not retry in step) and tries
    again, until ``budget`` seconds have passed since the first attempt (the last wait is cut to
    end there, then one last attempt), or ``max_attempts`` attempts were made (None: no limit
    but the budget). The default budget, 30 s, rides out a monitor restart of up to 30 s.
    Each attempt has the call's own deadline (``timeout``)."""

    budget: float = 30.0
    base: float = 0.05
    cap: float = 1.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.budget < 0 or self.base <= 0 or self.cap <= 0:
            raise ValueError("Retry: budget must be >= 0, base and cap > 0")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("Retry: max_attempts must be >= 1 (or None)")

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (from 1), before the budget's cut."""
        return random.uniform(0.0, min(self.cap, self.base * 2 ** min(attempt - 1, 62)))

    def attempts(self) -> Attempts:
        """A fresh count of attempts for one call (or one stream message)."""
        return Attempts(self)


class Attempts:
    """The attempts of one operation under a :class:`Retry`: :meth:`pause` after each failed
    attempt gives the wait before the next one, or None when the budget is spent."""

    def __init__(self, retry: Retry) -> None:
        self.retry = retry
        self.made = 0
        self.started = time.monotonic()

    def pause(self) -> float | None:
        self.made += 1
        r = self.retry
        if r.max_attempts is not None and self.made >= r.max_attempts:
            return None
        remaining = self.started + r.budget - time.monotonic()
        if remaining <= 0:
            return None
        return min(r.delay(self.made), remaining)


class _Broken(Exception):
    """The stream's connection is gone (or a message timed out): reconnect and resend."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- The asynchronous client ---------------------------------------------------------------------


CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Reconnect soon after a broken connection (a restarted monitor is found within about a
    # second); our own backoff paces the retries.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
"""The client's channel options (after :data:`trading_system.transport.DEFAULT_OPTIONS`)."""


def _settings(
    settings: transport.Settings | FileConfig | None,
    token: str | None,
    operator_token: str | None,
    tls_ca: Pem | None,
    tls_cert: Pem | None,
    tls_key: Pem | None,
    tls_server_name: str | None,
) -> transport.Settings:
    explicit = (token, operator_token, tls_ca, tls_cert, tls_key, tls_server_name)
    if settings is not None:
        if any(v is not None for v in explicit):
            raise ValueError("give either settings or token/tls_* arguments, not both")
        return transport.settings(settings)
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key go together")
    return transport.Settings.of(
        token=token,
        operator_token=operator_token,
        tls=tls_ca is not None or tls_cert is not None,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_server_name=tls_server_name,
    )


def _tls_refused(code: grpc.StatusCode, details: str | None) -> bool:
    """A handshake the certificates failed: sending again cannot help."""
    return code == grpc.StatusCode.UNAVAILABLE and transport.is_tls_failure(details)


class AsyncClient:
    """A client of one server address (grpc.aio).

    Connection settings, either explicit or ``settings`` (a
    :class:`~trading_system.transport.Settings` or a
    :class:`~trading_system.config.FileConfig`, see :meth:`from_config`), not both: ``token``:
    sent as ``authorization: Bearer <token>`` on trading calls; ``operator_token``: sent instead
    on administrative calls (:meth:`update_config`, :meth:`status`, :meth:`set_mode`; default:
    ``token``); ``tls_ca`` (and
    ``tls_cert`` + ``tls_key`` for mutual TLS): PEM data or file paths, switching to TLS;
    ``tls_server_name``: the name to verify in the server's certificate (default: the host).

    ``timeout``: the default deadline of every call, in seconds (per attempt; in a stream, per
    message); ``retry``: the backoff and total budget of retries and reconnects (an attribute:
    ``client.retry = Retry(budget=5.0)`` changes it for the calls that follow)."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        operator_token: str | None = None,
        tls_ca: Pem | None = None,
        tls_cert: Pem | None = None,
        tls_key: Pem | None = None,
        tls_server_name: str | None = None,
        settings: transport.Settings | FileConfig | None = None,
        timeout: float = 10.0,
        retry: Retry | None = None,
        options: Iterable[tuple[str, Any]] = (),
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.retry = retry or Retry()
        self.settings = _settings(
            settings, token, operator_token, tls_ca, tls_cert, tls_key, tls_server_name
        )
        self._metadata = self.settings.metadata("client")
        self._operator = self.settings.metadata("operator")
        self._channel = transport.channel(
            address, self.settings, options=[*CHANNEL_OPTIONS, *options], aio=True
        )
        self._stub = stubs.Trading(self._channel)
        self._admin = stubs.Admin(self._channel)
        self._health = stubs.Health(self._channel)

    @classmethod
    def from_config(cls, cfg: FileConfig, address: str | None = None, **kwargs: Any) -> AsyncClient:
        """A client connecting as ``cfg`` says (TLS, client certificate, tokens: see
        :mod:`trading_system.transport`) to ``address`` (default: the monitor,
        ``server.host:server.monitor_port``, a wildcard host on loopback). ``kwargs``:
        ``timeout``, ``retry``, ``options``."""
        where = address or transport.monitor_address(cfg)
        return cls(where, settings=transport.Settings.from_config(cfg), **kwargs)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
        metadata: Metadata | None = None,
    ) -> Resp:
        """An idempotent call with a deadline per attempt, retried on RETRYABLE codes within
        the retry budget; ``metadata``: the client token's unless given."""
        deadline = self.timeout if timeout is None else timeout
        sent = self._metadata if metadata is None else metadata
        attempts = self.retry.attempts()
        while True:
            try:
                return await method(request, timeout=deadline, metadata=sent)
            except grpc.aio.AioRpcError as e:
                if e.code() not in RETRYABLE or _tls_refused(e.code(), e.details()):
                    raise _error(e) from e
                pause = attempts.pause()
                if pause is None:
                    raise _error(e) from e
            await asyncio.sleep(pause)

    async def _once(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
        metadata: Metadata,
    ) -> Resp:
        """A call sent once (not idempotent in effect): any failure is raised."""
        deadline = self.timeout if timeout is None else timeout
        try:
            return await method(request, timeout=deadline, metadata=metadata)
        except grpc.aio.AioRpcError as e:
            raise _error(e) from e

    async def _diagnosed(self, call: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """``call``'s answer; when it ends UNAVAILABLE because TLS failed, a TlsError saying
        why (found by one more connection, off the event loop: see transport.tls_problem)."""
        try:
            return await call
        except ClientError as e:
            if e.code != grpc.StatusCode.UNAVAILABLE:
                raise
            wait = min(self.timeout if timeout is None else timeout, TLS_PROBE_S)
            problem = await asyncio.to_thread(
                transport.tls_problem, self.address, self.settings, e.message, wait
            )
            if problem:
                raise TlsError(e.message, problem) from e
            raise

    async def analyze(
        self,
        data: Any,
        config: Mapping[str, Any] | None = None,
        with_macd: bool = False,
        timeout: float | None = None,
    ) -> RemoteAnalysis:
        """Analyzes a series on the server. ``data``: anything
        :func:`trading_system.data.to_bars` reads; ``config``: overrides of the server's
        configuration. Raises InvalidBars, ConfigError, DataError or ClientError."""
        bars = to_bars(data)
        request = pb.AnalyzeRequest(
            bars=convert.bars_message(bars),
            config=convert.overrides_message(config),
            with_macd=with_macd,
        )
        answer = await self._unary(self._stub.Analyze, request, timeout)
        result = RemoteAnalysis(convert.analysis_document(answer.analysis), answer.engine)
        # As analyze(): the outputs read the series' zone and bars from the result.
        return result.in_zone(getattr(bars, "tz", "UTC"), bars)

    async def snapshot(
        self, symbol: str, timeframe: str, timeout: float | None = None
    ) -> RemoteAnalysis:
        """A session's full state (``last_seq`` set); NOT_FOUND is a ClientError."""
        request = pb.SnapshotRequest(symbol=symbol, timeframe=timeframe)
        answer = await self._unary(self._stub.GetSnapshot, request, timeout)
        doc = convert.analysis_document(answer.analysis)
        return RemoteAnalysis(doc, answer.engine, answer.last_seq)

    async def info(self, timeout: float | None = None) -> dict[str, Any]:
        """``GetInfo`` as a dict (engine, version, uptime_ms, sessions, config, protocol)."""
        answer = await self._unary(self._stub.GetInfo, pb.InfoRequest(), timeout)
        return convert.message_dict(answer)

    async def get_config(self, timeout: float | None = None) -> dict[str, Any]:
        """``GetConfig`` as a dict (engine, config, and config_version where served)."""
        answer = await self._unary(self._stub.GetConfig, pb.GetConfigRequest(), timeout)
        return convert.message_dict(answer)

    async def update_config(
        self, config: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """``UpdateConfig`` with ``config``'s overrides (as in :meth:`analyze`), sent with the
        operator token: the new configuration as a dict. Not idempotent in effect with other
        writers, so it is sent once: UNAVAILABLE is a ClientError (the change may or may not
        have been applied: read it back with :meth:`get_config`)."""
        request = pb.UpdateConfigRequest(config=convert.overrides_message(config))
        answer = await self._once(self._stub.UpdateConfig, request, timeout, self._operator)
        return convert.message_dict(answer)

    async def status(self, timeout: float | None = None) -> pb.StatusResponse:
        """The monitor's ``Admin.Status`` (the active engine, the epoch, the mode, each
        engine's state), sent with the operator token; retried like the other idempotent
        calls. A TLS failure is a :class:`TlsError`."""
        call = self._unary(self._admin.Status, pb.StatusRequest(), timeout, self._operator)
        return await self._diagnosed(call, timeout)

    async def set_mode(self, mode: str, timeout: float | None = None) -> pb.StatusResponse:
        """The monitor's ``Admin.SetMode``: ``"auto"`` (route by health) or ``"rust"`` /
        ``"python"`` (a manual override, held until ``"auto"``); the status after it. Sent
        once with the operator token (a switch is not to be repeated blindly: read
        :meth:`status` after an ``UNAVAILABLE``). A TLS failure is a :class:`TlsError`."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        request = pb.SetModeRequest(mode=mode)
        call = self._once(self._admin.SetMode, request, timeout, self._operator)
        return await self._diagnosed(call, timeout)

    async def health(self, service: str = TRADING_SERVICE, timeout: float | None = None) -> str:
        """A ``grpc.health.v1`` Check of ``service`` (``""``: the whole server) on any server
        (an engine or the monitor; no token): the serving status's name, ``"SERVING"``,
        ``"NOT_SERVING"``, ``"UNKNOWN"`` (or ``"SERVICE_UNKNOWN"`` from a watching server).
        A service the server does not know is a ClientError ``NOT_FOUND``; a TLS failure a
        :class:`TlsError`. Retried like the other idempotent calls."""
        request = health_pb2.HealthCheckRequest(service=service)
        call = self._unary(self._health.Check, request, timeout, ())
        answer = await self._diagnosed(call, timeout)
        serving = health_pb2.HealthCheckResponse.ServingStatus
        return serving.Name(answer.status) if answer.status in serving.values() else "UNKNOWN"

    def stream(
        self,
        symbol: str,
        timeframe: str,
        config: Mapping[str, Any] | None = None,
        with_macd: bool = False,
        resume: bool = False,
    ) -> AsyncStreamSession:
        """A session ``<symbol>/<timeframe>``, opened by ``async with`` (or ``await open()``):
        new (replacing one of that name), or with ``resume`` the existing one."""
        overrides = convert.overrides_message(config)
        return AsyncStreamSession(
            self,
            lambda: self._stub.Stream(metadata=self._metadata),
            symbol,
            timeframe,
            overrides,
            with_macd,
            resume,
        )


class AsyncStreamSession:
    """One session over a ``Stream`` call, reopened with ``resume`` whenever the call breaks.
    One message is in flight at a time (no pipelining): its number is ``last_seq + 1``."""

    def __init__(
        self,
        client: AsyncClient,
        connect: Callable[[], StreamCall],
        symbol: str,
        timeframe: str,
        config: pb.EngineConfig,
        with_macd: bool,
        resume: bool,
    ) -> None:
        self._client = client
        self._new_call = connect
        self._open = pb.OpenSession(
            symbol=symbol, timeframe=timeframe, config=config, with_macd=with_macd, resume=resume
        )
        self._call: StreamCall | None = None
        self._last_seq = 0
        self.engine = ""
        self.opened: pb.Opened | None = None
        """The ``Opened`` answer of the latest (re)connection."""
        self.reconnects = 0
        """How many times the session was resumed after a broken connection."""

    @property
    def symbol(self) -> str:
        return self._open.symbol

    @property
    def timeframe(self) -> str:
        return self._open.timeframe

    @property
    def last_seq(self) -> int:
        """The last sequence number the server acknowledged (0: none)."""
        return self._last_seq

    async def __aenter__(self) -> AsyncStreamSession:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> pb.Opened:
        """Opens (or resumes) the session, retrying while the server is unreachable (within
        the client's retry budget)."""
        attempts = self._client.retry.attempts()
        while True:
            try:
                opened = await self._connect(self._open)
                break
            except _Broken as e:
                pause = attempts.pause()
                if pause is None:
                    raise ClientError(e.code, e.message) from None
            await asyncio.sleep(pause)
        self._last_seq = opened.last_seq
        return opened

    async def close(self) -> None:
        """Ends the stream (the session stays in the server until replaced or it stops)."""
        call, self._call = self._call, None
        if call is None:
            return
        try:
            await asyncio.wait_for(call.done_writing(), self._client.timeout)
            while await asyncio.wait_for(stubs.read(call), self._client.timeout) is not None:
                pass
        except (grpc.aio.AioRpcError, TimeoutError, asyncio.InvalidStateError):
            pass  # the stream is ending anyway; the session is unaffected
        finally:
            call.cancel()

    def _drop(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    async def _exchange(self, call: StreamCall, request: pb.StreamRequest) -> pb.StreamResponse:
        """Sends one message and reads its answer within the deadline; a broken connection or
        a missed deadline is _Broken (after cancelling the call), other statuses raise."""
        timeout = self._client.timeout
        try:
            await asyncio.wait_for(call.write(request), timeout)
            answer = await asyncio.wait_for(stubs.read(call), timeout)
        except TimeoutError:
            call.cancel()
            raise _Broken(grpc.StatusCode.DEADLINE_EXCEEDED, "no answer in time") from None
        except asyncio.InvalidStateError:
            # Written after the call had ended: its status says whether that was the network.
            code, details = await call.code(), await call.details()
            if code in RECONNECT and not _tls_refused(code, details):
                raise _Broken(code, details) from None
            raise ClientError(code, details) from None
        except grpc.aio.AioRpcError as e:
            if e.code() in RECONNECT and not _tls_refused(e.code(), e.details()):
                raise _Broken(e.code(), e.details() or "") from None
            raise _error(e) from e
        if answer is None:  # the server ended the stream without a status error
            raise _Broken(grpc.StatusCode.UNAVAILABLE, "the stream ended")
        return answer

    async def _connect(self, open_msg: pb.OpenSession) -> pb.Opened:
        self._drop()
        call = self._new_call()
        answer = await self._exchange(call, pb.StreamRequest(open=open_msg))
        if answer.WhichOneof("kind") != "opened":
            call.cancel()
            raise ClientError(grpc.StatusCode.INTERNAL, f"expected Opened, got {answer}")
        self._call = call
        self.engine = answer.engine
        self.opened = answer.opened
        return answer.opened

    async def _resume(self, seq: int) -> StreamCall:
        """Reconnects to the session; its ``last_seq`` must be ``seq - 1`` (the message was
        lost) or ``seq`` (applied, the answer lost: the resend gets the cached answer)."""
        resume = pb.OpenSession()
        resume.CopyFrom(self._open)
        resume.resume = True
        opened = await self._connect(resume)
        self.reconnects += 1
        if opened.last_seq not in (seq - 1, seq):
            self._drop()
            raise ClientError(
                grpc.StatusCode.ABORTED,
                f"session {opened.session} is at sequence {opened.last_seq}, this client at "
                f"{seq - 1}: it was replaced or written by another client",
            )
        assert self._call is not None  # set by _connect
        return self._call

    async def _send(self, op: pb.Op, bar: Any) -> RemoteUpdate:
        seq = self._last_seq + 1
        request = _bar(op, seq, bar)
        attempts = self._client.retry.attempts()
        while True:
            try:
                call = self._call if self._call is not None else await self._resume(seq)
                answer = await self._exchange(call, request)
                code = _CODES.get(answer.error.code) if answer.HasField("error") else None
                if code is not None and code in RETRYABLE:
                    # In-band, so nothing was applied (e.g. no engine served for a moment): the
                    # same number is sent again, on a fresh connection.
                    raise _Broken(code, answer.error.message)
                break
            except _Broken as e:
                self._drop()
                pause = attempts.pause()
                if pause is None:
                    raise ClientError(e.code, e.message) from None
            await asyncio.sleep(pause)
        kind = answer.WhichOneof("kind")
        if kind == "error":  # in-band: nothing applied, the number is not consumed
            raise _stream_error(answer.error)
        if kind != "update" or answer.seq != seq:
            raise ClientError(grpc.StatusCode.INTERNAL, f"unexpected answer to {seq}: {answer}")
        self._last_seq = seq
        self.engine = answer.engine
        return RemoteUpdate(
            convert.update_document(answer.update), answer.engine, seq, answer.epoch
        )

    async def append(self, bar: Any) -> RemoteUpdate:
        """Appends a bar ``(time, open, high, low, close, volume)`` or a mapping of those."""
        return await self._send(pb.APPEND, bar)

    async def replace_last(self, bar: Any) -> RemoteUpdate:
        """Replaces the last bar (the one still forming)."""
        return await self._send(pb.REPLACE_LAST, bar)

    async def snapshot(self, timeout: float | None = None) -> RemoteAnalysis:
        """The session's full state on the server."""
        return await self._client.snapshot(self.symbol, self.timeframe, timeout)


# --- The blocking client -------------------------------------------------------------------------


class _Loop:
    """A private event loop in a daemon thread, running the asynchronous client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


async def _new_client(address: str, kwargs: dict[str, Any]) -> AsyncClient:
    return AsyncClient(address, **kwargs)  # grpc.aio binds the channel to the running loop


class Client:
    """The blocking client: :class:`AsyncClient`'s API and behaviour (arguments, retries, the
    retry budget, TLS and tokens) without ``await``."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        operator_token: str | None = None,
        tls_ca: Pem | None = None,
        tls_cert: Pem | None = None,
        tls_key: Pem | None = None,
        tls_server_name: str | None = None,
        settings: transport.Settings | FileConfig | None = None,
        timeout: float = 10.0,
        retry: Retry | None = None,
        options: Iterable[tuple[str, Any]] = (),
    ) -> None:
        kwargs = {
            "token": token,
            "operator_token": operator_token,
            "tls_ca": tls_ca,
            "tls_cert": tls_cert,
            "tls_key": tls_key,
            "tls_server_name": tls_server_name,
            "settings": settings,
            "timeout": timeout,
            "retry": retry,
            "options": tuple(options),
        }
        self._loop = _Loop()
        try:
            self._async = self._loop.run(_new_client(address, kwargs))
        except BaseException:
            self._loop.stop()
            raise

    @classmethod
    def from_config(cls, cfg: FileConfig, address: str | None = None, **kwargs: Any) -> Client:
        """See :meth:`AsyncClient.from_config`."""
        where = address or transport.monitor_address(cfg)
        return cls(where, settings=transport.Settings.from_config(cfg), **kwargs)

    @property
    def address(self) -> str:
        return self._async.address

    @property
    def settings(self) -> transport.Settings:
        return self._async.settings

    @property
    def retry(self) -> Retry:
        """The backoff and budget of retries; assign to change it for the calls that follow."""
        return self._async.retry

    @retry.setter
    def retry(self, value: Retry) -> None:
        self._async.retry = value

    @property
    def timeout(self) -> float:
        return self._async.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._async.timeout = value

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.thread.is_alive():
            self._loop.run(self._async.close())
            self._loop.stop()

    def analyze(
        self,
        data: Any,
        config: Mapping[str, Any] | None = None,
        with_macd: bool = False,
        timeout: float | None = None,
    ) -> RemoteAnalysis:
        """See :meth:`AsyncClient.analyze`."""
        return self._loop.run(self._async.analyze(data, config, with_macd, timeout))

    def snapshot(self, symbol: str, timeframe: str, timeout: float | None = None) -> RemoteAnalysis:
        return self._loop.run(self._async.snapshot(symbol, timeframe, timeout))

    def info(self, timeout: float | None = None) -> dict[str, Any]:
        return self._loop.run(self._async.info(timeout))

    def get_config(self, timeout: float | None = None) -> dict[str, Any]:
        return self._loop.run(self._async.get_config(timeout))

    def update_config(
        self, config: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """See :meth:`AsyncClient.update_config` (the operator token; sent once)."""
        return self._loop.run(self._async.update_config(config, timeout))

    def status(self, timeout: float | None = None) -> pb.StatusResponse:
        """See :meth:`AsyncClient.status` (the operator token)."""
        return self._loop.run(self._async.status(timeout))

    def set_mode(self, mode: str, timeout: float | None = None) -> pb.StatusResponse:
        """See :meth:`AsyncClient.set_mode` (the operator token; sent once)."""
        return self._loop.run(self._async.set_mode(mode, timeout))

    def health(self, service: str = TRADING_SERVICE, timeout: float | None = None) -> str:
        """See :meth:`AsyncClient.health` (no token)."""
        return self._loop.run(self._async.health(service, timeout))

    def stream(
        self,
        symbol: str,
        timeframe: str,
        config: Mapping[str, Any] | None = None,
        with_macd: bool = False,
        resume: bool = False,
    ) -> StreamSession:
        """See :meth:`AsyncClient.stream`; open it with ``with`` (or ``open()``)."""
        inner = self._async.stream(symbol, timeframe, config, with_macd, resume)
        return StreamSession(self._loop, inner)


class StreamSession:
    """The blocking form of :class:`AsyncStreamSession`."""

    def __init__(self, loop: _Loop, inner: AsyncStreamSession) -> None:
        self._loop = loop
        self._inner = inner

    def __enter__(self) -> StreamSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def last_seq(self) -> int:
        return self._inner.last_seq

    @property
    def engine(self) -> str:
        return self._inner.engine

    @property
    def opened(self) -> pb.Opened | None:
        return self._inner.opened

    @property
    def reconnects(self) -> int:
        return self._inner.reconnects

    def open(self) -> pb.Opened:
        return self._loop.run(self._inner.open())

    def close(self) -> None:
        self._loop.run(self._inner.close())

    def append(self, bar: Any) -> RemoteUpdate:
        return self._loop.run(self._inner.append(bar))

    def replace_last(self, bar: Any) -> RemoteUpdate:
        return self._loop.run(self._inner.replace_last(bar))

    def snapshot(self, timeout: float | None = None) -> RemoteAnalysis:
        return self._loop.run(self._inner.snapshot(timeout))
