"""``Session.catch_up`` (the engine side of ``Replica.CatchUp``): many appends and replacements
applied at batch speed leave the session exactly as the same messages applied one by one —
every field of the document, and every later update document — and a batch with a refused
message changes nothing and is refused as the stream refuses that message."""

from __future__ import annotations

import random
from typing import Any

from golden import as_json, exact_diff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from series import overrides, series

from trading_system.config import engine_config
from trading_system.data import Bars
from trading_system.engine.analysis import Bar, BatchError, BatchOp, Session
from trading_system.errors import InvalidBars, StateError

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
