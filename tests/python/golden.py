"""Shared test helpers: the golden files (`tests/golden/*.json`, language-neutral) and exact
document comparison, for the Python tests. The format is described in
rust-core/chan-core/tests/golden.rs:
``bars`` (rows ``[time, open, high, low, close, volume]``, numbers possibly as strings such as
``"NaN"``) or ``bars_csv``, ``config`` overrides, ``with_macd``, and the expectation ``expected``
(the whole document) or ``expected_error`` (every violation). Also exact document comparison
and a client that keeps a document from update documents alone (§12.7)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trading_system.data import Bars, load_csv, parse_time

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"


def cases() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(GOLDEN.glob("*.json"))]


def params(kept: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Golden cases as ``pytest.mark.parametrize`` values ``(name, case)``, one test per file,
    each with the file's name without ``.json`` as its id (``test_batch[01_err_empty]``)."""
    return [pytest.param(name, case, id=Path(name).stem) for name, case in kept]


def bars_of(case: dict[str, Any]) -> Bars:
    if "bars_csv" in case:
        return load_csv(GOLDEN / case["bars_csv"])
    rows = case["bars"]

    def num(v: Any) -> float:
        return float(v)  # also "NaN", "inf", "-inf"

    return Bars(
        time=np.array(
            [r[0] if isinstance(r[0], int) else parse_time(r[0]) for r in rows], dtype=np.int64
        ),
        open=np.array([num(r[1]) for r in rows], dtype=np.float64),
        high=np.array([num(r[2]) for r in rows], dtype=np.float64),
        low=np.array([num(r[3]) for r in rows], dtype=np.float64),
        close=np.array([num(r[4]) for r in rows], dtype=np.float64),
        volume=np.array([num(r[5]) for r in rows], dtype=np.float64),
    )


def loose_diff(want: Any, got: Any, path: str = "") -> str | None:
    """The golden files' comparison: exact, with numbers compared as doubles (``10`` = ``10.0``);
    returns the first differing path."""
    if isinstance(want, bool) or isinstance(got, bool):
        ok = type(want) is type(got) and want == got
        return None if ok else f"{path}: {want!r} != {got!r}"
    if isinstance(want, int | float) and isinstance(got, int | float):
        return None if float(want) == float(got) else f"{path}: {want!r} != {got!r}"
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return f"{path}: length {len(want)} != {len(got)}"
        for i, (a, b) in enumerate(zip(want, got, strict=True)):
            if d := loose_diff(a, b, f"{path}[{i}]"):
                return d
        return None
    if isinstance(want, dict) and isinstance(got, dict):
        for k in list(want) + [k for k in got if k not in want]:
            if d := loose_diff(want.get(k), got.get(k), f"{path}.{k}"):
                return d
        return None
    return None if want == got else f"{path}: {want!r} != {got!r}"


def exact_diff(a: Any, b: Any, path: str = "") -> str | None:
    """Identical documents: same keys, same types, floats equal bit for bit (``-0.0`` differs
    from ``0.0``); returns the first differing path."""
    if type(a) is not type(b):
        return f"{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})"
    if isinstance(a, float):
        same = a.hex() == b.hex() or (math.isnan(a) and math.isnan(b))
        return None if same else f"{path}: {a!r} != {b!r}"
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if d := exact_diff(x, y, f"{path}[{i}]"):
                return d
        return None
    if isinstance(a, dict):
        if list(a) != list(b) and set(a) != set(b):
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            if d := exact_diff(a[k], b[k], f"{path}.{k}"):
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def as_json(doc: Any) -> Any:
    """A document as its JSON text reads back (tuples become lists, and so on)."""
    return json.loads(json.dumps(doc, allow_nan=False))


LISTS = ("fractals", "pens", "segments", "pivots", "signals")
TAIL = ("segments", "pivots", "signals")
UPDATE_KEYS = [
    "index",
    "replaced",
    "repaired",
    "bars",
    "merged_bars",
    "macd",
    *LISTS,
    "last_pen",
    "forming_pen",
    "tail",
    "degrees",
]
DEGREE_UPDATE_KEYS = ["degree", *TAIL, "tail"]


class UpdateClient:
    """Keeps a document from update documents alone, as a remote client would."""

    def __init__(self, with_macd: bool) -> None:
        self.with_macd = with_macd
        self.bars = 0
        self.merged_bars = 0
        self.finals: dict[str, list[Any]] = {k: [] for k in LISTS}
        self.tail: dict[str, list[Any]] = {k: [] for k in TAIL}
        self.last_pen: Any = None
        self.forming_pen: Any = None
        self.macd: dict[str, list[Any]] = {"dif": [], "dea": [], "histogram": []}
        self.repaired: list[int] = []
        # Per higher degree (§13), in order: its number, final lists and tail.
        self.degrees: list[tuple[int, dict[str, list[Any]], dict[str, list[Any]]]] = []

    def apply(self, update: str | Mapping[str, Any]) -> dict[str, Any]:
        """Applies one update document (its JSON text, or the parsed object)."""
        u = json.loads(update) if isinstance(update, str) else dict(update)
        assert list(u) == UPDATE_KEYS
        index = u["index"]
        assert u["bars"] == index + 1
        self.bars, self.merged_bars = u["bars"], u["merged_bars"]
        for name in LISTS:
            kept = self.finals[name]
            assert u[name]["from"] <= len(kept)
            del kept[u[name]["from"] :]
            kept.extend(u[name]["items"])
        assert all(p["final"] for p in u["pens"]["items"])
        self.last_pen, self.forming_pen = u["last_pen"], u["forming_pen"]
        if u["last_pen"] is not None:
            assert u["last_pen"]["final"] is False
        if u["tail"] is not None:
            assert list(u["tail"]) == list(TAIL)
            self.tail = u["tail"]
        for k, series in self.macd.items():
            del series[index:]
            series.append(u["macd"][k])
        self.repaired = [i for i in self.repaired if i < index]
        if u["repaired"]:
            self.repaired.append(index)
        if not self.degrees:
            self.degrees = [
                (d["degree"], {k: [] for k in TAIL}, {k: [] for k in TAIL}) for d in u["degrees"]
            ]
        # One entry per configured degree, in order, in every update.
        assert [d["degree"] for d in u["degrees"]] == [n for n, _, _ in self.degrees]
        for d, (_, finals, tail) in zip(u["degrees"], self.degrees, strict=True):
            assert list(d) == DEGREE_UPDATE_KEYS
            for name in TAIL:
                assert d[name]["from"] <= len(finals[name])
                del finals[name][d[name]["from"] :]
                finals[name].extend(d[name]["items"])
                if d["tail"] is not None:
                    tail[name] = d["tail"][name]
        return u

    def document(self) -> dict[str, Any]:
        pens = self.finals["pens"] + ([self.last_pen] if self.last_pen is not None else [])
        doc: dict[str, Any] = {
            "bars": self.bars,
            "merged_bars": self.merged_bars,
            "fractals": self.finals["fractals"],
            "pens": pens,
            "forming_pen": self.forming_pen,
            **{k: self.finals[k] + self.tail[k] for k in TAIL},
            "degrees": [
                {"degree": n, **{k: finals[k] + tail[k] for k in TAIL}}
                for n, finals, tail in self.degrees
            ],
        }
        if self.with_macd:
            doc["macd"] = self.macd
        return doc


def comparable(document: str | dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """A full document without what updates do not carry (config; repairs but their
    indices)."""
    doc = json.loads(document) if isinstance(document, str) else as_json(document)
    del doc["config"]
    return doc, [r["index"] for r in doc.pop("repairs")]
