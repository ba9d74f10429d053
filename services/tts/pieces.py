"""Cutting text into the pieces a whole-utterance voice synthesizes one at a time.

VITS voices (Piper, Coqui VITS) turn a whole utterance into audio in one call, so
the first audio of a long sentence would only leave once the whole sentence is
done. Long sentences are therefore cut at clause boundaries (commas, semicolons,
colons, dashes), and a clause that is still too long between words. Sentences of
ordinary length are never cut: their prosody stays whole.
"""

from __future__ import annotations

import re

# A sentence ends at . ! ? … (with closing quotes/brackets) followed by white space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)\]])\s+|\s*\n\s*")
# A clause ends after , ; : followed by space, or after a dash (spaced, or an em/en dash between words).
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|(?<=\s[—–-])\s+|(?<=\w[—–])(?=\w)")

# A piece shorter than this is merged with its neighbour rather than spoken alone.
MIN_PIECE_CHARS = 16


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


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
    for clause in _CLAUSE_END.split(sentence):
        clause = clause.strip()
        if not clause:
            continue
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
