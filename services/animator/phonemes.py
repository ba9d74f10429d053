"""Mouth shapes from the voice's own phoneme timing (Piper's alignment, sent with the audio).

Each phoneme (IPA, so any language espeak-ng speaks) maps onto one of the 15 openfacefx
visemes through openfacefx's IPA preset. Stress marks are not sounds: their time goes to the
phoneme after them, and the next vowel becomes *stressed* (espeak-ng may put the mark before
a syllable's onset); length marks and tie bars lengthen the phoneme before them. The shape
at a moment is a coarticulated blend: every phoneme near it pulls the mouth towards its own
shape with a weight that is full inside its interval and falls off outside it, slower before
it than after it (the lips anticipate the next sound more than they hold the last), and
longer phonemes reach further. Lip consonants (m, b, p, f, v) and rounding pull harder than
tongue consonants (t, d, n, k, s), which barely move the lips: those take the vowels' shape
around them. A bilabial closes the lips completely on every frame within half a frame of its
interval and on at least two frames (a one-frame closure does not survive a video codec), so a
short /b/ is never skipped by the frame rate nor blurred away in an MP4.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Iterable

import numpy as np

#: Mouth shape of each openfacefx viseme: (jaw opening 0..1, width -1 rounded .. +1 spread,
#: lip press 0..1), in the order of ``openfacefx.VISEMES``.
VISEME_SHAPES: dict[str, tuple[float, float, float]] = {
    "sil": (0.0, 0.0, 0.0),
    "PP": (0.0, 0.0, 1.0),    # p b m: lips pressed together
    "FF": (0.25, 0.15, 0.3),  # f v: lower lip tucked up under the teeth
    "TH": (0.35, 0.15, 0.0),
    "DD": (0.45, 0.2, 0.0),
    "kk": (0.55, 0.1, 0.0),
    "CH": (0.35, -0.6, 0.0),  # sh ch: protruded
    "SS": (0.25, 0.55, 0.0),  # s z: teeth close, spread
    "nn": (0.4, 0.2, 0.0),
    "RR": (0.4, -0.45, 0.0),
    "aa": (1.0, 0.15, 0.0),   # a: open jaw
    "E": (0.7, 0.6, 0.0),     # e: mid, spread
    "I": (0.45, 0.9, 0.0),    # i: wide
    "O": (0.85, -0.75, 0.0),  # o: rounded, open
    "U": (0.45, -1.0, 0.0),   # u w: tight rounding
}
VISEMES = tuple(VISEME_SHAPES)
SHAPE_TABLE = np.array([VISEME_SHAPES[v] for v in VISEMES], dtype=np.float32)
SIL, PP = VISEMES.index("sil"), VISEMES.index("PP")
#: Visemes whose tongue tip shows between or behind the teeth (t d l n th).
TONGUE_TIP = frozenset(VISEMES.index(v) for v in ("DD", "TH", "nn"))

# How strongly each viseme holds the lips against its neighbours.
_DOMINANCE = {"PP": 1.5, "FF": 1.5, "CH": 1.5, "U": 1.5, "O": 1.2, "sil": 0.8,
              "TH": 0.7, "DD": 0.4, "kk": 0.4, "nn": 0.4, "SS": 0.7, "RR": 0.8}
_DOM = np.array([_DOMINANCE.get(v, 1.0) for v in VISEMES], dtype=np.float64)
_STRESS = frozenset("ˈˌ'")
UNSTRESSED_JAW = 0.7   # reduced vowels (schwa) open less than stressed ones
_ANTICIPATION = 1.4    # reach before a phoneme, relative to after it
MIN_CLOSED_FRAMES = 2   # the fewest frames a bilabial shuts the lips on
_PRESS_REACH = 0.02    # seconds over which the lips meet before a bilabial
_REACH = 0.03          # seconds of reach of the shortest phoneme, plus a quarter of its length


@dataclasses.dataclass(frozen=True)
class Phone:
    viseme: int
    start: float   # seconds on the stream's audio clock
    end: float
    stressed: bool = False
    vowel: bool = False

    @property
    def centre(self) -> float:
        return 0.5 * (self.start + self.end)


@dataclasses.dataclass(frozen=True)
class PhonemeShape:
    jaw: float        # 0 closed .. 1 widest
    width: float      # -1 rounded .. +1 spread
    press: float      # 1 = lips shut (m, b, p)
    tongue: float     # 0..1 how much the tongue tip shows
    stress: float     # 0..1, on a stressed vowel


class PhonemeTrack:
    """The phonemes of a stream, fed segment by segment, and the mouth shape at any moment."""

    def __init__(self, fps: int):
        from openfacefx import IPA_MAPPING, is_ipa_vowel

        self._row = IPA_MAPPING.row
        self._normalize = IPA_MAPPING.normalize
        self._is_vowel = is_ipa_vowel
        self.half_frame = 0.5 / fps
        self.phones: list[Phone] = []
        self._starts: list[float] = []
        self._pending_start: float | None = None   # a stress mark's time, waiting for its phoneme
        self._pending_stress = False

    @property
    def end(self) -> float:
        """Where the known phonemes end, seconds."""
        return self.phones[-1].end if self.phones else 0.0

    def _viseme(self, symbol: str) -> int:
        row = self._row(symbol)
        return max(row, key=row.get) if row else SIL

    def feed(self, offset: float, timings: Iterable[tuple[str, float, float]]) -> None:
        """Phonemes (IPA symbol, start, duration) timed from ``offset`` seconds on the stream's clock."""
        for symbol, start, duration in timings:
            start, end = offset + start, offset + start + max(duration, 0.0)
            if symbol and self._normalize(symbol) == "" and not symbol.isspace():
                if symbol in _STRESS:          # belongs to the next phoneme
                    self._pending_start = start if self._pending_start is None else self._pending_start
                    self._pending_stress = True
                elif self.phones:              # length mark, tie bar: the last phoneme lasts longer
                    self.phones[-1] = dataclasses.replace(self.phones[-1], end=max(end, self.phones[-1].end))
                continue
            if self._pending_start is not None:
                start = self._pending_start
            vowel = bool(self._is_vowel(symbol))
            viseme = self._viseme(symbol)
            self._append(Phone(viseme, start, end, self._pending_stress and vowel, vowel))
            self._pending_start = None
            if vowel or viseme == SIL:   # the stress is the next vowel's, within the word
                self._pending_stress = False

    def _append(self, phone: Phone) -> None:
        self.phones.append(phone)
        self._starts.append(phone.start)

    def covers(self, t: float) -> bool:
        return bool(self.phones) and self.phones[0].start - 0.1 <= t <= self.end + self.half_frame

    def shape(self, t: float) -> PhonemeShape:
        """The coarticulated mouth shape at ``t`` seconds."""
        lo = max(bisect.bisect_left(self._starts, t - 0.4) - 1, 0)
        hi = bisect.bisect_right(self._starts, t + 0.4)
        near = self.phones[lo:hi]
        if not near:
            return PhonemeShape(0.0, 0.0, 0.0, 0.0, 0.0)
        weights = np.empty(len(near))
        shapes = np.empty((len(near), 3))
        tongue = stress = near_press = 0.0
        closed = False
        for k, p in enumerate(near):
            dur = p.end - p.start
            reach = _REACH + 0.25 * dur
            if t < p.start:
                dist = (p.start - t) / (_ANTICIPATION * reach)
            elif t > p.end:
                dist = (t - p.end) / reach
            else:
                dist = 0.0
            w = _DOM[p.viseme] * math.exp(-dist * dist)
            weights[k] = w
            jaw, width, press = SHAPE_TABLE[p.viseme]
            if p.vowel and not p.stressed:
                jaw *= UNSTRESSED_JAW
            shapes[k] = (jaw, width, press)
            if dist == 0.0:
                tongue = max(tongue, 1.0 if p.viseme in TONGUE_TIP else 0.0)
                stress = max(stress, 1.0 if p.stressed else 0.0)
            if p.viseme == PP:
                closed = closed or self._closes(p, t)
                # The lips start to meet just before a bilabial and part at once after it.
                near_press = max(near_press, math.exp(-(dist * reach / _PRESS_REACH) ** 2))
        jaw, width, _ = (weights @ shapes) / max(float(weights.sum()), 1e-9)
        press = near_press
        if closed:   # the lips meet on every m, b, p, pressed flat (a pout would part them)
            jaw, press, width = 0.0, 1.0, max(width, 0.0)
        return PhonemeShape(float(jaw), float(width), float(press), tongue, stress)

    def _closes(self, p: Phone, t: float) -> bool:
        """Whether the frame at ``t`` shuts the lips for bilabial ``p``: every frame inside it and
        the two frames either side of its middle. A closure held for one frame only is rebuilt
        from its open neighbours by a video codec (H.264 at CRF 23 leaves such lips parted); two
        frames survive it."""
        if p.start <= t < p.end:
            return True
        fps = 0.5 / self.half_frame
        k = round(t * fps)
        return 0 <= k - math.floor(p.centre * fps) <= MIN_CLOSED_FRAMES - 1

    def drop_before(self, t: float) -> None:
        """Forget phonemes that ended well before ``t`` (they no longer pull on any frame)."""
        cut = 0
        while cut < len(self.phones) - 1 and self.phones[cut].end < t - 0.5:
            cut += 1
        if cut:
            del self.phones[:cut]
            del self._starts[:cut]


def expected_openness(phones: list[Phone], times: np.ndarray, fps: int) -> np.ndarray:
    """The jaw opening the phonemes call for at each of ``times`` (seconds), for measuring lip-sync."""
    track = PhonemeTrack(fps)
    for p in phones:
        track._append(p)
    return np.array([track.shape(float(t)).jaw for t in times], dtype=np.float64)
