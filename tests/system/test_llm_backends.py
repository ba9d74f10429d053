"""The LLM contract against each real backend, each in its own process and environment.

llama.cpp (.venv/llm) runs in every `make test`; vLLM (.venv/llm-vllm, the real engine on its
CPU build) runs in `make test-llm-vllm`, which sets TALKER_TEST_LLM_BACKENDS=vllm.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import threading
import time
from pathlib import Path

import grpc
import pytest

from services.common.segments import sentences
from stack.process import ServiceProcess, venv_dir
from talker.v1 import llm_pb2, llm_pb2_grpc

BACKENDS = [b for b in os.environ.get("TALKER_TEST_LLM_BACKENDS", "llamacpp").split(",") if b]
CONTEXT = 1024
U, A = llm_pb2.ROLE_USER, llm_pb2.ROLE_ASSISTANT


class LlmProcess(ServiceProcess):
    def __init__(self, backend: str, log: Path):
        self.backend = backend
        env = dict(TALKER_GRACE_SECONDS="2", TALKER_LLM_BACKEND=backend,
                   TALKER_LLM_CONTEXT_LENGTH=str(CONTEXT), TALKER_LLM_MAX_TOKENS="48")
        if backend == "vllm":
            env["TALKER_THREADS"] = os.environ.get("TALKER_THREADS", "2")
        super().__init__(f"llm ({backend})", "services.llm", log, venv=venv_name(backend), env=env)
        self.start()
        self.stub = llm_pb2_grpc.LlmServiceStub(self.channel)


def venv_name(backend: str) -> str:
    return "llm" if backend == "llamacpp" else "llm-vllm"


@pytest.fixture(scope="module", params=BACKENDS)
def llm(request, tmp_path_factory):
    backend = request.param
    if not (venv_dir() / venv_name(backend) / ".installed").exists():
        pytest.skip(f"the {backend} environment is not installed (make setup)")
    p = LlmProcess(backend, tmp_path_factory.mktemp(f"llm-{backend}") / "llm.log")
    try:
        p.wait_serving(300)
        yield p
    finally:
        p.stop()


def req(*msgs, **kw) -> llm_pb2.GenerateRequest:
    return llm_pb2.GenerateRequest(messages=[llm_pb2.ChatMessage(role=r, content=c) for r, c in msgs], **kw)


def ask(llm, request, timeout=120) -> tuple[str, llm_pb2.GenerateResponse]:
    out = list(llm.stub.Generate(request, timeout=timeout))
    return "".join(r.text for r in out), out[-1]


def test_answers_a_simple_question(llm):
    text, last = ask(llm, req((U, "What is the capital of France?"), temperature=0.0, seed=1))
    assert "paris" in text.lower(), text
    assert last.finish_reason in (llm_pb2.FINISH_REASON_STOP, llm_pb2.FINISH_REASON_LENGTH)
    assert last.usage.prompt_tokens > 10 and 0 < last.usage.completion_tokens <= 48
    assert len(text) < 600  # short and speakable by default
    assert not re.search(r"<\|im_(start|end)\|>", text)


def test_streams_tokens_incrementally(llm):
    times, texts = [], []
    start = time.perf_counter()
    for r in llm.stub.Generate(req((U, "Tell me a long story about a dragon."), max_tokens=40, temperature=0.0),
                               timeout=120):
        if r.text:
            times.append(time.perf_counter() - start)
            texts.append(r.text)
    assert len(texts) >= 10, texts
    assert times[-1] - times[0] > 0.05  # spread over time, not one burst at the end


def test_stop_sequences_and_max_tokens(llm):
    text, last = ask(llm, req((U, "Count from one to twenty in words, separated by commas."), max_tokens=60,
                             temperature=0.0, stop=["five"]))
    assert "five" not in text.lower() and last.finish_reason == llm_pb2.FINISH_REASON_STOP, text
    _, last = ask(llm, req((U, "Tell me a long story about a dragon."), max_tokens=5, temperature=0.0))
    assert last.finish_reason == llm_pb2.FINISH_REASON_LENGTH and last.usage.completion_tokens == 5


def test_a_long_reply_stops_at_the_sentence_budget(llm):
    cut_before = llm.value("talker_llm_replies_cut_total")
    text, last = ask(llm, req((U, "Tell me a long story about a dragon, with many sentences."), max_tokens=200,
                             temperature=0.0))
    assert last.finish_reason == llm_pb2.FINISH_REASON_STOP, text
    assert len(sentences(text)) == 3, text  # TALKER_LLM_MAX_SENTENCES defaults to 3
    assert re.search(r"[.!?\u2026][\"')\]]*$", text), text  # ends at a sentence end, never mid-word
    assert llm.value("talker_llm_replies_cut_total") == cut_before + 1  # asked for more than three


def test_cancel_mid_stream_then_the_next_request_is_served(llm):
    cancelled_before = llm.value("talker_llm_request_success_total", finished_reason="cancelled")
    generated_before = llm.value("talker_llm_generation_tokens_total")
    call = llm.stub.Generate(req((U, "Write a very long story about the sea."), max_tokens=400,
                                 temperature=0.8, seed=3), timeout=120)
    got = 0
    for r in call:
        got += bool(r.text)
        if got == 3:
            call.cancel()
            break
    deadline = time.monotonic() + 20
    while llm.value("talker_llm_request_success_total", finished_reason="cancelled") <= cancelled_before:
        assert time.monotonic() < deadline, "the cancelled request was never counted"
        time.sleep(0.1)
    assert llm.value("talker_llm_num_requests_running") == 0
    # Generation stopped well short of max_tokens.
    assert llm.value("talker_llm_generation_tokens_total") - generated_before < 200
    text, last = ask(llm, req((U, "Say hello."), max_tokens=16))
    assert text and last.usage.completion_tokens > 0


def test_fifty_turn_session_is_trimmed_into_the_window(llm):
    dropped_before = llm.value("talker_llm_history_messages_dropped_total")
    msgs = []
    for i in range(50):
        msgs.append((U, f"Turn {i}: tell me one fact about the number {i} and about the ocean, please."))
        msgs.append((A, f"The number {i} is a fine number, and the ocean covers most of the planet Earth."))
    msgs.append((U, "What did we talk about?"))
    text, last = ask(llm, req(*msgs, max_tokens=32))
    assert text
    assert last.usage.prompt_tokens + 32 <= CONTEXT
    assert last.usage.prompt_tokens > CONTEXT // 2  # trimmed, not emptied
    assert llm.value("talker_llm_history_messages_dropped_total") > dropped_before


@pytest.mark.parametrize("request_, detail", [
    (req(), "messages: empty"),
    (req((llm_pb2.ROLE_UNSPECIFIED, "Hi")), "ROLE_UNSPECIFIED"),
    (req((7, "Hi")), "role"),
    (req((U, "")), "content: empty"),
    (req((U, "Hi"), max_tokens=-5), "max_tokens"),
    (req((U, "Hi"), max_tokens=1_000_000), "max_tokens"),
    (req((U, "Hi"), max_tokens=CONTEXT), "max_tokens"),
])
def test_bad_requests_are_invalid_argument(llm, request_, detail):
    with pytest.raises(grpc.RpcError) as err:
        ask(llm, request_, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert detail in err.value.details()


def _watch(llm, name: str, stop: threading.Event) -> list[float]:
    seen = []
    while not stop.is_set():
        seen.append(llm.value(name))
        time.sleep(0.05)
    return seen


def test_concurrent_sessions_all_complete(llm):
    """vLLM batches them (running > 1); llama.cpp queues them fairly (waiting > 0)."""
    gauge = "talker_llm_num_requests_running" if llm.backend == "vllm" else "talker_llm_num_requests_waiting"
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        watcher = pool.submit(_watch, llm, gauge, stop)
        time.sleep(0.1)
        futures = [pool.submit(ask, llm, req((U, f"Tell me a story about a cat named {name}."),
                                             max_tokens=48, temperature=0.0, seed=i))
                   for i, name in enumerate(("Tom", "Kiki", "Max", "Luna"))]
        results = [f.result(timeout=300) for f in futures]
        stop.set()
        seen = watcher.result()
    for text, last in results:
        assert text and last.usage.completion_tokens > 0
    if llm.backend == "vllm":
        assert max(seen) > 1, seen
    else:
        assert max(seen) >= 1, seen
    assert llm.value("talker_llm_num_requests_running") == 0
