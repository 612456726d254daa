"""The restart grace: whether a new stream of a streamer is the same broadcast reconnecting after a drop.

Pure. A stream that drops and comes back (Twitch gives it a new stream id) within the grace continues the card
of the one before it; the notifier asks `is_reconnect`, and so may any rule that must not ping twice for one
broadcast (a ping throttle, for instance).
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["MAX_GRACE_SECONDS", "effective_grace", "is_reconnect"]

MAX_GRACE_SECONDS = 86_400
"""The longest grace a server may set (config's MAX_STREAM_RESTART_GRACE_SECONDS, the operator's, is the same)."""


def effective_grace(guild_seconds: int | None, default: timedelta) -> timedelta:
    """The grace in effect for a guild: its own setting (0 turns it off), else the operator's default."""
    if guild_seconds is None:
        return max(default, timedelta(0))
    return timedelta(seconds=max(0, guild_seconds))


def is_reconnect(
    previous_ended_at: datetime | None,
    started_at: datetime,
    grace: timedelta,
    *,
    previous_started_at: datetime | None = None,
) -> bool:
    """Whether a stream that started at `started_at` continues the streamer's previous one, which ended (was
    last seen) at `previous_ended_at`: it began at most `grace` after that end. A grace of zero is off; a previous
    stream not known to have ended is no previous stream; a stream that began before the previous one did is
    the listing's stale copy, not a reconnect. A start a little before the recorded end still counts (the end is
    the last sighting, which Twitch's lagging listing may place after the new start)."""
    if grace <= timedelta(0) or previous_ended_at is None:
        return False
    if previous_started_at is not None and started_at < previous_started_at:
        return False
    return started_at - previous_ended_at <= grace
