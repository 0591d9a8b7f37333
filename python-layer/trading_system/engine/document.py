"""The analysis document (§12.6) and the incremental update document (§12.7): plain dicts with
the JSON shape both engines produce."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from trading_system.engine.fractal import Fractal
from trading_system.engine.timestamp import format_ms

if TYPE_CHECKING:
    from trading_system.engine.analysis import Engine, Tail
    from trading_system.engine.pen import Pen
    from trading_system.engine.pivot import Pivot
    from trading_system.engine.segment import SegmentSpan
    from trading_system.engine.signal import Signal

Doc = dict[str, Any]


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


class Renderer:
    """Turns the engine's items into document entries."""

    __slots__ = ("times", "pens")

    def __init__(self, e: Engine) -> None:
        self.times = e.times
        self.pens = e.pens.pens

    def point(self, f: Fractal) -> Doc:
        return {"index": f.index, "time": format_ms(self.times[f.index]), "price": f.price}

    def fractal(self, f: Fractal) -> Doc:
        return f.to_dict(format_ms(self.times[f.index]))

    def pen(self, p: Pen, final: bool | None) -> Doc:
        d: Doc = {
            "direction": "up" if p.up else "down",
            "start": self.point(p.start),
            "end": self.point(p.end),
        }
        if final is not None:
            d["final"] = final
        return d

    def segment(self, s: SegmentSpan, confirmed: bool) -> Doc:
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

    def pivot(self, z: Pivot, confirmed: bool) -> Doc:
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

    def signal(self, s: Signal) -> Doc:
        end = self.pens[s.pen].end
        return {
            "type": str(s.kind),
            "side": "buy" if s.buy else "sell",
            "pen": s.pen,
            "index": end.index,
            "time": format_ms(self.times[end.index]),
            "price": end.price,
            "final": s.final,
        }

    def final_pivot(self, e: Engine, z: Pivot) -> Doc:
        return self.pivot(z, len(e.segments[z.segment]) >= 3)

    def tail(self, t: Tail) -> Doc:
        return {
            "segments": [self.segment(s, False) for s in t.segments],
            "pivots": [self.pivot(z, False) for z in t.pivots],
            "signals": [self.signal(s) for s in t.signals],
        }


def build_document(e: Engine, t: Tail) -> Doc:
    """The analysis document of the engine's state and tail."""
    r = Renderer(e)
    pens = e.pens.pens
    last = len(pens) - 1
    forming = e.forming_pen()
    doc: Doc = {
        "bars": len(e.times),
        "merged_bars": len(e.merged),
        "fractals": [r.fractal(f) for f in e.fractals],
        "pens": [r.pen(p, i < last) for i, p in enumerate(pens)],
        "forming_pen": None if forming is None else r.pen(forming, None),
        "segments": [r.segment(s, len(s) >= 3) for s in e.segments]
        + [r.segment(s, False) for s in t.segments],
        "pivots": [r.final_pivot(e, z) for z in e.pivots] + [r.pivot(z, False) for z in t.pivots],
        "signals": [r.signal(s) for s in e.signals] + [r.signal(s) for s in t.signals],
    }
    if e.keep_macd:
        doc["macd"] = {
            "dif": [_opt(x) for x in e.dif],
            "dea": [_opt(x) for x in e.dea],
            "histogram": [_opt(x) for x in e.histogram],
        }
    doc["repairs"] = [x.to_dict() for x in e.repairs]
    doc["config"] = e.cfg.to_dict()
    return doc


def build_update(
    e: Engine,
    t: Tail,
    index: int,
    replaced: bool,
    repaired: bool,
    start: tuple[int, int, int, int, int],
    tail_changed: bool,
) -> Doc:
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
            "items": [r.segment(s, len(s) >= 3) for s in e.segments[s0:]],
        },
        "pivots": {"from": z0, "items": [r.final_pivot(e, z) for z in e.pivots[z0:]]},
        "signals": {"from": g0, "items": [r.signal(s) for s in e.signals[g0:]]},
        "last_pen": r.pen(pens[-1], False) if pens else None,
        "forming_pen": None if forming is None else r.pen(forming, None),
        "tail": r.tail(t) if tail_changed else None,
    }
