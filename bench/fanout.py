"""Benchmark 2 — fan-out: one streamer followed by G guilds goes live; every guild must get its announcement.

    .venv/bin/python -m bench.fanout                          # 100 / 1,000 / 5,000 guilds, every variant
    .venv/bin/python -m bench.fanout --guilds 1000 --variants paced

Fake Discord enforces 50 requests/s per token and 5 messages / 5 s per channel, answering 429 like Discord.
Variants: "shipped" is the bot as it is; "paced" adds the SendPacer (48/s) in front of each post, the way
the proposed bot.py wiring does; "paced+lookup" also gives the announcer an O(1) channel look-up.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from bench.common import (
    FakeOptions,
    create_fixture_db,
    machine_line,
    save_json,
    start_bot,
    start_fakes,
    table,
    workdir,
)

SIZES = (100, 1_000, 5_000)
# "No 429 storm": at most this share of posts answered 429. A rare one (jitter between the pacer and the
# fake) is retried by discord.py after ~20 ms and costs nothing; as shipped, about half the posts get one.
STORM = 0.01
VARIANTS: dict[str, dict[str, Any]] = {
    "shipped": {"pacer_rate": None, "fast_channel_lookup": False},
    "paced": {"pacer_rate": 48.0, "fast_channel_lookup": False},
    "paced+lookup": {"pacer_rate": 48.0, "fast_channel_lookup": True},
}


async def measure_fanout(
    guilds: int,
    variant: str = "paced",
    *,
    fakes: FakeOptions = FakeOptions(),  # noqa: B008 - frozen dataclass, never mutated
    guild_ready_timeout: float | None = None,
    keep: str | None = None,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Start the bot with one offline streamer followed by `guilds` guilds; it goes live; one cycle announces.
    If any announcement is missing after that cycle, one more cycle shows whether it is recovered."""
    options = VARIANTS[variant]
    with workdir(keep) as wd:
        services, ports = await start_fakes(wd, fakes)
        bot = None
        try:
            world = await services.request("world", streamers=1, guilds=guilds, live=[])
            channels = [tuple(c) for c in world["channels"]]
            db_path = wd / "bot.db"
            await create_fixture_db(db_path, 1, [(g, 0) for g in range(guilds)], channels)
            bot, _ = await start_bot(
                wd, ports, db_path, guild_ready_timeout=guild_ready_timeout, profile_dir=profile_dir, **options
            )
            await services.request("reset")
            await services.request("go_live", indices=[0])
            cycle = (await bot.request("cycle"))["cycle"]
            stats = (await services.request("stats"))["discord"]
            lost = guilds - stats["channels_with_message"]
            recovered = None
            if lost:
                await bot.request("cycle")
                recovered = (await services.request("stats"))["discord"]["channels_with_message"] - (guilds - lost)
        finally:
            if bot is not None:
                await bot.stop(timeout=60)
            await services.stop()
    messages = stats["messages"]
    span = stats["first_to_last_s"]
    return {
        "guilds": guilds,
        "variant": variant,
        "shims": cycle["shims"],
        "messages": messages,
        "announced": cycle["announced"],
        "announce_failed": cycle["announce_failed"],
        "lost": lost,
        "recovered_next_cycle": recovered,
        "duplicates": stats["duplicates"],
        "global_429": stats["global_429"],
        "route_429": stats["route_429"],
        "max_in_any_second": stats["max_in_any_second"],
        "cycle_wall_s": cycle["wall_s"],
        "first_to_last_s": span,
        "sustained_per_s": (messages - 1) / span if span > 0 else 0.0,
        "bot_cpu_s": cycle["cpu_s"],
        "cpu_ms_per_message": 1000 * cycle["cpu_s"] / messages if messages else 0.0,
        "peak_rss_mb": cycle["peak_rss_mb"],
    }


def fanout_table(results: list[dict[str, Any]]) -> str:
    rows = [
        (
            r["guilds"],
            r["variant"],
            r["cycle_wall_s"] if not r["lost"] else f"{r['cycle_wall_s']:.1f} (incomplete)",
            r["sustained_per_s"],
            r["max_in_any_second"],
            f"{r['global_429']} / {r['route_429']}",
            r["lost"] if not r["lost"] else f"{r['lost']} ({r['recovered_next_cycle']} next cycle)",
            r["duplicates"],
            r["bot_cpu_s"],
            r["cpu_ms_per_message"],
        )
        for r in results
    ]
    headers = (
        "Guilds",
        "Variant",
        "All posted after s",
        "Msgs/s sustained",
        "Max in any 1 s",
        "429s global / channel",
        "Lost in cycle",
        "Duplicates",
        "Bot CPU s",
        "CPU ms/msg",
    )
    return table(headers, rows)


def check(results: list[dict[str, Any]]) -> list[str]:
    misses = []
    for r in results:
        if r["variant"] == "shipped":
            continue  # the baseline, shown for comparison
        name = f"{r['guilds']:,} guilds ({r['variant']})"
        if r["lost"] or r["duplicates"]:
            misses.append(f"{name}: {r['lost']} lost, {r['duplicates']} duplicates")
        limited = r["global_429"] + r["route_429"]
        if limited > STORM * r["messages"]:
            misses.append(f"{name}: 429 storm, {limited} × 429 for {r['messages']} messages")
        if r["guilds"] >= 1_000 and r["sustained_per_s"] < 45:
            misses.append(f"{name}: {r['sustained_per_s']:.1f} messages/s (target 45)")
    return misses


async def run(
    sizes: list[int], variants: list[str], keep: str | None = None, profile: str | None = None
) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        for variant in variants:
            print(f"fan-out: {size:,} guilds, {variant} ...", flush=True)
            profile_dir = Path(profile) / f"{size}-{variant}" if profile else None
            results.append(await measure_fanout(size, variant, keep=keep, profile_dir=profile_dir))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guilds", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--keep", help="keep the database and logs in this directory")
    parser.add_argument("--profile", help="write a pyinstrument profile of every cycle under this directory")
    args = parser.parse_args()
    results = asyncio.run(run(args.guilds, args.variants, args.keep, args.profile))
    save_json("fanout", results)
    print(f"\nFan-out — {machine_line()}\n")
    print(fanout_table(results))
    misses = check(results)
    print("\nTargets: " + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
