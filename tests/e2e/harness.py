"""Runs the bot as shipped (TwitchNotifierBot, real discord.py) against the fake Discord and fake Twitch.

`BotHarness` owns one bot's life: start (login, gateway, ready, first poll cycle), stop, restart on the
same database file, and helpers to invoke slash commands the way a Discord user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot import TwitchNotifierBot
from config import Settings
from database import Database, open_database
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_twitch import FakeTwitch
from twitch_api import TwitchClient
from twitch_notifier.app.build import build_bot, build_twitch_client, shard_scope
from twitch_notifier.cluster.coordinator import PostgresCoordinator
from twitch_notifier.discord_io.session import Backoff, SessionEnd, run_session

DISCORD_TOKEN = "fake-discord-token.Abc123.SecretPart"
TWITCH_CLIENT_ID = "fakeclientid0123456789"
TWITCH_CLIENT_SECRET = "fakeclientsecret9876543210"

READY_TIMEOUT = 10.0
IDENTIFY_WINDOW = 0.05
"""The fake's identify rate-limit window in the e2e tests (Discord's is 5 s): the bot spaces IDENTIFYs of one
bucket by IDENTIFY_INTERVAL, a little more, as production spaces them by 5.25 s for Discord's 5 s."""
IDENTIFY_INTERVAL = 0.06


class SteppedClock:
    """The bot's clocks, running with real time plus whatever a test adds: `advance(3600)` is an hour
    later for the periodic chores (token validation, the streamer refresh) and for the bot's dates (how
    long a guild has been missing from READY). Calling it is the monotonic clock; `now()` the date."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class BotHarness:
    """`overrides` replace Settings fields, e.g. `shard_count=3, shard_ids=(0, 2)` (SHARD_COUNT, SHARD_IDS); by
    default the bot asks the fake for its shard count, as production asks Discord (1 for a small fake)."""

    def __init__(self, discord_fake: FakeDiscord, twitch_fake: FakeTwitch, db_path: Path, **overrides: Any) -> None:
        self.discord = discord_fake
        self.twitch = twitch_fake
        # Discord allows one IDENTIFY per 5 s and bucket; a test must not wait that long for each shard.
        discord_fake.limits.identify_window_seconds = min(discord_fake.limits.identify_window_seconds, IDENTIFY_WINDOW)
        self.settings = Settings(
            discord_token=DISCORD_TOKEN,
            twitch_client_id=TWITCH_CLIENT_ID,
            twitch_client_secret=TWITCH_CLIENT_SECRET,
            # The loop runs once at start-up; tests drive further cycles with `poll()` unless they
            # shorten the interval to watch the loop itself.
            check_interval_seconds=3600,
            database_path=str(db_path),
            twitch_api_base=twitch_fake.api_base,
            twitch_auth_base=twitch_fake.auth_base,
            # Push is tested where a test asks for it (EVENTSUB_TRANSPORT=websocket or webhook); elsewhere
            # the bot polls, so the poll's own behaviour is what those tests see.
            eventsub_transport="off",
            eventsub_ws_url=twitch_fake.eventsub_ws_url,
            # A new stream right after another is a new card in the tests that do not test the restart grace
            # (tests/e2e/test_filters_grace.py turns it on, as production has it).
            stream_restart_grace_seconds=0,
        )
        if overrides:
            self.settings = dataclasses.replace(self.settings, **overrides)
        self.bot: TwitchNotifierBot | None = None
        self.db: Database | None = None
        self.twitch_client: TwitchClient | None = None
        self._connect_task: asyncio.Task | None = None
        self.clock = SteppedClock()
        self.discord_call_timeout = 5.0  # a hung request to the fake fails a test fast, not in 15 s
        self.wall_clock = time.time  # Unix time for the metrics; a test may make it jump
        self.twitch_budget = 8.0  # what one interaction may spend on Twitch (production's default)
        self.discord_backoff = Backoff(base=0.2, cap=2.0)  # production's starts at 1 s and caps at 60 s
        self.identify_interval = IDENTIFY_INTERVAL  # between IDENTIFYs of one bucket; production's is 5.25 s
        # One shard (the fake's `session()` then names it), quick reconnects, the shortest keepalive Twitch allows.
        self.eventsub_options: dict[str, Any] = {"shard_count": 1, "socket_backoff": 0.05, "keepalive_seconds": 10}
        # With database_url (PostgreSQL): elections every this many seconds (production's: 5 s).
        self.election_interval = 0.1

    async def start(self, *, wait_first_cycle: bool = True, wait_ready: bool = True) -> TwitchNotifierBot:
        """Build the bot and start its session; with `wait_ready`, return once it is ready (every shard) and,
        with `wait_first_cycle`, once its first poll cycle is done."""
        url = self.settings.database_url or None
        self.db = await open_database(self.settings.database_path, url, clock=self.clock.now)
        self.twitch_client = build_twitch_client(self.settings, backoff_base=0.01, backoff_max=0.05)
        coordinator = None
        if url is not None:
            coordinator = PostgresCoordinator(
                url, shard_scope(self.settings), election_interval=self.election_interval, check_timeout=2.0
            )
        bot = build_bot(
            self.settings,
            self.db,
            self.twitch_client,
            guild_ready_timeout=0.05,
            discord_call_timeout=self.discord_call_timeout,
            twitch_budget=self.twitch_budget,
            monotonic=self.clock,
            wall_clock=lambda: self.wall_clock(),
            clock=self.clock.now,
            eventsub_options=self.eventsub_options,
            identify_interval=self.identify_interval,
            coordinator=coordinator,
        )
        self.bot = bot
        # As production does (app.run): run_session logs in and connects, retrying while Discord is down.
        self._connect_task = asyncio.create_task(
            run_session(bot, self.settings.discord_token, backoff=self.discord_backoff), name="bot.session"
        )
        if not wait_ready:
            return bot
        await self._watch(bot.wait_until_ready(), "the bot to become ready")
        if wait_first_cycle:
            await self.wait_for_cycles(1)
        return bot

    async def session_end(self, timeout: float = READY_TIMEOUT) -> SessionEnd:
        """Wait for run_session to return (Discord refused the bot, say) and return why it ended."""
        assert self._connect_task is not None
        return await asyncio.wait_for(asyncio.shield(self._connect_task), timeout)

    def gateway_failure(self) -> str | None:
        """Why the bot's gateway task ended, if it ended (it should run until `stop()`)."""
        task = self._connect_task
        if task is None or not task.done():
            return None
        return repr(task.exception()) if not task.cancelled() else "cancelled"

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.close()
        if self._connect_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._connect_task, 5)
        if self.twitch_client is not None:
            await self.twitch_client.close()
        if self.db is not None:
            await self.db.close()
        self.bot = self.db = self.twitch_client = self._connect_task = None

    async def restart(self) -> TwitchNotifierBot:
        await self.stop()
        return await self.start()

    async def _watch(self, awaitable: Any, what: str, timeout: float = READY_TIMEOUT) -> Any:
        """Await `awaitable`, failing at once if the gateway task dies instead of timing out."""
        assert self._connect_task is not None
        waiter = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({waiter, self._connect_task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        if self._connect_task in done:
            exc = self._connect_task.exception()
            raise AssertionError(f"bot.connect() ended while waiting for {what}: {exc!r}") from exc
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    async def wait_for_cycles(self, count: int, timeout: float = READY_TIMEOUT) -> None:
        assert self.bot is not None
        poller = self.bot.poller

        async def reached() -> None:
            while poller.cycles < count:
                await asyncio.sleep(0.01)

        await self._watch(reached(), f"{count} poll cycle(s)", timeout)

    async def wait_for(self, predicate: Any, what: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until `predicate()` holds, e.g. until a gateway event has reached the bot's cache."""

        async def holds() -> None:
            while not predicate():
                await asyncio.sleep(0.005)

        await self._watch(holds(), what, timeout)

    async def eventually(self, check: Any, what: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until `await check()` is true, e.g. until an event handler has written to the database."""

        async def holds() -> None:
            while not await check():
                await asyncio.sleep(0.005)

        await self._watch(holds(), what, timeout)

    async def poll(self) -> None:
        """Run one poll cycle now, exactly as the loop does."""
        assert self.bot is not None
        await self.bot.poll_now()

    async def command(
        self, name: str, options: dict | None = None, *, guild: Any, channel: Any, admin: bool = True, **kwargs: Any
    ) -> Any:
        """Invoke a slash command as a member (an admin with Manage Server by default); return the reply."""
        permissions = self.discord.ADMIN_PERMISSIONS if admin else self.discord.MEMBER_PERMISSIONS
        kwargs.setdefault("permissions", permissions)
        interaction = await self.discord.invoke(name, options or {}, guild_id=guild.id, channel_id=channel.id, **kwargs)
        return await interaction.wait_reply(timeout=READY_TIMEOUT)


def announcements(fake_discord: FakeDiscord, channel: Any = None) -> list[Any]:
    """The messages with an embed the fake Discord holds (in one channel, if given): the announcements."""
    messages = fake_discord.messages if channel is None else fake_discord.messages_in(channel.id)
    return [m for m in messages if m.embeds]


async def follow(harness: BotHarness, guild: Any, channel: Any, login: str, target: Any = None) -> Any:
    """/addstreamer as an admin in `channel`, announcing in `target` (else the server's default)."""
    options: dict[str, Any] = {"streamer": login}
    if target is not None:
        options["channel"] = target.id
    return await harness.command("addstreamer", options, guild=guild, channel=channel)


class LogWatcher(logging.Handler):
    """Collects ERROR records so a test fails on any unexpected error, from discord.py or the bot."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def formatted(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]
