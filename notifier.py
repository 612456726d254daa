"""The notifier: turns observations of Twitch into stored live state and one announcement per subscription.

Any event source feeds it a StreamsSnapshot (the poll loop today, EventSub pushes later); the posting
itself goes through an `Announcer`, so this module knows nothing about discord.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from database import Database, LiveStream, PendingAnnouncement, Streamer
from live_tracker import reconcile
from twitch_api import StreamsSnapshot, TwitchClient

_log = logging.getLogger(__name__)

ANNOUNCEMENT_RETENTION = timedelta(days=30)


def announcement_nonce(pending: PendingAnnouncement) -> str:
    """A deterministic message nonce (Discord allows at most 25 characters) for one announcement."""
    digest = hashlib.blake2b(f"{pending.subscription_id}:{pending.stream_id}".encode(), digest_size=12).hexdigest()
    return digest[:25]


class AnnounceError(Exception):
    """Posting failed. `permanent` means retrying cannot help until someone changes something
    (channel deleted, permission missing); the reason is shown to the guild's admins in /streamers."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Announcer(Protocol):
    async def announce(self, channel_id: int, stream: LiveStream, streamer: Streamer, *, nonce: str) -> int:
        """Post the live announcement; return the message id or raise AnnounceError.

        `nonce` is the same for every attempt at one (subscription, stream): Discord returns the message
        it already created for a repeated nonce instead of posting it twice."""
        ...


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
    twitch_requests: int = 0
    duration: float = 0.0
    errors: list[str] = field(default_factory=list)


class Notifier:
    """Owns the live state: apply an observation, then post whatever has not been announced yet."""

    def __init__(
        self,
        db: Database,
        announcer: Announcer,
        *,
        offline_after_polls: int = 2,
        max_concurrent_sends: int = 10,
    ) -> None:
        self._db = db
        self._announcer = announcer
        self._offline_after_polls = offline_after_polls
        self._send_limit = asyncio.Semaphore(max_concurrent_sends)
        # Observations and announcement rounds never interleave: two sources must not both post a stream.
        self._lock = asyncio.Lock()

    async def apply(self, snapshot: StreamsSnapshot, report: CycleReport | None = None) -> CycleReport:
        """Record an observation of Twitch and announce every stream not yet announced."""
        report = report or CycleReport()
        async with self._lock:
            previous = await self._db.live_streams()
            outcome = reconcile(previous, snapshot, self._offline_after_polls)
            # Twitch ids never change but logins and display names do: follow renames as they are seen.
            await self._db.update_streamer_names(
                Streamer(twitch_user_id=s.user_id, login=s.user_login, display_name=s.user_name)
                for s in snapshot.streams.values()
                if s.user_login
            )
            await self._db.apply_live_changes(outcome.live, outcome.missed, outcome.offline)
            report.checked += len(snapshot.checked)
            report.failed += len(snapshot.failed)
            report.live += len(snapshot.streams)
            report.started += len(outcome.started)
            report.ended += len(outcome.ended)
            for stream in outcome.started:
                _log.info("Stream %s of user %s is live: %r", stream.stream_id, stream.twitch_user_id, stream.title)
            for stream in outcome.ended:
                _log.info("Stream %s of user %s has ended", stream.stream_id, stream.twitch_user_id)
            await self._announce_pending(report)
        return report

    async def _announce_pending(self, report: CycleReport) -> None:
        pending = await self._db.pending_announcements()
        if not pending:
            return
        live = await self._db.live_streams()
        streamers = await self._db.streamers_by_id({p.twitch_user_id for p in pending})
        results = await asyncio.gather(
            *(self._announce_one(p, live.get(p.twitch_user_id), streamers.get(p.twitch_user_id)) for p in pending),
            return_exceptions=True,
        )
        for pending_item, result in zip(pending, results, strict=True):
            if result is True:
                report.announced += 1
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

    async def _announce_one(
        self, pending: PendingAnnouncement, stream: LiveStream | None, streamer: Streamer | None
    ) -> bool:
        if stream is None or streamer is None or stream.stream_id != pending.stream_id:
            return False  # removed meanwhile; nothing to post
        async with self._send_limit:
            try:
                message_id = await self._announcer.announce(
                    pending.channel_id, stream, streamer, nonce=announcement_nonce(pending)
                )
            except AnnounceError as exc:
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
                    await self._db.set_subscription_error(pending.subscription_id, exc.reason)
                return False
        await self._db.record_announcement(pending, message_id)
        _log.info(
            "Announced %s (stream %s) in channel %s of guild %s",
            streamer.login,
            stream.stream_id,
            pending.channel_id,
            pending.guild_id,
        )
        return True

    async def prune(self) -> int:
        return await self._db.prune_announcements(datetime.now(UTC) - ANNOUNCEMENT_RETENTION)


class Poller:
    """The polling event source: one cycle asks Twitch about every monitored streamer."""

    def __init__(self, db: Database, twitch: TwitchClient, notifier: Notifier) -> None:
        self._db = db
        self._twitch = twitch
        self._notifier = notifier
        self.last_report: CycleReport | None = None
        self.last_success: float | None = None
        self.cycles = 0

    async def run_cycle(self) -> CycleReport:
        started = time.monotonic()
        report = CycleReport()
        user_ids = await self._db.monitored_user_ids()
        if user_ids:
            snapshot = await self._twitch.get_streams(user_ids)
            report.twitch_requests = snapshot.requests
            await self._notifier.apply(snapshot, report)
        report.duration = time.monotonic() - started
        self.last_report = report
        self.last_success = time.time()
        self.cycles += 1
        _log.debug("Poll cycle: %s", report)
        return report
