"""Tests for eventsub/sync.py: SubscriptionSync against the fake Twitch (a real TwitchClient over HTTP), a
real Database as its store (streamers followed with add_subscription) and a real ConduitKeeper.

Each test calls `sync.sync()` directly (one pass); `request(full=True)` makes the next one a full pass that
reads the whole listing. Facts §5 (subscriptions, 409, 429, cost) and §10.7-8 (reconcile, budget)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from database import Database
from tests.fakes.fake_eventsub import Subscription as FakeSubscription
from tests.fakes.fake_twitch import FakeTwitch, FakeUser
from twitch_api import TwitchClient
from twitch_notifier.eventsub.conduit import CONDUIT_STATE_KEY, ConduitKeeper, ConduitLost
from twitch_notifier.eventsub.sync import POLL_ONLY, SubscriptionSync
from twitch_notifier.models import Streamer
from twitch_notifier.twitch.errors import TwitchError
from twitch_notifier.twitch.eventsub import WANTED_TYPES, EventSubSubscription

CALLBACK = "https://bot.example.com/eventsub"
SECRET = "0123456789-webhook-secret"
SUBSCRIPTIONS = "/helix/eventsub/subscriptions"
EMPTY_LISTING = {"data": [], "total": 0, "total_cost": 0, "max_total_cost": 10_000, "pagination": {}}
"""A listing that lags behind the creates (§5: `total` is approximate; a create may not show yet)."""


class FakeTime:
    """The clock of the fake Twitch and of the client; the client's sleeps advance it instead of waiting."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class World:
    fake: FakeTwitch
    twitch: TwitchClient
    db: Database
    keeper: ConduitKeeper
    sync: SubscriptionSync
    clock: FakeTime

    async def follow(self, *logins: str, guild_id: int = 1) -> list[FakeUser]:
        """Twitch users that a guild follows (one subscription row each)."""
        users = []
        for login in logins:
            user = self.fake.add_user(login)
            await self.db.add_subscription(guild_id, 10, Streamer(user.id, user.login, user.display_name))
            users.append(user)
        return users

    async def unfollow(self, user: FakeUser, guild_id: int = 1) -> None:
        [sub] = await self.db.find_subscriptions(guild_id, user.id)
        await self.db.remove_subscription_by_id(guild_id, sub.id)

    def restarted(self) -> SubscriptionSync:
        """A new process on the same database: a new keeper and sync, the same Twitch."""
        self.keeper = ConduitKeeper(self.twitch, self.db, shard_count=1)
        self.sync = SubscriptionSync(self.twitch, self.db, self.keeper)
        return self.sync

    def on(self, conduit_id: str | None = None, *, status: str | None = "enabled") -> list[FakeSubscription]:
        """The fake's subscriptions on a conduit (ours by default), oldest first."""
        wanted = conduit_id or self.keeper.conduit_id
        return [
            s
            for s in self.fake.eventsub.subscriptions.values()
            if s.method == "conduit"
            and s.transport.get("conduit_id") == wanted
            and (status is None or s.status == status)
        ]

    def kinds(self, conduit_id: str | None = None) -> list[tuple[str, str, str]]:
        return sorted((s.type, s.version, s.broadcaster_user_id or "") for s in self.on(conduit_id))

    def posts(self) -> int:
        return sum(1 for r in self.fake.requests_to(SUBSCRIPTIONS) if r.method == "POST")

    def deletes(self) -> int:
        return sum(1 for r in self.fake.requests_to(SUBSCRIPTIONS) if r.method == "DELETE")

    def listings(self) -> int:
        return sum(1 for r in self.fake.requests_to(SUBSCRIPTIONS) if r.method == "GET")

    def sub_of(self, user: FakeUser, sub_type: str = "stream.online") -> FakeSubscription:
        [sub] = [s for s in self.on() if s.type == sub_type and s.broadcaster_user_id == user.id]
        return sub

    def plant(self, user: FakeUser, sub_type: str, version: str, *, conduit_id: str | None = None) -> FakeSubscription:
        """Put a subscription straight into the fake: what an earlier create that timed out but went
        through leaves behind (Twitch's 409 would refuse it through the API)."""
        sub = FakeSubscription(
            id=str(uuid.uuid4()),
            type=sub_type,
            version=version,
            condition={"broadcaster_user_id": user.id},
            transport={"method": "conduit", "conduit_id": conduit_id or self.keeper.conduit_id or ""},
            cost=1,
            created_at=self.fake.clock(),
        )
        self.fake.eventsub.subscriptions[sub.id] = sub
        self.fake.eventsub._by_key.setdefault((sub_type, user.id), []).append(sub)
        return sub


def wanted_kinds(users: Iterable[FakeUser]) -> list[tuple[str, str, str]]:
    return sorted((t, v, u.id) for u in users for (t, v) in WANTED_TYPES)


def as_subscription(sub: FakeSubscription) -> EventSubSubscription:
    """The fake's subscription as a revocation message carries it (what PushHandler hands to revoked())."""
    return EventSubSubscription(
        id=sub.id,
        type=sub.type,
        version=sub.version,
        status=sub.status,
        broadcaster_user_id=sub.broadcaster_user_id or "",
        method=sub.method,
        conduit_id=sub.transport.get("conduit_id", ""),
        cost=sub.cost,
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeTime()
    async with FakeTwitch(clock=clock) as fake:
        fake.eventsub.auto_verify_webhooks = False
        db = await Database.open(str(tmp_path / "bot.db"))
        async with TwitchClient(
            fake.client_id,
            fake.client_secret,
            api_base=fake.api_base,
            auth_base=fake.auth_base,
            clock=clock,
            sleep=clock.sleep,
        ) as twitch:
            keeper = ConduitKeeper(twitch, db, shard_count=1)
            sync = SubscriptionSync(twitch, db, keeper)
            try:
                yield World(fake, twitch, db, keeper, sync, clock)
            finally:
                await db.close()


# ------------------------------------------------------------------------------------------- full passes


async def test_the_first_pass_creates_three_subscriptions_per_streamer(world: World) -> None:
    users = await world.follow("alpha", "bravo", "charlie")
    summary = await world.sync.sync()

    conduit_id = world.keeper.conduit_id
    assert conduit_id is not None
    assert await world.db.get_state(CONDUIT_STATE_KEY) == conduit_id
    assert world.kinds() == wanted_kinds(users)
    assert all(s.status == "enabled" for s in world.on(status=None))
    assert (world.listings(), world.posts(), world.deletes()) == (1, 9, 0)
    assert (summary.pushed, summary.poll_only, summary.revoked) == (3, 0, {})
    assert (summary.total_cost, summary.max_total_cost, summary.synced) == (9, 10_000, True)
    assert summary.by_status == {"enabled": 9}
    assert all(world.sync.push_covers(u.id) for u in users)
    assert not world.sync.push_covers("123")
    assert await world.db.push_states() == {}
    assert world.sync.passes == 1
    assert world.sync.synced.is_set()
    assert world.sync.summary() == summary


async def test_a_second_pass_creates_nothing(world: World) -> None:
    users = await world.follow("alpha", "bravo")
    await world.sync.sync()
    before = set(world.fake.eventsub.subscriptions)
    requests = len(world.fake.requests)

    await world.sync.sync()  # a quick pass: nothing changed, so not even the listing is read
    assert len(world.fake.requests) == requests
    world.sync.request(full=True)
    summary = await world.sync.sync()
    assert (world.listings(), world.posts(), world.deletes()) == (2, 6, 0)
    assert set(world.fake.eventsub.subscriptions) == before
    assert summary.pushed == len(users)


async def test_a_restart_finds_everything_in_place(world: World) -> None:
    users = await world.follow("alpha", "bravo")
    await world.sync.sync()
    conduit_id = world.keeper.conduit_id
    before = set(world.fake.eventsub.subscriptions)

    sync = world.restarted()
    summary = await sync.sync()
    assert world.keeper.conduit_id == conduit_id
    assert set(world.fake.eventsub.subscriptions) == before
    assert (world.listings(), world.posts()) == (2, 6)
    assert len(world.fake.eventsub.conduits) == 1
    assert summary.pushed == len(users)


async def test_a_quick_pass_subscribes_a_new_streamer_without_reading_the_listing(world: World) -> None:
    [alpha] = await world.follow("alpha")
    await world.sync.sync()
    [bravo] = await world.follow("bravo")
    world.sync.request()
    await world.sync.sync()
    assert world.kinds() == wanted_kinds([alpha, bravo])
    assert (world.listings(), world.posts()) == (1, 6)
    assert world.sync.push_covers(bravo.id)


async def test_a_409_is_taken_as_present_and_read_back_by_the_next_full_pass(world: World) -> None:
    alpha, bravo = await world.follow("alpha", "bravo")
    await world.keeper.ensure()
    existing = world.plant(alpha, "stream.online", "1")
    world.fake.fail_next(SUBSCRIPTIONS, 200, body=EMPTY_LISTING)  # the listing does not show it yet

    await world.sync.sync()  # no error
    assert [r.status for r in world.fake.requests_to(SUBSCRIPTIONS) if r.method == "POST"].count(409) == 1
    assert len([s for s in world.on() if s.type == "stream.online" and s.broadcaster_user_id == alpha.id]) == 1

    await world.sync.sync()  # the 409 asked for a full pass, which learns the subscription's id
    assert world.listings() == 2
    assert world.sync.push_covers(alpha.id)
    assert world.sub_of(alpha).id == existing.id
    assert world.kinds() == wanted_kinds([alpha, bravo])
    assert await world.db.push_states() == {}
    assert world.sync.summary().poll_only == 0


async def test_dead_subscriptions_are_deleted_and_created_again(world: World) -> None:
    alpha, bravo, charlie = await world.follow("alpha", "bravo", "charlie")
    await world.sync.sync()
    dead = [
        world.sub_of(alpha, "stream.online"),
        world.sub_of(bravo, "stream.offline"),
        world.sub_of(charlie, "channel.update"),
    ]
    world.fake.eventsub.revoke(dead[0], "notification_failures_exceeded")
    world.fake.eventsub.revoke(dead[1], "authorization_revoked")
    world.fake.eventsub.revoke(dead[2], "version_removed")

    world.sync.request(full=True)
    summary = await world.sync.sync()
    assert not {s.id for s in dead} & set(world.fake.eventsub.subscriptions)  # deleted at Twitch
    assert world.kinds() == wanted_kinds([alpha, bravo, charlie])  # and created again
    assert [s.status for s in world.on(status=None)] == ["enabled"] * 9
    assert (world.posts(), world.deletes()) == (9 + 3, 3)
    assert summary.pushed == 3
    assert await world.db.push_states() == {}


async def test_a_removed_user_is_not_subscribed_again(world: World) -> None:
    alpha, bravo = await world.follow("alpha", "bravo")
    await world.sync.sync()
    for sub in world.on():
        if sub.broadcaster_user_id == alpha.id:
            world.fake.eventsub.revoke(sub, "user_removed")
    world.fake.remove_user(alpha.id)  # banned or deleted

    world.sync.request(full=True)
    summary = await world.sync.sync()
    assert world.kinds() == wanted_kinds([bravo])  # alpha's three are deleted, not replaced
    assert await world.db.push_states() == {alpha.id: "user_removed"}
    assert (summary.pushed, summary.poll_only, summary.revoked) == (1, 0, {"user_removed": 1})
    assert not world.sync.push_covers(alpha.id)
    [row] = [s for s in await world.db.guild_subscriptions(1) if s.streamer.twitch_user_id == alpha.id]
    assert row.push_state == "user_removed"

    posts = world.posts()
    world.sync.request()
    await world.sync.sync()  # a quick pass does not ask Twitch about a gone user again
    assert world.posts() == posts


async def test_duplicates_are_deleted_and_the_oldest_kept(world: World) -> None:
    alpha, bravo = await world.follow("alpha", "bravo")
    await world.sync.sync()
    original = world.sub_of(alpha)
    duplicates = [world.plant(alpha, "stream.online", "1"), world.plant(bravo, "channel.update", "2")]

    world.sync.request(full=True)
    await world.sync.sync()
    assert not {d.id for d in duplicates} & set(world.fake.eventsub.subscriptions)
    assert world.sub_of(alpha).id == original.id
    assert world.kinds() == wanted_kinds([alpha, bravo])
    assert (world.posts(), world.deletes()) == (6, 2)


async def test_an_unfollowed_streamers_subscriptions_are_deleted_and_no_one_elses(world: World) -> None:
    alpha, bravo, charlie = await world.follow("alpha", "bravo", "charlie")
    await world.db.add_subscription(2, 20, Streamer(bravo.id, bravo.login, bravo.display_name))  # a 2nd guild
    await world.sync.sync()
    kept = {s.id for s in world.on() if s.broadcaster_user_id != alpha.id}

    await world.unfollow(alpha)
    await world.unfollow(bravo)  # still followed by guild 2
    world.sync.request()
    summary = await world.sync.sync()  # a quick pass is enough
    assert {s.id for s in world.on()} == kept
    assert world.kinds() == wanted_kinds([bravo, charlie])
    assert (world.listings(), world.deletes()) == (1, 3)
    assert not world.sync.push_covers(alpha.id)
    assert summary.pushed == 2


async def test_a_restart_deletes_what_was_followed_while_it_was_down(world: World) -> None:
    alpha, bravo = await world.follow("alpha", "bravo")
    await world.sync.sync()
    await world.unfollow(alpha)

    sync = world.restarted()
    await sync.sync()
    assert world.kinds() == wanted_kinds([bravo])
    assert world.deletes() == 3


async def test_subscriptions_on_another_conduit_or_transport_are_left_alone(world: World) -> None:
    [alpha] = await world.follow("alpha")
    ours = await world.keeper.ensure()
    other = (await world.twitch.create_conduit(1)).id
    condition = {"broadcaster_user_id": alpha.id}
    foreign = [
        await world.twitch.create_eventsub_subscription(
            "stream.online", "1", condition, {"method": "conduit", "conduit_id": other}
        ),
        await world.twitch.create_eventsub_subscription(
            "stream.offline", "1", condition, {"method": "webhook", "callback": CALLBACK, "secret": SECRET}
        ),
        await world.twitch.create_eventsub_subscription(
            "channel.update", "2", condition, {"method": "conduit", "conduit_id": other}
        ),
        await world.twitch.create_eventsub_subscription(  # ours, but not a type the sync manages
            "conduit.shard.disabled",
            "1",
            {"client_id": world.fake.client_id, "conduit_id": ours},
            {"method": "conduit", "conduit_id": ours},
        ),
    ]
    foreign_ids = {answer.subscriptions[0].id for answer in foreign}
    world.fake.eventsub.revoke(foreign[0].subscriptions[0].id, "authorization_revoked")  # dead, but not ours

    summary = await world.sync.sync()
    assert foreign_ids <= set(world.fake.eventsub.subscriptions)
    assert world.deletes() == 0
    assert world.kinds(ours) == sorted([*wanted_kinds([alpha]), ("conduit.shard.disabled", "1", "")])
    assert summary.pushed == 1
    assert summary.total_cost == 2 + 3  # the app's one budget counts the other enabled ones too (§1)


# ----------------------------------------------------------------------------------------------- budget


async def test_a_small_budget_goes_to_stream_online_first_and_the_rest_is_poll_only(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    users = await world.follow("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
    world.fake.eventsub.max_total_cost = 4
    with caplog.at_level(logging.WARNING, logger="twitch_notifier.eventsub.sync"):
        summary = await world.sync.sync()

    by_id = sorted(users, key=lambda u: u.id)
    pushed, polled = by_id[:4], by_id[4:]
    assert world.kinds() == sorted(("stream.online", "1", u.id) for u in pushed)
    # Nothing past the headroom is tried; one more at most, refused, when concurrent answers came back out of
    # order (the last one read then carries an older, lower total_cost).
    assert world.posts() in (4, 5)
    assert await world.db.push_states() == {u.id: POLL_ONLY for u in polled}
    assert (summary.pushed, summary.poll_only, summary.total_cost, summary.max_total_cost) == (4, 2, 4, 4)
    assert [world.sync.push_covers(u.id) for u in by_id] == [True] * 4 + [False] * 2
    assert "poll-only" in caplog.text
    states = {s.streamer.twitch_user_id: s.push_state for s in await world.db.guild_subscriptions(1)}
    assert states == {**{u.id: None for u in pushed}, **{u.id: POLL_ONLY for u in polled}}


async def test_the_budget_left_after_every_online_goes_to_offline_then_update(world: World) -> None:
    users = await world.follow("alpha", "bravo", "charlie")
    world.fake.eventsub.max_total_cost = 5
    summary = await world.sync.sync()
    kinds = world.kinds()
    assert [k for k in kinds if k[0] == "stream.online"] == sorted(("stream.online", "1", u.id) for u in users)
    assert sum(1 for k in kinds if k[0] == "stream.offline") == 2  # which two: whoever Twitch answered first
    assert len(kinds) == 5  # no channel.update
    assert (summary.pushed, summary.poll_only, summary.total_cost) == (3, 0, 5)
    assert await world.db.push_states() == {}


async def test_a_cost_refusal_from_twitch_stops_the_creates(world: World) -> None:
    # The listing says there is room (stale), Twitch refuses past its cap: 429, never retried.
    users = await world.follow("alpha", "bravo", "charlie", "delta", "echo")
    await world.keeper.ensure()
    world.fake.eventsub.max_total_cost = 3
    world.fake.fail_next(SUBSCRIPTIONS, 200, body=EMPTY_LISTING)
    summary = await world.sync.sync()

    assert len(world.on()) == 3
    assert {s.type for s in world.on()} == {"stream.online"}
    assert world.posts() == 5  # the five onlines went out together; two were refused, nothing after
    pushed = {s.broadcaster_user_id for s in world.on()}
    assert await world.db.push_states() == {u.id: POLL_ONLY for u in users if u.id not in pushed}
    assert (summary.pushed, summary.poll_only) == (3, 2)
    assert world.clock.sleeps == []


async def test_a_full_pass_after_a_removal_moves_a_poll_only_streamer_to_push(world: World) -> None:
    users = sorted(await world.follow("alpha", "bravo", "charlie", "delta", "echo", "foxtrot"), key=lambda u: u.id)
    world.fake.eventsub.max_total_cost = 4
    await world.sync.sync()
    assert set(await world.db.push_states()) == {users[4].id, users[5].id}

    await world.unfollow(users[0])
    world.sync.request(full=True)
    summary = await world.sync.sync()
    assert world.kinds() == sorted(("stream.online", "1", u.id) for u in users[1:5])
    assert await world.db.push_states() == {users[5].id: POLL_ONLY}
    assert world.sync.push_covers(users[4].id)
    assert (summary.pushed, summary.poll_only) == (4, 1)


async def test_a_quick_pass_after_a_removal_uses_the_freed_budget(world: World) -> None:
    # Until the deleted subscriptions' cost was given back, this waited for the next full pass (hourly).
    users = sorted(await world.follow("alpha", "bravo", "charlie", "delta", "echo", "foxtrot"), key=lambda u: u.id)
    world.fake.eventsub.max_total_cost = 4
    await world.sync.sync()

    await world.unfollow(users[0])
    world.sync.request()  # what /removestreamer does
    await world.sync.sync()
    assert world.sync.push_covers(users[4].id)
    assert await world.db.push_states() == {users[5].id: POLL_ONLY}


async def test_followed_users_twitch_deleted_do_not_use_up_the_online_priority(world: World) -> None:
    gone = await world.follow(*(f"gone_{i}" for i in range(5)))
    real = await world.follow(*(f"real_{i:02}" for i in range(12)))
    for user in gone:
        world.fake.remove_user(user.id)  # sorted first: their user ids are the lowest
    world.fake.eventsub.max_total_cost = 5
    summary = await world.sync.sync()

    assert {s.type for s in world.on()} == {"stream.online"}  # every online before any offline
    assert summary.pushed == 5
    assert sum(1 for u in real if world.sync.push_covers(u.id)) == 5


async def test_a_per_condition_limit_for_one_streamer_does_not_stop_the_others(world: World) -> None:
    alpha, bravo, charlie = sorted(await world.follow("alpha", "bravo", "charlie"), key=lambda u: u.id)
    await world.keeper.ensure()
    condition = {"broadcaster_user_id": alpha.id}
    for _ in range(2):  # alpha's stream.online three times already: two other conduits and a webhook
        other = (await world.twitch.create_conduit(1)).id
        await world.twitch.create_eventsub_subscription(
            "stream.online", "1", condition, {"method": "conduit", "conduit_id": other}
        )
    await world.twitch.create_eventsub_subscription(
        "stream.online", "1", condition, {"method": "webhook", "callback": CALLBACK, "secret": SECRET}
    )
    summary = await world.sync.sync()
    assert world.kinds() == sorted([*wanted_kinds([bravo, charlie]), *(k for k in wanted_kinds([alpha])[:2])])
    assert summary.total_cost < summary.max_total_cost


# ------------------------------------------------------------------------------------------- the conduit


async def test_a_lost_conduit_is_replaced_and_everything_subscribed_again_on_the_new_one(world: World) -> None:
    users = await world.follow("alpha", "bravo")
    await world.sync.sync()
    old = world.keeper.conduit_id
    assert old is not None
    world.fake.eventsub._delete_conduit(world.fake.eventsub.conduits[old])  # e.g. deleted by hand

    with pytest.raises(ConduitLost):  # the service learns it when it binds a shard
        await world.keeper.bind_webhook("0", CALLBACK, SECRET)
    summary = await world.sync.sync()  # no request(full=True) needed: the keeper's generation changed
    new = world.keeper.conduit_id
    assert new not in (None, old)
    assert await world.db.get_state(CONDUIT_STATE_KEY) == new
    assert world.kinds(new) == wanted_kinds(users)
    assert world.kinds(old) == []
    # The old conduit's subscriptions are dead for good (conduit_deleted): deleted, so that they no longer
    # count towards Twitch's 3-per-type-and-condition limit (twitchdev/issues#1094).
    assert world.on(old, status=None) == []
    assert (summary.pushed, world.listings(), world.posts()) == (2, 2, 12)


async def test_the_72_hour_expiry_ends_with_everything_on_a_new_conduit(world: World) -> None:
    users = await world.follow("alpha", "bravo")
    await world.sync.sync()
    old = world.keeper.conduit_id
    world.clock.now += 72 * 3600 + 1  # no shard was ever enabled
    await world.fake.eventsub.tick()
    assert old in world.fake.eventsub.deleted_conduits

    with pytest.raises(ConduitLost):
        await world.keeper.bind_webhook("0", CALLBACK, SECRET)
    await world.sync.sync()
    assert world.keeper.conduit_id != old
    assert world.kinds() == wanted_kinds(users)
    assert await world.db.push_states() == {}


async def test_a_full_pass_on_a_deleted_conduit_does_not_mark_streamers_removed(world: World) -> None:
    await world.follow("alpha", "bravo")
    await world.sync.sync()
    old = world.keeper.conduit_id
    assert old is not None
    world.fake.eventsub._delete_conduit(world.fake.eventsub.conduits[old])

    world.sync.request(full=True)
    with contextlib.suppress(TwitchError, ConduitLost):  # failing the pass is fine; "these users are gone" not
        await world.sync.sync()
    assert "user_removed" not in (await world.db.push_states()).values()


# ----------------------------------------------------------------------------------------------- revoked


async def test_a_revocation_for_a_removed_user_is_recorded_and_not_subscribed_again(world: World) -> None:
    alpha, bravo = await world.follow("alpha", "bravo")
    await world.sync.sync()
    sub = world.sub_of(alpha)
    world.fake.eventsub.revoke(sub, "user_removed")

    await world.sync.revoked(as_subscription(world.fake.eventsub.subscriptions[sub.id]))
    assert not world.sync.push_covers(alpha.id)  # at once, before any pass
    assert not world.sync.synced.is_set()  # and a pass is asked for
    posts = world.posts()
    summary = await world.sync.sync()
    assert world.posts() == posts  # not asked for again
    assert await world.db.push_states() == {alpha.id: "user_removed"}
    assert (summary.pushed, summary.revoked) == (1, {"user_removed": 1})
    assert world.sync.push_covers(bravo.id)


async def test_another_revocation_is_subscribed_again_at_once(world: World) -> None:
    [alpha] = await world.follow("alpha")
    await world.sync.sync()
    sub = world.sub_of(alpha)
    world.fake.eventsub.revoke(sub, "authorization_revoked")

    await world.sync.revoked(as_subscription(world.fake.eventsub.subscriptions[sub.id]))
    assert not world.sync.push_covers(alpha.id)
    await world.sync.sync()
    assert world.sync.push_covers(alpha.id)
    assert world.sub_of(alpha).id != sub.id
    assert await world.db.push_states() == {}


async def test_a_revocation_that_cannot_be_undone_is_recorded_with_its_status(world: World) -> None:
    alpha, bravo = await world.follow("alpha", "bravo")
    await world.sync.sync()
    sub = world.sub_of(alpha)
    world.fake.eventsub.revoke(sub, "version_removed")
    world.fake.eventsub.max_total_cost = world.fake.eventsub._costs(None)[1]  # and no room to subscribe again

    await world.sync.revoked(as_subscription(world.fake.eventsub.subscriptions[sub.id]))
    summary = await world.sync.sync()
    assert await world.db.push_states() == {alpha.id: "version_removed"}
    assert summary.revoked == {"version_removed": 1}
    assert world.sync.push_covers(bravo.id)


async def test_a_stale_revocation_does_not_forget_the_newer_subscription(world: World) -> None:
    [alpha] = await world.follow("alpha")
    await world.sync.sync()
    current = world.sub_of(alpha)
    stale = EventSubSubscription(
        "an-older-id",
        "stream.online",
        "1",
        "authorization_revoked",
        alpha.id,
        "conduit",
        current.transport["conduit_id"],
    )
    await world.sync.revoked(stale)
    assert world.sync.push_covers(alpha.id)


# ---------------------------------------------------------------------------------------------- outages


async def test_an_outage_during_a_full_pass_raises_and_leaves_the_stored_states(world: World) -> None:
    await world.follow("alpha", "bravo", "charlie")
    world.fake.eventsub.max_total_cost = 2
    await world.sync.sync()
    states = await world.db.push_states()
    assert len(states) == 1
    passes = world.sync.passes

    world.fake.eventsub.max_total_cost = 100  # room now, but Twitch is down
    world.fake.fail_next(SUBSCRIPTIONS, 503, times=None)
    world.sync.request(full=True)
    with pytest.raises(TwitchError):
        await world.sync.sync()
    assert await world.db.push_states() == states
    assert world.sync.passes == passes
    assert not world.sync.synced.is_set()

    world.fake.clear_failures()
    await world.sync.sync()  # the retry after the outage
    assert await world.db.push_states() == {}
    assert world.sync.summary().pushed == 3


async def test_an_outage_while_creating_raises_and_leaves_the_stored_states(world: World) -> None:
    alpha, _ = await world.follow("alpha", "bravo")
    await world.sync.sync()
    sub = world.sub_of(alpha)
    world.fake.eventsub.revoke(sub, "user_removed")
    await world.sync.revoked(as_subscription(world.fake.eventsub.subscriptions[sub.id]))
    await world.sync.sync()
    states = await world.db.push_states()
    assert states == {alpha.id: "user_removed"}
    [charlie] = await world.follow("charlie")

    world.fake.fail_next(SUBSCRIPTIONS, 500, times=None)
    world.sync.request()  # a quick pass: only creates
    with pytest.raises(TwitchError):
        await world.sync.sync()
    assert world.listings() == 1
    assert await world.db.push_states() == states  # charlie not marked anything while Twitch is down
    assert not world.sync.push_covers(charlie.id)

    world.fake.clear_failures()
    await world.sync.sync()
    assert world.sync.push_covers(charlie.id)
    assert await world.db.push_states() == states


async def test_an_outage_finding_the_conduit_raises(world: World) -> None:
    await world.follow("alpha")
    world.fake.fail_next("/helix/eventsub/conduits", 503, times=None)
    with pytest.raises(TwitchError):
        await world.sync.sync()
    assert world.posts() == 0
    assert await world.db.push_states() == {}
    assert world.sync.summary().synced is False


# ----------------------------------------------------------------------------------- states and the store


async def test_a_streamer_followed_again_between_passes_keeps_its_state_in_the_database(world: World) -> None:
    users = sorted(await world.follow("alpha", "bravo", "charlie"), key=lambda u: u.id)
    world.fake.eventsub.max_total_cost = 2
    await world.sync.sync()
    polled = users[2]
    assert await world.db.push_states() == {polled.id: POLL_ONLY}

    await world.unfollow(polled)
    await world.db.add_subscription(1, 10, Streamer(polled.id, polled.login, polled.display_name))
    world.sync.request()
    await world.sync.sync()
    assert not world.sync.push_covers(polled.id)
    assert await world.db.push_states() == {polled.id: POLL_ONLY}


async def test_stored_states_are_read_at_start_and_cleared_when_pushed(world: World) -> None:
    users = sorted(await world.follow("alpha", "bravo", "charlie"), key=lambda u: u.id)
    world.fake.eventsub.max_total_cost = 2
    await world.sync.sync()
    assert world.restarted().summary().poll_only == 0  # nothing read before the first pass

    world.fake.eventsub.max_total_cost = 100
    summary = await world.sync.sync()
    assert await world.db.push_states() == {}
    assert (summary.pushed, summary.poll_only) == (3, 0)
    assert all(world.sync.push_covers(u.id) for u in users)
