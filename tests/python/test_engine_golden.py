"""The Python engine passes every shared golden file, in batch and bar by bar (by appends, and
by provisional bars each replaced by the real one): one test per file and check, named by the
file (``test_batch[01_err_empty]``), so ``-k 01_err_empty`` runs one file's tests."""

from __future__ import annotations

from typing import Any

import pytest
from golden import as_json, bars_of, cases, loose_diff, params

from trading_system.config import engine_config
from trading_system.engine import Session, analyze
from trading_system.errors import InvalidBars

CASES = cases()


def test_there_are_golden_files() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize(("name", "case"), params(CASES))
def test_batch(name: str, case: dict[str, Any]) -> None:
    cfg = engine_config(case.get("config"))
    bars = bars_of(case)
    try:
        got: dict[str, Any] = {"expected": analyze(bars, cfg, case.get("with_macd", False))}
    except InvalidBars as e:
        got = {"expected_error": [v.to_dict() for v in e.violations]}
    # The hand-derived partial expectation and the full one must both hold.
    for key in ("expected", "expected_error"):
        if key in case:
            assert key in got, f"{name}: got {sorted(got)}, expected {key}"
            d = loose_diff(case[key], as_json(got[key]), key)
            assert d is None, f"{name}: {d}"


@pytest.mark.parametrize(("name", "case"), params([(n, c) for n, c in CASES if "expected" in c]))
def test_incremental(name: str, case: dict[str, Any]) -> None:
    cfg = engine_config(case.get("config"))
    with_macd = case.get("with_macd", False)
    appended, replaced = Session(cfg, with_macd), Session(cfg, with_macd)
    for t, o, h, lo, c, v in bars_of(case).rows():
        appended.append(t, o, h, lo, c, v)
        replaced.append(t, o, o, o, o, 0.0)
        replaced.replace_last(t, o, h, lo, c, v)
    for how, s in (("appends", appended), ("replacements", replaced)):
        d = loose_diff(case["expected"], as_json(s.document()), "expected")
        assert d is None, f"{name} ({how}): {d}"
