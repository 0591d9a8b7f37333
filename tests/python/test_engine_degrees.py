"""The amended §6.3 (the pursuit rule, leading segments), §7 inside leading segments and §13
(higher degrees) in the Python engine, on small hand-made pen sequences whose expected output is
derived from the spec's words (each test says how)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from trading_system.config import engine_config
from trading_system.data import Bars
from trading_system.engine import Session, analyze
from trading_system.engine.fractal import Fractal
from trading_system.engine.pivot import Pivot, find_pivots
from trading_system.engine.segment import SegmentEngine, SegmentSpan, Stroke, split_first_run

DAY = 86_400_000


def strokes(prices: Sequence[float]) -> list[Stroke]:
    """Pens (as strokes) joining consecutive prices; pen i runs from prices[i] to prices[i+1]."""
    out = []
    for i, (a, b) in enumerate(zip(prices, prices[1:], strict=False)):
        up = b > a
        out.append(Stroke(up, Fractal(up is False, i, i, a), Fractal(up, i + 1, i + 1, b)))
    return out


def spans(prices: Sequence[float], final: int | None = None) -> tuple[list[Any], list[Any]]:
    """Settled segments (the engine fed the first ``final`` pens, all but the last by default)
    and the tail, as ``(direction, first, last, leading, gap)``."""
    pens = strokes(prices)
    e = SegmentEngine(True, True)
    settled: list[SegmentSpan] = []
    e.run(pens, len(pens) - 1 if final is None else final, settled)

    def show(xs: list[SegmentSpan]) -> list[Any]:
        return [("u" if s.up else "d", s.first_pen, s.last_pen, s.leading, s.gap) for s in xs]

    return show(settled), show(e.tail(pens))


def bars(prices: Sequence[float]) -> Bars:
    """Bars whose pens are exactly the legs between ``prices`` (as the golden files' hand-made
    cases): 4 bars a leg, each bar ``high = c + 0.5``, ``low = c − 0.5`` around a centre moving
    linearly, a top's high and a bottom's low at the given prices, and one lead-in bar."""
    first_top = prices[1] < prices[0]
    centres = [p - 0.5 if (i % 2 == 0) == first_top else p + 0.5 for i, p in enumerate(prices)]
    cs = [centres[0] + (-1.0 if first_top else 1.0), centres[0]]
    for a, b in zip(centres, centres[1:], strict=False):
        cs.extend(a + (b - a) * k / 4 for k in range(1, 5))
    n = len(cs)
    high = [c + 0.5 for c in cs]
    low = [c - 0.5 for c in cs]
    return Bars([i * DAY for i in range(n)], low, high, low, high, [1.0] * n)  # type: ignore[arg-type]


# A first run that splits twice (§6.3). Up window (down pens): P1 [11,14], P3 [7,16] -> pursued
# after P3 (the down window, which took P0 and then P2 and reset to P2, is emptied). P5 [12,20],
# P7 [15,25], P9 [22,30] each reset it (e2 above e1); P11 [18,27]: 25 < 30, 27 ≤ 30, 18 < 22 and
# 18 < P9.low 22 -> top, no gap (25 < 22? no), peak P9, E = 8 (up). m among 0..5 against pen 8
# (down pens 1, 3, 5 ending 11, 7, 12) = 3, which ends below pen 0's low 10: pieces 0..3 and
# 4..8; 0..3 splits again (E = 3: m = 0): 0..0 and 1..3. All leading, each its last pen's
# direction. The search goes on at P9, down.
SPLIT = [10, 14, 11, 16, 7, 20, 12, 25, 15, 30, 22, 27, 18, 23]


def test_split_at_m_recursively_settled_once_the_end_used_final_pens() -> None:
    settled, tail = spans(SPLIT)
    lead = [("u", 0, 0, True, False), ("d", 1, 3, True, False), ("u", 4, 8, True, False)]
    assert settled == lead
    # Forming from P9 down: candidates P11 (18) -> P9..P11; then from P12 fewer than 3 pens.
    assert tail == [("d", 9, 11, False, False)]


def test_split_is_provisional_while_the_end_needs_the_last_pen() -> None:
    settled, tail = spans(SPLIT[:-1])  # P11 is now the last pen, not final
    assert settled == []
    assert tail == [
        ("u", 0, 0, True, False),
        ("d", 1, 3, True, False),
        ("u", 4, 8, True, False),
        ("d", 9, 11, False, False),
    ]


def test_split_first_run_cases() -> None:
    # No split: E = 4 (up), m = pen 1 (the only down pen in 0..1), ends 12, not below 10.
    assert split_first_run(strokes([10, 15, 12, 18, 14, 20]), 4) == [(0, 4)]
    # Split at m = 1: it ends 8, below pen 0's low 10.
    assert split_first_run(strokes([10, 15, 8, 18, 14, 20]), 4) == [(0, 1), (2, 4)]
    # m = 0: pen 0 (down, ends 10) is the lowest down pen among 0..2.
    assert split_first_run(strokes([20, 10, 15, 12, 18, 14, 22]), 5) == [(0, 0), (1, 5)]
    # Ties go to the earliest: pens 0 and 2 both end at 10 -> m = 0 (the latest would not split).
    assert split_first_run(strokes([20, 10, 15, 10, 18, 14, 22]), 5) == [(0, 0), (1, 5)]
    # Fewer than 4 pens: no split.
    assert split_first_run(strokes([20, 10, 15]), 1) == [(0, 1)]
    # A down run mirrors it: E = 4 (down), m = pen 1 (up, ends 22 above pen 0's high 20).
    assert split_first_run(strokes([20, 15, 22, 12, 16, 10]), 4) == [(0, 1), (2, 4)]


def test_pen_0_against_the_direction_is_a_leading_segment() -> None:
    # As the golden 06_segment_first_discard: the up window ends at peak P2, the run P0..P1 (pen 0
    # down, E = 1 < 3: no split) goes against its direction -> one leading segment, up (P1's).
    prices = [20, 15, 26, 18, 24, 14, 22, 16, 27, 20, 25]
    settled, tail = spans(prices)
    assert settled == [("u", 0, 1, True, False), ("d", 2, 4, False, False)]
    assert tail == [("u", 5, 7, False, False)]


def test_pen_0_in_the_direction_makes_the_first_segment() -> None:
    # As the golden 06_segment_first_case: up window P1 [15,20], P3 [18,25], P5 [21,30] is e2?
    # No: 30 > 25 resets; e0 P3, e1 P5 [21,30], P7 [17,26]: 25 < 30, 26 ≤ 30, 17 < 21 and 17 < 21
    # -> top, no gap, peak P5, E = 4; m among 0..1 = P1 ends 15, not below pen 0's low 10.
    prices = [10, 20, 15, 25, 18, 30, 21, 26, 17, 22]
    settled, tail = spans(prices)
    assert settled == [("u", 0, 4, False, False)]
    assert tail == [("d", 5, 7, False, False)]


# The pursuit rule, as the golden 06_segment_first_pursuit_switch: the up window is pursued after
# P3 and the down window emptied; P4 is not fed to it. P5 resets the up window to P5 alone (it
# stops being pursued); the down window starts again at P6 and resets to P8; P9 makes the up
# window (P5+P7 merged [11,18], P9 [14,19]) pursued again; P11 resets it to P9, P11. No end: one
# forming segment from P0 (up), to the highest candidate P10 (22).
PURSUIT = [10, 20, 15, 20, 12, 18, 8, 16, 11, 19, 14, 22, 17, 20]


def test_pursued_window_alone_is_fed_and_the_other_emptied() -> None:
    pens = strokes(PURSUIT)
    e = SegmentEngine(True, True)
    out: list[SegmentSpan] = []
    e.run(pens, 4, out)  # pens 0..3
    assert e.pursued is True
    assert e.down_w.elements() == 0
    e.run(pens, 5, out)  # pen 4 (up) is not fed to the down window while up is pursued
    assert e.down_w.elements() == 0
    e.run(pens, 6, out)  # P5 resets the up window to one element: no window pursued
    assert e.pursued is None
    assert e.up_w.elements() == 1
    settled, tail = spans(PURSUIT)
    assert settled == []
    assert tail == [("u", 0, 10, False, False)]


def test_pursuit_rule_end_to_end() -> None:
    doc = analyze(bars(PURSUIT), engine_config())
    # The last leg has no fractal yet: it is the forming pen.
    assert [(p["start"]["price"], p["end"]["price"]) for p in doc["pens"]] == list(
        zip(PURSUIT[:-1], PURSUIT[1:-1], strict=False)
    )
    assert [(s["first_pen"], s["last_pen"], s["confirmed"]) for s in doc["segments"]] == [
        (0, 10, False)
    ]
    # Counter pens 1, 3, 5, 7, 9: P1 [15,20] and P3 [12,20] overlap (ZD 15, ZG 20); P5 [8,18],
    # P7 [11,16], P9 [14,19] each overlap it and extend it.
    assert [(z["first_pen"], z["last_pen"], z["zd"], z["zg"]) for z in doc["pivots"]] == [
        (1, 9, 15.0, 20.0)
    ]


def test_leading_segments_end_to_end_with_their_pivots() -> None:
    doc = analyze(bars(SPLIT), engine_config())
    segs = [
        (s["direction"], s["first_pen"], s["last_pen"], s["confirmed"]) for s in doc["segments"]
    ]
    assert segs == [
        ("up", 0, 0, False),
        ("down", 1, 3, False),
        ("up", 4, 8, False),
        ("down", 9, 11, False),
    ]
    # In the leading up segment 4..8 the down pens P5 [12,20] and P7 [15,25] overlap:
    # ZD = max(12, 15) = 15, ZG = min(20, 25) = 20, DD 12, GG 25; P9 does not belong to it.
    piv = [(z["segment"], z["first_pen"], z["last_pen"], z["zd"], z["zg"]) for z in doc["pivots"]]
    assert piv == [(2, 5, 7, 15.0, 20.0)]
    assert all(not z["confirmed"] for z in doc["pivots"])


def test_pivot_of_a_leading_segment_that_begins_with_a_counter_pen() -> None:
    # A leading up segment P1..P6 whose first pen P1 is down: its counter pens are P1, P3, P5.
    # P1 [12,20] and P3 [14,22] overlap: ZD 14, ZG 20; P5 [15,24] extends it (24 > 14, 15 < 20).
    pens = strokes([10, 20, 12, 22, 14, 24, 15, 30])
    out: list[Pivot] = []
    find_pivots(pens, SegmentSpan(True, 1, 6, False, True), 0, out)
    assert [(z.first_pen, z.last_pen, z.zd, z.zg, z.dd, z.gg) for z in out] == [
        (1, 5, 14, 20, 12, 24)
    ]


def test_stroke_reads_a_segment_as_a_pen() -> None:
    pens = strokes(SPLIT)
    s = SegmentSpan(False, 1, 3, False, True).stroke(pens)
    # Starts at P1's start (14), ends at P3's end (7): interval [7, 14].
    assert (s.up, s.start.price, s.end.price, s.low, s.high) == (False, 14, 7, 7, 14)
    # Only the two end points count: P0..P1 runs 20 -> 18, interval [18, 20].
    odd = SegmentSpan(True, 0, 1, False, True).stroke(strokes([20, 15, 18]))
    assert (odd.low, odd.high) == (18, 20)


def test_degree_2_runs_segments_over_strokes() -> None:
    # Degree-1 segments read as strokes zigzag like SPLIT's pens: degree 2 gives the same split.
    seg1 = strokes(SPLIT)
    e = SegmentEngine(True, True)
    out: list[SegmentSpan] = []
    e.run(seg1, len(seg1) - 1, out)
    assert [(s.first_pen, s.last_pen, s.leading) for s in out] == [
        (0, 0, True),
        (1, 3, True),
        (4, 8, True),
    ]


def test_final_strokes_are_the_settled_segments() -> None:
    # §13: a degree-2 end is settled only when every stroke its test fed is final. With the
    # stroke list of SPLIT where only 11 strokes are final (P11 is not), nothing settles; the
    # tail holds the provisional split, as at degree 1 with the last pen.
    settled, tail = spans(SPLIT, final=11)
    assert settled == []
    assert tail[:3] == [
        ("u", 0, 0, True, False),
        ("d", 1, 3, True, False),
        ("u", 4, 8, True, False),
    ]


@pytest.mark.parametrize("degrees", [1, 2, 3, 4])
def test_degrees_list_shape(degrees: int) -> None:
    doc = analyze(bars(SPLIT * 3), engine_config({"structure": {"degrees": degrees}}))
    assert [d["degree"] for d in doc["degrees"]] == list(range(2, degrees + 1))
    assert list(doc)[:9] == [
        "bars",
        "merged_bars",
        "fractals",
        "pens",
        "forming_pen",
        "segments",
        "pivots",
        "signals",
        "degrees",
    ]
    for d in doc["degrees"]:
        assert list(d) == ["degree", "segments", "pivots", "signals"]


def test_degree_2_on_real_bars_uses_only_settled_strokes() -> None:
    from trading_system.data import load_csv

    b = load_csv("tests/data/BTCUSD-BITSTAMP_30m.csv")
    doc = analyze(b, engine_config({"structure": {"degrees": 3}}))
    seg1 = doc["segments"]
    d2 = doc["degrees"][0]
    assert d2["segments"], "the file has degree-2 segments"
    # Strokes are the degree-1 segments in order: each degree-2 segment starts and ends where its
    # first and last strokes do.
    for s in d2["segments"]:
        assert s["start"] == seg1[s["first_pen"]]["start"]
        assert s["end"] == seg1[s["last_pen"]]["end"]
    # A confirmed degree-2 segment's strokes are settled degree-1 segments (confirmed or leading
    # before the first confirmed one).
    settled = max(i for i, s in enumerate(seg1) if s["confirmed"])
    for s in d2["segments"]:
        if s["confirmed"]:
            assert s["last_pen"] <= settled
    # Sessions equal batch at every degree.
    sess = Session(engine_config({"structure": {"degrees": 3}}))
    for row in b.rows():
        sess.append(*row)
    assert sess.document() == doc
