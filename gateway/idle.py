"""The listening face of a Converse session (SessionConfig.idle_video): the animator's Idle frames,
forwarded between turns as ``idle_frame`` events.

Idle and speech frames share one motion clock and one motion seed, so the animator draws the same sway
and blinks at the same instant in either stream: a turn's speech takes over from the idle motion where
it is (frame 0 takes the idle stream's next frame slot), and the idle stream picks up where the speech
left it. The motion clock is seconds since the session started, less however much replies were made
slower than real time (the client shows a late reply's frames late, and the motion must go on from its
last one). The stream stops when a turn's first audio (and so its frame 0) goes out, and resumes once
the turn's last frame has been shown (in real time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import grpc

from gateway.metrics import GatewayMetrics
from gateway.pipeline import Conversation
from gateway.stages import StageClients
from talker.v1 import animator_pb2, gateway_pb2

log = logging.getLogger("talker.gateway.idle")
RETRY_SECONDS = 1.0   # after the animator failed the stream (a replica restarting)


class IdleVideo:
    """Streams idle frames into a session's event queue while no turn's video plays."""

    def __init__(self, clients: StageClients, metrics: GatewayMetrics, conversation: Conversation,
                 out: asyncio.Queue):
        self.clients = clients
        self.metrics = metrics
        self.conversation = conversation
        self.out = out
        self._task: asyncio.Task | None = None
        self._last_pts: float | None = None
        conversation.motion_seed = secrets.randbits(63) or 1

    def resume(self, after: tuple[float, float] | None = None) -> None:
        """(Re)starts the stream: now, or ``after`` a reply, as ``Turn.video_end`` gives its end: the
        first frame continues the motion from there, once the client has shown the reply."""
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(self._run(after))

    async def stop(self) -> None:
        self.conversation.idle_next_pts = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, after: tuple[float, float] | None) -> None:
        self._last_pts = None
        at = None
        if after is not None:
            at, shown = after
            await asyncio.sleep(max(shown - self.conversation.clock(), 0.0))  # the client still shows it
        after_speech = at is not None
        self.metrics.idle_streams.inc()
        try:
            while True:
                # After a reply, the motion goes on from the reply's last frame, even when the reply
                # was made slower than real time and so ended on screen later than on the clock.
                start = self.conversation.clock() if at is None else at
                at = None
                call = self.clients.animator.Idle(animator_pb2.IdleRequest(
                    config=self.conversation.animate_config(), start_seconds=start, after_speech=after_speech))
                after_speech = False
                try:
                    async for resp in call:
                        self._forward(resp.frame)
                except grpc.aio.AioRpcError as exc:
                    self.metrics.stage_errors.labels("animator", exc.code().name).inc()
                    log.warning("idle frames: animator %s: %s", exc.code().name, exc.details())
                finally:
                    call.cancel()
                await asyncio.sleep(RETRY_SECONDS)
        finally:
            self.metrics.idle_streams.dec()

    def _forward(self, frame) -> None:
        last, self._last_pts = self._last_pts, frame.pts
        if last is not None and last < frame.pts:
            self.conversation.idle_next_pts = 2 * frame.pts - last   # one frame period on
        # A client that reads slowly misses idle frames rather than holding up the session's events.
        try:
            self.out.put_nowait(gateway_pb2.ConverseResponse(turn=self.conversation.turns, idle_frame=frame))
        except asyncio.QueueFull:
            self.metrics.idle_frames.labels("dropped").inc()
        else:
            self.metrics.idle_frames.labels("sent").inc()
