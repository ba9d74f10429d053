"""Coqui TTS (``coqui-tts``): VITS and XTTS models that a user provides, on CPU or GPU.

Runs in its own environment (``.venv/tts-coqui``, ``requirements-coqui.txt``: torch,
torchaudio, coqui-tts) with ``TALKER_TTS_BACKEND=coqui``, ``TALKER_TTS_MODEL_PATH`` (a
checkpoint ``.pth``, or an XTTS model directory) and ``TALKER_TTS_CONFIG_PATH`` (its
``config.json``; default: next to the checkpoint). The model loads through
``TTS.api.TTS(model_path=..., config_path=...)``, the loader every Coqui model goes through.

- VITS (and the other whole-utterance models) synthesize one piece of text per call: long
  sentences are cut into clause pieces (see ``services/common/segments.py``) and each piece is sent as soon as
  it is done, like Piper. Multi-speaker models offer each speaker as a voice.
- XTTS streams: ``inference_stream`` yields audio while the GPT is still generating, and each
  of its chunks is sent at once. Voices are the speakers in ``speakers_xtts.pth`` next to the
  model plus one per ``<name>.wav`` reference recording in ``TALKER_TTS_VOICE_DIR``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from services.tts.backend import StopFlag, TtsBackend, Voice

log = logging.getLogger("talker.tts.coqui")


class CoquiBackend(TtsBackend):
    name = "coqui"

    def __init__(self, config, threads: int = 1):
        super().__init__(config, threads)
        self.api = None
        self.model = None
        self.kind = ""
        self.sample_rate = 0
        self._base_length_scale = 1.0
        self._speakers: dict[str, str | None] = {}  # voice name -> the model's speaker name
        self._xtts_latents: dict[str, tuple] = {}  # voice name -> (gpt_cond_latent, speaker_embedding)
        # One model, one device: calls are serialized (the rate is set on the model per call).
        self._lock = threading.Lock()

    def load(self) -> str:
        import torch
        from TTS.api import TTS

        torch.set_num_threads(self.threads)
        device = self.config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model_path = Path(self.config.model_path)
        if not model_path.exists():
            raise RuntimeError(f"TALKER_TTS_MODEL_PATH={model_path}: no such file or directory")
        config_path = Path(self.config.config_path) if self.config.config_path else \
            (model_path if model_path.is_dir() else model_path.parent) / "config.json"
        if not config_path.is_file():
            raise RuntimeError(f"TALKER_TTS_CONFIG_PATH={config_path}: no such file")
        self.api = TTS(model_path=str(model_path), config_path=str(config_path), progress_bar=False).to(device)
        self.device = device
        synthesizer = self.api.synthesizer
        self.model = synthesizer.tts_model
        self.kind = str(synthesizer.tts_config.model)
        self.sample_rate = int(synthesizer.output_sample_rate)
        self._base_length_scale = float(getattr(self.model, "length_scale", 1.0) or 1.0)
        model_name = model_path.name if model_path.is_dir() else model_path.parent.name
        if self.kind == "xtts":
            self._load_xtts_voices()
        else:
            manager = getattr(self.model, "speaker_manager", None)
            names = list(manager.speaker_names) if manager is not None and manager.num_speakers > 1 else []
            self._speakers = {n: n for n in names} if names else {model_name: None}
        if not self._speakers:
            raise RuntimeError("the Coqui model has no voice: an XTTS model needs speakers_xtts.pth next to it "
                               "or <name>.wav reference recordings in TALKER_TTS_VOICE_DIR")
        self._voices = {n: Voice(n, self.config.language, self.sample_rate) for n in self._speakers}
        if not self.default_voice:
            self.default_voice = next(iter(self._voices))
        if self.default_voice not in self._voices:
            raise RuntimeError(f"TALKER_TTS_VOICE={self.default_voice!r}: not among {sorted(self._voices)}")
        # Warm-up: the first inference allocates buffers (and compiles kernels on a GPU).
        for _ in self.stream_piece("Hello.", self.voice(""), 1.0, StopFlag()):
            pass
        log.info("coqui %s model %s on %s, %d Hz, voices %s", self.kind, model_name, device, self.sample_rate,
                 sorted(self._voices))
        return f"{self.kind}:{model_name}"

    def _load_xtts_voices(self) -> None:
        manager = getattr(self.model, "speaker_manager", None)
        if manager is not None:
            for name, latents in manager.speakers.items():
                self._speakers[name] = name
                self._xtts_latents[name] = (latents["gpt_cond_latent"], latents["speaker_embedding"])
        if self.config.voice_dir:
            for wav in sorted(Path(self.config.voice_dir).glob("*.wav")):
                latent, embedding = self.model.get_conditioning_latents(audio_path=str(wav))
                self._speakers[wav.stem] = wav.stem
                self._xtts_latents[wav.stem] = (latent, embedding)

    def stream_piece(self, text: str, voice: Voice, rate: float, stop: StopFlag) -> Iterator[np.ndarray]:
        if self.kind == "xtts":
            yield from self._xtts_stream(text, voice, rate, stop)
            return
        import torch

        with self._lock, torch.inference_mode():
            if hasattr(self.model, "length_scale"):
                self.model.length_scale = self._base_length_scale / rate
            out = self.model.synthesize(text, speaker=self._speakers[voice.name], language=None)
        wav = out["wav"]
        if isinstance(wav, torch.Tensor):
            wav = wav.detach().cpu().numpy()
        yield np.asarray(wav, dtype=np.float32).reshape(-1)

    def _xtts_stream(self, text: str, voice: Voice, rate: float, stop: StopFlag) -> Iterator[np.ndarray]:
        latent, embedding = self._xtts_latents[voice.name]
        stream = self.model.inference_stream(text, self.config.language, latent, embedding, speed=rate,
                                             stream_chunk_size=20, enable_text_splitting=False)
        try:
            while not stop.is_set():
                with self._lock:
                    chunk = next(stream, None)
                if chunk is None:
                    return
                yield chunk.detach().cpu().numpy().astype(np.float32).reshape(-1)
        finally:
            stream.close()
