"""Unit tests for messages.py: escaping, truncation to Discord's limits, and the announcement embed."""

from datetime import UTC, datetime, timedelta

from twitch_notifier.models import LiveStream, Streamer
from twitch_notifier.rendering.limits import EMBED_TITLE_LIMIT
from twitch_notifier.rendering.messages import (
    ended_announcement,
    escape,
    escape_and_truncate,
    format_duration,
    live_announcement,
    live_line,
    overrides_summary,
    paginate,
    streamer_line,
    thumbnail_url,
)

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
STREAMER = Streamer("1", "some_one", "Some_One", "https://static-cdn.jtvnw.net/a.png")


def stream(**changes) -> LiveStream:
    values = {
        "twitch_user_id": "1",
        "stream_id": "s1",
        "title": "Ranked *grind* with __friends__",
        "game_name": "VALORANT",
        "viewer_count": 12345,
        "started_at": T0,
        "thumbnail_url": "https://static-cdn.jtvnw.net/previews-ttv/live_user_some_one-{width}x{height}.jpg",
    } | changes
    return LiveStream(**values)


def test_escape_markdown_and_mentions():
    assert escape("a_b*c~d`e|f>g") == r"a\_b\*c\~d\`e\|f\>g"
    assert "@everyone" not in escape("@everyone hi")
    assert "@here" not in escape("@here")
    assert "<@123>" not in escape("<@123>")
    assert "<@&5>" not in escape("<@&5>")


def test_truncate_respects_limit_and_never_splits_an_escape():
    text = "_" * 300
    out = escape_and_truncate(text, EMBED_TITLE_LIMIT)
    assert len(out) <= EMBED_TITLE_LIMIT
    assert out.endswith("…")
    assert not out[:-1].endswith("\\") or out[:-1].endswith("\\_")
    assert escape_and_truncate("short", 10) == "short"


def test_announcement_embed():
    rendered = live_announcement(stream(), STREAMER, now=T0 + timedelta(minutes=5))
    embed = rendered.embed
    assert embed["title"] == r"Ranked \*grind\* with \_\_friends\_\_"
    assert embed["url"] == "https://www.twitch.tv/some_one"
    assert embed["author"]["name"] == "Some_One"
    assert embed["author"]["icon_url"] == STREAMER.profile_image_url
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "Game": "VALORANT",
        "Viewers": "12,345",
        "Started": f"<t:{int(T0.timestamp())}:R>",
    }
    image = embed["image"]["url"]
    assert image.startswith("https://static-cdn.jtvnw.net/previews-ttv/live_user_some_one-1280x720.jpg?t=")
    assert embed["timestamp"] == T0.isoformat()
    assert r"Some\_One" in rendered.content


def test_hostile_title_is_defused_and_fits():
    title = "@everyone <@&123> **FREE** " + "x" * 400
    embed = live_announcement(stream(title=title, game_name="@here " * 300), STREAMER).embed
    assert len(embed["title"]) <= 256
    assert "@everyone" not in embed["title"]
    assert len(embed["fields"][0]["value"]) <= 1024
    assert "@here" not in embed["fields"][0]["value"]


def test_empty_title_and_game():
    embed = live_announcement(stream(title="  ", game_name=""), STREAMER).embed
    assert embed["title"] == "Untitled broadcast"
    assert embed["fields"][0]["value"] == "No category"


def test_non_http_avatar_is_not_used():
    embed = live_announcement(stream(), Streamer("1", "a", "a", "javascript:alert(1)")).embed
    assert "icon_url" not in embed["author"]


def test_thumbnail_cache_busting():
    assert thumbnail_url("https://x/a-{width}x{height}.jpg", 42) == "https://x/a-1280x720.jpg?t=42"
    assert thumbnail_url("https://x/a.jpg?v=1", 42) == "https://x/a.jpg?v=1&t=42"


def test_durations():
    assert format_duration(59) == "0m"
    assert format_duration(3600 + 5 * 60) == "1h 05m"
    assert format_duration(86400 * 2 + 3600) == "2d 1h 00m"
    assert format_duration(-5) == "0m"


def test_lines():
    line = streamer_line(STREAMER, "<#10>", stream(), "missing Send Messages")
    assert "Some\\_One" in line
    assert "<#10>" in line
    assert "live" in line
    assert "missing Send Messages" in line
    assert "offline" in streamer_line(STREAMER, "<#10>", None, None)
    entry = live_line(STREAMER, stream(), now=T0 + timedelta(hours=2))
    assert "12,345 viewers" in entry
    assert "up 2h 00m" in entry
    assert "VALORANT" in entry


def test_paginate():
    lines = [f"line {i} " + "x" * 90 for i in range(100)]
    pages = paginate(lines, 1000)
    assert all(len(p) <= 1000 for p in pages)
    assert "\n".join(pages).split("\n") == lines
    assert paginate(["y" * 2000], 1000) == ["y" * 999 + "…"]


RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
INVISIBLE = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u200c\u200d\u2060\ufeff"
TRICKSTER = Streamer("2", "trickster", f"Trick{RLO}ster", "https://static-cdn.jtvnw.net/b.png")


def visible(text: str) -> bool:
    return not set(INVISIBLE) & set(text)


def test_bidi_overrides_are_stripped_from_the_live_card():
    hostile = stream(title=f"free skins {RLO}knil siht kcilc{INVISIBLE}", game_name=f"Just{RLO} Chatting")
    rendered = live_announcement(hostile, TRICKSTER, template="{streamer}: {title} ({game})")
    embed = rendered.embed
    assert embed["title"] == "free skins knil siht kcilc"
    assert embed["author"]["name"] == "Trickster"
    assert embed["fields"][0]["value"] == "Just Chatting"
    assert rendered.content == "Trickster: free skins knil siht kcilc (Just Chatting)"


def test_bidi_overrides_are_stripped_from_the_ended_card_and_the_lines():
    ended = ended_announcement(
        TRICKSTER, title=f"{RLO}bye", game_name=f"{RLO}Chess", started_at=T0, ended_at=T0 + timedelta(hours=1)
    )
    assert ended.embed["title"] == "bye"
    assert ended.embed["author"]["name"] == "Trickster was live"
    assert ended.embed["fields"][0]["value"] == "Chess"
    assert ended.content == "**Trickster** was live on Twitch."
    hostile = stream(title=f"{RLO}title", game_name=f"{RLO}game")
    line = streamer_line(TRICKSTER, "<#10>", hostile, None, overrides_summary(None, None, [f"{RLO}Chess"]))
    assert "**Trickster**" in line
    assert "only Chess" in line
    entry = live_line(TRICKSTER, hostile, now=T0)
    assert "Trickster" in entry
    assert "— title" in entry
    assert "game ·" in entry
    assert all(visible(text) for text in (line, entry, str(ended.embed)))


def test_a_title_of_only_invisible_characters_is_untitled():
    embed = live_announcement(stream(title=INVISIBLE, game_name=RLO), Streamer("3", "login", RLO)).embed
    assert embed["title"] == "Untitled broadcast"
    assert embed["fields"][0]["value"] == "No category"
    assert embed["author"]["name"] == "login"


def test_the_zero_width_space_that_defuses_mentions_survives():
    # A title's own ZWSP goes with the other invisible characters; the bot's goes in after.
    assert escape("@\u200beveryone") == "@\u200beveryone"
    assert escape("@every\u200bone") == "@\u200beveryone"


def test_family_emoji_stay_whole_in_a_title():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert live_announcement(stream(title=f"family stream {family}"), STREAMER).embed["title"] == (
        f"family stream {family}"
    )


def test_notify_button_sits_beside_the_watch_link_and_names_the_streamer():
    plain = live_announcement(stream(), STREAMER, now=T0)
    assert [b["style"] for b in plain.components[0]["components"]] == [5]
    card = live_announcement(stream(), STREAMER, now=T0, notify=True, ping="555")
    watch, notify = card.components[0]["components"]
    assert watch["style"] == 5
    assert "custom_id" not in watch
    assert notify == {"type": 2, "style": 2, "label": "\N{BELL} Notify me", "custom_id": "notify:1"}
    assert card.content.startswith("<@&555> ")
    assert card.allowed_mentions == {"parse": [], "replied_user": False, "roles": ["555"]}


def test_the_ended_card_drops_the_notify_button():
    ended = ended_announcement(STREAMER, title="t", game_name="g", started_at=T0, ended_at=T0 + timedelta(hours=1))
    assert all("custom_id" not in b for row in ended.components for b in row["components"])
