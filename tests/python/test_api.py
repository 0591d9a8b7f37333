"""The user API (trading_system.analyze, Session) on both engines: the golden documents, typed
results that give the document back, sessions equal to the batch analysis, and the errors."""

from __future__ import annotations

import json
import pickle
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trading_system import (
    Analysis,
    ConfigError,
    DataError,
    EngineConfig,
    FileConfig,
    InvalidBars,
    Session,
    StateError,
    Update,
    Violation,
    analyze,
    load_csv,
)
from trading_system.api import EngineChoice, _native_error
from trading_system.config import apply_sets, engine_config
from trading_system.results import (
    Degree,
    DegreeUpdate,
    Macd,
    Pen,
    Splice,
    Tail,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
GOLDEN_DIR = ROOT / "tests" / "golden"
GOLDEN = sorted(GOLDEN_DIR.glob("*.json"))
BTC = DATA / "BTCUSD-BITSTAMP_30m.csv"
SH = DATA / "000001.SH_1d_head1200.csv"
ENGINES: list[EngineChoice] = ["rust", "python"]


def case_input(case: dict[str, Any]) -> Any:
    if "bars_csv" in case:
        return (GOLDEN_DIR / case["bars_csv"]).resolve()
    return case["bars"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_documents(path: Path, engine: EngineChoice) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    run = lambda: analyze(  # noqa: E731
        case_input(case),
        config=case.get("config") or {},
        engine=engine,
        with_macd=case.get("with_macd", False),
    )
    if "expected_error" in case:
        with pytest.raises(InvalidBars) as e:
            run()
        assert [v.to_dict() for v in e.value.violations] == case["expected_error"]
    else:
        assert run().to_dict() == case["expected"]


@pytest.mark.parametrize("engine", ENGINES)
def test_typed_results_give_the_document_back(engine: EngineChoice) -> None:
    a = analyze(BTC, engine=engine, with_macd=True)
    doc = a.to_dict()
    assert isinstance(a, Analysis)
    assert (a.bars, a.merged_bars) == (1968, 1119)
    for name in ("fractals", "pens", "segments", "pivots", "signals", "repairs", "degrees"):
        items = getattr(a, name)
        assert isinstance(items, tuple)
        assert [x.to_dict() for x in items] == doc[name], name
    assert [d.degree for d in a.degrees] == [2], "the default structure.degrees is 2"
    assert a.pens[0].to_dict() == doc["pens"][0] and list(a.pens[0].to_dict()) == list(
        doc["pens"][0]
    ), "same keys in the same order"
    assert all(p.final for p in a.pens[:-1]) and a.pens[-1].final is False
    assert (a.forming_pen is None) == (doc["forming_pen"] is None)
    assert a.pens[-1].end.ms == load_csv(BTC).time[a.pens[-1].end.index]
    assert isinstance(a.macd, Macd) and len(a.macd) == 1968
    assert a.macd.to_dict() == doc["macd"]
    assert a.config == EngineConfig()
    assert json.loads(a.to_json()) == doc
    assert repr(a).startswith("Analysis(bars=1968, merged_bars=1119")


@pytest.mark.parametrize("engine", ENGINES)
def test_macd_absent_values_are_nan(engine: EngineChoice) -> None:
    sma = {"macd": {"seed": "sma"}}
    a = analyze(BTC, engine=engine, with_macd=True, overrides=sma)
    assert a.macd is not None
    assert np.isnan(a.macd.dif[:33]).all() and not np.isnan(a.macd.dif[33:]).any()
    assert a.to_dict()["macd"]["dif"][0] is None
    assert a.macd.to_dict() == a.to_dict()["macd"]
    assert analyze(BTC, engine=engine).macd is None


@pytest.mark.parametrize("engine", ENGINES)
def test_input_and_config_forms_agree(engine: EngineChoice, tmp_path: Path) -> None:
    e = engine
    traditional = {"pen": {"definition": "traditional"}}
    want = analyze(BTC, config=traditional, engine=e).to_dict()
    frame = pd.read_csv(BTC, parse_dates=["time"])
    rows = list(load_csv(BTC).rows())
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("pen:\n  definition: traditional\n", encoding="utf-8")
    file_cfg = apply_sets(FileConfig(), ["pen.definition=traditional"])
    for data, config, overrides in [
        (frame, traditional, None),
        (rows, traditional, None),
        (str(BTC), yaml_file, None),
        (BTC, file_cfg, None),
        (BTC, file_cfg.engine(), None),
        (BTC, None, traditional),
        (BTC, {"pen": {"definition": "new_3kline"}}, {"pen.definition": "traditional"}),
    ]:
        got = analyze(data, config=config, engine=e, overrides=overrides).to_dict()
        assert got == want, (type(data).__name__, config, overrides)
    assert want["config"]["pen"]["definition"] == "traditional"


def test_both_engines_agree_on_real_data() -> None:
    for path in sorted(DATA.glob("*.csv")):
        for overrides in (
            {"validation": {"repair": True}},
            {"validation": {"repair": True}, "pen": {"definition": "traditional"}},
            {
                "validation": {"repair": True},
                "signal": {"strength": "slope"},
                "macd": {"seed": "sma"},
            },
        ):
            docs = [
                analyze(path, engine=e, overrides=overrides, with_macd=True).to_dict()
                for e in ENGINES
            ]
            assert docs[0] == docs[1], (path.name, overrides)


THREE_DEGREES = {"structure": {"degrees": 3}}


def test_higher_degrees_typed_from_either_source() -> None:
    """BTC with ``structure.degrees: 3``: ``Analysis.degrees`` read from the native result (the
    Rust engine), from its document as a dict and from the Python engine's document are equal
    item by item, and each gives the document's ``degrees`` back; ``degree(n)`` gives degree 1
    (the top-level lists) in the same shape."""
    native = analyze(BTC, config=THREE_DEGREES, engine="rust")
    assert native._native is not None, "the Rust engine's result wraps the native one"
    doc = native.to_dict()
    sources = {
        "native": native,
        "dict": Analysis(doc),
        "text": Analysis(text=native.to_json()),
        "python": analyze(BTC, config=THREE_DEGREES, engine="python"),
    }
    assert sources["python"]._native is None and sources["dict"]._native is None
    want = native.degrees
    assert [d.degree for d in want] == [2, 3]
    assert all(want[0].segments) and want[0].pivots and want[0].signals and want[1].segments
    for name, a in sources.items():
        got = a.degrees
        assert all(type(d) is Degree for d in got), name
        assert len(got) == len(want), name
        for g, w in zip(got, want, strict=True):
            assert g.degree == w.degree, name
            for kind in ("segments", "pivots", "signals"):
                assert len(getattr(g, kind)) == len(getattr(w, kind)), (name, kind)
                for x, y in zip(getattr(g, kind), getattr(w, kind), strict=True):
                    assert x == y, (name, g.degree, kind)
        assert [d.to_dict() for d in got] == doc["degrees"], name
        one = a.degree(1)
        assert (one.degree, one.segments, one.pivots, one.signals) == (
            1,
            a.segments,
            a.pivots,
            a.signals,
        )
        assert a.degree(2) is got[0] and a.degree(3) is got[1]
        for absent in (0, 4):
            with pytest.raises(ValueError, match=f"no degree {absent}: .* degrees 1 to 3"):
                a.degree(absent)
    # A pickled native result keeps its degrees (it pickles as its document).
    assert pickle.loads(pickle.dumps(native)).degrees == want
    assert analyze(BTC, config={"structure": {"degrees": 1}}).degrees == ()


# --- Sessions ----------------------------------------------------------------------------------


class Client:
    """A client's copy of the structure, kept up to date from the updates alone (§12.7)."""

    def __init__(self) -> None:
        self.lists: dict[str, list[Any]] = {
            k: [] for k in ("fractals", "pens", "segments", "pivots", "signals")
        }
        self.tail: dict[str, list[Any]] = {"segments": [], "pivots": [], "signals": []}
        self.last_pen: Pen | None = None
        self.forming_pen: Pen | None = None
        self.bars = self.merged_bars = 0
        # Each higher degree (§13) kept as degree 1's segments, pivots and points: its settled
        # lists, then its latest tail.
        self.degrees: dict[int, tuple[dict[str, list[Any]], dict[str, list[Any]]]] = {}

    def apply(self, u: Update) -> None:
        for name, items in self.lists.items():
            splice: Splice[Any] = getattr(u, name)
            splice.apply(items)
        if u.tail is not None:
            self.tail = {k: list(getattr(u.tail, k)) for k in self.tail}
        self.last_pen, self.forming_pen = u.last_pen, u.forming_pen
        self.bars, self.merged_bars = u.bars, u.merged_bars
        assert [d.degree for d in u.degrees] == list(range(2, len(u.degrees) + 2))
        for d in u.degrees:
            lists, tail = self.degrees.setdefault(d.degree, ({k: [] for k in self.tail}, {}))
            for name, items in lists.items():
                change: Splice[Any] = getattr(d, name)
                change.apply(items)
            if d.tail is not None:
                tail.update({k: list(getattr(d.tail, k)) for k in self.tail})

    def document_parts(self) -> dict[str, Any]:
        pens = [*self.lists["pens"], *([self.last_pen] if self.last_pen else [])]
        return {
            "bars": self.bars,
            "merged_bars": self.merged_bars,
            "fractals": [x.to_dict() for x in self.lists["fractals"]],
            "pens": [x.to_dict() for x in pens],
            "forming_pen": self.forming_pen.to_dict() if self.forming_pen else None,
            **{
                k: [x.to_dict() for x in self.lists[k] + self.tail[k]]
                for k in ("segments", "pivots", "signals")
            },
            "degrees": [
                {
                    "degree": n,
                    **{k: [x.to_dict() for x in lists[k] + tail.get(k, [])] for k in lists},
                }
                for n, (lists, tail) in sorted(self.degrees.items())
            ],
        }


@pytest.mark.parametrize("engine", ENGINES)
def test_session_equals_batch_and_updates_rebuild_it(engine: EngineChoice) -> None:
    bars = load_csv(BTC)
    session = Session(engine=engine, with_macd=True)
    client = Client()
    dif: list[float | None] = []
    for i, bar in enumerate(bars.rows()):
        if i % 7 == 3:
            # A forming bar first, then its final state replaces it.
            t, o, h, lo, c, v = bar
            u = session.append((t, o, h + 1.0, lo, c, v))
            client.apply(u)
            u = session.replace_last(bar)
            assert u.replaced and u.index == i
        else:
            u = session.append(bar)
            assert not u.replaced
        client.apply(u)
        dif.append(u.macd.dif)
        assert u.index == i and len(session) == i + 1
    batch = analyze(bars, engine=engine, with_macd=True).to_dict()
    assert session.to_dict() == batch
    assert session.analysis().to_dict() == batch
    parts = client.document_parts()
    assert parts == {k: batch[k] for k in parts}
    assert dif == batch["macd"]["dif"]


def test_update_degrees_typed_from_either_source() -> None:
    """A stream of BTC with ``structure.degrees: 3`` on both engines, bar by bar (every fifth
    bar first appended higher, then replaced by its real state): each update's ``degrees``
    from the native result, from its document (a dict) and from the Python engine are equal
    item by item and give the update document's ``degrees`` back; degree-2 items appear,
    settled and in tails, and ``degree(1)`` is the top-level splices and tail."""
    bars = load_csv(BTC)
    rust = Session(engine="rust", config=THREE_DEGREES)
    python = Session(engine="python", config=THREE_DEGREES)
    seen = {"settled": 0, "tail": 0}

    def check(ur: Update, up: Update) -> None:
        assert ur._native is not None and up._native is None
        doc = ur.to_dict()
        want = ur.degrees
        assert [d.degree for d in want] == [2, 3]
        for name, u in (("dict", Update(json.loads(ur.to_json()))), ("python", up)):
            got = u.degrees
            assert all(type(d) is DegreeUpdate for d in got), name
            for g, w in zip(got, want, strict=True):
                assert (g.degree, g.tail) == (w.degree, w.tail), (ur.index, name)
                for kind in ("segments", "pivots", "signals"):
                    gs, ws = getattr(g, kind), getattr(w, kind)
                    assert gs.start == ws.start, (ur.index, name, kind)
                    for x, y in zip(gs.items, ws.items, strict=True):
                        assert x == y, (ur.index, name, g.degree, kind)
        assert [d.to_dict() for d in want] == doc["degrees"]
        two = want[0]
        seen["settled"] += sum(len(getattr(two, k).items) for k in ("segments", "pivots"))
        seen["tail"] += two.tail is not None and len(two.tail.segments) > 0
        one = ur.degree(1)
        assert (one.degree, one.segments, one.signals, one.tail) == (
            1,
            ur.segments,
            ur.signals,
            ur.tail,
        )
        assert ur.degree(3) is want[1] and isinstance(want[1].tail, Tail | None)

    for i, bar in enumerate(bars.rows()):
        if i % 5 == 4:
            t, o, h, lo, c, v = bar
            check(rust.append((t, o, h + 1.0, lo, c, v)), python.append((t, o, h + 1.0, lo, c, v)))
            check(rust.replace_last(bar), python.replace_last(bar))
        else:
            check(rust.append(bar), python.append(bar))
    assert seen["settled"] > 0 and seen["tail"] > 0, seen
    batch = analyze(bars, config=THREE_DEGREES).to_dict()["degrees"]
    assert rust.analysis().to_dict()["degrees"] == batch == python.analysis().to_dict()["degrees"]


@pytest.mark.parametrize("engine", ENGINES)
def test_session_rejects_bad_bars_and_keeps_its_state(engine: EngineChoice) -> None:
    s = Session(engine=engine)
    with pytest.raises(StateError):
        s.replace_last((1, 10, 11, 9, 10, 1))
    s.append(("2024-01-01", 10, 11, 9, 10, 1))
    s.append({"time": "2024-01-02", "open": 10, "high": 12, "low": 9, "close": 11, "volume": 0})
    before = s.to_dict()
    with pytest.raises(InvalidBars) as e:
        s.append(("2024-01-02", 11, 10, 12, 11, -1))
    rules = {(v.index, v.field, v.rule) for v in e.value.violations}
    assert (2, "time", "time_duplicate") in rules and (2, "volume", "non_negative_volume") in rules
    assert s.to_dict() == before and len(s) == 2
    with pytest.raises(InvalidBars):
        s.replace_last(("2024-01-01", 10, 11, 9, 10, 1))  # not after bar 0
    assert s.to_dict() == before
    with pytest.raises(DataError):
        s.append(("2024-01-03", "x", 1, 1, 1, 1))
    u = s.append(("2024-01-03", 11, 13, 10, 12, 1))
    assert u.index == 2 and u.bars == 3


@pytest.mark.parametrize("engine", ENGINES)
def test_session_repair(engine: EngineChoice) -> None:
    s = Session(engine=engine, overrides={"validation": {"repair": True}})
    u = s.append((0, 10, 9.5, 9, 10, 1))
    assert u.repaired
    assert s.analysis().repairs[0].to_dict() == {
        "index": 0,
        "old_high": 9.5,
        "old_low": 9.0,
        "new_high": 10.0,
        "new_low": 9.0,
    }


# --- Errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_bars_name_every_bad_bar(engine: EngineChoice) -> None:
    with pytest.raises(InvalidBars) as e:
        analyze(SH, engine=engine)
    v = e.value.violations
    assert len(v) == 16 and all(isinstance(x, Violation) for x in v)
    assert v[0] == Violation(
        97, "low", "low_range", "bar 97: low 109.31 is above min(open, close) 109.29"
    )
    assert str(e.value).startswith("invalid bars: bar 97: low 109.31 is above")
    assert "more" not in str(e.value)
    rows = [(i, 10.0, 9.0, 9.5, 10.0, 1.0) for i in range(25)]  # high below close: 25 bars
    with pytest.raises(InvalidBars) as e:
        analyze(rows, engine=engine, time_unit="ms")  # epoch ms 0..24: 1970, said so
    assert len(e.value.violations) == 25
    assert str(e.value).endswith("; … and 5 more")
    assert str(e.value).count("; ") == 20
    with pytest.raises(InvalidBars) as e:
        analyze([], engine=engine)
    assert e.value.violations[0].to_dict() == {
        "index": None,
        "field": "bars",
        "rule": "non_empty",
        "message": "the series is empty: at least one bar is required",
    }
    copy = pickle.loads(pickle.dumps(e.value))
    assert copy.violations == e.value.violations and str(copy) == str(e.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_config_and_engine_errors(engine: EngineChoice) -> None:
    with pytest.raises(ConfigError) as e:
        analyze(BTC, engine=engine, overrides={"macd": {"fast_period": 40}})
    assert e.value.key == "macd.fast_period"
    with pytest.raises(ConfigError) as e:
        Session(engine=engine, config={"pen": {"kind": "x"}})
    assert e.value.key == "pen.kind"
    bad_engine: Any = "go"
    with pytest.raises(ValueError, match="engine"):
        analyze(BTC, engine=bad_engine)


def test_native_errors_become_the_package_errors() -> None:
    class NativeInvalidBars(ValueError): ...

    class NativeConfigError(ValueError): ...

    class NativeStateError(RuntimeError): ...

    native = types.SimpleNamespace(
        InvalidBars=NativeInvalidBars, ConfigError=NativeConfigError, StateError=NativeStateError
    )
    violations = [{"index": 0, "field": "high", "rule": "finite", "message": "bar 0: high is NaN"}]
    fake: Any = native
    got = _native_error(fake, NativeInvalidBars("invalid bars: …", json.dumps(violations)))
    assert isinstance(got, InvalidBars) and [v.to_dict() for v in got.violations] == violations
    got = _native_error(
        fake,
        NativeConfigError(
            "invalid configuration: macd.fast_period: must be >= 1, got 0", "macd.fast_period"
        ),
    )
    assert isinstance(got, ConfigError)
    assert (got.key, got.message) == ("macd.fast_period", "must be >= 1, got 0")
    got = _native_error(fake, NativeStateError("replace_last: the session has no bar"))
    assert isinstance(got, StateError) and "no bar" in str(got)
    assert _native_error(fake, KeyError("x")) is None


def test_real_native_errors_are_converted() -> None:
    import trading_system.native as native

    with pytest.raises(native.ConfigError) as raised:
        native.Session('{"macd": {"fast_period": 0}}', False)
    got = _native_error(native, raised.value)
    assert isinstance(got, ConfigError)
    assert (got.key, got.message) == ("macd.fast_period", "must be >= 1, got 0")
    with pytest.raises(native.StateError) as raised_state:
        native.Session(None, False).replace_last(0, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert isinstance(_native_error(native, raised_state.value), StateError)


def test_engine_config_json_is_what_the_binding_receives() -> None:
    cfg = engine_config({"macd": {"histogram_scale": 1}})
    text = json.dumps(cfg.to_dict())
    assert '"histogram_scale": 1.0' in text and '"seed": "first_close"' in text
