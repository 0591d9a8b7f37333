"""Errors as gRPC statuses: a :class:`Failure` carries the code, the message and the
``google.rpc.BadRequest`` field violations (docs/GRPC.md, "Errors"), and becomes the status of a
call (:func:`abort`) or a ``StreamError`` in a stream answer (:func:`stream_error`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from trading_system.errors import ConfigError, InvalidBars, Violation
from trading_system.proto import trading_pb2 as pb
from trading_system.server import log


@dataclass(frozen=True)
class FieldViolation:
    """One ``BadRequest.FieldViolation``, with the rule and bar index the in-band form keeps."""

    field: str
    description: str
    reason: str = ""
    index: int = -1


@dataclass
class Failure(Exception):
    """A request the server refuses: the status code, its message, the field violations (sent
    as ``google.rpc.BadRequest`` when there are any), for a stream message refused as out of
    sequence the number the session expects next, and the session concerned (for the log)."""

    code: grpc.StatusCode
    message: str
    violations: Sequence[FieldViolation] = field(default_factory=tuple)
    expected_seq: int = 0
    session: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)
        self.violations = capped(self.violations)

    def rpc_status(self) -> status_pb2.Status:
        """The ``google.rpc.Status`` of the failure, with BadRequest details if any."""
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        if self.violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in self.violations
                ]
            )
            detail = any_pb2.Any()
            detail.Pack(bad)
            status.details.append(detail)
        return status


MAX_VIOLATIONS = 20
"""Field violations an error lists (status details and a stream's in-band error): the first 20,
then one entry counting the rest, so that any number of bad bars fits the trailer."""


def capped(violations: Sequence[FieldViolation]) -> tuple[FieldViolation, ...]:
    """At most :data:`MAX_VIOLATIONS` violations, then (when there were more) the entry
    ``bars`` / ``truncated`` saying how many more were not listed."""
    if len(violations) <= MAX_VIOLATIONS:
        return tuple(violations)
    more = len(violations) - MAX_VIOLATIONS
    return (
        *violations[:MAX_VIOLATIONS],
        FieldViolation(
            field="bars",
            description=f"truncated: {more} more violations not listed",
            reason="truncated",
            index=-1,
        ),
    )


def code_name(code: grpc.StatusCode) -> str:
    """``INVALID_ARGUMENT`` for ``grpc.StatusCode.INVALID_ARGUMENT`` (what the logs show)."""
    return str(code.name)


def bar_violations(violations: Sequence[Violation]) -> list[FieldViolation]:
    """Violations of spec §1 as field violations: ``bars[<i>].<field>`` (``bars`` for a rule of
    the whole series) and ``<rule>: <message>``."""
    return [
        FieldViolation(
            field="bars" if v.index is None else f"bars[{v.index}].{v.field}",
            description=f"{v.rule}: {v.message}",
            reason=v.rule,
            index=-1 if v.index is None else v.index,
        )
        for v in violations
    ]


def invalid_bars(e: InvalidBars) -> Failure:
    """INVALID_ARGUMENT for bad bars: the message is the Rust ``ChanError`` text (``invalid bars:``
    and the first 20 violation messages), one field violation per broken rule."""
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, str(e), bar_violations(e.violations))


def invalid_config(e: ConfigError, prefix: str = "config.") -> Failure:
    """INVALID_ARGUMENT for a bad configuration override, naming ``config.<section>.<key>``."""
    return Failure(
        grpc.StatusCode.INVALID_ARGUMENT,
        str(e),
        (FieldViolation(field=prefix + e.key, description=e.message),),
    )


def refusal(
    handler: grpc.RpcMethodHandler,
    details: grpc.HandlerCallDetails,
    code: grpc.StatusCode,
    message: str,
) -> grpc.RpcMethodHandler:
    """For an interceptor: logs the call as refused and gives a handler of the same kind as
    ``handler`` that ends it with ``code`` and ``message`` without reading the request."""
    method = details.method.rsplit("/", 1)[-1]
    log.call(method, None, None, time.perf_counter(), code, message)

    async def refuse(_: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class _AbortsWithStatus(Protocol):
    """grpc.aio's servicer context has ``abort_with_status``; typeshed's stubs declare it on the
    synchronous context only."""

    async def abort_with_status(self, status: grpc.Status) -> NoReturn: ...


async def abort(context: grpc.aio.ServicerContext, failure: Failure) -> NoReturn:
    """Ends the call with the failure's status; with field violations the ``google.rpc.Status``
    goes along (the ``grpc-status-details-bin`` trailer that grpcio-status and tonic-types
    read)."""
    if failure.violations:
        await cast(_AbortsWithStatus, context).abort_with_status(
            rpc_status.to_status(failure.rpc_status())
        )
    else:
        await context.abort(failure.code, failure.message)
    raise AssertionError("abort returned")  # both always raise


def stream_error(failure: Failure) -> pb.StreamError:
    """The in-band form of a per-message failure (the stream stays open)."""
    return pb.StreamError(
        code=failure.code.value[0],
        message=failure.message,
        field_violations=[
            pb.BadRequestFieldViolation(
                field=v.field, description=v.description, reason=v.reason, index=v.index
            )
            for v in failure.violations
        ],
        expected_seq=failure.expected_seq,
    )
