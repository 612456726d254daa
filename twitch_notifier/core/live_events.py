"""Live scheduled events: one Discord guild event per (guild, announced live stream), kept current, then completed.

`plan` decides, from what should exist (targets) and what does (stored records), which Discord call each (guild,
stream) needs; `LiveEvents` makes those calls through an `EventCalendar` after a round's announcements, at the
pacer's background priority, and stores each outcome at once, so that a restart continues the same event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from twitch_notifier.core.pass_loop import PassLoop
from twitch_notifier.core.ports import (
    AnnounceError,
    EventCalendar,
    EventsRefused,
    LiveEventStore,
    MessageGone,
    StillRunning,
    UpcomingEvents,
)
from twitch_notifier.models import ListedEvent, LiveEventRecord, LiveEventTarget, ScheduledEventSpec, ShardScope

__all__ = [
    "ACTIVE",
    "CANCELED",
    "COMPLETED",
    "EVENT_LENGTH",
    "SCHEDULED",
    "EventAction",
    "EventsReport",
    "LiveEvents",
    "Step",
    "cut",
    "event_description",
    "event_name",
    "event_spec",
    "find_lost_event",
    "plan",
    "stream_url",
]

_log = logging.getLogger(__name__)

# Discord's guild scheduled event statuses; SCHEDULED -> ACTIVE -> COMPLETED, or SCHEDULED -> CANCELED.
SCHEDULED, ACTIVE, COMPLETED, CANCELED = 1, 2, 3, 4
NAME_LIMIT = 100
DESCRIPTION_LIMIT = 1000
LOCATION_LIMIT = 100
EVENT_LENGTH = timedelta(hours=4)
"""How far ahead an event's end is set (Discord needs an end for an EXTERNAL event); extended while it runs."""
EXTEND_BEFORE = timedelta(hours=1)
"""An event whose end is this close while the stream is still live gets EVENT_LENGTH more."""
START_LEAD = timedelta(seconds=10)
"""Discord refuses to create an event that starts in the past: it is created starting a moment ahead, then
started at once (SCHEDULED -> ACTIVE may happen before the scheduled start)."""
REFUSAL_PAUSE = timedelta(hours=1)
"""After Discord refused a guild's events (a permission missing), they are not asked for again this long,
unless an admin sets the option again."""
FINAL_RETENTION = timedelta(days=7)
"""How long a finished event's record is kept (a stream that ended is never live again under its id)."""
SYNC_INTERVAL = 60.0
"""Seconds between two passes when no round asked for one: ends are extended and failures retried."""
FIND_SLACK = timedelta(minutes=1)
"""A lost event (its creation timed out) starts at most this long before its record was written."""
FINAL_STATUSES = frozenset({"completed", "canceled", "gone"})


class Step(StrEnum):
    """The Discord call one (guild, stream) needs."""

    CREATE = "create"
    """No event yet: create it (starting a moment ahead), then start it."""
    RECOVER = "recover"
    """A creation was asked for but its answer never stored: look for the event before creating another."""
    START = "start"
    """Created but not started (the start failed): start it."""
    UPDATE = "update"
    """Live: its title or game changed (at most once per live-update interval), or its end is near."""
    COMPLETE = "complete"
    """The stream ended (or the guild no longer follows it, or turned the option off): end the event."""
    CANCEL = "cancel"
    """Like COMPLETE, for an event that never started (Discord only lets a SCHEDULED event be cancelled)."""


@dataclass(frozen=True, slots=True)
class EventAction:
    """One step for one (guild, stream): `spec` is what the event should show (None when it ends)."""

    step: Step
    guild_id: int
    stream_id: str
    twitch_user_id: str
    record: LiveEventRecord | None
    spec: ScheduledEventSpec | None = None
    refused: bool = False
    """The guild's events were refused before: a success clears the recorded refusal."""


@dataclass(slots=True)
class EventsReport:
    """What one pass did."""

    created: int = 0
    updated: int = 0
    ended: int = 0
    failed: int = 0
    refused_guilds: list[int] = field(default_factory=list)


def stream_url(login: str) -> str:
    return f"https://www.twitch.tv/{login}"


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` - 1 characters and an ellipsis (Discord refuses longer names)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def event_name(title: str, display_name: str) -> str:
    """The stream's title on one line, cut to Discord's 100 characters; never empty (Discord needs 1-100)."""
    name = " ".join(title.split())
    return cut(name or f"{display_name} is live on Twitch", NAME_LIMIT)


def event_description(display_name: str, game_name: str) -> str:
    game = " ".join(game_name.split())
    text = f"{display_name} is live on Twitch" + (f", playing {game}." if game else ".")
    return cut(text, DESCRIPTION_LIMIT)


def event_spec(target: LiveEventTarget, now: datetime, *, ends_at: datetime | None = None) -> ScheduledEventSpec:
    """What `target`'s event shows; a new event starts START_LEAD from `now` and ends EVENT_LENGTH later."""
    return ScheduledEventSpec(
        name=event_name(target.title, target.display_name),
        description=event_description(target.display_name, target.game_name),
        location=cut(stream_url(target.login), LOCATION_LIMIT),
        start=now + START_LEAD,
        end=ends_at if ends_at is not None else now + EVENT_LENGTH,
    )


def plan(
    targets: Iterable[LiveEventTarget],
    records: Iterable[LiveEventRecord],
    *,
    now: datetime,
    update_interval: timedelta,
    refusal_pause: timedelta = REFUSAL_PAUSE,
    permitted: Collection[int] = (),
) -> list[EventAction]:
    """The Discord call each (guild, stream) needs now, ordered by guild: ends first (they free Discord's limit
    of 100 open events per guild), then creations, then the rest. A (guild, stream) whose record is final gets
    nothing, whatever the target says. A guild refused less than `refusal_pause` ago is left alone, unless it is
    in `permitted` (the permission it lacked has been granted since)."""
    wanted = {(t.guild_id, t.stream_id): t for t in targets}
    stored = {(r.guild_id, r.stream_id): r for r in records}
    actions: list[EventAction] = []
    for key in sorted(wanted.keys() | stored.keys()):
        target, record = wanted.get(key), stored.get(key)
        pause = timedelta(0) if key[0] in permitted else refusal_pause
        action = _step(target, record, now=now, update_interval=update_interval, refusal_pause=pause)
        if action is not None:
            actions.append(action)
    order = {Step.COMPLETE: 0, Step.CANCEL: 0, Step.RECOVER: 1, Step.CREATE: 1, Step.START: 2, Step.UPDATE: 3}
    return sorted(actions, key=lambda a: (a.guild_id, order[a.step], a.stream_id))


def _step(
    target: LiveEventTarget | None,
    record: LiveEventRecord | None,
    *,
    now: datetime,
    update_interval: timedelta,
    refusal_pause: timedelta,
) -> EventAction | None:
    if record is not None and record.status in FINAL_STATUSES:
        return None
    if target is None:
        if record is None:
            return None
        step = {"creating": Step.RECOVER, "scheduled": Step.CANCEL}.get(record.status, Step.COMPLETE)
        return EventAction(step, record.guild_id, record.stream_id, record.twitch_user_id, record)
    refused_at = target.refused_at
    if refused_at is not None and now - refused_at < refusal_pause:
        return None
    refused = refused_at is not None

    live = target

    def action(step: Step, spec: ScheduledEventSpec) -> EventAction:
        return EventAction(step, live.guild_id, live.stream_id, live.twitch_user_id, record, spec, refused)

    if record is None:
        return action(Step.CREATE, event_spec(target, now))
    if record.status == "creating":
        return action(Step.RECOVER, event_spec(target, now))
    if record.status == "scheduled":
        return action(Step.START, event_spec(target, now, ends_at=record.ends_at))
    extend = record.ends_at is None or record.ends_at - now <= EXTEND_BEFORE
    spec = event_spec(target, now, ends_at=None if extend else record.ends_at)
    changed = (spec.name, spec.description) != (record.name, record.description)
    if extend or (changed and now - record.synced_at >= update_interval):
        return action(Step.UPDATE, spec)
    return None


def find_lost_event(listed: Iterable[ListedEvent], record: LiveEventRecord) -> ListedEvent | None:
    """The event a creation that was never answered made, if it made one: this bot's, at the stream's URL,
    starting after the record was written (less a little slack), not finished."""
    earliest = record.created_at - FIND_SLACK
    found = [
        e
        for e in listed
        if e.mine and e.location == record.location and e.status in (SCHEDULED, ACTIVE) and e.start >= earliest
    ]
    return min(found, key=lambda e: e.start) if found else None


class LiveEvents:
    """Runs `plan` against Discord: `poke()` after a round of announcements (or every SYNC_INTERVAL), one pass
    at a time; guilds are handled side by side (a slow one holds up no other), each guild's calls in turn."""

    def __init__(
        self,
        store: LiveEventStore,
        calendar: EventCalendar,
        *,
        clock: Callable[[], datetime],
        update_interval: timedelta,
        scope: ShardScope | None = None,
        sync_interval: float = SYNC_INTERVAL,
        max_concurrent_guilds: int = 4,
        upcoming: UpcomingEvents | None = None,
    ) -> None:
        self._store = store
        self._calendar = calendar
        self.upcoming = upcoming
        """The events made ahead from Twitch schedules: a stream going live takes its broadcast's over."""
        self.clock = clock
        self.update_interval = update_interval
        self.scope = scope
        self.sync_interval = sync_interval
        self._guild_limit = asyncio.Semaphore(max_concurrent_guilds)
        self._lock = asyncio.Lock()
        self._loop = PassLoop(
            self.sync,
            interval=lambda: self.sync_interval,
            name="live events",
            failure="A pass over the live scheduled events failed; the next one runs as usual",
        )
        self._dormant = False  # no guild keeps live events: rounds do not wake the loop, only its timer does
        # Creations given up on but still running: not looked for nor made again until they end.
        self._creating: dict[tuple[int, str], asyncio.Future[Any]] = {}
        self._pruned_at: datetime | None = None
        # Guilds whose refusal came from Discord itself (a 403), when: their cached permissions are not trusted.
        self._refused_by_discord: dict[int, datetime] = {}
        self._last_failure: dict[tuple[int, str], str] = {}  # a failure repeated pass after pass is logged once
        self.passes = 0

    @property
    def running(self) -> bool:
        return self._loop.running

    def poke(self) -> None:
        """A round of announcements is over: run a pass soon (never holding up the round), unless no guild keeps
        live events (the last pass found none): then a round costs nothing, and the loop's timer looks again."""
        if not self._dormant:
            self._loop.wake()

    def wake(self) -> None:
        """A server turned live events on or off here: run a pass now, dormant or not."""
        self._dormant = False
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop (a pass under way is cut short; its Discord requests run to their end on their own)."""
        await self._loop.stop()

    async def sync(self) -> EventsReport:
        """One pass: read what should be and what is, make the calls, store each outcome."""
        report = EventsReport()
        async with self._lock:
            self._creating = {key: f for key, f in self._creating.items() if not f.done()}
            now = self.clock()
            self._dormant = not await self._store.live_events_wanted(self.scope)
            if self._dormant:
                self.passes += 1
                return report
            targets = await self._store.live_event_targets(self.scope)
            records = await self._store.live_event_records(self.scope)
            actions = [
                a
                for a in plan(
                    targets,
                    records,
                    now=now,
                    update_interval=self.update_interval,
                    permitted=self._permitted(targets, now),
                )
                if (a.guild_id, a.stream_id) not in self._creating
            ]
            by_guild: dict[int, list[EventAction]] = {}
            for action in actions:
                by_guild.setdefault(action.guild_id, []).append(action)
            results = await asyncio.gather(
                *(self._guild(guild_actions, report) for guild_actions in by_guild.values()), return_exceptions=True
            )
            for guild_id, result in zip(by_guild, results, strict=True):
                if isinstance(result, BaseException):
                    report.failed += 1
                    _log.error("Unexpected error with the live events of guild %s", guild_id, exc_info=result)
            if self._pruned_at is None or now - self._pruned_at > timedelta(hours=1):
                self._pruned_at = now
                await self._store.prune_live_events(now - FINAL_RETENTION)
            self.passes += 1
        return report

    def _permitted(self, targets: Iterable[LiveEventTarget], now: datetime) -> set[int]:
        """Refused guilds whose refusal was the bot's own cache, which now grants the permission: the admin
        granted it, so there is no reason to wait out the pause."""
        self._refused_by_discord = {g: at for g, at in self._refused_by_discord.items() if now - at < REFUSAL_PAUSE}
        refused = {t.guild_id for t in targets if t.refused_at is not None}
        return {
            guild_id
            for guild_id in refused - self._refused_by_discord.keys()
            if self._calendar.may_create_events(guild_id)
        }

    def _failed(self, action: EventAction, reason: str) -> int:
        """The log level of a failure: a warning the first time, then debug while it repeats."""
        key = (action.guild_id, action.stream_id)
        repeated = self._last_failure.get(key) == reason
        self._last_failure[key] = reason
        return logging.DEBUG if repeated else logging.WARNING

    async def _guild(self, actions: list[EventAction], report: EventsReport) -> None:
        guild_id = actions[0].guild_id
        async with self._guild_limit:
            succeeded = False
            for action in actions:
                try:
                    await self._do(action, report)
                    succeeded = True
                    self._last_failure.pop((guild_id, action.stream_id), None)
                except EventsRefused as exc:
                    report.refused_guilds.append(guild_id)
                    if exc.asked:
                        self._refused_by_discord[guild_id] = self.clock()
                    _log.warning("Guild %s refused its live scheduled events: %s", guild_id, exc.reason)
                    await self._store.set_events_error(guild_id, exc.reason)
                    return  # none of its other calls can do better: the guild waits REFUSAL_PAUSE
                except MessageGone:
                    # Deleted by a human: forgotten, never made again for this stream.
                    if action.record is not None:
                        await self._save(dataclasses.replace(action.record, status="gone"))
                except StillRunning as exc:
                    report.failed += 1
                    if action.step in (Step.CREATE, Step.RECOVER):
                        self._creating[(guild_id, action.stream_id)] = exc.outcome
                    _log.warning("Discord did not answer a live event call in guild %s: %s", guild_id, exc.reason)
                except AnnounceError as exc:
                    report.failed += 1
                    level = self._failed(action, exc.reason)
                    _log.log(level, "Could not %s the live event of guild %s: %s", action.step, guild_id, exc.reason)
                    if exc.permanent and action.record is not None and action.step is not Step.CREATE:
                        # An event a human ended or changed beyond what the bot may do: left alone from now on.
                        await self._save(dataclasses.replace(action.record, status="gone"))
            if succeeded and any(a.refused for a in actions):
                await self._store.set_events_error(guild_id, None)

    async def _save(self, record: LiveEventRecord) -> None:
        await self._store.save_live_event(record)

    async def _do(self, action: EventAction, report: EventsReport) -> None:
        record, spec = action.record, action.spec
        if record is None:
            if spec is not None:
                await self._create_new(action, spec, report)
            return
        if spec is None or action.step in (Step.COMPLETE, Step.CANCEL):
            await self._end(record, report)
            return
        if record.status == "creating":
            found = await self._recover(record)
            if found is None:
                await self._create(action.guild_id, record, spec, report)
            elif found.status == "scheduled" and found.event_id is not None:
                await self._start(found, found.event_id)
            return
        if record.event_id is None:
            return
        if action.step is Step.START:
            await self._start(record, record.event_id)
            return
        await self._calendar.edit_event(
            action.guild_id,
            record.event_id,
            name=spec.name if spec.name != record.name else None,
            description=spec.description if spec.description != record.description else None,
            end=spec.end if spec.end != record.ends_at else None,
        )
        updated = dataclasses.replace(
            record, name=spec.name, description=spec.description, ends_at=spec.end, synced_at=self.clock()
        )
        await self._save(updated)
        report.updated += 1

    async def _end(self, record: LiveEventRecord, report: EventsReport) -> None:
        """Complete a started event, cancel one that never started (the only ends Discord allows)."""
        if record.status == "creating":
            found = await self._recover(record)
            if found is None:
                await self._save(dataclasses.replace(record, status="canceled"))
                return
            record = found
        if record.event_id is None:
            return
        started = record.status == "active"
        await self._calendar.edit_event(record.guild_id, record.event_id, status=COMPLETED if started else CANCELED)
        await self._save(dataclasses.replace(record, status="completed" if started else "canceled"))
        report.ended += 1

    async def _create_new(self, action: EventAction, spec: ScheduledEventSpec, report: EventsReport) -> None:
        now = self.clock()
        if self.upcoming is not None:
            adopted = await self.upcoming.adopt(action.guild_id, action.twitch_user_id, now)
            if adopted is not None and adopted.event_id is not None:
                await self._take_over(action, spec, adopted.event_id, report)
                return
        record = LiveEventRecord(
            guild_id=action.guild_id,
            stream_id=action.stream_id,
            twitch_user_id=action.twitch_user_id,
            status="creating",
            created_at=now,
            synced_at=now,
            location=spec.location,
        )
        await self._save(record)  # before asking: a restart looks for the event before creating another
        await self._create(action.guild_id, record, spec, report)

    async def _take_over(
        self, action: EventAction, spec: ScheduledEventSpec, event_id: int, report: EventsReport
    ) -> None:
        """Start the upcoming event made for this broadcast from the Twitch schedule, showing the stream, in one
        call. If a human deleted it meanwhile, a new event is made as usual."""
        now = self.clock()
        record = LiveEventRecord(
            guild_id=action.guild_id,
            stream_id=action.stream_id,
            twitch_user_id=action.twitch_user_id,
            status="scheduled",
            created_at=now,
            synced_at=now,
            event_id=event_id,
            location=spec.location,
        )
        await self._save(record)  # a failure below leaves it "scheduled": the next pass starts it
        try:
            await self._calendar.edit_event(
                action.guild_id, event_id, status=ACTIVE, name=spec.name, description=spec.description, end=spec.end
            )
        except MessageGone:
            await self._create_new(action, spec, report)
            return
        await self._save(
            dataclasses.replace(
                record, status="active", name=spec.name, description=spec.description, ends_at=spec.end, synced_at=now
            )
        )
        report.created += 1
        _log.info("Started upcoming event %s in guild %s for stream %s", event_id, action.guild_id, action.stream_id)

    async def _create(
        self, guild_id: int, record: LiveEventRecord, spec: ScheduledEventSpec, report: EventsReport
    ) -> None:
        event_id = await self._calendar.create_event(guild_id, spec)
        record = dataclasses.replace(
            record,
            event_id=event_id,
            status="scheduled",
            name=spec.name,
            description=spec.description,
            location=spec.location,
            ends_at=spec.end,
            synced_at=self.clock(),
        )
        await self._save(record)
        report.created += 1
        _log.info("Created live event %s in guild %s for stream %s", event_id, guild_id, record.stream_id)
        await self._start(record, event_id)

    async def _start(self, record: LiveEventRecord, event_id: int) -> None:
        await self._calendar.edit_event(record.guild_id, event_id, status=ACTIVE)
        await self._save(dataclasses.replace(record, status="active"))

    async def _recover(self, record: LiveEventRecord) -> LiveEventRecord | None:
        """Look for the event a creation that was never answered made; store and return its record if found."""
        found = find_lost_event(await self._calendar.list_events(record.guild_id), record)
        if found is None:
            return None
        status = "active" if found.status == ACTIVE else "scheduled"
        record = dataclasses.replace(record, event_id=found.event_id, status=status)
        await self._save(record)
        _log.info(
            "Found live event %s of guild %s again (its creation went unanswered)", found.event_id, record.guild_id
        )
        return record
