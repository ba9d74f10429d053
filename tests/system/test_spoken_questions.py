"""Heard right: word error rate through the whole system (gateway Ask with a WAV -> ASR -> the turn)
on the spoken-question set, read by Piper and by espeak-ng at two rates, made at test time."""

from __future__ import annotations

import pytest

from services.common.audio import write_wav
from talker.v1 import gateway_pb2
from tests.spoken import ESPEAK_RATES, QUESTIONS, RATE, espeak, espeak_available
from tests.wer import wer, words

pytestmark = pytest.mark.system

MAX_WER = 0.08


def transcript_of(gateway, wav: bytes) -> str:
    request = gateway_pb2.AskRequest(config=gateway_pb2.SessionConfig(max_reply_tokens=1), wav=wav)
    for ev in gateway.Ask(request, timeout=120):
        if ev.WhichOneof("event") == "transcript":
            return ev.transcript.text
    raise AssertionError("the turn sent no transcript")


def corpus_wer(pairs) -> float:
    """Edits over reference words, for the whole set (not a mean of per-question rates)."""
    edits = sum(wer(ref, hyp) * len(words(ref)) for ref, hyp in pairs)
    return edits / sum(len(words(ref)) for ref, _ in pairs)


def test_the_question_set_is_big_enough():
    assert len(QUESTIONS) >= 20 and len(set(QUESTIONS)) == len(QUESTIONS)


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (make test installs it)")
def test_word_error_rate_through_the_system(gateway, stack):
    voices = {"piper": lambda q: stack.speak(q)}
    for rate in ESPEAK_RATES:
        voices[f"espeak-ng {rate} wpm"] = lambda q, rate=rate: write_wav(espeak(q, rate), RATE)
    results = {name: [(q, transcript_of(gateway, speak(q))) for q in QUESTIONS] for name, speak in voices.items()}
    rates = {name: corpus_wer(pairs) for name, pairs in results.items()}
    overall = corpus_wer([p for pairs in results.values() for p in pairs])
    misheard = [(name, q, h) for name, pairs in results.items() for q, h in pairs if wer(q, h) > 0]
    print(f"\nWER overall {overall:.3f}; " + ", ".join(f"{n} {r:.3f}" for n, r in rates.items()))
    assert overall <= MAX_WER, (rates, misheard)
