"""Several bots on one PostgreSQL database, in this test's process: each runs one shard of three through the real
discord.py client against the fake Discord; one leads (polls Twitch), the others are woken by NOTIFY and post for
their own guilds; every announcement exactly once, before and after the leader goes away.

(tests/e2e/test_cluster.py does the same with `python bot.py` processes and kill -9.)"""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest

from tests.e2e.harness import READY_TIMEOUT, BotHarness, announcements
from tests.e2e.test_sharding import guilds_on_every_shard, set_up_everywhere
from tests.fakes.fake_discord import shard_of

SHARDS = 3


@pytest.fixture
async def cluster(fake_discord, fake_twitch, tmp_path, postgres_url, error_logs):
    """Three harnesses, shard k of 3 each, on one database; all stopped at the end."""
    harnesses = [
        BotHarness(
            fake_discord,
            fake_twitch,
            tmp_path / f"unused-{shard}.db",
            database_url=postgres_url,
            shard_count=SHARDS,
            shard_ids=(shard,),
        )
        for shard in range(SHARDS)
    ]
    yield harnesses
    for harness in harnesses:
        await harness.stop()


def leaders(harnesses: list[BotHarness]) -> list[BotHarness]:
    return [h for h in harnesses if h.bot is not None and h.bot.coordinator.is_leader]


async def start_all(harnesses: list[BotHarness]) -> BotHarness:
    """Start every harness (without waiting for a poll: only the leader polls) and return the leader."""
    for harness in harnesses:
        await harness.start(wait_first_cycle=False)
    await harnesses[0].wait_for(lambda: len(leaders(harnesses)) == 1, "a leader to be elected")
    return leaders(harnesses)[0]


def sent(harness: BotHarness) -> float:
    assert harness.bot is not None
    return harness.bot.metrics.notifications_total.labels(result="sent")._value.get()


async def test_each_process_posts_for_its_own_shard_and_every_guild_gets_one_announcement(
    cluster, fake_discord, fake_twitch
):
    world = guilds_on_every_shard(fake_discord, per_shard=2, shards=SHARDS)
    fake_twitch.add_user("shroud")
    leader = await start_all(cluster)
    await set_up_everywhere(cluster[0], world)  # each interaction reaches the process running its shard

    fake_twitch.go_live("shroud", title="cluster stream")
    await leader.poll()
    await fake_discord.wait_for_messages(len(world), timeout=READY_TIMEOUT)
    await asyncio.sleep(0.5)  # time for a duplicate to show up, if any process were to post one
    posted = Counter(m.channel_id for m in announcements(fake_discord))
    assert posted == Counter({channel.id: 1 for _, channel in world})
    # Each process posted for its own two guilds: the followers were woken by the leader's NOTIFY.
    assert [sent(h) for h in cluster] == [2, 2, 2]
    assert len(leaders(cluster)) == 1
    followers = [h for h in cluster if h is not leader]
    assert all(h.bot is not None and h.bot.poller.cycles == 0 for h in followers)  # only the leader polls Twitch
    health = followers[0].bot.health()
    assert health.details["cluster"]["role"] == "follower"
    assert leader.bot.health().details["cluster"]["role"] == "leader"


async def test_when_the_leader_stops_another_takes_over_and_nothing_is_posted_twice(cluster, fake_discord, fake_twitch):
    world = guilds_on_every_shard(fake_discord, per_shard=1, shards=SHARDS)
    fake_twitch.add_user("shroud")
    fake_twitch.add_user("pokimane")
    leader = await start_all(cluster)
    await set_up_everywhere(cluster[0], world)
    for guild, channel in world:
        interaction = await fake_discord.invoke(
            "addstreamer",
            {"streamer": "pokimane"},
            guild_id=guild.id,
            channel_id=channel.id,
            permissions=fake_discord.ADMIN_PERMISSIONS,
        )
        await interaction.wait_reply(timeout=READY_TIMEOUT)
    fake_twitch.go_live("shroud")
    await leader.poll()
    await fake_discord.wait_for_messages(len(world), timeout=READY_TIMEOUT)

    await leader.stop()  # its locks go with its session
    rest = [h for h in cluster if h is not leader]
    await rest[0].wait_for(lambda: len(leaders(rest)) == 1, "another process to lead")
    new_leader = leaders(rest)[0]
    fake_twitch.go_live("pokimane")
    await new_leader.poll()
    # The stopped process's guild gets pokimane when its shard runs again; the running ones get it now.
    running = [channel for guild, channel in world if shard_of(guild.id, SHARDS) != leader.settings.shard_ids[0]]
    for channel in running:
        await fake_discord.wait_until(
            lambda channel=channel: len(announcements(fake_discord, channel)) == 2, timeout=READY_TIMEOUT
        )
    await leader.start(wait_first_cycle=False)  # the old leader's shard comes back, as a follower
    await fake_discord.wait_for_messages(2 * len(world), timeout=READY_TIMEOUT)
    await asyncio.sleep(0.5)
    assert Counter(m.channel_id for m in announcements(fake_discord)) == Counter(
        {channel.id: 2 for _, channel in world}
    )
    assert leaders(cluster) == [new_leader]


@pytest.mark.allow_error_logs  # the deposed leader says, as an error, that it lost its session and stops
async def test_a_leader_that_loses_its_session_stops_and_another_leads(
    cluster, fake_discord, fake_twitch, postgres_url
):
    world = guilds_on_every_shard(fake_discord, per_shard=1, shards=SHARDS)
    fake_twitch.add_user("shroud")
    leader = await start_all(cluster)
    await set_up_everywhere(cluster[0], world)
    admin = await asyncpg.connect(postgres_url)
    try:
        # What the server does when the leader's machine vanishes from the network: it ends the session.
        shard = leader.settings.shard_ids[0]
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            f"twitch-notifier shards {shard} of {SHARDS}",
        )
    finally:
        await admin.close()
    assert ended == 1
    assert leader.bot is not None
    async with asyncio.timeout(READY_TIMEOUT):  # (the harness's own waits fail when the session ends: here it should)
        while not leader.bot.is_closed():
            await asyncio.sleep(0.01)
    assert leader.bot.fatal_problem == "lost the database session holding the leader lock"
    rest = [h for h in cluster if h is not leader]
    await rest[0].wait_for(lambda: len(leaders(rest)) == 1, "another process to lead")
    fake_twitch.go_live("shroud")
    await leaders(rest)[0].poll()
    running = [channel for guild, channel in world if shard_of(guild.id, SHARDS) != shard]
    for channel in running:
        await fake_discord.wait_until(
            lambda channel=channel: len(announcements(fake_discord, channel)) == 1, timeout=READY_TIMEOUT
        )


async def test_processes_starting_together_take_turns_to_identify(cluster, fake_discord, fake_twitch):
    assert fake_discord.limits.max_concurrency == 1  # one IDENTIFY per window for the whole bot token
    guilds_on_every_shard(fake_discord, per_shard=1, shards=SHARDS)
    await asyncio.gather(*(harness.start(wait_first_cycle=False) for harness in cluster))
    assert sorted(p["shard"] for p in fake_discord.identify_payloads) == [[s, SHARDS] for s in range(SHARDS)]
    assert fake_discord.refused_identifies == []  # no op 9: each waited for the others' turns across processes
