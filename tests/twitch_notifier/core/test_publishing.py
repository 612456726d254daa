"""core.publishing: Discord's 10 publishes per hour per channel, kept per channel; the Publisher never exceeds it."""

import asyncio
from datetime import UTC, datetime, timedelta

from twitch_notifier.core.publishing import (
    PUBLISH_LIMIT,
    Publisher,
    PublishOutcome,
    PublishResult,
    after_publish,
    after_refusal,
    allows,
    recent,
)
from twitch_notifier.models import PublishWindow

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHANNEL = 42


def test_ten_publishes_fill_the_hour_and_the_oldest_frees_a_slot():
    window = PublishWindow(CHANNEL)
    for minute in range(PUBLISH_LIMIT):
        assert allows(window, T0 + timedelta(minutes=minute))
        window = after_publish(window, T0 + timedelta(minutes=minute))
    assert not allows(window, T0 + timedelta(minutes=59))
    assert allows(window, T0 + timedelta(minutes=60))  # the first publish has left the hour
    assert len(recent(window, T0 + timedelta(minutes=60))) == PUBLISH_LIMIT - 1


def test_a_refusal_blocks_until_discords_retry_after_and_old_times_are_dropped():
    window = after_publish(PublishWindow(CHANNEL), T0)
    refused = after_refusal(window, T0 + timedelta(minutes=90), 600)
    assert refused.published == ()  # the publish at T0 no longer counts
    assert not allows(refused, T0 + timedelta(minutes=99))
    assert allows(refused, T0 + timedelta(minutes=100))
    # A shorter later refusal never shortens a longer block.
    assert after_refusal(refused, T0 + timedelta(minutes=91), 1).blocked_until == refused.blocked_until


class Store:
    def __init__(self) -> None:
        self.windows: dict[int, PublishWindow] = {}
        self.saves = 0

    async def publish_window(self, channel_id: int) -> PublishWindow:
        await asyncio.sleep(0)  # a real read lets other publishes run meanwhile
        return self.windows.get(channel_id, PublishWindow(channel_id))

    async def save_publish_window(self, window: PublishWindow, *, forget_before: datetime) -> None:
        assert forget_before < T0
        self.saves += 1
        self.windows[window.channel_id] = window


PUBLISHED = PublishOutcome(PublishResult.PUBLISHED)


class Port:
    def __init__(self, outcome: PublishOutcome = PUBLISHED) -> None:
        self.outcome = outcome
        self.calls: list[tuple[int, int, int]] = []

    async def publish(self, channel_id: int, message_id: int, *, guild_id: int) -> PublishOutcome:
        self.calls.append((channel_id, message_id, guild_id))
        await asyncio.sleep(0)
        return self.outcome


async def test_concurrent_publishes_in_one_channel_never_exceed_the_limit():
    store, port, results = Store(), Port(), []
    publisher = Publisher(store, port, clock=lambda: T0, on_result=results.append)
    for message_id in range(12):
        publisher.submit(CHANNEL, message_id, guild_id=1)
    publisher.submit(CHANNEL + 1, 99, guild_id=1)  # another channel has its own budget
    await publisher.wait_idle()
    assert len([c for c in port.calls if c[0] == CHANNEL]) == PUBLISH_LIMIT
    assert (CHANNEL + 1, 99, 1) in port.calls
    assert results.count(PublishResult.PUBLISHED) == PUBLISH_LIMIT + 1
    assert results.count(PublishResult.SKIPPED_LIMIT) == 2


async def test_a_429_is_remembered_and_other_outcomes_change_nothing():
    store = Store()
    limited = Publisher(store, Port(PublishOutcome(PublishResult.RATE_LIMITED, retry_after=120.0)), clock=lambda: T0)
    assert await limited.publish(CHANNEL, 1, guild_id=1) is PublishResult.RATE_LIMITED
    assert store.windows[CHANNEL].blocked_until == T0 + timedelta(seconds=120)
    port = Port()
    assert await Publisher(store, port, clock=lambda: T0).publish(CHANNEL, 2, guild_id=1) is (
        PublishResult.SKIPPED_LIMIT
    )
    assert port.calls == []

    other = Store()
    for outcome in (PublishOutcome(PublishResult.NOT_NEWS), PublishOutcome(PublishResult.FAILED, reason="403")):
        assert await Publisher(other, Port(outcome), clock=lambda: T0).publish(CHANNEL, 3, guild_id=1) is outcome.result
    assert other.saves == 0
