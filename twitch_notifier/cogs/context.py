"""What the cogs are given: the services they use, instead of the whole Bot.

The bot carries one `CogServices` as `bot.cog_services`; each extension's `setup()` takes it from there
and hands its cog exactly what that cog needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from discord.ext import commands

from database import Database
from twitch_api import TwitchClient
from twitch_notifier.core.subscriptions import SubscriptionRules
from twitch_notifier.discord_io.pacer import SendPacer

__all__ = ["CogServices", "services_of"]


@dataclass(frozen=True, slots=True)
class CogServices:
    db: Database
    twitch: TwitchClient
    rules: SubscriptionRules
    push_enabled: bool = False
    """EventSub push is on: /streamers says which streamers are polled only, and /live trusts what push said."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The date the bot decides by (the same one the history is written with): /stats' periods end now."""
    restart_grace_seconds: int | None = None
    """The operator's STREAM_RESTART_GRACE_SECONDS (/settings shows it for a server without its own)."""
    pacer: SendPacer | None = None
    """The announcer's pacer: the opt-in role changes of "Notify me" presses share the global budget with posts."""
    live_events_changed: Callable[[], None] | None = None
    """Wakes the live scheduled events (core.live_events) when a server turns them on or off."""


def services_of(bot: commands.Bot) -> CogServices:
    """The services a bot built by app.build carries; a clear error for any other bot."""
    services = getattr(bot, "cog_services", None)
    if not isinstance(services, CogServices):
        raise TypeError("the notifier's cogs need a bot with `cog_services` (see twitch_notifier.app.build)")
    return services
