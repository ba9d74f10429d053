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


def test_interleaved_conversations_each_reuse_their_own_prompt_prefix(stack, llm):
    import urllib.request

    from stack.process import metric_sum

    def cache() -> tuple[float, float]:
        with urllib.request.urlopen(stack.services["llm"].metrics_url, timeout=10) as resp:
            text = resp.read().decode()
        return (metric_sum(text, "talker_llm_prefix_cache_queries_total"),
                metric_sum(text, "talker_llm_prefix_cache_hits_total"))

    a, b = ["What is the capital of France?"], ["Tell me a fun fact about cats."]
    for turns in (a, b):  # B's first turn takes the live context from A
        turns += [ask(llm, turns, max_tokens=12, timeout=120).text.strip() or "Okay.", "Tell me more."]
    before = cache()
    ask(llm, a, max_tokens=4, timeout=120)  # A's second turn: its state is restored from the cache
    queried, hit = (after - start for after, start in zip(cache(), before, strict=True))
    # Everything up to the new message came from the cache (the persona, A's question and the reply).
    assert hit >= queried - 24, (queried, hit)
