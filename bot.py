"""The Discord bot: TwitchNotifierBot, built from injected services (see twitch_notifier.app.build).

`setup_hook` loads the cogs as extensions, syncs the slash commands and starts the poll loop; the gateway
events keep the database in step with the guilds. Run with `python bot.py` (configuration from the
environment or `.env`, see config.py): that is twitch_notifier.app.run.main().
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import discord
from discord.ext import commands

from database import Database
from twitch_api import TwitchClient
from twitch_notifier.cogs.context import CogServices
from twitch_notifier.core.notifier import CycleReport, Notifier
from twitch_notifier.core.poller import Housekeeping, Poller, describe_cycle
from twitch_notifier.core.schedule import CycleLoop
from twitch_notifier.discord_io.channels import CHANNEL_DELETED
from twitch_notifier.discord_io.replies import NO_MENTIONS
from twitch_notifier.discord_io.tree import NotifierCommandTree
from twitch_notifier.eventsub.service import EventSubService
from twitch_notifier.ops.health import HealthStatus, evaluate_health
from twitch_notifier.ops.metrics import Metrics

__all__ = [
    "COG_EXTENSIONS",
    "FORGET_ABSENT_GUILDS_AFTER",
    "SHUTDOWN_CYCLE_GRACE",
    "BotServices",
    "TwitchNotifierBot",
]

_log = logging.getLogger("bot")  # not __name__: run as a script it would read "__main__"

SHUTDOWN_CYCLE_GRACE = 10.0  # fly.toml's kill_timeout (30 s) leaves room for this and the rest of shutdown
FORGET_ABSENT_GUILDS_AFTER = timedelta(days=14)
"""A guild missing from READY is forgotten only after this long unseen: a READY can be partial (an outage)
or from another application's token, and forgetting a guild deletes its whole configuration."""
MAX_FORGOTTEN_SHARE = 0.1
"""More than this share of the held guilds missing at once looks like the wrong bot, not removals."""
PRESENCE_REFRESH_INTERVAL = 6 * 3600.0
"""How often the guilds the bot is in are recorded as seen while it runs."""
COG_EXTENSIONS = (
    "twitch_notifier.cogs.server_settings",
    "twitch_notifier.cogs.streamers",
    "twitch_notifier.cogs.listing",
)


@dataclass(frozen=True, slots=True)
class BotServices:
    """Everything the bot runs on, built once by twitch_notifier.app.build."""

    db: Database
    twitch: TwitchClient
    notifier: Notifier
    poller: Poller
    housekeeping: Housekeeping
    metrics: Metrics
    cogs: CogServices
    push: EventSubService | None = None
    """EventSub push (None when EVENTSUB_TRANSPORT=off): announces at once what polling would find later."""


class TwitchNotifierBot(commands.Bot):
    """Announces Twitch streams going live in the Discord servers that follow them."""

    def __init__(
        self,
        services: BotServices,
        *,
        check_interval: float,
        guild_ready_timeout: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channel and permission cache; nothing privileged is needed
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            tree_cls=NotifierCommandTree,
            guild_ready_timeout=guild_ready_timeout,
        )
        self.db = services.db
        self.twitch = services.twitch
        self.notifier = services.notifier
        self.poller = services.poller
        self.housekeeping = services.housekeeping
        self.metrics = services.metrics
        self.cog_services = services.cogs
        self.push = services.push
        self._push_started = False
        self.metrics.before_render(self._refresh_push_metrics)
        self.check_interval = check_interval
        self._monotonic = monotonic
        self.clock = clock
        self._presence_marked: float | None = None
        self._cycle_lock = asyncio.Lock()
        self._shutting_down = False
        self.started_at = monotonic()
        self.poll_loop = CycleLoop(self.poll_now, check_interval, before=self.wait_until_ready)

    async def setup_hook(self) -> None:
        # Runs at the end of each successful login; safe to run again if a sync failed and login is retried.
        for extension in COG_EXTENSIONS:
            if extension not in self.extensions:
                await self.load_extension(extension)
        synced = await self.tree.sync()
        _log.info("Synced %d slash commands", len(synced))
        if self.push is not None and not self._push_started:
            self._push_started = True
            self.push.start()
        self.poll_loop.start()

    async def close(self) -> None:
        """Shut down: let a poll cycle in flight finish (bounded), then close the gateway and HTTP."""
        self._shutting_down = True
        if self._cycle_lock.locked():
            _log.info("Waiting up to %s s for the poll cycle in flight to finish", SHUTDOWN_CYCLE_GRACE)
            try:
                await asyncio.wait_for(self._cycle_lock.acquire(), SHUTDOWN_CYCLE_GRACE)
            except TimeoutError:
                _log.warning("The poll cycle did not finish in time; abandoning it (its state is saved per post)")
            else:
                self._cycle_lock.release()
        # _shutting_down makes poll_now a no-op, so no new cycle starts while the loop is stopped.
        await self.poll_loop.stop()
        if self.push is not None:
            await self.push.stop()
        await super().close()

    def health(self) -> HealthStatus:
        """Healthy per evaluate_health (push being down is not unhealthy: polling carries on), with
        EventSub's state among the details."""
        ws = self.ws
        status = evaluate_health(
            gateway_connected=self.is_ready() and not self.is_closed() and ws is not None and ws.open,
            last_cycle_finished=self.poller.last_finished,
            started_at=self.started_at,
            interval=self.check_interval,
            now=self._monotonic(),
        )
        if self.push is None:
            return HealthStatus(status.healthy, status.reason, {**status.details, "eventsub": "off"})
        push = self.push.status()
        details = {
            "transport": push.transport,
            "connected": push.connected,
            "shards_enabled": push.shards_connected,
            "shards": push.shards_total,
            "streamers_pushed": push.subscriptions.pushed,
            "streamers_poll_only": push.subscriptions.poll_only + sum(push.subscriptions.revoked.values()),
        }
        return HealthStatus(status.healthy, status.reason, {**status.details, "eventsub": details})

    def _refresh_push_metrics(self) -> None:
        if self.push is None:
            return
        push = self.push.status()
        summary = push.subscriptions
        self.metrics.set_eventsub(
            connected=push.connected,
            shards_enabled=push.shards_connected,
            shards_total=push.shards_total,
            subscriptions=summary.by_status,
            streamers={
                "push": summary.pushed,
                "poll_only": summary.poll_only,
                "revoked": sum(summary.revoked.values()),
            },
            cost=summary.total_cost,
            max_cost=summary.max_total_cost,
        )

    # -- gateway events ----------------------------------------------------------------------------

    async def on_ready(self) -> None:
        _log.info("Connected as %s in %d guilds", self.user, len(self.guilds))
        await self._mark_guilds_seen()
        await self._forget_long_absent_guilds()

    async def _mark_guilds_seen(self) -> None:
        # Unavailable guilds are listed in READY too (as stubs), so they count as present.
        await self.db.mark_guilds_seen((guild.id for guild in self.guilds), self.clock())
        self._presence_marked = self._monotonic()

    async def _forget_long_absent_guilds(self) -> None:
        """Guilds that removed the bot while it was offline are forgotten once they have been absent from
        every READY for FORGET_ABSENT_GUILDS_AFTER, and never more than a small share at once."""
        present = {guild.id for guild in self.guilds}
        cutoff = self.clock() - FORGET_ABSENT_GUILDS_AFTER
        absent = [g for g in await self.db.absent_guilds(cutoff) if g not in present]
        if not absent:
            return
        held_ids = await self.db.guild_ids()
        held = len(held_ids)
        if not held_ids & present:
            # Not one of the guilds the database knows is in READY: another application's token, or a READY
            # that lists nothing. Whatever it is, it is no evidence that the bot was removed from anywhere.
            _log.warning(
                "None of the %d guilds in the database is in Discord's READY (is DISCORD_TOKEN another "
                "application's?); nothing is deleted",
                held,
            )
            return
        if len(absent) > max(1, int(held * MAX_FORGOTTEN_SHARE)):
            _log.warning(
                "%d of the %d guilds in the database have been missing from Discord's READY for over %d days; "
                "that many at once looks like another bot's token or a Discord problem, so nothing is deleted. "
                "Remove them by hand if the bot really left them",
                len(absent),
                held,
                FORGET_ABSENT_GUILDS_AFTER.days,
            )
            return
        for guild_id in absent:
            if not await self.db.delete_guild(guild_id, unseen_since=cutoff):
                continue  # seen again meanwhile (it re-added the bot)
            _log.info(
                "Guild %s has been missing from READY for over %d days (the bot was removed while offline): "
                "its streamers and settings were deleted",
                guild_id,
                FORGET_ABSENT_GUILDS_AFTER.days,
            )

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.db.mark_guilds_seen([guild.id], self.clock())

    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self.db.mark_guilds_seen([guild.id], self.clock())

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.db.delete_guild(guild.id)
        if self.push is not None:
            self.push.followed_changed()
        _log.info("Removed from guild %s (%s): its streamers and settings were deleted", guild.name, guild.id)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        moved, marked = await self.db.channel_deleted(channel.guild.id, channel.id, CHANNEL_DELETED)
        if moved or marked:
            _log.info(
                "Channel %s of guild %s was deleted: %d subscriptions moved to the default channel, %d marked",
                channel.id,
                channel.guild.id,
                moved,
                marked,
            )

    # -- the poll loop (started by setup_hook, on core.schedule's timing) --------------------------

    async def poll_now(self) -> None:
        """Run one cycle; any failure is logged and the next cycle runs as usual."""
        if self._shutting_down:
            return
        async with self._cycle_lock:
            started = time.monotonic()
            try:
                await self.housekeeping.validate_token_if_due()
                report = await self.poller.run_cycle()
            except Exception:
                self.metrics.observe_cycle(time.monotonic() - started, False, 0, 0)
                _log.exception("Poll cycle failed; the next one runs in %s s", self.check_interval)
                return
            self._record_cycle(report)
            try:
                await self.housekeeping.refresh_streamers_if_due()
                if (
                    self._presence_marked is None
                    or self._monotonic() - self._presence_marked > PRESENCE_REFRESH_INTERVAL
                ):
                    await self._mark_guilds_seen()
            except Exception:
                _log.exception("Housekeeping failed; it is tried again next cycle")

    def _record_cycle(self, report: CycleReport) -> None:
        self.metrics.observe_cycle(report.duration, True, report.announced, report.announce_failed)
        if self.poller.last_success is not None:
            self.metrics.mark_success(self.poller.last_success)
        self.metrics.set_counts(
            streamers=report.checked + report.failed, guilds=len(self.guilds), live_streams=report.live
        )
        if line := describe_cycle(report):
            _log.info("%s", line)


if __name__ == "__main__":
    from twitch_notifier.app.run import main

    sys.exit(main())
