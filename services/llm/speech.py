"""What makes a reply good to hear: the sentence budget the service enforces, and repetition.

A reply is spoken, so it ends at a sentence end: the budget stops generation once the reply
has its last allowed sentence, and cuts exactly there (the sentence's end is only certain when
the whitespace after it arrives, so nothing past it has been streamed yet).
"""

from __future__ import annotations

import re

from services.common.segments import sentence_ends, sentences

_WORD = re.compile(r"[\w']+")


class SentenceBudget:
    """Feed the reply's text pieces; get back what may be streamed, and whether to stop."""

    def __init__(self, max_sentences: int):
        self.max_sentences = max_sentences  # 0 = no budget
        self.text = ""
        self.streamed = 0
        self.cut = False

    def feed(self, piece: str) -> str:
        if self.cut:
            return ""
        self.text += piece
        if self.max_sentences:
            ends = _full_sentence_ends(self.text)
            if len(ends) >= self.max_sentences:
                self.cut = True
                self.text = self.text[:ends[self.max_sentences - 1]]
        out, self.streamed = self.text[self.streamed:], len(self.text)
        return out

    def sentences(self) -> int:
        return len(sentences(self.text))


def _full_sentence_ends(text: str) -> list[int]:
    """Sentence ends that close words (a blank line is a line-break end with nothing before it)."""
    out, start = [], 0
    for end in sentence_ends(text):
        if text[start:end].strip():
            out.append(end)
        start = end
    return out


def repeated_phrase(text: str, words: int = 4) -> str | None:
    """The first run of ``words`` words that occurs twice in ``text`` (a looping reply), else None."""
    tokens = [w.lower() for w in _WORD.findall(text)]
    seen = set()
    for i in range(len(tokens) - words + 1):
        gram = tuple(tokens[i:i + words])
        if gram in seen:
            return " ".join(gram)
        seen.add(gram)
    return None
