"""Run blocking model code off the event loop.

Model libraries (CTranslate2, llama.cpp, onnxruntime) block; the gRPC server
must keep answering health checks and other calls meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


async def iterate_in_thread(make_iter: Callable[[threading.Event], Iterator[T]],
                            max_buffered: int = 64) -> AsyncIterator[T]:
    """Drive a blocking iterator in a worker thread and yield its items here.

    ``make_iter`` receives a ``threading.Event`` that is set when the consumer
    goes away (cancellation, client disconnect); the iterator should check it
    between steps and stop. The bounded queue gives backpressure. Closing this
    generator (``contextlib.aclosing``) returns only once the worker thread has
    stopped, so the model is free again when the caller moves on.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(max_buffered)
    cancelled = threading.Event()

    def put(item) -> None:
        fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not cancelled.is_set():
            try:
                fut.result(timeout=0.1)
                return
            except TimeoutError:
                continue
        fut.cancel()

    def worker() -> None:
        try:
            for item in make_iter(cancelled):
                if cancelled.is_set():
                    break
                put(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            put(_Failure(exc))
        finally:
            put(_DONE)

    thread = threading.Thread(target=worker, daemon=True, name="model-iter")
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        cancelled.set()
        if thread.is_alive():
            # Shielded: even when our caller is being cancelled, wait for the model to be left alone.
            await asyncio.shield(asyncio.to_thread(thread.join))


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc
