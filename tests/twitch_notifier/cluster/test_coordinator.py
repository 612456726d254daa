"""The cluster coordinator against a real PostgreSQL server: shard locks, one leader, failover, wake-ups."""

import asyncio

import asyncpg
import pytest

from twitch_notifier.cluster.coordinator import PostgresCoordinator, SoloCoordinator
from twitch_notifier.models import ShardScope

FAST = 0.05  # election interval of these tests: production's is 5 s


class Recorder:
    """The callbacks a bot would set, recording what they were told."""

    def __init__(self, coordinator: PostgresCoordinator) -> None:
        self.events: list[str] = []
        self.changed = asyncio.Event()
        coordinator.on_elected = lambda: self._note("elected")
        coordinator.on_deposed = lambda: self._note("deposed")
        coordinator.on_live = lambda: self._note("live")
        coordinator.on_followed = lambda: self._note("followed")

    def _note(self, event: str) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, event: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while event not in self.events:
                self.changed.clear()
                await self.changed.wait()


def coordinator(url: str, count: int | None, *ids: int) -> PostgresCoordinator:
    scope = ShardScope(count, ids) if count is not None else None
    return PostgresCoordinator(url, scope, election_interval=FAST, check_timeout=2.0)


async def wait_until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def started():
    """Start coordinators; every one still running at the end is stopped."""
    running: list[PostgresCoordinator] = []

    async def start(c: PostgresCoordinator) -> PostgresCoordinator:
        await c.start()
        running.append(c)
        return c

    yield start
    for c in running:
        await c.stop()


async def test_solo_is_the_leader_from_the_start():
    solo = SoloCoordinator("all 1")
    elected = []
    solo.on_elected = lambda: elected.append(True)
    await solo.start()
    assert solo.is_leader
    assert elected == [True]
    assert solo.status().details() == {
        "mode": "solo",
        "role": "leader",
        "owner": "solo",
        "shards": "all 1",
        "connected": True,
        "elections_won": 0,
    }
    await solo.live_changed()  # nobody to wake: nothing happens, nothing fails


async def test_three_processes_elect_exactly_one_leader(postgres_url, started):
    nodes = [coordinator(postgres_url, 3, shard) for shard in range(3)]
    recorders = [Recorder(n) for n in nodes]
    for node in nodes:
        await started(node)
    await wait_until(lambda: any(n.is_leader for n in nodes))
    await asyncio.sleep(10 * FAST)  # several more election rounds: still one
    assert sum(n.is_leader for n in nodes) == 1
    assert sum(r.events.count("elected") for r in recorders) == 1
    roles = sorted(n.status().role for n in nodes)
    assert roles == ["follower", "follower", "leader"]
    assert {n.status().shards for n in nodes} == {"shards 0 of 3", "shards 1 of 3", "shards 2 of 3"}


async def test_when_the_leader_stops_another_takes_over(postgres_url, started):
    first = await started(coordinator(postgres_url, 2, 0))
    await wait_until(lambda: first.is_leader)
    second = await started(coordinator(postgres_url, 2, 1))
    recorder = Recorder(second)
    await first.stop()
    await recorder.wait_for("elected")
    assert second.is_leader


async def test_a_killed_leader_session_deposes_it_and_another_leads(postgres_url, started):
    first = await started(coordinator(postgres_url, 2, 0))
    deposed = Recorder(first)
    await wait_until(lambda: first.is_leader)
    second = await started(coordinator(postgres_url, 2, 1))
    taking_over = Recorder(second)
    admin = await asyncpg.connect(postgres_url)
    try:
        # What the server does to a leader whose machine died: its session ends, and its locks with it.
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE '%shards 0 of 2'"
        )
    finally:
        await admin.close()
    assert killed == 1
    await deposed.wait_for("deposed")
    assert not first.is_leader
    await taking_over.wait_for("elected")
    assert second.is_leader


async def test_a_follower_that_loses_its_session_holds_its_shards_again(postgres_url, started):
    leader = await started(coordinator(postgres_url, 2, 0))
    await wait_until(lambda: leader.is_leader)
    follower = await started(coordinator(postgres_url, 2, 1))
    session = follower._conn
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE '%shards 1 of 2'"
        )
        await wait_until(lambda: session.is_closed())
        await wait_until(
            lambda: (
                follower._conn not in (None, session)
                and follower.status().connected
                and follower.status().role == "follower"
            )
        )
        # It holds shard 1 again: a second process for shard 1 has to wait.
        intruder = coordinator(postgres_url, 2, 1)
        attempt = asyncio.create_task(intruder.start())
        await asyncio.sleep(10 * FAST)
        assert not attempt.done()
        attempt.cancel()
        await intruder.stop()
    finally:
        await admin.close()
    assert leader.is_leader
    assert not follower.is_leader


async def test_overlapping_shard_ids_wait_for_the_process_running_them(postgres_url, started, caplog):
    first = await started(coordinator(postgres_url, 4, 0, 1))
    overlapping = coordinator(postgres_url, 4, 1, 2)
    attempt = asyncio.create_task(overlapping.start())
    await asyncio.sleep(10 * FAST)
    assert not attempt.done()  # shard 1 is the first one's
    assert "shard 1 of 4 is run by another bot process" in caplog.text
    await first.stop()
    await asyncio.wait_for(attempt, 5)
    assert overlapping.status().role in ("follower", "leader")
    await overlapping.stop()


async def test_a_process_running_every_shard_excludes_any_other(postgres_url, started):
    everything = await started(coordinator(postgres_url, None))
    some = coordinator(postgres_url, 2, 0)
    attempt = asyncio.create_task(some.start())
    await asyncio.sleep(10 * FAST)
    assert not attempt.done()
    await everything.stop()
    await asyncio.wait_for(attempt, 5)
    await some.stop()
    # and the other way round: processes running some shards keep out one running all of them
    first, second = await started(coordinator(postgres_url, 2, 0)), await started(coordinator(postgres_url, 2, 1))
    everything_again = coordinator(postgres_url, None)
    attempt = asyncio.create_task(everything_again.start())
    await asyncio.sleep(10 * FAST)
    assert not attempt.done()
    attempt.cancel()
    await everything_again.stop()
    assert first.status().connected
    assert second.status().connected


async def test_the_leader_wakes_the_others_and_the_others_tell_the_leader(postgres_url, started):
    nodes = [await started(coordinator(postgres_url, 3, shard)) for shard in range(3)]
    recorders = {id(n): Recorder(n) for n in nodes}
    await wait_until(lambda: any(n.is_leader for n in nodes))
    leader = next(n for n in nodes if n.is_leader)
    followers = [n for n in nodes if not n.is_leader]

    await leader.live_changed()
    for follower in followers:
        await recorders[id(follower)].wait_for("live")
    await asyncio.sleep(5 * FAST)
    assert "live" not in recorders[id(leader)].events  # its own notification is not news to it

    await followers[0].followed_changed()
    await recorders[id(leader)].wait_for("followed")
    await asyncio.sleep(5 * FAST)
    assert all("followed" not in recorders[id(f)].events for f in followers)  # only the leader subscribes


async def test_an_unreachable_database_fails_start_with_the_reason():
    unreachable = PostgresCoordinator("postgresql://postgres@127.0.0.1:1/nothing", None)
    with pytest.raises(OSError, match=r"Connect call failed|Connection refused"):
        await unreachable.start()


async def test_identifies_of_one_bucket_take_turns_across_processes(postgres_url, started):
    first = await started(coordinator(postgres_url, 2, 0))
    second = await started(coordinator(postgres_url, 2, 1))
    await first.identify_turn(0, hold=0.6)
    await first.identify_turn(0, hold=0.6)  # its own next shard of the bucket: its IdentifyPacer spaces those
    other_bucket = asyncio.create_task(second.identify_turn(1, hold=0.6))
    same_bucket = asyncio.create_task(second.identify_turn(0, hold=0.6))
    await asyncio.wait_for(other_bucket, 2)  # another bucket goes at once
    await asyncio.sleep(0.3)
    assert not same_bucket.done()  # within the first one's hold
    await asyncio.wait_for(same_bucket, 3)  # and once both of the first one's holds have run out


async def test_a_process_with_another_shard_count_waits_until_the_others_stop(postgres_url, started, caplog):
    old = [await started(coordinator(postgres_url, 2, shard)) for shard in range(2)]
    resharded = coordinator(postgres_url, 3, 2)  # shard 2 of 3 overlaps no lock of "0 of 2" or "1 of 2", yet guilds
    attempt = asyncio.create_task(resharded.start())
    await asyncio.sleep(10 * FAST)
    assert not attempt.done()
    assert "Bot processes with another SHARD_COUNT (2) run on this database" in caplog.text
    for node in old:
        await node.stop()
    await asyncio.wait_for(attempt, 5)
    assert resharded.status().role in ("follower", "leader")
    same_count = await started(coordinator(postgres_url, 3, 0))  # the same count: no waiting
    assert same_count.status().connected
    await resharded.stop()
