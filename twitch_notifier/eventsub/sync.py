"""Keeps the conduit's subscriptions equal to who the servers follow: stream.online, stream.offline and
channel.update for every followed streamer, within Twitch's cost budget.

A full reconciliation reads the whole listing (start-up, hourly, after the conduit changed): it creates
what is missing (409 means present), deletes duplicates, dead ones and those of streamers nobody follows.
Between full ones, an /addstreamer or /removestreamer asks for a quick pass against what the last listing
and the creates since then showed, so push starts (or stops) within a second or two of the reply.

The budget (facts §1, §5, §10.8): creates go by priority (every streamer's stream.online first, then the
offlines, then the updates) and stop as soon as Twitch refuses one for cost or the headroom the last answer
reported is spent. A streamer without stream.online is *poll-only*: still announced, by the poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

from twitch_notifier.core.ports import EventSubApi, PushStore
from twitch_notifier.eventsub.conduit import ConduitKeeper
from twitch_notifier.twitch.errors import TwitchAPIError, TwitchConflict, TwitchError, TwitchLimitExceeded
from twitch_notifier.twitch.eventsub import STREAM_ONLINE, WANTED_TYPES, EventSubListing, EventSubSubscription

__all__ = ["FULL_SYNC_INTERVAL", "POLL_ONLY", "SubscriptionSync", "SyncSummary"]

_log = logging.getLogger(__name__)

POLL_ONLY = "poll_only"
"""A streamer's push state when Twitch's cost budget left no room for its stream.online."""
USER_GONE = "user_removed"
CONDUIT_DELETED = "conduit_deleted"
FULL_SYNC_INTERVAL = 3600.0
RETRY_AFTER_FAILURE = 30.0
CREATE_CONCURRENCY = 4
BATCH_DELAY = 0.2
"""A request waits this long for others (several /addstreamer in a row make one pass)."""

Key = tuple[tuple[str, str], str]  # ((type, version), broadcaster user id)


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """The state of push, for /metrics, /healthz and the log."""

    pushed: int = 0
    poll_only: int = 0
    revoked: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    total_cost: int = 0
    max_total_cost: int = 0
    synced: bool = False


class SubscriptionSync:
    """See the module docstring. `run()` is the worker; `request()` asks it for a pass soon."""

    def __init__(
        self,
        twitch: EventSubApi,
        store: PushStore,
        keeper: ConduitKeeper,
        *,
        full_interval: float = FULL_SYNC_INTERVAL,
        retry_after: float = RETRY_AFTER_FAILURE,
        batch_delay: float = BATCH_DELAY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._twitch = twitch
        self._store = store
        self._keeper = keeper
        self._full_interval = full_interval
        self._retry_after = retry_after
        self._batch_delay = batch_delay
        self._monotonic = monotonic
        self._mine: dict[Key, EventSubSubscription] = {}
        self._states: dict[str, str] | None = None  # user id -> poll_only / revocation status (persisted)
        self._revoked: dict[str, str] = {}  # user id -> status, from revocation messages since the last pass
        self._last_full: float | None = None
        self._synced_generation = -1
        self._needs_full = True
        self._total_cost = 0
        self._max_total_cost = 0
        self._by_status: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.passes = 0
        self._last_split: tuple[int, int, int] | None = None
        self.synced = asyncio.Event()
        """Set after every successful pass (tests and the service wait on it)."""

    # ---------------------------------------------------------------------------------------- control

    def request(self, *, full: bool = False) -> None:
        """Ask for a pass soon (followed streamers changed, a subscription was revoked, a conduit changed)."""
        if full:
            self._needs_full = True
        self.synced.clear()
        self._wake.set()

    async def revoked(self, subscription: EventSubSubscription) -> None:
        """Twitch revoked one of ours: forget it, and let the next pass decide (re-create, or poll-only)."""
        key = (subscription.kind, subscription.broadcaster_user_id)
        if self._mine.get(key, subscription).id == subscription.id:
            self._mine.pop(key, None)
        if subscription.kind == STREAM_ONLINE and subscription.broadcaster_user_id:
            self._revoked[subscription.broadcaster_user_id] = subscription.status or "revoked"
        self.request()

    async def run(self) -> None:
        """Sync now, then whenever asked and at least hourly; a failure is retried after a while."""
        self._wake.set()
        while True:
            due = None if self._last_full is None else self._last_full + self._full_interval - self._monotonic()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, due) if due is not None else None)
            except TimeoutError:
                self._needs_full = True
            await asyncio.sleep(self._batch_delay)
            self._wake.clear()
            try:
                await self.sync()
            except TwitchError as exc:
                _log.warning("Could not sync EventSub subscriptions (%s); retrying in %.0f s", exc, self._retry_after)
                await asyncio.sleep(self._retry_after)
                self._wake.set()

    def summary(self) -> SyncSummary:
        states = self._states or {}
        revoked = Counter(state for state in states.values() if state != POLL_ONLY)
        pushed = {user for (kind, user) in self._mine if kind == STREAM_ONLINE}
        return SyncSummary(
            pushed=len(pushed),
            poll_only=sum(1 for state in states.values() if state == POLL_ONLY),
            revoked=dict(revoked),
            by_status=dict(self._by_status),
            total_cost=self._total_cost,
            max_total_cost=self._max_total_cost,
            synced=self._last_full is not None,
        )

    def push_covers(self, user_id: str) -> bool:
        """Whether this streamer's go-lives are pushed (its stream.online subscription is enabled)."""
        return (STREAM_ONLINE, user_id) in self._mine

    # ------------------------------------------------------------------------------------------- pass

    async def sync(self) -> SyncSummary:
        """One pass (full when due, see the module docstring)."""
        async with self._lock:
            conduit_id = await self._keeper.ensure()
            if self._keeper.generation != self._synced_generation:
                self._needs_full = True
                self._mine.clear()
            # Read every pass: a streamer unfollowed and followed again has a fresh row since the last one.
            self._states = await self._store.push_states()
            wanted = set(await self._store.monitored_user_ids())
            doomed: list[EventSubSubscription] = []
            full = self._needs_full
            if full:
                doomed = await self._read_listing(conduit_id)
            doomed += [sub for (_, user), sub in self._mine.items() if user not in wanted]
            await self._delete(doomed, wanted)
            conflicts = await self._create_missing(conduit_id, wanted, retry_gone=full)
            await self._record_states(wanted)
            if conflicts:
                self._needs_full = True  # a 409 says it exists: the next listing tells its id
                self._wake.set()
            self._synced_generation = self._keeper.generation
            self.passes += 1
            self.synced.set()
            summary = self.summary()
            split = (summary.pushed, summary.poll_only, sum(summary.revoked.values()))
            if split != self._last_split:
                self._last_split = split
                _log.info(
                    "EventSub: %d streamers pushed, %d poll-only (budget), %d polled after a revocation; cost %d of %d",
                    *split,
                    summary.total_cost,
                    summary.max_total_cost,
                )
            return summary

    async def _read_listing(self, conduit_id: str) -> list[EventSubSubscription]:
        """Rebuild what is ours from the full listing; returns what should go (dead ones, duplicates)."""
        listing = await self._twitch.get_eventsub_subscriptions()
        self._note_cost(listing)
        self._mine.clear()
        doomed: list[EventSubSubscription] = []
        others = 0
        self._by_status = Counter()
        for sub in listing.subscriptions:
            if sub.method == "conduit" and sub.status == CONDUIT_DELETED and sub.kind in WANTED_TYPES:
                doomed.append(sub)  # dead for good (its conduit is gone), and still counted per condition
                continue
            if sub.method != "conduit" or sub.conduit_id != conduit_id or sub.kind not in WANTED_TYPES:
                others += 1  # not ours to touch: another conduit or transport of the same app, or another type
                continue
            self._by_status[sub.status] += 1
            key = (sub.kind, sub.broadcaster_user_id)
            if sub.status != "enabled":
                doomed.append(sub)
                if sub.kind == STREAM_ONLINE and sub.status in (USER_GONE, "authorization_revoked", "version_removed"):
                    self._revoked.setdefault(sub.broadcaster_user_id, sub.status)
            elif key in self._mine:
                doomed.append(sub)  # a duplicate (an earlier create that timed out but went through)
            else:
                self._mine[key] = sub
        if others:
            _log.debug("%d EventSub subscriptions of this app are not on conduit %s; left alone", others, conduit_id)
        self._last_full = self._monotonic()
        self._needs_full = False
        return doomed

    async def _delete(self, doomed: Iterable[EventSubSubscription], wanted: set[str]) -> None:
        for sub in doomed:
            key = (sub.kind, sub.broadcaster_user_id)
            if not sub.id:  # a 409's placeholder: its id comes with the next listing
                self._mine.pop(key, None)
                self._needs_full = True
                continue
            try:
                await self._twitch.delete_eventsub_subscription(sub.id)
            except TwitchError as exc:
                _log.warning("Could not delete EventSub subscription %s (%s); tried again later", sub.id, exc)
                self._needs_full = True
                continue
            if self._mine.get(key) is sub:
                del self._mine[key]
            if sub.status == "enabled":
                # What it cost is free again: without this the headroom stayed at the last answer's figure
                # until the next full pass (hourly), so removing a pushed streamer left a poll-only one
                # poll-only for up to an hour. If Twitch counts differently, its refusal says so.
                self._total_cost = max(0, self._total_cost - sub.cost)
            if sub.status == "enabled" and sub.broadcaster_user_id not in wanted:
                _log.info("Stopped %s pushes of user %s (nobody follows them)", sub.type, sub.broadcaster_user_id)

    async def _create_missing(self, conduit_id: str, wanted: set[str], *, retry_gone: bool) -> int:
        """Create what is missing, by priority, until the budget says stop; returns how many 409s. A
        streamer Twitch said is gone is asked for again only on a full pass (`retry_gone`)."""
        states = self._states or {}
        conflicts = 0
        budget_spent = False
        limit = asyncio.Semaphore(CREATE_CONCURRENCY)
        for kind in WANTED_TYPES:
            users = sorted(
                u
                for u in wanted
                if (kind, u) not in self._mine
                and (retry_gone or USER_GONE not in (states.get(u), self._revoked.get(u)))
            )
            start = 0
            while start < len(users) and not budget_spent:
                if self._headroom() < 1:
                    budget_spent = True
                    break
                # No more at once than the headroom: a create that costs nothing leaves room for the next.
                chunk = users[start : start + min(CREATE_CONCURRENCY * 4, self._headroom())]
                start += len(chunk)
                results = await asyncio.gather(
                    *(self._create(limit, conduit_id, kind, u) for u in chunk), return_exceptions=True
                )
                failure = next((r for r in results if isinstance(r, BaseException)), None)
                if failure is not None:
                    raise failure
                conflicts += results.count("conflict")
                budget_spent = "budget" in results
            if budget_spent:
                break
        if budget_spent:
            left = sum(1 for u in wanted if (STREAM_ONLINE, u) not in self._mine)
            _log.warning(
                "Twitch's EventSub cost budget is spent (%d of %d): %d streamers stay poll-only (still announced)",
                self._total_cost,
                self._max_total_cost,
                left,
            )
        return conflicts

    async def _create(self, limit: asyncio.Semaphore, conduit_id: str, kind: tuple[str, str], user_id: str) -> str:
        async with limit:
            try:
                answer = await self._twitch.create_eventsub_subscription(
                    kind[0],
                    kind[1],
                    {"broadcaster_user_id": user_id},
                    {"method": "conduit", "conduit_id": conduit_id},
                )
            except TwitchConflict:
                # It exists (an earlier create went through): count it as ours; the next listing has its id.
                self._mine[(kind, user_id)] = EventSubSubscription("", kind[0], kind[1], "enabled", user_id, "conduit")
                return "conflict"
            except TwitchLimitExceeded as exc:
                _log.info("Twitch refused a %s subscription of user %s: %s", kind[0], user_id, exc.message)
                if "cost" not in exc.message.lower():
                    # "maximum subscriptions with type and condition exceeded": this streamer's, not the budget.
                    self._refused(kind, user_id, "refused")
                    return "refused"
                self._total_cost = max(self._total_cost, self._max_total_cost)
                return "budget"
            except TwitchAPIError as exc:
                if exc.status != HTTPStatus.BAD_REQUEST:
                    raise
                message = exc.message.lower()
                if "conduit" in message:
                    await self._keeper.lost(conduit_id)  # Twitch no longer has it: a new one, a full pass
                    self._needs_full = True
                    raise
                _log.warning("Twitch refused a %s subscription of user %s: %s", kind[0], user_id, exc.message)
                self._refused(kind, user_id, USER_GONE if "user" in message and "exist" in message else "refused")
                return "refused"
        self._note_cost(answer)
        for sub in answer.subscriptions:
            self._mine[(sub.kind, sub.broadcaster_user_id or user_id)] = sub
            self._by_status[sub.status] += 1
        if kind == STREAM_ONLINE:
            self._revoked.pop(user_id, None)
        return "created"

    def _refused(self, kind: tuple[str, str], user_id: str, reason: str) -> None:
        if kind == STREAM_ONLINE:
            self._revoked[user_id] = reason

    def _note_cost(self, listing: EventSubListing) -> None:
        if listing.max_total_cost:
            self._total_cost, self._max_total_cost = listing.total_cost, listing.max_total_cost

    def _headroom(self) -> int:
        if not self._max_total_cost:
            return 1_000_000  # unknown until Twitch first answers: try, and let it say
        return self._max_total_cost - self._total_cost

    async def _record_states(self, wanted: set[str]) -> None:
        """Persist each followed streamer's push state where it changed (shown in /streamers)."""
        states = self._states if self._states is not None else {}
        changes: dict[str, str | None] = {}
        for user_id in wanted:
            if (STREAM_ONLINE, user_id) in self._mine:
                state = None
            else:  # why not: what Twitch said this time, else what it said before, else the budget
                state = self._revoked.get(user_id) or states.get(user_id) or POLL_ONLY
            if states.get(user_id) != state:
                changes[user_id] = state
        for user_id in list(states):
            if user_id not in wanted:
                del states[user_id]
        if changes:
            await self._store.set_push_states(changes)
            for user_id, state in changes.items():
                if state is None:
                    states.pop(user_id, None)
                else:
                    states[user_id] = state
        self._states = states
