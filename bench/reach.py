"""Benchmark — reach and control (issue 14, "Also measure"): what live events, the Notify-me button, publishing in
announcement channels and title filters cost in Twitch and Discord requests, and whether a new announcement waits
behind the background work they make.

    .venv/bin/python -m bench.reach                          # 300 servers, 60 streamers, 30 go live (~3 min)
    .venv/bin/python -m bench.reach --servers 100 --streamers 20 --live 10 --probes 4

One process, as the end-to-end tests run the bot (tests/e2e/harness.BotHarness, i.e. app.build.build_bot): the
fake Discord with Discord's limits enforced (50 requests/s per bot token, 5 messages / 5 s per channel, 10 publishes
per hour per channel, 429 with Retry-After and Via), the fake Twitch (800 points/min, +50 ms per Helix request). The
world: S servers, each with one announcement (news) channel following F of N streamers (each streamer followed by
S×F/N servers); the bot may create events and manage roles everywhere, so that only the settings differ.

(a)+(b) Two poll-only runs (EVENTSUB_TRANSPORT=off) of the same script, one poll cycle per step: every option OFF,
then every option ON (live_events, publish, notify_button with ping_throttle 6 h, restart_grace 600 s, and a title
filter on every entry: exclude words + skip reruns, a regex, or include words that only the later title matches).
Steps: L streamers go live; (ON) members press Notify me; a steady cycle; every live title changes; --ends of them
end (two cycles: the bot waits for two misses); a few of those come back with a new stream id (inside the grace);
a steady cycle. After each step the bench waits until the bot's background work is over (no Discord request for
1 s), so each step's Discord requests are its own. Twitch requests are counted per cycle and path at the fake;
Discord requests by kind, with the most in any 1-second window and the 429s of the fake's enforced limits.

(c) One push run (EVENTSUB_TRANSPORT=websocket, every option ON) with P more streamers, each followed by its own
server: the probes. Each probe goes live by push (the listing never shows it) and its latency runs from
`fake_twitch.go_live` to the announcement's POST reaching the fake Discord. Probes fire every --gap s: (1) idle;
(2) after a burst of L go-lives, once all their announcements are posted, while the crossposts and scheduled events
they left (pacer background priority) are still going out; (3) during a poll cycle whose round edits every live
card (all titles changed, live updates due).

Bench-only wrappers on the bot's objects (instance attributes) note when a probe's push reached Notifier.push_online
and when its announce call began; nothing in the product changes. Also counted: what the fake Discord refused (400,
as Discord would), the bot's WARNING lines by message, and the opt-in roles in the fake (a copy per (server, streamer)
beyond one, and pressing members without the role the bot stored). Printed, never asserted; `check` lists what looks
like a defect (an option adding a Twitch request other than /helix/schedule, a 429, a refused request, a duplicate,
a probe announced late or only once the poll cycle's round was over).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    DISCORD_TOKEN,
    TWITCH_CLIENT_ID,
    TWITCH_CLIENT_SECRET,
    FakeOptions,
    machine_line,
    save_json,
    table,
    user_id,
    workdir,
)
from bench.push_latency import EVENTSUB_OPTIONS, PushServices, TimedDiscord, bot_logging, code_version, summary_ms
from database import Database
from tests.e2e.harness import BotHarness, LogWatcher
from tests.fakes.discord_events import CREATE_EVENTS
from tests.fakes.discord_payloads import DEFAULT_BOT_PERMISSIONS, NEWS_CHANNEL
from tests.fakes.discord_roles import MANAGE_ROLES
from tests.fakes.fake_discord import patch_discord_endpoints
from tests.fakes.fake_twitch import FakeUser
from twitch_notifier.core.opt_in import CUSTOM_ID_PREFIX, ROLE_SUFFIX, notify_custom_id
from twitch_notifier.models import Streamer, TitleFilter
from twitch_notifier.twitch.eventsub import WANTED_TYPES

FAKES = FakeOptions()  # Twitch 800 points/min + 50 ms per Helix request; Discord's limits enforced
UPDATE_INTERVAL = 1.0  # LIVE_UPDATE_INTERVAL_SECONDS (production: 300): the title step's edits are due at once
QUIET = 1.0  # seconds without a Discord request that end a step (the pacer spaces requests ~21 ms apart)
STEP_TIMEOUT = 600.0
PROBE_TIMEOUT = 120.0
ON_SETTINGS: dict[str, Any] = {
    "live_events": True,
    "publish": True,
    "notify_button": True,
    "ping_throttle_hours": 6,
    "restart_grace_seconds": 600,
}
INCLUDE_WORD = "tournament"  # only the changed titles have it: those entries are announced mid-stream
# The probes' targets, printed against the figures: an idle go-live's announcement well under a second, and one
# made during background work no more than a second later than that (the pacer lets it go first).
IDLE_TARGET_MS = 1000.0
BACKLOG_EXTRA_MS = 1000.0

# Discord requests by kind: (kind, method or None for any, path regex without /api/v10).
KINDS: tuple[tuple[str, str | None, str], ...] = (
    ("message post", "POST", r"/channels/\d+/messages"),
    ("message edit", "PATCH", r"/channels/\d+/messages/\d+"),
    ("message delete", "DELETE", r"/channels/\d+/messages/\d+"),
    ("crosspost", "POST", r"/channels/\d+/messages/\d+/crosspost"),
    ("event create", "POST", r"/guilds/\d+/scheduled-events"),
    ("event patch", "PATCH", r"/guilds/\d+/scheduled-events/\d+"),
    ("event list", "GET", r"/guilds/\d+/scheduled-events"),
    ("role create", "POST", r"/guilds/\d+/roles"),
    ("member role add", "PUT", r"/guilds/\d+/members/\d+/roles/\d+"),
    ("member role remove", "DELETE", r"/guilds/\d+/members/\d+/roles/\d+"),
    ("interaction answer", None, r"/(?:interactions|webhooks)/.*"),
)
KIND_NAMES = (*(kind for kind, _, _ in KINDS), "other")
_COMPILED = tuple((kind, method, re.compile(pattern)) for kind, method, pattern in KINDS)
BACKGROUND = frozenset({"message edit", "message delete", "crosspost", "event create", "event patch", "event list"})
"""What the bot sends at the pacer's background priority (the announcer's edits, deletes and publishes; events)."""
UNPACED_BY_DISCORD = frozenset({"interaction answer"})
"""Interaction callbacks and follow-ups carry no bot token: Discord's global limit does not count them."""


def kind_of(method: str, path: str) -> str:
    for kind, wanted, pattern in _COMPILED:
        if (wanted is None or wanted == method) and pattern.fullmatch(path):
            return kind
    return "other"


# --------------------------------------------------------------------------------------------- the fakes


class ReachDiscord(TimedDiscord):
    """TimedDiscord (message POST arrivals by channel) that also stamps every REST request's arrival and kind."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log: list[tuple[float, str]] = []  # (time.monotonic() at arrival, kind), every /api/v10 request
        self.paths: list[str] = []  # the same requests' paths

    async def _read_body(self, request: Any, path: str) -> None:
        self.log.append((time.monotonic(), kind_of(request.method, path)))
        self.paths.append(path)
        await super()._read_body(request, path)


class ReachServices(PushServices):
    """push_latency's in-process fakes, with the fake Discord stamping every request."""

    def __init__(self, options: FakeOptions) -> None:
        super().__init__(options)
        self.discord: ReachDiscord = ReachDiscord(token=DISCORD_TOKEN, enforce_rate_limits=options.discord_limits)


# --------------------------------------------------------------------------------------------- the world


@dataclass(frozen=True, slots=True)
class World:
    servers: int = 300
    streamers: int = 60
    follows: int = 3  # streamers each server follows
    live: int = 30  # streamers that go live (each followed by servers × follows / streamers servers)
    ends: int = 15  # of those, how many end
    restarts: int = 3  # of those, how many come back within the grace
    presses: int = 100  # Notify me presses (two per server, on its first card)
    probes: int = 8  # go-lives per latency scenario
    gap: float = 0.5  # seconds between two probes
    quiet: float = QUIET  # seconds without a Discord request that end a step (the smoke test's are shorter)

    def followed(self, server: int) -> list[int]:
        """The streamers server `server` follows: F consecutive ones, so each is followed by S×F/N servers."""
        return [(server * self.follows + j) % self.streamers for j in range(self.follows)]

    def live_streamers(self) -> list[int]:
        step = max(1, self.streamers // max(1, self.live))
        return list(range(0, self.streamers, step))[: self.live]


def title_filter(slot: int) -> TitleFilter:
    """The ON run's filter of a server's `slot`-th entry: every kind of filter, most passing the first title."""
    if slot % 3 == 0:
        return TitleFilter(exclude=("rerun", "reupload"), skip_reruns=True)
    if slot % 3 == 1:
        return TitleFilter(regex=rf"\b(ranked|{INCLUDE_WORD})\b")
    return TitleFilter(include=(INCLUDE_WORD,))  # announced only once the title has it


def first_title(index: int) -> str:
    return f"Bench stream {index}: ranked games"


def changed_title(index: int) -> str:
    return f"Bench stream {index}: {INCLUDE_WORD} finals"


@dataclass(slots=True)
class Layout:
    channels: list[tuple[int, int]]  # server index -> (guild id, channel id)
    probe_channels: list[tuple[int, int]] = field(default_factory=list)  # probe p -> (guild id, channel id)


def build_world(services: ReachServices, world: World, probes: int = 0) -> Layout:
    """Streamers (bench_i, then probe_p) and servers with one announcement channel each, the bot allowed to
    create events and manage roles."""
    for i in range(world.streamers + probes):
        uid = user_id(i)
        login = f"bench_{i}" if i < world.streamers else f"probe_{i - world.streamers}"
        services.twitch.users[uid] = FakeUser(
            id=uid, login=login, display_name=login.title(), profile_image_url=f"https://example.invalid/{i}.png"
        )
    permissions = DEFAULT_BOT_PERMISSIONS | CREATE_EVENTS | MANAGE_ROLES

    def server(name: str) -> tuple[int, int]:
        guild = services.discord.add_guild(name, bot_permissions=permissions)
        channel = services.discord.add_channel(guild.id, "announcements", type=NEWS_CHANNEL)
        return guild.id, channel.id

    channels = [server(f"reach-{g}") for g in range(world.servers)]
    return Layout(channels, [server(f"probe-{p}") for p in range(probes)])


def _streamer(index: int, world: World) -> Streamer:
    login = f"bench_{index}" if index < world.streamers else f"probe_{index - world.streamers}"
    return Streamer(user_id(index), login, login.title(), f"https://example.invalid/{index}.png")


async def build_db(path: Path, world: World, layout: Layout, *, options_on: bool) -> None:
    """The database through the bot's own Database methods (a few thousand rows: no bulk shortcut needed)."""
    db = await Database.open(str(path))
    try:
        for g, (guild_id, channel_id) in enumerate(layout.channels):
            await db.set_announce_channel(guild_id, channel_id)
            if options_on:
                await db.update_guild_settings(guild_id, **ON_SETTINGS)
            for slot, index in enumerate(world.followed(g)):
                await db.add_subscription(
                    guild_id,
                    channel_id,
                    _streamer(index, world),
                    title_filter=title_filter(slot) if options_on else None,
                )
        for p, (guild_id, channel_id) in enumerate(layout.probe_channels):
            await db.set_announce_channel(guild_id, channel_id)
            await db.update_guild_settings(guild_id, **ON_SETTINGS)
            await db.add_subscription(guild_id, channel_id, _streamer(world.streamers + p, world))
    finally:
        await db.close()


def _harness(services: ReachServices, db_path: Path, **settings: Any) -> BotHarness:
    return BotHarness(
        services.discord,
        services.twitch,
        db_path,
        discord_token=DISCORD_TOKEN,
        twitch_client_id=TWITCH_CLIENT_ID,
        twitch_client_secret=TWITCH_CLIENT_SECRET,
        live_update_interval_seconds=UPDATE_INTERVAL,
        **settings,
    )


# ------------------------------------------------------------------------------------------ step records


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class WarningCounter(logging.Handler):
    """Counts the bot's WARNING records by logger and message template (a retry storm shows as one large count)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING and "voice will NOT be supported" not in str(record.msg):
            self.counts[f"{record.name}: {record.msg}"] += 1


@contextlib.contextmanager
def counted_warnings() -> Any:
    counter = WarningCounter()
    logging.getLogger().addHandler(counter)
    try:
        yield counter
    finally:
        logging.getLogger().removeHandler(counter)


def rejections(services: ReachServices) -> dict[str, int]:
    """What the fake Discord refused (400/401, as Discord would), by kind, status and Discord's error codes."""
    reasons: Counter[str] = Counter()
    for r in services.discord.rejected:
        codes = sorted(set(re.findall(r'"code": "([A-Z_]+)"', json.dumps(r.body))))
        reasons[f"{kind_of(r.method, r.path)} {r.status}: {', '.join(codes) or r.body.get('message', '')}"] += 1
    return dict(reasons)


def opt_in_roles(services: ReachServices, guild_ids: Sequence[int]) -> dict[str, int]:
    """Opt-in roles in the fake's servers: how many, for how many (server, name) pairs, and the extra copies."""
    names: Counter[tuple[int, str]] = Counter()
    for guild_id in guild_ids:
        for role in services.discord.guilds[guild_id].roles.values():
            if role.name.endswith(ROLE_SUFFIX):
                names[(guild_id, role.name)] += 1
    return {"roles": sum(names.values()), "pairs": len(names), "duplicates": sum(n - 1 for n in names.values())}


class Recorder:
    """Slices the fakes' request logs into steps: Twitch by path, Discord by kind, 429s, the densest second."""

    def __init__(self, services: ReachServices) -> None:
        self.services = services
        self.steps: list[dict[str, Any]] = []
        self._marks: tuple[str, int, int, int, int, float] | None = None

    def begin(self, name: str) -> None:
        d = self.services.discord
        self._marks = (
            name,
            len(self.services.twitch.requests),
            len(d.log),
            len(d.rate_limited),
            len(d.global_rate_limited),
            time.monotonic(),
        )

    def end(self, **extra: Any) -> dict[str, Any]:
        assert self._marks is not None
        name, t0, d0, r0, g0, started = self._marks
        d = self.services.discord
        twitch = self.services.twitch.requests[t0:]
        discord = d.log[d0:]
        limited = d.rate_limited[r0:]
        global_limited = d.global_rate_limited[g0:]
        global_ids = {id(r) for r in global_limited}
        step = {
            "step": name,
            "wall_s": time.monotonic() - started,
            "twitch_by_path": dict(sorted(Counter(r.path for r in twitch).items())),
            "twitch_total": len(twitch),
            "twitch_429": sum(1 for r in twitch if r.status == 429),
            "discord_by_kind": dict(Counter(kind for _, kind in discord)),
            "discord_total": len(discord),
            "discord_max_1s": max_in_window([t for t, kind in discord if kind not in UNPACED_BY_DISCORD]),
            "global_429": len(global_limited),
            "route_429": len(limited) - len(global_limited),
            "route_429_kinds": dict(Counter(kind_of(r.method, r.path) for r in limited if id(r) not in global_ids)),
            "times": [t for t, kind in discord if kind not in UNPACED_BY_DISCORD],
            **extra,
        }
        self.steps.append(step)
        self._marks = None
        return step


async def settle(harness: BotHarness, services: ReachServices, *, quiet: float = QUIET) -> None:
    """Until the bot's background work is over: no publish under way, no live-events pass running, and no Discord
    request for `quiet` seconds."""
    bot = harness.bot
    assert bot is not None
    deadline = time.monotonic() + STEP_TIMEOUT
    publisher = bot.notifier.publisher
    while time.monotonic() < deadline:
        if publisher is not None:
            await publisher.wait_idle()
        seen = len(services.discord.log)
        await asyncio.sleep(quiet)
        events_busy = bot.live_events is not None and bot.live_events._lock.locked()
        publishing = publisher is not None and bool(publisher._tasks)
        if len(services.discord.log) == seen and not events_busy and not publishing:
            return
    raise TimeoutError(f"the bot's Discord work did not end within {STEP_TIMEOUT:.0f} s")


# ------------------------------------------------------------------------------------------ (a) + (b)


async def measure_poll(
    world: World, *, options_on: bool, fakes: FakeOptions = FAKES, keep: str | None = None
) -> dict[str, Any]:
    """The poll-only script with every option OFF or ON; one record per step."""
    label = "on" if options_on else "off"
    with workdir(keep) as wd, bot_logging(wd / f"bot-{label}.log") as errors, counted_warnings() as warnings:
        services = ReachServices(fakes)
        await services.start()
        try:
            with patch_discord_endpoints(services.discord):
                layout = build_world(services, world)
                db_path = wd / f"reach-{label}.db"
                await build_db(db_path, world, layout, options_on=options_on)
                harness = _harness(services, db_path)
                recorder = Recorder(services)
                recorder.begin("start-up (first cycle)")
                await harness.start()
                try:
                    await settle(harness, services, quiet=world.quiet)
                    recorder.end()
                    await _script(harness, services, recorder, world, layout, options_on)
                    assert harness.bot is not None
                    pacer = harness.bot.notifier._announcer.pacer  # type: ignore[attr-defined]
                    pacer_stats = {"acquired": pacer.acquired, "delayed": pacer.delayed, "waited_s": pacer.waited}
                finally:
                    await harness.stop()
        finally:
            await services.stop()
    messages = [m for m in services.discord.messages if m.embeds and m.interaction is None]
    return {
        "options": label,
        "world": _world_dict(world),
        "steps": recorder.steps,
        "totals": totals({"steps": recorder.steps}),
        "messages": len(messages),
        "duplicates": len(messages) - len({(m.channel_id, m.nonce) for m in messages}),
        "crossposted": len(services.discord.crossposted),
        "scheduled_events": sum(len(services.discord.scheduled_events.in_guild(g)) for g, _ in layout.channels),
        "pacer": pacer_stats,
        "opt_in_roles": opt_in_roles(services, [g for g, _ in layout.channels]),
        "unhandled": len(services.discord.unhandled) + len(services.twitch.unhandled),
        "rejected": len(services.discord.rejected),
        "rejections": rejections(services),
        "warnings": dict(warnings.counts.most_common()),
        "errors": errors.formatted(),
    }


def _world_dict(world: World) -> dict[str, Any]:
    return {name: getattr(world, name) for name in World.__dataclass_fields__}


async def _script(
    harness: BotHarness,
    services: ReachServices,
    recorder: Recorder,
    world: World,
    layout: Layout,
    options_on: bool,
) -> None:
    twitch = services.twitch
    live = world.live_streamers()
    ending = live[: world.ends]
    restarting = ending[: world.restarts]

    async def cycle(name: str, change: Callable[[], None] = lambda: None) -> None:
        recorder.begin(name)
        change()
        await harness.poll()
        await settle(harness, services, quiet=world.quiet)
        recorder.end(cycles=1)

    def go_live(indices: Sequence[int]) -> Callable[[], None]:
        def change() -> None:
            for i in indices:
                twitch.go_live(user_id(i), title=first_title(i), game_name="Just Chatting", push=False)

        return change

    def change_titles() -> None:
        for i in live:
            twitch.update_stream(user_id(i), title=changed_title(i), push=False)

    def end() -> None:
        for i in ending:
            twitch.go_offline(user_id(i), push=False)

    await cycle(f"{len(live)} streamers go live", go_live(live))
    if options_on:
        recorder.begin(f"{world.presses} Notify me presses")
        answered, pressed = await _press(services, world, layout)
        await settle(harness, services, quiet=world.quiet)
        assert harness.db is not None
        stored = {g: await harness.db.notify_roles(g) for g in {guild for guild, _, _ in pressed}}
        orphaned = sum(
            1
            for guild, member, uid in pressed
            if stored[guild].get(uid) not in services.discord.member_role_ids(guild, member)
        )
        recorder.end(cycles=0, presses_answered=answered, members_without_the_stored_role=orphaned)
    await cycle("steady")
    await cycle(f"{len(live)} titles change", change_titles)
    await cycle(f"{len(ending)} streams end (1st miss)", end)
    await cycle(f"{len(ending)} streams end (2nd miss: closed)")
    await cycle(f"{len(restarting)} come back (new stream id)", go_live(restarting))
    await cycle("steady")


async def _press(services: ReachServices, world: World, layout: Layout) -> tuple[int, list[tuple[int, int, str]]]:
    """Members press Notify me: two per server on its first card (the first press creates the role), ten at
    a time, as members who saw the same alert would. Returns how many presses were answered, and each press's
    (guild id, member id, streamer's user id)."""
    discord = services.discord
    presses: list[tuple[Any, str, int]] = []
    pressed: list[tuple[int, int, str]] = []
    for g, (guild_id, channel_id) in enumerate(layout.channels):
        cards = [m for m in discord.messages_in(channel_id) if m.embeds and m.components and not m.deleted]
        for card in cards[:1]:
            uid = next(
                (
                    str(b["custom_id"]).removeprefix(CUSTOM_ID_PREFIX)
                    for row in card.components
                    for b in row["components"]
                    if str(b.get("custom_id", "")).startswith(CUSTOM_ID_PREFIX)
                ),
                None,
            )
            if uid is None:
                continue
            for member in range(2):
                viewer = discord.add_user(f"viewer-{g}-{member}").id
                presses.append((card, notify_custom_id(uid), viewer))
                pressed.append((guild_id, viewer, uid))
        if len(presses) >= world.presses:
            break
    presses, pressed = presses[: world.presses], pressed[: world.presses]
    answered = 0
    for first in range(0, len(presses), 10):
        interactions = [
            await discord.press_button(card, custom_id, user_id=member)
            for card, custom_id, member in presses[first : first + 10]
        ]
        replies = await asyncio.gather(*(i.wait_reply(timeout=30) for i in interactions), return_exceptions=True)
        answered += sum(1 for r in replies if not isinstance(r, BaseException))
    return answered, pressed


# ------------------------------------------------------------------------------------------------ (c)


@dataclass(slots=True)
class Probe:
    index: int  # streamer index
    channel_id: int
    scenario: str = ""
    called: float = math.nan  # fake_twitch.go_live called
    push_online: float = math.nan  # Notifier.push_online entered
    lock_held: bool = False  # the notifier's lock was held at that moment
    announce: float = math.nan  # DiscordAnnouncer.announce entered for its channel
    arrived: float = math.nan  # its POST reached the fake Discord
    background_after: int = 0  # background requests that reached the fake after its POST (the backlog left)
    round_running: bool = False  # fired while the scenario's poll cycle was under way

    @property
    def latency(self) -> float:
        return self.arrived - self.called


class ProbeWatch:
    """Bench-only wrappers (instance attributes) on the shipped bot's notifier and announcer, and the fake
    Discord's arrival hook: each only notes a time and calls through."""

    def __init__(self, services: ReachServices, harness: BotHarness, probes: Sequence[Probe]) -> None:
        self.services = services
        self.by_user = {user_id(p.index): p for p in probes}
        self.by_channel = {p.channel_id: p for p in probes}
        self.changed = asyncio.Event()
        bot = harness.bot
        assert bot is not None
        self.notifier = bot.notifier
        services.discord.on_arrival = self._arrived
        original_push = bot.notifier.push_online
        announcer = bot.notifier._announcer
        original_announce = announcer.announce

        async def push_online(stream: Any, **kwargs: Any) -> Any:
            probe = self.by_user.get(stream.user_id)
            if probe is not None and math.isnan(probe.push_online):
                probe.push_online = time.monotonic()
                probe.lock_held = self.notifier._lock.locked()
            return await original_push(stream, **kwargs)

        async def announce(channel_id: int, *args: Any, **kwargs: Any) -> Any:
            probe = self.by_channel.get(channel_id)
            if probe is not None and math.isnan(probe.announce):
                probe.announce = time.monotonic()
            return await original_announce(channel_id, *args, **kwargs)

        bot.notifier.push_online = push_online  # type: ignore[method-assign]
        announcer.announce = announce  # type: ignore[method-assign]

    def _arrived(self, channel_id: int, arrived: float) -> None:
        probe = self.by_channel.get(channel_id)
        if probe is not None and math.isnan(probe.arrived):
            probe.arrived = arrived
            self.changed.set()

    async def wait(self, probes: Sequence[Probe], timeout: float = PROBE_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while any(math.isnan(p.arrived) for p in probes):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True


@contextlib.asynccontextmanager
async def push_harness(services: ReachServices, db_path: Path, user_ids: Sequence[str]) -> AsyncIterator[BotHarness]:
    """The bot with push on (push_latency.started_bot with this bench's settings): returns once the shard is bound
    and every wanted subscription is enabled, so no probe queues behind the sync's creates."""
    harness = _harness(services, db_path, eventsub_transport="websocket")
    harness.eventsub_options = dict(EVENTSUB_OPTIONS)
    try:
        await harness.start()
        bot = harness.bot
        assert bot is not None and bot.push is not None
        push = bot.push
        await harness.wait_for(lambda: push.status().connected, "the shard to be bound", timeout=30)
        wanted, subscriptions = set(user_ids), services.twitch.eventsub.subscriptions

        def subscribed() -> bool:
            enabled = [s for s in subscriptions.values() if s.status == "enabled" and s.broadcaster_user_id in wanted]
            return len(enabled) >= len(WANTED_TYPES) * len(wanted) and push.sync.synced.is_set()

        await harness.wait_for(
            lambda: all(push.sync.push_covers(uid) for uid in user_ids) and subscribed(),
            f"EventSub subscriptions for {len(user_ids)} streamers",
            timeout=60 + len(user_ids) / 20,
        )
        yield harness
    finally:
        await harness.stop()


def _expected_posts(world: World, streamers: Sequence[int], title_of: Callable[[int], str]) -> int:
    """How many announcements the ON world makes when `streamers` go live with these titles (filters applied)."""
    from twitch_notifier.core.filters import title_allows

    wanted = set(streamers)
    return sum(
        1
        for g in range(world.servers)
        for slot, index in enumerate(world.followed(g))
        if index in wanted and title_allows(title_filter(slot), title_of(index))
    )


async def measure_latency(world: World, *, fakes: FakeOptions = FAKES, keep: str | None = None) -> dict[str, Any]:
    """(c): probes' announcement latency idle, behind background work after a burst, and during an edit round."""
    with workdir(keep) as wd, bot_logging(wd / "bot-push.log") as errors, counted_warnings() as warnings:
        services = ReachServices(fakes)
        await services.start()
        try:
            with patch_discord_endpoints(services.discord):
                result = await _measure_latency(services, wd, world, errors)
                result["rejections"] = rejections(services)
                result["warnings"] = dict(warnings.counts.most_common())
                return result
        finally:
            await services.stop()


async def _measure_latency(services: ReachServices, wd: Path, world: World, errors: LogWatcher) -> dict[str, Any]:
    scenarios = ("idle", "background after a burst", "poll round editing every live card")
    probe_count = world.probes * len(scenarios)
    layout = build_world(services, world, probes=probe_count)
    db_path = wd / "reach-push.db"
    await build_db(db_path, world, layout, options_on=True)
    uids = [user_id(i) for i in range(world.streamers + probe_count)]
    probes = [Probe(world.streamers + p, channel_id) for p, (_, channel_id) in enumerate(layout.probe_channels)]
    twitch, discord = services.twitch, services.discord
    live = world.live_streamers()
    notes: dict[str, Any] = {}
    ends: dict[str, float] = {}  # when each scenario's work was over
    async with push_harness(services, db_path, uids) as harness:
        await settle(harness, services, quiet=world.quiet)
        watch = ProbeWatch(services, harness, probes)
        bot = harness.bot
        assert bot is not None
        groups = {name: probes[k * world.probes : (k + 1) * world.probes] for k, name in enumerate(scenarios)}
        recorder = Recorder(services)

        async def fire(group: list[Probe], name: str, poll: asyncio.Task[None] | None = None) -> None:
            for n, probe in enumerate(group):
                if n:
                    await asyncio.sleep(world.gap)
                probe.scenario = name
                probe.round_running = poll is not None and not poll.done()
                probe.called = time.monotonic()
                twitch.go_live(user_id(probe.index), title=f"Probe {probe.index}", listed_after=3600.0)

        # 1. Idle.
        recorder.begin(scenarios[0])
        await fire(groups[scenarios[0]], scenarios[0])
        notes["idle_complete"] = await watch.wait(groups[scenarios[0]])
        await settle(harness, services, quiet=world.quiet)
        ends[scenarios[0]] = time.monotonic()
        recorder.end()

        # 2. A burst by push; once its announcements are all posted, probes while its background work goes out.
        recorder.begin(scenarios[1])
        expected = _expected_posts(world, live, first_title)
        posts_before = _count(discord, "message post")
        burst_at = time.monotonic()
        for i in live:
            twitch.go_live(user_id(i), title=first_title(i), game_name="Just Chatting")
        await _until(lambda: _count(discord, "message post") - posts_before >= expected, STEP_TIMEOUT)
        notes["burst"] = {
            "go_lives": len(live),
            "announcements": expected,
            "posted_after_s": time.monotonic() - burst_at,
            "background_so_far": _count_background(discord, burst_at),
        }
        await fire(groups[scenarios[1]], scenarios[1])
        notes["burst_complete"] = await watch.wait(groups[scenarios[1]])
        await settle(harness, services, quiet=world.quiet)
        notes["burst"]["background_total"] = _count_background(discord, burst_at)
        notes["burst"]["all_done_after_s"] = time.monotonic() - burst_at - world.quiet
        ends[scenarios[1]] = time.monotonic()
        recorder.end()

        # 3. Every live title changes (only the poll sees it); a poll cycle's round edits every card; probes meanwhile.
        recorder.begin(scenarios[2])
        for i in live:
            twitch.update_stream(user_id(i), title=changed_title(i), push=False)
        await asyncio.sleep(UPDATE_INTERVAL)  # the cards' live-update interval has passed since the burst anyway
        edits_before = _count(discord, "message edit")
        started = time.monotonic()
        poll = asyncio.create_task(harness.poll(), name="bench poll")
        poll_ended = [math.nan]
        poll.add_done_callback(lambda _: poll_ended.__setitem__(0, time.monotonic()))
        await _until(lambda: _count(discord, "message edit") - edits_before >= 5 or poll.done(), STEP_TIMEOUT)
        edits_began = time.monotonic() - started
        await fire(groups[scenarios[2]], scenarios[2], poll)
        notes["round_complete"] = await watch.wait(groups[scenarios[2]])
        await poll
        round_s = time.monotonic() - started
        await settle(harness, services, quiet=world.quiet)
        notes["round"] = {
            "edits": _count(discord, "message edit") - edits_before,
            "first_edits_after_s": edits_began,
            "poll_cycle_s": round_s,
            # Each probe of the round: its POST after the poll cycle's end (negative: before it).
            "posted_after_cycle_end_ms": [
                1000 * (p.arrived - poll_ended[0]) for p in groups[scenarios[2]] if p.round_running
            ],
            "fired_during_cycle": sum(1 for p in groups[scenarios[2]] if p.round_running),
        }
        ends[scenarios[2]] = time.monotonic()
        recorder.end()
        pacer = bot.notifier._announcer.pacer  # type: ignore[attr-defined]
        pacer_stats = {"acquired": pacer.acquired, "delayed": pacer.delayed, "waited_s": pacer.waited}
    # The backlog a probe's announcement overtook: background requests of the other servers (not the probes' own
    # crossposts and events) that reached the fake after its POST, until its scenario's work was over.
    probe_ids = {str(i) for pair in layout.probe_channels for i in pair}
    background_times = [
        t
        for (t, kind), path in zip(discord.log, discord.paths, strict=True)
        if kind in BACKGROUND and probe_ids.isdisjoint(path.split("/"))
    ]
    for probe in probes:
        if not math.isnan(probe.arrived):
            end = bisect.bisect_right(background_times, ends.get(probe.scenario, math.inf))
            probe.background_after = max(0, end - bisect.bisect_right(background_times, probe.arrived))
    per_scenario = {}
    for name, group in groups.items():
        done = [p for p in group if not math.isnan(p.arrived)]
        per_scenario[name] = {
            "probes": len(group),
            "announced": len(done),
            "latency": summary_ms([p.latency for p in done]),
            "to_push_online": summary_ms([p.push_online - p.called for p in done]),
            "push_online_to_announce": summary_ms([p.announce - p.push_online for p in done]),
            "announce_to_post": summary_ms([p.arrived - p.announce for p in done]),
            "lock_held": sum(1 for p in done if p.lock_held),
            "round_running": sum(1 for p in group if p.round_running),
            "background_after_min": min((p.background_after for p in done), default=0),
            "background_after_max": max((p.background_after for p in done), default=0),
            "each": [
                {
                    "latency_ms": 1000 * p.latency,
                    "lock_held": p.lock_held,
                    "round_running": p.round_running,
                    "background_after": p.background_after,
                }
                for p in group
            ],
        }
    return {
        "scenarios": per_scenario,
        "notes": notes,
        "steps": recorder.steps,
        "totals": totals({"steps": recorder.steps}),
        "pacer": pacer_stats,
        "twitch_by_path": dict(sorted(Counter(r.path for r in twitch.requests).items())),
        "unhandled": len(discord.unhandled) + len(twitch.unhandled),
        "rejected": len(discord.rejected),
        "errors": errors.formatted(),
    }


def _count(discord: ReachDiscord, kind: str) -> int:
    return sum(1 for _, k in discord.log if k == kind)


def _count_background(discord: ReachDiscord, since: float) -> int:
    return sum(1 for t, k in discord.log if k in BACKGROUND and t >= since)


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the bench's condition did not hold in time")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------------------------------------ the run


async def measure(
    world: World = World(),  # frozen, never mutated
    *,
    fakes: FakeOptions = FAKES,
    keep: str | None = None,
    parts: Sequence[str] = ("poll", "latency"),
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "world": _world_dict(world),
        "twitch_latency_s": fakes.twitch_latency,
        "update_interval_s": UPDATE_INTERVAL,
        "code": code_version(),
    }
    if "poll" in parts:
        print("reach: poll run, every option OFF ...", flush=True)
        result["off"] = await measure_poll(world, options_on=False, fakes=fakes, keep=keep)
        print("reach: poll run, every option ON ...", flush=True)
        result["on"] = await measure_poll(world, options_on=True, fakes=fakes, keep=keep)
    if "latency" in parts:
        print("reach: push run, announcement latency of probes ...", flush=True)
        result["latency"] = await measure_latency(world, fakes=fakes, keep=keep)
    return result


async def run(
    world: World = World(),  # frozen, never mutated
    *,
    fakes: FakeOptions = FAKES,
    keep: str | None = None,
    parts: Sequence[str] = ("poll", "latency"),
) -> dict[str, Any]:
    """`measure`, timed, without the per-request arrival times (what bench/results/reach.json keeps)."""
    started = time.monotonic()
    result = await measure(world, fakes=fakes, keep=keep, parts=parts)
    result["wall_s"] = time.monotonic() - started
    for part in (result.get("off"), result.get("on"), result.get("latency")):
        for step in part["steps"] if part else ():
            step.pop("times", None)  # every request's arrival time: the figures are computed already
    return result


# ------------------------------------------------------------------------------------------------ output


def _cycles(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in run["steps"] if s.get("cycles", 1)]


def twitch_table(result: dict[str, Any]) -> str:
    """(a) Twitch requests per poll cycle and path, OFF vs ON."""
    off, on = _cycles(result["off"]), _cycles(result["on"])
    rows = []
    for a, b in zip(off, on, strict=True):
        paths = sorted(set(a["twitch_by_path"]) | set(b["twitch_by_path"]))
        for path in paths or ["(none)"]:
            x, y = a["twitch_by_path"].get(path, 0), b["twitch_by_path"].get(path, 0)
            rows.append((b["step"], path, x, y, "yes" if x == y else "NO"))
        rows.append(
            (
                b["step"],
                "total",
                a["twitch_total"],
                b["twitch_total"],
                "yes" if a["twitch_total"] == b["twitch_total"] else "NO",
            )
        )
    return table(("Cycle", "Twitch path", "OFF", "ON", "Same"), rows)


def discord_table(run: dict[str, Any]) -> str:
    """(b) Discord requests per step, by kind."""
    shown = [k for k in KIND_NAMES if any(s["discord_by_kind"].get(k) for s in run["steps"])]
    rows = []
    for s in run["steps"]:
        rows.append(
            (
                s["step"],
                *(s["discord_by_kind"].get(k, 0) for k in shown),
                s["discord_total"],
                s["discord_max_1s"],
                f"{s['global_429']} / {s['route_429']}",
                s["wall_s"],
            )
        )
    total = totals(run)
    rows.append(
        (
            "all",
            *(total["by_kind"].get(k, 0) for k in shown),
            total["requests"],
            total["max_1s"],
            f"{total['global_429']} / {total['route_429']}",
            total["wall_s"],
        )
    )
    return table(("Step", *shown, "Total", "Max in 1 s", "429 global / route", "Wall s"), rows)


def totals(run: dict[str, Any]) -> dict[str, Any]:
    """A run's Discord figures over all its steps (computed once, while the steps still hold their times)."""
    if "totals" in run:
        return dict(run["totals"])
    by_kind: Counter[str] = Counter()
    for s in run["steps"]:
        by_kind.update(s["discord_by_kind"])
    times = sorted(t for s in run["steps"] for t in s["times"])
    return {
        "by_kind": dict(by_kind),
        "requests": sum(by_kind.values()),
        "max_1s": max_in_window(times),
        "global_429": sum(s["global_429"] for s in run["steps"]),
        "route_429": sum(s["route_429"] for s in run["steps"]),
        "wall_s": sum(s["wall_s"] for s in run["steps"]),
    }


def latency_table(latency: dict[str, Any]) -> str:
    """(c) Probe go-live -> POST at the fake Discord, per scenario, and where the time went (medians)."""
    rows = []
    for name, s in latency["scenarios"].items():
        rows.append(
            (
                name,
                f"{s['announced']} / {s['probes']}",
                s["latency"]["p50_ms"],
                s["latency"]["max_ms"],
                s["to_push_online"]["p50_ms"],
                s["push_online_to_announce"]["p50_ms"],
                s["push_online_to_announce"]["max_ms"],
                s["announce_to_post"]["p50_ms"],
                s["lock_held"],
                f"{s['background_after_min']}–{s['background_after_max']}",
            )
        )
    headers = (
        "Scenario",
        "Announced",
        "Latency p50 ms",
        "Latency max ms",
        "go-live → push_online p50 ms",
        "push_online → announce p50 ms",
        "push_online → announce max ms",
        "announce → POST p50 ms",
        "Notifier lock held at push_online",
        "Background requests after its POST",
    )
    return table(headers, rows)


def check(result: dict[str, Any]) -> list[str]:
    """What looks like a defect: options adding Twitch requests, 429s, lost or duplicated posts, probes late."""
    misses = []
    if "off" in result and "on" in result:
        for a, b in zip(_cycles(result["off"]), _cycles(result["on"]), strict=True):
            extra = {
                path: n - a["twitch_by_path"].get(path, 0)
                for path, n in b["twitch_by_path"].items()
                if path != "/helix/schedule" and n > a["twitch_by_path"].get(path, 0)
            }
            if extra:
                misses.append(f"reach: cycle '{b['step']}': the options add Twitch requests {extra}")
        for run in (result["off"], result["on"]):
            name = f"reach ({run['options']})"
            total = totals(run)
            if total["global_429"] or total["route_429"]:
                misses.append(f"{name}: 429s global {total['global_429']} / route {total['route_429']}")
            if total["max_1s"] > 50:
                misses.append(f"{name}: {total['max_1s']} Discord requests in one second (limit 50)")
            if run["duplicates"]:
                misses.append(f"{name}: {run['duplicates']} duplicate announcements")
            if run["errors"] or run["unhandled"]:
                misses.append(f"{name}: {len(run['errors'])} ERROR lines, {run['unhandled']} unhandled requests")
            if run["rejected"]:
                misses.append(f"{name}: Discord (the fake) refused {run['rejected']} requests: {run['rejections']}")
            roles = run["opt_in_roles"]
            if roles["duplicates"]:
                misses.append(
                    f"{name}: {roles['roles']} opt-in roles for {roles['pairs']} (server, streamer) pairs: "
                    f"{roles['duplicates']} duplicates, made by presses at the same moment"
                )
            presses = next((step for step in run["steps"] if "presses_answered" in step), None)
            if presses is not None and presses["members_without_the_stored_role"]:
                misses.append(
                    f"{name}: {presses['members_without_the_stored_role']} of {presses['presses_answered']} members "
                    "who pressed Notify me hold an opt-in role the bot no longer knows (its announcements ping another)"
                )
    if "latency" in result:
        latency = result["latency"]
        scenarios = latency["scenarios"]
        idle = scenarios["idle"]["latency"]["p50_ms"]
        for name, s in scenarios.items():
            if s["announced"] != s["probes"]:
                misses.append(f"reach latency '{name}': {s['announced']} of {s['probes']} probes announced")
                continue
            limit = IDLE_TARGET_MS if name == "idle" else idle + BACKLOG_EXTRA_MS
            if s["latency"]["max_ms"] > limit:
                misses.append(
                    f"reach latency '{name}': a probe's announcement took {s['latency']['max_ms']:.0f} ms "
                    f"(p50 {s['latency']['p50_ms']:.0f} ms; idle p50 {idle:.0f} ms; {s['lock_held']} of "
                    f"{s['probes']} found the notifier's lock held)"
                )
        for step in latency["steps"]:
            if step["global_429"] or step["route_429"]:
                misses.append(
                    f"reach latency '{step['step']}': 429s global {step['global_429']} / route {step['route_429']}"
                )
        after_end = latency["notes"].get("round", {}).get("posted_after_cycle_end_ms", [])  # fired during it
        late = [ms for ms in after_end if ms >= 0]
        if late:
            misses.append(
                f"reach latency: {len(late)} of {len(after_end)} probes fired during the edit round were posted only "
                f"after the poll cycle ended ({min(late):.0f}–{max(late):.0f} ms after it): the go-live waited for the "
                "round's edits"
            )
        if latency["errors"]:
            misses.append(f"reach latency: {len(latency['errors'])} ERROR lines, first: {latency['errors'][0]}")
        if latency.get("rejections"):
            misses.append(f"reach latency: Discord (the fake) refused {latency['rejections']}")
    return misses


def _warning_lines(run: dict[str, Any], top: int = 5) -> list[str]:
    warnings = list(run.get("warnings", {}).items())[:top]
    return [f"Bot WARNING lines: {sum(run.get('warnings', {}).values())}", *(f"  {n} × {w}" for w, n in warnings)]


def report(result: dict[str, Any]) -> str:
    w = result["world"]
    lines = [
        f"Reach and control (issue 14) — {machine_line()}",
        f"Commit: {result['code']}",
        f"{w['servers']} servers, each with one announcement channel following {w['follows']} of {w['streamers']} "
        f"streamers; {w['live']} go live, {w['ends']} end, {w['restarts']} come back; fake Twitch 800 points/min "
        f"+{result['twitch_latency_s'] * 1000:.0f} ms per Helix request; fake Discord 50 requests/s per token, "
        f"5 messages / 5 s per channel, 10 publishes / h per channel; LIVE_UPDATE_INTERVAL_SECONDS="
        f"{result['update_interval_s']:g}.",
        "",
    ]
    if "off" in result and "on" in result:
        lines += [
            "(a) Twitch requests per poll cycle, by path (options OFF vs ON):",
            "",
            twitch_table(result),
            "",
        ]
        for run in (result["off"], result["on"]):
            total = totals(run)
            p = run["pacer"]
            lines += [
                f"(b) Discord requests per step, options {run['options'].upper()}:",
                "",
                discord_table(run),
                "",
                f"Options {run['options'].upper()}: {total['requests']:,} Discord requests, at most "
                f"{total['max_1s']} in any 1 s (bot-token requests; the limit is 50), 429s global {total['global_429']}"
                f" / route {total['route_429']}; {run['messages']} announcements ({run['duplicates']} duplicates), "
                f"{run['crossposted']} published, {run['scheduled_events']} scheduled events; the pacer handed out "
                f"{p['acquired']:,} slots, held {p['delayed']:,} back ({p['waited_s']:.1f} s in all); ERROR lines "
                f"{len(run['errors'])}, unhandled {run['unhandled']}, rejected {run['rejected']}.",
            ]
            presses = next((step for step in run["steps"] if "presses_answered" in step), None)
            if presses is not None:
                roles = run["opt_in_roles"]
                lines.append(
                    f"Opt-in roles: {roles['roles']} for {roles['pairs']} (server, streamer) pairs "
                    f"({roles['duplicates']} duplicates); {presses['presses_answered']} presses answered, "
                    f"{presses['members_without_the_stored_role']} of the pressing members do not hold the role the "
                    "bot stored (the one its announcements ping)."
                )
            lines += [f"Refused by the fake Discord: {run['rejections'] or 'nothing'}", *_warning_lines(run), ""]
    if "latency" in result:
        latency = result["latency"]
        burst, rnd = latency["notes"].get("burst", {}), latency["notes"].get("round", {})
        lines += [
            f"(c) A new go-live's announcement (push; go_live at the fake Twitch → POST at the fake Discord), "
            f"{w['probes']} probes per scenario, {w['gap']:g} s apart:",
            "",
            latency_table(latency),
            "",
        ]
        if burst:
            lines.append(
                f"Burst: {burst['go_lives']} go-lives, {burst['announcements']} announcements all posted after "
                f"{burst['posted_after_s']:.1f} s, with {burst['background_so_far']} background requests sent by then "
                f"and {burst['background_total']} in all (done after {burst['all_done_after_s']:.1f} s)."
            )
        if rnd:
            after = ", ".join(f"{ms:.0f}" for ms in rnd["posted_after_cycle_end_ms"])
            lines.append(
                f"Edit round: the poll cycle took {rnd['poll_cycle_s']:.1f} s with {rnd['edits']} message edits "
                f"(the first after {rnd['first_edits_after_s']:.1f} s); {rnd['fired_during_cycle']} probes fired "
                f"before it ended, and their POSTs came this many ms after it ended (negative: before): {after}."
            )
        lines += [f"Refused by the fake Discord: {latency.get('rejections') or 'nothing'}", *_warning_lines(latency)]
        lines += [
            f"Twitch requests in the push run, by path: {latency['twitch_by_path']}",
            "",
            "Discord requests per scenario of the push run:",
            "",
            discord_table(latency),
            "",
        ]
    misses = check(result)
    lines.append("Findings: " + ("none" if not misses else "\n- " + "\n- ".join(misses)))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = World()
    parser.add_argument("--servers", type=int, default=defaults.servers)
    parser.add_argument("--streamers", type=int, default=defaults.streamers)
    parser.add_argument("--follows", type=int, default=defaults.follows, help="streamers each server follows")
    parser.add_argument("--live", type=int, default=defaults.live, help="streamers going live")
    parser.add_argument("--ends", type=int, default=defaults.ends, help="of those, how many end")
    parser.add_argument("--restarts", type=int, default=defaults.restarts, help="of those, how many come back")
    parser.add_argument("--presses", type=int, default=defaults.presses, help="Notify me presses (ON run)")
    parser.add_argument("--probes", type=int, default=defaults.probes, help="probe go-lives per latency scenario")
    parser.add_argument("--gap", type=float, default=defaults.gap, help="seconds between two probes")
    parser.add_argument("--twitch-latency", type=float, default=FAKES.twitch_latency, help="seconds per Helix answer")
    parser.add_argument("--only", choices=("poll", "latency"), help="run only (a)+(b) or only (c)")
    parser.add_argument("--keep", help="keep the databases and the bot's logs in this directory")
    args = parser.parse_args()
    world = World(
        servers=args.servers,
        streamers=args.streamers,
        follows=min(args.follows, args.streamers),
        live=min(args.live, args.streamers),
        ends=min(args.ends, args.live),
        restarts=min(args.restarts, args.ends),
        presses=args.presses,
        probes=args.probes,
        gap=args.gap,
    )
    fakes = FakeOptions(twitch_rate_limit=800, twitch_latency=args.twitch_latency, discord_limits=True)
    parts = (args.only,) if args.only else ("poll", "latency")
    result = asyncio.run(run(world, fakes=fakes, keep=args.keep, parts=parts))
    save_json("reach", result)
    print("\n" + report(result))
    print(f"\n(bench wall time {result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
