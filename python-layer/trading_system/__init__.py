"""Chan theory (缠论) analysis of K-line bars: merged bars, fractals (分型), pens (笔),
segments (线段), pivots (中枢), MACD, divergence (背驰) and buy/sell points (买卖点).

``analyze(data)`` analyzes a series; ``Session()`` follows one bar by bar. Both run on the Rust
engine (``engine="rust"``, the compiled core) or the pure-Python engine (``engine="python"``)
with the same results. Configuration: :mod:`trading_system.config`; input forms:
:mod:`trading_system.data`; errors: :mod:`trading_system.errors`. ``Client`` / ``AsyncClient``
(:mod:`trading_system.client`) call the engine servers over gRPC.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from trading_system.api import Analysis, Session, Update, analyze
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

try:
    # The distribution's version: the Rust workspace's (Cargo.toml), which maturin writes into
    # the package metadata at build time.
    __version__ = version("trading-system")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

_CLIENT = ("AsyncClient", "Client", "ClientError")

if TYPE_CHECKING:  # what __getattr__ gives, for type checkers
    from trading_system.client import AsyncClient, Client, ClientError


def __getattr__(name: str) -> Any:
    # Imported on first use: the client needs grpcio, the rest of the package does not.
    if name in _CLIENT:
        from trading_system import client

        return getattr(client, name)
    raise AttributeError(f"module 'trading_system' has no attribute {name!r}")


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
