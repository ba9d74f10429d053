"""The LLM servicer against a fake backend: validation, streaming, cancellation, metrics."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from services.common.errors import InvalidArgument, ResourceExhausted
from services.llm.backend import BackendStats, Busy, LlmBackend, Piece
from services.llm.config import LlmConfig
from services.llm.service import LlmMetrics, LlmServiceServicer
from talker.v1 import llm_pb2

U, A, S = llm_pb2.ROLE_USER, llm_pb2.ROLE_ASSISTANT, llm_pb2.ROLE_SYSTEM


class FakeBackend(LlmBackend):
    name = "fake"

    def __init__(self, config, pieces=("Hello", " there", "."), busy=False):
        super().__init__(config)
        self.model_name = "fake-model"
        self.pieces = pieces
        self.busy = busy
        self.seen = []
        self.closed = 0
        self.running = 0

    def load(self):
        pass

    def render(self, messages):
        self.seen.append(messages)
        return [1] * sum(3 + len(m["content"].split()) for m in messages)

    def stats(self):
        return BackendStats(running=self.running, waiting=0, kv_cache_usage=0.25)

    async def generate(self, prompt, sampling):
        if self.busy:
            raise Busy("queue full")
        self.sampling = sampling
        self.running += 1
        try:
            for i, text in enumerate(self.pieces):
                await asyncio.sleep(0)
                last = i == len(self.pieces) - 1
                yield Piece(text=text, finish_reason="stop" if last else None)
        finally:
            self.running -= 1
            self.closed += 1


def make(config=None, **kw):
    config = config or LlmConfig()
    backend = FakeBackend(config, **kw)
    metrics = LlmMetrics(CollectorRegistry())
    metrics.bind(backend)
    return LlmServiceServicer(config, backend, metrics), backend, metrics


def request(*msgs, **kw):
    return llm_pb2.GenerateRequest(messages=[llm_pb2.ChatMessage(role=r, content=c) for r, c in msgs], **kw)


def collect(servicer, req):
    async def go():
        return [r async for r in servicer.Generate(req, None)]
    return asyncio.run(go())


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, {"model": "fake-model", **labels})


def test_streams_pieces_then_usage_and_counts():
    servicer, _, metrics = make()
    out = collect(servicer, request((U, "Hi")))
    assert [r.text for r in out[:-1]] == ["Hello", " there", "."]
    assert out[-1].finish_reason == llm_pb2.FINISH_REASON_STOP
    assert out[-1].usage.completion_tokens == 3 and out[-1].usage.prompt_tokens > 0
    assert sample(metrics, "talker_llm_request_success_total", finished_reason="stop") == 1
    assert sample(metrics, "talker_llm_generation_tokens_total") == 3
    assert sample(metrics, "talker_llm_time_to_first_token_seconds_count") == 1
    assert sample(metrics, "talker_llm_inter_token_latency_seconds_count") == 2
    assert sample(metrics, "talker_llm_kv_cache_usage_perc") == 0.25


def test_persona_added_and_max_tokens_zero_is_the_default():
    servicer, backend, _ = make(LlmConfig(system_prompt="Be brief.", max_tokens=40))
    collect(servicer, request((U, "Hi"), max_tokens=0))
    assert backend.seen[-1][0] == {"role": "system", "content": "Be brief."}
    assert backend.sampling.max_tokens == 40
    collect(servicer, request((S, "Be a pirate."), (U, "Hi"), max_tokens=7, stop=["\n"]))
    assert backend.seen[-1][0]["content"] == "Be a pirate."
    assert backend.sampling.max_tokens == 7 and backend.sampling.stop == ("\n",)


@pytest.mark.parametrize("req, match", [
    (request(), "messages: empty"),
    (request((llm_pb2.ROLE_UNSPECIFIED, "Hi")), "ROLE_UNSPECIFIED"),
    (request((42, "Hi")), "messages\\[0\\].role"),
    (request((U, "  ")), "content: empty"),
    (request((U, "Hi"), (A, "Hello")), "last message must be the user's"),
    (request((U, "Hi"), (S, "late"), (U, "x")), "system message may only come first"),
    (request((U, "Hi"), max_tokens=-1), "max_tokens: -1"),
    (request((U, "Hi"), max_tokens=2048), "max_tokens: 2048"),
    (request((U, "Hi"), max_tokens=2**31 - 1), "max_tokens"),
    (request((U, "Hi"), temperature=3.0), "temperature"),
    (request((U, "Hi"), stop=[""]), "stop"),
])
def test_bad_requests_are_invalid_argument(req, match):
    servicer, backend, _ = make()
    with pytest.raises(InvalidArgument, match=match):
        collect(servicer, req)
    assert backend.closed == 0


def test_prompt_longer_than_the_window_is_invalid_argument():
    servicer, _, _ = make(LlmConfig(context_length=256, max_tokens=200))
    with pytest.raises(InvalidArgument, match="context window"):
        collect(servicer, request((U, "word " * 100)))


def test_consumer_going_away_cancels_the_backend_stream():
    servicer, backend, metrics = make(pieces=tuple(f"w{i} " for i in range(50)))

    async def go():
        gen = servicer.Generate(request((U, "Count")), None)
        got = [await gen.__anext__() for _ in range(3)]
        await gen.aclose()
        return got

    assert len(asyncio.run(go())) == 3
    assert backend.closed == 1 and backend.running == 0
    assert sample(metrics, "talker_llm_request_success_total", finished_reason="cancelled") == 1


def test_busy_backend_is_resource_exhausted():
    servicer, _, metrics = make(busy=True)
    with pytest.raises(ResourceExhausted):
        collect(servicer, request((U, "Hi")))
    assert sample(metrics, "talker_llm_request_success_total", finished_reason="error") == 0


def test_sentence_budget_stops_the_reply_at_a_sentence_end_and_counts():
    pieces = ("One", " is", " first.", " Two", " next.", " Three", " is", " cut", ".")
    servicer, backend, metrics = make(LlmConfig(max_sentences=2), pieces=pieces)
    out = collect(servicer, request((U, "Count")))
    assert "".join(r.text for r in out) == "One is first. Two next."
    assert out[-1].finish_reason == llm_pb2.FINISH_REASON_STOP
    assert backend.closed == 1 and backend.sampling.repetition_penalty == LlmConfig().repetition_penalty
    assert sample(metrics, "talker_llm_replies_cut_total") == 1
    assert sample(metrics, "talker_llm_reply_sentences_sum") == 2


def test_a_looping_reply_is_counted_as_repetitive():
    servicer, _, metrics = make(pieces=("I like the sea.", " I like the sea", " very much."))
    collect(servicer, request((U, "Hi")))
    assert sample(metrics, "talker_llm_replies_repetitive_total") == 1
    assert sample(metrics, "talker_llm_replies_cut_total") == 0
