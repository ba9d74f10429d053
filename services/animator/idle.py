"""The idle layer: blinks at natural intervals, glances now and then, a slight sway of the head, and the head's
share of speaking: small nods on stressed syllables with the brows rising, and a sway that
calms while listening.

Blinks and sway are functions of the frame's time, drawn from a per-stream random
generator (``seed``), so a stream's idle motion is the same however its frames are batched;
nods follow the stressed vowels the frames report, in frame order.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

BLINK_MIN_S, BLINK_MAX_S = 2.0, 6.0   # interval between blinks
# The lids stay shut for one frame period at 25 fps, so every blink shows at least one closed frame.
BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S = 0.05, 0.04, 0.08   # ~170 ms in all
NOD_S = 0.4                 # one nod: down and back up
NOD_PX = 2.5                # its depth at 512 px
NOD_GAP_S = 0.6             # at most one nod this often (a nod per stressed syllable would be a bob)
LISTENING_SWAY = 0.5        # the sway's share while silent
SWAY_TIME_S = 0.8           # how fast the sway settles or livens when speech stops or starts
GAZE_MIN_S, GAZE_MAX_S = 1.0, 4.0   # how long the eyes rest on one point
SACCADE_S = 0.06            # a glance's jump (the eyes move fast, the head does not follow)
GAZE_HOME = 0.45            # the share of glances that come back to the viewer


@dataclasses.dataclass(frozen=True)
class IdleState:
    blink: float = 0.0                          # 0 open .. 1 shut
    brows: float = 0.0                          # 0 at rest .. 1 raised
    head: tuple[float, float, float] = (0.0, 0.0, 0.0)  # dx px, dy px, roll radians
    gaze: tuple[float, float] = (0.0, 0.0)      # the irises: -1..1 across, -1..1 up


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
        self._nod_px = NOD_PX * scale
        self._nods: list[float] = []      # start times of nods
        self._was_stressed = False
        self._liveliness = LISTENING_SWAY
        self._last_t: float | None = None
        # Glances: (start, target) fixations, from a generator of their own so that blinks and
        # sway stay what they were for a seed.
        self._gaze_rng = np.random.default_rng(None if seed is None else (seed, 1))
        self._fixations: list[tuple[float, tuple[float, float]]] = [(0.0, (0.0, 0.0))]

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

    def gaze(self, t: float) -> tuple[float, float]:
        """Where the irises point at ``t``: a fixation held 1-4 s, then a quick jump to the next
        (often back to the viewer, else a small look aside, mostly sideways)."""
        if not self.head_motion:
            return 0.0, 0.0
        rng, fix = self._gaze_rng, self._fixations
        while fix[-1][0] <= t:
            start = fix[-1][0] + float(rng.uniform(GAZE_MIN_S, GAZE_MAX_S))
            home = fix[-1][1] != (0.0, 0.0) and rng.random() < GAZE_HOME
            target = (0.0, 0.0) if home else (float(rng.uniform(-0.9, 0.9)), float(rng.uniform(-0.5, 0.4)))
            fix.append((start, target))
        k = max(i for i, (start, _) in enumerate(fix) if start <= t)
        if k > 2:   # frames come in order: fixations before the last two are done with
            del fix[:k - 1]
            k = 1
        if k == 0:
            return fix[0][1]
        x = min((t - fix[k][0]) / SACCADE_S, 1.0)
        x = x * x * (3 - 2 * x)
        (ax, ay), (bx, by) = fix[k - 1][1], fix[k][1]
        return ax + x * (bx - ax), ay + x * (by - ay)

    def nod(self, t: float, stress: float) -> float:
        """Downward head offset (px) at ``t``: a nod starts on each stressed vowel's onset."""
        stressed = stress > 0.5
        if stressed and not self._was_stressed and (not self._nods or t - self._nods[-1] >= NOD_GAP_S):
            self._nods.append(t)
        self._was_stressed = stressed
        if not self._nods or t - self._nods[-1] >= NOD_S:
            return 0.0
        return self._nod_px * math.sin(math.pi * (t - self._nods[-1]) / NOD_S) ** 2

    def state(self, t: float, speaking: bool = False, stress: float = 0.0) -> IdleState:
        """The idle layer at ``t`` (frames in order): sway calmer while listening than while
        ``speaking``, and a nod on each stressed syllable."""
        dt = 0.0 if self._last_t is None else max(t - self._last_t, 0.0)
        self._last_t = t
        target = 1.0 if speaking else LISTENING_SWAY
        self._liveliness += (1.0 - math.exp(-dt / SWAY_TIME_S)) * (target - self._liveliness)
        dx, dy, roll = self.head(t)
        nod = self.nod(t, stress)
        if self.head_motion:
            k = self._liveliness
            dx, dy, roll = k * dx, k * dy + nod, k * roll
        # The brows rise with the nod's emphasis.
        return IdleState(blink=self.blink(t), head=(dx, dy, roll), brows=nod / self._nod_px if self._nod_px else 0.0,
                         gaze=self.gaze(t))
