"""Chan theory (缠论) analysis of K-line bars: merged bars, fractals (分型), pens (笔),
segments (线段), pivots (中枢), MACD, divergence (背驰) and buy/sell points (买卖点).

``analyze(data)`` analyzes a series; ``Session()`` follows one bar by bar. Both run on the Rust
engine (``engine="rust"``, the compiled core) or the pure-Python engine (``engine="python"``)
with the same results. Configuration: :mod:`trading_system.config`; input forms:
:mod:`trading_system.data`; errors: :mod:`trading_system.errors`. ``Client`` / ``AsyncClient``
(:mod:`trading_system.client`) call the engine servers over gRPC.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Every name is imported on first use (PEP 562): importing a submodule imports this package
# first, and the command line's light commands (``trading-system probe``, the containers' health
# check) must not pay for numpy, pydantic and the native module they never use.
_LAZY = {
    "Analysis": "trading_system.api",
    "Session": "trading_system.api",
    "Update": "trading_system.api",
    "analyze": "trading_system.api",
    "EngineConfig": "trading_system.config",
    "FileConfig": "trading_system.config",
    "load_config": "trading_system.config",
    "load_presets": "trading_system.config",
    "Bars": "trading_system.data",
    "format_time": "trading_system.data",
    "load": "trading_system.data",
    "load_csv": "trading_system.data",
    "parse_time": "trading_system.data",
    "to_bars": "trading_system.data",
    "ChanError": "trading_system.errors",
    "ConfigError": "trading_system.errors",
    "DataError": "trading_system.errors",
    "InvalidBars": "trading_system.errors",
    "StateError": "trading_system.errors",
    "Violation": "trading_system.errors",
    # The client needs grpcio, the rest of the package does not.
    "AsyncClient": "trading_system.client",
    "Client": "trading_system.client",
    "ClientError": "trading_system.client",
}

if TYPE_CHECKING:  # what __getattr__ gives, for type checkers
    from trading_system.api import Analysis, Session, Update, analyze
    from trading_system.client import AsyncClient, Client, ClientError
    from trading_system.config import EngineConfig, FileConfig, load_config, load_presets
    from trading_system.data import Bars, format_time, load, load_csv, parse_time, to_bars
    from trading_system.errors import (
        ChanError,
        ConfigError,
        DataError,
        InvalidBars,
        StateError,
        Violation,
    )

    __version__: str


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        # The distribution's version: the Rust workspace's (Cargo.toml), which maturin writes
        # into the package metadata at build time.
        return version("trading-system")
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'trading_system' has no attribute {name!r}")
    globals()[name] = value  # once: later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Analysis",
    "AsyncClient",
    "Bars",
    "ChanError",
    "Client",
    "ClientError",
    "ConfigError",
    "DataError",
    "EngineConfig",
    "FileConfig",
    "InvalidBars",
    "Session",
    "StateError",
    "Update",
    "Violation",
    "__version__",
    "analyze",
    "format_time",
    "load_config",
    "load",
    "load_csv",
    "load_presets",
    "parse_time",
    "to_bars",
]
