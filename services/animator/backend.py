"""The animator's model side: avatar preparation (mediapipe face mesh), the avatar cache,
frame rendering and encoding. Everything here blocks; the servicer calls it off the event loop."""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np

from services.animator.avatar import Avatar, AvatarCache, AvatarPreparer
from services.animator.config import AnimatorConfig
from services.animator.render import FrameState, Renderer
from services.animator.renderers import make_renderer
from talker.v1 import common_pb2

MODEL = "mediapipe-face-mesh-478"


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedAvatar:
    avatar: Avatar
    prepared: object  # the renderer's per-avatar state


class AnimatorBackend:
    def __init__(self, config: AnimatorConfig, threads: int):
        self.config = config
        self.threads = threads
        self.preparer = AvatarPreparer(config.size, config.crop_scale, config.max_image_bytes,
                                       config.max_image_side, config.min_face_px)
        self.renderer: Renderer = make_renderer(config.renderer, config.max_opening)
        self.cache = AvatarCache(config.cache_size)
        self.default: PreparedAvatar | None = None

    @property
    def name(self) -> str:
        return self.renderer.name

    def load(self) -> None:
        cv2.setNumThreads(self.threads)
        self.preparer.load()
        if self.config.visemes:
            import openfacefx  # noqa: F401  (imported once here, not on the first stream)
        with open(self.config.portrait_path, "rb") as f:
            data = f.read()
        self.default = self.register(data)
        # One frame through the whole path, so the first stream does not pay for warm-up.
        self.encode(self.render(self.default, FrameState(0, 0.0, 0.5)), common_pb2.FRAME_FORMAT_JPEG,
                    self.config.jpeg_quality)

    def close(self) -> None:
        self.preparer.close()

    def lookup(self, avatar_id: str) -> PreparedAvatar | None:
        if self.default is not None and avatar_id == self.default.avatar.id:
            return self.default
        return self.cache.get(avatar_id)

    def register(self, data: bytes) -> PreparedAvatar:
        """Prepare a portrait (raises InvalidArgument for a bad one) and cache it."""
        avatar = self.preparer.prepare(data)
        entry = PreparedAvatar(avatar, self.renderer.prepare(avatar))
        self.cache.put(avatar.id, entry)
        return entry

    def render(self, entry: PreparedAvatar, state: FrameState) -> np.ndarray:
        return self.renderer.render(entry.prepared, state)

    @staticmethod
    def encode(bgr: np.ndarray, fmt: int, jpeg_quality: int) -> bytes:
        if fmt == common_pb2.FRAME_FORMAT_RGB24:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes()
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

    def frame(self, entry: PreparedAvatar, state: FrameState, fmt: int,
              jpeg_quality: int) -> tuple[common_pb2.Frame, float]:
        """One encoded frame and the seconds it took."""
        t0 = time.perf_counter()
        data = self.encode(self.render(entry, state), fmt, jpeg_quality)
        seconds = time.perf_counter() - t0
        img = entry.avatar.image
        return common_pb2.Frame(index=state.index, pts=state.pts, data=data, width=img.shape[1],
                                height=img.shape[0], format=fmt), seconds
