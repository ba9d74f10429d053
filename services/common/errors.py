"""Exceptions that carry a gRPC status, and the interceptor that maps them.

Servicers raise :class:`StageError` subclasses with a message naming what was
wrong; anything else becomes INTERNAL with a generic message (the traceback is
logged, never sent to the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from services.common.handlers import around

log = logging.getLogger("talker.errors")


class StageError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(StageError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(StageError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(StageError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(StageError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(StageError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(StageError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-facing message for an exception."""
    if isinstance(exc, StageError):
        return exc.code, exc.message
    if isinstance(exc, grpc.aio.AioRpcError):
        # A downstream call failed: pass its code on, say where it came from.
        return exc.code(), exc.details() or exc.code().name
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return grpc.StatusCode.DEADLINE_EXCEEDED, "timed out"
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the service log"


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    code, message = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.error("unhandled error in %s", method, exc_info=exc)
    else:
        log.info("%s -> %s: %s", method, code.name, message)
    await context.abort(code, message)


def _is_passthrough(exc: BaseException) -> bool:
    # context.abort raises AbortError; cancellation must propagate untouched.
    return isinstance(exc, (grpc.aio.AbortError, asyncio.CancelledError, GeneratorExit))


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns exceptions raised by handlers into gRPC statuses."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        @contextlib.asynccontextmanager
        async def statuses(request, context):
            try:
                yield request
            except BaseException as exc:
                if _is_passthrough(exc):
                    raise
                await abort_with(context, exc, method)

        return around(handler, statuses)
