"""The answer-quality benchmark's quick set against the stack's LLM service on the default model.

One conversation of each kind (fact, how/why, advice, small talk, follow-up, decline), greedy, with
the service's persona and decoding: the default must answer them right and in a form fit to speak.
The full set and the other candidates run in `make bench` (bench/answers.py).
"""

from __future__ import annotations

import grpc
import pytest

from bench.answer_set import ITEMS
from bench.answers import ask, correct, spoken_form
from talker.v1 import llm_pb2_grpc

QUICK = [i for i in ITEMS if i.quick]


@pytest.fixture(scope="module")
def llm(stack):
    with grpc.insecure_channel(stack.services["llm"].target) as channel:
        yield llm_pb2_grpc.LlmServiceStub(channel)


def test_default_model_answers_the_quick_set_right_and_speakably(llm):
    results = []
    for item in QUICK:
        reply = ask(llm, item.turns, timeout=120)
        results.append((item, reply.text, correct(item, reply.text), spoken_form(reply.text, item.sentences,
                                                                                    reply.finish)))
    report = "\n".join(f"{item.kind}: {'ok' if ok else 'WRONG'} {problems or ''} {text!r}"
                       for item, text, ok, problems in results)
    assert sum(ok for _, _, ok, _ in results) >= len(QUICK) - 1, report  # >= 80% as the full set must
    assert not any(problems for *_, problems in results), report
