"""Cutting long sentences into pieces for a fast first chunk, without cutting short ones."""

from services.tts.pieces import MIN_PIECE_CHARS, sentences, split_pieces

LONG = ("When the morning fog finally lifted over the harbour, the fishermen, who had waited since dawn, "
        "pushed their boats into the water — and for the first time in weeks, the whole village seemed to "
        "breathe again; children ran along the pier, shouting the names of the boats as they passed.")


def words(pieces):
    return " ".join(pieces).split()


def test_sentences():
    assert sentences("Hello there. How are you? Fine!\nNext line") == [
        "Hello there.", "How are you?", "Fine!", "Next line"]
    assert sentences('He said "stop!" Then left.') == ['He said "stop!"', "Then left."]
    assert sentences("Pi is 3.14 today.") == ["Pi is 3.14 today."]


def test_short_sentences_are_never_cut():
    text = "Hello, my friend. It is a fine day, isn't it? Yes, quite fine, thank you."
    assert split_pieces(text, 120, 60) == ["Hello, my friend.", "It is a fine day, isn't it?",
                                           "Yes, quite fine, thank you."]


def test_a_long_sentence_is_cut_at_clause_boundaries_and_keeps_its_words():
    pieces = split_pieces(LONG, 120, 60)
    assert len(pieces) >= 3
    assert words(pieces) == LONG.split()
    assert len(pieces[0]) <= 60, pieces[0]
    assert pieces[0].endswith(",")
    assert all(len(p) <= 120 + MIN_PIECE_CHARS for p in pieces), pieces
    # every cut is at a clause boundary here
    assert all(p[-1] in ",;—." for p in pieces), pieces


def test_only_the_first_piece_of_the_request_is_cut_short():
    pieces = split_pieces("Short one. " + LONG, 120, 60)
    assert pieces[0] == "Short one."
    assert words(pieces) == ("Short one. " + LONG).split()
    assert len(pieces[1]) > 60  # the long sentence is not the first: ordinary piece length


def test_a_long_clause_is_cut_between_words():
    text = " ".join(f"word{i}" for i in range(60)) + "."
    pieces = split_pieces(text, 120, 60)
    assert words(pieces) == text.split()
    assert len(pieces[0]) <= 60
    assert all(len(p) <= 120 for p in pieces)
    assert all(len(p) >= MIN_PIECE_CHARS for p in pieces)


def test_no_tiny_fragments():
    text = "Well, " + "this is a sentence that goes on for quite a while without a pause " * 2 + "at all, ok."
    pieces = split_pieces(text, 120, 60)
    assert words(pieces) == text.split()
    assert all(len(p) >= MIN_PIECE_CHARS for p in pieces), pieces


def test_a_huge_word_stays_whole():
    assert split_pieces("x" * 300, 120, 60) == ["x" * 300]
    assert split_pieces("", 120, 60) == []
