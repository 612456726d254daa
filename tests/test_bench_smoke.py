"""The benchmarks at tiny sizes, so they cannot rot: the same processes and fakes (real limits enforced), and
their correctness claims (requests per cycle, constant queries, nothing lost), never their timings."""

import asyncio
import math

import pytest

from bench import fanout, growth, poll_cycle, push_fanout, push_latency, startup
from bench.common import FakeOptions, live_indices

FAST = FakeOptions(twitch_rate_limit=800, twitch_latency=0.005, discord_limits=True)
READY = 0.05  # discord.py's guild_ready_timeout, shortened


async def test_poll_cycle_requests_and_queries_are_ceil_n_over_100_and_constant():
    sizes = (250, 520)
    results = await asyncio.gather(
        *(poll_cycle.measure_poll(n, steady_cycles=1, fakes=FAST, guild_ready_timeout=READY) for n in sizes)
    )
    for result, n in zip(results, sizes, strict=True):
        first, steady = result["cycles"][0], poll_cycle.steady(result)
        assert result["expected_requests"] == math.ceil(n / 100)
        assert first["streams_requests"] == math.ceil(n / 100)
        assert first["users_requests"] == math.ceil(n / 100)  # the start-up name refresh
        assert first["announced"] == len(live_indices(n)) * 5 == first["discord_messages"]
        assert first["announce_failed"] == 0
        for cycle in steady:
            assert cycle["streams_requests"] == math.ceil(n / 100)
            assert cycle["users_requests"] == 0
            assert cycle["announced"] == cycle["discord_messages"] == 0
            assert cycle["checked"] == n
        assert all(c["twitch_429"] == 0 and c["discord_429"] == 0 for c in result["cycles"])
    assert len({c["db_queries"] for r in results for c in poll_cycle.steady(r)}) == 1
    assert poll_cycle.check(results) == []
    assert growth.check(results) == []
    assert "Requests" in growth.growth_table(results)
    assert "ceil(N/100)" in poll_cycle.poll_table(results)


async def test_fanout_posts_every_announcement_once_without_a_429():
    results = await asyncio.gather(
        *(
            fanout.measure_fanout(20, variant, fakes=FAST, guild_ready_timeout=READY)
            for variant in ("paced", "paced+lookup")
        )
    )
    for result in results:
        assert result["messages"] == result["announced"] == 20
        assert result["lost"] == result["duplicates"] == 0
        assert result["global_429"] == result["route_429"] == 0
    assert fanout.check(results) == []
    assert "Msgs/s sustained" in fanout.fanout_table(results)


async def test_startup_reaches_a_first_cycle_and_a_restart_announces_nothing_again():
    fresh, restart = await startup.measure_startup(250, fakes=FAST, guild_ready_timeout=READY)
    for run in (fresh, restart):
        times = [run["since_spawn_s"][name] for name, _ in startup.PHASES]
        assert times == sorted(times)
        # streams + the start-up name refresh, + one batched /helix/games for box art (cached for the restart)
        assert run["twitch_requests"] == 2 * math.ceil(250 / 100) + (run is fresh)
        assert run["twitch_429"] == 0
    assert fresh["announced"] == len(live_indices(250)) * 5
    assert restart["announced"] == 0
    assert "first cycle done" in startup.startup_table([fresh, restart])


async def test_push_latency_announces_each_go_live_once_and_prints_both_latencies():
    result = await push_latency.measure_push_latency(5, gap=0.02, fakes=FAST)
    assert result["announced"] == result["exactly_once"] == result["pushed_online"] == 5
    assert result["lost"] == result["duplicates"] == 0
    assert result["global_429"] == result["route_429"] == result["twitch_429"] == 0
    assert result["end_to_end"]["count"] == result["bot_histogram"]["count"] == result["histogram"]["count"] == 5
    assert result["stages"]["total"]["count"] == 5
    assert result["poll_cycles"] == 1  # the start-up cycle only: every announcement was push's
    assert result["errors"] == []
    assert push_latency.correctness(result) == []
    text = push_latency.report(result)
    for line in ("Commit: ", "end to end: stream_online called -> POST at Discord", "Targets: end to end: p50"):
        assert line in text
    assert f"bot: {push_latency.HISTOGRAM} (received -> POST answered) |     5 |" in text
    assert "p50 ms | p90 ms | p99 ms | max ms" in text


async def test_push_fanout_posts_every_announcement_once_without_a_429():
    [result] = await push_fanout.run([20])
    assert result["complete"]
    assert result["announced"] == result["exactly_once"] == 20
    assert result["lost"] == result["duplicates"] == 0
    assert result["global_429"] == result["route_429"] == 0
    # One go-live, one alert: the histogram times its first post (the others wait for Discord's limit).
    assert result["bot_histogram"]["count"] == result["histogram"]["count"] == 1
    assert result["errors"] == []
    assert push_fanout.check([result]) == []
    text = push_fanout.report([result])
    assert "Commit: " in text
    assert "| Servers | First POST ms | All posted after s | Msgs/s sustained |" in text
    assert "Targets (every server exactly once, 0 × 429, >= 45 msgs/s): all met" in text


async def test_shard_memory_caches_every_guild_on_every_shard_and_prints_rss_per_1k_guilds():
    from bench import shard_memory

    [result] = await shard_memory.run([60], shards=3)
    assert result["cached"] == 60
    assert result["shards"] == result["fake_identifies"] == 3
    assert sum(result["shard_guilds"]) == 60
    assert result["channels"] == 60 * (1 + shard_memory.TEXT_CHANNELS + shard_memory.VOICE_CHANNELS)
    assert result["members"] == 60  # the bot's own member only: the member cache is off
    assert result["rss_after_mb"] > 0
    assert result["rss_before_mb"] > 0
    assert shard_memory.check([result]) == []
    text = shard_memory.report([result])
    assert "Commit: " in text
    assert "| Guilds | Shards | Channels | RSS before MB | RSS after MB | Per 1k guilds MB |" in text
    assert "all met" in text


async def test_stats_bench_draws_only_when_asked_and_measures_the_history():
    from bench import stats

    result = await stats.measure(streams=40, others=1)
    fixture, bot = result["fixture"], result["bot"]
    assert fixture["main_streams"] == 40
    assert 0 < fixture["bytes_per_stream_hour"] < fixture["raw_bytes_per_stream_hour"]
    assert bot["matplotlib_loaded_before"] is False  # a bot that has not drawn has not loaded it
    first, _, cached, server = bot["asks"]
    assert cached["png_bytes"] == first["png_bytes"]  # the hour's cache
    assert all(ask["size"] == "1200x800" for ask in bot["asks"])
    assert server["png_bytes"] > 0
    text = stats.report(result)
    for line in ("bytes per stream-hour", "Bot RSS before the first chart", "first chart (streamer, all)"):
        assert line in text


@pytest.mark.cluster
async def test_cluster_fanout_posts_every_server_once_over_two_processes_and_fails_over():
    from bench import cluster_fanout

    [result] = await cluster_fanout.run([40], processes=2)
    assert result["plan"] == [[0], [1]]
    assert result["messages"] == 40
    assert result["duplicates"] == result["missing"] == 0
    assert result["per_process_messages"] == [20, 20]  # each process its own shard's servers
    assert result["misposted"] == 0
    assert result["late_announced"] == result["late_expected"] > 0  # the new leader polled and it was posted
    assert all(rss > 0 for rss in result["rss_ready_mb"] + result["rss_after_mb"])
    assert cluster_fanout.check([result]) == []
    text = cluster_fanout.report([result])
    assert "Commit: " in text
    assert "| Servers | Processes | Shards | Posted in s | Msgs/s sustained |" in text
    assert "| Servers | Process | SHARD_IDS | Role" in text
    assert "Checks (every server once, by its own shards' process; a new leader within 30 s" in text
    assert "announces): all met" in text
