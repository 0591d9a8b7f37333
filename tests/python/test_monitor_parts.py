"""The monitor's parts without processes: request decoding (what is refused, what is dropped),
the hand-assembled CatchUp encoding (equal to protobuf's own), the journal's bookkeeping
(positions, lag, the replay window)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trading_system.monitor.decode import Undecodable, parse
from trading_system.monitor.journal import UNKNOWN, Journal
from trading_system.monitor.replica import _field, session_catch_up
from trading_system.monitor.store import Store
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


def test_journal_positions_lag_and_replay_window() -> None:
    j = Journal("X/1m", pb.OpenSession(symbol="X", timeframe="1m"))
    assert j.behind("rust") == 1 and j.applied["python"] == UNKNOWN  # the open counts
    for seq in range(1, 11):
        m = bar_message(seq).SerializeToString(deterministic=True)
        answer = pb.StreamResponse(seq=seq, engine="rust", update=pb.Update(index=seq - 1))
        j.accept(m, answer, "rust", replay_window=4)
    assert j.last_seq == 10 and j.applied["rust"] == 10
    assert j.behind("rust") == 0 and j.behind("python") == 11
    assert j.cached(6) is None and j.cached(11) is None  # outside the window / not yet
    message, answer = j.cached(8)  # type: ignore[misc]
    assert answer.seq == 8 and pb.BarMessage.FromString(message).seq == 8
    fresh, after, pending = j.pending("python", 3)
    assert fresh and after == 0 and len(pending) == 3
    j.set_applied("python", 7)
    fresh, after, pending = j.pending("python", 100)
    assert (
        not fresh
        and after == 7
        and [pb.BarMessage.FromString(m).seq for m in pending]
        == [
            8,
            9,
            10,
        ]
    )
    assert len(j.acked_at) == 3  # times kept only for what the slowest engine lacks
    assert j.lag_ms("python", j.acked_at[0] + 0.5) == pytest.approx(500.0)
    assert j.lag_ms("rust", j.acked_at[0] + 0.5) == 0.0


def test_a_message_and_its_number_are_saved_in_one_transaction(tmp_path: Path) -> None:
    """The state file never holds a message without the session's number raised to it (a
    kill -9 between two autocommitted statements once left one, which a restarted monitor
    then sent to the engines as if acknowledged)."""
    store = Store(tmp_path / "state.sqlite")
    opened = pb.OpenSession(symbol="X", timeframe="1m")
    store.save_session("X/1m", opened, 0, {})
    store.db.execute("INSERT INTO meta (key, value) VALUES ('probe', 'x')")
    assert store.db.in_transaction  # DML opens a transaction: nothing is autocommitted
    store.db.rollback()
    message = bar_message(1).SerializeToString()
    store.save_message("X/1m", 1, message)
    assert not store.db.in_transaction
    assert store.load_journals()["X/1m"][1:4:2] == (1, [message])
    # A file written with the message but not the number: the message is not journaled.
    with store.db:
        store.db.execute(
            "INSERT INTO journal_messages (name, seq, message) VALUES ('X/1m', 2, ?)", (message,)
        )
    o, last_seq, _, messages = store.load_journals()["X/1m"]
    j = Journal("X/1m", o, messages, last_seq=last_seq)
    assert j.last_seq == 1 and len(j.messages) == 1
    assert j.pending("rust", 100)[2] == [message]
