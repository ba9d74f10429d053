"""Spoken test audio made at test time: a question set read by Piper (the stack's TTS) and by
espeak-ng at two rates, and helpers to lay utterances out on a timeline and stream it like a
microphone (real time, small chunks)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gateway.client import MICROPHONE_CHUNK_SECONDS, microphone_chunks
from services.common.audio import read_wav, resample

RATE = 16000
CHUNK_SECONDS = MICROPHONE_CHUNK_SECONDS

# Short spoken questions of the kind people ask the avatar, with their texts (the references for WER).
QUESTIONS = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky on a clear day?",
    "Who wrote the play Romeo and Juliet?",
    "How many days are there in a week?",
    "What is the largest ocean on Earth?",
    "Can you tell me a short joke?",
    "What do bees make?",
    "How far away is the moon?",
    "What is the boiling point of water?",
    "Which planet is closest to the sun?",
    "What language do people speak in Brazil?",
    "How many minutes are in an hour?",
    "What is your favorite book?",
    "Where do penguins live?",
    "What time is it in London?",
    "Why is the ocean salty?",
    "How do airplanes stay in the air?",
    "What is the tallest mountain in the world?",
    "Can you recommend a good movie?",
    "What should I cook for dinner tonight?",
    "How old is the universe?",
)

ESPEAK_RATES = (150, 190)  # words per minute: a slow and a brisk reader


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, rate: int) -> np.ndarray:
    """`text` read by espeak-ng (en-us) at `rate` words per minute, 16 kHz float32."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(rate), "-w", str(out), text], check=True,
                       capture_output=True, timeout=60)
        return wav_to_16k(out.read_bytes())


def wav_to_16k(wav: bytes) -> np.ndarray:
    samples, rate = read_wav(wav)
    return resample(samples, rate, RATE)


def trimmed(samples: np.ndarray, level: float = 0.003) -> np.ndarray:
    """Speech without the synthesizer's lead-in and trailing silence, so the pauses a test lays out
    between utterances are the pauses the service hears."""
    loud = np.flatnonzero(np.abs(samples) > level)
    return samples[loud[0]:loud[-1] + 1] if loud.size else samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def noise(seconds: float, level: float = 0.01, seed: int = 7) -> np.ndarray:
    """Quiet background noise: pink-ish (smoothed white) noise at `level` RMS, no speech in it."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(int(seconds * RATE) + 64)
    smooth = np.convolve(white, np.ones(8) / 8, mode="valid")[: int(seconds * RATE)]
    return (smooth / np.sqrt(np.mean(smooth ** 2)) * level).astype(np.float32)


def concat(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32)


def realtime_chunks(samples: np.ndarray, rate: int = RATE):
    """PCM16 chunks of `samples`, each yielded when a live microphone would have delivered it."""
    return microphone_chunks(samples, rate)
