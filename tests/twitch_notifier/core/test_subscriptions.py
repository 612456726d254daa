"""core.subscriptions: the rules of adding, finding and removing streamers, without Discord."""

import asyncio

import pytest

from database import Database
from twitch_notifier.core.subscriptions import (
    AddOutcome,
    AddRefusal,
    AddRequest,
    ChannelStatus,
    SubscriptionRules,
    TooManyCategories,
    UnknownCategory,
)
from twitch_notifier.twitch.errors import TwitchUnavailable
from twitch_notifier.twitch.models import TwitchCategory, TwitchUser

SHROUD = TwitchUser("37402112", "shroud", "shroud", "")
VALORANT = TwitchCategory("516575", "VALORANT")


class FakeDirectory:
    def __init__(self, *users: TwitchUser, games: tuple[TwitchCategory, ...] = (), delay: float = 0) -> None:
        self.users = {u.login: u for u in users}
        self.games = games
        self.delay = delay
        self.calls = 0

    async def get_users(self, *, logins=(), ids=()):
        self.calls += 1
        await asyncio.sleep(self.delay)
        return [self.users[login] for login in logins if login in self.users]

    async def get_games(self, ids=(), *, names=()):
        return [g for g in self.games if g.name in names]

    async def search_categories(self, query, *, first=25):
        return [g for g in self.games if g.name.casefold() == query.casefold()]


class Retirer:
    def __init__(self) -> None:
        self.retired: list[int] = []
        self.removed_ids: list[int] = []

    async def retire(self, subscription_id: int) -> int:
        self.retired.append(subscription_id)
        return 0

    def unretire(self, subscription_id: int) -> None:
        self.retired.remove(subscription_id)

    def removed(self, subscription_id: int) -> None:
        self.removed_ids.append(subscription_id)


def channels(*usable: int, broken: dict[int, str] | None = None):
    def check(channel_id: int) -> ChannelStatus:
        if broken and channel_id in broken:
            return ChannelStatus(True, broken[channel_id])
        return ChannelStatus(channel_id in usable)

    return check


async def nothing() -> None:
    return None


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(str(tmp_path / "rules.db"))
    yield database
    await database.close()


async def test_add_follows_into_the_given_channel(db):
    rules = SubscriptionRules(db, FakeDirectory(SHROUD), max_per_guild=5)
    result = await rules.add(AddRequest(1, "shroud", channel_id=10), channels(10), nothing)
    assert result.outcome is AddOutcome.ADDED
    assert result.streamer.login == "shroud"
    assert [s.channel_id for s in await db.guild_subscriptions(1)] == [10]


async def test_add_without_a_channel_uses_the_default_or_refuses(db):
    rules = SubscriptionRules(db, FakeDirectory(SHROUD), max_per_guild=5)
    refused = await rules.add(AddRequest(1, "shroud"), channels(10), nothing)
    assert refused.refusal is AddRefusal.NO_CHANNEL
    await db.set_announce_channel(1, 10)
    assert (await rules.add(AddRequest(1, "shroud"), channels(10), nothing)).outcome is AddOutcome.ADDED


async def test_a_gone_default_and_a_gone_given_channel_are_told_apart(db):
    rules = SubscriptionRules(db, FakeDirectory(SHROUD), max_per_guild=5)
    await db.set_announce_channel(1, 10)
    assert (await rules.add(AddRequest(1, "shroud"), channels(), nothing)).refusal is AddRefusal.DEFAULT_CHANNEL_GONE
    given = await rules.add(AddRequest(1, "shroud", channel_id=11), channels(), nothing)
    assert given.refusal is AddRefusal.CHANNEL_MISSING


async def test_a_channel_without_permissions_is_refused_before_twitch_is_asked(db):
    twitch = FakeDirectory(SHROUD)
    rules = SubscriptionRules(db, twitch, max_per_guild=5)
    result = await rules.add(AddRequest(1, "shroud", channel_id=10), channels(broken={10: "missing X"}), nothing)
    assert (result.refusal, result.detail) == (AddRefusal.CHANNEL_UNUSABLE, "missing X")
    assert twitch.calls == 0


async def test_already_there_changes_nothing_and_a_broken_entry_is_repaired(db):
    rules = SubscriptionRules(db, FakeDirectory(SHROUD), max_per_guild=5)
    await rules.add(AddRequest(1, "shroud", channel_id=10), channels(10), nothing)
    again = await rules.add(AddRequest(1, "shroud", channel_id=10), channels(10), nothing)
    assert again.outcome is AddOutcome.ALREADY
    # Channel 10 is deleted: adding into 12 moves the broken entry instead of adding a second one.
    repaired = await rules.add(AddRequest(1, "shroud", channel_id=12), channels(12), nothing)
    assert repaired.outcome is AddOutcome.REPAIRED
    assert [s.channel_id for s in await db.guild_subscriptions(1)] == [12]


async def test_the_limit_is_refused_and_defer_is_called_only_before_twitch(db):
    deferred = []

    async def defer() -> None:
        deferred.append(True)

    rules = SubscriptionRules(db, FakeDirectory(SHROUD, TwitchUser("2", "poki", "Poki", "")), max_per_guild=1)
    await rules.add(AddRequest(1, "shroud", channel_id=10), channels(10), defer)
    full = await rules.add(AddRequest(1, "poki", channel_id=10), channels(10), defer)
    assert (full.refusal, full.detail) == (AddRefusal.LIMIT_REACHED, "1")
    assert deferred == [True]


async def test_unknown_users_and_categories(db):
    rules = SubscriptionRules(db, FakeDirectory(SHROUD, games=(VALORANT,)), max_per_guild=5)
    nobody = await rules.add(AddRequest(1, "nobody", channel_id=10), channels(10), nothing)
    assert (nobody.refusal, nobody.detail) == (AddRefusal.NO_SUCH_USER, "nobody")
    with pytest.raises(UnknownCategory) as info:
        await rules.add(AddRequest(1, "shroud", channel_id=10, game_names=["Chess"]), channels(10), nothing)
    assert info.value.name == "Chess"
    with pytest.raises(TooManyCategories):
        await rules.resolve_categories([f"g{i}" for i in range(11)])
    assert [c.name for c in await rules.resolve_categories(["valorant", "VALORANT"])] == ["VALORANT"]


async def test_a_slow_twitch_runs_out_of_the_budget(db):
    rules = SubscriptionRules(db, FakeDirectory(SHROUD, delay=5), max_per_guild=5, twitch_budget=0.05)
    with pytest.raises(TwitchUnavailable, match="did not answer"):
        await rules.add(AddRequest(1, "shroud", channel_id=10), channels(10), nothing)
    assert await db.guild_subscriptions(1) == []


async def test_find_by_name_id_or_autocomplete_value_and_several_channels(db):
    rules = SubscriptionRules(db, FakeDirectory(SHROUD), max_per_guild=5)
    await rules.add(AddRequest(1, "shroud", channel_id=10), channels(10), nothing)
    await rules.add(AddRequest(1, "shroud", channel_id=11), channels(10, 11), nothing)
    several = await rules.find(1, "twitch.tv/Shroud")
    assert several.subscription is None
    assert len(several.candidates) == 2
    one = await rules.find(1, "shroud", channel_id=11)
    assert one.subscription.channel_id == 11
    by_value = await rules.find(1, f"sub:{one.subscription.id}")
    assert by_value.subscription == one.subscription
    assert (await rules.find(2, "shroud")).subscription is None  # another guild's entry is not found


async def test_remove_retires_before_deleting_and_reports_the_other_channels(db):
    retirer = Retirer()
    rules = SubscriptionRules(db, FakeDirectory(SHROUD), max_per_guild=5, retirer=retirer)
    await rules.add(AddRequest(1, "shroud", channel_id=10), channels(10), nothing)
    await rules.add(AddRequest(1, "shroud", channel_id=11), channels(10, 11), nothing)
    target = (await rules.find(1, "shroud", channel_id=10)).subscription
    removal = await rules.remove(1, target)
    assert removal.removed == target
    assert removal.still_in == [11]
    assert retirer.retired == retirer.removed_ids == [target.id]
    again = await rules.remove(1, target)
    assert (again.removed, again.still_in) == (None, [])


async def test_a_failed_retirement_deletes_nothing_and_unmarks_the_entry(db):
    class Failing(Retirer):
        async def retire(self, subscription_id: int) -> int:
            await super().retire(subscription_id)
            raise RuntimeError("Discord is down")

    retirer = Failing()
    rules = SubscriptionRules(db, FakeDirectory(SHROUD), max_per_guild=5, retirer=retirer)
    await rules.add(AddRequest(1, "shroud", channel_id=10), channels(10), nothing)
    target = (await rules.find(1, "shroud")).subscription
    with pytest.raises(RuntimeError):
        await rules.remove(1, target)
    assert retirer.retired == []  # unretired: still announced
    assert [s.id for s in await db.guild_subscriptions(1)] == [target.id]
