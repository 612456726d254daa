"""Turning what a user types (a channel name, a twitch.tv link) into a Twitch login, or a friendly refusal."""

from __future__ import annotations

import re
import urllib.parse

from twitch_notifier.twitch.errors import InvalidLogin

__all__ = ["LOGIN_RE", "parse_login"]

LOGIN_RE = re.compile(r"^[A-Za-z0-9_]{1,25}$", re.ASCII)
_TWITCH_HOSTS = frozenset({"twitch.tv", "www.twitch.tv", "m.twitch.tv", "go.twitch.tv"})
# First path segments on twitch.tv that are pages, not channels.
RESERVED_PATHS = frozenset(
    {
        "directory",
        "downloads",
        "drops",
        "embed",
        "friends",
        "inventory",
        "jobs",
        "login",
        "logout",
        "messages",
        "moderator",
        "p",
        "payments",
        "popout",
        "prime",
        "search",
        "settings",
        "signup",
        "store",
        "subscriptions",
        "turbo",
        "u",
        "videos",
        "wallet",
    }
)


def parse_login(text: str) -> str:
    """Turn a channel name or twitch.tv link typed by a user into a lower-case login.

    Raises InvalidLogin with a message that can be shown to the user as is.
    """
    if not isinstance(text, str):
        raise InvalidLogin("Please give a Twitch channel name or a twitch.tv link.")
    candidate = text.strip()
    if candidate.startswith("<") and candidate.endswith(">") and candidate[1:5].lower() == "http":
        candidate = candidate[1:-1]  # Discord's <link> syntax that suppresses the embed
    if not candidate:
        raise InvalidLogin("Please give a Twitch channel name or a twitch.tv link.")
    if len(candidate) > 200:
        raise InvalidLogin("That is far too long to be a Twitch channel name or link.")
    if any(ch.isspace() for ch in candidate):
        raise InvalidLogin("Twitch channel names cannot contain spaces.")
    if not candidate.isascii():
        raise InvalidLogin("Twitch channel names only use the letters a–z, digits and underscores.")
    if "@" in candidate or "<" in candidate:
        raise InvalidLogin("Give the channel name on its own (for example `shroud`), without @ or mentions.")
    if "/" in candidate or "." in candidate or ":" in candidate:
        candidate = _login_from_url(candidate)
    if len(candidate) > 25:
        raise InvalidLogin("Twitch channel names are at most 25 characters long.")
    if not LOGIN_RE.fullmatch(candidate):
        raise InvalidLogin("Twitch channel names only use the letters a–z, digits and underscores.")
    return candidate.lower()


def _login_from_url(text: str) -> str:
    url = text if "://" in text else "https://" + text
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise InvalidLogin("That doesn't look like a twitch.tv link.") from None
    if parts.scheme.lower() not in ("http", "https") or host not in _TWITCH_HOSTS:
        raise InvalidLogin("Only twitch.tv channel links (or plain channel names) are accepted.")
    segments = [segment for segment in parts.path.split("/") if segment]
    if not segments:
        raise InvalidLogin("That twitch.tv link has no channel name in it.")
    first = segments[0]
    if first.lower() in RESERVED_PATHS:
        raise InvalidLogin("That twitch.tv link is not a channel; use a link like twitch.tv/shroud.")
    return first
