"""The WebSocket transport: microphone PCM16 up; JSON events, reply audio and JPEG frames down.

Binary messages down start with a 20-byte header, little-endian: kind (u8: 1 audio, 2 reply frame,
3 idle frame), 3 bytes padding, turn (u32), pts (f64, seconds on the turn's clock; idle frames: on the
session's), sample rate (u32, audio only); then the PCM16 or the JPEG. The page schedules audio on
WebAudio and draws each frame when the audio clock reaches its pts. Frames are dropped, never
audio, when the browser's connection falls behind.
"""

from __future__ import annotations

import asyncio
import json
import struct

from aiohttp import WSMsgType, web

HEADER = struct.Struct("<BxxxIdI")
AUDIO, FRAME, IDLE = 1, 2, 3
# Frames waiting to be written beyond this are dropped (~0.3 s at 25 fps).
MAX_PENDING_FRAMES = 8


class WsMedia:
    def __init__(self, ws: web.WebSocketResponse, metrics):
        self.ws = ws
        self.metrics = metrics
        self._out: asyncio.Queue = asyncio.Queue()
        self._pending_frames = 0

    def _put(self, item, frame: bool = False) -> None:
        if frame:
            if self._pending_frames >= MAX_PENDING_FRAMES:
                self.metrics.frames_dropped.labels("ws").inc()
                return
            self._pending_frames += 1
        self._out.put_nowait((item, frame))

    def send_json(self, obj: dict) -> None:
        self._put(json.dumps(obj))

    def add_audio(self, turn: int, chunk) -> None:
        self._put(HEADER.pack(AUDIO, turn, chunk.pts, chunk.sample_rate) + chunk.pcm)

    def add_frame(self, turn: int, frame) -> None:
        self._put(HEADER.pack(FRAME, turn, frame.pts, 0) + frame.data, frame=True)

    def add_idle(self, frame) -> None:
        self._put(HEADER.pack(IDLE, 0, frame.pts, 0) + frame.data, frame=True)

    def flush(self) -> None:
        """The page drops what it has scheduled itself (it sees the same events)."""

    def end_turn(self, turn: int) -> None:
        """The page knows from the summary and its own audio clock when the reply has played."""

    async def writer(self) -> None:
        while True:
            item, frame = await self._out.get()
            if frame:
                self._pending_frames -= 1
            if isinstance(item, str):
                await self.ws.send_str(item)
            else:
                await self.ws.send_bytes(item)
                if frame:
                    self.metrics.frames_sent.labels("ws").inc()


async def read_microphone(ws: web.WebSocketResponse, session) -> None:
    """Binary messages are microphone PCM16; text messages are the page's controls."""
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            if len(msg.data) % 2 == 0:
                session.push_audio(msg.data)
        elif msg.type == WSMsgType.TEXT:
            try:
                control = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(control, dict) and control.get("type") == "stop":
                return
            session.control(control)
        else:
            return
