"""How the settings choose this process's shard scope, its share of Discord's global limit and its coordinator."""

import pytest

from config import Settings
from twitch_notifier.app.build import build_coordinator, pacer_rate, shard_scope
from twitch_notifier.cluster.coordinator import PostgresCoordinator, SoloCoordinator
from twitch_notifier.discord_io.pacer import DEFAULT_RATE, DISCORD_GLOBAL_LIMIT
from twitch_notifier.models import ShardScope

URL = "postgresql://bot@127.0.0.1:5432/bot"


def settings(**values) -> Settings:
    return Settings("token", "client", "secret", **values)


def test_a_process_running_every_shard_posts_everywhere_at_the_full_rate():
    for every in (settings(), settings(shard_count=4)):
        assert shard_scope(every) is None
        assert pacer_rate(every) == DEFAULT_RATE


def test_a_process_running_some_shards_posts_for_their_guilds_only():
    scope = shard_scope(settings(shard_count=4, shard_ids=(1, 3)))
    assert scope == ShardScope(4, (1, 3))
    assert all(scope.holds(guild_id) for guild_id in (1 << 22, 3 << 22, (4 + 3) << 22))
    assert not any(scope.holds(guild_id) for guild_id in (0, 2 << 22))


@pytest.mark.parametrize("processes", [2, 3, 5, 10])
def test_the_processes_shares_of_the_global_limit_stay_under_it_with_their_bursts(processes):
    shares = [pacer_rate(settings(shard_count=processes, shard_ids=(shard,))) for shard in range(processes)]
    burst = 1  # each pacer lets one send more through in a second than its rate
    assert sum(rate + burst for rate in shares) <= DEFAULT_RATE < DISCORD_GLOBAL_LIMIT
    assert all(rate >= 1.0 for rate in shares)


def test_sqlite_has_a_solo_coordinator_and_postgresql_one_with_the_process_scope():
    assert isinstance(build_coordinator(settings()), SoloCoordinator)
    coordinator = build_coordinator(settings(database_url=URL, shard_count=3, shard_ids=(2,)))
    assert isinstance(coordinator, PostgresCoordinator)
    assert coordinator.scope == ShardScope(3, (2,))
    assert coordinator.status().role == "starting"  # not started: no locks held yet
    assert coordinator.owner != build_coordinator(settings(database_url=URL)).owner  # one name per process
