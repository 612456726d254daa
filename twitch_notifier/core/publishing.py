"""Publishing (crossposting) announcements posted in announcement (news) channels, so following servers get them.

Discord allows 10 publishes per hour per channel. The budget is kept per channel (`PublishWindow`, stored, so a
restart does not forget it); beyond it a publish is skipped, never queued. A publish runs in the background after
its announcement is posted: it never delays or fails the announcement, and live-update edits are never published.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Protocol

from twitch_notifier.models import PublishWindow

__all__ = [
    "PUBLISH_LIMIT",
    "PUBLISH_PERIOD",
    "MessagePublisher",
    "PublishOutcome",
    "PublishResult",
    "PublishStore",
    "Publisher",
    "after_publish",
    "after_refusal",
    "allows",
    "recent",
]

_log = logging.getLogger(__name__)

PUBLISH_LIMIT = 10
PUBLISH_PERIOD = timedelta(hours=1)
"""Discord: at most PUBLISH_LIMIT publishes per channel in any PUBLISH_PERIOD."""


class PublishResult(Enum):
    """How one publish went (the label of the /metrics counter)."""

    PUBLISHED = "published"
    SKIPPED_LIMIT = "skipped_limit"
    """This channel's 10 publishes of the hour are spent (or Discord said so earlier): not even tried."""
    RATE_LIMITED = "rate_limited"
    """Discord refused it with a 429 all the same (someone else published there too): remembered."""
    NOT_NEWS = "not_news"
    """The channel is no announcement channel: nothing to publish."""
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What Discord answered one publish: `retry_after` with RATE_LIMITED, `reason` with FAILED."""

    result: PublishResult
    retry_after: float | None = None
    reason: str = ""


class MessagePublisher(Protocol):
    """Publishes one posted message (discord_io.announcer.DiscordAnnouncer in production)."""

    async def publish(self, channel_id: int, message_id: int, *, guild_id: int) -> PublishOutcome:
        """Crosspost the message; never raises for Discord's answers (they are the outcome)."""
        ...


class PublishStore(Protocol):
    """Where the windows are kept (database.Database)."""

    async def publish_window(self, channel_id: int) -> PublishWindow: ...

    async def save_publish_window(self, window: PublishWindow, *, forget_before: datetime) -> None: ...


def recent(window: PublishWindow, now: datetime) -> tuple[datetime, ...]:
    """The publishes that still count against the limit at `now`."""
    return tuple(moment for moment in window.published if now - moment < PUBLISH_PERIOD)


def allows(window: PublishWindow, now: datetime) -> bool:
    """Whether one more publish fits in the channel's budget at `now`."""
    if window.blocked_until is not None and now < window.blocked_until:
        return False
    return len(recent(window, now)) < PUBLISH_LIMIT


def after_publish(window: PublishWindow, now: datetime) -> PublishWindow:
    """The window once a publish at `now` succeeded."""
    blocked = window.blocked_until if window.blocked_until is not None and window.blocked_until > now else None
    return dataclasses.replace(window, published=(*recent(window, now), now), blocked_until=blocked)


def after_refusal(window: PublishWindow, now: datetime, retry_after: float) -> PublishWindow:
    """The window once Discord refused a publish at `now` for `retry_after` seconds."""
    until = now + timedelta(seconds=max(0.0, retry_after))
    if window.blocked_until is not None and window.blocked_until > until:
        until = window.blocked_until
    return dataclasses.replace(window, published=recent(window, now), blocked_until=until)


class Publisher:
    """Runs publishes in the background, one channel's at a time (so two announcements at once in one channel
    cannot both take its last publish), each counted by `on_result`."""

    def __init__(
        self,
        store: PublishStore,
        port: MessagePublisher,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_result: Callable[[PublishResult], None] | None = None,
    ) -> None:
        self._store = store
        self._port = port
        self._clock = clock
        self._on_result = on_result
        self._locks: dict[int, asyncio.Lock] = {}  # one per channel ever published in: few, and kept
        self._tasks: set[asyncio.Task[PublishResult]] = set()

    def submit(self, channel_id: int, message_id: int, *, guild_id: int) -> None:
        """Publish the message soon, without waiting for it (the announcement is done already)."""
        task = asyncio.create_task(self.publish(channel_id, message_id, guild_id=guild_id), name="publish")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait for the publishes under way (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def publish(self, channel_id: int, message_id: int, *, guild_id: int) -> PublishResult:
        """Publish one message if the channel's budget allows; returns what happened (and counts it)."""
        try:
            result = await self._publish(channel_id, message_id, guild_id)
        except Exception:
            _log.exception("Unexpected error publishing message %s in channel %s", message_id, channel_id)
            result = PublishResult.FAILED
        if self._on_result is not None:
            self._on_result(result)
        return result

    async def _publish(self, channel_id: int, message_id: int, guild_id: int) -> PublishResult:
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        async with lock:
            window = await self._store.publish_window(channel_id)
            if not allows(window, self._clock()):
                _log.info("Not publishing message %s: channel %s has no publish left this hour", message_id, channel_id)
                return PublishResult.SKIPPED_LIMIT
            outcome = await self._port.publish(channel_id, message_id, guild_id=guild_id)
            now = self._clock()
            forget = now - PUBLISH_PERIOD
            if outcome.result is PublishResult.PUBLISHED:
                await self._store.save_publish_window(after_publish(window, now), forget_before=forget)
            elif outcome.result is PublishResult.RATE_LIMITED:
                retry = outcome.retry_after or PUBLISH_PERIOD.total_seconds()
                _log.warning("Discord refused to publish in channel %s for %.0f s more", channel_id, retry)
                await self._store.save_publish_window(after_refusal(window, now, retry), forget_before=forget)
            elif outcome.result is PublishResult.FAILED:
                _log.warning("Could not publish message %s in channel %s: %s", message_id, channel_id, outcome.reason)
        return outcome.result
