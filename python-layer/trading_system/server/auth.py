"""The bearer-token interceptor and its two roles (docs/GRPC.md): with ``server.auth_token`` set,
every trading call needs ``authorization: Bearer <token>`` (the scheme in any letter case; the
operator token is accepted too); with ``server.operator_token`` set, administrative calls
(``UpdateConfig``, the ``Replica`` service, the monitor's ``Admin``) need the operator token,
and the client token gets PERMISSION_DENIED for them. Without an operator token,
administrative calls fall under the client token like every call. Health never needs a token.
A call refused ends with UNAUTHENTICATED (or PERMISSION_DENIED) before its request is read."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from trading_system.server.status import refusal

HEALTH_PREFIX = "/grpc.health.v1.Health/"
ADMIN_PREFIXES = (
    "/trading.v1.Trading/UpdateConfig",
    "/trading.v1.Replica/",
    "/trading.v1.Admin/",
)
"""Administrative methods: ``UpdateConfig``, the engines' ``Replica`` and the monitor's
``Admin`` service (the monitor serves through the same interceptor)."""
MESSAGE = "missing or invalid bearer token"
OPERATOR_REQUIRED = "operator credential required"
SCHEME = "bearer "


def is_admin(method: str) -> bool:
    """Whether a full method name (``/package.Service/Method``) is an administrative call."""
    return method.startswith(ADMIN_PREFIXES)


def _matches(presented: bytes | None, token: bytes) -> bool:
    # Constant time: the comparison reveals nothing about the token.
    return bool(token) and presented is not None and hmac.compare_digest(presented, token)


class BearerAuth(grpc.aio.ServerInterceptor):
    """Checks the ``authorization`` header of every call but health probes, by the call's
    role."""

    def __init__(self, token: str, operator_token: str = "") -> None:
        self._token = token.encode()
        self._operator = operator_token.encode()

    @staticmethod
    def _presented(metadata: Any) -> bytes | None:
        """The bearer token of the call (None: no ``authorization`` header, or another
        scheme)."""
        for key, value in metadata or ():
            if key != "authorization":
                continue
            if not isinstance(value, str) or value[: len(SCHEME)].lower() != SCHEME:
                return None
            return value[len(SCHEME) :].encode()
        return None

    def check(self, method: str, metadata: Any) -> tuple[grpc.StatusCode, str] | None:
        """Why a call is refused (its status code and message), or None when it may run."""
        if method.startswith(HEALTH_PREFIX):
            return None
        presented = self._presented(metadata)
        if self._operator and is_admin(method):
            if _matches(presented, self._operator):
                return None
            if _matches(presented, self._token):
                return grpc.StatusCode.PERMISSION_DENIED, OPERATOR_REQUIRED
            return grpc.StatusCode.UNAUTHENTICATED, MESSAGE
        if not self._token or _matches(presented, self._token):
            return None
        if _matches(presented, self._operator):
            return None
        return grpc.StatusCode.UNAUTHENTICATED, MESSAGE

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        refused = self.check(details.method, details.invocation_metadata)
        if refused is None:
            return handler
        return refusal(handler, details, *refused)
