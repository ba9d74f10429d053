"""Animator: mouth openness from audio, the mouth-warp renderer, avatar validation.

Runs in the animator environment (mediapipe):
    PYTHONPATH=. .venv/animator/bin/python -m pytest tests/unit/test_animator_render.py
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from services.animator.avatar import LANDMARKS, AvatarCache, AvatarPreparer, header_size
from services.animator.config import DEFAULT_PORTRAIT
from services.animator.render import UPPER_INNER_LIP, FrameState, MouthWarpRenderer
from services.animator.visemes import AudioWindow, openness_curve
from services.common.errors import InvalidArgument

RATE = 16000
FPS = 25


def tone(seconds: float, amplitude: float, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# -- openness -----------------------------------------------------------------------------------

def test_openness_is_zero_on_silence():
    curve = openness_curve(np.zeros(RATE, dtype=np.float32), RATE, FPS)
    assert curve.shape == (FPS,)
    assert not curve.any()


def test_openness_stays_zero_under_the_noise_gate():
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(RATE) * 10 ** (-60 / 20)).astype(np.float32)  # -60 dBFS
    assert not openness_curve(hiss, RATE, FPS).any()


def test_openness_rises_with_a_loud_tone_and_falls_back_in_silence():
    audio = np.concatenate([np.zeros(RATE // 2, np.float32), tone(0.6, 0.5), np.zeros(int(0.9 * RATE), np.float32)])
    curve = openness_curve(audio, RATE, FPS)
    assert curve.shape == (2 * FPS,)
    assert (curve >= 0).all() and (curve <= 1).all()
    assert not curve[:11].any()                      # silence before the tone (window is +-20 ms)
    onset = 13                                       # 0.52 s: fully inside the tone
    assert curve[onset] > 0.6
    assert curve[onset: onset + 10].min() > 0.6      # held open while the tone lasts
    steps = np.diff(curve[11:onset + 1])
    assert (steps >= 0).all()                        # opens monotonically
    assert not curve[-10:].any()                     # closed again within 0.5 s of silence


def test_openness_grows_with_level():
    levels = [openness_curve(tone(0.5, a), RATE, FPS)[-1] for a in (0.01, 0.05, 0.2)]
    assert 0 < levels[0] < levels[1] < levels[2] <= 1


def test_openness_changes_smoothly():
    rng = np.random.default_rng(1)
    t = np.arange(2 * RATE) / RATE
    speech = (0.3 * np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * rng.standard_normal(t.size)).astype(np.float32)
    curve = openness_curve(speech, RATE, FPS)
    assert curve.max() > 0.3
    # Release is slower than attack: the mouth never snaps shut from wide open in one frame.
    assert np.diff(curve).min() > -0.6


def test_audio_window_pads_and_forgets():
    w = AudioWindow()
    w.append(np.arange(1, 11, dtype=np.float32))
    assert w.get(-2, 2).tolist() == [0, 0, 1, 2]
    assert w.get(8, 12).tolist() == [9, 10, 0, 0]
    w.drop_before(5)
    assert w.total == 10
    assert w.get(5, 7).tolist() == [6, 7]
    assert w.get(3, 6).tolist() == [0, 0, 6]  # dropped samples read as silence


# -- avatar preparation -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def portrait_bytes() -> bytes:
    with open(DEFAULT_PORTRAIT, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def avatar(preparer, portrait_bytes):
    return preparer.prepare(portrait_bytes)


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def test_portrait_asset_is_a_small_square_png(portrait_bytes):
    assert portrait_bytes.startswith(b"\x89PNG")
    assert len(portrait_bytes) < 400 * 1024
    assert header_size(portrait_bytes) == (512, 512)


def test_avatar_is_a_square_crop_with_478_landmarks(avatar, portrait_bytes):
    assert avatar.id == hashlib.sha256(portrait_bytes).hexdigest()[:16]
    assert avatar.image.shape == (512, 512, 3) and avatar.image.dtype == np.uint8
    assert avatar.landmarks.shape == (LANDMARKS, 2)
    assert (avatar.landmarks >= 0).all() and (avatar.landmarks < 512).all()
    # Mouth below the eyes, chin below the mouth.
    assert avatar.landmarks[159, 1] < avatar.landmarks[13, 1] < avatar.landmarks[152, 1]


def test_avatar_rejects_a_corrupt_file(preparer, portrait_bytes):
    for data in (b"this is not an image", portrait_bytes[:200], b"\xff\xd8\xff\xe0" + b"\0" * 50):
        with pytest.raises(InvalidArgument, match=r"^image: not a decodable JPEG or PNG$"):
            preparer.prepare(data)


def test_avatar_rejects_an_empty_upload(preparer):
    with pytest.raises(InvalidArgument, match=r"^image: empty"):
        preparer.prepare(b"")


def test_avatar_rejects_a_blank_image(preparer):
    blank = np.full((512, 512, 3), 235, dtype=np.uint8)
    with pytest.raises(InvalidArgument, match=r"^image: no face found$"):
        preparer.prepare(png(blank))


def test_avatar_rejects_two_faces(preparer, avatar):
    pair = np.concatenate([avatar.image, avatar.image[:, ::-1]], axis=1)
    with pytest.raises(InvalidArgument, match=r"^image: 2 faces found; the portrait must show exactly one$"):
        preparer.prepare(png(pair))


def test_avatar_rejects_oversized_images(preparer):
    wide = np.zeros((8, 4100, 3), dtype=np.uint8)
    with pytest.raises(InvalidArgument, match="4100x8 px; the longer side must be at most 4096 px"):
        preparer.prepare(png(wide))
    small = AvatarPreparer(size=512, crop_scale=2.8, max_bytes=1000, max_side=4096, min_face_px=64)
    with pytest.raises(InvalidArgument, match="MB is over the"):
        small.prepare(b"\x89PNG\r\n\x1a\n" + b"\0" * 2000)


def test_avatar_rejects_a_tiny_face(avatar):
    strict = AvatarPreparer(size=512, crop_scale=2.8, max_bytes=20 << 20, max_side=4096, min_face_px=400)
    strict.load()
    try:
        with pytest.raises(InvalidArgument, match="px across; it must be at least 400 px"):
            strict.prepare(png(avatar.image))
    finally:
        strict.close()


def test_header_size_reads_jpeg_and_png(avatar):
    img = avatar.image[:300, :200]
    assert header_size(png(img)) == (200, 300)
    ok, jpg = cv2.imencode(".jpg", img)
    assert ok
    assert header_size(jpg.tobytes()) == (200, 300)
    assert header_size(b"GIF89a....") is None


def test_avatar_cache_is_lru():
    cache = AvatarCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1      # a is now the most recent
    cache.put("c", 3)               # evicts b
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2


# -- rendering ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def warp(avatar):
    renderer = MouthWarpRenderer(max_opening=0.3)
    return renderer, renderer.prepare(avatar)


def render(warp, openness: float) -> np.ndarray:
    renderer, prepared = warp
    return renderer.render(prepared, FrameState(index=0, pts=0.0, openness=openness))


def test_closed_mouth_is_the_portrait(warp, avatar):
    frame = render(warp, 0.0)
    assert frame.shape == avatar.image.shape and frame.dtype == np.uint8
    assert np.array_equal(frame, avatar.image)


def test_opening_leaves_everything_above_the_upper_lip_unchanged(warp, avatar):
    lm = avatar.landmarks
    upper = lm[list(UPPER_INNER_LIP)]
    order = np.argsort(upper[:, 0])
    for openness in (0.3, 0.7, 1.0):
        frame = render(warp, openness)
        # Every row above the upper inner lip is bit-identical...
        top = int(np.floor(upper[:, 1].min())) - 1
        assert np.array_equal(frame[:top], avatar.image[:top])
        # ...and so is every pixel above the lip contour, column by column.
        cols = np.arange(int(np.ceil(upper[:, 0].min())), int(upper[:, 0].max()))
        lip_y = np.interp(cols, upper[order, 0], upper[order, 1])
        rows = np.arange(frame.shape[0])[:, None]
        above = (rows < np.floor(lip_y)[None, :] - 1)
        assert np.array_equal(frame[:, cols][above], avatar.image[:, cols][above])


def test_opening_changes_the_mouth_region(warp, avatar):
    lm = avatar.landmarks
    width = float(np.linalg.norm(lm[291] - lm[61]))
    x0, x1 = int(lm[78, 0]), int(lm[308, 0])
    y0 = int(lm[14, 1])
    y1 = int(lm[14, 1] + 0.3 * width)
    region = (slice(y0, y1), slice(x0, x1))
    diffs, darkness = [], []
    for openness in (0.25, 0.5, 1.0):
        frame = render(warp, openness)
        diffs.append(np.abs(frame[region].astype(int) - avatar.image[region].astype(int)).mean())
        darkness.append(int((frame[region].max(axis=2) < 70).sum()))
    assert diffs[0] > 5 and diffs[0] < diffs[1] < diffs[2]
    assert 0 < darkness[0] < darkness[1] < darkness[2]   # the cavity grows as the mouth opens


def test_opening_moves_the_chin_down(warp, avatar):
    lm = avatar.landmarks
    chin_x, chin_y = int(lm[152, 0]), int(lm[152, 1])
    col = slice(chin_x - 3, chin_x + 4)
    before = render(warp, 0.0)[:, col].mean(axis=(1, 2))
    after = render(warp, 1.0)[:, col].mean(axis=(1, 2))
    # The chin edge (face -> dark collar) is found lower once the jaw has dropped.
    edge = slice(chin_y - 30, chin_y + 60)
    grad_before = np.abs(np.diff(before[edge])).argmax()
    grad_after = np.abs(np.diff(after[edge])).argmax()
    assert grad_after > grad_before + 5


def test_nothing_far_from_the_mouth_changes(warp, avatar):
    frame = render(warp, 1.0).astype(int)
    changed = np.abs(frame - avatar.image.astype(int)).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    lm = avatar.landmarks
    face_w = lm[454, 0] - lm[234, 0]
    assert xs.min() > lm[234, 0] - 0.1 * face_w and xs.max() < lm[454, 0] + 0.1 * face_w
    assert ys.min() >= lm[list(UPPER_INNER_LIP), 1].min() - 1
