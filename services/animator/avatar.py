"""Avatar preparation: portrait bytes in, a square face crop with its 478 face-mesh landmarks out.

The checks run cheapest first (size, header, decode, face count, face size), so a
bad upload is refused before any model time is spent on it. An avatar's id is
the content hash of the uploaded bytes: the same image always gets the same id,
on every replica.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import struct
import threading
from typing import Any

import cv2
import numpy as np

from services.common.errors import InvalidArgument

LANDMARKS = 478  # face mesh with refine_landmarks=True (468 + 10 iris points)

# Longest side the face detector looks at; landmarks are normalised, so detection on a
# smaller copy of a big photo gives the same face at a fraction of the cost.
_DETECT_SIDE = 1280

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_NOT_DECODABLE = "image: not a decodable JPEG or PNG"


@dataclasses.dataclass(frozen=True, eq=False)
class Avatar:
    id: str
    image: np.ndarray      # BGR uint8, (size, size, 3)
    landmarks: np.ndarray  # (478, 2) float32, pixels of ``image``

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def avatar_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, without decoding; None if neither."""
    if data.startswith(_PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
                pos += 2
                continue
            (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
            # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                if pos + 9 > len(data):
                    return None
                height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
                return width, height
            if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
                return None
            pos += 2 + length
    return None


def decode_image(data: bytes, max_bytes: int, max_side: int) -> np.ndarray:
    """Validated BGR pixels of a JPEG or PNG upload (raises InvalidArgument)."""
    if not data:
        raise InvalidArgument("image: empty; send a JPEG or PNG portrait")
    if len(data) > max_bytes:
        raise InvalidArgument(f"image: {len(data) / 1048576:.1f} MB is over the "
                              f"{max_bytes / 1048576:g} MB limit")
    size = header_size(data)
    if size is None:
        raise InvalidArgument(_NOT_DECODABLE)
    _check_side(*size, max_side)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.size == 0:
        raise InvalidArgument(_NOT_DECODABLE)
    _check_side(image.shape[1], image.shape[0], max_side)  # EXIF rotation may swap the sides
    return image


def _check_side(width: int, height: int, max_side: int) -> None:
    if width == 0 or height == 0:
        raise InvalidArgument(_NOT_DECODABLE)
    if max(width, height) > max_side:
        raise InvalidArgument(f"image: {width}x{height} px; the longer side must be at most {max_side} px")


class FaceMesh:
    """mediapipe face mesh (478 landmarks); one call at a time, it is not thread-safe."""

    def __init__(self) -> None:
        # mediapipe logs through glog; keep its INFO chatter out of the service log.
        os.environ.setdefault("GLOG_minloglevel", "2")
        from mediapipe.python.solutions import face_mesh

        self._lock = threading.Lock()
        self._detect = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2, refine_landmarks=True,
                                          min_detection_confidence=0.5)
        self._single = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                          min_detection_confidence=0.3)
        # The face mesh's own detector is short-range: a face that fills little of the picture (a
        # head and shoulders in a room, a small portrait on a big canvas) goes unseen. The
        # full-range detector finds faces at any scale; the mesh then runs on a crop around each.
        from mediapipe.python.solutions import face_detection

        self._finder = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)

    def faces(self, bgr: np.ndarray, single: bool = False) -> list[np.ndarray]:
        """Landmarks of the faces found (up to 2), each (478, 2) in pixels of ``bgr``."""
        h, w = bgr.shape[:2]
        scale = min(1.0, _DETECT_SIDE / max(h, w))
        small = bgr if scale >= 1.0 else cv2.resize(bgr, (round(w * scale), round(h * scale)),
                                                    interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        with self._lock:
            result = (self._single if single else self._detect).process(rgb)
            found = [np.array([(p.x * w, p.y * h) for p in face.landmark], dtype=np.float32)
                     for face in result.multi_face_landmarks or ()]
            if found or single:
                return found
            return self._far_faces(bgr, rgb, w, h)

    def _far_faces(self, bgr: np.ndarray, small_rgb: np.ndarray, w: int, h: int) -> list[np.ndarray]:
        """Faces the full-range detector finds, each meshed on a crop twice its box's size."""
        found = []
        for det in (self._finder.process(small_rgb).detections or ())[:2]:
            box = det.location_data.relative_bounding_box
            side = 2.0 * max(box.width * w, box.height * h)
            cx, cy = (box.xmin + box.width / 2) * w, (box.ymin + box.height / 2) * h
            x0, y0 = max(int(cx - side / 2), 0), max(int(cy - side / 2), 0)
            x1, y1 = min(int(cx + side / 2), w), min(int(cy + side / 2), h)
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            crop = cv2.cvtColor(np.ascontiguousarray(bgr[y0:y1, x0:x1]), cv2.COLOR_BGR2RGB)
            result = self._single.process(crop)
            for face in result.multi_face_landmarks or ():
                found.append(np.array([(x0 + p.x * (x1 - x0), y0 + p.y * (y1 - y0)) for p in face.landmark],
                                      dtype=np.float32))
        return found

    def close(self) -> None:
        self._detect.close()
        self._single.close()
        self._finder.close()


class AvatarPreparer:
    """Validates a portrait and turns it into an :class:`Avatar`."""

    def __init__(self, size: int, crop_scale: float, max_bytes: int, max_side: int, min_face_px: int):
        self.size = size
        self.crop_scale = crop_scale
        self.max_bytes = max_bytes
        self.max_side = max_side
        self.min_face_px = min_face_px
        self.mesh: FaceMesh | None = None

    def load(self) -> None:
        self.mesh = FaceMesh()

    def close(self) -> None:
        if self.mesh is not None:
            self.mesh.close()
            self.mesh = None

    def prepare(self, data: bytes) -> Avatar:
        image = decode_image(data, self.max_bytes, self.max_side)
        if self.mesh is None:
            raise RuntimeError("AvatarPreparer.load() was not called")
        faces = self.mesh.faces(image)
        if not faces:
            raise InvalidArgument("image: no face found")
        if len(faces) > 1:
            raise InvalidArgument(f"image: {len(faces)} faces found; the portrait must show exactly one")
        lm = faces[0]
        x0, y0 = lm.min(axis=0)
        x1, y1 = lm.max(axis=0)
        face_side = float(max(x1 - x0, y1 - y0))
        if face_side < self.min_face_px:
            raise InvalidArgument(f"image: the face is {face_side:.0f} px across; "
                                  f"it must be at least {self.min_face_px} px")
        crop, (cx0, cy0, side) = self._crop(image, (x0 + x1) / 2, (y0 + y1) / 2, face_side)
        landmarks = self._landmarks(crop, lm, cx0, cy0, side)
        return Avatar(id=avatar_id(data), image=crop, landmarks=landmarks)

    def _crop(self, image: np.ndarray, cx: float, cy: float, face_side: float):
        h, w = image.shape[:2]
        side = min(round(face_side * self.crop_scale), w, h)
        # A little below the face centre, so that chin and neck show (they move when the jaw drops).
        cy += 0.08 * face_side
        x0 = round(min(max(cx - side / 2, 0), w - side))
        y0 = round(min(max(cy - side / 2, 0), h - side))
        crop = image[y0:y0 + side, x0:x0 + side]
        interp = cv2.INTER_AREA if side > self.size else cv2.INTER_CUBIC
        crop = cv2.resize(crop, (self.size, self.size), interpolation=interp)
        return np.ascontiguousarray(crop), (x0, y0, side)

    def _landmarks(self, crop: np.ndarray, first: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
        """Landmarks measured again on the crop (sharper than the rescaled first pass)."""
        faces = self.mesh.faces(crop, single=True)
        if faces:
            return faces[0]
        scale = self.size / side
        return ((first - np.array([x0, y0], dtype=np.float32)) * scale).astype(np.float32)


class AvatarCache:
    """A small thread-safe LRU map from avatar id to whatever the service keeps for it."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, item: Any) -> None:
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items
