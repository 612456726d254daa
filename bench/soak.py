"""Soak run: many poll cycles with random faults on the fake Twitch and fake Discord and random restarts.

    .venv/bin/python bench/soak.py [--cycles 500] [--seed 1]

The real bot (TwitchNotifierBot, real discord.py) runs in this process against the fakes, as in the
end-to-end tests. Streamers go live, go offline and blink out of Twitch's listing at random; Twitch answers
5xx / 429 / expired tokens, malformed 200s, poisoned stream entries or nothing at all (a hung request);
Discord answers 429 / 5xx, holds message posts unanswered (with or without creating the message) and drops
the gateway; admins remove followed streamers while a cycle is in flight and add them back later; the bot is
restarted gracefully or "crashed" (its cycle cancelled mid-flight, no clean shutdown) at random, sometimes
into a Discord that refuses the login or the gateway for a while. Prints duplicates, misses, crashes, posts
after a removal and stalled cycles, which must all be 0; exits 1 otherwise. Not part of the unit suite (500
cycles take a few minutes); tests/test_soak_smoke.py runs 40.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import re
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import (
    DISCORD_TOKEN,
    READY_TIMEOUT,
    TWITCH_CLIENT_ID,
    TWITCH_CLIENT_SECRET,
    BotHarness,
    LogWatcher,
)
from tests.fakes.fake_discord import FakeDiscord, FakeMessage, patch_discord_endpoints
from tests.fakes.fake_twitch import HTML_ERROR_PAGE, FakeTwitch, RawJSON
from twitch_notifier.models import Streamer

GUILDS = 4
STREAMERS = 12
SETTLE_CYCLES = 8  # longer than any injected fault lasts: a stream live this long must be announced
INTERVAL = 1.0
"""The soak's nominal cadence. It drives every cycle itself (harness.poll), back to back; a cycle that takes
longer than STALL_AFTER would have held up the next one: a stall."""
STALL_AFTER = 2 * INTERVAL
DISCORD_CALL_TIMEOUT = 0.3  # the bot's per-call timeout on Discord requests (15 s in production)
START_TIMEOUT = 30.0  # a start-up into a Discord that is down waits out run_session's backoff (1 s, 2 s, ...)
MESSAGES = r"/channels/\d+/messages"
STREAM_TITLE = re.compile(r"stream (\d+)")
MALFORMED_BODIES: tuple[tuple[str, Any, str], ...] = (
    ("no data", '{"error": "upstream"}', "application/json"),
    ("data null", {"data": None}, "application/json"),
    ("HTML page", HTML_ERROR_PAGE, "text/html"),
)


@dataclass(frozen=True, slots=True)
class Mix:
    """How likely each fault is in one cycle (Discord down: per restart). The defaults are the soak's."""

    twitch_error: float = 0.08  # 500 / 502 / 503 / 429 on /helix/streams, 1-5 times
    token_expiry: float = 0.02
    discord_error: float = 0.06  # 429 / 500 on message posts, 1-3 times
    gateway_drop: float = 0.01
    discord_hang: float = 0.06  # 1-2 message posts held, with or without creating the message
    twitch_hang: float = 0.05  # one /helix/streams request held, answered or dropped within 0.5 s
    poison: float = 0.06  # one live streamer's entry poisoned until the stream ends
    malformed: float = 0.05  # /helix/streams answers 200 without Helix's shape, 1-3 times
    removal_race: float = 0.04  # /removestreamer while a cycle is in flight; added back 3-15 cycles later
    crash: float = 0.015
    restart: float = 0.015
    discord_down: float = 0.5  # of restarts: the login fails and/or the gateway refuses, 1-2 times each
    down_times: int = 2  # at most this many refused logins, and refused gateway connections, per start-up


SMOKE = Mix(
    discord_hang=0.15,
    twitch_hang=0.12,
    poison=0.12,
    malformed=0.12,
    removal_race=0.12,
    crash=0.025,
    restart=0.025,
    discord_down=0.5,
    down_times=1,
)
"""The mix of tests/test_soak_smoke.py: every fault kind turns up in 40 cycles, and few slow start-ups."""


@dataclass(eq=False)
class Follow:
    """One life of a subscription, from its add to the 'Stopped following' reply of its removal.

    Discord requests are numbered in arrival order (FakeDiscord.requests); a message belongs to the follow
    whose life holds the number of the request that created it."""

    guild_id: int
    channel_id: int
    user_id: str
    login: str
    since_cycle: int
    since_request: int = 0
    until_request: int | None = None  # the 'Stopped following' reply
    until_time: float | None = None
    removed_in_cycle: int | None = None

    def holds(self, request: int) -> bool:
        return self.since_request <= request and (self.until_request is None or request < self.until_request)


@dataclass
class Tally:
    cycles: int = 0
    restarts: int = 0
    crashes_simulated: int = 0
    twitch_faults: int = 0
    discord_faults: int = 0
    gateway_drops: int = 0
    streams: int = 0
    blinks: int = 0
    bot_crashes: list[str] = field(default_factory=list)
    discord_hangs: int = 0
    twitch_hangs: int = 0
    poisoned: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    removal_races: int = 0
    re_adds: int = 0
    discord_down: int = 0
    login_refusals: int = 0
    gateway_refusals: int = 0
    longest_startup: float = 0.0
    cycle_times: list[tuple[float, int, float]] = field(default_factory=list)  # (seconds, cycle, 429 wait)
    injected: dict[int, list[str]] = field(default_factory=dict)  # cycle -> the faults injected before it


class RequestLog(list):  # type: ignore[type-arg]
    """FakeDiscord.requests that also notes when each request arrived (time.monotonic)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        self.times.append(time.monotonic())
        super().append(item)


class MessageLog(list):  # type: ignore[type-arg]
    """FakeDiscord.messages that notes, for each message, the number of the request that created it and the
    stream its card announced (read at creation: later edits turn it into a 'was live' card)."""

    def __init__(self, fake: FakeDiscord, requests: RequestLog) -> None:
        super().__init__()
        self.fake = fake
        self.requests = requests
        self.origin: dict[int, int] = {}
        self.stream: dict[int, str | None] = {}

    def append(self, message: FakeMessage) -> None:
        super().append(message)
        self.origin[message.id] = self._creating_request(message)
        match = STREAM_TITLE.match(str(message.embeds[0].get("title", ""))) if message.embeds else None
        self.stream[message.id] = match.group(1) if match else None

    def _creating_request(self, message: FakeMessage) -> int:
        """The fake creates a message while handling the request it just recorded, except for a held
        request (hang_next, create=False) that is answered on release: then it is that earlier request."""
        path = f"/channels/{message.channel_id}/messages"
        for hung in self.fake.hung:
            request = hung.request
            body = request.json if isinstance(request.json, dict) else {}
            if (
                hung.outcome == "held"
                and not hung.processed
                and not hung.fault.create
                and request.path == path
                and body.get("nonce") == message.nonce
            ):
                return next(i for i in range(len(self.requests) - 1, -1, -1) if self.requests[i] is request)
        return len(self.requests) - 1


class HangReleaser:
    """Answers or drops the requests a fake holds (hang_next), each after the delay planned when its hang was
    injected. A fake releases all its held requests at once, so the earliest deadline releases them all."""

    def __init__(self, fake: FakeDiscord | FakeTwitch) -> None:
        self.fake = fake
        self.plans: deque[tuple[float, bool]] = deque()
        self._seen: set[Hashable] = set()
        self._deadlines: list[tuple[float, bool]] = []

    def plan(self, times: int, delay: float, answer: bool) -> None:
        self.plans.extend([(delay, answer)] * times)

    def step(self) -> None:
        now = time.monotonic()
        for hung in self.fake.hung:
            if hung.outcome == "held" and hung not in self._seen:
                self._seen.add(hung)
                delay, answer = self.plans.popleft() if self.plans else (0.1, True)
                self._deadlines.append((now + delay, answer))
        if self._deadlines:
            deadline, answer = min(self._deadlines, key=lambda d: d[0])
            if now >= deadline:
                self.fake.release_hangs(answer=answer)
                self._deadlines.clear()

    async def run(self) -> None:
        while True:
            self.step()
            await asyncio.sleep(0.01)

    def settle(self) -> None:
        """No more hangs: answer whatever is held now."""
        self.plans.clear()
        self._deadlines.clear()
        self.fake.release_hangs(answer=True)

    def outcomes(self) -> str:
        counts = Counter(h.outcome for h in self.fake.hung)
        return ", ".join(f"{counts[k]} {k}" for k in ("answered", "dropped", "abandoned", "held") if counts[k])


class SoakHarness(BotHarness):
    """BotHarness, plus a start-up the way `bot.run` does it: through `run_session`, which logs in and
    connects and retries an unreachable Discord with capped exponential backoff. (BotHarness.start calls
    login() and connect() itself: a 503 on the login or a refused first gateway connection ends it.)

    The bot is built and awaited exactly as BotHarness.start does; only its login and connection are handed
    to run_session, and the waits for ready and the first cycle get START_TIMEOUT instead of 10 s."""

    patience = 0.0

    async def start_through_session(self) -> None:
        """Start into a Discord that is down: the harness starts the bot through production's run_session,
        which retries the login and the gateway; only the wait for READY is longer."""
        self.patience = START_TIMEOUT
        try:
            await self.start()
        finally:
            self.patience = 0.0

    async def _watch(self, awaitable: Any, what: str, timeout: float = READY_TIMEOUT) -> Any:
        return await super()._watch(awaitable, what, max(timeout, self.patience))


class InfoLog(logging.Handler):
    """The bot's own INFO lines (announced, could not announce, ...), to explain a violation."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.created, f"{record.levelname} {record.name}: {record.getMessage()}"))


async def soak(cycles: int, seed: int, mix: Mix | None = None) -> int:
    rng = random.Random(seed)
    watcher = LogWatcher()
    info = InfoLog()
    root = logging.getLogger()
    ours = logging.getLogger("twitch_notifier")
    level = ours.level
    root.addHandler(watcher)
    ours.addHandler(info)
    ours.setLevel(logging.INFO)
    try:
        return await Soak(cycles, seed, rng, mix or Mix(), watcher, info).run()
    finally:
        ours.setLevel(level)
        ours.removeHandler(info)
        root.removeHandler(watcher)


class Soak:
    def __init__(
        self, cycles: int, seed: int, rng: random.Random, mix: Mix, watcher: LogWatcher, info: InfoLog
    ) -> None:
        self.cycles, self.seed, self.rng, self.mix = cycles, seed, rng, mix
        self.watcher, self.info = watcher, info
        self.tally = Tally()
        self.discord = FakeDiscord(token=DISCORD_TOKEN)
        self.requests = RequestLog()
        self.discord.requests = self.requests
        self.messages = MessageLog(self.discord, self.requests)
        self.discord.messages = self.messages
        self.twitch = FakeTwitch(client_id=TWITCH_CLIENT_ID, client_secret=TWITCH_CLIENT_SECRET)
        self.discord_hangs = HangReleaser(self.discord)
        self.twitch_hangs = HangReleaser(self.twitch)
        self.harness: SoakHarness
        self.follows: list[Follow] = []
        self.active: dict[tuple[int, str], Follow] = {}
        self.re_add_due: list[tuple[int, Follow]] = []
        self.live_for: dict[str, int] = {}  # stream id -> cycles it has been in Twitch's listing
        self.stream_user: dict[str, str] = {}
        self.must_announce: set[tuple[Follow, str]] = set()
        self.down_windows: list[tuple[float, float]] = []  # wall-clock spans of start-ups with Discord down
        self._waits: list[tuple[float, float]] = []  # (429 answered, Ratelimit-Reset), time.monotonic
        self._scanned = 0

    async def run(self) -> int:
        await self.discord.start()
        await self.twitch.start()
        started = time.monotonic()
        releasers = [asyncio.create_task(r.run()) for r in (self.discord_hangs, self.twitch_hangs)]
        try:
            with tempfile.TemporaryDirectory() as tmp, patch_discord_endpoints(self.discord):
                self.harness = SoakHarness(self.discord, self.twitch, Path(tmp) / "soak.db", offline_after_polls=2)
                self.harness.discord_call_timeout = DISCORD_CALL_TIMEOUT
                await self._world()
                try:
                    await self._cycles()
                    await self._settle()
                finally:
                    await self.harness.stop()
        finally:
            for task in releasers:
                task.cancel()
            hang_outcomes = (self.discord_hangs.outcomes(), self.twitch_hangs.outcomes())
            await self.discord.stop()
            await self.twitch.stop()
        return self._report(time.monotonic() - started, hang_outcomes)

    # ------------------------------------------------------------------------------------------ the world

    async def _world(self) -> None:
        discord_fake, rng = self.discord, self.rng
        channels = []
        for index in range(GUILDS):
            guild = discord_fake.add_guild(f"Soak {index}")
            channels.append(discord_fake.add_text_channel(guild.id, "alerts"))
            channels.append(discord_fake.add_text_channel(guild.id, "streams"))
        self.users = self.twitch.add_users(STREAMERS, prefix="soak")
        await self.harness.start()
        assert self.harness.db is not None
        for channel in channels[::2]:
            guild_channels = [c for c in channels if c.guild_id == channel.guild_id]
            for user in rng.sample(self.users, k=STREAMERS // 2):
                target = rng.choice(guild_channels)
                await self.harness.db.add_subscription(
                    channel.guild_id, target.id, Streamer(user.id, user.login, user.display_name)
                )
                self._follow(Follow(channel.guild_id, target.id, user.id, user.login, since_cycle=1))

    def _follow(self, follow: Follow) -> None:
        self.follows.append(follow)
        self.active[(follow.channel_id, follow.user_id)] = follow

    # ----------------------------------------------------------------------------------------- the cycles

    async def _cycles(self) -> None:
        tally, rng, mix = self.tally, self.rng, self.mix
        for _ in range(self.cycles):
            tally.cycles += 1
            blinking = self._churn()
            await self._inject_faults()
            await self._re_add_due()
            roll = rng.random()
            if roll < mix.crash:
                tally.crashes_simulated += 1
                await self._restart(crash=True)
            elif roll < mix.crash + mix.restart:
                tally.restarts += 1
                await self._restart(crash=False)
            elif roll < mix.crash + mix.restart + mix.removal_race and self.active:
                await self._removal_race()
            else:
                await self._timed_poll()
            for user_id, stream_id in blinking:
                self.twitch.go_live(user_id, stream_id=stream_id, title=f"stream {stream_id}")
            self._note_live()
            failure = self.harness.gateway_failure()
            if failure is not None:
                tally.bot_crashes.append(f"gateway task ended: {failure}")
                break

    def _churn(self) -> list[tuple[str, str]]:
        """Streams start, end and blink out of one listing; returns the blinking ones to restore."""
        twitch_fake, rng = self.twitch, self.rng
        blinking: list[tuple[str, str]] = []
        for user in self.users:
            current = twitch_fake.streams.get(user.id)
            roll = rng.random()
            if current is None and roll < 0.08:
                self.tally.streams += 1
                stream = twitch_fake.go_live(user.id, title="pending")
                twitch_fake.update_stream(user.id, title=f"stream {stream.id}")
                self.stream_user[stream.id] = user.id
            elif current is not None and roll < 0.06:
                twitch_fake.go_offline(user.id)
            elif current is not None and roll < 0.10:
                blinking.append((user.id, current.id))  # dropped from this one listing only
                twitch_fake.go_offline(user.id, archive=False)
                self.tally.blinks += 1
        return blinking

    async def _inject_faults(self) -> None:
        tally, rng, mix, twitch_fake, discord_fake = self.tally, self.rng, self.mix, self.twitch, self.discord
        if rng.random() < mix.twitch_error:
            tally.twitch_faults += 1
            status = rng.choice([500, 502, 503, 429])
            times = rng.randint(1, 5)
            twitch_fake.fail_next(path="/helix/streams", status=status, times=times)
            self._note(f"Twitch {status} x{times}")
        if rng.random() < mix.token_expiry:
            tally.twitch_faults += 1
            twitch_fake.expire_tokens()
            self._note("Twitch tokens expired")
        if rng.random() < mix.discord_error:
            tally.discord_faults += 1
            status = rng.choice([429, 429, 429, 500])
            times = rng.randint(1, 3)
            discord_fake.fail_next("POST", MESSAGES, status=status, times=times, retry_after=0.01)
            self._note(f"Discord {status} x{times}")
        if rng.random() < mix.gateway_drop:
            tally.gateway_drops += 1
            await discord_fake.disconnect_gateway(code=4000)
            self._note("gateway drop")
        if rng.random() < mix.discord_hang:
            # Before the bot's 0.3 s timeout (an answer, late) or after it (the bot has given up).
            tally.discord_hangs += 1
            times = rng.randint(1, 2)
            create = rng.random() < 0.5
            discord_fake.hang_next("POST", MESSAGES, times=times, create=create)
            delay, answer = rng.uniform(0.05, 1.0), rng.random() < 0.5
            self.discord_hangs.plan(times, delay, answer=answer)
            how = "answered" if answer else "dropped"
            self._note(f"Discord hang x{times} create={create}, {how} after {delay:.2f} s")
        if rng.random() < mix.twitch_hang:
            tally.twitch_hangs += 1
            twitch_fake.hang_next("/helix/streams", times=1)
            delay, answer = rng.uniform(0.02, 0.5), rng.random() < 0.5
            self.twitch_hangs.plan(1, delay, answer=answer)
            self._note(f"Twitch hang, {'answered' if answer else 'dropped'} after {delay:.2f} s")
        if rng.random() < mix.poison:
            self._poison()
        if rng.random() < mix.malformed:
            kind, body, content_type = rng.choice(MALFORMED_BODIES)
            tally.malformed[kind] += 1
            times = rng.randint(1, 3)
            twitch_fake.malformed_next("/helix/streams", body, times=times, content_type=content_type)
            self._note(f"malformed 200 ({kind}) x{times}")

    def _poison(self) -> None:
        live = [user.id for user in self.users if user.id in self.twitch.streams]
        if not live:
            return
        user_id = self.rng.choice(live)
        stream = self.twitch.streams[user_id]
        kind = self.rng.choice(["viewer_count 1e999", "viewer_count > 2**64", "lone surrogate", "started_at"])
        if kind == "viewer_count 1e999":
            self.twitch.poison_stream(user_id, viewer_count=RawJSON("1e999"))
        elif kind == "viewer_count > 2**64":
            self.twitch.poison_stream(user_id, viewer_count=2**64 + self.rng.randint(1, 10**9))
        elif kind == "lone surrogate":
            self.twitch.poison_stream(user_id, title=f"stream {stream.id} \ud800 {stream.id}")
        else:
            self.twitch.poison_stream(user_id, started_at=self.rng.choice(["yesterday", "2026-13-45T99:00:00Z", ""]))
        self.tally.poisoned[kind] += 1
        self._note(f"poisoned {kind}")

    def _note(self, fault: str) -> None:
        self.tally.injected.setdefault(self.tally.cycles, []).append(fault)

    async def _timed_poll(self) -> None:
        started = time.monotonic()
        await self.harness.poll()
        ended = time.monotonic()
        self.tally.cycle_times.append((ended - started, self.tally.cycles, self._rate_limit_wait(started, ended)))

    def _rate_limit_wait(self, started: float, ended: float) -> float:
        """How much of this span Twitch told the bot to wait: each 429 says "until Ratelimit-Reset", which the
        fake sets to the next whole second plus one (time.time), and the bot waits it out then or before its
        next request, even in the next cycle. That is waiting as told, not stalling."""
        to_wall = time.time() - time.monotonic()
        requests = self.twitch.requests
        for request in requests[self._scanned :]:
            if request.status == 429:
                answered = request.at + to_wall
                self._waits.append((request.at, request.at + math.ceil(answered) + 1 - answered))
        self._scanned = len(requests)
        covered, reach = 0.0, started
        for begin, end in sorted(self._waits):
            begin, end = max(begin, reach), min(end, ended)
            if end > begin:
                covered += end - begin
                reach = end
        return covered

    # --------------------------------------------------------------------------------- removals and re-adds

    async def _removal_race(self) -> None:
        """An admin removes a followed streamer while a cycle is in flight (at best in its announcement round:
        the streamer just went live); the follow is added back a few cycles later."""
        tally, rng = self.tally, self.rng
        just_live = [
            f
            for f in self.active.values()
            if (s := self.twitch.streams.get(f.user_id)) is not None and self.live_for.get(s.id, 0) == 0
        ]
        follow = rng.choice(just_live if just_live and rng.random() < 0.7 else list(self.active.values()))
        tally.removal_races += 1
        twitch_seen = len(self.twitch.requests)
        cycle = asyncio.create_task(self._timed_poll())
        # Wait until the cycle has asked Twitch, so the removal lands in its announcement round (not long: the
        # cycle may first wait out a 429's reset).
        with contextlib.suppress(AssertionError):  # the harness's "timed out waiting for"
            await self.harness.wait_for(lambda: len(self.twitch.requests) > twitch_seen, "the cycle's request", 1.0)
        await asyncio.sleep(rng.uniform(0, 0.03))
        reply, index = await self._command("removestreamer", {"streamer": follow.login}, follow)
        if reply.startswith("Stopped following"):
            follow.until_request, follow.until_time = index, self.requests.times[index]
            follow.removed_in_cycle = tally.cycles
            del self.active[(follow.channel_id, follow.user_id)]
            self.re_add_due.append((tally.cycles + rng.randint(3, 15), follow))
        else:
            tally.bot_crashes.append(f"cycle {tally.cycles}: /removestreamer {follow.login} answered {reply!r}")
        await cycle

    async def _re_add_due(self) -> None:
        due = [entry for entry in self.re_add_due if entry[0] <= self.tally.cycles]
        for entry in due:
            _, old = entry
            since = len(self.requests)
            reply, _ = await self._command("addstreamer", {"streamer": old.login}, old)
            if reply.startswith("Now following"):
                self.re_add_due.remove(entry)
                self.tally.re_adds += 1
                self._follow(
                    Follow(old.guild_id, old.channel_id, old.user_id, old.login, self.tally.cycles, since_request=since)
                )
            # Otherwise (Twitch unreachable for the look-up) the admin tries again next cycle.

    async def _command(self, name: str, options: dict[str, Any], follow: Follow) -> tuple[str, int]:
        """Run a slash command as an admin in the follow's channel; its reply and the number of the request
        that delivered it."""
        discord_fake = self.discord
        guild, channel = discord_fake.guilds[follow.guild_id], discord_fake.channels[follow.channel_id]
        interaction = await discord_fake.invoke(
            name,
            {**options, "channel": channel},
            guild_id=guild.id,
            channel_id=channel.id,
            permissions=discord_fake.ADMIN_PERMISSIONS,
        )
        reply = await interaction.wait_reply(timeout=10.0)
        if reply.deferred:
            path = f"/webhooks/{discord_fake.application_id}/{interaction.token}"
        else:
            path = f"/interactions/{interaction.id}/{interaction.token}/callback"
        index = next(i for i, r in enumerate(self.requests) if r.path.startswith(path) and r.method != "GET")
        return reply.text, index

    # ------------------------------------------------------------------------------------------- restarts

    async def _restart(self, *, crash: bool) -> None:
        harness, rng = self.harness, self.rng
        if crash:
            # A crash: the cycle is cancelled wherever it is, and nothing is shut down cleanly.
            cycle = asyncio.create_task(harness.poll())
            await asyncio.sleep(rng.uniform(0, 0.02))
            cycle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cycle
        await harness.stop()
        if rng.random() >= self.mix.discord_down:
            await harness.start()
            return
        most = self.mix.down_times
        logins = rng.randint(0, most)
        gateways = rng.randint(0 if logins else 1, most)
        if logins:
            self.discord.fail_next("GET", "/users/@me", status=503, times=logins)
        refusals_before = len(self.discord.gateway_refusals)
        if gateways:
            self.discord.refuse_gateway(gateways, mode="http")
        self.tally.discord_down += 1
        began, wall = time.monotonic(), time.time()
        await harness.start_through_session()
        self.down_windows.append((wall, time.time()))
        self.tally.longest_startup = max(self.tally.longest_startup, time.monotonic() - began)
        self.tally.login_refusals += logins
        self.tally.gateway_refusals += len(self.discord.gateway_refusals) - refusals_before

    # ------------------------------------------------------------------------------------- what must happen

    def _note_live(self) -> None:
        """A stream live for SETTLE_CYCLES while a follow existed must be announced for that follow."""
        cycle = self.tally.cycles
        for user in self.users:
            stream = self.twitch.streams.get(user.id)
            if stream is None:
                continue
            self.live_for[stream.id] = self.live_for.get(stream.id, 0) + 1
            for follow in self.active.values():
                overlap = min(self.live_for[stream.id], cycle - follow.since_cycle + 1)
                if follow.user_id == user.id and overlap >= SETTLE_CYCLES:
                    self.must_announce.add((follow, stream.id))

    async def _settle(self) -> None:
        """No more faults, a few clean cycles: every follow that exists now must have its live streams."""
        self.twitch.clear_failures()
        self.discord.faults.clear()
        self.discord_hangs.settle()
        self.twitch_hangs.settle()
        for _ in range(3):
            await self._timed_poll()
        for follow in self.active.values():
            stream = self.twitch.streams.get(follow.user_id)
            if stream is not None:
                self.must_announce.add((follow, stream.id))

    # --------------------------------------------------------------------------------------------- report

    def _attribute(self) -> tuple[Counter[tuple[Follow, str]], list[str], list[FakeMessage], list[str]]:
        """Each announcement to the follow whose life holds its creating request; the ones created after a
        follow's removal (and before it was added back), of streams never live, or where nothing follows."""
        lives: dict[tuple[int, str], list[Follow]] = {}
        for follow in self.follows:
            lives.setdefault((follow.channel_id, follow.user_id), []).append(follow)
        posted: Counter[tuple[Follow, str]] = Counter()
        after_removal: list[str] = []
        strays: list[FakeMessage] = []
        unknown: list[str] = []
        for message in self.messages:
            if not message.embeds:
                continue
            stream_id = self.messages.stream[message.id]
            user_id = self.stream_user.get(stream_id or "")
            if stream_id is None or user_id is None:
                unknown.append(f"message {message.id} in channel {message.channel_id}: {message.embeds[0]!r}"[:200])
                continue
            request = self.messages.origin[message.id]
            candidates = lives.get((message.channel_id, user_id), [])
            owner = next((f for f in candidates if f.holds(request)), None)
            if owner is not None:
                posted[(owner, stream_id)] += 1
                continue
            removed = [f for f in candidates if f.until_request is not None and f.until_request <= request]
            if removed:
                after_removal.append(self._explain(removed[-1], message, stream_id, request))
            else:
                strays.append(message)
        return posted, after_removal, strays, unknown

    def _explain(self, follow: Follow, message: FakeMessage, stream_id: str, request: int) -> str:
        assert follow.until_request is not None and follow.until_time is not None
        posted_at = self.requests.times[request]
        lines = [
            f"posted after removal: {follow.login} (stream {stream_id}) in channel {follow.channel_id} of guild "
            f"{follow.guild_id}: message {message.id} from request #{request}, "
            f"{(posted_at - follow.until_time) * 1000:.0f} ms after the 'Stopped following' reply "
            f"(request #{follow.until_request}, cycle {follow.removed_in_cycle})"
        ]
        wall_offset = time.time() - time.monotonic()
        start, end = follow.until_time + wall_offset - 1.0, posted_at + wall_offset + 0.5
        for created, line in self.info.lines:
            if start <= created <= end and follow.login in line:
                lines.append(f"      {created - follow.until_time - wall_offset:+.3f} s  {line[:220]}")
        return "\n".join(lines[:12])

    def _injected(self, cycle: int) -> str:
        """The faults injected in this cycle and the two before it (a fault may wait for a later request)."""
        notes = [
            f"{c}: {', '.join(self.tally.injected[c])}" for c in range(cycle - 2, cycle + 1) if c in self.tally.injected
        ]
        return "; ".join(notes) or "nothing"

    def _errors(self) -> tuple[list[str], int]:
        """ERROR records, except discord.py's own 'Attempting a reconnect' while the gateway was refused."""
        unexpected: list[str] = []
        expected = 0
        for record in self.watcher.records:
            text = record.getMessage()
            during_outage = any(a <= record.created <= b for a, b in self.down_windows)
            if record.name == "discord.client" and text.startswith("Attempting a reconnect") and during_outage:
                expected += 1
            else:
                unexpected.append(f"ERROR log: {record.name}: {text}")
        return unexpected, expected

    def _report(self, elapsed: float, hang_outcomes: tuple[str, str]) -> int:
        tally = self.tally
        posted, after_removal, strays, unknown = self._attribute()
        duplicates = {(f.channel_id, s): n for (f, s), n in posted.items() if n > 1}
        misses = sorted((f.channel_id, s) for f, s in self.must_announce - set(posted))
        errors, expected_errors = self._errors()
        tally.bot_crashes += errors
        stalls = [(t, c, w) for t, c, w in tally.cycle_times if t - w > STALL_AFTER]
        longest, longest_cycle, longest_wait = max(tally.cycle_times, default=(0.0, 0, 0.0))
        waited = [(t, c, w) for t, c, w in tally.cycle_times if w > 0]
        re_announced = Counter((f.channel_id, f.user_id, s) for f, s in posted)
        again = sum(1 for n in re_announced.values() if n > 1)

        print(f"soak: {tally.cycles} cycles in {elapsed:.1f} s (seed {self.seed})")
        print(f"  streams started {tally.streams}, blinks {tally.blinks}, announcements posted {sum(posted.values())}")
        print(
            f"  Twitch faults {tally.twitch_faults}, Discord faults {tally.discord_faults}, "
            f"gateway drops {tally.gateway_drops}"
        )
        print(f"  graceful restarts {tally.restarts}, simulated crashes {tally.crashes_simulated}")
        print(f"  duplicates: {len(duplicates)}")
        print(f"  misses:     {len(misses)}")
        print(f"  crashes:    {len(tally.bot_crashes)}")
        print(f"  announcements of streams never live: {len(unknown)}")
        print(
            f"  hangs: Discord {tally.discord_hangs} ({hang_outcomes[0] or 'none held'}), "
            f"Twitch {tally.twitch_hangs} ({hang_outcomes[1] or 'none held'})"
        )
        print(f"  poisoned entries: {sum(tally.poisoned.values())} ({_counts(tally.poisoned)})")
        print(f"  malformed answers: {sum(tally.malformed.values())} ({_counts(tally.malformed)})")
        print(
            f"  removal races: {tally.removal_races} (added back {tally.re_adds}; "
            f"announced again after the add-back: {again})"
        )
        print(f"  posted after removal: {len(after_removal)}")
        print(f"  announcements where nothing follows: {len(strays)}")
        print(
            f"  start-ups with Discord down: {tally.discord_down} (login refused {tally.login_refusals}x, "
            f"gateway refused {tally.gateway_refusals}x, longest start-up {tally.longest_startup:.1f} s, "
            f"discord.py reconnect ERRORs {expected_errors})"
        )
        print(f"  stalls (> 2 intervals of {INTERVAL:g} s, beyond Twitch's 429 waits): {len(stalls)}")
        beyond, beyond_cycle = max(((t - w, c) for t, c, w in tally.cycle_times), default=(0.0, 0))
        print(
            f"  longest cycle: {longest:.2f} s (cycle {longest_cycle}, {longest_wait:.2f} s of it waiting out 429s); "
            f"longest beyond 429 waits {beyond:.2f} s (cycle {beyond_cycle}); cycles with a 429 wait {len(waited)}"
        )
        problems = [
            *tally.bot_crashes[:10],
            *map(str, duplicates.items()),
            *map(str, misses),
            *after_removal[:5],
            *(
                f"stall: cycle {c} took {t:.2f} s ({w:.2f} s 429 wait); injected: {self._injected(c)}"
                for t, c, w in stalls
            ),
            *(f"nothing follows: message {m.id} in channel {m.channel_id}" for m in strays),
            *unknown,
        ]
        for problem in problems[:25]:
            print(f"    {problem}")
        failed = duplicates or misses or tally.bot_crashes or unknown or after_removal or strays or stalls
        return 1 if failed else 0


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counter.items())) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)  # the bot's INFO lines are collected, not printed
    return asyncio.run(soak(args.cycles, args.seed))


if __name__ == "__main__":
    sys.exit(main())
