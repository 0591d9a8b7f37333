"""The bearer-token interceptor: with ``server.auth_token`` set, every call but health needs
``authorization: Bearer <token>`` (the scheme in any letter case); anything else ends with
UNAUTHENTICATED before the request is read (docs/GRPC.md)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from trading_system.server import log

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
        return _denied(handler, details.method.rsplit("/", 1)[-1])


def _denied(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind that refuses the call (the request is not parsed)."""

    async def deny(_: Any, context: grpc.aio.ServicerContext) -> None:
        log.call(method, None, None, time.perf_counter(), grpc.StatusCode.UNAUTHENTICATED, MESSAGE)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)
