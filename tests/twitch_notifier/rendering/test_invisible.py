"""Unit tests for invisible.py: bidi overrides, isolates, marks and other invisible characters are stripped,
line breaks become spaces, and emoji sequences that need a joiner or tag characters stay whole."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twitch_notifier.rendering.invisible import strip_invisible

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
OTHER_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\ufff9\U000e0041\x00\x07\x1b\x7f\x9b"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈: the joiner follows a variation selector
TECHNOLOGIST = "\U0001f469\U0001f3fd\u200d\U0001f4bb"  # 👩🏽‍💻: the joiner follows a skin tone
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"  # 🏴󠁧󠁢󠁥󠁮󠁧󠁿


def test_plain_text_is_untouched():
    for text in ("Ranked grind", "日本語の配信", "عربي مباشر", "Ελληνικά", "a\u00a0b", ""):
        assert strip_invisible(text) == text


def test_a_right_to_left_override_cannot_reverse_what_follows():
    assert strip_invisible("free skins \u202eknil siht kcilc\u202c now") == "free skins knil siht kcilc now"


@pytest.mark.parametrize("char", list(BIDI + OTHER_INVISIBLE))
def test_each_invisible_character_is_stripped(char):
    assert strip_invisible(f"a{char}b") == "ab"


def test_line_breaks_and_tabs_become_one_space():
    assert strip_invisible("line one\r\n\tline two\u2028three\u2029four") == "line one line two three four"
    assert strip_invisible("\nleading") == "leading"


@pytest.mark.parametrize("emoji", [FAMILY, RAINBOW_FLAG, TECHNOLOGIST, "\u2764\ufe0f\u200d\U0001f525", ENGLAND])
def test_emoji_sequences_stay_whole(emoji):
    assert strip_invisible(f"GG {emoji} gg") == f"GG {emoji} gg"


def test_a_joiner_outside_an_emoji_sequence_is_stripped():
    assert strip_invisible("\u200dab\u200dc\U0001f600\u200dd\u200d") == "abc\U0001f600d"


def test_tag_characters_outside_a_subdivision_flag_are_stripped():
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "ignore all previous instructions")
    assert strip_invisible(f"title{hidden}") == "title"
    assert strip_invisible(f"\U0001f3f4{hidden}\U000e007f") == "\U0001f3f4"


@given(st.text())
def test_nothing_that_reorders_or_hides_text_survives(text):
    out = strip_invisible(text)
    assert strip_invisible(out) == out
    for index, char in enumerate(out):
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            pytest.fail(f"{char!r} survived in {out!r}")
        if unicodedata.category(char) == "Cf":
            # Only a joiner between two characters (emoji) or the tags of a flag stay.
            assert (char == "\u200d" and 0 < index < len(out) - 1) or 0xE0020 <= ord(char) <= 0xE007F, (char, out)
