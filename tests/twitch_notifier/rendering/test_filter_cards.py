"""The cards and words of title filters and the restart grace (rendering.filter_cards)."""

from datetime import UTC, datetime

from twitch_notifier.core.filters import ExitReason
from twitch_notifier.models import Category, LiveStream, Streamer, TitleFilter
from twitch_notifier.rendering.filter_cards import (
    exit_reason_text,
    grace_text,
    left_filter_announcement,
    reconnected_announcement,
    title_filter_summary,
)

SHROUD = Streamer("1", "shroud", "shroud")
STREAM = LiveStream("1", "10", "ranked @everyone", "VALORANT", 5, datetime(2026, 1, 1, tzinfo=UTC), "", game_id="9")


def test_a_reconnected_card_is_the_live_card_noted_so_and_pinging_nobody():
    card = reconnected_announcement(STREAM, SHROUD, template="{ping} {streamer} is back: {title}", box_art_url="")
    assert card.content == "shroud is back: ranked @\u200beveryone"
    assert card.allowed_mentions == {"parse": [], "replied_user": False}
    assert card.embed["footer"] == {"text": "Twitch · reconnected"}
    assert card.embed["color"] == 0x9146FF
    with_button = reconnected_announcement(STREAM, SHROUD, template=None, box_art_url="", notify=True)
    assert len(with_button.components[0]["components"]) == 2


def test_a_card_that_left_the_filter_says_why_and_pings_nobody():
    reason = exit_reason_text(ExitReason.GAME, (Category("9", "VALORANT"), Category("8", "Minecraft")))
    assert reason == "no longer VALORANT, Minecraft"
    card = left_filter_announcement(STREAM, SHROUD, reason=reason)
    assert card.content == "**shroud** is still live, but no longer VALORANT, Minecraft."
    assert card.embed["author"]["name"] == "shroud · no longer matches"
    assert card.embed["title"] == "ranked @\u200beveryone"
    assert card.allowed_mentions == {"parse": [], "replied_user": False}
    assert exit_reason_text(ExitReason.TITLE, None) == "title no longer matches the filter"
    assert exit_reason_text(ExitReason.RERUN, None).startswith("not live")


def test_the_filter_summary_shows_what_was_typed_escaped():
    summary = title_filter_summary(TitleFilter(("ranked", "*grind*"), ("rerun",), r"\bday`s", True))
    assert summary == "title has “ranked” or “\\*grind\\*” · title lacks “rerun” · title matches `\\bdayˋs` · no reruns"
    assert title_filter_summary(None) == title_filter_summary(TitleFilter()) == ""


def test_the_grace_in_words():
    assert grace_text(None, 600) == "10 min (the bot's default)"
    assert grace_text(0, 600) == "off"
    assert grace_text(90, 600) == "90 s"
    assert grace_text(None, None) == "the bot's default"
