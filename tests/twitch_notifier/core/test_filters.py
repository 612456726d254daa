"""Title filters (core.filters): typed lists and regexes, whole-word Unicode matching, reruns, and the shapes of
regex that are refused because they could backtrack for long."""

from datetime import UTC, datetime

import pytest

from twitch_notifier.core import filters
from twitch_notifier.core.filters import (
    ExitReason,
    FilterError,
    apply_title_options,
    exit_reason,
    parse_phrases,
    stream_allows,
    title_allows,
    validate_regex,
)
from twitch_notifier.models import Category, LiveStream, TitleFilter

VALORANT = Category("516575", "VALORANT")


def live(title="Ranked grind", game_id="516575", stream_type="live"):
    return LiveStream(
        twitch_user_id="1",
        stream_id="10",
        title=title,
        game_name="VALORANT",
        viewer_count=5,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        thumbnail_url="",
        game_id=game_id,
        stream_type=stream_type,
    )


# -- typed lists ------------------------------------------------------------------------------------------


def test_phrases_are_trimmed_collapsed_and_deduplicated_ignoring_case():
    assert parse_phrases(" Giveaway ,just   chatting,, GIVEAWAY,\u200bdrops ") == ("Giveaway", "just chatting", "drops")


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        (" , ,", "at least one word"),
        ("x" * 61, "at most 60 characters"),
        (",".join(f"w{i}" for i in range(21)), "At most 20"),
    ],
)
def test_bad_phrase_lists_are_refused_in_words(typed, says):
    with pytest.raises(FilterError, match=says):
        parse_phrases(typed)


# -- whole words, case, Unicode ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Just Chatting with chat", True),
        ("JUST   CHATTING!", True),
        ("[just chatting]", True),
        ("justchatting", False),
        ("adjust chatting", False),
        ("just chattingly", False),
        ("just\u200b chatting", True),  # an invisible character does not hide the words
    ],
)
def test_include_matches_whole_words_and_phrases_case_insensitively(title, expected):
    assert title_allows(TitleFilter(include=("just chatting",)), title) is expected


def test_unicode_words_and_case_folding():
    assert title_allows(TitleFilter(include=("straße",)), "STRASSE heute")
    assert title_allows(TitleFilter(include=("ÉTÉ",)), "stream d'été !")
    assert not title_allows(TitleFilter(include=("été",)), "étéphant")  # é is a word character: not a whole word
    assert title_allows(TitleFilter(include=("日本",)), "今日は 日本 から")
    assert not title_allows(TitleFilter(include=("日本",)), "日本語")  # CJK letters are word characters too


def test_a_phrase_that_starts_or_ends_with_punctuation_needs_no_boundary_there():
    assert title_allows(TitleFilter(include=("#ad",)), "Playing now #ad")
    assert title_allows(TitleFilter(include=("!drops",)), "x!drops on")


def test_exclude_wins_and_include_needs_one_of_its_words():
    f = TitleFilter(include=("ranked", "tournament"), exclude=("rerun", "vod"))
    assert title_allows(f, "Ranked grind")
    assert title_allows(f, "Tournament day")
    assert not title_allows(f, "Ranked grind (rerun)")
    assert not title_allows(f, "Chill stream")
    assert title_allows(TitleFilter(exclude=("rerun",)), "rerunning?")  # whole words only
    assert title_allows(None, "anything")


def test_skip_reruns_follows_eventsub_type():
    f = TitleFilter(skip_reruns=True)
    assert title_allows(f, "x", "live")
    assert title_allows(f, "x", "")  # unknown: treated as live
    for kind in ("rerun", "playlist", "premiere", "watch_party"):
        assert not title_allows(f, "x", kind)
    assert title_allows(TitleFilter(include=("x",)), "x", "rerun")  # without skip_reruns a rerun is a stream


# -- the regex --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern", [r"\branked\b", r"^\[?(drops|giveaway)", r"x{2,5}y+", r"(?i)day\s+\d+", r"(?<!no )drops", "a.*b"]
)
def test_ordinary_regexes_are_accepted(pattern):
    assert validate_regex(f"  {pattern} ") == pattern


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("(a+)+$", "repeat something that itself repeats"),
        (r"(\w*\s)*x", "repeat something that itself repeats"),
        ("(?:x{1,3}){2,}", "repeat something that itself repeats"),
        ("(foo|bar)+", "repeat an alternation"),
        (r"\w*\w*\w*!", "repeats 3 times"),
        (r"(a)\1", "refer back"),
        (r"(?P<x>a)(?P=x)", "refer back"),
        ("a{1000}", "at most 100"),
        ("(unclosed", "not valid"),
        ("x" * 201, "at most 200 characters"),
        ("   ", "empty"),
    ],
)
def test_dangerous_or_broken_regexes_are_refused_in_words(pattern, says):
    with pytest.raises(FilterError, match=says):
        validate_regex(pattern)


def test_a_regex_is_case_insensitive_and_sees_the_title_cut_to_its_limit():
    assert title_allows(TitleFilter(regex=r"\bday \d+\b"), "DAY 12 of the grind")
    assert not title_allows(TitleFilter(regex=r"\bday \d+\b"), "daily grind")
    long_title = "x" * filters.TITLE_SCANNED + " END"
    assert not title_allows(TitleFilter(regex="END"), long_title)


def test_a_stored_regex_that_does_not_compile_fails_closed():
    assert not title_allows(TitleFilter(regex="(broken"), "anything")


def test_each_regex_is_compiled_once():
    filters._compiled.cache_clear()
    for title in ("a b", "b c", "c d"):
        title_allows(TitleFilter(regex="b"), title)
    assert filters._compiled.cache_info().misses == 1


# -- options of /addstreamer and /editstreamer ----------------------------------------------------------


def test_options_build_change_and_clear_a_filter():
    f = apply_title_options(None, include="ranked, scrims", skip_reruns=True)
    assert f == TitleFilter(include=("ranked", "scrims"), skip_reruns=True)
    f = apply_title_options(f, exclude="rerun", regex=r"\bday\b")
    assert f == TitleFilter(("ranked", "scrims"), ("rerun",), r"\bday\b", True)
    f = apply_title_options(f, include="none", regex="NONE")
    assert f == TitleFilter((), ("rerun",), None, True)
    assert apply_title_options(f, exclude="any", skip_reruns=False) is None  # nothing left: no filter
    assert apply_title_options(None) is None


def test_a_bad_option_raises_and_changes_nothing():
    base = TitleFilter(include=("ranked",))
    with pytest.raises(FilterError):
        apply_title_options(base, include="scrims", regex="(a+)+")
    assert base == TitleFilter(include=("ranked",))


# -- game and title together -------------------------------------------------------------------------------


def test_exit_reason_names_what_keeps_a_stream_out():
    title = TitleFilter(include=("ranked",), skip_reruns=True)
    assert exit_reason(live(), games=(VALORANT,), title_filter=title) is None
    assert exit_reason(live(game_id="1"), games=(VALORANT,), title_filter=title) is ExitReason.GAME
    assert exit_reason(live(stream_type="rerun"), games=None, title_filter=title) is ExitReason.RERUN
    assert exit_reason(live(title="chill"), games=None, title_filter=title) is ExitReason.TITLE
    assert exit_reason(live(), games=None, title_filter=None, unreadable=True) is ExitReason.UNREADABLE
    assert stream_allows(live(), games=None, title_filter=None)
    assert not stream_allows(live(), games=(), title_filter=None)  # an empty game filter allows nothing
