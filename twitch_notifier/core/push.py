"""What a pushed EventSub message means for the bot: a go-live announced at once, an offline that ends the
stream at once, a channel update that refreshes the live card, a revocation handed to the upkeep.

Transport-agnostic (WebSocket shards and webhooks both hand their messages here), so it dedupes for both:
a message id seen in the last 10 minutes is dropped, and so is a message older than that (replay guard,
facts §4/§10.10); the domain keys (stream id) are deduplicated by the notifier, since Twitch also resends
with a *new* message id (facts §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from twitch_notifier.core.notifier import Notifier
from twitch_notifier.twitch.errors import TwitchError
from twitch_notifier.twitch.eventsub import (
    ChannelInfo,
    ChannelUpdate,
    EventSubMessage,
    EventSubSubscription,
    Notification,
    Revocation,
    StreamOffline,
    StreamOnline,
)
from twitch_notifier.twitch.models import TwitchStream

__all__ = ["CHANNEL_LOOKUP_TIMEOUT", "MESSAGE_MAX_AGE", "PushHandler", "PushStats", "live_thumbnail_url"]

_log = logging.getLogger(__name__)

MESSAGE_MAX_AGE = timedelta(minutes=10)
"""Twitch: "Make sure the value in the message_timestamp field isn't older than 10 minutes"."""
SEEN_CAPACITY = 20_000
"""Message ids remembered (each for MESSAGE_MAX_AGE); a burst beyond it forgets the oldest first."""
CHANNEL_LOOKUP_TIMEOUT = 2.0
"""A go-live waits at most this long for the channel's title and category before it is announced
without them (the card is completed by the next live update)."""

RECHECK_DELAY = 5.0
"""After a go-live announced without a current channel look-up, how long before Twitch is asked again."""

ChannelLookup = Callable[[list[str]], Awaitable[list[ChannelInfo]]]
RevocationSink = Callable[[EventSubSubscription], Awaitable[None]]


def live_thumbnail_url(login: str) -> str:
    """Twitch's live preview image of a channel, with the {width}x{height} placeholders /streams uses."""
    return f"https://static-cdn.jtvnw.net/previews-ttv/live_user_{login}-{{width}}x{{height}}.jpg"


@dataclass(slots=True)
class PushStats:
    """Counters for /metrics and the log."""

    received: int = 0
    online: int = 0
    offline: int = 0
    updates: int = 0
    revocations: int = 0
    duplicates: int = 0
    stale: int = 0
    ignored: int = 0
    announced: int = 0


@dataclass(frozen=True, slots=True)
class _ChannelState:
    title: str
    game_id: str
    game_name: str


class PushHandler:
    """Receives every parsed EventSub notification and revocation (see module docstring)."""

    def __init__(
        self,
        notifier: Notifier,
        channels: ChannelLookup,
        *,
        on_revocation: RevocationSink | None = None,
        on_announced: Callable[[int, float | None], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        channel_lookup_timeout: float = CHANNEL_LOOKUP_TIMEOUT,
        recheck_delay: float = RECHECK_DELAY,
    ) -> None:
        self._notifier = notifier
        self._channels = channels
        self.on_revocation = on_revocation
        self._on_announced = on_announced
        self._clock = clock
        self._monotonic = monotonic
        self._lookup_timeout = channel_lookup_timeout
        self._recheck_delay = recheck_delay
        self._seen: OrderedDict[str, datetime] = OrderedDict()
        # Each streamer's title and category as last learnt (seeded from /helix/channels, kept current by
        # channel.update): what a go-live shows when Twitch's channel look-up fails or is slow.
        self._channel_state: dict[str, _ChannelState] = {}
        self._checks: set[asyncio.Task[None]] = set()
        self.stats = PushStats()

    def unknown(self, user_ids: Iterable[str]) -> list[str]:
        """The streamers whose channel nothing has been learnt about yet (see `seed`)."""
        return [user_id for user_id in user_ids if user_id not in self._channel_state]

    async def seed(self, user_ids: Iterable[str]) -> int:
        """Learn the channels of these streamers now (batched, 100 per request), so that a go-live has a
        title to show even when Twitch's look-up at that moment fails. Raises TwitchError."""
        found = await self._channels(list(user_ids))
        for info in found:
            self._channel_state.setdefault(info.broadcaster_id, _ChannelState(info.title, info.game_id, info.game_name))
        return len(found)

    async def close(self) -> None:
        """Stop the background checks of announced channels."""
        for task in list(self._checks):
            task.cancel()
        for task in list(self._checks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def handle(self, message: EventSubMessage, received_at: float | None = None) -> None:
        """Act on one message (session messages are the transport's business and ignored here)."""
        if not isinstance(message, Notification | Revocation):
            return
        received_at = self._monotonic() if received_at is None else received_at
        self.stats.received += 1
        if not self._fresh(message):
            return
        if isinstance(message, Revocation):
            self.stats.revocations += 1
            sub = message.subscription
            _log.warning(
                "Twitch revoked the %s subscription of user %s (%s); that streamer is polled from now on",
                sub.type,
                sub.broadcaster_user_id,
                sub.status,
            )
            if self.on_revocation is not None:
                await self.on_revocation(sub)
            return
        event = message.event
        if event is None:
            self.stats.ignored += 1
            _log.info(
                "Ignoring an EventSub notification of a type the bot did not ask for: %s", message.subscription.type
            )
            return
        if isinstance(event, StreamOnline):
            self.stats.online += 1
            await self._online(event, received_at)
        elif isinstance(event, StreamOffline):
            self.stats.offline += 1
            await self._notifier.push_offline(event.broadcaster_user_id, sent_at=message.metadata.timestamp)
        elif isinstance(event, ChannelUpdate):
            self.stats.updates += 1
            state = _ChannelState(event.title, event.category_id, event.category_name)
            self._channel_state[event.broadcaster_user_id] = state
            await self._notifier.push_channel_update(
                event.broadcaster_user_id, title=state.title, game_id=state.game_id, game_name=state.game_name
            )

    def _fresh(self, message: Notification | Revocation) -> bool:
        now = self._clock()
        sent = message.metadata.timestamp
        if sent is not None and now - sent > MESSAGE_MAX_AGE:
            self.stats.stale += 1
            _log.warning(
                "Dropping EventSub message %s sent at %s (older than 10 minutes)", message.metadata.message_id, sent
            )
            return False
        while self._seen:
            oldest, seen_at = next(iter(self._seen.items()))
            if now - seen_at <= MESSAGE_MAX_AGE and len(self._seen) < SEEN_CAPACITY:
                break
            del self._seen[oldest]
        message_id = message.metadata.message_id
        if message_id in self._seen:
            self.stats.duplicates += 1
            _log.debug("EventSub message %s delivered again; acted on once", message_id)
            return False
        self._seen[message_id] = now
        return True

    async def _online(self, event: StreamOnline, received_at: float) -> None:
        user_id = event.broadcaster_user_id
        channel, current = await self._channel(user_id)
        stream = TwitchStream(
            id=event.stream_id,
            user_id=user_id,
            user_login=event.login,
            user_name=event.display_name,
            game_id=channel.game_id if channel else "",
            game_name=channel.game_name if channel else "",
            title=channel.title if channel else "",
            viewer_count=0,
            started_at=event.started_at or self._clock(),
            thumbnail_url=live_thumbnail_url(event.login) if event.login else "",
            type=event.type or "live",
        )
        _log.info("EventSub: user %s went live (stream %s, %s)", user_id, event.stream_id, event.type)
        report = await self._notifier.push_online(stream, received_at=received_at)
        self.stats.announced += report.announced
        if self._on_announced is not None and report.announced:
            self._on_announced(report.announced, min(report.push_latencies, default=None))
        if not current and report.announced:
            # Announced with what was last known: ask Twitch again a little later, and correct the stream.
            task = asyncio.create_task(self._recheck(user_id, channel), name="channel re-check")
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

    async def _recheck(self, user_id: str, used: _ChannelState | None) -> None:
        await asyncio.sleep(self._recheck_delay)
        fresh, current = await self._channel(user_id)
        if not current or fresh is None:
            return
        if used is None or (fresh.title, fresh.game_id, fresh.game_name) != (used.title, used.game_id, used.game_name):
            _log.info("The channel of user %s is now known; its live card follows", user_id)
            await self._notifier.push_channel_update(
                user_id, title=fresh.title, game_id=fresh.game_id, game_name=fresh.game_name
            )

    async def _channel(self, user_id: str) -> tuple[_ChannelState | None, bool]:
        """The channel's title and category: from /helix/channels (current, unlike the lagging listing;
        True), else what was last learnt (False: a seed or the last channel.update), else nothing."""
        try:
            async with asyncio.timeout(self._lookup_timeout):
                found = await self._channels([user_id])
        except (TwitchError, TimeoutError) as exc:
            _log.warning("Could not read the channel of user %s for its go-live (%s)", user_id, exc)
            return self._channel_state.get(user_id), False
        for info in found:
            if info.broadcaster_id == user_id:
                state = _ChannelState(info.title, info.game_id, info.game_name)
                self._channel_state[user_id] = state
                return state, True
        return self._channel_state.get(user_id), False
