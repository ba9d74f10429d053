"""Mouth openness from speech audio.

Per video frame: the RMS level of ~40 ms of audio centred on the frame's pts,
through a noise gate (in dBFS) and a soft compressor into 0..1, then smoothed
over time (fast attack, slower release) so the mouth opens promptly, closes
without flicker and stays shut in silence.
"""

from __future__ import annotations

import math

import numpy as np

WINDOW_SECONDS = 0.04
ATTACK_SECONDS = 0.02
RELEASE_SECONDS = 0.07
# Soft compression (openness ~ amplitude ** 0.7): quiet syllables still show, loud ones
# do not all slam the jaw to its widest.
_COMPRESSION = 0.7
_CLOSED = 0.02  # below this the mouth is shut


class AudioWindow:
    """The recent audio of a stream, addressed by absolute sample index.

    Old samples are dropped once no frame still needs them, so memory stays
    bounded however long the stream runs.
    """

    def __init__(self) -> None:
        self._buf = np.zeros(0, dtype=np.float32)
        self._start = 0     # absolute index of _buf[0]
        self.total = 0      # samples received so far

    def append(self, samples: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, samples.astype(np.float32, copy=False)])
        self.total += samples.size

    def get(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop); zeros where none were received (before 0, after the end)."""
        out = np.zeros(max(stop - start, 0), dtype=np.float32)
        lo, hi = max(start, self._start), min(stop, self.total)
        if hi > lo:
            out[lo - start:hi - start] = self._buf[lo - self._start:hi - self._start]
        return out

    def drop_before(self, index: int) -> None:
        cut = min(max(index - self._start, 0), self._buf.size)
        if cut:
            self._buf = self._buf[cut:]
            self._start += cut


def level_to_openness(rms: float, gate_dbfs: float, full_dbfs: float) -> float:
    """Instantaneous openness of an RMS level: 0 under the gate, 1 from ``full_dbfs`` up."""
    if rms <= 0.0 or 20.0 * math.log10(rms) <= gate_dbfs:
        return 0.0
    gate, full = 10.0 ** (gate_dbfs / 20.0), 10.0 ** (full_dbfs / 20.0)
    x = min((rms - gate) / (full - gate), 1.0)
    return x ** _COMPRESSION


class OpennessTracker:
    """Openness per frame, in frame order, from a stream's audio."""

    def __init__(self, sample_rate: int, fps: int, gate_dbfs: float = -45.0, full_dbfs: float = -12.0):
        self.rate = sample_rate
        self.fps = fps
        self.gate_dbfs = gate_dbfs
        self.full_dbfs = full_dbfs
        self.half = max(round(WINDOW_SECONDS * sample_rate / 2), 1)
        dt = 1.0 / fps
        self.attack = 1.0 - math.exp(-dt / ATTACK_SECONDS)
        self.release = 1.0 - math.exp(-dt / RELEASE_SECONDS)
        self.value = 0.0

    def centre(self, index: int) -> int:
        """The sample at frame ``index``'s pts."""
        return round(index * self.rate / self.fps)

    def window(self, audio: AudioWindow, index: int) -> np.ndarray:
        c = self.centre(index)
        return audio.get(c - self.half, c + self.half)

    def samples_needed(self, index: int) -> int:
        """How many samples frame ``index``'s window reaches into."""
        return self.centre(index) + self.half

    def step(self, window: np.ndarray) -> float:
        """The next frame's openness, given the audio window around its pts."""
        rms = float(np.sqrt(np.mean(np.square(window, dtype=np.float64)))) if window.size else 0.0
        target = level_to_openness(rms, self.gate_dbfs, self.full_dbfs)
        k = self.attack if target > self.value else self.release
        self.value += k * (target - self.value)
        if self.value < _CLOSED and target == 0.0:
            self.value = 0.0
        return self.value


def openness_curve(samples: np.ndarray, sample_rate: int, fps: int, gate_dbfs: float = -45.0,
                   full_dbfs: float = -12.0) -> np.ndarray:
    """Openness for every frame of a whole clip (round(duration * fps) frames)."""
    audio = AudioWindow()
    audio.append(samples)
    tracker = OpennessTracker(sample_rate, fps, gate_dbfs, full_dbfs)
    n = math.floor(samples.size * fps / sample_rate + 0.5)
    return np.array([tracker.step(tracker.window(audio, i)) for i in range(n)], dtype=np.float32)
