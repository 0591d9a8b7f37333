"""Messages to and from the engine's data: a request's columns as bars and its configuration
overrides applied key by key; the analysis document (spec §12.6) and the update document (§12.7)
as ``Analysis`` and ``Update`` messages, and back (:func:`analysis_document`,
:func:`update_document`: what a client of the server, such as the monitor, reads).

A point's time is epoch milliseconds, looked up by its bar index in the times of the request or
the session (the documents carry ISO text, which would only be parsed back). Absent MACD values
(``None`` in the documents) are NaN, as the contract says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np

from trading_system.config import Config, apply_overrides
from trading_system.data import COLUMNS, Bars, format_time
from trading_system.errors import ConfigError
from trading_system.proto import trading_pb2 as pb
from trading_system.server.status import Failure, FieldViolation, invalid_config

Doc = Mapping[str, Any]
Times = Sequence[int]

SECTIONS = ("validation", "macd", "pen", "segment", "signal")
"""The sections of ``EngineConfig``, in the contract's (and the document's) order."""

_DIRECTION = {"up": pb.UP, "down": pb.DOWN}
_KIND = {"top": pb.TOP, "bottom": pb.BOTTOM}
_SIDE = {"buy": pb.BUY, "sell": pb.SELL}


# --- Requests ------------------------------------------------------------------------------------


def overrides(msg: pb.EngineConfig) -> dict[str, dict[str, Any]]:
    """The fields set in a request's configuration, as ``{section: {key: value}}`` in the
    contract's order (a field that is not set keeps the server's value)."""
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        if not msg.HasField(section):
            continue
        sub = getattr(msg, section)
        keys = {f.name: getattr(sub, f.name) for f in sub.DESCRIPTOR.fields if sub.HasField(f.name)}
        if keys:
            out[section] = keys
    return out


def apply_config(base: Config, msg: pb.EngineConfig | None) -> Config:
    """``base`` with a request's overrides applied key by key (ranges checked at the end); a bad
    one is INVALID_ARGUMENT naming ``config.<section>.<key>``."""
    if msg is None:
        return base
    found = overrides(msg)
    if not found:
        return base
    try:
        return apply_overrides(base, found)
    except ConfigError as e:
        raise invalid_config(e) from None


def bars(msg: pb.Bars) -> Bars:
    """A request's columns as bars; columns of different lengths are INVALID_ARGUMENT naming
    each column whose length differs from ``time``'s."""
    check_columns(msg, "bars")
    return Bars(
        time=np.array(msg.time, dtype=np.int64),
        open=np.array(msg.open, dtype=np.float64),
        high=np.array(msg.high, dtype=np.float64),
        low=np.array(msg.low, dtype=np.float64),
        close=np.array(msg.close, dtype=np.float64),
        volume=np.array(msg.volume, dtype=np.float64),
    )


def check_columns(msg: pb.Bars, prefix: str) -> None:
    """INVALID_ARGUMENT naming ``<prefix>.<column>`` for each column whose length differs from
    ``time``'s (``bars`` in Analyze, ``base`` in a catch-up)."""
    n = len(msg.time)
    wrong = [
        FieldViolation(
            field=f"{prefix}.{c}",
            description=f"has {len(getattr(msg, c))} values, {prefix}.time has {n}",
        )
        for c in COLUMNS[1:]
        if len(getattr(msg, c)) != n
    ]
    if wrong:
        text = "; ".join(f"{v.field} {v.description}" for v in wrong)
        raise Failure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"invalid bars: columns of different lengths: {text}",
            wrong,
        )


def is_empty(msg: pb.Bars) -> bool:
    """Whether every column is empty."""
    return not any(len(getattr(msg, c)) for c in COLUMNS)


def rows(msg: pb.Bars, prefix: str) -> list[tuple[int, float, float, float, float, float]]:
    """Columns as the engine's bars, one tuple a bar (checked as :func:`check_columns`)."""
    check_columns(msg, prefix)
    return list(zip(msg.time, msg.open, msg.high, msg.low, msg.close, msg.volume, strict=True))


def bars_message(b: Bars) -> pb.Bars:
    """Bars as a request's columns (what :func:`bars` reads back)."""
    return pb.Bars(**{c: getattr(b, c).tolist() for c in COLUMNS})


def bar(msg: pb.Bar) -> tuple[int, float, float, float, float, float]:
    """A stream bar as the engine's arguments."""
    return (msg.time, msg.open, msg.high, msg.low, msg.close, msg.volume)


# --- Configuration -----------------------------------------------------------------------------


def engine_config(cfg: Mapping[str, Any]) -> pb.EngineConfig:
    """A configuration (``EngineConfig.to_dict()``, the document's ``config``) with every field
    set."""
    v, m, p, s, g = (cfg[k] for k in SECTIONS)
    return pb.EngineConfig(
        validation=pb.ValidationConfig(
            allow_non_positive_prices=v["allow_non_positive_prices"], repair=v["repair"]
        ),
        macd=pb.MacdConfig(
            fast_period=m["fast_period"],
            slow_period=m["slow_period"],
            signal_period=m["signal_period"],
            histogram_scale=m["histogram_scale"],
            seed=m["seed"],
        ),
        pen=pb.PenConfig(definition=p["definition"], strict_validation=p["strict_validation"]),
        segment=pb.SegmentConfig(
            feature_sequence_strict=s["feature_sequence_strict"],
            handle_inclusion=s["handle_inclusion"],
        ),
        signal=pb.SignalConfig(
            strength=g["strength"], divergence_rate=g["divergence_rate"], min_pivots=g["min_pivots"]
        ),
    )


# --- Documents ---------------------------------------------------------------------------------


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


class _Render:
    """Document entries as messages, with times from the series' own epoch milliseconds."""

    __slots__ = ("times",)

    def __init__(self, times: Times) -> None:
        self.times = times

    def point(self, d: Doc) -> pb.Point:
        i = d["index"]
        return pb.Point(index=i, time=self.times[i], price=d["price"])

    def fractal(self, d: Doc) -> pb.Fractal:
        return pb.Fractal(
            kind=_KIND[d["kind"]], merged_index=d["merged_index"], point=self.point(d)
        )

    def pen(self, d: Doc) -> pb.Pen:
        return pb.Pen(
            direction=_DIRECTION[d["direction"]],
            start=self.point(d["start"]),
            end=self.point(d["end"]),
            final=d.get("final", False),  # the forming pen has none
        )

    def segment(self, d: Doc) -> pb.Segment:
        return pb.Segment(
            direction=_DIRECTION[d["direction"]],
            start=self.point(d["start"]),
            end=self.point(d["end"]),
            first_pen=d["first_pen"],
            last_pen=d["last_pen"],
            confirmed=d["confirmed"],
            gap=d["gap"],
        )

    def pivot(self, d: Doc) -> pb.Pivot:
        return pb.Pivot(
            segment=d["segment"],
            first_pen=d["first_pen"],
            last_pen=d["last_pen"],
            zd=d["zd"],
            zg=d["zg"],
            dd=d["dd"],
            gg=d["gg"],
            start=self.point(d["start"]),
            end=self.point(d["end"]),
            confirmed=d["confirmed"],
        )

    def signal(self, d: Doc) -> pb.Signal:
        return pb.Signal(
            type=int(d["type"]),
            side=_SIDE[d["side"]],
            pen=d["pen"],
            point=self.point(d),
            final=d["final"],
        )

    def tail(self, d: Doc) -> pb.Tail:
        return pb.Tail(
            segments=[self.segment(x) for x in d["segments"]],
            pivots=[self.pivot(x) for x in d["pivots"]],
            signals=[self.signal(x) for x in d["signals"]],
        )


def analysis(doc: Doc, times: Times) -> pb.Analysis:
    """The analysis document as a message; ``times`` are the bars' epoch milliseconds."""
    r = _Render(times)
    out = pb.Analysis(
        bars=doc["bars"],
        merged_bars=doc["merged_bars"],
        fractals=[r.fractal(x) for x in doc["fractals"]],
        pens=[r.pen(x) for x in doc["pens"]],
        segments=[r.segment(x) for x in doc["segments"]],
        pivots=[r.pivot(x) for x in doc["pivots"]],
        signals=[r.signal(x) for x in doc["signals"]],
        repairs=[pb.Repair(**x) for x in doc["repairs"]],
        config=engine_config(doc["config"]),
    )
    if doc["forming_pen"] is not None:
        out.forming_pen.CopyFrom(r.pen(doc["forming_pen"]))
    macd = doc.get("macd")
    if macd is not None:
        out.macd.CopyFrom(
            pb.Macd(
                dif=[_nan(x) for x in macd["dif"]],
                dea=[_nan(x) for x in macd["dea"]],
                histogram=[_nan(x) for x in macd["histogram"]],
            )
        )
    return out


def update(doc: Doc, times: Times) -> pb.Update:
    """The update document of one stream message as a message; ``times`` are the session's."""
    r = _Render(times)
    m = doc["macd"]
    f, p, s, z, g = (doc[k] for k in ("fractals", "pens", "segments", "pivots", "signals"))
    # `from` is a Python keyword: the splices are built from keyword dictionaries.
    out = pb.Update(
        index=doc["index"],
        replaced=doc["replaced"],
        repaired=doc["repaired"],
        bars=doc["bars"],
        merged_bars=doc["merged_bars"],
        macd=pb.MacdPoint(dif=_nan(m["dif"]), dea=_nan(m["dea"]), histogram=_nan(m["histogram"])),
        fractals=pb.FractalSplice(
            **{"from": f["from"], "items": [r.fractal(x) for x in f["items"]]}
        ),
        pens=pb.PenSplice(**{"from": p["from"], "items": [r.pen(x) for x in p["items"]]}),
        segments=pb.SegmentSplice(
            **{"from": s["from"], "items": [r.segment(x) for x in s["items"]]}
        ),
        pivots=pb.PivotSplice(**{"from": z["from"], "items": [r.pivot(x) for x in z["items"]]}),
        signals=pb.SignalSplice(**{"from": g["from"], "items": [r.signal(x) for x in g["items"]]}),
    )
    if doc["last_pen"] is not None:
        out.last_pen.CopyFrom(r.pen(doc["last_pen"]))
    if doc["forming_pen"] is not None:
        out.forming_pen.CopyFrom(r.pen(doc["forming_pen"]))
    if doc["tail"] is not None:
        out.tail.CopyFrom(r.tail(doc["tail"]))
    return out


# --- Messages back into documents --------------------------------------------------------------

_DIRECTION_NAME = {v: k for k, v in _DIRECTION.items()}
_KIND_NAME = {v: k for k, v in _KIND.items()}
_SIDE_NAME = {v: k for k, v in _SIDE.items()}


def _point_doc(p: pb.Point) -> dict[str, Any]:
    return {"index": p.index, "time": format_time(p.time), "price": p.price}


def _fractal_doc(f: pb.Fractal) -> dict[str, Any]:
    return {"kind": _KIND_NAME[f.kind], "merged_index": f.merged_index, **_point_doc(f.point)}


def _pen_doc(p: pb.Pen, forming: bool = False) -> dict[str, Any]:
    d = {
        "direction": _DIRECTION_NAME[p.direction],
        "start": _point_doc(p.start),
        "end": _point_doc(p.end),
    }
    if not forming:  # the forming pen has no `final`
        d["final"] = p.final
    return d


def _segment_doc(s: pb.Segment) -> dict[str, Any]:
    return {
        "direction": _DIRECTION_NAME[s.direction],
        "start": _point_doc(s.start),
        "end": _point_doc(s.end),
        "first_pen": s.first_pen,
        "last_pen": s.last_pen,
        "confirmed": s.confirmed,
        "gap": s.gap,
    }


def _pivot_doc(z: pb.Pivot) -> dict[str, Any]:
    return {
        "segment": z.segment,
        "first_pen": z.first_pen,
        "last_pen": z.last_pen,
        "zd": z.zd,
        "zg": z.zg,
        "dd": z.dd,
        "gg": z.gg,
        "start": _point_doc(z.start),
        "end": _point_doc(z.end),
        "confirmed": z.confirmed,
    }


def _signal_doc(g: pb.Signal) -> dict[str, Any]:
    return {
        "type": str(g.type),
        "side": _SIDE_NAME[g.side],
        "pen": g.pen,
        **_point_doc(g.point),
        "final": g.final,
    }


def _absent(x: float) -> float | None:
    return None if math.isnan(x) else x


def config_document(c: pb.EngineConfig) -> dict[str, dict[str, Any]]:
    """A configuration in an answer (every field set) as ``EngineConfig.to_dict()`` gives it."""
    out = {}
    for section in SECTIONS:
        sub = getattr(c, section)
        out[section] = {f.name: getattr(sub, f.name) for f in sub.DESCRIPTOR.fields}
    return out


def _tail_doc(t: pb.Tail) -> dict[str, Any]:
    return {
        "segments": [_segment_doc(s) for s in t.segments],
        "pivots": [_pivot_doc(z) for z in t.pivots],
        "signals": [_signal_doc(g) for g in t.signals],
    }


def analysis_document(a: pb.Analysis) -> dict[str, Any]:
    """An ``Analysis`` as the analysis document (§12.6), times as ISO text again."""
    doc: dict[str, Any] = {
        "bars": a.bars,
        "merged_bars": a.merged_bars,
        "fractals": [_fractal_doc(f) for f in a.fractals],
        "pens": [_pen_doc(p) for p in a.pens],
        "forming_pen": _pen_doc(a.forming_pen, forming=True) if a.HasField("forming_pen") else None,
        "segments": [_segment_doc(s) for s in a.segments],
        "pivots": [_pivot_doc(z) for z in a.pivots],
        "signals": [_signal_doc(g) for g in a.signals],
    }
    if a.HasField("macd"):
        doc["macd"] = {
            k: [_absent(x) for x in getattr(a.macd, k)] for k in ("dif", "dea", "histogram")
        }
    doc["repairs"] = [
        {
            "index": r.index,
            "old_high": r.old_high,
            "old_low": r.old_low,
            "new_high": r.new_high,
            "new_low": r.new_low,
        }
        for r in a.repairs
    ]
    doc["config"] = config_document(a.config)
    return doc


def update_document(u: pb.Update) -> dict[str, Any]:
    """An ``Update`` as the update document (§12.7)."""

    def splice(s: Any, item: Any) -> dict[str, Any]:
        return {"from": getattr(s, "from"), "items": [item(x) for x in s.items]}

    return {
        "index": u.index,
        "replaced": u.replaced,
        "repaired": u.repaired,
        "bars": u.bars,
        "merged_bars": u.merged_bars,
        "macd": {k: _absent(getattr(u.macd, k)) for k in ("dif", "dea", "histogram")},
        "fractals": splice(u.fractals, _fractal_doc),
        "pens": splice(u.pens, _pen_doc),
        "segments": splice(u.segments, _segment_doc),
        "pivots": splice(u.pivots, _pivot_doc),
        "signals": splice(u.signals, _signal_doc),
        "last_pen": _pen_doc(u.last_pen) if u.HasField("last_pen") else None,
        "forming_pen": _pen_doc(u.forming_pen, forming=True) if u.HasField("forming_pen") else None,
        "tail": _tail_doc(u.tail) if u.HasField("tail") else None,
    }
