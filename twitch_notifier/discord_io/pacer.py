"""Paces the bot's Discord posts under the bot token's global limit (50 requests/s) instead of meeting 429s.

discord.py honours per-route buckets from headers but only *reacts* to the global limit after a 429; this
token bucket (no Discord import) spaces announcements so a fan-out to thousands of servers never trips it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

__all__ = ["DISCORD_GLOBAL_LIMIT", "SendPacer"]

# Discord's global limit per bot token; the default rate leaves room for the bot's other REST calls.
DISCORD_GLOBAL_LIMIT = 50.0
DEFAULT_RATE = 48.0


class SendPacer:
    """A token bucket (GCRA form): at most `burst` sends at once, then one every `1 / rate` seconds.

    Callers take turns in call order (asyncio.Lock is FIFO). A caller woken late by a busy event loop
    pushes the next slots back instead of letting them catch up in a burst; only lateness within a quarter
    of an interval (the usual timer overshoot) is forgiven, so the pace does not drift below `rate`. In the
    pacer's clock any one-second window holds at most about `rate + burst` sends: keep that a little under
    the limit respected, for the jitter between leaving the pacer and reaching Discord.

    `background` sends (edits, deletes, publishes) yield to the others (new announcements): a background
    caller only takes a slot while no foreground caller is waiting, and re-checks after each sleep, so a new
    announcement never queues behind them, and they share the same rate.
    """

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._jitter = self._interval / 4
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._background_lock = asyncio.Lock()
        self._foreground = 0  # foreground callers waiting for or in the lock
        self._no_foreground = asyncio.Event()
        self._no_foreground.set()
        self._next_slot = float("-inf")  # theoretical time of the next send at the steady rate
        self.acquired = 0
        self.delayed = 0  # how many acquisitions had to wait: how often the limit is near
        self.waited = 0.0  # total seconds spent waiting for a slot (queueing behind others not included)

    def delay(self) -> float:
        """Seconds a send would wait for its slot right now, were nobody queued (0: it may go at once)."""
        return max(0.0, self._next_slot - self._tolerance - self._clock())

    async def acquire(self, *, background: bool = False) -> None:
        """Wait until one more send fits under the rate; returns at once while the bucket has room. A
        `background` send waits, besides, until no other kind of send is waiting."""
        if background:
            await self._acquire_background()
            return
        self._foreground += 1
        self._no_foreground.clear()
        try:
            async with self._lock:
                wait = self.delay()
                forgiven = 0.0
                if wait > 0:
                    self.delayed += 1
                    self.waited += wait
                    await self._sleep(wait)
                    forgiven = self._jitter  # woken a little late by the timer: not a reason to slow down
                self._take(forgiven)
        finally:
            self._foreground -= 1
            if self._foreground == 0:
                self._no_foreground.set()

    async def _acquire_background(self) -> None:
        async with self._background_lock:  # background callers take turns among themselves, in call order
            forgiven = 0.0
            waited = False
            while True:
                if self._foreground:
                    await self._no_foreground.wait()
                    continue
                wait = self.delay()
                if wait <= 0:
                    # No await between the checks and the take: a foreground caller cannot slip in between.
                    self._take(forgiven)
                    return
                if not waited:
                    self.delayed += 1
                    waited = True
                self.waited += wait
                await self._sleep(wait)
                forgiven = self._jitter

    def _take(self, forgiven: float) -> None:
        now = self._clock()
        self._next_slot = max(self._next_slot, now - forgiven) + self._interval
        self.acquired += 1

    async def __aenter__(self) -> SendPacer:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
