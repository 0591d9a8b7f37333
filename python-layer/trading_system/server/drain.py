"""Draining calls before a shutdown (docs/GRPC.md, "Servers").

Once ``server.stop`` has sent GOAWAY, grpc-core closes each connection as soon as its last call
ends. A client still reading a large answer keeps sending flow-control frames; closing a socket
with unread input resets it (TCP RST), and the client's kernel then drops the end of the answer
it had not read yet: the call fails with UNAVAILABLE although the server answered it. So the
servers drain their calls before ``server.stop``: new calls are refused with UNAVAILABLE, the
calls in flight run to their end (each counted until grpc reports it terminated, i.e. its
status written out), and the connections stay open a moment longer so clients read what is left
in the socket buffers. Health probes are neither refused nor counted.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

import grpc

from trading_system.server.auth import HEALTH_PREFIX
from trading_system.server.status import refusal

MESSAGE = "the server is shutting down"
LINGER_S = 0.25
"""How long connections stay open after the last call ends: what a client has left to read is
bounded by the socket buffers, not by the answer's size."""


class _Handler(Protocol):
    """grpc's method handlers are named tuples (``grpc._utilities.RpcMethodHandler``); typeshed
    declares only their abstract interface, without the named tuple's ``_replace``."""

    def _replace(self, **changes: Any) -> grpc.RpcMethodHandler: ...


class Drain(grpc.aio.ServerInterceptor):
    """Counts the calls in flight and, once :meth:`begin` is called, refuses new ones."""

    def __init__(self) -> None:
        self.calls = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def _begin(self, context: grpc.aio.ServicerContext) -> None:
        self.calls += 1
        self._idle.clear()
        # typeshed declares the callback type as a class (not a protocol), which no function
        # matches; grpc calls it with the context.
        context.add_done_callback(self._end)  # pyright: ignore[reportArgumentType]

    def _end(self, _: object) -> None:
        self.calls -= 1
        if self.calls == 0:
            self._idle.set()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(HEALTH_PREFIX):
            return handler
        if self.draining:
            return refusal(handler, details, grpc.StatusCode.UNAVAILABLE, MESSAGE)
        return cast(_Handler, handler)._replace(
            unary_unary=self._counted(handler.unary_unary),
            unary_stream=self._counted(handler.unary_stream),
            stream_unary=self._counted(handler.stream_unary),
            stream_stream=self._counted(handler.stream_stream),
        )

    def _counted(self, behavior: Any) -> Any:
        """``behavior`` counted from its start to the call's end, of the same kind (grpc runs a
        coroutine, an async generator and a plain function differently)."""
        if behavior is None:
            return None
        if inspect.isasyncgenfunction(behavior):

            async def gen(request: Any, context: grpc.aio.ServicerContext) -> Any:
                self._begin(context)
                async for answer in behavior(request, context):
                    yield answer

            return gen
        if inspect.iscoroutinefunction(behavior):

            async def coro(request: Any, context: grpc.aio.ServicerContext) -> Any:
                self._begin(context)
                return await behavior(request, context)

            return coro
        raise TypeError(f"a handler must be async to be drained: {behavior!r}")

    def begin(self) -> None:
        """Refuses new calls from now on."""
        self.draining = True

    async def wait(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for the calls in flight to end, then
        :data:`LINGER_S` more (within ``timeout``); whether they all ended."""
        deadline = time.monotonic() + timeout
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        await asyncio.sleep(max(0.0, min(LINGER_S, deadline - time.monotonic())))
        return True
