"""The record of buy/sell points (python-layer/trading_system/signal_store.py): a SignalBook fed
update messages, the SQLite rows it leaves, the ``trading-system signals`` command; and, with
real processes, a stream through the monitor that fails over mid-way: the record holds every
signal of the final state once, and only signals that are not in it are marked gone."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import Feeder, check, cluster
from servers import ROOT

from trading_system.proto import trading_pb2 as pb
from trading_system.signal_store import SignalBook, SignalStore


def signal(t: int, side: pb.Side, time: int, price: float, final: bool, pen: int = 3) -> pb.Signal:
    return pb.Signal(
        type=t, side=side, pen=pen, point=pb.Point(index=7, time=time, price=price), final=final
    )


def update(start: int, items: list[pb.Signal], tail: list[pb.Signal] | None = None) -> pb.Update:
    u = pb.Update(signals=pb.SignalSplice(**{"from": start, "items": items}))
    if tail is not None:
        u.tail.CopyFrom(pb.Tail(signals=tail))
    return u


def rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT type, side, time_ms, price, final, gone_ms IS NOT NULL FROM signals "
            "ORDER BY time_ms, type"
        ).fetchall()


def test_book_writes_changes_marks_gone_and_never_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SignalStore(path)
    book = SignalBook(store, "BTC", "1m")
    book.reset([])
    a = signal(1, pb.BUY, 100, 9.5, final=False)
    book.apply(update(0, [], tail=[a]))
    assert rows(path) == [("1", "buy", 100, 9.5, 0, 0)]
    # The same update again (a resent message, a failover): nothing new.
    book.apply(update(0, [], tail=[a]))
    assert rows(path) == [("1", "buy", 100, 9.5, 0, 0)]
    # The tail moves on without it: marked gone, not deleted.
    b = signal(2, pb.SELL, 160, 11.0, final=False)
    book.apply(update(0, [], tail=[b]))
    assert rows(path) == [("1", "buy", 100, 9.5, 0, 1), ("2", "sell", 160, 11.0, 0, 0)]
    # It comes back, final this time (spliced into the final list): the mark is cleared.
    book.apply(update(0, [signal(1, pb.BUY, 100, 9.5, final=True)], tail=[b]))
    assert rows(path) == [("1", "buy", 100, 9.5, 1, 0), ("2", "sell", 160, 11.0, 0, 0)]
    # An update without a tail and an empty splice at the end changes nothing.
    book.apply(update(1, []))
    assert rows(path) == [("1", "buy", 100, 9.5, 1, 0), ("2", "sell", 160, 11.0, 0, 0)]
    # A splice that truncates the final list: the removed signal is gone.
    book.apply(update(0, []))
    assert rows(path)[0] == ("1", "buy", 100, 9.5, 1, 1)
    store.close()

    # A new book on the same file (a restarted monitor) starts from what is recorded, and a
    # reset from a snapshot marks gone what the snapshot no longer has.
    store = SignalStore(path)
    again = SignalBook(store, "BTC", "1m")
    again.reset([signal(3, pb.BUY, 200, 8.0, final=True)])
    got = {r.time_ms: r for r in store.list("BTC", "1m")}
    assert got[160].gone_ms is not None and got[200].gone_ms is None and got[200].final
    assert [r.time_ms for r in store.list("BTC", "1m", current=True)] == [200]
    assert store.list("ETH") == []
    store.close()


def test_signals_command(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SignalStore(path)
    book = SignalBook(store, "ETH/USD", "5m")
    book.reset([signal(1, pb.BUY, 1_700_000_000_000, 2000.5, True)])
    book.apply(update(1, [], tail=[signal(3, pb.SELL, 1_700_000_300_000, 2100.0, False)]))
    book.apply(update(1, [], tail=[]))
    store.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "trading_system", "signals", "--file", str(path), *args]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)

    out = run("--symbol", "ETH/USD")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert "buy 1" in lines[0] and "2000.5" in lines[0] and "final" in lines[0]
    assert "sell 3" in lines[1] and "2023-11-14T22:18:20Z" in lines[1] and "gone 20" in lines[1]
    current = run("--symbol", "ETH/USD", "--current", "--json")
    docs = [json.loads(x) for x in current.stdout.splitlines()]
    assert [(d["type"], d["side"], d["price"], d["gone_ms"]) for d in docs] == [
        ("1", "buy", 2000.5, None)
    ]
    assert run("--symbol", "NONE").stdout == "no signals recorded for NONE\n"
    missing = subprocess.run(
        [sys.executable, "-m", "trading_system", "signals", "--file", str(tmp_path / "x.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "no such signals file" in missing.stderr


@pytest.mark.parametrize("kill", ["rust", "nobody"])
def test_signals_recorded_through_a_failover(tmp_path: Path, kill: str) -> None:
    """A stream through the monitor (with kill -9 of the active engine mid-way, or none): the
    record's current signals are exactly the final state's, one row each; rows marked gone
    are signals the final state does not have."""
    path = tmp_path / "signals.sqlite"
    sets = ["system.health_check_interval_ms=100", f"system.signals_file={path}"]
    with cluster(sets) as c:
        f = Feeder(c, "SIGNALS", 3000)
        f.start()
        f.reach(1500)
        if kill != "nobody":
            c.kill(kill)
        acks = f.finish()
        check(c, f.symbol, f.bars, acks)
        snap = c.stub().GetSnapshot(pb.SnapshotRequest(symbol="SIGNALS", timeframe="1m"))
        final = {
            (str(s.type), "buy" if s.side == pb.BUY else "sell", s.point.time, s.point.price)
            for s in snap.analysis.signals
        }
        assert final, "the series should have buy/sell points"
    store = SignalStore(path)
    recorded = store.list("SIGNALS", "1m")
    store.close()
    present = {(r.type, r.side, r.time_ms, r.price) for r in recorded if r.gone_ms is None}
    gone = {(r.type, r.side, r.time_ms) for r in recorded if r.gone_ms is not None}
    assert present == final
    assert not gone & {k[:3] for k in final}
    keys = [(r.type, r.side, r.time_ms) for r in recorded]
    assert len(keys) == len(set(keys))
