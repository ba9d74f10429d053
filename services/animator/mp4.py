"""Frames and audio of an Animate stream assembled into an MP4 (H.264 + AAC), for clients
that want a file rather than a stream. Uses the shared muxer in services.common.media."""

from __future__ import annotations

from collections.abc import Iterable

import av
import cv2
import numpy as np

from services.common.media import decode_jpeg, rgb_frame, write_mp4
from talker.v1 import common_pb2


def to_video_frame(frame: common_pb2.Frame | np.ndarray) -> av.VideoFrame:
    """An Animate ``Frame`` (JPEG or RGB24) or a BGR array as a PyAV frame."""
    if isinstance(frame, np.ndarray):
        return av.VideoFrame.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), format="rgb24")
    if frame.format == common_pb2.FRAME_FORMAT_RGB24:
        return rgb_frame(frame.data, frame.width, frame.height)
    return decode_jpeg(frame.data)


def assemble_mp4(path: str, frames: Iterable[common_pb2.Frame | np.ndarray], fps: int, audio: np.ndarray,
                 sample_rate: int, crf: int = 23) -> None:
    """Write ``frames`` at ``fps`` with mono ``audio`` (float32 -1..1, or PCM16) to ``path``."""
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        audio = audio.astype(np.float32) / 32768.0
    write_mp4(path, (to_video_frame(f) for f in frames), fps, audio.astype(np.float32), sample_rate, crf=crf)
