"""The animator stage: a portrait and a stream of speech audio in, lip-synced video frames out."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.animator.avatar import LANDMARKS, avatar_id
from services.animator.backend import MODEL, AnimatorBackend, PreparedAvatar
from services.animator.config import AnimatorConfig
from services.animator.idle import Idle, IdleState
from services.animator.render import FrameState
from services.animator.visemes import AudioWindow, MouthTracker
from services.common import buckets, tracing
from services.common.audio import pcm16_to_float
from services.common.config import ServerConfig, from_env
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.limits import FPS, JPEG_QUALITY, SAMPLE_RATE
from services.common.server import LoadedModel, Stage, run
from talker.v1 import animator_pb2, animator_pb2_grpc, common_pb2

_FORMATS = {
    common_pb2.FRAME_FORMAT_UNSPECIFIED: common_pb2.FRAME_FORMAT_JPEG,
    common_pb2.FRAME_FORMAT_JPEG: common_pb2.FRAME_FORMAT_JPEG,
    common_pb2.FRAME_FORMAT_RGB24: common_pb2.FRAME_FORMAT_RGB24,
}
_FORMAT_NAMES = {common_pb2.FRAME_FORMAT_JPEG: "jpeg", common_pb2.FRAME_FORMAT_RGB24: "rgb24"}


class AnimatorMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY):
        r = registry
        self.frames = Counter("talker_animator_frames_total", "Video frames sent.",
                              ["renderer", "format"], registry=r)
        self.render_seconds = Histogram("talker_animator_frame_render_seconds",
                                        "Rendering and encoding one frame.", ["renderer"],
                                        buckets=buckets.FRAME, registry=r)
        self.first_frame = Histogram("talker_animator_time_to_first_frame_seconds",
                                     "From the first audio segment's arrival to the first frame sent.",
                                     ["renderer"], buckets=buckets.FIRST_OUTPUT, registry=r)
        self.keypoints = Gauge("talker_animator_keypoints_per_frame",
                               "Face keypoints driving each frame.", ["renderer"], registry=r)
        self.cache_hits = Counter("talker_animator_avatar_cache_hits_total",
                                  "Avatar lookups answered from this replica's cache.", registry=r)
        self.cache_misses = Counter("talker_animator_avatar_cache_misses_total",
                                    "Avatar lookups that had to prepare the portrait.", registry=r)
        self.registration = Histogram("talker_animator_registration_seconds",
                                      "Preparing a new avatar: decode, face mesh, crop.",
                                      buckets=buckets.STAGE, registry=r)
        self.audio_seconds = Counter("talker_animator_audio_seconds_total", "Seconds of audio animated.",
                                     registry=r)
        self.active_streams = Gauge("talker_animator_active_streams", "Animate streams in progress.",
                                    registry=r)
        self.idle_streams = Gauge("talker_animator_idle_streams", "Idle streams open (a listening face).",
                                  registry=r)
        self.idle_frames = Counter("talker_animator_idle_frames_total", "Idle frames sent.", ["format"],
                                   registry=r)
        self.idle_skipped = Counter("talker_animator_idle_frames_skipped_total",
                                    "Idle frames skipped to stay in real time (rendering fell behind).",
                                    registry=r)


class _Stream:
    """One Animate call: its settings, its recent audio and how far its frames have got."""

    def __init__(self, backend: AnimatorBackend, entry: PreparedAvatar, fps: int, rate: int, fmt: int,
                 quality: int, lookahead: int, gate_dbfs: float, full_dbfs: float, idle: Idle,
                 visemes: bool = True, clock_offset: float = 0.0, breath: float = 0.0):
        self.backend = backend
        self.entry = entry
        self.fps = fps
        self.rate = rate
        self.format = fmt
        self.quality = quality
        self.lookahead = lookahead
        self.audio = AudioWindow()
        self.mouth = MouthTracker(rate, fps, gate_dbfs, full_dbfs, use_text=visemes)
        self.tracker = self.mouth.open
        self.idle = idle
        self.clock_offset = clock_offset   # where frame 0 falls on the idle motion's clock
        self.breath = breath               # px
        self.next_index = 0

    def ready(self, final: bool) -> int:
        """Frames [0, n) that can be rendered now."""
        total = self.audio.total
        if final:
            return (2 * total * self.fps + self.rate) // (2 * self.rate)  # round(seconds * fps)
        # Frame i shows [i/fps, (i+1)/fps); wait for that plus the look-ahead.
        n = max(total * self.fps // self.rate - self.lookahead, 0)
        while n > self.next_index and self.tracker.samples_needed(n - 1) > total:
            n -= 1
        return n

    def render(self, stop: int) -> list[tuple[common_pb2.Frame, float]]:
        """Frames [next_index, stop), blocking."""
        out = []
        for i in range(self.next_index, stop):
            window = self.tracker.window(self.audio, i)
            shape = self.mouth.step(i, window)
            pts = i / self.fps
            idle = motion(self.idle, self.clock_offset + pts, self.breath,
                          speaking=shape.openness > 0.05 or shape.press > 0.5, stress=shape.stress)
            state = FrameState(index=i, pts=pts, openness=shape.openness, audio=window, width=shape.width,
                               press=shape.press, tongue=shape.tongue, blink=idle.blink, head=idle.head,
                               brows=idle.brows, gaze=idle.gaze)
            out.append(self.backend.frame(self.entry, state, self.format, self.quality))
        self.next_index = stop
        self.audio.drop_before(self.tracker.centre(stop) - self.tracker.half)
        self.mouth.drop_before(self.tracker.centre(stop) - self.tracker.half)
        return out


BREATH_S = 4.5      # one breath
BREATH_PX = 0.6     # the head's rise with it, at 512 px


def breath_px(width: int) -> float:
    """How far the head rises with a breath in a portrait ``width`` px wide."""
    return BREATH_PX * width / 512.0


def motion(idle: Idle, t: float, breath: float = 0.0, speaking: bool = False, stress: float = 0.0) -> IdleState:
    """The idle layer at ``t`` on the motion clock, with breathing: a slow rise and fall of the head by
    ``breath`` px."""
    state = idle.state(t, speaking=speaking, stress=stress)
    if not idle.head_motion:
        return state
    dx, dy, roll = state.head
    breath *= math.sin(2 * math.pi * t / BREATH_S)
    return dataclasses.replace(state, head=(dx, dy - breath, roll))


def idle_frame(backend: AnimatorBackend, entry: PreparedAvatar, idle: Idle, index: int, pts: float, fmt: int,
               quality: int) -> tuple[common_pb2.Frame, float]:
    """One listening frame at ``pts`` on the motion clock, blocking."""
    state = motion(idle, pts, breath_px(entry.avatar.width))
    return backend.frame(entry, FrameState(index=index, pts=pts, openness=0.0, blink=state.blink,
                                           head=state.head, brows=state.brows, gaze=state.gaze), fmt, quality)


_MAX_PHONEMES = 4096   # per segment: a minute of speech is ~800
_MAX_CLOCK_S = 7 * 86400.0   # a client's motion clock: a week-long session


def _phoneme_timings(phonemes) -> list[tuple[str, float, float]]:
    """AudioSegment.phonemes as (IPA, start, duration), or INVALID_ARGUMENT naming what is wrong."""
    if len(phonemes) > _MAX_PHONEMES:
        raise InvalidArgument(f"audio.phonemes: {len(phonemes)} in one segment, more than {_MAX_PHONEMES}")
    out = []
    for i, p in enumerate(phonemes):
        if not (math.isfinite(p.start_seconds) and math.isfinite(p.duration_seconds)
                and -60.0 <= p.start_seconds <= 600.0 and 0.0 <= p.duration_seconds <= 60.0):
            raise InvalidArgument(f"audio.phonemes[{i}]: start_seconds {p.start_seconds}, duration_seconds "
                                  f"{p.duration_seconds}; need finite times, 0 <= duration <= 60 s")
        if len(p.phoneme) > 16:
            raise InvalidArgument(f"audio.phonemes[{i}].phoneme: {len(p.phoneme)} characters; one IPA "
                                  "symbol is expected")
        out.append((p.phoneme, p.start_seconds, p.duration_seconds))
    return out


class AnimatorServiceServicer(animator_pb2_grpc.AnimatorServiceServicer):
    def __init__(self, config: AnimatorConfig, backend: AnimatorBackend, metrics: AnimatorMetrics):
        self.config = config
        self.backend = backend
        self.metrics = metrics

    async def _register(self, data: bytes, field: str) -> tuple[PreparedAvatar, bool]:
        entry = self.backend.lookup(avatar_id(data)) if data else None
        if entry is not None:
            self.metrics.cache_hits.inc()
            return entry, True
        self.metrics.cache_misses.inc()
        t0 = time.perf_counter()
        try:
            entry = await asyncio.to_thread(self.backend.register, data)
        except InvalidArgument as exc:
            if field == "image":
                raise
            raise InvalidArgument(exc.message.replace("image:", f"{field}:", 1)) from None
        self.metrics.registration.observe(time.perf_counter() - t0)
        return entry, False

    async def RegisterAvatar(self, request, context):
        entry, cached = await self._register(request.image, "image")
        a = entry.avatar
        return animator_pb2.RegisterAvatarResponse(avatar_id=a.id, width=a.width, height=a.height,
                                                   landmarks=int(a.landmarks.shape[0]), cached=cached)

    async def _open(self, cfg: animator_pb2.AnimateConfig) -> _Stream:
        SAMPLE_RATE.check("config.sample_rate", cfg.sample_rate, " Hz", " (it is required)")
        entry, fps, fmt, quality, idle = await self._settings(cfg)
        c = self.config
        return _Stream(self.backend, entry, fps, cfg.sample_rate, fmt, quality, c.lookahead_frames, c.gate_dbfs,
                       c.full_dbfs, idle, c.visemes, cfg.clock_offset_seconds, breath_px(entry.avatar.width))

    async def _settings(self, cfg: animator_pb2.AnimateConfig):
        """The avatar, fps, format, JPEG quality and idle motion a config asks for, checked."""
        c = self.config
        fps = cfg.fps or c.fps
        FPS.check("config.fps", fps, note=f" (0 = the default, {c.fps})")
        if not math.isfinite(cfg.clock_offset_seconds) or not 0.0 <= cfg.clock_offset_seconds <= _MAX_CLOCK_S:
            raise InvalidArgument(f"config.clock_offset_seconds: {cfg.clock_offset_seconds}; need 0.."
                                  f"{_MAX_CLOCK_S:g} s")
        quality = cfg.jpeg_quality or c.jpeg_quality
        JPEG_QUALITY.check("config.jpeg_quality", quality, note=f" (0 = the default, {c.jpeg_quality})")
        fmt = _FORMATS.get(cfg.format)
        if fmt is None:
            raise InvalidArgument(f"config.format: {cfg.format} is not a FrameFormat")
        if cfg.avatar_image:
            entry, _ = await self._register(cfg.avatar_image, "config.avatar_image")
            if cfg.avatar_id and cfg.avatar_id != entry.avatar.id:
                raise InvalidArgument(f"config.avatar_id: {cfg.avatar_id[:64]} is not the id of "
                                      f"avatar_image ({entry.avatar.id})")
        elif cfg.avatar_id:
            entry = self.backend.lookup(cfg.avatar_id)
            if entry is None:
                self.metrics.cache_misses.inc()
                raise NotFound(f"avatar_id {cfg.avatar_id[:64]}: unknown to this replica; resend avatar_image")
            self.metrics.cache_hits.inc()
        else:
            entry = self.backend.default
        idle = Idle(entry.avatar.width, head_motion=c.head_motion, blinks=c.blinks, seed=cfg.motion_seed or None)
        return entry, fps, fmt, quality, idle

    async def _frames(self, stream: _Stream, final: bool):
        """Render (in batches, off the event loop) every frame that is ready."""
        target = stream.ready(final)
        renderer = self.backend.name
        fmt = _FORMAT_NAMES[stream.format]
        while stream.next_index < target:
            stop = min(target, stream.next_index + self.config.batch_frames)
            with tracing.tracer("talker.animator").start_as_current_span("animator.render", attributes={
                    "talker.animator.renderer": renderer, "talker.animator.first_frame": stream.next_index,
                    "talker.animator.frames": stop - stream.next_index}):
                frames = await asyncio.to_thread(stream.render, stop)
                example = tracing.exemplar()
            self.metrics.keypoints.labels(renderer).set(int(stream.entry.avatar.landmarks.shape[0]))
            for frame, seconds in frames:
                self.metrics.render_seconds.labels(renderer).observe(seconds, example)
                self.metrics.frames.labels(renderer, fmt).inc()
                yield animator_pb2.AnimateResponse(frame=frame)

    async def Animate(self, request_iterator, context):
        stream: _Stream | None = None
        first_audio: float | None = None
        first_sent = False
        renderer = self.backend.name

        def sent():
            nonlocal first_sent
            if not first_sent and first_audio is not None:
                first_sent = True
                self.metrics.first_frame.labels(renderer).observe(time.perf_counter() - first_audio,
                                                                  tracing.exemplar())

        self.metrics.active_streams.inc()
        try:
            async for req in request_iterator:
                kind = req.WhichOneof("msg")
                if kind == "config":
                    if stream is not None:
                        raise InvalidArgument("config: sent twice; it must be the first message only")
                    stream = await self._open(req.config)
                elif kind == "audio":
                    if stream is None:
                        raise FailedPrecondition("audio: sent before config; send AnimateConfig first")
                    if first_audio is None:
                        first_audio = time.perf_counter()
                    pcm = req.audio.pcm
                    if len(pcm) % 2:
                        raise InvalidArgument(f"audio.pcm: {len(pcm)} bytes; PCM16 needs an even number")
                    samples = pcm16_to_float(pcm)
                    timings = _phoneme_timings(req.audio.phonemes)
                    stream.audio.append(samples)
                    stream.mouth.feed(samples, req.audio.text, timings)
                    self.metrics.audio_seconds.inc(samples.size / stream.rate)
                    async for resp in self._frames(stream, final=False):
                        yield resp
                        sent()
                else:
                    raise InvalidArgument("request: neither config nor audio is set")
            if stream is None:
                raise InvalidArgument("config: missing; the stream must start with AnimateConfig")
            async for resp in self._frames(stream, final=True):
                yield resp
                sent()
        finally:
            self.metrics.active_streams.dec()


    async def Idle(self, request, context):
        start = request.start_seconds
        if not math.isfinite(start) or not 0.0 <= start <= _MAX_CLOCK_S:
            raise InvalidArgument(f"start_seconds: {start}; need 0..{_MAX_CLOCK_S:g} s")
        entry, fps, fmt, quality, idle = await self._settings(request.config)
        if request.after_speech:
            # Bring the sway to its speaking liveliness just before the first frame.
            idle.state(max(start - 10.0, 0.0), speaking=True)
            idle.state(start - 1e-3, speaking=True)
        fmt_name = _FORMAT_NAMES[fmt]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        i = 0
        self.metrics.idle_streams.inc()
        try:
            while True:  # until the client cancels (or the server stops)
                frame, _ = await asyncio.to_thread(idle_frame, self.backend, entry, idle, i, start + i / fps,
                                                   fmt, quality)
                await asyncio.sleep(max(t0 + i / fps - loop.time(), 0.0))
                self.metrics.idle_frames.labels(fmt_name).inc()
                yield animator_pb2.IdleResponse(frame=frame)
                # Real time before smoothness: when rendering falls behind, skip to the frame that is due.
                due = int((loop.time() - t0) * fps)
                if due > i + 1:
                    self.metrics.idle_skipped.inc(due - i - 1)
                i = max(i + 1, due)
        finally:
            self.metrics.idle_streams.dec()


class AnimatorStage(Stage):
    name = "animator"
    service_names = (animator_pb2.DESCRIPTOR.services_by_name["AnimatorService"].full_name,)

    def __init__(self, server_config: ServerConfig, config: AnimatorConfig | None = None,
                 metrics: AnimatorMetrics | None = None):
        self.config = config or from_env(AnimatorConfig, "TALKER_ANIMATOR_")
        self.backend = AnimatorBackend(self.config, server_config.threads)
        self.servicer = AnimatorServiceServicer(self.config, self.backend, metrics or AnimatorMetrics())

    def add_to_server(self, server: grpc.aio.Server) -> None:
        animator_pb2_grpc.add_AnimatorServiceServicer_to_server(self.servicer, server)

    def load(self) -> LoadedModel:
        self.backend.load()
        self.servicer.metrics.keypoints.labels(self.backend.name).set(LANDMARKS)
        return LoadedModel(backend=self.backend.name, model=MODEL, device="cpu")

    async def close(self) -> None:
        self.backend.close()


def main() -> None:
    run(AnimatorStage, "animator")
