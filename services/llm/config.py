"""LLM settings (``TALKER_LLM_*``)."""

from __future__ import annotations

import dataclasses

from services.common.config import require

DEFAULT_PERSONA = (
    "You are Talker, a friendly digital human who talks with people out loud. "
    "Answer in one to three short spoken sentences. Use plain words: no lists, no markdown, no emoji."
)


@dataclasses.dataclass(frozen=True)
class LlmConfig:
    backend: str = "llamacpp"
    # A GGUF file; empty = the embedded SmolLM2-135M-Instruct (Q4_1).
    model: str = ""
    context_length: int = 2048
    max_tokens: int = 96
    temperature: float = 0.3
    top_p: float = 0.9
    # The persona used when a request carries no system message.
    system_prompt: str = DEFAULT_PERSONA
    # Requests that may wait for the model; beyond this RESOURCE_EXHAUSTED.
    max_waiting: int = 16
    max_messages: int = 256
    max_message_chars: int = 8000

    def __post_init__(self) -> None:
        require(self.backend in {"llamacpp"}, f"TALKER_LLM_BACKEND={self.backend!r}: supported: llamacpp")
        require(256 <= self.context_length <= 131072,
                f"TALKER_LLM_CONTEXT_LENGTH={self.context_length}: must be 256..131072")
        require(1 <= self.max_tokens < self.context_length,
                f"TALKER_LLM_MAX_TOKENS={self.max_tokens}: must be 1..context_length-1")
        require(0.0 <= self.temperature <= 2.0, f"TALKER_LLM_TEMPERATURE={self.temperature}: must be 0..2")
        require(0.0 < self.top_p <= 1.0, f"TALKER_LLM_TOP_P={self.top_p}: must be in (0, 1]")
        require(0 <= self.max_waiting <= 10000, f"TALKER_LLM_MAX_WAITING={self.max_waiting}: must be 0..10000")
