"""The listening face of a Converse session (SessionConfig.idle_video): the animator's Idle frames,
forwarded between turns as ``idle_frame`` events.

Idle and speech frames share one motion clock (seconds since the session started) and one motion seed,
so the animator draws the same sway and blinks at the same instant in either stream: a turn's speech
takes over from the idle motion where it is, and the idle stream picks up where the speech left it.
The stream stops when a turn's first audio (and so its frame 0) goes out, and resumes at the instant
the turn's last frame ends on that clock: the client shows the turn until then.
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

    def resume(self, at: float | None = None) -> None:
        """(Re)starts the stream with its first frame at ``at`` on the session clock (None: now)."""
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(self._run(at))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, at: float | None) -> None:
        self._last_pts = None
        now = self.conversation.clock()
        if at is not None and at > now:
            await asyncio.sleep(at - now)   # the client is still showing the turn until then
        self.metrics.idle_streams.inc()
        try:
            while True:
                start = max(self.conversation.clock(), at or 0.0)
                at = None
                call = self.clients.animator.Idle(animator_pb2.IdleRequest(
                    config=self.conversation.animate_config(), start_seconds=start))
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
