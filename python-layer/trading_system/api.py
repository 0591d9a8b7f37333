"""The user API: :func:`analyze` a series in one call, or feed a :class:`Session` bar by bar.

Both run on either engine, chosen by ``engine``: ``"rust"`` (the compiled core through the
``trading_system.native`` binding, the default) or ``"python"`` (the independent pure-Python
engine, ``trading_system.engine``). They give the same documents and raise the same errors
(:mod:`trading_system.errors`).

>>> from trading_system import analyze
>>> a = analyze("tests/data/BTCUSD-BITSTAMP_30m.csv", engine="python")  # doctest: +SKIP
>>> a.pens[-1].end.price, len(a.segments)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Literal, Protocol

from trading_system.config import (
    EngineConfig,
    FileConfig,
    apply_overrides,
    as_engine_config,
)
from trading_system.data import Bars, bar_values, to_bars
from trading_system.errors import ConfigError, InvalidBars, StateError, Violation
from trading_system.results import (
    Analysis,
    Fractal,
    Macd,
    MacdPoint,
    Pen,
    Pivot,
    Point,
    Repair,
    Segment,
    Signal,
    Splice,
    Tail,
    Update,
)

__all__ = [
    "Analysis",
    "Fractal",
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
    "Tail",
    "Update",
    "analyze",
]

EngineChoice = Literal["rust", "python"]
ConfigLike = EngineConfig | FileConfig | Mapping[str, Any] | str | os.PathLike[str] | None
Bar = tuple[int, float, float, float, float, float]


# --- Engine adapters: one per engine, same small surface ---------------------------------------


class _SessionAdapter(Protocol):
    def append(self, bar: Bar) -> Update: ...
    def replace_last(self, bar: Bar) -> Update: ...
    def document(self) -> Analysis: ...


def _native() -> ModuleType:
    try:
        return importlib.import_module("trading_system.native")
    except ImportError as e:
        raise ImportError(
            "the Rust engine (trading_system.native) is not installed: build it with "
            'scripts/setup.sh, or pass engine="python"'
        ) from e


def _native_error(native: ModuleType, e: BaseException) -> Exception | None:
    """The package's error for an exception of the binding (None when it is not one)."""
    args = e.args
    kind = getattr(native, "InvalidBars", None)
    if kind is not None and isinstance(e, kind):
        payload: Any = args[1] if len(args) > 1 else "[]"
        items = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
        return InvalidBars([Violation.from_dict(v) for v in items])
    kind = getattr(native, "ConfigError", None)
    if kind is not None and isinstance(e, kind):
        message = str(args[0]) if args else ""
        key = str(args[1]) if len(args) > 1 else "config"
        # The binding's message is the Rust Display, "invalid configuration: {key}: {message}".
        message = message.removeprefix(f"invalid configuration: {key}: ")
        return ConfigError(key, message)
    kind = getattr(native, "StateError", None)
    if kind is not None and isinstance(e, kind):
        return StateError(str(args[0]) if args else str(e))
    return None


def _config_json(cfg: EngineConfig) -> str:
    return json.dumps(cfg.to_dict())


def _rust_analyze(bars: Bars, cfg: EngineConfig, with_macd: bool) -> Analysis:
    native = _native()
    try:
        result = native.analyze(
            bars.time,
            bars.open,
            bars.high,
            bars.low,
            bars.close,
            bars.volume,
            config=_config_json(cfg),
            with_macd=with_macd,
        )
    except Exception as e:
        converted = _native_error(native, e)
        if converted is None:
            raise
        raise converted from None
    return Analysis(native=result)


class _RustSession:
    def __init__(self, cfg: EngineConfig, with_macd: bool) -> None:
        self._native = _native()
        try:
            self._session = self._native.Session(_config_json(cfg), with_macd)
        except Exception as e:
            raise self._error(e) from None

    def _error(self, e: Exception) -> Exception:
        converted = _native_error(self._native, e)
        return e if converted is None else converted

    # The calls per bar: the binding's change report is wrapped, not converted (it is
    # rendered only when read), and no helper call is added on the path of every bar.
    def append(self, bar: Bar) -> Update:
        try:
            return Update.of_native(self._session.append(*bar))
        except Exception as e:
            raise self._error(e) from None

    def replace_last(self, bar: Bar) -> Update:
        try:
            return Update.of_native(self._session.replace_last(*bar))
        except Exception as e:
            raise self._error(e) from None

    def document(self) -> Analysis:
        return Analysis(native=self._session.analysis())


def _python_engine() -> ModuleType:
    return importlib.import_module("trading_system.engine.analysis")


def _python_analyze(bars: Bars, cfg: EngineConfig, with_macd: bool) -> Analysis:
    from trading_system import progress

    def each(rows: Any, n: int) -> Any:
        return progress.iterate(rows, n, "analysis (python engine)")

    return Analysis(_python_engine().analyze(bars, cfg, with_macd, each))


class _PythonSession:
    def __init__(self, cfg: EngineConfig, with_macd: bool) -> None:
        self._session = _python_engine().Session(cfg, with_macd)

    def append(self, bar: Bar) -> Update:
        return Update(self._session.append(*bar))

    def replace_last(self, bar: Bar) -> Update:
        return Update(self._session.replace_last(*bar))

    def document(self) -> Analysis:
        return Analysis(self._session.document())


def _engine_name(engine: str) -> EngineChoice:
    name = str(engine).lower()
    if name == "rust":
        return "rust"
    if name == "python":
        return "python"
    raise ValueError(f'engine must be "rust" or "python", not {engine!r}')


def _resolve(config: ConfigLike, overrides: Mapping[str, Any] | None) -> EngineConfig:
    cfg = as_engine_config(config)
    return apply_overrides(cfg, overrides) if overrides else cfg


# --- Public API --------------------------------------------------------------------------------


def analyze(
    data: Any,
    config: ConfigLike = None,
    engine: EngineChoice = "rust",
    with_macd: bool = False,
    overrides: Mapping[str, Any] | None = None,
    *,
    columns: Mapping[str, str] | str | None = None,
    time_unit: str | None = None,
    tz: str | None = None,
) -> Analysis:
    """Analyzes a whole series: merged bars, fractals, pens, segments, pivots, buy/sell points
    (and the MACD series with ``with_macd``).

    ``data``: anything :func:`trading_system.data.to_bars` reads (a DataFrame, arrays, bar rows,
    ccxt OHLCV lists, the path of a CSV, TSV or Parquet file, :class:`~trading_system.data.Bars`),
    read with ``columns``, ``time_unit`` and ``tz`` as :func:`~trading_system.data.load` says
    (docs/DATA.md); the result carries the series' zone (``tz``).
    ``config``: ``None`` (the defaults), a YAML path (environment overrides apply), a
    FileConfig/EngineConfig, or a mapping of overrides such as
    ``{"pen": {"definition": "traditional"}}``; ``overrides`` are applied on top of it.
    Raises InvalidBars (naming every bad bar), ConfigError or DataError."""
    cfg = _resolve(config, overrides)
    bars = to_bars(data, columns, time_unit, tz)
    if _engine_name(engine) == "rust":
        result = _rust_analyze(bars, cfg, with_macd)
    else:
        result = _python_analyze(bars, cfg, with_macd)
    # The outputs (frames, files, charts, printed times) read the series' zone and bars here.
    return result.in_zone(bars.tz, bars)


class Session:
    """An incremental session (spec §10): :meth:`append` bars, :meth:`replace_last` the bar
    still forming, read the whole state with :meth:`analysis`. Each call returns an
    :class:`~trading_system.results.Update`; a rejected bar (InvalidBars) changes nothing, and
    the state always equals the batch analysis of the bars the calls leave."""

    def __init__(
        self,
        config: ConfigLike = None,
        engine: EngineChoice = "rust",
        with_macd: bool = False,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._config = _resolve(config, overrides)
        self._engine: EngineChoice = _engine_name(engine)
        self._with_macd = with_macd
        cls = _RustSession if self._engine == "rust" else _PythonSession
        self._adapter: _SessionAdapter = cls(self._config, with_macd)
        self._bars = 0

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def engine(self) -> EngineChoice:
        return self._engine

    @property
    def with_macd(self) -> bool:
        return self._with_macd

    def __len__(self) -> int:
        """Number of bars applied."""
        return self._bars

    def append(self, bar: Any) -> Update:
        """Appends a bar: ``(time, open, high, low, close, volume)`` (time as epoch ms, ISO text
        or datetime) or a mapping with those keys."""
        update = self._adapter.append(bar_values(bar))
        self._bars += 1
        return update

    def replace_last(self, bar: Any) -> Update:
        """Replaces the last (still forming) bar; StateError when the session has none."""
        return self._adapter.replace_last(bar_values(bar))

    def to_dict(self) -> dict[str, Any]:
        """The analysis document of the bars so far."""
        return self._adapter.document().to_dict()

    def analysis(self) -> Analysis:
        """The analysis of the bars so far."""
        return self._adapter.document()

    def __repr__(self) -> str:
        return f"Session(engine={self._engine!r}, bars={self._bars})"
