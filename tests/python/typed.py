"""Typed helpers for the tests where a library's types fall short: ``grpc.health.v1`` on a
blocking channel (grpc_health's ``HealthStub`` is untyped), methods taking and giving raw bytes
(requests the generated classes could not write), a server's engine name as the library's
:data:`~trading_system.api.EngineChoice`."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2

from trading_system.api import EngineChoice
from trading_system.stubs import HEALTH, method_path


def as_is(b: bytes) -> bytes:
    """Bytes sent, or received, as they are."""
    return b


def raw_unary(channel: grpc.Channel, method: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    """``method`` (its path) with bytes in and out."""
    return channel.unary_unary(method, request_serializer=as_is, response_deserializer=as_is)


def engine_choice(name: str) -> EngineChoice:
    """A server's ``engine`` (``"rust"`` / ``"python"``) as the engine to analyze with."""
    if name not in ("rust", "python"):
        raise ValueError(f"not an engine: {name!r}")
    return name


class Health:
    """``grpc.health.v1.Health`` on a blocking channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        req, resp = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        self.Check: grpc.UnaryUnaryMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = channel.unary_unary(
            method_path(HEALTH, "Check", req, resp),
            request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString,
        )
        self.Watch: grpc.UnaryStreamMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = channel.unary_stream(
            method_path(HEALTH, "Watch", req, resp),
            request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString,
        )
