"""Sessions: an Ask call runs one turn, a Converse stream many, one at a time.

A Converse session owns three things: the turn in flight (start one, stop it),
the queue of events to the client (emit), and the end of the stream. What the
client sends is read by an *input mode* (``gateway.push_to_talk`` for sessions
where the client says where a turn ends) that drives the session through those
operations only, so a new mode (server-side turn detection) is a new reader, not
a new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from gateway.config import GatewayConfig
from gateway.idle import IdleVideo
from gateway.metrics import GatewayMetrics
from gateway.pipeline import Conversation, StageFailure, Turn, TurnInput, drain
from gateway.stages import StageClients
from services.common.errors import StageError, status_for
from talker.v1 import gateway_pb2


class Session:
    """Runs a session's turns: builds each, records its outcome, keeps the history."""

    def __init__(self, config: GatewayConfig, clients: StageClients, metrics: GatewayMetrics,
                 session_config: gateway_pb2.SessionConfig, context, own_trace: bool = False):
        self.config = config
        self.clients = clients
        self.metrics = metrics
        self.conversation = Conversation(config=session_config)
        self.context = context
        # Converse turns are the roots of their own traces (one stream carries many turns), unless the
        # caller sent its trace context: then its span (a browser session's, in the web service) is
        # their parent, and the caller chose to keep the session's turns in one trace.
        self.own_trace = own_trace
        self.trace_parent = _caller_trace(context) if own_trace else None
        self.current: Turn | None = None

    def _client_deadline(self) -> float | None:
        """The client's deadline, a little early: our error, naming the slow stage, must
        reach the client before its own deadline fires with no details."""
        remaining = self.context.time_remaining()
        if remaining is None:
            return None
        return time.monotonic() + remaining - min(0.25, 0.1 * remaining)

    async def run_turn(self, turn_input: TurnInput) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        """Yields the turn's events; failures propagate as StageError."""
        self.conversation.turns += 1
        turn = Turn(self.clients, self.metrics, self.conversation, self.conversation.turns, turn_input,
                    self.config.turn_timeout_seconds, self._client_deadline(), self.own_trace, self.trace_parent)
        self.current = turn
        try:
            async for event in turn.events():
                yield event
        except asyncio.CancelledError:
            turn.record("cancelled")
            self.conversation.remember(turn, self.config.history_messages)
            raise
        except BaseException as exc:
            turn.record("error", exc)
            raise
        turn.record("ok")
        self.conversation.remember(turn, self.config.history_messages)


def _caller_trace(context) -> otel_context.Context | None:
    """The W3C trace context the caller sent in the call's metadata, if any."""
    parent = propagate.extract({k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)})
    return parent if trace.get_current_span(parent).get_span_context().is_valid else None


_END = object()


class ConverseSession(Session):
    """A Converse stream. Input modes call :meth:`start_turn`, :meth:`stop_turn`,
    :meth:`emit` and :meth:`finish`; :meth:`events` is what the client receives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, own_trace=True, **kwargs)
        self.out: asyncio.Queue = asyncio.Queue(maxsize=64)
        self._playing: asyncio.Task | None = None
        self.idle = IdleVideo(self.clients, self.metrics, self.conversation, self.out) \
            if self.conversation.config.idle_video else None

    async def emit(self, event: gateway_pb2.ConverseResponse) -> None:
        await self.out.put(event)

    async def start_turn(self, turn_input: TurnInput) -> None:
        """Starts a turn; one in flight is stopped first (barge-in)."""
        await self.stop_turn()
        self._playing = asyncio.create_task(self._play(turn_input))

    async def stop_turn(self) -> None:
        """Stops the turn in flight, if any, and tells the client where it ended."""
        playing, self._playing = self._playing, None
        if playing and not playing.done():
            playing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await playing
            turn = self.current
            await self.emit(gateway_pb2.ConverseResponse(turn=turn.number, summary=turn.summary(cancelled=True)))

    @property
    def turn_in_flight(self) -> bool:
        return self._playing is not None and not self._playing.done()

    async def finish(self) -> None:
        """The client's stream has ended: let the turn in flight play out, then end the response."""
        if self._playing:
            await asyncio.shield(self._playing)
        await self.out.put(_END)

    async def _play(self, turn_input: TurnInput) -> None:
        reply_end = None
        try:
            async for event in self.run_turn(turn_input):
                if self.idle and event.HasField("audio") and event.audio.pts == 0:
                    await self.idle.stop()   # the reply's frame 0 is due now: speech takes over
                await self.emit(event)
            reply_end = self.current.video_end
        except StageError as exc:
            # A failed turn ends with an error event; the session goes on.
            code, message = status_for(exc)
            stage = exc.stage if isinstance(exc, StageFailure) else "gateway"
            await self.emit(gateway_pb2.ConverseResponse(turn=self.conversation.turns, error=gateway_pb2.TurnError(
                stage=stage, code=code.value[0], message=message)))
        finally:
            # The idle face returns where the reply's video ends (a stopped reply: at once).
            if self.idle:
                self.idle.resume(reply_end)

    async def events(self, read: Callable[[], Coroutine]) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        """Runs the input mode's ``read()`` and yields the session's events until the stream ends.
        An exception from ``read()`` (bad input) stops the turn and ends the call with its status."""

        async def reader() -> None:
            try:
                await read()
                await self.finish()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the response side
                await self.stop_turn()
                await self.out.put(exc)

        task = asyncio.create_task(reader())
        if self.idle:
            self.idle.resume()
        try:
            async for item in drain(self.out, _END):
                yield item
        finally:
            task.cancel()
            await self.stop_turn()
            if self.idle:
                await self.idle.stop()
