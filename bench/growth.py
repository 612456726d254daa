"""Benchmark 4 — growth: how a steady poll cycle's cost grows from 1,000 to 10,000 to 100,000 streamers.

    .venv/bin/python -m bench.growth                          # runs the poll-cycle benchmark (about 8 minutes)
    .venv/bin/python -m bench.growth --from bench/results/poll_cycle.json   # tables from its last run

Requests must grow exactly as ceil(N/100) and CPU per streamer must stay flat: a step that grew faster than
N (quadratic) would show as a rising µs/streamer column.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

from bench import poll_cycle
from bench.common import machine_line, save_json, table

STEPS = (
    ("db: monitored ids", "DB ids"),
    ("twitch: get_streams", "get_streams"),
    ("notifier: apply (reconcile, store, announce)", "apply"),
)


def growth_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in sorted(results, key=lambda r: r["streamers"]):
        cycles = poll_cycle.steady(r)
        n = r["streamers"]
        cpu = statistics.mean(c["cpu_s"] for c in cycles)
        rows.append(
            {
                "streamers": n,
                "requests": statistics.mean(c["streams_requests"] for c in cycles),
                "db_queries": statistics.mean(c["db_queries"] for c in cycles),
                "cpu_s": cpu,
                "cpu_us_per_streamer": 1e6 * cpu / n,
                "steps_us_per_streamer": {
                    label: 1e6 * statistics.mean(c["steps"].get(step, {}).get("cpu_s", 0.0) for c in cycles) / n
                    for step, label in STEPS
                },
                "wall_s": statistics.mean(c["wall_s"] for c in cycles),
                "peak_rss_mb": r["peak_rss_mb"],
            }
        )
    return rows


def growth_table(results: list[dict[str, Any]]) -> str:
    rows = growth_rows(results)
    base = rows[0] if rows else None
    out = []
    for row in rows:
        assert base is not None
        out.append(
            (
                row["streamers"],
                f"×{row['streamers'] / base['streamers']:g}",
                row["requests"],
                f"×{row['requests'] / base['requests']:g}",
                row["db_queries"],
                row["cpu_s"],
                f"×{row['cpu_s'] / base['cpu_s']:.1f}",
                row["cpu_us_per_streamer"],
                *(row["steps_us_per_streamer"][label] for _, label in STEPS),
                row["wall_s"],
                row["peak_rss_mb"],
            )
        )
    headers = (
        "Streamers",
        "N growth",
        "Requests",
        "Req growth",
        "DB queries",
        "CPU s/cycle",
        "CPU growth",
        "CPU µs/streamer",
        *(f"{label} µs/str" for _, label in STEPS),
        "Wall s",
        "Peak RSS MB",
    )
    return "Steady cycles (mean of the measured ones):\n\n" + table(headers, out)


def check(results: list[dict[str, Any]]) -> list[str]:
    rows = growth_rows(results)
    misses = []
    if len({row["db_queries"] for row in rows}) > 1:
        misses.append("DB queries per cycle change with N")
    if rows and rows[-1]["cpu_us_per_streamer"] > 2 * min(row["cpu_us_per_streamer"] for row in rows):
        misses.append("CPU per streamer more than doubles across sizes (super-linear)")
    return misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    poll_cycle.add_arguments(parser)
    parser.add_argument("--from", dest="source", help="read poll-cycle results (JSON) instead of running")
    args = parser.parse_args()
    if args.source:
        results = json.loads(Path(args.source).read_text())["data"]
    else:
        results = asyncio.run(poll_cycle.run(args.sizes, args))
        save_json("poll_cycle", results)
    print(f"\nGrowth — {machine_line()}\n")
    print(growth_table(results))
    misses = check(results)
    print("\nTargets: " + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
