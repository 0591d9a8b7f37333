"""The engine's data as ``trading.v1`` messages (``proto/trading.proto``) and back: the one place
these conversions are written, for the server (documents to answers, requests to bars and
configuration), the monitor (bars it journals, signals it records, configuration digests) and
the client (bars and overrides to requests, answers to documents).

- Bars: :class:`~trading_system.data.Bars` ↔ ``Bars`` columns; one bar ↔ ``Bar``.
- Configuration: overrides ↔ an ``EngineConfig`` with only those fields set; a whole
  configuration (``EngineConfig.to_dict()``, a document's ``config``) ↔ ``EngineConfig``;
  :func:`config_version`, the digest the servers report.
- Documents: the analysis document (spec §12.6, ``AnalysisDoc`` of
  :mod:`trading_system.engine.document`) ↔ ``Analysis``; the update document (§12.7,
  ``UpdateDoc``) ↔ ``Update``. Both directions give back what they were given: a document made
  a message and read back is equal to it.

A message's point carries its time as epoch milliseconds, looked up by its bar index in the
times of the request or the session (the documents carry ISO text, which would only be parsed
back); reading a message back formats it as ISO text again. Absent MACD values (``None`` in the
documents) are NaN in messages, as the contract says.

Nothing here checks a request: the server refuses bad ones (columns of different lengths, bad
overrides) in :mod:`trading_system.server.requests` with the statuses the contract names.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import Message

from trading_system.data import COLUMNS, Bars, format_time
from trading_system.engine.document import (
    AnalysisDoc,
    AnalysisHead,
    DegreeUpdateDoc,
    Direction,
    FractalDoc,
    FractalsChange,
    MacdDoc,
    PenDoc,
    PensChange,
    PivotDoc,
    PivotsChange,
    PointDoc,
    RepairDoc,
    SegmentDoc,
    SegmentsChange,
    SignalDoc,
    SignalsChange,
    TailDoc,
    UpdateDoc,
)
from trading_system.errors import ConfigError
from trading_system.proto import trading_pb2 as pb

__all__ = [
    "SECTIONS",
    "Row",
    "Times",
    "analysis",
    "analysis_document",
    "bar_message",
    "bar_row",
    "bars",
    "bars_message",
    "config_document",
    "config_version",
    "engine_config",
    "is_empty",
    "message_dict",
    "mismatched_columns",
    "overrides",
    "overrides_message",
    "rows",
    "side_name",
    "splice_start",
    "update",
    "update_document",
]

Times = Sequence[int]
"""The bars' epoch milliseconds, by bar index."""
Row = tuple[int, float, float, float, float, float]
"""One bar as the engine takes it: ``(time ms, open, high, low, close, volume)``."""
Side = Literal["buy", "sell"]
Kind = Literal["top", "bottom"]
Edge = Literal["zd", "zg"]
ConfigDoc = dict[str, dict[str, Any]]
"""A configuration as data: ``{section: {key: value}}``."""

SECTIONS = ("validation", "macd", "pen", "segment", "signal", "structure")
"""The sections of ``EngineConfig``, in the contract's (and the document's) order."""

_DIRECTION: dict[Direction, pb.Direction] = {"up": pb.UP, "down": pb.DOWN}
_KIND: dict[Kind, pb.FractalKind] = {"top": pb.TOP, "bottom": pb.BOTTOM}
_SIDE: dict[Side, pb.Side] = {"buy": pb.BUY, "sell": pb.SELL}
_DIRECTION_NAME: dict[pb.Direction, Direction] = {v: k for k, v in _DIRECTION.items()}
_KIND_NAME: dict[pb.FractalKind, Kind] = {v: k for k, v in _KIND.items()}
_SIDE_NAME: dict[pb.Side, Side] = {v: k for k, v in _SIDE.items()}
_EDGE: dict[Edge | None, pb.PivotEdge] = {None: pb.PIVOT_EDGE_UNSPECIFIED, "zd": pb.ZD, "zg": pb.ZG}
_EDGE_NAME: dict[pb.PivotEdge, Edge | None] = {v: k for k, v in _EDGE.items()}

Splice = pb.FractalSplice | pb.PenSplice | pb.SegmentSplice | pb.PivotSplice | pb.SignalSplice


def side_name(side: pb.Side) -> Side:
    """A signal's side as the documents write it (``"buy"`` / ``"sell"``)."""
    return _SIDE_NAME[side]


def splice_start(splice: Splice) -> int:
    """A splice's ``from``: the length its list is truncated to before ``items`` are appended
    (``from`` is a Python keyword, so the generated class has no attribute of that name)."""
    start: int = getattr(splice, "from")
    return start


# --- Bars ----------------------------------------------------------------------------------------


def bars_message(b: Bars) -> pb.Bars:
    """Bars as a request's columns (what :func:`bars` reads back)."""
    return pb.Bars(
        time=b.time.tolist(),
        open=b.open.tolist(),
        high=b.high.tolist(),
        low=b.low.tolist(),
        close=b.close.tolist(),
        volume=b.volume.tolist(),
    )


def mismatched_columns(msg: pb.Bars) -> list[tuple[str, int]]:
    """The columns whose length differs from ``time``'s, with their lengths (in column order)."""
    n = len(msg.time)
    lengths = (len(msg.open), len(msg.high), len(msg.low), len(msg.close), len(msg.volume))
    return [(c, k) for c, k in zip(COLUMNS[1:], lengths, strict=True) if k != n]


def is_empty(msg: pb.Bars) -> bool:
    """Whether every column is empty."""
    return not (msg.time or msg.open or msg.high or msg.low or msg.close or msg.volume)


def bars(msg: pb.Bars) -> Bars:
    """A request's columns as bars (of one length: see :func:`mismatched_columns`)."""
    return Bars(
        time=np.array(msg.time, dtype=np.int64),
        open=np.array(msg.open, dtype=np.float64),
        high=np.array(msg.high, dtype=np.float64),
        low=np.array(msg.low, dtype=np.float64),
        close=np.array(msg.close, dtype=np.float64),
        volume=np.array(msg.volume, dtype=np.float64),
    )


def rows(msg: pb.Bars) -> list[Row]:
    """Columns (of one length) as the engine's bars, one tuple a bar."""
    return list(zip(msg.time, msg.open, msg.high, msg.low, msg.close, msg.volume, strict=True))


def bar_message(row: Row) -> pb.Bar:
    """One bar as a stream's ``Bar``."""
    t, o, h, lo, c, v = row
    return pb.Bar(time=t, open=o, high=h, low=lo, close=c, volume=v)


def bar_row(msg: pb.Bar) -> Row:
    """A stream's ``Bar`` as the engine's arguments."""
    return (msg.time, msg.open, msg.high, msg.low, msg.close, msg.volume)


# --- Configuration -------------------------------------------------------------------------------


def _sections(msg: pb.EngineConfig) -> tuple[Message, ...]:
    return (msg.validation, msg.macd, msg.pen, msg.segment, msg.signal, msg.structure)


def overrides(msg: pb.EngineConfig) -> ConfigDoc:
    """The fields set in a request's configuration, as ``{section: {key: value}}`` in the
    contract's order (a field that is not set keeps the server's value)."""
    out: ConfigDoc = {}
    for section, sub in zip(SECTIONS, _sections(msg), strict=True):
        if not msg.HasField(section):
            continue
        keys = {f.name: getattr(sub, f.name) for f in sub.DESCRIPTOR.fields if sub.HasField(f.name)}
        if keys:
            out[section] = keys
    return out


def overrides_message(config: Mapping[str, Any] | None) -> pb.EngineConfig:
    """Overrides (``{"pen": {"definition": "traditional"}}`` or dotted ``{"pen.definition": …}``)
    as an ``EngineConfig`` with only those fields set (what :func:`overrides` reads back); a key
    the contract does not have, or a value of the wrong type, is a ConfigError naming it. The
    ranges are the server's to check."""
    msg = pb.EngineConfig()
    nested: dict[str, dict[str, Any]] = {}
    for key, value in (config or {}).items():
        if "." in key:
            section, name = key.split(".", 1)
            nested.setdefault(section, {})[name] = value
        elif isinstance(value, Mapping):
            # A section of the caller's data: its keys are checked one by one below.
            nested.setdefault(key, {}).update(cast("Mapping[str, Any]", value))
        else:
            raise ConfigError(key, "expected a section of overrides")
    for section, keys in nested.items():
        if section not in SECTIONS:
            raise ConfigError(section, "unknown section")
        for name, value in keys.items():
            try:
                json_format.ParseDict({section: {name: value}}, msg)
            except json_format.ParseError as e:
                raise ConfigError(f"{section}.{name}", str(e)) from None
    return msg


def engine_config(cfg: Mapping[str, Any]) -> pb.EngineConfig:
    """A whole configuration (``EngineConfig.to_dict()``, a document's ``config``) with every
    field set."""
    v, m, p, s, g, st = (cfg[k] for k in SECTIONS)
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
        structure=pb.StructureConfig(degrees=st["degrees"]),
    )


def config_document(msg: pb.EngineConfig) -> ConfigDoc:
    """A configuration in an answer (every field set) as ``EngineConfig.to_dict()`` gives it."""
    return {
        section: {f.name: getattr(sub, f.name) for f in sub.DESCRIPTOR.fields}
        for section, sub in zip(SECTIONS, _sections(msg), strict=True)
    }


def config_version(msg: pb.EngineConfig) -> str:
    """The configuration's digest as the servers report it (``config_version``, docs/GRPC.md):
    the first 16 hex digits of the SHA-256 of its deterministic encoding."""
    return hashlib.sha256(msg.SerializeToString(deterministic=True)).hexdigest()[:16]


def message_dict(msg: Message) -> dict[str, Any]:
    """Any other answer (``GetInfo``, ``GetConfig`` …) as plain data: the contract's field
    names, every field written (``json_format``'s JSON mapping: 64-bit integers as text)."""
    return json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


# --- Documents as messages -----------------------------------------------------------------------


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


class _Render:
    """Document entries as messages, with times from the series' own epoch milliseconds."""

    __slots__ = ("times",)

    def __init__(self, times: Times) -> None:
        self.times = times

    def point(self, d: PointDoc | FractalDoc | SignalDoc) -> pb.Point:
        i = d["index"]
        return pb.Point(index=i, time=self.times[i], price=d["price"])

    def fractal(self, d: FractalDoc) -> pb.Fractal:
        return pb.Fractal(
            kind=_KIND[d["kind"]], merged_index=d["merged_index"], point=self.point(d)
        )

    def pen(self, d: PenDoc) -> pb.Pen:
        return pb.Pen(
            direction=_DIRECTION[d["direction"]],
            start=self.point(d["start"]),
            end=self.point(d["end"]),
            final=d.get("final", False),  # the forming pen has none
        )

    def segment(self, d: SegmentDoc) -> pb.Segment:
        return pb.Segment(
            direction=_DIRECTION[d["direction"]],
            start=self.point(d["start"]),
            end=self.point(d["end"]),
            first_pen=d["first_pen"],
            last_pen=d["last_pen"],
            confirmed=d["confirmed"],
            gap=d["gap"],
        )

    def pivot(self, d: PivotDoc) -> pb.Pivot:
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

    def signal(self, d: SignalDoc) -> pb.Signal:
        one = d["type"] == "1"
        return pb.Signal(
            type=int(d["type"]),
            side=_SIDE[d["side"]],
            pen=d["pen"],
            point=self.point(d),
            final=d["final"],
            pivot=d["pivot"],
            zd=d["zd"],
            zg=d["zg"],
            # Type 1 only; NaN where the document shows null (not a finite number, §12.5).
            entering_strength=_nan(d["entering_strength"]) if one else None,
            leaving_strength=_nan(d["leaving_strength"]) if one else None,
            ratio=_nan(d["ratio"]) if one else None,
            follows=d["follows"],
            edge=_EDGE[d["edge"]],
        )

    def tail(self, d: TailDoc) -> pb.Tail:
        return pb.Tail(
            segments=[self.segment(x) for x in d["segments"]],
            pivots=[self.pivot(x) for x in d["pivots"]],
            signals=[self.signal(x) for x in d["signals"]],
        )


def analysis(doc: AnalysisDoc, times: Times) -> pb.Analysis:
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
        degrees=[
            pb.Degree(
                degree=d["degree"],
                segments=[r.segment(x) for x in d["segments"]],
                pivots=[r.pivot(x) for x in d["pivots"]],
                signals=[r.signal(x) for x in d["signals"]],
            )
            for d in doc["degrees"]
        ],
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


def _splice(start: int, items: Sequence[Message]) -> dict[str, Any]:
    """A splice's fields as keyword arguments (``from`` is a Python keyword)."""
    return {"from": start, "items": items}


def _structure_splices(
    r: _Render, d: UpdateDoc | DegreeUpdateDoc
) -> tuple[pb.SegmentSplice, pb.PivotSplice, pb.SignalSplice]:
    """The segment, pivot and point splices of degree 1's update or a higher degree's."""
    s, z, g = d["segments"], d["pivots"], d["signals"]
    return (
        pb.SegmentSplice(**_splice(s["from"], [r.segment(x) for x in s["items"]])),
        pb.PivotSplice(**_splice(z["from"], [r.pivot(x) for x in z["items"]])),
        pb.SignalSplice(**_splice(g["from"], [r.signal(x) for x in g["items"]])),
    )


def update(doc: UpdateDoc, times: Times) -> pb.Update:
    """The update document of one stream message as a message; ``times`` are the session's."""
    r = _Render(times)
    m = doc["macd"]
    f, p = doc["fractals"], doc["pens"]
    segments, pivots, signals = _structure_splices(r, doc)
    out = pb.Update(
        index=doc["index"],
        replaced=doc["replaced"],
        repaired=doc["repaired"],
        bars=doc["bars"],
        merged_bars=doc["merged_bars"],
        macd=pb.MacdPoint(dif=_nan(m["dif"]), dea=_nan(m["dea"]), histogram=_nan(m["histogram"])),
        fractals=pb.FractalSplice(**_splice(f["from"], [r.fractal(x) for x in f["items"]])),
        pens=pb.PenSplice(**_splice(p["from"], [r.pen(x) for x in p["items"]])),
        segments=segments,
        pivots=pivots,
        signals=signals,
    )
    if doc["last_pen"] is not None:
        out.last_pen.CopyFrom(r.pen(doc["last_pen"]))
    if doc["forming_pen"] is not None:
        out.forming_pen.CopyFrom(r.pen(doc["forming_pen"]))
    if doc["tail"] is not None:
        out.tail.CopyFrom(r.tail(doc["tail"]))
    for d in doc["degrees"]:
        segments, pivots, signals = _structure_splices(r, d)
        du = out.degrees.add(degree=d["degree"], segments=segments, pivots=pivots, signals=signals)
        if d["tail"] is not None:
            du.tail.CopyFrom(r.tail(d["tail"]))
    return out


# --- Messages as documents -----------------------------------------------------------------------


def _point_doc(p: pb.Point) -> PointDoc:
    return {"index": p.index, "time": format_time(p.time), "price": p.price}


def _fractal_doc(f: pb.Fractal) -> FractalDoc:
    p = f.point
    return {
        "kind": _KIND_NAME[f.kind],
        "merged_index": f.merged_index,
        "index": p.index,
        "time": format_time(p.time),
        "price": p.price,
    }


def _pen_doc(p: pb.Pen) -> PenDoc:
    return {
        "direction": _DIRECTION_NAME[p.direction],
        "start": _point_doc(p.start),
        "end": _point_doc(p.end),
        "final": p.final,
    }


def _forming_pen_doc(p: pb.Pen) -> PenDoc:
    """The forming pen: no ``final``."""
    return {
        "direction": _DIRECTION_NAME[p.direction],
        "start": _point_doc(p.start),
        "end": _point_doc(p.end),
    }


def _segment_doc(s: pb.Segment) -> SegmentDoc:
    return {
        "direction": _DIRECTION_NAME[s.direction],
        "start": _point_doc(s.start),
        "end": _point_doc(s.end),
        "first_pen": s.first_pen,
        "last_pen": s.last_pen,
        "confirmed": s.confirmed,
        "gap": s.gap,
    }


def _pivot_doc(z: pb.Pivot) -> PivotDoc:
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


def _signal_doc(g: pb.Signal) -> SignalDoc:
    p = g.point
    return {
        "type": str(g.type),
        "side": _SIDE_NAME[g.side],
        "pen": g.pen,
        "index": p.index,
        "time": format_time(p.time),
        "price": p.price,
        "final": g.final,
        "pivot": g.pivot,
        "zd": g.zd,
        "zg": g.zg,
        "entering_strength": _finite(g, "entering_strength"),
        "leaving_strength": _finite(g, "leaving_strength"),
        "ratio": _finite(g, "ratio"),
        "follows": g.follows if g.HasField("follows") else None,
        "edge": _EDGE_NAME[g.edge],
    }


def _finite(
    g: pb.Signal, field: Literal["entering_strength", "leaving_strength", "ratio"]
) -> float | None:
    """A type-1 point's strength or ratio as the document shows it: ``None`` when absent or not
    a finite number."""
    if not g.HasField(field):
        return None
    x: float = getattr(g, field)
    return x if math.isfinite(x) else None


def _repair_doc(r: pb.Repair) -> RepairDoc:
    return {
        "index": r.index,
        "old_high": r.old_high,
        "old_low": r.old_low,
        "new_high": r.new_high,
        "new_low": r.new_low,
    }


def _absent(x: float) -> float | None:
    return None if math.isnan(x) else x


def _tail_doc(t: pb.Tail) -> TailDoc:
    return {
        "segments": [_segment_doc(s) for s in t.segments],
        "pivots": [_pivot_doc(z) for z in t.pivots],
        "signals": [_signal_doc(g) for g in t.signals],
    }


def analysis_document(a: pb.Analysis) -> AnalysisDoc:
    """An ``Analysis`` as the analysis document (§12.6), times as ISO text again; keys in the
    document's order (``macd`` between ``signals`` and ``repairs``, when there is one)."""
    head: AnalysisHead = {
        "bars": a.bars,
        "merged_bars": a.merged_bars,
        "fractals": [_fractal_doc(f) for f in a.fractals],
        "pens": [_pen_doc(p) for p in a.pens],
        "forming_pen": _forming_pen_doc(a.forming_pen) if a.HasField("forming_pen") else None,
        "segments": [_segment_doc(s) for s in a.segments],
        "pivots": [_pivot_doc(z) for z in a.pivots],
        "signals": [_signal_doc(g) for g in a.signals],
        "degrees": [
            {
                "degree": d.degree,
                "segments": [_segment_doc(s) for s in d.segments],
                "pivots": [_pivot_doc(z) for z in d.pivots],
                "signals": [_signal_doc(g) for g in d.signals],
            }
            for d in a.degrees
        ],
    }
    repairs = [_repair_doc(r) for r in a.repairs]
    config = config_document(a.config)
    if a.HasField("macd"):
        m = a.macd
        macd: MacdDoc = {
            "dif": [_absent(x) for x in m.dif],
            "dea": [_absent(x) for x in m.dea],
            "histogram": [_absent(x) for x in m.histogram],
        }
        return {**head, "macd": macd, "repairs": repairs, "config": config}
    return {**head, "repairs": repairs, "config": config}


def update_document(u: pb.Update) -> UpdateDoc:
    """An ``Update`` as the update document (§12.7)."""
    m = u.macd
    f, p = u.fractals, u.pens
    fractals: FractalsChange = {
        "from": splice_start(f),
        "items": [_fractal_doc(x) for x in f.items],
    }
    pens: PensChange = {"from": splice_start(p), "items": [_pen_doc(x) for x in p.items]}
    return {
        "index": u.index,
        "replaced": u.replaced,
        "repaired": u.repaired,
        "bars": u.bars,
        "merged_bars": u.merged_bars,
        "macd": {"dif": _absent(m.dif), "dea": _absent(m.dea), "histogram": _absent(m.histogram)},
        "fractals": fractals,
        "pens": pens,
        "segments": _segments_change(u.segments),
        "pivots": _pivots_change(u.pivots),
        "signals": _signals_change(u.signals),
        "last_pen": _pen_doc(u.last_pen) if u.HasField("last_pen") else None,
        "forming_pen": _forming_pen_doc(u.forming_pen) if u.HasField("forming_pen") else None,
        "tail": _tail_doc(u.tail) if u.HasField("tail") else None,
        "degrees": [_degree_update_doc(d) for d in u.degrees],
    }


def _degree_update_doc(d: pb.DegreeUpdate) -> DegreeUpdateDoc:
    """A ``DegreeUpdate`` as its entry of the update document's ``degrees``."""
    return {
        "degree": d.degree,
        "segments": _segments_change(d.segments),
        "pivots": _pivots_change(d.pivots),
        "signals": _signals_change(d.signals),
        "tail": _tail_doc(d.tail) if d.HasField("tail") else None,
    }


# The splices of segments, pivots and points: degree 1's and every higher degree's.
def _segments_change(s: pb.SegmentSplice) -> SegmentsChange:
    return {"from": splice_start(s), "items": [_segment_doc(x) for x in s.items]}


def _pivots_change(z: pb.PivotSplice) -> PivotsChange:
    return {"from": splice_start(z), "items": [_pivot_doc(x) for x in z.items]}


def _signals_change(g: pb.SignalSplice) -> SignalsChange:
    return {"from": splice_start(g), "items": [_signal_doc(x) for x in g.items]}
