"""Animator servicer, in process (no network): frame pacing, counts, validation, metrics.

Runs in the animator environment (mediapipe):
    PYTHONPATH=. .venv/animator/bin/python -m pytest tests/unit/test_animator_service.py
"""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from services.animator.config import DEFAULT_PORTRAIT, AnimatorConfig
from services.animator.service import AnimatorMetrics, AnimatorStage
from services.common.config import ConfigError, ServerConfig, from_env
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from talker.v1 import animator_pb2 as pb
from talker.v1 import common_pb2

RATE = 22050


@pytest.fixture(scope="module")
def stage():
    registry = CollectorRegistry()
    s = AnimatorStage(ServerConfig(), AnimatorConfig(), AnimatorMetrics(registry))
    s.load()
    s.registry = registry
    yield s
    asyncio.run(s.close())


@pytest.fixture(scope="module")
def still_stage():
    s = AnimatorStage(ServerConfig(), AnimatorConfig(head_motion=False, blinks=False),
                      AnimatorMetrics(CollectorRegistry()))
    s.load()
    yield s
    asyncio.run(s.close())


def speech(seconds: float) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.3 * np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) * rng.standard_normal(t.size)
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


async def _collect(stage, messages, on_frame=None):
    async def requests():
        for m in messages:
            yield m
            await asyncio.sleep(0)
    out = []
    async for resp in stage.servicer.Animate(requests(), None):
        out.append(resp.frame)
        if on_frame:
            on_frame(resp.frame)
    return out


def animate(stage, messages):
    return asyncio.run(_collect(stage, messages))


def config(**kw) -> pb.AnimateRequest:
    kw.setdefault("sample_rate", RATE)
    return pb.AnimateRequest(config=pb.AnimateConfig(**kw))


def audio(pcm: bytes) -> pb.AnimateRequest:
    return pb.AnimateRequest(audio=pb.AudioSegment(pcm=pcm))


def chunks(pcm: bytes, seconds: float = 0.25):
    step = int(seconds * RATE) * 2
    return [audio(pcm[i:i + step]) for i in range(0, len(pcm), step)]


def sample(stage, name, labels=None):
    return stage.registry.get_sample_value(name, labels or {})


def test_two_seconds_at_25_fps_make_50_frames(stage):
    frames = animate(stage, [config(fps=25), *chunks(speech(2.0))])
    assert len(frames) == 50
    assert [f.index for f in frames] == list(range(50))
    assert np.allclose(np.diff([f.pts for f in frames]), 0.04)
    assert frames[0].pts == 0.0
    f = frames[0]
    assert (f.width, f.height, f.format) == (512, 512, common_pb2.FRAME_FORMAT_JPEG)
    img = cv2.imdecode(np.frombuffer(f.data, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (512, 512, 3)


def test_frame_count_rounds_the_audio_duration(stage):
    # 1.03 s at 10 fps -> 10 frames; 1.06 s -> 11.
    for seconds, fps, expected in ((1.03, 10, 10), (1.06, 10, 11), (0.5, 60, 30), (0.01, 25, 0)):
        frames = animate(stage, [config(fps=fps), audio(speech(seconds))])
        assert len(frames) == expected, (seconds, fps)


def test_frames_stream_while_audio_arrives(stage):
    """Frame i comes out once audio up to (i + 1 + lookahead) / fps is in, before the stream ends."""
    sent = 0

    async def run():
        nonlocal sent
        got = []
        pcm = speech(1.0)
        q = chunks(pcm, 0.2)

        async def requests():
            nonlocal sent
            yield config(fps=25)
            for m in q:
                sent += len(m.audio.pcm) // 2
                yield m
                await asyncio.sleep(0.01)

        async for resp in stage.servicer.Animate(requests(), None):
            got.append((resp.frame.index, sent))
        return got

    got = asyncio.run(run())
    assert len(got) == 25
    for index, samples_in in got[:-2]:
        assert samples_in / RATE >= (index + 2) / 25 - 1e-9
    # The first frames did not wait for the whole clip.
    assert got[0][1] < RATE


def test_rgb24_frames(stage):
    frames = animate(stage, [config(format=common_pb2.FRAME_FORMAT_RGB24, fps=10), audio(speech(0.3))])
    assert len(frames) == 3
    assert all(len(f.data) == 512 * 512 * 3 and f.format == common_pb2.FRAME_FORMAT_RGB24 for f in frames)


def test_silence_without_idle_motion_gives_the_still_portrait(still_stage):
    frames = animate(still_stage, [config(format=common_pb2.FRAME_FORMAT_RGB24, fps=5), audio(b"\0\0" * RATE)])
    still = cv2.cvtColor(still_stage.backend.default.avatar.image, cv2.COLOR_BGR2RGB).tobytes()
    assert len(frames) == 5 and all(f.data == still for f in frames)


def test_silence_with_idle_motion_is_alive_but_the_mouth_stays_shut(stage):
    frames = animate(stage, [config(format=common_pb2.FRAME_FORMAT_RGB24, fps=25), audio(b"\0\0" * (8 * RATE))])
    assert len(frames) == 200
    avatar = stage.backend.default.avatar
    still = cv2.cvtColor(avatar.image, cv2.COLOR_BGR2RGB).astype(np.int16)
    imgs = [np.frombuffer(f.data, np.uint8).reshape(512, 512, 3).astype(np.int16) for f in frames]
    moved = [np.abs(im - still).mean() for im in imgs]
    assert max(moved) > 0.2                      # the head sways
    assert max(moved) < 6.0                      # ...by a pixel or two
    lm = avatar.landmarks
    eyes = (slice(int(lm[159, 1]) - 6, int(lm[145, 1]) + 6), slice(int(lm[33, 0]), int(lm[133, 0])))
    # Blinks: brief, sharp changes of the eye region against its neighbours (13 frames, about
    # 0.5 s, of which a blink covers at most 5). The head sways too slowly to do that; a fixed
    # threshold on the dark iris would not hold under sway, the lash line is dark too.
    eye = np.stack([im[eyes] for im in imgs])
    start = [min(max(i - 6, 0), len(eye) - 13) for i in range(len(eye))]
    change = np.array([np.abs(eye[i] - np.median(eye[s:s + 13], axis=0)).mean() for i, s in enumerate(start)])
    edges = np.diff(np.concatenate([[0], (change > 12.0).astype(int), [0]]))
    runs, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    assert 1 <= len(runs) <= 4, change.round(1)          # every 2-6 s over 8 s
    assert np.all(ends - runs <= 6), change.round(1)     # ~170 ms each
    assert np.median(change) < 4.0                        # the eyes are still otherwise
    # No cavity appears: the mouth region never gets darker than the still's.
    mouth = (slice(int(lm[13, 1]), int(lm[14, 1]) + 8), slice(int(lm[78, 0]), int(lm[308, 0])))
    dark = (still[mouth].max(axis=2) < 60).sum()
    assert all((im[mouth].max(axis=2) < 60).sum() <= dark + 15 for im in imgs)


@pytest.mark.parametrize(("messages", "error", "text"), [
    ([config(sample_rate=0)], InvalidArgument, "config.sample_rate: 0 Hz"),
    ([config(sample_rate=96000)], InvalidArgument, "config.sample_rate: 96000 Hz"),
    ([config(fps=61)], InvalidArgument, "config.fps: 61"),
    ([config(fps=-1)], InvalidArgument, "config.fps: -1"),
    ([config(jpeg_quality=101)], InvalidArgument, "config.jpeg_quality: 101"),
    ([config(format=7)], InvalidArgument, "config.format: 7"),
    ([config(avatar_id="0123456789abcdef")], NotFound,
     "avatar_id 0123456789abcdef: unknown to this replica; resend avatar_image"),
    ([config(avatar_image=b"nope")], InvalidArgument, "config.avatar_image: not a decodable JPEG or PNG"),
    ([config(), config()], InvalidArgument, "config: sent twice"),
    ([audio(b"\0\0")], FailedPrecondition, "audio: sent before config"),
    ([pb.AnimateRequest()], InvalidArgument, "request: neither config nor audio"),
    ([config(), audio(b"\0\0\0")], InvalidArgument, "audio.pcm: 3 bytes"),
    ([], InvalidArgument, "config: missing"),
])
def test_bad_streams_are_refused_with_a_named_field(stage, messages, error, text):
    with pytest.raises(error) as info:
        animate(stage, messages)
    assert text in info.value.message


def test_register_avatar_caches_by_content(stage):
    img = cv2.imread(DEFAULT_PORTRAIT)
    data = cv2.imencode(".jpg", cv2.resize(img, (640, 640)))[1].tobytes()
    hits = sample(stage, "talker_animator_avatar_cache_hits_total") or 0.0
    first = asyncio.run(stage.servicer.RegisterAvatar(pb.RegisterAvatarRequest(image=data), None))
    again = asyncio.run(stage.servicer.RegisterAvatar(pb.RegisterAvatarRequest(image=data), None))
    assert (first.width, first.height, first.landmarks, first.cached) == (512, 512, 478, False)
    assert again.avatar_id == first.avatar_id and again.cached
    assert sample(stage, "talker_animator_avatar_cache_hits_total") == hits + 1
    assert sample(stage, "talker_animator_registration_seconds_count") >= 1
    frames = animate(stage, [config(avatar_id=first.avatar_id, fps=10), audio(speech(0.2))])
    assert len(frames) == 2
    frames = animate(stage, [config(avatar_image=data, fps=10), audio(speech(0.2))])
    assert len(frames) == 2
    with pytest.raises(InvalidArgument, match=r"config.avatar_id: ffff is not the id of avatar_image"):
        animate(stage, [config(avatar_image=data, avatar_id="ffff")])


def test_register_avatar_rejects_a_blank_image(stage):
    blank = cv2.imencode(".png", np.full((300, 300, 3), 200, np.uint8))[1].tobytes()
    with pytest.raises(InvalidArgument, match=r"^image: no face found$"):
        asyncio.run(stage.servicer.RegisterAvatar(pb.RegisterAvatarRequest(image=blank), None))


def test_metrics_are_recorded(stage):
    before = sample(stage, "talker_animator_frames_total", {"renderer": "mesh-warp", "format": "jpeg"}) or 0.0
    animate(stage, [config(fps=25), *chunks(speech(0.4))])
    labels = {"renderer": "mesh-warp"}
    assert sample(stage, "talker_animator_frames_total", {**labels, "format": "jpeg"}) == before + 10
    assert sample(stage, "talker_animator_frame_render_seconds_count", labels) >= 10
    assert sample(stage, "talker_animator_time_to_first_frame_seconds_count", labels) >= 1
    assert sample(stage, "talker_animator_keypoints_per_frame", labels) == 478
    assert sample(stage, "talker_animator_active_streams") == 0


def test_config_from_env():
    c = from_env(AnimatorConfig, "TALKER_ANIMATOR_", env={"TALKER_ANIMATOR_FPS": "30",
                                                         "TALKER_ANIMATOR_SIZE": "256"})
    assert (c.fps, c.size) == (30, 256)
    with pytest.raises(ConfigError, match="TALKER_ANIMATOR_FPS=0"):
        from_env(AnimatorConfig, "TALKER_ANIMATOR_", env={"TALKER_ANIMATOR_FPS": "0"})
    with pytest.raises(ConfigError, match="TALKER_ANIMATOR_RENDERER"):
        from_env(AnimatorConfig, "TALKER_ANIMATOR_", env={"TALKER_ANIMATOR_RENDERER": "wav2lip"})


async def _idle(stage, request: pb.IdleRequest, n: int) -> tuple[list, float]:
    """The first ``n`` frames of an Idle stream, then the client goes; and how long they took."""
    loop = asyncio.get_running_loop()
    call = stage.servicer.Idle(request, None)
    frames, t0 = [], loop.time()
    async for resp in call:
        frames.append(resp.frame)
        if len(frames) == n:
            break
    elapsed = loop.time() - t0
    await call.aclose()
    return frames, elapsed


def idle(stage, n: int, **kw) -> tuple[list, float]:
    start = kw.pop("start_seconds", 0.0)
    return asyncio.run(_idle(stage, pb.IdleRequest(config=pb.AnimateConfig(**kw), start_seconds=start), n))


def pixels(frame) -> np.ndarray:
    return np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3).astype(np.int16)


def test_idle_frames_come_in_real_time_on_the_clients_clock(stage):
    # 10 fps: a frame renders in ~10 ms, so none is skipped even on a loaded machine.
    frames, elapsed = idle(stage, 6, fps=10, start_seconds=7.5)
    assert [f.index for f in frames] == list(range(6))
    assert [f.pts for f in frames] == pytest.approx([7.5 + i / 10 for i in range(6)])
    # Paced, not as fast as they render: frame 5 is due 0.5 s after frame 0.
    assert elapsed >= 0.5 - 0.02
    assert sample(stage, "talker_animator_idle_streams") == 0, "the stream outlived its client"
    assert sample(stage, "talker_animator_idle_frames_total", {"format": "jpeg"}) >= 6


def test_speech_takes_over_from_the_idle_motion_where_it_is(stage):
    """With the same seed, a turn whose frame 0 falls at clock time T starts from the idle stream's
    picture at T: silent speech frames are the idle frames of the same instants."""
    rgb = common_pb2.FRAME_FORMAT_RGB24
    idle_frames, _ = idle(stage, 3, fps=25, format=rgb, motion_seed=42, start_seconds=3.2)
    speech_frames = animate(stage, [config(fps=25, format=rgb, motion_seed=42, clock_offset_seconds=3.2),
                                    audio(b"\0\0" * (RATE // 5))])
    for a, b in zip(idle_frames, speech_frames[:3], strict=True):
        assert np.abs(pixels(a) - pixels(b)).mean() < 0.05
    # Another seed is another motion: the comparison above can fail.
    other, _ = idle(stage, 1, fps=25, format=rgb, motion_seed=43, start_seconds=3.2)
    assert np.abs(pixels(other[0]) - pixels(idle_frames[0])).mean() > 0.05


@pytest.mark.parametrize(("request_", "text"), [
    (pb.IdleRequest(start_seconds=-1.0), "start_seconds: -1.0"),
    (pb.IdleRequest(start_seconds=float("nan")), "start_seconds: nan"),
    (pb.IdleRequest(config=pb.AnimateConfig(fps=61)), "config.fps: 61"),
    (pb.IdleRequest(config=pb.AnimateConfig(format=7)), "config.format: 7"),
    (pb.IdleRequest(config=pb.AnimateConfig(avatar_id="0123456789abcdef")), "avatar_id 0123456789abcdef"),
])
def test_bad_idle_requests_are_refused_with_a_named_field(stage, request_, text):
    with pytest.raises((InvalidArgument, NotFound)) as info:
        asyncio.run(_idle(stage, request_, 1))
    assert text in info.value.message
