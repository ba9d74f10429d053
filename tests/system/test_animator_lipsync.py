"""Lip-sync measured on the animator's output.

Real synthesized speech (tests/data/speech.wav: Piper, en_US-joe-medium, three sentences) is
streamed through the Animate servicer in process, in 200 ms chunks with each sentence's text,
as the gateway sends it. MediaPipe's face mesh is then run on the frames that come back, and:

- the inner-lip opening per frame follows the speech energy envelope (correlation >= 0.6), and
  the mouth is shut in silence;
- with head motion off, the region above the nose stays put: structural similarity >= 0.95
  against the neutral portrait on every frame except blinks (found from the eyes' openness).

It needs mediapipe, so it runs in the animator environment (``make test-animator-lipsync``);
elsewhere it is skipped.
"""

from __future__ import annotations

import asyncio
import os
import wave

import numpy as np
import pytest

mp = pytest.importorskip("mediapipe")
cv2 = pytest.importorskip("cv2")

from prometheus_client import CollectorRegistry  # noqa: E402

from services.animator.config import AnimatorConfig  # noqa: E402
from services.animator.service import AnimatorMetrics, AnimatorStage  # noqa: E402
from services.common.config import ServerConfig  # noqa: E402
from talker.v1 import animator_pb2 as pb  # noqa: E402
from talker.v1 import common_pb2  # noqa: E402

SPEECH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "speech.wav")
# The sentences of speech.wav and their lengths in samples (16 kHz).
SENTENCES = (("My name is Talker.", 20062), ("I open my mouth wide, then I pause.", 42539),
             ("A blue moon, or a cheap beer?", 31765))
FPS = 25
SILENCE_S = 1.0


def read_speech() -> tuple[np.ndarray, int]:
    with wave.open(SPEECH, "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert pcm.size == sum(n for _, n in SENTENCES)
    return pcm, rate


def requests(pcm: np.ndarray, rate: int):
    yield pb.AnimateRequest(config=pb.AnimateConfig(sample_rate=rate, fps=FPS,
                                                     format=common_pb2.FRAME_FORMAT_RGB24))
    step = rate // 5
    pos = 0
    for text, n in SENTENCES:
        for i in range(pos, pos + n, step):
            chunk = pcm[i:min(i + step, pos + n)]
            yield pb.AnimateRequest(audio=pb.AudioSegment(pcm=chunk.tobytes(), text=text))
        pos += n
    silence = np.zeros(int(SILENCE_S * rate), "<i2")
    yield pb.AnimateRequest(audio=pb.AudioSegment(pcm=silence.tobytes()))


@pytest.fixture(scope="module")
def run():
    pcm, rate = read_speech()
    stage = AnimatorStage(ServerConfig(), AnimatorConfig(head_motion=False),
                          AnimatorMetrics(CollectorRegistry()))
    stage.load()

    async def collect():
        async def reqs():
            for r in requests(pcm, rate):
                yield r
                await asyncio.sleep(0)
        return [resp.frame async for resp in stage.servicer.Animate(reqs(), None)]

    try:
        frames = asyncio.run(collect())
        neutral = cv2.cvtColor(stage.backend.default.avatar.image, cv2.COLOR_BGR2RGB)
    finally:
        asyncio.run(stage.close())
    audio = np.concatenate([pcm, np.zeros(int(SILENCE_S * rate), "<i2")]).astype(np.float32) / 32768.0
    images = [np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3) for f in frames]
    return images, neutral, audio, rate


def measure(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: inner-lip opening and eye openness (in mouth widths), and the landmarks."""
    from mediapipe.python.solutions import face_mesh

    mouth, eyes, marks = [], [], []
    with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as fm:
        for img in images:
            res = fm.process(img)
            assert res.multi_face_landmarks, "MediaPipe lost the face in an output frame"
            lm = np.array([(p.x * img.shape[1], p.y * img.shape[0]) for p in res.multi_face_landmarks[0].landmark])
            width = np.linalg.norm(lm[291] - lm[61])
            mouth.append(np.linalg.norm(lm[14] - lm[13]) / width)
            eyes.append((np.linalg.norm(lm[145] - lm[159]) + np.linalg.norm(lm[374] - lm[386])) / width)
            marks.append(lm)
    return np.array(mouth), np.array(eyes), np.array(marks)


def envelope(audio: np.ndarray, rate: int, n: int) -> np.ndarray:
    """RMS of 40 ms of audio around each frame's time."""
    half = int(0.02 * rate)
    out = []
    for i in range(n):
        c = round(i * rate / FPS)
        w = audio[max(c - half, 0):c + half]
        out.append(float(np.sqrt(np.mean(w.astype(np.float64) ** 2))) if w.size else 0.0)
    return np.array(out)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two grey images (Gaussian 11x11, sigma 1.5, the usual constants)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s[5:-5, 5:-5].mean())


def test_frame_count_follows_the_audio(run):
    images, _, audio, rate = run
    assert len(images) == round(audio.size / rate * FPS)


def test_lip_opening_follows_the_speech_energy(run):
    images, neutral, audio, rate = run
    opening, _, _ = measure(images)
    base, _, _ = measure([neutral])
    env = envelope(audio, rate, len(images))
    r = float(np.corrcoef(opening, env)[0, 1])
    print(f"lip opening vs speech energy: r = {r:.3f}; opening {opening.min():.3f}..{opening.max():.3f}, "
          f"neutral {base[0]:.3f}")
    assert r >= 0.6
    assert opening.max() > base[0] + 0.15               # the mouth really opens
    # Silence: the last second (after a little release time) is the neutral mouth.
    tail = opening[-int((SILENCE_S - 0.2) * FPS):]
    assert np.all(np.abs(tail - base[0]) < 0.03), tail


def test_upper_face_stays_put_except_for_blinks(run):
    images, neutral, _, _ = run
    _, eyes, _ = measure(images)
    _, eyes0, lm0 = measure([neutral])
    lm0 = lm0[0]
    # Blinks (eyes < 70% of the neutral's openness) and the frame either side are left out.
    blink = eyes < 0.7 * eyes0[0]
    blink = blink | np.roll(blink, 1) | np.roll(blink, -1)
    assert blink.sum() < 0.2 * len(images)
    top = int(max(lm0[10, 1], 0))
    bottom = int(lm0[6, 1] + 0.5 * (lm0[2, 1] - lm0[6, 1]))   # halfway down the nose
    left, right = int(lm0[234, 0]), int(lm0[454, 0])
    grey0 = cv2.cvtColor(neutral, cv2.COLOR_RGB2GRAY)[top:bottom, left:right]
    scores = np.array([ssim(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[top:bottom, left:right], grey0)
                       for img in images])
    print(f"upper-face SSIM: min {scores[~blink].min():.4f} outside blinks, {scores.min():.4f} overall; "
          f"{int((eyes < 0.7 * eyes0[0]).sum())} blink frames")
    assert scores[~blink].min() >= 0.95
    # The lower face, meanwhile, does move.
    lower = cv2.cvtColor(neutral, cv2.COLOR_RGB2GRAY)[int(lm0[13, 1]):int(lm0[152, 1]), left:right]
    lower_scores = [ssim(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[int(lm0[13, 1]):int(lm0[152, 1]), left:right], lower)
                    for img in images]
    assert min(lower_scores) < 0.9
