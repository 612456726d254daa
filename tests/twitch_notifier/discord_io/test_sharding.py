"""Tests for discord_io/sharding.py: Discord's guild-to-shard rule, IDENTIFY pacing per max_concurrency bucket,
and the announcer that leaves the guilds of another process's shards alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from twitch_notifier.core.ports import AnnounceError
from twitch_notifier.discord_io.sharding import (
    IDENTIFY_INTERVAL,
    IDENTIFY_WINDOW,
    IdentifyPacer,
    ShardScopedAnnouncer,
    describe_shard_ids,
    shard_of,
)


def test_a_guild_is_on_shard_of_its_id_shifted_by_22_modulo_the_count() -> None:
    guild_id = 197038439483310086  # Discord's docs use ids like this one
    assert shard_of(guild_id, 1) == 0
    assert shard_of(guild_id, 3) == (guild_id >> 22) % 3
    assert {shard_of(ms << 22, 4) for ms in range(8)} == {0, 1, 2, 3}


def test_the_bot_waits_a_little_more_than_discords_window() -> None:
    assert IDENTIFY_WINDOW == 5.0
    assert IDENTIFY_WINDOW < IDENTIFY_INTERVAL < IDENTIFY_WINDOW + 1


@pytest.mark.parametrize(
    ("ids", "text"), [([0, 1, 2, 3, 8], "0-3,8"), ([5], "5"), ([2, 0], "0,2"), ([], ""), ([1, 2, 4, 5], "1-2,4-5")]
)
def test_shard_ids_are_described_as_ranges(ids: list[int], text: str) -> None:
    assert describe_shard_ids(ids) == text


class FakeTime:
    """A clock that only moves when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds
        await asyncio.sleep(0)


async def test_one_identify_per_bucket_per_interval() -> None:
    clock = FakeTime()
    pacer = IdentifyPacer(5.0, clock=clock, sleep=clock.sleep)
    waited = [await pacer.wait(shard) for shard in range(3)]  # max_concurrency 1: one bucket
    assert waited == [0.0, 5.0, 5.0]
    assert clock.now == 110.0


async def test_buckets_identify_together_and_each_waits_for_its_own() -> None:
    clock = FakeTime()
    pacer = IdentifyPacer(5.0, max_concurrency=4, clock=clock, sleep=clock.sleep)
    assert [await pacer.wait(shard) for shard in range(4)] == [0.0] * 4  # four buckets: nobody waits
    assert await pacer.wait(5) == 5.0  # bucket 1 again
    assert await pacer.wait(4) == 0.0  # bucket 0's last IDENTIFY was 5 s ago
    assert pacer.bucket(13) == 1


async def test_time_already_passed_is_not_waited_again() -> None:
    clock = FakeTime()
    pacer = IdentifyPacer(5.0, clock=clock, sleep=clock.sleep)
    await pacer.wait(0)
    clock.now += 3.0
    assert await pacer.wait(0) == pytest.approx(2.0)
    clock.now += 60.0
    assert await pacer.wait(0) == 0.0  # a reconnect long after needs no pause (discord.py's default sleeps 5 s)


async def test_concurrent_identifies_of_one_bucket_go_one_by_one() -> None:
    clock = FakeTime()
    pacer = IdentifyPacer(5.0, clock=clock, sleep=clock.sleep)
    waited = await asyncio.gather(*(pacer.wait(shard) for shard in (0, 1, 2)))
    assert sorted(waited) == [0.0, 5.0, 5.0]
    assert clock.now == 110.0


async def test_a_new_max_concurrency_keeps_the_last_identify_in_mind() -> None:
    clock = FakeTime()
    pacer = IdentifyPacer(5.0, clock=clock, sleep=clock.sleep)
    await pacer.wait(0)
    pacer.max_concurrency = 2  # as read from session_start_limit at the next connect
    assert await pacer.wait(1) == 5.0  # its bucket is new, but an IDENTIFY went out just now
    pacer.max_concurrency = 0  # Discord never says 0; treated as 1
    assert pacer.max_concurrency == 1


class RecordingAnnouncer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def announce(
        self, channel_id: int, stream: Any, streamer: Any, *, nonce: str, message: Any, guild_id: int
    ) -> int:
        self.calls.append(("announce", guild_id))
        return 42

    async def edit(self, channel_id: int, message_id: int, message: Any, *, guild_id: int) -> None:
        self.calls.append(("edit", guild_id))

    async def delete(self, channel_id: int, message_id: int, *, guild_id: int) -> None:
        self.calls.append(("delete", guild_id))


async def test_the_scoped_announcer_passes_its_shards_guilds_and_refuses_the_others_by_name() -> None:
    inner = RecordingAnnouncer()
    announcer = ShardScopedAnnouncer(inner, shard_count=3, shard_ids=[0, 2])
    mine, theirs = 6 << 22, 7 << 22  # shards 0 and 1 of 3
    assert await announcer.announce(1, None, None, nonce="n", message=None, guild_id=mine) == 42
    await announcer.edit(1, 2, None, guild_id=mine)
    await announcer.delete(1, 2, guild_id=mine)
    for call in (
        announcer.announce(1, None, None, nonce="n", message=None, guild_id=theirs),
        announcer.edit(1, 2, None, guild_id=theirs),
        announcer.delete(1, 2, guild_id=theirs),
    ):
        with pytest.raises(AnnounceError) as refused:
            await call
        assert refused.value.permanent
        assert "shard 1 of 3" in refused.value.reason
        assert "SHARD_IDS=0,2" in refused.value.reason
    assert inner.calls == [("announce", mine), ("edit", mine), ("delete", mine)]
