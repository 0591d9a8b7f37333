"""Two engines, one truth: the Python engine and the native binding of the Rust core give
identical analysis documents (every field, MACD bit for bit) and identical update documents,
and the same typed results (the binding's objects as the package's classes, item by item),
on hypothesis-generated series (ties, flat bars, gaps, long trends and ranges, prices from
0.0001 to 100000) under random configurations.

The default run checks 500 series; ``pytest -m slow`` runs 10,000 more (done before a
release). A difference is a bug in one engine: find which against docs/CHAN_THEORY.md."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from golden import as_json, exact_diff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from series import overrides, series

from trading_system import native
from trading_system.config import engine_config
from trading_system.data import Bars
from trading_system.engine import Session, analyze
from trading_system.errors import InvalidBars
from trading_system.results import Analysis, Update

# The typed views of each result, compared item by item (NaN-aware for the MACD series).
ANALYSIS_VIEWS = (
    *("bars", "merged_bars", "fractals", "pens", "forming_pen", "segments", "pivots"),
    *("signals", "macd", "repairs", "config"),
)
UPDATE_VIEWS = (
    *("index", "replaced", "repaired", "bars", "merged_bars", "macd", "fractals", "pens"),
    *("segments", "pivots", "signals", "last_pen", "forming_pen", "tail"),
)


def _same_views(want: Any, got: Any, views: tuple[str, ...], where: str) -> None:
    for k in views:
        assert getattr(want, k) == getattr(got, k), f"{where}: typed {k} differs"


def _native(s: Bars, ov: dict[str, Any], with_macd: bool) -> native.Analysis:
    return native.analyze(
        s.time, s.open, s.high, s.low, s.close, s.volume, json.dumps(ov), with_macd
    )


def _check_batch(s: Bars, ov: dict[str, Any], with_macd: bool) -> None:
    rust = _native(s, ov, with_macd)
    want = json.loads(rust.to_json())
    py = analyze(s, engine_config(ov), with_macd)
    got = as_json(py)
    d = exact_diff(want, got)
    assert d is None, f"python differs from rust at {d}"
    _same_views(Analysis(native=rust), Analysis(py), ANALYSIS_VIEWS, "analysis")


def _check_stream(s: Bars, ov: dict[str, Any], seed: int) -> None:
    """The same append/replace sequence through both sessions: the same update documents."""
    rng = random.Random(seed)
    py = Session(engine_config(ov), True)
    rs = native.Session(json.dumps(ov), True)
    for i, (t, o, h, lo, c, v) in enumerate(s.rows()):
        steps: list[tuple[str, tuple[Any, ...]]] = []
        if rng.random() < 0.3:
            steps += [("append", (t, o, o, o, o, 0.0)), ("replace_last", (t, o, h, lo, c, v))]
        else:
            steps.append(("append", (t, o, h, lo, c, v)))
        for how, bar in steps:
            rust = getattr(rs, how)(*bar)
            want = json.loads(rust.to_json())
            doc = getattr(py, how)(*bar)
            got = as_json(doc)
            d = exact_diff(want, got)
            assert d is None, f"bar {i} {how}: python differs from rust at {d}"
            _same_views(Update.of_native(rust), Update(doc), UPDATE_VIEWS, f"bar {i} {how}")
    d = exact_diff(json.loads(rs.to_json()), as_json(py.document()))
    assert d is None, f"final document: {d}"
    _same_views(Analysis(native=rs.analysis()), Analysis(py.document()), ANALYSIS_VIEWS, "end")


COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "derandomize": False}


@settings(max_examples=500, **COMMON)
@given(series(), overrides(), st.booleans())
def test_documents_identical(s: Bars, ov: dict[str, Any], with_macd: bool) -> None:
    _check_batch(s, ov, with_macd)


@settings(max_examples=100, **COMMON)
@given(series(max_regimes=4), overrides(), st.integers(0, 2**32 - 1))
def test_update_documents_identical(s: Bars, ov: dict[str, Any], seed: int) -> None:
    _check_stream(s, ov, seed)


@pytest.mark.slow
@settings(max_examples=10_000, **COMMON)
@given(series(), overrides(), st.booleans())
def test_documents_identical_slow(s: Bars, ov: dict[str, Any], with_macd: bool) -> None:
    _check_batch(s, ov, with_macd)


@pytest.mark.slow
@settings(max_examples=1_000, **COMMON)
@given(series(max_regimes=4), overrides(), st.integers(0, 2**32 - 1))
def test_update_documents_identical_slow(s: Bars, ov: dict[str, Any], seed: int) -> None:
    _check_stream(s, ov, seed)


BAD_ROWS = [
    (0, 10.0, 11.0, 9.0, 10.5, 1.0),
    (0, 10.0, 11.0, 9.0, 10.5, 1.0),
    (-5, 1.0, 2.0, 0.5, 1.5, 1.0),
    (10, float("nan"), 2.0, 0.5, 1.5, 1.0),
    (11, 1.0, float("inf"), 0.5, 1.5, 1.0),
    (12, -1.0, 2.0, 0.5, 1.5, 1.0),
    (13, 1.0, 1.2, 0.5, 1.5, 1.0),
    (14, 1.0, 2.0, 1.1, 1.5, 1.0),
    (15, 1.0, 2.0, 0.5, 1.5, -3.0),
    (16, 1.0, 0.5, 2.0, 1.5, float("-inf")),
    (17, 1e-7, 1e21, 1e-7, 123456789.125, 0.0),
    (18, 0.1, 0.1, 0.30000000000000004, 0.2, 0.0),
]


@pytest.mark.parametrize("allow_non_positive", [False, True])
def test_same_violations(allow_non_positive: bool) -> None:
    t, o, h, lo, c, v = zip(*BAD_ROWS, strict=True)
    times = np.array(t, dtype=np.int64)
    o, h, lo, c, v = (np.array(x, dtype=np.float64) for x in (o, h, lo, c, v))
    ov = {"validation": {"allow_non_positive_prices": allow_non_positive}}
    with pytest.raises(native.InvalidBars) as rust:
        native.analyze(times, o, h, lo, c, v, json.dumps(ov))
    with pytest.raises(InvalidBars) as py:
        analyze(Bars(times, o, h, lo, c, v), engine_config(ov))
    # The structure is the contract across engines: bar index, field and rule, in order. (The
    # golden files pin each engine's messages to the texts of docs/CHAN_THEORY.md §12.1.)
    want = [(x["index"], x["field"], x["rule"]) for x in json.loads(rust.value.args[1])]
    got = [(x.index, x.field, x.rule) for x in py.value.violations]
    assert got == want
    assert len(got) >= 12
