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
        "max_audio_seconds": Range(0, 600, open_lo=True),
    }

    backend: str = "faster-whisper"
    # A CTranslate2 Whisper model directory; empty = the embedded whisper tiny.en.
    model: str = ""
    compute_type: str = "int8"
    language: str = "en"
    beam_size: int = 1
    max_audio_seconds: float = 60.0

    def validate(self) -> None:
        self.check("backend", self.backend in BACKENDS, f"supported: {', '.join(BACKENDS)}")
        self.check("compute_type",
                   self.compute_type in {"int8", "int8_float32", "float32", "float16", "int8_float16", "default"},
                   "not a CTranslate2 compute type")
