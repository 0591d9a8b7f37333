"""``grpc.health.v1.Health`` (the messages and base class of grpcio-health-checking) with the
protocol's semantics, as the Rust server has them: ``""`` (the server) and
``trading.v1.Trading`` are SERVING while the server runs and NOT_SERVING from the moment a
graceful shutdown starts. Check of an unknown service is NOT_FOUND; Watch sends the status now
and at every change, and for an unknown service SERVICE_UNKNOWN while the stream stays open.

grpcio's own asyncio servicer has those semantics too but keeps Watch streams open until the
shutdown grace period cuts them off, and answers NOT_FOUND without a message; here Watch streams
end once they have sent NOT_SERVING, and the message names the service as the Rust server does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trading_system.display import show
from trading_system.server import SERVICE_NAME, log

SERVICES = ("", SERVICE_NAME)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class Health(health_pb2_grpc.HealthServicer):
    """The health service of one server: statuses by service name and one condition that wakes
    every Watch stream when one changes."""

    def __init__(self) -> None:
        self._statuses: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._closing = False

    def register(self, server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self, server)

    async def set(self, service: str, status: int) -> None:
        async with self._changed:
            self._statuses[service] = status
            self._changed.notify_all()

    async def serving(self) -> None:
        for service in SERVICES:
            await self.set(service, SERVING)

    async def shutting_down(self) -> None:
        """NOT_SERVING for every service, for good; Watch streams send it and end."""
        async with self._changed:
            self._closing = True
            for service in self._statuses:
                self._statuses[service] = NOT_SERVING
            self._changed.notify_all()

    # Check and Watch: the generated servicer's method names.
    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        started = time.perf_counter()
        status = self._statuses.get(request.service)
        if status is None:
            log.health("Health/Check", request.service, started, grpc.StatusCode.NOT_FOUND)
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f'unknown service "{show(request.service)}"'
            )
        log.health("Health/Check", request.service, started, grpc.StatusCode.OK)
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        log.health("Health/Watch", request.service, time.perf_counter(), grpc.StatusCode.OK)
        last = None
        while True:
            async with self._changed:
                while (
                    status := self._statuses.get(request.service, SERVICE_UNKNOWN)
                ) == last and not self._closing:
                    await self._changed.wait()
                closing = self._closing
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
            if closing:
                return
