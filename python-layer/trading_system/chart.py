"""Charts of an analysis: one standalone HTML page (plotly) with the candlesticks, pens (笔),
segments (线段), pivot boxes (中枢), buy/sell points (买卖点) and a MACD panel.

The page embeds the plotly JavaScript library (about 4.7 MB), so it opens offline and from any
file system: no CDN, no network. The colours below are constants because the headless-browser
test (tests/python/test_chart.py) looks for them in a screenshot to prove the chart was drawn.

>>> from trading_system import analyze
>>> from trading_system.chart import render
>>> from trading_system.data import load_csv
>>> bars = load_csv("tests/data/BTCUSD-BITSTAMP_30m.csv")  # doctest: +SKIP
>>> html = render(bars, analyze(bars, with_macd=True), "BTC/USD 30m")  # doctest: +SKIP
"""

from __future__ import annotations

import html as html_escape
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trading_system.data import Bars
from trading_system.results import Analysis
from trading_system.times import UTC, check_zone, is_daily, wall_ms

INCREASING_COLOR = "#e8152f"
"""Candles closing above their open (red, the Chinese charting convention)."""
DECREASING_COLOR = "#00a05a"
"""Candles closing below their open (green)."""
PEN_COLOR = "#1432ff"
"""Pens (笔), final solid, the last non-final pen and the forming pen dashed."""
SEGMENT_COLOR = "#ff8c00"
"""Segments (线段), thicker; confirmed solid, the non-confirmed tail dashed."""
PIVOT_COLOR = "#8a2be2"
"""Pivot boxes (中枢): confirmed ones filled more strongly with a solid border."""
BUY_COLOR = "#d4007a"
"""Buy points (triangle up under the bar); non-final ones hollow."""
SELL_COLOR = "#007c91"
"""Sell points (triangle down over the bar); non-final ones hollow."""
DIF_COLOR = "#222222"
DEA_COLOR = "#f0b400"
MACD_POSITIVE_COLOR = "#f59aa5"
"""Histogram bars above zero: a lighter red than the candles, so the two are told apart."""
MACD_NEGATIVE_COLOR = "#7fcfa9"
"""Histogram bars below zero."""
PLOT_BACKGROUND = "#f6f3e9"
"""The plotting area (the page itself stays white): tells a drawn chart from an empty page."""

EngineChoice = Literal["rust", "python"]
Floats = npt.NDArray[np.float64]
Line = tuple[tuple[int, float], tuple[int, float]]
"""A line from one ``(bar index, price)`` point to another."""
GAP = 4
"""A pause between bars longer than this many typical bar intervals (a night, a weekend, a
lunch break of intraday bars) is cut out of the time axis."""
MAX_BREAKS = 500
"""More pauses than this are left on the axis: plotly.js slows down with many range breaks
(the last few thousand bars of 1-minute data have a few hundred)."""


def _doc(analysis: Analysis | Mapping[str, Any]) -> Mapping[str, Any]:
    return analysis.to_dict() if isinstance(analysis, Analysis) else analysis


def _series(values: Sequence[float | None], lo: int) -> Floats:
    """A document's MACD series (``null`` where absent) as floats from bar ``lo`` on."""
    return np.array([np.nan if v is None else v for v in values[lo:]], dtype=np.float64)


class _Window:
    """The bars shown (``lo`` to the last) and how structure points map onto them: x is the
    bar's wall-clock time in the series' zone as milliseconds on a date axis (plotly.js knows
    no zones: it draws a number on a date axis as that UTC datetime, so the number given is the
    zone's local time read as UTC; as float64 they travel base64-encoded, a third the size of
    ISO strings), and a line crossing the left edge is cut there by interpolating over bar
    indices, so nothing before the window widens the axes."""

    def __init__(self, bars: Bars, last: int | None, tz: str = UTC) -> None:
        n = len(bars)
        self.lo = 0 if last is None else max(0, n - max(int(last), 1))
        self.n = n
        self.times: Floats = wall_ms(bars.time, tz).astype(np.float64)

    def x(self, index: int) -> float:
        return float(self.times[index])

    def clip(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> Line | None:
        """The part of the line from point ``a`` to point ``b`` inside the window as two
        ``(index, price)`` pairs, or None when it lies wholly before it."""
        ia, ib = int(a["index"]), int(b["index"])
        pa, pb = float(a["price"]), float(b["price"])
        if ib < self.lo or ia >= self.n:
            return None
        if ia < self.lo:
            pa = pa + (pb - pa) * (self.lo - ia) / (ib - ia)
            ia = self.lo
        return (ia, pa), (min(ib, self.n - 1), pb)


def _polyline(w: _Window, lines: Sequence[Line]) -> tuple[Floats, Floats]:
    """Lines as one trace: consecutive lines sharing an end point are drawn as one path, the
    others are separated by a gap (NaN), so thousands of pens stay a single SVG path."""
    xs: list[float] = []
    ys: list[float] = []
    previous: tuple[int, float] | None = None
    for (ia, pa), (ib, pb) in lines:
        if previous != (ia, pa):
            if xs:
                xs.append(xs[-1])
                ys.append(float("nan"))
            xs.append(w.x(ia))
            ys.append(pa)
        xs.append(w.x(ib))
        ys.append(pb)
        previous = (ib, pb)
    return np.array(xs), np.array(ys)


def _lines(w: _Window, items: Sequence[Mapping[str, Any]], keep: bool) -> list[Line]:
    out: list[Line] = []
    for item in items:
        if bool(item.get("final", item.get("confirmed"))) != keep:
            continue
        clipped = w.clip(item["start"], item["end"])
        if clipped is not None:
            out.append(clipped)
    return out


def _add_lines(
    fig: go.Figure,
    w: _Window,
    lines: Sequence[Line],
    name: str,
    color: str,
    width: float,
    dash: str,
) -> None:
    if not lines:
        return
    xs, ys = _polyline(w, lines)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            name=name,
            line={"color": color, "width": width, "dash": dash},
            hoverinfo="x+y+name",
        ),
        row=1,
        col=1,
    )


def _add_pivots(fig: go.Figure, w: _Window, pivots: Sequence[Mapping[str, Any]]) -> None:
    """Pivot boxes ``zd..zg`` over the pivot's span as filled polygons, one trace for the
    confirmed and one for the others (layout shapes would be one DOM object each: slow with
    thousands of pivots)."""
    for confirmed in (True, False):
        xs: list[float] = []
        ys: list[float] = []
        for z in pivots:
            if bool(z["confirmed"]) != confirmed:
                continue
            i0, i1 = int(z["start"]["index"]), int(z["end"]["index"])
            if i1 < w.lo or i0 >= w.n:
                continue
            x0, x1 = w.x(max(i0, w.lo)), w.x(min(i1, w.n - 1))
            zd, zg = float(z["zd"]), float(z["zg"])
            xs += [x0, x1, x1, x0, x0, x0]
            ys += [zd, zd, zg, zg, zd, float("nan")]
        if not xs:
            continue
        fig.add_trace(
            go.Scatter(
                x=np.array(xs),
                y=np.array(ys),
                mode="lines",
                fill="toself",
                fillcolor=_rgba(PIVOT_COLOR, 0.22 if confirmed else 0.08),
                line={"color": PIVOT_COLOR, "width": 1.5, "dash": "solid" if confirmed else "dot"},
                name="pivots" if confirmed else "pivots, not confirmed",
                hoverinfo="skip",
            ),
            row=1,
            col=1,
        )


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _add_signals(
    fig: go.Figure, w: _Window, bars: Bars, signals: Sequence[Mapping[str, Any]]
) -> None:
    """Buy points as triangles up under the bar's low, sell points as triangles down over its
    high, labelled ``B1``..``S3``; points that may still change are hollow."""
    lo = w.lo
    span = float(bars.high[lo:].max() - bars.low[lo:].min()) if w.n > lo else 0.0
    offset = 0.02 * span
    for side, color in (("buy", BUY_COLOR), ("sell", SELL_COLOR)):
        chosen = [g for g in signals if g["side"] == side and lo <= int(g["index"]) < w.n]
        if not chosen:
            continue
        index = [int(g["index"]) for g in chosen]
        if side == "buy":
            y = bars.low[index] - offset
            shape, position, letter = "triangle-up", "bottom center", "B"
        else:
            y = bars.high[index] + offset
            shape, position, letter = "triangle-down", "top center", "S"
        fig.add_trace(
            go.Scatter(
                x=w.times[index],
                y=y,
                mode="markers+text",
                name=f"{side} points",
                text=[f"{letter}{g['type']}" for g in chosen],
                textposition=position,
                textfont={"color": color, "size": 11},
                marker={
                    "symbol": [shape if g["final"] else f"{shape}-open" for g in chosen],
                    "size": 12,
                    "color": color,
                    "line": {"color": color, "width": 1.5},
                },
                hovertext=[
                    f"{side} type {g['type']} at {g['price']}"
                    + ("" if g["final"] else " (may change)")
                    for g in chosen
                ],
                hoverinfo="x+text",
            ),
            row=1,
            col=1,
        )


def _breaks(times: Floats) -> list[dict[str, list[float] | float]]:
    """Range breaks for the pauses between bars: without them, 1-minute bars of a market open
    four hours a day would fill a sixth of the chart, squeezed between empty nights. Each pause
    keeps one typical interval, so candles stay evenly spaced across it."""
    if len(times) < 3:
        return []
    step = np.diff(times)
    typical = float(np.median(step))
    if typical <= 0:
        return []
    where = np.flatnonzero(step > GAP * typical)
    if len(where) == 0 or len(where) > MAX_BREAKS:
        return []
    start = times[where] + typical
    return [
        {"values": [float(s)], "dvalue": float(times[i + 1] - s)}
        for i, s in zip(where.tolist(), start.tolist(), strict=True)
    ]


def _macd(
    bars: Bars, doc: Mapping[str, Any], engine: EngineChoice
) -> Mapping[str, Sequence[float | None]]:
    """The document's MACD, or the same analysis run again with the MACD series when the
    document was made without it (same configuration, so the same periods and seed)."""
    macd = doc.get("macd")
    if macd is not None:
        return macd
    from trading_system.api import analyze

    config = doc.get("config")
    again = analyze(bars, config=config, engine=engine, with_macd=True)
    return again.to_dict()["macd"]


def series_zone(bars: Bars, analysis: Analysis | Mapping[str, Any], tz: str | None = None) -> str:
    """The zone a chart shows: ``tz`` when given, else the analysis's, else the bars', else
    UTC."""
    if tz is not None:
        return check_zone(tz)
    if isinstance(analysis, Analysis):
        return analysis.tz
    return check_zone(getattr(bars, "tz", UTC))


def _hover_format(wall: Floats, daily: bool) -> str:
    if daily:
        return "%Y-%m-%d"
    if len(wall) and bool(np.any(wall % 60_000 != 0)):
        return "%Y-%m-%d %H:%M:%S"
    return "%Y-%m-%d %H:%M"


def figure(
    bars: Bars,
    analysis: Analysis | Mapping[str, Any],
    title: str,
    last: int | None = None,
    engine: EngineChoice = "rust",
    tz: str | None = None,
) -> go.Figure:
    """The chart as a plotly figure (what :func:`render` writes out): price panel above, MACD
    panel below, x the bars' times in the series' zone (:func:`series_zone`; a daily series
    shows dates), only the last ``last`` bars when given. Legend names are English only: a
    browser without CJK fonts would show boxes for 笔/线段/中枢."""
    doc = _doc(analysis)
    zone = series_zone(bars, analysis, tz)
    w = _Window(bars, last, zone)
    lo = w.lo
    x = w.times[lo:]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.75, 0.25],
        vertical_spacing=0.03,
    )
    fig.add_trace(
        go.Candlestick(
            x=x,
            open=bars.open[lo:],
            high=bars.high[lo:],
            low=bars.low[lo:],
            close=bars.close[lo:],
            name="bars",
            increasing={"line": {"color": INCREASING_COLOR}, "fillcolor": INCREASING_COLOR},
            decreasing={"line": {"color": DECREASING_COLOR}, "fillcolor": DECREASING_COLOR},
        ),
        row=1,
        col=1,
    )
    _add_pivots(fig, w, doc.get("pivots", []))
    segments = doc.get("segments", [])
    _add_lines(fig, w, _lines(w, segments, True), "segments", SEGMENT_COLOR, 4, "solid")
    _add_lines(
        fig, w, _lines(w, segments, False), "segments, not confirmed", SEGMENT_COLOR, 4, "dash"
    )
    pens = doc.get("pens", [])
    _add_lines(fig, w, _lines(w, pens, True), "pens", PEN_COLOR, 2, "solid")
    open_pens = _lines(w, pens, False)
    forming = doc.get("forming_pen")
    if forming is not None:
        clipped = w.clip(forming["start"], forming["end"])
        if clipped is not None:
            open_pens.append(clipped)
    _add_lines(fig, w, open_pens, "pens, not final / forming", PEN_COLOR, 2, "dash")
    _add_signals(fig, w, bars, doc.get("signals", []))

    macd = _macd(bars, doc, engine) if len(bars) else {"dif": [], "dea": [], "histogram": []}
    hist = _series(macd["histogram"], lo)
    for positive, color in ((True, MACD_POSITIVE_COLOR), (False, MACD_NEGATIVE_COLOR)):
        keep = hist >= 0 if positive else hist < 0
        fig.add_trace(
            go.Bar(
                x=x,
                y=np.where(keep, hist, np.nan),
                marker={"color": color, "line": {"width": 0}},
                name="MACD histogram" if positive else "MACD histogram < 0",
                showlegend=positive,
            ),
            row=2,
            col=1,
        )
    for key, name, color in (("dif", "DIF", DIF_COLOR), ("dea", "DEA", DEA_COLOR)):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_series(macd[key], lo),
                mode="lines",
                name=name,
                line={"color": color, "width": 1.2},
            ),
            row=2,
            col=1,
        )
    fig.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        plot_bgcolor=PLOT_BACKGROUND,
        bargap=0,
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0.3},
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    # The range slider would draw every candle a second time: slow on big files, little use.
    # Tooltips say the time to the minute (the second for sub-minute bars) or, for a daily
    # series, the date; tick labels are plotly's own choice of unit, read in the zone too.
    daily = is_daily(bars.time[lo:], zone)
    fig.update_xaxes(
        rangeslider_visible=False,
        type="date",
        rangebreaks=_breaks(w.times[lo:]),
        hoverformat=_hover_format(w.times[lo:], daily),
    )
    if daily:
        fig.update_xaxes(tickformat="%Y-%m-%d")
    fig.update_xaxes(title_text=f"time ({zone})", row=2, col=1)
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="MACD", row=2, col=1)
    return fig


def render(
    bars: Bars,
    analysis: Analysis | Mapping[str, Any],
    title: str,
    last: int | None = None,
    engine: EngineChoice = "rust",
    tz: str | None = None,
) -> str:
    """The chart as one standalone HTML page with the plotly library inline (it works offline).

    ``analysis``: the analysis of ``bars`` (an :class:`Analysis` or its document); without its
    MACD series the analysis is run again on ``engine`` with ``with_macd``. ``last``: show only
    the last N bars (structures cut at the window's edge): a browser draws some 10,000 candles
    comfortably, not hundreds of thousands. ``tz``: the zone of the time axis and tooltips
    (default: the analysis's, :func:`series_zone`)."""
    fig = figure(bars, analysis, title, last, engine, tz)
    page: str = fig.to_html(
        include_plotlyjs=True,
        full_html=True,
        config={"displaylogo": False, "responsive": True, "scrollZoom": True},
        default_width="100%",
        default_height="100vh",
    )
    # A page title, and no body margin: the 100vh-high chart then fits without a scroll bar.
    charset = '<meta charset="utf-8" />'
    head = (
        f"{charset}<title>{html_escape.escape(title)}</title>"
        "<style>body { margin: 0; overflow: hidden; }</style>"
    )
    return page.replace(charset, head, 1)
