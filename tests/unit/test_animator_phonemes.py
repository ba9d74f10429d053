"""Phoneme-timed mouth shapes: IPA to visemes, stress and length marks, coarticulation, closures.

Runs in the animator environment (openfacefx):
    PYTHONPATH=. .venv/animator/bin/python -m pytest tests/unit/test_animator_phonemes.py
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.animator.phonemes import PP, VISEMES, PhonemeTrack
from services.animator.visemes import MouthTracker

FPS = 25


def timed(symbols: str, seconds: float = 0.08) -> list[tuple[str, float, float]]:
    """Each symbol of ``symbols`` lasting ``seconds``, one after another from 0."""
    return [(s, i * seconds, seconds) for i, s in enumerate(symbols)]


def visemes(track: PhonemeTrack) -> list[str]:
    return [VISEMES[p.viseme] for p in track.phones]


@pytest.mark.parametrize("symbols, expected", [
    ("^mama$", ["sil", "PP", "aa", "PP", "aa", "sil"]),
    ("fiːθ", ["FF", "I", "TH"]),
    ("ʃuː", ["CH", "U"]),                      # English "shoe"
    ("ʁyʒ", ["RR", "U", "CH"]),                # French "rouge"-like: uvular r, rounded front vowel
    ("iç", ["I", "CH"]),                       # German "ich"
    ("ɲo", ["nn", "O"]),                       # Spanish "ño"
])
def test_ipa_phonemes_map_to_visemes_in_any_language(symbols, expected):
    track = PhonemeTrack(FPS)
    track.feed(0.0, timed(symbols))
    assert visemes(track) == expected


def test_stress_marks_go_to_the_next_vowel_and_length_marks_to_the_last():
    track = PhonemeTrack(FPS)
    track.feed(0.0, [("h", 0.0, 0.05), ("ə", 0.05, 0.05), ("l", 0.1, 0.05), ("ˈ", 0.15, 0.05), ("o", 0.2, 0.1),
                     ("ː", 0.3, 0.04)])
    assert visemes(track) == ["kk", "aa", "DD", "O"]
    o = track.phones[-1]
    assert (o.start, o.end, o.stressed, o.vowel) == (pytest.approx(0.15), pytest.approx(0.34), True, True)
    assert not track.phones[1].stressed          # schwa: unstressed, opens less
    assert track.shape(0.075).jaw < track.shape(0.25).jaw


def test_segments_continue_on_the_streams_clock():
    track = PhonemeTrack(FPS)
    track.feed(0.0, [("m", 0.0, 0.1), ("ˈ", 0.1, 0.05)])   # a stress mark at a segment's end
    track.feed(0.15, [("a", 0.0, 0.1)])
    a = track.phones[-1]
    assert VISEMES[a.viseme] == "aa" and a.stressed and a.start == pytest.approx(0.1)
    assert a.end == pytest.approx(0.25)


def test_every_bilabial_shuts_the_lips_on_the_frames_around_it():
    """Even a 20 ms /b/ between vowels, shorter than a frame, closes the lips on a frame."""
    track = PhonemeTrack(FPS)
    track.feed(0.0, [("a", 0.0, 0.13), ("b", 0.13, 0.02), ("a", 0.15, 0.2), ("m", 0.35, 0.06), ("i", 0.41, 0.2)])
    frames = np.arange(0, 0.6, 1 / FPS)
    shapes = [track.shape(t) for t in frames]
    for p in track.phones:
        if p.viseme != PP:
            continue
        near = [s for t, s in zip(frames, shapes, strict=True) if p.start - 1 / FPS <= t <= p.end + 1 / FPS]
        assert any(s.press == 1.0 and s.jaw == 0.0 for s in near)
    assert max(s.jaw for s in shapes) > 0.6                  # and the vowels open


def test_the_lips_round_before_a_rounded_vowel():
    """Anticipation: during the /s/ of "sue" the lips are already rounding; in "see" they spread."""
    def width_in_s(vowel):
        track = PhonemeTrack(FPS)
        track.feed(0.0, [("s", 0.0, 0.12), (vowel, 0.12, 0.2)])
        return track.shape(0.09).width
    assert width_in_s("u") < 0.0 < width_in_s("i")


def test_tongue_shows_on_t_d_l_n_th():
    track = PhonemeTrack(FPS)
    track.feed(0.0, timed("alaka", 0.1))
    assert track.shape(0.15).tongue == 1.0        # l
    assert track.shape(0.35).tongue == 0.0        # k


def test_mouth_tracker_follows_the_phonemes_where_they_are_given():
    rate = 16000
    mouth = MouthTracker(rate, FPS)
    audio = 0.2 * np.sin(np.arange(rate) * 2 * np.pi * 200 / rate).astype(np.float32)   # loud all through
    mouth.feed(audio[:8000], "", [("^", 0.0, 0.1), ("m", 0.1, 0.1), ("a", 0.2, 0.2), ("ˈ", 0.4, 0.02),
                                  ("p", 0.42, 0.06)])
    mouth.feed(audio[8000:], "", [("a", 0.0, 0.3), ("$", 0.3, 0.2)])
    win = 320
    shapes = []
    for i in range(FPS):
        c = round(i * rate / FPS)
        shapes.append(mouth.step(i, audio[max(c - win, 0):c + win]))
    at = {round(i / FPS, 2): s for i, s in enumerate(shapes)}
    assert at[0.12].press == 1.0 and at[0.12].openness == 0.0          # m, though the audio is loud
    assert at[0.28].openness > 0.5                                     # a
    assert at[0.44].press == 1.0 and at[0.44].openness == 0.0          # p
    assert at[0.64].openness > 0.5 and at[0.64].stress == 1.0          # the stressed a of the next segment


def test_mouth_returns_to_rest_after_the_last_phoneme():
    # Piper's chunks of a sentence all carry its text, but one in which no phoneme starts (here the
    # trailing silence) carries none: it is still phoneme-timed speech, not a sentence for the text
    # aligner, whose first viseme (the m of "Maybe") would hold the lips shut through the silence.
    rate = 16000
    text = "Maybe my mom bought a map."
    mouth = MouthTracker(rate, FPS)
    voice = 0.2 * np.sin(np.arange(8000) * 2 * np.pi * 200 / rate).astype(np.float32)
    silence = np.zeros(rate, dtype=np.float32)
    mouth.feed(voice, text, [("^", 0.0, 0.05), ("m", 0.05, 0.1), ("ˈ", 0.15, 0.02), ("e", 0.17, 0.13),
                             ("ɪ", 0.3, 0.1), ("b", 0.4, 0.05), ("i", 0.45, 0.05)])
    mouth.feed(silence[:4000], text)           # a chunk of the same reply in which no phoneme starts
    mouth.feed(silence[4000:], "")             # the silence after the reply
    audio = np.concatenate([voice, silence])
    last = 0.5                                 # the last phoneme's end, seconds
    shapes = []
    for i in range(round(audio.size / rate * FPS)):
        c = round(i * rate / FPS)
        shapes.append(mouth.step(i, audio[max(c - 320, 0):c + 320]))
    rest = [s for i, s in enumerate(shapes) if i / FPS >= last + 0.2]
    assert len(rest) >= 10
    for s in rest:
        assert s.press < 0.05 and s.openness < 0.05 and abs(s.width) < 0.05 and s.tongue == 0.0, s


def test_streamed_chunks_close_every_bilabial_however_the_voice_splits_them():
    """The streaming path (frames rendered as chunks arrive, a frame of look-ahead, old phonemes
    dropped): bilabials shorter than a frame, at a chunk's first sample, and spanning a chunk
    boundary each shut the lips on a frame within one frame of them, as the face test measures."""
    from services.animator.idle import Idle
    from services.animator.service import _Stream

    class Backend:
        def frame(self, entry, state, fmt, quality):
            return state, 0.0

    rate = 22050
    phones = [("a", 0.0, 0.13), ("b", 0.13, 0.017), ("a", 0.147, 0.1), ("m", 0.247, 0.05), ("ˈ", 0.297, 0.01),
              ("a", 0.307, 0.12), ("p", 0.427, 0.023), ("i", 0.45, 0.1), ("m", 0.55, 0.06), ("a", 0.61, 0.2)]
    # Chunk boundaries: inside the 17 ms /b/, at the /m/'s first sample, inside the /p/, inside the last /m/.
    cuts = [0.0, 0.14, 0.247, 0.44, 0.58, 0.9]
    voice = 0.2 * np.sin(np.arange(round(0.9 * rate)) * 2 * np.pi * 200 / rate).astype(np.float32)
    stream = _Stream(Backend(), None, FPS, rate, 0, 90, 1, -45.0, -12.0, Idle(512, head_motion=False, blinks=False))
    states = []
    for lo, hi in itertools.pairwise(cuts):
        chunk = voice[round(lo * rate):round(hi * rate)]
        timings = [(s, start - lo, d) for s, start, d in phones if lo <= start < hi]
        stream.audio.append(chunk)
        stream.mouth.feed(chunk, "a bam pim ma", timings)
        states += [s for s, _ in stream.render(stream.ready(False))]
    tail = np.zeros(round(0.4 * rate), np.float32)
    stream.audio.append(tail)
    stream.mouth.feed(tail, "")
    states += [s for s, _ in stream.render(stream.ready(True))]
    assert [s.index for s in states] == list(range(len(states)))
    for symbol, start, d in phones:
        if symbol not in "mbp":
            continue
        near = states[max(int(np.ceil(start * FPS)) - 1, 0):int(np.floor((start + d) * FPS)) + 2]
        assert any(s.press == 1.0 and s.openness == 0.0 for s in near), (symbol, start)
