"""Runs the seven benchmarks at full size and writes bench/RESULTS.md (about 19 minutes on 2 cores).

.venv/bin/python -m bench.run_all                  # prints the tables and rewrites bench/RESULTS.md
.venv/bin/python -m bench.run_all --no-write --poll-sizes 1000 10000 --fanout-guilds 100 1000
.venv/bin/python -m bench.run_all --no-write --push-go-lives 200 --push-servers 100 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import fanout, growth, poll_cycle, push_fanout, push_latency, reach, startup
from bench.common import REPO, machine, save_json


def _git(*args: str) -> str:
    command = ["git", "-C", str(REPO), *args]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=10).stdout.strip()  # noqa: S603


def _code_version(note: str | None) -> str:
    if note:
        return note
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"commit {head}" + (" with uncommitted changes" if dirty else "")


async def run_all(args: argparse.Namespace) -> str:
    started = time.monotonic()
    if args.from_results:
        polls, fans, starts = (_load(name) for name in ("poll_cycle", "fanout", "startup"))
        pushes = _load_optional("push_latency")
        push_fans = _load_optional("push_fanout")
        reaches = _load_optional("reach")
    else:
        print("== poll cycle / growth", flush=True)
        polls = await poll_cycle.run(args.poll_sizes, args)
        save_json("poll_cycle", polls)
        print("== fan-out", flush=True)
        fans = await fanout.run(args.fanout_guilds, list(fanout.VARIANTS))
        save_json("fanout", fans)
        print("== start-up", flush=True)
        starts = await startup.measure_startup(args.startup_streamers)
        save_json("startup", starts)
        print("== push latency", flush=True)
        latency = await push_latency.run(args.push_go_lives, 1, push_latency.GAP, 0.0, None)
        save_json("push_latency", latency)
        pushes = [latency]
        print("== push fan-out", flush=True)
        push_fans = await push_fanout.run(args.push_servers)
        save_json("push_fanout", push_fans)
        print("== reach and control", flush=True)
        reached = await reach.run()
        save_json("reach", reached)
        reaches = [reached]
    return _report(args, polls, fans, starts, pushes, push_fans, reaches, time.monotonic() - started)


def _load(name: str) -> list[dict[str, Any]]:
    return json.loads((REPO / "bench" / "results" / f"{name}.json").read_text())["data"]


def _load_optional(name: str) -> list[dict[str, Any]]:
    """Saved results of a benchmark newer than some saved runs: none yet is an empty section, not an error."""
    path = REPO / "bench" / "results" / f"{name}.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())["data"]
    return data if isinstance(data, list) else [data]


def _report(
    args: argparse.Namespace,
    polls: list[dict[str, Any]],
    fans: list[dict[str, Any]],
    starts: list[dict[str, Any]],
    pushes: list[dict[str, Any]],
    push_fans: list[dict[str, Any]],
    reaches: list[dict[str, Any]],
    elapsed: float,
) -> str:
    m = machine()
    misses = poll_cycle.check(polls) + growth.check(polls) + fanout.check(fans)
    misses += push_latency.check(pushes) + push_fanout.check(push_fans)
    misses += [miss for result in reaches for miss in reach.check(result)]
    sections = [
        "# Benchmark results",
        "",
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `.venv/bin/python -m bench.run_all`"
        + (" from the saved results (bench/results/*.json)." if args.from_results else f" in {elapsed:.0f} s."),
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, {m['platform']}.",
        f"Code: {_code_version(args.code_note)}.",
        "Fakes in their own process: Twitch 800 points/min + 50 ms latency per request; Discord 50 requests/s per "
        "token + 5 messages/5 s per channel, 429 with Via. CPU and RSS are the bot process's own.",
        "",
        "## 1. Poll cycle (5 subscriptions per streamer, 1 % live, 100 subscriptions per guild)",
        "",
        poll_cycle.poll_table(polls),
        "",
        "## 2. Fan-out (one streamer goes live in G guilds)",
        "",
        fanout.fanout_table(fans),
        "",
        f"## 3. Start-up ({starts[0]['streamers']:,} streamers)" if starts else "## 3. Start-up",
        "",
        startup.startup_table(starts),
        "",
        "## 4. Growth",
        "",
        growth.growth_table(polls),
        "",
        *_push_sections(pushes, push_fans),
        "## 7. Reach and control (issue 14: live events, Notify me, publishing, title filters; in one process)",
        "",
        *(["\n\n".join(reach.report(result) for result in reaches)] if reaches else ["Not run."]),
        "",
        "## Targets",
        "",
        "All met." if not misses else "Missed:\n\n" + "\n".join(f"- {miss}" for miss in misses),
        "",
    ]
    return "\n".join(sections)


def _push_sections(pushes: list[dict[str, Any]], push_fans: list[dict[str, Any]]) -> list[str]:
    """Sections 5 and 6: push runs the bot and the fakes in one process (the end-to-end tests' set-up)."""
    sections = ["## 5. Push latency (EventSub WebSocket shard, go-lives one at a time, in one process)", ""]
    if not pushes:
        sections += ["Not run.", ""]
    for result in pushes:
        sections += [
            f"{result['go_lives']} streamers each followed by one server; fake Twitch +"
            f"{result['twitch_latency_s'] * 1000:.0f} ms per Helix request; code: {result['code']}.",
            "",
            push_latency.latency_table([result]),
            "",
            push_latency.histogram_line(result),
            "",
            push_latency.stage_table(result),
            "",
        ]
    sections += ["## 6. Push fan-out (one push go-live to G servers, Discord's limits enforced, in one process)", ""]
    if push_fans:
        sections += [f"Code: {push_fans[0]['code']}.", "", push_fanout.fanout_table(push_fans), ""]
    else:
        sections += ["Not run.", ""]
    return sections


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    poll_cycle.add_arguments(parser)
    parser.set_defaults(sizes=None)
    parser.add_argument("--poll-sizes", type=int, nargs="+", default=list(poll_cycle.SIZES))
    parser.add_argument("--fanout-guilds", type=int, nargs="+", default=list(fanout.SIZES))
    parser.add_argument("--startup-streamers", type=int, default=10_000)
    parser.add_argument("--push-go-lives", type=int, default=push_latency.GO_LIVES)
    parser.add_argument("--push-servers", type=int, nargs="+", default=list(push_fanout.SIZES))
    parser.add_argument("--code-note", help="what code was measured, if not this git checkout")
    parser.add_argument(
        "--from-results", action="store_true", help="write the report from bench/results/*.json, run nothing"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    report = asyncio.run(run_all(args))
    print("\n" + report)
    if not args.no_write:
        (Path(__file__).parent / "RESULTS.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
