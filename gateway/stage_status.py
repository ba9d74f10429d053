"""The status a stage really ended a streaming call with.

A request written into a stream the stage has just failed makes grpc's asyncio client record
INTERNAL "Internal error from Core" on the call, over the stage's own status if that came
first, or until it arrives if not. The turn must report the stage's status (a refused
portrait, a limit), so every status the call is given is noted as it is set.
"""

from __future__ import annotations

import asyncio

import grpc

_WRITE_ERROR = (grpc.StatusCode.INTERNAL, "Internal error from Core")
_WAIT_S = 1.0   # the stage's status follows its failure within milliseconds


def _result_now(coro):
    """The value of a coroutine that finishes without waiting (a finished call's status does)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    return None


class StageStatus:
    """Notes each status set on ``call``; :meth:`final` picks the stage's own."""

    def __init__(self, call: grpc.aio.Call):
        self._call = call
        self._seen: list[tuple[grpc.StatusCode, str]] = []
        call.add_done_callback(self._note)

    def _note(self, call: grpc.aio.Call) -> None:
        self._seen.append((_result_now(call.code()), _result_now(call.details())))

    async def final(self, exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str]:
        """The stage's status for the error ``exc`` the call raised."""
        loop = asyncio.get_running_loop()
        until = loop.time() + _WAIT_S
        while (exc.code(), exc.details()) == _WRITE_ERROR:
            real = [s for s in self._seen if s != _WRITE_ERROR]
            if real:
                return real[0]
            if loop.time() >= until:
                break
            await asyncio.sleep(0.01)
        return exc.code(), exc.details()
