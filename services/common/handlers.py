"""Re-wrapping grpc.aio method handlers, for the server interceptors."""

from __future__ import annotations

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
