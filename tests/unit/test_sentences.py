from gateway.sentences import SentenceSplitter, speakable_piece


def split_stream(text: str, step: int = 3, **kw) -> list[str]:
    s = SentenceSplitter(**kw)
    out = []
    for i in range(0, len(text), step):
        out += s.feed(text[i:i + step])
    return out + s.flush()


def test_sentences_are_cut_as_they_complete():
    s = SentenceSplitter()
    assert s.feed("Hello there") == []
    assert s.feed(". How") == ["Hello there."]
    assert s.feed(" are you?") == []  # the end is only sure once the next character arrives
    assert s.feed(" Fine") == ["How are you?"]
    assert s.flush() == ["Fine"]


def test_abbreviations_initials_and_decimals_do_not_end_a_sentence():
    text = "Dr. Smith met J. R. Tolkien at 3.5 p.m. on Main St. in town. Then they left."
    assert split_stream(text) == ["Dr. Smith met J. R. Tolkien at 3.5 p.m. on Main St. in town.", "Then they left."]


def test_punctuation_runs_and_quotes_stay_with_their_sentence():
    assert split_stream('Really?! "Yes." Okay... fine') == ["Really?!", '"Yes."', "Okay...", "fine"]


def test_a_long_first_sentence_is_cut_at_a_clause():
    text = "When the sun goes down over the quiet harbour, the boats come home, and the town lights up."
    pieces = split_stream(text)
    assert pieces[0] == "When the sun goes down over the quiet harbour,"
    assert " ".join(pieces) == text


def test_later_sentences_are_cut_at_clauses_only_when_long():
    text = "Hi. Short one, with a comma. " + "word " * 60 + "end."
    pieces = split_stream(text)
    assert pieces[:2] == ["Hi.", "Short one, with a comma."]
    assert all(len(p) <= 250 for p in pieces)
    assert " ".join(pieces) == " ".join(text.split())


def test_nothing_is_lost_or_reordered():
    text = "One. Two, three; four: five! Six? Seven"
    assert " ".join(split_stream(text, step=1)) == text


def test_speakable_piece():
    assert speakable_piece("Hi.") and speakable_piece("42")
    assert not speakable_piece("...") and not speakable_piece("😀 !")
