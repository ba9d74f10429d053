"""Assembling a turn's frames and audio into an MP4 (H.264 video + AAC audio) with PyAV."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import av
import numpy as np

AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def decode_jpeg(data: bytes) -> av.VideoFrame:
    codec = av.CodecContext.create("mjpeg", "r")
    frames = codec.decode(av.Packet(data))
    if not frames:
        raise ValueError("not a decodable JPEG frame")
    return frames[0]


def rgb_frame(data: bytes, width: int, height: int) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.frombuffer(data, np.uint8).reshape(height, width, 3), format="rgb24")


def write_mp4(path: str, frames: Iterable[av.VideoFrame], fps: int, audio: np.ndarray, sample_rate: int,
              crf: int = 23) -> None:
    """Write ``frames`` (at ``fps``) and mono float32 ``audio`` to an MP4 file."""
    if sample_rate not in AAC_RATES:
        raise ValueError(f"AAC cannot encode {sample_rate} Hz audio")
    with av.open(path, "w", format="mp4") as out:
        video = None
        sound = out.add_stream("aac", rate=sample_rate, layout="mono")
        sound.bit_rate = 96_000
        for i, frame in enumerate(frames):
            if video is None:
                video = out.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "veryfast"})
                video.width, video.height = frame.width - frame.width % 2, frame.height - frame.height % 2
                video.pix_fmt = "yuv420p"
                video.time_base = Fraction(1, fps)
            frame = frame.reformat(width=video.width, height=video.height, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(video.encode(frame))
        if video is not None:
            out.mux(video.encode(None))
        pcm = np.ascontiguousarray(audio, dtype=np.float32).reshape(1, -1)
        step = 1024  # the AAC frame size
        for start in range(0, pcm.shape[1], step):
            chunk = pcm[:, start:start + step]
            if chunk.shape[1] < step:
                chunk = np.pad(chunk, ((0, 0), (0, step - chunk.shape[1])))
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            af.sample_rate = sample_rate
            af.pts = start
            af.time_base = Fraction(1, sample_rate)
            out.mux(sound.encode(af))
        out.mux(sound.encode(None))


def probe(path: str) -> dict:
    """Durations (seconds) and frame count of an MP4's streams, by decoding them."""
    info = {"video_frames": 0, "video_seconds": 0.0, "audio_seconds": 0.0, "width": 0, "height": 0}
    with av.open(path) as f:
        v = f.streams.video[0] if f.streams.video else None
        a = f.streams.audio[0] if f.streams.audio else None
        last_v = 0.0
        for frame in f.decode(*(s for s in (v, a) if s is not None)):
            if isinstance(frame, av.VideoFrame):
                info["video_frames"] += 1
                info["width"], info["height"] = frame.width, frame.height
                last_v = max(last_v, float(frame.pts * frame.time_base))
            else:
                end = float(frame.pts * frame.time_base) + frame.samples / frame.sample_rate
                info["audio_seconds"] = max(info["audio_seconds"], end)
        if v is not None and info["video_frames"]:
            info["video_seconds"] = last_v + 1.0 / float(v.average_rate or v.guessed_rate)
    return info
