"""Benchmark 3 — start-up: from spawning the bot's process to its first completed poll cycle, 10,000 streamers.

    .venv/bin/python -m bench.startup                   # 10,000 streamers, 50,000 subscriptions, 500 guilds
    .venv/bin/python -m bench.startup --streamers 1000

Two starts on the same database: "fresh" (the 1 % live are announced in the first cycle) and "restart" (all
already announced, as after a deploy). discord.py's own wait for guilds (guild_ready_timeout, 2 s) is kept.
"""

from __future__ import annotations

import argparse
import asyncio
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

PHASES = (
    ("process_started", "interpreter up"),
    ("imports_done", "imports done"),
    ("setup_hook", "DB open, Twitch token, Discord login"),
    ("gateway_ready", "gateway ready"),
    ("first_cycle_done", "first cycle done"),
)


async def measure_startup(
    streamers: int = 10_000,
    *,
    fakes: FakeOptions = FakeOptions(),  # noqa: B008 - frozen dataclass, never mutated
    guild_ready_timeout: float | None = None,
    pacer_rate: float | None = 48.0,
    keep: str | None = None,
) -> list[dict[str, Any]]:
    guilds, pairs = poll_layout(streamers)
    live = live_indices(streamers)
    runs = []
    with workdir(keep) as wd:
        services, ports = await start_fakes(wd, fakes)
        try:
            world = await services.request("world", streamers=streamers, guilds=guilds, live=live)
            db_path = wd / "bot.db"
            await create_fixture_db(db_path, streamers, pairs, [tuple(c) for c in world["channels"]])
            for kind in ("fresh", "restart"):
                await services.request("reset")
                bot, first = await start_bot(
                    wd, ports, db_path, pacer_rate=pacer_rate, guild_ready_timeout=guild_ready_timeout,
                    log_name=f"bot-{kind}.log",
                )  # fmt: skip
                stats = await services.request("stats")
                await bot.stop(timeout=60)
                phases = first["phases"]
                cycle = first["cycle"]
                runs.append(
                    {
                        "kind": kind,
                        "streamers": streamers,
                        "guilds": guilds,
                        "since_spawn_s": {
                            name: phases[name] - first["spawned_at"] for name, _ in PHASES if name in phases
                        },
                        "first_cycle_wall_s": cycle["wall_s"],
                        "first_cycle_cpu_s": cycle["cpu_s"],
                        "announced": cycle["announced"],
                        "twitch_requests": stats["twitch"]["requests"],
                        "twitch_429": stats["twitch"]["http_429"],
                        "peak_rss_mb": cycle["peak_rss_mb"],
                        "rss_at_mb": first.get("rss_at", {}),
                    }
                )
        finally:
            await services.stop()
    return runs


def startup_table(runs: list[dict[str, Any]]) -> str:
    headers = ("Start", *(label for _, label in PHASES), "Announced", "Twitch requests", "Peak RSS MB")
    rows = [
        (
            f"{r['kind']} ({r['streamers']:,} streamers, {r['guilds']:,} guilds)",
            *(r["since_spawn_s"].get(name, float("nan")) for name, _ in PHASES),
            r["announced"],
            r["twitch_requests"],
            r["peak_rss_mb"],
        )
        for r in runs
    ]
    return "Seconds since the process was spawned:\n\n" + table(headers, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streamers", type=int, default=10_000)
    parser.add_argument("--keep", help="keep the database and logs in this directory")
    args = parser.parse_args()
    runs = asyncio.run(measure_startup(args.streamers, keep=args.keep))
    save_json("startup", runs)
    print(f"\nStart-up — {machine_line()}\n")
    print(startup_table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
