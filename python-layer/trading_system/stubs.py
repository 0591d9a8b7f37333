"""Typed client calls of the ``trading.v1`` services and of ``grpc.health.v1`` over a grpc.aio
channel, and a typed read of a stream.

The generated ``trading_pb2_grpc`` and ``grpc_health``'s ``HealthStub`` are untyped (their
methods are unknown to a type checker), and the grpc stubs lack ``grpc.aio.EOF``. These classes
are the same multi-callables the generated stubs make, built with the channel's typed
``unary_unary`` / ``unary_stream`` / ``stream_stream`` from the services' descriptors: the method
paths come from the contract, and a request or answer class that does not match the method's
types is refused when the stub is made (not at the first call).
"""

from __future__ import annotations

from typing import Any, Final, TypeVar, cast

import grpc.aio
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from trading_system.proto import trading_pb2 as pb

__all__ = ["EOF", "Admin", "Health", "Trading", "read"]

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

# grpc.aio exports EOF (from its Cython core) but typeshed's grpc stubs do not declare it: read
# from the module's namespace, it is an object like any other.
EOF: Final[object] = vars(grpc.aio)["EOF"]
"""What ``read()`` of a stream gives once the server has ended it."""


def _path(service: ServiceDescriptor, method: str, req: type[Message], resp: type[Message]) -> str:
    m = service.methods_by_name[method]
    want = (m.input_type.full_name, m.output_type.full_name)
    given = (req.DESCRIPTOR.full_name, resp.DESCRIPTOR.full_name)
    if want != given:
        raise TypeError(f"{service.full_name}.{method} is {want[0]} -> {want[1]}, not {given}")
    return f"/{service.full_name}/{m.name}"


def unary(
    channel: grpc.aio.Channel,
    service: ServiceDescriptor,
    method: str,
    req: type[Req],
    resp: type[Resp],
) -> grpc.aio.UnaryUnaryMultiCallable[Req, Resp]:
    """A unary method of ``service`` on ``channel``."""
    return channel.unary_unary(
        _path(service, method, req, resp),
        request_serializer=req.SerializeToString,
        response_deserializer=resp.FromString,
    )


_TRADING = pb.DESCRIPTOR.services_by_name["Trading"]
_ADMIN = pb.DESCRIPTOR.services_by_name["Admin"]
# health_pb2's stubs type its descriptors as upb's classes; the pool gives the public type.
_HEALTH = descriptor_pool.Default().FindServiceByName("grpc.health.v1.Health")


class Trading:
    """The ``trading.v1.Trading`` service."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        s = _TRADING
        self.Analyze = unary(channel, s, "Analyze", pb.AnalyzeRequest, pb.AnalyzeResponse)
        self.GetSnapshot = unary(channel, s, "GetSnapshot", pb.SnapshotRequest, pb.SnapshotResponse)
        self.GetInfo = unary(channel, s, "GetInfo", pb.InfoRequest, pb.InfoResponse)
        self.GetConfig = unary(channel, s, "GetConfig", pb.GetConfigRequest, pb.ConfigResponse)
        self.UpdateConfig = unary(
            channel, s, "UpdateConfig", pb.UpdateConfigRequest, pb.ConfigResponse
        )
        self.Stream: grpc.aio.StreamStreamMultiCallable[pb.StreamRequest, pb.StreamResponse] = (
            channel.stream_stream(
                _path(s, "Stream", pb.StreamRequest, pb.StreamResponse),
                request_serializer=pb.StreamRequest.SerializeToString,
                response_deserializer=pb.StreamResponse.FromString,
            )
        )


class Admin:
    """The monitor's ``trading.v1.Admin`` service."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        s = _ADMIN
        self.Status = unary(channel, s, "Status", pb.StatusRequest, pb.StatusResponse)
        self.SetMode = unary(channel, s, "SetMode", pb.SetModeRequest, pb.StatusResponse)


class Health:
    """``grpc.health.v1.Health``."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        req, resp = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        self.Check = unary(channel, _HEALTH, "Check", req, resp)
        self.Watch: grpc.aio.UnaryStreamMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = channel.unary_stream(
            _path(_HEALTH, "Watch", req, resp),
            request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString,
        )


async def read(call: grpc.aio.StreamStreamCall[Any, Resp]) -> Resp | None:
    """The stream's next answer; None once the server has ended it (``EOF``)."""
    answer = await call.read()
    # The stubs type read() as `object | answer`, EOF being a plain object.
    return None if answer is EOF else cast(Resp, answer)
