"""When poll cycles run: every `interval` seconds from the start of the last one, and after a cycle that
overran its interval, one interval after it finished. Missed cycles are skipped, never run back to back
(discord.ext.tasks catches up on them in a burst), and a jump of the wall clock changes nothing: the
schedule reads a monotonic clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

__all__ = ["CycleLoop", "next_start"]

_log = logging.getLogger(__name__)


def next_start(started: float, finished: float, interval: float) -> float:
    """When the cycle after one that ran from `started` to `finished` begins (same clock)."""
    due = started + interval
    return due if due >= finished else finished + interval


class CycleLoop:
    """Runs `cycle` forever on the schedule above, once `before()` has returned; `cycle` must not raise
    (an exception is logged and the schedule goes on)."""

    def __init__(
        self,
        cycle: Callable[[], Awaitable[None]],
        interval: float,
        *,
        before: Callable[[], Awaitable[object]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._cycle = cycle
        self.interval = interval
        self._before = before
        self._monotonic = monotonic
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._poked = asyncio.Event()
        self.cycles = 0

    def poke(self) -> None:
        """Run the next cycle now (or, if one is running, right after it) instead of on schedule."""
        self._poked.set()

    def start(self) -> None:
        if self.is_running():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="poll loop")

    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Cancel the loop (a cycle in flight is cancelled with it) and wait until it has ended."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        if self._before is not None:
            await self._before()
        while True:
            started = self._monotonic()
            try:
                await self._cycle()
            except Exception:
                _log.exception("A poll cycle raised; the schedule goes on")
            self.cycles += 1
            finished = self._monotonic()
            await self._pause(max(0.0, next_start(started, finished, self.interval) - finished))

    async def _pause(self, seconds: float) -> None:
        """Sleep until the next cycle is due, or until poked."""
        if not self._poked.is_set():
            sleeping = asyncio.ensure_future(self._sleep(seconds))
            poked = asyncio.ensure_future(self._poked.wait())
            try:
                await asyncio.wait({sleeping, poked}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (sleeping, poked):
                    waiter.cancel()
        self._poked.clear()
