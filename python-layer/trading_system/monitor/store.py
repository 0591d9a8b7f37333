"""The monitor's state on disk (``system.state_file``, SQLite): the epoch, the mode, the switch
history, the runtime configuration both engines must hold, and every session's journal, so a
restarted monitor goes on where the last one stopped.

Why it matters: clients resume their streams by sequence number through a restarted monitor,
and it must still be able to rebuild an engine (it needs the journal), re-apply the
configuration to an engine that restarted, and keep epochs increasing (answers of the new
monitor must not carry epochs the old one already used).

Each acknowledged message is committed before the client gets its answer (WAL, ``synchronous =
NORMAL``: a process crash loses nothing; a power cut can lose the last transactions).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from trading_system.monitor.router import Router, Switch
from trading_system.proto import trading_pb2 as pb

# The journal tables are named apart from the first version's (whole StreamRequest rows): a
# state file from that version keeps its epoch and mode, its journals are not read.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS journal_sessions (
    name TEXT PRIMARY KEY,
    open BLOB,              -- the OpenSession; NULL: resumed, the monitor never saw it opened
    last_seq INTEGER NOT NULL,
    applied TEXT NOT NULL   -- unused (a restarted monitor vouches for no engine's position)
);
CREATE TABLE IF NOT EXISTS journal_messages (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message BLOB NOT NULL,  -- the BarMessage as serialized by the monitor
    PRIMARY KEY (name, seq)
) WITHOUT ROWID;
"""


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

    def load_journals(
        self,
    ) -> dict[str, tuple[pb.OpenSession | None, int, dict[str, int], list[bytes]]]:
        """Every session: its open message, last sequence number, engines' positions and
        journaled messages."""
        out = {}
        for name, opened, last_seq, applied in self.db.execute(
            "SELECT name, open, last_seq, applied FROM journal_sessions"
        ).fetchall():
            o = pb.OpenSession.FromString(opened) if opened is not None else None
            messages = [
                bytes(m)
                for (m,) in self.db.execute(
                    "SELECT message FROM journal_messages WHERE name = ? ORDER BY seq", (name,)
                )
            ]
            out[name] = (o, last_seq, json.loads(applied), messages)
        return out

    def save_session(
        self, name: str, opened: pb.OpenSession | None, last_seq: int, applied: dict[str, int]
    ) -> None:
        """A session opened (its old messages dropped) or resumed for the first time."""
        with self.db:
            self.db.execute("DELETE FROM journal_messages WHERE name = ?", (name,))
            self.db.execute(
                "INSERT OR REPLACE INTO journal_sessions (name, open, last_seq, applied)"
                " VALUES (?, ?, ?, ?)",
                (
                    name,
                    opened.SerializeToString() if opened is not None else None,
                    last_seq,
                    json.dumps(applied),
                ),
            )

    def save_message(self, name: str, seq: int, message: bytes | None) -> None:
        """A message acknowledged (``message`` None: not journaled, only counted)."""
        with self.db:
            if message is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO journal_messages (name, seq, message) VALUES (?, ?, ?)",
                    (name, seq, message),
                )
            self.db.execute("UPDATE journal_sessions SET last_seq = ? WHERE name = ?", (seq, name))

    def drop_session(self, name: str) -> None:
        """A session evicted: its journal is gone."""
        with self.db:
            self.db.execute("DELETE FROM journal_messages WHERE name = ?", (name,))
            self.db.execute("DELETE FROM journal_sessions WHERE name = ?", (name,))
