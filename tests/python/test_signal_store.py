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
from trading_system.signal_store import SCHEMA_VERSION, SignalBook, SignalStore, SignalStoreError


def signal(t: int, side: pb.Side, time: int, price: float, final: bool, pen: int = 3) -> pb.Signal:
    """A point as the engines send it, with what it was derived from (§12.6)."""
    g = pb.Signal(
        type=t,
        side=side,
        pen=pen,
        point=pb.Point(index=7, time=time, price=price),
        final=final,
        pivot=1,
        zd=9.0,
        zg=10.0,
    )
    if t == 1:
        g.entering_strength, g.leaving_strength, g.ratio = 2.0, 1.5, 0.75
    elif t == 2:
        g.follows = pen - 2
    else:
        g.edge = pb.ZG if side == pb.BUY else pb.ZD
    return g


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


def test_book_keeps_what_points_were_derived_from(tmp_path: Path) -> None:
    """Each row holds the point's pivot, a type-1 point's strengths and ratio (NULL where not
    finite: the engines send NaN there), a type-2 point's type-1 pen, a type-3 point's edge; a
    change of any of them rewrites the row."""
    store = SignalStore(tmp_path / "s.sqlite")
    book = SignalBook(store, "BTC", "1m")
    one = signal(1, pb.SELL, 100, 12.0, final=True, pen=5)
    two = signal(2, pb.SELL, 160, 11.0, final=False, pen=7)
    three = signal(3, pb.BUY, 200, 10.5, final=False, pen=9)
    book.reset([one, two, three])
    got = {r.type: r for r in store.list("BTC", "1m")}
    assert (got["1"].degree, got["1"].pivot, got["1"].zd, got["1"].zg) == (1, 1, 9.0, 10.0)
    r1, r2, r3 = got["1"], got["2"], got["3"]
    assert (r1.entering_strength, r1.leaving_strength, r1.ratio) == (2.0, 1.5, 0.75)
    assert (r1.follows, r1.edge) == (None, None)
    assert (r2.entering_strength, r2.ratio, r2.follows, r2.edge) == (None, None, 5, None)
    assert (r3.entering_strength, r3.follows, r3.edge) == (None, None, "zg")
    # The entering pen's strength not finite (a zero start price, §12.5): NULL, not NaN.
    nan = signal(1, pb.SELL, 100, 12.0, final=True, pen=5)
    nan.entering_strength = float("nan")
    book.apply(update(0, [nan], tail=[two, three]))
    r1 = {r.type: r for r in store.list("BTC", "1m")}["1"]
    assert (r1.entering_strength, r1.leaving_strength) == (None, 1.5)
    store.close()


def test_book_reads_higher_degrees_from_degree_updates(tmp_path: Path) -> None:
    """Degree n ≥ 2 points arrive in ``Update.degrees`` (DegreeUpdate): spliced and replaced as
    degree 1's, recorded with their degree, a point of another degree at the same bar, type and
    side is another row; a snapshot's ``degrees`` start a resumed book."""
    path = tmp_path / "s.sqlite"
    store = SignalStore(path)
    book = SignalBook(store, "BTC", "1m")
    book.reset([])
    a = signal(1, pb.BUY, 100, 9.5, final=False)
    u = update(0, [], tail=[a])
    d2 = u.degrees.add(degree=2, signals=pb.SignalSplice(**{"from": 0, "items": []}))
    d2.tail.CopyFrom(pb.Tail(signals=[signal(1, pb.BUY, 100, 9.5, final=False, pen=4)]))
    book.apply(u)
    got = sorted((r.degree, r.type, r.time_ms, r.pen) for r in store.list("BTC", "1m"))
    assert got == [(1, "1", 100, 3), (2, "1", 100, 4)]
    # Degree 2 only: its point made final by a splice, its tail emptied; degree 1 untouched.
    u = pb.Update(signals=pb.SignalSplice(**{"from": 0, "items": []}))
    d2 = u.degrees.add(degree=2)
    d2.signals.items.append(signal(1, pb.BUY, 100, 9.5, final=True, pen=4))
    d2.tail.CopyFrom(pb.Tail(signals=[]))
    book.apply(u)
    rows2 = {(r.degree, r.type): r for r in store.list("BTC", "1m")}
    assert rows2[(2, "1")].final and rows2[(2, "1")].gone_ms is None
    assert rows2[(1, "1")].gone_ms is None and not rows2[(1, "1")].final
    # A degree-2 tail without the point: gone at degree 2 only.
    u = pb.Update(signals=pb.SignalSplice(**{"from": 0, "items": []}))
    u.degrees.add(degree=2, signals=pb.SignalSplice(**{"from": 0, "items": []}))
    book.apply(u)
    rows2 = {(r.degree, r.type): r for r in store.list("BTC", "1m")}
    assert rows2[(2, "1")].gone_ms is not None and rows2[(1, "1")].gone_ms is None
    store.close()
    # A resumed book starts from a snapshot's degree-1 signals and its degrees.
    store = SignalStore(path)
    again = SignalBook(store, "BTC", "1m")
    snap = pb.Analysis(signals=[a])
    snap.degrees.add(degree=2, signals=[signal(3, pb.SELL, 300, 8.0, final=True, pen=6)])
    again.reset(list(snap.signals), list(snap.degrees))
    current = sorted((r.degree, r.type, r.edge) for r in store.list("BTC", "1m", current=True))
    assert current == [(1, "1", None), (2, "3", "zd")]
    store.close()


SCHEMA_1 = """
CREATE TABLE signals (
    symbol TEXT NOT NULL, timeframe TEXT NOT NULL, type TEXT NOT NULL, side TEXT NOT NULL,
    time_ms INTEGER NOT NULL, price REAL NOT NULL, pen INTEGER NOT NULL, final INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, gone_ms INTEGER,
    PRIMARY KEY (symbol, timeframe, type, side, time_ms)
);
INSERT INTO signals VALUES ('BTC', '1m', '1', 'buy', 100, 9.5, 3, 1, 1, 2, NULL);
INSERT INTO signals VALUES ('BTC', '1m', '3', 'sell', 160, 11.0, 5, 0, 1, 2, 3);
"""


def test_a_first_schema_file_is_migrated(tmp_path: Path) -> None:
    """A file the previous version wrote (no degrees, no derivation) opens as degree-1 rows
    with NULL derivation, then records as usual; the signals command shows it."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1)
    store = SignalStore(path)
    got = store.list("BTC", "1m")
    assert [(r.degree, r.type, r.side, r.time_ms, r.final, r.pivot, r.edge) for r in got] == [
        (1, "1", "buy", 100, True, None, None),
        (1, "3", "sell", 160, False, None, None),
    ]
    assert got[1].gone_ms == 3
    # The same point seen again: its row is completed, not duplicated.
    book = SignalBook(store, "BTC", "1m")
    book.reset([signal(1, pb.BUY, 100, 9.5, final=True)])
    got = store.list("BTC", "1m")
    assert len(got) == 2 and got[0].ratio == 0.75 and got[0].pivot == 1
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_schema_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SignalStoreError, match="written by a newer version"):
        SignalStore(path)
    argv = [sys.executable, "-m", "trading_system", "signals", "--file", str(path)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "written by a newer version" in out.stderr, out.stderr


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
    assert "degree 1" in lines[0] and "pivot 1 [9, 10]" in lines[0]
    assert "strength 1.5 / 2 = 0.75" in lines[0]
    assert "sell 3" in lines[1] and "2023-11-14T22:18:20Z" in lines[1] and "gone 20" in lines[1]
    assert "cleared ZD" in lines[1]
    current = run("--symbol", "ETH/USD", "--current", "--json")
    docs = [json.loads(x) for x in current.stdout.splitlines()]
    assert [(d["type"], d["side"], d["price"], d["gone_ms"]) for d in docs] == [
        ("1", "buy", 2000.5, None)
    ]
    d = docs[0]
    assert (d["degree"], d["pivot"], d["zd"], d["zg"]) == (1, 1, 9.0, 10.0)
    assert (d["entering_strength"], d["leaving_strength"], d["ratio"]) == (2.0, 1.5, 0.75)
    assert (d["follows"], d["edge"]) == (None, None)
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
        # Every degree's points (§13): degree 1 at the top, the others in `degrees`.
        lists = [(1, snap.analysis.signals)] + [
            (d.degree, d.signals) for d in snap.analysis.degrees
        ]
        final = {
            (n, str(s.type), "buy" if s.side == pb.BUY else "sell", s.point.time, s.point.price)
            for n, signals in lists
            for s in signals
        }
        assert {k[0] for k in final} == {1, 2}, "the series should have points at degrees 1, 2"
    store = SignalStore(path)
    recorded = store.list("SIGNALS", "1m")
    store.close()
    present = {
        (r.degree, r.type, r.side, r.time_ms, r.price) for r in recorded if r.gone_ms is None
    }
    gone = {(r.degree, r.type, r.side, r.time_ms) for r in recorded if r.gone_ms is not None}
    assert present == final
    assert not gone & {k[:4] for k in final}
    keys = [(r.degree, r.type, r.side, r.time_ms) for r in recorded]
    assert len(keys) == len(set(keys))
