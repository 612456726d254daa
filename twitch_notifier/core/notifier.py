"""The notifier: turns observations of Twitch into stored live state and one announcement per subscription.

Any event source feeds it a StreamsSnapshot (the poll loop, EventSub pushes); the messages come from a
`CardRenderer` and go out through an `Announcer`, so this module knows nothing of discord.py, of the message
layout, or of SQL (it speaks to a `NotifierStore`).

Two kinds of round, each one at a time: an *announcement round* (store an observation, post what is pending)
and a *card round* (cards following their filters, live updates, cards of ended streams closed). They run
side by side, so a go-live is never queued behind a round of hundreds of card edits; a card round skips a
subscription whose card an announcement round has just taken over (a restart within the grace), and the next
card round, reading afresh, does what was skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from twitch_notifier.core.filters import ExitReason, exit_reason, title_allows
from twitch_notifier.core.grace import effective_grace, is_reconnect
from twitch_notifier.core.history import StreamSummary, observations, summarize
from twitch_notifier.core.opt_in import PingDecision, announcement_ping
from twitch_notifier.core.ports import (
    AnnounceError,
    Announcer,
    CardRenderer,
    MessageGone,
    NotifierStore,
    StillRunning,
)
from twitch_notifier.core.publishing import Publisher
from twitch_notifier.core.tracker import reconcile, screen_poll
from twitch_notifier.models import (
    Announcement,
    CardToClose,
    CardUpdate,
    Category,
    EndAction,
    FilteredCard,
    LiveStream,
    PendingAnnouncement,
    PreviousCard,
    ShardScope,
    Streamer,
)
from twitch_notifier.twitch.errors import TwitchError
from twitch_notifier.twitch.mapping import streamer_from_stream
from twitch_notifier.twitch.models import StreamsSnapshot, TwitchStream

_log = logging.getLogger(__name__)

ANNOUNCEMENT_RETENTION = timedelta(days=30)
LIVE_UPDATE_INTERVAL = timedelta(minutes=5)
"""A live card is edited at most this often, and only when what it shows has changed."""
BOX_ART_MAX_AGE = timedelta(days=1)
RETIRE_WAIT = 20.0
"""How long a removal waits for a Discord call already under way for that subscription (the announcer's
own timeout is shorter, so this is only reached if Discord hangs past it)."""
NONCE_LENGTH = 25
"""Discord accepts message nonces of at most 25 characters."""
PUSH_LISTING_GRACE = timedelta(minutes=5)
"""How long a stream EventSub reported live is kept live while the poll's listing does not show it yet
(Twitch's listing lags a go-live by 30-60 s); after that the poll's misses count again."""
CLAIM_LEASE = timedelta(minutes=2)
"""How long a claim on an announcement keeps another process from posting it: longer than any one post takes
(the announcer gives up waiting long before), short enough that a crashed claimer's posts are taken over soon.
A process that takes over a shard range drops the old holder's claims at once (see cluster.coordinator)."""
PUSH_ENDED_MEMORY = timedelta(minutes=30)
"""How long a stream EventSub reported ended is remembered, so that the listing's stale copy of it (or a
late redelivery of its go-live) does not bring it back."""

VodLookup = Callable[[str, str], Awaitable[str | None]]
"""(user id, stream id) -> URL of that stream's VOD, or None."""
ArtLookup = Callable[[list[str]], Awaitable[list[Category]]]
"""Game ids -> their categories with box art (batched by the implementation)."""


def announcement_nonce(pending: PendingAnnouncement) -> str:
    """A deterministic message nonce (Discord allows at most 25 characters) for one announcement."""
    digest = hashlib.blake2b(f"{pending.subscription_id}:{pending.stream_id}".encode(), digest_size=12).hexdigest()
    return digest[:NONCE_LENGTH]


@dataclass(slots=True)
class _Work:
    """One Discord call for a subscription: `later` is set when its request outlives the call."""

    later: Awaitable[None] | None = None


@dataclass(slots=True)
class _CardLock:
    """One subscription's card lock, and how many calls hold or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class CardEdit(Enum):
    """How editing one live card went."""

    DONE = "done"
    REFUSED = "refused"
    """A permanent refusal (permission taken away): not retried until the stream changes again."""
    FAILED = "failed"
    """A transient failure: retried next cycle."""
    GONE = "gone"
    """The message was deleted: the card is forgotten."""


@dataclass(slots=True)
class CycleReport:
    """What one observation changed; logged and exported as metrics."""

    checked: int = 0
    failed: int = 0
    live: int = 0
    started: int = 0
    ended: int = 0
    announced: int = 0
    announce_failed: int = 0
    cards_updated: int = 0
    cards_closed: int = 0
    twitch_requests: int = 0
    duration: float = 0.0
    errors: list[str] = field(default_factory=list)
    push_latencies: list[float] = field(default_factory=list)
    """Seconds from a push notification's arrival to each announcement it caused being posted."""


class Notifier:
    """Owns the live state: apply an observation, then post whatever has not been announced yet."""

    def __init__(
        self,
        db: NotifierStore,
        announcer: Announcer,
        *,
        renderer: CardRenderer,
        offline_after_polls: int = 2,
        max_concurrent_sends: int = 10,
        vod_lookup: VodLookup | None = None,
        art_lookup: ArtLookup | None = None,
        update_interval: timedelta = LIVE_UPDATE_INTERVAL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        scope: ShardScope | None = None,
        owner: str = "solo",
        claim_lease: timedelta = CLAIM_LEASE,
        on_live_changed: Callable[[], Awaitable[None]] | None = None,
        publisher: Publisher | None = None,
        restart_grace: timedelta = timedelta(0),
    ) -> None:
        """`scope` limits posting and editing to the guilds of this process's Discord shards (None: every guild);
        `owner` names this process in announcement claims; `on_live_changed` is awaited after each write of
        live state, so the processes running the other shards post for their guilds (cluster.coordinator);
        `publisher` publishes new announcements of guilds that chose to, in the background (never their edits)."""
        self._db = db
        self.publisher = publisher
        self.restart_grace = restart_grace
        """A new stream of a streamer within this long of the last one's end continues its card (guilds may
        set their own; see core.grace)."""
        self.scope = scope
        self.owner = owner
        self._claim_lease = claim_lease
        self._on_live_changed = on_live_changed
        self.after_round: Callable[[], None] | None = None
        """Called (not awaited) once a round's posts, edits and closes are done: live events follow them."""
        self._monotonic = monotonic
        self._announcer = announcer
        self._renderer = renderer
        self._offline_after_polls = offline_after_polls
        self._vod_lookup = vod_lookup
        self._art_lookup = art_lookup
        self.update_interval = update_interval
        self.clock = clock
        # Posts and card edits each have their own bound: a round of edits never holds a post's turn.
        self._announce_limit = asyncio.Semaphore(max_concurrent_sends)
        self._send_limit = asyncio.Semaphore(max_concurrent_sends)
        # Removal: subscriptions being removed are skipped by every round from the moment they are retired,
        # and the Discord calls already under way for one are waited for (see `retire`).
        self._retired: set[int] = set()
        # Retired and deleted, with when (a round number): unmarked once no round begun before is still running.
        self._removed: dict[int, int] = {}
        self._round_numbers = itertools.count()
        self._running_rounds: set[int] = set()
        # Per subscription, the Discord calls not yet over, each a future done when its call is: including a
        # call the announcer gave up waiting for (StillRunning), which may still post or edit.
        self._in_flight: dict[int, set[asyncio.Future[None]]] = {}
        self._late: set[asyncio.Task[None]] = set()
        # Observations and announcement rounds never interleave: two sources must not both post a stream.
        self._lock = asyncio.Lock()
        # Card rounds run one at a time, in order, beside the announcement rounds (see the module's docstring).
        self._cards_lock = asyncio.Lock()
        self._cards_queued = False  # a background card round is waiting for its turn: it will read afresh
        self._card_rounds: set[asyncio.Task[None]] = set()
        # Per subscription, a lock a continuation (an announcement taking over a card) and card edits share, and
        # the subscriptions continued since the card round under way began (its lists may be stale for them).
        self._card_locks: dict[int, _CardLock] = {}
        self._continued: set[int] = set()
        # Streams push ended: the listing's stale copy of one (or a late go-live) must not bring it back.
        self._ended_by_push: dict[str, datetime] = {}

    async def apply(self, snapshot: StreamsSnapshot, report: CycleReport | None = None) -> CycleReport:
        """Record a poll of Twitch and announce every stream not yet announced."""
        report = report or CycleReport()
        async with self._lock:
            self._forget_old_push_marks()
            previous = await self._db.live_streams()
            snapshot = screen_poll(
                snapshot,
                previous,
                self._ended_by_push.keys(),
                now=self.clock(),
                listing_grace=PUSH_LISTING_GRACE,
            )
            await self._observe(snapshot, report, previous=previous)
        await self._card_round(report)  # outside the lock: a push's go-live does not wait for these edits
        return report

    async def fan_out(self, report: CycleReport | None = None) -> CycleReport:
        """Post, update and close the cards of this process's guilds from what the tables say, without observing
        Twitch: what a process that is not the leader does when woken (and on its own schedule)."""
        report = report or CycleReport()
        async with self._lock:
            await self._announce_round(report)
        await self._card_round(report)
        return report

    async def push_online(
        self, stream: TwitchStream, *, received_at: float | None = None, report: CycleReport | None = None
    ) -> CycleReport:
        """EventSub says `stream` went live: announce it now, without waiting for the listing. A stream
        already known (a redelivery, or the poll was first), one push has ended, or one older than the
        streamer's current stream changes nothing. `received_at` (monotonic) times the announcements."""
        report = report or CycleReport()
        async with self._lock:
            self._forget_old_push_marks()
            user_id = stream.user_id
            if stream.id in self._ended_by_push:
                _log.info("Ignoring a go-live of stream %s of user %s, which has ended", stream.id, user_id)
                return report
            previous = await self._db.live_streams()
            current = previous.get(user_id)
            if current is not None and current.stream_id == stream.id and current.stream_type != stream.type:
                # The poll found it first, and only push knows a rerun: its cards may leave a filter now.
                await self._db.set_stream_type(user_id, stream.id, stream.type)
                await self._announce_round(report)
                self._card_round_soon()
                return report
            if current is not None and (current.stream_id == stream.id or current.started_at > stream.started_at):
                return report
            snapshot = StreamsSnapshot({user_id: stream}, frozenset({user_id}), frozenset(), 0)
            await self._observe(
                snapshot,
                report,
                received_at=received_at,
                previous=previous,
                pushed_at={user_id: self.clock()},
                viewers_counted=False,
            )
        self._card_round_soon()
        return report

    async def push_offline(self, user_id: str, *, sent_at: datetime | None = None) -> CycleReport:
        """EventSub says the streamer went offline: the stream ends now (no two-poll debounce), unless the
        message predates the stream live now (a late offline of the previous one)."""
        report = CycleReport()
        async with self._lock:
            previous = await self._db.live_streams()
            current = previous.get(user_id)
            if current is None:
                return report
            if sent_at is not None and sent_at < current.started_at:
                _log.info("Ignoring an offline of user %s sent before its stream %s began", user_id, current.stream_id)
                return report
            self._ended_by_push[current.stream_id] = self.clock()
            snapshot = StreamsSnapshot({}, frozenset({user_id}), frozenset(), 0)
            await self._observe(snapshot, report, offline_after=1, previous=previous)
        self._card_round_soon()
        return report

    async def push_channel_update(self, user_id: str, *, title: str, game_id: str, game_name: str) -> CycleReport:
        """EventSub says the channel's title or category changed: a live stream takes them at once (its
        card follows on its next update; a game filter it now passes announces it). Offline: nothing."""
        report = CycleReport()
        async with self._lock:
            previous = await self._db.live_streams()
            current = previous.get(user_id)
            if current is None:
                return report
            stream = TwitchStream(
                id=current.stream_id,
                user_id=user_id,
                user_login="",
                user_name="",
                game_id=game_id,
                game_name=game_name,
                title=title,
                viewer_count=current.viewer_count,
                started_at=current.started_at,
                thumbnail_url=current.thumbnail_url,
            )
            snapshot = StreamsSnapshot({user_id: stream}, frozenset({user_id}), frozenset(), 0)
            await self._observe(
                snapshot, report, previous=previous, pushed_at={user_id: current.pushed_at}, viewers_counted=False
            )
        self._card_round_soon()
        return report

    def _forget_old_push_marks(self) -> None:
        now = self.clock()
        for stream_id, at in list(self._ended_by_push.items()):
            if now - at > PUSH_ENDED_MEMORY:
                del self._ended_by_push[stream_id]

    async def _observe(
        self,
        snapshot: StreamsSnapshot,
        report: CycleReport,
        *,
        offline_after: int | None = None,
        received_at: float | None = None,
        previous: dict[str, LiveStream] | None = None,
        pushed_at: dict[str, datetime | None] | None = None,
        viewers_counted: bool = True,
    ) -> None:
        """Under the lock: store what `snapshot` says, then announce what is pending (the caller has the cards
        follow: `_card_round`). `pushed_at` marks streams push reported that the listing has not shown yet (a
        poll's streams clear it). Every stream seen goes into its history too, in the same write; its viewer
        count only when `viewers_counted` (a push carries none worth a sample)."""
        if previous is None:
            previous = await self._db.live_streams()
        outcome = reconcile(previous, snapshot, offline_after or self._offline_after_polls)
        # Twitch ids never change but logins and display names do: follow renames as they are seen.
        await self._db.update_streamer_names(streamer_from_stream(s) for s in snapshot.streams.values() if s.user_login)
        live = outcome.live
        if pushed_at:
            live = [
                dataclasses.replace(s, pushed_at=pushed_at[s.twitch_user_id]) if s.twitch_user_id in pushed_at else s
                for s in live
            ]
        await self._db.apply_live_changes(
            live,
            outcome.missed,
            outcome.offline,
            ended_streams=[s.stream_id for s in outcome.ended],
            observations=observations(live, viewers_counted=viewers_counted),
        )
        report.checked += len(snapshot.checked)
        report.failed += len(snapshot.failed)
        report.live += len(snapshot.streams)
        report.started += len(outcome.started)
        report.ended += len(outcome.ended)
        for stream in outcome.started:
            _log.info("Stream %s of user %s is live: %r", stream.stream_id, stream.twitch_user_id, stream.title)
        for stream in outcome.ended:
            _log.info("Stream %s of user %s has ended", stream.stream_id, stream.twitch_user_id)
        await self._cache_box_art(s.game_id for s in outcome.live)
        if self._on_live_changed is not None and (live or outcome.offline or outcome.ended):
            await self._on_live_changed()  # something to post, edit or close, perhaps in another process's guilds
        await self._announce_round(report, received_at)

    async def _announce_round(self, report: CycleReport, received_at: float | None = None) -> None:
        """Under the lock: post (or continue) every pending announcement of this process's guilds."""
        with self._round():
            await self._announce_pending(report, received_at)
        if self.after_round is not None:
            self.after_round()  # core.live_events: after the posts, so it never delays one

    async def _card_round(self, report: CycleReport, *, queued: bool = False) -> None:
        """One card round (after the round before it): cards follow their filters, live cards are updated, the
        cards of ended streams closed. `queued`: the background round `_card_round_soon` asked for."""
        async with self._cards_lock:
            if queued:
                self._cards_queued = False  # from here on this round reads afresh: later changes need no other
            self._continued.clear()
            with self._round():
                await self._follow_filters(report)
                await self._update_cards(report)
                await self._close_cards(report)
        if self.after_round is not None:
            self.after_round()  # a live event's name follows the title; an ended stream's event completes

    def _card_round_soon(self) -> None:
        """A push changed live state: its cards follow in a background round, so that the next push (a go-live,
        perhaps) is not held up by the edits, or by a card round already under way. One round waits at most:
        it reads the tables when its turn comes, so it covers every change made until then."""
        if self._cards_queued:
            return
        self._cards_queued = True
        task = asyncio.create_task(self._background_card_round(), name="card round")
        self._card_rounds.add(task)
        task.add_done_callback(self._card_rounds.discard)

    async def _background_card_round(self) -> None:
        report = CycleReport()
        try:
            await self._card_round(report, queued=True)
        except Exception:
            _log.exception("A round of card edits failed; the next round tries again")
            return
        if report.cards_updated or report.cards_closed:
            _log.debug("Card round: %d updated, %d closed", report.cards_updated, report.cards_closed)

    async def settle(self) -> None:
        """Wait until the card rounds asked for so far (by pushes) are done."""
        while self._card_rounds:
            await asyncio.gather(*self._card_rounds, return_exceptions=True)

    async def stop(self) -> None:
        """Shutting down: cancel the background card rounds (what they have done is stored per card; the rest
        is redone by the next process's rounds)."""
        for task in list(self._card_rounds):
            task.cancel()
        await asyncio.gather(*self._card_rounds, return_exceptions=True)

    @contextlib.contextmanager
    def _round(self) -> Iterator[None]:
        """Mark a round (of either kind) as running; subscriptions removed before every running round began are
        unmarked now: those rounds read the tables without them (SQLite may give the id to a new one)."""
        number = next(self._round_numbers)
        self._running_rounds.add(number)
        oldest = min(self._running_rounds)
        for subscription_id, removed_at in list(self._removed.items()):
            if removed_at < oldest:
                del self._removed[subscription_id]
                self._retired.discard(subscription_id)
        try:
            yield
        finally:
            self._running_rounds.discard(number)

    @contextlib.asynccontextmanager
    async def _card_turn(self, subscription_id: int, *, continuing: bool = False) -> AsyncIterator[bool]:
        """One subscription's turn to change its cards. A continuation waits for a card edit under way for that
        subscription, and marks it continued; a card edit yields False (skip it: the next round redoes it) if
        the subscription was continued since its round read its list."""
        turn = self._card_locks.setdefault(subscription_id, _CardLock())
        turn.users += 1
        try:
            async with turn.lock:
                if continuing:
                    try:
                        yield True
                    finally:
                        self._continued.add(subscription_id)
                else:
                    yield subscription_id not in self._continued
        finally:
            # Dropped only when no one holds or waits for it (a released lock may already be promised to a waiter).
            turn.users -= 1
            if not turn.users:
                del self._card_locks[subscription_id]

    async def _cache_box_art(self, game_ids: Iterable[str]) -> None:
        """Box art for the categories being streamed, fetched in batches and kept a day; never per post."""
        if self._art_lookup is None:
            return
        ids = {game_id for game_id in game_ids if game_id}
        if not ids:
            return
        stale = await self._db.games_needing_art(ids, self.clock() - BOX_ART_MAX_AGE)
        if not stale:
            return
        try:
            games = await self._art_lookup(stale)
        except TwitchError as exc:
            _log.warning("Could not fetch box art of %d categories: %s", len(stale), exc)
            return
        await self._db.store_games(games)

    async def _announce_pending(self, report: CycleReport, received_at: float | None = None) -> None:
        pending = await self._db.pending_announcements(self.scope)
        if not pending:
            return
        live = await self._db.live_streams()
        # Title filters (words, regex, reruns) SQL cannot apply: the rest waits, pending, for a title that passes.
        pending = [p for p in pending if self._title_passes(p, live.get(p.twitch_user_id))]
        if not pending:
            return
        # Claimed before posting: of two processes that both see it pending (a shard range changing hands), one
        # posts. A claim held by a crashed process expires; Discord's nonce catches a post it made before dying.
        held = await self._db.claim_announcements(pending, self.owner, self.clock() + self._claim_lease)
        pending = [p for p in pending if (p.subscription_id, p.stream_id) in held]
        if not pending:
            return
        streamers = await self._db.streamers_by_id({p.twitch_user_id for p in pending})
        results = await asyncio.gather(
            *(
                self._announce_or_continue(p, live.get(p.twitch_user_id), streamers.get(p.twitch_user_id))
                for p in pending
            ),
            return_exceptions=True,
        )
        for pending_item, result in zip(pending, results, strict=True):
            if result is True:
                report.cards_updated += 1  # a restart within the grace: the card continues, nothing is posted
            elif isinstance(result, float):
                report.announced += 1
                if received_at is not None:
                    report.push_latencies.append(max(0.0, result - received_at))
            else:
                report.announce_failed += 1
                if isinstance(result, BaseException):
                    _log.error(
                        "Unexpected error announcing stream %s in channel %s",
                        pending_item.stream_id,
                        pending_item.channel_id,
                        exc_info=result,
                    )
                    report.errors.append(repr(result))

    # -- title filters and the restart grace ----------------------------------------------------------

    @staticmethod
    def _title_passes(pending: PendingAnnouncement, stream: LiveStream | None) -> bool:
        if stream is None or pending.title_filter_unreadable:
            return stream is None  # gone meanwhile: _announce_one skips it; an unreadable filter fails closed
        return title_allows(pending.title_filter, stream.title, stream.stream_type)

    def _continues(self, pending: PendingAnnouncement, stream: LiveStream | None) -> PreviousCard | None:
        """The card this pending stream continues, if it is a restart within the guild's grace."""
        previous = pending.previous
        if previous is None or stream is None or stream.stream_id != pending.stream_id:
            return None
        grace = effective_grace(pending.restart_grace_seconds, self.restart_grace)
        if not is_reconnect(previous.ended_at, stream.started_at, grace, previous_started_at=previous.started_at):
            return None
        return previous

    async def _announce_or_continue(
        self, pending: PendingAnnouncement, stream: LiveStream | None, streamer: Streamer | None
    ) -> float | bool | None:
        previous = self._continues(pending, stream)
        if previous is not None and stream is not None and streamer is not None:
            return await self._continue_one(pending, previous, stream, streamer)
        return await self._announce_one(pending, stream, streamer)

    async def _continue_one(
        self, pending: PendingAnnouncement, previous: PreviousCard, stream: LiveStream, streamer: Streamer
    ) -> bool | None:
        """A restart within the grace: the previous card is edited back to live, noted "reconnected", with no
        ping; if it is gone (deleted at the end, by a moderator, or in another channel now) a card noted so is
        posted instead, with no ping either. True when done; None to try again next cycle."""
        message = self._renderer.reconnected(
            stream,
            streamer,
            template=pending.template,
            box_art_url=pending.box_art_url,
            notify_button=pending.notify_button,
        )
        async with (
            self._card_turn(pending.subscription_id, continuing=True),  # waiting for an edit holds no post's turn
            self._announce_limit,
            self._working_on(pending.subscription_id) as work,
        ):
            if work is None:
                return None
            message_id = previous.message_id
            try:
                if message_id is not None and not previous.deleted and previous.channel_id == pending.channel_id:
                    try:
                        await self._announcer.edit(pending.channel_id, message_id, message, guild_id=pending.guild_id)
                    except MessageGone:
                        message_id = None
                else:
                    message_id = None
                if message_id is None:
                    message_id = await self._announcer.announce(
                        pending.channel_id,
                        stream,
                        streamer,
                        nonce=announcement_nonce(pending),
                        message=message,
                        guild_id=pending.guild_id,
                    )
            except AnnounceError as exc:
                if isinstance(exc, StillRunning):
                    work.later = self._settle(exc)  # tried again next cycle (a post under the same nonce)
                _log.warning(
                    "Could not continue the card of %s in channel %s: %s", streamer.login, pending.channel_id, exc
                )
                return None
            await self._db.record_continuation(pending, message_id, stream, previous.stream_id)
        _log.info(
            "Stream %s of %s continues the card of stream %s in channel %s (restart within the grace)",
            stream.stream_id,
            streamer.login,
            previous.stream_id,
            pending.channel_id,
        )
        return True

    async def _follow_filters(self, report: CycleReport) -> None:
        """Live cards whose stream left its entry's game or title filter follow the guild's choice: edited to say
        so (and back to live when it matches again) or deleted; `keep` guilds are not even read."""
        cards = [c for c in await self._db.filtered_cards(self.scope) if c.subscription_id not in self._retired]
        moves: list[tuple[FilteredCard, ExitReason | None]] = []
        for card in cards:
            reason = exit_reason(
                card.live, games=card.games, title_filter=card.title_filter, unreadable=card.unreadable
            )
            if reason is not None and not card.left:
                moves.append((card, reason))
            elif reason is None and card.left and card.action is EndAction.EDIT:
                moves.append((card, None))
        if not moves:
            return
        results = await asyncio.gather(*(self._follow_one(card, why) for card, why in moves), return_exceptions=True)
        left: list[tuple[int, str]] = []
        back: list[tuple[int, str]] = []
        gone: list[tuple[int, str]] = []
        for (card, why), result in zip(moves, results, strict=True):
            key = (card.subscription_id, card.live.stream_id)
            if isinstance(result, BaseException):
                _log.error("Unexpected error following the filter of message %s", card.message_id, exc_info=result)
                report.errors.append(repr(result))
            elif result is CardEdit.GONE:
                gone.append(key)
            elif result in (CardEdit.DONE, CardEdit.REFUSED):  # a refusal is not retried every cycle
                report.cards_updated += result is CardEdit.DONE
                (left if why is not None else back).append(key)
                if why is not None and card.action is EndAction.DELETE:
                    gone.append(key)
        await self._db.mark_left_filter(left, left=True)
        await self._db.mark_left_filter(back, left=False)
        await self._db.mark_cards_rendered(
            (card.subscription_id, card.live)
            for card, why in moves
            if (card.subscription_id, card.live.stream_id) in back
        )
        await self._db.close_cards(gone)

    async def _follow_one(self, card: FilteredCard, why: ExitReason | None) -> CardEdit:
        """Edit (or delete) one card whose stream left the filter (`why`), or edit it back to live (None)."""
        async with (
            self._send_limit,
            self._card_turn(card.subscription_id) as current,
            self._working_on(card.subscription_id) as work,
        ):
            if work is None or not current:
                return CardEdit.FAILED
            try:
                if why is not None and card.action is EndAction.DELETE:
                    await self._announcer.delete(card.channel_id, card.message_id, guild_id=card.guild_id)
                elif why is not None:
                    message = self._renderer.left_filter(card.live, card.streamer, reason=why, games=card.games)
                    await self._announcer.edit(card.channel_id, card.message_id, message, guild_id=card.guild_id)
                else:
                    message = self._live_card(card)  # exactly as its live updates draw it
                    await self._announcer.edit(card.channel_id, card.message_id, message, guild_id=card.guild_id)
            except MessageGone:
                return CardEdit.GONE
            except AnnounceError as exc:
                if isinstance(exc, StillRunning):
                    work.later = self._settle(exc)
                _log.warning(
                    "Could not follow the filter with card %s in channel %s: %s", card.message_id, card.channel_id, exc
                )
                return CardEdit.REFUSED if exc.permanent else CardEdit.FAILED
        return CardEdit.DONE

    async def _announce_one(
        self, pending: PendingAnnouncement, stream: LiveStream | None, streamer: Streamer | None
    ) -> float | None:
        """Post one announcement; returns when Discord confirmed it (monotonic), None if it was not posted."""
        if stream is None or streamer is None or stream.stream_id != pending.stream_id:
            return None  # removed meanwhile; nothing to post
        decision = announcement_ping(pending, self.clock())
        rendered = self._renderer.live(
            stream,
            streamer,
            ping=decision.ping,
            template=pending.template,
            box_art_url=pending.box_art_url,
            notify_button=pending.notify_button,
        )
        async with self._announce_limit, self._working_on(pending.subscription_id) as work:
            if work is None:
                return None  # removed while this round was under way: nothing more is posted for it
            try:
                message_id = await self._announcer.announce(
                    pending.channel_id,
                    stream,
                    streamer,
                    nonce=announcement_nonce(pending),
                    message=rendered,
                    guild_id=pending.guild_id,
                )
            except AnnounceError as exc:
                if isinstance(exc, StillRunning):
                    work.later = self._record_late(pending, stream, exc, decision)
                level = logging.WARNING if exc.reason != pending.last_error else logging.DEBUG
                _log.log(
                    level,
                    "Could not announce %s in channel %s of guild %s: %s",
                    streamer.login,
                    pending.channel_id,
                    pending.guild_id,
                    exc.reason,
                )
                if exc.permanent and exc.reason != pending.last_error:
                    await self._db.set_subscription_error(
                        pending.subscription_id, exc.reason, channel_id=pending.channel_id
                    )
                return None
            posted_at = self._monotonic()
            # Recorded before the removal waiting on this post goes on, so it finds (and closes) the card.
            await self._db.record_announcement(pending, message_id, stream)
            await self._record_ping(pending, decision)
        if pending.publish and self.publisher is not None:
            self.publisher.submit(pending.channel_id, message_id, guild_id=pending.guild_id)
        _log.info(
            "Announced %s (stream %s) in channel %s of guild %s",
            streamer.login,
            stream.stream_id,
            pending.channel_id,
            pending.guild_id,
        )
        return posted_at

    async def _update_cards(self, report: CycleReport) -> None:
        """Keep live cards current: each at most once per `update_interval`, and only when it changed."""
        cards = await self._db.cards_to_update(self.clock() - self.update_interval, self.scope)
        if not cards:
            return
        results = await asyncio.gather(*(self._update_one(card) for card in cards), return_exceptions=True)
        rendered: list[tuple[int, LiveStream]] = []
        gone: list[tuple[int, str]] = []
        for card, result in zip(cards, results, strict=True):
            if result is CardEdit.DONE:
                report.cards_updated += 1
                rendered.append((card.subscription_id, card.live))
            elif result is CardEdit.REFUSED:
                # A permanent failure (permission taken away) waits for the next change and interval.
                rendered.append((card.subscription_id, card.live))
            elif result is CardEdit.GONE:
                gone.append((card.subscription_id, card.live.stream_id))
            elif isinstance(result, BaseException):
                _log.error("Unexpected error updating message %s", card.message_id, exc_info=result)
                report.errors.append(repr(result))
        await self._db.mark_cards_rendered(rendered)
        await self._db.close_cards(gone)

    def _live_card(self, card: CardUpdate | FilteredCard) -> Announcement:
        """A posted card drawn live again (a live update, or back from "no longer matches"): the ping it was posted
        with (an edit pings nobody anyway), its button, and "reconnected" if it continues a dropped stream."""
        if card.reconnected:  # it keeps saying so, and pings nobody
            return self._renderer.reconnected(
                card.live,
                card.streamer,
                template=card.template,
                box_art_url=card.box_art_url,
                notify_button=card.notify_button,
            )
        return self._renderer.live(
            card.live,
            card.streamer,
            ping=card.ping,
            template=card.template,
            box_art_url=card.box_art_url,
            notify_button=card.notify_button,
        )

    async def _update_one(self, card: CardUpdate) -> CardEdit:
        message = self._live_card(card)
        async with (
            self._send_limit,
            self._card_turn(card.subscription_id) as current,
            self._working_on(card.subscription_id) as work,
        ):
            if work is None:
                return CardEdit.FAILED  # being removed: `retire` closes the card
            if not current:
                return CardEdit.FAILED  # continued meanwhile: the next round draws the card it has now
            try:
                await self._announcer.edit(card.channel_id, card.message_id, message, guild_id=card.guild_id)
            except MessageGone:
                _log.info("Live card %s in channel %s is gone; forgetting it", card.message_id, card.channel_id)
                return CardEdit.GONE
            except AnnounceError as exc:
                if isinstance(exc, StillRunning):
                    work.later = self._settle(exc)  # a removal must not close the card under a late edit
                _log.warning("Could not update live card %s in channel %s: %s", card.message_id, card.channel_id, exc)
                return CardEdit.REFUSED if exc.permanent else CardEdit.FAILED
        return CardEdit.DONE

    async def _close_cards(self, report: CycleReport) -> None:
        """Turn the cards of ended streams into "was live" cards, delete them, or keep them, per guild."""
        cards = [
            card for card in await self._db.cards_to_close(self.scope) if card.subscription_id not in self._retired
        ]
        if not cards:
            return
        vods: dict[str, str | None] = {}
        to_edit = {
            (c.streamer.twitch_user_id, c.stream_id) for c in cards if c.end_action is EndAction.EDIT and c.message_id
        }
        if to_edit and self._vod_lookup is not None:
            # One look-up per ended stream, however many guilds announced it.
            keys = sorted(to_edit)
            found = await asyncio.gather(*(self._find_vod(uid, sid) for uid, sid in keys))
            vods = {sid: url for (_, sid), url in zip(keys, found, strict=True)}
        recaps = await self._recaps(sid for _, sid in to_edit)
        results = await asyncio.gather(
            *(self._close_in_round(card, vods.get(card.stream_id), recaps.get(card.stream_id)) for card in cards),
            return_exceptions=True,
        )
        closed: list[tuple[int, str]] = []
        for card, result in zip(cards, results, strict=True):
            if result is True:
                report.cards_closed += 1
                closed.append((card.subscription_id, card.stream_id))
            elif isinstance(result, BaseException):
                _log.error("Unexpected error closing message %s", card.message_id, exc_info=result)
                report.errors.append(repr(result))
        await self._db.close_cards(closed)

    async def _recaps(self, stream_ids: Iterable[str]) -> dict[str, StreamSummary]:
        """The recap of each ended stream whose card is edited (one read, however many guilds announced it);
        a stream the history does not hold (ended before the bot kept one) gets none."""
        ids = set(stream_ids)
        if not ids:
            return {}
        histories = await self._db.stream_histories(ids)
        return {stream_id: summarize(history) for stream_id, history in histories.items()}

    async def _find_vod(self, user_id: str, stream_id: str) -> str | None:
        if self._vod_lookup is None:
            return None
        try:
            return await self._vod_lookup(user_id, stream_id)
        except TwitchError as exc:
            _log.warning("Could not look up the VOD of stream %s: %s", stream_id, exc)
            return None

    async def _close_in_round(self, card: CardToClose, vod_url: str | None, recap: StreamSummary | None) -> bool:
        async with self._send_limit, self._card_turn(card.subscription_id) as current:
            if not current:
                return False  # continued meanwhile: record_continuation closed it, never to be edited again
            return await self._close_one(card, vod_url, recap)

    async def _close_one(self, card: CardToClose, vod_url: str | None, recap: StreamSummary | None = None) -> bool:
        """True once the card is dealt with for good; False to try again next cycle. (A removal's closes take no
        turn among a round's edits: the admin waiting for the reply is not kept behind them.)"""
        if card.message_id is None or card.end_action is EndAction.KEEP:
            return True  # kept as it is, or a card from before message ids were stored
        try:
            if card.end_action is EndAction.DELETE:
                await self._announcer.delete(card.channel_id, card.message_id, guild_id=card.guild_id)
            else:
                message = self._renderer.ended(
                    card.streamer,
                    title=card.title,
                    game_name=card.game_name,
                    started_at=card.started_at,
                    ended_at=card.ended_at,
                    vod_url=vod_url,
                    recap=recap,
                )
                await self._announcer.edit(card.channel_id, card.message_id, message, guild_id=card.guild_id)
        except MessageGone:
            return True
        except AnnounceError as exc:
            _log.warning(
                "Could not %s the card %s of an ended stream in channel %s: %s",
                card.end_action,
                card.message_id,
                card.channel_id,
                exc,
            )
            return exc.permanent
        return True

    @contextlib.asynccontextmanager
    async def _working_on(self, subscription_id: int) -> AsyncIterator[_Work | None]:
        """Mark a Discord call for one subscription as under way; yields None if it has been retired.

        The check and the mark happen with no await in between, so `retire` either sees the call (and
        waits for it) or the call sees the retirement (and is not made). A call whose request is still
        running when it returns (`work.later`) stays marked until that has finished too."""
        if subscription_id in self._retired:
            yield None
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        calls = self._in_flight.setdefault(subscription_id, set())
        calls.add(done)
        work = _Work()
        try:
            yield work
        finally:
            if work.later is None:
                self._finish(subscription_id, done)
            else:
                task = asyncio.create_task(self._after(work.later, subscription_id, done), name="late Discord call")
                self._late.add(task)
                task.add_done_callback(self._late.discard)

    async def _after(self, later: Awaitable[None], subscription_id: int, done: asyncio.Future[None]) -> None:
        try:
            await later
        except Exception as exc:
            # (the HTTP session closed at shutdown, the store closed) is only worth a line.
            _log.debug("A Discord call given up on for subscription %s ended with %r", subscription_id, exc)
        finally:
            self._finish(subscription_id, done)

    def _finish(self, subscription_id: int, done: asyncio.Future[None]) -> None:
        done.set_result(None)
        calls = self._in_flight.get(subscription_id)
        if calls is not None:
            calls.discard(done)
            if not calls:
                del self._in_flight[subscription_id]

    async def _record_ping(self, pending: PendingAnnouncement, decision: PingDecision) -> None:
        """Remember whom a posted announcement pinged, where the throttle or the card's later edits need it (one
        write per announcement only in guilds with the button or a throttle; a fan-out elsewhere writes nothing)."""
        if decision.remember or (decision.ping and pending.ping_throttle_hours):
            await self._db.record_ping(pending, decision.ping or "", remember=decision.remember)

    async def _record_late(
        self,
        pending: PendingAnnouncement,
        stream: LiveStream,
        outcome: StillRunning,
        decision: PingDecision | None = None,
    ) -> None:
        """A post the announcer gave up waiting for: if it succeeds after all, record it at once (the retry
        would find it through its nonce too, but a removal waiting on it must see the card)."""
        try:
            message_id = await outcome.outcome
        except AnnounceError:
            return  # failed after all: the next round tries again under the same nonce
        await self._db.record_announcement(pending, message_id, stream)
        if decision is not None:
            await self._record_ping(pending, decision)
        _log.info("Announced stream %s in channel %s (Discord answered late)", pending.stream_id, pending.channel_id)

    @staticmethod
    async def _settle(outcome: StillRunning) -> None:
        with contextlib.suppress(AnnounceError):
            await outcome.outcome

    async def retire(self, subscription_id: int, *, wait: float = RETIRE_WAIT) -> int:
        """A subscription is being removed: from now on nothing is posted or edited for it; a call already
        under way is waited for (at most `wait` seconds), then every card it has is closed like a card whose
        stream ended (edited into "was live", deleted or kept, per the server). Returns how many cards could
        not be closed (Discord failed): the caller tells the admin, since the deletion forgets them.
        Call before deleting the subscription: the deletion takes its announcement records with it."""
        self._retired.add(subscription_id)
        calls = set(self._in_flight.get(subscription_id, ()))
        if calls:
            _, still = await asyncio.wait(calls, timeout=wait)
            if still:
                _log.warning("A Discord call for subscription %s is still under way after %s s", subscription_id, wait)
        cards = await self._db.open_cards_of(subscription_id)
        closed = []
        for card in cards:
            if await self._close_one(card, None):
                closed.append((card.subscription_id, card.stream_id))
        await self._db.close_cards(closed)
        return len(cards) - len(closed)

    def unretire(self, subscription_id: int) -> None:
        """The removal failed before the subscription was deleted: it is announced again as usual."""
        self._retired.discard(subscription_id)

    def removed(self, subscription_id: int) -> None:
        """The retired subscription is deleted (or was already gone). Its mark is kept until no round begun
        before now is still running: such a round may still hold it in its list; later ones read the database,
        which no longer has it, and SQLite may then give its id to a new subscription."""
        self._removed[subscription_id] = next(self._round_numbers)
        if self.after_round is not None:
            self.after_round()  # a live event of the removed entry's stream may end now

    async def prune(self) -> int:
        """Forget announcement records older than ANNOUNCEMENT_RETENTION (by the notifier's clock)."""
        return await self._db.prune_announcements(self.clock() - ANNOUNCEMENT_RETENTION)
