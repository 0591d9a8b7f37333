"""Charts (trading_system.chart, ``trading-system chart``, ``analyze --chart``): the page works
offline, a real browser (headless Chromium) draws it, and a page whose script is removed fails
the same pixel check, so the check can fail."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from png_decode import count_colour, read_png

from trading_system import analyze, chart
from trading_system.cli import main
from trading_system.data import load_csv

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
BTC = DATA / "BTCUSD-BITSTAMP_30m.csv"
SH = DATA / "000001.SH_1d_head1200.csv"
BROWSER_TIMEOUT_S = 180
"""A guard against a hung browser only: nothing here measures time."""

# Pixels (per-channel tolerance 10) a 1400x1000 screenshot of the BTC chart must show: the full
# chart shows several times more of each (about 2,800 increasing and 4,500 decreasing candle
# pixels, 7,000 of pens, 830,000 of plot background).
EXPECTED = {
    "increasing candles": (chart.INCREASING_COLOR, 1000),
    "decreasing candles": (chart.DECREASING_COLOR, 1000),
    "pens": (chart.PEN_COLOR, 2000),
    "segments": (chart.SEGMENT_COLOR, 2000),
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


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "chromium is not installed: scripts/setup.sh installs it "
            "(apt-get install chromium), the chart tests need a real browser"
        )
    return found


def screenshot(page: str, tmp_path: Path, name: str) -> np.ndarray:
    """``page`` as headless Chromium draws it in a 1400x1000 window, as RGB pixels."""
    html = tmp_path / f"{name}.html"
    html.write_text(page, encoding="utf-8")
    png = tmp_path / f"{name}.png"
    argv = [
        chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        "--window-size=1400,1000",
        "--virtual-time-budget=20000",
        f"--user-data-dir={tmp_path / f'{name}-profile'}",
        f"--screenshot={png}",
        html.as_uri(),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
    assert done.returncode == 0 and png.exists(), f"chromium failed:\n{done.stderr[-3000:]}"
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
    buy = t["buy points"]
    labels = {f"B{g.type}" for g in a.signals if g.side == "buy"}
    assert set(buy["text"]) == labels
    hollow = [s.endswith("-open") for s in buy["marker"]["symbol"]]
    assert hollow == [not g.final for g in a.signals if g.side == "buy"]


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
