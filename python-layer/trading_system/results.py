"""Typed results: the analysis document (docs/CHAN_THEORY.md §12.6) and the update document
(§12.7) as frozen dataclasses. Field names are those of the JSON (``final``, ``type`` …) and
every object's ``to_dict()`` gives its JSON form back exactly. :class:`Analysis` and
:class:`Update` keep their source and build the typed lists on first access, so a batch
analysis does not pay for objects nobody reads. The source is a document (the Python engine, a
server's answer) or a result of the native module (the Rust engine), whose typed objects are
converted in one place (the ``_from_native`` functions below), never through JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import numpy as np

from trading_system.config import EngineConfig
from trading_system.data import Bars, parse_time
from trading_system.times import check_zone

if TYPE_CHECKING:
    import pandas as pd

Doc = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Point:
    """A point on the chart: raw bar index, its time (ISO-8601 UTC) and a price."""

    index: int
    time: str
    price: float

    @property
    def ms(self) -> int:
        """The time as epoch milliseconds."""
        return parse_time(self.time)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Point:
        return cls(d["index"], d["time"], d["price"])

    def to_dict(self) -> Doc:
        return {"index": self.index, "time": self.time, "price": self.price}


@dataclass(frozen=True, slots=True)
class Fractal:
    """A fractal (分型): ``kind`` ``top`` (顶分型) or ``bottom`` (底分型), at a merged bar and the
    raw bar holding its extreme."""

    kind: str
    merged_index: int
    index: int
    time: str
    price: float

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fractal:
        return cls(d["kind"], d["merged_index"], d["index"], d["time"], d["price"])

    def to_dict(self) -> Doc:
        return {
            "kind": self.kind,
            "merged_index": self.merged_index,
            "index": self.index,
            "time": self.time,
            "price": self.price,
        }


@dataclass(frozen=True, slots=True)
class Pen:
    """A pen (笔): a directed move between a bottom fractal (底分型) and a top fractal (顶分型).
    ``final`` is ``None`` for the forming pen (the document then has no ``final`` key)."""

    direction: str
    start: Point
    end: Point
    final: bool | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Pen:
        return cls(
            d["direction"], Point.from_dict(d["start"]), Point.from_dict(d["end"]), d.get("final")
        )

    def to_dict(self) -> Doc:
        d: Doc = {
            "direction": self.direction,
            "start": self.start.to_dict(),
            "end": self.end.to_dict(),
        }
        if self.final is not None:
            d["final"] = self.final
        return d


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment (线段): at least three pens, from its first pen's start to its last pen's end;
    ``gap`` when its end waited for a second-case (有缺口) confirmation."""

    direction: str
    start: Point
    end: Point
    first_pen: int
    last_pen: int
    confirmed: bool
    gap: bool

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Segment:
        return cls(
            d["direction"],
            Point.from_dict(d["start"]),
            Point.from_dict(d["end"]),
            d["first_pen"],
            d["last_pen"],
            d["confirmed"],
            d["gap"],
        )

    def to_dict(self) -> Doc:
        return {
            "direction": self.direction,
            "start": self.start.to_dict(),
            "end": self.end.to_dict(),
            "first_pen": self.first_pen,
            "last_pen": self.last_pen,
            "confirmed": self.confirmed,
            "gap": self.gap,
        }


@dataclass(frozen=True, slots=True)
class Pivot:
    """A pivot (中枢) of a segment: the overlap ``zd..zg`` of its pens and their range
    ``dd..gg``; ``segment`` is the index in the document's segments."""

    segment: int
    first_pen: int
    last_pen: int
    zd: float
    zg: float
    dd: float
    gg: float
    start: Point
    end: Point
    confirmed: bool

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Pivot:
        return cls(
            d["segment"],
            d["first_pen"],
            d["last_pen"],
            d["zd"],
            d["zg"],
            d["dd"],
            d["gg"],
            Point.from_dict(d["start"]),
            Point.from_dict(d["end"]),
            d["confirmed"],
        )

    def to_dict(self) -> Doc:
        return {
            "segment": self.segment,
            "first_pen": self.first_pen,
            "last_pen": self.last_pen,
            "zd": self.zd,
            "zg": self.zg,
            "dd": self.dd,
            "gg": self.gg,
            "start": self.start.to_dict(),
            "end": self.end.to_dict(),
            "confirmed": self.confirmed,
        }


@dataclass(frozen=True, slots=True)
class Signal:
    """A buy/sell point (买卖点) of ``type`` ``"1"``, ``"2"`` or ``"3"``, at the end of pen
    ``pen``; ``final`` once it can no longer change. What it was derived from (docs/CHAN_THEORY.md
    §12.6): ``pivot`` (index in the same degree's pivots) with its ``zd``/``zg``; type 1's
    ``entering_strength``, ``leaving_strength`` and ``ratio`` (leaving / entering; ``None`` for
    other types, or when not a finite number); type 2's ``follows`` (the type-1 point's pen);
    type 3's ``edge`` (``"zg"`` for a buy, ``"zd"`` for a sell)."""

    type: str
    side: str
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
    edge: str | None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signal:
        return cls(*(d[k] for k in _SIGNAL_KEYS))

    def to_dict(self) -> Doc:
        return {k: getattr(self, k) for k in _SIGNAL_KEYS}


SIGNAL_DERIVATION = (
    "pivot",
    "zd",
    "zg",
    "entering_strength",
    "leaving_strength",
    "ratio",
    "follows",
    "edge",
)
"""What a point was derived from (docs/CHAN_THEORY.md §12.6): its last keys, in order."""

_SIGNAL_KEYS = ("type", "side", "pen", "index", "time", "price", "final", *SIGNAL_DERIVATION)
"""A signal's keys in the document's order (the attribute names too)."""


@dataclass(frozen=True, slots=True)
class Repair:
    """A bar whose high/low were widened to cover open/close (``validation.repair``)."""

    index: int
    old_high: float
    old_low: float
    new_high: float
    new_low: float

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Repair:
        return cls(d["index"], d["old_high"], d["old_low"], d["new_high"], d["new_low"])

    def to_dict(self) -> Doc:
        return {
            "index": self.index,
            "old_high": self.old_high,
            "old_low": self.old_low,
            "new_high": self.new_high,
            "new_low": self.new_low,
        }


def point_label(degree: int, side: str, kind: str | int) -> str:
    """A buy/sell point's label, as the chart and the demo show it: ``B1``..``S3`` (side, type)
    at degree 1, ``D2 B1`` and so on at a higher degree."""
    name = f"{'B' if side == 'buy' else 'S'}{kind}"
    return name if degree == 1 else f"D{degree} {name}"


def _series(values: Sequence[float | None]) -> np.ndarray:
    a = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    a.flags.writeable = False
    return a


def _optional(a: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in a.tolist()]


@dataclass(frozen=True, slots=True, eq=False)
class Macd:
    """MACD per raw bar as read-only float64 arrays; NaN where a value is absent (before the
    TA-Lib lookback with ``seed: sma``), ``null`` in the document."""

    dif: np.ndarray
    dea: np.ndarray
    histogram: np.ndarray

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[float | None]]) -> Macd:
        return cls(_series(d["dif"]), _series(d["dea"]), _series(d["histogram"]))

    def to_dict(self) -> Doc:
        return {
            "dif": _optional(self.dif),
            "dea": _optional(self.dea),
            "histogram": _optional(self.histogram),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Macd):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, k), getattr(other, k), equal_nan=True)
            for k in ("dif", "dea", "histogram")
        )

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.dif)


@dataclass(frozen=True, slots=True)
class MacdPoint:
    """The MACD of one bar; ``None`` where absent."""

    dif: float | None
    dea: float | None
    histogram: float | None

    @classmethod
    def from_dict(cls, d: Mapping[str, float | None]) -> MacdPoint:
        return cls(d["dif"], d["dea"], d["histogram"])

    def to_dict(self) -> Doc:
        return {"dif": self.dif, "dea": self.dea, "histogram": self.histogram}


@dataclass(frozen=True, slots=True)
class Splice(Generic[T]):
    """A change to a list of final items: truncate the list to ``start`` items (the JSON's
    ``from``), then append ``items``."""

    start: int
    items: tuple[T, ...]

    def apply(self, items: list[T]) -> None:
        """Applies the change to ``items`` in place."""
        del items[self.start :]
        items.extend(self.items)

    def to_dict(self) -> Doc:
        items: tuple[Any, ...] = self.items
        return {"from": self.start, "items": [x.to_dict() for x in items]}


def _splice(d: Mapping[str, Any], kind: Any) -> Splice[Any]:
    return Splice(d["from"], tuple(kind.from_dict(x) for x in d["items"]))


@dataclass(frozen=True, slots=True)
class Tail:
    """The non-final segments, pivots and points (all unconfirmed)."""

    segments: tuple[Segment, ...]
    pivots: tuple[Pivot, ...]
    signals: tuple[Signal, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tail:
        return cls(
            tuple(Segment.from_dict(x) for x in d["segments"]),
            tuple(Pivot.from_dict(x) for x in d["pivots"]),
            tuple(Signal.from_dict(x) for x in d["signals"]),
        )

    def to_dict(self) -> Doc:
        return {
            "segments": [x.to_dict() for x in self.segments],
            "pivots": [x.to_dict() for x in self.pivots],
            "signals": [x.to_dict() for x in self.signals],
        }


@dataclass(frozen=True, slots=True)
class Degree:
    """One degree of the structure (§13): its segments, pivots and buy/sell points. Degree 1 is
    built on pens (the analysis' top-level lists); degree ``n + 1``, segments of segments
    (线段的线段), on the degree-``n`` segments read as strokes: its items' ``first_pen``,
    ``last_pen`` and ``pen`` number those strokes, ``segment`` and ``pivot`` its own lists."""

    degree: int
    segments: tuple[Segment, ...]
    pivots: tuple[Pivot, ...]
    signals: tuple[Signal, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Degree:
        # The same three lists as a tail's.
        lists = Tail.from_dict(d)
        return cls(d["degree"], lists.segments, lists.pivots, lists.signals)

    def to_dict(self) -> Doc:
        """The entry of the document's ``degrees`` list (§12.6)."""
        lists = Tail(self.segments, self.pivots, self.signals)
        return {"degree": self.degree, **lists.to_dict()}


@dataclass(frozen=True, slots=True)
class DegreeUpdate:
    """What one stream message changed at one degree (§12.7): splices of its settled
    ``segments``, ``pivots`` and ``signals``, and its ``tail`` when it changed (``None``
    otherwise). A client keeps each higher degree (线段的线段) as it keeps degree 1."""

    degree: int
    segments: Splice[Segment]
    pivots: Splice[Pivot]
    signals: Splice[Signal]
    tail: Tail | None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DegreeUpdate:
        t = d["tail"]
        return cls(
            d["degree"],
            _splice(d["segments"], Segment),
            _splice(d["pivots"], Pivot),
            _splice(d["signals"], Signal),
            None if t is None else Tail.from_dict(t),
        )

    def to_dict(self) -> Doc:
        """The entry of the update document's ``degrees`` list (§12.7)."""
        return {
            "degree": self.degree,
            "segments": self.segments.to_dict(),
            "pivots": self.pivots.to_dict(),
            "signals": self.signals.to_dict(),
            "tail": None if self.tail is None else self.tail.to_dict(),
        }


def _pick(degree: int, higher: Sequence[Any]) -> Any:
    """Degree ``degree`` of ``higher``, degrees 2.. in order."""
    if not 2 <= degree <= len(higher) + 1:
        raise ValueError(f"no degree {degree}: this result has degrees 1 to {len(higher) + 1}")
    found = higher[degree - 2]
    assert found.degree == degree, "degrees are listed in order from 2"
    return found


# --- From the native module: its typed results (trading_system.native) as the classes above ---


def _point_from_native(p: Any) -> Point:
    return Point(p.index, p.time, p.price)


def _fractal_from_native(f: Any) -> Fractal:
    return Fractal(f.kind, f.merged_index, f.index, f.time, f.price)


def _pen_from_native(p: Any) -> Pen:
    return Pen(p.direction, _point_from_native(p.start), _point_from_native(p.end), p.final)


def _segment_from_native(s: Any) -> Segment:
    return Segment(
        s.direction,
        _point_from_native(s.start),
        _point_from_native(s.end),
        s.first_pen,
        s.last_pen,
        s.confirmed,
        s.gap,
    )


def _pivot_from_native(z: Any) -> Pivot:
    return Pivot(
        z.segment,
        z.first_pen,
        z.last_pen,
        z.zd,
        z.zg,
        z.dd,
        z.gg,
        _point_from_native(z.start),
        _point_from_native(z.end),
        z.confirmed,
    )


def _signal_from_native(g: Any) -> Signal:
    return Signal(*(getattr(g, k) for k in _SIGNAL_KEYS))


def _repair_from_native(r: Any) -> Repair:
    return Repair(r.index, r.old_high, r.old_low, r.new_high, r.new_low)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _macd_from_native(m: Any) -> Macd:
    return Macd(_readonly(m.dif), _readonly(m.dea), _readonly(m.histogram))


def _pen_or_none(p: Any) -> Pen | None:
    return None if p is None else _pen_from_native(p)


def _splice_from_native(s: Any, convert: Any) -> Splice[Any]:
    return Splice(s.start, tuple(map(convert, s.items)))


def _tail_from_native(t: Any) -> Tail:
    return Tail(
        tuple(map(_segment_from_native, t.segments)),
        tuple(map(_pivot_from_native, t.pivots)),
        tuple(map(_signal_from_native, t.signals)),
    )


def _degree_from_native(d: Any) -> Degree:
    return Degree(
        d.degree,
        tuple(map(_segment_from_native, d.segments)),
        tuple(map(_pivot_from_native, d.pivots)),
        tuple(map(_signal_from_native, d.signals)),
    )


def _degree_update_from_native(d: Any) -> DegreeUpdate:
    t = d.tail
    return DegreeUpdate(
        d.degree,
        _splice_from_native(d.segments, _segment_from_native),
        _splice_from_native(d.pivots, _pivot_from_native),
        _splice_from_native(d.signals, _signal_from_native),
        None if t is None else _tail_from_native(t),
    )


# --- Documents ---------------------------------------------------------------------------------


class _Document:
    """A document given as a dict, as JSON text or as a result of the native module (the Rust
    engine's ``Analysis`` or ``Update``), rendered as a dict only when asked for (a caller who
    reads the typed views or only forwards the text never pays for the parse)."""

    _native: Any = None
    _text: str | None = None

    def __init__(
        self,
        document: Mapping[str, Any] | None = None,
        text: str | None = None,
        *,
        native: Any = None,
    ) -> None:
        if document is None and text is None and native is None:
            raise TypeError("a document, its JSON text or a native result is required")
        if document is not None:
            self.__dict__["_doc"] = document  # the cached_property's slot
        self._text = text
        self._native = native

    @classmethod
    def of_native(cls, native: Any) -> Self:
        """Wraps a result of the native module (the fast path of a session's every call)."""
        self = cls.__new__(cls)
        self._native = native
        return self

    @cached_property
    def _doc(self) -> Doc:
        doc: Doc = json.loads(self.to_json())
        return doc

    def to_dict(self) -> Doc:
        """The document itself (not a copy: copy it before changing it)."""
        return self._doc

    def to_json(self, indent: int | None = None) -> str:
        """The document as JSON text."""
        if indent is None:
            if self._text is not None:
                return self._text
            if self._native is not None:
                text: str = self._native.to_json()
                return text
        # Compact like the Rust engine's output unless an indent is asked for.
        seps = (",", ":") if indent is None else None
        return json.dumps(self._doc, indent=indent, separators=seps, ensure_ascii=False)

    def __getstate__(self) -> dict[str, Any]:
        # A native result does not pickle: its document does.
        state = self.__dict__.copy()
        if state.get("_native") is not None:
            state["_doc"] = self._doc
            state["_native"] = None
        return state


class Analysis(_Document):
    """The result of an analysis: the analysis document (§12.6) with typed, lazily built
    views, the zone of its series (``tz``, an IANA name: every output shows times in it) and,
    when :func:`~trading_system.api.analyze` made it, the bars it analyzed (``source_bars``).
    Degree 1's segments, pivots and points are the top-level lists; the higher degrees
    (segments of segments, 线段的线段, §13) are :attr:`degrees`.

    The document's own times stay ISO-8601 UTC (both engines write them so); :meth:`to_frames`
    gives every kind as a DataFrame with tz-aware times in ``tz``."""

    tz: str = "UTC"
    """The series' time zone (IANA name); ``UTC`` unless the bars said otherwise."""
    source_bars: Bars | None = None
    """The bars analyzed, when known (``analyze`` keeps them; a document read back from JSON or
    a session's state does not have them)."""

    def __init__(
        self,
        document: Mapping[str, Any] | None = None,
        text: str | None = None,
        *,
        native: Any = None,
        tz: str = "UTC",
        source_bars: Bars | None = None,
    ) -> None:
        super().__init__(document, text, native=native)
        self.tz = check_zone(tz)
        self.source_bars = source_bars

    def in_zone(self, tz: str, source_bars: Bars | None = None) -> Self:
        """This analysis with its series' zone (and bars, when given) set; returns ``self``."""
        self.tz = check_zone(tz)
        if source_bars is not None:
            self.source_bars = source_bars
        return self

    def to_frames(self, bars: Bars | None = None) -> dict[str, pd.DataFrame]:
        """One pandas DataFrame per kind — ``bars``, ``fractals``, ``pens``, ``segments``,
        ``pivots``, ``signals`` — with the columns and dtypes of
        :data:`trading_system.frames.FRAME_COLUMNS` and tz-aware times in :attr:`tz`.
        ``bars``: the bars analyzed, when this analysis does not hold them (``source_bars``);
        without either the ``bars`` frame has its rows and MACD but no times or prices."""
        from trading_system.frames import to_frames

        return to_frames(self, bars)

    @property
    def bars(self) -> int:
        """Number of raw bars."""
        if self._native is not None:
            return int(self._native.bars)
        return int(self._doc["bars"])

    @property
    def merged_bars(self) -> int:
        """Number of bars after inclusion handling (包含处理)."""
        if self._native is not None:
            return int(self._native.merged_bars)
        return int(self._doc["merged_bars"])

    @cached_property
    def fractals(self) -> tuple[Fractal, ...]:
        if self._native is not None:
            return tuple(map(_fractal_from_native, self._native.fractals))
        return tuple(Fractal.from_dict(x) for x in self._doc["fractals"])

    @cached_property
    def pens(self) -> tuple[Pen, ...]:
        """Every pen; all but the last are final."""
        if self._native is not None:
            return tuple(map(_pen_from_native, self._native.pens))
        return tuple(Pen.from_dict(x) for x in self._doc["pens"])

    @cached_property
    def forming_pen(self) -> Pen | None:
        if self._native is not None:
            return _pen_or_none(self._native.forming_pen)
        d = self._doc["forming_pen"]
        return None if d is None else Pen.from_dict(d)

    @cached_property
    def segments(self) -> tuple[Segment, ...]:
        """Confirmed segments first, then the non-confirmed tail."""
        if self._native is not None:
            return tuple(map(_segment_from_native, self._native.segments))
        return tuple(Segment.from_dict(x) for x in self._doc["segments"])

    @cached_property
    def pivots(self) -> tuple[Pivot, ...]:
        if self._native is not None:
            return tuple(map(_pivot_from_native, self._native.pivots))
        return tuple(Pivot.from_dict(x) for x in self._doc["pivots"])

    @cached_property
    def signals(self) -> tuple[Signal, ...]:
        if self._native is not None:
            return tuple(map(_signal_from_native, self._native.signals))
        return tuple(Signal.from_dict(x) for x in self._doc["signals"])

    @cached_property
    def degrees(self) -> tuple[Degree, ...]:
        """The higher degrees 2..``structure.degrees`` (§13, segments of segments 线段的线段), in
        order; empty when ``structure.degrees`` is 1. Degree 1 is :attr:`segments`,
        :attr:`pivots` and :attr:`signals` (:meth:`degree` gives every degree alike)."""
        if self._native is not None:
            return tuple(map(_degree_from_native, self._native.degrees))
        return tuple(Degree.from_dict(x) for x in self._doc["degrees"])

    def degree(self, n: int) -> Degree:
        """Degree ``n``: 1 is built on pens (the top-level :attr:`segments`, :attr:`pivots`,
        :attr:`signals`), 2.. are :attr:`degrees`. ValueError for a degree not built."""
        if n == 1:
            return Degree(1, self.segments, self.pivots, self.signals)
        return _pick(n, self.degrees)

    @cached_property
    def macd(self) -> Macd | None:
        """The MACD series (only when asked for with ``with_macd``)."""
        if self._native is not None:
            m = self._native.macd
            return None if m is None else _macd_from_native(m)
        d = self._doc.get("macd")
        return None if d is None else Macd.from_dict(d)

    @cached_property
    def repairs(self) -> tuple[Repair, ...]:
        if self._native is not None:
            return tuple(map(_repair_from_native, self._native.repairs))
        return tuple(Repair.from_dict(x) for x in self._doc["repairs"])

    @cached_property
    def config(self) -> EngineConfig:
        """The configuration the analysis used."""
        if self._native is not None:
            return EngineConfig.model_validate(json.loads(self._native.config_json()))
        return EngineConfig.model_validate(self._doc["config"])

    def _counts(self) -> dict[str, int]:
        if self._native is not None:
            counts: dict[str, int] = self._native.counts()
            return counts
        d = self._doc
        lists = ("fractals", "pens", "segments", "pivots", "signals")
        return {"bars": d["bars"], "merged_bars": d["merged_bars"]} | {k: len(d[k]) for k in lists}

    def __repr__(self) -> str:
        c = self._counts()
        return (
            f"Analysis(bars={c['bars']}, merged_bars={c['merged_bars']}, "
            f"fractals={c['fractals']}, pens={c['pens']}, "
            f"segments={c['segments']}, pivots={c['pivots']}, "
            f"signals={c['signals']})"
        )


class Update(_Document):
    """What one stream message changed (§12.7): splices of the final lists (``fractals``,
    ``pens`` holding the final pens, ``segments``, ``pivots``, ``signals``), the last and the
    forming pen, the tail when it changed (``None`` otherwise), and the same splices and tail
    for each higher degree (``degrees``, §13)."""

    @property
    def index(self) -> int:
        """The index of the bar appended or replaced."""
        if self._native is not None:
            return int(self._native.index)
        return int(self._doc["index"])

    @property
    def replaced(self) -> bool:
        if self._native is not None:
            return bool(self._native.replaced)
        return bool(self._doc["replaced"])

    @property
    def repaired(self) -> bool:
        """The bar's high/low were repaired (``validation.repair``)."""
        if self._native is not None:
            return bool(self._native.repaired)
        return bool(self._doc["repaired"])

    @property
    def bars(self) -> int:
        if self._native is not None:
            return int(self._native.bars)
        return int(self._doc["bars"])

    @property
    def merged_bars(self) -> int:
        if self._native is not None:
            return int(self._native.merged_bars)
        return int(self._doc["merged_bars"])

    @cached_property
    def macd(self) -> MacdPoint:
        if self._native is not None:
            m = self._native.macd
            return MacdPoint(m.dif, m.dea, m.histogram)
        return MacdPoint.from_dict(self._doc["macd"])

    @cached_property
    def fractals(self) -> Splice[Fractal]:
        if self._native is not None:
            return _splice_from_native(self._native.fractals, _fractal_from_native)
        return _splice(self._doc["fractals"], Fractal)

    @cached_property
    def pens(self) -> Splice[Pen]:
        """Final pens (every pen but the last)."""
        if self._native is not None:
            return _splice_from_native(self._native.pens, _pen_from_native)
        return _splice(self._doc["pens"], Pen)

    @cached_property
    def segments(self) -> Splice[Segment]:
        if self._native is not None:
            return _splice_from_native(self._native.segments, _segment_from_native)
        return _splice(self._doc["segments"], Segment)

    @cached_property
    def pivots(self) -> Splice[Pivot]:
        if self._native is not None:
            return _splice_from_native(self._native.pivots, _pivot_from_native)
        return _splice(self._doc["pivots"], Pivot)

    @cached_property
    def signals(self) -> Splice[Signal]:
        if self._native is not None:
            return _splice_from_native(self._native.signals, _signal_from_native)
        return _splice(self._doc["signals"], Signal)

    @cached_property
    def last_pen(self) -> Pen | None:
        if self._native is not None:
            return _pen_or_none(self._native.last_pen)
        d = self._doc["last_pen"]
        return None if d is None else Pen.from_dict(d)

    @cached_property
    def forming_pen(self) -> Pen | None:
        if self._native is not None:
            return _pen_or_none(self._native.forming_pen)
        d = self._doc["forming_pen"]
        return None if d is None else Pen.from_dict(d)

    @cached_property
    def tail(self) -> Tail | None:
        if self._native is not None:
            t = self._native.tail
            return None if t is None else _tail_from_native(t)
        d = self._doc["tail"]
        return None if d is None else Tail.from_dict(d)

    @cached_property
    def degrees(self) -> tuple[DegreeUpdate, ...]:
        """What the message changed at each higher degree 2..``structure.degrees`` (§13,
        segments of segments 线段的线段), in order, every degree in every update (empty when
        ``structure.degrees`` is 1). Degree 1 is :attr:`segments`, :attr:`pivots`,
        :attr:`signals` and :attr:`tail` (:meth:`degree` gives every degree alike)."""
        if self._native is not None:
            return tuple(map(_degree_update_from_native, self._native.degrees))
        return tuple(DegreeUpdate.from_dict(x) for x in self._doc["degrees"])

    def degree(self, n: int) -> DegreeUpdate:
        """What the message changed at degree ``n``: 1 is the top-level :attr:`segments`,
        :attr:`pivots`, :attr:`signals` and :attr:`tail`, 2.. are :attr:`degrees`. ValueError
        for a degree not built."""
        if n == 1:
            return DegreeUpdate(1, self.segments, self.pivots, self.signals, self.tail)
        return _pick(n, self.degrees)

    def __repr__(self) -> str:
        return (
            f"Update(index={self.index}, replaced={self.replaced}, bars={self.bars}, "
            f"pens=+{len(self.pens.items)}@{self.pens.start}, "
            f"tail={'changed' if self.tail is not None else 'same'})"
        )
