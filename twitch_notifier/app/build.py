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
from twitch_notifier.cluster.coordinator import Coordinator, PostgresCoordinator, SoloCoordinator
from twitch_notifier.cogs.context import CogServices
from twitch_notifier.core.live_events import LiveEvents
from twitch_notifier.core.notifier import Notifier
from twitch_notifier.core.poller import Housekeeping, Poller
from twitch_notifier.core.ports import Announcer
from twitch_notifier.core.publishing import Publisher
from twitch_notifier.core.push import PushHandler
from twitch_notifier.core.schedule_events import ScheduleEvents
from twitch_notifier.core.subscriptions import TWITCH_BUDGET, SubscriptionRules
from twitch_notifier.discord_io.announcer import CALL_TIMEOUT, DiscordAnnouncer, GuildDirectory
from twitch_notifier.discord_io.events import DiscordEventCalendar
from twitch_notifier.discord_io.pacer import DEFAULT_RATE, SendPacer
from twitch_notifier.discord_io.sharding import IDENTIFY_INTERVAL, ShardScopedAnnouncer
from twitch_notifier.eventsub.service import EventSubService, Transport
from twitch_notifier.models import Category, ShardScope
from twitch_notifier.ops.metrics import Metrics
from twitch_notifier.rendering.cards import Cards
from twitch_notifier.twitch.mapping import category_from

__all__ = ["build_bot", "build_coordinator", "build_twitch_client", "pacer_rate", "shard_scope"]


def shard_scope(settings: Settings) -> ShardScope | None:
    """The shards this process posts for, when SHARD_IDS names only some of them (None: every guild)."""
    if settings.shard_count is None or settings.shard_ids is None:
        return None
    return ShardScope(settings.shard_count, tuple(settings.shard_ids))


def pacer_rate(settings: Settings) -> float:
    """This process's share of the bot token's global limit: processes running some of the shards share the
    budget in proportion to their shards (Discord counts every process of one token together). Each pacer lets
    one send more through in any second than its rate (its burst), so each share gives one back: two processes
    at 24/s each were measured at 51 sends in one second (bench/cluster_fanout.py), at 23/s they stay under 50."""
    scope = shard_scope(settings)
    if scope is None:
        return DEFAULT_RATE
    return max(1.0, DEFAULT_RATE * len(scope.ids) / scope.count - 1.0)


def build_coordinator(settings: Settings) -> Coordinator:
    """PostgreSQL (DATABASE_URL): shard locks and the leader election; SQLite: one process, always the leader."""
    if not settings.database_url:
        return SoloCoordinator(settings.shard_plan)
    return PostgresCoordinator(settings.database_url, shard_scope(settings))


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
    coordinator: Coordinator | None = None,
) -> TwitchNotifierBot:
    """A TwitchNotifierBot wired to `db` and `twitch`, not yet started.

    `monotonic` drives the schedule of chores and the health check's staleness, `wall_clock` the Unix
    times exported as metrics, `clock` the dates the bot decides by (live-card throttle, pruning, how long
    a guild has been unseen); tests move them instead of reaching into the objects. `eventsub_options` tune
    the EventSub service (shard count, keepalive, backoff) for tests; `identify_interval` spaces the Discord
    shards' IDENTIFYs of one max_concurrency bucket (Discord allows one per 5 s; a fake may allow more).

    One SendPacer serves every shard of the process: Discord's global limit is per bot token, not per shard; with
    SHARD_IDS each process paces its share of it. `coordinator` defaults to the one the settings call for."""
    metrics = metrics or Metrics()
    guilds = GuildDirectory()  # the announcer exists before the bot it posts through

    async def box_art(game_ids: list[str]) -> list[Category]:
        return [category_from(game) for game in await twitch.get_games(game_ids)]

    coordinator = coordinator or build_coordinator(settings)
    discord_announcer = DiscordAnnouncer(
        guilds, pacer or SendPacer(pacer_rate(settings)), call_timeout=discord_call_timeout
    )
    announcer: Announcer = discord_announcer
    if settings.shard_count is not None and settings.shard_ids is not None:
        # Guilds of the other shards are another process's: not in this cache, and not "deleted channels".
        announcer = ShardScopedAnnouncer(announcer, shard_count=settings.shard_count, shard_ids=settings.shard_ids)
    notifier = Notifier(
        db,
        announcer,
        renderer=Cards(),
        offline_after_polls=settings.offline_after_polls,
        update_interval=timedelta(seconds=settings.live_update_interval_seconds),
        restart_grace=timedelta(seconds=settings.stream_restart_grace_seconds),
        vod_lookup=twitch.find_vod_url,
        art_lookup=box_art,
        clock=clock,
        scope=shard_scope(settings),
        owner=coordinator.owner,
        on_live_changed=coordinator.live_changed if settings.database_url else None,
        # Only what this process posted is published: its own guilds, so the unscoped announcer will do.
        publisher=Publisher(
            db, discord_announcer, clock=clock, on_result=lambda result: metrics.observe_publish(result.value)
        ),
    )
    # Live scheduled events: after each round's posts, at the shared pacer's background priority.
    calendar = DiscordEventCalendar(guilds, discord_announcer.pacer, call_timeout=discord_call_timeout)
    # Twitch schedules as upcoming events: read by the process that polls Twitch, events made for this one's guilds.
    schedule_events = ScheduleEvents(
        db, calendar, twitch, clock=clock, scope=shard_scope(settings), may_fetch=lambda: coordinator.is_leader
    )
    live_events = LiveEvents(
        db,
        calendar,
        clock=clock,
        update_interval=timedelta(seconds=settings.live_update_interval_seconds),
        scope=shard_scope(settings),
        upcoming=schedule_events,
    )
    notifier.after_round = live_events.poke

    def events_changed() -> None:
        live_events.wake()
        schedule_events.wake()

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
                on_followed_changed=_followed_changed(push, coordinator),
            ),
            push_enabled=push is not None,
            live_events_changed=events_changed,
            clock=clock,
            restart_grace_seconds=settings.stream_restart_grace_seconds,
            pacer=discord_announcer.pacer,
        ),
        push=push,
        coordinator=coordinator,
        live_events=live_events,
        schedule_events=schedule_events,
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


def _followed_changed(push: EventSubService | None, coordinator: Coordinator) -> Callable[[], None] | None:
    """What a follow or unfollow sets off: the EventSub sync here when this process leads, and a word to the
    leader when another process does (its sync follows)."""
    if push is None:
        return None

    def changed() -> None:
        if coordinator.is_leader:
            push.followed_changed()
        else:
            coordinator.tell_followed_changed()

    return changed


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
