import pytest

from services.common.segments import has_words
from services.tts.speakable import speakable


def test_markdown_is_removed_and_words_kept():
    assert speakable("**Hello** _there_, see [the docs](http://x.io).") == "Hello there, see the docs."
    assert speakable("# Title\n- first item\n- second item") == "Title. first item. second item"
    assert speakable("Use `make demo` now") == "Use make demo now"
    assert speakable("```python\nprint(1)\n```") == "print(1)"
    assert speakable("Line one\n\n---\n\nLine two") == "Line one. Line two"
    assert speakable("| a | b |\n|---|---|\n| 1 | 2 |") == "a, b. 1, 2"
    assert speakable("Use <b>bold</b> here ![logo](x.png)") == "Use bold here logo"
    assert speakable("snake_case stays") == "snake_case stays"
    assert speakable("> quoted\n1. First\n2. Second") == "quoted. First. Second"


def test_urls_and_emoji_are_removed_numbers_and_punctuation_kept():
    assert speakable("It costs $3.50 😀, see https://example.com/a?b=c now!") == "It costs $3.50, see now!"
    assert speakable("Great 👍🏽 job ❤️") == "Great job"
    assert speakable("🇫🇷 France, www.example.org") == "France,"
    assert speakable("Pi is 3.14, and 50% of 1,000 is 500!") == "Pi is 3.14, and 50% of 1,000 is 500!"
    assert speakable("It is 20°C — warm (really)?") == "It is 20°C — warm (really)?"
    assert speakable("x < y and 2 + 2 = 4") == "x < y and 2 + 2 = 4"


@pytest.mark.parametrize("text", ["😀😀 🎉", "👍🏽", "👨‍👩‍👧", "❤️🔥", "https://example.com", "**", "---", "  \n "])
def test_nothing_speakable(text):
    assert not has_words(speakable(text))


def test_has_words():
    assert has_words("ok") and has_words("42") and not has_words(" .,!")
