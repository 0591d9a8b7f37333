"""Spec §10 for the Python engine: after any sequence of appends and replacements the session
equals the batch analysis of the series they leave, every field; the update documents rebuild
the state; a rejected bar changes nothing."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from golden import UpdateClient, as_json, comparable, exact_diff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from series import overrides, series

from trading_system.config import engine_config
from trading_system.data import Bars
from trading_system.engine import Session, analyze
from trading_system.errors import InvalidBars, StateError

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bars(rows: list[tuple[int, float, float, float, float, float]]) -> Bars:
    cols = list(zip(*rows, strict=True))
    return Bars(*cols)  # type: ignore[arg-type]


def _drive(s: Bars, ov: dict[str, Any], seed: int) -> tuple[Session, UpdateClient, list[Any]]:
    """Streams ``s`` with random provisional bars replaced later; returns the session, a client
    fed by its updates, and the bars the stream leaves."""
    rng = random.Random(seed)
    sess = Session(engine_config(ov))
    client = UpdateClient(False)
    kept: list[Any] = []
    for t, o, h, lo, c, v in s.rows():
        if rng.random() < 0.4:
            client.apply(sess.append(t, o, o, o, o, 0.0))
            if rng.random() < 0.5:
                client.apply(sess.replace_last(t, o, h, o, h, 1.0))
            client.apply(sess.replace_last(t, o, h, lo, c, v))
        else:
            client.apply(sess.append(t, o, h, lo, c, v))
        kept.append((t, o, h, lo, c, v))
    return sess, client, kept


@SETTINGS
@given(series(), overrides(), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_incremental_equals_batch(s: Bars, ov: dict[str, Any], degrees: int, seed: int) -> None:
    # Every degree (§13) holds the invariant: the document compares them all.
    ov = {**ov, "structure": {"degrees": degrees}}
    sess, client, kept = _drive(s, ov, seed)
    want = as_json(analyze(_bars(kept), engine_config(ov)))
    got = as_json(sess.document())
    assert exact_diff(want, got) is None
    assert (client.document(), client.repaired) == comparable(want)


@SETTINGS
@given(series(max_regimes=3), st.integers(0, 2**32 - 1))
def test_rejected_bars_change_nothing(s: Bars, seed: int) -> None:
    rng = random.Random(seed)
    sess = Session(engine_config())
    prev_t = None
    for t, o, h, lo, c, v in s.rows():
        sess.append(t, o, h, lo, c, v)
        before = as_json(sess.document())
        replace = rng.random() < 0.5
        # A replacement keeps the last bar's time; an append must move past it.
        t2 = t if replace else t + 1
        bad = rng.choice(
            [
                (t2, math.nan, h, lo, c, v),
                (t2, o, h, lo, c, -1.0),
                (t2, o, lo / 2, lo, c, v),  # high below max(open, close)
                (t2, -o, h, lo, c, v),
            ]
            # Time: an append at the last bar's time; a replacement at the previous bar's.
            + ([(prev_t if replace else t, o, h, lo, c, v)] if prev_t is not None else [])
        )
        with pytest.raises(InvalidBars) as e:
            (sess.replace_last if replace else sess.append)(*bad)
        assert e.value.violations
        assert all(x.index is not None for x in e.value.violations)
        assert as_json(sess.document()) == before
        prev_t = t


def test_replace_on_empty_session() -> None:
    with pytest.raises(StateError, match="no bar to replace"):
        Session(engine_config()).replace_last(0, 1.0, 1.0, 1.0, 1.0, 0.0)


def test_stream_errors_match_batch_errors() -> None:
    """A bar rejected in a stream gets the same violations as in a batch at the same index."""
    rows = [(0, 10.0, 11.0, 9.0, 10.5, 1.0), (60_000, 10.0, 9.5, 9.0, 10.5, -2.0)]
    with pytest.raises(InvalidBars) as batch:
        analyze(_bars(rows), engine_config())
    sess = Session(engine_config())
    sess.append(*rows[0])
    with pytest.raises(InvalidBars) as stream:
        sess.append(*rows[1])
    assert batch.value.violations == stream.value.violations
    assert [(v.index, v.field, v.rule) for v in stream.value.violations] == [
        (1, "volume", "non_negative_volume"),
        (1, "high", "high_range"),
    ]
    assert stream.value.violations[1].message == "bar 1: high 9.5 is below max(open, close) 10.5"
