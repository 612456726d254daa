"""twitch.logins and twitch.models: what a user may type as a channel, and the Helix values' helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from twitch_notifier.twitch.errors import (
    InvalidLogin,
    TwitchAPIError,
    TwitchAuthError,
    TwitchError,
    TwitchRateLimited,
    TwitchServerError,
    TwitchUnavailable,
)
from twitch_notifier.twitch.logins import LOGIN_RE, RESERVED_PATHS, parse_login
from twitch_notifier.twitch.models import TwitchStream

# ------------------------------------------------------------------------------------------- parse_login


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shroud", "shroud"),
        ("Shroud", "shroud"),
        (" twitch.tv/shroud", "shroud"),
        ("https://www.twitch.tv/shroud/", "shroud"),
        ("http://twitch.tv/Shroud?x=1", "shroud"),
        ("www.twitch.tv/shroud", "shroud"),
        ("m.twitch.tv/shroud", "shroud"),
        ("https://www.twitch.tv/shroud#chat", "shroud"),
        ("https://www.twitch.tv/shroud/videos", "shroud"),
        ("HTTPS://WWW.TWITCH.TV/Shroud", "shroud"),
        ("a", "a"),
        ("x_1", "x_1"),
        ("_under_score_", "_under_score_"),
        ("A" * 25, "a" * 25),
        ("\tlirik\n", "lirik"),
        ("<https://www.twitch.tv/shroud>", "shroud"),  # Discord's no-embed link syntax
    ],
)
def test_parse_login_accepts(text: str, expected: str) -> None:
    assert parse_login(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "shroud stream",
        "a" * 26,
        "shrоud",  # Cyrillic o
        "ｓｈｒｏｕｄ",  # fullwidth
        "shroud🎮",
        "'; DROP TABLE streamers; --",
        "@everyone",
        "@here",
        "@shroud",
        "<@123>",
        "<#123>",
        "**shroud**",
        "`shroud`",
        "[shroud](https://evil.example)",
        "shroud!",
        "shr-oud",
        "https://youtube.com/shroud",
        "youtube.com/x",
        "twitch.tv.evil.com/x",
        "https://twitch.tv@evil.com/shroud",
        "https://evil.com/twitch.tv/shroud",
        "twitch.tv/",
        "twitch.tv",
        "https://www.twitch.tv",
        "twitch.tv/videos/123456",
        "https://www.twitch.tv/directory/game/Minecraft",
        "twitch.tv/settings/profile",
        "twitch.tv/p/en/legal",
        "twitch.tv/search?term=shroud",
        "ftp://twitch.tv/shroud",
        "javascript:alert(1)",
        "twitch.tv/%73hroud",
        "twitch.tv/" + "a" * 26,
        "sh\u200broud",  # zero-width space
        "shroud\x00",
        "<shroud>",
        "<https://youtube.com/shroud>",
    ],
)
def test_parse_login_rejects(text: str) -> None:
    with pytest.raises(InvalidLogin) as info:
        parse_login(text)
    message = str(info.value)
    assert message
    assert len(message) < 120
    assert "@everyone" not in message
    assert "DROP" not in message


def test_invalid_login_is_a_value_error_not_a_twitch_error() -> None:
    assert issubclass(InvalidLogin, ValueError)
    assert not issubclass(InvalidLogin, TwitchError)


@given(st.text(max_size=60))
def test_parse_login_never_returns_garbage(text: str) -> None:
    try:
        login = parse_login(text)
    except InvalidLogin:
        return
    assert LOGIN_RE.fullmatch(login)
    assert login == login.lower()


@given(st.from_regex(r"[A-Za-z0-9_]{1,25}", fullmatch=True))
def test_parse_login_round_trips_valid_names(name: str) -> None:
    assert parse_login(name) == name.lower()
    assume(name.lower() not in RESERVED_PATHS)
    assert parse_login(f"https://www.twitch.tv/{name}/") == name.lower()


# ----------------------------------------------------------------------------------------------- models


def test_stream_thumbnail_fills_placeholders() -> None:
    stream = TwitchStream(
        id="1",
        user_id="2",
        user_login="shroud",
        user_name="shroud",
        game_id="",
        game_name="",
        title="",
        viewer_count=0,
        started_at=datetime.now(UTC),
        thumbnail_url="https://static-cdn.jtvnw.net/previews-ttv/live_user_shroud-{width}x{height}.jpg",
    )
    assert stream.thumbnail() == "https://static-cdn.jtvnw.net/previews-ttv/live_user_shroud-1280x720.jpg"
    assert stream.thumbnail(320, 180).endswith("-320x180.jpg")
    assert stream.url == "https://www.twitch.tv/shroud"


def test_error_tree() -> None:
    assert issubclass(TwitchAuthError, TwitchError)
    assert issubclass(TwitchRateLimited, TwitchAPIError)
    assert issubclass(TwitchServerError, TwitchAPIError)
    assert issubclass(TwitchServerError, TwitchUnavailable)
    error = TwitchAPIError(404, '{"error":"Not Found","status":404,"message":"nope"}')
    assert error.status == 404
    assert error.message == "nope"
    assert "404" in str(error)
