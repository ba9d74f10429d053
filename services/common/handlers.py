"""Re-wrapping grpc.aio method handlers, for the server interceptors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import grpc

_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}

GRPC_TYPES = {
    (False, False): "UNARY",
    (False, True): "SERVER_STREAM",
    (True, False): "CLIENT_STREAM",
    (True, True): "BIDI_STREAM",
}


def shape(handler: grpc.RpcMethodHandler) -> tuple[bool, bool]:
    """(request_streaming, response_streaming) of a handler."""
    return bool(handler.request_streaming), bool(handler.response_streaming)


def behaviour(handler: grpc.RpcMethodHandler) -> Callable:
    return (handler.unary_unary or handler.unary_stream
            or handler.stream_unary or handler.stream_stream)


def rewrap(handler: grpc.RpcMethodHandler, wrapper: Callable) -> grpc.RpcMethodHandler:
    """A handler of the same shape whose behaviour is ``wrapper(inner)``.

    For response-streaming handlers ``wrapper`` must return an async generator
    function, for the others a coroutine function.
    """
    return _FACTORIES[shape(handler)](
        wrapper(behaviour(handler)),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def around(handler: grpc.RpcMethodHandler, scope: Callable, each: Callable[[], None] | None = None
           ) -> grpc.RpcMethodHandler:
    """A handler of the same shape that runs the call inside ``async with scope(request, context) as request``.

    ``scope`` is an async context manager factory: it may act before the call (refuse it by
    aborting, wait, count), after it (it sees the exception the call ended with) and may
    hand the call a wrapped request (e.g. a counting iterator). ``each()`` runs for every
    response sent. The one place that knows the unary and the streaming shapes of a handler.
    """
    if handler.response_streaming:
        def wrapper(inner):
            async def call(request, context):
                async with scope(request, context) as req:
                    async for item in inner(req, context):
                        if each is not None:
                            each()
                        yield item
            return call
    else:
        def wrapper(inner):
            async def call(request, context):
                async with scope(request, context) as req:
                    response = await inner(req, context)
                    if each is not None:
                        each()
                    return response
            return call
    return rewrap(handler, wrapper)


def refusing(code: grpc.StatusCode, message: str) -> Callable:
    """A scope for :func:`around` that refuses every call with ``code`` and ``message``."""

    @contextlib.asynccontextmanager
    async def refuse(request, context):
        await context.abort(code, message)
        yield request  # pragma: no cover - abort raised above

    return refuse
