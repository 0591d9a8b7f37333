"""The monitor's state on disk (``system.state_file``, SQLite): the epoch, the mode, the switch
history and every session's journal, so a restarted monitor goes on where the last one stopped.

Why it matters: clients resume their streams by sequence number through a restarted monitor,
and it must still be able to rebuild a lagging engine (it needs the journal) and keep epochs
increasing (answers of the new monitor must not carry epochs the old one already used).

Each acknowledged bar is committed before the client gets its answer (WAL, ``synchronous =
NORMAL``: a process crash loses nothing; a power cut can lose the last transactions).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from trading_system.monitor.router import Router, Switch
from trading_system.proto import trading_pb2 as pb

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    name TEXT PRIMARY KEY,
    open BLOB,              -- the OpenSession; NULL: resumed, the monitor never saw it opened
    last_seq INTEGER NOT NULL,
    lag TEXT NOT NULL       -- JSON: engine -> bars it has not applied
);
CREATE TABLE IF NOT EXISTS bars (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    request BLOB NOT NULL,  -- the StreamRequest as the client sent it
    PRIMARY KEY (name, seq)
);
"""


class Store:
    """The state file. Every method commits before it returns."""

    def __init__(self, path: str | Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # --- The router --------------------------------------------------------------------------

    def load_router(self, router: Router) -> bool:
        """Restores epoch, mode and history into ``router``; False if the file had none."""
        rows = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if "epoch" not in rows:
            return False
        router.epoch = int(rows["epoch"])
        router.mode = rows["mode"]
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

    # --- Journals ----------------------------------------------------------------------------

    def load_journals(self) -> dict[str, tuple[pb.OpenSession | None, int, dict[str, int], list]]:
        """Every session: its open message, last sequence number, lags and journaled bars."""
        out = {}
        for name, opened, last_seq, lag in self.db.execute(
            "SELECT name, open, last_seq, lag FROM sessions"
        ):
            o = pb.OpenSession.FromString(opened) if opened is not None else None
            bars = [
                pb.StreamRequest.FromString(r)
                for (r,) in self.db.execute(
                    "SELECT request FROM bars WHERE name = ? ORDER BY seq", (name,)
                )
            ]
            out[name] = (o, last_seq, json.loads(lag), bars)
        return out

    def save_session(
        self, name: str, opened: pb.OpenSession | None, last_seq: int, lag: dict[str, int]
    ) -> None:
        """A session opened (its old bars dropped) or resumed for the first time."""
        with self.db:
            self.db.execute("DELETE FROM bars WHERE name = ?", (name,))
            self.db.execute(
                "INSERT OR REPLACE INTO sessions (name, open, last_seq, lag) VALUES (?, ?, ?, ?)",
                (
                    name,
                    opened.SerializeToString() if opened is not None else None,
                    last_seq,
                    json.dumps(lag),
                ),
            )

    def save_bar(
        self, name: str, request: pb.StreamRequest | None, last_seq: int, lag: dict[str, int]
    ) -> None:
        """A bar acknowledged (``request`` None: not journaled, only counted)."""
        with self.db:
            if request is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO bars (name, seq, request) VALUES (?, ?, ?)",
                    (name, last_seq, request.SerializeToString()),
                )
            self.db.execute(
                "UPDATE sessions SET last_seq = ?, lag = ? WHERE name = ?",
                (last_seq, json.dumps(lag), name),
            )

    def save_lag(self, name: str, lag: dict[str, int]) -> None:
        with self.db:
            self.db.execute("UPDATE sessions SET lag = ? WHERE name = ?", (json.dumps(lag), name))
