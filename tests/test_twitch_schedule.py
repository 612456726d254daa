"""Tests for TwitchClient.get_channel_schedule (GET /helix/schedule) against the fake Twitch over real HTTP.
Time is injected (clock + sleep), as in test_twitch_api.py, so retries and rate-limit waits cost no real time."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes.fake_twitch import HTML_ERROR_PAGE, FakeTwitch
from twitch_api import (
    ChannelSchedule,
    ScheduleSegment,
    TwitchAPIError,
    TwitchAuthError,
    TwitchClient,
    TwitchRateLimited,
    TwitchServerError,
)

WEEK = timedelta(days=7)


class FakeTime:
    """Injected clock + sleep: sleeping advances the clock instantly and records the wait."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))  # whole seconds: Twitch's times have none smaller
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def moment(self, **delta: float) -> datetime:
        return datetime.fromtimestamp(self.now, UTC) + timedelta(**delta)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def fake(clock: FakeTime):
    async with FakeTwitch(clock=clock.time, top_streams=False) as server:
        yield server
    assert server.unhandled == []


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
        client_secret = options.pop("client_secret", fake.client_secret)
        client = TwitchClient(fake.client_id, client_secret, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def client(make_client) -> TwitchClient:
    return make_client()


def schedule_body(broadcaster_id: str, segments: object, **data: object) -> dict[str, object]:
    """A Get Channel Stream Schedule answer with exactly the given segments (for bodies the fake never makes)."""
    body = {
        "segments": segments,
        "broadcaster_id": broadcaster_id,
        "broadcaster_name": "Planner",
        "broadcaster_login": "planner",
        "vacation": None,
    }
    return {"data": {**body, **data}, "pagination": {}}


# ------------------------------------------------------------------------------------------------ reading


async def test_a_schedule_is_read_in_one_request(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    user = fake.add_user("planner")
    soon = fake.add_segment(user.id, clock.moment(hours=3), title="Soon", game_name="Minecraft")
    weekly = fake.add_weekly(user.id, clock.moment(days=1), 2, title="Every Friday", duration=timedelta(hours=4))
    fake.cancel_segment(user.id, weekly[1].id)

    schedule = await client.get_channel_schedule(user.id, horizon=WEEK + timedelta(days=2))

    assert schedule == ChannelSchedule(
        user.id,
        (
            ScheduleSegment(soon.id, clock.moment(hours=3), clock.moment(hours=5), "Soon", "Minecraft"),
            ScheduleSegment(
                weekly[0].id, clock.moment(days=1), clock.moment(days=1, hours=4), "Every Friday", recurring=True
            ),
            ScheduleSegment(
                weekly[1].id,
                clock.moment(days=8),
                clock.moment(days=8, hours=4),
                "Every Friday",
                canceled=True,
                recurring=True,
            ),
        ),
    )
    [request] = fake.requests_to("/helix/schedule")
    assert request.query == [("broadcaster_id", user.id), ("first", "25")]


async def test_the_segment_in_progress_and_the_vacation(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime
) -> None:
    user = fake.add_user("planner")
    fake.add_segment(user.id, clock.moment(hours=-5))  # over
    running = fake.add_segment(user.id, clock.moment(hours=-1), duration=timedelta(hours=3))
    fake.add_weekly(user.id, clock.moment(days=1), 3)
    fake.set_vacation(user.id, clock.moment(days=2), clock.moment(days=16))

    schedule = await client.get_channel_schedule(user.id, horizon=timedelta(days=30))

    assert [s.start for s in schedule.segments] == [clock.moment(hours=-1), clock.moment(days=1)]
    assert schedule.segments[0].id == running.id
    assert (schedule.vacation_start, schedule.vacation_end) == (clock.moment(days=2), clock.moment(days=16))


async def test_no_schedule_is_an_empty_one(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    user = fake.add_user("planner")
    assert await client.get_channel_schedule(user.id) == ChannelSchedule(user.id, ())
    assert await client.get_channel_schedule("99999999") == ChannelSchedule("99999999", ())
    assert [r.status for r in fake.requests_to("/helix/schedule")] == [404, 404]  # never retried
    assert clock.sleeps == []

    fake.add_segment(user.id, clock.moment(days=30))  # planned, but past anything asked for
    assert await client.get_channel_schedule(user.id, horizon=WEEK) == ChannelSchedule(user.id, ())


async def test_a_null_segment_list_is_an_empty_schedule(fake: FakeTwitch, client: TwitchClient) -> None:
    user = fake.add_user("planner")
    fake.fail_next("/helix/schedule", 200, body=schedule_body(user.id, None))
    assert await client.get_channel_schedule(user.id) == ChannelSchedule(user.id, ())
    assert fake.count("/helix/schedule") == 1


async def test_malformed_ids_make_no_request(fake: FakeTwitch, client: TwitchClient) -> None:
    for bad in ("", "  ", "planner", "12a", "١٢٣", "-5"):
        assert (await client.get_channel_schedule(bad)).segments == ()
    assert fake.count("/helix/schedule") == 0
    assert client.request_count == 0


# --------------------------------------------------------------------------------------------------- pages


async def test_paging_stops_at_the_horizon(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    user = fake.add_user("planner")
    fake.add_weekly(user.id, clock.moment(hours=1), 2)
    for day in range(30):  # a daily show: 30 more segments, 2 pages of 25
        fake.add_segment(user.id, clock.moment(days=day, hours=2))

    schedule = await client.get_channel_schedule(user.id, horizon=WEEK)

    assert fake.count("/helix/schedule") == 1  # the first page already ends past the week
    assert len(schedule.segments) == 1 + 7  # the weekly at +1h (not the one at +7d1h) and days 0-6 of the daily
    assert all(s.start <= clock.moment(days=7) for s in schedule.segments)
    assert [s.start for s in schedule.segments] == sorted(s.start for s in schedule.segments)


async def test_the_cursor_is_followed_while_inside_the_horizon(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime
) -> None:
    user = fake.add_user("planner")
    fake.page_size_cap = 10
    segments = [fake.add_segment(user.id, clock.moment(hours=12 * n + 1)) for n in range(30)]  # twice a day

    schedule = await client.get_channel_schedule(user.id, horizon=WEEK)

    # Pages of 10 cover 5 days each: the second page ends past the week, so no third is asked for.
    assert fake.count("/helix/schedule") == 2
    assert [s.id for s in schedule.segments] == [s.id for s in segments[:14]]
    second = fake.requests_to("/helix/schedule")[1]
    assert second.values("broadcaster_id") == [user.id]
    assert second.values("first") == ["25"]
    assert second.values("after")


async def test_max_segments_stops_paging(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    user = fake.add_user("planner")
    fake.page_size_cap = 10
    for n in range(40):
        fake.add_segment(user.id, clock.moment(hours=n + 1))

    assert len((await client.get_channel_schedule(user.id, horizon=WEEK)).segments) == 25
    assert fake.count("/helix/schedule") == 3
    everything = await client.get_channel_schedule(user.id, max_segments=100)
    assert len(everything.segments) == 40
    assert fake.count("/helix/schedule") == 3 + 4
    assert await client.get_channel_schedule(user.id, max_segments=0) == ChannelSchedule(user.id, ())
    assert fake.count("/helix/schedule") == 7


async def test_a_404_on_a_later_page_keeps_what_was_read(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime
) -> None:
    user = fake.add_user("planner")
    fake.page_size_cap = 5
    for n in range(8):
        fake.add_segment(user.id, clock.moment(hours=n + 1))
    fake.fail_next("/helix/schedule", None)  # the first page passes untouched
    fake.fail_next("/helix/schedule", 404)

    schedule = await client.get_channel_schedule(user.id, horizon=WEEK)

    assert len(schedule.segments) == 5
    assert [r.status for r in fake.requests_to("/helix/schedule")] == [200, 404]


# ------------------------------------------------------------------------------------- defensive parsing


async def test_malformed_segments_are_skipped(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    user = fake.add_user("planner")
    at = clock.moment(hours=2).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = clock.moment(hours=1).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    good = {"id": "b2s=", "start_time": at, "end_time": None, "title": "ok", "category": None, "is_recurring": False}
    segments = [
        {**good, "id": None},
        {**good, "id": "no-start", "start_time": "tomorrow"},
        {**good, "id": "x" * 5000},
        "not an object",
        None,
        good,
        {**good, "id": "odd-fields", "end_time": before, "category": "Minecraft", "title": 7, "is_recurring": "yes"},
        {**good, "id": "cancelled", "canceled_until": at, "category": {"id": "1", "name": "Chess"}},
    ]
    fake.fail_next("/helix/schedule", 200, body=schedule_body(user.id, segments, vacation={"start_time": "soon"}))

    with caplog.at_level(logging.DEBUG, logger="twitch_api"):
        schedule = await client.get_channel_schedule(user.id, horizon=WEEK)

    start = clock.moment(hours=2)
    assert schedule == ChannelSchedule(
        user.id,
        (
            ScheduleSegment("b2s=", start, None, "ok"),
            ScheduleSegment("cancelled", start, None, "ok", "Chess", canceled=True),
            ScheduleSegment("odd-fields", start, None, "7"),  # an end before its start is no end
        ),
    )
    assert sum("malformed schedule segment" in r.getMessage() for r in caplog.records) == 3
    assert fake.count("/helix/schedule") == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"error": "upstream"}, "application/json"),
        ({"data": []}, "application/json"),  # a list, as other endpoints answer
        ({"data": {}}, "application/json"),  # no segments: must not read as "nothing planned"
        ({"data": {"segments": "none"}}, "application/json"),
        ([1, 2], "application/json"),
        (HTML_ERROR_PAGE, "text/html"),
    ],
)
async def test_a_malformed_200_is_retried_like_other_endpoints(
    fake: FakeTwitch, client: TwitchClient, clock: FakeTime, body: object, content_type: str
) -> None:
    user = fake.add_user("planner")
    segment = fake.add_segment(user.id, clock.moment(hours=1))
    fake.malformed_next("/helix/schedule", body, content_type=content_type)

    schedule = await client.get_channel_schedule(user.id)

    assert [s.id for s in schedule.segments] == [segment.id]
    assert fake.count("/helix/schedule") == 2
    assert len(clock.sleeps) == 1


async def test_a_malformed_200_forever_is_a_server_error(fake: FakeTwitch, make_client) -> None:
    user = fake.add_user("planner")
    client = make_client(max_retries=2)
    fake.malformed_next("/helix/schedule", {"data": []}, times=None)
    with pytest.raises(TwitchServerError, match="no data object"):
        await client.get_channel_schedule(user.id)
    assert fake.count("/helix/schedule") == 3


# --------------------------------------------------------------------------------- failures, as elsewhere


async def test_429_waits_and_retries_the_same_query(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    user = fake.add_user("planner")
    fake.add_segment(user.id, clock.moment(hours=1))
    fake.fail_next("/helix/schedule", 429, headers={"Ratelimit-Reset": str(int(clock.now) + 3)})

    assert len((await client.get_channel_schedule(user.id)).segments) == 1

    first, second = fake.requests_to("/helix/schedule")
    assert first.query == second.query == [("broadcaster_id", user.id), ("first", "25")]
    assert clock.sleeps == [3.0]


async def test_429_forever_is_rate_limited(fake: FakeTwitch, make_client) -> None:
    user = fake.add_user("planner")
    fake.fail_next("/helix/schedule", 429, times=None)
    with pytest.raises(TwitchRateLimited):
        await make_client(max_retries=2).get_channel_schedule(user.id)
    assert fake.count("/helix/schedule") == 3


async def test_5xx_is_retried_and_a_400_is_not(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    user = fake.add_user("planner")
    fake.add_segment(user.id, clock.moment(hours=1))
    fake.fail_next("/helix/schedule", 503)
    assert len((await client.get_channel_schedule(user.id)).segments) == 1
    assert [r.status for r in fake.requests_to("/helix/schedule")] == [503, 200]

    fake.fail_next("/helix/schedule", 400)
    with pytest.raises(TwitchAPIError) as raised:
        await client.get_channel_schedule(user.id)
    assert raised.value.status == 400
    assert fake.count("/helix/schedule") == 3


async def test_a_revoked_token_is_replaced(fake: FakeTwitch, client: TwitchClient, clock: FakeTime) -> None:
    user = fake.add_user("planner")
    fake.add_segment(user.id, clock.moment(hours=1))
    await client.get_channel_schedule(user.id)
    fake.expire_tokens()
    assert len((await client.get_channel_schedule(user.id)).segments) == 1
    assert [r.status for r in fake.requests_to("/helix/schedule")] == [200, 401, 200]
    assert fake.token_requests == 2


async def test_bad_credentials_raise_auth_error(fake: FakeTwitch, make_client) -> None:
    user = fake.add_user("planner")
    with pytest.raises(TwitchAuthError):
        await make_client(client_secret="wrong").get_channel_schedule(user.id)
    assert fake.count("/helix/schedule") == 0
