"""Where a hands-free turn starts and ends, from per-frame speech probabilities.

Pure logic, fed one VAD frame at a time; the service runs the models and the semantic check.
A turn starts once speech has lasted `speech_start_seconds`, gaps between words of up to
`speech_start_gap_seconds` not counting against it. After `pause_seconds` of silence the
state machine asks for the semantic check (``Check``): a sure "complete" verdict ends the turn there,
a likely one after `late_pause_seconds` of silence; otherwise the turn goes on, and ends at
`silence_cap_seconds` of silence whatever was said. Speech in between continues the turn.
The semantic check is smart-turn's verdict on the audio and, when that says "complete", the
transcript of the pause (`unfinished`): on synthetic voices smart-turn alone scored a pause after
"I would like to know the capital of" anywhere from 0.53 to 0.79.
"""

from __future__ import annotations

import dataclasses

from services.asr.config import AsrConfig

SEMANTIC, SILENCE_CAP, STREAM_END = "semantic", "silence_cap", "stream_end"

# English words a sentence does not end on (articles, prepositions, conjunctions).
_DANGLING_EN = frozenset("""a an the of to in on at for with from by about into than and or but so because
if that my your our their his her its is are was were""".split())


def unfinished(text: str, language: str = "en") -> bool:
    """The transcript at a pause reads as cut off: Whisper ends it with an ellipsis, or (English) its
    last word is one no sentence ends on."""
    text = text.strip()
    if not text or text.endswith(("...", "\u2026")):
        return True
    words = text.rstrip(".?!,;: ").lower().split()
    return bool(language.startswith("en") and words and words[-1] in _DANGLING_EN)


@dataclasses.dataclass(frozen=True)
class Started:
    start: int  # frame where speech began


@dataclasses.dataclass(frozen=True)
class Check:
    speech_end: int  # frame just after the last speech frame


@dataclasses.dataclass(frozen=True)
class Ended:
    reason: str
    start: int
    speech_end: int
    decided_at: int  # frame just after the one that decided
    probability: float = 0.0


class Endpointer:
    def __init__(self, config: AsrConfig, frame_seconds: float):
        frames = lambda seconds: max(1, round(seconds / frame_seconds))  # noqa: E731
        self.on = config.vad_threshold
        self.off = config.vad_threshold - 0.15
        self.start_frames = frames(config.speech_start_seconds)
        self.start_gap_frames = round(config.speech_start_gap_seconds / frame_seconds)
        self.pause_frames = frames(config.pause_seconds)
        self.cap_frames = frames(config.silence_cap_seconds)
        self.late_frames = frames(config.late_pause_seconds)
        self.completion = config.completion_threshold
        self.sure = config.sure_threshold
        self.likely = 0.0  # a "likely complete" verdict for this pause: end at late_frames of silence
        self.semantic = config.semantic_turn
        self.pos = 0          # frames fed so far
        self.run = 0          # speech frames of the speech that may start a turn (while idle)
        self.run_start = 0    # frame where that speech began
        self.gap = 0          # frames since its last speech frame
        self.start: int | None = None
        self.speech_end = 0
        self.checked = False

    @property
    def speaking(self) -> bool:
        return self.start is not None

    def feed(self, probability: float) -> Started | Check | Ended | None:
        self.pos += 1
        if self.start is None:
            if probability >= self.on or (self.run and probability >= self.off):
                if not self.run:
                    self.run_start = self.pos - 1
                self.run, self.gap = self.run + 1, 0
            elif self.run:
                self.gap += 1
                if self.gap > self.start_gap_frames:
                    self.run, self.gap = 0, 0
            if self.run >= self.start_frames:
                self.start, self.speech_end, self.checked = self.run_start, self.pos, False
                return Started(self.start)
            return None
        if probability >= self.off:
            self.speech_end, self.checked, self.likely = self.pos, False, 0.0
            return None
        silence = self.pos - self.speech_end
        if silence >= self.cap_frames:
            return self._end(SILENCE_CAP)
        if self.likely and silence >= self.late_frames:
            return self._end(SEMANTIC, self.likely)
        if silence >= self.pause_frames and not self.checked:
            self.checked = True
            return Check(self.speech_end) if self.semantic else None
        return None

    def verdict(self, probability: float) -> Ended | None:
        """The semantic check's probability that the utterance is complete, for the last Check."""
        if self.start is not None and probability >= self.sure:
            return self._end(SEMANTIC, probability)
        if self.start is not None and probability >= self.completion:
            self.likely = probability
        return None

    def close(self) -> Ended | None:
        """The stream ended: a turn in progress ends with it."""
        return self._end(STREAM_END) if self.start is not None else None

    def _end(self, reason: str, probability: float = 0.0) -> Ended:
        ended = Ended(reason, self.start, self.speech_end, self.pos, probability)
        self.start, self.run, self.gap, self.likely = None, 0, 0, 0.0
        return ended


class Pauses:
    """Pauses in a push-to-talk stream (the client says where the turn ends): where the last speech
    ended, and the frame at which each pause of `pause_seconds` after speech begins, the moment worth
    decoding the audio so far (if the user stops there, what follows is silence and that decode is
    the transcript)."""

    def __init__(self, config: AsrConfig, frame_seconds: float):
        self.off = config.vad_threshold - 0.15  # the Endpointer's in-speech threshold: soft endings count
        self.pause_frames = max(1, round(config.pause_seconds / frame_seconds))
        self.pos = 0
        self.speech_end: int | None = None  # frame just after the last speech frame; None: no speech yet

    def feed(self, probability: float) -> bool:
        """One frame's speech probability; True when a pause has just lasted `pause_seconds`."""
        self.pos += 1
        if probability >= self.off:
            self.speech_end = self.pos
            return False
        return self.speech_end is not None and self.pos - self.speech_end == self.pause_frames
