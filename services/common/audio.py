"""PCM16 and WAV helpers shared by the stages, the gateway and the CLI."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np

from services.common.errors import InvalidArgument


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    if len(pcm) % 2:
        raise InvalidArgument(f"PCM16 audio must have an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Linear-interpolation resampling; adequate for speech into ASR and for energy curves."""
    if src_rate == dst_rate or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    n_out = round(samples.size * dst_rate / src_rate)
    t_out = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    return np.interp(t_out, np.arange(samples.size), samples).astype(np.float32)


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """A PCM16 WAV (mono or stereo) as float32 mono samples and its rate."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError, RuntimeError, ValueError, struct.error, OverflowError) as exc:
        # The wave module raises more than wave.Error on corrupt headers (e.g. RuntimeError
        # from a chunk seek past its end, found by tests/unit/test_fuzz.py).
        raise InvalidArgument(f"wav: not a readable RIFF/WAVE file ({exc or type(exc).__name__})") from None
    if width != 2:
        raise InvalidArgument(f"wav: expected 16-bit PCM samples, got {8 * width}-bit")
    if channels not in (1, 2):
        raise InvalidArgument(f"wav: expected 1 or 2 channels, got {channels}")
    if not 8000 <= rate <= 192000:
        raise InvalidArgument(f"wav: sample rate {rate} Hz is outside 8000..192000")
    samples = pcm16_to_float(frames[: len(frames) - len(frames) % (2 * channels)])
    if channels == 2:
        samples = samples.reshape(-1, 2).mean(axis=1)
    return samples, rate


def write_wav(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(float_to_pcm16(samples))
    return buf.getvalue()


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples)))) if samples.size else 0.0
