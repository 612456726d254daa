"""Tests for twitch_api: the Helix client against the fake Twitch over real HTTP (login parsing and the
models are tested in tests/twitch_notifier/twitch/).
Time is injected (clock + sleep), so backoff and rate-limit waits cost no real time."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.fakes.fake_eventsub import EventSubCall
from tests.fakes.fake_twitch import OMIT, FakeTwitch, RawJSON, RecordedRequest
from twitch_api import (
    MAX_VIEWER_COUNT,
    InvalidLogin,
    StreamsSnapshot,
    TwitchAPIError,
    TwitchAuthError,
    TwitchClient,
    TwitchConflict,
    TwitchLimitExceeded,
    TwitchRateLimited,
    TwitchUnavailable,
)
from twitch_notifier.twitch.eventsub import Conduit, ConduitShard, EventSubListing, ShardFailure

SECRET = "s3cret-client-secret-value"


class FakeTime:
    """Injected clock + sleep: sleeping advances the clock instantly and records the wait."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def fake(clock: FakeTime):
    async with FakeTwitch(client_secret=SECRET, clock=clock.time) as server:
        yield server


@pytest.fixture
async def make_client(fake: FakeTwitch, clock: FakeTime):
    clients: list[TwitchClient] = []

    def make(**overrides) -> TwitchClient:
        options = {
            "api_base": fake.api_base,
            "auth_base": fake.auth_base,
            "timeout": 5.0,
            "backoff_base": 0.01,
            "clock": clock.time,
            "sleep": clock.sleep,
        }
        options.update(overrides)
        client_id = options.pop("client_id", fake.client_id)
        client_secret = options.pop("client_secret", fake.client_secret)
        client = TwitchClient(client_id, client_secret, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def client(make_client) -> TwitchClient:
    return make_client()


def user_ids_of(fake: FakeTwitch, count: int, prefix: str = "streamer") -> list[str]:
    return [user.id for user in fake.add_users(count, prefix)]


# ------------------------------------------------------------------------------------------------ tokens


async def test_token_is_fetched_once_and_reused(fake: FakeTwitch, client: TwitchClient) -> None:
    fake.add_user("shroud")
    for _ in range(3):
        assert (await client.get_user("shroud")) is not None
    assert fake.token_requests == 1
    assert client.token_fetches == 1
    assert client.request_count == 3
    token_request = fake.requests_to("/oauth2/token")[0]
    assert token_request.query == []  # credentials go in the form body, never the URL


async def test_concurrent_first_calls_share_one_token_fetch(fake: FakeTwitch, client: TwitchClient) -> None:
    fake.add_user("shroud")
    results = await asyncio.gather(*(client.get_user("shroud") for _ in range(10)))
    assert all(user is not None for user in results)
    assert fake.token_requests == 1


async def test_token_refreshed_before_it_expires(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    fake.token_ttl = 3600
    fake.add_user("shroud")
    await client.get_user("shroud")
    clock.now += 3600 - 59  # inside the 60 s safety margin
    await client.get_user("shroud")
    assert fake.token_requests == 2
    assert all(r.status == 200 for r in fake.requests_to("/helix/users"))


async def test_expired_token_is_replaced_and_used_by_every_later_call(fake: FakeTwitch, client: TwitchClient) -> None:
    fake.add_user("shroud")
    await client.get_user("shroud")
    fake.expire_tokens()
    assert (await client.get_user("shroud")) is not None
    assert (await client.get_user("shroud")) is not None

    calls = fake.requests_to("/helix/users")
    assert [r.status for r in calls] == [200, 401, 200, 200]
    assert [r.headers["Authorization"] for r in calls] == [
        "Bearer [token 1]",
        "Bearer [token 1]",
        "Bearer [token 2]",
        "Bearer [token 2]",
    ]
    assert calls[1].query == calls[2].query
    assert client.token_fetches == 2


async def test_concurrent_401s_trigger_one_refetch(fake: FakeTwitch, client: TwitchClient) -> None:
    ids = user_ids_of(fake, 500)
    await client.get_streams(ids[:1])
    fake.expire_tokens()
    snapshot = await client.get_streams(ids)
    assert snapshot.failed == frozenset()
    assert snapshot.checked == set(ids)
    assert fake.token_requests == 2


async def test_persistent_401_raises_api_error(fake: FakeTwitch, client: TwitchClient) -> None:
    fake.add_user("shroud")
    fake.fail_next("/helix/users", 401, times=2)
    with pytest.raises(TwitchAPIError) as info:
        await client.get_user("shroud")
    assert info.value.status == 401
    assert fake.token_requests == 2


async def test_validate_token(fake: FakeTwitch, client: TwitchClient) -> None:
    assert await client.validate_token() is True
    assert fake.validate_requests == 1
    assert fake.token_requests == 1
    assert fake.requests_to("/oauth2/validate")[0].headers["Authorization"] == "OAuth [token 1]"

    fake.expire_tokens()
    assert await client.validate_token() is False
    assert fake.token_requests == 2  # a fresh token was fetched right away
    assert await client.validate_token() is True
    assert fake.requests_to("/oauth2/validate")[-1].headers["Authorization"] == "OAuth [token 2]"


async def test_bad_client_secret_raises_auth_error(fake: FakeTwitch, make_client) -> None:
    client = make_client(client_secret="wrong-secret-value")
    with pytest.raises(TwitchAuthError) as info:
        await client.get_user("shroud")
    message = str(info.value)
    assert "client id/secret" in message
    assert "invalid client secret" in message
    assert "wrong-secret-value" not in message
    assert info.value.status == 403


async def test_bad_client_id_raises_auth_error(make_client) -> None:
    client = make_client(client_id="not-my-app")
    with pytest.raises(TwitchAuthError, match="invalid client"):
        await client.validate_token()


async def test_auth_error_is_raised_from_get_streams_with_one_token_request(fake: FakeTwitch, make_client) -> None:
    ids = user_ids_of(fake, 500)
    client = make_client(client_secret="wrong-secret-value")
    with pytest.raises(TwitchAuthError):
        await client.get_streams(ids)
    assert fake.token_requests == 1  # five batches queued on one failed fetch, none retried it


async def test_token_endpoint_5xx_is_retried(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    fake.add_user("shroud")
    fake.fail_next("/oauth2/token", 503)
    assert (await client.get_user("shroud")) is not None
    assert fake.token_requests == 1
    assert client.token_fetches == 2
    assert fake.count("/oauth2/token") == 2
    assert len(clock.sleeps) == 1


# ------------------------------------------------------------------------------------------------- users


async def test_get_users_batches_of_100(fake: FakeTwitch, client: TwitchClient) -> None:
    users = fake.add_users(250)
    found = await client.get_users(logins=[u.login.upper() for u in users])
    assert {u.id for u in found} == {u.id for u in users}
    calls = fake.requests_to("/helix/users")
    assert len(calls) == 3
    assert [len(r.values("login")) for r in calls] == [100, 100, 50]


async def test_get_users_mixes_ids_and_logins_and_dedupes(fake: FakeTwitch, client: TwitchClient) -> None:
    users = fake.add_users(150)
    found = await client.get_users(ids=[u.id for u in users[:60]], logins=[u.login for u in users])
    assert len(found) == 150
    calls = fake.requests_to("/helix/users")
    assert len(calls) == 3
    assert all(len(r.query) <= 100 for r in calls)


async def test_get_users_skips_malformed_logins(fake: FakeTwitch, client: TwitchClient) -> None:
    fake.add_user("shroud")
    found = await client.get_users(logins=["shroud", "bad name!", "", "ünïcode"])
    assert [u.login for u in found] == ["shroud"]
    assert fake.requests_to("/helix/users")[0].query == [("login", "shroud")]


async def test_get_users_with_nothing_makes_no_request(fake: FakeTwitch, client: TwitchClient) -> None:
    assert await client.get_users() == []
    assert fake.requests == []


async def test_get_user(fake: FakeTwitch, client: TwitchClient) -> None:
    shroud = fake.add_user("shroud", display_name="Shroud", broadcaster_type="partner")
    user = await client.get_user("https://www.twitch.tv/SHROUD")
    assert user is not None
    assert (user.id, user.login, user.display_name, user.broadcaster_type) == (
        shroud.id,
        "shroud",
        "Shroud",
        "partner",
    )
    assert user.profile_image_url.startswith("https://static-cdn.jtvnw.net/")
    assert await client.get_user("nobody_here") is None
    with pytest.raises(InvalidLogin):
        await client.get_user("@everyone")


async def test_renamed_and_removed_users(fake: FakeTwitch, client: TwitchClient) -> None:
    user = fake.add_user("oldname")
    fake.rename_user(user.id, "newname", "NewName")
    [found] = await client.get_users(ids=[user.id])
    assert (found.id, found.login, found.display_name) == (user.id, "newname", "NewName")
    assert await client.get_user("oldname") is None

    fake.go_live(user.id)
    fake.remove_user(user.id)
    assert await client.get_users(ids=[user.id]) == []
    snapshot = await client.get_streams([user.id])
    assert snapshot.streams == {}
    assert snapshot.checked == {user.id}


# ----------------------------------------------------------------------------------------------- streams


async def test_get_streams_150_ids_30_live_two_requests(fake: FakeTwitch, client: TwitchClient) -> None:
    ids = user_ids_of(fake, 150)
    live = ids[:30]  # all in the first batch: without first=100 Twitch would return only 20 of them
    for index, uid in enumerate(live):
        fake.go_live(uid, title=f"stream {index}", viewer_count=index)
    snapshot = await client.get_streams(ids)

    assert set(snapshot.streams) == set(live)
    assert snapshot.checked == set(ids)
    assert snapshot.failed == frozenset()
    assert snapshot.offline == set(ids[30:])
    assert snapshot.requests == 2
    calls = fake.requests_to("/helix/streams")
    assert len(calls) == 2
    assert [len(r.values("user_id")) for r in calls] == [100, 50]
    assert all(r.values("first") == ["100"] for r in calls)


async def test_get_streams_fields(fake: FakeTwitch, client: TwitchClient) -> None:
    user = fake.add_user("cool_streamer", display_name="Cool_Streamer")
    started = datetime(2021, 3, 10, 15, 4, 21, tzinfo=UTC)
    fake.go_live(
        user.id,
        title="Ranked grind",
        game_name="VALORANT",
        viewer_count=4321,
        started_at=started,
        stream_id="40001",
        tags=("English", "FPS"),
        is_mature=True,
    )
    stream = (await client.get_streams([user.id])).streams[user.id]
    assert stream.id == "40001"
    assert (stream.user_login, stream.user_name) == ("cool_streamer", "Cool_Streamer")
    assert (stream.game_id, stream.game_name) == ("516575", "VALORANT")
    assert (stream.title, stream.viewer_count, stream.language) == ("Ranked grind", 4321, "en")
    assert stream.started_at == started
    assert stream.started_at.tzinfo is not None
    assert stream.started_at.utcoffset() == timedelta(0)
    assert stream.tags == ("English", "FPS")
    assert stream.is_mature is True
    assert stream.thumbnail(640, 360) == (
        "https://static-cdn.jtvnw.net/previews-ttv/live_user_cool_streamer-640x360.jpg"
    )


async def test_get_streams_dedupes_and_handles_empty_input(fake: FakeTwitch, client: TwitchClient) -> None:
    empty = await client.get_streams([])
    assert empty == StreamsSnapshot(streams={}, checked=frozenset(), failed=frozenset(), requests=0)
    assert fake.requests == []

    a, b = user_ids_of(fake, 2)
    snapshot = await client.get_streams([a, b, a, " ", b])
    assert snapshot.requests == 1
    assert snapshot.checked == {a, b}
    assert fake.requests_to("/helix/streams")[0].values("user_id") == [a, b]


async def test_get_streams_never_sends_malformed_ids(
    fake: FakeTwitch, client: TwitchClient, caplog: pytest.LogCaptureFixture
) -> None:
    [good] = user_ids_of(fake, 1)
    fake.go_live(good)
    snapshot = await client.get_streams([good, "shroud", "12a", "１２"])
    assert set(snapshot.streams) == {good}
    assert snapshot.checked == {good}
    assert snapshot.failed == {"shroud", "12a", "１２"}  # unknown, never "offline"
    assert fake.requests_to("/helix/streams")[0].values("user_id") == [good]
    assert "3 malformed user ids" in caplog.text


async def test_get_streams_follows_pagination(fake: FakeTwitch, client: TwitchClient) -> None:
    fake.page_size_cap = 7
    ids = user_ids_of(fake, 100)
    for uid in ids[:30]:
        fake.go_live(uid)
    snapshot = await client.get_streams(ids)

    assert set(snapshot.streams) == set(ids[:30])
    assert snapshot.requests == 5
    calls = fake.requests_to("/helix/streams")
    assert all(r.values("user_id") == ids and r.values("first") == ["100"] for r in calls)
    assert calls[0].values("after") == []
    assert all(len(r.values("after")) == 1 for r in calls[1:])


async def test_429_retries_the_same_query(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    ids = user_ids_of(fake, 3)
    fake.go_live(ids[1])
    fake.fail_next("/helix/streams", 429)
    snapshot = await client.get_streams(ids)

    calls = fake.requests_to("/helix/streams")
    assert [r.status for r in calls] == [429, 200]
    assert calls[0].query == calls[1].query
    assert calls[1].values("user_id") == ids
    assert set(snapshot.streams) == {ids[1]}  # no "top streams" leaked in
    assert not set(snapshot.streams) & set(fake.top_user_ids)
    assert len(clock.sleeps) == 1
    assert 0 < clock.sleeps[0] <= 2.0


async def test_429_forever(fake: FakeTwitch, client: TwitchClient) -> None:
    ids = user_ids_of(fake, 3)
    fake.fail_next("/helix/", 429, times=None)
    snapshot = await client.get_streams(ids)
    assert snapshot.failed == set(ids)
    assert snapshot.checked == frozenset()
    with pytest.raises(TwitchRateLimited) as info:
        await client.get_users(ids=ids)
    assert info.value.reset_at > 0


async def test_500_once_is_retried(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    ids = user_ids_of(fake, 5)
    fake.go_live(ids[0])
    fake.fail_next("/helix/streams", 500)
    snapshot = await client.get_streams(ids)
    assert set(snapshot.streams) == {ids[0]}
    assert snapshot.checked == set(ids)
    assert snapshot.requests == 2
    assert len(clock.sleeps) == 1
    assert 0 <= clock.sleeps[0] <= 0.01


async def test_500_forever_fails_only_that_batch(
    fake: FakeTwitch, client: TwitchClient, caplog: pytest.LogCaptureFixture
) -> None:
    ids = user_ids_of(fake, 150)
    fake.go_live(ids[0])
    fake.go_live(ids[120])
    fake.fail_next("/helix/streams", 500, times=None, query=[("user_id", ids[0])])
    with caplog.at_level(logging.WARNING, logger="twitch_api"):
        snapshot = await client.get_streams(ids)

    assert snapshot.failed == set(ids[:100])
    assert snapshot.checked == set(ids[100:])
    assert set(snapshot.streams) == {ids[120]}
    assert ids[0] not in snapshot.offline  # unknown, never offline
    assert snapshot.requests == 1 + 4  # one good batch, one batch tried 1 + max_retries times
    warnings = [r for r in caplog.records if r.name == "twitch_api" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "500" in warnings[0].getMessage()


async def test_non_json_200_is_treated_as_a_failure(fake: FakeTwitch, client: TwitchClient) -> None:
    ids = user_ids_of(fake, 2)
    fake.fail_next("/helix/streams", 200, times=None, body="<html>oops</html>")
    snapshot = await client.get_streams(ids)
    assert snapshot.failed == set(ids)
    assert snapshot.checked == frozenset()


async def test_timeout_is_retried(fake: FakeTwitch, make_client) -> None:
    client = make_client(timeout=0.2, max_retries=1)
    ids = user_ids_of(fake, 2)
    fake.go_live(ids[0])
    fake.fail_next("/helix/streams", status=None, delay=5)
    snapshot = await client.get_streams(ids)
    assert set(snapshot.streams) == {ids[0]}
    assert snapshot.checked == set(ids)
    assert snapshot.requests == 2


async def test_timeout_forever_marks_batch_failed(fake: FakeTwitch, make_client) -> None:
    client = make_client(timeout=0.1, max_retries=1)
    ids = user_ids_of(fake, 2)
    fake.fail_next("/helix/", status=None, delay=5, times=None)
    snapshot = await client.get_streams(ids)
    assert snapshot.failed == set(ids)
    assert snapshot.checked == frozenset()
    assert snapshot.requests == 2
    with pytest.raises(TwitchUnavailable, match="timed out"):
        await client.get_users(ids=ids)


async def test_unreachable_twitch(clock: FakeTime) -> None:
    async with FakeTwitch() as gone:
        api_base, auth_base = gone.api_base, gone.auth_base
    async with TwitchClient(
        "id", "secret", api_base=api_base, auth_base=auth_base, max_retries=1, sleep=clock.sleep
    ) as client:
        with pytest.raises(TwitchUnavailable):
            await client.get_user("shroud")
        snapshot = await client.get_streams(["1", "2"])
        assert snapshot.failed == {"1", "2"}


async def test_other_4xx_is_not_retried(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    fake.add_user("shroud")
    fake.fail_next("/helix/users", 400, body='{"error":"Bad Request","status":400,"message":"Malformed query"}')
    with pytest.raises(TwitchAPIError) as info:
        await client.get_user("shroud")
    assert info.value.status == 400
    assert info.value.message == "Malformed query"
    assert fake.count("/helix/users") == 1
    assert clock.sleeps == []


async def test_a_200_without_data_is_retried_not_read_as_nobody_live(fake: FakeTwitch, client: TwitchClient) -> None:
    # Until the fault issue, `{}` was read as "nobody is live": two such answers ended every live card.
    ids = user_ids_of(fake, 3)
    fake.go_live(ids[0])
    fake.fail_next("/helix/streams", 200, body="{}")
    snapshot = await client.get_streams(ids)
    assert set(snapshot.streams) == {ids[0]}
    assert snapshot.checked == set(ids)
    assert fake.count("/helix/streams") == 2


@pytest.mark.parametrize("body", ['{"error": "upstream"}', '{"data": null}', '{"data": {}}', "[]", "<html>502</html>"])
async def test_answers_without_helixs_shape_leave_the_streamers_unknown(
    fake: FakeTwitch, client: TwitchClient, body: str
) -> None:
    ids = user_ids_of(fake, 3)
    fake.go_live(ids[0])
    fake.malformed_next("/helix/streams", body, times=10)
    snapshot = await client.get_streams(ids)
    assert snapshot.streams == {}
    assert snapshot.checked == set()
    assert snapshot.failed == set(ids)


async def test_defensive_stream_parsing(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    ids = user_ids_of(fake, 3)
    body = {
        "data": [
            {"user_id": ids[0], "id": "7"},  # everything else missing
            "garbage",
            {"user_id": ids[1], "type": ""},  # Twitch's "something went wrong" marker
            {"user_id": "999999", "type": "live", "title": "top stream"},  # not asked for
            {"user_id": ids[2], "id": "8", "type": "live", "viewer_count": "12", "started_at": "x", "tags": None},
        ],
        "pagination": [],
    }
    import json

    fake.fail_next("/helix/streams", 200, body=json.dumps(body))
    snapshot = await client.get_streams(ids)
    assert set(snapshot.streams) == {ids[0], ids[2]}
    assert snapshot.failed == {ids[1]}
    assert snapshot.checked == {ids[0], ids[2]}
    bare = snapshot.streams[ids[0]]
    assert (bare.viewer_count, bare.title, bare.tags, bare.is_mature) == (0, "", (), False)
    odd = snapshot.streams[ids[2]]
    assert odd.viewer_count == 12
    assert odd.started_at == datetime.fromtimestamp(clock.now, UTC)


async def test_an_entry_without_a_stream_id_leaves_its_streamer_unknown(fake: FakeTwitch, client: TwitchClient) -> None:
    # It used to be announced as stream "", then ended and announced again once the real id showed up.
    ids = user_ids_of(fake, 2)
    fake.go_live(ids[0])
    fake.go_live(ids[1])
    fake.poison_stream(ids[0], id=OMIT)
    snapshot = await client.get_streams(ids)
    assert set(snapshot.streams) == {ids[1]}
    assert snapshot.failed == {ids[0]}


@pytest.mark.parametrize(
    ("poison", "viewers"),
    [
        ({"viewer_count": RawJSON("1e999")}, 0),  # a number no double holds: Python reads inf
        ({"viewer_count": "1e999"}, 0),
        ({"viewer_count": 123456789012345678901234567890}, MAX_VIEWER_COUNT),  # above 64 bits
        ({"viewer_count": -5}, 0),
        ({"viewer_count": RawJSON("NaN")}, 0),
        ({"viewer_count": {"n": 1}}, 0),
        ({"title": None, "game_name": 7, "started_at": "yesterday", "tags": "x"}, 1),
        ({"title": RawJSON('"\\ud800 lone surrogate"')}, 1),
    ],
)
async def test_one_poisoned_entry_is_clamped_and_the_batch_goes_through(
    fake: FakeTwitch, client: TwitchClient, poison: dict, viewers: int
) -> None:
    ids = user_ids_of(fake, 3)
    fake.go_live(ids[0], viewer_count=1)
    fake.go_live(ids[1], viewer_count=7)
    fake.poison_stream(ids[0], **poison)
    snapshot = await client.get_streams(ids)
    assert set(snapshot.streams) == {ids[0], ids[1]}
    assert snapshot.checked == set(ids)
    assert snapshot.streams[ids[0]].viewer_count == viewers
    assert snapshot.streams[ids[1]].viewer_count == 7
    snapshot.streams[ids[0]].title.encode("utf-8")  # storable: raises if a lone surrogate survived


async def test_a_lone_surrogate_in_a_title_is_replaced(fake: FakeTwitch, client: TwitchClient) -> None:
    [user_id] = user_ids_of(fake, 1)
    fake.go_live(user_id)
    fake.poison_stream(user_id, title=RawJSON('"a \\ud800 b"'))
    snapshot = await client.get_streams([user_id])
    assert snapshot.streams[user_id].title == "a ? b"


# ------------------------------------------------------------------------------------------------ pacing


async def test_pacing_waits_for_reset_when_bucket_is_low(clock: FakeTime) -> None:
    async with FakeTwitch(rate_limit=3, clock=clock.time) as fake:
        fake.add_user("shroud")
        async with TwitchClient(
            fake.client_id,
            fake.client_secret,
            api_base=fake.api_base,
            auth_base=fake.auth_base,
            max_concurrency=1,
            clock=clock.time,
            sleep=clock.sleep,
        ) as client:
            start = clock.now
            await client.get_user("shroud")  # remaining 2
            await client.get_user("shroud")  # remaining 1 -> the next one must wait
            assert clock.sleeps == []
            assert client.rate_limit_remaining == 1
            await client.get_user("shroud")
        assert len(clock.sleeps) == 1
        assert 60 <= clock.sleeps[0] <= 61
        assert clock.now >= start + 60
        assert [r.status for r in fake.requests_to("/helix/users")] == [200, 200, 200]


async def test_big_cycle_never_hits_429(clock: FakeTime) -> None:
    async with FakeTwitch(rate_limit=10, clock=clock.time) as fake:
        ids = user_ids_of(fake, 2500)
        for uid in ids[::50]:
            fake.go_live(uid)
        async with TwitchClient(
            fake.client_id,
            fake.client_secret,
            api_base=fake.api_base,
            auth_base=fake.auth_base,
            max_concurrency=4,
            clock=clock.time,
            sleep=clock.sleep,
        ) as client:
            snapshot = await client.get_streams(ids)
        assert snapshot.failed == frozenset()
        assert snapshot.checked == set(ids)
        assert len(snapshot.streams) == 50
        assert snapshot.requests == 25
        assert all(r.status == 200 for r in fake.requests_to("/helix/streams"))
        assert clock.sleeps  # it did have to wait


# ------------------------------------------------------------------------------------------ housekeeping


async def test_injected_session_is_not_closed(fake: FakeTwitch) -> None:
    async with aiohttp.ClientSession() as session:
        async with TwitchClient(
            fake.client_id, fake.client_secret, session=session, api_base=fake.api_base, auth_base=fake.auth_base
        ) as client:
            assert await client.validate_token()
        assert not session.closed

    # A client that made its own session closes it: aiohttp reports an unclosed one as an error on GC.
    client = TwitchClient(fake.client_id, fake.client_secret, api_base=fake.api_base, auth_base=fake.auth_base)
    assert await client.validate_token()
    unclosed: list[dict] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unclosed.append(context))
    try:
        await client.close()
        del client
        import gc

        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert [c for c in unclosed if "Unclosed" in str(c.get("message"))] == []


async def test_no_secret_or_token_is_ever_logged(
    fake: FakeTwitch, make_client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ids = user_ids_of(fake, 150)
    fake.go_live(ids[0])
    client = make_client()
    await client.validate_token()
    await client.get_streams(ids)
    fake.expire_tokens()
    assert await client.validate_token() is False
    fake.expire_tokens()
    fake.fail_next("/helix/streams", 500, times=None, query=[("user_id", ids[0])])
    fake.fail_next("/helix/users", 429)
    await client.get_streams(ids)
    await client.get_users(ids=ids)
    with pytest.raises(TwitchAuthError) as info:
        await make_client(client_secret=SECRET + "-wrong").get_user("shroud")

    secrets_ = [SECRET, SECRET + "-wrong", *fake.issued_tokens]
    assert len(fake.issued_tokens) == 3
    texts = [record.getMessage() for record in caplog.records]
    texts += [record.exc_text or "" for record in caplog.records]
    texts.append(str(info.value))
    assert any("token" in text for text in texts)  # it did log about tokens
    for text in texts:
        for secret in secrets_:
            assert secret not in text


# ------------------------------------------------------------------------------- games, categories, VODs


async def test_get_games_by_id_and_name_with_box_art(fake: FakeTwitch, client: TwitchClient) -> None:
    games = await client.get_games(["516575", "nonsense"], names=["minecraft", "No Such Game"])
    assert sorted(g.name for g in games) == ["Minecraft", "VALORANT"]
    valorant = next(g for g in games if g.id == "516575")
    assert valorant.box_art_url == "https://static-cdn.jtvnw.net/ttv-boxart/516575-{width}x{height}.jpg"
    [request] = fake.requests_to("/helix/games")
    assert request.values("id") == ["516575"]
    assert request.values("name") == ["minecraft", "No Such Game"]
    assert await client.get_games([]) == []


async def test_get_games_batches_of_100(fake: FakeTwitch, client: TwitchClient) -> None:
    await client.get_games([str(i) for i in range(1, 251)])
    assert [len(r.values("id")) for r in fake.requests_to("/helix/games")] == [100, 100, 50]


async def test_search_categories(fake: FakeTwitch, client: TwitchClient) -> None:
    found = await client.search_categories("  val ")
    assert [c.name for c in found] == ["VALORANT"]
    assert fake.requests_to("/helix/search/categories")[0].values("query") == ["val"]
    assert await client.search_categories("   ") == []


async def test_latest_vod_and_vod_of_a_stream(fake: FakeTwitch, client: TwitchClient) -> None:
    user = fake.add_user("vodder")
    assert await client.get_latest_vod(user.id) is None
    first = fake.go_live(user.id)
    fake.go_offline(user.id)
    second = fake.go_live(user.id)
    video = fake.go_offline(user.id)
    latest = await client.get_latest_vod(user.id)
    assert (latest.id, latest.stream_id, latest.url) == (video.id, second.id, video.url)
    assert await client.find_vod_url(user.id, second.id) == video.url
    assert await client.find_vod_url(user.id, first.id) is None  # the latest VOD is another stream's
    request = fake.requests_to("/helix/videos")[-1]
    assert (request.values("type"), request.values("first")) == (["archive"], ["1"])
    fake.go_live(user.id)
    fake.go_offline(user.id, archive=False)
    assert await client.get_latest_vod("not-a-number") is None


# --------------------------------------------------------------------------- EventSub: conduits and shards
# Facts §2 and §5 (/work/shared/twitch-eventsub-facts.md). The fake records each EventSub call with the JSON
# body it parsed (`fake.eventsub.calls`); a failure injected with fail_next is answered before that record,
# so those are counted in `fake.requests` instead.

WEBHOOK_SECRET = "0123456789-webhook-secret"


def eventsub_calls(fake: FakeTwitch, method: str, path: str) -> list[EventSubCall]:
    return [c for c in fake.eventsub.calls if c.method == method and c.path == f"/helix/eventsub{path}"]


def requests_of(fake: FakeTwitch, method: str, path: str) -> list[RecordedRequest]:
    return [r for r in fake.requests_to(f"/helix/eventsub{path}") if r.method == method]


async def welcomed_session(
    fake: FakeTwitch, http: aiohttp.ClientSession
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    """A WebSocket connection to the fake's EventSub server and the session id of its welcome."""
    ws = await http.ws_connect(fake.eventsub_ws_url)
    message = await ws.receive_json(timeout=2.0)
    assert message["metadata"]["message_type"] == "session_welcome"
    return ws, message["payload"]["session"]["id"]


def on_conduit(conduit_id: str) -> dict[str, str]:
    return {"method": "conduit", "conduit_id": conduit_id}


async def test_get_channels_batches_ids_and_skips_malformed_ones(fake: FakeTwitch, client: TwitchClient) -> None:
    users = fake.add_users(150, "chan")
    fake.update_channel(users[0].id, title="Ranked grind", game_name="VALORANT", language="de")
    ids = [u.id for u in users]
    channels = await client.get_channels([*ids, ids[0], "not-a-number", " ", "99999999"])
    assert sorted(c.broadcaster_id for c in channels) == sorted(ids)  # unknown ids are simply absent
    first = next(c for c in channels if c.broadcaster_id == ids[0])
    assert (first.login, first.display_name, first.title, first.game_id, first.game_name, first.language) == (
        "chan_0",
        "chan_0",
        "Ranked grind",
        "516575",
        "VALORANT",
        "de",
    )
    requests = fake.requests_to("/helix/channels")
    assert [len(r.values("broadcaster_id")) for r in requests] == [100, 51]
    assert all("not-a-number" not in r.values("broadcaster_id") for r in requests)
    assert await client.get_channels([]) == []
    assert len(fake.requests_to("/helix/channels")) == 2


async def test_conduit_create_list_and_update_send_json_bodies(fake: FakeTwitch, client: TwitchClient) -> None:
    assert await client.get_conduits() == []
    conduit = await client.create_conduit(2)
    assert conduit == Conduit(conduit.id, 2)
    assert conduit.id in fake.eventsub.conduits
    assert await client.get_conduits() == [conduit]
    assert await client.update_conduit(conduit.id, 4) == Conduit(conduit.id, 4)
    assert fake.eventsub.conduits[conduit.id].shard_count == 4

    [create] = eventsub_calls(fake, "POST", "/conduits")
    assert (create.query, create.body, create.status, create.token) == ([], {"shard_count": 2}, 200, "app")
    [update] = eventsub_calls(fake, "PATCH", "/conduits")
    assert (update.query, update.body, update.status) == ([], {"id": conduit.id, "shard_count": 4}, 200)
    assert all(c.body is None and c.query == [] for c in eventsub_calls(fake, "GET", "/conduits"))
    for request in [*requests_of(fake, "POST", "/conduits"), *requests_of(fake, "PATCH", "/conduits")]:
        assert request.headers["Content-Type"].startswith("application/json")
        assert request.headers["Client-Id"] == fake.client_id


async def test_conduit_limit_is_raised_at_once_and_never_retried(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime
) -> None:
    for _ in range(5):
        await client.create_conduit(1)
    with pytest.raises(TwitchLimitExceeded) as info:
        await client.create_conduit(1)
    assert (info.value.status, info.value.message) == (429, "Conduit limit reached")
    assert len(requests_of(fake, "POST", "/conduits")) == 6  # one request for the refused one
    assert clock.sleeps == []


async def test_update_of_an_unknown_conduit_is_a_404_not_retried(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime
) -> None:
    with pytest.raises(TwitchAPIError) as info:
        await client.update_conduit("no-such-conduit", 2)
    assert info.value.status == 404
    assert not isinstance(info.value, TwitchConflict | TwitchLimitExceeded)
    assert len(requests_of(fake, "PATCH", "/conduits")) == 1
    assert clock.sleeps == []


async def test_shard_update_202_with_data_and_errors_is_parsed(fake: FakeTwitch, client: TwitchClient) -> None:
    conduit = await client.create_conduit(3)
    fake.eventsub.auto_verify_webhooks = False  # no challenge POST to a callback nobody serves
    async with aiohttp.ClientSession() as http:
        ws, session_id = await welcomed_session(fake, http)
        try:
            result = await client.update_conduit_shards(
                conduit.id,
                [
                    {"id": "0", "transport": {"method": "websocket", "session_id": session_id}},
                    {"id": "7", "transport": {"method": "websocket", "session_id": session_id}},
                    {"id": "1", "transport": {"method": "websocket", "session_id": "AQoQnot-connected"}},
                    {
                        "id": "2",
                        "transport": {
                            "method": "webhook",
                            "callback": "https://bot.example.com/eventsub",
                            "secret": WEBHOOK_SECRET,
                        },
                    },
                ],
            )
        finally:
            await ws.close()

    assert result.updated == (
        ConduitShard("0", "enabled", "websocket", session_id=session_id),
        ConduitShard(
            "2", "webhook_callback_verification_pending", "webhook", callback="https://bot.example.com/eventsub"
        ),
    )
    assert result.failed == (
        ShardFailure("7", "The shard id is outside the conduit's range", "invalid_parameter"),
        ShardFailure("1", "The websocket session is not connected.", "invalid_parameter"),
    )
    [call] = eventsub_calls(fake, "PATCH", "/conduits/shards")
    assert call.status == 202
    assert call.query == []  # conduit_id goes in the body, not the URL (unlike TwitchIO, §2)
    assert call.body["conduit_id"] == conduit.id
    assert [s["id"] for s in call.body["shards"]] == ["0", "7", "1", "2"]
    assert call.body["shards"][3]["transport"]["secret"] == WEBHOOK_SECRET


async def test_shard_update_of_a_deleted_conduit_is_a_404(fake: FakeTwitch, client: TwitchClient) -> None:
    with pytest.raises(TwitchAPIError) as info:
        await client.update_conduit_shards("gone", [{"id": "0", "transport": {"method": "websocket"}}])
    assert info.value.status == 404
    assert len(requests_of(fake, "PATCH", "/conduits/shards")) == 1


async def test_get_conduit_shards_reads_every_page(fake: FakeTwitch, client: TwitchClient) -> None:
    conduit = await client.create_conduit(5)
    fake.eventsub.shards_page_size = 2
    shards = await client.get_conduit_shards(conduit.id)
    assert [s.id for s in shards] == ["0", "1", "2", "3", "4"]
    assert all(s.status == "websocket_disconnected" for s in shards)  # never bound
    calls = eventsub_calls(fake, "GET", "/conduits/shards")
    assert len(calls) == 3
    assert all(("conduit_id", conduit.id) in c.query for c in calls)
    assert [len([v for k, v in c.query if k == "after"]) for c in calls] == [0, 1, 1]


# ------------------------------------------------------------------------------ EventSub: subscriptions


async def test_create_subscription_sends_the_documented_body_and_reads_the_202(
    fake: FakeTwitch, client: TwitchClient
) -> None:
    user = fake.add_user("cool_user")
    conduit = await client.create_conduit(1)
    answer = await client.create_eventsub_subscription(
        "channel.update", "2", {"broadcaster_user_id": user.id}, on_conduit(conduit.id)
    )
    [sub] = answer.subscriptions
    assert (sub.type, sub.version, sub.status, sub.broadcaster_user_id) == ("channel.update", "2", "enabled", user.id)
    assert (sub.method, sub.conduit_id, sub.cost, sub.kind) == ("conduit", conduit.id, 1, ("channel.update", "2"))
    assert sub.id in fake.eventsub.subscriptions
    assert (answer.total_cost, answer.max_total_cost) == (1, 10_000)
    [call] = eventsub_calls(fake, "POST", "/subscriptions")
    assert call.status == 202
    assert call.query == []
    assert call.body == {
        "type": "channel.update",
        "version": "2",
        "condition": {"broadcaster_user_id": user.id},
        "transport": {"method": "conduit", "conduit_id": conduit.id},
    }


async def test_409_is_a_conflict_raised_once(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    user = fake.add_user("cool_user")
    conduit = await client.create_conduit(1)
    await client.create_eventsub_subscription(
        "stream.online", "1", {"broadcaster_user_id": user.id}, on_conduit(conduit.id)
    )
    with pytest.raises(TwitchConflict) as info:
        await client.create_eventsub_subscription(
            "stream.online", "1", {"broadcaster_user_id": user.id}, on_conduit(conduit.id)
        )
    assert info.value.status == 409
    assert [r.status for r in requests_of(fake, "POST", "/subscriptions")] == [202, 409]
    assert clock.sleeps == []
    assert len(fake.eventsub.subscriptions) == 1


async def test_the_cost_cap_429_is_raised_at_once_and_never_retried(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime
) -> None:
    first, second = fake.add_user("first_user"), fake.add_user("second_user")
    conduit = await client.create_conduit(1)
    fake.eventsub.max_total_cost = 1
    await client.create_eventsub_subscription(
        "stream.online", "1", {"broadcaster_user_id": first.id}, on_conduit(conduit.id)
    )
    with pytest.raises(TwitchLimitExceeded) as info:
        await client.create_eventsub_subscription(
            "stream.online", "1", {"broadcaster_user_id": second.id}, on_conduit(conduit.id)
        )
    assert info.value.status == 429
    assert "exceeded" in info.value.message
    assert [r.status for r in requests_of(fake, "POST", "/subscriptions")] == [202, 429]
    assert clock.sleeps == []


async def test_a_quota_429_naming_its_limit_is_not_retried_even_with_an_empty_bucket(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime
) -> None:
    # The fake answers an injected 429 with Ratelimit-Remaining 0, like the bucket's; the message decides.
    user = fake.add_user("cool_user")
    conduit = await client.create_conduit(1)
    fake.fail_next(
        "/helix/eventsub/subscriptions",
        429,
        body={
            "error": "Too Many Requests",
            "status": 429,
            "message": "maximum subscriptions with type and condition exceeded",
        },
    )
    with pytest.raises(TwitchLimitExceeded):
        await client.create_eventsub_subscription(
            "stream.online", "1", {"broadcaster_user_id": user.id}, on_conduit(conduit.id)
        )
    assert len(requests_of(fake, "POST", "/subscriptions")) == 1
    assert clock.sleeps == []


async def test_the_points_bucket_429_is_waited_for_and_the_same_body_sent_again(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime
) -> None:
    user = fake.add_user("cool_user")
    conduit = await client.create_conduit(1)
    fake.fail_next("/helix/eventsub/subscriptions", 429)  # Ratelimit-Remaining 0, "Too Many Requests"
    answer = await client.create_eventsub_subscription(
        "stream.online", "1", {"broadcaster_user_id": user.id}, on_conduit(conduit.id)
    )
    assert [s.broadcaster_user_id for s in answer.subscriptions] == [user.id]
    assert [r.status for r in requests_of(fake, "POST", "/subscriptions")] == [429, 202]
    assert len(clock.sleeps) == 1
    assert 0 < clock.sleeps[0] <= 2.0
    [call] = eventsub_calls(fake, "POST", "/subscriptions")  # the retry carried the whole body
    assert call.body["condition"] == {"broadcaster_user_id": user.id}
    assert len(fake.eventsub.subscriptions) == 1


async def test_the_points_bucket_429_forever_is_rate_limited_not_a_quota(
    fake: FakeTwitch, client: TwitchClient
) -> None:
    user = fake.add_user("cool_user")
    conduit = await client.create_conduit(1)
    fake.fail_next("/helix/eventsub/subscriptions", 429, times=None)
    with pytest.raises(TwitchRateLimited):
        await client.create_eventsub_subscription(
            "stream.online", "1", {"broadcaster_user_id": user.id}, on_conduit(conduit.id)
        )
    assert len(requests_of(fake, "POST", "/subscriptions")) == 1 + 3  # max_retries waits


async def test_a_400_from_create_is_not_retried(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    conduit = await client.create_conduit(1)
    with pytest.raises(TwitchAPIError) as info:
        await client.create_eventsub_subscription(
            "stream.online", "1", {"broadcaster_user_id": "12345"}, on_conduit(conduit.id)
        )
    assert (info.value.status, info.value.message) == (400, "The user in the condition does not exist")
    assert len(requests_of(fake, "POST", "/subscriptions")) == 1
    assert clock.sleeps == []


async def test_the_listing_reads_every_page_with_the_cost_figures(fake: FakeTwitch, client: TwitchClient) -> None:
    users = fake.add_users(5, "listed")
    conduit = await client.create_conduit(1)
    for user in users:
        await client.create_eventsub_subscription(
            "stream.online", "1", {"broadcaster_user_id": user.id}, on_conduit(conduit.id)
        )
    await client.create_eventsub_subscription(
        "stream.offline", "1", {"broadcaster_user_id": users[0].id}, on_conduit(conduit.id)
    )
    fake.eventsub.subscriptions_page_size = 2
    fake.eventsub.max_total_cost = 500

    listing = await client.get_eventsub_subscriptions()
    assert [s.broadcaster_user_id for s in listing.subscriptions] == [*(u.id for u in users), users[0].id]
    assert len({s.id for s in listing.subscriptions}) == 6
    assert (listing.total_cost, listing.max_total_cost) == (6, 500)
    pages = eventsub_calls(fake, "GET", "/subscriptions")
    assert len(pages) == 3
    assert [len([v for k, v in c.query if k == "after"]) for c in pages] == [0, 1, 1]

    online = await client.get_eventsub_subscriptions(sub_type="stream.online")
    assert [s.type for s in online.subscriptions] == ["stream.online"] * 5
    assert (online.total_cost, online.max_total_cost) == (6, 500)  # the app's whole cost, whatever the filter
    typed = eventsub_calls(fake, "GET", "/subscriptions")[3:]
    assert len(typed) == 3
    assert all(("type", "stream.online") in c.query for c in typed)


async def test_an_empty_listing(fake: FakeTwitch, client: TwitchClient) -> None:
    listing = await client.get_eventsub_subscriptions()
    assert listing == EventSubListing((), 0, 10_000)
    assert len(eventsub_calls(fake, "GET", "/subscriptions")) == 1


async def test_delete_subscription_true_then_false_on_404(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime
) -> None:
    user = fake.add_user("cool_user")
    conduit = await client.create_conduit(1)
    answer = await client.create_eventsub_subscription(
        "stream.online", "1", {"broadcaster_user_id": user.id}, on_conduit(conduit.id)
    )
    sub_id = answer.subscriptions[0].id
    assert await client.delete_eventsub_subscription(sub_id) is True
    assert fake.eventsub.subscriptions == {}
    assert await client.delete_eventsub_subscription(sub_id) is False
    calls = eventsub_calls(fake, "DELETE", "/subscriptions")
    assert [(c.query, c.status) for c in calls] == [([("id", sub_id)], 204), ([("id", sub_id)], 404)]
    assert clock.sleeps == []


async def test_delete_subscription_retries_a_5xx(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    user = fake.add_user("cool_user")
    conduit = await client.create_conduit(1)
    answer = await client.create_eventsub_subscription(
        "stream.online", "1", {"broadcaster_user_id": user.id}, on_conduit(conduit.id)
    )
    fake.fail_next("/helix/eventsub/subscriptions", 503)
    assert await client.delete_eventsub_subscription(answer.subscriptions[0].id) is True
    assert [r.status for r in requests_of(fake, "DELETE", "/subscriptions")] == [503, 204]
    assert len(clock.sleeps) == 1
