"""Buy/sell points (买卖点) of streaming sessions kept in SQLite (``system.signals_file``): what
bots were told, for the record and for ``trading-system signals``.

The monitor keeps one :class:`SignalBook` per session and feeds it every update it delivers
to a client (each sequence number once: cached answers to resent messages are not fed again).
A book holds the session's signals as the engines see them — the final list (spliced by each
update) plus the non-final tail (replaced whole when the update carries one) — and writes what
changed:

- a signal is identified by session (symbol, timeframe), type, side and bar time: the same
  signal seen again (another update, a failover to the other engine, a resume, a restarted
  monitor) updates its row, never adds one;
- a signal that disappears (a non-final point the next bars invalidate) is marked
  ``gone_ms``, not deleted; if it comes back the mark is cleared;
- ``final`` says whether the engine has fixed it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trading_system.convert import side_name, splice_start
from trading_system.proto import trading_pb2 as pb

SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    type TEXT NOT NULL,        -- "1" | "2" | "3"
    side TEXT NOT NULL,        -- "buy" | "sell"
    time_ms INTEGER NOT NULL,  -- the bar's time, epoch milliseconds UTC
    price REAL NOT NULL,
    pen INTEGER NOT NULL,
    final INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    gone_ms INTEGER,           -- set when the signal disappeared (NULL: present)
    PRIMARY KEY (symbol, timeframe, type, side, time_ms)
);
"""

Key = tuple[str, str, int]
"""(type, side, bar time): a signal within its session."""


@dataclass(frozen=True)
class StoredSignal:
    symbol: str
    timeframe: str
    type: str
    side: str
    time_ms: int
    price: float
    pen: int
    final: bool
    first_seen_ms: int
    updated_ms: int
    gone_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _key(s: pb.Signal) -> Key:
    return (str(s.type), side_name(s.side), s.point.time)


class SignalStore:
    """The SQLite file; every write commits (WAL: readers such as the CLI never block it)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def present(self, symbol: str, timeframe: str) -> dict[Key, tuple[float, int, bool]]:
        rows = self.db.execute(
            "SELECT type, side, time_ms, price, pen, final FROM signals "
            "WHERE symbol = ? AND timeframe = ? AND gone_ms IS NULL",
            (symbol, timeframe),
        )
        return {(t, side, ms): (price, pen, bool(final)) for t, side, ms, price, pen, final in rows}

    def write(
        self,
        symbol: str,
        timeframe: str,
        seen: dict[Key, tuple[float, int, bool]],
        gone: Iterable[Key],
    ) -> None:
        now = int(time.time() * 1000)
        with self.db:
            self.db.executemany(
                "INSERT INTO signals (symbol, timeframe, type, side, time_ms, price, pen, final, "
                "first_seen_ms, updated_ms, gone_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                "ON CONFLICT (symbol, timeframe, type, side, time_ms) DO UPDATE SET "
                "price = excluded.price, pen = excluded.pen, final = excluded.final, "
                "updated_ms = excluded.updated_ms, gone_ms = NULL",
                [
                    (symbol, timeframe, t, side, ms, price, pen, int(final), now, now)
                    for (t, side, ms), (price, pen, final) in seen.items()
                ],
            )
            self.db.executemany(
                "UPDATE signals SET gone_ms = ?, updated_ms = ? WHERE symbol = ? AND "
                "timeframe = ? AND type = ? AND side = ? AND time_ms = ? AND gone_ms IS NULL",
                [(now, now, symbol, timeframe, t, side, ms) for t, side, ms in gone],
            )

    def list(
        self, symbol: str | None = None, timeframe: str | None = None, current: bool = False
    ) -> list[StoredSignal]:
        """Signals oldest bar first; ``current``: only those not gone."""
        where: list[str] = []
        args: list[str] = []
        if symbol is not None:
            where.append("symbol = ?")
            args.append(symbol)
        if timeframe is not None:
            where.append("timeframe = ?")
            args.append(timeframe)
        if current:
            where.append("gone_ms IS NULL")
        sql = "SELECT * FROM signals" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.execute(sql + " ORDER BY symbol, timeframe, time_ms, type, side", args)
        return [
            StoredSignal(s, tf, t, side, ms, price, pen, bool(final), first, upd, gone)
            for s, tf, t, side, ms, price, pen, final, first, upd, gone in rows
        ]


class SignalBook:
    """One session's signals as the engines see them, written to the store when they change."""

    def __init__(self, store: SignalStore, symbol: str, timeframe: str) -> None:
        self.store = store
        self.symbol = symbol
        self.timeframe = timeframe
        self.final: list[pb.Signal] = []
        self.tail: list[pb.Signal] = []
        self.shown = store.present(symbol, timeframe)

    def reset(self, signals: Sequence[pb.Signal]) -> None:
        """Starts from a whole analysis (a session the monitor did not see from its open)."""
        self.final = [s for s in signals if s.final]
        self.tail = [s for s in signals if not s.final]
        self._flush()

    def apply(self, update: pb.Update) -> None:
        """One update the client was given: the final list spliced, the tail replaced."""
        splice = update.signals
        start = splice_start(splice)
        spliced = start != len(self.final) or bool(splice.items)
        if spliced:
            self.final[start:] = list(splice.items)
        if update.HasField("tail"):
            self.tail = list(update.tail.signals)
        elif not spliced:
            return  # nothing about signals changed
        self._flush()

    def _flush(self) -> None:
        now = {_key(s): (s.point.price, s.pen, s.final) for s in (*self.final, *self.tail)}
        seen = {k: v for k, v in now.items() if self.shown.get(k) != v}
        gone = [k for k in self.shown if k not in now]
        if seen or gone:
            self.store.write(self.symbol, self.timeframe, seen, gone)
        self.shown = now
