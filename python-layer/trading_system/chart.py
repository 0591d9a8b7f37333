"""Charts of an analysis: one standalone HTML page (plotly) with the candlesticks, pens (笔),
segments (线段), pivot boxes (中枢), buy/sell points (买卖点), the same for every higher degree
(级别, segments of segments: thicker, one colour per degree, toggled from the legend) and a
MACD panel.

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
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trading_system.data import Bars
from trading_system.results import Analysis, point_label
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
DEGREE_COLORS = {2: "#8b4513", 3: "#2f6f6f", 4: "#4b3b8f"}
"""Higher degrees (级别 2..4, §13: segments of segments): their segments, pivot boxes, point
markers and labels in one colour per degree (brown, dark cyan, slate blue), none of them close
to a degree-1 colour, so a screenshot tells each degree apart."""
SEGMENT_WIDTH = 4
"""Degree-1 segments; degree n is drawn ``2 * (n - 1)`` pixels thicker (and underneath)."""
LABEL_FONT_SIZE = 11
LABEL_CHAR_PX = 7.5
"""Width of one label character at ``LABEL_FONT_SIZE`` in the fonts a browser falls back to
(DejaVu Sans is the widest of them), rounded up: the placement must not underestimate a box."""
LABEL_HEIGHT_PX = 15.0
LABEL_GAP_PX = 2.0
"""Space kept between a marker and its label and between stacked labels."""
PLACEMENT_WIDTH_PX = 1000.0
PLACEMENT_HEIGHT_PX = 250.0
"""The price panel's size the label placement assumes: smaller than on a 1366x768 laptop screen
or the 1400x1000 test window, so a real panel, being larger, only spreads the labels apart."""

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
    legend: Mapping[str, Any] | None = None,
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
            **(legend or {}),
        ),
        row=1,
        col=1,
    )


def _add_pivots(
    fig: go.Figure,
    w: _Window,
    pivots: Sequence[Mapping[str, Any]],
    color: str = PIVOT_COLOR,
    name: str = "pivots",
    degree: int = 1,
) -> None:
    """Pivot boxes ``zd..zg`` over the pivot's span as filled polygons, one trace for the
    confirmed and one for the others (layout shapes would be one DOM object each: slow with
    thousands of pivots). A higher degree's boxes span many degree-1 ones: fainter fill, a
    thicker border, so the boxes inside stay readable."""
    fill = (0.22, 0.08) if degree == 1 else (0.10, 0.04)
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
                fillcolor=_rgba(color, fill[0] if confirmed else fill[1]),
                line={
                    "color": color,
                    "width": 1.5 if degree == 1 else 2.5,
                    "dash": "solid" if confirmed else "dot",
                },
                name=name if confirmed else f"{name}, not confirmed",
                hoverinfo="skip",
                **_legend(degree),
            ),
            row=1,
            col=1,
        )


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def degree_color(degree: int) -> str:
    """The colour of a higher degree's segments, pivots and points (degree 1 has its own
    colours per kind: ``SEGMENT_COLOR``, ``PIVOT_COLOR``, ``BUY_COLOR``, ``SELL_COLOR``)."""
    return DEGREE_COLORS[degree]


def _legend(degree: int) -> dict[str, Any]:
    """A higher degree's traces share one legend group: a click on any of its entries shows or
    hides the whole degree (``legend.groupclick`` "togglegroup"); degree-1 traces keep their
    own entries, each toggled alone, as they always were."""
    if degree == 1:
        return {}
    return {"legendgroup": f"degree {degree}"}


def _add_degree(fig: go.Figure, w: _Window, level: Mapping[str, Any]) -> None:
    """A higher degree's (§13) pivots and segments: the segments thicker than the degree below,
    confirmed solid and the rest dashed, as at degree 1."""
    n = int(level["degree"])
    color = degree_color(n)
    _add_pivots(fig, w, level.get("pivots", []), color, f"degree {n} pivots", n)
    segments = level.get("segments", [])
    width = SEGMENT_WIDTH + 2 * (n - 1)
    name = f"degree {n} segments"
    legend = _legend(n)
    _add_lines(fig, w, _lines(w, segments, True), name, color, width, "solid", legend)
    _add_lines(
        fig, w, _lines(w, segments, False), f"{name}, not confirmed", color, width, "dash", legend
    )


@dataclass(frozen=True)
class LabelBox:
    """A point label's box in the price panel the placement assumes (``PLACEMENT_WIDTH_PX`` by
    ``PLACEMENT_HEIGHT_PX``, y upward), in pixels."""

    text: str
    left: float
    bottom: float
    right: float
    top: float

    def overlaps(self, other: LabelBox) -> bool:
        return (
            self.left < other.right
            and other.left < self.right
            and self.bottom < other.top
            and other.bottom < self.top
        )


@dataclass(frozen=True)
class _Anchor:
    """A point's marker in the assumed panel: centre ``x``, ``y`` and size in pixels, and
    whether its label goes under it (a buy point) or over it (a sell point)."""

    text: str
    x: float
    y: float
    size: float
    below: bool


def _marker_box(a: _Anchor) -> LabelBox:
    half = a.size / 2
    return LabelBox("", a.x - half, a.y - half, a.x + half, a.y + half)


BUCKET_PX = 100.0
"""Placed boxes are looked up by 100-pixel column, so placement stays near-linear in the
number of points."""


def place_labels(anchors: Sequence[_Anchor]) -> list[LabelBox]:
    """Label boxes that overlap no other label and no marker: in order of x (lower degrees
    first at the same bar, as given), each label goes right under its marker (buy) or over it
    (sell), or, when that box hits a placed label or any marker, just past what it hits, and so
    on until it hits nothing: labels that would collide stack outward from the bar."""
    placed: dict[int, list[LabelBox]] = {}

    def columns(box: LabelBox) -> range:
        return range(int(box.left // BUCKET_PX), int(box.right // BUCKET_PX) + 1)

    def put(box: LabelBox) -> None:
        for c in columns(box):
            placed.setdefault(c, []).append(box)

    def hits(box: LabelBox) -> list[LabelBox]:
        return [o for c in columns(box) for o in placed.get(c, ()) if box.overlaps(o)]

    for a in anchors:
        put(_marker_box(a))
    out: list[LabelBox | None] = [None] * len(anchors)
    for i in sorted(range(len(anchors)), key=lambda i: anchors[i].x):
        a = anchors[i]
        half = (len(a.text) * LABEL_CHAR_PX + 4) / 2
        # The near edge's distance from the marker's centre: beside the marker, then past
        # whatever the box hits, until it hits nothing (it only moves outward, so it ends).
        near = a.size / 2 + LABEL_GAP_PX
        while True:
            far = near + LABEL_HEIGHT_PX
            bottom, top = (a.y - far, a.y - near) if a.below else (a.y + near, a.y + far)
            box = LabelBox(a.text, a.x - half, bottom, a.x + half, top)
            hit = hits(box)
            if not hit:
                break
            if a.below:
                near = a.y - min(o.bottom for o in hit) + LABEL_GAP_PX
            else:
                near = max(o.top for o in hit) - a.y + LABEL_GAP_PX
        put(box)
        out[i] = box
    return [b for b in out if b is not None]


@dataclass(frozen=True)
class _Point:
    degree: int
    item: Mapping[str, Any]
    index: int
    marker_y: float
    text: str

    @property
    def buy(self) -> bool:
        return self.item["side"] == "buy"


@dataclass(frozen=True)
class PlacedLabel:
    """A buy/sell point as drawn: its degree, the document's item, the marker's price, the
    label's text, the label's centre as a price, and the label's and the marker's boxes in the
    assumed panel."""

    degree: int
    item: Mapping[str, Any]
    marker_y: float
    text: str
    label_y: float
    box: LabelBox
    marker: LabelBox


def _axis_position(times: Floats, breaks: Sequence[Mapping[str, Any]]) -> Floats:
    """Where x lands on the axis once the range breaks are cut out: the time less the length
    of every break before it."""
    if not breaks:
        return times
    starts = np.array([float(b["values"][0]) for b in breaks])
    cut = np.cumsum([float(b["dvalue"]) for b in breaks])
    k = np.searchsorted(starts, times, side="right")
    return times - np.where(k > 0, cut[np.maximum(k - 1, 0)], 0.0)


def _marker_size(degree: int) -> float:
    """A higher degree's marker is larger and drawn under degree 1's: a point of both degrees
    at one bar shows as a small triangle inside a larger one."""
    return 12.0 if degree == 1 else 18.0


def _place(
    w: _Window, bars: Bars, levels: Sequence[tuple[int, Sequence[Mapping[str, Any]]]]
) -> list[PlacedLabel]:
    lo = w.lo
    if w.n <= lo:
        return []
    low, high = float(bars.low[lo:].min()), float(bars.high[lo:].max())
    offset = 0.02 * (high - low)
    points: list[_Point] = []
    for degree, signals in levels:
        for g in signals:
            i = int(g["index"])
            if not lo <= i < w.n:
                continue
            y = bars.low[i] - offset if g["side"] == "buy" else bars.high[i] + offset
            points.append(_Point(degree, g, i, float(y), point_label(degree, g["side"], g["type"])))
    if not points:
        return []
    # Lower degrees first: at one bar, degree 1's label sits next to the marker.
    points.sort(key=lambda p: (p.index, p.degree))
    pos = _axis_position(w.times[lo:], _breaks(w.times[lo:]))
    span_x = float(pos[-1] - pos[0]) or 1.0
    x = [(float(pos[p.index - lo]) - float(pos[0])) * PLACEMENT_WIDTH_PX / span_x for p in points]
    # The labels widen the price range plotly shows, which packs the pixels per price tighter:
    # placed again on the range they make until it settles.
    y_lo = min(low, *(p.marker_y for p in points))
    y_hi = max(high, *(p.marker_y for p in points))
    boxes: list[LabelBox] = []
    anchors: list[_Anchor] = []
    scale = 1.0
    for _ in range(6):
        scale = PLACEMENT_HEIGHT_PX / ((y_hi - y_lo) or 1.0)
        anchors = [
            _Anchor(p.text, xp, (p.marker_y - y_lo) * scale, _marker_size(p.degree), p.buy)
            for p, xp in zip(points, x, strict=True)
        ]
        boxes = place_labels(anchors)
        new_lo = min(y_lo, y_lo + min(b.bottom for b in boxes) / scale)
        new_hi = max(y_hi, y_lo + max(b.top for b in boxes) / scale)
        if new_lo == y_lo and new_hi == y_hi:
            break
        y_lo, y_hi = new_lo, new_hi
    return [
        PlacedLabel(
            p.degree, p.item, p.marker_y, p.text, y_lo + (b.bottom + b.top) / 2 / scale, b, m
        )
        for p, b, m in zip(points, boxes, map(_marker_box, anchors), strict=True)
    ]


def label_boxes(
    bars: Bars,
    analysis: Analysis | Mapping[str, Any],
    last: int | None = None,
    tz: str | None = None,
) -> list[PlacedLabel]:
    """The buy/sell points of every degree as :func:`figure` draws them, with their label
    boxes: no two boxes overlap, nor a box and a marker."""
    doc = _doc(analysis)
    w = _Window(bars, last, series_zone(bars, analysis, tz))
    return _place(w, bars, _levels(doc))


def _levels(doc: Mapping[str, Any]) -> list[tuple[int, Sequence[Mapping[str, Any]]]]:
    return [(1, doc.get("signals", []))] + [
        (int(d["degree"]), d.get("signals", [])) for d in doc.get("degrees", [])
    ]


LEGEND_ORDER = (
    "bars",
    "pens",
    "pens, not final / forming",
    "segments",
    "segments, not confirmed",
    "pivots",
    "pivots, not confirmed",
    "buy points",
    "sell points",
)
"""The price panel's legend entries of degree 1, in order; each higher degree follows with its
segments, pivots and points under the same names prefixed ``degree n``, then the MACD panel's."""
LEGEND_ENTRY_WIDTH = 0.21
"""The width of a legend column as a share of the plot's: four columns right of the title, each
wide enough for the longest entry, ``degree 2 segments, not confirmed``, on a 1366-pixel
screen."""


def legend_order(degrees: Sequence[int]) -> list[str]:
    """The legend's entries (trace names) in the order shown."""
    return list(LEGEND_ORDER) + [f"degree {n} {name}" for n in degrees for name in LEGEND_ORDER[3:]]


HOVER_SKIP = ("side", "type", "price", "final", "index", "time")
"""Fields the first hover line already says; every other field of a point is listed as is."""


def _hover(degree: int, g: Mapping[str, Any]) -> str:
    head = f"{g['side']} point type {g['type']}" + ("" if degree == 1 else f", degree {degree}")
    head += f" at {g['price']}" + ("" if g.get("final", True) else " (may change)")
    extra = [
        f"{html_escape.escape(str(k))}: "
        + html_escape.escape(v if isinstance(v, str) else json.dumps(v))
        for k, v in g.items()
        if k not in HOVER_SKIP
    ]
    return "<br>".join([head, *extra])


def _add_points(fig: go.Figure, w: _Window, placed: Sequence[PlacedLabel]) -> None:
    """Buy points as triangles up under the bar's low, sell points as triangles down over its
    high, each labelled by a text trace at its placed box (``B1``..``S3``, ``D2 B1`` ...);
    points that may still change are hollow. Higher degrees first, so degree 1 is on top."""
    for degree in sorted({p.degree for p in placed}, reverse=True):
        for side in ("buy", "sell"):
            chosen = [p for p in placed if p.degree == degree and p.item["side"] == side]
            if not chosen:
                continue
            if degree == 1:
                color = BUY_COLOR if side == "buy" else SELL_COLOR
                name = f"{side} points"
                legend: dict[str, Any] = {"legendgroup": name}
            else:
                color = degree_color(degree)
                name = f"degree {degree} {side} points"
                legend = _legend(degree)
            shape = "triangle-up" if side == "buy" else "triangle-down"
            x = w.times[[int(p.item["index"]) for p in chosen]]
            hover = [_hover(degree, p.item) for p in chosen]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=np.array([p.marker_y for p in chosen]),
                    mode="markers",
                    name=name,
                    marker={
                        "symbol": [
                            shape if p.item.get("final", True) else f"{shape}-open" for p in chosen
                        ],
                        "size": _marker_size(degree),
                        "color": color,
                        "line": {"color": color, "width": 1.5 if degree == 1 else 2.5},
                    },
                    hovertext=hover,
                    hoverinfo="x+text",
                    **legend,
                ),
                row=1,
                col=1,
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=np.array([p.label_y for p in chosen]),
                    mode="text",
                    name=f"{name} labels",
                    showlegend=False,
                    text=[p.text for p in chosen],
                    textposition="middle center",
                    textfont={"color": color, "size": LABEL_FONT_SIZE},
                    hovertext=hover,
                    hoverinfo="x+text",
                    **legend,
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
    # The highest degree first: each lower degree is drawn over the one above it.
    for level in sorted(doc.get("degrees", []), key=lambda d: -int(d["degree"])):
        _add_degree(fig, w, level)
    _add_pivots(fig, w, doc.get("pivots", []))
    segments = doc.get("segments", [])
    width = SEGMENT_WIDTH
    _add_lines(fig, w, _lines(w, segments, True), "segments", SEGMENT_COLOR, width, "solid")
    _add_lines(
        fig, w, _lines(w, segments, False), "segments, not confirmed", SEGMENT_COLOR, width, "dash"
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
    _add_points(fig, w, _place(w, bars, _levels(doc)))
    degrees = [int(d["degree"]) for d in doc.get("degrees", [])]
    for rank, name in enumerate(legend_order(degrees), start=1):
        fig.update_traces(legendrank=rank, selector={"name": name})

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
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.01,
            "x": 0.12,
            # Entries in rows of equal columns, in the order of LEGEND_ORDER (a grouped legend
            # would stack each group in a column of its own, a third of the page high).
            "traceorder": "normal",
            "entrywidth": LEGEND_ENTRY_WIDTH,
            "entrywidthmode": "fraction",
            "groupclick": "togglegroup",
        },
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
