"""The mesh-warp renderer: a portrait's face mesh moved by a few blend shapes, the image
warped piecewise-affinely over the mesh's triangles, the mouth's inside painted in.

Per avatar (``prepare``), once:

- the 468 face-mesh landmarks, the two iris centres (the iris rings are left out, so a lid can
  close over the eye), a few "teeth line" points just above the lower inner lip when the portrait
  shows its teeth, and fixed anchors along the image border are Delaunay-triangulated;
- eight *blend shapes* give every point a displacement at full strength: jaw ``open`` (lower lip,
  chin and lower cheeks drop, upper lip lifts a little), ``wide`` (lips spread), ``round`` (lips
  narrow and pout), ``press`` (lips meet and thin: m, b, p), ``blink`` (upper lids down to the
  lower), ``brows`` and ``gaze_x`` / ``gaze_y`` (the iris centres move);
- a soft head mask for the idle sway.

Per frame (``render``) the shapes are mixed (a few hundred multiply-adds), the triangles that
move are rasterised at their new place into a triangle-index map, each output pixel there
gets its triangle's inverse affine map, the image is remapped in the boxes that change, the
opening between the lips is painted (cavity, tongue, lower teeth on the jaw, upper teeth fixed
to the skull, inner-lip shadows), pressed lips get a darker seam and a lowering lid its skin
colour and a lash line. Landmarks above the nose only move for blinks, glances, brows and head
sway, so with those off the upper face is bit-identical to the portrait.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from services.animator.avatar import Avatar
from services.animator.render import FrameState, Renderer, _smoothstep, mouth_axes

# mediapipe face-mesh indices.
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
JAW = (93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
MOUTH_LEFT, MOUTH_RIGHT, CHIN, NOSE_BOTTOM = 61, 291, 152, 2
CHEEK_LEFT, CHEEK_RIGHT = 234, 454
# Eyes: upper-lid margin paired with the lower-lid point under it, then the crease row above.
EYES = (
    dict(upper=(246, 161, 160, 159, 158, 157, 173), lower=(7, 163, 144, 145, 153, 154, 155),
         crease=(247, 30, 29, 27, 28, 56, 190), corners=(33, 133)),
    dict(upper=(466, 388, 387, 386, 385, 384, 398), lower=(249, 390, 373, 374, 380, 381, 382),
         crease=(467, 260, 259, 257, 258, 286, 414), corners=(263, 362)),
)
MESH_POINTS = 468
SHAPES = ("open", "wide", "round", "press", "blink", "brows", "gaze_x", "gaze_y")
IRIS_CENTRES = (468, 473)   # refined landmarks: the iris centres
GAZE_ACROSS, GAZE_UP = 0.09, 0.035   # how far the iris moves at full gaze, in eye widths
EYE_SHAPES = frozenset(("blink", "brows", "gaze_x", "gaze_y"))
# Eyebrows, each from the inner end out.
BROWS = ((55, 65, 52, 53, 46), (285, 295, 282, 283, 276))
BROW_TOPS = ((107, 66, 105, 63, 70), (336, 296, 334, 293, 300))

# Mouth cavity colours from its top (0) to its bottom (1), BGR: dark at the back, the tongue
# showing a little at the bottom.
_CAVITY_Z = np.array([0.0, 0.35, 0.75, 1.0])
_CAVITY_BGR = np.array([(38, 36, 78), (26, 24, 56), (40, 42, 96), (78, 88, 168)], dtype=np.float32)
_CAVITY_LUT = np.stack([np.interp(np.linspace(0, 1, 64), _CAVITY_Z, _CAVITY_BGR[:, c]) for c in range(3)],
                       axis=1).astype(np.float32)
_TEETH_BGR = np.array((200, 207, 216), dtype=np.float32)
_TONGUE_BGR = np.array((96, 104, 196), dtype=np.float32)
_TONGUE_BODY_BGR = np.array((84, 92, 170), dtype=np.float32)
_LASH_BGR = np.array((32, 38, 52), dtype=np.float32)


@dataclasses.dataclass(eq=False)
class _Mesh:
    image: np.ndarray
    points: np.ndarray            # (M, 2) float64, source positions
    triangles: np.ndarray         # (T, 3) int32
    bases: dict[str, np.ndarray]  # shape name -> (M, 2) displacement at full strength
    tris: dict[str, np.ndarray]   # shape name -> indices of the triangles it moves
    boxes: dict[str, tuple[int, int, int, int]]  # shape name -> x0, y0, x1, y1 it can change
    head_mask: np.ndarray         # (H, W) float32 0..1, how much each pixel sways with the head
    head_box: tuple[int, int, int, int]
    pivot: tuple[float, float]    # the head rolls about the neck
    top: np.ndarray               # point indices of the cavity's top edge (teeth line / upper inner lip)
    bottom: np.ndarray            # point indices of the lower inner lip
    u: np.ndarray                 # the mouth's across axis (unit)
    v: np.ndarray                 # the face's down axis (unit)
    width: float                  # mouth width, px
    teeth_showing: bool
    lid_skin: np.ndarray          # (2, 3) BGR of each upper lid's skin, for the lid a blink lowers
    eye_width: np.ndarray         # (2,) px


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    g = _GRIDS.get((h, w))
    if g is None:
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        xs.setflags(write=False)
        ys.setflags(write=False)
        g = _GRIDS[(h, w)] = (xs, ys)
    return g


def delaunay(points: np.ndarray, w: int, h: int) -> np.ndarray:
    """Delaunay triangles (indices into ``points``) of points inside [0, w] x [0, h]."""
    sub = cv2.Subdiv2D((-2, -2, w + 4, h + 4))
    key: dict[tuple[int, int], int] = {}
    for i, (x, y) in enumerate(points):
        k = (round(float(x) * 16), round(float(y) * 16))
        if k in key:
            continue
        key[k] = i
        sub.insert((float(x), float(y)))
    tris = []
    for t in sub.getTriangleList():
        idx = [key.get((round(float(t[j]) * 16), round(float(t[j + 1]) * 16))) for j in (0, 2, 4)]
        if None not in idx:
            tris.append(idx)
    return np.array(tris, dtype=np.int32)


def _contour(s_at: np.ndarray, ls: np.ndarray, lt: np.ndarray, idx) -> np.ndarray:
    i = np.array(idx)
    order = np.argsort(ls[i])
    return np.interp(s_at, ls[i][order], lt[i][order])


class MeshWarpRenderer(Renderer):
    """Visemes and blinks on a still portrait by a piecewise-affine warp of its face mesh."""

    name = "mesh-warp"

    def __init__(self, max_opening: float = 0.3):
        self.max_opening = max_opening

    # -- per avatar ---------------------------------------------------------------------------

    def prepare(self, avatar: Avatar) -> _Mesh:
        img = avatar.image
        h, w = img.shape[:2]
        lm = np.clip(avatar.landmarks[:MESH_POINTS].astype(np.float64), 0, [w - 1, h - 1])
        width, u, v, origin = mouth_axes(lm)

        # Teeth line: just above the lower inner lip, where the portrait shows a gap.
        ls, lt = (lm - origin) @ u, (lm - origin) @ v
        inner = np.array(LOWER_INNER[1:-1])
        gap = lt[inner] - _contour(ls[inner], ls, lt, UPPER_INNER)
        teeth_showing = bool(np.median(gap) > 0.06 * width)
        # Only a mouth that shows its teeth gets a teeth line: on a closed one a few points of a
        # lip gap would hold bits of the lips still between the upper lip and the painted teeth.
        at = (gap >= 2.5) & teeth_showing
        floor_idx = inner[at]
        floor = lm[floor_idx] - np.minimum(1.0, 0.3 * gap[at])[:, None] * v

        border = [(x, y) for x in np.linspace(0, w - 1, 9) for y in (0, h - 1)]
        border += [(x, y) for y in np.linspace(0, h - 1, 9)[1:-1] for x in (0, w - 1)]
        # A fixed ring around the lower face keeps the mouth's triangles (and the boxes that
        # change) small: nothing outside it moves.
        reach = (self.max_opening + 0.7) * width
        oval = lm[list(FACE_OVAL)]
        centre = oval.mean(axis=0)
        ring = []
        for ang in np.linspace(0, 2 * np.pi, 40, endpoint=False):
            d = np.array([np.cos(ang), np.sin(ang)])
            along = (oval - centre) @ d
            ring.append(centre + d * (along.max() + reach))
        ring = np.array(ring)
        ring = ring[(ring[:, 0] > 1) & (ring[:, 0] < w - 2) & (ring[:, 1] > 1) & (ring[:, 1] < h - 2)]
        iris = self._iris(avatar.landmarks.astype(np.float64), lm)
        points = np.concatenate([lm, floor, iris, ring, np.array(border, dtype=np.float64)])
        n_floor = len(floor_idx)
        floor_rows = np.arange(MESH_POINTS, MESH_POINTS + n_floor)
        iris_rows = np.arange(MESH_POINTS + n_floor, MESH_POINTS + n_floor + len(iris))
        triangles = delaunay(points, w, h)

        ps, pt = (points - origin) @ u, (points - origin) @ v
        bases_st = self._mouth_bases(lm, ls, lt, ps, pt, width, floor_rows, floor_idx)
        bases = {k: np.outer(ds, u) + np.outer(dt, v) for k, (ds, dt) in bases_st.items()}
        for b in bases.values():
            b[iris_rows] = 0.0
        bases["blink"] = self._blink_basis(points, iris_rows)
        bases["brows"] = self._brow_basis(points, v)
        bases["gaze_x"], bases["gaze_y"] = self._gaze_bases(points, iris_rows, v)
        for b in bases.values():
            b[MESH_POINTS + n_floor + len(iris):] = 0.0  # the ring and border anchors never move

        tris, boxes = {}, {}
        for k, b in bases.items():
            moving = np.abs(b).max(axis=1) > 0.05   # a twentieth of a pixel at full strength: not worth a warp
            t_idx = np.flatnonzero(moving[triangles].any(axis=1)).astype(np.int32)
            tris[k] = t_idx
            corners = points[triangles[t_idx]].reshape(-1, 2)
            moved = (points + b)[triangles[t_idx]].reshape(-1, 2)
            allp = np.concatenate([corners, moved]) if len(t_idx) else np.zeros((1, 2))
            boxes[k] = _box(allp, w, h, pad=3)

        head_mask, head_box, pivot = self._head(lm, w, h)
        # Cavity edges, corner to corner: the teeth line where there is one, else the upper inner lip.
        top = np.array(UPPER_INNER)
        for row, li in zip(floor_rows, floor_idx, strict=True):
            top[LOWER_INNER.index(int(li))] = row
        return _Mesh(image=img, points=points, triangles=triangles, bases=bases, tris=tris, boxes=boxes,
                     head_mask=head_mask, head_box=head_box, pivot=pivot, top=top,
                     bottom=np.array(LOWER_INNER), u=u, v=v, width=width, teeth_showing=teeth_showing,
                     lid_skin=self._lid_skin(img, lm),
                     eye_width=np.array([np.linalg.norm(lm[e["corners"][0]] - lm[e["corners"][1]]) for e in EYES]))

    @staticmethod
    def _iris(landmarks: np.ndarray, lm: np.ndarray) -> np.ndarray:
        """Each eye's iris centre (a mesh point that gaze moves), where it lies inside the eye's
        opening; none for a portrait without iris landmarks or with shut eyes."""
        if len(landmarks) <= max(IRIS_CENTRES):
            return np.zeros((0, 2))
        out = []
        for eye in EYES:
            up, lo = lm[list(eye["upper"])], lm[list(eye["lower"])]
            middle = lm[list(eye["corners"])].mean(axis=0)
            # The iris inside this eye (the mesh numbers them by the face's side, a mirror swaps them).
            centre = min((landmarks[c] for c in IRIS_CENTRES), key=lambda q: float(np.linalg.norm(q - middle)))
            k = int(np.argmin(np.abs(up[:, 0] - centre[0])))
            opening = lo[k, 1] - up[k, 1]
            if opening < 3.0 or not (up[k, 1] + 0.25 * opening < centre[1] < lo[k, 1] - 0.25 * opening):
                return np.zeros((0, 2))
            out.append(centre)
        return np.array(out)

    @staticmethod
    def _lid_skin(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
        """The colour of each upper lid's skin: the median around the lid crease (nearer the margin
        the lashes and liner darken it)."""
        h, w = img.shape[:2]
        out = []
        for eye in EYES:
            crease, up = lm[list(eye["crease"])], lm[list(eye["upper"])]
            samples = [img[min(max(round(float(y)), 0), h - 1), min(max(round(float(x)), 0), w - 1)]
                       for a, b in zip(crease[1:-1], up[1:-1], strict=True)
                       for x, y in (a, 1.3 * a - 0.3 * b, 1.6 * a - 0.6 * b)]
            out.append(np.median(np.array(samples, dtype=np.float32), axis=0))
        return np.array(out, dtype=np.float32)

    def _mouth_bases(self, lm, ls, lt, ps, pt, width, floor_rows, floor_idx):
        """(ds, dt) per point for each mouth shape, in the mouth frame (s across, t down)."""
        d = self.max_opening * width
        top = _contour(ps, ls, lt, UPPER_INNER)
        lower_inner = np.maximum(_contour(ps, ls, lt, LOWER_INNER), top)
        lower_outer = np.maximum(_contour(ps, ls, lt, LOWER_OUTER), lower_inner)
        upper_outer = np.minimum(_contour(ps, ls, lt, UPPER_OUTER), top)
        jaw = _contour(ps, ls, lt, JAW)
        gap = lower_inner - top
        below = pt - top
        centre = (ls[78] + ls[308]) / 2
        half_inner = max((ls[308] - ls[78]) / 2, 2.0)
        across = (ps - centre) / half_inner
        profile = np.clip(1.0 - across ** 2, 0.0, 1.0) ** 0.6
        nose = lt[NOSE_BOTTOM]
        # 1 on the upper lip, 0 from the nose up.
        upper_zone = _smoothstep(nose, nose + 0.6 * (np.median(top) - nose), pt) * (below <= 0.5)
        # On a closed mouth the lower inner lip lies on the upper one: it still goes with the jaw.
        inner_lower = np.zeros(len(ps), dtype=bool)
        inner_lower[list(LOWER_INNER[1:-1])] = True
        lower = (below > 0.5) | inner_lower

        # open: the lower lip drops most in the middle; below it the rigid jaw takes over.
        chin_depth = lt[CHIN] - lt[17]
        blend_len = max(0.6 * chin_depth, 1.6 * d)
        q = _smoothstep(lower_outer, lower_outer + blend_len, pt)
        half_face = (ls[CHEEK_RIGHT] - ls[CHEEK_LEFT]) / 2
        jaw_across = 1.0 - _smoothstep(0.55 * width, max(0.95 * half_face, 0.85 * width), np.abs(ps - centre))
        under_chin = 1.0 - _smoothstep(jaw + d, jaw + d + 0.6 * width, pt)
        # Beside the mouth the lower cheeks go down with the jaw too, less the nearer the lips' line.
        cheeks = 0.3 * jaw_across * _smoothstep(0.0, 0.5 * width, below)
        drop = (1.0 - q) * d * np.maximum(profile, cheeks) + q * d * jaw_across
        open_t = np.where(lower, drop * under_chin, 0.0)
        open_t -= 0.12 * d * profile * upper_zone           # the upper lip lifts a little
        open_s = np.where(lower, -0.06 * (ps - centre) * (1.0 - q) * profile, 0.0)  # lips narrow as they part
        open_t[floor_rows] = 0.0
        open_s[floor_rows] = 0.0

        # wide / round: the lips scale across about the mouth centre, fading out over the cheeks,
        # nothing above the nose.
        mid_t = float(np.median(top))
        r = np.hypot((ps - centre) / (0.8 * width), (pt - mid_t) / (0.6 * width))
        zone = (1.0 - _smoothstep(0.75, 1.7, r)) * _smoothstep(nose, nose + 0.6 * width, pt)
        wide_s = 0.12 * (ps - centre) * zone
        wide_t = -0.025 * width * np.clip(np.abs(across), 0, 1) ** 2 * zone   # corners lift a touch
        lips = (pt > upper_outer - 1) & (pt < lower_outer + 1)
        pout = 0.05 * width * profile * lips
        round_s = -0.28 * (ps - centre) * zone
        round_t = np.where((pt <= top + 0.5 * gap) & ~inner_lower, -pout, pout)   # lips fuller
        round_t[floor_rows] = 0.0

        # press: the lips meet (the lower one rises to the upper, leaving a twentieth of the gap so
        # that no triangle between them turns over) and thin.
        fade = 1.0 - _smoothstep(lower_outer, jaw, pt)
        press_t = np.where(lower, -0.78 * gap * fade, 0.0)
        press_t += np.where(~lower, 0.15 * gap * upper_zone, 0.0)   # meets the lower lip, never passes it
        # Pressed lips thin: each lip's red is squeezed towards the line where they meet (a third
        # of its height at the outer edge, fading out over as much again beyond it), a linear
        # squeeze that keeps every triangle the right way round.
        up_h = np.maximum(top - upper_outer, 1.0)
        lo_h = np.maximum(lower_outer - lower_inner, 1.0)
        squeeze = 0.3 * profile
        press_t += np.where(pt <= top, squeeze * np.minimum(top - pt, up_h)
                            * (1.0 - _smoothstep(0.0, up_h, upper_outer - pt)), 0.0)
        press_t -= np.where(lower, squeeze * np.minimum(np.maximum(pt - lower_inner, 0.0), lo_h)
                            * (1.0 - _smoothstep(0.0, lo_h, pt - lower_outer)), 0.0)
        # The teeth line ends between the lips, where they meet.
        upper_met = top + 0.15 * gap * _smoothstep(nose, nose + 0.6 * (np.median(top) - nose), top)
        met = 0.5 * (upper_met + lower_inner - 0.78 * gap)
        press_t[floor_rows] = (met - pt)[floor_rows]
        zero = np.zeros_like(ps)
        return {"open": (open_s, open_t), "wide": (wide_s, wide_t), "round": (round_s, round_t),
                "press": (zero, press_t)}

    @staticmethod
    def _brow_basis(points: np.ndarray, down: np.ndarray) -> np.ndarray:
        """Brows raised for emphasis: up by a seventh of their height over the eye, the skin
        above them a little less, the lid crease below them a third as much."""
        b = np.zeros_like(points)
        for brow, tops, eye in zip(BROWS, BROW_TOPS, EYES, strict=True):
            lift = float(np.mean(points[list(eye["upper"])] @ down) - np.mean(points[list(brow)] @ down)) / 7.0
            b[list(brow)] = -lift * down
            b[list(tops)] = -0.8 * lift * down
            b[list(eye["crease"])] = -0.3 * lift * down
        return b

    @staticmethod
    def _blink_basis(points: np.ndarray, iris_rows: np.ndarray) -> np.ndarray:
        b = np.zeros_like(points)
        for n, eye in enumerate(EYES):
            up, lo, cr = (np.array(eye[k]) for k in ("upper", "lower", "crease"))
            closing = points[lo] - points[up]
            # The lids meet (not pass: a lid through the other would fold the mesh).
            b[up] = 0.88 * closing
            b[lo] = -0.08 * closing
            b[cr] = 0.3 * closing
            if len(iris_rows):   # the iris centre goes to where the lids meet, staying between them
                b[iris_rows[n]] = _carried_along(points, b, iris_rows[n], np.array([*up, *lo, *eye["corners"]]))
        return b

    @staticmethod
    def _gaze_bases(points: np.ndarray, iris_rows: np.ndarray, down: np.ndarray):
        """The iris centres moved across the eye (gaze_x, towards the portrait's right) and up (gaze_y)."""
        gx, gy = np.zeros_like(points), np.zeros_like(points)
        for row, eye in zip(iris_rows, EYES, strict=False):
            a, c = points[eye["corners"][0]], points[eye["corners"][1]]
            along = (c - a) if c[0] > a[0] else (a - c)
            ew = float(np.linalg.norm(along))
            gx[row] = GAZE_ACROSS * along
            gy[row] = -GAZE_UP * ew * down
        return gx, gy

    @staticmethod
    def _head(lm: np.ndarray, w: int, h: int):
        oval = lm[list(FACE_OVAL)]
        centre = oval.mean(axis=0)
        face_h = float(np.ptp(oval[:, 1]))
        hull = centre + 1.12 * (oval - centre)
        up = hull[:, 1] < centre[1]
        hull[up, 1] -= 0.25 * face_h * (centre[1] - hull[up, 1]) / max(centre[1] - hull[:, 1].min(), 1.0)
        mask = np.zeros((h, w), dtype=np.float32)
        cv2.fillConvexPoly(mask, np.round(cv2.convexHull(hull.astype(np.float32))).astype(np.int32), 1.0)
        sigma = 0.06 * face_h
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
        box = _box(np.argwhere(mask > 1e-3)[:, ::-1].astype(np.float64), w, h, pad=2)
        pivot = (float(lm[CHIN, 0]), float(min(lm[CHIN, 1] + 0.25 * face_h, h - 1)))
        return mask, box, pivot

    # -- per frame ----------------------------------------------------------------------------

    def render(self, prepared: _Mesh, state: FrameState) -> np.ndarray:
        p = prepared
        a = float(np.clip(state.openness, 0.0, 1.0))
        wd = float(np.clip(state.width, -1.0, 1.0))
        blink = float(np.clip(state.blink, 0.0, 1.0))
        look = np.clip(state.gaze, -1.0, 1.0) * (1.0 - blink)   # shut lids hold the iris still
        coef = {"open": a, "wide": max(wd, 0.0), "round": max(-wd, 0.0),
                "press": float(np.clip(state.press, 0.0, 1.0)), "blink": blink,
                "brows": float(np.clip(state.brows, 0.0, 1.0)), "gaze_x": float(look[0]), "gaze_y": float(look[1])}
        coef = {k: c for k, c in coef.items() if abs(c) > 1e-3 and len(p.tris[k])}
        dx, dy, roll = state.head
        sway = abs(dx) > 1e-3 or abs(dy) > 1e-3 or abs(roll) > 1e-6
        frame = p.image.copy()
        if not coef and not sway:
            return frame
        h, w = frame.shape[:2]
        gx, gy = _grid(h, w)
        boxes = [p.boxes[k] for k in coef]
        region = _union(boxes + ([p.head_box] if sway else []))
        x0, y0, x1, y1 = region
        map_x = gx[y0:y1, x0:x1].copy()
        map_y = gy[y0:y1, x0:x1].copy()
        if sway:
            m = p.head_mask[y0:y1, x0:x1]
            px, py = p.pivot
            # A small roll about the neck plus a shift, fading out at the head's edge.
            map_x -= m * (dx - roll * (gy[y0:y1, x0:x1] - py))
            map_y -= m * (dy + roll * (gx[y0:y1, x0:x1] - px))
        disp = np.zeros_like(p.points)
        for k, c in coef.items():
            disp += c * p.bases[k]
        if coef:
            moved = disp
            reach = 0
            if sway:
                # The mouth's triangles are carried by the head's sway too, so that the warp is
                # composed with it exactly (a pressed lip must still meet the other one).
                ix = np.clip(p.points[:, 0].astype(int), 0, w - 1)
                iy = np.clip(p.points[:, 1].astype(int), 0, h - 1)
                m = p.head_mask[iy, ix][:, None]
                px, py = p.pivot
                moved = disp + m * np.stack([dx - roll * (p.points[:, 1] - py),
                                             dy + roll * (p.points[:, 0] - px)], axis=1)
                reach = int(np.ceil(abs(dx) + abs(dy) + abs(roll) * max(h, w))) + 2
            # The eyes' shapes and the mouth's move triangles far apart: each group is mapped in
            # its own box, not in one box from the brows to the chin.
            for group in ([k for k in coef if k in EYE_SHAPES], [k for k in coef if k not in EYE_SHAPES]):
                if group:
                    bx0, by0, bx1, by1 = _union([p.boxes[k] for k in group])
                    box = (max(bx0 - reach, x0), max(by0 - reach, y0), min(bx1 + reach, x1), min(by1 + reach, y1))
                    self._piecewise_affine(p, moved, group, box, region, map_x, map_y)
        frame[y0:y1, x0:x1] = cv2.remap(p.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if coef.keys() & {"open", "blink", "press"}:
            def carried(centre):   # where the head's sway takes a point near ``centre``
                if not sway:
                    return np.zeros(2)
                return np.array([dx - roll * (centre[1] - p.pivot[1]), dy + roll * (centre[0] - p.pivot[0])])

            if "blink" in coef:
                for n, eye in enumerate(EYES):
                    up = list(eye["upper"])
                    self._paint_lid(frame, p, n, p.points[up] + carried(p.points[up].mean(axis=0)), disp[up], blink)
            shift = carried(p.points[list(LOWER_INNER)].mean(axis=0))
            if "open" in coef:
                self._paint_cavity(frame, p, disp, shift, a, float(np.clip(state.tongue, 0.0, 1.0)))
            if coef.get("press", 0.0) > 0.2:
                self._paint_seam(frame, p, disp, shift, coef["press"] * (1.0 - min(a * 4.0, 1.0)))
        return frame

    @staticmethod
    def _paint_seam(frame: np.ndarray, p: _Mesh, disp: np.ndarray, shift: np.ndarray, press: float) -> None:
        """Pressed lips (m, b, p) roll in a little: the line where they meet darkens."""
        if press < 0.05:
            return
        upper, lower = list(UPPER_INNER), list(LOWER_INNER)
        seam = 0.5 * (p.points[upper] + disp[upper] + p.points[lower] + disp[lower]) + shift
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = _box(seam, w, h, pad=3)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        roi = frame[y0:y1, x0:x1]
        line = np.zeros(roi.shape[:2], dtype=np.uint8)
        cv2.polylines(line, [np.round((seam - (x0, y0)) * 16).astype(np.int32)], False, 255,
                      max(1, round(0.02 * p.width)), cv2.LINE_AA, shift=4)
        dark = line.astype(np.float32)[..., None] * (0.45 * press / 255.0)
        roi[:] = (roi * (1.0 - dark) + 0.5).astype(np.uint8)

    @staticmethod
    def _paint_lid(frame: np.ndarray, p: _Mesh, n: int, margin: np.ndarray, drop: np.ndarray, blink: float) -> None:
        """A lowering lid: the eye it covers takes the lid's skin colour (the warp stretches the lid
        over it, lashes and liner included) and its edge a lash line."""
        lowered = margin + drop
        if float(np.max(np.abs(drop))) < 0.5:
            return
        h, w = frame.shape[:2]
        poly = np.concatenate([margin, lowered[::-1]])
        x0, y0, x1, y1 = _box(poly, w, h, pad=3)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        roi = frame[y0:y1, x0:x1]
        mask = np.zeros(roi.shape[:2], dtype=np.uint8)
        cv2.fillPoly(mask, [np.round((poly - (x0, y0)) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        mask = cv2.GaussianBlur(mask, (0, 0), max(0.04 * float(p.eye_width[n]), 0.8))   # no hard edge
        skin = mask.astype(np.float32)[..., None] * (0.4 * blink / 255.0)
        lash = np.zeros(roi.shape[:2], dtype=np.uint8)
        thick = max(1, round(0.045 * float(p.eye_width[n])))
        cv2.polylines(lash, [np.round((lowered - (x0, y0)) * 16).astype(np.int32)], False, 255, thick,
                      cv2.LINE_AA, shift=4)
        dark = lash.astype(np.float32)[..., None] * (0.8 * min(blink * 1.5, 1.0) / 255.0)
        out = roi * (1.0 - skin) + p.lid_skin[n] * skin
        roi[:] = (out * (1.0 - dark) + _LASH_BGR * dark + 0.5).astype(np.uint8)

    @staticmethod
    def _piecewise_affine(p: _Mesh, disp: np.ndarray, shapes: list[str], box, region, map_x, map_y) -> None:
        """The warp's inverse map (destination -> portrait) inside ``box``, written into the maps of ``region``."""
        t_idx = np.unique(np.concatenate([p.tris[k] for k in shapes]))
        if not t_idx.size:
            return
        tri = p.triangles[t_idx]
        src = p.points[tri]                       # (T, 3, 2)
        dst = (p.points + disp)[tri]
        # Affine dst -> src per triangle: [x y 1] @ A = src, A (T, 3, 2).
        dh = np.concatenate([dst, np.ones((len(tri), 3, 1))], axis=2)
        det = np.linalg.det(dh)
        ok = np.abs(det) > 1e-6
        a_mat = np.zeros((len(tri) + 1, 3, 2))
        a_mat[0] = [[1, 0], [0, 1], [0, 0]]      # index 0: outside every moving triangle
        a_mat[1:][ok] = np.linalg.solve(dh[ok], src[ok])
        a_mat[1:][~ok] = a_mat[0]
        bx0, by0, bx1, by1 = box
        index = np.zeros((by1 - by0, bx1 - bx0), dtype=np.int32)
        corners = np.round((dst - (bx0, by0)) * 16).astype(np.int32)
        good = np.flatnonzero(ok & (np.abs(det) > 0.5))
        # Edges first, then the insides: a pixel on the seam of a collapsed triangle still gets
        # a neighbour's map rather than none.
        for j in good:
            cv2.polylines(index, [corners[j]], True, int(j) + 1, 1, cv2.LINE_8, shift=4)
        for j in good:
            cv2.fillConvexPoly(index, corners[j], int(j) + 1, lineType=cv2.LINE_8, shift=4)
        x0, y0 = region[0], region[1]
        sub = (slice(by0 - y0, by1 - y0), slice(bx0 - x0, bx1 - x0))
        gx, gy = _grid(*p.image.shape[:2])
        xs, ys = gx[by0:by1, bx0:bx1], gy[by0:by1, bx0:bx1]
        coeffs = a_mat.reshape(len(a_mat), 6).astype(np.float32)[index]   # (h, w, 6)
        # Inside the moving triangles the affine map replaces the map so far (their corners
        # already carry any sway); elsewhere it stays.
        inside = index > 0
        map_x[sub] = np.where(inside, coeffs[..., 0] * xs + coeffs[..., 2] * ys + coeffs[..., 4], map_x[sub])
        map_y[sub] = np.where(inside, coeffs[..., 1] * xs + coeffs[..., 3] * ys + coeffs[..., 5], map_y[sub])

    @staticmethod
    def _paint_cavity(frame: np.ndarray, p: _Mesh, disp: np.ndarray, shift: np.ndarray, a: float,
                      tongue: float = 0.0) -> None:
        top = p.points[p.top] + disp[p.top] + shift
        bottom = p.points[p.bottom] + disp[p.bottom] + shift
        if float(np.max(np.dot(bottom - top, p.v))) < 0.8:
            return
        poly = np.concatenate([top, bottom[::-1]])
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = _box(poly, w, h, pad=2)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round((poly - (x0, y0)) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        alpha = mask.astype(np.float32) * (1.0 / 255.0)
        if not alpha.any():
            return
        gx, gy = _grid(h, w)
        origin = (top[0] + top[-1]) / 2
        rx, ry = gx[y0:y1, x0:x1] - origin[0], gy[y0:y1, x0:x1] - origin[1]
        s = rx * p.u[0] + ry * p.u[1]
        t = rx * p.v[0] + ry * p.v[1]
        ts, tt = (top - origin) @ p.u, (top - origin) @ p.v
        bs, bt = (bottom - origin) @ p.u, (bottom - origin) @ p.v
        t_top = np.interp(s, ts, tt).astype(np.float32)
        t_bot = np.interp(s, bs, bt).astype(np.float32)
        height = np.maximum(t_bot - t_top, 1e-3)
        depth = np.clip((t - t_top) / height, 0.0, 0.999)
        half = max(float(ts[-1] - ts[0]) / 2, 1.0)
        across = np.clip(np.abs(s - float(ts[0] + ts[-1]) / 2) / half, 0.0, 1.0)
        shade = (0.5 + 0.5 * (1.0 - across ** 2))[..., None]
        colour = _CAVITY_LUT[(depth * 63).astype(np.int32)] * shade
        middle = 1.0 - _smoothstep(0.55, 0.9, across)
        feather = 1.0
        span = np.float32(min(a * 1.5, 1.0))

        def over(cover, paint):   # ``paint`` over ``colour`` where ``cover`` (0..1) says
            nonlocal colour
            colour = colour + cover[..., None] * (paint - colour)

        # The tongue lies on the floor of the mouth and goes down with the jaw: its back arches up
        # in the middle, a little darker where it turns away.
        arch = t_bot - height * (0.22 + 0.2 * (1.0 - across ** 2))
        body = np.clip((t - arch) / (2 * feather), 0.0, 1.0) * (1.0 - _smoothstep(0.6, 0.95, across)) * 0.9 * span
        over(body, _TONGUE_BODY_BGR * (0.7 + 0.3 * np.clip((t - arch) / np.maximum(0.3 * height, 1.0), 0, 1)
                                       )[..., None] * (0.6 + 0.4 * shade))
        if tongue > 0.0:   # t d l n th: the tongue tip up behind the upper teeth, in the middle
            tip = (1.0 - _smoothstep(0.25, 0.55, across)) * (1.0 - _smoothstep(0.35, 0.8, depth)) \
                * _smoothstep(0.05, 0.25, depth) * tongue
            over(tip, _TONGUE_BGR * (0.8 + 0.2 * shade))
        # Lower teeth ride on the jaw just inside the lower lip, one tooth a tenth of the mouth wide.
        band = np.minimum(0.065 * p.width, 0.24 * height) * span
        lower = np.clip((band - (t_bot - t)) / feather, 0.0, 1.0) * middle * 0.9
        mid_s = float(ts[0] + ts[-1]) / 2
        phase = (s - mid_s) / (0.1 * p.width) + 0.5
        gaps = 1.0 - 0.22 * np.exp(-((phase - np.round(phase)) / 0.1) ** 2)
        over(lower, _TEETH_BGR * (0.72 + 0.2 * shade) * gaps[..., None])
        if not p.teeth_showing:   # upper teeth, fixed to the skull: their edge stays where it is
            edge = np.interp(s, ts, (p.points[p.top] + shift - origin) @ p.v).astype(np.float32) + 0.09 * p.width
            edge = np.minimum(edge, t_top + 0.45 * height)
            teeth = np.clip((edge - t) / feather, 0.0, 1.0) * middle * 0.9
            over(teeth, _TEETH_BGR * (0.75 + 0.25 * shade) * gaps[..., None])
        # Inner-lip shading: the lips' inner edges shadow what is just inside them.
        r = max(1.0, 0.025 * p.width)
        colour *= (1.0 - 0.4 * np.exp(-np.maximum(t - t_top, 0.0) / r)
                   - 0.3 * np.exp(-np.maximum(t_bot - t, 0.0) / r))[..., None]
        a3 = alpha[..., None]
        roi = frame[y0:y1, x0:x1]
        roi[:] = (roi * (1.0 - a3) + colour * a3 + 0.5).astype(np.uint8)


def _carried_along(points: np.ndarray, disp: np.ndarray, row: int, ring: np.ndarray) -> np.ndarray:
    """The displacement of point ``row`` inside the polygon ``ring`` that moves it with the
    triangle of the ring's own triangulation it lies in (affinely), so it never leaves it."""
    x, y = points[row]
    ring_pts = points[ring]
    tris = delaunay(ring_pts - ring_pts.min(axis=0) + 1, *(np.ptp(ring_pts, axis=0) + 3).astype(int))
    best, best_w = None, -np.inf
    for tri in tris:
        a, b, c = ring_pts[tri]
        m = np.array([[b[0] - a[0], c[0] - a[0]], [b[1] - a[1], c[1] - a[1]]])
        if abs(np.linalg.det(m)) < 1e-9:
            continue
        u, v = np.linalg.solve(m, (x - a[0], y - a[1]))
        w = np.array([1 - u - v, u, v])
        if w.min() > best_w:
            best, best_w = (tri, w), w.min()
    tri, w = best
    return w @ disp[ring[tri]]


def _box(pts: np.ndarray, w: int, h: int, pad: int) -> tuple[int, int, int, int]:
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1 + pad
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))
