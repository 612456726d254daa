"""Unit tests for notifier.Notifier with a recording announcer: exactly-once announcements per subscription."""

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from database import Database
from tests.conftest import build_notifier
from twitch_notifier.core.notifier import announcement_nonce
from twitch_notifier.core.ports import AnnounceError
from twitch_notifier.models import Category, EndAction, LiveStream, Streamer
from twitch_notifier.twitch.models import StreamsSnapshot, TwitchStream

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ALICE = Streamer("1", "alice", "Alice")
BOB = Streamer("2", "bob", "Bob")


def stream(user: Streamer, stream_id: str, title: str = "hi", login: str | None = None) -> TwitchStream:
    return TwitchStream(
        id=stream_id,
        user_id=user.twitch_user_id,
        user_login=login or user.login,
        user_name=(login or user.display_name),
        game_id="1",
        game_name="Game",
        title=title,
        viewer_count=1,
        started_at=T0,
        thumbnail_url="https://x/{width}x{height}.jpg",
    )


def poll(*live: TwitchStream, checked=("1", "2"), failed=()) -> StreamsSnapshot:
    return StreamsSnapshot(
        streams={s.user_id: s for s in live}, checked=frozenset(checked), failed=frozenset(failed), requests=1
    )


class RecordingAnnouncer:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, str]] = []
        self.failures: dict[int, AnnounceError | Exception] = {}
        self.nonces: list[tuple[int, str]] = []
        self.messages: list = []
        self.edits: list = []
        self.deleted: list = []
        self._next_id = 1000

    async def announce(
        self, channel_id: int, stream: LiveStream, streamer: Streamer, *, nonce: str, message=None, guild_id: int = 0
    ) -> int:
        await asyncio.sleep(0)
        self.nonces.append((channel_id, nonce))
        if channel_id in self.failures:
            raise self.failures[channel_id]
        self.sent.append((channel_id, stream.stream_id, streamer.login))
        self.messages.append((channel_id, message))
        self._next_id += 1
        return self._next_id

    async def edit(self, channel_id: int, message_id: int, message, *, guild_id: int = 0) -> None:
        await asyncio.sleep(0)
        if channel_id in self.failures:
            raise self.failures[channel_id]
        self.edits.append((channel_id, message_id, message))

    async def delete(self, channel_id: int, message_id: int, *, guild_id: int = 0) -> None:
        await asyncio.sleep(0)
        if channel_id in self.failures:
            raise self.failures[channel_id]
        self.deleted.append((channel_id, message_id))


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(str(tmp_path / "bot.db"))
    await database.add_subscription(1, 10, ALICE)
    await database.add_subscription(2, 20, ALICE)
    await database.add_subscription(2, 20, BOB)
    yield database
    await database.close()


@pytest.fixture
def announcer():
    return RecordingAnnouncer()


@pytest.fixture
def notifier(db, announcer):
    return build_notifier(db, announcer, offline_after_polls=2)


async def test_went_live_is_announced_once_in_every_following_guild(notifier, announcer):
    report = await notifier.apply(poll(stream(ALICE, "a1")))
    assert sorted(announcer.sent) == [(10, "a1", "alice"), (20, "a1", "alice")]
    assert (report.started, report.announced) == (1, 2)
    await notifier.apply(poll(stream(ALICE, "a1", title="changed")))
    assert len(announcer.sent) == 2


async def test_restart_does_not_announce_again(db, announcer):
    await build_notifier(db, announcer).apply(poll(stream(ALICE, "a1")))
    again = RecordingAnnouncer()
    await build_notifier(db, again).apply(poll(stream(ALICE, "a1")))
    assert again.sent == []


async def test_blink_and_same_stream_id_never_repeat(notifier, announcer):
    await notifier.apply(poll(stream(ALICE, "a1")))
    await notifier.apply(poll())  # absent once: still live
    await notifier.apply(poll(stream(ALICE, "a1")))
    await notifier.apply(poll())
    report = await notifier.apply(poll())  # absent twice: ended
    assert report.ended == 1
    await notifier.apply(poll(stream(ALICE, "a1")))  # Twitch lists the old stream again
    assert len(announcer.sent) == 2


async def test_new_stream_id_is_announced_again(notifier, announcer):
    await notifier.apply(poll(stream(ALICE, "a1")))
    await notifier.apply(poll())
    await notifier.apply(poll())
    await notifier.apply(poll(stream(ALICE, "a2")))
    assert sorted(s[1] for s in announcer.sent) == ["a1", "a1", "a2", "a2"]


async def test_failed_batch_is_unknown_not_offline(db, notifier, announcer):
    await notifier.apply(poll(stream(ALICE, "a1")))
    for _ in range(5):
        await notifier.apply(poll(checked=(), failed=("1", "2")))
    assert "1" in await db.live_streams()
    await notifier.apply(poll(stream(ALICE, "a1")))
    assert len(announcer.sent) == 2


async def test_permanent_failure_is_marked_others_still_posted_and_cleared_later(db, notifier, announcer):
    announcer.failures[10] = AnnounceError("can't post in #alerts: missing Send Messages", permanent=True)
    report = await notifier.apply(poll(stream(ALICE, "a1")))
    assert announcer.sent == [(20, "a1", "alice")]
    assert report.announce_failed == 1
    sub = (await db.find_subscriptions(1, "alice"))[0]
    assert sub.last_error == "can't post in #alerts: missing Send Messages"
    del announcer.failures[10]
    await notifier.apply(poll(stream(ALICE, "a1")))
    assert (10, "a1", "alice") in announcer.sent
    assert (await db.find_subscriptions(1, "alice"))[0].last_error is None


async def test_transient_failure_is_retried_next_cycle(notifier, announcer):
    announcer.failures[20] = AnnounceError("Discord answered 503", permanent=False)
    await notifier.apply(poll(stream(BOB, "b1")))
    assert announcer.sent == []
    del announcer.failures[20]
    await notifier.apply(poll(stream(BOB, "b1")))
    assert announcer.sent == [(20, "b1", "bob")]


async def test_unexpected_error_does_not_stop_the_others(notifier, announcer, caplog):
    announcer.failures[10] = RuntimeError("boom")
    report = await notifier.apply(poll(stream(ALICE, "a1")))
    assert announcer.sent == [(20, "a1", "alice")]
    assert report.errors
    assert "boom" in report.errors[0]
    assert "Unexpected error" in caplog.text


async def test_renames_are_stored(db, notifier):
    await notifier.apply(poll(stream(ALICE, "a1", login="alice_new")))
    assert (await db.find_subscriptions(1, "alice_new"))[0].streamer.twitch_user_id == "1"


async def test_retries_reuse_the_same_nonce_so_discord_can_deduplicate(notifier, announcer):
    announcer.failures[10] = AnnounceError("503", permanent=False)
    await notifier.apply(poll(stream(ALICE, "a1")))
    del announcer.failures[10]
    await notifier.apply(poll(stream(ALICE, "a1")))
    to_10 = [nonce for channel, nonce in announcer.nonces if channel == 10]
    to_20 = [nonce for channel, nonce in announcer.nonces if channel == 20]
    assert len(to_10) == 2
    assert to_10[0] == to_10[1]
    assert to_20
    assert to_20[0] != to_10[0]


async def test_nonce_function():
    from twitch_notifier.models import PendingAnnouncement

    a = announcement_nonce(PendingAnnouncement(1, 1, 10, "1", "stream"))
    assert a == announcement_nonce(PendingAnnouncement(1, 2, 20, "1", "stream"))
    assert a != announcement_nonce(PendingAnnouncement(2, 1, 10, "1", "stream"))
    assert len(a) <= 25


# ------------------------------------------------------------------ the card's life after the announcement


async def test_live_card_is_updated_only_after_the_interval_and_only_when_changed(db, announcer):
    from datetime import timedelta

    now = [T0]
    notifier = build_notifier(db, announcer, clock=lambda: now[0])
    await notifier.apply(poll(stream(BOB, "b1", title="one")))
    [(_, message)] = announcer.messages
    assert message.components[0]["components"][0]["label"] == "Watch stream"
    now[0] = datetime.now(UTC) + timedelta(minutes=6)
    await notifier.apply(poll(stream(BOB, "b1", title="one")))
    assert announcer.edits == []  # nothing changed
    report = await notifier.apply(poll(stream(BOB, "b1", title="two")))
    [(channel, message_id, edited)] = announcer.edits
    assert (channel, message_id, edited.embed["title"], report.cards_updated) == (20, 1001, "two", 1)
    now[0] = datetime.now(UTC) + timedelta(minutes=1)
    await notifier.apply(poll(stream(BOB, "b1", title="three")))
    assert len(announcer.edits) == 1  # within 5 minutes of the last edit


async def test_ended_cards_are_edited_with_the_vod_once(db, announcer):
    lookups = []

    async def vod(user_id: str, stream_id: str) -> str | None:
        lookups.append((user_id, stream_id))
        return "https://www.twitch.tv/videos/1"

    notifier = build_notifier(db, announcer, vod_lookup=vod)
    await notifier.apply(poll(stream(ALICE, "a1")))
    await notifier.apply(poll())
    report = await notifier.apply(poll())
    assert lookups == [("1", "a1")]  # one look-up for both guilds' cards
    assert sorted(channel for channel, _, _ in announcer.edits) == [10, 20]
    assert all(m.embed["url"] == "https://www.twitch.tv/videos/1" for _, _, m in announcer.edits)
    assert report.cards_closed == 2
    await notifier.apply(poll())
    assert len(announcer.edits) == 2


async def test_closing_retries_transient_failures_and_forgets_gone_messages(db, announcer):
    from twitch_notifier.core.ports import MessageGone

    notifier = build_notifier(db, announcer)
    await notifier.apply(poll(stream(ALICE, "a1")))
    announcer.failures[10] = AnnounceError("Discord answered 503", permanent=False)
    announcer.failures[20] = MessageGone()
    await notifier.apply(poll())
    await notifier.apply(poll())
    assert announcer.edits == []
    del announcer.failures[10]
    await notifier.apply(poll())
    assert [channel for channel, _, _ in announcer.edits] == [10]  # retried; the gone one is forgotten
    await notifier.apply(poll())
    assert len(announcer.edits) == 1


async def test_delete_and_keep_per_guild(db, announcer):
    await db.update_guild_settings(1, end_action="delete")
    await db.update_guild_settings(2, end_action="keep")
    notifier = build_notifier(db, announcer)
    await notifier.apply(poll(stream(ALICE, "a1")))
    await notifier.apply(poll())
    await notifier.apply(poll())
    assert [channel for channel, _ in announcer.deleted] == [10]
    assert announcer.edits == []


async def test_a_card_back_in_its_filter_is_drawn_as_posted_with_its_ping_and_button(db, announcer):
    # Before, it was drawn with the configured ping (not the opt-in role it pinged) and without the button.
    carol = Streamer("3", "carol", "Carol")
    await db.add_subscription(3, 30, carol, games=[Category("1", "Game")])
    await db.update_guild_settings(3, filter_exit=EndAction.EDIT, notify_button=True, ping="everyone")
    await db.set_notify_role(3, carol.twitch_user_id, 777)
    notifier = build_notifier(db, announcer)
    in_filter = stream(carol, "c1")
    await notifier.apply(poll(in_filter, checked=("3",)))
    [(_, posted)] = announcer.messages
    assert posted.content.startswith("<@&777> ")
    await db.set_notify_role(3, carol.twitch_user_id, 888)  # the role made again: the card still shows 777
    await notifier.apply(poll(dataclasses.replace(in_filter, game_id="2", game_name="Other"), checked=("3",)))
    [(_, _, left)] = announcer.edits
    assert "no longer Game" in left.content
    await notifier.apply(poll(in_filter, checked=("3",)))
    [_, (_, _, back)] = announcer.edits
    assert back.content == posted.content
    assert back.allowed_mentions == posted.allowed_mentions == {"parse": [], "replied_user": False, "roles": ["777"]}
    assert back.components == posted.components
    assert back.components[0]["components"][1]["custom_id"] == "notify:3"


async def test_retire_closes_the_cards_and_nothing_more_is_posted_or_edited(db, notifier, announcer):
    await notifier.apply(poll(stream(ALICE, "a1")))
    [sub] = [s for s in await db.guild_subscriptions(1)]
    unclosed = await notifier.retire(sub.id)
    assert unclosed == 0
    [(channel, _message_id, ended)] = announcer.edits
    assert (channel, ended.content) == (10, "**Alice** was live on Twitch.")
    await db.remove_subscription_by_id(1, sub.id)
    notifier.removed(sub.id)
    await notifier.apply(poll(stream(ALICE, "a2")))  # a new stream: guild 2 only
    assert [s[0] for s in announcer.sent] == [10, 20, 20]


async def test_a_retired_subscription_is_skipped_by_the_round_already_under_way(db):
    gate, blocked = asyncio.Event(), asyncio.Event()
    slow = RecordingAnnouncer()
    original = slow.announce

    async def announce(channel_id, *args, **kwargs):
        if channel_id == 10:
            blocked.set()
            await gate.wait()
        return await original(channel_id, *args, **kwargs)

    slow.announce = announce
    notifier = build_notifier(db, slow, max_concurrent_sends=1)  # one post at a time: 10 holds the rest
    round_ = asyncio.create_task(notifier.apply(poll(stream(ALICE, "a1"), stream(BOB, "b1"))))
    await asyncio.wait_for(blocked.wait(), 5)
    [alice_in_2] = [s for s in await db.guild_subscriptions(2) if s.streamer == ALICE]
    await notifier.retire(alice_in_2.id)  # queued behind the blocked post: never started
    gate.set()
    await asyncio.wait_for(round_, 5)
    assert sorted(slow.sent) == [(10, "a1", "alice"), (20, "b1", "bob")]


async def test_a_post_given_up_on_that_succeeds_late_is_recorded_and_a_removal_waits_for_it(db):
    # The announcer gives up waiting but leaves the request running (StillRunning): before, a removal went
    # on at once and the late post landed after its reply, unrecorded, its card "live" forever.
    from twitch_notifier.core.ports import StillRunning

    slow = RecordingAnnouncer()
    late: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def announce(channel_id, *args, **kwargs):
        if channel_id == 10:
            raise StillRunning("Discord did not answer within 0.3 s", late)
        return 555

    slow.announce = announce
    notifier = build_notifier(db, slow)
    report = await notifier.apply(poll(stream(ALICE, "a1")))
    assert report.announce_failed == 1
    [alice_in_1] = await db.guild_subscriptions(1)
    removal = asyncio.create_task(notifier.retire(alice_in_1.id))
    await asyncio.sleep(0.05)
    assert not removal.done()  # waits for the request still running
    late.set_result(777)  # Discord answers after all
    assert await asyncio.wait_for(removal, 5) == 0
    [(channel, message_id, ended)] = slow.edits
    assert (channel, message_id) == (10, 777)  # the late post was recorded, then its card closed
    assert "was live" in ended.content


# ------------------------------------------------------------------ announcement rounds beside card rounds


class GatedEdits(RecordingAnnouncer):
    """Edits whose card shows `title` wait for `gate`; `editing` is set when the first one is held."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title
        self.gate = asyncio.Event()
        self.editing = asyncio.Event()
        self.held: list[int] = []  # the channels of the edits held, in order

    async def edit(self, channel_id: int, message_id: int, message, *, guild_id: int = 0) -> None:
        if message.embed and message.embed.get("title") == self.title:
            self.held.append(channel_id)
            self.editing.set()
            await self.gate.wait()
        await super().edit(channel_id, message_id, message, guild_id=guild_id)

    def last_edit(self, channel_id: int):
        return [m for channel, _, m in self.edits if channel == channel_id][-1]


async def test_a_push_go_live_is_announced_while_a_round_of_card_edits_is_under_way(db):
    # Before, the poll's round held the notifier's lock through its edits: a go-live waited for all of them.
    slow = GatedEdits("two")
    notifier = build_notifier(db, slow, update_interval=timedelta(0), max_concurrent_sends=1)
    await notifier.apply(poll(stream(ALICE, "a1")))
    edits_round = asyncio.create_task(notifier.apply(poll(stream(ALICE, "a1", title="two"))))
    await asyncio.wait_for(slow.editing.wait(), 5)  # the poll's card edits hang on Discord
    report = await asyncio.wait_for(notifier.push_online(stream(BOB, "b1")), 5)
    assert (report.announced, slow.sent[-1]) == (1, (20, "b1", "bob"))
    assert not edits_round.done()
    slow.gate.set()
    report = await asyncio.wait_for(edits_round, 5)
    assert report.cards_updated == 2
    await asyncio.wait_for(notifier.settle(), 5)


async def test_a_card_continued_during_a_card_round_is_not_drawn_again_from_its_stale_list(db):
    # The poll's round listed both of alice's cards for an update; alice drops and comes back within the grace
    # before the updates are made: each card ends up "reconnected", never the stale live card after it.
    from twitch_notifier.rendering.filter_cards import RECONNECTED_FOOTER

    slow = GatedEdits("two")
    now = [datetime.now(UTC)]  # the store stamps card edits with the real time
    notifier = build_notifier(
        db,
        slow,
        update_interval=timedelta(0),
        max_concurrent_sends=1,  # one update in Discord, the other waiting its turn with its stale card
        restart_grace=timedelta(minutes=10),
        clock=lambda: now[0],
    )
    await notifier.apply(poll(stream(ALICE, "a1")))
    edits_round = asyncio.create_task(notifier.apply(poll(stream(ALICE, "a1", title="two"))))
    await asyncio.wait_for(slow.editing.wait(), 5)
    await asyncio.wait_for(notifier.push_offline(ALICE.twitch_user_id), 5)
    now[0] += timedelta(minutes=1)
    back = dataclasses.replace(stream(ALICE, "a2", title="three"), started_at=now[0])
    reconnect = asyncio.create_task(notifier.push_online(back))
    await asyncio.sleep(0.1)
    slow.gate.set()
    report = await asyncio.wait_for(edits_round, 5)
    assert (await asyncio.wait_for(reconnect, 5)).cards_updated == 2  # both continued, nothing posted
    await asyncio.wait_for(notifier.settle(), 5)
    assert report.cards_updated == 1  # the other update was skipped: its card had been continued
    assert len(slow.sent) == 2
    for channel in (10, 20):
        card = slow.last_edit(channel)
        assert (card.embed["title"], card.embed["footer"]["text"]) == ("three", RECONNECTED_FOOTER)


async def test_a_subscription_removed_during_a_card_round_stays_skipped_by_it(db):
    # The card round listed the entry's card before the removal closed it; an announcement round between
    # must not unmark the removed entry while that card round can still edit its card back to live.
    slow = GatedEdits("two")
    notifier = build_notifier(db, slow, update_interval=timedelta(0), max_concurrent_sends=1)
    await notifier.apply(poll(stream(ALICE, "a1")))
    edits_round = asyncio.create_task(notifier.apply(poll(stream(ALICE, "a1", title="two"))))
    await asyncio.wait_for(slow.editing.wait(), 5)
    [held] = slow.held  # one update is in Discord; the other one waits for its turn
    guild_id = {10: 2, 20: 1}[held]  # the entry of the update waiting
    [removed] = [s for s in await db.guild_subscriptions(guild_id) if s.streamer == ALICE]
    assert await asyncio.wait_for(notifier.retire(removed.id), 5) == 0
    await db.remove_subscription_by_id(1, removed.id)
    notifier.removed(removed.id)
    await asyncio.wait_for(notifier.push_online(stream(BOB, "b1")), 5)  # an announcement round meanwhile
    slow.gate.set()
    await asyncio.wait_for(edits_round, 5)
    await asyncio.wait_for(notifier.settle(), 5)
    assert "was live" in slow.last_edit(30 - held).content  # closed by the removal, and left so


async def test_a_subscriptions_card_turns_never_overlap_when_one_ends_with_another_waiting(db):
    # Before, the turn's lock was dropped from the table as soon as it was released, though a waiter had been
    # promised it: a third caller then made a fresh lock and ran beside that waiter.
    notifier = build_notifier(db, RecordingAnnouncer())
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    first_in = asyncio.Event()

    async def turn(name: str, hold: asyncio.Event | None = None) -> None:
        async with notifier._card_turn(7, continuing=True):
            inside.append(name)
            if len(inside) > 1:
                overlaps.append(tuple(inside))
            first_in.set()
            if hold is not None:
                await hold.wait()
            else:
                await asyncio.sleep(0.02)  # a Discord call
            inside.remove(name)

    release = asyncio.Event()
    first = asyncio.create_task(turn("first", release))
    await first_in.wait()
    waiter = asyncio.create_task(turn("waiter"))
    await asyncio.sleep(0)  # the waiter queues on the held lock
    release.set()
    await first  # released: the lock is the waiter's now, though it has not run yet
    late = asyncio.create_task(turn("late"))
    await asyncio.gather(waiter, late)
    assert overlaps == []
    assert notifier._card_locks == {}
