"""discord_io.pacer.SendPacer: the token bucket that keeps a fan-out under Discord's global rate limit."""

import asyncio
import itertools

import pytest

from twitch_notifier.discord_io.pacer import DISCORD_GLOBAL_LIMIT, SendPacer


class FakeTime:
    """A clock that only moves when the pacer sleeps, so spacing is checked exactly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def paced(rate: float = 10.0, burst: int = 1) -> tuple[SendPacer, FakeTime]:
    fake = FakeTime()
    return SendPacer(rate, burst=burst, clock=fake.clock, sleep=fake.sleep), fake


async def test_first_send_goes_at_once():
    pacer, fake = paced()
    await pacer.acquire()
    assert fake.sleeps == []
    assert pacer.delay() == pytest.approx(0.1)


async def test_sequential_sends_are_spaced_by_the_interval():
    pacer, fake = paced(rate=10)
    times = []
    for _ in range(5):
        await pacer.acquire()
        times.append(fake.now)
    assert [round(b - a, 9) for a, b in itertools.pairwise(times)] == [0.1] * 4


async def test_burst_goes_at_once_then_the_steady_rate():
    pacer, fake = paced(rate=10, burst=3)
    times = []
    for _ in range(5):
        await pacer.acquire()
        times.append(round(fake.now - 1000.0, 9))
    assert times == [0.0, 0.0, 0.0, 0.1, 0.2]


async def test_idle_time_refills_but_never_beyond_the_burst():
    pacer, fake = paced(rate=10, burst=2)
    await pacer.acquire()
    fake.now += 60.0  # a long quiet spell
    start = fake.now
    times = []
    for _ in range(4):
        await pacer.acquire()
        times.append(round(fake.now - start, 9))
    assert times == [0.0, 0.0, 0.1, 0.2]


async def test_concurrent_callers_are_served_in_order_without_exceeding_the_rate():
    """Real clock: 60 concurrent senders at 200/s, no window of 100 ms holds more than 21 sends."""
    pacer = SendPacer(rate=200.0)
    loop = asyncio.get_running_loop()
    stamps: list[tuple[int, float]] = []

    async def send(index: int) -> None:
        await pacer.acquire()
        stamps.append((index, loop.time()))

    await asyncio.wait_for(asyncio.gather(*(send(i) for i in range(60))), timeout=5)
    assert [index for index, _ in stamps] == list(range(60))
    times = [t for _, t in stamps]
    assert times[-1] - times[0] >= 59 / 200.0 - 0.01
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + 0.1) <= 21
    assert pacer.acquired == 60
    # A loaded machine may hand the lock over later than a slot's interval, so that caller goes at once:
    # the exact count is checked on the fake clock below.
    assert 0 < pacer.delayed <= 59


async def test_concurrent_callers_count_each_wait_once():
    pacer, fake = paced(rate=10)

    await asyncio.gather(*(pacer.acquire() for _ in range(6)))
    assert pacer.acquired == 6
    assert pacer.delayed == 5
    assert pacer.waited == pytest.approx(0.5)
    assert fake.now == pytest.approx(1000.5)


async def test_the_default_stays_under_discords_global_limit():
    pacer, fake = paced(rate=SendPacer().rate)
    times = []
    for _ in range(200):
        await pacer.acquire()
        times.append(fake.now)
    # Discord counts requests per second per token: no one-second window may hold more than 50.
    assert max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)) < DISCORD_GLOBAL_LIMIT


async def test_a_late_wake_up_pushes_the_next_sends_back_instead_of_bursting():
    """A busy event loop wakes a sender late; the ones queued behind it must not catch up all at once."""
    fake = FakeTime()
    overshoot = [0.35]

    async def late_sleep(seconds: float) -> None:
        fake.now += seconds + (overshoot.pop() if overshoot else 0.0)

    pacer = SendPacer(10, clock=fake.clock, sleep=late_sleep)
    times = []
    for _ in range(5):
        await pacer.acquire()
        times.append(round(fake.now - 1000.0, 9))
    # Slot 2 was due at 0.1; granted at 0.45, the next ones follow from there (less the jitter allowance).
    assert times == [0.0, 0.45, 0.525, 0.625, 0.725]


async def test_small_timer_overshoots_do_not_slow_the_pace():
    fake = FakeTime()

    async def overshooting_sleep(seconds: float) -> None:
        fake.now += seconds + 0.02  # every wake-up 20 ms late, under a quarter of the 100 ms interval

    pacer = SendPacer(10, clock=fake.clock, sleep=overshooting_sleep)
    for _ in range(11):
        await pacer.acquire()
    assert fake.now - 1000.0 == pytest.approx(1.02)  # ten intervals plus one overshoot, not ten overshoots


async def test_a_cancelled_waiter_leaves_no_hole_and_takes_no_slot():
    pacer = SendPacer(rate=20.0)
    loop = asyncio.get_running_loop()
    await pacer.acquire()
    waiter = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    started = loop.time()
    await asyncio.wait_for(pacer.acquire(), timeout=1)
    assert loop.time() - started < 0.06 + 0.02  # one interval at most, not two
    assert pacer.acquired == 2


async def test_context_manager_takes_a_slot():
    pacer, fake = paced(rate=4)
    async with pacer:
        pass
    async with pacer:
        pass
    assert fake.sleeps == [0.25]
    assert pacer.waited == pytest.approx(0.25)


class YieldingTime(FakeTime):
    """A FakeTime whose sleep lets the other callers run meanwhile, as a real sleep would."""

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        for _ in range(5):
            await asyncio.sleep(0)
        self.now += seconds


async def test_a_foreground_send_never_queues_behind_background_ones():
    fake = YieldingTime()
    pacer = SendPacer(10, clock=fake.clock, sleep=fake.sleep)
    await pacer.acquire()  # the bucket is empty: everyone after this waits for a slot
    order: list[str] = []

    async def send(name: str, *, background: bool) -> None:
        await pacer.acquire(background=background)
        order.append(name)

    backgrounds = [asyncio.create_task(send(f"B{i}", background=True)) for i in range(3)]
    await asyncio.sleep(0)  # B0 is waiting for its slot, B1 and B2 behind it
    foreground = asyncio.create_task(send("F", background=False))
    await asyncio.wait_for(asyncio.gather(foreground, *backgrounds), timeout=5)
    assert order == ["F", "B0", "B1", "B2"]
    assert pacer.acquired == 5


async def test_background_sends_keep_the_rate_and_their_order():
    fake = YieldingTime()
    pacer = SendPacer(10, clock=fake.clock, sleep=fake.sleep)
    stamps: list[tuple[int, float]] = []

    async def send(index: int) -> None:
        await pacer.acquire(background=True)
        stamps.append((index, round(fake.now - 1000.0, 9)))

    await asyncio.wait_for(asyncio.gather(*(send(i) for i in range(4))), timeout=5)
    assert [index for index, _ in stamps] == [0, 1, 2, 3]
    times = [t for _, t in stamps]
    assert all(b - a >= 0.1 - 0.025 - 1e-9 for a, b in itertools.pairwise(times)), times


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (10, 0)])
def test_rejects_nonsense(rate, burst):
    with pytest.raises(ValueError, match="must be"):
        SendPacer(rate, burst=burst)
