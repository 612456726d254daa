"""Benchmark — fan-out over several bot processes on PostgreSQL: one go-live followed in 10,000 servers, posted by
2 `python bot.py` processes that share Discord's global limit, their RSS, and the failover after kill -9 of the
leader.

    .venv/bin/python -m bench.cluster_fanout                            # 10,000 servers, 2 processes
    .venv/bin/python -m bench.cluster_fanout --guilds 2000 --processes 3

Set-up: a throwaway PostgreSQL server (tests/pg_cluster.py, as the tests start it) with a fresh database; the fake
Discord and the fake Twitch in this process, Discord enforcing its limits (50 requests/s per bot token, whichever
process sends them; 5 messages per 5 s per channel; 429s with Via, as bench/fake_services.py's); and `--processes`
real `python bot.py` processes (tests/e2e/bot_process.py) with DATABASE_URL, SHARD_COUNT one shard per 1,000
servers (at least one per process) and a run of those shards each as SHARD_IDS. The fake lets every shard IDENTIFY
at once (max_concurrency = the shard count), so the processes start in seconds instead of 5 s per shard. Every
server has one channel and follows one streamer, offline at first.

Measured: once every process is healthy, the streamer goes live. The fan-out runs from the first message the fake
Discord creates to the last (msgs/s sustained = (messages - 1) / that time), with the 429s the fake answered
(global ones: the processes together went over 50/s) and each process's messages, which must be those of its own
shards' servers. RSS (VmRSS) of each process once it is healthy and after the fan-out, and its peak (VmHWM).
Then kill -9 of the leader, and at the same moment a second streamer, followed in a few servers of every shard,
goes live: seconds until another process reports itself leader (/healthz), until the fake Twitch sees its first
poll, and until that go-live is announced in the survivors' servers.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import machine_line, save_json, table, workdir
from bench.fake_services import BenchDiscord, _max_in_window
from bench.push_latency import code_version
from database import Database
from tests.e2e.bot_process import BotProcess, PortSampler, bot_environment
from tests.e2e.harness import DISCORD_TOKEN, TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET  # bot_environment's
from tests.fakes.fake_discord import shard_of
from tests.fakes.fake_twitch import FakeTwitch
from tests.pg_cluster import PostgresCluster
from twitch_notifier.models import Streamer

GUILDS = 10_000
PROCESSES = 2
GUILDS_PER_SHARD = 1_000  # what Discord recommends; its cap is 2,500
CHECK_INTERVAL = 1.0  # the leader's poll interval here (production's default is 90 s)
START_TIMEOUT = 600.0
FAILOVER_LIMIT = 30.0  # the requirement: a new leader within 30 s of the old one's death
FAILOVER_FOLLOWERS_PER_SHARD = 3  # servers per shard that follow the streamer going live at the kill
MIN_RATE = 40.0  # msgs/s sustained over the fan-out: most of Discord's 50/s, the rest left for other requests


def shard_plan(shard_count: int, processes: int) -> list[list[int]]:
    """Each process's SHARD_IDS: consecutive runs, as even as they divide."""
    base, extra = divmod(shard_count, processes)
    plan, start = [], 0
    for index in range(processes):
        size = base + (index < extra)
        plan.append(list(range(start, start + size)))
        start += size
    return plan


def shard_ids_text(ids: Sequence[int]) -> str:
    return f"{ids[0]}-{ids[-1]}" if len(ids) > 1 else str(ids[0])


async def subscribe(url: str, pairs: Sequence[tuple[int, int]], streamer: Streamer) -> None:
    """(guild id, channel id) pairs follow the streamer, written through the bot's own Database."""
    db = await Database.open_url(url)
    try:
        for guild_id, channel_id in pairs:
            await db.add_subscription(guild_id, channel_id, streamer)
    finally:
        await db.close()


async def wait_healthy(processes: Sequence[BotProcess], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        while (status := (await process.get("/healthz"))[0]) != 200:
            if time.monotonic() > deadline or process.process.returncode is not None:
                raise RuntimeError(f"a bot process is not healthy (HTTP {status}):\n{process.output[-3000:]}")
            await asyncio.sleep(0.2)


async def leaders(processes: Sequence[BotProcess]) -> list[int]:
    """The indices of the live processes whose /healthz says they lead."""
    found = []
    for index, process in enumerate(processes):
        if process.process.returncode is None and (await process.health())["cluster"]["role"] == "leader":
            found.append(index)
    return found


async def one_leader(processes: Sequence[BotProcess], timeout: float) -> tuple[int, float]:
    """The index of the one leader, once exactly one live process leads; and when (time.monotonic)."""
    deadline = time.monotonic() + timeout
    while len(found := await leaders(processes)) != 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not exactly one leader after {timeout:.0f} s: {found}")
        await asyncio.sleep(0.05)
    return found[0], time.monotonic()


async def measure(guilds: int = GUILDS, processes: int = PROCESSES, *, keep: str | None = None) -> dict[str, Any]:
    shard_count = max(processes, math.ceil(guilds / GUILDS_PER_SHARD))
    plan = shard_plan(shard_count, processes)
    owner_of_shard = {shard: index for index, ids in enumerate(plan) for shard in ids}
    discord = BenchDiscord(
        token=DISCORD_TOKEN, enforce_rate_limits=True, identify_window_seconds=0.05, max_concurrency=shard_count
    )
    twitch = FakeTwitch(client_id=TWITCH_CLIENT_ID, client_secret=TWITCH_CLIENT_SECRET)
    streamer = twitch.add_user("bench_fanout", display_name="Bench_Fanout")
    late = twitch.add_user("bench_failover", display_name="Bench_Failover")
    world = []
    for index in range(guilds):  # evenly over the shards, as real guild ids fall
        guild = discord.add_guild(f"bench-guild-{index}", shard=(index % shard_count, shard_count))
        world.append((guild.id, discord.add_text_channel(guild.id, "alerts").id))
    late_world = [
        pair for shard in range(shard_count) for pair in world[shard::shard_count][:FAILOVER_FOLLOWERS_PER_SHARD]
    ]
    postgres = PostgresCluster()
    postgres.start()
    bots: list[BotProcess] = []
    ports = PortSampler(lambda: dict(enumerate(bots)), interval=0.05)
    result: dict[str, Any] = {"guilds": guilds, "processes": processes, "shards": shard_count, "plan": plan}
    try:
        url = await postgres.create_database()
        began = time.monotonic()
        await subscribe(url, world, Streamer(streamer.id, streamer.login, streamer.display_name))
        await subscribe(url, late_world, Streamer(late.id, late.login, late.display_name))
        result["subscribe_s"] = time.monotonic() - began
        await discord.start()
        await twitch.start()
        with workdir(keep) as wd:
            for index, ids in enumerate(plan):
                home = wd / f"process-{index}"
                home.mkdir(exist_ok=True)
                env = bot_environment(
                    discord, twitch, home / "unused.db", DATABASE_URL=url, SHARD_COUNT=str(shard_count),
                    SHARD_IDS=shard_ids_text(ids), CHECK_INTERVAL_SECONDS=str(CHECK_INTERVAL), LOG_LEVEL="INFO",
                )  # fmt: skip
                bots.append(await BotProcess(env, home).start())
            ports.start()
            began = time.monotonic()
            await wait_healthy(bots)
            result["healthy_after_s"] = time.monotonic() - began
            leader, _ = await one_leader(bots, FAILOVER_LIMIT)
            result["rss_ready_mb"] = [bot.memory_mb()[0] for bot in bots]

            discord.created_at.clear()
            discord.global_429 = discord.route_429 = 0
            twitch.go_live(streamer.login, title="Bench fan-out")
            await discord.wait_until(  # only the streamer's announcements are created meanwhile
                lambda: len(discord.created_at) >= guilds, timeout=guilds / 20 + 120, what="the fan-out"
            )
            times = list(discord.created_at)
            await asyncio.sleep(3 * CHECK_INTERVAL)  # a few more polls: a duplicate would be posted by now
            memory = [bot.memory_mb() for bot in bots]
            fanned = [m for m in discord.messages if m.embeds[0]["author"]["name"] == streamer.display_name]
            per_channel = Counter(m.channel_id for m in fanned)
            posters = [ports.owner_of(discord.message_ports.get(m.id)) for m in fanned]
            result |= {
                "leader": leader,
                "messages": len(fanned),
                "duplicates": sum(n - 1 for n in per_channel.values()),
                "missing": len({c for _, c in world} - set(per_channel)),
                "fanout_s": times[-1] - times[0] if len(times) > 1 else 0.0,
                "max_in_any_second": _max_in_window(times, 1.0),
                "global_429": discord.global_429,
                "route_429": discord.route_429,
                "per_process_messages": [sum(1 for who in posters if who == {index}) for index in range(processes)],
                "misposted": sum(
                    1
                    for m, who in zip(fanned, posters, strict=True)
                    if who != {owner_of_shard[shard_of(m.guild_id, shard_count)]}
                ),
                "rss_after_mb": [rss for rss, _ in memory],
                "rss_peak_mb": [peak for _, peak in memory],
            }
            result["msgs_per_s"] = (len(times) - 1) / result["fanout_s"] if result["fanout_s"] else 0.0
            result |= await failover(discord, twitch, bots, leader, late, late_world, owner_of_shard, shard_count)
    finally:
        await ports.stop()
        for index, bot in enumerate(bots):
            if bot.process is not None and bot.process.returncode is None:
                try:
                    await bot.terminate(timeout=30)
                except TimeoutError:
                    await bot.kill()
            if keep:
                (Path(keep) / f"process-{index}" / "bot.log").write_text(bot.output)
        await twitch.stop()
        await discord.stop()
        postgres.stop()
    result["unhandled"] = list(discord.unhandled)
    result["rejected"] = len(discord.rejected)
    result["code"] = code_version()
    return result


async def failover(
    discord: BenchDiscord,
    twitch: FakeTwitch,
    bots: list[BotProcess],
    leader: int,
    late: Any,
    late_world: list[tuple[int, int]],
    owner_of_shard: dict[int, int],
    shard_count: int,
) -> dict[str, Any]:
    """kill -9 of the leader while a second streamer goes live: how soon another process leads, polls, announces."""
    before = len(discord.messages)
    await bots[leader].kill()
    killed_at = time.monotonic()
    twitch.go_live(late.login, title="Live during the failover")
    _, led_at = await one_leader(bots, FAILOVER_LIMIT + 30)
    survivors = {c for g, c in late_world if owner_of_shard[shard_of(g, shard_count)] != leader}

    def announced() -> set[int]:
        return {m.channel_id for m in discord.messages[before:] if m.embeds[0]["author"]["name"] == late.display_name}

    await discord.wait_until(lambda: survivors <= announced(), timeout=FAILOVER_LIMIT + 60, what="the late go-live")
    polls = [r.at for r in twitch.requests_to("/helix/streams") if r.at > killed_at]
    return {
        "new_leader_s": led_at - killed_at,
        "first_poll_s": polls[0] - killed_at if polls else None,
        "late_announced_s": time.monotonic() - killed_at,
        "late_announced": len(announced() & survivors),
        "late_expected": len(survivors),
    }


def check(results: Sequence[dict[str, Any]]) -> list[str]:
    """What must hold whatever the timings: every server announced once, each process posting its own shards'
    servers, a new leader within 30 s that polls and announces, nothing the fake refused or did not know."""
    problems = []
    for r in results:
        where = f"{r['guilds']} servers / {r['processes']} processes"
        if r["messages"] != r["guilds"] or r["duplicates"] or r["missing"]:
            problems.append(
                f"{where}: {r['messages']} announcements, {r['duplicates']} duplicates, {r['missing']} missing"
            )
        if r["misposted"]:
            problems.append(f"{where}: {r['misposted']} announcements not posted by their server's shards' process")
        if r["new_leader_s"] >= FAILOVER_LIMIT:
            problems.append(f"{where}: a new leader only {r['new_leader_s']:.1f} s after the kill")
        if r["first_poll_s"] is None or r["late_announced"] != r["late_expected"]:
            problems.append(f"{where}: after the failover, polls {r['first_poll_s']}, {r['late_announced']} announced")
        if r["unhandled"] or r["rejected"]:
            problems.append(f"{where}: the fake refused or did not know something: {r['unhandled']}")
    return problems


def targets(results: Sequence[dict[str, Any]]) -> list[str]:
    """The figures to reach (issue 12, M3): the global limit shared without a global 429, at >= 40 msgs/s."""
    missed = []
    for r in results:
        where = f"{r['guilds']} servers / {r['processes']} processes"
        if r["global_429"]:
            missed.append(f"{where}: {r['global_429']} global 429s")
        if r["msgs_per_s"] < MIN_RATE:
            missed.append(f"{where}: {r['msgs_per_s']:.1f} msgs/s (target {MIN_RATE:.0f})")
    return missed


def _fan_row(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["guilds"], r["processes"], r["shards"], r["fanout_s"], r["msgs_per_s"], r["max_in_any_second"],
        r["global_429"], r["route_429"], r["duplicates"], r["missing"],
    )  # fmt: skip


def _process_rows(r: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r["guilds"], index, shard_ids_text(ids), "leader" if index == r["leader"] else "follower",
            r["per_process_messages"][index], r["rss_ready_mb"][index], r["rss_after_mb"][index],
            r["rss_peak_mb"][index],
        )
        for index, ids in enumerate(r["plan"])
    ]  # fmt: skip


def _failover_row(r: dict[str, Any]) -> tuple[Any, ...]:
    first_poll = r["first_poll_s"] if r["first_poll_s"] is not None else "-"
    return (r["guilds"], r["new_leader_s"], first_poll, r["late_announced_s"])


def report(results: Sequence[dict[str, Any]]) -> str:
    fan_headers = (
        "Servers", "Processes", "Shards", "Posted in s", "Msgs/s sustained", "Max in 1 s", "Global 429", "Channel 429",
        "Duplicates", "Missing",
    )  # fmt: skip
    proc_headers = ("Servers", "Process", "SHARD_IDS", "Role", "Messages", "RSS ready MB", "RSS after MB", "Peak MB")
    fail_headers = ("Servers", "New leader after s", "Its first poll after s", "Go-live announced after s")
    fan_rows = [_fan_row(r) for r in results]
    proc_rows = [row for r in results for row in _process_rows(r)]
    fail_rows = [_failover_row(r) for r in results]
    problems, missed = check(results), targets(results)
    return "\n".join(
        [
            f"Fan-out over several processes on PostgreSQL — {machine_line()}",
            f"Commit: {results[0]['code'] if results else code_version()}",
            "Fake Discord: 50 requests/s per bot token (all processes together), 5 messages / 5 s per channel. "
            f"Each server follows one streamer; the leader polls every {CHECK_INTERVAL:g} s.",
            "",
            table(fan_headers, fan_rows),
            "",
            table(proc_headers, proc_rows),
            "",
            "kill -9 of the leader, and a go-live at the same moment:",
            "",
            table(fail_headers, fail_rows),
            "",
            "Checks (every server once, by its own shards' process; a new leader within 30 s that polls and "
            "announces): " + ("all met" if not problems else "; ".join(problems)),
            f"Targets (0 global 429s, >= {MIN_RATE:.0f} msgs/s): " + ("all met" if not missed else "; ".join(missed)),
        ]
    )


async def run(guilds: Sequence[int] = (GUILDS,), processes: int = PROCESSES, keep: str | None = None) -> list[dict]:
    results = []
    for size in guilds:
        results.append(await measure(size, processes, keep=keep))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guilds", type=int, nargs="+", default=[GUILDS], help="server counts to measure")
    parser.add_argument("--processes", type=int, default=PROCESSES, help="bot processes sharing the shards")
    parser.add_argument("--keep", help="keep the processes' directories here")
    args = parser.parse_args()
    results = asyncio.run(run(args.guilds, args.processes, args.keep))
    save_json("cluster_fanout", results)
    print(report(results))
    return 0 if not check(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
