"""The native module ``trading_system.native`` (the Rust core through PyO3): batch analysis
against the golden files, errors, argument checks, typed results that are the document field by
field, and sessions whose change reports (read at once, later, or never) rebuild the full
document."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
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


# Fields of the native classes, in the documents' order (§12.6, §12.7).
FIELDS = {
    "Point": ("index", "time", "price"),
    "Fractal": ("kind", "merged_index", "index", "time", "price"),
    "Pen": ("direction", "start", "end", "final"),
    "Segment": ("direction", "start", "end", "first_pen", "last_pen", "confirmed", "gap"),
    "Pivot": (
        *("segment", "first_pen", "last_pen", "zd", "zg", "dd", "gg"),
        *("start", "end", "confirmed"),
    ),
    "Signal": (
        *("type", "side", "pen", "index", "time", "price", "final", "pivot", "zd", "zg"),
        *("entering_strength", "leaving_strength", "ratio", "follows", "edge"),
    ),
    "Repair": ("index", "old_high", "old_low", "new_high", "new_low"),
    "MacdPoint": ("dif", "dea", "histogram"),
    "Tail": ("segments", "pivots", "signals"),
    "Update": (
        *("index", "replaced", "repaired", "bars", "merged_bars", "macd"),
        *("fractals", "pens", "segments", "pivots", "signals"),
        *("last_pen", "forming_pen", "tail", "degrees"),
    ),
    "DegreeUpdate": ("degree", "segments", "pivots", "signals", "tail"),
}


def typed_doc(x: Any) -> Any:
    """The document form of a native result, read through its typed attributes only."""
    if isinstance(x, tuple):
        return [typed_doc(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    name = type(x).__name__
    assert type(x).__module__ == "trading_system.native", name
    if name == "Splice":
        return {"from": x.start, "items": typed_doc(x.items)}
    if name == "Macd":
        arrays = (x.dif, x.dea, x.histogram)
        assert all(a.dtype == np.float64 and len(a) == len(x) for a in arrays)
        as_list = lambda a: [None if v != v else v for v in a.tolist()]  # noqa: E731
        return {k: as_list(a) for k, a in zip(FIELDS["MacdPoint"], arrays, strict=True)}
    if name == "Degree":
        return {k: typed_doc(getattr(x, k)) for k in ("degree", "segments", "pivots", "signals")}
    if name == "Analysis":
        d = {"bars": x.bars, "merged_bars": x.merged_bars}
        for k in ("fractals", "pens", "forming_pen", "segments", "pivots", "signals", "degrees"):
            d[k] = typed_doc(getattr(x, k))
        if x.macd is not None:
            d["macd"] = typed_doc(x.macd)
        d["repairs"] = typed_doc(x.repairs)
        d["config"] = json.loads(x.config_json())
        return d
    d = {k: typed_doc(getattr(x, k)) for k in FIELDS[name]}
    if name == "Pen" and d["final"] is None:
        del d["final"]  # the forming pen has no `final` key
    return d


def same_text(want: Any, got: Any) -> None:
    """Equal, keys in the same order (the JSON text would be the same)."""
    assert json.dumps(got) == json.dumps(want)


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


@pytest.mark.parametrize(
    ("golden", "config"),
    [
        ("99_real_btc_macd.json", None),
        ("99_real_btc_default.json", '{"validation": {"repair": true}}'),
    ],
)
def test_typed_results_are_the_document(golden: str, config: str | None) -> None:
    """Every typed attribute is the document's value, in every list, bit for bit."""
    case = load(golden)
    cols = read_csv(BTC_CSV)
    if config is not None:
        # Two bars whose high falls short of the body: repaired, not rejected.
        _, o, h, lo, c, _ = cols
        for i in (5, 9):
            top = max(o[i], c[i])
            assert top > lo[i]
            h[i] = (top + lo[i]) / 2
    a = native.analyze(
        *cols, config=config or json.dumps(case["config"]), with_macd=case["with_macd"]
    )
    doc = json.loads(a.to_json())
    same_text(doc, typed_doc(a))
    assert (len(a.repairs) == 2) == (config is not None)
    assert a.macd is None or np.isnan(a.macd.dif).sum() == doc["macd"]["dif"].count(None)
    # Frozen values with equality: the same item read twice is equal, and cannot be set.
    p = a.pens[0]
    assert p == a.pens[0] and p.start == a.pens[0].start and p != a.pens[1]
    with pytest.raises(AttributeError):
        p.direction = "down"  # type: ignore[misc]
    assert repr(p).startswith("Pen(direction=")


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


def six(xs: list[np.ndarray]) -> Columns:
    """The six bar columns as the tuple ``native.analyze`` takes positionally."""
    t, o, h, lo, c, v = xs
    return t, o, h, lo, c, v


def test_any_strides() -> None:
    t, o, h, lo, c, v = read_csv(BTC_CSV)
    strided = six([x[::2] for x in (t, o, h, lo, c, v)])
    assert not strided[0].flags.c_contiguous
    copies = six([np.ascontiguousarray(x) for x in strided])
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
        native.analyze(**cols)  # pyright: ignore[reportArgumentType]  (wrong on purpose)
    cols[field] = cols[field].tolist()
    with pytest.raises(TypeError, match=rf"^{field}: .*got list"):
        native.analyze(**cols)  # pyright: ignore[reportArgumentType]  (wrong on purpose)


def test_two_dimensional_arrays_are_type_errors() -> None:
    t, o, h, lo, c, v = small()
    with pytest.raises(TypeError, match="^open: .*2-dimensional"):
        native.analyze(t, o.reshape(2, 3), h, lo, c, v)


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume"])
def test_length_mismatch_is_a_value_error_naming_the_field(field: str) -> None:
    cols = dict(zip(["time", "open", "high", "low", "close", "volume"], small(), strict=True))
    cols[field] = cols[field][:-1]
    with pytest.raises(ValueError, match=rf"^{field}: 5 values, but time has 6"):
        native.analyze(**cols)  # pyright: ignore[reportArgumentType]  (wrong on purpose)


def test_version() -> None:
    cargo = (ROOT / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', cargo, re.MULTILINE)
    assert version and native.__version__ == version.group(1)


# --- sessions ---------------------------------------------------------------------------------


def check(client: UpdateClient, s: native.Session) -> None:
    assert (client.document(), client.repaired) == comparable(s.to_json())
    assert json.loads(s.analysis().to_json()) == json.loads(s.to_json())


def report(u: native.Update) -> dict[str, Any]:
    """The update document of a change report, checked against its typed attributes."""
    doc = json.loads(u.to_json())
    same_text(doc, typed_doc(u))
    return doc


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
        u = client.apply(report(s.append(t, o, o, o, o, 0.0)))
        assert (u["index"], u["replaced"]) == (i, False)
        u = client.apply(report(s.replace_last(t, o, h, lo, c, v)))
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
    u = client.apply(report(s.append(0, 10.0, 9.0, 8.0, 10.0, 1.0)))
    assert u["repaired"] is True
    u = client.apply(report(s.replace_last(0, 10.0, 11.0, 8.0, 10.0, 1.0)))
    assert u["repaired"] is False
    check(client, s)
    u = client.apply(report(s.append(60_000, 10.0, 11.0, 10.5, 10.0, 1.0)))
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
    for row in rows(read_csv(BTC_CSV))[:299]:
        client.apply(report(s.append(*row)))
    held = s.append(*rows(read_csv(BTC_CSV))[299])  # read after the rejected calls
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
    client.apply(report(held))
    check(client, s)
    # The session is still usable, and the client still in step.
    client.apply(report(s.append(t + 60_000, 10.0, 11.0, 9.0, 10.0, 1.0)))
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
        client.apply(report(s.replace_last(*bar) if replace else s.append(*bar)))
    check(client, s)
    series: dict[int, tuple[Any, ...]] = {}
    for replace, bar in ops:
        if replace:
            series.pop(max(series))
        series[bar[0]] = bar
    cols = [np.array(c) for c in zip(*series.values(), strict=True)]
    batch = native.analyze(cols[0].astype(np.int64), *cols[1:], config=config, with_macd=with_macd)
    assert json.loads(batch.to_json()) == json.loads(s.to_json())


@settings(max_examples=30, deadline=None)
@given(streams(), st.randoms(use_true_random=False))
def test_reports_read_later_are_those_of_their_call(
    stream: tuple[str, bool, list[Any]], rnd: Any
) -> None:
    """A change report is read lazily: one kept and read after later calls still tells what its
    own call changed; one dropped unread costs nothing and breaks nothing."""
    config, with_macd, ops = stream
    now, later = native.Session(config, with_macd), native.Session(config, with_macd)
    want, kept = [], []
    for replace, bar in ops:
        want.append((now.replace_last if replace else now.append)(*bar).to_json())
        u = (later.replace_last if replace else later.append)(*bar)
        if rnd.random() < 0.2:
            u.index  # noqa: B018 (a field that needs no rendering)
        if rnd.random() < 0.1:
            u.tail  # noqa: B018 (read now: rendered now)
        kept.append(u if rnd.random() < 0.5 else None)
    for w, u in zip(want, kept, strict=True):
        if u is not None:
            assert u.to_json() == w
            same_text(json.loads(w), typed_doc(u))
    assert later.to_json() == now.to_json()


CALLER = """
from trading_system import native

s = native.Session(with_macd=True)
u = s.append(0, 1.0, 1.0, 1.0, 1.0, 1.0)
price: float = u.pens.items[0].start.price
wrong: int = u.pens.items[0].start.price
count = len(u.tail.segments)
pens: tuple[native.Pen, ...] = s.analysis().pens
"""


def test_the_stub_is_the_module_and_checks_callers(tmp_path: Path) -> None:
    """native.pyi declares exactly what the built module has (mypy's stubtest), and a type
    checker reading it catches a caller's mistakes."""
    layer = ROOT / "python-layer"
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", *args], cwd=layer, capture_output=True, text=True, timeout=300
    )
    stubtest = run("mypy.stubtest", "trading_system.native")
    assert stubtest.returncode == 0, stubtest.stdout + stubtest.stderr
    caller = tmp_path / "caller.py"
    caller.write_text(CALLER)
    checked = run("mypy", "--no-incremental", "--follow-imports=silent", str(caller))
    errors = [
        line.split(": error: ")[1] for line in checked.stdout.splitlines() if ": error: " in line
    ]
    assert errors == [
        'Incompatible types in assignment (expression has type "float", variable has type "int")'
        "  [assignment]",
        'Item "None" of "Tail | None" has no attribute "segments"  [union-attr]',
    ], checked.stdout
