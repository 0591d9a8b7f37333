"""Streaming sessions and their exactly-once bookkeeping (docs/GRPC.md, "Streams: exactly once").

A session is named ``<symbol>/<timeframe>`` and lives in the server until it is replaced or the
server stops; streams only connect to it. Each bar message carries a sequence number: the next
one is applied; a duplicate of one of the last ``replay_window`` numbers with the same op and
bar, bit for bit, gets the answer it got then (nothing is applied twice); a duplicate with another
payload is ABORTED; a gap, zero, or a number older than the window is FAILED_PRECONDITION with the
number expected. Every refusal is in-band and a refused message does not consume its number.

An engine holds at most ``server.max_sessions`` sessions: opening one more closes the least
recently used one with no stream attached (RESOURCE_EXHAUSTED when every one has a stream).
``Replica.CatchUp`` applies journaled messages to a session at batch speed
(:meth:`Session.catch_up`) and ``Replica.CloseSessions`` ends sessions; a stream attached to a
closed session ends with NOT_FOUND at its next message.

Messages are handled synchronously on the event loop, one at a time, so each is applied whole
before the next one of any stream starts; :attr:`Session.lock` keeps a snapshot taken in a worker
thread from reading a session while a message changes it.
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import grpc

from trading_system import convert
from trading_system.config import EngineConfig
from trading_system.display import show
from trading_system.engine.analysis import Bar, BatchError, BatchOp
from trading_system.engine.analysis import Session as EngineSession
from trading_system.errors import InvalidBars, StateError
from trading_system.proto import trading_pb2 as pb
from trading_system.server import ENGINE, log
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
    return f'symbol "{show(symbol)}" must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -'


def check_timeframe(timeframe: str) -> str | None:
    """What is wrong with a timeframe (a positive number of at most 4 digits, then one of
    ``s m h d w M``), or None."""
    m = TIMEFRAME.fullmatch(timeframe)
    if m and int(m.group(1)) > 0:
        return None
    return (
        f'timeframe "{show(timeframe)}" must be a positive number of at most 4 digits '
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


def shown_name(symbol: str, timeframe: str) -> str:
    """A session's name as answers show it: ``<symbol>/<timeframe>`` when both are valid, else
    each shown by the one rule (:func:`~trading_system.display.show`)."""
    if check_symbol(symbol) is None and check_timeframe(timeframe) is None:
        return f"{symbol}/{timeframe}"
    return f"{show(symbol)}/{show(timeframe)}"


def not_found(name: str) -> Failure:
    return Failure(grpc.StatusCode.NOT_FOUND, f"session {show(name)} not found")


def seq_order(k: int, expected: int, got: int) -> Failure:
    """INVALID_ARGUMENT for a catch-up's bar ``k`` whose number is not the next one."""
    description = f"seq_order: expected sequence {expected}, got {got}"
    return Failure(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid bars: {description}",
        (FieldViolation(f"bars[{k}].seq", description, "seq_order"),),
    )


def batch_ops(
    after_seq: int, bars: Sequence[pb.BarMessage]
) -> tuple[list[BatchOp], Failure | None]:
    """A catch-up's bar messages as the engine's batch, up to the first one refused before it
    reaches the engine (a number out of order, no bar, an op that is neither APPEND nor
    REPLACE_LAST), and that refusal (None when every message is fine)."""
    ops: list[BatchOp] = []
    replace_last = pb.REPLACE_LAST
    for k, msg in enumerate(bars):
        seq = msg.seq
        if seq != after_seq + 1 + k:
            return ops, seq_order(k, after_seq + 1 + k, seq)
        if not msg.HasField("bar"):
            return ops, no_bar(seq)
        op = msg.op
        if op != pb.APPEND and op != replace_last:
            return ops, bad_op(seq, op)
        b = msg.bar
        ops.append((op == replace_last, (b.time, b.open, b.high, b.low, b.close, b.volume)))
    return ops, None


def no_bar(seq: int) -> Failure:
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, f"bar message {seq} carries no bar")


def bad_op(seq: int, op: int) -> Failure:
    return Failure(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"bar message {seq}: op must be APPEND or REPLACE_LAST, got {op}",
    )


def engine_failure(e: InvalidBars | StateError, last_seq: int) -> Failure:
    """What the stream answers for a bar the engine refuses, the session being at ``last_seq``."""
    if isinstance(e, InvalidBars):
        return invalid_bars(e)
    return Failure(grpc.StatusCode.FAILED_PRECONDITION, str(e), expected_seq=last_seq + 1)


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
        self.streams = 0
        """How many streams are attached (a session with none may be evicted)."""
        self.closed = False
        """Closed by CloseSessions or evicted: an attached stream ends with NOT_FOUND."""

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
            raise no_bar(seq)
        if msg.op == pb.APPEND:
            apply = self.engine.append
        elif msg.op == pb.REPLACE_LAST:
            apply = self.engine.replace_last
        else:
            raise bad_op(seq, msg.op)
        try:
            doc = apply(*convert.bar_row(msg.bar))
        except (InvalidBars, StateError) as e:
            raise engine_failure(e, self.last_seq) from None
        return convert.update(doc, self.engine.engine.times)

    def catch_up(
        self, after_seq: int, bars: Sequence[pb.BarMessage], base: Sequence[Bar] = ()
    ) -> None:
        """Applies a catch-up's bar messages (numbered after_seq + 1, ...) at batch speed, all
        or none: the first message refused raises the Failure the stream would answer for it
        and leaves the session as it was. The stream answers are not cached for these numbers
        (the replay window is emptied): a duplicate of one is out of sequence.

        ``base`` (a fresh session's bars before ``after_seq``) goes first, as appends checked
        as a stream's appends (a bad one is refused naming its index in the session); the
        session then stands at ``after_seq`` however many bars the base holds."""
        ops, refused = batch_ops(after_seq, bars)
        if base:
            ops = [(False, bar) for bar in base] + ops
        try:
            if refused is not None:
                self.engine.check_batch(ops)  # an earlier message may be refused first
                raise refused
            self.engine.catch_up(ops)
        except BatchError as e:
            # A base bar's refusal is an append's: its number does not matter (no
            # FAILED_PRECONDITION comes of a valid base but the 2^32-bar limit).
            at = max(e.index - len(base), 0)
            raise engine_failure(e.error, after_seq + at) from None
        if ops:
            self.last_seq = after_seq + len(ops) - len(base)
            self.answers.clear()

    def snapshot(self) -> pb.SnapshotResponse:
        """The session's whole state (equal to an Analyze of its bars with its configuration)."""
        return pb.SnapshotResponse(
            engine=ENGINE,
            session=self.name,
            last_seq=self.last_seq,
            analysis=convert.analysis(self.engine.document(), self.engine.engine.times),
        )


class Sessions:
    """The server's sessions by name, least recently used first, at most ``max_sessions``."""

    def __init__(self, replay_window: int, max_sessions: int = 2**64 - 1) -> None:
        self.replay_window = replay_window
        self.max_sessions = max_sessions
        self._by_name: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Session | None:
        return self._by_name.get(name)

    def touch(self, s: Session) -> None:
        """Marks ``s`` as just used (the last to be evicted)."""
        if self._by_name.get(s.name) is s:
            self._by_name.move_to_end(s.name)

    def is_current(self, s: Session) -> bool:
        """Whether ``s`` is still its name's session (a new open replaces it)."""
        return self._by_name.get(s.name) is s

    def _victim(self, name: str) -> Session | None:
        """The session to close before ``name`` can be added (None: there is room, or ``name``
        replaces one); RESOURCE_EXHAUSTED when every session has a stream attached."""
        if name in self._by_name or len(self._by_name) < self.max_sessions:
            return None
        for s in self._by_name.values():  # least recently used first
            if s.streams == 0:
                return s
        raise Failure(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the engine holds server.max_sessions ({self.max_sessions}) sessions, each with a "
            "stream attached",
        )

    def add(self, s: Session) -> None:
        """Registers ``s``, replacing the session of the same name, or else closing the least
        recently used one with no stream attached when the engine is full."""
        victim = self._victim(s.name)
        if victim is not None:
            self._close(victim)
            log.logger().info(
                "session closed: server.max_sessions reached, least recently used",
                session=show(victim.name),
            )
        self._by_name[s.name] = s
        self._by_name.move_to_end(s.name)

    def create(self, name: str, config: EngineConfig, with_macd: bool) -> Session:
        """A new session, replacing one of the same name."""
        s = Session(name, config, with_macd, self.replay_window)
        self.add(s)
        return s

    def resume(self, name: str) -> Session:
        """The existing session; NOT_FOUND naming it if there is none."""
        s = self._by_name.get(name)
        if s is None:
            raise not_found(name)
        self._by_name.move_to_end(name)
        return s

    def _close(self, s: Session) -> None:
        del self._by_name[s.name]
        s.closed = True

    def close(self, names: Iterable[str]) -> int:
        """Closes the sessions named (unknown names are ignored); how many existed."""
        closed = 0
        for name in names:
            s = self._by_name.get(name)
            if s is not None:
                self._close(s)
                closed += 1
        return closed
