"""Benchmark 6 — push fan-out: one streamer followed by G servers goes live by push; every server must get
its announcement, paced under Discord's limits.

    .venv/bin/python -m bench.push_fanout                    # 1,000 servers
    .venv/bin/python -m bench.push_fanout --servers 100 1000

One process (bench/push_latency.py's set-up): the fake Discord enforcing fanout.py's limits (50 requests/s
per bot token, 5 messages / 5 s per channel, 429 with Retry-After and Via), the fake Twitch with its EventSub
WebSocket server (800 points/min, +50 ms per Helix request, as fanout.py's fakes; listing lag 1 h, so only
push announces) and the shipped bot with EVENTSUB_TRANSPORT=websocket. G servers with one channel each follow
the streamer; one stream.online; the time runs from `fake.eventsub.stream_online` being called to the last
announcement's POST arriving at the fake Discord. The bot's SendPacer (48/s) must keep the fake's 429 count
at 0.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

from bench.common import FakeOptions, create_fixture_db, machine_line, save_json, table, user_id, workdir
from bench.push_latency import (
    HISTOGRAM,
    STAGES,
    Probe,
    PushServices,
    bot_logging,
    code_version,
    histogram_buckets,
    stages,
    started_bot,
    summary_ms,
)
from tests.fakes.fake_discord import patch_discord_endpoints

SIZES = (1_000,)
FAKES = FakeOptions()  # fanout.py's: Twitch 800 points/min + 50 ms per request, Discord's limits enforced
MIN_RATE = 45.0  # messages/s sustained, fanout.py's target for 1,000 servers and more


async def measure_push_fanout(
    servers: int = 1_000,
    *,
    fakes: FakeOptions = FAKES,
    keep: str | None = None,
    log: bool = True,
) -> dict[str, Any]:
    """One streamer followed by `servers` servers (a channel each) goes live once, by push."""
    with workdir(keep) as wd, bot_logging(wd / "bot.log" if log else None) as errors:
        services = PushServices(fakes)
        await services.start()
        try:
            with patch_discord_endpoints(services.discord):
                channels = [tuple(c) for c in services.world(1, servers, [])["channels"]]
                services.twitch.listing_lag = 3600.0  # the poll never sees the stream: only push announces it
                db_path = wd / "bot.db"
                await create_fixture_db(db_path, 1, [(g, 0) for g in range(servers)], channels)
                uid = user_id(0)
                async with started_bot(services, db_path, [uid]) as harness:
                    probe = Probe(services, harness, {uid: 0})
                    probe.install({channel_id: uid for _, channel_id in channels})
                    services.reset()
                    go_live = probe.by_user[uid]
                    services.go_live([0])
                    complete = await probe.wait(lambda: len(go_live.arrivals) >= servers, timeout=60 + servers / 20)
                    await asyncio.sleep(0.5)  # a late duplicate would land by now
                    stats = services.stats()
                    histogram = histogram_buckets(harness)
                    assert harness.bot is not None
                    pacer = harness.bot.notifier._announcer.pacer  # type: ignore[attr-defined]
                    pacer_delayed, pacer_waited = pacer.delayed, pacer.waited
        finally:
            await services.stop()
    per_channel = services.announcements_by_channel()
    arrivals = sorted(go_live.arrivals)
    discord = stats["discord"]
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return {
        "servers": servers,
        "twitch_latency_s": fakes.twitch_latency,
        "complete": complete,
        "announced": sum(per_channel.values()),
        "exactly_once": sum(1 for _, channel_id in channels if per_channel.get(channel_id, 0) == 1),
        "lost": sum(1 for _, channel_id in channels if not per_channel.get(channel_id)),
        "duplicates": sum(n - 1 for n in per_channel.values() if n > 1),
        "first_s": arrivals[0] - go_live.called if arrivals else float("nan"),
        "all_s": arrivals[-1] - go_live.called if arrivals else float("nan"),
        "first_to_last_s": span,
        "sustained_per_s": (len(arrivals) - 1) / span if span > 0 else 0.0,
        "max_in_any_second": discord["max_in_any_second"],
        "global_429": discord["global_429"],
        "route_429": discord["route_429"],
        "twitch_429": stats["twitch"]["http_429"],
        "pacer_delayed": pacer_delayed,
        "pacer_waited_s": pacer_waited,
        "bot_histogram": summary_ms(go_live.bot_latencies),
        "first_post_stages": stages(go_live),  # go-live -> the first POST answered, as push_latency splits it
        "helix_requests": stats["twitch"]["by_path"],
        "histogram": histogram,
        "errors": errors.formatted(),
        "code": code_version(),
    }


def fanout_table(results: Sequence[dict[str, Any]]) -> str:
    rows = [
        (
            r["servers"],
            r["first_s"] * 1000,
            r["all_s"] if r["complete"] else f"{r['all_s']:.1f} (incomplete)",
            r["sustained_per_s"],
            r["max_in_any_second"],
            f"{r['global_429']} / {r['route_429']}",
            f"{r['exactly_once']:,} / {r['servers']:,}",
            r["lost"],
            r["duplicates"],
            r["bot_histogram"]["max_ms"],
        )
        for r in results
    ]
    headers = (
        "Servers",
        "First POST ms",
        "All posted after s",
        "Msgs/s sustained",
        "Max in any 1 s",
        "429s global / channel",
        "Exactly once",
        "Lost",
        "Duplicates",
        "Alert latency ms (first post)",
    )
    return table(headers, rows)


def check(results: Sequence[dict[str, Any]]) -> list[str]:
    misses = []
    for r in results:
        name = f"push fan-out ({r['servers']:,} servers)"
        if r["exactly_once"] != r["servers"] or r["lost"] or r["duplicates"]:
            misses.append(f"{name}: {r['exactly_once']} exactly once, {r['lost']} lost, {r['duplicates']} duplicates")
        if r["global_429"] or r["route_429"]:
            misses.append(f"{name}: {r['global_429']} global / {r['route_429']} channel 429s (must be 0)")
        if r["servers"] >= 1_000 and r["sustained_per_s"] < MIN_RATE:
            misses.append(f"{name}: {r['sustained_per_s']:.1f} messages/s (target {MIN_RATE:.0f})")
        if r["errors"]:
            misses.append(f"{name}: {len(r['errors'])} ERROR log lines, first: {r['errors'][0]}")
    return misses


def report(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"Push fan-out — {machine_line()}",
        f"Commit: {results[0]['code'] if results else code_version()}",
        "One streamer, one push go-live, each server with its own channel; fake Discord 50 requests/s per token + "
        "5 messages / 5 s per channel (429 with Via); fake Twitch in process, 800 points/min, "
        f"+{FAKES.twitch_latency * 1000:.0f} ms per Helix request, listing lag 1 h.",
        "",
        fanout_table(results),
        "",
    ]
    for r in results:
        h = r["histogram"]
        lines.append(
            f"{r['servers']:,} servers: {r['announced']:,} announcements, {r['first_to_last_s']:.2f} s first to last; "
            f"429s from Twitch {r['twitch_429']}; SendPacer held {r['pacer_delayed']:,} posts back, "
            f"{r['pacer_waited_s']:.1f} s in all; {HISTOGRAM} (the alert: its first post) count {h['count']:,}, "
            f"{r['bot_histogram']['max_ms']:.0f} ms; ERROR log lines {len(r['errors'])}"
        )
    for r in results:
        first = r["first_post_stages"]
        if first:
            parts = ", ".join(f"{key} {1000 * first[key]:.1f}" for _, key in STAGES if first[key] >= 0.0005)
            lines.append(f"{r['servers']:,} servers, first POST's ms: {parts}; Helix calls: {r['helix_requests']}")
    misses = check(results)
    verdict = "all met" if not misses else "MISSED: " + "; ".join(misses)
    lines.append(f"Targets (every server exactly once, 0 × 429, >= {MIN_RATE:.0f} msgs/s): {verdict}")
    return "\n".join(lines)


async def run(sizes: Sequence[int], keep: str | None = None) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        print(f"push fan-out: {size:,} servers ...", flush=True)
        started = time.monotonic()
        results.append(await measure_push_fanout(size, keep=keep))
        print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--keep", help="keep the database and the bot's log in this directory")
    args = parser.parse_args()
    results = asyncio.run(run(args.servers, args.keep))
    save_json("push_fanout", results)
    print("\n" + report(results))
    return 1 if check(results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
