"""Discord gateway shards: which shard a guild is on, IDENTIFY pacing by Discord's max_concurrency buckets, and
an announcer that leaves alone the guilds of shards another process runs (SHARD_IDS).

Discord's rules (gateway docs, "Sharding"): a guild is on shard (guild_id >> 22) % shard_count; a shard may hold
at most 2,500 guilds (close code 4011 otherwise); IDENTIFYs are bucketed by shard_id % max_concurrency, one per
bucket per 5 s, and more gets op 9 Invalid Session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Iterable

from twitch_notifier.core.ports import AnnounceError, Announcer
from twitch_notifier.models import Announcement, LiveStream, Streamer, shard_of

__all__ = [
    "IDENTIFY_INTERVAL",
    "IDENTIFY_WINDOW",
    "INVALID_SHARD",
    "MAX_GUILDS_PER_SHARD",
    "SHARDING_REQUIRED",
    "IdentifyPacer",
    "ShardLaunchError",
    "ShardScopedAnnouncer",
    "describe_shard_ids",
    "shard_of",
]

MAX_GUILDS_PER_SHARD = 2500
"""Discord's hard cap: a session that would hold more is closed with SHARDING_REQUIRED."""
SHARDING_REQUIRED = 4011
INVALID_SHARD = 4010
"""Gateway close codes (not reconnectable): too many guilds for the shard count; a shard id or count Discord refuses
(shard_id >= shard_count, or, for large bots, a count that is not a multiple of the one Discord assigned)."""
IDENTIFY_WINDOW = 5.0
"""Discord allows max_concurrency IDENTIFYs per this many seconds, one per bucket (shard_id % max_concurrency)."""
IDENTIFY_INTERVAL = IDENTIFY_WINDOW + 0.25
"""What the bot waits between two IDENTIFYs of one bucket: the window plus a margin for the send's own jitter."""


def describe_shard_ids(shard_ids: Iterable[int]) -> str:
    """Shard ids as SHARD_IDS would write them: runs as ranges, e.g. "0-3,8"."""
    parts: list[str] = []
    ids = sorted(set(shard_ids))
    start = previous = None
    for shard in [*ids, None]:
        if start is not None and (shard is None or previous is None or shard != previous + 1):
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if shard is not None and start is None:
            start = shard
        previous = shard
    return ",".join(parts)


class ShardLaunchError(Exception):
    """A shard could not open its gateway connection (it closed before HELLO, for instance): an outage, retried
    like one, rather than the traceback and 5-second retry loop discord.py's own launch would log."""

    def __init__(self, shard_id: int, reason: str) -> None:
        super().__init__(f"shard {shard_id} could not connect: {reason}")
        self.shard_id = shard_id


class IdentifyPacer:
    """Spaces IDENTIFYs the way Discord counts them: one per `interval` in each bucket (shard_id % max_concurrency),
    so shards of different buckets identify together and a bot with max_concurrency 16 starts 16 shards at once.

    discord.py's default before_identify_hook sleeps 5 s before every IDENTIFY but the first, whatever the bucket;
    this one sleeps only as long as the bucket's last IDENTIFY requires (nothing for the first of each bucket).
    Only this process is coordinated: several processes need a lock they share (not this class).
    """

    def __init__(
        self,
        interval: float = IDENTIFY_INTERVAL,
        *,
        max_concurrency: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._last: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._max_concurrency = 1
        self.max_concurrency = max_concurrency

    @property
    def max_concurrency(self) -> int:
        return self._max_concurrency

    @max_concurrency.setter
    def max_concurrency(self, value: int) -> None:
        """Discord's session_start_limit.max_concurrency (1 for most bots). Changing it regroups the buckets: the
        last IDENTIFY sent, if any, then counts for every new bucket, so none goes out too soon after it."""
        value = max(1, int(value))
        if value != self._max_concurrency:
            remembered = max(self._last.values(), default=None)
            self._last = {} if remembered is None else dict.fromkeys(range(value), remembered)
            self._locks = {}
        self._max_concurrency = value

    def bucket(self, shard_id: int) -> int:
        return shard_id % self._max_concurrency

    async def wait(self, shard_id: int) -> float:
        """Wait until shard `shard_id` may IDENTIFY, then count its IDENTIFY as sent; returns the seconds waited."""
        bucket = self.bucket(shard_id)
        lock = self._locks.setdefault(bucket, asyncio.Lock())
        async with lock:  # FIFO: shards of one bucket go in the order they asked
            last = self._last.get(bucket)
            delay = 0.0 if last is None else last + self.interval - self._clock()
            if delay > 0:
                await self._sleep(delay)
            self._last[bucket] = self._clock()
        return max(0.0, delay)


class ShardScopedAnnouncer:
    """The announcer for a process that runs only some shards (SHARD_IDS): a guild on another shard is not in this
    process's cache, and reading that as "the channel was deleted" would mark its subscriptions broken. Its posts
    are refused with a reason that names the shard instead; nothing is sent and nothing is deleted."""

    def __init__(self, inner: Announcer, *, shard_count: int, shard_ids: Collection[int]) -> None:
        self._inner = inner
        self.shard_count = shard_count
        self.shard_ids = frozenset(shard_ids)

    def _check(self, guild_id: int) -> None:
        shard = shard_of(guild_id, self.shard_count)
        if shard not in self.shard_ids:
            raise AnnounceError(
                f"this server is on shard {shard} of {self.shard_count}, which another process runs "
                f"(SHARD_IDS={describe_shard_ids(self.shard_ids)})",
                permanent=True,
            )

    async def announce(
        self,
        channel_id: int,
        stream: LiveStream,
        streamer: Streamer,
        *,
        nonce: str,
        message: Announcement,
        guild_id: int,
    ) -> int:
        self._check(guild_id)
        return await self._inner.announce(channel_id, stream, streamer, nonce=nonce, message=message, guild_id=guild_id)

    async def edit(self, channel_id: int, message_id: int, message: Announcement, *, guild_id: int) -> None:
        self._check(guild_id)
        await self._inner.edit(channel_id, message_id, message, guild_id=guild_id)

    async def delete(self, channel_id: int, message_id: int, *, guild_id: int) -> None:
        self._check(guild_id)
        await self._inner.delete(channel_id, message_id, guild_id=guild_id)
