"""Types of ``trading_system.native``, the Rust core through PyO3 (rust-core/chan-py).

Results are frozen objects: the analysis document (docs/CHAN_THEORY.md §12.6) and the update
document (§12.7) field by field, names as in the JSON (``final``, ``type``). Every read of an
attribute that holds objects or arrays gives new ones; equal items compare equal."""

from typing import Generic, Literal, TypeVar, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "__version__",
    "Analysis",
    "ConfigError",
    "Degree",
    "DegreeUpdate",
    "Fractal",
    "InvalidBars",
    "Macd",
    "MacdPoint",
    "Pen",
    "Pivot",
    "Point",
    "Repair",
    "Segment",
    "Session",
    "Signal",
    "Splice",
    "StateError",
    "Tail",
    "Update",
    "analyze",
]

_T = TypeVar("_T")

class InvalidBars(ValueError):
    """Bars that break a rule of spec §1; nothing was applied. ``args``: ``(message,
    violations_json)``, a JSON list of ``{index, field, rule, message}``."""

class ConfigError(ValueError):
    """An unknown, mistyped or out-of-range configuration key. ``args``: ``(message, key)``."""

class StateError(RuntimeError):
    """A call the session's state does not allow (replace_last on an empty session)."""

@final
class Point:
    """A point on the chart: raw bar index, its time (ISO-8601 UTC) and a price."""

    @property
    def index(self) -> int: ...
    @property
    def time(self) -> str: ...
    @property
    def price(self) -> float: ...

@final
class Fractal:
    """A fractal (分型): ``kind`` ``"top"`` (顶分型) or ``"bottom"`` (底分型)."""

    @property
    def kind(self) -> str: ...
    @property
    def merged_index(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def time(self) -> str: ...
    @property
    def price(self) -> float: ...

@final
class Pen:
    """A pen (笔); ``final`` is ``None`` for the forming pen."""

    @property
    def direction(self) -> str: ...
    @property
    def start(self) -> Point: ...
    @property
    def end(self) -> Point: ...
    @property
    def final(self) -> bool | None: ...

@final
class Degree:
    """One higher degree (§13): its segments, pivots and points; ``first_pen``, ``last_pen``
    and ``pen`` index that degree's strokes."""

    @property
    def degree(self) -> int: ...
    @property
    def segments(self) -> tuple[Segment, ...]: ...
    @property
    def pivots(self) -> tuple[Pivot, ...]: ...
    @property
    def signals(self) -> tuple[Signal, ...]: ...

@final
class Segment:
    """A segment (线段) of at least three pens."""

    @property
    def direction(self) -> str: ...
    @property
    def start(self) -> Point: ...
    @property
    def end(self) -> Point: ...
    @property
    def first_pen(self) -> int: ...
    @property
    def last_pen(self) -> int: ...
    @property
    def confirmed(self) -> bool: ...
    @property
    def gap(self) -> bool: ...

@final
class Pivot:
    """A pivot (中枢): the overlap ``zd..zg`` of its pens and their range ``dd..gg``."""

    @property
    def segment(self) -> int: ...
    @property
    def first_pen(self) -> int: ...
    @property
    def last_pen(self) -> int: ...
    @property
    def zd(self) -> float: ...
    @property
    def zg(self) -> float: ...
    @property
    def dd(self) -> float: ...
    @property
    def gg(self) -> float: ...
    @property
    def start(self) -> Point: ...
    @property
    def end(self) -> Point: ...
    @property
    def confirmed(self) -> bool: ...

@final
class Signal:
    """A buy/sell point (买卖点) at the end of pen ``pen``, with what it was derived from (the
    document's fields, docs/CHAN_THEORY.md §12.6)."""

    @property
    def type(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def pen(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def time(self) -> str: ...
    @property
    def price(self) -> float: ...
    @property
    def final(self) -> bool: ...
    @property
    def pivot(self) -> int: ...
    @property
    def zd(self) -> float: ...
    @property
    def zg(self) -> float: ...
    @property
    def entering_strength(self) -> float | None: ...
    @property
    def leaving_strength(self) -> float | None: ...
    @property
    def ratio(self) -> float | None: ...
    @property
    def follows(self) -> int | None: ...
    @property
    def edge(self) -> Literal["zd", "zg"] | None: ...

@final
class Repair:
    """A bar whose high/low were widened to cover open/close (``validation.repair``)."""

    @property
    def index(self) -> int: ...
    @property
    def old_high(self) -> float: ...
    @property
    def old_low(self) -> float: ...
    @property
    def new_high(self) -> float: ...
    @property
    def new_low(self) -> float: ...

@final
class MacdPoint:
    """The MACD of one bar; ``None`` where absent."""

    @property
    def dif(self) -> float | None: ...
    @property
    def dea(self) -> float | None: ...
    @property
    def histogram(self) -> float | None: ...

@final
class Macd:
    """The MACD series per raw bar; NaN where a value is absent."""

    @property
    def dif(self) -> npt.NDArray[np.float64]: ...
    @property
    def dea(self) -> npt.NDArray[np.float64]: ...
    @property
    def histogram(self) -> npt.NDArray[np.float64]: ...
    def __len__(self) -> int: ...

@final
class Splice(Generic[_T]):
    """A change to a list of final items: truncate it to ``start`` items (the document's
    ``from``), then append ``items``."""

    @property
    def start(self) -> int: ...
    @property
    def items(self) -> tuple[_T, ...]: ...

@final
class Tail:
    """The non-final segments, pivots and points (all unconfirmed)."""

    @property
    def segments(self) -> tuple[Segment, ...]: ...
    @property
    def pivots(self) -> tuple[Pivot, ...]: ...
    @property
    def signals(self) -> tuple[Signal, ...]: ...

@final
class Analysis:
    """The structure of a series; the typed views are rendered on the first one read."""

    @property
    def bars(self) -> int: ...
    @property
    def merged_bars(self) -> int: ...
    @property
    def fractals(self) -> tuple[Fractal, ...]: ...
    @property
    def pens(self) -> tuple[Pen, ...]: ...
    @property
    def forming_pen(self) -> Pen | None: ...
    @property
    def segments(self) -> tuple[Segment, ...]: ...
    @property
    def pivots(self) -> tuple[Pivot, ...]: ...
    @property
    def signals(self) -> tuple[Signal, ...]: ...
    @property
    def degrees(self) -> tuple[Degree, ...]: ...
    @property
    def macd(self) -> Macd | None: ...
    @property
    def repairs(self) -> tuple[Repair, ...]: ...
    def config_json(self) -> str:
        """The configuration the analysis used, as JSON."""
    def counts(self) -> dict[str, int]:
        """The lengths of the document's lists."""
    def to_json(self) -> str:
        """The analysis document: exactly what ``trading-engine analyze`` prints."""

@final
class Update:
    """What one session call changed; everything but the index, flags, counts and MACD is
    rendered on first read (and before the session changes again, while this is alive)."""

    @property
    def index(self) -> int: ...
    @property
    def replaced(self) -> bool: ...
    @property
    def repaired(self) -> bool: ...
    @property
    def bars(self) -> int: ...
    @property
    def merged_bars(self) -> int: ...
    @property
    def macd(self) -> MacdPoint: ...
    @property
    def fractals(self) -> Splice[Fractal]: ...
    @property
    def pens(self) -> Splice[Pen]: ...
    @property
    def segments(self) -> Splice[Segment]: ...
    @property
    def pivots(self) -> Splice[Pivot]: ...
    @property
    def signals(self) -> Splice[Signal]: ...
    @property
    def last_pen(self) -> Pen | None: ...
    @property
    def forming_pen(self) -> Pen | None: ...
    @property
    def tail(self) -> Tail | None: ...
    @property
    def degrees(self) -> tuple[DegreeUpdate, ...]:
        """Degrees 2..``structure.degrees`` (§13), in order: what the call changed at each."""
    def to_json(self) -> str:
        """The update document as JSON."""

@final
class DegreeUpdate:
    """What one call changed at a higher degree (§13), spliced and replaced as degree 1's."""

    @property
    def degree(self) -> int: ...
    @property
    def segments(self) -> Splice[Segment]: ...
    @property
    def pivots(self) -> Splice[Pivot]: ...
    @property
    def signals(self) -> Splice[Signal]: ...
    @property
    def tail(self) -> Tail | None: ...

@final
class Session:
    """An incremental session: append bars, replace the last one, read the analysis."""

    def __new__(cls, config: str | None = None, with_macd: bool = False) -> Session: ...
    def append(
        self, time: int, open: float, high: float, low: float, close: float, volume: float
    ) -> Update: ...
    def replace_last(
        self, time: int, open: float, high: float, low: float, close: float, volume: float
    ) -> Update: ...
    def analysis(self) -> Analysis:
        """The analysis so far (a snapshot)."""
    def to_json(self) -> str:
        """The analysis document so far."""
    @property
    def bars(self) -> int: ...

def analyze(
    time: npt.NDArray[np.int64],
    open: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    low: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    volume: npt.NDArray[np.float64],
    config: str | None = None,
    with_macd: bool = False,
) -> Analysis:
    """Analyzes a whole series (the GIL is released while it runs)."""
