"""The LLM stage: a conversation in, the reply out as a token stream.

The servicer validates the request, adds the persona, asks the backend for a
prompt that fits the context window and streams the backend's pieces out,
recording vLLM's request metrics under our prefix. It knows no backend.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from opentelemetry import trace
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.common import buckets, tracing
from services.common.config import ServerConfig, from_env
from services.common.errors import InvalidArgument, ResourceExhausted
from services.common.limits import TEMPERATURE, TOP_P
from services.common.server import LoadedModel, Stage, run
from services.llm.backend import Busy, LlmBackend, PromptTooLong, Sampling, make_backend
from services.llm.config import LlmConfig
from services.llm.speech import SentenceBudget, repeated_phrase
from talker.v1 import llm_pb2, llm_pb2_grpc

log = logging.getLogger("talker.llm")

_ROLES = {llm_pb2.ROLE_SYSTEM: "system", llm_pb2.ROLE_USER: "user", llm_pb2.ROLE_ASSISTANT: "assistant"}
_FINISH = {"stop": llm_pb2.FINISH_REASON_STOP, "length": llm_pb2.FINISH_REASON_LENGTH}
REASONS = ("stop", "length", "cancelled", "error")


class LlmMetrics:
    """vLLM's metric semantics under our prefix (``vllm:time_to_first_token_seconds`` ->
    ``talker_llm_time_to_first_token_seconds`` and so on)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        m = ["model"]
        r = {"registry": registry}
        self.registry = registry
        self.ttft = Histogram("talker_llm_time_to_first_token_seconds", "From the request to its first token.",
                              m, buckets=buckets.FIRST_OUTPUT, **r)
        self.itl = Histogram("talker_llm_inter_token_latency_seconds", "Between two generated tokens.",
                             m, buckets=buckets.INTER_TOKEN, **r)
        self.e2e = Histogram("talker_llm_e2e_request_latency_seconds", "A request from arrival to its last token.",
                             m, buckets=buckets.STAGE, **r)
        self.queue = Histogram("talker_llm_request_queue_time_seconds", "Time a request waited for the model.",
                               m, buckets=buckets.FIRST_OUTPUT, **r)
        self.prompt_len = Histogram("talker_llm_request_prompt_tokens", "Prompt tokens per request.",
                                    m, buckets=buckets.TOKENS, **r)
        self.generation_len = Histogram("talker_llm_request_generation_tokens", "Generated tokens per request.",
                                        m, buckets=buckets.TOKENS, **r)
        self.prompt_tokens = Counter("talker_llm_prompt_tokens_total", "Prompt tokens processed.", m, **r)
        self.generation_tokens = Counter("talker_llm_generation_tokens_total", "Tokens generated.", m, **r)
        self.running = Gauge("talker_llm_num_requests_running", "Requests generating now.", m, **r)
        self.waiting = Gauge("talker_llm_num_requests_waiting", "Requests waiting for the model.", m, **r)
        self.kv_cache = Gauge("talker_llm_kv_cache_usage_perc", "Fraction of the KV cache in use (1 = full).",
                              m, **r)
        self.finished = Counter("talker_llm_request_success_total", "Finished requests by reason.",
                                [*m, "finished_reason"], **r)
        self.reply_sentences = Histogram("talker_llm_reply_sentences", "Sentences per finished reply.",
                                         m, buckets=buckets.SENTENCES, **r)
        self.replies_cut = Counter("talker_llm_replies_cut_total",
                                   "Replies stopped at the end of their last allowed sentence "
                                   "(TALKER_LLM_MAX_SENTENCES).", m, **r)
        self.replies_repetitive = Counter("talker_llm_replies_repetitive_total",
                                          "Replies that repeat a phrase of four or more words.", m, **r)
        self.prefix_queries = Counter("talker_llm_prefix_cache_queries_total",
                                      "Prompt tokens looked up in the prefix cache (llamacpp).", m, **r)
        self.prefix_hits = Counter("talker_llm_prefix_cache_hits_total",
                                   "Prompt tokens found in the prefix cache: the live context or a state kept "
                                   "for another conversation (llamacpp).", m, **r)
        self.history_dropped = Counter("talker_llm_history_messages_dropped_total",
                                       "Oldest messages dropped to fit the context window.", m, **r)

    def bind(self, backend: LlmBackend) -> None:
        """Read the live gauges from the backend at scrape time."""
        model = backend.model_name
        self.running.labels(model).set_function(lambda: backend.stats().running)
        self.waiting.labels(model).set_function(lambda: backend.stats().waiting)
        if backend.stats().kv_cache_usage is not None:
            self.kv_cache.labels(model).set_function(lambda: backend.stats().kv_cache_usage or 0.0)
        for reason in REASONS:
            self.finished.labels(model, reason)
        self.replies_cut.labels(model)
        self.replies_repetitive.labels(model)
        backend.on_queue_time = self.queue.labels(model).observe
        queries, hits = self.prefix_queries.labels(model), self.prefix_hits.labels(model)

        def on_prefix_cache(queried: int, hit: int) -> None:
            queries.inc(queried)
            hits.inc(hit)

        backend.on_prefix_cache = on_prefix_cache
        # Device memory is exported for every stage by services.common.metrics.DeviceMemoryCollector.


class LlmServiceServicer(llm_pb2_grpc.LlmServiceServicer):
    def __init__(self, config: LlmConfig, backend: LlmBackend, metrics: LlmMetrics):
        self.config = config
        self.backend = backend
        self.metrics = metrics

    def _messages(self, request) -> list[dict]:
        if not request.messages:
            raise InvalidArgument("messages: empty; send at least one user message")
        if len(request.messages) > self.config.max_messages:
            raise InvalidArgument(f"messages: {len(request.messages)} messages, more than {self.config.max_messages}")
        out = []
        for i, msg in enumerate(request.messages):
            role = _ROLES.get(msg.role)
            if role is None:
                name = llm_pb2.Role.Name(msg.role) if msg.role in llm_pb2.Role.values() else msg.role
                raise InvalidArgument(f"messages[{i}].role: {name} is not system, user or assistant")
            if not msg.content.strip():
                raise InvalidArgument(f"messages[{i}].content: empty")
            if len(msg.content) > self.config.max_message_chars:
                raise InvalidArgument(f"messages[{i}].content: {len(msg.content)} characters, more than "
                                      f"{self.config.max_message_chars}")
            if role == "system" and i != 0:
                raise InvalidArgument(f"messages[{i}].role: a system message may only come first")
            out.append({"role": role, "content": msg.content})
        if out[-1]["role"] != "user":
            raise InvalidArgument(f"messages[{len(out) - 1}].role: the last message must be the user's")
        if out[0]["role"] != "system" and self.config.system_prompt:
            out.insert(0, {"role": "system", "content": self.config.system_prompt})
        return out

    def _sampling(self, request) -> Sampling:
        # max_tokens 0 is the proto's "service default"; negative or beyond the window is refused.
        max_tokens = request.max_tokens or self.config.max_tokens
        if not 1 <= max_tokens < self.config.context_length:
            raise InvalidArgument(f"max_tokens: {request.max_tokens} is outside 1..{self.config.context_length - 1} "
                                  "(0 = the service default)")
        temperature = request.temperature if request.HasField("temperature") else self.config.temperature
        TEMPERATURE.check("temperature", temperature)
        top_p = request.top_p if request.HasField("top_p") else self.config.top_p
        TOP_P.check("top_p", top_p)
        if len(request.stop) > 8 or any(not s for s in request.stop):
            raise InvalidArgument("stop: at most 8 non-empty stop sequences")
        seed = request.seed if request.HasField("seed") else None
        return Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                        repetition_penalty=self.config.repetition_penalty, seed=seed, stop=tuple(request.stop))

    async def Generate(self, request, context):
        messages = self._messages(request)
        sampling = self._sampling(request)
        model, m = self.backend.model_name, self.metrics
        arrived = time.perf_counter()
        try:
            prompt = await asyncio.to_thread(self.backend.prompt, messages, sampling.max_tokens)
        except PromptTooLong as exc:
            raise InvalidArgument(f"messages: {exc}") from None
        m.history_dropped.labels(model).inc(prompt.dropped_messages)
        reason, generated, started = "cancelled", 0, False
        # The model's work as a GenAI span (OpenTelemetry semantic conventions for generative AI).
        span = tracing.tracer("talker.llm").start_span(f"chat {model}", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.system": self.backend.name,
            "gen_ai.provider.name": self.backend.name, "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": sampling.max_tokens, "gen_ai.request.temperature": sampling.temperature,
            "gen_ai.request.top_p": sampling.top_p, "gen_ai.usage.input_tokens": len(prompt.tokens),
            "talker.llm.history_dropped_messages": prompt.dropped_messages})
        stream = self.backend.generate(prompt, sampling)
        budget = SentenceBudget(self.config.max_sentences)
        try:
            last = None
            async for piece in stream:
                if not started:
                    started = True
                    m.prompt_tokens.labels(model).inc(len(prompt.tokens))
                    m.prompt_len.labels(model).observe(len(prompt.tokens))
                now = time.perf_counter()
                if piece.tokens:
                    generated += piece.tokens
                    if last is None:
                        m.ttft.labels(model).observe(now - arrived, tracing.exemplar(span))
                    else:
                        # A piece may carry several tokens (vLLM under load): one gap per token.
                        for _ in range(piece.tokens):
                            m.itl.labels(model).observe((now - last) / piece.tokens)
                    last = now
                if text := budget.feed(piece.text):
                    yield llm_pb2.GenerateResponse(text=text)
                if budget.cut:
                    reason = "stop"  # the reply is complete at its last allowed sentence
                    m.replies_cut.labels(model).inc()
                    break
                if piece.finish_reason:
                    reason = piece.finish_reason if piece.finish_reason in _FINISH else "stop"
            yield llm_pb2.GenerateResponse(
                finish_reason=_FINISH.get(reason, llm_pb2.FINISH_REASON_STOP),
                usage=llm_pb2.Usage(prompt_tokens=len(prompt.tokens), completion_tokens=generated))
        except Busy as exc:
            reason = "rejected"
            raise ResourceExhausted(f"llm: {exc}; retry later") from None
        except BaseException as exc:
            if not isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
                reason = "error"
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            # Closing the backend's stream cancels the request in the engine and frees its slot.
            await stream.aclose()
            span.set_attributes({"gen_ai.usage.output_tokens": generated, "gen_ai.response.model": model,
                                 "gen_ai.response.finish_reasons": [reason]})
            span.end()
            if reason != "rejected":
                m.generation_tokens.labels(model).inc(generated)
                m.generation_len.labels(model).observe(generated)
                m.finished.labels(model, reason).inc()
                if reason in _FINISH:
                    m.reply_sentences.labels(model).observe(budget.sentences())
                    if repeated_phrase(budget.text):
                        m.replies_repetitive.labels(model).inc()
                m.e2e.labels(model).observe(time.perf_counter() - arrived, tracing.exemplar(span))


class LlmStage(Stage):
    name = "llm"
    service_names = (llm_pb2.DESCRIPTOR.services_by_name["LlmService"].full_name,)

    def __init__(self, server_config: ServerConfig, config: LlmConfig | None = None,
                 registry: CollectorRegistry = REGISTRY):
        self.config = config or from_env(LlmConfig, "TALKER_LLM_")
        self.backend = make_backend(self.config, server_config.threads)
        self.metrics = LlmMetrics(registry)
        self.servicer = LlmServiceServicer(self.config, self.backend, self.metrics)

    def add_to_server(self, server: grpc.aio.Server) -> None:
        llm_pb2_grpc.add_LlmServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        await self.backend.start()

    def load(self) -> LoadedModel:
        self.backend.load()
        self.metrics.bind(self.backend)
        return LoadedModel(backend=self.backend.name, model=self.backend.model_name, device=self.backend.device)

    async def close(self) -> None:
        await self.backend.close()


def main() -> None:
    run(LlmStage, "llm")
