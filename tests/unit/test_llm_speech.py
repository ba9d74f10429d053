"""The sentence budget, repetition detection and the answer benchmark's spoken-form checks."""

from __future__ import annotations

import pytest

from bench.answer_set import ITEMS
from bench.answers import correct, spoken_form
from services.llm.speech import SentenceBudget, repeated_phrase
from talker.v1 import llm_pb2


def stream(budget: SentenceBudget, text: str, step: int = 3) -> str:
    out = ""
    for i in range(0, len(text), step):
        out += budget.feed(text[i:i + step])
        if budget.cut:
            break
    return out


@pytest.mark.parametrize("step", [1, 3, 7, 100])
def test_budget_cuts_at_the_end_of_the_last_allowed_sentence(step):
    budget = SentenceBudget(2)
    text = 'Dr. Smith is 3.5 m tall. He said "hi!" Then he left. And came back.'
    assert stream(budget, text, step) == 'Dr. Smith is 3.5 m tall. He said "hi!"'
    assert budget.cut and budget.sentences() == 2


def test_blank_lines_are_not_sentences_of_the_budget():
    budget = SentenceBudget(2)
    assert stream(budget, "Sure! Here is one:\n\nOnce upon a time. The end.", 2) == "Sure! Here is one:\n"
    assert budget.sentences() == 2


def test_budget_never_cuts_mid_word_and_zero_means_none():
    budget = SentenceBudget(3)
    assert stream(budget, "One. Two. Three") == "One. Two. Three"  # the third end is not certain yet
    assert not budget.cut
    unlimited = SentenceBudget(0)
    text = "One. Two. Three. Four. Five."
    assert stream(unlimited, text) == text and not unlimited.cut and unlimited.sentences() == 5


def test_repeated_phrase_finds_a_loop_and_not_a_plain_reply():
    assert repeated_phrase("The sun's rays are a beautiful sight. The sun's rays are a beautiful sight.") \
        == "the sun's rays are"
    assert repeated_phrase("Paris is the capital of France. It is on the Seine.") is None


@pytest.mark.parametrize("text, problem", [
    ("", "empty"),
    ("One. Two. Three. Four.", "4 sentences"),
    ("Try this: * a warm bath", "markup"),
    ("Steps:\n1. Mix it", "markup"),
    ("Use `ls` here.", "markup"),
    ("Have a great day 😊", "emoji"),
    ("I love it and I love it and I love it.", "repeats"),
])
def test_spoken_form_flags_what_should_not_be_spoken(text, problem):
    assert any(problem in p for p in spoken_form(text)), spoken_form(text)


def test_spoken_form_passes_a_good_reply_and_flags_a_reply_cut_by_max_tokens():
    good = "The sky looks blue because air scatters blue light more than red. That is Rayleigh scattering."
    assert spoken_form(good) == []
    assert spoken_form("The sky looks blue because", finish=llm_pb2.FINISH_REASON_LENGTH) == \
        ["cut mid-sentence (max_tokens)"]


def test_answer_set_is_large_varied_and_its_checks_score_answers():
    assert len(ITEMS) >= 40
    assert {i.kind for i in ITEMS} == {"fact", "how-why", "advice", "small-talk", "follow-up", "decline"}
    assert {i.kind for i in ITEMS if i.quick} == {i.kind for i in ITEMS}
    capital = ITEMS[0]
    assert correct(capital, "The capital of France is Paris.")
    assert not correct(capital, "Le Grand Paris is the capital of France.")
    assert not correct(capital, "It is Lyon.")
    assert all(len(i.turns) % 2 == 1 for i in ITEMS)  # every conversation ends with the user
