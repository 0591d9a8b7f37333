from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    UP: _ClassVar[Direction]
    DOWN: _ClassVar[Direction]

class FractalKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRACTAL_KIND_UNSPECIFIED: _ClassVar[FractalKind]
    TOP: _ClassVar[FractalKind]
    BOTTOM: _ClassVar[FractalKind]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    BUY: _ClassVar[Side]
    SELL: _ClassVar[Side]

class PivotEdge(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIVOT_EDGE_UNSPECIFIED: _ClassVar[PivotEdge]
    ZD: _ClassVar[PivotEdge]
    ZG: _ClassVar[PivotEdge]

class Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OP_UNSPECIFIED: _ClassVar[Op]
    APPEND: _ClassVar[Op]
    REPLACE_LAST: _ClassVar[Op]
DIRECTION_UNSPECIFIED: Direction
UP: Direction
DOWN: Direction
FRACTAL_KIND_UNSPECIFIED: FractalKind
TOP: FractalKind
BOTTOM: FractalKind
SIDE_UNSPECIFIED: Side
BUY: Side
SELL: Side
PIVOT_EDGE_UNSPECIFIED: PivotEdge
ZD: PivotEdge
ZG: PivotEdge
OP_UNSPECIFIED: Op
APPEND: Op
REPLACE_LAST: Op

class Bars(_message.Message):
    __slots__ = ("time", "open", "high", "low", "close", "volume")
    TIME_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    time: _containers.RepeatedScalarFieldContainer[int]
    open: _containers.RepeatedScalarFieldContainer[float]
    high: _containers.RepeatedScalarFieldContainer[float]
    low: _containers.RepeatedScalarFieldContainer[float]
    close: _containers.RepeatedScalarFieldContainer[float]
    volume: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, time: _Optional[_Iterable[int]] = ..., open: _Optional[_Iterable[float]] = ..., high: _Optional[_Iterable[float]] = ..., low: _Optional[_Iterable[float]] = ..., close: _Optional[_Iterable[float]] = ..., volume: _Optional[_Iterable[float]] = ...) -> None: ...

class Bar(_message.Message):
    __slots__ = ("time", "open", "high", "low", "close", "volume")
    TIME_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    def __init__(self, time: _Optional[int] = ..., open: _Optional[float] = ..., high: _Optional[float] = ..., low: _Optional[float] = ..., close: _Optional[float] = ..., volume: _Optional[float] = ...) -> None: ...

class ValidationConfig(_message.Message):
    __slots__ = ("allow_non_positive_prices", "repair")
    ALLOW_NON_POSITIVE_PRICES_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    allow_non_positive_prices: bool
    repair: bool
    def __init__(self, allow_non_positive_prices: _Optional[bool] = ..., repair: _Optional[bool] = ...) -> None: ...

class MacdConfig(_message.Message):
    __slots__ = ("fast_period", "slow_period", "signal_period", "histogram_scale", "seed")
    FAST_PERIOD_FIELD_NUMBER: _ClassVar[int]
    SLOW_PERIOD_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_PERIOD_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_SCALE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    fast_period: int
    slow_period: int
    signal_period: int
    histogram_scale: float
    seed: str
    def __init__(self, fast_period: _Optional[int] = ..., slow_period: _Optional[int] = ..., signal_period: _Optional[int] = ..., histogram_scale: _Optional[float] = ..., seed: _Optional[str] = ...) -> None: ...

class PenConfig(_message.Message):
    __slots__ = ("definition", "strict_validation")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    STRICT_VALIDATION_FIELD_NUMBER: _ClassVar[int]
    definition: str
    strict_validation: bool
    def __init__(self, definition: _Optional[str] = ..., strict_validation: _Optional[bool] = ...) -> None: ...

class SegmentConfig(_message.Message):
    __slots__ = ("feature_sequence_strict", "handle_inclusion")
    FEATURE_SEQUENCE_STRICT_FIELD_NUMBER: _ClassVar[int]
    HANDLE_INCLUSION_FIELD_NUMBER: _ClassVar[int]
    feature_sequence_strict: bool
    handle_inclusion: bool
    def __init__(self, feature_sequence_strict: _Optional[bool] = ..., handle_inclusion: _Optional[bool] = ...) -> None: ...

class SignalConfig(_message.Message):
    __slots__ = ("strength", "divergence_rate", "min_pivots")
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    DIVERGENCE_RATE_FIELD_NUMBER: _ClassVar[int]
    MIN_PIVOTS_FIELD_NUMBER: _ClassVar[int]
    strength: str
    divergence_rate: float
    min_pivots: int
    def __init__(self, strength: _Optional[str] = ..., divergence_rate: _Optional[float] = ..., min_pivots: _Optional[int] = ...) -> None: ...

class StructureConfig(_message.Message):
    __slots__ = ("degrees",)
    DEGREES_FIELD_NUMBER: _ClassVar[int]
    degrees: int
    def __init__(self, degrees: _Optional[int] = ...) -> None: ...

class EngineConfig(_message.Message):
    __slots__ = ("validation", "macd", "pen", "segment", "signal", "structure")
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    MACD_FIELD_NUMBER: _ClassVar[int]
    PEN_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    validation: ValidationConfig
    macd: MacdConfig
    pen: PenConfig
    segment: SegmentConfig
    signal: SignalConfig
    structure: StructureConfig
    def __init__(self, validation: _Optional[_Union[ValidationConfig, _Mapping]] = ..., macd: _Optional[_Union[MacdConfig, _Mapping]] = ..., pen: _Optional[_Union[PenConfig, _Mapping]] = ..., segment: _Optional[_Union[SegmentConfig, _Mapping]] = ..., signal: _Optional[_Union[SignalConfig, _Mapping]] = ..., structure: _Optional[_Union[StructureConfig, _Mapping]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("index", "time", "price")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    index: int
    time: int
    price: float
    def __init__(self, index: _Optional[int] = ..., time: _Optional[int] = ..., price: _Optional[float] = ...) -> None: ...

class Fractal(_message.Message):
    __slots__ = ("kind", "merged_index", "point")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MERGED_INDEX_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    kind: FractalKind
    merged_index: int
    point: Point
    def __init__(self, kind: _Optional[_Union[FractalKind, str]] = ..., merged_index: _Optional[int] = ..., point: _Optional[_Union[Point, _Mapping]] = ...) -> None: ...

class Pen(_message.Message):
    __slots__ = ("direction", "start", "end", "final")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    start: Point
    end: Point
    final: bool
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., start: _Optional[_Union[Point, _Mapping]] = ..., end: _Optional[_Union[Point, _Mapping]] = ..., final: _Optional[bool] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("direction", "start", "end", "first_pen", "last_pen", "confirmed", "gap")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    FIRST_PEN_FIELD_NUMBER: _ClassVar[int]
    LAST_PEN_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    start: Point
    end: Point
    first_pen: int
    last_pen: int
    confirmed: bool
    gap: bool
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., start: _Optional[_Union[Point, _Mapping]] = ..., end: _Optional[_Union[Point, _Mapping]] = ..., first_pen: _Optional[int] = ..., last_pen: _Optional[int] = ..., confirmed: _Optional[bool] = ..., gap: _Optional[bool] = ...) -> None: ...

class Pivot(_message.Message):
    __slots__ = ("segment", "first_pen", "last_pen", "zd", "zg", "dd", "gg", "start", "end", "confirmed")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    FIRST_PEN_FIELD_NUMBER: _ClassVar[int]
    LAST_PEN_FIELD_NUMBER: _ClassVar[int]
    ZD_FIELD_NUMBER: _ClassVar[int]
    ZG_FIELD_NUMBER: _ClassVar[int]
    DD_FIELD_NUMBER: _ClassVar[int]
    GG_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
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
    def __init__(self, segment: _Optional[int] = ..., first_pen: _Optional[int] = ..., last_pen: _Optional[int] = ..., zd: _Optional[float] = ..., zg: _Optional[float] = ..., dd: _Optional[float] = ..., gg: _Optional[float] = ..., start: _Optional[_Union[Point, _Mapping]] = ..., end: _Optional[_Union[Point, _Mapping]] = ..., confirmed: _Optional[bool] = ...) -> None: ...

class Signal(_message.Message):
    __slots__ = ("type", "side", "pen", "point", "final", "pivot", "zd", "zg", "entering_strength", "leaving_strength", "ratio", "follows", "edge")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PEN_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    PIVOT_FIELD_NUMBER: _ClassVar[int]
    ZD_FIELD_NUMBER: _ClassVar[int]
    ZG_FIELD_NUMBER: _ClassVar[int]
    ENTERING_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    LEAVING_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    FOLLOWS_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    type: int
    side: Side
    pen: int
    point: Point
    final: bool
    pivot: int
    zd: float
    zg: float
    entering_strength: float
    leaving_strength: float
    ratio: float
    follows: int
    edge: PivotEdge
    def __init__(self, type: _Optional[int] = ..., side: _Optional[_Union[Side, str]] = ..., pen: _Optional[int] = ..., point: _Optional[_Union[Point, _Mapping]] = ..., final: _Optional[bool] = ..., pivot: _Optional[int] = ..., zd: _Optional[float] = ..., zg: _Optional[float] = ..., entering_strength: _Optional[float] = ..., leaving_strength: _Optional[float] = ..., ratio: _Optional[float] = ..., follows: _Optional[int] = ..., edge: _Optional[_Union[PivotEdge, str]] = ...) -> None: ...

class Macd(_message.Message):
    __slots__ = ("dif", "dea", "histogram")
    DIF_FIELD_NUMBER: _ClassVar[int]
    DEA_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    dif: _containers.RepeatedScalarFieldContainer[float]
    dea: _containers.RepeatedScalarFieldContainer[float]
    histogram: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, dif: _Optional[_Iterable[float]] = ..., dea: _Optional[_Iterable[float]] = ..., histogram: _Optional[_Iterable[float]] = ...) -> None: ...

class Repair(_message.Message):
    __slots__ = ("index", "old_high", "old_low", "new_high", "new_low")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OLD_HIGH_FIELD_NUMBER: _ClassVar[int]
    OLD_LOW_FIELD_NUMBER: _ClassVar[int]
    NEW_HIGH_FIELD_NUMBER: _ClassVar[int]
    NEW_LOW_FIELD_NUMBER: _ClassVar[int]
    index: int
    old_high: float
    old_low: float
    new_high: float
    new_low: float
    def __init__(self, index: _Optional[int] = ..., old_high: _Optional[float] = ..., old_low: _Optional[float] = ..., new_high: _Optional[float] = ..., new_low: _Optional[float] = ...) -> None: ...

class Analysis(_message.Message):
    __slots__ = ("bars", "merged_bars", "fractals", "pens", "forming_pen", "segments", "pivots", "signals", "macd", "repairs", "config", "degrees")
    BARS_FIELD_NUMBER: _ClassVar[int]
    MERGED_BARS_FIELD_NUMBER: _ClassVar[int]
    FRACTALS_FIELD_NUMBER: _ClassVar[int]
    PENS_FIELD_NUMBER: _ClassVar[int]
    FORMING_PEN_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    PIVOTS_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    MACD_FIELD_NUMBER: _ClassVar[int]
    REPAIRS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DEGREES_FIELD_NUMBER: _ClassVar[int]
    bars: int
    merged_bars: int
    fractals: _containers.RepeatedCompositeFieldContainer[Fractal]
    pens: _containers.RepeatedCompositeFieldContainer[Pen]
    forming_pen: Pen
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    pivots: _containers.RepeatedCompositeFieldContainer[Pivot]
    signals: _containers.RepeatedCompositeFieldContainer[Signal]
    macd: Macd
    repairs: _containers.RepeatedCompositeFieldContainer[Repair]
    config: EngineConfig
    degrees: _containers.RepeatedCompositeFieldContainer[Degree]
    def __init__(self, bars: _Optional[int] = ..., merged_bars: _Optional[int] = ..., fractals: _Optional[_Iterable[_Union[Fractal, _Mapping]]] = ..., pens: _Optional[_Iterable[_Union[Pen, _Mapping]]] = ..., forming_pen: _Optional[_Union[Pen, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., pivots: _Optional[_Iterable[_Union[Pivot, _Mapping]]] = ..., signals: _Optional[_Iterable[_Union[Signal, _Mapping]]] = ..., macd: _Optional[_Union[Macd, _Mapping]] = ..., repairs: _Optional[_Iterable[_Union[Repair, _Mapping]]] = ..., config: _Optional[_Union[EngineConfig, _Mapping]] = ..., degrees: _Optional[_Iterable[_Union[Degree, _Mapping]]] = ...) -> None: ...

class Degree(_message.Message):
    __slots__ = ("degree", "segments", "pivots", "signals")
    DEGREE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    PIVOTS_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    degree: int
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    pivots: _containers.RepeatedCompositeFieldContainer[Pivot]
    signals: _containers.RepeatedCompositeFieldContainer[Signal]
    def __init__(self, degree: _Optional[int] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., pivots: _Optional[_Iterable[_Union[Pivot, _Mapping]]] = ..., signals: _Optional[_Iterable[_Union[Signal, _Mapping]]] = ...) -> None: ...

class AnalyzeRequest(_message.Message):
    __slots__ = ("bars", "config", "with_macd")
    BARS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    WITH_MACD_FIELD_NUMBER: _ClassVar[int]
    bars: Bars
    config: EngineConfig
    with_macd: bool
    def __init__(self, bars: _Optional[_Union[Bars, _Mapping]] = ..., config: _Optional[_Union[EngineConfig, _Mapping]] = ..., with_macd: _Optional[bool] = ...) -> None: ...

class AnalyzeResponse(_message.Message):
    __slots__ = ("engine", "analysis", "epoch")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    engine: str
    analysis: Analysis
    epoch: int
    def __init__(self, engine: _Optional[str] = ..., analysis: _Optional[_Union[Analysis, _Mapping]] = ..., epoch: _Optional[int] = ...) -> None: ...

class OpenSession(_message.Message):
    __slots__ = ("symbol", "timeframe", "config", "with_macd", "resume")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    WITH_MACD_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: str
    config: EngineConfig
    with_macd: bool
    resume: bool
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[str] = ..., config: _Optional[_Union[EngineConfig, _Mapping]] = ..., with_macd: _Optional[bool] = ..., resume: _Optional[bool] = ...) -> None: ...

class BarMessage(_message.Message):
    __slots__ = ("seq", "op", "bar")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    BAR_FIELD_NUMBER: _ClassVar[int]
    seq: int
    op: Op
    bar: Bar
    def __init__(self, seq: _Optional[int] = ..., op: _Optional[_Union[Op, str]] = ..., bar: _Optional[_Union[Bar, _Mapping]] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("open", "bar")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    BAR_FIELD_NUMBER: _ClassVar[int]
    open: OpenSession
    bar: BarMessage
    def __init__(self, open: _Optional[_Union[OpenSession, _Mapping]] = ..., bar: _Optional[_Union[BarMessage, _Mapping]] = ...) -> None: ...

class Opened(_message.Message):
    __slots__ = ("session", "last_seq", "bars", "resumed", "config")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    BARS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    session: str
    last_seq: int
    bars: int
    resumed: bool
    config: EngineConfig
    def __init__(self, session: _Optional[str] = ..., last_seq: _Optional[int] = ..., bars: _Optional[int] = ..., resumed: _Optional[bool] = ..., config: _Optional[_Union[EngineConfig, _Mapping]] = ...) -> None: ...

class FractalSplice(_message.Message):
    __slots__ = ("items",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Fractal]
    def __init__(self, items: _Optional[_Iterable[_Union[Fractal, _Mapping]]] = ..., **kwargs) -> None: ...

class PenSplice(_message.Message):
    __slots__ = ("items",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Pen]
    def __init__(self, items: _Optional[_Iterable[_Union[Pen, _Mapping]]] = ..., **kwargs) -> None: ...

class SegmentSplice(_message.Message):
    __slots__ = ("items",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Segment]
    def __init__(self, items: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., **kwargs) -> None: ...

class PivotSplice(_message.Message):
    __slots__ = ("items",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Pivot]
    def __init__(self, items: _Optional[_Iterable[_Union[Pivot, _Mapping]]] = ..., **kwargs) -> None: ...

class SignalSplice(_message.Message):
    __slots__ = ("items",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Signal]
    def __init__(self, items: _Optional[_Iterable[_Union[Signal, _Mapping]]] = ..., **kwargs) -> None: ...

class MacdPoint(_message.Message):
    __slots__ = ("dif", "dea", "histogram")
    DIF_FIELD_NUMBER: _ClassVar[int]
    DEA_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    dif: float
    dea: float
    histogram: float
    def __init__(self, dif: _Optional[float] = ..., dea: _Optional[float] = ..., histogram: _Optional[float] = ...) -> None: ...

class Tail(_message.Message):
    __slots__ = ("segments", "pivots", "signals")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    PIVOTS_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    pivots: _containers.RepeatedCompositeFieldContainer[Pivot]
    signals: _containers.RepeatedCompositeFieldContainer[Signal]
    def __init__(self, segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., pivots: _Optional[_Iterable[_Union[Pivot, _Mapping]]] = ..., signals: _Optional[_Iterable[_Union[Signal, _Mapping]]] = ...) -> None: ...

class Update(_message.Message):
    __slots__ = ("index", "replaced", "repaired", "bars", "merged_bars", "macd", "fractals", "pens", "segments", "pivots", "signals", "last_pen", "forming_pen", "tail", "degrees")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    BARS_FIELD_NUMBER: _ClassVar[int]
    MERGED_BARS_FIELD_NUMBER: _ClassVar[int]
    MACD_FIELD_NUMBER: _ClassVar[int]
    FRACTALS_FIELD_NUMBER: _ClassVar[int]
    PENS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    PIVOTS_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    LAST_PEN_FIELD_NUMBER: _ClassVar[int]
    FORMING_PEN_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    DEGREES_FIELD_NUMBER: _ClassVar[int]
    index: int
    replaced: bool
    repaired: bool
    bars: int
    merged_bars: int
    macd: MacdPoint
    fractals: FractalSplice
    pens: PenSplice
    segments: SegmentSplice
    pivots: PivotSplice
    signals: SignalSplice
    last_pen: Pen
    forming_pen: Pen
    tail: Tail
    degrees: _containers.RepeatedCompositeFieldContainer[DegreeUpdate]
    def __init__(self, index: _Optional[int] = ..., replaced: _Optional[bool] = ..., repaired: _Optional[bool] = ..., bars: _Optional[int] = ..., merged_bars: _Optional[int] = ..., macd: _Optional[_Union[MacdPoint, _Mapping]] = ..., fractals: _Optional[_Union[FractalSplice, _Mapping]] = ..., pens: _Optional[_Union[PenSplice, _Mapping]] = ..., segments: _Optional[_Union[SegmentSplice, _Mapping]] = ..., pivots: _Optional[_Union[PivotSplice, _Mapping]] = ..., signals: _Optional[_Union[SignalSplice, _Mapping]] = ..., last_pen: _Optional[_Union[Pen, _Mapping]] = ..., forming_pen: _Optional[_Union[Pen, _Mapping]] = ..., tail: _Optional[_Union[Tail, _Mapping]] = ..., degrees: _Optional[_Iterable[_Union[DegreeUpdate, _Mapping]]] = ...) -> None: ...

class DegreeUpdate(_message.Message):
    __slots__ = ("degree", "segments", "pivots", "signals", "tail")
    DEGREE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    PIVOTS_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    degree: int
    segments: SegmentSplice
    pivots: PivotSplice
    signals: SignalSplice
    tail: Tail
    def __init__(self, degree: _Optional[int] = ..., segments: _Optional[_Union[SegmentSplice, _Mapping]] = ..., pivots: _Optional[_Union[PivotSplice, _Mapping]] = ..., signals: _Optional[_Union[SignalSplice, _Mapping]] = ..., tail: _Optional[_Union[Tail, _Mapping]] = ...) -> None: ...

class StreamError(_message.Message):
    __slots__ = ("code", "message", "field_violations", "expected_seq")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SEQ_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    field_violations: _containers.RepeatedCompositeFieldContainer[BadRequestFieldViolation]
    expected_seq: int
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[BadRequestFieldViolation, _Mapping]]] = ..., expected_seq: _Optional[int] = ...) -> None: ...

class BadRequestFieldViolation(_message.Message):
    __slots__ = ("field", "description", "reason", "index")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    reason: str
    index: int
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ..., reason: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("seq", "engine", "epoch", "opened", "update", "error")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    seq: int
    engine: str
    epoch: int
    opened: Opened
    update: Update
    error: StreamError
    def __init__(self, seq: _Optional[int] = ..., engine: _Optional[str] = ..., epoch: _Optional[int] = ..., opened: _Optional[_Union[Opened, _Mapping]] = ..., update: _Optional[_Union[Update, _Mapping]] = ..., error: _Optional[_Union[StreamError, _Mapping]] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("symbol", "timeframe")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: str
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[str] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("engine", "session", "last_seq", "analysis", "epoch")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    engine: str
    session: str
    last_seq: int
    analysis: Analysis
    epoch: int
    def __init__(self, engine: _Optional[str] = ..., session: _Optional[str] = ..., last_seq: _Optional[int] = ..., analysis: _Optional[_Union[Analysis, _Mapping]] = ..., epoch: _Optional[int] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("engine", "version", "uptime_ms", "sessions", "config", "protocol", "config_version")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_MS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    engine: str
    version: str
    uptime_ms: int
    sessions: int
    config: EngineConfig
    protocol: str
    config_version: str
    def __init__(self, engine: _Optional[str] = ..., version: _Optional[str] = ..., uptime_ms: _Optional[int] = ..., sessions: _Optional[int] = ..., config: _Optional[_Union[EngineConfig, _Mapping]] = ..., protocol: _Optional[str] = ..., config_version: _Optional[str] = ...) -> None: ...

class GetConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateConfigRequest(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: EngineConfig
    def __init__(self, config: _Optional[_Union[EngineConfig, _Mapping]] = ...) -> None: ...

class ConfigResponse(_message.Message):
    __slots__ = ("engine", "config", "config_version")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    engine: str
    config: EngineConfig
    config_version: str
    def __init__(self, engine: _Optional[str] = ..., config: _Optional[_Union[EngineConfig, _Mapping]] = ..., config_version: _Optional[str] = ...) -> None: ...

class SessionCatchUp(_message.Message):
    __slots__ = ("open", "fresh", "after_seq", "bars", "base")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    FRESH_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    BARS_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    open: OpenSession
    fresh: bool
    after_seq: int
    bars: _containers.RepeatedCompositeFieldContainer[BarMessage]
    base: Bars
    def __init__(self, open: _Optional[_Union[OpenSession, _Mapping]] = ..., fresh: _Optional[bool] = ..., after_seq: _Optional[int] = ..., bars: _Optional[_Iterable[_Union[BarMessage, _Mapping]]] = ..., base: _Optional[_Union[Bars, _Mapping]] = ...) -> None: ...

class CatchUpRequest(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionCatchUp]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionCatchUp, _Mapping]]] = ...) -> None: ...

class SessionCaughtUp(_message.Message):
    __slots__ = ("session", "last_seq", "bars", "error")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    BARS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    session: str
    last_seq: int
    bars: int
    error: StreamError
    def __init__(self, session: _Optional[str] = ..., last_seq: _Optional[int] = ..., bars: _Optional[int] = ..., error: _Optional[_Union[StreamError, _Mapping]] = ...) -> None: ...

class CatchUpResponse(_message.Message):
    __slots__ = ("engine", "sessions")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    engine: str
    sessions: _containers.RepeatedCompositeFieldContainer[SessionCaughtUp]
    def __init__(self, engine: _Optional[str] = ..., sessions: _Optional[_Iterable[_Union[SessionCaughtUp, _Mapping]]] = ...) -> None: ...

class SessionName(_message.Message):
    __slots__ = ("symbol", "timeframe")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: str
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[str] = ...) -> None: ...

class SessionMessage(_message.Message):
    __slots__ = ("session", "bar")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    BAR_FIELD_NUMBER: _ClassVar[int]
    session: SessionName
    bar: BarMessage
    def __init__(self, session: _Optional[_Union[SessionName, _Mapping]] = ..., bar: _Optional[_Union[BarMessage, _Mapping]] = ...) -> None: ...

class ApplyRequest(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[SessionMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[SessionMessage, _Mapping]]] = ...) -> None: ...

class ApplyResponse(_message.Message):
    __slots__ = ("answers",)
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[StreamResponse]
    def __init__(self, answers: _Optional[_Iterable[_Union[StreamResponse, _Mapping]]] = ...) -> None: ...

class CloseSessionsRequest(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionName]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionName, _Mapping]]] = ...) -> None: ...

class CloseSessionsResponse(_message.Message):
    __slots__ = ("engine", "closed", "sessions")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    engine: str
    closed: int
    sessions: int
    def __init__(self, engine: _Optional[str] = ..., closed: _Optional[int] = ..., sessions: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EngineStatus(_message.Message):
    __slots__ = ("engine", "address", "state", "eligible", "p50_ms", "p99_ms", "consecutive_ok", "consecutive_failed", "lag_bars", "last_error", "slow", "resyncing", "lag_ms", "config_synced", "config_version")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_OK_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILED_FIELD_NUMBER: _ClassVar[int]
    LAG_BARS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    SLOW_FIELD_NUMBER: _ClassVar[int]
    RESYNCING_FIELD_NUMBER: _ClassVar[int]
    LAG_MS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SYNCED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    engine: str
    address: str
    state: str
    eligible: bool
    p50_ms: float
    p99_ms: float
    consecutive_ok: int
    consecutive_failed: int
    lag_bars: int
    last_error: str
    slow: bool
    resyncing: int
    lag_ms: float
    config_synced: bool
    config_version: str
    def __init__(self, engine: _Optional[str] = ..., address: _Optional[str] = ..., state: _Optional[str] = ..., eligible: _Optional[bool] = ..., p50_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., consecutive_ok: _Optional[int] = ..., consecutive_failed: _Optional[int] = ..., lag_bars: _Optional[int] = ..., last_error: _Optional[str] = ..., slow: _Optional[bool] = ..., resyncing: _Optional[int] = ..., lag_ms: _Optional[float] = ..., config_synced: _Optional[bool] = ..., config_version: _Optional[str] = ...) -> None: ...

class Switch(_message.Message):
    __slots__ = ("epoch", "engine", "at_ms", "reason")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    engine: str
    at_ms: int
    reason: str
    def __init__(self, epoch: _Optional[int] = ..., engine: _Optional[str] = ..., at_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("active", "epoch", "mode", "engines", "sessions", "last_failover_ms", "last_failover_reason", "switches")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILOVER_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILOVER_REASON_FIELD_NUMBER: _ClassVar[int]
    SWITCHES_FIELD_NUMBER: _ClassVar[int]
    active: str
    epoch: int
    mode: str
    engines: _containers.RepeatedCompositeFieldContainer[EngineStatus]
    sessions: int
    last_failover_ms: int
    last_failover_reason: str
    switches: _containers.RepeatedCompositeFieldContainer[Switch]
    def __init__(self, active: _Optional[str] = ..., epoch: _Optional[int] = ..., mode: _Optional[str] = ..., engines: _Optional[_Iterable[_Union[EngineStatus, _Mapping]]] = ..., sessions: _Optional[int] = ..., last_failover_ms: _Optional[int] = ..., last_failover_reason: _Optional[str] = ..., switches: _Optional[_Iterable[_Union[Switch, _Mapping]]] = ...) -> None: ...

class SetModeRequest(_message.Message):
    __slots__ = ("mode",)
    MODE_FIELD_NUMBER: _ClassVar[int]
    mode: str
    def __init__(self, mode: _Optional[str] = ...) -> None: ...
