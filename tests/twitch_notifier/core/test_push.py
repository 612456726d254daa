"""Unit tests for core.push.PushHandler over the real Notifier and store: a pushed go-live announced at
once and exactly once (redeliveries, a second message id, the poll catching up), an offline ending the
stream at once, stale and replayed messages dropped, Twitch's channel look-up bounded."""

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from database import Database
from tests.conftest import build_notifier
from tests.twitch_notifier.core.test_notifier import ALICE, BOB, RecordingAnnouncer, poll, stream
from twitch_notifier.core.notifier import PUSH_LISTING_GRACE
from twitch_notifier.core.push import PushHandler, live_thumbnail_url
from twitch_notifier.twitch.errors import TwitchUnavailable
from twitch_notifier.twitch.eventsub import (
    ChannelInfo,
    ChannelUpdate,
    EventSubSubscription,
    Metadata,
    Notification,
    Revocation,
    StreamOffline,
    StreamOnline,
)

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SUB = EventSubSubscription("s1", "stream.online", "1", "enabled", "1", "conduit", "c1", 1)


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(seconds=5)

    def __call__(self) -> datetime:
        return self.now


class Channels:
    """GET /helix/channels as the handler sees it: answers, fails or hangs on demand."""

    def __init__(self) -> None:
        self.info = {"1": ChannelInfo("1", "alice", "Alice", "Speedruns", "33", "Celeste")}
        self.error: Exception | None = None
        self.hang = False
        self.calls = 0

    async def __call__(self, ids: list[str]) -> list[ChannelInfo]:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.error is not None:
            raise self.error
        return [self.info[i] for i in ids if i in self.info]


def online(
    stream_id: str = "a1", message_id: str = "m1", *, sent: datetime = T0, started: datetime = T0
) -> Notification:
    event = StreamOnline("1", "alice", "Alice", stream_id, "live", started)
    return Notification(Metadata(message_id, "notification", sent, "stream.online", "1"), SUB, event)


def offline(message_id: str = "off1", *, sent: datetime = T0 + timedelta(minutes=30)) -> Notification:
    sub = dataclasses.replace(SUB, type="stream.offline")
    return Notification(Metadata(message_id, "notification", sent), sub, StreamOffline("1", "alice", "Alice"))


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(str(tmp_path / "bot.db"))
    await database.add_subscription(1, 10, ALICE)
    await database.add_subscription(2, 20, ALICE)
    await database.add_subscription(2, 20, BOB)
    yield database
    await database.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def announcer():
    return RecordingAnnouncer()


@pytest.fixture
async def notifier(db, announcer, clock):
    notifier = build_notifier(db, announcer, offline_after_polls=2, clock=clock)
    yield notifier
    await notifier.stop()  # before the store closes under a background card round


@pytest.fixture
def channels():
    return Channels()


@pytest.fixture
def latencies():
    return []


@pytest.fixture
def handler(notifier, channels, clock, latencies):
    return PushHandler(
        notifier,
        channels,
        clock=clock,
        on_announced=lambda count, first: latencies.append(first),
        channel_lookup_timeout=0.2,
        recheck_delay=0,
    )


async def test_a_go_live_is_announced_at_once_everywhere_with_the_channel_title(handler, announcer, db, latencies):
    await handler.handle(online())
    assert sorted(announcer.sent) == [(10, "a1", "alice"), (20, "a1", "alice")]
    live = (await db.live_streams())["1"]
    assert (live.title, live.game_name, live.game_id, live.viewer_count) == ("Speedruns", "Celeste", "33", 0)
    assert live.thumbnail_url == live_thumbnail_url("alice")
    assert live.started_at == T0
    assert len(latencies) == 1  # one alert: the latency of its first post (a fan-out's others wait for Discord)
    assert 0 <= latencies[0] < 5
    assert (handler.stats.online, handler.stats.announced) == (1, 2)


async def test_the_same_message_twice_and_a_second_message_id_announce_once(handler, announcer):
    await handler.handle(online(message_id="m1"))
    await handler.handle(online(message_id="m1"))  # Twitch's documented resend: same id
    await handler.handle(online(message_id="m2"))  # observed: the same event under a new id
    assert len(announcer.sent) == 2
    assert handler.stats.duplicates == 1


async def test_a_message_older_than_ten_minutes_is_dropped(handler, announcer, clock):
    clock.now = T0 + timedelta(minutes=11)
    await handler.handle(online(sent=T0))
    assert announcer.sent == []
    assert handler.stats.stale == 1


async def test_the_poll_finds_a_pushed_stream_announced_and_does_not_post_again(handler, notifier, announcer):
    await handler.handle(online())
    await notifier.apply(poll(stream(ALICE, "a1")))
    assert len(announcer.sent) == 2


async def test_a_poll_that_does_not_list_the_pushed_stream_yet_does_not_end_it(handler, notifier, db, clock):
    await handler.handle(online())
    for _ in range(4):  # four polls without it, within the listing's lag: still live
        await notifier.apply(poll())
    assert (await db.live_streams())["1"].stream_id == "a1"
    clock.now += PUSH_LISTING_GRACE + timedelta(seconds=1)
    await notifier.apply(poll())
    await notifier.apply(poll())  # past the grace, the usual two misses end it
    assert "1" not in await db.live_streams()


async def test_a_listing_still_showing_the_previous_stream_does_not_undo_the_push(handler, notifier, announcer, db):
    await notifier.apply(poll(stream(ALICE, "a0")))  # an earlier stream, announced by the poll
    announcer.sent.clear()
    started = T0 + timedelta(minutes=1)
    await handler.handle(online("a1", started=started, sent=started))
    assert [s[1] for s in announcer.sent] == ["a1", "a1"]
    await notifier.apply(poll(stream(ALICE, "a0")))  # the lagging listing: the old stream, a0
    assert (await db.live_streams())["1"].stream_id == "a1"
    assert len(announcer.sent) == 2


async def test_offline_ends_the_stream_at_once_and_the_card_is_closed(handler, notifier, announcer, db):
    await handler.handle(online())
    await handler.handle(offline())
    assert "1" not in await db.live_streams()
    await notifier.settle()  # the cards follow in a background round, not holding up the next push
    assert len(announcer.edits) == 2  # both cards became "was live" cards, no poll needed
    assert await db.cards_to_close() == []


async def test_after_an_offline_the_listing_and_a_late_go_live_of_that_stream_change_nothing(
    handler, notifier, announcer, db
):
    await handler.handle(online())
    await handler.handle(offline())
    await notifier.apply(poll(stream(ALICE, "a1")))  # the listing still shows the ended stream
    await handler.handle(online(message_id="late"))  # a go-live redelivered late
    assert "1" not in await db.live_streams()
    assert len(announcer.sent) == 2


async def test_an_offline_sent_before_the_current_stream_began_is_ignored(handler, db):
    await handler.handle(online("a2", started=T0 + timedelta(minutes=5), sent=T0 + timedelta(minutes=5)))
    await handler.handle(offline(sent=T0 + timedelta(minutes=4)))  # late: it was about the stream before
    assert (await db.live_streams())["1"].stream_id == "a2"


async def test_channel_update_changes_the_live_stream_and_is_remembered(handler, channels, db, announcer):
    await handler.handle(online())
    update = ChannelUpdate("1", "alice", "Alice", "Any% attempts", "44", "Hollow Knight")
    sub = dataclasses.replace(SUB, type="channel.update", version="2")
    await handler.handle(Notification(Metadata("u1", "notification", T0), sub, update))
    live = (await db.live_streams())["1"]
    assert (live.title, live.game_name) == ("Any% attempts", "Hollow Knight")
    # Twitch's channel look-up failing at the next go-live: the last channel.update stands in.
    await handler.handle(offline())
    channels.error = TwitchUnavailable("down")
    await handler.handle(online("a2", "m9", started=T0 + timedelta(hours=1), sent=T0))
    assert (await db.live_streams())["1"].title == "Any% attempts"


async def test_a_hanging_channel_lookup_does_not_hold_the_announcement(handler, channels, announcer, db):
    channels.hang = True
    await asyncio.wait_for(handler.handle(online()), timeout=5)  # bounded by channel_lookup_timeout
    assert len(announcer.sent) == 2
    assert (await db.live_streams())["1"].title == ""


async def test_revocation_goes_to_the_sink_and_unknown_types_are_ignored(handler, announcer):
    revoked = []

    async def sink(subscription):
        revoked.append(subscription)

    handler.on_revocation = sink
    gone = dataclasses.replace(SUB, status="user_removed")
    await handler.handle(Revocation(Metadata("r1", "revocation", T0), gone))
    assert revoked == [gone]
    other = dataclasses.replace(SUB, type="channel.follow", version="2")
    await handler.handle(Notification(Metadata("x1", "notification", T0), other, None))
    assert handler.stats.ignored == 1
    assert announcer.sent == []


async def test_when_the_lookup_fails_the_seeded_channel_is_shown_then_corrected(handler, channels, db, announcer):
    assert handler.unknown(["1", "2"]) == ["1", "2"]
    await handler.seed(["1"])
    assert handler.unknown(["1", "2"]) == ["2"]
    handler._recheck_delay = 0.3  # Twitch is still down for a moment after the go-live
    channels.error = TwitchUnavailable("Twitch is down")
    channels.info["1"] = ChannelInfo("1", "alice", "Alice", "Changed just before going live", "33", "Celeste")
    await handler.handle(online())
    assert len(announcer.sent) == 2
    assert (await db.live_streams())["1"].title == "Speedruns"  # what was known: better than nothing
    channels.error = None
    await asyncio.gather(*handler._checks)  # Twitch is asked again: the live stream takes the real title
    assert (await db.live_streams())["1"].title == "Changed just before going live"


async def test_a_current_lookup_wins_over_what_was_seeded(handler, channels, db):
    await handler.seed(["1"])
    channels.info["1"] = ChannelInfo("1", "alice", "Alice", "Set right before going live", "33", "Celeste")
    await handler.handle(online())
    assert (await db.live_streams())["1"].title == "Set right before going live"
    assert not handler._checks  # nothing to correct


async def test_a_restart_does_not_end_a_pushed_stream_the_listing_has_not_shown_yet(handler, db, clock):
    await handler.handle(online())
    restarted = build_notifier(db, RecordingAnnouncer(), offline_after_polls=2, clock=clock)
    for _ in range(3):
        await restarted.apply(poll())
    assert (await db.live_streams())["1"].stream_id == "a1"
    await restarted.apply(poll(stream(ALICE, "a1")))  # the listing catches up: the mark is cleared
    assert (await db.live_streams())["1"].pushed_at is None
