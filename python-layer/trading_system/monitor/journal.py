"""A session's journal (docs/MONITOR.md, "Journal"): how it was opened and every bar message
the monitor acknowledged, in order, plus what each engine holds of it.

The journal is what makes the standby replaceable at any moment: the active engine applies a
bar, the monitor journals it and acknowledges it, and the standby receives the journaled
messages afterwards, in batches (:mod:`.replica`). An engine that restarted empty is rebuilt
from the whole journal.

Messages are kept as the serialized ``BarMessage`` (about 60 bytes each, not a protobuf object
of several hundred): they are compared byte for byte for duplicates and sent on to the engines
as they are. The answers of the last ``replay_window`` messages are kept too, so a duplicate
is answered by the monitor itself whichever engine applied the original.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trading_system.monitor import ENGINES
from trading_system.proto import trading_pb2 as pb

if TYPE_CHECKING:
    from trading_system.monitor.store import Store

MAX_TIMES = 65_536
"""Acknowledgement times kept per session: enough to measure any lag that matters (an engine
further behind than this is rebuilt, not waited for)."""
UNKNOWN = -1
"""An engine's position in a session that the monitor cannot vouch for (it restarted, it may
have applied a message the monitor never acknowledged, it diverged): rebuilt afresh."""


def session_name(o: pb.OpenSession | pb.SnapshotRequest | pb.SessionName) -> str:
    return f"{o.symbol}/{o.timeframe}"


@dataclass
class Journal:
    """One session. ``messages[i]`` is the serialized BarMessage with sequence number
    ``i + 1``; ``applied[engine]`` how many of them that engine holds (``UNKNOWN``: rebuild it
    afresh). ``complete``: the monitor saw the session opened, so the journal holds every
    message and can rebuild it on an engine; a session only resumed through a monitor that
    restarted without a state file is not (it is served, but not replicated)."""

    name: str
    open: pb.OpenSession | None
    messages: list[bytes] = field(default_factory=list)
    applied: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0
    store: Store | None = None
    acked_at: deque[float] = field(default_factory=deque)
    """Acknowledgement times (monotonic) of the messages the slowest engine still lacks."""
    answers: deque[tuple[int, bytes, pb.StreamResponse]] = field(default_factory=deque)
    """(seq, message, answer) of the last ``replay_window`` acknowledged messages."""
    used_at: float = field(default_factory=time.monotonic)
    """Last time a client used it (for idle eviction)."""
    broken: set[str] = field(default_factory=set)
    """Engines that refused a rebuild of it (the engines disagree): not fed again."""

    def __post_init__(self) -> None:
        for e in ENGINES:
            self.applied.setdefault(e, UNKNOWN)
        # Only acknowledged messages are journaled; a saved message past the saved number was
        # never acknowledged (a state file written before the fix that made both one
        # transaction could hold one).
        del self.messages[self.last_seq :]

    @property
    def complete(self) -> bool:
        return self.open is not None

    def behind(self, engine: str) -> int:
        """Acknowledged messages ``engine`` has not applied; unknown: the whole journal plus
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
        self, message: bytes, answer: pb.StreamResponse, engine: str, replay_window: int
    ) -> None:
        """A message the active ``engine`` applied: journaled (and written to the state file)
        before the client hears of it."""
        self.last_seq = answer.seq
        if self.complete:
            self.messages.append(message)
        self.applied[engine] = self.last_seq
        self.acked_at.append(time.monotonic())
        if len(self.acked_at) > MAX_TIMES:
            self.acked_at.popleft()
        self.answers.append((answer.seq, message, answer))
        while len(self.answers) > replay_window:
            self.answers.popleft()
        self.used_at = time.monotonic()
        if self.store is not None:
            self.store.save_message(self.name, self.last_seq, message if self.complete else None)

    def cached(self, seq: int) -> tuple[bytes, pb.StreamResponse] | None:
        """The message and answer of an acknowledged number still in the replay window."""
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

    def pending(self, engine: str, limit: int) -> tuple[bool, int, list[bytes]]:
        """What ``engine`` lacks, at most ``limit`` messages: (fresh, after_seq, messages)."""
        a = self.applied[engine]
        fresh = a == UNKNOWN
        after = 0 if fresh else a
        # Never past the last acknowledged number (the list holds nothing beyond it anyway).
        return fresh, after, self.messages[after : min(after + limit, self.last_seq)]
