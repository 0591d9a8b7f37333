"""A request's bars and configuration read with the refusals the contract names (docs/GRPC.md,
"Errors"): columns of different lengths and bad overrides are INVALID_ARGUMENT naming the field.
The conversions themselves are :mod:`trading_system.convert`'s."""

from __future__ import annotations

import grpc

from trading_system import convert
from trading_system.config import Config, apply_overrides
from trading_system.data import Bars
from trading_system.errors import ConfigError
from trading_system.proto import trading_pb2 as pb
from trading_system.server.status import Failure, FieldViolation, invalid_config


def check_columns(msg: pb.Bars, prefix: str) -> None:
    """INVALID_ARGUMENT naming ``<prefix>.<column>`` for each column whose length differs from
    ``time``'s (``bars`` in Analyze, ``base`` in a catch-up)."""
    n = len(msg.time)
    wrong = [
        FieldViolation(field=f"{prefix}.{c}", description=f"has {k} values, {prefix}.time has {n}")
        for c, k in convert.mismatched_columns(msg)
    ]
    if wrong:
        text = "; ".join(f"{v.field} {v.description}" for v in wrong)
        raise Failure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"invalid bars: columns of different lengths: {text}",
            wrong,
        )


def bars(msg: pb.Bars) -> Bars:
    """An Analyze request's columns as bars, checked as :func:`check_columns` (``bars``)."""
    check_columns(msg, "bars")
    return convert.bars(msg)


def rows(msg: pb.Bars, prefix: str) -> list[convert.Row]:
    """Columns as the engine's bars, one tuple a bar, checked as :func:`check_columns`."""
    check_columns(msg, prefix)
    return convert.rows(msg)


def apply_config(base: Config, msg: pb.EngineConfig | None) -> Config:
    """``base`` with a request's overrides applied key by key (ranges checked at the end); a bad
    one is INVALID_ARGUMENT naming ``config.<section>.<key>``."""
    if msg is None:
        return base
    found = convert.overrides(msg)
    if not found:
        return base
    try:
        return apply_overrides(base, found)
    except ConfigError as e:
        raise invalid_config(e) from None
