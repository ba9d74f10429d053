"""The two small models of turn detection: Silero VAD v6 (from the faster-whisper wheel) and
smart-turn v3.2 (from the pipecat-ai wheel, read as a file: pipecat itself is not imported)."""

from __future__ import annotations

import importlib.metadata
import os

import numpy as np

RATE = 16000
FRAME = 512     # Silero's frame at 16 kHz: 32 ms
CONTEXT = 64    # samples of the previous frame Silero sees with each frame
TURN_WINDOW = 8 * RATE  # smart-turn looks at the last 8 s
SMART_TURN_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


def silero_path() -> str:
    import faster_whisper

    return os.path.join(os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx")


def smart_turn_path() -> str:
    return str(importlib.metadata.distribution("pipecat-ai").locate_file(SMART_TURN_FILE))


class StreamingVad:
    """Silero VAD over a live stream: one speech probability per 32 ms frame, with the model's
    recurrent state and context carried from frame to frame (faster-whisper's SileroVADModel
    holds the session; its __call__ only does whole recordings)."""

    def __init__(self, model):
        self.session = model.session
        self.h = np.zeros((1, 1, 128), dtype=np.float32)
        self.c = np.zeros((1, 1, 128), dtype=np.float32)
        self.context = np.zeros(CONTEXT, dtype=np.float32)
        self.pending = np.zeros(0, dtype=np.float32)

    def probabilities(self, samples: np.ndarray) -> list[float]:
        """Speech probability of each whole frame completed by `samples` (16 kHz float32)."""
        audio = np.concatenate([self.pending, samples])
        n = audio.size // FRAME
        self.pending = audio[n * FRAME:]
        out = []
        for i in range(n):
            frame = audio[i * FRAME:(i + 1) * FRAME]
            x = np.concatenate([self.context, frame])[None, :]
            prob, self.h, self.c = self.session.run(None, {"input": x, "h": self.h, "c": self.c})
            self.context = frame[-CONTEXT:]
            out.append(float(np.asarray(prob).ravel()[0]))
        return out


class SmartTurn:
    """smart-turn v3.2: the probability that the last 8 s of audio end a complete utterance."""

    def __init__(self, threads: int = 1):
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(smart_turn_path(), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.features = FeatureExtractor()

    def probability(self, samples: np.ndarray) -> float:
        x = samples[-TURN_WINDOW:]
        x = np.pad(x, (TURN_WINDOW - x.size, 0))
        # Whisper's feature extractor with do_normalize (what the model was trained on): zero mean,
        # unit variance, then the log-mel of exactly 8 s (800 frames, no padding).
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        mel = self.features(x.astype(np.float32), padding=0)
        logits = self.session.run(None, {"input_features": mel[None].astype(np.float32)})[0]
        return float(np.asarray(logits).ravel()[0])
