"""Benchmark 1 — poll cycle: N unique streamers, 5 subscriptions each, 1 % live, against rate-limited fakes.

.venv/bin/python -m bench.poll_cycle                    # 1,000 / 10,000 / 100,000 (about 8 minutes)
.venv/bin/python -m bench.poll_cycle --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import asyncio
import math
from pathlib import Path
from typing import Any

from bench.common import (
    FakeOptions,
    create_fixture_db,
    live_indices,
    machine_line,
    poll_layout,
    save_json,
    start_bot,
    start_fakes,
    table,
    workdir,
)

SIZES = (1_000, 10_000, 100_000)
SUBSCRIPTIONS_PER_STREAMER = 5


async def measure_poll(
    streamers: int,
    *,
    steady_cycles: int = 2,
    fakes: FakeOptions = FakeOptions(),  # noqa: B008 - frozen dataclass, never mutated
    pacer_rate: float | None = 48.0,
    guild_ready_timeout: float | None = None,
    keep: str | None = None,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Start the bot on a fresh database of `streamers`; its first cycle (start-up: announces the 1 % live and
    refreshes every streamer's name), then `steady_cycles` more where nothing changes."""
    guilds, pairs = poll_layout(streamers, SUBSCRIPTIONS_PER_STREAMER)
    live = live_indices(streamers)
    with workdir(keep) as wd:
        services, ports = await start_fakes(wd, fakes)
        bot = None
        try:
            world = await services.request("world", streamers=streamers, guilds=guilds, live=live)
            db_path = wd / "bot.db"
            await create_fixture_db(db_path, streamers, pairs, [tuple(c) for c in world["channels"]])
            await services.request("reset")
            bot, first = await start_bot(
                wd,
                ports,
                db_path,
                pacer_rate=pacer_rate,
                guild_ready_timeout=guild_ready_timeout,
                profile_dir=profile_dir,
            )
            cycles = [_with_stats("first (start-up)", first["cycle"], await services.request("stats"))]
            for number in range(steady_cycles):
                await services.request("reset")
                reply = await bot.request("cycle")
                cycles.append(_with_stats(f"steady {number + 1}", reply["cycle"], await services.request("stats")))
            memory = await bot.request("memory")
        finally:
            if bot is not None:
                await bot.stop(timeout=60)
            await services.stop()
    return {
        "streamers": streamers,
        "subscriptions": len(pairs),
        "guilds": guilds,
        "live": len(live),
        "expected_requests": math.ceil(streamers / 100),
        "cycles": cycles,
        "peak_rss_mb": memory["peak_rss_mb"],
        "phases": first["phases"],
        "spawned_at": first["spawned_at"],
    }


def _with_stats(kind: str, cycle: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    twitch, discord = stats["twitch"], stats["discord"]
    return cycle | {
        "kind": kind,
        "streams_requests": twitch["by_path"].get("streams", 0),
        "users_requests": twitch["by_path"].get("users", 0),
        "twitch_429": twitch["http_429"],
        "discord_messages": discord["created"],
        "discord_429": discord["global_429"] + discord["route_429"],
    }


def steady(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in result["cycles"] if c["kind"].startswith("steady")]


def poll_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        for c in r["cycles"]:
            requests = f"{c['streams_requests']:,}"
            if c["users_requests"]:
                requests += f" + {c['users_requests']:,} users"
            rows.append(
                (
                    r["streamers"],
                    r["subscriptions"],
                    c["kind"],
                    requests,
                    r["expected_requests"],
                    c["twitch_429"],
                    c["db_queries"],
                    c["announced"],
                    c["wall_s"],
                    c["cpu_s"],
                    c["peak_rss_mb"],
                )
            )
    headers = (
        "Streamers",
        "Subs",
        "Cycle",
        "Twitch requests",
        "ceil(N/100)",
        "429s",
        "DB queries",
        "Announced",
        "Wall s",
        "Bot CPU s",
        "Peak RSS MB",
    )
    return table(headers, rows)


def check(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets for this benchmark; returns the misses (empty when all are met)."""
    misses = []
    query_counts = {c["db_queries"] for r in results for c in steady(r)}
    if len(query_counts) > 1:
        misses.append(f"steady-state DB queries vary with N: {sorted(query_counts)}")
    for r in results:
        for c in steady(r):
            if c["streams_requests"] != r["expected_requests"] or c["users_requests"]:
                misses.append(f"{r['streamers']}: {c['streams_requests']} requests, expected {r['expected_requests']}")
        if any(c["twitch_429"] for c in r["cycles"]):
            misses.append(f"{r['streamers']}: Twitch answered 429")
        if r["cycles"][0]["announced"] != r["live"] * SUBSCRIPTIONS_PER_STREAMER:
            misses.append(f"{r['streamers']}: announced {r['cycles'][0]['announced']} of {r['live'] * 5}")
        if r["streamers"] == 10_000:
            cpu = max(c["cpu_s"] for c in steady(r))
            if cpu > 0.5:
                misses.append(f"10,000 streamers: {cpu:.3f} s CPU per cycle (target 0.5 s)")
            if r["peak_rss_mb"] > 80:
                misses.append(f"10,000 streamers: peak RSS {r['peak_rss_mb']:.1f} MB (target 80 MB)")
    return misses


async def run(sizes: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        print(f"poll cycle: {size:,} streamers ...", flush=True)
        results.append(
            await measure_poll(
                size,
                steady_cycles=args.steady_cycles,
                pacer_rate=args.pacer or None,
                keep=args.keep,
                profile_dir=Path(args.profile) / str(size) if args.profile else None,
            )
        )
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--steady-cycles", type=int, default=2)
    parser.add_argument("--pacer", type=float, default=48.0, help="announcement pacer rate for the bench shim; 0: none")
    parser.add_argument("--keep", help="keep the database and logs in this directory")
    parser.add_argument("--profile", help="write a pyinstrument profile of every cycle under this directory")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    results = asyncio.run(run(args.sizes, args))
    save_json("poll_cycle", results)
    print(f"\nPoll cycle — {machine_line()}\n")
    print(poll_table(results))
    misses = check(results)
    print("\nTargets: " + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
