"""Buy/sell points (买卖点) of streaming sessions kept in SQLite (``system.signals_file``): what
bots were told, for the record and for ``trading-system signals``.

The monitor keeps one :class:`SignalBook` per session and feeds it every update it delivers
to a client (each sequence number once: cached answers to resent messages are not fed again).
A book holds the session's signals as the engines see them, at every degree (§13: degree 1 in
the update's ``signals``/``tail``, degree n ≥ 2 in its ``degrees``) — the final list (spliced by
each update) plus the non-final tail (replaced whole when the update carries one) — and writes
what changed:

- a signal is identified by session (symbol, timeframe), degree, type, side and bar time: the
  same signal seen again (another update, a failover to the other engine, a resume, a restarted
  monitor) updates its row, never adds one;
- a signal that disappears (a non-final point the next bars invalidate) is marked
  ``gone_ms``, not deleted; if it comes back the mark is cleared;
- ``final`` says whether the engine has fixed it;
- what it was derived from (docs/CHAN_THEORY.md §12.6) is kept with it: ``pivot`` (index in the
  degree's pivots), ``zd``/``zg``, a type-1 point's strengths and ratio, a type-2 point's
  ``follows``, a type-3 point's ``edge``.

The file carries its schema version (``PRAGMA user_version``, :data:`SCHEMA_VERSION`). A file of
the first schema (no degrees, no derivation) is migrated when opened: its rows become degree-1
rows whose derivation columns are NULL (not recorded then). A file of a newer schema is refused
(:class:`SignalStoreError`), never misread.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from trading_system.convert import side_name, splice_start
from trading_system.errors import ChanError
from trading_system.proto import trading_pb2 as pb
from trading_system.results import SIGNAL_DERIVATION

SCHEMA_VERSION = 2
"""The schema this version writes (``PRAGMA user_version``); 0 is the first one's (no degrees)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    degree INTEGER NOT NULL,   -- 1: built on pens; n + 1: on degree-n segments (§13)
    type TEXT NOT NULL,        -- "1" | "2" | "3"
    side TEXT NOT NULL,        -- "buy" | "sell"
    time_ms INTEGER NOT NULL,  -- the bar's time, epoch milliseconds UTC
    price REAL NOT NULL,
    pen INTEGER NOT NULL,
    final INTEGER NOT NULL,
    -- What it was derived from (docs/CHAN_THEORY.md §12.6); NULL where the document has null,
    -- and in rows migrated from the first schema (not recorded then).
    pivot INTEGER,             -- index in the degree's pivots
    zd REAL,
    zg REAL,
    entering_strength REAL,    -- type 1
    leaving_strength REAL,     -- type 1
    ratio REAL,                -- type 1: leaving / entering
    follows INTEGER,           -- type 2: the type-1 point's pen
    edge TEXT,                 -- type 3: "zg" (buy) | "zd" (sell)
    first_seen_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    gone_ms INTEGER,           -- set when the signal disappeared (NULL: present)
    PRIMARY KEY (symbol, timeframe, degree, type, side, time_ms)
);
"""

_DERIVED = SIGNAL_DERIVATION
"""The derivation columns, in the table's order (the document's)."""

_COLUMNS = (
    "symbol",
    "timeframe",
    "degree",
    "type",
    "side",
    "time_ms",
    "price",
    "pen",
    "final",
    *_DERIVED,
    "first_seen_ms",
    "updated_ms",
    "gone_ms",
)

# The first schema's table, renamed, copied into the current one as degree-1 rows.
_MIGRATE_1 = """
ALTER TABLE signals RENAME TO signals_schema1;
{schema}
INSERT INTO signals (symbol, timeframe, degree, type, side, time_ms, price, pen, final,
    first_seen_ms, updated_ms, gone_ms)
SELECT symbol, timeframe, 1, type, side, time_ms, price, pen, final,
    first_seen_ms, updated_ms, gone_ms FROM signals_schema1;
DROP TABLE signals_schema1;
"""


class SignalStoreError(ChanError, RuntimeError):
    """A signals file this version cannot read (written by a newer one)."""


Key = tuple[int, str, str, int]
"""(degree, type, side, bar time): a signal within its session."""

Shown = tuple[Any, ...]
"""What a row records of a signal: price, pen, final, then the derivation columns."""


@dataclass(frozen=True)
class StoredSignal:
    symbol: str
    timeframe: str
    degree: int
    type: str
    side: str
    time_ms: int
    price: float
    pen: int
    final: bool
    pivot: int | None
    zd: float | None
    zg: float | None
    entering_strength: float | None
    leaving_strength: float | None
    ratio: float | None
    follows: int | None
    edge: str | None
    first_seen_ms: int
    updated_ms: int
    gone_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _key(degree: int, s: pb.Signal) -> Key:
    return (degree, str(s.type), side_name(s.side), s.point.time)


def _finite(
    s: pb.Signal, field: Literal["entering_strength", "leaving_strength", "ratio"]
) -> float | None:
    """A type-1 strength or ratio as recorded: NULL when absent or not a finite number."""
    if not s.HasField(field):
        return None
    x: float = getattr(s, field)
    return x if math.isfinite(x) else None


_EDGE_NAME = {pb.ZD: "zd", pb.ZG: "zg"}


def _shown(s: pb.Signal) -> Shown:
    return (
        s.point.price,
        s.pen,
        s.final,
        s.pivot,
        s.zd,
        s.zg,
        _finite(s, "entering_strength"),
        _finite(s, "leaving_strength"),
        _finite(s, "ratio"),
        s.follows if s.HasField("follows") else None,
        _EDGE_NAME.get(s.edge),
    )


class SignalStore:
    """The SQLite file; every write commits (WAL: readers such as the CLI never block it)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self._schema(str(path))

    def _schema(self, path: str) -> None:
        """Creates the table, or migrates a first-schema file; refuses a newer schema."""
        version: int = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self.db.close()
            raise SignalStoreError(
                f"{path}: signals file of schema {version}, written by a newer version "
                f"(this one reads schema {SCHEMA_VERSION} and older)"
            )
        if version == SCHEMA_VERSION:
            return
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(signals)")}
        script = _MIGRATE_1.format(schema=SCHEMA) if columns else SCHEMA
        # One transaction: a file is migrated whole or not at all.
        self.db.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
        )

    def close(self) -> None:
        self.db.close()

    def present(self, symbol: str, timeframe: str) -> dict[Key, Shown]:
        rows = self.db.execute(
            "SELECT degree, type, side, time_ms, price, pen, final, "
            + ", ".join(_DERIVED)
            + " FROM signals WHERE symbol = ? AND timeframe = ? AND gone_ms IS NULL",
            (symbol, timeframe),
        )
        return {
            (degree, t, side, ms): (price, pen, bool(final), *derived)
            for degree, t, side, ms, price, pen, final, *derived in rows
        }

    def write(
        self,
        symbol: str,
        timeframe: str,
        seen: dict[Key, Shown],
        gone: Iterable[Key],
    ) -> None:
        now = int(time.time() * 1000)
        values = ("price", "pen", "final", *_DERIVED)
        with self.db:
            self.db.executemany(
                "INSERT INTO signals (symbol, timeframe, degree, type, side, time_ms, "
                + ", ".join(values)
                + ", first_seen_ms, updated_ms, gone_ms) VALUES ("
                + ", ".join("?" * (6 + len(values) + 2))
                + ", NULL) ON CONFLICT (symbol, timeframe, degree, type, side, time_ms) "
                "DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in values)
                + ", updated_ms = excluded.updated_ms, gone_ms = NULL",
                [
                    (symbol, timeframe, *k, price, pen, int(final), *derived, now, now)
                    for k, (price, pen, final, *derived) in seen.items()
                ],
            )
            self.db.executemany(
                "UPDATE signals SET gone_ms = ?, updated_ms = ? WHERE symbol = ? AND "
                "timeframe = ? AND degree = ? AND type = ? AND side = ? AND time_ms = ? "
                "AND gone_ms IS NULL",
                [(now, now, symbol, timeframe, *k) for k in gone],
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
        sql = f"SELECT {', '.join(_COLUMNS)} FROM signals" + (
            " WHERE " + " AND ".join(where) if where else ""
        )
        order = " ORDER BY symbol, timeframe, degree, time_ms, type, side"
        out = []
        for row in self.db.execute(sql + order, args):
            r = dict(zip(_COLUMNS, row, strict=True))
            r["final"] = bool(r["final"])
            out.append(StoredSignal(**r))
        return out


class SignalBook:
    """One session's signals as the engines see them, at every degree, written to the store
    when they change."""

    def __init__(self, store: SignalStore, symbol: str, timeframe: str) -> None:
        self.store = store
        self.symbol = symbol
        self.timeframe = timeframe
        # Per degree: the final list and the tail.
        self.final: dict[int, list[pb.Signal]] = {}
        self.tail: dict[int, list[pb.Signal]] = {}
        self.shown = store.present(symbol, timeframe)

    def reset(self, signals: Sequence[pb.Signal], degrees: Sequence[pb.Degree] = ()) -> None:
        """Starts from a whole analysis (a session the monitor did not see from its open):
        its degree-1 ``signals`` and its higher ``degrees``."""
        lists = {1: list(signals), **{d.degree: list(d.signals) for d in degrees}}
        self.final = {n: [s for s in gs if s.final] for n, gs in lists.items()}
        self.tail = {n: [s for s in gs if not s.final] for n, gs in lists.items()}
        self._flush()

    def apply(self, update: pb.Update) -> None:
        """One update the client was given: at each degree, the final list spliced and the
        tail replaced."""
        changed = self._apply(1, update.signals, update.tail if update.HasField("tail") else None)
        for d in update.degrees:
            tail = d.tail if d.HasField("tail") else None
            changed = self._apply(d.degree, d.signals, tail) or changed
        if changed:
            self._flush()

    def _apply(self, degree: int, splice: pb.SignalSplice, tail: pb.Tail | None) -> bool:
        """One degree's splice and tail; whether its signals changed."""
        final = self.final.setdefault(degree, [])
        start = splice_start(splice)
        spliced = start != len(final) or bool(splice.items)
        if spliced:
            final[start:] = list(splice.items)
        if tail is not None:
            self.tail[degree] = list(tail.signals)
        return spliced or tail is not None

    def _flush(self) -> None:
        now = {
            _key(n, s): _shown(s)
            for n in sorted(self.final.keys() | self.tail.keys())
            for s in (*self.final.get(n, ()), *self.tail.get(n, ()))
        }
        seen = {k: v for k, v in now.items() if self.shown.get(k) != v}
        gone = [k for k in self.shown if k not in now]
        if seen or gone:
            self.store.write(self.symbol, self.timeframe, seen, gone)
        self.shown = now
