"""Renders what the bot posts: the live announcement and the lines of /streamers and /live.

Plain dicts in Discord's JSON shape and plain strings, no discord import, so it is testable alone.
Everything that comes from Twitch is markdown-escaped, mention-defused and cut to Discord's limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from database import LiveStream, Streamer

TWITCH_PURPLE = 0x9146FF
OFFLINE_GREY = 0x6E6E78
THUMBNAIL_SIZE = (1280, 720)

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
CONTENT_LIMIT = 2000
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_AUTHOR_LIMIT = 256
EMBED_FOOTER_LIMIT = 2048

_MARKDOWN_CHARS = re.compile(r"([\\*_~`|>#\-\[\]()<:])")
_MENTION = re.compile(r"@(everyone|here|[!&]?\d+)")
_URL_SAFE = re.compile(r"^https?://[^\s]+$")


def _defuse_mentions(text: str) -> str:
    # A zero-width space after '@' defuses @everyone/@here/<@id> even where allowed_mentions is not honoured
    # (embeds never ping, but a copy-paste of the text should not either).
    return _MENTION.sub("@\u200b\\1", text)


def _escape_markdown(text: str) -> str:
    return _MARKDOWN_CHARS.sub(r"\\\1", text)


def escape(text: str) -> str:
    """Make Twitch text display literally: no markdown, no links, no mention that could ping."""
    return _escape_markdown(_defuse_mentions(text))


def escape_and_truncate(text: str, limit: int) -> str:
    """Escape, then cut to `limit` characters without splitting an escape sequence, ending with '…'."""
    defused = _defuse_mentions(text)
    escaped = _escape_markdown(defused)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    used = 0
    for char in defused:
        piece = _escape_markdown(char)
        if used + len(piece) > limit - 1:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out).rstrip() + "…"


def channel_url(login: str) -> str:
    return f"https://www.twitch.tv/{login}"


def thumbnail_url(template: str, cache_key: int | str) -> str:
    """Fill Twitch's {width}x{height} template and add a query so Discord does not show a stale image."""
    width, height = THUMBNAIL_SIZE
    url = template.replace("{width}", str(width)).replace("{height}", str(height))
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}t={cache_key}"


def format_duration(seconds: float) -> str:
    minutes = max(0, int(seconds)) // 60
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


def uptime(started_at: datetime, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return format_duration((now - started_at).total_seconds())


@dataclass(frozen=True, slots=True)
class Announcement:
    content: str
    embed: dict


def live_announcement(stream: LiveStream, streamer: Streamer, now: datetime | None = None) -> Announcement:
    """The message posted when a stream goes live."""
    now = now or datetime.now(UTC)
    url = channel_url(streamer.login)
    name = escape_and_truncate(streamer.display_name or streamer.login, 100)
    embed: dict = {
        "title": escape_and_truncate(stream.title.strip() or "Untitled broadcast", EMBED_TITLE_LIMIT),
        "url": url,
        "color": TWITCH_PURPLE,
        "author": {"name": (streamer.display_name or streamer.login)[:EMBED_AUTHOR_LIMIT], "url": url},
        "fields": [
            {
                "name": "Game",
                "value": escape_and_truncate(stream.game_name or "No category", EMBED_FIELD_VALUE_LIMIT),
                "inline": True,
            },
            {"name": "Viewers", "value": f"{stream.viewer_count:,}", "inline": True},
            {"name": "Started", "value": f"<t:{int(stream.started_at.timestamp())}:R>", "inline": True},
        ],
        "footer": {"text": "Twitch"},
        "timestamp": stream.started_at.astimezone(UTC).isoformat(),
    }
    if _URL_SAFE.match(streamer.profile_image_url):
        embed["author"]["icon_url"] = streamer.profile_image_url
        embed["thumbnail"] = {"url": streamer.profile_image_url}
    if stream.thumbnail_url and _URL_SAFE.match(stream.thumbnail_url):
        embed["image"] = {"url": thumbnail_url(stream.thumbnail_url, int(now.timestamp()))}
    content = f"\N{LARGE RED CIRCLE} **{name}** is live on Twitch!"
    return Announcement(content=content[:CONTENT_LIMIT], embed=embed)


def streamer_line(streamer: Streamer, channel_mention: str, live: LiveStream | None, problem: str | None) -> str:
    """One line of /streamers."""
    name = escape(streamer.display_name or streamer.login)
    state = "\N{LARGE RED CIRCLE} live" if live else "offline"
    link = f"[twitch.tv/{escape(streamer.login)}]({channel_url(streamer.login)})"
    line = f"**{name}** ({link}) → {channel_mention} · {state}"
    if problem:
        line += f"\n  \N{WARNING SIGN} {problem}"
    return line


def live_line(streamer: Streamer, live: LiveStream, now: datetime | None = None) -> str:
    """One entry of /live."""
    name = escape(streamer.display_name or streamer.login)
    title = escape_and_truncate(live.title.strip() or "Untitled broadcast", 200)
    game = escape_and_truncate(live.game_name or "No category", 100)
    return (
        f"\N{LARGE RED CIRCLE} **[{name}]({channel_url(streamer.login)})** — {title}\n"
        f"  {game} · {live.viewer_count:,} viewers · up {uptime(live.started_at, now)}"
    )


def paginate(lines: list[str], limit: int = EMBED_DESCRIPTION_LIMIT) -> list[str]:
    """Join lines into chunks that each fit `limit` characters (no line is split unless it alone is too long)."""
    pages: list[str] = []
    current = ""
    for line in lines:
        line = line if len(line) <= limit else line[: limit - 1] + "…"
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pages.append(current)
            current = line
        else:
            current = candidate
    if current:
        pages.append(current)
    return pages
