"""The loop behind the scheduled-event passes: one pass at start, then one at each wake-up or every interval.

LiveEvents and ScheduleEvents both run passes this way; the loop owns the task, the wake-up and the shutdown, and
a pass that raises is logged and followed by the next one as usual, never ending the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["PassLoop"]

_log = logging.getLogger(__name__)


class PassLoop:
    """Runs `run_pass` at `start()`, then at each `wake()`, or after `interval()` seconds without one; one pass at
    a time (wake-ups during a pass make one more pass after it), until `stop()`."""

    def __init__(
        self, run_pass: Callable[[], Awaitable[object]], *, interval: Callable[[], float], name: str, failure: str
    ) -> None:
        """`name` names the task; `failure` is the log line of a pass that raised (its traceback follows)."""
        self._run_pass = run_pass
        self._interval = interval
        self._name = name
        self._failure = failure
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._task is not None

    def wake(self) -> None:
        """Run a pass soon (at once when none is under way)."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._wake.set()  # a first pass at once: what a restart left, and whether anything is wanted
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Stop the loop (a pass under way is cut short; its Discord requests run to their end on their own)."""
        task, self._task = self._task, None
        if task is None:
            return
        # The flag as well as the cancellation: Python 3.11's timeout can swallow a cancellation that arrives as
        # its awaitable completes (a wake-up at shutdown), and the loop must end all the same.
        self._stopping = True
        self._wake.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval()):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._run_pass()
            except Exception:
                _log.exception(self._failure)
