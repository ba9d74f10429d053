"""Mouth openness from speech audio.

Per video frame: the RMS level of ~40 ms of audio centred on the frame's pts,
through a noise gate (in dBFS) and a soft compressor into 0..1, then smoothed
over time (fast attack, slower release) so the mouth opens promptly, closes
without flicker and stays shut in silence.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import numpy as np

from services.animator.phonemes import SHAPE_TABLE, VISEMES, PhonemeTrack

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


# -- mouth shape: width/rounding/pressing from visemes (text) or spectral cues (audio only) ---------

@dataclasses.dataclass(frozen=True)
class MouthShape:
    openness: float = 0.0  # 0 closed .. 1 widest
    width: float = 0.0     # -1 rounded/narrow .. +1 spread/wide
    press: float = 0.0     # 0 relaxed .. 1 lips pressed (m, b, p)
    tongue: float = 0.0    # 0..1 the tongue tip shows (t, d, l, n, th)
    stress: float = 0.0    # 0..1 on a stressed vowel (phoneme timing only)


_HOP_SECONDS = 0.01          # voiced-time resolution of the text aligner
_SECONDS_PER_PRIOR = 0.075   # speaking rate guess before a sentence has been heard
_TAIL_SILENCE = 0.12         # a sentence whose audio ends in this much silence is complete
_SHAPE_TIME = 0.05           # smoothing of width/press changes, seconds


class _Sentence:
    """One sentence's phonemes laid over its voiced audio."""

    def __init__(self, text: str, start: int, phones: list[str], priors: float):
        self.text = text
        self.start = start         # first sample
        self.phones = phones
        self.priors = priors       # sum of duration priors of the phones
        self.voiced: list[bool] = []  # per hop since start
        self.complete = False
        self._curves: tuple[float, np.ndarray, np.ndarray] | None = None

    def voiced_total(self, hop: float, seconds_per_prior: float) -> float:
        heard = sum(self.voiced) * hop
        if self.complete:
            return max(heard, hop)
        return max(self.priors * seconds_per_prior, heard + 0.15)

    def curves(self, total: float) -> tuple[np.ndarray, np.ndarray]:
        """openfacefx's coarticulated viseme curves over ``total`` seconds of voiced time."""
        if self._curves is None or abs(self._curves[0] - total) > 1e-3:
            from openfacefx import NaiveAligner, build_viseme_curves

            segs = NaiveAligner().align(self.phones, total)
            times, matrix = build_viseme_curves(segs, fps=100)
            self._curves = (total, np.asarray(times, dtype=np.float64), np.asarray(matrix, dtype=np.float32))
        return self._curves[1], self._curves[2]


class TextAligner:
    """Viseme shapes from a sentence's text, aligned over that sentence's audio as it streams in.

    The gateway sends the sentence's text with every audio chunk of it; a change of text starts a
    new sentence. The sentence's phonemes (openfacefx G2P) are spread over its *voiced* audio (10 ms
    hops above the noise gate), so pauses hold the mouth and the phonemes resume after them. Until a
    sentence's audio is known to be complete (it ends in silence, as Piper's does, or the next one
    starts) its length is guessed from the phonemes' duration priors at the rate learnt so far.
    """

    def __init__(self, sample_rate: int, gate_dbfs: float):
        from openfacefx import G2P
        from openfacefx import VISEMES as OFX_VISEMES
        from openfacefx.alignment import _prior

        assert tuple(VISEMES) == tuple(OFX_VISEMES)
        self.rate = sample_rate
        self.hop = max(round(_HOP_SECONDS * sample_rate), 1)
        self.gate = 10.0 ** (gate_dbfs / 20.0)
        self._g2p = G2P()
        self._prior = _prior
        self.sentences: list[_Sentence] = []
        self.seconds_per_prior = _SECONDS_PER_PRIOR
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet making a whole hop
        self.total = 0

    def feed(self, samples: np.ndarray, text: str) -> None:
        text = " ".join(text.split())
        current = self.sentences[-1] if self.sentences else None
        if text and (current is None or text != current.text):
            self._finish()
            phones = [p for p in self._g2p.phrase(text) if p != "sil"]
            if phones:
                priors = float(sum(self._prior(p) for p in phones))
                self.sentences.append(_Sentence(text, self.total, phones, priors))
            else:
                self.sentences.append(_Sentence(text, self.total, [], 1.0))
        elif not text and current is not None and not current.complete:
            self._finish()
        self.total += samples.size
        buf = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n = buf.size // self.hop
        if n:
            rms = np.sqrt(np.mean(np.square(buf[:n * self.hop].reshape(n, self.hop), dtype=np.float64), axis=1))
            if self.sentences and not self.sentences[-1].complete:
                s = self.sentences[-1]
                s.voiced.extend(bool(v) for v in rms > self.gate)
                tail = max(round(_TAIL_SILENCE / _HOP_SECONDS), 1)
                if sum(s.voiced) > 10 and len(s.voiced) >= tail and not any(s.voiced[-tail:]):
                    self._finish()
        self._pending = buf[n * self.hop:]

    def _finish(self) -> None:
        if self.sentences and not self.sentences[-1].complete:
            s = self.sentences[-1]
            s.complete = True
            heard = sum(s.voiced) * _HOP_SECONDS
            if s.phones and heard > 0.3:  # learn the voice's rate, slowly
                rate = heard / s.priors
                self.seconds_per_prior = float(np.clip(0.7 * self.seconds_per_prior + 0.3 * rate, 0.03, 0.2))

    def weights(self, sample: int) -> np.ndarray | None:
        """The 15 viseme weights at ``sample``, or None outside any sentence with text."""
        s = None
        for cand in reversed(self.sentences):
            if cand.start <= sample:
                s = cand
                break
        if s is None or not s.phones:
            return None
        hop = (sample - s.start) // self.hop
        voiced = s.voiced[:max(hop, 0)]
        tau = sum(voiced) * _HOP_SECONDS
        total = s.voiced_total(_HOP_SECONDS, self.seconds_per_prior)
        times, matrix = s.curves(total)
        if not matrix.shape[0]:
            return None
        k = int(np.clip(np.searchsorted(times, min(tau, total)), 0, matrix.shape[0] - 1))
        return matrix[k]

    def drop_before(self, sample: int) -> None:
        while len(self.sentences) > 1 and self.sentences[1].start <= sample:
            self.sentences.pop(0)


def spectral_shape(window: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(width, voicing) guessed from one audio window, for streams without text.

    Front vowels and sibilants put their energy high (spread lips), back rounded vowels low: the
    spectral centroid of the voiced band maps onto -1 (rounded) .. +1 (spread)."""
    if window.size < 32:
        return 0.0, 0.0
    spec = np.abs(np.fft.rfft(window * np.hanning(window.size))) ** 2
    freqs = np.fft.rfftfreq(window.size, 1.0 / sample_rate)
    band = (freqs > 250) & (freqs < min(6000.0, sample_rate / 2))
    power = spec[band]
    total = float(power.sum())
    if total <= 1e-12:
        return 0.0, 0.0
    centroid = float((freqs[band] * power).sum() / total)
    width = float(np.clip((centroid - 1500.0) / 900.0, -1.0, 1.0))
    return width, 1.0


class MouthTracker:
    """Mouth shape per frame, in frame order. Where the voice sent its phoneme timing, the
    phonemes shape and time the mouth (see :mod:`services.animator.phonemes`) and the audio
    level only says how loud. Otherwise openness follows the audio level (see
    :class:`OpennessTracker`), and width and pressing the visemes of the sentence's text when
    given, else the spectrum of the audio."""

    def __init__(self, sample_rate: int, fps: int, gate_dbfs: float = -45.0, full_dbfs: float = -12.0,
                 use_text: bool = True):
        self.open = OpennessTracker(sample_rate, fps, gate_dbfs, full_dbfs)
        self.text = TextAligner(sample_rate, gate_dbfs) if use_text else None
        self.phonemes = PhonemeTrack(fps)
        self.received = 0   # samples fed so far
        self.fps = fps
        self.k_shape = 1.0 - math.exp(-(1.0 / fps) / _SHAPE_TIME)
        self.width = 0.0
        self.press = 0.0
        self._timed_text: str | None = None   # the text of the last segment that came with phonemes

    def feed(self, samples: np.ndarray, text: str,
             phonemes: Iterable[tuple[str, float, float]] = ()) -> None:
        """A segment of audio, the text it speaks and the phonemes (IPA, start, duration in
        seconds from the segment's first sample) that start in it.

        A segment without phonemes of a text that came with phonemes (the voice's chunk in which
        no phoneme starts: the middle of a long sound or a pause, the trailing silence) is part of
        that phoneme-timed speech, not a new sentence for the text aligner: the text's visemes,
        laid over the rest of the audio, would otherwise shape the mouth after the last phoneme
        (a sentence's first m, b, p held shut through the silence)."""
        timings = list(phonemes)
        text = " ".join(text.split())
        if timings:
            self.phonemes.feed(self.received / self.open.rate, timings)
            self._timed_text = text
        if self.text is not None:
            # The aligner hears every segment, so that its clock stays the stream's; phoneme-timed
            # speech reaches it as audio without text, which ends its sentence, if any.
            timed = bool(timings) or (self._timed_text is not None and text in ("", self._timed_text))
            self.text.feed(samples, "" if timed else text)
        self.received += samples.size

    def step(self, index: int, window: np.ndarray) -> MouthShape:
        openness = self.open.step(window)
        centre = self.open.centre(index)
        t = centre / self.open.rate
        if self.phonemes.covers(t):
            return self._from_phonemes(t, openness)
        weights = None
        if self.text is not None:
            # Half a frame of look-ahead: lips move a little before the sound they shape.
            weights = self.text.weights(centre + round(0.02 * self.open.rate))
        if weights is not None:
            total = float(weights.sum())
            jaw, width, press = (weights @ SHAPE_TABLE) / max(total, 1.0)
            # A sentence's visemes say how far the jaw goes for this sound; the level says how loud.
            # Loud sound is never a closed mouth: the text's timing is only estimated, so a press
            # (m, b, p) shuts the lips fully only where the audio is quiet.
            press = float(press) * (1.0 - openness)
            openness *= float(np.clip(0.55 + 0.6 * jaw, 0.0, 1.0)) * (1.0 - 0.8 * press)
        else:
            width, voiced = spectral_shape(window, self.open.rate)
            width *= min(openness * 3.0, 1.0) * voiced
            press = 0.0
        self.width += self.k_shape * (float(width) - self.width)
        self.press += min(1.0, 2.0 * self.k_shape) * (float(press) - self.press)
        return MouthShape(openness=openness, width=self.width, press=self.press)

    def _from_phonemes(self, t: float, level: float) -> MouthShape:
        p = self.phonemes.shape(t)
        # The phonemes say how far the jaw goes and when; the level only how loud (a shout
        # opens wider than a murmur), never whether the mouth is open at all.
        openness = p.jaw * (0.75 + 0.25 * min(level / 0.6, 1.0))
        self.width, self.press = p.width, p.press
        return MouthShape(openness=openness, width=p.width, press=p.press, tongue=p.tongue * min(openness * 3, 1),
                          stress=p.stress)

    def drop_before(self, sample: int) -> None:
        if self.text is not None:
            self.text.drop_before(sample)
        self.phonemes.drop_before(sample / self.open.rate)
