"""The end-of-turn state machine on made-up VAD probabilities (the models are tested in tests/system)."""

from services.asr.config import AsrConfig
from services.asr.endpointing import SEMANTIC, SILENCE_CAP, STREAM_END, Check, Ended, Endpointer, Pauses, Started

FRAME = 0.032
CONFIG = AsrConfig(speech_start_seconds=0.2, pause_seconds=0.2, silence_cap_seconds=1.0, completion_threshold=0.7,
                   sure_threshold=0.9, late_pause_seconds=0.5)


def feed(ep: Endpointer, probability: float, seconds: float) -> list:
    return [e for e in (ep.feed(probability) for _ in range(round(seconds / FRAME))) if e is not None]


def test_a_cough_starts_no_turn():
    ep = Endpointer(CONFIG, FRAME)
    assert feed(ep, 0.9, 0.1) + feed(ep, 0.0, 1.0) + feed(ep, 0.9, 0.1) == []
    assert not ep.speaking


def test_a_gap_between_words_does_not_restart_the_count():
    ep = Endpointer(CONFIG, FRAME)
    feed(ep, 0.0, 0.32)
    # "What" (4 frames of speech), 3 frames below the threshold, then "colour": the 0.2 s (6 frames) of
    # speech are complete 2 frames into the second word, and the turn starts at the first.
    events = feed(ep, 0.9, 0.128) + feed(ep, 0.2, 0.096) + feed(ep, 0.9, 0.064)
    assert events == [Started(start=10)]
    # A longer gap starts the count again: two bursts of 4 frames with 0.16 s between them start nothing.
    ep = Endpointer(CONFIG, FRAME)
    assert feed(ep, 0.9, 0.128) + feed(ep, 0.2, 0.16) + feed(ep, 0.9, 0.128) == []


def test_speech_starts_a_turn_where_it_began():
    ep = Endpointer(CONFIG, FRAME)
    feed(ep, 0.0, 0.32)
    events = feed(ep, 0.9, 0.5)
    assert events == [Started(start=10)]


def test_complete_utterance_ends_at_the_pause():
    ep = Endpointer(CONFIG, FRAME)
    feed(ep, 0.9, 1.0)
    events = feed(ep, 0.0, 0.2)
    assert events == [Check(speech_end=31)]
    ended = ep.verdict(0.95)
    assert ended == Ended(SEMANTIC, start=0, speech_end=31, decided_at=37, probability=0.95)
    assert not ep.speaking


def test_incomplete_utterance_waits_and_speech_resumes():
    ep = Endpointer(CONFIG, FRAME)
    feed(ep, 0.9, 1.0)
    assert isinstance(feed(ep, 0.0, 0.3)[0], Check)
    assert ep.verdict(0.5) is None
    assert feed(ep, 0.0, 0.1) == []          # a 400 ms pause in all
    assert feed(ep, 0.9, 0.5) == []          # the same turn goes on
    assert isinstance(feed(ep, 0.0, 0.3)[0], Check)  # a new pause, a new check


def test_silence_cap_ends_an_incomplete_turn():
    ep = Endpointer(CONFIG, FRAME)
    feed(ep, 0.9, 1.0)
    feed(ep, 0.0, 0.3)
    ep.verdict(0.1)
    events = feed(ep, 0.0, 1.0)
    assert [e.reason for e in events] == [SILENCE_CAP]
    assert events[0].decided_at - events[0].speech_end == round(1.0 / FRAME)


def test_hysteresis_keeps_soft_speech_in_the_turn():
    ep = Endpointer(CONFIG, FRAME)
    feed(ep, 0.9, 0.5)
    assert feed(ep, 0.4, 2.0) == []          # below the start threshold, above the stop one


def test_without_the_semantic_check_only_the_cap_ends_turns():
    ep = Endpointer(AsrConfig(semantic_turn=False), FRAME)
    feed(ep, 0.9, 0.5)
    assert [type(e) for e in feed(ep, 0.0, 1.1)] == [Ended]


def test_stream_end_closes_a_turn_in_progress():
    ep = Endpointer(CONFIG, FRAME)
    assert ep.close() is None
    feed(ep, 0.9, 0.5)
    assert ep.close().reason == STREAM_END


def test_a_transcript_cut_off_at_a_pause_reads_unfinished():
    from services.asr.endpointing import unfinished

    assert unfinished("I would like to know the capital of...")
    assert unfinished("I would like to know the capital of")
    assert unfinished("Tell me about the")
    assert unfinished("")
    assert not unfinished("What is the capital of France?")
    assert not unfinished("France.")
    assert not unfinished("Je voudrais savoir la capitale de la", language="fr")  # the word list is English


def test_a_likely_complete_utterance_ends_after_the_late_pause_unless_speech_resumes():
    ep = Endpointer(CONFIG, FRAME)
    feed(ep, 0.9, 1.0)
    feed(ep, 0.0, 0.2)
    assert ep.verdict(0.8) is None
    events = feed(ep, 0.0, 0.4)
    assert [(e.reason, e.decided_at - e.speech_end, e.probability) for e in events] == [(SEMANTIC, 16, 0.8)]
    # The same verdict, then the user goes on: no end at the late pause.
    feed(ep, 0.9, 1.0)
    feed(ep, 0.0, 0.2)
    ep.verdict(0.8)
    assert feed(ep, 0.0, 0.1) + feed(ep, 0.9, 0.3) + feed(ep, 0.0, 0.15) == []


def test_push_to_talk_pauses_are_found_once_each_after_speech():
    pauses = Pauses(CONFIG, FRAME)
    fired = lambda probability, seconds: [pauses.feed(probability) for _ in range(round(seconds / FRAME))]  # noqa: E731
    assert not any(fired(0.0, 1.0))          # silence before any speech is no pause
    assert pauses.speech_end is None
    assert not any(fired(0.9, 0.64))         # speech: frames 32..51
    assert pauses.speech_end == 51
    assert fired(0.0, 0.64).count(True) == 1  # one pause, once it has lasted pause_seconds
    assert pauses.pos == 71
    fired(0.4, 0.032)                         # a soft word ending (above threshold - 0.15) is speech
    assert pauses.speech_end == 72
    assert fired(0.0, 0.32).index(True) == 5  # the next pause fires 6 frames (0.2 s) after it
