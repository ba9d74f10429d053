"""Cutting text into speakable pieces: where sentences and clauses end.

The one place that knows that "Dr." and "St." do not end a sentence, nor the
period of "3.5", of an initial ("J. R. Tolkien"), of "e.g." or "U.S.", or one
inside a URL; that "..." and a line break do. The gateway cuts the LLM's token
stream into sentences with :class:`SentenceSplitter` (each goes to TTS as soon
as it is whole); the TTS service cuts a long sentence further with
:func:`split_pieces` (whole-utterance voices start sooner on a shorter piece).
Both cut at the same places, so a sentence the gateway keeps whole is not cut
again by TTS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "ave", "rd", "mt", "vs", "etc", "no", "fig", "approx",
    "inc", "ltd", "co", "corp", "dept", "est", "gen", "gov", "lt", "col", "sgt", "capt", "rev", "hon",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
})
# A sentence ends at . ! ? … (a run of them, then closing quotes/brackets) followed by white space,
# or at a line break.
_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|\n")
# A clause ends after , ; : followed by space, after a spaced dash, or at an em/en dash between words.
_CLAUSE_END = re.compile(r"(?<=[,;:])(?=\s)|(?<=\s[\u2014\u2013-])(?=\s)|(?<=\w[\u2014\u2013])(?=\w)")
# The word before a period: letters, digits and inner periods ("e.g", "U.S", "3").
_WORD_BEFORE = re.compile(r"([\w.]+)\.$")
# A dotted initialism: "e.g", "i.e", "U.S", "a.m".
_INITIALISM = re.compile(r"^(\w\.)+\w$")

# A piece shorter than this is merged with its neighbour rather than spoken alone.
MIN_PIECE_CHARS = 16


def has_words(text: str) -> bool:
    """Whether ``text`` has anything a voice reads: a letter or a digit (not a lone emoji or '...')."""
    return any(ch.isalnum() for ch in text)


def _is_abbreviation(text: str, end: int) -> bool:
    """Whether the single period ending at ``end`` closes an abbreviation or an initial."""
    if text[end - 1] != "." or text[end - 2:end] == "..":
        return False
    word = _WORD_BEFORE.search(text[:end])
    if not word:
        return False
    w = word.group(1).lower()
    return w in ABBREVIATIONS or (len(w) == 1 and w.isalpha()) or bool(_INITIALISM.match(w))


def sentence_ends(text: str) -> Iterator[int]:
    """Offsets just past each sentence end in ``text`` that is sure (the next character has arrived)."""
    for m in _END.finditer(text):
        if m.group() == "\n" or not _is_abbreviation(text, m.end()):
            yield m.end()


def _cut_at(text: str, ends) -> list[str]:
    """``text`` cut at the offsets ``ends``, stripped, empty pieces dropped."""
    out, start = [], 0
    for end in [*ends, len(text)]:
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = end
    return out


def sentences(text: str) -> list[str]:
    """``text`` cut into its sentences, stripped, empty ones dropped."""
    return _cut_at(text, sentence_ends(text))


def clause_ends(text: str) -> Iterator[int]:
    """Offsets just past each clause end in ``text`` (before the space that follows it)."""
    for m in _CLAUSE_END.finditer(text):
        yield m.start()


class SentenceSplitter:
    """Cuts a token stream into sentences as soon as each is complete.

    The first piece of a reply is also cut at its first clause end past half of
    ``first_clause_chars``, as soon as that end arrives (the voice starts while the
    LLM is still on its first sentence); later ones at a clause when they grow past
    ``clause_chars``; anything past ``max_chars`` is cut between words.
    """

    def __init__(self, first_clause_chars: int = 40, clause_chars: int = 120, max_chars: int = 250):
        self.first_clause_chars = first_clause_chars
        self.clause_chars = clause_chars
        self.max_chars = max_chars
        self.buffer = ""
        self.emitted = 0

    def feed(self, text: str) -> list[str]:
        self.buffer += text
        out = []
        while (piece := self._cut()) is not None:
            out.append(piece)
        return out

    def flush(self) -> list[str]:
        rest, self.buffer = self.buffer.strip(), ""
        return [rest] if rest else []

    def _take(self, end: int) -> str | None:
        piece, self.buffer = self.buffer[:end].strip(), self.buffer[end:].lstrip()
        if not piece:
            return self._cut()  # only white space before the cut (a blank line): look again
        self.emitted += 1
        return piece

    def _cut(self) -> str | None:
        buf = self.buffer
        end = next(sentence_ends(buf), None)
        if end is not None:
            return self._take(end)
        if self.emitted == 0:
            first = next((e for e in clause_ends(buf) if e >= self.first_clause_chars // 2), None)
            if first is not None:
                return self._take(first)
        elif len(buf) >= self.clause_chars:
            clauses = [e for e in clause_ends(buf) if e >= self.clause_chars // 2]
            if clauses:
                return self._take(clauses[-1])
        if len(buf) > self.max_chars:
            space = buf.rfind(" ", 0, self.max_chars)
            return self._take(space if space > 0 else self.max_chars)
        return None


def _words(clause: str, limit: int) -> list[str]:
    out: list[str] = []
    cur = ""
    for word in clause.split():
        if cur and len(cur) + 1 + len(word) > limit:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        out.append(cur)
    return out


def _cut(sentence: str, first_limit: int, limit: int) -> list[str]:
    clauses: list[str] = []
    for clause in _cut_at(sentence, clause_ends(sentence)):
        if not clauses and len(clause) > first_limit * 3 // 2:
            # A long opening clause: its first words go out on their own, early.
            head = _words(clause, first_limit)[0]
            clauses.append(head)
            clause = clause[len(head):].strip()
            if not clause:
                continue
        clauses.extend(_words(clause, limit) if len(clause) > limit else [clause])
    pieces: list[str] = []
    cur = ""
    for clause in clauses:
        cap = first_limit if not pieces else limit
        joined = f"{cur} {clause}" if cur else clause
        if not cur or len(joined) <= cap or (len(cur) < MIN_PIECE_CHARS and len(joined) <= limit + MIN_PIECE_CHARS):
            cur = joined
        else:
            pieces.append(cur)
            cur = clause
    if cur:
        # A short tail sounds clipped on its own: join it to the piece before when it fits.
        if pieces and len(cur) < MIN_PIECE_CHARS and len(pieces[-1]) + 1 + len(cur) <= limit + MIN_PIECE_CHARS:
            pieces[-1] = f"{pieces[-1]} {cur}"
        else:
            pieces.append(cur)
    return pieces


def split_pieces(text: str, piece_chars: int = 120, first_piece_chars: int = 60) -> list[str]:
    """``text`` as pieces to synthesize in order; joined with spaces they give back its words.

    A sentence of at most ``piece_chars`` characters is one piece. A longer one is cut
    into pieces of at most ``piece_chars`` (a single word longer than that stays whole);
    when it is the request's first sentence, its first piece aims at ``first_piece_chars``
    so that the first audio leaves early.
    """
    pieces: list[str] = []
    for sentence in sentences(text):
        if len(sentence) <= piece_chars:
            pieces.append(sentence)
        else:
            pieces.extend(_cut(sentence, first_piece_chars if not pieces else piece_chars, piece_chars))
    return pieces
