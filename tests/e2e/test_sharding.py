"""The bot sharded, through the real discord.py client against the fake Discord: three shards, commands and
go-lives in the guilds of every shard, SHARD_IDS running only some shards, a 4011 for too few shards, the
READY grace that waits for every shard, and /healthz and /metrics per shard."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import FORGET_ABSENT_GUILDS_AFTER
from tests.e2e.bot_process import BotProcess, bot_environment
from tests.e2e.harness import READY_TIMEOUT, BotHarness, announcements
from tests.fakes.fake_discord import FakeChannel, FakeDiscord, FakeGuild, FakeInteraction, shard_of
from twitch_notifier.discord_io.session import SessionEnd

SHARDS = 3


def guilds_on_every_shard(
    fake: FakeDiscord, per_shard: int = 2, shards: int = SHARDS
) -> list[tuple[FakeGuild, FakeChannel]]:
    """`per_shard` guilds on each of `shards` shards ((guild_id >> 22) % shards), each with an #alerts."""
    world = []
    for shard in range(shards):
        for index in range(per_shard):
            guild = fake.add_guild(f"Shard {shard} guild {index}", shard=(shard, shards))
            assert shard_of(guild.id, shards) == shard
            world.append((guild, fake.add_text_channel(guild.id, "alerts")))
    return world


async def admin_command(fake: FakeDiscord, name: str, options: dict[str, Any], channel: FakeChannel) -> FakeInteraction:
    return await fake.invoke(
        name, options, guild_id=channel.guild_id, channel_id=channel.id, permissions=fake.ADMIN_PERMISSIONS
    )


async def set_up_everywhere(
    harness: BotHarness, world: list[tuple[FakeGuild, FakeChannel]], shards: int = SHARDS
) -> None:
    """/setchannel and /addstreamer shroud in every guild, each answered over its own shard."""
    for guild, channel in world:
        for name, options in (("setchannel", {"channel": channel.id}), ("addstreamer", {"streamer": "shroud"})):
            interaction = await admin_command(harness.discord, name, options, channel)
            reply = await interaction.wait_reply(timeout=READY_TIMEOUT)
            assert interaction.shards == (shard_of(guild.id, shards),), f"/{name} in {guild.name}"
            assert reply.ephemeral
        assert "Now following" in reply.text


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


async def test_three_shards_from_discords_recommendation_answer_and_announce_in_every_shards_guilds(
    harness, fake_discord, fake_twitch
):
    fake_discord.limits.recommended_shards = SHARDS  # GET /gateway/bot: no SHARD_COUNT, so the bot asks
    world = guilds_on_every_shard(fake_discord)
    fake_twitch.add_user("shroud")
    bot = await harness.start()

    assert bot.shard_count == SHARDS
    assert fake_discord.connected_shards == [0, 1, 2]
    assert sorted(p["shard"] for p in fake_discord.identify_payloads) == [[0, 3], [1, 3], [2, 3]]
    assert fake_discord.refused_identifies == []  # one IDENTIFY per bucket per window, as Discord counts them
    # Each session was told of its own shard's guilds only.
    created = Counter(shard for event, shard in fake_discord.dispatched_on if event == "GUILD_CREATE")
    assert created == {0: 2, 1: 2, 2: 2}
    assert {g.id: g.shard_id for g in bot.guilds} == {g.id: shard_of(g.id, SHARDS) for g, _ in world}

    await set_up_everywhere(harness, world)
    fake_twitch.go_live("shroud", title="Live on every shard")
    await harness.poll()
    await harness.poll()  # nothing twice
    for _, channel in world:
        assert [m.embeds[0]["title"] for m in announcements(fake_discord, channel)] == ["Live on every shard"]
    assert len(announcements(fake_discord)) == len(world)

    health = bot.health()
    assert health.healthy, health.reason
    assert health.details["shards"] == [
        {"id": shard, "connected": True, "latency_seconds": health.details["shards"][shard]["latency_seconds"],
         "guilds": 2}
        for shard in range(SHARDS)
    ]  # fmt: skip
    body, _ = harness.bot.metrics.render()
    text = body.decode()
    for shard in map(str, range(SHARDS)):
        assert sample(text, "twitch_notifier_shard_connected", shard=shard) == 1
        assert sample(text, "twitch_notifier_shard_guilds", shard=shard) == 2
    assert sample(text, "twitch_notifier_gateway_session_starts", kind="remaining") == 1000  # read before them
    assert fake_discord.session_starts_remaining == 1000 - SHARDS


async def test_max_concurrency_lets_the_shards_of_different_buckets_identify_together(
    harness, fake_discord, fake_twitch
):
    # A window long enough to see: with max_concurrency 1 three shards would take two windows to start.
    fake_discord.limits.identify_window_seconds = 1.0
    fake_discord.limits.max_concurrency = SHARDS
    fake_discord.limits.recommended_shards = SHARDS
    harness.identify_interval = 1.05
    guilds_on_every_shard(fake_discord, per_shard=1)
    started = time.monotonic()
    await harness.start(wait_first_cycle=False)
    assert time.monotonic() - started < 1.0
    assert fake_discord.connected_shards == [0, 1, 2]
    assert fake_discord.refused_identifies == []


async def test_identifies_of_one_bucket_wait_for_discords_window(harness, fake_discord, fake_twitch):
    fake_discord.limits.identify_window_seconds = 0.3  # max_concurrency 1: one bucket for both shards
    harness.identify_interval = 0.35
    harness.settings = dataclasses.replace(harness.settings, shard_count=2)
    guilds_on_every_shard(fake_discord, per_shard=1, shards=2)
    started = time.monotonic()
    await harness.start(wait_first_cycle=False)
    assert time.monotonic() - started >= 0.3  # shard 1 waited out shard 0's window instead of getting op 9
    assert fake_discord.refused_identifies == []
    assert fake_discord.connected_shards == [0, 1]


async def test_shard_ids_run_only_those_shards_and_leave_the_others_guilds_alone(harness, fake_discord, fake_twitch):
    world = guilds_on_every_shard(fake_discord, per_shard=1)
    by_shard = {shard_of(g.id, SHARDS): (g, c) for g, c in world}
    fake_twitch.add_user("shroud")
    harness.settings = dataclasses.replace(harness.settings, shard_count=SHARDS)
    await harness.start()
    await set_up_everywhere(harness, world)  # the whole bot first: every guild follows shroud
    await harness.stop()

    # The process that runs shards 0 and 2 of 3 only, long after shard 1's guild was last seen by it.
    harness.clock.advance(FORGET_ABSENT_GUILDS_AFTER.total_seconds() + 3600)
    harness.settings = dataclasses.replace(harness.settings, shard_ids=(0, 2))
    identified = len(fake_discord.identify_payloads)
    bot = await harness.start()
    assert [p["shard"] for p in fake_discord.identify_payloads[identified:]] == [[0, 3], [2, 3]]
    assert fake_discord.connected_shards == [0, 2]
    other_guild, other_channel = by_shard[1]
    assert bot.get_guild(other_guild.id) is None
    assert [s.id for s in bot.shard_statuses()] == [0, 2]

    # Commands reach this process for its shards' guilds only; Discord delivers shard 1's to nobody here.
    lost = await admin_command(fake_discord, "streamers", {}, other_channel)
    assert lost.shards == ()
    for shard in (0, 2):
        _, channel = by_shard[shard]
        reply = await (await admin_command(fake_discord, "streamers", {}, channel)).wait_reply()
        assert "shroud" in reply.text

    fake_twitch.go_live("shroud", title="Two of three")
    await harness.poll()
    for shard in (0, 2):
        assert [m.embeds[0]["title"] for m in announcements(fake_discord, by_shard[shard][1])] == ["Two of three"]
    assert announcements(fake_discord, other_channel) == []
    # Shard 1's guild is another process's: not forgotten as "missing from READY", not a deleted channel, not even
    # tried (its pending announcement is left to the process running shard 1), so no error is shown there.
    [kept] = await harness.db.guild_subscriptions(other_guild.id)
    assert kept.channel_id == other_channel.id
    assert kept.last_error is None
    assert [p.guild_id for p in await harness.db.pending_announcements()] == [other_guild.id]
    assert await harness.db.get_announce_channel(other_guild.id) == other_channel.id
    assert lost.callbacks == []


@pytest.mark.allow_error_logs
async def test_too_few_shards_is_an_operator_error_naming_shard_count_not_a_reconnect_loop(
    harness, fake_discord, fake_twitch, error_logs
):
    fake_discord.limits.max_guilds_per_shard = 2  # Discord's is 2,500
    guilds_on_every_shard(fake_discord, per_shard=1)  # three guilds, all on the one shard of SHARD_COUNT=1
    harness.settings = dataclasses.replace(harness.settings, shard_count=1)
    await harness.start(wait_ready=False)
    assert await harness.session_end() is SessionEnd.SHARDING_REQUIRED
    [refused] = fake_discord.refused_identifies
    assert (refused.shard, refused.answer) == ([0, 1], 4011)
    [line] = [r.getMessage() for r in error_logs.records]
    assert "4011" in line
    assert "SHARD_COUNT" in line
    assert "2,500" in line
    await asyncio.sleep(0.3)
    assert len(fake_discord.refused_identifies) == 1  # no second IDENTIFY: nothing retries a 4011
    assert fake_discord.identify_payloads == []
    assert not harness.bot.health().healthy


@pytest.mark.allow_error_logs
async def test_after_a_4011_the_shards_not_yet_launched_spend_no_session_start(harness, fake_discord, fake_twitch):
    fake_discord.limits.max_guilds_per_shard = 1
    guilds_on_every_shard(fake_discord, per_shard=2)  # every shard of three is over the (lowered) cap
    harness.settings = dataclasses.replace(harness.settings, shard_count=SHARDS)
    await harness.start(wait_ready=False)
    assert await harness.session_end() is SessionEnd.SHARDING_REQUIRED
    # Shard 1 was connecting when shard 0's refusal came; shard 2 never identifies.
    assert [(r.shard, r.answer) for r in fake_discord.refused_identifies] == [([0, 3], 4011), ([1, 3], 4011)]
    assert fake_discord.session_starts_remaining == 1000 - 2


@pytest.mark.allow_error_logs
async def test_with_fewer_session_starts_left_than_shards_the_bot_waits_instead_of_identifying(
    harness, fake_discord, fake_twitch, error_logs
):
    fake_discord.limits.session_start_total = 2  # and three shards to start
    fake_discord.limits.session_reset_after_ms = 60_000
    guilds_on_every_shard(fake_discord, per_shard=1)
    harness.settings = dataclasses.replace(harness.settings, shard_count=SHARDS)
    bot = await harness.start(wait_ready=False)
    await harness.wait_for(lambda: bot.gateway_problem is not None, "the bot to see the session start limit")
    health = bot.health()
    assert not health.healthy
    assert health.reason == "waiting 1 min for Discord's session starts to reset (2 left, 3 needed)"
    [line] = [r.getMessage() for r in error_logs.records]
    assert "Discord allows 2 more session starts and this process needs 3" in line
    assert fake_discord.identify_payloads == fake_discord.refused_identifies == []
    await harness.stop()  # the wait ends with the bot


async def test_python_bot_py_stays_up_after_a_4011_instead_of_restarting_into_it(fake_discord, fake_twitch, tmp_path):
    fake_discord.limits.max_guilds_per_shard = 2
    guilds_on_every_shard(fake_discord, per_shard=3, shards=1)  # three guilds for SHARD_COUNT=1
    env = bot_environment(fake_discord, fake_twitch, tmp_path / "bot.db", SHARD_COUNT="1")
    process = await BotProcess(env, tmp_path).start()
    try:
        await process.wait_for_line(r"code 4011 \(Sharding required\).*Set SHARD_COUNT higher")
        await process.wait_for_line(r"Staying up without a Discord connection")
        status, body = await process.get("/healthz")
        assert status == 503
        health = json.loads(body)
        assert health["reason"] == "Discord refused the gateway: 4011 Sharding required (set SHARD_COUNT higher)"
        assert health["shards"] == [{"id": 0, "connected": False, "latency_seconds": None, "guilds": 0}]
        await asyncio.sleep(0.5)
        assert process.process.returncode is None  # alive: no exit for the platform to restart into a loop
        assert len(fake_discord.refused_identifies) == 1
    finally:
        code = await process.terminate()
    assert code == 2
    assert "Traceback" not in process.output


async def test_guilds_missing_from_ready_are_looked_at_only_once_every_shard_is_ready(
    harness, fake_discord, fake_twitch
):
    world = guilds_on_every_shard(fake_discord, per_shard=2)
    fake_twitch.add_user("shroud")
    harness.settings = dataclasses.replace(harness.settings, shard_count=SHARDS)
    await harness.start()
    await set_up_everywhere(harness, world)
    await harness.stop()
    slow = next(g for g, _ in world if shard_of(g.id, SHARDS) == 2)  # on the shard that connects last
    gone = next(g for g, _ in world if shard_of(g.id, SHARDS) == 0)
    gone.bot_joined = False  # removed while the bot was away, so missing from shard 0's READY
    harness.clock.advance(FORGET_ABSENT_GUILDS_AFTER.total_seconds() + 3600)  # both unseen for 14 days

    harness.identify_interval = 0.4  # shard 2 identifies 0.8 s after shard 0: still connecting meanwhile
    bot = await harness.start(wait_ready=False)
    await harness.wait_for(lambda: bot.ready_shards == {0, 1}, "shards 0 and 1 to be ready")
    assert 2 not in fake_discord.connected_shards
    await bot.on_ready()  # as discord.py may dispatch it again: shard 2's guilds are not absent, just not here yet
    assert [s.guild_id for s in await harness.db.guild_subscriptions(slow.id)] == [slow.id]
    assert [s.guild_id for s in await harness.db.guild_subscriptions(gone.id)] == [gone.id]  # not yet either

    await harness.wait_for(lambda: bot.is_ready(), "every shard to be ready")

    async def forgotten() -> bool:
        return await harness.db.guild_subscriptions(gone.id) == []

    await harness.eventually(forgotten, "the guild that removed the bot to be forgotten")
    for guild, _ in world:
        if guild is not gone:
            assert [s.guild_id for s in await harness.db.guild_subscriptions(guild.id)] == [guild.id]


@pytest.mark.allow_error_logs  # discord.py logs its reconnect of the refused shard at ERROR
async def test_healthz_names_the_shard_that_is_down(harness, fake_discord, fake_twitch):
    guilds_on_every_shard(fake_discord, per_shard=1)
    harness.settings = dataclasses.replace(harness.settings, shard_count=SHARDS)
    bot = await harness.start()
    assert bot.health().healthy
    fake_discord.refuse_gateway(1, mode="http")  # shard 1's reconnect fails once
    await fake_discord.disconnect_gateway(4000, shard=1)
    await harness.wait_for(lambda: not bot.health().healthy, "shard 1 to be reported down")
    health = bot.health()
    assert health.reason == "Discord shard 1 not connected (1 of 3)"
    assert [s["connected"] for s in health.details["shards"]] == [True, False, True]
    assert health.details["gateway_connected"] is False
    await harness.wait_for(lambda: bot.health().healthy, "shard 1 to be back", timeout=READY_TIMEOUT)
    assert fake_discord.connected_shards == [0, 1, 2]


async def test_a_token_reset_ends_a_sharded_session_as_an_invalid_token(harness, fake_discord, fake_twitch):
    guilds_on_every_shard(fake_discord, per_shard=1, shards=2)
    harness.settings = dataclasses.replace(harness.settings, shard_count=2)
    await harness.start()
    fake_discord.reset_token()
    await fake_discord.disconnect_gateway(4000, shard=1)  # shard 1 RESUMEs with the old token: 4004
    assert await harness.session_end() is SessionEnd.INVALID_TOKEN
    assert harness.bot.is_closed()
