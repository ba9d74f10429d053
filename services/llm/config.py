"""LLM settings (``TALKER_LLM_*``)."""

from __future__ import annotations

import dataclasses

from services.common.config import require

BACKENDS = ("llamacpp", "vllm")

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
class LlmConfig:
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

    def __post_init__(self) -> None:
        require(self.backend in BACKENDS, f"TALKER_LLM_BACKEND={self.backend!r}: supported: {', '.join(BACKENDS)}")
        require(256 <= self.context_length <= 131072,
                f"TALKER_LLM_CONTEXT_LENGTH={self.context_length}: must be 256..131072")
        require(1 <= self.max_tokens < self.context_length,
                f"TALKER_LLM_MAX_TOKENS={self.max_tokens}: must be 1..context_length-1")
        require(0.0 <= self.temperature <= 2.0, f"TALKER_LLM_TEMPERATURE={self.temperature}: must be 0..2")
        require(0.0 < self.top_p <= 1.0, f"TALKER_LLM_TOP_P={self.top_p}: must be in (0, 1]")
        require(1.0 <= self.repetition_penalty <= 2.0,
                f"TALKER_LLM_REPETITION_PENALTY={self.repetition_penalty}: must be 1..2")
        require(0 <= self.max_sentences <= 100, f"TALKER_LLM_MAX_SENTENCES={self.max_sentences}: must be 0..100")
        require(0 <= self.max_waiting <= 10000, f"TALKER_LLM_MAX_WAITING={self.max_waiting}: must be 0..10000")
        require(1 <= self.max_num_seqs <= 1024, f"TALKER_LLM_MAX_NUM_SEQS={self.max_num_seqs}: must be 1..1024")
        require(0.05 <= self.gpu_memory_utilization <= 1.0,
                f"TALKER_LLM_GPU_MEMORY_UTILIZATION={self.gpu_memory_utilization}: must be 0.05..1")
        require(1 <= self.cpu_kv_cache_gib <= 256,
                f"TALKER_LLM_CPU_KV_CACHE_GIB={self.cpu_kv_cache_gib}: must be 1..256")
        require(self.dtype in {"auto", "float16", "bfloat16", "float32"},
                f"TALKER_LLM_DTYPE={self.dtype!r}: one of auto, float16, bfloat16, float32")
