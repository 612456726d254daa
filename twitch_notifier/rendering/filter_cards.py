"""What title filters and the restart grace show: the card of a stream that reconnected, the card of a stream that
left its entry's filter, and the words /streamers and /settings use for them.

Plain dicts and strings like the rest of rendering (no discord import).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from twitch_notifier.core.filters import ExitReason
from twitch_notifier.models import JSON, Announcement, Category, EndAction, LiveStream, Streamer, TitleFilter
from twitch_notifier.rendering.limits import EMBED_AUTHOR_LIMIT, EMBED_FIELD_VALUE_LIMIT, EMBED_TITLE_LIMIT
from twitch_notifier.rendering.messages import (
    NAME_SHOWN,
    NO_CATEGORY,
    OFFLINE_GREY,
    UNTITLED,
    escape,
    escape_and_truncate,
    link_button,
    live_announcement,
    shown,
)
from twitch_notifier.twitch.models import channel_url

__all__ = [
    "FILTER_EXIT_LABELS",
    "NO_PINGS",
    "RECONNECTED_FOOTER",
    "exit_reason_text",
    "grace_text",
    "left_filter_announcement",
    "reconnected_announcement",
    "title_filter_summary",
]

NO_PINGS: JSON = {"parse": [], "replied_user": False}
RECONNECTED_FOOTER = "Twitch · reconnected"
FILTER_EXIT_LABELS = {
    EndAction.KEEP: "keep the card as it is",
    EndAction.EDIT: "edit the card to say it no longer matches (back to live if it matches again)",
    EndAction.DELETE: "delete the card",
}
_NO_LONGER = " · no longer matches"


def reconnected_announcement(
    stream: LiveStream, streamer: Streamer, *, template: str | None, box_art_url: str, notify: bool = False
) -> Announcement:
    """The live card of a stream that dropped and came back within the restart grace: the card as usual (with the
    "Notify me" button if it has one), noted "reconnected", with no ping in its text and no mention allowed (the
    members were notified when it began)."""
    card = live_announcement(stream, streamer, ping=None, template=template, box_art_url=box_art_url, notify=notify)
    embed = dict(card.embed)
    embed["footer"] = {"text": RECONNECTED_FOOTER}
    # A template's {ping} renders as nothing here: no space is left where it stood.
    return dataclasses.replace(card, content=card.content.strip(), embed=embed, allowed_mentions=dict(NO_PINGS))


def exit_reason_text(reason: ExitReason, games: Sequence[Category] | None) -> str:
    """Why a live stream no longer matches its entry's filter, as the card says it: "no longer VALORANT"."""
    if reason is ExitReason.GAME:
        names = ", ".join(game.name for game in games or ())
        return f"no longer {names}" if names else "no longer in a listed category"
    if reason is ExitReason.RERUN:
        return "not live: a rerun, playlist or premiere"
    if reason is ExitReason.UNREADABLE:
        return "its filter can't be read"
    return "title no longer matches the filter"


def left_filter_announcement(stream: LiveStream, streamer: Streamer, *, reason: str) -> Announcement:
    """The muted card a live card becomes when its stream leaves the entry's filter (the guild chose `edit`):
    still linked to the channel, saying why it no longer matches; it pings nobody."""
    url = channel_url(streamer.login)
    name = shown(streamer.display_name, "") or streamer.login
    embed: JSON = {
        "title": escape_and_truncate(shown(stream.title, UNTITLED), EMBED_TITLE_LIMIT),
        "url": url,
        "color": OFFLINE_GREY,
        "author": {"name": f"{name[: EMBED_AUTHOR_LIMIT - len(_NO_LONGER)]}{_NO_LONGER}", "url": url},
        "fields": [
            {
                "name": "Game",
                "value": escape_and_truncate(shown(stream.game_name, NO_CATEGORY), EMBED_FIELD_VALUE_LIMIT),
                "inline": True,
            },
        ],
        "footer": {"text": f"Still live, {reason}"[:EMBED_FIELD_VALUE_LIMIT]},
    }
    return Announcement(
        content=f"**{escape_and_truncate(name, NAME_SHOWN)}** is still live, but {escape(reason)}.",
        embed=embed,
        components=link_button("Twitch channel", url),
        allowed_mentions=dict(NO_PINGS),
    )


def title_filter_summary(title_filter: TitleFilter | None) -> str:
    """An entry's title filter in a few words, for /streamers and the replies to /addstreamer and /editstreamer."""
    if title_filter is None or title_filter.empty:
        return ""
    parts = []
    if title_filter.include:
        parts.append("title has " + " or ".join(f"“{escape(word)}”" for word in title_filter.include))
    if title_filter.exclude:
        parts.append("title lacks " + ", ".join(f"“{escape(word)}”" for word in title_filter.exclude))
    if title_filter.regex:
        parts.append(f"title matches `{title_filter.regex.replace('`', 'ˋ')}`")
    if title_filter.skip_reruns:
        parts.append("no reruns")
    return " · ".join(parts)


def grace_text(seconds: int | None, default_seconds: int | None) -> str:
    """The restart grace as /settings shows it (a server's own, else the operator's default)."""
    value = default_seconds if seconds is None else seconds
    if value is None:
        return "the bot's default"
    words = "off" if value <= 0 else (f"{value // 60} min" if value % 60 == 0 else f"{value} s")
    return words + (" (the bot's default)" if seconds is None else "")
