"""TTS settings (``TALKER_TTS_*``)."""

from __future__ import annotations

import dataclasses

from services.common.config import require


@dataclasses.dataclass(frozen=True)
class TtsConfig:
    backend: str = "piper"
    # Default voice name; empty = the first voice found (the embedded en_US-joe-medium).
    voice: str = ""
    # Extra directory of Piper voices (<name>.onnx + <name>.onnx.json).
    voice_dir: str = ""
    speaking_rate: float = 1.0
    max_chars: int = 2000
    # Audio is sent in slices of this length so the animator can start early.
    chunk_seconds: float = 0.2

    def __post_init__(self) -> None:
        require(self.backend in {"piper"}, f"TALKER_TTS_BACKEND={self.backend!r}: supported: piper")
        require(0.25 <= self.speaking_rate <= 4.0,
                f"TALKER_TTS_SPEAKING_RATE={self.speaking_rate}: must be 0.25..4")
        require(1 <= self.max_chars <= 100_000, f"TALKER_TTS_MAX_CHARS={self.max_chars}: must be 1..100000")
        require(0.02 <= self.chunk_seconds <= 5.0,
                f"TALKER_TTS_CHUNK_SECONDS={self.chunk_seconds}: must be 0.02..5")
