"""The pure-Python standby engine: an independent implementation of docs/CHAN_THEORY.md, one
module per concept with the Rust core's names (``kline``, ``fractal``, ``pen``, ``segment``,
``pivot``, ``macd``, ``signal``, ``analysis``).

It never imports the Rust code (``trading_system.native``): it exists so that a bug, crash or
hang there does not stop the service. ``tests/python/test_engine_isolation.py`` enforces it.
"""

from trading_system.engine.analysis import Engine, Session, Tail, analyze

__all__ = ["Engine", "Session", "Tail", "analyze"]
