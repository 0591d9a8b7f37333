"""Streaming sessions and their exactly-once bookkeeping (docs/GRPC.md, "Streams: exactly once").

A session is named ``<symbol>/<timeframe>`` and lives in the server until it is replaced or the
server stops; streams only connect to it. Each bar message carries a sequence number: the next
one is applied; a duplicate of one of the last ``replay_window`` numbers with the same op and
bar, bit for bit, gets the answer it got then (nothing is applied twice); a duplicate with another
payload is ABORTED; a gap, zero, or a number older than the window is FAILED_PRECONDITION with the
number expected. Every refusal is in-band and a refused message does not consume its number.

Messages are handled synchronously on the event loop, one at a time, so each is applied whole
before the next one of any stream starts; :attr:`Session.lock` keeps a snapshot taken in a worker
thread from reading a session while a message changes it.
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections import OrderedDict

import grpc

from trading_system._text import debug_str
from trading_system.config import EngineConfig
from trading_system.engine.analysis import Session as EngineSession
from trading_system.errors import InvalidBars, StateError
from trading_system.proto import trading_pb2 as pb
from trading_system.server import ENGINE, convert
from trading_system.server.status import Failure, FieldViolation, invalid_bars, stream_error

SYMBOL = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
TIMEFRAME = re.compile(r"([0-9]{1,4})[smhdwM]")

_PAYLOAD = struct.Struct("<i?q5d")
"""A bar message's op and bar as bytes, so duplicates are compared bit for bit (``-0.0`` is not
``0.0``); a message without a bar differs from every message with one."""


def check_symbol(symbol: str) -> str | None:
    """What is wrong with a symbol (1–64 characters of ``A-Z a-z 0-9 . _ : / -``), or None."""
    if SYMBOL.fullmatch(symbol):
        return None
    return f"symbol {debug_str(symbol)} must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -"


def check_timeframe(timeframe: str) -> str | None:
    """What is wrong with a timeframe (a positive number of at most 4 digits, then one of
    ``s m h d w M``), or None."""
    m = TIMEFRAME.fullmatch(timeframe)
    if m and int(m.group(1)) > 0:
        return None
    return (
        f"timeframe {debug_str(timeframe)} must be a positive number of at most 4 digits "
        "followed by one of s m h d w M (1m, 15m, 4h, 1d, 1w, 1M)"
    )


def session_name(symbol: str, timeframe: str, prefix: str) -> str:
    """``<symbol>/<timeframe>`` after checking both; otherwise INVALID_ARGUMENT naming
    ``<prefix>symbol`` and/or ``<prefix>timeframe`` (``open.`` in a stream, empty for a
    snapshot)."""
    wrong = [
        FieldViolation(prefix + key, why)
        for key, why in (
            ("symbol", check_symbol(symbol)),
            ("timeframe", check_timeframe(timeframe)),
        )
        if why is not None
    ]
    if wrong:
        text = "; ".join(f"{v.field}: {v.description}" for v in wrong)
        raise Failure(grpc.StatusCode.INVALID_ARGUMENT, f"invalid session name: {text}", wrong)
    return f"{symbol}/{timeframe}"


def not_found(name: str) -> Failure:
    return Failure(grpc.StatusCode.NOT_FOUND, f"session {name} not found")


def _payload(msg: pb.BarMessage) -> bytes:
    b = msg.bar
    return _PAYLOAD.pack(
        msg.op, msg.HasField("bar"), b.time, b.open, b.high, b.low, b.close, b.volume
    )


class Session:
    """One session: the engine's incremental state, its configuration, the last applied sequence
    number and the answers of the last ``replay_window`` numbers."""

    def __init__(
        self, name: str, config: EngineConfig, with_macd: bool, replay_window: int
    ) -> None:
        self.name = name
        self.config = config
        self.with_macd = with_macd
        self.engine = EngineSession(config, with_macd)
        self.replay_window = replay_window
        self.last_seq = 0
        # seq -> (payload, answer), oldest first: the numbers last_seq - len + 1 ..= last_seq.
        self.answers: OrderedDict[int, tuple[bytes, pb.StreamResponse]] = OrderedDict()
        self.lock = asyncio.Lock()

    @property
    def bars(self) -> int:
        return self.engine.bars

    def opened(self, resumed: bool) -> pb.StreamResponse:
        """The answer to an open or resume: the state the stream found (``seq = 0``)."""
        return pb.StreamResponse(
            seq=0,
            engine=ENGINE,
            opened=pb.Opened(
                session=self.name,
                last_seq=self.last_seq,
                bars=self.bars,
                resumed=resumed,
                config=convert.engine_config(self.config.to_dict()),
            ),
        )

    def handle(self, msg: pb.BarMessage) -> pb.StreamResponse:
        """Applies a bar message, answers it from the cache, or refuses it in-band."""
        try:
            return self._handle(msg)
        except Failure as f:
            return pb.StreamResponse(seq=msg.seq, engine=ENGINE, error=stream_error(f))

    def _out_of_sequence(self, seq: int) -> Failure:
        expected = self.last_seq + 1
        return Failure(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"expected sequence {expected}, got {seq}",
            expected_seq=expected,
        )

    def _handle(self, msg: pb.BarMessage) -> pb.StreamResponse:
        seq = msg.seq
        if seq == 0 or seq > self.last_seq + 1:
            raise self._out_of_sequence(seq)
        if seq <= self.last_seq:
            cached = self.answers.get(seq)
            if cached is None:  # older than the replay window
                raise self._out_of_sequence(seq)
            payload, answer = cached
            if payload != _payload(msg):
                raise Failure(
                    grpc.StatusCode.ABORTED, f"sequence {seq} was applied with a different bar"
                )
            return answer
        answer = pb.StreamResponse(seq=seq, engine=ENGINE, update=self._apply(msg))
        self.last_seq = seq
        self.answers[seq] = (_payload(msg), answer)
        while len(self.answers) > self.replay_window:
            self.answers.popitem(last=False)
        return answer

    def _apply(self, msg: pb.BarMessage) -> pb.Update:
        seq = msg.seq
        if not msg.HasField("bar"):
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT, f"bar message {seq} carries no bar")
        if msg.op == pb.APPEND:
            apply = self.engine.append
        elif msg.op == pb.REPLACE_LAST:
            apply = self.engine.replace_last
        else:
            raise Failure(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"bar message {seq}: op must be APPEND or REPLACE_LAST, got {msg.op}",
            )
        try:
            doc = apply(*convert.bar(msg.bar))
        except InvalidBars as e:
            raise invalid_bars(e) from None
        except StateError as e:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION, str(e), expected_seq=self.last_seq + 1
            ) from None
        return convert.update(doc, self.engine.engine.times)

    def snapshot(self) -> pb.SnapshotResponse:
        """The session's whole state (equal to an Analyze of its bars with its configuration)."""
        return pb.SnapshotResponse(
            engine=ENGINE,
            session=self.name,
            last_seq=self.last_seq,
            analysis=convert.analysis(self.engine.document(), self.engine.engine.times),
        )


class Sessions:
    """The server's sessions by name."""

    def __init__(self, replay_window: int) -> None:
        self.replay_window = replay_window
        self._by_name: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Session | None:
        return self._by_name.get(name)

    def is_current(self, s: Session) -> bool:
        """Whether ``s`` is still its name's session (a new open replaces it)."""
        return self._by_name.get(s.name) is s

    def create(self, name: str, config: EngineConfig, with_macd: bool) -> Session:
        """A new session, replacing one of the same name."""
        s = Session(name, config, with_macd, self.replay_window)
        self._by_name[name] = s
        return s

    def resume(self, name: str) -> Session:
        """The existing session; NOT_FOUND naming it if there is none."""
        s = self._by_name.get(name)
        if s is None:
            raise not_found(name)
        return s
