"""``Session.catch_up`` (the engine side of ``Replica.CatchUp``): many appends and replacements
applied at batch speed leave the session exactly as the same messages applied one by one —
every field of the document, and every later update document — and a batch with a refused
message changes nothing and is refused as the stream refuses that message."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from golden import as_json, exact_diff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from series import overrides, series

from trading_system.config import EngineConfig, engine_config
from trading_system.data import COLUMNS, Bars
from trading_system.engine.analysis import Bar, BatchError, BatchOp, Session
from trading_system.errors import InvalidBars, StateError
from trading_system.proto import trading_pb2 as pb
from trading_system.server.service import TradingService
from trading_system.server.sessions import Session as ServerSession

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ops(s: Bars, rng: random.Random, bad_rate: float = 0.0) -> list[BatchOp]:
    """The stream's messages for ``s``: provisional bars replaced (once or twice) by the final
    ones, sometimes a repairable bar (high below the close), -0.0 volumes, and with
    ``bad_rate`` bars no stream would take."""
    out: list[BatchOp] = []
    for row in s.rows():
        t, o, h, lo, c, v = (int(row[0]), *(float(x) for x in row[1:]))
        if rng.random() < bad_rate:
            out.append((False, (t, o, h, lo, c, -1.0)))  # refused: negative volume
        if rng.random() < 0.35:
            out.append((False, (t, o, o, o, o, -0.0)))
            if rng.random() < 0.5:
                out.append((True, (t, o, h, o, h, 1.0)))
            out.append((True, (t, o, h, lo, c, v)))
        elif rng.random() < 0.1:
            out.append((False, (t, o, min(o, c), lo, c, v)))  # a repair when repair is on
        else:
            out.append((False, (t, o, h, lo, c, v)))
    return out


def _one_by_one(sess: Session, ops: list[BatchOp]) -> list[Any]:
    """Applies ``ops`` as a stream does; the update documents (or the error of a refused one)."""
    out: list[Any] = []
    for replace, bar in ops:
        try:
            doc = sess.replace_last(*bar) if replace else sess.append(*bar)
            out.append(as_json(doc))
        except (InvalidBars, StateError) as e:
            out.append((type(e).__name__, str(e)))
    return out


def _state(sess: Session) -> tuple[Any, ...]:
    """What the next message depends on besides the document."""
    return (sess._last_time, sess._prev_time, sess.bars, sess._shown)


def _chunks(n: int, rng: random.Random) -> list[tuple[int, int]]:
    """``range(n)`` cut at random into (start, end) pieces, some of them empty."""
    cuts = sorted(rng.randint(0, n) for _ in range(rng.randint(0, 4)))
    bounds = [0, *cuts, n]
    return list(zip(bounds, bounds[1:], strict=False))


@SETTINGS
@given(series(max_regimes=5), overrides(), st.booleans(), st.integers(0, 2**32 - 1))
def test_catch_up_equals_one_by_one(s: Bars, ov: dict[str, Any], repair: bool, seed: int) -> None:
    rng = random.Random(seed)
    ov = {**ov, "validation": {"repair": repair}}
    cfg = engine_config(ov)
    ops = [op for op in _ops(s, rng)]
    if not repair:  # without repair, a bar with its high below the close is refused
        ops = [(r, b) for r, b in ops if b[2] >= max(b[1], b[4])]
    # The last fifth of the messages stream after the catch-up: what they answer shows the
    # session was left ready for them (its replacement mark, its shown tail, its times).
    split = len(ops) * 4 // 5
    head, tail = ops[:split], ops[split:]

    stream = Session(cfg, with_macd=True)
    assert all(not isinstance(x, tuple) for x in _one_by_one(stream, head))
    batch = Session(cfg, with_macd=True)
    for a, b in _chunks(len(head), rng):
        if rng.random() < 0.3:
            assert all(not isinstance(x, tuple) for x in _one_by_one(batch, head[a:b]))
        else:
            batch.catch_up(head[a:b])
    assert exact_diff(as_json(stream.document()), as_json(batch.document())) is None
    assert _state(stream) == _state(batch)
    after_stream = _one_by_one(stream, tail)
    after_batch = _one_by_one(batch, tail)
    assert exact_diff(after_stream, after_batch) is None
    assert exact_diff(as_json(stream.document()), as_json(batch.document())) is None


@SETTINGS
@given(series(max_regimes=3), st.booleans(), st.integers(0, 2**32 - 1))
def test_refused_batch_changes_nothing(s: Bars, repair: bool, seed: int) -> None:
    rng = random.Random(seed)
    cfg = engine_config({"validation": {"repair": repair}})
    ops = _ops(s, rng, bad_rate=0.05)
    cut = rng.randint(0, len(ops) // 2)
    # The stream takes what it accepts of the first messages; the batch catches up with those.
    stream = Session(cfg)
    answers = _one_by_one(stream, ops[:cut])
    good = [op for op, a in zip(ops[:cut], answers, strict=True) if not isinstance(a, tuple)]
    batch = Session(cfg)
    batch.catch_up(good)
    before = as_json(batch.document())
    state = _state(batch)
    rest = ops[cut:]
    rest.insert(rng.randint(0, len(rest)), (rng.random() < 0.3, (0, 1.0, 1.0, 1.0, 1.0, -1.0)))
    # The stream's answers to the rest: the first refused message is the batch's error.
    answers = _one_by_one(stream, rest)
    first = next(i for i, a in enumerate(answers) if isinstance(a, tuple))
    try:
        batch.catch_up(rest)
    except BatchError as e:
        assert e.index == first
        assert (type(e.error).__name__, str(e.error)) == answers[first]
    else:
        raise AssertionError("a batch with a refused message was applied")
    assert exact_diff(before, as_json(batch.document())) is None
    assert _state(batch) == state


def test_replace_first_on_an_empty_session() -> None:
    sess = Session(engine_config())
    bar: Bar = (0, 1.0, 1.0, 1.0, 1.0, 0.0)
    try:
        sess.catch_up([(True, bar)])
    except BatchError as e:
        assert e.index == 0 and isinstance(e.error, StateError)
        assert str(e.error) == "replace_last: the session has no bar to replace"
    else:
        raise AssertionError("replace_last on an empty session was applied")
    assert sess.bars == 0
    sess.catch_up([(False, bar), (True, bar)])
    assert sess.bars == 1


# ---- A fresh session from a base (Replica.CatchUp, the server's path) ---------------------------

EXECUTOR = ThreadPoolExecutor(1)
WINDOW = 16


def _service(cfg: EngineConfig) -> TradingService:
    return TradingService(cfg, 2**31, WINDOW, EXECUTOR)


def _message(seq: int, op: BatchOp) -> pb.BarMessage:
    replace, (t, o, h, lo, c, v) = op
    return pb.BarMessage(
        seq=seq,
        op=pb.REPLACE_LAST if replace else pb.APPEND,
        bar=pb.Bar(time=t, open=o, high=h, low=lo, close=c, volume=v),
    )


def _numbered(first: int, ops: list[BatchOp]) -> list[pb.BarMessage]:
    return [_message(first + k, op) for k, op in enumerate(ops)]


def _collapsed(ops: list[BatchOp]) -> list[Bar]:
    """A journal's bars with every append and replacement applied (the monitor's checkpoint)."""
    out: list[Bar] = []
    for replace, bar in ops:
        if replace:
            out[-1] = bar
        else:
            out.append(bar)
    return out


def _base(bars: list[Bar]) -> pb.Bars:
    cols = list(zip(*bars, strict=True)) if bars else [()] * 6
    return pb.Bars(**{c: list(x) for c, x in zip(COLUMNS, cols, strict=True)})


def _catch_up(service: TradingService, *entries: pb.SessionCatchUp) -> list[pb.SessionCaughtUp]:
    answer, _ = asyncio.run(service.catch_up(pb.CatchUpRequest(sessions=list(entries))))
    return list(answer.sessions)


def _entry(
    after_seq: int,
    bars: list[pb.BarMessage],
    fresh: bool = False,
    base: list[Bar] | None = None,
) -> pb.SessionCatchUp:
    return pb.SessionCatchUp(
        open=pb.OpenSession(symbol="CU", timeframe="1m", with_macd=True),
        fresh=fresh,
        after_seq=after_seq,
        bars=bars,
        base=_base(base or []),
    )


def _snapshot(s: ServerSession) -> bytes:
    snap = s.snapshot()
    snap.last_seq, snap.session = 0, ""
    return snap.SerializeToString(deterministic=True)


@SETTINGS
@given(
    series(max_regimes=4),
    overrides(),
    st.booleans(),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1, 7, 1000, 2**40, 2**64 - 2**20]),
)
def test_fresh_catch_up_from_a_base_equals_streaming_the_base(
    s: Bars, ov: dict[str, Any], repair: bool, seed: int, after_seq: int
) -> None:
    """A fresh catch-up with base B and after_seq A, then messages M (in one or two entries),
    leaves the session a stream of B as appends 1..len(B) then M leaves: the same snapshot and
    the same answers to later messages (a replacement of the last base bar among them); only
    the numbers differ."""
    rng = random.Random(seed)
    cfg = engine_config({**ov, "validation": {"repair": repair}})
    ops = _ops(s, rng)
    if not repair:
        ops = [(r, b) for r, b in ops if b[2] >= max(b[1], b[4])]
    cut = rng.randint(1, len(ops))
    base = _collapsed(ops[:cut])
    rest = ops[cut:]
    # M: caught up with the base (and maybe continued); T: streamed afterwards. Often M is
    # empty, so T starts on the last base bar.
    m = 0 if rng.random() < 0.5 else rng.randint(0, len(rest))
    caught, later = rest[:m], rest[m:]
    last = _collapsed([(False, b) for b in base] + caught)[-1]
    t, o, _, _, _, v = last
    later = [(True, (t, o, o * 1.01, o * 0.99, o * 0.99, v)), (True, last), *later]

    service = _service(cfg)
    split = rng.randint(0, len(caught))
    first = _catch_up(
        service, _entry(after_seq, _numbered(after_seq + 1, caught[:split]), True, base)
    )
    assert not first[0].HasField("error"), first[0].error
    bars = len(_collapsed([(False, b) for b in base] + caught[:split]))
    assert (first[0].last_seq, first[0].bars) == (after_seq + split, bars)
    if split < len(caught) or rng.random() < 0.5:
        at = after_seq + split
        (more,) = _catch_up(service, _entry(at, _numbered(at + 1, caught[split:])))
        assert not more.HasField("error"), more.error
    session = service.sessions.get("CU/1m")
    assert session is not None and session.last_seq == after_seq + len(caught)

    ref = ServerSession("REF/1m", cfg, True, WINDOW)
    for msg in _numbered(1, [(False, b) for b in base] + caught):
        assert ref.handle(msg).WhichOneof("kind") == "update"
    assert _snapshot(session) == _snapshot(ref)
    assert session.bars == ref.bars
    for k, op in enumerate(later):
        got = session.handle(_message(after_seq + len(caught) + 1 + k, op))
        want = ref.handle(_message(len(base) + len(caught) + 1 + k, op))
        got.seq = want.seq = 0
        assert got.SerializeToString(deterministic=True) == want.SerializeToString(
            deterministic=True
        )
    assert _snapshot(session) == _snapshot(ref)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series(max_regimes=3), st.booleans(), st.integers(0, 2**32 - 1))
def test_a_refused_base_is_refused_as_its_append(s: Bars, repair: bool, seed: int) -> None:
    """A bad base bar: the entry gets what a stream appending the base answers for it (the bar's
    index in the session), and the session of that name stays as it was."""
    rng = random.Random(seed)
    cfg = engine_config({"validation": {"repair": repair}})
    service = _service(cfg)
    rows = list(s.rows())
    n = min(3, len(rows))
    (old,) = _catch_up(service, _entry(0, _numbered(1, [(False, r) for r in rows[:n]]), True))
    assert not old.HasField("error")
    before = service.sessions.get("CU/1m")
    assert before is not None
    snap = _snapshot(before)
    base = list(rows)
    i = rng.randint(0, len(base))
    t = base[i - 1][0] if i else 0
    bad: list[Bar] = [(t, 1.0, 1.0, 1.0, 1.0, -1.0), (t, float("nan"), 1.0, 1.0, 1.0, 0.0)]
    if i:  # a repairable bar at a time already taken: refused for its time
        bad.append((t, 2.0, 1.0, 1.0, 1.0, 0.0))
    base.insert(i, rng.choice(bad))
    ref = ServerSession("REF/1m", cfg, False, WINDOW)
    want = None
    for k, bar in enumerate(base):
        answer = ref.handle(_message(k + 1, (False, bar)))
        if answer.WhichOneof("kind") == "error":
            want = answer.error
            break
    assert want is not None
    (got,) = _catch_up(service, _entry(5, _numbered(6, [(False, rows[-1])]), True, base))
    assert got.error == want
    assert (got.last_seq, got.bars) == (n, n)
    assert service.sessions.get("CU/1m") is before and _snapshot(before) == snap
