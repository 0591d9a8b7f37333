"""What a buy/sell point was derived from (docs/CHAN_THEORY.md §12.6), checked against the rules
of §9 on every golden document, at every degree: its ``pivot`` indexes the same degree's
``pivots`` (final pivots, then the tail's) and is the pivot the rule read, ``zd``/``zg`` are that
pivot's, a type-1 point carries the strengths its divergence test compared, a type-2 point the
pen of its type-1 point, a type-3 point the edge its leaving pen cleared. The golden documents
are the Rust engine's and the Python engine reproduces them (test_engine_golden.py), so this
holds for both."""

from __future__ import annotations

from typing import Any

from golden import cases

DOCS = [(name, case["expected"]) for name, case in cases() if "expected" in case]


def _degrees(doc: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(1, doc), *((d["degree"], d) for d in doc["degrees"])]


def check_point(g: dict[str, Any], pivots: list[dict[str, Any]], signals: list[Any]) -> None:
    z = pivots[g["pivot"]]
    assert (g["zd"], g["zg"]) == (z["zd"], z["zg"])
    kind, buy = g["type"], g["side"] == "buy"
    strengths = (g["entering_strength"], g["leaving_strength"], g["ratio"])
    if kind == "1":
        # The segment's last pivot, left by the point's pen.
        assert z["last_pen"] + 1 == g["pen"]
        later = [
            y for y in pivots if y["segment"] == z["segment"] and y["first_pen"] > z["first_pen"]
        ]
        assert not later, "type 1 reads the segment's last pivot"
        entering, leaving, ratio = strengths
        assert leaving is not None
        if entering is not None and ratio is not None:
            assert ratio == leaving / entering
        assert (g["follows"], g["edge"]) == (None, None)
    elif kind == "2":
        assert g["follows"] == g["pen"] - 2 and strengths == (None, None, None)
        one = [y for y in signals if y["type"] == "1" and y["pen"] == g["follows"]]
        assert len(one) == 1 and one[0]["pivot"] == g["pivot"] and g["edge"] is None
    else:
        assert kind == "3" and g["follows"] is None and strengths == (None, None, None)
        # The pen after the one that left the pivot.
        assert z["last_pen"] + 2 == g["pen"]
        assert g["edge"] == ("zg" if buy else "zd")


def test_points_name_what_they_were_derived_from() -> None:
    seen = {"1": 0, "2": 0, "3": 0, "tail pivot after final ones": 0}
    for name, doc in DOCS:
        for degree, d in _degrees(doc):
            pivots, signals = d["pivots"], d["signals"]
            finals = sum(1 for z in pivots if z["confirmed"])
            for g in signals:
                try:
                    check_point(g, pivots, signals)
                except AssertionError as e:
                    raise AssertionError(f"{name} degree {degree}: {g}: {e}") from None
                seen[g["type"]] += 1
                if finals and g["pivot"] >= finals:
                    seen["tail pivot after final ones"] += 1
    # Every kind of point occurs, and tail points whose pivots follow final ones (the index is
    # the document's, not the tail's own).
    assert all(n > 0 for n in seen.values()), seen
