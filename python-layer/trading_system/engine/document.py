"""The analysis document (§12.6) and the incremental update document (§12.7): plain dicts with
the JSON shape both engines produce, typed here entry by entry (:class:`AnalysisDoc`,
:class:`UpdateDoc`). Keys are written in the contract's order: the JSON text is the Rust
engine's byte for byte."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from trading_system.engine.segment import LevelStrokes
from trading_system.engine.signal import ieee_div
from trading_system.engine.timestamp import format_ms

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trading_system.engine.analysis import Engine, LevelMark, LevelTail, Tail
    from trading_system.engine.fractal import Fractal
    from trading_system.engine.kline import Repair
    from trading_system.engine.pen import Pen
    from trading_system.engine.pivot import Pivot
    from trading_system.engine.segment import PenLike, SegmentSpan
    from trading_system.engine.signal import Signal

Direction = Literal["up", "down"]


class PointDoc(TypedDict):
    """A pen's end point: its extreme raw bar, that bar's time and the fractal's price."""

    index: int
    time: str
    price: float


class FractalDoc(TypedDict):
    """A fractal (分型): top (顶分型) or bottom (底分型) at merged bar ``merged_index``."""

    kind: Literal["top", "bottom"]
    merged_index: int
    index: int
    time: str
    price: float


class PenDoc(TypedDict):
    """A pen (笔); ``final`` is absent for the forming pen."""

    direction: Direction
    start: PointDoc
    end: PointDoc
    final: NotRequired[bool]


class SegmentDoc(TypedDict):
    """A segment (线段) of pens ``first_pen..=last_pen`` (strokes at higher degrees)."""

    direction: Direction
    start: PointDoc
    end: PointDoc
    first_pen: int
    last_pen: int
    confirmed: bool
    gap: bool


class PivotDoc(TypedDict):
    """A pivot (中枢) of segment ``segment``: edges ``zd``/``zg``, extremes ``dd``/``gg``."""

    segment: int
    first_pen: int
    last_pen: int
    zd: float
    zg: float
    dd: float
    gg: float
    start: PointDoc
    end: PointDoc
    confirmed: bool


class SignalDoc(TypedDict):
    """A buy/sell point (买卖点) of type ``"1"``, ``"2"`` or ``"3"`` at the end of pen ``pen``,
    with what it was derived from (§12.5): ``pivot`` (index in the same degree's ``pivots``) and
    its ``zd``/``zg``; type 1 the strengths compared and ``ratio`` = leaving / entering (``None``
    otherwise, or when not a finite number); type 2 the pen of the type-1 point it ``follows``;
    type 3 the pivot ``edge`` its leaving pen cleared."""

    type: str
    side: Literal["buy", "sell"]
    pen: int
    index: int
    time: str
    price: float
    final: bool
    pivot: int
    zd: float
    zg: float
    entering_strength: float | None
    leaving_strength: float | None
    ratio: float | None
    follows: int | None
    edge: Literal["zd", "zg"] | None


class DegreeDoc(TypedDict):
    """Degree n ≥ 2 (§13, 线段的线段): its segments, pivots and points, items shaped as at
    degree 1; ``first_pen``, ``last_pen`` and ``pen`` index its strokes (the degree-(n−1)
    segments)."""

    degree: int
    segments: list[SegmentDoc]
    pivots: list[PivotDoc]
    signals: list[SignalDoc]


class RepairDoc(TypedDict):
    """A high/low repair made under ``validation.repair``."""

    index: int
    old_high: float
    old_low: float
    new_high: float
    new_low: float


class MacdDoc(TypedDict):
    """MACD per raw bar; ``None`` where a value is absent (before the TA-Lib lookback)."""

    dif: list[float | None]
    dea: list[float | None]
    histogram: list[float | None]


class AnalysisDoc(TypedDict):
    """The analysis document (§12.6). ``macd`` is present only when asked for; ``config`` is the
    engine configuration as :meth:`EngineConfig.to_dict` writes it."""

    bars: int
    merged_bars: int
    fractals: list[FractalDoc]
    pens: list[PenDoc]
    forming_pen: PenDoc | None
    segments: list[SegmentDoc]
    pivots: list[PivotDoc]
    signals: list[SignalDoc]
    degrees: list[DegreeDoc]
    macd: NotRequired[MacdDoc]
    repairs: list[RepairDoc]
    config: dict[str, Any]


class AnalysisHead(TypedDict):
    """The keys of :class:`AnalysisDoc` before ``macd``, in the document's order (built first,
    then ``macd`` when asked for, then the rest: the key order is the JSON text's)."""

    bars: int
    merged_bars: int
    fractals: list[FractalDoc]
    pens: list[PenDoc]
    forming_pen: PenDoc | None
    segments: list[SegmentDoc]
    pivots: list[PivotDoc]
    signals: list[SignalDoc]
    degrees: list[DegreeDoc]


class MacdValues(TypedDict):
    """The MACD of one bar (``None`` when absent)."""

    dif: float | None
    dea: float | None
    histogram: float | None


# One grown list of the update document: truncate to ``from`` items, then append ``items``.
# ("from" is a keyword, so these take the functional form.)
FractalsChange = TypedDict("FractalsChange", {"from": int, "items": list[FractalDoc]})
PensChange = TypedDict("PensChange", {"from": int, "items": list[PenDoc]})
SegmentsChange = TypedDict("SegmentsChange", {"from": int, "items": list[SegmentDoc]})
PivotsChange = TypedDict("PivotsChange", {"from": int, "items": list[PivotDoc]})
SignalsChange = TypedDict("SignalsChange", {"from": int, "items": list[SignalDoc]})


class TailDoc(TypedDict):
    """The non-final tail: segments not confirmed, their pivots and points."""

    segments: list[SegmentDoc]
    pivots: list[PivotDoc]
    signals: list[SignalDoc]


class UpdateDoc(TypedDict):
    """The update document (§12.7) of one appended or replaced bar."""

    index: int
    replaced: bool
    repaired: bool
    bars: int
    merged_bars: int
    macd: MacdValues
    fractals: FractalsChange
    pens: PensChange
    segments: SegmentsChange
    pivots: PivotsChange
    signals: SignalsChange
    last_pen: PenDoc | None
    forming_pen: PenDoc | None
    tail: TailDoc | None
    degrees: list[DegreeUpdateDoc]


class DegreeUpdateDoc(TypedDict):
    """What one bar changed at a higher degree (§13): its lists spliced and its tail replaced
    as degree 1's are."""

    degree: int
    segments: SegmentsChange
    pivots: PivotsChange
    signals: SignalsChange
    tail: TailDoc | None


Counts = tuple[int, int, int, int, int]
"""How many fractals, final pens, segments, pivots and points there were before a bar: where
the update document's lists start (``from``)."""


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


def _finite(x: float) -> float | None:
    """A strength or ratio as the document shows it: ``None`` unless a finite number (§12.5)."""
    return x if math.isfinite(x) else None


def _opts(xs: Iterable[float]) -> list[float | None]:
    return [_opt(x) for x in xs]


class Renderer:
    """Turns the engine's items into document entries; ``pens`` are the strokes the items index
    (the pens at degree 1)."""

    __slots__ = ("times", "pens")

    def __init__(self, e: Engine, pens: Sequence[PenLike] | None = None) -> None:
        self.times = e.times
        self.pens: Sequence[PenLike] = e.pens.pens if pens is None else pens

    def point(self, f: Fractal) -> PointDoc:
        return {"index": f.index, "time": format_ms(self.times[f.index]), "price": f.price}

    def fractal(self, f: Fractal) -> FractalDoc:
        return {
            "kind": "top" if f.top else "bottom",
            "merged_index": f.merged,
            "index": f.index,
            "time": format_ms(self.times[f.index]),
            "price": f.price,
        }

    def pen(self, p: Pen, final: bool | None) -> PenDoc:
        d: PenDoc = {
            "direction": "up" if p.up else "down",
            "start": self.point(p.start),
            "end": self.point(p.end),
        }
        if final is not None:
            d["final"] = final
        return d

    def segment(self, s: SegmentSpan, confirmed: bool) -> SegmentDoc:
        pens = self.pens
        return {
            "direction": "up" if s.up else "down",
            "start": self.point(pens[s.first_pen].start),
            "end": self.point(pens[s.last_pen].end),
            "first_pen": s.first_pen,
            "last_pen": s.last_pen,
            "confirmed": confirmed,
            "gap": s.gap,
        }

    def pivot(self, z: Pivot, confirmed: bool) -> PivotDoc:
        pens = self.pens
        return {
            "segment": z.segment,
            "first_pen": z.first_pen,
            "last_pen": z.last_pen,
            "zd": z.zd,
            "zg": z.zg,
            "dd": z.dd,
            "gg": z.gg,
            "start": self.point(pens[z.first_pen].start),
            "end": self.point(pens[z.last_pen].end),
            "confirmed": confirmed,
        }

    def signal(self, s: Signal, pivots: Sequence[Pivot], offset: int = 0) -> SignalDoc:
        """A point whose pivot is ``pivots[s.pivot]``, shown at index ``offset + s.pivot`` of
        the document's pivots (``offset``: the final pivots before a tail's)."""
        end = self.pens[s.pen].end
        z = pivots[s.pivot]
        one = s.kind == 1
        return {
            "type": str(s.kind),
            "side": "buy" if s.buy else "sell",
            "pen": s.pen,
            "index": end.index,
            "time": format_ms(self.times[end.index]),
            "price": end.price,
            "final": s.final,
            "pivot": offset + s.pivot,
            "zd": z.zd,
            "zg": z.zg,
            "entering_strength": _finite(s.entering) if one else None,
            "leaving_strength": _finite(s.leaving) if one else None,
            "ratio": _finite(ieee_div(s.leaving, s.entering)) if one else None,
            "follows": s.pen - 2 if s.kind == 2 else None,
            "edge": ("zg" if s.buy else "zd") if s.kind == 3 else None,
        }

    def final_pivot(self, segments: list[SegmentSpan], z: Pivot) -> PivotDoc:
        return self.pivot(z, segments[z.segment].confirmed)

    def tail(self, t: Tail | LevelTail, finals: int) -> TailDoc:
        """The tail, after ``finals`` final pivots."""
        return {
            "segments": [self.segment(s, False) for s in t.segments],
            "pivots": [self.pivot(z, False) for z in t.pivots],
            "signals": [self.signal(s, t.pivots, finals) for s in t.signals],
        }


def _repair(r: Repair) -> RepairDoc:
    return {
        "index": r.index,
        "old_high": r.old_high,
        "old_low": r.old_low,
        "new_high": r.new_high,
        "new_low": r.new_low,
    }


def _degrees(e: Engine, t: Tail) -> list[DegreeDoc]:
    """Degrees 2.. (§12.6): each one's settled items, then its tail."""
    out: list[DegreeDoc] = []
    for n, (lv, lt) in enumerate(zip(e.levels, t.higher, strict=True), start=2):
        r = Renderer(e, lv.strokes + lt.strokes)
        out.append(
            {
                "degree": n,
                "segments": [r.segment(s, s.confirmed) for s in lv.segments]
                + [r.segment(s, False) for s in lt.segments],
                "pivots": [r.final_pivot(lv.segments, z) for z in lv.pivots]
                + [r.pivot(z, False) for z in lt.pivots],
                "signals": [r.signal(s, lv.pivots) for s in lv.signals]
                + [r.signal(s, lt.pivots, len(lv.pivots)) for s in lt.signals],
            }
        )
    return out


def build_document(e: Engine, t: Tail) -> AnalysisDoc:
    """The analysis document of the engine's state and tail."""
    r = Renderer(e)
    pens = e.pens.pens
    last = len(pens) - 1
    forming = e.forming_pen()
    head: AnalysisHead = {
        "bars": len(e.times),
        "merged_bars": len(e.merged),
        "fractals": [r.fractal(f) for f in e.fractals],
        "pens": [r.pen(p, i < last) for i, p in enumerate(pens)],
        "forming_pen": None if forming is None else r.pen(forming, None),
        "segments": [r.segment(s, s.confirmed) for s in e.segments]
        + [r.segment(s, False) for s in t.segments],
        "pivots": [r.final_pivot(e.segments, z) for z in e.pivots]
        + [r.pivot(z, False) for z in t.pivots],
        "signals": [r.signal(s, e.pivots) for s in e.signals]
        + [r.signal(s, t.pivots, len(e.pivots)) for s in t.signals],
        "degrees": _degrees(e, t),
    }
    repairs = [_repair(x) for x in e.repairs]
    config = e.cfg.to_dict()
    if e.keep_macd:
        macd: MacdDoc = {
            "dif": _opts(e.dif),
            "dea": _opts(e.dea),
            "histogram": _opts(e.histogram),
        }
        return {**head, "macd": macd, "repairs": repairs, "config": config}
    return {**head, "repairs": repairs, "config": config}


def _degree_updates(
    e: Engine, t: Tail, marks: Sequence[LevelMark], changed: Sequence[bool]
) -> list[DegreeUpdateDoc]:
    """Each higher degree's change report: its settled lists from the lengths in ``marks``,
    its tail when ``changed`` says so."""
    out: list[DegreeUpdateDoc] = []
    levels = zip(e.levels, t.higher, marks, changed, strict=True)
    for n, (lv, lt, (_, s0, z0, g0), tail_changed) in enumerate(levels, start=2):
        r = Renderer(e, LevelStrokes(lv.strokes, lt.strokes))
        out.append(
            {
                "degree": n,
                "segments": {
                    "from": s0,
                    "items": [r.segment(s, s.confirmed) for s in lv.segments[s0:]],
                },
                "pivots": {
                    "from": z0,
                    "items": [r.final_pivot(lv.segments, z) for z in lv.pivots[z0:]],
                },
                "signals": {
                    "from": g0,
                    "items": [r.signal(s, lv.pivots) for s in lv.signals[g0:]],
                },
                "tail": r.tail(lt, len(lv.pivots)) if tail_changed else None,
            }
        )
    return out


def build_update(
    e: Engine,
    t: Tail,
    index: int,
    replaced: bool,
    repaired: bool,
    start: Counts,
    tail_changed: bool,
    level_marks: Sequence[LevelMark],
    levels_changed: Sequence[bool],
) -> UpdateDoc:
    """What one stream message changed (§12.7): for each list that only grows, the length to
    truncate to (``from``) and the items to append; the tail whole when it changed."""
    r = Renderer(e)
    pens = e.pens.pens
    n_final = max(len(pens) - 1, 0)
    f0, p0, s0, z0, g0 = start
    dif, dea, hist = e.last_macd
    forming = e.forming_pen()
    return {
        "index": index,
        "replaced": replaced,
        "repaired": repaired,
        "bars": len(e.times),
        "merged_bars": len(e.merged),
        "macd": {"dif": _opt(dif), "dea": _opt(dea), "histogram": _opt(hist)},
        "fractals": {"from": f0, "items": [r.fractal(f) for f in e.fractals[f0:]]},
        "pens": {"from": p0, "items": [r.pen(p, True) for p in pens[p0:n_final]]},
        "segments": {
            "from": s0,
            "items": [r.segment(s, s.confirmed) for s in e.segments[s0:]],
        },
        "pivots": {"from": z0, "items": [r.final_pivot(e.segments, z) for z in e.pivots[z0:]]},
        "signals": {"from": g0, "items": [r.signal(s, e.pivots) for s in e.signals[g0:]]},
        "last_pen": r.pen(pens[-1], False) if pens else None,
        "forming_pen": None if forming is None else r.pen(forming, None),
        "tail": r.tail(t, len(e.pivots)) if tail_changed else None,
        "degrees": _degree_updates(e, t, level_marks, levels_changed),
    }
