"""Charts (trading_system.chart, ``trading-system chart``, ``analyze --chart``): the page works
offline, a real browser (headless Chromium) draws it, and a page whose script is removed fails
the same pixel check, so the check can fail."""

from __future__ import annotations

import html as html_text
import json
import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import headless
from png_decode import count_colour, read_png

from trading_system import analyze, chart
from trading_system.cli import main
from trading_system.data import load_csv

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
BTC = DATA / "BTCUSD-BITSTAMP_30m.csv"
SH_1M = DATA / "000001.SH_1m_head960.csv"
SH = DATA / "000001.SH_1d_head1200.csv"
LABEL_WINDOW = "1100,710"
"""A browser window whose price panel is a little larger than the placement assumes."""

# Pixels (per-channel tolerance 10) a 1400x1000 screenshot of the BTC chart must show: the full
# chart shows several times more of each (about 2,800 increasing and 4,500 decreasing candle
# pixels, 7,000 of pens, 6,600 of degree-2 segments and pivot borders, 830,000 of plot
# background).
EXPECTED = {
    "increasing candles": (chart.INCREASING_COLOR, 1000),
    "decreasing candles": (chart.DECREASING_COLOR, 1000),
    "pens": (chart.PEN_COLOR, 2000),
    "segments": (chart.SEGMENT_COLOR, 2000),
    "degree-2 segments and pivots": (chart.degree_color(2), 2000),
    "buy points": (chart.BUY_COLOR, 100),
    "sell points": (chart.SELL_COLOR, 100),
    "MACD histogram > 0": (chart.MACD_POSITIVE_COLOR, 1000),
    "MACD histogram < 0": (chart.MACD_NEGATIVE_COLOR, 1000),
}
BACKGROUND_SHARE = 0.4
"""The plotting area's background must cover at least this share of the screenshot."""


pytestmark = pytest.mark.usefixtures("no_environment_overrides")


@pytest.fixture(scope="module")
def btc_page() -> str:
    bars = load_csv(BTC)
    return chart.render(bars, analyze(bars, with_macd=True), "BTC/USD 30m")


def screenshot(page: str, tmp_path: Path, name: str) -> np.ndarray:
    """``page`` as headless Chromium draws it in a 1400x1000 window, as RGB pixels."""
    png = tmp_path / f"{name}.png"
    headless(page, tmp_path, name, "--hide-scrollbars", f"--screenshot={png}")
    assert png.exists(), "chromium wrote no screenshot"
    return read_png(png)


def missing(pixels: np.ndarray) -> list[str]:
    """What the screenshot lacks of a drawn chart (empty: it shows one)."""
    out = []
    for what, (colour, least) in EXPECTED.items():
        n = count_colour(pixels, colour)
        if n < least:
            out.append(f"{what}: {n} pixels of {colour}, expected at least {least}")
    total = pixels.shape[0] * pixels.shape[1]
    background = count_colour(pixels, chart.PLOT_BACKGROUND)
    if background < BACKGROUND_SHARE * total:
        out.append(f"plot background: {background} of {total} pixels")
    return out


def test_the_page_is_standalone(btc_page: str) -> None:
    assert btc_page.startswith("<!doctype html>") or btc_page.startswith("<html")
    assert "<title>BTC/USD 30m</title>" in btc_page
    # The plotly library itself is inline (its banner and its size), no file or CDN is loaded.
    assert re.search(r"<script[^>]*>\s*/\*\*\s*\* plotly\.js v\d", btc_page)
    assert len(btc_page) > 3_000_000
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", btc_page, flags=re.IGNORECASE)
    sources = [t for t in tags if re.search(r"\b(?:src|href)\s*=", t, flags=re.IGNORECASE)]
    assert sources == [], "no external scripts, stylesheets or images"
    # The markup outside the scripts loads nothing either (plotly.js itself holds URLs as strings,
    # for map attributions: not sources).
    markup = re.sub(r"(<script\b[^>]*>).*?</script>", r"\1", btc_page, flags=re.DOTALL)
    assert len(markup) < 10_000
    assert not re.search(r"""(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?//""", markup)
    assert "Plotly.newPlot(" in btc_page


def test_headless_chromium_draws_the_chart(btc_page: str, tmp_path: Path) -> None:
    pixels = screenshot(btc_page, tmp_path, "chart")
    assert pixels.shape == (1000, 1400, 3)
    assert missing(pixels) == []


def test_a_page_without_its_script_fails_the_check(btc_page: str, tmp_path: Path) -> None:
    """The negative control: the same page with its scripts (plotly and the figure) removed
    draws nothing, and the check says so for every colour."""
    stripped = re.sub(r"<script\b.*?</script>", "", btc_page, flags=re.DOTALL | re.IGNORECASE)
    assert "<script" not in stripped and len(stripped) < 10_000
    pixels = screenshot(stripped, tmp_path, "blank")
    lacking = missing(pixels)
    assert len(lacking) == len(EXPECTED) + 1, lacking


def encode_png(pixels: np.ndarray) -> bytes:
    """An RGB PNG whose rows use the five filter types in turn: the decoder's reference."""
    height, width, _ = pixels.shape
    rows, prior = [], [0] * (width * 3)
    for y in range(height):
        line = pixels[y].reshape(-1).tolist()
        kind = y % 5
        out = []
        for i, v in enumerate(line):
            a = line[i - 3] if i >= 3 else 0
            b = prior[i]
            c = prior[i - 3] if i >= 3 else 0
            if kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predicted = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                predicted = (0, a, b, (a + b) // 2)[kind]
            out.append((v - predicted) % 256)
        rows.append(bytes([kind, *out]))
        prior = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def test_the_png_decoder_undoes_every_filter(tmp_path: Path) -> None:
    pixels = np.random.default_rng(7).integers(0, 256, size=(11, 9, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(encode_png(pixels))
    assert np.array_equal(read_png(path), pixels)
    first = "#" + bytes(pixels[0, 0]).hex()
    assert count_colour(pixels, first, tolerance=0) == int((pixels == pixels[0, 0]).all(-1).sum())


# --- The figure ----------------------------------------------------------------------------------


def traces(fig: object) -> dict[str, dict]:
    data = json.loads(fig.to_json())["data"]  # type: ignore[attr-defined]
    return {t.get("name"): t for t in data}


def decode(values: dict[str, Any] | list[float | None]) -> np.ndarray:
    """A trace's array from the figure's JSON (plotly sends numpy arrays base64-encoded)."""
    if isinstance(values, dict):
        import base64

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def test_last_limits_the_bars_and_cuts_structures_at_the_window() -> None:
    bars = load_csv(BTC)
    a = analyze(bars)  # no MACD: the chart computes it
    fig = chart.figure(bars, a, "t", last=300)
    t = traces(fig)
    first = float(bars.time[-300])
    assert len(decode(t["bars"]["close"])) == 300
    for name in ("bars", "pens", "segments", "pivots", "DIF", "DEA"):
        x = decode(t[name]["x"])
        assert np.nanmin(x) >= first, name
    with_macd = analyze(bars, with_macd=True).macd
    assert with_macd is not None
    np.testing.assert_allclose(decode(t["DIF"]["y"]), with_macd.dif[-300:])
    # The figure from the document equals the one from the Analysis.
    assert chart.figure(bars, a.to_dict(), "t", last=300).to_json() == fig.to_json()


def test_non_final_structures_are_drawn_apart() -> None:
    bars = load_csv(BTC)
    a = analyze(bars, with_macd=True)
    t = traces(chart.figure(bars, a, "t"))
    assert t["pens"]["line"]["dash"] == "solid"
    assert t["pens, not final / forming"]["line"]["dash"] == "dash"
    assert t["segments, not confirmed"]["line"]["dash"] == "dash"
    assert t["degree 2 segments"]["line"]["dash"] == "solid"
    assert t["degree 2 segments, not confirmed"]["line"]["dash"] == "dash"
    assert t["degree 2 pivots, not confirmed"]["line"]["dash"] == "dot"
    buy = t["buy points"]
    labels = [f"B{g.type}" for g in a.signals if g.side == "buy"]
    assert t["buy points labels"]["text"] == labels
    hollow = [s.endswith("-open") for s in buy["marker"]["symbol"]]
    assert hollow == [not g.final for g in a.signals if g.side == "buy"]
    sell2 = t["degree 2 sell points"]
    assert [s.endswith("-open") for s in sell2["marker"]["symbol"]] == [True], "not final"


# --- Higher degrees -----------------------------------------------------------------------------


def points(trace: dict[str, Any]) -> list[tuple[float, float]]:
    """The (x, y) vertices of a polyline trace, gaps (NaN) left out."""
    x, y = decode(trace["x"]), decode(trace["y"])
    return [(float(a), float(b)) for a, b in zip(x, y, strict=True) if not np.isnan(b)]


def test_higher_degrees_are_drawn_from_the_documents_points() -> None:
    """Degrees 2 and 3 of BTC: each segment trace's vertices are exactly the end points of that
    degree's segments in the document (x the bar's time, y its price), confirmed apart from the
    others, in the degree's colour and thicker than the degree below; pivot boxes span
    zd..zg."""
    bars = load_csv(BTC)
    doc = analyze(bars, config={"structure": {"degrees": 3}}, with_macd=True).to_dict()
    assert [d["degree"] for d in doc["degrees"]] == [2, 3]
    t = traces(chart.figure(bars, doc, "t"))
    x = bars.time.astype(np.float64)  # UTC: wall time is the epoch time
    width = t["segments"]["line"]["width"]
    for level in doc["degrees"]:
        n = level["degree"]
        assert level["segments"], f"degree {n} has segments to draw"
        for confirmed, suffix in ((True, ""), (False, ", not confirmed")):
            chosen = [s for s in level["segments"] if s["confirmed"] == confirmed]
            name = f"degree {n} segments{suffix}"
            if not chosen:
                assert name not in t
                continue
            ends = {
                (float(x[p["index"]]), float(p["price"]))
                for s in chosen
                for p in (s["start"], s["end"])
            }
            assert set(points(t[name])) == ends, name
            assert t[name]["line"]["color"] == chart.degree_color(n)
            assert t[name]["line"]["width"] > width
            drawn = t[name]["line"]["width"]
        width = drawn
        for z in level["pivots"]:
            name = f"degree {n} pivots" + ("" if z["confirmed"] else ", not confirmed")
            box = points(t[name])
            assert (float(x[z["start"]["index"]]), z["zd"]) in box
            assert (float(x[z["end"]["index"]]), z["zg"]) in box
    # Degree 2's one point, a non-final third sell point, is a larger hollow marker.
    (g,) = doc["degrees"][0]["signals"]
    sell = t["degree 2 sell points"]
    assert decode(sell["x"]).tolist() == [float(x[g["index"]])]
    assert sell["marker"]["size"] > t["sell points"]["marker"]["size"]
    assert t["degree 2 sell points labels"]["text"] == [f"D2 S{g['type']}"]


def test_each_degree_is_one_legend_group() -> None:
    """A click on any entry of degree n shows or hides all of degree n (its segments, pivots,
    markers and labels); degree-1 entries toggle alone, a point's label with its marker."""
    bars = load_csv(BTC)
    fig = chart.figure(bars, analyze(bars, config={"structure": {"degrees": 3}}), "t")
    data = json.loads(fig.to_json() or "{}")["data"]
    assert fig.layout.legend.groupclick == "togglegroup"
    groups: dict[str | None, set[str]] = {}
    for trace in data:
        groups.setdefault(trace.get("legendgroup"), set()).add(trace["name"])
    assert groups.pop("degree 2") == {
        "degree 2 segments",
        "degree 2 segments, not confirmed",
        "degree 2 pivots",
        "degree 2 pivots, not confirmed",
        "degree 2 sell points",
        "degree 2 sell points labels",
    }
    assert groups.pop("degree 3") == {"degree 3 segments, not confirmed"}
    assert groups.pop("buy points") == {"buy points", "buy points labels"}
    assert groups.pop("sell points") == {"sell points", "sell points labels"}
    assert "segments" in groups.pop(None) and not groups
    # The legend reads degree 1, then each higher degree, then the MACD panel.
    shown = sorted(
        (t.get("legendrank", 1000), i, t["name"])
        for i, t in enumerate(data)
        if t.get("showlegend", True)
    )
    names = [name for _, _, name in shown]
    assert names.index("sell points") < names.index("degree 2 segments")
    assert names.index("degree 2 sell points") < names.index("degree 3 segments, not confirmed")
    assert names[-3:] == ["MACD histogram", "DIF", "DEA"]


def test_point_hover_lists_every_field_of_the_item() -> None:
    """Fields a point item gains later show in its tooltip without the chart naming them."""
    bars = load_csv(BTC)
    doc = analyze(bars).to_dict()
    doc["degrees"][0]["signals"][0]["ratio"] = 0.25
    doc["signals"][0]["pivot"] = {"zd": 1.5}
    t = traces(chart.figure(bars, doc, "t"))
    (hover,) = t["degree 2 sell points"]["hovertext"]
    assert hover.startswith("sell point type 3, degree 2 at 607.2 (may change)")
    assert "ratio: 0.25" in hover.split("<br>") and "pen: 12" in hover.split("<br>")
    assert "pivot: {&quot;zd&quot;: 1.5}" in t["buy points"]["hovertext"][0]


def test_placement_stacks_colliding_labels() -> None:
    """Two points at one bar: the first label clears both markers, the second stacks under it;
    a point far apart keeps its label beside its marker."""
    a = chart._Anchor("B1", 100.0, 50.0, 12.0, True)
    b = chart._Anchor("D2 B1", 100.0, 50.0, 18.0, True)
    c = chart._Anchor("S2", 400.0, 50.0, 12.0, False)
    first, second, third = chart.place_labels([a, b, c])
    # B1 would sit right under its marker but the D2 marker (18 px) around it is in the way.
    assert first.top == 50.0 - 9.0 - chart.LABEL_GAP_PX
    assert second.top == first.bottom - chart.LABEL_GAP_PX
    assert third.bottom == 50.0 + 6.0 + chart.LABEL_GAP_PX
    assert not first.overlaps(second)


@pytest.mark.parametrize(("path", "crowded"), [(BTC, True), (SH_1M, False)], ids=["btc", "sh"])
def test_no_two_labels_overlap_on_a_real_series(path: Path, crowded: bool) -> None:
    """Every point of every degree is labelled, and no two label boxes overlap (nor a label and
    a marker); on BTC some would if each sat beside its own marker (three points in the last
    30 bars), so the rule is exercised."""
    bars = load_csv(path)
    a = analyze(bars)
    placed = chart.label_boxes(bars, a)
    doc = a.to_dict()
    assert len(placed) == len(doc["signals"]) + sum(len(d["signals"]) for d in doc["degrees"])
    assert {p.degree for p in placed} == {1, 2}
    boxes = [p.box for p in placed]
    for i, one in enumerate(boxes):
        for other in boxes[i + 1 :]:
            assert not one.overlaps(other), (one, other)
    markers = [p.marker for p in placed]
    for box in boxes:
        assert not any(box.overlaps(m) for m in markers), box

    def pushed(p: chart.PlacedLabel) -> bool:
        """Whether the label is further from its marker than the gap: moved by the rule."""
        if p.item["side"] == "buy":
            return p.box.top < p.marker.bottom - chart.LABEL_GAP_PX - 1e-9
        return p.box.bottom > p.marker.top + chart.LABEL_GAP_PX + 1e-9

    moved = [p.text for p in placed if pushed(p)]
    if crowded:
        assert 0 < len(moved) < len(placed), "the series exercises the rule"


MEASURE_LABELS = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const boxes = [...document.querySelectorAll("g.textpoint text")].map((t) => {
    const r = t.getBoundingClientRect();
    return [t.textContent, r.left, r.top, r.right, r.bottom];
  });
  const panel = document.querySelector(".bglayer .bg").getBoundingClientRect();
  const out = document.createElement("pre");
  out.id = "label-boxes";
  out.textContent = JSON.stringify({panel: [panel.width, panel.height], boxes: boxes});
  document.body.appendChild(out);
}, 3000));
</script>"""
"""Appended to a chart page: once plotly has drawn, writes every point label's box as the
browser laid it out (pixels, y downward) into the page, for ``--dump-dom``."""


Box = tuple[str, float, float, float, float]
"""A label as drawn: text, left, top, right, bottom (pixels, y downward)."""


def drawn_labels(
    page: str, tmp_path: Path, name: str, window: str
) -> tuple[tuple[float, float], list[Box]]:
    """The price panel's size and the point labels' boxes as Chromium lays out ``page`` in a
    window of ``window`` ("width,height") pixels."""
    measured = page.replace("</body>", MEASURE_LABELS + "</body>")
    done = headless(measured, tmp_path, name, "--dump-dom", window=window)
    found = re.search(r'<pre id="label-boxes">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    assert found, "the page did not report its labels"
    report = json.loads(html_text.unescape(found.group(1)))
    return tuple(report["panel"]), [tuple(b) for b in report["boxes"]]


def overlapping(boxes: list[Box]) -> list[tuple[str, str]]:
    out = []
    for i, (text, left, top, right, bottom) in enumerate(boxes):
        for other, left2, top2, right2, bottom2 in boxes[i + 1 :]:
            if not (right <= left2 or right2 <= left or bottom <= top2 or bottom2 <= top):
                out.append((text, other))
    return out


def naive_place(anchors: Sequence[Any]) -> list[chart.LabelBox]:
    """Every label right beside its own marker: the placement without the rule."""
    out = []
    for a in anchors:
        half = (len(a.text) * chart.LABEL_CHAR_PX + 4) / 2
        near = a.size / 2 + chart.LABEL_GAP_PX
        far = near + chart.LABEL_HEIGHT_PX
        bottom, top = (a.y - far, a.y - near) if a.below else (a.y + near, a.y + far)
        out.append(chart.LabelBox(a.text, a.x - half, bottom, a.x + half, top))
    return out


def test_the_browser_draws_every_label_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In headless Chromium, in a window whose price panel is just above the size the placement
    assumes, the crowded BTC chart's point labels are all drawn, each within the size assumed,
    and none overlaps another. A degree-2 point is added at the bar of the last degree-1 one
    (the two labels would land on each other); with every label beside its own marker, the
    same page has overlapping labels, so the check can fail."""
    bars = load_csv(BTC)
    doc = analyze(bars, with_macd=True).to_dict()
    doc["degrees"][0]["signals"].append(dict(doc["signals"][-1]))
    placed = chart.label_boxes(bars, doc)
    panel, boxes = drawn_labels(chart.render(bars, doc, "BTC"), tmp_path, "labels", LABEL_WINDOW)
    assert panel[0] >= chart.PLACEMENT_WIDTH_PX and panel[1] >= chart.PLACEMENT_HEIGHT_PX, panel
    assert panel[1] < chart.PLACEMENT_HEIGHT_PX * 1.25, "the window tests the edge"
    assert sorted(b[0] for b in boxes) == sorted(p.text for p in placed)
    assert any(b[0].startswith("D2 ") for b in boxes)
    for text, left, top, right, bottom in boxes:
        assert right - left > 5 and bottom - top > 5, f"{text} is drawn"
        assert right - left <= p_width(text) and bottom - top <= chart.LABEL_HEIGHT_PX, text
    assert overlapping(boxes) == []

    monkeypatch.setattr(chart, "place_labels", naive_place)
    _, naive = drawn_labels(chart.render(bars, doc, "BTC"), tmp_path, "naive", LABEL_WINDOW)
    assert overlapping(naive) != []


def p_width(text: str) -> float:
    """The width the placement gives a label."""
    box = chart.place_labels([chart._Anchor(text, 0.0, 0.0, 12.0, True)])[0]
    return box.right - box.left


# --- The command line -------------------------------------------------------------------------


def test_chart_command_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "chart.html"
    code = main(["chart", str(BTC), "-o", str(out_file), "--last", "500", "--title", "BTC"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "500 of 1968 bars shown" in out
    page = out_file.read_text(encoding="utf-8")
    assert "<title>BTC</title>" in page and "Plotly.newPlot(" in page


def test_chart_command_rejects_bad_input_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,open,high,low,close,volume\n2024-01-01,1,2,x,1.5,10\n", encoding="utf-8")
    for source in (bad, SH):
        out_file = tmp_path / "chart.html"
        code = main(["chart", str(source), "-o", str(out_file), "--engine", "python"])
        out, err = capsys.readouterr()
        assert (code, out) == (2, "")
        assert err.startswith("error: ")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"], "no output file"


def test_analyze_writes_the_chart_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page, doc = tmp_path / "chart.html", tmp_path / "out.json"
    code = main(["analyze", str(BTC), "--chart", str(page), "--json", str(doc)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "last pens (笔):" in out
    assert "Plotly.newPlot(" in page.read_text(encoding="utf-8")
    assert "macd" not in json.loads(doc.read_text(encoding="utf-8")), "the document as asked"


def test_chart_write_failure_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "missing-dir" / "chart.html"
    code = main(["chart", str(BTC), "-o", str(blocked), "--last", "100"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err.startswith(f"error: writing {blocked}")
