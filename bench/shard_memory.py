"""Benchmark — memory per guild, sharded: the RSS of the shipped bot (app.build.build_bot, real discord.py) with
1,000 / 5,000 / 10,000 guilds cached, against the fake Discord.

    .venv/bin/python -m bench.shard_memory                  # 1,000, 5,000 and 10,000 guilds
    .venv/bin/python -m bench.shard_memory --guilds 2000 20000

Each size gets a fresh fake Discord in this process and a fresh bot in a child process (`--worker`), so the RSS is
the bot's alone. The guilds are small real-world ones: a category, 10 text and 2 voice channels, 4 roles of their
own besides @everyone and the bot's, permission overwrites on 4 channels, and the owner and the bot as members.
The bot asks the fake for its shard count (GET /gateway/bot: one shard per 1,000 guilds, as Discord recommends),
identifies every shard (one IDENTIFY per 50 ms here instead of Discord's 5 s) and waits until every guild is
cached. RSS is read (VmRSS, after a gc.collect()) once logged in, before the gateway, and once every guild is
cached: the difference over the guild count is the cost per guild, since no streamer is followed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import DISCORD_TOKEN, PYTHON, REPO, TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET, machine_line, table
from bench.push_latency import code_version
from tests.fakes.discord_payloads import CATEGORY_CHANNEL, VOICE_CHANNEL, permission_value
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_twitch import FakeTwitch

SIZES = (1_000, 5_000, 10_000)
IDENTIFY_WINDOW = 0.05  # the fake's, instead of Discord's 5 s; the bot waits a little more
IDENTIFY_INTERVAL = 0.06
GUILD_READY_TIMEOUT = 0.5  # discord.py's wait after a shard's last GUILD_CREATE (2 s in production)
TEXT_CHANNELS = 10
VOICE_CHANNELS = 2
ROLES = ("Moderators", "Subscribers", "VIP", "Live pings")
WORKER_TIMEOUT = 600.0


# ---------------------------------------------------------------------------------------------- the world


def add_small_guild(fake: FakeDiscord, index: int) -> None:
    """One guild as small communities have them: 13 channels, 6 roles, 4 channels with overwrites."""
    guild = fake.add_guild(f"community-{index}")
    roles = [fake.add_role(guild.id, name, mentionable=name == "Live pings") for name in ROLES]
    category = fake.add_channel(guild.id, "Text channels", type=CATEGORY_CHANNEL)
    texts = [fake.add_text_channel(guild.id, f"channel-{n}", topic=f"About channel {n}") for n in range(TEXT_CHANNELS)]
    for channel in texts:
        channel.parent_id = category.id
    for n in range(VOICE_CHANNELS):
        fake.add_channel(guild.id, f"Voice {n}", type=VOICE_CHANNEL)
    read_only = permission_value("send_messages", "add_reactions")
    fake.set_channel_overwrite(texts[0].id, guild.id, target_type=0, deny=read_only)  # #rules: @everyone reads only
    fake.set_channel_overwrite(texts[0].id, roles[0].id, target_type=0, allow=read_only)
    fake.set_channel_overwrite(texts[1].id, guild.id, target_type=0, deny=permission_value("view_channel"))
    fake.set_channel_overwrite(texts[1].id, roles[0].id, target_type=0, allow=permission_value("view_channel"))
    fake.set_bot_channel_permissions(texts[2].id, allow=("send_messages", "embed_links"))  # the announcements one
    fake.set_channel_overwrite(texts[3].id, roles[1].id, target_type=0, allow=permission_value("attach_files"))


# ------------------------------------------------------------------------------------------- the bot's side


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def settled_rss_mb() -> float:
    gc.collect()
    return rss_mb()


async def worker(config: dict[str, Any]) -> dict[str, Any]:
    """The measured process: the shipped bot, built by build_bot, against the fakes of the parent."""
    from config import Settings  # the bot's imports are part of its footprint, and of this process only
    from database import Database
    from twitch_notifier.app.build import build_bot, build_twitch_client
    from twitch_notifier.discord_io.endpoints import use_discord_endpoints

    started = rss_mb()
    settings = Settings(
        discord_token=DISCORD_TOKEN,
        twitch_client_id=TWITCH_CLIENT_ID,
        twitch_client_secret=TWITCH_CLIENT_SECRET,
        check_interval_seconds=24 * 3600,
        database_path=config["database_path"],
        twitch_api_base=config["twitch_api_base"],
        twitch_auth_base=config["twitch_auth_base"],
        discord_api_base=config["discord_api_base"],
        discord_gateway_url=config["discord_gateway_url"],
        eventsub_transport="off",
    )
    use_discord_endpoints(settings.discord_api_base, settings.discord_gateway_url)
    db = await Database.open(settings.database_path)
    guilds = int(config["guilds"])
    try:
        async with build_twitch_client(settings) as twitch:
            bot = build_bot(
                settings, db, twitch, guild_ready_timeout=GUILD_READY_TIMEOUT, identify_interval=IDENTIFY_INTERVAL
            )
            async with bot:
                await bot.login(settings.discord_token)  # setup_hook: cogs, command sync, the poll loop
                before = settled_rss_mb()
                began = time.monotonic()
                connecting = asyncio.create_task(bot.connect())
                while not (bot.is_ready() and sum(not g.unavailable for g in bot.guilds) >= guilds):
                    if connecting.done():
                        raise RuntimeError(f"the gateway task ended: {connecting.exception()!r}")
                    if time.monotonic() - began > WORKER_TIMEOUT:
                        raise TimeoutError(f"{len(bot.guilds)} of {guilds} guilds cached after {WORKER_TIMEOUT} s")
                    await asyncio.sleep(0.05)
                cached_after = time.monotonic() - began
                await asyncio.sleep(GUILD_READY_TIMEOUT)  # the guilds' "seen" writes and the first poll settle
                after = settled_rss_mb()
                result = {
                    "guilds": guilds,
                    "cached": sum(not g.unavailable for g in bot.guilds),
                    "channels": sum(len(g.channels) for g in bot.guilds),
                    "roles": sum(len(g.roles) for g in bot.guilds),
                    "members": sum(len(g.members) for g in bot.guilds),
                    "shards": bot.shard_count,
                    "shard_guilds": [s.guilds for s in bot.shard_statuses()],
                    "rss_started_mb": started,
                    "rss_before_mb": before,
                    "rss_after_mb": after,
                    "seconds_to_cache": cached_after,
                }
                await bot.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connecting, 30)
    finally:
        await db.close()
    return result


# --------------------------------------------------------------------------------------- the benchmark side


async def measure(guilds: int, *, shards: int | None = None) -> dict[str, Any]:
    """One size: a fresh fake Discord (this process) and a fresh bot (a child process). `shards` makes the fake
    recommend that many shards instead of one per 1,000 guilds (the smoke test shards a few guilds)."""
    discord = FakeDiscord(token=DISCORD_TOKEN, identify_window_seconds=IDENTIFY_WINDOW, recommended_shards=shards)
    twitch = FakeTwitch(client_id=TWITCH_CLIENT_ID, client_secret=TWITCH_CLIENT_SECRET)
    for index in range(guilds):
        add_small_guild(discord, index)
    await discord.start()
    await twitch.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
            config = {
                "guilds": guilds,
                "database_path": str(Path(tmp) / "bot.db"),
                "twitch_api_base": twitch.api_base,
                "twitch_auth_base": twitch.auth_base,
                "discord_api_base": discord.api_base,
                "discord_gateway_url": discord.gateway_url,
            }
            child = await asyncio.create_subprocess_exec(
                PYTHON,
                "-m",
                "bench.shard_memory",
                "--worker",
                json.dumps(config),
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(child.communicate(), WORKER_TIMEOUT + 60)
            if child.returncode != 0:
                raise RuntimeError(f"the bot worker failed (status {child.returncode}):\n{err.decode()[-3000:]}")
            result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        await twitch.stop()
        await discord.stop()
    result["expected_shards"] = shards or max(1, -(-guilds // 1000))
    result["fake_identifies"] = len(discord.identify_payloads)
    result["refused_identifies"] = len(discord.refused_identifies)
    result["unhandled"] = list(discord.unhandled)
    result["rejected"] = len(discord.rejected)
    result["per_1k_guilds_mb"] = (result["rss_after_mb"] - result["rss_before_mb"]) / guilds * 1000
    return result


async def run(sizes: Sequence[int] = SIZES, *, shards: int | None = None) -> list[dict[str, Any]]:
    results = []
    for guilds in sizes:
        result = await measure(guilds, shards=shards)
        result["code"] = code_version()
        results.append(result)
    return results


def check(results: Sequence[dict[str, Any]]) -> list[str]:
    """What must hold whatever the timings: every guild cached, on as many shards as recommended (one IDENTIFY
    each), none over Discord's cap, nothing refused."""
    problems = []
    for r in results:
        if r["cached"] != r["guilds"]:
            problems.append(f"{r['guilds']} guilds: only {r['cached']} cached")
        if r["shards"] != r["expected_shards"] or r["fake_identifies"] != r["shards"]:
            problems.append(
                f"{r['guilds']} guilds: {r['shards']} shards ({r['fake_identifies']} IDENTIFYs), "
                f"not the {r['expected_shards']} recommended"
            )
        if max(r["shard_guilds"]) > 2500:
            problems.append(f"{r['guilds']} guilds: a shard holds {max(r['shard_guilds'])} (Discord's cap: 2,500)")
        if r["refused_identifies"] or r["unhandled"] or r["rejected"]:
            problems.append(f"{r['guilds']} guilds: the fake refused or did not know something: {r}")
    return problems


def report(results: Sequence[dict[str, Any]]) -> str:
    headers = (
        "Guilds",
        "Shards",
        "Channels",
        "RSS before MB",
        "RSS after MB",
        "Per 1k guilds MB",
        "All cached after s",
    )
    rows = [
        (
            r["guilds"],
            r["shards"],
            r["channels"],
            r["rss_before_mb"],
            r["rss_after_mb"],
            r["per_1k_guilds_mb"],
            r["seconds_to_cache"],
        )
        for r in results
    ]
    problems = check(results)
    return "\n".join(
        [
            f"Memory per guild, sharded — {machine_line()}",
            f"Commit: {results[0]['code'] if results else code_version()}",
            f"Guild: 1 category, {TEXT_CHANNELS} text and {VOICE_CHANNELS} voice channels, {len(ROLES)} roles + "
            "@everyone + the bot's, overwrites on 4 channels, 2 members (owner, bot). Intents: guilds only; member "
            "cache off; no chunking; no message cache.",
            "RSS before: logged in (cogs loaded, commands synced), no gateway yet. After: every guild cached.",
            "",
            table(headers, rows),
            "",
            "Checks (every guild cached, one shard per 1,000 guilds, none over 2,500, nothing refused): "
            + ("all met" if not problems else "; ".join(problems)),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guilds", type=int, nargs="+", default=list(SIZES), help="guild counts to measure")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = asyncio.run(worker(json.loads(args.worker)))
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    results = asyncio.run(run(args.guilds))
    print(report(results))
    return 0 if not check(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
