"""Renders what the bot posts: the live announcement and the lines of /streamers and /live.

Plain dicts in Discord's JSON shape and plain strings, no discord import, so it is testable alone.
Everything that comes from Twitch is stripped of invisible characters, markdown-escaped, mention-defused and
cut to Discord's limits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from twitch_notifier.core.history import StreamSummary
from twitch_notifier.core.opt_in import notify_custom_id
from twitch_notifier.models import JSON, Announcement, Broadcast, LiveStream, Streamer
from twitch_notifier.rendering.invisible import strip_invisible
from twitch_notifier.rendering.limits import (
    BUTTON_LABEL_LIMIT,
    CONTENT_LIMIT,
    EMBED_AUTHOR_LIMIT,
    EMBED_DESCRIPTION_LIMIT,
    EMBED_FIELD_VALUE_LIMIT,
    EMBED_TITLE_LIMIT,
)
from twitch_notifier.rendering.pings import describe_ping, ping_allowed_mentions, ping_mention
from twitch_notifier.rendering.templates import render_template
from twitch_notifier.twitch.models import channel_url

TWITCH_PURPLE = 0x9146FF
OFFLINE_GREY = 0x6E6E78
THUMBNAIL_SIZE = (1280, 720)
# How much of Twitch's text the bot shows where Discord's own limit is far larger (Twitch: names <= 25,
# titles <= 140 characters; these leave room for escaping and keep one bad value from crowding the rest).
NAME_SHOWN = 100
TITLE_IN_MESSAGE = 300
TITLE_IN_LIST = 200
WAS_LIVE_SUFFIX = " was live"
UNTITLED = "Untitled broadcast"
NO_CATEGORY = "No category"

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
    """Make Twitch text display literally: nothing invisible, no markdown, no links, no mention that could ping."""
    return _escape_markdown(_defuse_mentions(strip_invisible(text)))


def escape_and_truncate(text: str, limit: int) -> str:
    """Escape, then cut to `limit` characters without splitting an escape sequence, ending with '…'."""
    defused = _defuse_mentions(strip_invisible(text))
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


def shown(text: str, fallback: str) -> str:
    """Twitch text as the bot shows it before escaping: visible characters only, trimmed, or `fallback` if
    nothing visible is left (a title of only a bidi override is an untitled broadcast)."""
    return strip_invisible(text).strip() or fallback


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


def _name(streamer: Streamer) -> str:
    # A display name of only invisible characters falls back to the login, which Twitch keeps to [a-z0-9_].
    return shown(streamer.display_name, "") or streamer.login


def link_button(label: str, url: str) -> list[JSON]:
    """One action row with one link button (style 5): Discord opens the URL, the bot gets no interaction."""
    return [{"type": 1, "components": [{"type": 2, "style": 5, "label": label[:BUTTON_LABEL_LIMIT], "url": url}]}]


NOTIFY_LABEL = "\N{BELL} Notify me"


def notify_button(twitch_user_id: str) -> JSON:
    """The "Notify me" button (style 2, grey) next to the Watch link: pressing it toggles the streamer's opt-in
    role (discord_io.opt_in_roles answers it); its custom id names the streamer, so it outlives restarts."""
    return {"type": 2, "style": 2, "label": NOTIFY_LABEL, "custom_id": notify_custom_id(twitch_user_id)}


def template_values(stream: LiveStream, streamer: Streamer, ping: str | None) -> dict[str, str]:
    """What a message template's placeholders stand for; Twitch's text escaped and mention-defused."""
    return {
        "streamer": escape_and_truncate(_name(streamer), NAME_SHOWN),
        "title": escape_and_truncate(shown(stream.title, UNTITLED), TITLE_IN_MESSAGE),
        "game": escape_and_truncate(shown(stream.game_name, NO_CATEGORY), NAME_SHOWN),
        "url": channel_url(streamer.login),
        "viewers": f"{stream.viewer_count:,}",
        "ping": ping_mention(ping),
    }


def announcement_content(
    stream: LiveStream, streamer: Streamer, *, ping: str | None = None, template: str | None = None
) -> str:
    """The text above the card: the template filled in; a ping the template does not place goes first."""
    content = render_template(template, template_values(stream, streamer, ping), CONTENT_LIMIT)
    mention = ping_mention(ping)
    if mention and "{ping}" not in (template or ""):
        content = f"{mention} {content}"[:CONTENT_LIMIT]
    return content


def live_announcement(
    stream: LiveStream,
    streamer: Streamer,
    now: datetime | None = None,
    *,
    ping: str | None = None,
    template: str | None = None,
    box_art_url: str = "",
    notify: bool = False,
) -> Announcement:
    """The message posted when a stream goes live (and re-rendered while it stays live); with `notify`, the
    "Notify me" button beside the Watch button."""
    now = now or datetime.now(UTC)
    url = channel_url(streamer.login)
    embed: JSON = {
        "title": escape_and_truncate(shown(stream.title, UNTITLED), EMBED_TITLE_LIMIT),
        "url": url,
        "color": TWITCH_PURPLE,
        # Embed author names show no markdown, so they are not escaped; they can still be reversed or hidden.
        "author": {"name": _name(streamer)[:EMBED_AUTHOR_LIMIT], "url": url},
        "fields": [
            {
                "name": "Game",
                "value": escape_and_truncate(shown(stream.game_name, NO_CATEGORY), EMBED_FIELD_VALUE_LIMIT),
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
    art = box_art(box_art_url)
    if art:
        embed["thumbnail"] = {"url": art}
    if stream.thumbnail_url and _URL_SAFE.match(stream.thumbnail_url):
        embed["image"] = {"url": thumbnail_url(stream.thumbnail_url, int(now.timestamp()))}
    components = link_button("Watch stream", url)
    if notify:
        components[0]["components"].append(notify_button(streamer.twitch_user_id))
    return Announcement(
        content=announcement_content(stream, streamer, ping=ping, template=template),
        embed=embed,
        components=components,
        allowed_mentions=ping_allowed_mentions(ping),
    )


def box_art(template: str, width: int = 144, height: int = 192) -> str:
    if not template or not _URL_SAFE.match(template):
        return ""
    return template.replace("{width}", str(width)).replace("{height}", str(height))


def ended_announcement(
    streamer: Streamer,
    *,
    title: str,
    game_name: str,
    started_at: datetime | None,
    ended_at: datetime | None,
    vod_url: str | None = None,
    recap: StreamSummary | None = None,
) -> Announcement:
    """The muted "was live" card a live card turns into when the stream ends; with a `recap` (the stream's
    history) it adds the peak and average viewers and the category timeline, each change linked to its moment
    in the VOD."""
    url = channel_url(streamer.login)
    name = escape_and_truncate(_name(streamer), NAME_SHOWN)
    target = vod_url if vod_url and _URL_SAFE.match(vod_url) else url
    embed: JSON = {
        "title": escape_and_truncate(shown(title, UNTITLED), EMBED_TITLE_LIMIT),
        "url": target,
        "color": OFFLINE_GREY,
        "author": {
            "name": f"{_name(streamer)[: EMBED_AUTHOR_LIMIT - len(WAS_LIVE_SUFFIX)]}{WAS_LIVE_SUFFIX}",
            "url": url,
        },
        "fields": [
            {
                "name": "Game",
                "value": escape_and_truncate(shown(game_name, NO_CATEGORY), EMBED_FIELD_VALUE_LIMIT),
                "inline": True,
            },
        ],
        "footer": {"text": "Stream ended"},
    }
    if started_at is not None and ended_at is not None:
        embed["fields"].append(
            {"name": "Duration", "value": format_duration((ended_at - started_at).total_seconds()), "inline": True}
        )
    if recap is not None:
        embed["fields"] += recap_fields(recap, target if target != url else None)
    if ended_at is not None:
        embed["timestamp"] = ended_at.astimezone(UTC).isoformat()
    if _URL_SAFE.match(streamer.profile_image_url):
        embed["author"]["icon_url"] = streamer.profile_image_url
    if target != url:
        embed["description"] = f"[Watch the VOD]({target})"
        components = link_button("Watch the VOD", target)
    else:
        components = link_button("Twitch channel", url)
    return Announcement(
        content=f"**{name}** was live on Twitch.",
        embed=embed,
        components=components,
        allowed_mentions={"parse": [], "replied_user": False},
    )


def stream_offset(offset: timedelta) -> str:
    """A moment of a stream as its VOD player shows it: `1:02:03`, `0:45:00`."""
    seconds = max(0, int(offset.total_seconds()))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def vod_at(vod_url: str, offset: timedelta) -> str:
    """The VOD's URL starting at `offset` into the stream, in Twitch's own `?t=1h2m3s` form."""
    seconds = max(0, int(offset.total_seconds()))
    separator = "&" if "?" in vod_url else "?"
    return f"{vod_url}{separator}t={seconds // 3600}h{seconds // 60 % 60}m{seconds % 60}s"


def recap_fields(recap: StreamSummary, vod_url: str | None) -> list[JSON]:
    """The recap's embed fields: peak and average viewers, and (when the category changed) the timeline, one
    line per category with its start, linked into the VOD when Twitch kept one, cut to fit one field."""
    fields: list[JSON] = [{"name": "Peak viewers", "value": f"{recap.peak_viewers:,}", "inline": True}]
    if recap.average_viewers is not None:
        fields.append({"name": "Average viewers", "value": f"{round(recap.average_viewers):,}", "inline": True})
    if len(recap.timeline) < 2:
        return fields
    lines = []
    for period in recap.timeline:
        at = stream_offset(period.offset)
        when = f"[{at}]({vod_at(vod_url, period.offset)})" if vod_url else f"`{at}`"
        name = escape_and_truncate(shown(period.game_name, NO_CATEGORY), NAME_SHOWN)
        lines.append(f"{when} {name} · {format_duration(period.duration.total_seconds())}")
    fields.append({"name": "Categories", "value": fit_lines(lines, EMBED_FIELD_VALUE_LIMIT), "inline": False})
    return fields


def fit_lines(lines: Sequence[str], limit: int) -> str:
    """As many whole lines as fit in `limit` characters, and how many more there were."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        rest = len(lines) - index - 1
        tail = f"\n… and {rest} more" if rest else ""
        if used + len(line) + 1 + len(tail) > limit:
            kept.append(f"… and {len(lines) - index} more")
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def overrides_summary(ping: str | None, template: str | None, games: Sequence[str] | None) -> str:
    """What a subscription sets for itself instead of the server's settings, for /streamers."""
    parts = []
    if ping is not None:
        parts.append(f"ping {describe_ping(ping)}")
    if template is not None:
        parts.append(f"own message: “{escape_and_truncate(template, 80)}”")
    if games is not None:
        parts.append("only " + ", ".join(escape(name) for name in games))
    return " · ".join(parts)


def push_note(push_state: str | None) -> str | None:
    """Why a streamer's alerts come by polling rather than EventSub push (shown in /streamers), or None."""
    if push_state is None:
        return None
    if push_state == "poll_only":
        return (
            "checked by polling only: Twitch's push budget for this bot is used up, so its alerts can come "
            "up to one check interval later"
        )
    if push_state == "user_removed":
        return "Twitch ended push alerts for this account (user_removed: deleted or banned); it is still polled"
    return f"Twitch ended push alerts for this account ({escape(push_state[:40])}); it is still polled"


def streamer_line(
    streamer: Streamer,
    channel_mention: str,
    live: LiveStream | None,
    problem: str | None,
    overrides: str = "",
    note: str | None = None,
    upcoming: str | None = None,
) -> str:
    """One line of /streamers: a problem (something to fix) gets a warning sign, a note an information sign,
    the next broadcast on the streamer's Twitch schedule (`upcoming`, see `next_broadcast_text`) a calendar."""
    name = escape(_name(streamer))
    state = "\N{LARGE RED CIRCLE} live" if live else "offline"
    link = f"[twitch.tv/{escape(streamer.login)}]({channel_url(streamer.login)})"
    line = f"**{name}** ({link}) → {channel_mention} · {state}"
    if overrides:
        line += f"\n  {overrides}"
    if problem:
        line += f"\n  \N{WARNING SIGN} {problem}"
    if note:
        line += f"\n  \N{INFORMATION SOURCE} {note}"
    if upcoming:
        line += f"\n  \N{SPIRAL CALENDAR PAD} {upcoming}"
    return line


def next_broadcast_text(broadcast: Broadcast) -> str:
    """A planned broadcast in a list: when (in each reader's own time zone, and how soon), its title, category."""
    at = int(broadcast.start.timestamp())
    text = (
        f"next on Twitch: <t:{at}:f> (<t:{at}:R>) — {escape_and_truncate(shown(broadcast.title, UNTITLED), NAME_SHOWN)}"
    )
    if broadcast.category_name.strip():
        text += f" · {escape_and_truncate(broadcast.category_name, NAME_SHOWN)}"
    if broadcast.recurring:
        text += " · weekly"
    return text


def live_line(streamer: Streamer, live: LiveStream, now: datetime | None = None, where: str = "") -> str:
    """One entry of /live: one per streamer, however many channels announce them (`where`)."""
    name = escape(_name(streamer))
    title = escape_and_truncate(shown(live.title, UNTITLED), TITLE_IN_LIST)
    game = escape_and_truncate(shown(live.game_name, NO_CATEGORY), NAME_SHOWN)
    line = (
        f"\N{LARGE RED CIRCLE} **[{name}]({channel_url(streamer.login)})** — {title}\n"
        f"  {game} · {live.viewer_count:,} viewers · up {uptime(live.started_at, now)}"
    )
    if where:
        line += f" · {where}"
    return line


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
