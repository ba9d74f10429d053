"""Animator: viseme shapes from text and audio, the idle layer, the mesh-warp renderer, MP4 assembly.

Runs in the animator environment (mediapipe, openfacefx, av):
    PYTHONPATH=. .venv/animator/bin/python -m pytest tests/unit/test_animator_mesh.py
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from services.animator.avatar import AvatarPreparer
from services.animator.config import DEFAULT_PORTRAIT
from services.animator.idle import Idle, blink_curve
from services.animator.mesh import LOWER_INNER, UPPER_INNER, MeshWarpRenderer
from services.animator.render import FrameState, Renderer
from services.animator.renderers import make_renderer
from services.animator.visemes import MouthTracker, TextAligner, spectral_shape

RATE = 16000
FPS = 25


def vowel(seconds: float, formants: tuple[float, ...], amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate(formants))
    return (amplitude * x / np.abs(x).max()).astype(np.float32)


# -- shapes -------------------------------------------------------------------------------------

def test_spectral_shape_tells_spread_from_rounded():
    wide, _ = spectral_shape(vowel(0.04, (2300, 3000)), RATE)         # "ee": energy high up
    round_, _ = spectral_shape(vowel(0.04, (300, 800)), RATE)           # "oo"
    assert wide > 0.3 and round_ < -0.3


def test_text_aligner_follows_a_sentence_over_its_voiced_audio():
    al = TextAligner(RATE, -45.0)
    audio = np.concatenate([vowel(0.8, (700, 1200)), np.zeros(int(0.3 * RATE), np.float32)])
    al.feed(audio, "Mama papa")
    s = al.sentences[-1]
    assert s.complete                                      # ended in silence, like Piper's audio
    assert s.phones[0] == "M"
    # The sentence starts on a lip closure (m) and is mostly open vowels and closures after.
    first = al.weights(0)
    assert first is not None and first[1] > 0.3            # "PP" (m) already shaping the lips
    al.feed(vowel(0.5, (700, 1200)), "Another one.")       # new text: a new sentence
    assert len(al.sentences) == 2 and al.sentences[1].start == audio.size


def test_mouth_tracker_rounds_for_oo_and_spreads_for_ee():
    def mean_width(text, formants):
        tr = MouthTracker(RATE, FPS)
        audio = np.concatenate([vowel(0.6, formants), np.zeros(int(0.3 * RATE), np.float32)])
        tr.feed(audio, text)
        from services.animator.visemes import AudioWindow
        w = AudioWindow()
        w.append(audio)
        shapes = [tr.step(i, tr.open.window(w, i)) for i in range(15)]
        return np.mean([s.width for s in shapes[3:14]]), max(s.openness for s in shapes)

    oo, open_oo = mean_width("ooh you", (300, 800))
    ee, open_ee = mean_width("eee see", (300, 2300, 3000))
    assert oo < ee - 0.3
    assert open_oo > 0.2 and open_ee > 0.2


# -- idle ---------------------------------------------------------------------------------------

def test_blinks_are_short_and_two_to_six_seconds_apart():
    assert blink_curve(-0.01) == 0.0 and blink_curve(0.06) == 1.0 and blink_curve(0.2) == 0.0
    idle = Idle(512, seed=3)
    t = np.arange(0, 60, 0.01)
    closed = np.array([idle.blink(x) for x in t]) > 0.5
    starts = t[1:][closed[1:] & ~closed[:-1]]
    gaps = np.diff(starts)
    assert 9 <= len(starts) <= 31 and gaps.min() >= 1.9 and gaps.max() <= 6.1
    lengths = np.diff(np.flatnonzero(np.diff(closed.astype(int)))) * 0.01
    assert lengths[::2].max() <= 0.16


def test_the_eyes_glance_now_and_then_the_same_way_for_a_seed():
    t = np.arange(0, 30, 0.04)
    gaze = np.array([Idle(512, seed=6).gaze(float(x)) for x in [0.0]] + [g for g in _gazes(6, t)])[1:]
    assert np.abs(gaze).max() <= 0.9 and np.abs(gaze[:, 0]).max() > 0.2
    jumps = np.flatnonzero(np.abs(np.diff(gaze, axis=0)).max(axis=1) > 0.02)
    starts = t[1:][jumps][np.insert(np.diff(jumps) > 3, 0, True)]
    assert 6 <= len(starts) <= 30 and np.diff(starts).min() >= 0.9    # a glance every 1-4 s
    assert np.array_equal(_gazes(6, t), _gazes(6, t)) and not np.array_equal(_gazes(6, t), _gazes(7, t))
    assert Idle(512, head_motion=False).gaze(5.0) == (0.0, 0.0)


def _gazes(seed: int, t: np.ndarray) -> np.ndarray:
    idle = Idle(512, seed=seed)
    return np.array([idle.state(float(x)).gaze for x in t])


def test_head_sway_is_a_pixel_or_two_and_can_be_switched_off():
    idle = Idle(512, seed=4)
    sway = np.array([idle.head(x)[:2] for x in np.arange(0, 30, 0.04)])
    assert 0.3 < np.abs(sway).max() <= 2.0
    assert np.abs(np.diff(sway, axis=0)).max() < 0.1        # smooth at 25 fps
    assert Idle(512, head_motion=False).head(1.0) == (0.0, 0.0, 0.0)
    assert Idle(512, blinks=False).blink(10.0) == 0.0


def test_the_head_nods_on_stressed_syllables_and_calms_while_listening():
    def run(seed, stressed_at=(), speaking=True):
        idle = Idle(512, seed=seed)
        out = []
        for t in np.arange(0, 12, 0.04):
            stress = 1.0 if any(s <= t < s + 0.1 for s in stressed_at) else 0.0
            out.append(idle.state(float(t), speaking=speaking, stress=stress).head)
        return np.array(out)

    still = run(5)
    nodding = run(5, stressed_at=(1.0, 1.3, 3.0))        # 1.3 is too soon after 1.0: no second nod
    dy = nodding[:, 1] - still[:, 1]
    t = np.arange(0, 12, 0.04)
    assert dy.max() > 1.5 and dy.min() >= 0.0           # down a couple of px, never up
    nods = t[1:][(dy[1:] > 0.01) & (dy[:-1] <= 0.01)]
    assert np.allclose(nods, [1.04, 3.04], atol=0.05)
    assert np.array_equal(run(5, (1.0,)), run(5, (1.0,)))   # the same seed, the same motion
    idle = Idle(512, seed=5)
    brows = [idle.state(float(x), speaking=True, stress=float(1.0 <= x < 1.1)).brows for x in t]
    assert max(brows) > 0.9 and brows[0] == 0.0 and brows[-1] == 0.0   # the brows rise with the nod
    listening = run(5, speaking=False)
    assert np.abs(listening[50:, 0]).max() < 0.7 * np.abs(still[50:, 0]).max()


# -- mesh warp ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def avatar():
    p = AvatarPreparer(size=512, crop_scale=2.8, max_bytes=20 << 20, max_side=4096, min_face_px=64)
    p.load()
    with open(DEFAULT_PORTRAIT, "rb") as f:
        a = p.prepare(f.read())
    p.close()
    return a


@pytest.fixture(scope="module")
def mesh(avatar):
    r = MeshWarpRenderer(0.3)
    return r, r.prepare(avatar)


def frame(mesh, **kw):
    r, m = mesh
    return r.render(m, FrameState(0, 0.0, kw.pop("openness", 0.0), **kw)).astype(int)


def test_neutral_is_the_portrait(mesh, avatar):
    assert np.array_equal(frame(mesh), avatar.image)


@pytest.mark.parametrize("shape", [dict(openness=1.0), dict(openness=0.6, width=0.8), dict(openness=0.6, width=-1.0),
                                   dict(press=1.0)])
def test_mouth_shapes_touch_only_the_lower_face(mesh, avatar, shape):
    out = frame(mesh, **shape)
    changed = np.abs(out - avatar.image).max(axis=2) > 0
    lm = avatar.landmarks
    assert changed.any()
    # Nothing above the nostrils (three quarters of the way down the nose) changes at all.
    assert not changed[:int(lm[6, 1] + 0.75 * (lm[2, 1] - lm[6, 1]))].any()


def test_opening_paints_a_dark_cavity_and_rounding_narrows_it(mesh, avatar):
    lm = avatar.landmarks
    region = (slice(int(lm[13, 1]), int(lm[152, 1])), slice(int(lm[61, 0]) - 10, int(lm[291, 0]) + 10))

    def dark(**kw):
        d = frame(mesh, **kw)[region].max(axis=2) < 70
        cols = np.flatnonzero(d.any(axis=0))
        return int(d.sum()), (cols[-1] - cols[0]) if cols.size else 0

    a_small, _ = dark(openness=0.3)
    a_big, w_open = dark(openness=1.0)
    _, w_round = dark(openness=1.0, width=-1.0)
    _, w_wide = dark(openness=1.0, width=1.0)
    assert 0 < a_small < a_big
    assert w_round < w_open < w_wide


def test_tongue_tip_shows_behind_the_upper_teeth(mesh, avatar):
    lm = avatar.landmarks
    mouth = (slice(int(lm[13, 1]), int(lm[17, 1])), slice(int(lm[78, 0]), int(lm[308, 0])))
    plain = frame(mesh, openness=0.6)[mouth]
    tip = frame(mesh, openness=0.6, tongue=1.0)[mouth]
    changed = np.abs(tip - plain).max(axis=2) > 8
    assert changed.sum() > 30
    # Redder (BGR): tongue, not teeth or the dark cavity.
    assert (tip[changed][:, 2] - tip[changed][:, 0]).mean() > (plain[changed][:, 2] - plain[changed][:, 0]).mean() + 20


def test_brows_rise_and_nothing_below_the_eyes_moves(mesh, avatar):
    lm = avatar.landmarks
    out = frame(mesh, brows=1.0)
    changed = np.abs(out - avatar.image).max(axis=2) > 0
    assert changed[:int(lm[159, 1])].any()
    assert not changed[int(lm[145, 1]) + 6:].any()             # nothing below the lower lids
    # Each brow point goes up a few px.
    _, m = mesh
    lift = m.bases["brows"][[55, 65, 52, 53, 46, 285, 295, 282, 283, 276]]
    assert np.all((lift[:, 1] < -1.5) & (lift[:, 1] > -6.0)), lift


def test_press_closes_the_lips(mesh, avatar):
    lm = avatar.landmarks
    gap = (slice(int(lm[13, 1]) + 1, int(lm[14, 1])), slice(int(lm[82, 0]), int(lm[312, 0])))
    teeth = frame(mesh)[gap].mean(axis=2)
    pressed = frame(mesh, press=1.0)[gap].mean(axis=2)
    assert teeth.mean() > 150 and pressed.mean() < teeth.mean() - 25   # white teeth covered by lips


def test_blink_closes_the_eyes_and_nothing_below(mesh, avatar):
    lm = avatar.landmarks
    out = frame(mesh, blink=1.0)
    changed = np.abs(out - avatar.image).max(axis=2) > 0
    assert not changed[int(lm[2, 1]):].any()
    eye = (slice(int(lm[159, 1]) - 3, int(lm[145, 1]) + 3), slice(int(lm[33, 0]), int(lm[133, 0])))
    assert (out[eye].max(axis=2) < 90).sum() < 0.6 * (avatar.image[eye].max(axis=2) < 90).sum()


def _iris_x(img: np.ndarray, lm: np.ndarray) -> float:
    """Mean x of the dark iris pixels inside the first eye's corners."""
    eye = img[int(lm[159, 1]) - 2:int(lm[145, 1]) + 2, int(lm[33, 0]):int(lm[133, 0])].max(axis=2)
    _, xs = np.nonzero(eye < 80)
    assert xs.size > 10
    return float(xs.mean())


def test_gaze_moves_the_irises_and_nothing_outside_the_eyes(mesh, avatar):
    lm = avatar.landmarks
    right, left = frame(mesh, gaze=(1.0, 0.0)), frame(mesh, gaze=(-1.0, 0.0))
    assert _iris_x(right, lm) > _iris_x(avatar.image, lm) + 0.3 > _iris_x(left, lm) + 0.6
    changed = np.abs(right - avatar.image).max(axis=2) > 0
    eyes = np.zeros_like(changed)
    for ring in ((33, 133, 159, 145), (263, 362, 386, 374)):
        x0, x1 = sorted((int(lm[ring[0], 0]), int(lm[ring[1], 0])))
        eyes[int(lm[ring[2], 1]) - 4:int(lm[ring[3], 1]) + 5, x0 - 2:x1 + 3] = True
    assert changed.any() and not (changed & ~eyes).any()
    assert np.array_equal(frame(mesh, gaze=(1.0, 0.0), blink=1.0), frame(mesh, blink=1.0))  # shut lids hide it


def test_a_blink_lowers_a_lid_of_the_portraits_skin_with_a_lash_line(mesh, avatar):
    _, m = mesh
    lm = avatar.landmarks
    eye = (slice(int(lm[159, 1]), int(lm[145, 1]) + 1), slice(int(lm[33, 0]) + 3, int(lm[133, 0]) - 2))
    shut = frame(mesh, blink=1.0)[eye].reshape(-1, 3)
    skin = m.lid_skin[0]
    # Most of the shut eye is lid skin, not the white and iris of the eye...
    off_skin = np.median(np.abs(shut - skin).max(axis=1))
    assert off_skin < 0.8 * np.median(np.abs(avatar.image[eye].reshape(-1, 3) - skin).max(axis=1))
    # ...and the lid's edge is a dark lash line across it.
    assert (shut.max(axis=1) < 110).sum() >= eye[1].stop - eye[1].start - 6


def test_a_closed_mouth_portrait_opens_onto_fixed_upper_teeth_and_a_jaw_that_carries_the_lower(preparer):
    r = MeshWarpRenderer(0.3)
    smile = preparer.prepare(cv2.imencode(".png", cv2.imread(DEFAULT_PORTRAIT))[1].tobytes())
    # The default portrait smiles with its teeth showing; lips pressed shut make the closed-mouth one.
    closed_img = r.render(r.prepare(smile), FrameState(0, 0.0, 0.0, press=1.0))
    closed = preparer.prepare(cv2.imencode(".png", closed_img)[1].tobytes())
    m = r.prepare(closed)
    assert not m.teeth_showing and r.prepare(smile).teeth_showing
    lm = closed.landmarks
    col = slice(int(lm[13, 0]) - 3, int(lm[13, 0]) + 4)

    def rows_of(img, lo, hi):   # per row, whether the mouth's middle column band is teeth: light and grey
        band = img[lo:hi, col].astype(int)
        teeth = (band.min(axis=2) > 110) & (np.ptp(band, axis=2) < 30)
        return teeth.mean(axis=1) > 0.5

    lo, hi = int(lm[13, 1]) - 5, int(lm[152, 1])
    half, full = r.render(m, FrameState(0, 0.0, 0.7)), r.render(m, FrameState(0, 0.0, 1.0))
    teeth_half, teeth_full = rows_of(half, lo, hi), rows_of(full, lo, hi)
    runs = [np.flatnonzero(t) for t in (teeth_half, teeth_full)]
    assert all(len(x) for x in runs)
    # Upper teeth: their edge is where it was (fixed to the skull); the lower teeth went down with the jaw.
    upper_edge = [x[np.flatnonzero(np.diff(x) > 1)[0]] if (np.diff(x) > 1).any() else x[-1] for x in runs]
    assert abs(int(upper_edge[0]) - int(upper_edge[1])) <= 2
    assert runs[1][-1] > runs[0][-1] + 4
    # The chin goes down with the jaw too.
    chin = int(lm[152, 0])
    dark0 = np.flatnonzero(closed.image[:, chin].max(axis=1) < 90)
    dark1 = np.flatnonzero(full[:, chin].max(axis=1) < 90)
    below_chin = lambda d: d[d > lm[152, 1] - 5].min()  # noqa: E731 - the shadow under the chin
    assert below_chin(dark1) > below_chin(dark0) + 3
    # Rounded and open, the upper inner lip goes up all along (none of it down over the teeth)
    # and the lower one down, and no triangle folds.
    shaped = m.bases["open"] + m.bases["round"]
    assert np.all(shaped[list(UPPER_INNER[1:-1])] @ m.v <= 0.0)
    assert np.all(shaped[list(LOWER_INNER[1:-1])] @ m.v > 0.0)
    a, b, c = (m.triangles[:, k] for k in range(3))

    def area(pts):
        d1, d2 = pts[b] - pts[a], pts[c] - pts[a]
        return 0.5 * (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])

    # Slivers along the shut lips' line have no area to fold (they open into the painted mouth).
    src = area(m.points)
    sign, real = np.sign(src), np.abs(src) >= 1.0
    for mix in ({"open": 1.0}, {"open": 1.0, "round": 1.0}, {"open": 1.0, "wide": 1.0}, {"press": 1.0},
                {"blink": 1.0, "open": 0.5}):
        disp = sum(k * m.bases[name] for name, k in mix.items())
        assert (sign * area(m.points + disp))[real].min() >= 0.0, mix


def _on_canvas(img: np.ndarray, side: int, x: int, y: int) -> np.ndarray:
    canvas = np.full((720, 960, 3), 200, np.uint8)
    canvas[y:y + side, x:x + side] = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    return canvas


def variant(name: str) -> np.ndarray:
    """The default portrait as users bring others: off-centre and small on a big canvas, large,
    tilted, mirrored, dim."""
    img = cv2.imread(DEFAULT_PORTRAIT)
    h, w = img.shape[:2]
    return {
        "default": lambda: img,
        "off-centre": lambda: _on_canvas(img, 256, 640, 40),
        "small": lambda: _on_canvas(img, 200, 20, 500),
        "large": lambda: cv2.resize(img, (2048, 2048), interpolation=cv2.INTER_CUBIC),
        "tilted": lambda: cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0), (w, h),
                                         borderMode=cv2.BORDER_REPLICATE),
        "mirrored": lambda: np.ascontiguousarray(img[:, ::-1]),
        "dim": lambda: (img.astype(np.float32) * 0.35).astype(np.uint8),
    }[name]()


VARIANTS = ("default", "off-centre", "small", "large", "tilted", "mirrored", "dim")


@pytest.mark.parametrize("name", VARIANTS)
def test_any_portrait_variant_is_found_and_centred(preparer, name):
    avatar = preparer.prepare(cv2.imencode(".png", variant(name))[1].tobytes())
    nose = avatar.landmarks[1]
    assert avatar.image.shape == (512, 512, 3)
    assert 150 < nose[0] < 362 and 120 < nose[1] < 362, nose      # the face is in the middle of the crop


@pytest.mark.parametrize("name", VARIANTS)
def test_no_mesh_triangle_ever_folds(preparer, name):
    """Every triangle keeps its orientation under any mix of the shapes (a fold would show as a
    tear or a mirrored patch of skin), sampled over the whole range of each."""
    avatar = preparer.prepare(cv2.imencode(".png", variant(name))[1].tobytes())
    m = MeshWarpRenderer(0.3).prepare(avatar)
    a, b, c = (m.triangles[:, k] for k in range(3))

    def area(pts):
        d1, d2 = pts[b] - pts[a], pts[c] - pts[a]
        return 0.5 * (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])

    sign = np.sign(area(m.points))
    worst = np.inf
    for op, wd, pr, bl, br, gx, gy in itertools.product(np.linspace(0, 1, 5), np.linspace(-1, 1, 5), (0, 0.5, 1),
                                                        (0, 0.5, 1), (0, 1), (-1, 0, 1), (-1, 1)):
        look = 1.0 - bl   # as the renderer does: shut lids hold the iris still
        coef = {"open": op, "wide": max(wd, 0.0), "round": max(-wd, 0.0), "press": pr, "blink": bl, "brows": br,
                "gaze_x": gx * look, "gaze_y": gy * look}
        disp = sum(k * m.bases[name] for name, k in coef.items())
        worst = min(worst, float((sign * area(m.points + disp)).min()))
    assert worst >= 0.0, f"a triangle folds over (signed area {worst:.4f} px²)"


def test_head_sway_moves_the_head_not_the_background(mesh, avatar):
    out = frame(mesh, head=(2.0, 0.0, 0.0))
    diff = np.abs(out - avatar.image).max(axis=2)
    assert diff[:, :20].max() == 0 and diff[:, -20:].max() == 0
    assert diff[150:400, 150:360].mean() > 1


def test_renderers_are_pluggable():
    assert make_renderer("mesh-warp", 0.3).name == "mesh-warp"
    plug = make_renderer("tests.unit.test_animator_mesh:Still", 0.3)
    assert type(plug).__name__ == "Still" and isinstance(plug, Renderer)
    with pytest.raises(ValueError):
        make_renderer("wav2lip", 0.3)


class Still(Renderer):
    name = "still"

    def __init__(self, max_opening: float):
        self.max_opening = max_opening

    def prepare(self, avatar):
        return avatar.image

    def render(self, prepared, state):
        return prepared.copy()


def test_mp4_assembly(tmp_path, mesh):
    from services.animator.mp4 import assemble_mp4
    from services.common.media import probe

    frames = [frame(mesh, openness=o).astype(np.uint8) for o in np.linspace(0, 1, 10)]
    path = str(tmp_path / "a.mp4")
    assemble_mp4(path, frames, 25, np.zeros(RATE * 10 // 25, np.int16), RATE)
    info = probe(path)
    assert info["video_frames"] == 10 and (info["width"], info["height"]) == (512, 512)
    assert abs(info["audio_seconds"] - 0.4) < 0.1
