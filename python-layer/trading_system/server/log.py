"""Structured logs on stderr, the same lines as the Rust server's: one JSON object per line
(``logging.format: json``, the default; ``text`` gives ``key=value`` lines) with ``ts`` (UTC,
milliseconds), ``level`` and ``engine``. The line of a call or stream message (:func:`call`)
always has ``method``, ``session``, ``seq``, ``latency_ms`` and ``status`` next (``null`` where
they do not apply), then ``message`` when it failed; other lines carry their ``message`` and
fields.
"""

from __future__ import annotations

import sys
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import grpc
import structlog

from trading_system.display import show
from trading_system.server import ENGINE

ACCESS = "access"
"""The event name of per-call lines (not printed: the keys say what the line is)."""
ACCESS_KEYS = ("method", "session", "seq", "latency_ms", "status")
LEVELS = {"trace": 10, "debug": 10, "info": 20, "warn": 30, "error": 40}
"""structlog's numeric levels (it has none below debug: ``trace`` is ``debug`` here)."""
_SERVER_ERRORS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
_PROCESS = {"engine": ENGINE}
"""The ``engine`` every line carries: ``python``, or ``monitor`` in the monitor's process."""


def _head(_: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # ts, level and engine first; warn as the Rust logs spell it.
    now = datetime.now(UTC)
    out: dict[str, Any] = {
        "ts": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "level": "warn" if method in ("warning", "warn") else method,
        "engine": _PROCESS["engine"],
    }
    name = event.pop("event", None)
    if name == ACCESS:
        for key in ACCESS_KEYS:
            out[key] = event.pop(key, None)
        if event.get("message") is None:
            event.pop("message", None)
    elif name is not None:
        out["message"] = name
    out.update(event)
    return out


def level_of(name: str) -> int:
    """The level of ``logging.level``; ValueError naming the key otherwise."""
    if name not in LEVELS:
        raise ValueError(
            f'logging.level must be one of trace, debug, info, warn, error, got "{show(name)}"'
        )
    return LEVELS[name]


def configure(level: str, fmt: str, stream: TextIO | None = None, name: str = ENGINE) -> None:
    """Sets up structlog with the ``logging`` section's level and format; ``name`` is the
    ``engine`` of every line."""
    _PROCESS["engine"] = name
    threshold = level_of(level)
    global _threshold
    _threshold = threshold
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(separators=(",", ":"))
    elif fmt == "text":
        renderer = structlog.processors.KeyValueRenderer()
    else:
        raise ValueError(f'logging.format must be json or text, got "{show(fmt)}"')
    structlog.configure(
        processors=[structlog.processors.format_exc_info, _head, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )


_threshold = 0
"""The configured level: a call line below it is not even assembled (one per stream message)."""


def logger() -> Any:
    return structlog.get_logger()


def millis(started: float) -> float:
    """Milliseconds since ``started`` (``time.perf_counter()``), to the microsecond."""
    return round((time.perf_counter() - started) * 1000, 3)


def call(
    method: str,
    session: str | None,
    seq: int | None,
    started: float,
    code: grpc.StatusCode,
    message: str | None = None,
    **extra: Any,
) -> None:
    """Logs one call or stream message: OK and client errors at info, server errors at error.
    The session name is shown by the one rule for user text; ``extra`` fields follow."""
    if code not in _SERVER_ERRORS and _threshold > LEVELS["info"]:
        return
    fields = {
        "method": method,
        "session": None if session is None else show(session),
        "seq": seq,
        "latency_ms": millis(started),
        "status": code.name,
        "message": message,
        **extra,
    }
    if code in _SERVER_ERRORS:
        logger().error(ACCESS, **fields)
    else:
        logger().info(ACCESS, **fields)


def health(method: str, service: str, started: float, code: grpc.StatusCode) -> None:
    """Logs a health call, at debug (probes come every second)."""
    logger().debug(
        ACCESS,
        method=method,
        service=service,
        latency_ms=millis(started),
        status=code.name,
    )
