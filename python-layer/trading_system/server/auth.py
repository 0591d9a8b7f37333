"""The bearer-token interceptor: with ``server.auth_token`` set, every call but health needs
``authorization: Bearer <token>`` (the scheme in any letter case); anything else ends with
UNAUTHENTICATED before the request is read (docs/GRPC.md)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from trading_system.server.status import refusal

HEALTH_PREFIX = "/grpc.health.v1.Health/"
MESSAGE = "missing or invalid bearer token"
SCHEME = "bearer "


class BearerAuth(grpc.aio.ServerInterceptor):
    """Checks the ``authorization`` header of every call but health probes."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def _allowed(self, metadata: Any) -> bool:
        for key, value in metadata or ():
            if key != "authorization":
                continue
            if not isinstance(value, str) or value[: len(SCHEME)].lower() != SCHEME:
                return False
            # Constant time: the comparison reveals nothing about the token.
            return hmac.compare_digest(value[len(SCHEME) :].encode(), self._token)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if (
            handler is None
            or details.method.startswith(HEALTH_PREFIX)
            or self._allowed(details.invocation_metadata)
        ):
            return handler
        return refusal(handler, details, grpc.StatusCode.UNAUTHENTICATED, MESSAGE)
