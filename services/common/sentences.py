"""Where sentences end in a stream of text: shared by the gateway (which cuts a reply
into pieces for TTS) and the LLM service (which stops a reply at its sentence budget)."""

from __future__ import annotations

import re

ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "fig", "approx",
    "inc", "ltd", "a.m", "p.m", "co", "mt",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}
# A run of terminal punctuation (and closing quotes/brackets) followed by whitespace: the end is only
# sure once the next character arrives (3.5, "e.g." and "..." mid-sentence are not ends).
END = re.compile(r"[.!?\u2026]+[\"')\]]*(?=\s)")


def is_abbreviation(text: str, end: int) -> bool:
    """Whether the period ending at ``end`` closes an abbreviation or an initial."""
    if text[end - 1] != ".":
        return False
    word = re.search(r"([\w.]+)\.$", text[:end])
    if not word:
        return False
    w = word.group(1).lower()
    return w in ABBREVIATIONS or (len(w) == 1 and w.isalpha())


def sentence_ends(text: str) -> list[int]:
    """Offsets just past each sentence end that is certain in ``text`` (followed by whitespace)."""
    return [m.end() for m in END.finditer(text) if not is_abbreviation(text, m.end()) and text[:m.end()].strip()]


def split_sentences(text: str) -> list[str]:
    """A finished text as its sentences (the tail after the last end counts as one)."""
    out, start = [], 0
    for end in sentence_ends(text + " "):
        if piece := text[start:end].strip():
            out.append(piece)
        start = end
    if tail := text[start:].strip():
        out.append(tail)
    return out
