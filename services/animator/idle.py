"""The idle layer: blinks at natural intervals and a slight sway of the head.

Both are functions of the frame's time, drawn from a per-stream random generator,
so a stream's idle motion is the same however its frames are batched.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

BLINK_MIN_S, BLINK_MAX_S = 2.0, 6.0   # interval between blinks
# The lids stay shut for one frame period at 25 fps, so every blink shows at least one closed frame.
BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S = 0.05, 0.04, 0.08   # ~170 ms in all


@dataclasses.dataclass(frozen=True)
class IdleState:
    blink: float = 0.0                          # 0 open .. 1 shut
    head: tuple[float, float, float] = (0.0, 0.0, 0.0)  # dx px, dy px, roll radians


def blink_curve(t: float) -> float:
    """Lid closure ``t`` seconds after a blink starts (0 outside the blink)."""
    if t < 0.0:
        return 0.0
    if t < BLINK_CLOSE_S:
        x = t / BLINK_CLOSE_S
        return x * x * (3 - 2 * x)
    t -= BLINK_CLOSE_S
    if t < BLINK_HOLD_S:
        return 1.0
    t -= BLINK_HOLD_S
    if t < BLINK_OPEN_S:
        x = 1.0 - t / BLINK_OPEN_S
        return x * x * (3 - 2 * x)
    return 0.0


class Idle:
    """Blink and head-sway state for a stream's frames."""

    def __init__(self, size: int, head_motion: bool = True, blinks: bool = True, seed: int | None = None,
                 amplitude_px: float = 1.2):
        rng = np.random.default_rng(seed)
        self.head_motion = head_motion
        self.blinks = blinks
        self._rng = rng
        # First blink soon after the start, then every 2..6 s.
        self._starts = [float(rng.uniform(0.6, 3.0))]
        scale = size / 512.0
        # A few slow incommensurate sines per axis: a drift that never visibly repeats.
        self._amp = amplitude_px * scale
        self._freq = rng.uniform(0.11, 0.43, size=(3, 3))
        self._phase = rng.uniform(0, 2 * math.pi, size=(3, 3))

    def blink_starts_until(self, t: float) -> list[float]:
        while self._starts[-1] <= t:
            self._starts.append(self._starts[-1] + float(self._rng.uniform(BLINK_MIN_S, BLINK_MAX_S)))
        return self._starts

    def blink(self, t: float) -> float:
        if not self.blinks:
            return 0.0
        starts = self.blink_starts_until(t)
        return max((blink_curve(t - s) for s in starts[-3:]), default=0.0)

    def head(self, t: float) -> tuple[float, float, float]:
        if not self.head_motion:
            return 0.0, 0.0, 0.0
        w = np.sin(2 * math.pi * self._freq * t + self._phase).sum(axis=1) / 3.0   # each in -1..1
        return float(self._amp * w[0]), float(0.6 * self._amp * w[1]), float(0.004 * w[2])

    def state(self, t: float) -> IdleState:
        return IdleState(blink=self.blink(t), head=self.head(t))
