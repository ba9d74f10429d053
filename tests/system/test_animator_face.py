"""The face as a user's tool measures it: real Piper speech with its phoneme alignment, animated,
written to an MP4, decoded, and measured by a separate MediaPipe face-mesh pass.

The TTS service runs as a process (its environment, ``.venv/tts``, has Piper); its chunks,
phonemes included, are streamed through the Animate servicer in process exactly as the
gateway sends them, with the default idle motion (blinks, head sway) on. Then:

- **bilabial closures**: for every m, b and p of the alignment, the lips are shut (inner-lip
  gap under 0.1 mouth widths: MediaPipe puts landmarks 13/14 on the lips' inner edges, which
  read 0.05-0.09 apart on pressed lips and 0.18 on the portrait's open smile) on a frame of the
  decoded MP4 within one frame of it;
- **lip-sync**: the measured inner-lip opening follows the opening the phonemes call for
  (each sound's target at its middle, straight lines between: vowels open, stressed ones
  most; other consonants a little; m b p pressed and pauses at rest) with correlation >= 0.8;
- **identity**: the face above the nose tip, eyes and brows left out (they blink and rise),
  every frame registered back onto the portrait (a rotation and shift found by ECC image
  alignment: the head's sway and roll) has SSIM >= 0.9 with the portrait. The frames score
  0.95-0.96, which is what H.264 at the default CRF and the resampling leave of an unchanged
  face; a face that drifts, smears or tears scores well under 0.9 (MediaPipe's own landmarks
  are no good for the registration: the whole mesh shifts by pixels when the eyes close).

Runs in the animator environment (``make test-animator-lipsync``) with ``.venv/tts`` present.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

mp = pytest.importorskip("mediapipe")
cv2 = pytest.importorskip("cv2")
av = pytest.importorskip("av")

from prometheus_client import CollectorRegistry  # noqa: E402

from services.animator.config import AnimatorConfig  # noqa: E402
from services.animator.mp4 import assemble_mp4  # noqa: E402
from services.animator.service import AnimatorMetrics, AnimatorStage  # noqa: E402
from services.common.config import ServerConfig  # noqa: E402
from stack.process import ServiceProcess, venv_dir  # noqa: E402
from talker.v1 import animator_pb2 as pb  # noqa: E402
from talker.v1 import common_pb2, tts_pb2, tts_pb2_grpc  # noqa: E402

TEXT = ("Maybe my mom bought a big blue map. People probably prefer apples, "
        "but Bob buys plums by the pound.")
FPS = 25
TAIL_S = 0.4
VOWELS = set("aeiouyɑæɐəɛɜɪɔʊʌɒɚɝɘɵøœɶɤɯʉɨ")
BILABIALS = set("mbp")
EYE_RINGS = ((33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
             (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249))
BROWS = ((70, 63, 105, 66, 107, 55, 65, 52, 53, 46), (300, 293, 334, 296, 336, 285, 295, 282, 283, 276))

pytestmark = pytest.mark.skipif(not (venv_dir() / "tts" / "bin" / "python").exists(), reason="needs .venv/tts (Piper)")


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """The TTS service's chunks for TEXT (audio and phonemes)."""
    tts = ServiceProcess("tts", "services.tts", tmp_path_factory.mktemp("tts") / "tts.log").start()
    try:
        tts.wait_serving(180)
        return list(tts_pb2_grpc.TtsServiceStub(tts.channel).Synthesize(
            tts_pb2.SynthesizeRequest(text=TEXT), timeout=120))
    finally:
        tts.stop()


@pytest.fixture(scope="module")
def video(spoken, tmp_path_factory):
    """The decoded MP4 of the animated reply (RGB frames), the portrait (RGB) and the sample rate."""
    rate = spoken[0].audio.sample_rate
    stage = AnimatorStage(ServerConfig(), AnimatorConfig(), AnimatorMetrics(CollectorRegistry()))
    stage.load()
    tail = np.zeros(int(TAIL_S * rate), "<i2").tobytes()

    async def collect():
        async def reqs():
            yield pb.AnimateRequest(config=pb.AnimateConfig(sample_rate=rate, fps=FPS,
                                                             format=common_pb2.FRAME_FORMAT_RGB24))
            for c in spoken:
                yield pb.AnimateRequest(audio=pb.AudioSegment(pcm=c.audio.pcm, text=TEXT, phonemes=c.phonemes))
                await asyncio.sleep(0)
            yield pb.AnimateRequest(audio=pb.AudioSegment(pcm=tail))
        return [resp.frame async for resp in stage.servicer.Animate(reqs(), None)]

    try:
        frames = asyncio.run(collect())
        portrait = cv2.cvtColor(stage.backend.default.avatar.image, cv2.COLOR_BGR2RGB)
    finally:
        asyncio.run(stage.close())
    pcm = np.frombuffer(b"".join(c.audio.pcm for c in spoken) + tail, "<i2")
    path = str(tmp_path_factory.mktemp("video") / "reply.mp4")
    assemble_mp4(path, frames, FPS, pcm, rate)
    with av.open(path) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == len(frames) == round(pcm.size / rate * FPS)
    return decoded, portrait


def _landmarks(images) -> np.ndarray:
    """MediaPipe landmarks of each image, in pixels."""
    from mediapipe.python.solutions import face_mesh

    out = []
    with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False) as fm:
        for img in images:
            res = fm.process(img)
            assert res.multi_face_landmarks, "MediaPipe lost the face in a frame"
            h, w = img.shape[:2]
            out.append(np.array([(p.x * w, p.y * h) for p in res.multi_face_landmarks[0].landmark]))
    return np.array(out)


@pytest.fixture(scope="module")
def measured(video):
    """MediaPipe landmarks of every decoded frame and of the portrait, in pixels."""
    decoded, portrait = video
    marks = _landmarks([portrait, *decoded])
    return marks[0], marks[1:]


def phonemes(spoken) -> list[tuple[str, float, float]]:
    """(IPA symbol, start, end) on the reply's clock, from the chunks' own timing."""
    out, at = [], 0.0
    rate = spoken[0].audio.sample_rate
    for c in spoken:
        out += [(p.phoneme, at + p.start_seconds, at + p.start_seconds + p.duration_seconds) for p in c.phonemes]
        at += len(c.audio.pcm) // 2 / rate
    return out


def lip_gap(marks: np.ndarray) -> np.ndarray:
    """Inner-lip gap in mouth widths, per frame."""
    return np.linalg.norm(marks[:, 14] - marks[:, 13], axis=1) / np.linalg.norm(marks[:, 291] - marks[:, 61], axis=1)


def articulated(phones) -> list[tuple[str, float, float, bool]]:
    """(symbol, start, end, stressed): stress marks' time goes to the next sound and stresses
    the next vowel, length marks lengthen the sound before them."""
    out, pending, stressed = [], None, False
    for symbol, start, end in phones:
        if symbol in "ˈˌ":
            pending, stressed = (start if pending is None else pending), True
        elif symbol in "ːˑ" and out:
            out[-1] = (*out[-1][:2], end, out[-1][3])
        else:
            out.append((symbol, start if pending is None else pending, end, stressed and symbol in VOWELS))
            pending = None
            stressed = stressed and symbol not in VOWELS and symbol.isalpha()
    return out


def expected_opening(phones, n: int) -> np.ndarray:
    """The opening the phonemes call for at each frame: each sound's target at its middle and
    straight lines between (vowels open, stressed ones most; other consonants a little; m, b, p
    pressed shut and pauses at rest over their whole length; word boundaries are no sound)."""
    times, targets = [], []
    for symbol, start, end, stressed in articulated(phones):
        if symbol == " ":
            continue
        if symbol in BILABIALS or not symbol.isalpha():
            value = -0.5 if symbol in BILABIALS else 0.0
            times += [start, end]
            targets += [value, value]
        else:
            times.append(0.5 * (start + end))
            targets.append((1.0 if stressed else 0.7) if symbol in VOWELS else 0.4)
    return np.interp(np.arange(n) / FPS, times, targets)


def test_every_m_b_p_closes_the_lips_within_a_frame(spoken, measured):
    # On the decoded MP4, as a user's tool sees it: each bilabial shuts the lips on at least two
    # frames, which H.264 keeps (a one-frame closure it rebuilt from its open neighbours).
    gap, closed = lip_gap(measured[1]), 0.1
    misses, count = [], 0
    for symbol, start, end, _ in articulated(phonemes(spoken)):
        if symbol not in BILABIALS:
            continue
        count += 1
        frames = range(max(int(np.ceil(start * FPS)) - 1, 0), min(int(np.floor(end * FPS)) + 2, len(gap)))
        if min(gap[i] for i in frames) > closed:
            misses.append((symbol, round(start, 3), [round(float(gap[i]), 3) for i in frames]))
    print(f"{count} bilabials, closed threshold {closed:.3f} mouth widths, misses {misses}")
    assert count >= 15
    assert not misses


def test_lip_opening_follows_the_phonemes(spoken, measured):
    neutral, marks = measured
    gap = lip_gap(marks)
    expected = expected_opening(phonemes(spoken), len(gap))
    r = float(np.corrcoef(gap, expected)[0, 1])
    print(f"lip opening vs phoneme-expected opening: r = {r:.3f}; gap {gap.min():.3f}..{gap.max():.3f}")
    rest = float(lip_gap(neutral[None])[0])
    tail = gap[-int((TAIL_S - 0.2) * FPS):]
    print(f"portrait's own gap {rest:.3f}; the last {tail.size} frames (silence) {np.round(tail, 3).tolist()}")
    assert r >= 0.8
    assert gap.max() > rest + 0.06                                  # the mouth really opens
    assert np.all(np.abs(tail - rest) < 0.04)                       # and comes back to rest in silence


def _ring_mask(shape, marks, rings, grow: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for ring in rings:
        pts = marks[list(ring)]
        centre = pts.mean(axis=0)
        cv2.fillConvexPoly(mask, np.round(centre + grow * (pts - centre)).astype(np.int32), 1)
    return mask.astype(bool)


def test_identity_outside_mouth_and_eyes(video, measured):
    decoded, portrait = video
    neutral, _ = measured
    h, w = portrait.shape[:2]
    grey0 = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY).astype(np.float64)
    hull = cv2.convexHull(neutral[:468].astype(np.float32)).reshape(-1, 2)
    face = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(face, np.round(hull).astype(np.int32), 1)
    # Mouth, jaw and chin move with speech: everything below the nose tip is left out; eyes and brows blink and rise.
    keep = face.astype(bool) & ~_ring_mask((h, w), neutral, EYE_RINGS + BROWS, 1.6)
    keep[int(neutral[1, 1]):] = False
    assert keep.sum() > 0.2 * face.sum()
    scores = []
    stop = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5)
    for img in decoded:
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
        # The head's sway and roll, found by registering the frame onto the portrait over the kept region.
        _, warp = cv2.findTransformECC(grey0.astype(np.float32), grey, np.eye(2, 3, dtype=np.float32),
                                       cv2.MOTION_EUCLIDEAN, stop, keep.astype(np.uint8), 5)
        aligned = cv2.warpAffine(grey, warp, (w, h), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
        scores.append(float(_ssim_map(aligned, grey0)[keep].mean()))
    scores = np.array(scores)
    print(f"identity SSIM outside mouth and eyes: min {scores.min():.4f}, median {np.median(scores):.4f}")
    assert scores.min() >= 0.9


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
