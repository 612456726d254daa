"""core.schedule: cycles every interval, and after an overrun one interval later — never a burst."""

import asyncio
import itertools

import pytest

from twitch_notifier.core.schedule import CycleLoop, next_start


def test_next_start_is_one_interval_after_the_start_of_an_on_time_cycle():
    assert next_start(100.0, 101.5, 90.0) == 190.0


def test_after_an_overrun_the_next_cycle_is_one_interval_after_the_end():
    # A cycle that took ten intervals: the next starts one interval after it, not ten times at once.
    assert next_start(100.0, 1000.0, 90.0) == 1090.0


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_the_loop_never_runs_missed_cycles_back_to_back():
    time = FakeTime()
    starts: list[float] = []
    durations = iter([0.5, 950.0, 0.5, 0.5, 0.5])  # the second cycle overran ten 90 s intervals
    done = asyncio.Event()

    async def cycle() -> None:
        starts.append(time.now)
        time.now += next(durations, 0.5)
        if len(starts) == 5:
            done.set()

    loop = CycleLoop(cycle, 90.0, monotonic=time.monotonic, sleep=time.sleep)
    loop.start()
    await asyncio.wait_for(done.wait(), 5)
    await loop.stop()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[:4] == [90.0, 950.0 + 90.0, 90.0, 90.0]
    assert not loop.is_running()


async def test_a_cycle_that_raises_does_not_stop_the_loop():
    time = FakeTime()
    calls = 0

    async def cycle() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")

    loop = CycleLoop(cycle, 1.0, monotonic=time.monotonic, sleep=time.sleep)
    loop.start()
    while calls < 3:
        await asyncio.sleep(0)
    await loop.stop()
    assert loop.cycles >= 2


def test_interval_must_be_positive():
    async def cycle() -> None:
        return None

    with pytest.raises(ValueError, match="positive"):
        CycleLoop(cycle, 0)
