"""Animator settings (``TALKER_ANIMATOR_*``)."""

from __future__ import annotations

import dataclasses
import os

from services.common.config import require
from services.common.limits import FPS, JPEG_QUALITY

#: The portrait served when a stream names no avatar (Eileen Collins, NASA, public domain).
DEFAULT_PORTRAIT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "assets", "portrait.png")

# The renderers by name (services/animator/renderers.py), or "package.module:Class", a plug-in Renderer.
RENDERERS = {"mesh-warp": "services.animator.mesh:MeshWarpRenderer",
             "mouth-warp": "services.animator.render:MouthWarpRenderer"}


@dataclasses.dataclass(frozen=True)
class AnimatorConfig:
    # A JPEG/PNG portrait used when a stream names no avatar; empty = assets/portrait.png.
    portrait: str = ""
    renderer: str = "mesh-warp"
    # Side of the square output frames, px.
    size: int = 512
    # Used when a stream asks for fps 0 / jpeg_quality 0.
    fps: int = 25
    jpeg_quality: int = 85
    # A frame is rendered once the audio up to its end plus this many frames has arrived.
    lookahead_frames: int = 1
    # Frames rendered per trip to the worker thread.
    batch_frames: int = 8
    # Side of the square crop around the face, in face-box sides.
    crop_scale: float = 2.8
    # Widest mouth opening (lower lip drop), in mouth widths.
    max_opening: float = 0.3
    # Audio level (RMS, dBFS) below which the mouth stays closed, and at which it is fully open.
    gate_dbfs: float = -45.0
    full_dbfs: float = -12.0
    # Idle motion: a slight sway of the head, and blinks every 2-6 s.
    head_motion: bool = True
    blinks: bool = True
    # Mouth shapes (width, rounding, lip press) from the sentence's text via openfacefx visemes;
    # off, or without text, they come from the audio spectrum.
    visemes: bool = True
    # Limits on uploaded portraits.
    max_image_mb: float = 20.0
    max_image_side: int = 4096
    min_face_px: int = 64
    # Prepared avatars kept in memory (least recently used are dropped).
    cache_size: int = 64

    def __post_init__(self) -> None:
        p = "TALKER_ANIMATOR_"
        require(self.renderer in RENDERERS or ":" in self.renderer,
                f"{p}RENDERER={self.renderer!r}: one of {', '.join(RENDERERS)}, or package.module:Class")
        require(64 <= self.size <= 2048 and self.size % 2 == 0,
                f"{p}SIZE={self.size}: must be an even number of px in 64..2048")
        require(self.fps in FPS, f"{p}FPS={self.fps}: must be {FPS}")
        require(self.jpeg_quality in JPEG_QUALITY, f"{p}JPEG_QUALITY={self.jpeg_quality}: must be {JPEG_QUALITY}")
        require(0 <= self.lookahead_frames <= 25, f"{p}LOOKAHEAD_FRAMES={self.lookahead_frames}: must be 0..25")
        require(1 <= self.batch_frames <= 100, f"{p}BATCH_FRAMES={self.batch_frames}: must be 1..100")
        require(1.2 <= self.crop_scale <= 6.0, f"{p}CROP_SCALE={self.crop_scale}: must be 1.2..6")
        require(0.0 < self.max_opening <= 0.6, f"{p}MAX_OPENING={self.max_opening}: must be in (0, 0.6]")
        require(-100.0 <= self.gate_dbfs < self.full_dbfs <= 0.0,
                f"{p}GATE_DBFS={self.gate_dbfs}, {p}FULL_DBFS={self.full_dbfs}: "
                "need -100 <= gate < full <= 0")
        require(0.0 < self.max_image_mb <= 100.0, f"{p}MAX_IMAGE_MB={self.max_image_mb}: must be in (0, 100]")
        require(64 <= self.max_image_side <= 16384, f"{p}MAX_IMAGE_SIDE={self.max_image_side}: must be 64..16384")
        require(16 <= self.min_face_px <= 1024, f"{p}MIN_FACE_PX={self.min_face_px}: must be 16..1024")
        require(1 <= self.cache_size <= 10000, f"{p}CACHE_SIZE={self.cache_size}: must be 1..10000")
        if self.portrait:
            require(os.path.isfile(self.portrait), f"{p}PORTRAIT={self.portrait!r}: no such file")

    @property
    def portrait_path(self) -> str:
        return self.portrait or DEFAULT_PORTRAIT

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 1024 * 1024)
