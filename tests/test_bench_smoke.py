"""The benchmarks at tiny sizes, so they cannot rot: the same processes and fakes (real limits enforced), and
their correctness claims (requests per cycle, constant queries, nothing lost), never their timings."""

import asyncio
import math

from bench import fanout, growth, poll_cycle, startup
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
