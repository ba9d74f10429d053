"""Text an LLM writes, made fit to be spoken: no markdown, emoji or URLs.

Numbers and punctuation stay (the voice reads "3.50", "50%" and pauses at commas);
markdown structure (headings, list items, table rows) becomes sentence breaks.
"""

from __future__ import annotations

import re

from services.common.segments import has_words

_URL = re.compile(r"(https?://|ftp://|www\.)\S+", re.IGNORECASE)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_FENCE = re.compile(r"^\s*(```|~~~)[^\n]*$", re.MULTILINE)
_MD_CODE = re.compile(r"`{1,3}([^`]*)`{1,3}")
# Emphasis markers hug their text and never sit inside a word (snake_case stays).
_MD_EMPH = re.compile(r"(?<!\w)(\*{1,3}|_{1,3}|~~)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_MD_LINE = re.compile(r"^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)", re.MULTILINE)
_MD_RULE = re.compile(r"^\s*([-*_]\s*){3,}$", re.MULTILINE)
_TABLE_RULE = re.compile(r"^\s*\|?(\s*:?-{2,}:?\s*\|)+\s*(:?-{2,}:?\s*)?\|?\s*$", re.MULTILINE)
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(\s[^<>]*)?/?>")
_SPACES = re.compile(r"[ \t\f\v]+")
_ENDS_CLAUSE = re.compile(r"[.!?,;:…]$")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?](?!\d))")

# Emoji and pictographs: the emoji blocks, dingbats and misc symbols, arrows used as emoji,
# regional indicators (flags), skin tones, keycap, variation selectors, ZWJ and tag characters.
# Symbols a voice reads (° % $ € © ™ + = <) are kept.
_EMOJI_RANGES = (
    (0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2B00, 0x2BFF), (0x2190, 0x21FF), (0x2300, 0x23FF),
    (0x25A0, 0x25FF), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3299), (0xE0000, 0xE007F),
    (0xFE00, 0xFE0F), (0x200D, 0x200D), (0x20E3, 0x20E3), (0xE000, 0xF8FF), (0xD800, 0xDFFF),
)


def _is_emoji(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _EMOJI_RANGES)


def _lines_to_sentences(text: str) -> str:
    """Join lines; a line (heading, list item, table row) that ends without punctuation gets a full stop."""
    out: list[str] = []
    for line in text.splitlines():
        line = _SPACES.sub(" ", line).strip()
        if not has_words(line):
            continue
        if out and not _ENDS_CLAUSE.search(out[-1]):
            out[-1] += "."
        out.append(line)
    return " ".join(out)


def speakable(text: str) -> str:
    """``text`` as a voice should read it."""
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = _MD_FENCE.sub("", text)
    text = _MD_CODE.sub(r"\1", text)
    text = _MD_EMPH.sub(r"\2", text)
    text = _TABLE_RULE.sub("", text)
    text = _MD_RULE.sub("", text)
    text = _MD_LINE.sub("", text)
    text = "".join(" " if _is_emoji(ch) else ch for ch in text)
    # Table cells become a list; stray markdown characters go.
    text = "\n".join(_table_row(line) for line in text.splitlines())
    text = text.replace("*", " ").replace("#", " ")
    return _SPACE_BEFORE_PUNCT.sub(r"\1", _lines_to_sentences(text))


def _table_row(line: str) -> str:
    if "|" not in line:
        return line
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return ", ".join(c for c in cells if c)
