"""A session's journal (docs/MONITOR.md, "Journal"): how it was opened, the bar series its
acknowledged messages made, the messages an engine may still lack, and what each engine holds.

The journal is what makes the standby replaceable at any moment: the active engine applies a
bar, the monitor journals it and acknowledges it, and the standby receives the journaled
messages afterwards, in batches (:mod:`.replica`).

Two forms of the same history, each bounded:

- **the series** (``Series``: six packed columns, 48 bytes a bar): every acknowledged append and
  replacement applied. It is what rebuilds an engine that restarted empty (a fresh catch-up
  from this base, standing at the last number), and all the state file keeps — a bot sending
  ticks as replacements of the last bar grows it by nothing.
- **the messages since the checkpoint**: the serialized ``BarMessage`` of every number after
  the last one *both* engines are known to hold. A known engine that lags is sent exactly
  these; once both hold a message it is dropped. So this part is bounded by the standby's lag
  (itself bounded by back-pressure), not by the session's length.

The answers of the last few messages are kept too (``ANSWERS``), so a duplicate is answered by
the monitor itself whichever engine applied the original.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trading_system.convert import bar_message, bar_row
from trading_system.monitor import ENGINES
from trading_system.proto import trading_pb2 as pb

if TYPE_CHECKING:
    from trading_system.monitor.store import Store

MAX_TIMES = 65_536
"""Acknowledgement times kept per session: enough to measure any lag that matters (an engine
further behind than this is rebuilt, not waited for)."""
ANSWERS = 32
"""Answers kept per session for duplicates (at most ``server.replay_window``): a client resends
what it has not seen acknowledged, a few messages. An older duplicate goes to the active engine,
which answers it from its own window or with FAILED_PRECONDITION."""
UNKNOWN = -1
"""An engine's position in a session that the monitor cannot vouch for (it restarted, it may
have applied a message the monitor never acknowledged, it diverged): rebuilt afresh."""


def session_name(o: pb.OpenSession | pb.SnapshotRequest | pb.SessionName) -> str:
    return f"{o.symbol}/{o.timeframe}"


class Series:
    """A bar series as packed columns (time, open, high, low, close, volume)."""

    def __init__(self) -> None:
        self.time: array[int] = array("q")
        self.columns: tuple[array[float], ...] = tuple(array("d") for _ in range(5))

    def __len__(self) -> int:
        return len(self.time)

    def apply(self, op: int, bar: pb.Bar) -> int:
        """Appends ``bar`` or replaces the last one with it; the bar's index."""
        t, *values = bar_row(bar)
        if op == pb.REPLACE_LAST and self.time:
            self.time[-1] = t
            for column, v in zip(self.columns, values, strict=True):
                column[-1] = v
        else:
            self.time.append(t)
            for column, v in zip(self.columns, values, strict=True):
                column.append(v)
        return len(self.time) - 1

    def bars(self) -> pb.Bars:
        o, h, lo, c, v = self.columns
        return pb.Bars(time=self.time, open=o, high=h, low=lo, close=c, volume=v)

    def bar(self, index: int) -> pb.Bar:
        o, h, lo, c, v = (column[index] for column in self.columns)
        return bar_message((self.time[index], o, h, lo, c, v))


@dataclass
class Journal:
    """One session. ``messages[i]`` is the serialized BarMessage numbered ``base_seq + 1 + i``;
    ``applied[engine]`` the last number that engine holds (``UNKNOWN``: rebuild it afresh from
    the series). ``complete``: the monitor saw the session opened, so it holds the whole
    series and can rebuild the session on an engine; a session only resumed through a monitor
    that restarted without a state file is not (it is served, but not replicated)."""

    name: str
    open: pb.OpenSession | None
    series: Series = field(default_factory=Series)
    applied: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0
    store: Store | None = None
    messages: list[bytes] = field(default_factory=list)
    base_seq: int = 0
    """The number before ``messages[0]``: both engines held it when the journal was trimmed."""
    acked_at: deque[float] = field(default_factory=deque)
    """Acknowledgement times (monotonic) of the messages the slowest engine still lacks."""
    answers: deque[tuple[int, bytes, pb.StreamResponse]] = field(default_factory=deque)
    """(seq, message, answer) of the last acknowledged messages (``ANSWERS``)."""
    used_at: float = field(default_factory=time.monotonic)
    """Last time a client used it (for idle eviction)."""
    broken: set[str] = field(default_factory=set)
    """Engines that refused a rebuild of it (the engines disagree): not fed again."""
    pins: dict[str, int] = field(default_factory=dict)
    """Per engine, the number a fresh rebuild on its way to it will stand at: the messages
    after it are kept until the rebuild is settled (the engine needs them next)."""

    def __post_init__(self) -> None:
        for e in ENGINES:
            self.applied.setdefault(e, UNKNOWN)
        self.base_seq = self.last_seq - len(self.messages)

    @property
    def complete(self) -> bool:
        return self.open is not None

    def behind(self, engine: str) -> int:
        """Acknowledged messages ``engine`` has not applied; unknown: the whole session plus
        one for the open (it must be created afresh even before the first bar)."""
        a = self.applied[engine]
        return self.last_seq + 1 if a == UNKNOWN else self.last_seq - a

    def lag_ms(self, engine: str, now: float) -> float:
        """How long ago the oldest message ``engine`` lacks was acknowledged."""
        behind = self.behind(engine)
        if behind <= 0 or not self.acked_at:
            return 0.0
        i = max(0, len(self.acked_at) - behind)
        return (now - self.acked_at[i]) * 1000

    def accept(
        self,
        message: bytes,
        bar: pb.BarMessage,
        answer: pb.StreamResponse,
        engine: str,
        replay_window: int,
    ) -> None:
        """A message the active ``engine`` applied: journaled (and written to the state file)
        before the client hears of it."""
        self.last_seq = answer.seq
        index = self.series.apply(bar.op, bar.bar) if self.complete else -1
        self.messages.append(message)
        self.applied[engine] = self.last_seq
        self.acked_at.append(time.monotonic())
        if len(self.acked_at) > MAX_TIMES:
            self.acked_at.popleft()
        self.answers.append((answer.seq, message, answer))
        while len(self.answers) > min(ANSWERS, replay_window):
            self.answers.popleft()
        self.used_at = time.monotonic()
        self._trim()
        if self.store is not None:
            saved = bar.bar.SerializeToString(deterministic=True) if self.complete else None
            self.store.save_message(self.name, self.last_seq, index, saved)

    def cached(self, seq: int) -> tuple[bytes, pb.StreamResponse] | None:
        """The message and answer of an acknowledged number still kept."""
        if not self.answers:
            return None
        first = self.answers[0][0]
        if seq < first or seq > self.last_seq:
            return None
        s, message, answer = self.answers[seq - first]
        assert s == seq
        return message, answer

    def set_applied(self, engine: str, seq: int) -> None:
        """``engine`` holds the messages up to ``seq`` (or ``UNKNOWN``). Not written to the
        state file: a restarted monitor vouches for no engine (each is checked by a resume or
        rebuilt afresh)."""
        if self.applied[engine] == seq:
            return
        self.applied[engine] = seq
        slowest = max(self.behind(e) for e in ENGINES)
        while self.acked_at and len(self.acked_at) > slowest:
            self.acked_at.popleft()
        self._trim()

    def _trim(self) -> None:
        """The checkpoint: messages both engines hold (or an engine with an unknown place will
        be rebuilt from the series without) are dropped."""
        known = [a for a in self.applied.values() if a != UNKNOWN]
        known += self.pins.values()
        checkpoint = min(known) if known else self.base_seq
        drop = min(checkpoint, self.last_seq) - self.base_seq
        if drop > 0:
            del self.messages[:drop]
            self.base_seq += drop

    def pin(self, engine: str, seq: int) -> None:
        self.pins[engine] = seq

    def unpin(self, engine: str) -> None:
        self.pins.pop(engine, None)

    def pending(self, engine: str, limit: int) -> tuple[bool, int, list[bytes]]:
        """What ``engine`` lacks, at most ``limit`` messages: (fresh, after_seq, messages). A
        fresh session starts from the whole series (``series.bars()``), standing at the last
        number."""
        a = self.applied[engine]
        if a == UNKNOWN or a < self.base_seq:
            return True, self.last_seq, []
        start = a - self.base_seq
        return False, a, self.messages[start : start + limit]
