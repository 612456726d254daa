"""Benchmark: /stats on a streamer with a year of history (about 300 streams), through the shipped bot.

.venv/bin/python -m bench.stats                      # 300 streams of the streamer, 9 other streamers
.venv/bin/python -m bench.stats --streams 30 --others 2

The fixture is written through the bot's own write path (Database.apply_live_changes with the observations a
90 s poll makes, on an injected clock), then the history upkeep thins it as a running bot would; its size is
measured with SQLite's dbstat, as bytes per stream-hour. Then a child process runs the bot as shipped (the e2e
harness: build_bot, real discord.py, the fake Discord and fake Twitch in that process) and asks /stats as a
member would: the reply time (invoke to the reply at the fake), the process's CPU (every thread, the chart's
included) and its RSS before and after the first chart. matplotlib must not be loaded before that chart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import machine_line, save_json, table, workdir
from bench.push_latency import code_version
from database import Database
from twitch_notifier.core.history import THIN_AFTER
from twitch_notifier.core.poller import Housekeeping
from twitch_notifier.models import Streamer, StreamObservation

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 90
NOW = datetime.now(UTC).replace(microsecond=0)  # the history ends now: the bot asked about it runs on real time
MAIN = Streamer("100000000", "bench_main", "Bench_Main")
GUILD_PLACEHOLDER, CHANNEL_PLACEHOLDER = 1, 10
HISTORY_OBJECTS = (
    "stream_history",
    "sqlite_autoindex_stream_history_1",
    "ix_stream_history_user",
    "stream_samples",
    "stream_categories",
)
GAMES = [("509658", "Just Chatting"), ("516575", "VALORANT"), ("512710", "Call of Duty"), ("27471", "Minecraft")]


@dataclass(frozen=True, slots=True)
class PlannedStream:
    streamer: Streamer
    stream_id: str
    started_at: datetime
    seconds: int
    change_at: int | None
    games: tuple[tuple[str, str], tuple[str, str]]
    base_viewers: int


def plan(streams: int, others: int, seed: int = 11) -> list[PlannedStream]:
    """`streams` streams of MAIN over the last year (2-6 h, evenings UTC, some across midnight), and a tenth as
    many for each of `others` other streamers."""
    rng = random.Random(seed)
    planned = []
    everyone = [(MAIN, streams)] + [
        (Streamer(str(100000001 + i), f"bench_other{i}", f"Bench_Other{i}"), max(1, streams // 10))
        for i in range(others)
    ]
    for streamer, count in everyone:
        step = timedelta(days=365) / count
        for i in range(count):
            day = NOW - timedelta(days=365) + step * i
            began = day.replace(hour=rng.choice((16, 18, 19, 20, 22)), minute=rng.randrange(60), second=0)
            seconds = int(rng.uniform(2, 6) * 3600)
            if began + timedelta(seconds=seconds) > NOW - timedelta(minutes=5):
                continue
            first, second = rng.sample(GAMES, 2)
            planned.append(
                PlannedStream(
                    streamer,
                    f"4{streamer.twitch_user_id}{i:04d}",
                    began,
                    seconds,
                    rng.randrange(seconds // 4, seconds) if rng.random() < 0.6 else None,
                    (first, second),
                    rng.randint(50, 5000),
                )
            )
    return planned


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def history_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        marks = ", ".join("?" for _ in HISTORY_OBJECTS)
        row = conn.execute(
            f"SELECT sum(pgsize - unused) FROM dbstat WHERE name IN ({marks})",  # noqa: S608 - fixed names
            HISTORY_OBJECTS,
        ).fetchone()
    finally:
        conn.close()
    return int(row[0] or 0)


async def build_fixture(path: Path, streams: int, others: int) -> dict[str, Any]:
    """The history, written as the polls would have written it, then thinned by the upkeep."""
    planned = plan(streams, others)
    clock = Clock()
    db = await Database.open(str(path), clock=clock)
    try:
        for streamer in {p.streamer for p in planned} | {MAIN}:
            await db.add_subscription(GUILD_PLACEHOLDER, CHANNEL_PLACEHOLDER, streamer)
        # Every poll moment at which something was live, in order; each poll writes its live streams at once.
        polls: dict[datetime, list[StreamObservation]] = {}
        ends: dict[datetime, list[str]] = {}
        rng = random.Random(5)
        for stream in planned:
            viewers = stream.base_viewers
            for offset in range(60, stream.seconds, POLL_SECONDS):
                viewers = max(0, viewers + rng.randint(-viewers // 20 - 5, viewers // 18 + 5))
                game = (
                    stream.games[1] if stream.change_at is not None and offset >= stream.change_at else stream.games[0]
                )
                at = stream.started_at + timedelta(seconds=offset)
                polls.setdefault(at, []).append(
                    StreamObservation(
                        stream.streamer.twitch_user_id, stream.stream_id, stream.started_at, game[0], game[1], viewers
                    )
                )
            last = stream.started_at + timedelta(seconds=max(60, stream.seconds - stream.seconds % POLL_SECONDS))
            ends.setdefault(last + timedelta(seconds=2 * POLL_SECONDS), []).append(stream.stream_id)
        started = time.perf_counter()
        writes = 0
        for at in sorted(set(polls) | set(ends)):
            clock.now = at
            await db.apply_live_changes([], {}, [], ended_streams=ends.get(at, ()), observations=polls.get(at, ()))
            writes += 1
        write_seconds = time.perf_counter() - started
        clock.now = NOW
    finally:
        await db.close()
    stream_hours = sum(p.seconds for p in planned) / 3600
    raw = history_bytes(path)
    db = await Database.open(str(path), clock=clock)
    try:
        monotonic = [0.0]
        upkeep = Housekeeping(db, _Nothing(), _Nothing(), monotonic=lambda: monotonic[0], clock=clock)
        while await db.history_to_thin(NOW - THIN_AFTER, 1):
            monotonic[0] += 7 * 3600  # each upkeep thins at most THIN_BATCH streams: as many as it takes
            await upkeep.keep_history_if_due()
    finally:
        await db.close()
    thinned = history_bytes(path)
    return {
        "streams": len(planned),
        "main_streams": sum(p.streamer == MAIN for p in planned),
        "streamers": len({p.streamer for p in planned}),
        "stream_hours": round(stream_hours, 1),
        "samples": sum(len(v) for v in polls.values()),
        "poll_writes": writes,
        "write_ms_per_poll": round(write_seconds / writes * 1000, 3),
        "raw_bytes": raw,
        "thinned_bytes": thinned,
        "raw_bytes_per_stream_hour": round(raw / stream_hours),
        "bytes_per_stream_hour": round(thinned / stream_hours),
        "file_bytes": _size(path),
    }


def _size(path: Path) -> int:
    return path.stat().st_size


class _Nothing:
    async def prune(self) -> int:
        return 0


# -------------------------------------------------------------------------------------------- the worker


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def worker(db_path: str) -> dict[str, Any]:
    """In this process: the fakes and the shipped bot on the fixture, then /stats as a member asks it."""
    from tests.e2e.harness import DISCORD_TOKEN, TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET, BotHarness
    from tests.fakes.fake_discord import FakeDiscord, patch_discord_endpoints
    from tests.fakes.fake_twitch import FakeTwitch

    fake_discord = FakeDiscord(token=DISCORD_TOKEN)
    fake_twitch = FakeTwitch(client_id=TWITCH_CLIENT_ID, client_secret=TWITCH_CLIENT_SECRET)
    await fake_discord.start()
    await fake_twitch.start()
    guild = fake_discord.add_guild("Bench guild")
    channel = fake_discord.add_text_channel(guild.id, "stats")
    conn = sqlite3.connect(db_path)  # bench-only: the fixture's placeholder guild becomes the fake's
    with conn:
        conn.execute("UPDATE subscriptions SET guild_id = ?, channel_id = ?", (guild.id, channel.id))
        logins = conn.execute("SELECT twitch_user_id, login FROM streamers").fetchall()
    conn.close()
    for user_id, login in logins:
        fake_twitch.add_user(login, user_id=user_id)
    harness = BotHarness(fake_discord, fake_twitch, Path(db_path))
    results: dict[str, Any] = {}
    with patch_discord_endpoints(fake_discord):
        try:
            await harness.start()
            await asyncio.sleep(0.5)  # let start-up settle before the baseline
            results["rss_before_mb"] = round(rss_mb(), 1)
            results["matplotlib_loaded_before"] = "matplotlib" in sys.modules
            asks = [
                ("first chart (streamer, all)", "streamer", {"streamer": MAIN.login, "period": "all"}),
                ("second chart (streamer, 30d)", "streamer", {"streamer": MAIN.login, "period": "30d"}),
                ("cached (streamer, all)", "streamer", {"streamer": MAIN.login, "period": "all"}),
                ("server chart (all)", "server", {"period": "all"}),
            ]
            results["asks"] = []
            for label, subcommand, options in asks:
                cpu, wall = time.process_time(), time.perf_counter()
                reply = await harness.command(
                    "stats", options, guild=guild, channel=channel, subcommand=subcommand, admin=False
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                attachment = (reply.payload["attachments"] or [None])[0]  # none: nothing in the period
                results["asks"].append(
                    {
                        "ask": label,
                        "reply_s": round(wall, 3),
                        "cpu_s": round(cpu, 3),
                        "rss_mb": round(rss_mb(), 1),
                        "png_bytes": attachment["size"] if attachment else None,
                        "size": f"{attachment['width']}x{attachment['height']}" if attachment else "no chart",
                    }
                )
                if label.startswith("first") and attachment:
                    Path(db_path).with_name("stats_all.png").write_bytes(fake_discord.attachment_bytes(attachment))
            results["rss_after_mb"] = results["asks"][-1]["rss_mb"]
        finally:
            await harness.stop()
            await fake_twitch.stop()
            await fake_discord.stop()
    return results


# -------------------------------------------------------------------------------------------- the report


async def measure(streams: int = 300, others: int = 9, keep: str | None = None) -> dict[str, Any]:
    with workdir(keep) as wd:
        db_path = wd / "bot.db"
        for stale in wd.glob("bot.db*"):
            stale.unlink()
        fixture = await build_fixture(db_path, streams, others)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.stats", "--worker", str(db_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        out, err = await asyncio.wait_for(child.communicate(), timeout=600)
        if child.returncode != 0:
            raise RuntimeError(f"the /stats worker failed ({child.returncode}): {err.decode()[-2000:]}")
        bot = json.loads(out.decode().strip().splitlines()[-1])
        chart = db_path.with_name("stats_all.png")
        return {"fixture": fixture, "bot": bot, "chart_bytes": chart.stat().st_size if chart.exists() else None}


def report(result: dict[str, Any]) -> str:
    fixture, bot = result["fixture"], result["bot"]
    lines = [
        "# /stats with a year of history",
        "",
        f"Code: {code_version()} · Machine: {machine_line()}",
        "",
        f"History: {fixture['main_streams']} streams of the streamer asked about, {fixture['streams']} of "
        f"{fixture['streamers']} streamers in all, {fixture['stream_hours']:,} stream-hours, "
        f"{fixture['samples']:,} viewer counts (one per 90 s poll).",
        f"Written through Database.apply_live_changes: {fixture['poll_writes']:,} poll writes, "
        f"{fixture['write_ms_per_poll']} ms each on average.",
        f"Size (SQLite dbstat, history tables and indexes): {fixture['raw_bytes_per_stream_hour']} bytes per "
        f"stream-hour as recorded, {fixture['bytes_per_stream_hour']} once streams older than "
        f"{THIN_AFTER.days} days are thinned ({fixture['thinned_bytes'] / 1e6:.2f} MB for the year).",
        "",
        f"Bot RSS before the first chart: {bot['rss_before_mb']} MB (matplotlib loaded: "
        f"{bot['matplotlib_loaded_before']}); after the charts: {bot['rss_after_mb']} MB.",
        "",
        table(
            ["Ask", "Reply s", "Bot CPU s", "RSS MB after", "PNG bytes", "Size"],
            [[a["ask"], a["reply_s"], a["cpu_s"], a["rss_mb"], a["png_bytes"], a["size"]] for a in bot["asks"]],
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=300, help="streams of the streamer asked about (a year)")
    parser.add_argument("--others", type=int, default=9, help="other streamers followed (a tenth as many streams)")
    parser.add_argument("--keep", help="keep the database and the chart in this directory")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(args.worker))))
        return
    result = asyncio.run(measure(args.streams, args.others, args.keep))
    save_json("stats", result)
    print(report(result))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
