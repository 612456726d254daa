"""The Discord bot: TwitchNotifierBot, built from injected services (see twitch_notifier.app.build).

`setup_hook` loads the cogs as extensions, syncs the slash commands and starts the poll loop; the gateway
events keep the database in step with the guilds. The bot is sharded (AutoShardedBot): one process runs every
shard (or those of SHARD_IDS), as many as Discord recommends unless SHARD_COUNT says. Run with `python bot.py`
(configuration from the environment or `.env`, see config.py): that is twitch_notifier.app.run.main().
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import discord
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket, ReconnectWebSocket
from discord.shard import SessionStartLimits, Shard

from database import Database
from twitch_api import TwitchClient
from twitch_notifier.cluster.coordinator import Coordinator, SoloCoordinator
from twitch_notifier.cogs.context import CogServices
from twitch_notifier.core.live_events import LiveEvents
from twitch_notifier.core.notifier import CycleReport, Notifier
from twitch_notifier.core.poller import Housekeeping, Poller, describe_cycle
from twitch_notifier.core.schedule import CycleLoop
from twitch_notifier.core.schedule_events import ScheduleEvents
from twitch_notifier.discord_io.announcer import LONGEST_RATE_LIMIT_WAIT
from twitch_notifier.discord_io.channels import CHANNEL_DELETED
from twitch_notifier.discord_io.replies import NO_MENTIONS
from twitch_notifier.discord_io.sharding import IDENTIFY_INTERVAL, IdentifyPacer, ShardLaunchError, shard_of
from twitch_notifier.discord_io.tree import NotifierCommandTree
from twitch_notifier.eventsub.service import EventSubService
from twitch_notifier.models import ShardScope
from twitch_notifier.ops.health import HealthStatus, ShardStatus, evaluate_health
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
FOLLOWER_ROUND_INTERVAL = 10.0
"""Seconds between two rounds of a process that does not lead, when no NOTIFY woke it sooner."""
MAX_FORGOTTEN_SHARE = 0.1
"""More than this share of the held guilds missing at once looks like the wrong bot, not removals."""
PRESENCE_REFRESH_INTERVAL = 6 * 3600.0
"""How often the guilds the bot is in are recorded as seen while it runs."""
_NOT_RECONNECTABLE = frozenset({4004, 4010, 4011, 4012, 4013, 4014})
"""Gateway close codes after which discord.py does not reconnect (DiscordWebSocket._can_handle_close)."""
SESSION_STARTS_LOW = 300
"""Fewer session starts (IDENTIFYs) left than this is worth a warning: Discord allows 1,000 a day, and running out
terminates every session and resets the bot's token."""
COG_EXTENSIONS = (
    "twitch_notifier.cogs.server_settings",
    "twitch_notifier.cogs.streamers",
    "twitch_notifier.cogs.listing",
    "twitch_notifier.cogs.stats",
    "twitch_notifier.cogs.diagnostics",
    "twitch_notifier.cogs.notify_button",
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
    coordinator: Coordinator = field(default_factory=SoloCoordinator)
    """Which shards this process runs and whether it leads (polls Twitch, keeps EventSub): always, with SQLite."""
    live_events: LiveEvents | None = None
    """The guilds' live scheduled events, kept after each round of posts (core.live_events)."""
    schedule_events: ScheduleEvents | None = None
    """The streamers' Twitch schedules as upcoming events (core.schedule_events)."""


class TwitchNotifierBot(commands.AutoShardedBot):
    """Announces Twitch streams going live in the Discord servers that follow them."""

    def __init__(
        self,
        services: BotServices,
        *,
        check_interval: float,
        guild_ready_timeout: float = 2.0,
        shard_count: int | None = None,
        shard_ids: Sequence[int] | None = None,
        identify_interval: float = IDENTIFY_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`shard_count` None asks Discord (GET /gateway/bot); `shard_ids` None runs every shard. IDENTIFYs of one
        max_concurrency bucket are `identify_interval` seconds apart (Discord: one per 5 s; tests shorten it)."""
        intents = discord.Intents.none()
        intents.guilds = True  # channel and permission cache; nothing privileged is needed
        sharding: dict[str, Any] = {}
        if shard_count is not None:
            sharding["shard_count"] = shard_count
        if shard_ids is not None:
            sharding["shard_ids"] = list(shard_ids)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            tree_cls=NotifierCommandTree,
            guild_ready_timeout=guild_ready_timeout,
            # Memory per guild is what limits one process: cache channels, roles and the bot's own member only
            # (slash commands bring the invoking member with them), never ask for member lists, keep no messages.
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            max_messages=None,
            max_ratelimit_timeout=LONGEST_RATE_LIMIT_WAIT,  # a publish refused for the hour gives up, not hangs
            **sharding,
        )
        self._identify_pacer = IdentifyPacer(identify_interval)
        self.session_start_limits: SessionStartLimits | None = None
        """Discord's session_start_limit as read at the last connect (None before, or if it could not be read)."""
        self.gateway_problem: str | None = None
        """Why the gateway is not connected when that is known (waiting for session starts, refused by Discord)."""
        self._ready_shards: set[int] = set()  # shards that have had their guilds since start-up
        self._online_shards: set[int] = set()  # shards whose session is up now (READY or RESUMED)
        self._absent_check_pending = False
        self._close_requested = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.db = services.db
        self.twitch = services.twitch
        self.notifier = services.notifier
        self.poller = services.poller
        self.housekeeping = services.housekeeping
        self.metrics = services.metrics
        self.cog_services = services.cogs
        self.push = services.push
        self._push_started = False
        self.coordinator = services.coordinator
        self.live_events = services.live_events
        self.schedule_events = services.schedule_events
        self.coordinator.on_elected = self._elected
        self.coordinator.on_deposed = self._deposed
        self.coordinator.on_live = self._woken
        self.coordinator.on_followed = self._followed_elsewhere
        self._coordinator_started = False
        self._setup_done = False
        self.fatal_problem: str | None = None
        """Why the bot stopped itself (it lost the leader lock), for run() to exit with a failure."""
        self._last_round_finished: float | None = None  # a follower's last fan-out round (monotonic)
        self.metrics.before_render(self._refresh_push_metrics)
        self.metrics.before_render(self._refresh_shard_metrics)
        self.metrics.before_render(self._refresh_cluster_metrics)
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
        if self.shard_ids is None or 0 in self.shard_ids:
            # The command list is the application's, not a shard's: with SHARD_IDS, the process running shard 0
            # syncs it (scale-facts §2.2), rather than every process at every start.
            synced = await self.tree.sync()
            _log.info("Synced %d slash commands", len(synced))
        await self.start_coordinator()
        self._setup_done = True
        if self.live_events is not None:
            self.live_events.start()
        if self.schedule_events is not None:
            self.schedule_events.start()
        if self.coordinator.is_leader:
            self._start_push()
        else:
            self.poll_loop.interval = self._follower_interval()
        self.poll_loop.start()

    async def start_coordinator(self) -> None:
        """Hold this process's shard locks (waiting while another process holds one) and join the leader election;
        before the gateway connects, so no event of a shard arrives while another process still runs it. run()
        calls it first, to turn an unreachable database into one message; setup_hook makes sure of it."""
        if not self._coordinator_started:
            self._coordinator_started = True
            await self.coordinator.start()
            if self.coordinator.status().mode != "solo":
                # Whoever held these shards before is gone (its locks went with its session): its claims on
                # announcements it had not posted yet are ours to post now, under the same nonces.
                scope = self.notifier.scope or ShardScope(1, (0,))  # every shard: every guild
                dropped = await self.db.drop_claims(scope, except_owner=self.coordinator.owner)
                if dropped:
                    _log.info("Took over %d unfinished announcement(s) of this shard range's previous process", dropped)

    def _start_push(self) -> None:
        if self.push is not None and not self._push_started:
            self._push_started = True
            self.push.start()

    # -- the cluster (several processes on PostgreSQL; see twitch_notifier.cluster.coordinator) ----

    async def _elected(self) -> None:
        """This process leads now: it polls Twitch at once (the previous leader may have died mid-cycle)."""
        self.poll_loop.interval = self.check_interval
        if self._setup_done:
            self._start_push()
            self.poll_loop.poke()

    def _deposed(self) -> None:
        """The leader's database session is gone, so another process may lead already: stop at once (no poll, no
        EventSub) and exit, for the supervisor to restart this process as a follower."""
        self.fatal_problem = "lost the database session holding the leader lock"
        task = asyncio.get_running_loop().create_task(self.close(), name="stand down")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _follower_interval(self) -> float:
        """How often a process that does not lead looks at the tables on its own: the leader's NOTIFY wakes it at
        once, but a notification sent while it was reconnecting is never delivered (scale-facts §4.4)."""
        return min(self.check_interval, FOLLOWER_ROUND_INTERVAL)

    def _woken(self) -> None:
        if not self.coordinator.is_leader:
            self.poll_loop.poke()  # the leader recorded live state: post for this process's guilds now

    def _followed_elsewhere(self) -> None:
        if self.push is not None and self.coordinator.is_leader:
            self.push.followed_changed()

    async def close(self) -> None:
        """Shut down: let a poll cycle in flight finish (bounded), then close the gateway and HTTP."""
        self._shutting_down = True
        self._close_requested.set()
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
        if self.live_events is not None:
            await self.live_events.stop()
        if self.schedule_events is not None:
            await self.schedule_events.stop()
        if self.push is not None:
            await self.push.stop()
        await self.notifier.stop()  # the card rounds pushes left running in the background
        await self.coordinator.stop()
        await super().close()

    # -- shards ------------------------------------------------------------------------------------

    def own_shard_ids(self) -> list[int]:
        """The shards this process runs (empty until the count is known: SHARD_COUNT, or Discord's at connect)."""
        if self.shard_ids is not None:
            return sorted(self.shard_ids)
        return list(range(self.shard_count)) if self.shard_count else []

    @property
    def ready_shards(self) -> frozenset[int]:
        """The shards that have had every guild of their READY since start-up."""
        return frozenset(self._ready_shards)

    def owns_guild(self, guild_id: int, own: Collection[int] | None = None) -> bool:
        """Whether the guild is on one of this process's shards (`own`, if already at hand), so that its events
        reach this process."""
        if not self.shard_count:
            return True
        return shard_of(guild_id, self.shard_count) in (own if own is not None else self.own_shard_ids())

    def shard_statuses(self) -> list[ShardStatus]:
        """Every shard this process runs: connected (session up, socket open), heartbeat latency, guilds."""
        guilds = Counter(guild.shard_id for guild in self.guilds)
        statuses = []
        for shard_id in self.own_shard_ids():
            info = self.get_shard(shard_id)
            latency = info.latency if info is not None else None
            statuses.append(
                ShardStatus(
                    shard_id,
                    connected=info is not None and not info.is_closed() and shard_id in self._online_shards,
                    latency=latency if latency is not None and math.isfinite(latency) else None,
                    guilds=guilds.get(shard_id, 0),
                )
            )
        return statuses

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """One IDENTIFY per max_concurrency bucket per 5 s, as Discord counts them (discord.py's default waits 5 s
        before every IDENTIFY but the first, whatever the bucket)."""
        shard = shard_id or 0
        waited = await self._identify_pacer.wait(shard)
        # And across the processes of one database (SHARD_IDS), which Discord counts together.
        await self.coordinator.identify_turn(self._identify_pacer.bucket(shard), self._identify_pacer.interval)
        if waited:
            _log.debug("Shard %s waited %.1f s for its IDENTIFY turn", shard_id, waited)

    async def launch_shards(self) -> None:
        """discord.py's (discord/shard.py), after reading Discord's session start limit: the shard count when
        SHARD_COUNT is not set, how many shards may IDENTIFY at once, whether enough session starts are left.
        Once Discord has refused a shard for good (4011, say), the others are not launched: they would spend
        session starts on the same refusal, which connect() then raises."""
        if self.is_closed():
            return
        await self._read_session_start_limit()
        if self._close_requested.is_set():
            return
        self._connection.shard_count = self.shard_count
        shard_ids = self.shard_ids or range(self.shard_count)
        self._connection.shard_ids = shard_ids
        for shard_id in shard_ids:
            if self._refused_shard() is not None:
                break
            await self.launch_shard(DiscordWebSocket.DEFAULT_GATEWAY, shard_id, initial=shard_id == shard_ids[0])

    def _refused_shard(self) -> int | None:
        """A launched shard whose connection Discord closed with a code no reconnect can fix, if any."""
        shards: dict[int, Shard] = self._discord_internal("_AutoShardedClient__shards")
        for shard_id, shard in shards.items():
            if shard.ws.socket.close_code in _NOT_RECONNECTABLE:
                return shard_id
        return None

    async def _read_session_start_limit(self) -> None:
        while True:
            try:
                recommended, _, data = await self.http.get_bot_gateway()
            except discord.GatewayNotFound:
                if cast("int | None", self.shard_count) is None:
                    raise  # no count to start with: an outage, which run_session retries
                _log.warning(
                    "Could not read Discord's session start limit (GET /gateway/bot); starting %d shard(s) with "
                    "one IDENTIFY per %.1f s",
                    len(self.own_shard_ids()),
                    self._identify_pacer.interval,
                )
                return
            limits = SessionStartLimits(**data)
            self.session_start_limits = limits
            self._identify_pacer.max_concurrency = limits.max_concurrency
            if cast("int | None", self.shard_count) is None:  # discord.py annotates it int, but it starts as None
                self.shard_count = recommended
            starting = len(self.own_shard_ids())
            self.metrics.set_session_starts(
                remaining=limits.remaining, total=limits.total, max_concurrency=limits.max_concurrency
            )
            _log.info(
                "Discord recommends %d shard(s); this process runs %d of %d. Session starts left: %d of %d; "
                "%d IDENTIFY(s) per 5 s",
                recommended,
                starting,
                self.shard_count,
                limits.remaining,
                limits.total,
                limits.max_concurrency,
            )
            if limits.remaining >= starting:
                if limits.remaining - starting < SESSION_STARTS_LOW:
                    _log.warning(
                        "Only %d Discord session starts are left until they reset in %.0f min: is the bot "
                        "restarting in a loop? Running out makes Discord end every session and reset the token",
                        limits.remaining,
                        limits.reset_after / 60_000,
                    )
                self.gateway_problem = None
                return
            self.gateway_problem = (
                f"waiting {limits.reset_after / 60_000:.0f} min for Discord's session starts to reset "
                f"({limits.remaining} left, {starting} needed)"
            )
            _log.error(
                "Discord allows %d more session starts and this process needs %d: waiting %.0f min for them to "
                "reset rather than spend the last ones (running out makes Discord reset the bot's token)",
                limits.remaining,
                starting,
                limits.reset_after / 60_000,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._close_requested.wait(), limits.reset_after / 1000)
            if self._close_requested.is_set():
                return

    async def launch_shard(self, gateway: yarl.URL, shard_id: int, *, initial: bool = False) -> None:
        """Open one shard's connection. discord.py's own logs a traceback and retries every 5 s, forever and out of
        run_session's sight; here a failure propagates, so run_session backs off and logs one line per attempt.
        A shard still connected from an attempt that failed at a later shard is kept (no second session)."""
        shards = self._discord_internal("_AutoShardedClient__shards")
        kept = shards.get(shard_id)
        if kept is not None and kept.ws.open:
            return
        connecting = DiscordWebSocket.from_client(self, initial=initial, gateway=gateway, shard_id=shard_id)
        try:
            ws = await asyncio.wait_for(connecting, timeout=self.shard_connect_timeout)
        except ReconnectWebSocket as exc:  # closed before HELLO: discord.py would reconnect; so will run_session
            raise ShardLaunchError(shard_id, "the gateway closed the connection before it was ready") from exc
        queue = self._discord_internal("_AutoShardedClient__queue")
        shards[shard_id] = shard = Shard(ws, self, queue.put_nowait)
        shard.launch()

    def _discord_internal(self, name: str) -> Any:
        """An attribute of discord.py's AutoShardedClient that launch_shard needs (discord.py 2.7, shard.py)."""
        try:
            return vars(self)[name]
        except KeyError:
            raise RuntimeError(
                f"discord.py's AutoShardedClient has no {name} (discord.py {discord.__version__}): compare "
                "TwitchNotifierBot.launch_shard with discord/shard.py's launch_shard"
            ) from None

    def _refresh_cluster_metrics(self) -> None:
        cluster = self.coordinator.status()
        self.metrics.set_cluster(leader=self.coordinator.is_leader, connected=cluster.connected)

    def _refresh_shard_metrics(self) -> None:
        self.metrics.set_shards((s.id, s.connected, s.latency, s.guilds) for s in self.shard_statuses())

    def health(self) -> HealthStatus:
        """Healthy per evaluate_health (every shard of this process connected; push being down is not unhealthy:
        polling carries on), with each shard and EventSub's state among the details. A process that is not the
        leader is as fresh as its last round of posting (the leader polls)."""
        finished = self.poller.last_finished
        if not self.coordinator.is_leader and self._last_round_finished is not None:
            finished = max(finished or 0.0, self._last_round_finished)
        status = evaluate_health(
            gateway_connected=self.is_ready() and not self.is_closed(),
            last_cycle_finished=finished,
            started_at=self.started_at,
            interval=self.check_interval,
            now=self._monotonic(),
            shards=self.shard_statuses(),
            gateway_problem=self.gateway_problem,
        )
        cluster = self.coordinator.status()
        if cluster.mode != "solo":
            status = HealthStatus(status.healthy, status.reason, {**status.details, "cluster": cluster.details()})
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

    async def on_shard_connect(self, shard_id: int) -> None:
        self._online_shards.add(shard_id)  # READY: the session is up (its guilds follow)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self._online_shards.add(shard_id)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self._online_shards.discard(shard_id)

    async def on_shard_ready(self, shard_id: int) -> None:
        """Shard `shard_id` has had every guild of its READY. Once all of this process's shards have, guilds
        missing from READY can be told apart from guilds whose shard is still connecting."""
        self._ready_shards.add(shard_id)
        if self._absent_check_pending and self._all_shards_ready():
            self._absent_check_pending = False
            await self._forget_long_absent_guilds()

    def _all_shards_ready(self) -> bool:
        own = self.own_shard_ids()
        return bool(own) and self._ready_shards.issuperset(own)

    async def on_ready(self) -> None:
        # discord.py dispatches this once every shard of the process is ready, and again after later re-IDENTIFYs.
        _log.info(
            "Connected as %s in %d guilds on %d shard(s) (%s)",
            self.user,
            len(self.guilds),
            len(self.own_shard_ids()),
            ", ".join(f"{s.id}: {s.guilds}" for s in self.shard_statuses()),
        )
        await self._mark_guilds_seen()
        if not self._all_shards_ready():
            waiting = [shard for shard in self.own_shard_ids() if shard not in self._ready_shards]
            _log.info("Shard(s) %s not ready yet: guilds missing from READY are looked at once they are", waiting)
            self._absent_check_pending = True
            return
        await self._forget_long_absent_guilds()

    async def _mark_guilds_seen(self) -> None:
        # Unavailable guilds are listed in READY too (as stubs), so they count as present.
        await self.db.mark_guilds_seen((guild.id for guild in self.guilds), self.clock())
        self._presence_marked = self._monotonic()

    async def _forget_long_absent_guilds(self) -> None:
        """Guilds that removed the bot while it was offline are forgotten once they have been absent from
        every READY for FORGET_ABSENT_GUILDS_AFTER, and never more than a small share at once.

        Only guilds on this process's shards count (the others' READYs go to another process, if SHARD_IDS says
        so): the held guilds, the absent ones and the share alike."""
        present = {guild.id for guild in self.guilds}
        own = frozenset(self.own_shard_ids())
        cutoff = self.clock() - FORGET_ABSENT_GUILDS_AFTER
        absent = [g for g in await self.db.absent_guilds(cutoff) if g not in present and self.owns_guild(g, own)]
        if not absent:
            return
        held_ids = {g for g in await self.db.guild_ids() if self.owns_guild(g, own)}
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
            if self.coordinator.is_leader:
                self.push.followed_changed()
            else:
                self.coordinator.tell_followed_changed()
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
        if not self.coordinator.is_leader:
            await self._follower_round()
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

    async def _follower_round(self) -> None:
        """Not the leader: post, update and close the cards of this process's guilds from the tables (the leader
        polls), and keep the guilds' presence current, as the poll cycle does for the leader."""
        async with self._cycle_lock:
            try:
                report = await self.notifier.fan_out()
                if (
                    self._presence_marked is None
                    or self._monotonic() - self._presence_marked > PRESENCE_REFRESH_INTERVAL
                ):
                    await self._mark_guilds_seen()
            except Exception:
                _log.exception(
                    "Posting for this process's guilds failed; it is tried again in %s s", self.check_interval
                )
                return
            self._last_round_finished = self._monotonic()
            self.metrics.observe_fan_out(report.announced, report.announce_failed)

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
