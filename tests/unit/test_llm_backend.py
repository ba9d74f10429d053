"""The LLM backends' shared logic: token-exact history trimming, stop sequences, config."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, from_env
from services.llm.backend import PromptTooLong, StopMatcher, fit_to_context
from services.llm.config import LlmConfig


def render(messages):
    """A stand-in chat template: 3 tokens of framing per message, one per word, 2 for the prompt."""
    out = []
    for m in messages:
        out += [1, 2, 3] + [7] * len(m["content"].split())
    return [*out, 9, 9]


def conversation(turns: int, words: int = 10) -> list[dict]:
    msgs = [{"role": "system", "content": "persona " * 5}]
    for i in range(turns):
        msgs.append({"role": "user", "content": f"question {i} " + "w " * words})
        msgs.append({"role": "assistant", "content": f"answer {i} " + "w " * words})
    msgs.append({"role": "user", "content": "last question"})
    return msgs


def test_fits_without_trimming():
    msgs = conversation(2)
    p = fit_to_context(msgs, 10, 1000, render)
    assert p.dropped_messages == 0 and p.tokens == render(msgs)


@pytest.mark.parametrize("context", [200, 300, 512, 1000])
def test_trims_oldest_turns_token_exact(context):
    msgs = conversation(50)
    p = fit_to_context(msgs, 50, context, render)
    assert len(p.tokens) + 50 <= context
    kept = msgs[:1] + msgs[1 + p.dropped_messages:]
    assert p.tokens == render(kept)
    assert kept[0]["role"] == "system" and kept[1]["role"] == "user"  # whole turns dropped
    assert kept[-1]["content"] == "last question"
    # Maximal: keeping one more turn would not fit.
    if p.dropped_messages >= 2:
        longer = msgs[:1] + msgs[1 + p.dropped_messages - 2:]
        assert len(render(longer)) + 50 > context


def test_without_system_message():
    msgs = conversation(30)[1:]
    p = fit_to_context(msgs, 20, 150, render)
    assert len(p.tokens) + 20 <= 150
    assert p.tokens == render(msgs[p.dropped_messages:])
    assert msgs[p.dropped_messages]["role"] == "user"


def test_too_long_even_alone():
    msgs = [{"role": "system", "content": "x " * 100}, {"role": "user", "content": "y " * 100}]
    with pytest.raises(PromptTooLong, match="context window of 150"):
        fit_to_context(msgs, 10, 150, render)


def feed_all(stops, chunks):
    m = StopMatcher(stops)
    out = "".join(m.feed(c) for c in chunks)
    return out + m.flush(), m.stopped


def test_stop_sequence_split_across_pieces():
    assert feed_all(["<|im_end|>"], ["Hello", " there<|im", "_end|> more"]) == ("Hello there", True)


def test_held_back_prefix_is_released_when_it_is_not_a_stop():
    m = StopMatcher(["STOP"])
    assert m.feed("abc ST") == "abc "
    assert m.feed("AR") == "STAR"
    assert feed_all(["STOP"], ["no st", "op here ST"]) == ("no stop here ST", False)


def test_earliest_of_several_stops():
    assert feed_all(["\n\n", "User:"], ["One. User: two\n\nthree"]) == ("One. ", True)


def test_config_backends_and_limits():
    assert from_env(LlmConfig, "TALKER_LLM_", env={"TALKER_LLM_BACKEND": "vllm"}).backend == "vllm"
    with pytest.raises(ConfigError, match="TALKER_LLM_BACKEND"):
        from_env(LlmConfig, "TALKER_LLM_", env={"TALKER_LLM_BACKEND": "tgi"})
    with pytest.raises(ConfigError, match="TALKER_LLM_MAX_TOKENS"):
        LlmConfig(max_tokens=4096, context_length=2048)
    with pytest.raises(ConfigError, match="TALKER_LLM_GPU_MEMORY_UTILIZATION"):
        LlmConfig(gpu_memory_utilization=1.5)
    with pytest.raises(ConfigError, match="TALKER_LLM_REPETITION_PENALTY"):
        from_env(LlmConfig, "TALKER_LLM_", env={"TALKER_LLM_REPETITION_PENALTY": "0.5"})
    with pytest.raises(ConfigError, match="TALKER_LLM_MAX_SENTENCES"):
        LlmConfig(max_sentences=-1)
    assert from_env(LlmConfig, "TALKER_LLM_", env={"TALKER_LLM_MAX_SENTENCES": "0"}).max_sentences == 0
