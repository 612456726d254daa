"""core.live_events: what each (guild, stream) needs (`plan`), and the runner's calls against a fake calendar."""

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from twitch_notifier.core.live_events import (
    ACTIVE,
    CANCELED,
    COMPLETED,
    EVENT_LENGTH,
    SCHEDULED,
    LiveEvents,
    Step,
    event_description,
    event_name,
    find_lost_event,
    plan,
)
from twitch_notifier.core.ports import AnnounceError, EventsRefused, MessageGone, StillRunning
from twitch_notifier.models import ListedEvent, LiveEventRecord, LiveEventTarget

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=5)


def target(guild_id=1, stream_id="s1", **changes):
    values = dict(
        guild_id=guild_id,
        stream_id=stream_id,
        twitch_user_id="u1",
        login="shroud",
        display_name="shroud",
        title="ranked",
        game_name="VALORANT",
        started_at=NOW - timedelta(minutes=1),
    )
    return LiveEventTarget(**(values | changes))


def record(guild_id=1, stream_id="s1", status="active", **changes):
    values = dict(
        guild_id=guild_id,
        stream_id=stream_id,
        twitch_user_id="u1",
        status=status,
        created_at=NOW - timedelta(minutes=30),
        synced_at=NOW - timedelta(minutes=30),
        event_id=900 if status != "creating" else None,
        name="ranked",
        description="shroud is live on Twitch, playing VALORANT.",
        location="https://www.twitch.tv/shroud",
        ends_at=NOW + timedelta(hours=3),
    )
    return LiveEventRecord(**(values | changes))


def steps(targets, records, now=NOW):
    return [(a.guild_id, a.stream_id, a.step) for a in plan(targets, records, now=now, update_interval=INTERVAL)]


# ------------------------------------------------------------------------------------------ what it shows


def test_name_is_the_title_on_one_line_cut_to_100_and_never_empty():
    assert event_name("  ranked\n\tgrind ", "shroud") == "ranked grind"
    long = event_name("x" * 150, "shroud")
    assert len(long) == 100
    assert long.endswith("…")
    assert event_name(" \n ", "Pokimane") == "Pokimane is live on Twitch"
    assert event_name("", "P" * 200) != ""
    assert len(event_name("", "P" * 200)) == 100


def test_description_names_the_game_when_there_is_one():
    assert event_description("shroud", "VALORANT") == "shroud is live on Twitch, playing VALORANT."
    assert event_description("shroud", "") == "shroud is live on Twitch."
    assert len(event_description("s", "g" * 2000)) == 1000


def test_a_new_event_starts_a_moment_ahead_and_ends_hours_later():
    [action] = plan([target()], [], now=NOW, update_interval=INTERVAL)
    assert action.step is Step.CREATE
    spec = action.spec
    assert spec.location == "https://www.twitch.tv/shroud"
    assert NOW < spec.start <= NOW + timedelta(seconds=30)
    assert spec.end == NOW + EVENT_LENGTH


# ------------------------------------------------------------------------------------------ plan


def test_each_state_gets_its_step():
    assert steps([target()], []) == [(1, "s1", Step.CREATE)]
    assert steps([target()], [record(status="creating")]) == [(1, "s1", Step.RECOVER)]
    assert steps([target()], [record(status="scheduled")]) == [(1, "s1", Step.START)]
    assert steps([target()], [record()]) == []  # active and unchanged
    assert steps([], [record()]) == [(1, "s1", Step.COMPLETE)]
    assert steps([], [record(status="scheduled")]) == [(1, "s1", Step.CANCEL)]
    assert steps([], [record(status="creating")]) == [(1, "s1", Step.RECOVER)]
    for final in ("completed", "canceled", "gone"):
        assert steps([target()], [record(status=final)]) == []
        assert steps([], [record(status=final)]) == []


def test_a_title_change_waits_for_the_live_update_interval():
    changed = target(title="new title", game_name="Minecraft")
    assert steps([changed], [record(synced_at=NOW - timedelta(minutes=4))]) == []
    [action] = plan([changed], [record(synced_at=NOW - INTERVAL)], now=NOW, update_interval=INTERVAL)
    assert action.step is Step.UPDATE
    assert (action.spec.name, action.spec.description) == ("new title", "shroud is live on Twitch, playing Minecraft.")
    assert action.spec.end == NOW + timedelta(hours=3)  # not extended: far enough


def test_an_end_that_comes_near_is_extended_whatever_the_interval():
    near = record(synced_at=NOW - timedelta(minutes=1), ends_at=NOW + timedelta(minutes=50))
    [action] = plan([target()], [near], now=NOW, update_interval=INTERVAL)
    assert action.step is Step.UPDATE
    assert action.spec.end == NOW + EVENT_LENGTH
    assert steps([target()], [record(ends_at=NOW + timedelta(minutes=61))]) == []


def test_a_refused_guild_waits_an_hour_then_is_asked_again():
    refused = target(refused_at=NOW - timedelta(minutes=59))
    assert steps([refused], []) == []
    assert steps([target(title="x", refused_at=NOW)], [record(synced_at=NOW - INTERVAL)]) == []
    [action] = plan([target(refused_at=NOW - timedelta(hours=1))], [], now=NOW, update_interval=INTERVAL)
    assert (action.step, action.refused) == (Step.CREATE, True)
    # Ends are not held back by a refusal: the target is gone, only the record speaks.
    assert steps([], [record()]) == [(1, "s1", Step.COMPLETE)]


def test_one_action_per_guild_and_stream_ends_first():
    actions = steps(
        [target(1, "s2"), target(2, "s1"), target(1, "s3")],
        [record(1, "s1"), record(1, "s3", status="scheduled")],
    )
    assert actions == [(1, "s1", Step.COMPLETE), (1, "s2", Step.CREATE), (1, "s3", Step.START), (2, "s1", Step.CREATE)]


def test_a_lost_event_is_the_bots_at_the_url_started_after_the_record():
    lost = record(status="creating", created_at=NOW)
    mine = ListedEvent(7, SCHEDULED, lost.location, NOW + timedelta(seconds=10), mine=True)
    assert find_lost_event([mine], lost) == mine
    assert find_lost_event([dataclasses.replace(mine, mine=False)], lost) is None
    assert find_lost_event([dataclasses.replace(mine, location="https://www.twitch.tv/other")], lost) is None
    assert find_lost_event([dataclasses.replace(mine, start=NOW - timedelta(hours=2))], lost) is None
    assert find_lost_event([dataclasses.replace(mine, status=COMPLETED)], lost) is None
    active = ListedEvent(8, ACTIVE, lost.location, NOW + timedelta(seconds=20), mine=True)
    assert find_lost_event([active, mine], lost) == mine


# ------------------------------------------------------------------------------------------ the runner


class FakeCalendar:
    def __init__(self):
        self.calls = []
        self.events = {}
        self.fail = {}  # method -> exception raised once
        self._next = 100
        self.permitted = True  # what the bot's cache says

    def may_create_events(self, guild_id):
        return self.permitted

    def _maybe_fail(self, method):
        exc = self.fail.pop(method, None)
        if exc is not None:
            raise exc

    async def create_event(self, guild_id, spec):
        self.calls.append(("create", guild_id, spec.name))
        self._maybe_fail("create")
        self._next += 1
        self.events[self._next] = {"guild": guild_id, "status": SCHEDULED, "location": spec.location, "spec": spec}
        return self._next

    async def edit_event(self, guild_id, event_id, *, status=None, name=None, description=None, end=None):
        self.calls.append(("edit", guild_id, event_id, status, name))
        self._maybe_fail("edit")
        if status is not None:
            self.events[event_id]["status"] = status

    async def list_events(self, guild_id):
        self.calls.append(("list", guild_id))
        return [
            ListedEvent(i, e["status"], e["location"], e["spec"].start, mine=True)
            for i, e in self.events.items()
            if e["guild"] == guild_id and e["status"] in (SCHEDULED, ACTIVE)
        ]


class MemoryStore:
    def __init__(self):
        self.targets = []
        self.records = {}
        self.errors = {}

    async def live_events_wanted(self, scope=None):
        self.asked_wanted = getattr(self, "asked_wanted", 0) + 1
        return bool(self.targets) or any(r.status in ("creating", "scheduled", "active") for r in self.records.values())

    async def live_event_targets(self, scope=None):
        return [dataclasses.replace(t, refused_at=self.errors.get(t.guild_id, (None, None))[1]) for t in self.targets]

    async def live_event_records(self, scope=None):
        live = {t.stream_id for t in self.targets}
        return [
            r for r in self.records.values() if r.status in ("creating", "scheduled", "active") or r.stream_id in live
        ]

    async def save_live_event(self, record):
        self.records[(record.guild_id, record.stream_id)] = record

    async def set_events_error(self, guild_id, error):
        if error is None:
            self.errors.pop(guild_id, None)
        else:
            self.errors[guild_id] = (error, NOW)

    async def prune_live_events(self, older_than):
        return 0


@pytest.fixture
def world():
    store, calendar = MemoryStore(), FakeCalendar()
    clock = {"now": NOW}
    events = LiveEvents(store, calendar, clock=lambda: clock["now"], update_interval=INTERVAL)
    return store, calendar, events, clock


async def test_go_live_creates_and_starts_then_the_end_completes(world):
    store, calendar, events, _clock = world
    store.targets = [target()]
    report = await events.sync()
    assert report.created == 1
    assert [c[0] for c in calendar.calls] == ["create", "edit"]
    assert calendar.calls[1][3] == ACTIVE
    [saved] = store.records.values()
    assert (saved.status, saved.event_id, saved.name) == ("active", 101, "ranked")
    await events.sync()
    assert len(calendar.calls) == 2  # nothing changed: nothing asked
    store.targets = []
    report = await events.sync()
    assert report.ended == 1
    assert calendar.calls[-1][3] == COMPLETED
    assert store.records[(1, "s1")].status == "completed"


async def test_a_refusal_is_recorded_and_the_guild_not_asked_again(world):
    store, calendar, events, clock = world
    store.targets = [target(1, "s1"), target(2, "s1")]
    calendar.fail["create"] = EventsRefused("I lack Create Events")
    report = await events.sync()
    assert report.refused_guilds == [1]
    assert store.errors[1][0] == "I lack Create Events"
    assert store.records[(2, "s1")].status == "active"  # the other guild is unaffected
    asked = len(calendar.calls)
    for _ in range(3):
        await events.sync()
    # Within the pause nothing is asked for guild 1, however many passes run.
    assert len(calendar.calls) == asked
    clock["now"] = NOW + timedelta(hours=1, seconds=1)
    await events.sync()
    assert ("list", 1) in calendar.calls[asked:]
    assert store.records[(1, "s1")].status == "active"
    assert 1 not in store.errors  # a success clears the refusal


async def test_granting_the_permission_the_cache_lacked_lifts_the_pause_at_once(world):
    store, calendar, events, _clock = world
    store.targets = [target()]
    calendar.permitted = False
    calendar.fail["create"] = EventsRefused("I lack Create Events", asked=False)
    await events.sync()
    await events.sync()
    assert [c[0] for c in calendar.calls] == ["create"]
    calendar.permitted = True  # the admin granted it (GUILD_ROLE_UPDATE reached the cache)
    await events.sync()
    assert [c[0] for c in calendar.calls] == ["create", "list", "create", "edit"]
    assert store.errors == {}


def test_a_permitted_guild_is_not_paused():
    refused = target(refused_at=NOW - timedelta(minutes=1))
    assert plan([refused], [], now=NOW, update_interval=INTERVAL, permitted={2}) == []
    [action] = plan([refused], [], now=NOW, update_interval=INTERVAL, permitted={1})
    assert (action.step, action.refused) == (Step.CREATE, True)


async def test_a_creation_still_running_is_neither_repeated_nor_looked_for_until_it_ends(world):
    store, calendar, events, _clock = world
    store.targets = [target()]
    outcome = asyncio.get_running_loop().create_future()
    calendar.fail["create"] = StillRunning("no answer", outcome)
    await events.sync()
    await events.sync()
    assert [c[0] for c in calendar.calls] == ["create"]
    outcome.set_result(None)
    calendar.events[555] = {
        "guild": 1,
        "status": SCHEDULED,
        "location": "https://www.twitch.tv/shroud",
        "spec": dataclasses.replace(plan([target()], [], now=NOW, update_interval=INTERVAL)[0].spec),
    }
    await events.sync()
    assert [c[0] for c in calendar.calls] == ["create", "list", "edit"]
    assert store.records[(1, "s1")].event_id == 555
    assert store.records[(1, "s1")].status == "active"


async def test_a_lost_creation_of_a_stream_that_ended_is_ended_or_forgotten(world):
    store, calendar, events, _clock = world
    store.records[(1, "s1")] = record(status="creating", created_at=NOW)
    await events.sync()
    assert calendar.calls == [("list", 1)]
    assert store.records[(1, "s1")].status == "canceled"


async def test_an_event_deleted_by_a_human_is_forgotten(world):
    store, calendar, events, _clock = world
    store.targets = [target(title="changed")]
    store.records[(1, "s1")] = record(synced_at=NOW - INTERVAL)
    calendar.fail["edit"] = MessageGone("the event was deleted")
    await events.sync()
    assert store.records[(1, "s1")].status == "gone"
    await events.sync()
    assert len(calendar.calls) == 1


async def test_a_transient_failure_is_retried_next_pass(world):
    store, calendar, events, _clock = world
    store.targets = [target()]
    calendar.fail["create"] = AnnounceError("Discord answered 503", permanent=False)
    report = await events.sync()
    assert report.failed == 1
    await events.sync()
    assert [c[0] for c in calendar.calls] == ["create", "list", "create", "edit"]
    assert store.records[(1, "s1")].status == "active"


async def test_an_update_refused_for_good_leaves_the_event_alone(world):
    store, calendar, events, _clock = world
    store.targets = []
    store.records[(1, "s1")] = record()
    calendar.fail["edit"] = AnnounceError("Discord answered 400: finished", permanent=True)
    await events.sync()
    assert store.records[(1, "s1")].status == "gone"
    assert CANCELED not in [c[3] for c in calendar.calls]


async def test_with_no_guild_keeping_events_a_pass_is_one_question_and_rounds_wake_nothing(world):
    store, calendar, events, _clock = world
    await events.sync()
    assert store.asked_wanted == 1
    events.start()  # its first pass runs at once, finds nothing to do, and rounds no longer wake it
    while events.passes < 2:
        await asyncio.sleep(0)
    events.poke()
    for _ in range(10):
        await asyncio.sleep(0)
    assert (events.passes, store.asked_wanted) == (2, 2)
    store.targets = [target()]
    events.wake()  # a server turned them on
    while not calendar.calls:
        await asyncio.sleep(0)
    await events.stop()
    assert calendar.calls[0][0] == "create"


async def test_a_poke_runs_a_pass_and_stop_ends_the_loop_even_when_poked_at_once(world):
    store, _calendar, events, _clock = world
    events.start()
    events.poke()
    while events.passes == 0:
        await asyncio.sleep(0)
    for _ in range(20):  # a poke arriving with the cancellation must not keep the loop alive
        events.poke()
        await asyncio.sleep(0)
        await events.stop()
        assert not events.running
        events.start()
    await events.stop()
    assert store.records == {}
