"""The monitor's parts without processes: request decoding (what is refused, what is dropped),
the hand-assembled CatchUp encoding (equal to protobuf's own), the journal's bookkeeping
(positions, lag, the replay window)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trading_system.monitor.decode import Undecodable, parse
from trading_system.monitor.journal import UNKNOWN, Journal
from trading_system.monitor.replica import session_catch_up
from trading_system.monitor.store import Store
from trading_system.monitor.wire import length_delimited as _field
from trading_system.proto import trading_pb2 as pb


def bar_message(seq: int, close: float = 10.0) -> pb.BarMessage:
    b = pb.Bar(time=seq * 60_000, open=close, high=close + 1, low=close - 1, close=close)
    return pb.BarMessage(seq=seq, op=pb.APPEND, bar=b)


def test_a_known_field_with_the_wrong_wire_type_is_refused_at_any_depth() -> None:
    valid = pb.AnalyzeRequest(with_macd=True).SerializeToString()
    assert parse(pb.AnalyzeRequest, valid).with_macd
    with pytest.raises(
        Undecodable, match=r"^the request is not a valid trading.v1.AnalyzeRequest$"
    ):
        parse(pb.AnalyzeRequest, valid + bytes([0x1A, 0x01, 0x00]))  # field 3 as bytes
    inner = bytes([0x0A, 0x01, 0x05])  # BarMessage.seq (a varint) as bytes
    with pytest.raises(Undecodable, match="StreamRequest"):
        parse(pb.StreamRequest, bytes([0x12, len(inner)]) + inner)
    with pytest.raises(Undecodable):
        parse(pb.SnapshotRequest, b"\xff\xff\xff")


def test_unknown_fields_are_dropped_not_forwarded() -> None:
    data = pb.SnapshotRequest(symbol="A", timeframe="1m").SerializeToString()
    extra = bytes([0xF8, 0x3E, 0x01])  # field 999, a varint: unknown to both engines
    m = parse(pb.SnapshotRequest, data + extra)
    assert m.SerializeToString() == data


def test_catch_up_entries_assembled_from_stored_bytes_equal_protobufs_own() -> None:
    opened = pb.OpenSession(symbol="X", timeframe="1m", with_macd=True)
    j = Journal("X/1m", opened)
    messages = [bar_message(i).SerializeToString(deterministic=True) for i in range(1, 300)]
    mine = session_catch_up(j, False, 0, messages)
    theirs = pb.SessionCatchUp(
        open=opened, fresh=False, after_seq=0, bars=[pb.BarMessage.FromString(m) for m in messages]
    )
    assert pb.SessionCatchUp.FromString(mine) == theirs
    request = b"".join(_field(1, e) for e in [mine, mine])
    assert len(pb.CatchUpRequest.FromString(request).sessions) == 2
    # Lengths of one, two and three varint bytes.
    for size in (0, 127, 128, 16_383, 16_384, 70_000):
        decoded = pb.SessionCatchUp()
        decoded.ParseFromString(_field(1, pb.OpenSession(symbol="s" * size).SerializeToString()))
        assert decoded.open.symbol == "s" * size


def accept(j: Journal, seq: int, op: int = pb.APPEND, close: float = 10.0) -> bytes:
    m = bar_message(seq, close)
    m.op = op  # type: ignore[assignment]
    data = m.SerializeToString(deterministic=True)
    answer = pb.StreamResponse(seq=seq, engine="rust", update=pb.Update(index=seq - 1))
    j.accept(data, m, answer, "rust", replay_window=4)
    return data


def test_journal_positions_lag_and_the_answers_kept() -> None:
    j = Journal("X/1m", pb.OpenSession(symbol="X", timeframe="1m"))
    assert j.behind("rust") == 1 and j.applied["python"] == UNKNOWN  # the open counts
    for seq in range(1, 11):
        accept(j, seq)
    assert j.last_seq == 10 and j.applied["rust"] == 10
    assert j.behind("rust") == 0 and j.behind("python") == 11
    assert j.cached(6) is None and j.cached(11) is None  # outside the window / not yet
    message, answer = j.cached(8)  # type: ignore[misc]
    assert answer.seq == 8 and pb.BarMessage.FromString(message).seq == 8
    # Python's place is unknown: it is rebuilt from the series, standing at 10; the messages
    # are not needed by anyone (rust holds them all): the checkpoint dropped them.
    assert j.pending("python", 3) == (True, 10, [])
    assert j.messages == [] and j.base_seq == 10
    entry = pb.SessionCatchUp.FromString(session_catch_up(j, True, 10, []))
    assert list(entry.base.time) == [s * 60_000 for s in range(1, 11)] and entry.after_seq == 10


def test_the_checkpoint_keeps_what_a_known_engine_lacks() -> None:
    j = Journal("X/1m", pb.OpenSession(symbol="X", timeframe="1m"))
    for seq in range(1, 6):
        accept(j, seq)
    j.set_applied("python", 5)
    sent = [accept(j, seq) for seq in range(6, 10)]
    assert j.base_seq == 5 and j.messages == sent  # python lacks 6..9
    fresh, after, pending = j.pending("python", 100)
    assert not fresh and after == 5 and pending == sent
    assert len(j.acked_at) == 4  # times kept only for what the slowest engine lacks
    assert j.lag_ms("python", j.acked_at[0] + 0.5) == pytest.approx(500.0)
    assert j.lag_ms("rust", j.acked_at[0] + 0.5) == 0.0
    j.set_applied("python", 8)
    assert j.base_seq == 8 and j.messages == sent[3:]
    # A fresh rebuild on its way pins what comes after it, even with the engine unknown.
    j.set_applied("python", UNKNOWN)
    j.pin("python", 9)
    accept(j, 10)
    assert j.base_seq == 9 and len(j.messages) == 1
    j.unpin("python")
    j.set_applied("python", 9)
    assert j.pending("python", 100)[2] == j.messages


def test_replacements_do_not_grow_the_series() -> None:
    j = Journal("X/1m", pb.OpenSession(symbol="X", timeframe="1m"))
    accept(j, 1)
    for seq in range(2, 200):
        accept(j, seq, pb.REPLACE_LAST, close=10.0 + seq / 100)
    assert len(j.series) == 1 and j.series.bar(0).close == pytest.approx(11.99)
    j.set_applied("python", 199)
    assert j.messages == []


def test_a_message_and_its_number_are_saved_in_one_transaction(tmp_path: Path) -> None:
    """The state file never holds a bar without the session's number raised to it (a kill -9
    between two autocommitted statements could once leave one, which a restarted monitor then
    sent to the engines as if acknowledged); it keeps the series, not the messages."""
    store = Store(tmp_path / "state.sqlite")
    opened = pb.OpenSession(symbol="X", timeframe="1m")
    store.save_session("X/1m", opened, 0)
    store.db.execute("INSERT INTO meta (key, value) VALUES ('probe', 'x')")
    assert store.db.in_transaction  # DML opens a transaction: nothing is autocommitted
    store.db.rollback()
    j = Journal("X/1m", opened, store=store)
    accept(j, 1)
    accept(j, 2)
    accept(j, 3, pb.REPLACE_LAST, close=12.0)
    assert not store.db.in_transaction
    o, last_seq, series = store.load_journals()["X/1m"]
    assert o == opened and last_seq == 3
    assert series.bars() == j.series.bars() and len(series) == 2
