"""The native module ``trading_system.native`` (the Rust core through PyO3): batch analysis
against the golden files, errors, argument checks, and sessions whose update documents rebuild
the full document."""

from __future__ import annotations

import csv
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from golden import UpdateClient, comparable
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_system import native

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
BTC_CSV = ROOT / "tests" / "data" / "BTCUSD-BITSTAMP_30m.csv"

Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def parse_time(v: str | int) -> int:
    """Epoch milliseconds from an integer, ``YYYY-MM-DD`` (00:00 UTC) or an ISO date-time."""
    if isinstance(v, int):
        return v
    s = v.strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    t = datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return round(t.timestamp() * 1000)


def columns(rows: list[list[Any]]) -> Columns:
    """Numpy columns (int64 times, float64 values) from rows ``[time, o, h, l, c, v]``."""
    time = np.array([parse_time(r[0]) for r in rows], dtype=np.int64)
    values = [np.array([float(r[i]) for r in rows], dtype=np.float64) for i in range(1, 6)]
    return (time, *values)  # type: ignore[return-value]


def read_csv(path: Path) -> Columns:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["time", "open", "high", "low", "close", "volume"]
        return columns([row for row in reader if row])


def golden_bars(case: dict[str, Any]) -> Columns:
    if "bars_csv" in case:
        return read_csv((GOLDEN / case["bars_csv"]).resolve())
    return columns(case["bars"])


def load(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / name).read_text())


def subset(want: Any, got: Any, path: str = "") -> None:
    """``checks`` semantics (rust-core/chan-core/tests/golden.rs): named keys must match;
    arrays have the same length and match element by element."""
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        for k, v in want.items():
            subset(v, got.get(k), f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            subset(w, g, f"{path}[{i}]")
    else:
        assert want == got, f"{path}: {want!r} != {got!r}"


def violations(err: pytest.ExceptionInfo[Any]) -> list[dict[str, Any]]:
    message, listed = err.value.args
    assert isinstance(message, str) and message.startswith("invalid bars: ")
    return json.loads(listed)


# --- batch analysis ---------------------------------------------------------------------------


def test_real_btc_series_gives_the_golden_document() -> None:
    case = load("99_real_btc_default.json")
    cols = read_csv(BTC_CSV)
    a = native.analyze(*cols, config=json.dumps(case["config"]), with_macd=case["with_macd"])
    doc = json.loads(a.to_json())
    subset(case["checks"]["expected"], doc)
    assert doc == case["expected"]
    assert a.bars == doc["bars"] == 1968
    assert doc["merged_bars"] == 1119
    assert a.counts() == {
        "bars": doc["bars"],
        "merged_bars": doc["merged_bars"],
        **{k: len(doc[k]) for k in ("fractals", "pens", "segments", "pivots", "signals")},
    }
    assert doc["segments"] and doc["pivots"] and doc["signals"], "the series reaches everything"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_golden_file(path: Path) -> None:
    case = json.loads(path.read_text())
    cols = golden_bars(case)
    config = json.dumps(case.get("config", {}))
    with_macd = case.get("with_macd", False)
    if "expected_error" in case:
        with pytest.raises(native.InvalidBars) as err:
            native.analyze(*cols, config=config, with_macd=with_macd)
        got = {"expected_error": violations(err)}
        assert got["expected_error"] == case["expected_error"]
    else:
        doc = json.loads(native.analyze(*cols, config=config, with_macd=with_macd).to_json())
        got = {"expected": doc}
        assert doc == case["expected"]
    subset(case.get("checks", {}), got)


def test_to_json_is_one_compact_line_and_the_config_is_applied() -> None:
    cols = read_csv(BTC_CSV)
    text = native.analyze(*cols, config='{"pen": {"definition": "traditional"}}').to_json()
    assert "\n" not in text and text.startswith('{"bars":1968,')
    assert json.loads(text) == load("99_real_btc_traditional.json")["expected"]


def test_any_strides() -> None:
    t, o, h, lo, c, v = read_csv(BTC_CSV)
    strided = [x[::2] for x in (t, o, h, lo, c, v)]
    assert not strided[0].flags.c_contiguous
    copies = [np.ascontiguousarray(x) for x in strided]
    assert native.analyze(*strided).to_json() == native.analyze(*copies).to_json()
    # Read-only arrays are fine too.
    for x in copies:
        x.setflags(write=False)
    assert native.analyze(*copies).bars == len(strided[0])


def test_macd_series_with_macd() -> None:
    case = load("99_real_btc_macd.json")
    a = native.analyze(*read_csv(BTC_CSV), config=json.dumps(case["config"]), with_macd=True)
    doc = json.loads(a.to_json())
    assert doc == case["expected"]
    assert len(doc["macd"]["histogram"]) == 1968


def test_threads_share_nothing() -> None:
    cols = read_csv(BTC_CSV)
    want = native.analyze(*cols).to_json()
    got: list[str] = []

    def run() -> None:
        got.append(native.analyze(*cols).to_json())

    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert got == [want] * 4


# --- errors -----------------------------------------------------------------------------------


def small() -> Columns:
    t = np.arange(6, dtype=np.int64) * 60_000 + 1_700_000_000_000
    p = np.array([10.0, 11.0, 12.0, 11.0, 10.0, 11.0])
    return t, p, p + 1, p - 1, p.copy(), np.ones(6)


def test_nan_close_at_bar_3_is_rejected_with_its_violation() -> None:
    t, o, h, lo, c, v = small()
    c[3] = np.nan
    with pytest.raises(native.InvalidBars) as err:
        native.analyze(t, o, h, lo, c, v)
    assert isinstance(err.value, ValueError)
    [only] = violations(err)
    assert (only["index"], only["field"], only["rule"]) == (3, "close", "finite")
    assert "bar 3" in only["message"] and "bar 3" in err.value.args[0]


def test_every_bad_bar_is_listed() -> None:
    t, o, h, lo, c, v = small()
    h[1] = lo[1] - 1.0
    v[4] = -1.0
    t[5] = t[4]
    with pytest.raises(native.InvalidBars) as err:
        native.analyze(t, o, h, lo, c, v)
    got = {(x["index"], x["field"], x["rule"]) for x in violations(err)}
    assert {(4, "volume", "non_negative_volume"), (5, "time", "time_duplicate")} <= got
    assert any(x[0] == 1 and x[2] in ("high_range", "low_range") for x in got)


def test_empty_series_is_rejected() -> None:
    empty = np.array([], dtype=np.float64)
    with pytest.raises(native.InvalidBars) as err:
        native.analyze(np.array([], dtype=np.int64), empty, empty, empty, empty, empty)
    assert [(x["index"], x["field"], x["rule"]) for x in violations(err)] == [
        (None, "bars", "non_empty")
    ]


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ('{"pen": {"kind": 1}}', "pen.kind"),
        ('{"nope": {"x": 1}}', "nope.x"),
        ('{"macd": {"fast_period": 40}}', "macd.fast_period"),
        ('{"pen": {"definition": "old"}}', "pen.definition"),
        ("not json", "config"),
        ("[1, 2]", "config"),
    ],
)
def test_config_errors_name_the_key(config: str, key: str) -> None:
    with pytest.raises(native.ConfigError) as err:
        native.analyze(*small(), config=config)
    assert isinstance(err.value, ValueError)
    message, got_key = err.value.args
    assert got_key == key
    assert key in message
    with pytest.raises(native.ConfigError):
        native.Session(config)


@pytest.mark.parametrize("field", ["time", "open", "high", "low", "close", "volume"])
def test_wrong_dtype_is_a_type_error_naming_the_argument(field: str) -> None:
    cols = dict(zip(["time", "open", "high", "low", "close", "volume"], small(), strict=True))
    wrong = np.float64 if field == "time" else np.int64
    cols[field] = cols[field].astype(wrong)
    with pytest.raises(TypeError, match=rf"^{field}: expected .* numpy"):
        native.analyze(**cols)
    cols[field] = cols[field].tolist()
    with pytest.raises(TypeError, match=rf"^{field}: .*got list"):
        native.analyze(**cols)


def test_two_dimensional_arrays_are_type_errors() -> None:
    t, o, h, lo, c, v = small()
    with pytest.raises(TypeError, match="^open: .*2-dimensional"):
        native.analyze(t, o.reshape(2, 3), h, lo, c, v)


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume"])
def test_length_mismatch_is_a_value_error_naming_the_field(field: str) -> None:
    cols = dict(zip(["time", "open", "high", "low", "close", "volume"], small(), strict=True))
    cols[field] = cols[field][:-1]
    with pytest.raises(ValueError, match=rf"^{field}: 5 values, but time has 6"):
        native.analyze(**cols)


def test_version() -> None:
    cargo = (ROOT / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', cargo, re.MULTILINE)
    assert version and native.__version__ == version.group(1)


# --- sessions ---------------------------------------------------------------------------------


def check(client: UpdateClient, s: native.Session) -> None:
    assert (client.document(), client.repaired) == comparable(s.to_json())


def rows(cols: Columns) -> list[tuple[int, float, float, float, float, float]]:
    return list(zip(*(c.tolist() for c in cols), strict=True))


@pytest.mark.parametrize(
    ("golden", "with_macd"),
    [("99_real_btc_default.json", False), ("99_real_btc_macd.json", True)],
)
def test_update_documents_rebuild_the_document(golden: str, with_macd: bool) -> None:
    case = load(golden)
    config = json.dumps(case["config"])
    s = native.Session(config, with_macd)
    client = UpdateClient(with_macd)
    bars = rows(read_csv(BTC_CSV))
    tails = 0
    for i, (t, o, h, lo, c, v) in enumerate(bars):
        # Each bar first arrives as a provisional flat bar at its open, then is replaced.
        u = client.apply(s.append(t, o, o, o, o, 0.0))
        assert (u["index"], u["replaced"]) == (i, False)
        u = client.apply(s.replace_last(t, o, h, lo, c, v))
        assert (u["index"], u["replaced"]) == (i, True)
        tails += u["tail"] is not None
        # The whole document on the first bars after every call, then now and then.
        if i < 150 or i % 199 == 0:
            check(client, s)
    check(client, s)
    assert s.bars == len(bars)
    assert json.loads(s.to_json()) == case["expected"]
    assert 0 < tails < len(bars), "the tail is sent when it changes, not with every bar"


def test_repairs_are_flagged() -> None:
    s = native.Session('{"validation": {"repair": true}}')
    client = UpdateClient(False)
    u = client.apply(s.append(0, 10.0, 9.0, 8.0, 10.0, 1.0))
    assert u["repaired"] is True
    u = client.apply(s.replace_last(0, 10.0, 11.0, 8.0, 10.0, 1.0))
    assert u["repaired"] is False
    check(client, s)
    u = client.apply(s.append(60_000, 10.0, 11.0, 10.5, 10.0, 1.0))
    assert u["repaired"] is True
    check(client, s)


def test_replace_last_on_an_empty_session_is_a_state_error() -> None:
    s = native.Session()
    with pytest.raises(native.StateError, match="no bar to replace") as err:
        s.replace_last(0, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert isinstance(err.value, RuntimeError)
    assert s.bars == 0


def test_rejected_bars_change_nothing() -> None:
    s = native.Session(with_macd=True)
    client = UpdateClient(True)
    for row in rows(read_csv(BTC_CSV))[:300]:
        client.apply(s.append(*row))
    before = s.to_json()
    t = rows(read_csv(BTC_CSV))[299][0]
    bad = [
        (s.append, (t + 1, 10.0, 9.0, 11.0, 10.0, 1.0), (300, "high", "high_range")),
        (s.append, (t, 10.0, 11.0, 9.0, 10.0, 1.0), (300, "time", "time_duplicate")),
        (s.append, (t + 1, 10.0, 11.0, 9.0, float("nan"), 1.0), (300, "close", "finite")),
        (s.replace_last, (t, 10.0, 11.0, 9.0, 10.0, -1.0), (299, "volume", "non_negative_volume")),
    ]
    for call, bar, (index, field, rule) in bad:
        with pytest.raises(native.InvalidBars) as err:
            call(*bar)
        assert (index, field, rule) in {
            (x["index"], x["field"], x["rule"]) for x in violations(err)
        }
        assert s.to_json() == before
        assert s.bars == 300
    # The session is still usable, and the client still in step.
    client.apply(s.append(t + 60_000, 10.0, 11.0, 9.0, 10.0, 1.0))
    check(client, s)


@st.composite
def streams(draw: st.DrawFn) -> tuple[str, bool, list[tuple[bool, tuple[Any, ...]]]]:
    """A random walk on a coarse grid (ties and inclusions are common), about one message in
    four replacing the last bar, and a random configuration."""
    config = {
        "pen": {
            "definition": draw(st.sampled_from(["new_3kline", "traditional"])),
            "strict_validation": draw(st.booleans()),
        },
        "segment": {"feature_sequence_strict": draw(st.booleans())},
        "macd": {"seed": draw(st.sampled_from(["first_close", "sma"]))},
    }
    steps = draw(
        st.lists(
            st.tuples(st.integers(-3, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 9)),
            min_size=1,
            max_size=400,
        )
    )
    ops: list[tuple[bool, tuple[Any, ...]]] = []
    time, base = 1_600_000_000_000, 100.0
    for step, up, down, kind in steps:
        replace = bool(ops) and kind < 3
        if not replace:
            time += 60_000
        mid = max(base + step, 10.0)
        if not replace:
            base = mid
        bar = (time, mid, mid + up, mid - down, mid, 1.0)
        ops.append((replace, bar))
    return json.dumps(config), draw(st.booleans()), ops


@settings(max_examples=40, deadline=None)
@given(streams())
def test_update_documents_on_random_streams(stream: tuple[str, bool, list[Any]]) -> None:
    config, with_macd, ops = stream
    s = native.Session(config, with_macd)
    client = UpdateClient(with_macd)
    for replace, bar in ops:
        client.apply(s.replace_last(*bar) if replace else s.append(*bar))
    check(client, s)
    series: dict[int, tuple[Any, ...]] = {}
    for replace, bar in ops:
        if replace:
            series.pop(max(series))
        series[bar[0]] = bar
    cols = [np.array(c) for c in zip(*series.values(), strict=True)]
    batch = native.analyze(cols[0].astype(np.int64), *cols[1:], config=config, with_macd=with_macd)
    assert json.loads(batch.to_json()) == json.loads(s.to_json())
