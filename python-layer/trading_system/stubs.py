"""Typed client calls of the ``trading.v1`` services and of ``grpc.health.v1`` over a grpc.aio
channel, and a typed read of a stream.

The generated ``trading_pb2_grpc`` and ``grpc_health``'s ``HealthStub`` are untyped (their
methods are unknown to a type checker), and the grpc stubs lack ``grpc.aio.EOF``. These classes
make the same multi-callables the generated stubs make (registered methods), typed, from the
services' descriptors: the method paths come from the contract, and a request or answer class
that does not match the method's types is refused when the stub is made (not at the first
call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar, cast

import grpc.aio
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from trading_system.proto import trading_pb2 as pb

__all__ = [
    "EOF",
    "HEALTH",
    "Admin",
    "Health",
    "StreamCall",
    "Trading",
    "method_path",
    "read",
    "stream_stream",
    "unary",
    "unary_stream",
]

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
StreamCall = grpc.aio.StreamStreamCall[pb.StreamRequest, pb.StreamResponse]
"""One ``Trading.Stream`` call."""

# grpc.aio exports EOF (from its Cython core) but typeshed's grpc stubs do not declare it: read
# from the module's namespace, it is an object like any other.
EOF: Final[object] = vars(grpc.aio)["EOF"]
"""What ``read()`` of a stream gives once the server has ended it."""


def method_path(
    service: ServiceDescriptor, method: str, req: type[Message], resp: type[Message]
) -> str:
    """The call path of ``service``'s ``method`` (``/package.Service/Method``), refused when
    ``req`` / ``resp`` are not the method's request and answer."""
    m = service.methods_by_name[method]
    want = (m.input_type.full_name, m.output_type.full_name)
    given = (req.DESCRIPTOR.full_name, resp.DESCRIPTOR.full_name)
    if want != given:
        raise TypeError(f"{service.full_name}.{method} is {want[0]} -> {want[1]}, not {given}")
    return f"/{service.full_name}/{m.name}"


class _Channel(Protocol):
    """A grpc.aio channel as the generated stubs call it: with ``_registered_method=True`` (the
    method is registered with the channel once instead of looked up on every call), an argument
    typeshed's stubs do not declare."""

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Req], bytes],
        response_deserializer: Callable[[bytes], Resp],
        _registered_method: bool,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Req, Resp]: ...

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Req], bytes],
        response_deserializer: Callable[[bytes], Resp],
        _registered_method: bool,
    ) -> grpc.aio.UnaryStreamMultiCallable[Req, Resp]: ...

    def stream_stream(
        self,
        method: str,
        request_serializer: Callable[[Req], bytes],
        response_deserializer: Callable[[bytes], Resp],
        _registered_method: bool,
    ) -> grpc.aio.StreamStreamMultiCallable[Req, Resp]: ...


def unary(
    channel: grpc.aio.Channel,
    service: ServiceDescriptor,
    method: str,
    req: type[Req],
    resp: type[Resp],
) -> grpc.aio.UnaryUnaryMultiCallable[Req, Resp]:
    """A unary method of ``service`` on ``channel``."""
    return cast(_Channel, channel).unary_unary(
        method_path(service, method, req, resp),
        request_serializer=req.SerializeToString,
        response_deserializer=resp.FromString,
        _registered_method=True,
    )


def unary_stream(
    channel: grpc.aio.Channel,
    service: ServiceDescriptor,
    method: str,
    req: type[Req],
    resp: type[Resp],
) -> grpc.aio.UnaryStreamMultiCallable[Req, Resp]:
    """A method of ``service`` answering with a stream, on ``channel``."""
    return cast(_Channel, channel).unary_stream(
        method_path(service, method, req, resp),
        request_serializer=req.SerializeToString,
        response_deserializer=resp.FromString,
        _registered_method=True,
    )


def stream_stream(
    channel: grpc.aio.Channel,
    service: ServiceDescriptor,
    method: str,
    req: type[Req],
    resp: type[Resp],
) -> grpc.aio.StreamStreamMultiCallable[Req, Resp]:
    """A bidirectional streaming method of ``service`` on ``channel``."""
    return cast(_Channel, channel).stream_stream(
        method_path(service, method, req, resp),
        request_serializer=req.SerializeToString,
        response_deserializer=resp.FromString,
        _registered_method=True,
    )


TRADING = pb.DESCRIPTOR.services_by_name["Trading"]
ADMIN = pb.DESCRIPTOR.services_by_name["Admin"]
# health_pb2's stubs type its descriptors as upb's classes; the pool gives the public type.
HEALTH = descriptor_pool.Default().FindServiceByName("grpc.health.v1.Health")


class Trading:
    """The ``trading.v1.Trading`` service."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        s = TRADING
        self.Analyze = unary(channel, s, "Analyze", pb.AnalyzeRequest, pb.AnalyzeResponse)
        self.GetSnapshot = unary(channel, s, "GetSnapshot", pb.SnapshotRequest, pb.SnapshotResponse)
        self.GetInfo = unary(channel, s, "GetInfo", pb.InfoRequest, pb.InfoResponse)
        self.GetConfig = unary(channel, s, "GetConfig", pb.GetConfigRequest, pb.ConfigResponse)
        self.UpdateConfig = unary(
            channel, s, "UpdateConfig", pb.UpdateConfigRequest, pb.ConfigResponse
        )
        self.Stream = stream_stream(channel, s, "Stream", pb.StreamRequest, pb.StreamResponse)


class Admin:
    """The monitor's ``trading.v1.Admin`` service."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        s = ADMIN
        self.Status = unary(channel, s, "Status", pb.StatusRequest, pb.StatusResponse)
        self.SetMode = unary(channel, s, "SetMode", pb.SetModeRequest, pb.StatusResponse)


class Health:
    """``grpc.health.v1.Health``."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        req, resp = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        self.Check = unary(channel, HEALTH, "Check", req, resp)
        self.Watch = unary_stream(channel, HEALTH, "Watch", req, resp)


async def read(call: grpc.aio.StreamStreamCall[Any, Resp]) -> Resp | None:
    """The stream's next answer; None once the server has ended it (``EOF``)."""
    answer = await call.read()
    # The stubs type read() as `object | answer`, EOF being a plain object.
    return None if answer is EOF else cast(Resp, answer)
