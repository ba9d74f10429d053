"""Frame rendering: a prepared portrait plus a mouth state in, a BGR frame out.

:class:`Renderer` is the seam where a neural lip-sync model can replace the
geometric renderer: ``prepare(avatar)`` does the per-portrait work once (the
result is cached with the avatar), ``render(prepared, state)`` makes one frame.

:class:`MouthWarpRenderer` opens the mouth of a still portrait. Everything is
expressed in a mouth frame of reference (``s`` along the line through the
mouth corners, ``y`` downwards from the upper inner lip), precomputed once per
avatar inside the lower-face box where anything can move. Per frame it only
scales that precomputed displacement, remaps the box and paints the mouth
cavity; above the upper inner lip the displacement is exactly zero, so nothing
there changes.
"""

from __future__ import annotations

import abc
import dataclasses

import cv2
import numpy as np

from services.animator.avatar import LANDMARKS, Avatar

# mediapipe face-mesh indices.
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LOWER_OUTER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
JAW_LINE = (93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323)
MOUTH_LEFT, MOUTH_RIGHT = 61, 291          # outer corners
INNER_LEFT, INNER_RIGHT = 78, 308          # inner corners
LOWER_LIP_BOTTOM, CHIN = 17, 152
CHEEK_LEFT, CHEEK_RIGHT = 234, 454


@dataclasses.dataclass(frozen=True)
class FrameState:
    """What one frame should show."""

    index: int
    pts: float
    openness: float                    # 0 = closed .. 1 = widest
    audio: np.ndarray | None = None    # float32 mono audio around pts, for renderers that listen
    width: float = 0.0                 # -1 rounded (o, u) .. +1 spread (e, i)
    press: float = 0.0                 # 1 = lips pressed together (m, b, p)
    tongue: float = 0.0                # 0..1 the tongue tip shows (t, d, l, n, th)
    blink: float = 0.0                 # 0 = eyes open .. 1 = shut
    brows: float = 0.0                 # 0 = at rest .. 1 = raised (emphasis)
    head: tuple[float, float, float] = (0.0, 0.0, 0.0)  # head sway: dx px, dy px, roll radians
    gaze: tuple[float, float] = (0.0, 0.0)   # irises: -1..1 towards the image's right, -1..1 up


class Renderer(abc.ABC):
    """Turns a portrait and a per-frame state into frames."""

    name: str = ""
    keypoints: int = LANDMARKS

    @abc.abstractmethod
    def prepare(self, avatar: Avatar) -> object:
        """Per-portrait precomputation; the result is passed back to :meth:`render`."""

    @abc.abstractmethod
    def render(self, prepared: object, state: FrameState) -> np.ndarray:
        """One frame, BGR uint8 (height, width, 3)."""


def mouth_axes(lm: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The mouth's frame from the landmarks: its width, the unit vector from the left corner to the
    right (u), the one pointing down towards the chin (v), and the corners' midpoint."""
    left, right = lm[MOUTH_LEFT], lm[MOUTH_RIGHT]
    width = float(np.linalg.norm(right - left))
    if width < 4.0:
        raise ValueError("mouth landmarks are degenerate")
    u = (right - left) / width
    v = np.array([-u[1], u[0]])
    origin = (left + right) / 2
    if np.dot(lm[CHIN] - origin, v) < 0:  # upside-down portrait: point "down" at the chin
        v = -v
    return width, u, v, origin


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / np.maximum(e1 - e0, 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _curve(s_px: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """t(s) of a landmark contour, sampled at ``s_px`` (held constant beyond its ends)."""
    order = np.argsort(s)
    return np.interp(s_px, s[order], t[order])


# Colours of the mouth cavity from its top (z=0) to its bottom (z=1), BGR.
_CAVITY_Z = np.array([0.0, 0.3, 0.7, 1.0])
_CAVITY_BGR = np.array([(26, 24, 64), (17, 15, 40), (24, 23, 60), (56, 58, 128)], dtype=np.float32)
_CAVITY_LUT = np.stack([np.interp(np.linspace(0, 1, 64), _CAVITY_Z, _CAVITY_BGR[:, c]) for c in range(3)],
                       axis=1).astype(np.float32)
_TEETH_BGR = np.array((196, 202, 210), dtype=np.float32)


@dataclasses.dataclass(eq=False)
class _Warp:
    image: np.ndarray          # the portrait, BGR
    box: tuple[int, int, int, int]   # x0, y0, x1, y1 of everything that can change
    x: np.ndarray              # pixel coordinates in the box (float32)
    y: np.ndarray
    below: np.ndarray          # distance below the upper inner lip along the face's down axis
    gap: np.ndarray            # source lip gap (teeth already showing) at this column
    drop: np.ndarray           # lower-lip drop at full opening, px
    field: np.ndarray          # displacement at full opening, px (lip drop blending into jaw drop)
    down: tuple[float, float]  # the face's down axis (unit vector)
    mouth: tuple[slice, slice]  # where the cavity can appear, inside the box
    shade: np.ndarray          # cavity shading across the mouth (darker at the corners)
    teeth: np.ndarray          # height of the painted upper-teeth band, px (0 where teeth show already)
    cavity_top: np.ndarray     # where the cavity starts (just above the source lower inner lip)


class MouthWarpRenderer(Renderer):
    """Opens the mouth of a still portrait with a smooth displacement field and a painted cavity."""

    name = "mouth-warp"

    def __init__(self, max_opening: float = 0.3):
        self.max_opening = max_opening

    def prepare(self, avatar: Avatar) -> _Warp:
        lm = avatar.landmarks.astype(np.float64)
        img = avatar.image
        h, w = img.shape[:2]

        width, u, v, origin = mouth_axes(lm)
        rel = lm - origin
        ls, lt = rel @ u, rel @ v

        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        s = (xs - origin[0]) * u[0] + (ys - origin[1]) * u[1]
        t = (xs - origin[0]) * v[0] + (ys - origin[1]) * v[1]

        def contour(idx):
            i = np.array(idx)
            return _curve(s, ls[i], lt[i])

        top = contour(UPPER_INNER_LIP)
        below = t - top
        gap = np.maximum(contour(LOWER_INNER_LIP) - top, 0.0)
        lower_outer = np.maximum(contour(LOWER_OUTER_LIP) - top, gap)
        jaw = contour(JAW_LINE) - top

        centre = (ls[INNER_LEFT] + ls[INNER_RIGHT]) / 2
        half_inner = max((ls[INNER_RIGHT] - ls[INNER_LEFT]) / 2, 2.0)
        across = (s - centre) / half_inner           # -1 .. 1 between the inner corners
        dmax = self.max_opening * width
        # The lower lip drops most in the middle and not at all at the corners.
        drop = dmax * np.clip(1.0 - across ** 2, 0.0, 1.0) ** 0.6

        # Below the lower lip the rigid jaw takes over: the whole chin drops by dmax,
        # fading out towards the sides of the face and below the jaw line.
        chin_depth = lt[CHIN] - lt[LOWER_LIP_BOTTOM]
        blend_len = max(0.6 * chin_depth, 1.6 * dmax)  # > 1.5 * dmax keeps the map fold-free
        q = _smoothstep(lower_outer, lower_outer + blend_len, below)
        half_face = (ls[CHEEK_RIGHT] - ls[CHEEK_LEFT]) / 2
        jaw_across = 1.0 - _smoothstep(0.55 * width, max(0.95 * half_face, 0.85 * width), np.abs(s - centre))
        under_chin = 1.0 - _smoothstep(jaw + dmax, jaw + dmax + 0.6 * width, below)
        field = ((1.0 - q) * drop + q * dmax * jaw_across) * under_chin
        field[below <= 0] = 0.0

        # Box of everything that can change: the moving field plus the cavity.
        can_open = (np.abs(across) < 1.0) & (below > 0) & (below < gap + drop + 2)
        box = _bbox((field > 0.02) | can_open, pad=2, shape=(h, w))
        x0, y0, x1, y1 = box
        sl = (slice(y0, y1), slice(x0, x1))
        mx0, my0, mx1, my1 = _bbox(can_open[sl], pad=2, shape=(y1 - y0, x1 - x0))
        mouth = (slice(my0, my1), slice(mx0, mx1))

        f32 = np.float32
        in_box = {k: np.ascontiguousarray(a[sl], dtype=f32) for k, a in
                  dict(x=xs, y=ys, below=below, gap=gap, drop=drop, field=field, across=across).items()}
        across_m = in_box["across"][mouth]
        middle = np.clip(1.0 - across_m ** 2, 0.0, 1.0)
        # Paint upper teeth only where the portrait does not show its own.
        teeth_h = np.maximum(0.1 * width - in_box["gap"][mouth], 0.0)
        teeth = (teeth_h * (1.0 - _smoothstep(0.6, 0.9, np.abs(across_m)))).astype(f32)
        return _Warp(
            image=img, box=box, x=in_box["x"], y=in_box["y"], below=in_box["below"], gap=in_box["gap"],
            drop=in_box["drop"], field=in_box["field"], down=(float(v[0]), float(v[1])), mouth=mouth,
            shade=(0.45 + 0.55 * middle).astype(f32)[..., None], teeth=teeth,
            # The cavity overlaps the lip gap's last rows, which would otherwise show the lower
            # lip's inner edge stretched across the opening.
            cavity_top=np.maximum(in_box["gap"][mouth] - 1.5, 0.0).astype(f32),
        )

    def render(self, prepared: _Warp, state: FrameState) -> np.ndarray:
        p = prepared
        frame = p.image.copy()
        a = float(min(max(state.openness, 0.0), 1.0))
        if a <= 1e-3:
            return frame
        x0, y0, x1, y1 = p.box
        # Displacement (destination -> source, along the down axis): zero above the lip gap,
        # a tear across the mouth opening (hidden by the cavity), the full field below it.
        opening = a * p.drop
        ramp = np.clip((p.below - p.gap) / np.maximum(opening, 0.25), 0.0, 1.0)
        disp = (a * p.field) * ramp
        vx, vy = p.down
        map_x = p.x - disp * vx if vx else p.x
        map_y = p.y - disp * vy
        frame[y0:y1, x0:x1] = cv2.remap(p.image, map_x, map_y, cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE)
        self._paint_cavity(frame[y0:y1, x0:x1][p.mouth], p, opening[p.mouth])
        return frame

    @staticmethod
    def _paint_cavity(roi: np.ndarray, p: _Warp, opening: np.ndarray) -> None:
        below = p.below[p.mouth]
        bottom = p.gap[p.mouth] + opening                    # the lower inner lip, displaced
        rel = below - p.cavity_top
        feather = 1.2
        alpha = (np.clip(rel / feather, 0.0, 1.0) * np.clip((bottom - below) / feather, 0.0, 1.0)
                 * np.clip(opening / 1.5, 0.0, 1.0))
        if not alpha.any():
            return
        depth = np.clip(rel / np.maximum(bottom - p.cavity_top, 1.0), 0.0, 0.999)
        colour = _CAVITY_LUT[(depth * 63).astype(np.int32)] * p.shade
        band = np.minimum(p.teeth, 0.45 * opening)
        teeth = np.clip((band - rel) / feather, 0.0, 1.0)[..., None] * 0.85
        colour += teeth * (_TEETH_BGR * (0.7 + 0.3 * p.shade) - colour)
        a3 = alpha[..., None]
        roi[:] = (roi * (1.0 - a3) + colour * a3 + 0.5).astype(np.uint8)


def _bbox(mask: np.ndarray, pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, 0, 1, 1
    h, w = shape
    return (max(int(cols[0]) - pad, 0), max(int(rows[0]) - pad, 0),
            min(int(cols[-1]) + 1 + pad, w), min(int(rows[-1]) + 1 + pad, h))
