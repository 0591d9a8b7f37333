"""The monitor's state on disk (``system.state_file``, SQLite): the epoch, the mode, the switch
history, the runtime configuration both engines must hold, and every session's journal, so a
restarted monitor goes on where the last one stopped.

Why it matters: clients resume their streams by sequence number through a restarted monitor,
and it must still be able to rebuild an engine (it needs the journal), re-apply the
configuration to an engine that restarted, and keep epochs increasing (answers of the new
monitor must not carry epochs the old one already used).

Each acknowledged message's bar is committed before the client gets its answer (WAL, ``synchronous =
NORMAL``: a process crash loses nothing; a power cut can lose the last transactions).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from trading_system.monitor.journal import Series
from trading_system.monitor.router import Router, Switch
from trading_system.proto import trading_pb2 as pb

# The journal tables are named apart from the first version's (whole StreamRequest rows): a
# state file from that version keeps its epoch and mode, its journals are not read.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS journal_sessions (
    name TEXT PRIMARY KEY,
    open BLOB,              -- the OpenSession; NULL: resumed, the monitor never saw it opened
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_bars (
    name TEXT NOT NULL,
    idx INTEGER NOT NULL,   -- the bar's index in the session's series
    bar BLOB NOT NULL,      -- the Bar as acknowledged last (a replacement overwrites it)
    PRIMARY KEY (name, idx)
) WITHOUT ROWID;
"""
"""Only the series is kept, never the messages: a restarted monitor vouches for no engine's
position, so every engine is rebuilt from the series; a tick stream of replacements of the
last bar does not grow the file."""


class Store:
    """The state file. Every method commits before it returns."""

    def __init__(self, path: str | Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(SCHEMA)
        # Every write below is one transaction: ``with self.db`` begins one (sqlite3 does not in
        # autocommit mode) — a message and the number it raises the session to are saved
        # together or not at all.
        self.db.isolation_level = "DEFERRED"

    def close(self) -> None:
        self.db.close()

    # --- The router and the configuration ----------------------------------------------------

    def load_router(self, router: Router) -> bool:
        """Restores epoch, mode and history into ``router``; False if the file had none."""
        rows = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if "epoch" not in rows:
            return False
        router.epoch = int(rows["epoch"])
        router.mode = str(rows["mode"])
        router.switches = [Switch(**s) for s in json.loads(rows["switches"])]
        router.active = router.switches[-1].engine
        return True

    def save_router(self, router: Router) -> None:
        switches = json.dumps([s.__dict__ for s in router.switches])
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("epoch", str(router.epoch)), ("mode", router.mode), ("switches", switches)],
            )

    def load_config(self) -> pb.EngineConfig | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        return None if row is None else pb.EngineConfig.FromString(row[0])

    def save_config(self, config: pb.EngineConfig) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('config', ?)",
                (config.SerializeToString(deterministic=True),),
            )

    # --- Journals ----------------------------------------------------------------------------

    def load_journals(self) -> dict[str, tuple[pb.OpenSession | None, int, Series]]:
        """Every session: its open message, last sequence number and bar series."""
        out = {}
        for name, opened, last_seq in self.db.execute(
            "SELECT name, open, last_seq FROM journal_sessions"
        ).fetchall():
            o = pb.OpenSession.FromString(opened) if opened is not None else None
            series = Series()
            for (bar,) in self.db.execute(
                "SELECT bar FROM journal_bars WHERE name = ? ORDER BY idx", (name,)
            ):
                series.apply(pb.APPEND, pb.Bar.FromString(bar))
            out[name] = (o, last_seq, series)
        return out

    def save_session(self, name: str, opened: pb.OpenSession | None, last_seq: int) -> None:
        """A session opened (its old bars dropped) or resumed for the first time."""
        with self.db:
            self.db.execute("DELETE FROM journal_bars WHERE name = ?", (name,))
            self.db.execute(
                "INSERT OR REPLACE INTO journal_sessions (name, open, last_seq) VALUES (?, ?, ?)",
                (name, opened.SerializeToString() if opened is not None else None, last_seq),
            )

    def save_message(self, name: str, seq: int, index: int, bar: bytes | None) -> None:
        """A message acknowledged: the bar it appended or replaced at ``index`` (``bar`` None:
        a session the monitor cannot rebuild, only its number is kept)."""
        with self.db:
            if bar is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO journal_bars (name, idx, bar) VALUES (?, ?, ?)",
                    (name, index, bar),
                )
            self.db.execute("UPDATE journal_sessions SET last_seq = ? WHERE name = ?", (seq, name))

    def drop_session(self, name: str) -> None:
        """A session evicted: its journal is gone."""
        with self.db:
            self.db.execute("DELETE FROM journal_bars WHERE name = ?", (name,))
            self.db.execute("DELETE FROM journal_sessions WHERE name = ?", (name,))
