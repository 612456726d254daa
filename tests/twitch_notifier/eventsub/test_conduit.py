"""Tests for eventsub/conduit.py: ConduitKeeper against the fake Twitch (a real TwitchClient over HTTP) with
a real Database as its store. Facts §2: the conduit is reused across restarts, only shards in the 202's
`data[]` (and not in `errors[]`) count as bound, and a 404 means the conduit is gone."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from database import Database
from tests.fakes.fake_twitch import FakeTwitch
from twitch_api import TwitchClient
from twitch_notifier.eventsub.conduit import CONDUIT_STATE_KEY, ConduitKeeper, ConduitLost
from twitch_notifier.twitch.errors import TwitchError

SECRET = "0123456789-webhook-secret"
CALLBACK = "https://bot.example.com/eventsub"


class FakeTime:
    """The clock of the fake Twitch and of the client; the client's sleeps advance it instead of waiting."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def fake(clock: FakeTime) -> AsyncIterator[FakeTwitch]:
    async with FakeTwitch(clock=clock) as server:
        server.eventsub.auto_verify_webhooks = False  # no challenge POST to a callback nobody serves
        yield server


@pytest.fixture
async def twitch(fake: FakeTwitch, clock: FakeTime) -> AsyncIterator[TwitchClient]:
    async with TwitchClient(
        fake.client_id,
        fake.client_secret,
        api_base=fake.api_base,
        auth_base=fake.auth_base,
        clock=clock,
        sleep=clock.sleep,
    ) as client:
        yield client


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(str(tmp_path / "bot.db"))
    yield database
    await database.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def welcomed_session(
    fake: FakeTwitch, http: aiohttp.ClientSession
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await http.ws_connect(fake.eventsub_ws_url)
    message = await ws.receive_json(timeout=2.0)
    assert message["metadata"]["message_type"] == "session_welcome"
    return ws, message["payload"]["session"]["id"]


def conduit_calls(fake: FakeTwitch, method: str) -> int:
    return sum(1 for r in fake.requests_to("/helix/eventsub/conduits") if r.method == method)


# ------------------------------------------------------------------------------------------------ ensure


def test_a_conduit_needs_a_shard(twitch: TwitchClient, db: Database) -> None:
    with pytest.raises(ValueError, match="at least one shard"):
        ConduitKeeper(twitch, db, shard_count=0)


async def test_the_first_start_creates_a_conduit_and_stores_its_id(
    fake: FakeTwitch, twitch: TwitchClient, db: Database
) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=2)
    conduit_id = await keeper.ensure()
    assert list(fake.eventsub.conduits) == [conduit_id]
    assert fake.eventsub.conduits[conduit_id].shard_count == 2
    assert await db.get_state(CONDUIT_STATE_KEY) == conduit_id
    assert (keeper.conduit_id, keeper.generation) == (conduit_id, 1)

    assert await keeper.ensure() == conduit_id  # known now: no request at all
    assert (conduit_calls(fake, "GET"), conduit_calls(fake, "POST")) == (1, 1)


async def test_concurrent_first_calls_make_one_conduit(fake: FakeTwitch, twitch: TwitchClient, db: Database) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=1)
    ids = await asyncio.gather(*(keeper.ensure() for _ in range(5)))
    assert len(set(ids)) == 1
    assert len(fake.eventsub.conduits) == 1
    assert conduit_calls(fake, "POST") == 1


async def test_a_restart_reuses_the_stored_conduit_even_when_it_is_not_the_first(
    fake: FakeTwitch, twitch: TwitchClient, db: Database
) -> None:
    other = await twitch.create_conduit(1)
    ours = await twitch.create_conduit(2)
    await db.set_state(CONDUIT_STATE_KEY, ours.id)
    keeper = ConduitKeeper(twitch, db, shard_count=2)
    assert await keeper.ensure() == ours.id
    assert keeper.generation == 0  # the same conduit as before the restart: subscriptions are still on it
    assert set(fake.eventsub.conduits) == {other.id, ours.id}
    assert conduit_calls(fake, "POST") == 2  # only the two this test made
    assert conduit_calls(fake, "PATCH") == 0
    assert await db.get_state(CONDUIT_STATE_KEY) == ours.id


async def test_a_stored_conduit_twitch_forgot_is_replaced_by_the_apps_first(
    fake: FakeTwitch, twitch: TwitchClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    existing = await twitch.create_conduit(2)
    await db.set_state(CONDUIT_STATE_KEY, "deleted-long-ago")
    keeper = ConduitKeeper(twitch, db, shard_count=2)
    with caplog.at_level(logging.WARNING, logger="twitch_notifier.eventsub.conduit"):
        assert await keeper.ensure() == existing.id
    assert "deleted-long-ago" in caplog.text
    assert len(fake.eventsub.conduits) == 1  # never a new one while the app has one (5 at most, §1)
    assert await db.get_state(CONDUIT_STATE_KEY) == existing.id
    assert keeper.generation == 1


async def test_no_stored_id_adopts_the_apps_existing_conduit(
    fake: FakeTwitch, twitch: TwitchClient, db: Database
) -> None:
    existing = await twitch.create_conduit(3)
    keeper = ConduitKeeper(twitch, db, shard_count=2)
    assert await keeper.ensure() == existing.id
    assert fake.eventsub.conduits[existing.id].shard_count == 3  # more shards than needed: left as is
    assert conduit_calls(fake, "PATCH") == 0
    assert await db.get_state(CONDUIT_STATE_KEY) == existing.id


async def test_a_conduit_with_too_few_shards_is_grown(fake: FakeTwitch, twitch: TwitchClient, db: Database) -> None:
    existing = await twitch.create_conduit(1)
    await db.set_state(CONDUIT_STATE_KEY, existing.id)
    keeper = ConduitKeeper(twitch, db, shard_count=2)
    assert await keeper.ensure() == existing.id
    assert fake.eventsub.conduits[existing.id].shard_count == 2
    [patch] = [c for c in fake.eventsub.calls if c.method == "PATCH" and c.path == "/helix/eventsub/conduits"]
    assert patch.body == {"id": existing.id, "shard_count": 2}


async def test_ensure_raises_while_twitch_is_down_and_stores_nothing(
    fake: FakeTwitch, twitch: TwitchClient, db: Database
) -> None:
    fake.fail_next("/helix/eventsub/conduits", 503, times=None)
    keeper = ConduitKeeper(twitch, db, shard_count=1)
    with pytest.raises(TwitchError):
        await keeper.ensure()
    assert keeper.conduit_id is None
    assert await db.get_state(CONDUIT_STATE_KEY) is None
    fake.clear_failures()
    assert await keeper.ensure() in fake.eventsub.conduits  # and it works once Twitch is back


# -------------------------------------------------------------------------------------------------- bind


async def test_bind_websocket_true_when_twitch_took_the_shard(
    fake: FakeTwitch, twitch: TwitchClient, db: Database, http: aiohttp.ClientSession
) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=2)
    conduit_id = await keeper.ensure()
    ws, session_id = await welcomed_session(fake, http)
    try:
        assert await keeper.bind_websocket("1", session_id) is True
        shard = fake.eventsub.conduits[conduit_id].shards["1"]
        assert (shard.status, shard.method, shard.session_id) == ("enabled", "websocket", session_id)
    finally:
        await ws.close()
    [call] = [c for c in fake.eventsub.calls if c.path == "/helix/eventsub/conduits/shards"]
    assert call.body == {
        "conduit_id": conduit_id,
        "shards": [{"id": "1", "transport": {"method": "websocket", "session_id": session_id}}],
    }


async def test_bind_websocket_false_when_the_shard_is_in_errors(
    fake: FakeTwitch, twitch: TwitchClient, db: Database, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=2)
    conduit_id = await keeper.ensure()
    with caplog.at_level(logging.WARNING, logger="twitch_notifier.eventsub.conduit"):
        assert await keeper.bind_websocket("0", "AQoQnever-connected") is False
    assert "not connected" in caplog.text
    ws, session_id = await welcomed_session(fake, http)
    try:
        assert await keeper.bind_websocket("2", session_id) is False  # outside the conduit's 2 shards
    finally:
        await ws.close()
    assert all(s.status != "enabled" for s in fake.eventsub.conduits[conduit_id].shards.values())
    assert keeper.conduit_id == conduit_id  # a refused shard is not a lost conduit


@pytest.mark.parametrize(
    ("answer", "bound"),
    [
        ({"data": [], "errors": []}, False),  # a 202 that names neither
        ({"data": [{"id": "1", "status": "enabled", "transport": {"method": "websocket"}}], "errors": []}, False),
        (
            {
                "data": [{"id": "0", "status": "enabled", "transport": {"method": "websocket"}}],
                "errors": [{"id": "0", "message": "The websocket session is not connected.", "code": "x"}],
            },
            False,
        ),
        ({"data": [{"id": "0", "status": "enabled", "transport": {"method": "websocket"}}]}, True),
    ],
)
async def test_only_a_shard_in_data_and_not_in_errors_is_bound(
    fake: FakeTwitch, twitch: TwitchClient, db: Database, answer: dict[str, Any], bound: bool
) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=2)
    await keeper.ensure()
    fake.fail_next("/helix/eventsub/conduits/shards", 202, body=answer)
    assert await keeper.bind_websocket("0", "AQoQsession") is bound


async def test_bind_webhook_sends_callback_and_secret(fake: FakeTwitch, twitch: TwitchClient, db: Database) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=1)
    conduit_id = await keeper.ensure()
    assert await keeper.bind_webhook("0", CALLBACK, SECRET) is True
    shard = fake.eventsub.conduits[conduit_id].shards["0"]
    assert (shard.method, shard.callback, shard.secret) == ("webhook", CALLBACK, SECRET)
    assert shard.status == "webhook_callback_verification_pending"  # Twitch's challenge comes next (§4)
    [call] = [c for c in fake.eventsub.calls if c.path == "/helix/eventsub/conduits/shards"]
    assert call.body["shards"] == [
        {"id": "0", "transport": {"method": "webhook", "callback": CALLBACK, "secret": SECRET}}
    ]


@pytest.mark.parametrize(
    ("callback", "secret"),
    [
        ("http://bot.example.com/eventsub", SECRET),
        ("https://bot.example.com:8443/eventsub", SECRET),
        (CALLBACK, "short"),
    ],
)
async def test_bind_webhook_false_when_twitch_refuses_the_transport(
    fake: FakeTwitch, twitch: TwitchClient, db: Database, callback: str, secret: str
) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=1)
    conduit_id = await keeper.ensure()
    assert await keeper.bind_webhook("0", callback, secret) is False
    assert fake.eventsub.conduits[conduit_id].shards["0"].method is None


async def test_a_404_means_the_conduit_is_lost_and_the_next_ensure_makes_a_new_one(
    fake: FakeTwitch, twitch: TwitchClient, db: Database, http: aiohttp.ClientSession
) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=2)
    old = await keeper.ensure()
    fake.eventsub._delete_conduit(fake.eventsub.conduits[old])  # as after 72 h without an enabled shard (§2)
    ws, session_id = await welcomed_session(fake, http)
    try:
        with pytest.raises(ConduitLost):
            await keeper.bind_websocket("0", session_id)
        assert keeper.conduit_id is None
        assert await db.get_state(CONDUIT_STATE_KEY) is None
        generation = keeper.generation

        assert await keeper.bind_websocket("0", session_id) is True  # ensure() inside made a new conduit
    finally:
        await ws.close()
    new = await keeper.ensure()  # the one the bind made: no request now
    assert new != old
    assert list(fake.eventsub.conduits) == [new]
    assert fake.eventsub.conduits[new].shard_count == 2
    assert await db.get_state(CONDUIT_STATE_KEY) == new
    assert keeper.generation == generation + 1  # what SubscriptionSync watches to subscribe again


async def test_the_72_hour_expiry_is_noticed_at_the_next_bind(
    fake: FakeTwitch, twitch: TwitchClient, db: Database, clock: FakeTime
) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=1)
    old = await keeper.ensure()
    clock.now += 72 * 3600 + 1  # no shard was ever enabled
    await fake.eventsub.tick()
    assert old in fake.eventsub.deleted_conduits
    with pytest.raises(ConduitLost):
        await keeper.bind_webhook("0", CALLBACK, SECRET)
    assert await keeper.ensure() != old


async def test_a_5xx_while_binding_is_raised_and_the_conduit_kept(
    fake: FakeTwitch, twitch: TwitchClient, db: Database
) -> None:
    keeper = ConduitKeeper(twitch, db, shard_count=1)
    conduit_id = await keeper.ensure()
    fake.fail_next("/helix/eventsub/conduits/shards", 500, times=None)
    with pytest.raises(TwitchError):
        await keeper.bind_webhook("0", CALLBACK, SECRET)
    assert keeper.conduit_id == conduit_id
    assert await db.get_state(CONDUIT_STATE_KEY) == conduit_id
