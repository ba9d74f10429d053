"""Text an LLM writes, made fit to be spoken: no markdown, emoji or URLs."""

from __future__ import annotations

import re
import unicodedata

_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_CODE = re.compile(r"`{1,3}([^`]*)`{1,3}")
# Emphasis markers hug their text and never sit inside a word (snake_case stays).
_MD_EMPH = re.compile(r"(?<!\w)(\*{1,3}|_{1,3}|~~)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_MD_LINE = re.compile(r"^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)", re.MULTILINE)
_SPACES = re.compile(r"\s+")


def _is_pictograph(ch: str) -> bool:
    cat = unicodedata.category(ch)
    # So = emoji and pictographs; Cs/Co/Cn = surrogates, private use, unassigned;
    # variation selectors and the zero-width joiner glue emoji sequences together.
    return cat in {"So", "Cs", "Co", "Cn"} or ch in "\u200d\ufe0e\ufe0f" or "\U0001f3fb" <= ch <= "\U0001f3ff"


def speakable(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _MD_CODE.sub(r"\1", text)
    text = _MD_EMPH.sub(r"\2", text)
    text = _MD_LINE.sub("", text)
    text = "".join(" " if _is_pictograph(ch) else ch for ch in text)
    text = text.replace("*", " ").replace("#", " ")
    return _SPACES.sub(" ", text).strip()


def has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)
