"""Twitch schedule import: each followed streamer's planned broadcasts as upcoming Discord events.

`refresh` reads the schedules (`GET /helix/schedule`, one request per streamer, since Twitch does not batch it)
of streamers followed by a guild that imports schedules, at most once an hour each, and stores them. `plan`
decides, from the stored schedules (targets) and the events made for them (records), which Discord call each
(guild, streamer, broadcast) needs; `ScheduleEvents.sync` makes those calls through the same `EventCalendar` as
the live events, at the pacer's background priority. When the stream goes live, the live event takes the
broadcast's upcoming event over (`adopt`) instead of making a second one.

A schedule Twitch could not be asked for keeps its last stored state: an event is cancelled only when Twitch said
its broadcast is gone (or cancelled), when its time passed without a stream, or when the guild stopped wanting it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from twitch_notifier.core.live_events import (
    CANCELED,
    DESCRIPTION_LIMIT,
    EVENT_LENGTH,
    LOCATION_LIMIT,
    NAME_LIMIT,
    REFUSAL_PAUSE,
    SCHEDULED,
    cut,
    stream_url,
)
from twitch_notifier.core.pass_loop import PassLoop
from twitch_notifier.core.ports import AnnounceError, EventCalendar, EventsRefused, MessageGone, StillRunning
from twitch_notifier.models import (
    Broadcast,
    ListedEvent,
    ScheduledEventSpec,
    ScheduleEventRecord,
    ScheduleEventTarget,
    ShardScope,
)
from twitch_notifier.twitch.errors import TwitchError
from twitch_notifier.twitch.models import ChannelSchedule

__all__ = [
    "HORIZON",
    "MIN_LEAD",
    "PER_GUILD",
    "PER_STREAMER",
    "REFRESH_INTERVAL",
    "ScheduleAction",
    "ScheduleEvents",
    "ScheduleReport",
    "ScheduleSource",
    "ScheduleStep",
    "ScheduleStore",
    "adoptable",
    "plan",
    "schedule_spec",
    "upcoming",
]

_log = logging.getLogger(__name__)

REFRESH_INTERVAL = timedelta(hours=1)
"""A streamer's schedule is read from Twitch at most this often."""
RETRY_AFTER_FAILURE = timedelta(minutes=10)
"""A schedule Twitch failed to give is asked for again after this long (its last stored state stays meanwhile)."""
HORIZON = timedelta(days=7)
"""Broadcasts starting within this long get an upcoming event."""
MIN_LEAD = timedelta(minutes=5)
"""A broadcast starting sooner than this gets no new event (Discord refuses a start in the past, and the live
event will come), and an existing one's start is no longer moved."""
PER_STREAMER = 3
"""At most this many upcoming events per (guild, streamer): the soonest."""
PER_GUILD = 25
"""At most this many upcoming events per guild (Discord allows 100 open events; the live events need room)."""
ADOPT_AHEAD = timedelta(hours=1)
"""A stream going live up to this long before a broadcast's start takes over its event (early starts happen)."""
FETCHES_PER_PASS = 60
"""At most this many schedules read per pass (a large install's first pass is spread over several)."""
FETCH_CONCURRENCY = 4
SYNC_INTERVAL = 60.0
FINAL_RETENTION = timedelta(days=7)
FIND_SLACK = timedelta(minutes=1)
FINAL_STATUSES = frozenset({"adopted", "canceled", "gone"})


class ScheduleSource(Protocol):
    """Twitch's schedules (twitch_api.TwitchClient in production). Failures are TwitchError."""

    async def get_channel_schedule(
        self, broadcaster_id: str, *, horizon: timedelta | None = None, max_segments: int = 25
    ) -> ChannelSchedule: ...


class ScheduleStore(Protocol):
    """The storage the schedule import keeps its state in (database.Database)."""

    async def schedule_import_wanted(self, scope: ShardScope | None = None) -> bool:
        """Whether any guild imports schedules, or any upcoming event is still open (one cheap query)."""
        ...

    async def schedule_streamers_due(self, *, fresh_before: datetime, failed_before: datetime, limit: int) -> list[str]:
        """Streamers followed by a guild importing schedules whose schedule was last read before `fresh_before`
        (or never), and did not fail after `failed_before`; the stalest first."""
        ...

    async def store_schedule(self, twitch_user_id: str, segments: Sequence[Broadcast], at: datetime) -> None:
        """Replace the streamer's stored broadcasts with `segments`, read at `at`."""
        ...

    async def schedule_fetch_failed(self, twitch_user_id: str, at: datetime) -> None: ...

    async def schedule_event_targets(self, scope: ShardScope | None = None) -> list[ScheduleEventTarget]: ...

    async def schedule_event_records(
        self, scope: ShardScope | None = None, *, guild_id: int | None = None, twitch_user_id: str | None = None
    ) -> list[ScheduleEventRecord]:
        """The upcoming events not final yet (creating or scheduled), optionally of one (guild, streamer)."""
        ...

    async def save_schedule_event(self, record: ScheduleEventRecord) -> None: ...

    async def set_events_error(self, guild_id: int, error: str | None) -> None: ...

    async def prune_schedule_events(self, older_than: datetime) -> int: ...


class ScheduleStep(StrEnum):
    CREATE = "create"
    RECOVER = "recover"
    """A creation was asked for but its answer never stored: look for the event before creating another."""
    UPDATE = "update"
    """The broadcast's title, category or times changed on Twitch."""
    CANCEL = "cancel"
    """The broadcast is gone from the schedule (or cancelled), its time passed, or the guild no longer wants it."""


@dataclass(frozen=True, slots=True)
class ScheduleAction:
    step: ScheduleStep
    guild_id: int
    twitch_user_id: str
    segment_id: str
    record: ScheduleEventRecord | None
    spec: ScheduledEventSpec | None = None
    refused: bool = False


@dataclass(slots=True)
class ScheduleReport:
    fetched: int = 0
    fetch_failures: int = 0
    created: int = 0
    updated: int = 0
    canceled: int = 0
    failed: int = 0
    refused_guilds: list[int] = field(default_factory=list)


def schedule_spec(target: ScheduleEventTarget) -> ScheduledEventSpec:
    """What a broadcast's upcoming event shows: its title, who streams what, at the channel's URL."""
    name = " ".join(target.title.split()) or f"{target.display_name} on Twitch"
    category = " ".join(target.category_name.split())
    description = f"{target.display_name} streams on Twitch" + (f": {category}." if category else ".")
    if target.recurring:
        description += " Every week at this time."
    end = target.end if target.end is not None and target.end > target.start else target.start + EVENT_LENGTH
    return ScheduledEventSpec(
        name=cut(name, NAME_LIMIT),
        description=cut(description, DESCRIPTION_LIMIT),
        location=cut(stream_url(target.login), LOCATION_LIMIT),
        start=target.start,
        end=end,
    )


def upcoming(targets: Iterable[ScheduleEventTarget], now: datetime) -> list[ScheduleEventTarget]:
    """The broadcasts that should have an event: starting between MIN_LEAD and HORIZON from now, the soonest
    PER_STREAMER of each (guild, streamer) and PER_GUILD of each guild."""
    soon = sorted(
        (t for t in targets if MIN_LEAD <= t.start - now <= HORIZON),
        key=lambda t: (t.guild_id, t.start, t.twitch_user_id, t.segment_id),
    )
    per_streamer: dict[tuple[int, str], int] = {}
    per_guild: dict[int, int] = {}
    kept = []
    for target in soon:
        streamer = (target.guild_id, target.twitch_user_id)
        if per_streamer.get(streamer, 0) >= PER_STREAMER or per_guild.get(target.guild_id, 0) >= PER_GUILD:
            continue
        per_streamer[streamer] = per_streamer.get(streamer, 0) + 1
        per_guild[target.guild_id] = per_guild.get(target.guild_id, 0) + 1
        kept.append(target)
    return kept


def plan(
    targets: Iterable[ScheduleEventTarget],
    records: Iterable[ScheduleEventRecord],
    *,
    now: datetime,
    refusal_pause: timedelta = REFUSAL_PAUSE,
    permitted: Collection[int] = (),
) -> list[ScheduleAction]:
    """The Discord call each (guild, streamer, broadcast) needs now, by guild: cancellations first (they free
    Discord's open-event limit), then creations (soonest first), then updates. A guild refused less than
    `refusal_pause` ago is left alone, unless it is in `permitted`."""
    targets = list(targets)
    known = {(t.guild_id, t.twitch_user_id, t.segment_id): t for t in targets}
    wanted = {(t.guild_id, t.twitch_user_id, t.segment_id): t for t in upcoming(targets, now)}
    refused_at = {t.guild_id: t.refused_at for t in targets if t.refused_at is not None}
    actions: list[ScheduleAction] = []

    def paused(guild_id: int) -> bool:
        at = refused_at.get(guild_id)
        return at is not None and guild_id not in permitted and now - at < refusal_pause

    stored: set[tuple[int, str, str]] = set()
    for record in records:
        key = (record.guild_id, record.twitch_user_id, record.segment_id)
        stored.add(key)
        if record.status in FINAL_STATUSES or paused(record.guild_id):
            continue
        target = known.get(key)
        step: ScheduleStep | None = None
        spec: ScheduledEventSpec | None = None
        if record.status == "creating":
            step, spec = ScheduleStep.RECOVER, schedule_spec(wanted[key]) if key in wanted else None
        elif target is None or now >= record.end:
            step = ScheduleStep.CANCEL
        elif record.start - now >= MIN_LEAD:
            spec = schedule_spec(target)
            if spec.start - now < MIN_LEAD:  # moved to a moment Discord would refuse: only the rest is updated
                spec = dataclasses.replace(spec, start=record.start, end=max(spec.end, record.start + MIN_LEAD))
            shown = (record.name, record.description, record.start, record.end)
            if (spec.name, spec.description, spec.start, spec.end) != shown:
                step = ScheduleStep.UPDATE
        if step is not None:
            actions.append(
                ScheduleAction(
                    step,
                    record.guild_id,
                    record.twitch_user_id,
                    record.segment_id,
                    record,
                    spec,
                    record.guild_id in refused_at,
                )
            )
    for key, target in wanted.items():
        if key not in stored and not paused(target.guild_id):
            actions.append(
                ScheduleAction(
                    ScheduleStep.CREATE,
                    target.guild_id,
                    target.twitch_user_id,
                    target.segment_id,
                    None,
                    schedule_spec(target),
                    target.guild_id in refused_at,
                )
            )
    order = {ScheduleStep.CANCEL: 0, ScheduleStep.RECOVER: 1, ScheduleStep.CREATE: 1, ScheduleStep.UPDATE: 2}
    return sorted(
        actions,
        key=lambda a: (a.guild_id, order[a.step], a.spec.start if a.spec else now, a.twitch_user_id, a.segment_id),
    )


def adoptable(records: Iterable[ScheduleEventRecord], now: datetime) -> ScheduleEventRecord | None:
    """The upcoming event a stream going live at `now` takes over: one of its (guild, streamer)'s made events
    whose broadcast starts within ADOPT_AHEAD and has not ended; the one starting nearest to now."""
    found = [
        r
        for r in records
        if r.status == "scheduled" and r.event_id is not None and r.start - ADOPT_AHEAD <= now < r.end
    ]
    return min(found, key=lambda r: abs((r.start - now).total_seconds())) if found else None


def _find_lost_event(listed: Iterable[ListedEvent], record: ScheduleEventRecord) -> ListedEvent | None:
    """The event an unanswered creation made, if it made one: this bot's, at the channel's URL, starting at the
    broadcast's start, not finished."""
    found = [
        e
        for e in listed
        if e.mine
        and e.location == record.location
        and e.status == SCHEDULED
        and abs((e.start - record.start).total_seconds()) <= FIND_SLACK.total_seconds()
    ]
    return found[0] if found else None


class ScheduleEvents:
    """Runs the schedule import: a pass every SYNC_INTERVAL seconds (or at `wake()`) reads the schedules due,
    where `may_fetch()` says so (the process that polls Twitch), then makes the Discord calls for this process's
    guilds; guilds side by side, each guild's calls in turn."""

    def __init__(
        self,
        store: ScheduleStore,
        calendar: EventCalendar,
        twitch: ScheduleSource,
        *,
        clock: Callable[[], datetime],
        scope: ShardScope | None = None,
        may_fetch: Callable[[], bool] = lambda: True,
        sync_interval: float = SYNC_INTERVAL,
        max_concurrent_guilds: int = 4,
    ) -> None:
        self._store = store
        self._calendar = calendar
        self._twitch = twitch
        self.clock = clock
        self.scope = scope
        self.may_fetch = may_fetch
        self.sync_interval = sync_interval
        self._guild_limit = asyncio.Semaphore(max_concurrent_guilds)
        self._lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()
        self._loop = PassLoop(
            self.run_pass,
            interval=lambda: self.sync_interval,
            name="schedule events",
            failure="A pass over the imported Twitch schedules failed; the next one runs as usual",
        )
        self._creating: set[tuple[int, str, str]] = set()
        self._pruned_at: datetime | None = None
        self._last_failure: dict[tuple[int, str, str], str] = {}
        self.passes = 0

    def wake(self) -> None:
        """A server turned the import on or off, or followed someone: run a pass now."""
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def run_pass(self) -> ScheduleReport:
        """Read the schedules due (when this process may), then sync the events."""
        report = ScheduleReport()
        if not await self._store.schedule_import_wanted(self.scope):
            self.passes += 1
            return report
        if self.may_fetch():
            # Its own lock: reading schedules from Twitch touches no event record, so a stream going live
            # (`adopt`) never waits behind Twitch, only behind the Discord calls of a sync.
            async with self._refresh_lock:
                await self._refresh(report)
        async with self._lock:
            await self._sync(report)
            self.passes += 1
        return report

    async def _refresh(self, report: ScheduleReport) -> None:
        now = self.clock()
        due = await self._store.schedule_streamers_due(
            fresh_before=now - REFRESH_INTERVAL, failed_before=now - RETRY_AFTER_FAILURE, limit=FETCHES_PER_PASS
        )
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def fetch(user_id: str) -> None:
            async with limit:
                try:
                    schedule = await self._twitch.get_channel_schedule(user_id, horizon=HORIZON)
                except TwitchError as exc:
                    report.fetch_failures += 1
                    _log.warning("Could not read the Twitch schedule of %s (kept as it was): %s", user_id, exc)
                    await self._store.schedule_fetch_failed(user_id, self.clock())
                    return
                await self._store.store_schedule(user_id, _kept_segments(schedule), self.clock())
                report.fetched += 1

        await asyncio.gather(*(fetch(user_id) for user_id in due))

    async def _sync(self, report: ScheduleReport) -> None:
        now = self.clock()
        targets = await self._store.schedule_event_targets(self.scope)
        records = await self._store.schedule_event_records(self.scope)
        refused = {t.guild_id for t in targets if t.refused_at is not None}
        permitted = {g for g in refused if self._calendar.may_create_events(g)}
        actions = [
            a
            for a in plan(targets, records, now=now, permitted=permitted)
            if (a.guild_id, a.twitch_user_id, a.segment_id) not in self._creating
        ]
        by_guild: dict[int, list[ScheduleAction]] = {}
        for action in actions:
            by_guild.setdefault(action.guild_id, []).append(action)
        results = await asyncio.gather(
            *(self._guild(guild_actions, report) for guild_actions in by_guild.values()), return_exceptions=True
        )
        for guild_id, result in zip(by_guild, results, strict=True):
            if isinstance(result, BaseException):
                report.failed += 1
                _log.error("Unexpected error with the upcoming events of guild %s", guild_id, exc_info=result)
        if self._pruned_at is None or now - self._pruned_at > timedelta(hours=1):
            self._pruned_at = now
            await self._store.prune_schedule_events(now - FINAL_RETENTION)

    async def adopt(self, guild_id: int, twitch_user_id: str, now: datetime) -> ScheduleEventRecord | None:
        """The stream of `twitch_user_id` went live in `guild_id`: hand its broadcast's upcoming event, if it has
        one, over to the live event (marked "adopted", so this import leaves it alone from now on)."""
        async with self._lock:
            records = await self._store.schedule_event_records(guild_id=guild_id, twitch_user_id=twitch_user_id)
            found = adoptable(records, now)
            if found is None:
                return None
            await self._store.save_schedule_event(dataclasses.replace(found, status="adopted", synced_at=now))
            _log.info(
                "Live stream of %s in guild %s takes over upcoming event %s", twitch_user_id, guild_id, found.event_id
            )
            return found

    async def _guild(self, actions: list[ScheduleAction], report: ScheduleReport) -> None:
        guild_id = actions[0].guild_id
        async with self._guild_limit:
            succeeded = False
            for action in actions:
                key = (action.guild_id, action.twitch_user_id, action.segment_id)
                try:
                    await self._do(action, report)
                    succeeded = True
                    self._last_failure.pop(key, None)
                except EventsRefused as exc:
                    report.refused_guilds.append(guild_id)
                    _log.warning("Guild %s refused its upcoming events: %s", guild_id, exc.reason)
                    await self._store.set_events_error(guild_id, exc.reason)
                    return
                except MessageGone:
                    if action.record is not None:
                        await self._save(dataclasses.replace(action.record, status="gone"))
                except StillRunning as exc:
                    report.failed += 1
                    if action.step is ScheduleStep.CREATE:
                        self._creating.add(key)
                        exc.outcome.add_done_callback(functools.partial(_forget, self._creating, key))
                    _log.warning("Discord did not answer an upcoming event call in guild %s: %s", guild_id, exc.reason)
                except AnnounceError as exc:
                    report.failed += 1
                    repeated = self._last_failure.get(key) == exc.reason
                    self._last_failure[key] = exc.reason
                    level = logging.DEBUG if repeated else logging.WARNING
                    _log.log(level, "Could not %s an upcoming event of guild %s: %s", action.step, guild_id, exc.reason)
                    if exc.permanent and action.record is not None:
                        await self._save(dataclasses.replace(action.record, status="gone"))
            if succeeded and any(a.refused for a in actions):
                await self._store.set_events_error(guild_id, None)

    async def _save(self, record: ScheduleEventRecord) -> None:
        await self._store.save_schedule_event(record)

    async def _do(self, action: ScheduleAction, report: ScheduleReport) -> None:
        record, spec = action.record, action.spec
        if action.step is ScheduleStep.CREATE and spec is not None:
            now = self.clock()
            record = ScheduleEventRecord(
                guild_id=action.guild_id,
                twitch_user_id=action.twitch_user_id,
                segment_id=action.segment_id,
                status="creating",
                start=spec.start,
                end=spec.end,
                created_at=now,
                synced_at=now,
                location=spec.location,
            )
            await self._save(record)  # before asking: a restart looks for the event before creating another
            await self._create(record, spec, report)
            return
        if record is None:
            return
        if action.step is ScheduleStep.RECOVER:
            found = _find_lost_event(await self._calendar.list_events(record.guild_id), record)
            if found is not None:
                record = dataclasses.replace(record, event_id=found.event_id, status="scheduled")
                await self._save(record)
            elif spec is not None:
                await self._create(record, spec, report)
                return
            else:
                await self._save(dataclasses.replace(record, status="canceled", synced_at=self.clock()))
                return
            if spec is None:
                await self._cancel(record, report)
            return
        if action.step is ScheduleStep.CANCEL:
            await self._cancel(record, report)
            return
        if spec is None or record.event_id is None:
            return
        await self._calendar.edit_event(
            record.guild_id,
            record.event_id,
            name=spec.name if spec.name != record.name else None,
            description=spec.description if spec.description != record.description else None,
            start=spec.start if spec.start != record.start else None,
            end=spec.end if spec.end != record.end else None,
        )
        await self._save(
            dataclasses.replace(
                record,
                name=spec.name,
                description=spec.description,
                start=spec.start,
                end=spec.end,
                synced_at=self.clock(),
            )
        )
        report.updated += 1

    async def _create(self, record: ScheduleEventRecord, spec: ScheduledEventSpec, report: ScheduleReport) -> None:
        event_id = await self._calendar.create_event(record.guild_id, spec)
        await self._save(
            dataclasses.replace(
                record,
                event_id=event_id,
                status="scheduled",
                name=spec.name,
                description=spec.description,
                location=spec.location,
                start=spec.start,
                end=spec.end,
                synced_at=self.clock(),
            )
        )
        report.created += 1
        _log.info("Created upcoming event %s in guild %s for %s", event_id, record.guild_id, record.twitch_user_id)

    async def _cancel(self, record: ScheduleEventRecord, report: ScheduleReport) -> None:
        if record.event_id is not None:
            await self._calendar.edit_event(record.guild_id, record.event_id, status=CANCELED)
            report.canceled += 1
        await self._save(dataclasses.replace(record, status="canceled", synced_at=self.clock()))


def _forget(creating: set[tuple[int, str, str]], key: tuple[int, str, str], _outcome: object) -> None:
    creating.discard(key)


def _kept_segments(schedule: ChannelSchedule) -> list[Broadcast]:
    """The broadcasts worth an event: not cancelled, not inside the broadcaster's vacation."""
    kept = []
    for segment in schedule.segments:
        if segment.canceled:
            continue
        if (
            schedule.vacation_start is not None
            and schedule.vacation_end is not None
            and schedule.vacation_start <= segment.start < schedule.vacation_end
        ):
            continue
        kept.append(
            Broadcast(
                segment_id=segment.id,
                start=segment.start,
                end=segment.end,
                title=segment.title,
                category_name=segment.category_name,
                recurring=segment.recurring,
            )
        )
    return kept
