"""llama.cpp context states kept per prompt prefix, so that alternating conversations do not evict
each other's prefix.

llama.cpp holds one context: its own prefix reuse only helps the conversation that ran last. After
each generation the context state (the KV cache of prompt + reply) is saved in llama-cpp-python's
``LlamaRAMCache`` (LRU, bounded in bytes); before the next one, the saved state with the longest
common prefix is restored when it shares more of the prompt than the live context does. Only the KV
state is kept: llama-cpp-python's ``save_state`` also copies the logits buffer (n_batch x vocab
floats, ~155 MB for Qwen), which a restored state never needs (generation re-evaluates a token
before sampling).
"""

from __future__ import annotations

import ctypes

import numpy as np


class PrefixCache:
    def __init__(self, capacity_bytes: int):
        from llama_cpp.llama_cache import LlamaRAMCache

        self.states = LlamaRAMCache(capacity_bytes=capacity_bytes)

    def restore(self, llm, tokens: list[int]) -> int:
        """Load the saved state that shares the longest prefix with `tokens`, when it shares more than
        the live context does. Returns the number of prompt tokens the restored state covers (0: none)."""
        from llama_cpp import Llama

        try:
            state = self.states[tokens]
        except KeyError:
            return 0
        saved = Llama.longest_token_prefix(state.input_ids[:state.n_tokens].tolist(), tokens)
        live = Llama.longest_token_prefix(llm.input_ids[:llm.n_tokens].tolist(), tokens)
        if saved <= live:
            return 0
        llm.load_state(state)
        return saved

    def save(self, llm) -> None:
        """Keep the live context's state, keyed by the tokens it holds."""
        import llama_cpp
        from llama_cpp.llama import LlamaState

        if llm.n_tokens == 0:
            return
        ctx = llm._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buffer = (ctypes.c_uint8 * size)()
        n_bytes = llama_cpp.llama_state_get_data(ctx, buffer, size)
        state = LlamaState(input_ids=llm.input_ids.copy(), scores=np.zeros((1, llm.n_vocab()), dtype=np.single),
                           n_tokens=llm.n_tokens, llama_state=ctypes.string_at(buffer, n_bytes),
                           llama_state_size=n_bytes, seed=llm._seed)
        self.states[llm.input_ids[:llm.n_tokens].tolist()] = state
