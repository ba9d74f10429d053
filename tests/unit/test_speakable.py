from services.tts.speakable import has_words, speakable


def test_markdown_is_removed_and_words_kept():
    assert speakable("**Hello** _there_, see [the docs](http://x.io).") == "Hello there, see the docs."
    assert speakable("# Title\n- first item\n- second item") == "Title first item second item"
    assert speakable("Use `make demo` now") == "Use make demo now"


def test_urls_and_emoji_are_removed_numbers_and_punctuation_kept():
    assert speakable("It costs $3.50 😀, see https://example.com/a?b=c now!") == "It costs $3.50 , see now!"
    assert speakable("Great 👍🏽 job ❤️") == "Great job"


def test_has_words():
    assert has_words("ok") and not has_words(speakable("😀😀 🎉"))
