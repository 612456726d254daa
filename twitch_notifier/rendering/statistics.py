"""The words of /stats: a streamer's or a server's statistics as an embed in Discord's JSON, and the friendly
answers when there is nothing to show yet. Twitch's text is escaped and everything is cut to Discord's limits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from twitch_notifier.core.history import ServerStats, StreamerRank, StreamerStats
from twitch_notifier.models import JSON, Streamer
from twitch_notifier.rendering.limits import EMBED_DESCRIPTION_LIMIT, EMBED_FIELD_VALUE_LIMIT, EMBED_TITLE_LIMIT
from twitch_notifier.rendering.messages import (
    NAME_SHOWN,
    NO_CATEGORY,
    TWITCH_PURPLE,
    escape_and_truncate,
    fit_lines,
    format_duration,
    shown,
)
from twitch_notifier.twitch.models import channel_url

__all__ = [
    "PERIOD_WORDS",
    "chart_filename",
    "no_history_text",
    "server_stats_embed",
    "streamer_stats_embed",
]

PERIOD_WORDS = {
    "7d": "the last 7 days",
    "30d": "the last 30 days",
    "90d": "the last 90 days",
    "all": "all history kept",
}
RANKED_LINES = 10
AVERAGE_NOTE = "Average viewers are time-weighted over the time the bot watched the streams."


def _name(streamer: Streamer) -> str:
    return escape_and_truncate(shown(streamer.display_name, "") or streamer.login, NAME_SHOWN)


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:,.1f} h"


def _when(moment: datetime, style: str = "f") -> str:
    """A Discord timestamp: every reader sees it in their own time zone."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def _viewers(value: float | None) -> str:
    return "—" if value is None else f"{round(value):,}"


def chart_filename(kind: str, name: str, period: str) -> str:
    """An attachment name Discord accepts in `attachment://` (ASCII letters, digits, `_`, `-` and `.`)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in name)[:40] or "chart"
    return f"stats_{kind}_{safe}_{period}.png"


def _since(stats_start: datetime, period: str) -> str:
    words = PERIOD_WORDS.get(period, period)
    return f"{words} (since {_when(stats_start, 'D')})"


def streamer_stats_embed(streamer: Streamer, stats: StreamerStats, *, image: str | None) -> JSON:
    """The /stats streamer answer; `image` is the attached chart's file name, if there is one."""
    name = _name(streamer)
    fields: list[JSON] = [
        {"name": "Streams", "value": f"{stats.streams:,}", "inline": True},
        {"name": "Hours live", "value": _hours(stats.live_time), "inline": True},
        {"name": "Average length", "value": format_duration(stats.average_length.total_seconds()), "inline": True},
        {"name": "Peak viewers", "value": f"{stats.peak_viewers:,}", "inline": True},
        {"name": "Average viewers", "value": _viewers(stats.average_viewers), "inline": True},
    ]
    total = stats.live_time.total_seconds()
    if stats.top_categories:
        lines = [
            f"{escape_and_truncate(shown(c.game_name, NO_CATEGORY), NAME_SHOWN)} · {_hours(c.time)}"
            + (f" ({c.time.total_seconds() / total:.0%})" if total else "")
            for c in stats.top_categories
        ]
        fields.append({"name": "Top categories", "value": fit_lines(lines, EMBED_FIELD_VALUE_LIMIT), "inline": False})
    last = stats.last_stream
    if last is not None:
        state = "live now, for " if last.live else ""
        text = (
            f"{_when(last.started_at)} · {state}{format_duration(last.duration.total_seconds())} · "
            f"peak {last.peak_viewers:,} · average {_viewers(last.average_viewers)}"
        )
        fields.append({"name": "Last stream", "value": text[:EMBED_FIELD_VALUE_LIMIT], "inline": False})
    embed: JSON = {
        "title": f"{name}: stream statistics"[:EMBED_TITLE_LIMIT],
        "url": channel_url(streamer.login),
        "color": TWITCH_PURPLE,
        "description": f"Over {_since(stats.start, stats.period)}. The chart's times are UTC."[
            :EMBED_DESCRIPTION_LIMIT
        ],
        "fields": fields,
        "footer": {"text": AVERAGE_NOTE},
    }
    if image:
        embed["image"] = {"url": f"attachment://{image}"}
    return embed


def _rank_lines(ranks: Sequence[StreamerRank], value: str) -> str:
    lines = []
    for place, rank in enumerate(ranks[:RANKED_LINES], start=1):
        shown_value = _hours(rank.live_time) if value == "hours" else f"{rank.peak_viewers:,} viewers"
        streams = "stream" if rank.streams == 1 else "streams"
        lines.append(f"{place}. **{_name(rank.streamer)}** · {shown_value} · {rank.streams} {streams}")
    return fit_lines(lines, EMBED_FIELD_VALUE_LIMIT) if lines else "—"


def server_stats_embed(guild_name: str, stats: ServerStats, *, image: str | None) -> JSON:
    """The /stats server answer: the followed streamers ranked by hours live and by peak viewers."""
    streamed = len(stats.by_hours)
    description = f"Over {_since(stats.start, stats.period)}: {streamed} of the followed streamers streamed."
    if stats.quiet:
        description += f" {stats.quiet} did not (or not while the bot watched)."
    embed: JSON = {
        "title": f"{escape_and_truncate(shown(guild_name, 'This server'), NAME_SHOWN)}: stream statistics"[
            :EMBED_TITLE_LIMIT
        ],
        "color": TWITCH_PURPLE,
        "description": description + " The chart's times are UTC.",
        "fields": [
            {"name": "Most hours live", "value": _rank_lines(stats.by_hours, "hours"), "inline": False},
            {"name": "Highest peaks", "value": _rank_lines(stats.by_peak, "peak"), "inline": False},
        ],
        "footer": {
            "text": "Only streams the bot saw count: it keeps a history from the moment a streamer is followed."
        },
    }
    if image:
        embed["image"] = {"url": f"attachment://{image}"}
    return embed


def no_history_text(streamer: Streamer | None, last_started: datetime | None, period: str) -> str:
    """Why there is no chart: nothing recorded yet (for this streamer, or this server), or nothing in the period."""
    who = f"**{_name(streamer)}**" if streamer is not None else "this server's streamers"
    if last_started is None:
        return (
            f"No streams of {who} recorded yet. The bot keeps a history from the moment a streamer is followed: "
            "every check while they are live adds to it. Come back after their next stream."
        )
    return (
        f"No streams of {who} in {PERIOD_WORDS.get(period, period)}: the last one began {_when(last_started, 'R')}. "
        "Try a longer `period`."
    )
