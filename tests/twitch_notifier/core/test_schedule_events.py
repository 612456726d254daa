"""core.schedule_events without Discord: which broadcasts get an event, what it shows, which call each needs,
and which upcoming event a stream going live takes over."""

import dataclasses
from datetime import UTC, datetime, timedelta

from twitch_notifier.core.schedule_events import (
    HORIZON,
    MIN_LEAD,
    PER_GUILD,
    PER_STREAMER,
    ScheduleStep,
    adoptable,
    plan,
    schedule_spec,
    upcoming,
)
from twitch_notifier.models import ScheduleEventRecord, ScheduleEventTarget

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def target(segment="s1", *, guild=1, user="100", start=NOW + 24 * HOUR, hours=2, title="Ranked", **kw):
    return ScheduleEventTarget(
        guild_id=guild,
        twitch_user_id=user,
        login="shroud",
        display_name="shroud",
        segment_id=segment,
        start=start,
        end=start + timedelta(hours=hours) if hours else None,
        title=title,
        category_name=kw.pop("category", "VALORANT"),
        **kw,
    )


def record_for(t, *, status="scheduled", event_id=900, **changes):
    spec = schedule_spec(t)
    record = ScheduleEventRecord(
        guild_id=t.guild_id,
        twitch_user_id=t.twitch_user_id,
        segment_id=t.segment_id,
        status=status,
        start=spec.start,
        end=spec.end,
        created_at=NOW - HOUR,
        synced_at=NOW - HOUR,
        event_id=event_id,
        name=spec.name,
        description=spec.description,
        location=spec.location,
    )
    return dataclasses.replace(record, **changes)


def test_the_event_shows_the_broadcast_and_never_an_empty_name():
    spec = schedule_spec(target(title="  ranked\n grind ", recurring=True))
    assert spec.name == "ranked grind"
    assert spec.description == "shroud streams on Twitch: VALORANT. Every week at this time."
    assert spec.location == "https://www.twitch.tv/shroud"
    assert spec.end - spec.start == timedelta(hours=2)
    untitled = schedule_spec(target(title="", category="", hours=0))
    assert untitled.name == "shroud on Twitch"
    assert untitled.description == "shroud streams on Twitch."
    assert untitled.end - untitled.start == timedelta(hours=4)  # Twitch gave no end: Discord needs one
    assert len(schedule_spec(target(title="x" * 300)).name) == 100


def test_only_broadcasts_inside_the_window_and_the_soonest_few_are_wanted():
    too_soon = target("soon", start=NOW + MIN_LEAD - timedelta(seconds=1))
    too_far = target("far", start=NOW + HORIZON + timedelta(minutes=1))
    week = [target(f"d{d}", start=NOW + d * 24 * HOUR) for d in range(1, 7)]
    kept = upcoming([too_soon, too_far, *reversed(week)], NOW)
    assert [t.segment_id for t in kept] == [f"d{d}" for d in range(1, PER_STREAMER + 1)]

    many = [target(f"s{u}", user=str(u), start=NOW + (u + 1) * HOUR) for u in range(PER_GUILD + 5)]
    assert len(upcoming(many, NOW)) == PER_GUILD
    other_guild = [dataclasses.replace(t, guild_id=2) for t in many[:2]]
    assert len(upcoming(many + other_guild, NOW)) == PER_GUILD + 2


def test_a_new_broadcast_is_created_and_one_already_made_left_alone():
    t = target()
    [action] = plan([t], [], now=NOW)
    assert action.step is ScheduleStep.CREATE
    assert action.spec == schedule_spec(t)
    assert plan([t], [record_for(t)], now=NOW) == []


def test_a_changed_title_or_time_is_an_update_and_a_start_too_close_is_not_moved():
    t = target()
    record = record_for(t)
    [retitled] = plan([dataclasses.replace(t, title="Casual")], [record], now=NOW)
    assert retitled.step is ScheduleStep.UPDATE
    assert retitled.spec is not None
    assert retitled.spec.name == "Casual"
    moved = dataclasses.replace(t, start=t.start + HOUR, end=t.end + HOUR)
    [action] = plan([moved], [record], now=NOW)
    assert action.spec is not None
    assert action.spec.start == t.start + HOUR
    # Moved to start in a minute: Discord would refuse that start; the event keeps its own.
    close = dataclasses.replace(t, start=NOW + timedelta(minutes=1), end=NOW + 2 * HOUR, title="Soon")
    [kept_start] = plan([close], [record], now=NOW)
    assert kept_start.spec is not None
    assert kept_start.spec.start == record.start
    assert kept_start.spec.name == "Soon"
    # An event whose own start is this close is no longer touched at all.
    assert plan([dataclasses.replace(t, title="x")], [record], now=t.start - timedelta(minutes=1)) == []


def test_a_broadcast_gone_from_the_schedule_or_past_its_end_is_cancelled():
    t = target()
    [gone] = plan([], [record_for(t)], now=NOW)
    assert gone.step is ScheduleStep.CANCEL
    [expired] = plan([t], [record_for(t)], now=t.end)
    assert expired.step is ScheduleStep.CANCEL
    for final in ("adopted", "canceled", "gone"):
        assert plan([], [record_for(t, status=final)], now=NOW) == []


def test_an_unanswered_creation_is_looked_for_and_cancels_come_first():
    a, b = target("a"), target("b", start=NOW + 30 * HOUR)
    actions = plan([b], [record_for(a), record_for(b, status="creating", event_id=None)], now=NOW)
    assert [x.step for x in actions] == [ScheduleStep.CANCEL, ScheduleStep.RECOVER]
    assert actions[1].spec is not None  # still wanted: created if not found
    [lost] = plan([], [record_for(a, status="creating", event_id=None)], now=NOW)
    assert lost.step is ScheduleStep.RECOVER
    assert lost.spec is None


def test_a_refused_guild_waits_unless_the_permission_came_back():
    t = target(refused_at=NOW - timedelta(minutes=10))
    assert plan([t], [], now=NOW) == []
    [action] = plan([t], [], now=NOW, permitted={1})
    assert action.refused
    assert len(plan([target(refused_at=NOW - 2 * HOUR)], [], now=NOW)) == 1


def test_a_stream_going_live_takes_over_the_nearest_broadcast_of_its_window():
    today = target("today", start=NOW + timedelta(minutes=30))
    tomorrow = target("tomorrow", start=NOW + 24 * HOUR)
    yesterday = target("yesterday", start=NOW - 26 * HOUR)
    records = [record_for(t) for t in (tomorrow, today, yesterday)]
    found = adoptable(records, NOW)
    assert found is not None
    assert found.segment_id == "today"
    late = adoptable(records, today.start + HOUR)  # an hour late, still inside the broadcast
    assert late is not None
    assert late.segment_id == "today"
    assert adoptable(records, today.start - 2 * HOUR) is None  # too early for any
    assert adoptable([record_for(today, status="creating", event_id=None)], NOW) is None
