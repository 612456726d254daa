"""core.pass_loop.PassLoop: a pass at start, one per wake-up or interval, a failing pass survived, a clean stop."""

import asyncio
import logging

import pytest

from twitch_notifier.core.pass_loop import PassLoop


class Passes:
    def __init__(self, fail_first: int = 0) -> None:
        self.count = 0
        self.fail_first = fail_first
        self.ran = asyncio.Event()

    async def __call__(self) -> None:
        self.count += 1
        self.ran.set()
        if self.count <= self.fail_first:
            raise RuntimeError("store closed")


async def next_pass(passes: Passes) -> None:
    passes.ran.clear()
    await asyncio.wait_for(passes.ran.wait(), 5)


async def test_a_pass_at_start_then_one_per_wake_up_and_none_after_stop():
    passes = Passes()
    loop = PassLoop(passes, interval=lambda: 3600.0, name="test", failure="pass failed")
    loop.start()
    await asyncio.wait_for(passes.ran.wait(), 5)
    assert (passes.count, loop.running) == (1, True)
    loop.wake()
    await next_pass(passes)
    assert passes.count == 2
    await loop.stop()
    loop.wake()
    await asyncio.sleep(0.05)
    assert (passes.count, loop.running) == (2, False)


async def test_without_a_wake_up_the_interval_runs_the_next_pass():
    passes = Passes()
    loop = PassLoop(passes, interval=lambda: 0.01, name="test", failure="pass failed")
    loop.start()
    for _ in range(3):
        await next_pass(passes)
    await loop.stop()
    assert passes.count >= 3


@pytest.mark.allow_error_logs
async def test_a_failing_pass_is_logged_and_the_next_one_runs(caplog):
    passes = Passes(fail_first=1)
    loop = PassLoop(passes, interval=lambda: 3600.0, name="test", failure="A pass over the things failed")
    with caplog.at_level(logging.ERROR):
        loop.start()
        await asyncio.wait_for(passes.ran.wait(), 5)
        await asyncio.sleep(0)
        loop.wake()
        await next_pass(passes)
    await loop.stop()
    assert passes.count == 2
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "A pass over the things failed"
    assert record.exc_info is not None
    assert "store closed" in str(record.exc_info[1])
