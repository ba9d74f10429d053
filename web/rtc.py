"""The WebRTC transport (aiortc): microphone in as Opus, the avatar out as an audio and a video track,
page events on a data channel."""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import time

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from web.bridge import pump
from web.config import WebConfig
from web.media import PACKET, RATE, Playout, audio_frame, video_frame

log = logging.getLogger("talker.web")
VIDEO_CLOCK = 90000


def rtc_configuration(config: WebConfig) -> RTCConfiguration:
    """Always explicit: with no configuration aiortc would ask a public STUN server."""
    servers = [RTCIceServer(urls=list(config.ice_servers), username=config.ice_username or None,
                            credential=config.ice_credential or None)] if config.ice_servers else []
    return RTCConfiguration(iceServers=servers)


class _Paced(MediaStreamTrack):
    """A track that hands out one item every ``period`` seconds of wall-clock time."""

    def __init__(self, period: float):
        super().__init__()
        self._period = period
        self._start: float | None = None
        self._count = 0

    async def _tick(self) -> int:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._count * self._period
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 1.0:
            # The loop stalled (a busy machine): restart the clock rather than burst to catch up.
            self._start, self._count = now, 0
        n = self._count
        self._count += 1
        return n


class AvatarAudioTrack(_Paced):
    kind = "audio"

    def __init__(self, playout: Playout):
        super().__init__(PACKET / RATE)
        self.playout = playout
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        await self._tick()
        frame = audio_frame(self.playout.next_audio(), self._pts)
        self._pts += PACKET
        return frame


class AvatarVideoTrack(_Paced):
    kind = "video"

    def __init__(self, playout: Playout, fps: int, size: int, metrics, on_first_frame):
        super().__init__(1.0 / fps)
        # One size for the whole call: the encoder cannot change resolution mid-stream.
        self._size = size
        self.playout = playout
        self.metrics = metrics
        self.on_first_frame = on_first_frame
        self._step = VIDEO_CLOCK // fps
        self._last: np.ndarray | None = None

    async def recv(self) -> av.VideoFrame:
        n = await self._tick()
        jpeg, reply = self.playout.next_frame()
        if jpeg is not None:
            try:
                frame = video_frame(jpeg)
                if (frame.width, frame.height) != (self._size, self._size):
                    frame = frame.reformat(width=self._size, height=self._size)
                self._last = frame.to_ndarray(format="rgb24")
                self.metrics.frames_sent.labels("webrtc").inc()
            except (ValueError, av.FFmpegError):
                self.metrics.frames_dropped.labels("webrtc").inc()
            if reply and self.playout.first_frame_turn != self.playout.turn:
                self.playout.first_frame_turn = self.playout.turn
                self.on_first_frame(self.playout.turn)
        if self._last is None:
            # Nothing from the animator yet: a dark picture keeps the track (and the page) alive.
            self._last = np.full((self._size, self._size, 3), 16, np.uint8)
        # A new frame object each time: the encoder may still hold the previous one.
        out = av.VideoFrame.from_ndarray(self._last, format="rgb24")
        out.pts = n * self._step
        out.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return out


class RtcPeer:
    """One browser's peer connection, bridged to its gateway session."""

    def __init__(self, config: WebConfig, metrics, session, on_closed):
        self.config = config
        self.metrics = metrics
        self.session = session
        self.on_closed = on_closed
        self.pc = RTCPeerConnection(rtc_configuration(config))
        # The page learns when the reply has played (the summary comes while the audio still plays).
        self.playout = Playout(metrics, "webrtc", lambda turn: self.send_json({"type": "played", "turn": turn}))
        self.channel = None
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self._pending: list[str] = []

        @self.pc.on("connectionstatechange")
        async def on_state():
            state = self.pc.connectionState
            metrics.connection_states.labels(state).inc()
            if state in ("failed", "closed"):
                await self.close()

        @self.pc.on("track")
        def on_track(track):
            if track.kind == "audio":
                self._tasks.append(asyncio.create_task(self._microphone(track)))

        @self.pc.on("datachannel")
        def on_channel(channel):
            self.channel = channel
            for text in self._pending:
                channel.send(text)
            self._pending.clear()

            @channel.on("message")
            def on_message(message):
                try:
                    self.session.control(json.loads(message))
                except (ValueError, TypeError):
                    pass

    def send_json(self, obj: dict) -> None:
        text = json.dumps(obj)
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)
        elif len(self._pending) < 256:
            self._pending.append(text)

    async def answer(self, sdp: str, type_: str) -> RTCSessionDescription:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=type_))
        self.pc.addTrack(AvatarAudioTrack(self.playout))
        self.pc.addTrack(AvatarVideoTrack(self.playout, self.config.fps, self.config.video_size, self.metrics,
                                          lambda turn: self.send_json({"type": "first_frame", "turn": turn})))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._tasks.append(asyncio.create_task(self._gateway_events()))
        self._tasks.append(asyncio.create_task(self._stats()))
        return self.pc.localDescription

    async def _microphone(self, track) -> None:
        """The browser's microphone (Opus, 48 kHz) as mono PCM16 at the gateway's input rate."""
        resampler = av.AudioResampler(format="s16", layout="mono", rate=self.config.input_sample_rate)
        try:
            while True:
                frame = await track.recv()
                for out in resampler.resample(frame):
                    self.session.push_audio(out.to_ndarray().tobytes())
        except MediaStreamError:
            return

    async def _gateway_events(self) -> None:
        await pump(self.session, self.playout, self.send_json, self.metrics)
        await self.close()

    async def _stats(self) -> None:
        """RTCP-derived round-trip time, jitter and loss, sampled every few seconds."""
        seen: dict[tuple[str, str], int] = {}
        while True:
            await asyncio.sleep(2.0)
            try:
                report = await self.pc.getStats()
            except Exception:  # noqa: BLE001 - a closing connection has no stats
                return
            for stat in report.values():
                kind = getattr(stat, "kind", "")
                if stat.type == "remote-inbound-rtp":
                    if stat.roundTripTime is not None:
                        self.metrics.rtt.observe(stat.roundTripTime)
                    self.metrics.jitter.labels(kind).observe(stat.jitter)
                    self._count(seen, ("out-lost", kind), stat.packetsLost, self.metrics.packets_lost, "out")
                elif stat.type == "inbound-rtp":
                    self.metrics.jitter.labels(kind).observe(stat.jitter)
                    self._count(seen, ("in-lost", kind), stat.packetsLost, self.metrics.packets_lost, "in")
                    self._count(seen, ("in", kind), stat.packetsReceived, self.metrics.packets, "in")
                elif stat.type == "outbound-rtp":
                    self._count(seen, ("out", kind), stat.packetsSent, self.metrics.packets, "out")

    @staticmethod
    def _count(seen, key, total, counter, direction) -> None:
        """Cumulative RTCP counts into a Prometheus counter: add what is new since the last sample."""
        total = max(int(total or 0), 0)
        new = total - seen.get(key, 0)
        if new > 0:
            counter.labels(direction, key[1]).inc(new)
            seen[key] = total

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        try:
            await self.session.close()
        finally:
            # The slot is free once the gateway session has ended: aiortc's close can take seconds when the
            # browser has already gone, and the session gauge must not count a session that no longer exists.
            self.on_closed()
        await self.pc.close()
