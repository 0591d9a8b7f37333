"""Typed results: the analysis document (docs/CHAN_THEORY.md §12.6) and the update document
(§12.7) as frozen dataclasses. Field names are those of the JSON (``final``, ``type`` …) and
every object's ``to_dict()`` gives its JSON form back exactly. :class:`Analysis` and
:class:`Update` keep the document and build the typed lists on first access, so a batch
analysis does not pay for objects nobody reads."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar

import numpy as np

from trading_system.config import EngineConfig
from trading_system.data import parse_time

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
    ``pen``; ``final`` once it can no longer change."""

    type: str
    side: str
    pen: int
    index: int
    time: str
    price: float
    final: bool

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signal:
        return cls(d["type"], d["side"], d["pen"], d["index"], d["time"], d["price"], d["final"])

    def to_dict(self) -> Doc:
        return {
            "type": self.type,
            "side": self.side,
            "pen": self.pen,
            "index": self.index,
            "time": self.time,
            "price": self.price,
            "final": self.final,
        }


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


class _Document:
    """A document given as a dict or as JSON text, parsed on first use (the Rust engine answers
    in JSON; a caller who only forwards it never pays for the parse)."""

    def __init__(self, document: Doc | None = None, text: str | None = None) -> None:
        if document is None and text is None:
            raise TypeError("a document or its JSON text is required")
        if document is not None:
            self.__dict__["_doc"] = document  # the cached_property's slot
        self._text = text

    @cached_property
    def _doc(self) -> Doc:
        doc: Doc = json.loads(self._text or "null")
        return doc

    def to_dict(self) -> Doc:
        """The document itself (not a copy: copy it before changing it)."""
        return self._doc

    def to_json(self, indent: int | None = None) -> str:
        """The document as JSON text."""
        if indent is None and self._text is not None:
            return self._text
        # Compact like the Rust engine's output unless an indent is asked for.
        seps = (",", ":") if indent is None else None
        return json.dumps(self._doc, indent=indent, separators=seps, ensure_ascii=False)


class Analysis(_Document):
    """The result of an analysis: the analysis document (§12.6) with typed, lazily built
    views."""

    @property
    def bars(self) -> int:
        """Number of raw bars."""
        return int(self._doc["bars"])

    @property
    def merged_bars(self) -> int:
        """Number of bars after inclusion handling (包含处理)."""
        return int(self._doc["merged_bars"])

    @cached_property
    def fractals(self) -> tuple[Fractal, ...]:
        return tuple(Fractal.from_dict(x) for x in self._doc["fractals"])

    @cached_property
    def pens(self) -> tuple[Pen, ...]:
        """Every pen; all but the last are final."""
        return tuple(Pen.from_dict(x) for x in self._doc["pens"])

    @cached_property
    def forming_pen(self) -> Pen | None:
        d = self._doc["forming_pen"]
        return None if d is None else Pen.from_dict(d)

    @cached_property
    def segments(self) -> tuple[Segment, ...]:
        """Confirmed segments first, then the non-confirmed tail."""
        return tuple(Segment.from_dict(x) for x in self._doc["segments"])

    @cached_property
    def pivots(self) -> tuple[Pivot, ...]:
        return tuple(Pivot.from_dict(x) for x in self._doc["pivots"])

    @cached_property
    def signals(self) -> tuple[Signal, ...]:
        return tuple(Signal.from_dict(x) for x in self._doc["signals"])

    @cached_property
    def macd(self) -> Macd | None:
        """The MACD series (only when asked for with ``with_macd``)."""
        d = self._doc.get("macd")
        return None if d is None else Macd.from_dict(d)

    @cached_property
    def repairs(self) -> tuple[Repair, ...]:
        return tuple(Repair.from_dict(x) for x in self._doc["repairs"])

    @cached_property
    def config(self) -> EngineConfig:
        """The configuration the analysis used."""
        return EngineConfig.model_validate(self._doc["config"])

    def __repr__(self) -> str:
        d = self._doc
        return (
            f"Analysis(bars={d['bars']}, merged_bars={d['merged_bars']}, "
            f"fractals={len(d['fractals'])}, pens={len(d['pens'])}, "
            f"segments={len(d['segments'])}, pivots={len(d['pivots'])}, "
            f"signals={len(d['signals'])})"
        )


class Update(_Document):
    """What one stream message changed (§12.7): splices of the final lists (``fractals``,
    ``pens`` holding the final pens, ``segments``, ``pivots``, ``signals``), the last and the
    forming pen, and the tail when it changed (``None`` otherwise)."""

    @property
    def index(self) -> int:
        """The index of the bar appended or replaced."""
        return int(self._doc["index"])

    @property
    def replaced(self) -> bool:
        return bool(self._doc["replaced"])

    @property
    def repaired(self) -> bool:
        """The bar's high/low were repaired (``validation.repair``)."""
        return bool(self._doc["repaired"])

    @property
    def bars(self) -> int:
        return int(self._doc["bars"])

    @property
    def merged_bars(self) -> int:
        return int(self._doc["merged_bars"])

    @cached_property
    def macd(self) -> MacdPoint:
        return MacdPoint.from_dict(self._doc["macd"])

    @cached_property
    def fractals(self) -> Splice[Fractal]:
        return _splice(self._doc["fractals"], Fractal)

    @cached_property
    def pens(self) -> Splice[Pen]:
        """Final pens (every pen but the last)."""
        return _splice(self._doc["pens"], Pen)

    @cached_property
    def segments(self) -> Splice[Segment]:
        return _splice(self._doc["segments"], Segment)

    @cached_property
    def pivots(self) -> Splice[Pivot]:
        return _splice(self._doc["pivots"], Pivot)

    @cached_property
    def signals(self) -> Splice[Signal]:
        return _splice(self._doc["signals"], Signal)

    @cached_property
    def last_pen(self) -> Pen | None:
        d = self._doc["last_pen"]
        return None if d is None else Pen.from_dict(d)

    @cached_property
    def forming_pen(self) -> Pen | None:
        d = self._doc["forming_pen"]
        return None if d is None else Pen.from_dict(d)

    @cached_property
    def tail(self) -> Tail | None:
        d = self._doc["tail"]
        return None if d is None else Tail.from_dict(d)

    def __repr__(self) -> str:
        d = self._doc
        return (
            f"Update(index={d['index']}, replaced={d['replaced']}, bars={d['bars']}, "
            f"pens=+{len(d['pens']['items'])}@{d['pens']['from']}, "
            f"tail={'changed' if d['tail'] is not None else 'same'})"
        )
