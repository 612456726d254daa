"""The one place the bot is assembled from its parts: used by `run()`, the end-to-end harness and the
benchmarks alike, so what they test can never drift from what runs in production."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot import BotServices, TwitchNotifierBot
from config import Settings
from database import Database
from twitch_api import TwitchClient
from twitch_notifier.cogs.context import CogServices
from twitch_notifier.core.notifier import Notifier
from twitch_notifier.core.poller import Housekeeping, Poller
from twitch_notifier.core.ports import Announcer
from twitch_notifier.core.push import PushHandler
from twitch_notifier.core.subscriptions import TWITCH_BUDGET, SubscriptionRules
from twitch_notifier.discord_io.announcer import CALL_TIMEOUT, DiscordAnnouncer, GuildDirectory
from twitch_notifier.discord_io.pacer import SendPacer
from twitch_notifier.discord_io.sharding import IDENTIFY_INTERVAL, ShardScopedAnnouncer
from twitch_notifier.eventsub.service import EventSubService, Transport
from twitch_notifier.models import Category
from twitch_notifier.ops.metrics import Metrics
from twitch_notifier.rendering.cards import Cards
from twitch_notifier.twitch.mapping import category_from

__all__ = ["build_bot", "build_twitch_client"]


def build_twitch_client(settings: Settings, metrics: Metrics | None = None, **options: float) -> TwitchClient:
    """The Helix client for these settings; `options` tune its retries (the tests shorten the backoff)."""
    return TwitchClient(
        settings.twitch_client_id,
        settings.twitch_client_secret,
        api_base=settings.twitch_api_base,
        auth_base=settings.twitch_auth_base,
        on_response=metrics.observe_twitch_response if metrics is not None else None,
        **options,  # type: ignore[arg-type]
    )


def build_bot(
    settings: Settings,
    db: Database,
    twitch: TwitchClient,
    *,
    metrics: Metrics | None = None,
    pacer: SendPacer | None = None,
    guild_ready_timeout: float = 2.0,
    discord_call_timeout: float = CALL_TIMEOUT,
    twitch_budget: float = TWITCH_BUDGET,
    monotonic: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    eventsub_options: Mapping[str, Any] | None = None,
    identify_interval: float = IDENTIFY_INTERVAL,
) -> TwitchNotifierBot:
    """A TwitchNotifierBot wired to `db` and `twitch`, not yet started.

    `monotonic` drives the schedule of chores and the health check's staleness, `wall_clock` the Unix
    times exported as metrics, `clock` the dates the bot decides by (live-card throttle, pruning, how long
    a guild has been unseen); tests move them instead of reaching into the objects. `eventsub_options` tune
    the EventSub service (shard count, keepalive, backoff) for tests; `identify_interval` spaces the Discord
    shards' IDENTIFYs of one max_concurrency bucket (Discord allows one per 5 s; a fake may allow more).

    One SendPacer serves every shard: Discord's global limit is per bot token, not per shard."""
    metrics = metrics or Metrics()
    guilds = GuildDirectory()  # the announcer exists before the bot it posts through

    async def box_art(game_ids: list[str]) -> list[Category]:
        return [category_from(game) for game in await twitch.get_games(game_ids)]

    announcer: Announcer = DiscordAnnouncer(guilds, pacer or SendPacer(), call_timeout=discord_call_timeout)
    if settings.shard_count is not None and settings.shard_ids is not None:
        # Guilds of the other shards are another process's: not in this cache, and not "deleted channels".
        announcer = ShardScopedAnnouncer(announcer, shard_count=settings.shard_count, shard_ids=settings.shard_ids)
    notifier = Notifier(
        db,
        announcer,
        renderer=Cards(),
        offline_after_polls=settings.offline_after_polls,
        update_interval=timedelta(seconds=settings.live_update_interval_seconds),
        vod_lookup=twitch.find_vod_url,
        art_lookup=box_art,
        clock=clock,
    )
    push = _build_push(settings, db, twitch, notifier, metrics, clock, eventsub_options or {})
    services = BotServices(
        db=db,
        twitch=twitch,
        notifier=notifier,
        poller=Poller(db, twitch, notifier, monotonic=monotonic, wall_clock=wall_clock),
        housekeeping=Housekeeping(
            db,
            twitch,
            notifier,
            monotonic=monotonic,
            clock=clock,
            history_retention=timedelta(days=settings.stats_retention_days),
        ),
        metrics=metrics,
        cogs=CogServices(
            db=db,
            twitch=twitch,
            rules=SubscriptionRules(
                db,
                twitch,
                max_per_guild=settings.max_streamers_per_guild,
                twitch_budget=twitch_budget,
                retirer=notifier,
                on_followed_changed=push.followed_changed if push is not None else None,
            ),
            push_enabled=push is not None,
            clock=clock,
        ),
        push=push,
    )
    bot = TwitchNotifierBot(
        services,
        check_interval=settings.check_interval_seconds,
        guild_ready_timeout=guild_ready_timeout,
        shard_count=settings.shard_count,
        shard_ids=settings.shard_ids,
        identify_interval=identify_interval,
        monotonic=monotonic,
        clock=clock,
    )
    guilds.client = bot
    if push is not None:
        push.on_resumed = bot.poll_loop.poke  # Twitch never replays what it could not push: poll at once
    return bot


def _build_push(
    settings: Settings,
    db: Database,
    twitch: TwitchClient,
    notifier: Notifier,
    metrics: Metrics,
    clock: Callable[[], datetime],
    options: Mapping[str, Any],
) -> EventSubService | None:
    """EventSub push for EVENTSUB_TRANSPORT (None when it is off: the bot polls, as it always does)."""
    if settings.eventsub_transport == "off":
        return None
    handler = PushHandler(notifier, twitch.get_channels, on_announced=metrics.observe_push, clock=clock)
    return EventSubService(
        transport=Transport(settings.eventsub_transport),
        twitch=twitch,
        store=db,
        handler=handler,
        websocket_url=settings.eventsub_ws_url,
        callback_url=settings.eventsub_callback_url,
        webhook_path=settings.webhook_path,
        secret=settings.eventsub_secret,
        **options,
    )
