"""Cutting a token stream into speakable pieces as soon as each is complete.

TTS can start on a sentence only once it is whole; the first piece of a reply
is also cut at a clause boundary when it grows long, so the voice starts early.
"""

from __future__ import annotations

import re

from services.common.sentences import END as _END
from services.common.sentences import is_abbreviation as _is_abbreviation

_CLAUSE = re.compile(r"[,;:\u2014](?=\s)")


class SentenceSplitter:
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

    def _take(self, end: int) -> str:
        piece, self.buffer = self.buffer[:end].strip(), self.buffer[end:].lstrip()
        self.emitted += 1
        return piece

    def _cut(self) -> str | None:
        buf = self.buffer
        for m in _END.finditer(buf):
            if not _is_abbreviation(buf, m.end()) and buf[: m.end()].strip():
                return self._take(m.end())
        limit = self.first_clause_chars if self.emitted == 0 else self.clause_chars
        if len(buf) >= limit:
            clauses = [m.end() for m in _CLAUSE.finditer(buf) if m.end() >= limit // 2]
            if clauses:
                return self._take(clauses[-1])
        if len(buf) > self.max_chars:
            space = buf.rfind(" ", 0, self.max_chars)
            return self._take(space if space > 0 else self.max_chars)
        return None


def speakable_piece(text: str) -> bool:
    """Pieces with no letters or digits (a lone emoji, '...') are not sent to TTS."""
    return any(ch.isalnum() for ch in text)
