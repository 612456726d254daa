"""SIGTERM (Fly, Docker) and SIGINT (Ctrl-C) close the bot gracefully instead of killing it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["stop_on_signals"]

_log = logging.getLogger(__name__)


def stop_on_signals(close: Callable[[], Coroutine[Any, Any, None]]) -> set[asyncio.Task[None]]:
    """On the first SIGTERM or SIGINT, run `close()` once; returns the set that will hold its task."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def request_stop(name: str) -> None:
        if tasks:
            return
        _log.info("Received %s: shutting down", name)
        tasks.add(loop.create_task(close(), name="shutdown"))

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
            loop.add_signal_handler(sig, request_stop, sig.name)
    return tasks
