"""LLM settings (``TALKER_LLM_*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from services.common.config import Settings
from services.common.limits import TEMPERATURE, TOP_P, Range

# The backends by name (services/common/backends.py): llamacpp embedded, vllm in its own environment.
BACKENDS = {"llamacpp": "services.llm.llamacpp:LlamaCppBackend", "vllm": "services.llm.vllm_backend:VllmBackend"}

# Tuned on the answer-quality benchmark (bench/answers.py): what is said is spoken, so short, plain
# sentences; a name to answer to; and refusals kept to what could hurt (a bare "refuse anything harmful"
# made the 1.5B refuse a dragon story).
DEFAULT_PERSONA = (
    "You are Talker, a friendly digital human who talks with people out loud. "
    "You gladly chat, explain, give advice and tell stories. "
    "Reply in one to three short spoken sentences unless you are asked for more. "
    "Be correct and to the point. Speak in plain words: no lists, no markdown, no code, no emoji. "
    "Only refuse requests that could hurt someone or invade privacy."
)


@dataclasses.dataclass(frozen=True)
class LlmConfig(Settings):
    PREFIX = "TALKER_LLM_"
    LIMITS: ClassVar[Mapping[str, Range]] = {
        "context_length": Range(256, 131072),
        "temperature": TEMPERATURE,
        "top_p": TOP_P,
        "max_waiting": Range(0, 10000),
        "max_num_seqs": Range(1, 1024),
        "gpu_memory_utilization": Range(0.05, 1),
        "cpu_kv_cache_gib": Range(1, 256),
        "repetition_penalty": Range(1, 2),
        "max_sentences": Range(0, 100),
        "prompt_cache_mib": Range(0, 65536),
    }

    # llamacpp (embedded default) or vllm (vLLM's async engine; its own environment/image).
    backend: str = "llamacpp"
    # llamacpp: a model or profile of services/llm/models.py (quality, fast, tiny) installed in
    # MODELS_DIR, or a path to a GGUF file; empty = the default profile.
    # vllm: a model directory (safetensors + tokenizer with its chat template) or a model name
    # the node can load; empty = the SmolLM2 converted by `make setup` (.venv/llm-vllm/models/smollm2).
    model: str = ""
    # llamacpp: where catalogue models are installed; empty = <environment>/models (.venv/llm/models).
    models_dir: str = ""
    context_length: int = 2048
    max_tokens: int = 96
    temperature: float = 0.3
    top_p: float = 0.9
    # >1 makes tokens already in the reply less likely (llama.cpp repeat_penalty, vLLM repetition_penalty).
    repetition_penalty: float = 1.1
    # The most sentences a reply may have: generation stops at the end of the last one (0 = no budget).
    max_sentences: int = 3
    # llamacpp: MiB of context states kept per prompt prefix (LRU), so that each conversation's next
    # turn reuses its own prefix even when other conversations ran in between; 0 = off (only the
    # conversation that ran last reuses its prefix). A state is the KV cache of its tokens
    # (~28 KB a token for the 1.5B, ~12 KB for the 0.5B).
    prompt_cache_mib: int = 256
    # The persona used when a request carries no system message.
    system_prompt: str = DEFAULT_PERSONA
    # Requests that may wait for the model; beyond this RESOURCE_EXHAUSTED.
    max_waiting: int = 16
    max_messages: int = 256
    max_message_chars: int = 8000
    # vllm only: the most sequences the engine batches at once.
    max_num_seqs: int = 16
    # vllm on a GPU: the fraction of device memory vLLM may take (weights + KV cache).
    gpu_memory_utilization: float = 0.85
    # vllm only: weights dtype (auto, float16, bfloat16, float32).
    dtype: str = "auto"
    # vllm: skip torch.compile / CUDA graphs. Empty = auto: eager on CPU (compiling takes minutes
    # on a small CPU), compiled + CUDA graphs on a GPU.
    enforce_eager: bool | None = None
    # vllm on a CPU: GiB for the KV cache (exported as VLLM_CPU_KVCACHE_SPACE unless that is set).
    cpu_kv_cache_gib: int = 1

    def validate(self) -> None:
        self.check("backend", self.backend in BACKENDS, f"supported: {', '.join(BACKENDS)}")
        self.check("max_tokens", 1 <= self.max_tokens < self.context_length,
                   f"must be 1..{self.variable('context_length')}-1")
        self.check("dtype", self.dtype in {"auto", "float16", "bfloat16", "float32"},
                   "one of auto, float16, bfloat16, float32")
