"""ASR settings (``TALKER_ASR_*``)."""

from __future__ import annotations

import dataclasses

from services.common.config import require


@dataclasses.dataclass(frozen=True)
class AsrConfig:
    # A CTranslate2 Whisper model directory; empty = the embedded whisper tiny.en.
    model: str = ""
    compute_type: str = "int8"
    language: str = "en"
    beam_size: int = 1
    max_audio_seconds: float = 60.0

    def __post_init__(self) -> None:
        require(self.compute_type in {"int8", "int8_float32", "float32", "float16", "int8_float16", "default"},
                f"TALKER_ASR_COMPUTE_TYPE={self.compute_type!r}: not a CTranslate2 compute type")
        require(1 <= self.beam_size <= 10, f"TALKER_ASR_BEAM_SIZE={self.beam_size}: must be 1..10")
        require(0 < self.max_audio_seconds <= 600,
                f"TALKER_ASR_MAX_AUDIO_SECONDS={self.max_audio_seconds}: must be in (0, 600]")
