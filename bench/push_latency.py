"""Benchmark 5 — push latency: how soon after Twitch pushes a go-live the announcement reaches Discord.

    .venv/bin/python -m bench.push_latency                   # 100 streamers, 100 go-lives, one at a time
    .venv/bin/python -m bench.push_latency --go-lives 500 --batch 5

One process, as the end-to-end tests run it: the fake Discord (Discord's rate limits enforced), the fake
Twitch with its EventSub WebSocket server (800 points/min, no added latency unless --twitch-latency) and the
shipped bot (app.build.build_bot through tests/e2e/harness.BotHarness) with EVENTSUB_TRANSPORT=websocket:
one conduit shard, the bot's own WebSocket session. N streamers, each followed by its own server (one channel
each); Twitch's listing lags an hour, so every announcement is push's. The streamers go live one at a time
(--batch k: k at the same instant): each after the previous one's announcement was answered, then --gap s.

Two figures per go-live: end to end, from `fake.eventsub.stream_online` being called to the announcement's
POST arriving at the fake Discord (stamped by a bench subclass of the fake, not the fake itself); and the
bot's own `twitch_notifier_push_latency_seconds` (notification received -> POST answered), the values its
Metrics histogram observed. Bench-only wrappers on the fakes' and the bot's objects split the time into stages
(no product code changes). Targets from the issue, printed, never asserted: p50 <= 50 ms, p99 <= 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import inspect
import json
import logging
import math
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import (
    DISCORD_TOKEN,
    REPO,
    TWITCH_CLIENT_ID,
    TWITCH_CLIENT_SECRET,
    FakeOptions,
    create_fixture_db,
    machine_line,
    save_json,
    table,
    user_id,
    workdir,
)
from bench.fake_services import BenchDiscord, Services
from tests.e2e.harness import BotHarness, LogWatcher
from tests.fakes.fake_discord import patch_discord_endpoints
from twitch_notifier.ops.metrics import PREFIX
from twitch_notifier.twitch.eventsub import WANTED_TYPES, Notification, StreamOnline

GO_LIVES = 100
GAP = 0.1  # seconds between one go-live's answered announcement and the next go-live
TARGET_P50_MS = 50.0
TARGET_P99_MS = 200.0
HISTOGRAM = f"{PREFIX}push_latency_seconds"
# What tests/e2e/test_push.py gives build_bot: one shard, quick reconnects, the shortest keepalive allowed.
EVENTSUB_OPTIONS: dict[str, Any] = {"shard_count": 1, "socket_backoff": 0.05, "keepalive_seconds": 10}
IN_PROCESS = FakeOptions(twitch_rate_limit=800, twitch_latency=0.0, discord_limits=True)
GO_LIVE_TIMEOUT = 10.0  # one go-live not announced within this is counted as lost, and the bench goes on

_ARRIVED = web.RequestKey("bench_arrived", float)


# --------------------------------------------------------------------------------------------- the fakes


class TimedDiscord(BenchDiscord):
    """BenchDiscord (creation times, 429s by kind) that also stamps when each message POST arrived, by
    channel: the moment its request reached the fake's middleware (time.monotonic, the bot's clock too)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: dict[int, list[float]] = {}
        self.on_arrival: Callable[[int, float], None] | None = None

    async def _read_body(self, request: web.Request, path: str) -> None:
        request[_ARRIVED] = time.monotonic()
        await super()._read_body(request, path)

    async def _create_message(self, request: web.Request) -> web.Response:
        before = len(self.messages)
        response = await super()._create_message(request)
        if len(self.messages) > before:
            channel_id, arrived = self.messages[-1].channel_id, request[_ARRIVED]
            self.arrivals.setdefault(channel_id, []).append(arrived)
            if self.on_arrival is not None:
                self.on_arrival(channel_id, arrived)
        return response


class PushServices(Services):
    """bench/fake_services.Services (the world builder, go_live, stats, reset) in this process, with the
    fake Discord timing arrivals. Discord's limits are fanout.py's: 50 requests/s per token, 5 messages per
    5 s per channel, 429 with Retry-After and Via."""

    def __init__(self, options: FakeOptions) -> None:
        super().__init__(
            argparse.Namespace(
                twitch_rate_limit=options.twitch_rate_limit,
                twitch_latency=options.twitch_latency,
                no_discord_limits=not options.discord_limits,
            )
        )
        self.discord: TimedDiscord = TimedDiscord(token=DISCORD_TOKEN, enforce_rate_limits=options.discord_limits)

    def announcements_by_channel(self) -> Counter[int]:
        return Counter(m.channel_id for m in self.discord.messages if m.embeds and not m.deleted)


# ------------------------------------------------------------------------------------------------ the bot


@dataclass(slots=True)
class GoLive:
    """One streamer's go-live as the probes saw it; every time is time.monotonic()."""

    index: int
    called: float = math.nan  # fake.eventsub.stream_online called
    written: float = math.nan  # its frame written to the bot's socket by the fake's writer
    received: float = math.nan  # read and parsed by the bot's shard socket (the bot's received_at)
    handled: float = math.nan  # the bot's consumer handed it to PushHandler.handle
    lookup: tuple[float, float] = (math.nan, math.nan)  # /helix/channels for the title and category
    push_online: float = math.nan  # Notifier.push_online entered (it takes the notifier's lock first)
    push_online_done: float = math.nan
    pacer_wait: float = 0.0  # seconds the SendPacer held its posts back
    box_art: float = 0.0  # seconds in the notifier's box-art look-up (/helix/games, a category not cached)
    db_calls: list[tuple[str, float, float]] = field(default_factory=list)  # Database calls while handled
    arrivals: list[float] = field(default_factory=list)  # its announcements' POSTs reaching the fake Discord
    bot_latencies: list[float] = field(default_factory=list)  # what the bot's histogram observed for it


class Probe:
    """Bench-only wrappers, as instance attributes, on objects the shipped bot and the fakes already made:
    nothing in the product changes, and every wrapper only notes a time and calls through."""

    def __init__(self, services: PushServices, harness: BotHarness, indices: dict[str, int]) -> None:
        self.services = services
        self.harness = harness
        self.by_user: dict[str, GoLive] = {uid: GoLive(i) for uid, i in indices.items()}
        self.changed = asyncio.Event()
        self.current: GoLive | None = None  # the go-live the bot's (serial) EventSub consumer is handling
        self.channel_user: dict[int, str] = {}
        self.observed = 0

    def install(self, channel_user: dict[int, str]) -> None:
        self.channel_user = channel_user
        bot, twitch, discord = self.harness.bot, self.services.twitch, self.services.discord
        assert bot is not None and bot.push is not None
        discord.on_arrival = self._arrived
        self._wrap(twitch.eventsub, "stream_online", self._stream_online)
        self._wrap(twitch.eventsub.session().ws, "send_str", self._send_str)
        handler = bot.push.handler
        self._wrap(handler, "handle", self._handle)
        self._wrap(handler, "_channels", self._channels)
        self._wrap(bot.notifier, "push_online", self._push_online)
        if bot.notifier._art_lookup is not None:
            self._wrap(bot.notifier, "_art_lookup", self._art_lookup)
        self._wrap(bot.metrics.push_latency_seconds, "observe", self._observe)
        for name, member in inspect.getmembers(type(bot.db)):
            if not name.startswith("_") and inspect.iscoroutinefunction(member):
                self._wrap(bot.db, name, functools.partial(self._db_call, name))

    @staticmethod
    def _wrap(owner: Any, name: str, wrapper: Callable[..., Any]) -> None:
        original = getattr(owner, name)
        setattr(owner, name, lambda *args, **kwargs: wrapper(original, *args, **kwargs))

    def _signal(self) -> None:
        self.changed.set()

    # The fakes' side.

    def _stream_online(self, original: Callable[..., None], user: Any, *args: Any, **kwargs: Any) -> None:
        go_live = self.by_user.get(user.id)
        if go_live is not None:
            go_live.called = time.monotonic()
        original(user, *args, **kwargs)

    async def _send_str(self, original: Callable[..., Awaitable[None]], data: str, *args: Any) -> None:
        await original(data, *args)
        if '"stream.online"' in data:
            message = json.loads(data)
            if message["metadata"]["message_type"] == "notification":
                go_live = self.by_user.get(message["payload"]["event"]["broadcaster_user_id"])
                if go_live is not None:
                    go_live.written = time.monotonic()

    def _arrived(self, channel_id: int, arrived: float) -> None:
        go_live = self.by_user.get(self.channel_user.get(channel_id, ""))
        if go_live is not None:
            go_live.arrivals.append(arrived)
            self._signal()

    # The bot's side.

    async def _handle(self, original: Callable[..., Awaitable[None]], message: Any, received_at: Any = None) -> None:
        go_live = None
        if isinstance(message, Notification) and isinstance(message.event, StreamOnline):
            go_live = self.by_user.get(message.event.broadcaster_user_id)
        if go_live is None:
            await original(message, received_at)
            return
        go_live.received = received_at if received_at is not None else math.nan
        go_live.handled = time.monotonic()
        self.current = go_live
        try:
            await original(message, received_at)
        finally:
            self.current = None
            self._signal()

    async def _channels(self, original: Callable[..., Awaitable[Any]], user_ids: list[str]) -> Any:
        started = time.monotonic()
        try:
            return await original(user_ids)
        finally:
            if self.current is not None:
                self.current.lookup = (started, time.monotonic())

    async def _push_online(self, original: Callable[..., Awaitable[Any]], stream: Any, **kwargs: Any) -> Any:
        go_live = self.by_user.get(stream.user_id)
        bot = self.harness.bot
        assert bot is not None
        pacer = bot.notifier._announcer.pacer  # type: ignore[attr-defined]
        waited = pacer.waited
        if go_live is not None:
            go_live.push_online = time.monotonic()
        try:
            return await original(stream, **kwargs)
        finally:
            if go_live is not None:
                go_live.push_online_done = time.monotonic()
                go_live.pacer_wait += pacer.waited - waited

    async def _art_lookup(self, original: Callable[..., Awaitable[Any]], game_ids: list[str]) -> Any:
        go_live, started = self.current, time.monotonic()
        try:
            return await original(game_ids)
        finally:
            if go_live is not None:
                go_live.box_art += time.monotonic() - started

    def _observe(self, original: Callable[[float], None], value: float) -> None:
        original(value)
        self.observed += 1
        if self.current is not None:
            self.current.bot_latencies.append(value)
        self._signal()

    async def _db_call(self, name: str, original: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        go_live, started = self.current, time.monotonic()
        try:
            return await original(*args, **kwargs)
        finally:
            if go_live is not None:
                go_live.db_calls.append((name, started, time.monotonic()))

    async def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Until `done()` holds (re-checked whenever a probe notes something), at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True


@contextlib.asynccontextmanager
async def started_bot(services: PushServices, db_path: Path, user_ids: Sequence[str]) -> AsyncIterator[BotHarness]:
    """The shipped bot with push on, started on `db_path`; returns once its shard is bound, the fake holds
    every subscription the bot wants for `user_ids` (stream.online, stream.offline, channel.update) and the
    bot's sync pass is over: go-lives measured later never queue behind its creates for Twitch's client."""
    harness = BotHarness(
        services.discord,
        services.twitch,
        db_path,
        discord_token=DISCORD_TOKEN,
        twitch_client_id=TWITCH_CLIENT_ID,
        twitch_client_secret=TWITCH_CLIENT_SECRET,
        eventsub_transport="websocket",
    )
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


@contextlib.contextmanager
def bot_logging(path: Path | None) -> Iterator[LogWatcher]:
    """ERROR records are counted; with `path`, the bot logs INFO to that file in production's format (what a
    deployed bot spends on logging is then spent here too). Restores the loggers afterwards."""
    watcher = LogWatcher()
    root = logging.getLogger()
    saved = root.level, logging.getLogger("discord.http").level
    handler: logging.Handler | None = None
    root.addHandler(watcher)
    if path is not None:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.getLogger("discord.http").setLevel(logging.WARNING)
    try:
        yield watcher
    finally:
        root.removeHandler(watcher)
        if handler is not None:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(saved[0])
        logging.getLogger("discord.http").setLevel(saved[1])


# ------------------------------------------------------------------------------------------------ figures


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """count, p50 / p90 / p99 / max / mean in milliseconds, of seconds."""
    clean = [v for v in values if not math.isnan(v)]
    return {
        "count": len(clean),
        "p50_ms": 1000 * quantile(clean, 0.50),
        "p90_ms": 1000 * quantile(clean, 0.90),
        "p99_ms": 1000 * quantile(clean, 0.99),
        "max_ms": 1000 * max(clean) if clean else math.nan,
        "mean_ms": 1000 * sum(clean) / len(clean) if clean else math.nan,
    }


def histogram_buckets(harness: BotHarness) -> dict[str, Any]:
    """The bot's own push-latency histogram as /metrics would render it: cumulative buckets, count, sum."""
    assert harness.bot is not None
    buckets: dict[str, float] = {}
    count = total = 0.0
    for metric in harness.bot.metrics.push_latency_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                buckets[sample.labels["le"]] = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
    return {"buckets": buckets, "count": int(count), "sum_s": total}


def code_version() -> str:
    """The commit measured (`git rev-parse --short HEAD`), noting uncommitted changes to tracked files."""

    def git(*args: str) -> str:
        command = ["git", "-C", str(REPO), *args]
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=10).stdout.strip()  # noqa: S603

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (" (with uncommitted changes)" if dirty else "")


def _clipped(calls: Sequence[tuple[str, float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for _, a, b in calls)


def db_before_post(records: Sequence[GoLive]) -> dict[str, dict[str, float]]:
    """The Database calls between push_online and the POST arriving, by method: calls per go-live, mean and
    max ms per call (a call is counted for the go-live the consumer was handling when it began)."""
    calls: dict[str, list[float]] = {}
    answered = [g for g in records if g.arrivals]
    for g in answered:
        for name, start, end in g.db_calls:
            if g.push_online <= start < g.arrivals[0]:
                calls.setdefault(name, []).append(end - start)
    return {
        name: {
            "per_go_live": len(times) / len(answered),
            "mean_ms": 1000 * sum(times) / len(times),
            "max_ms": 1000 * max(times),
        }
        for name, times in sorted(calls.items(), key=lambda item: -sum(item[1]))
    }


STAGES = (
    ("fake: stream_online called -> frame written to the socket", "fake_write"),
    ("socket: frame written -> read and parsed by the bot", "wire"),
    ("bot: parsed -> handed to PushHandler (consumer queue)", "queue"),
    ("bot: /helix/channels look-up (title, category)", "lookup"),
    ("bot: rest of the handler before push_online", "handler"),
    ("bot: push_online -> POST arrives: database calls", "db"),
    ("bot: push_online -> POST arrives: SendPacer wait", "pacer"),
    ("bot: push_online -> POST arrives: box art (/helix/games, new category)", "box_art"),
    ("bot: push_online -> POST arrives: the rest (lock, render, discord.py, loop)", "post_rest"),
    ("Discord: POST arrives -> answer read by the bot", "answer"),
)


def stages(go_live: GoLive) -> dict[str, float]:
    """Where one go-live's time went, from stream_online called to the POST answered (seconds)."""
    if not go_live.arrivals or not go_live.bot_latencies:
        return {}
    g, arrived = go_live, go_live.arrivals[0]
    answered = g.received + g.bot_latencies[0]
    lookup = g.lookup[1] - g.lookup[0]
    db = _clipped(g.db_calls, g.push_online, arrived)
    # The pacer's wait is known for the whole go-live: it is the first POST's only when there is one POST.
    pacer = g.pacer_wait if len(g.arrivals) == 1 else math.nan
    return {
        "fake_write": g.written - g.called,
        "wire": g.received - g.written,
        "queue": g.handled - g.received,
        "lookup": lookup,
        "handler": g.push_online - g.handled - lookup,
        "db": db,
        "pacer": pacer,
        "box_art": g.box_art,
        "post_rest": arrived - g.push_online - db - g.box_art - (0.0 if math.isnan(pacer) else pacer),
        "answer": answered - arrived,
        "total": answered - g.called,
    }


# ------------------------------------------------------------------------------------------------ the run


async def measure_push_latency(
    go_lives: int = GO_LIVES,
    *,
    batch: int = 1,
    gap: float = GAP,
    fakes: FakeOptions = IN_PROCESS,
    keep: str | None = None,
    log: bool = True,
) -> dict[str, Any]:
    """`go_lives` streamers, each followed by its own server, go live `batch` at a time; see the module
    docstring. With `log`, the bot logs INFO to a file in the work directory, as in production."""
    with workdir(keep) as wd, bot_logging(wd / "bot.log" if log else None) as errors:
        services = PushServices(fakes)
        await services.start()
        try:
            with patch_discord_endpoints(services.discord):
                return await _measure_latency(services, wd, go_lives, batch, gap, fakes, errors)
        finally:
            await services.stop()


async def _measure_latency(
    services: PushServices,
    wd: Path,
    go_lives: int,
    batch: int,
    gap: float,
    fakes: FakeOptions,
    errors: LogWatcher,
) -> dict[str, Any]:
    channels = [tuple(c) for c in services.world(go_lives, go_lives, [])["channels"]]
    services.twitch.listing_lag = 3600.0  # the poll never sees these streams: only push announces them
    db_path = wd / "bot.db"
    await create_fixture_db(db_path, go_lives, [(i, i) for i in range(go_lives)], channels)
    uids = [user_id(i) for i in range(go_lives)]
    started = time.monotonic()
    async with started_bot(services, db_path, uids) as harness:
        ready_s = time.monotonic() - started
        probe = Probe(services, harness, {uid: i for i, uid in enumerate(uids)})
        probe.install({channel_id: uids[i] for i, (_, channel_id) in enumerate(channels)})
        services.reset()
        lost: list[int] = []
        run_started = time.monotonic()
        for first in range(0, go_lives, batch):
            group = [probe.by_user[uid] for uid in uids[first : first + batch]]
            services.go_live([g.index for g in group])
            if not await probe.wait(functools.partial(_answered, group), GO_LIVE_TIMEOUT):
                lost += [g.index for g in group if not g.arrivals]
            await asyncio.sleep(gap)
        run_s = time.monotonic() - run_started
        await asyncio.sleep(0.3)  # a late duplicate would land by now
        stats = services.stats()
        histogram = histogram_buckets(harness)
        handler_stats = harness.bot.push.handler.stats if harness.bot and harness.bot.push else None
        poll_cycles = harness.bot.poller.cycles if harness.bot else 0
    records = [probe.by_user[uid] for uid in uids]
    per_channel = services.announcements_by_channel()
    end_to_end = [g.arrivals[0] - g.called for g in records if g.arrivals]
    bot_side = [v for g in records for v in g.bot_latencies]
    broken_down = [s for s in (stages(g) for g in records) if s]
    return {
        "go_lives": go_lives,
        "batch": batch,
        "gap_s": gap,
        "twitch_latency_s": fakes.twitch_latency,
        "ready_s": ready_s,
        "run_s": run_s,
        "end_to_end": summary_ms(end_to_end),
        "bot_histogram": summary_ms(bot_side),
        "histogram": histogram,
        "stages": {key: summary_ms([s[key] for s in broken_down]) for _, key in (*STAGES, ("", "total"))},
        "db_before_post": db_before_post(records),
        "announced": sum(per_channel.values()),
        "exactly_once": sum(1 for g in records if per_channel.get(channels[g.index][1], 0) == 1),
        "lost": len(lost),
        "duplicates": sum(n - 1 for n in per_channel.values() if n > 1),
        "global_429": stats["discord"]["global_429"],
        "route_429": stats["discord"]["route_429"],
        "twitch_429": stats["twitch"]["http_429"],
        "pushed_online": handler_stats.online if handler_stats else 0,
        "poll_cycles": poll_cycles,
        "errors": errors.formatted(),
        "code": code_version(),
    }


def _answered(group: Sequence[GoLive]) -> bool:
    return all(g.arrivals and g.bot_latencies for g in group)


def check(results: Sequence[dict[str, Any]]) -> list[str]:
    """The issue's targets (p50 <= 50 ms, p99 <= 200 ms, end to end and bot-side) and correctness."""
    misses = []
    for r in results:
        name = f"push latency ({r['go_lives']} go-lives)"
        for label, key in (("end to end", "end_to_end"), ("bot histogram", "bot_histogram")):
            figures = r[key]
            if not figures["p50_ms"] <= TARGET_P50_MS:
                misses.append(f"{name}: {label} p50 {figures['p50_ms']:.1f} ms (target {TARGET_P50_MS:.0f})")
            if not figures["p99_ms"] <= TARGET_P99_MS:
                misses.append(f"{name}: {label} p99 {figures['p99_ms']:.1f} ms (target {TARGET_P99_MS:.0f})")
        misses += correctness(r)
    return misses


def correctness(r: dict[str, Any]) -> list[str]:
    name = f"push latency ({r['go_lives']} go-lives)"
    misses = []
    if r["exactly_once"] != r["go_lives"] or r["lost"] or r["duplicates"]:
        misses.append(
            f"{name}: {r['exactly_once']} of {r['go_lives']} announced exactly once "
            f"({r['lost']} lost, {r['duplicates']} duplicates)"
        )
    if r["global_429"] or r["route_429"]:
        misses.append(f"{name}: Discord answered 429 {r['global_429']} / {r['route_429']} times (global / channel)")
    if r["errors"]:
        misses.append(f"{name}: {len(r['errors'])} ERROR log lines, first: {r['errors'][0]}")
    return misses


def latency_table(results: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        for label, key in (
            ("end to end: stream_online called -> POST at Discord", "end_to_end"),
            (f"bot: {HISTOGRAM} (received -> POST answered)", "bot_histogram"),
        ):
            f = r[key]
            rows.append((label, f["count"], f["p50_ms"], f["p90_ms"], f["p99_ms"], f["max_ms"], f["mean_ms"]))
    return table(("Latency", "Count", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"), rows)


def stage_table(result: dict[str, Any]) -> str:
    total = result["stages"]["total"]["mean_ms"]
    rows = []
    for label, key in (*STAGES, ("total: stream_online called -> POST answered", "total")):
        f = result["stages"][key]
        share = f"{100 * f['mean_ms'] / total:.0f} %" if total and not math.isnan(f["mean_ms"]) else "-"
        rows.append((label, f["p50_ms"], f["p90_ms"], f["max_ms"], f["mean_ms"], share))
    return table(("Stage", "p50 ms", "p90 ms", "max ms", "mean ms", "share of mean"), rows)


def db_table(result: dict[str, Any]) -> str:
    rows = [(name, f["per_go_live"], f["mean_ms"], f["max_ms"]) for name, f in result["db_before_post"].items()]
    return table(("Database call before the POST", "Calls per go-live", "mean ms", "max ms"), rows)


def histogram_line(result: dict[str, Any]) -> str:
    h = result["histogram"]
    cells = ", ".join(f"le {le}: {int(n)}" for le, n in h["buckets"].items())
    return f"{HISTOGRAM} as /metrics renders it: count {h['count']}, sum {h['sum_s']:.3f} s; cumulative {cells}"


def targets_line(result: dict[str, Any]) -> str:
    parts = []
    for label, key in (("end to end", "end_to_end"), ("bot histogram", "bot_histogram")):
        f = result[key]
        p50_ok, p99_ok = f["p50_ms"] <= TARGET_P50_MS, f["p99_ms"] <= TARGET_P99_MS
        parts.append(
            f"{label}: p50 {f['p50_ms']:.1f} ms {'met' if p50_ok else 'MISSED'} (<= {TARGET_P50_MS:.0f}), "
            f"p99 {f['p99_ms']:.1f} ms {'met' if p99_ok else 'MISSED'} (<= {TARGET_P99_MS:.0f})"
        )
    return "Targets: " + "; ".join(parts)


def report(result: dict[str, Any]) -> str:
    r = result
    mode = "one at a time" if r["batch"] == 1 else f"{r['batch']} at the same instant"
    lines = [
        f"Push latency — {machine_line()}",
        f"Commit: {r['code']}",
        f"{r['go_lives']} streamers, each followed by its own server; go-lives {mode}, {r['gap_s'] * 1000:.0f} ms "
        f"after the previous announcement was answered; fake Twitch in process, +{r['twitch_latency_s'] * 1000:.0f} "
        f"ms per Helix request, listing lag 1 h; Discord limits enforced. Bot ready and subscribed in "
        f"{r['ready_s']:.1f} s; go-lives took {r['run_s']:.1f} s.",
        "",
        latency_table([r]),
        "",
        histogram_line(r),
        "",
        stage_table(r),
        "",
        db_table(r),
        "",
        f"Announced: {r['announced']} ({r['exactly_once']} of {r['go_lives']} exactly once, {r['lost']} lost, "
        f"{r['duplicates']} duplicates); 429s from Discord global / channel: {r['global_429']} / {r['route_429']}; "
        f"from Twitch: {r['twitch_429']}; stream.online handled by the bot: {r['pushed_online']}; poll cycles: "
        f"{r['poll_cycles']}; ERROR log lines: {len(r['errors'])}",
        targets_line(r),
    ]
    return "\n".join(lines)


async def run(go_lives: int, batch: int, gap: float, twitch_latency: float, keep: str | None) -> dict[str, Any]:
    print(f"push latency: {go_lives} go-lives, {batch} at a time ...", flush=True)
    fakes = FakeOptions(twitch_rate_limit=800, twitch_latency=twitch_latency, discord_limits=True)
    return await measure_push_latency(go_lives, batch=batch, gap=gap, fakes=fakes, keep=keep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--go-lives", type=int, default=GO_LIVES, help="streamers, each going live once (>= 100)")
    parser.add_argument("--batch", type=int, default=1, help="go-lives at the same instant (default: one at a time)")
    parser.add_argument("--gap", type=float, default=GAP, help="seconds between an answered announcement and the next")
    parser.add_argument("--twitch-latency", type=float, default=0.0, help="seconds added to every Helix answer")
    parser.add_argument("--keep", help="keep the database and the bot's log in this directory")
    args = parser.parse_args()
    if args.go_lives < 1 or args.batch < 1:
        parser.error("--go-lives and --batch must be at least 1")
    result = asyncio.run(run(args.go_lives, args.batch, args.gap, args.twitch_latency, args.keep))
    save_json("push_latency", result)
    print("\n" + report(result))
    misses = correctness(result)
    if misses:
        print("Correctness: FAILED: " + "; ".join(misses))
    return 1 if misses else 0  # the latency targets are printed, not enforced


if __name__ == "__main__":
    raise SystemExit(main())
