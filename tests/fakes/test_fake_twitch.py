"""Tests for the fake Twitch itself, with a bare aiohttp session: it must be as strict as real Twitch,
or the client tests prove nothing."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.fakes.fake_twitch import HTML_ERROR_PAGE, OMIT, FakeTwitch, RawJSON


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwitch]:
    async with FakeTwitch() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def token_for(fake: FakeTwitch, http: aiohttp.ClientSession) -> str:
    form = {"client_id": fake.client_id, "client_secret": fake.client_secret, "grant_type": "client_credentials"}
    async with http.post(f"{fake.auth_base}/token", data=form) as response:
        assert response.status == 200
        return (await response.json())["access_token"]


async def helix(fake: FakeTwitch, http: aiohttp.ClientSession, path: str, params=(), token: str | None = None):
    token = token or await token_for(fake, http)
    headers = {"Client-Id": fake.client_id, "Authorization": f"Bearer {token}"}
    async with http.get(f"{fake.api_base}{path}", params=list(params), headers=headers) as response:
        return response.status, dict(response.headers), await response.json()


async def test_token_endpoint(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    base = {"client_id": fake.client_id, "client_secret": fake.client_secret, "grant_type": "client_credentials"}
    async with http.post(f"{fake.auth_base}/token", data=base) as response:
        body = await response.json()
        assert response.status == 200
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 5_000_000
        assert re.fullmatch(r"[a-z0-9]{30}", body["access_token"])
    async with http.post(f"{fake.auth_base}/token", params=base) as response:  # query string works too
        assert response.status == 200
    async with http.post(f"{fake.auth_base}/token", data={**base, "client_secret": "nope"}) as response:
        assert response.status == 403
        assert await response.json() == {"status": 403, "message": "invalid client secret"}
    async with http.post(f"{fake.auth_base}/token", data={**base, "client_id": "other"}) as response:
        assert response.status == 400
        assert (await response.json())["message"] == "invalid client"
    assert fake.token_requests == 4
    assert len(fake.issued_tokens) == 2


async def test_validate_endpoint(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    token = await token_for(fake, http)
    async with http.get(f"{fake.auth_base}/validate", headers={"Authorization": f"OAuth {token}"}) as response:
        assert response.status == 200
        body = await response.json()
        assert body["client_id"] == fake.client_id
        assert 0 < body["expires_in"] <= 5_000_000
    fake.expire_tokens()
    async with http.get(f"{fake.auth_base}/validate", headers={"Authorization": f"OAuth {token}"}) as response:
        assert response.status == 401
    assert fake.validate_requests == 2


async def test_helix_requires_matching_client_id_and_valid_token(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    fake.add_user("shroud")
    async with http.get(f"{fake.api_base}/users", params={"login": "shroud"}) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "Unauthorized"
    token = await token_for(fake, http)
    headers = {"Client-Id": "someone-else", "Authorization": f"Bearer {token}"}
    async with http.get(f"{fake.api_base}/users", params={"login": "shroud"}, headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["message"] == "Client ID and OAuth token do not match"
    fake.expire_tokens()
    status, headers_, body = await helix(fake, http, "/users", [("login", "shroud")], token=token)
    assert status == 401
    assert body == {"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"}
    assert "Ratelimit-Remaining" in headers_
    assert fake.requests[-1].headers["Authorization"] == "Bearer [token 1]"  # recorded without the secret


async def test_users(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    shroud = fake.add_user("shroud", display_name="Shroud")
    status, headers, body = await helix(fake, http, "/users", [("login", "SHROUD"), ("login", "ghost")])
    assert status == 200
    assert [u["id"] for u in body["data"]] == [shroud.id]
    assert {"Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset"} <= set(headers)
    status, _, _ = await helix(fake, http, "/users", [("id", str(i)) for i in range(101)])
    assert status == 400
    status, _, _ = await helix(fake, http, "/users", [("login", "bad name")])
    assert status == 400
    status, _, _ = await helix(fake, http, "/users")
    assert status == 400


async def test_streams_paging_and_limits(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    users = fake.add_users(30)
    for index, user in enumerate(users[:25]):
        fake.go_live(user.id, viewer_count=index)
    ids = [("user_id", u.id) for u in users]

    status, _, page1 = await helix(fake, http, "/streams", ids)  # default first=20
    assert status == 200
    assert len(page1["data"]) == 20
    assert page1["pagination"]["cursor"]
    _, _, page2 = await helix(fake, http, "/streams", [*ids, ("after", page1["pagination"]["cursor"])])
    assert len(page2["data"]) == 5
    assert page2["pagination"] == {}
    assert {s["user_id"] for s in page1["data"] + page2["data"]} == {u.id for u in users[:25]}

    _, _, full = await helix(fake, http, "/streams", [*ids, ("first", "100")])
    assert len(full["data"]) == 25
    stream = full["data"][0]
    assert stream["type"] == "live"
    assert stream["viewer_count"] == 24
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stream["started_at"])
    assert stream["thumbnail_url"] == (
        f"https://static-cdn.jtvnw.net/previews-ttv/live_user_{stream['user_login']}-{{width}}x{{height}}.jpg"
    )
    assert (await helix(fake, http, "/streams", [*ids, ("first", "101")]))[0] == 400
    assert (await helix(fake, http, "/streams", [("user_id", str(i)) for i in range(101)]))[0] == 400
    assert (await helix(fake, http, "/streams", [("user_login", users[0].login)]))[2]["data"][0]["user_id"] == (
        users[0].id
    )

    _, _, nobody = await helix(fake, http, "/streams", [("user_id", users[29].id)])
    assert nobody == {"data": [], "pagination": {}}


async def test_streams_without_query_returns_top_streams(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    mine = fake.add_user("mine")
    status, _, body = await helix(fake, http, "/streams")
    assert status == 200
    assert {s["user_id"] for s in body["data"]} == set(fake.top_user_ids)
    assert mine.id not in {s["user_id"] for s in body["data"]}


async def test_world_changes(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    user = fake.add_user("shroud")
    first = fake.go_live("shroud", game_name="Minecraft")
    assert (first.game_id, first.game_name) == ("27471", "Minecraft")
    second = fake.go_live("shroud")
    assert second.id != first.id
    assert len(fake.videos) == 1
    fake.update_stream(user.id, title="new title", viewer_count=5)
    fake.rename_user(user.id, "shroud2", "Shroud2")
    _, _, body = await helix(fake, http, "/streams", [("user_id", user.id)])
    [stream] = body["data"]
    assert (stream["id"], stream["title"], stream["viewer_count"]) == (second.id, "new title", 5)
    assert (stream["user_login"], stream["user_name"]) == ("shroud2", "Shroud2")
    fake.remove_user(user.id)
    _, _, body = await helix(fake, http, "/users", [("id", user.id)])
    assert body["data"] == []


async def test_videos_after_a_stream_ends(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    user = fake.add_user("shroud")
    started = datetime.now(UTC) - timedelta(hours=3, minutes=2, seconds=1)
    stream = fake.go_live(user.id, title="long one", started_at=started)
    video = fake.go_offline(user.id)
    assert video is not None
    assert video.duration == "3h2m1s"
    _, _, body = await helix(fake, http, "/videos", [("user_id", user.id), ("type", "archive"), ("first", "1")])
    [vod] = body["data"]
    assert vod["url"] == f"https://www.twitch.tv/videos/{video.id}"
    assert (vod["stream_id"], vod["title"], vod["type"]) == (stream.id, "long one", "archive")
    assert fake.go_offline(user.id) is None
    assert (await helix(fake, http, "/videos"))[0] == 400


async def test_games_and_search(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    _, _, body = await helix(fake, http, "/games", [("id", "509658"), ("id", "21779")])
    assert {g["name"] for g in body["data"]} == {"Just Chatting", "League of Legends"}
    assert body["data"][0]["box_art_url"].endswith("-{width}x{height}.jpg")
    _, _, body = await helix(fake, http, "/search/categories", [("query", "valo")])
    assert [g["id"] for g in body["data"]] == ["516575"]
    assert (await helix(fake, http, "/search/categories"))[0] == 400


async def test_failures_rate_limits_and_unhandled(http: aiohttp.ClientSession) -> None:
    async with FakeTwitch(rate_limit=2) as fake:
        token = await token_for(fake, http)
        fake.fail_next("/helix/streams", 429)
        status, headers, _ = await helix(fake, http, "/streams", [("user_id", "1")], token=token)
        assert status == 429
        assert headers["Ratelimit-Remaining"] == "0"
        assert float(headers["Ratelimit-Reset"]) > datetime.now(UTC).timestamp()

        statuses = [(await helix(fake, http, "/users", [("id", "1")], token=token))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]  # the opt-in bucket of 2 points

        async with http.get(f"http://127.0.0.1:{fake.port}/helix/eventsub/nope") as response:
            assert response.status == 404
        assert [r.path for r in fake.unhandled] == ["/helix/eventsub/nope"]
        assert fake.count("/helix/users") == 3


# ------------------------------------------------------------------------------------ injected faults


async def helix_raw(
    fake: FakeTwitch, http: aiohttp.ClientSession, path: str, params=(), token: str | None = None, **kwargs: Any
) -> tuple[int, dict[str, str], str]:
    token = token or await token_for(fake, http)
    headers = {"Client-Id": fake.client_id, "Authorization": f"Bearer {token}"}
    async with http.get(f"{fake.api_base}{path}", params=list(params), headers=headers, **kwargs) as response:
        return response.status, dict(response.headers), await response.text()


async def eventually(predicate: Callable[[], object], what: str, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_poisoned_stream_entries_are_emitted_exactly(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    users = fake.add_users(4)
    fake.go_live(users[0].id, viewer_count=50, raw_overrides={"viewer_count": RawJSON("1e999")})
    fake.go_live(users[1].id, viewer_count=40)
    fake.poison_stream(users[1].id, viewer_count=123456789012345678901234567890, started_at="yesterday", title=None)
    fake.go_live(users[2].id, viewer_count=30)
    fake.poison_stream(users[2].id, viewer_count=float("inf"), user_login=OMIT, game_id=7)
    clean = fake.go_live(users[3].id, viewer_count=20)
    ids = [("user_id", u.id) for u in users] + [("first", "100")]

    status, _, text = await helix_raw(fake, http, "/streams", ids)
    assert status == 200
    assert text.count('"viewer_count": 1e999') == 2  # a number token no double can hold, not "Infinity"
    assert '"viewer_count": 123456789012345678901234567890' in text
    first, second, third, fourth = json.loads(text)["data"]  # still ordered by the real viewer counts
    assert first["viewer_count"] == math.inf
    assert first["user_id"] == users[0].id
    huge = 123456789012345678901234567890
    assert (second["viewer_count"], second["started_at"], second["title"]) == (huge, "yesterday", None)
    assert "user_login" not in third
    assert third["game_id"] == 7
    assert fourth == clean.to_json(users[3])
    assert fourth["viewer_count"] == 20

    fake.clear_poison(users[1].id)
    fake.go_live(users[0].id)  # a new stream starts clean
    _, _, text = await helix_raw(fake, http, "/streams", ids)
    assert "1e999" in text
    assert "123456789012345678901234567890" not in text
    fake.go_offline(users[2].id)
    _, _, text = await helix_raw(fake, http, "/streams", ids)
    assert all(isinstance(s["viewer_count"], int) for s in json.loads(text)["data"])


async def test_malformed_200s(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    user = fake.add_user("shroud")
    fake.go_live(user.id)
    fake.malformed_next()  # JSON without "data"
    fake.malformed_next(body={"data": None})
    fake.malformed_next(body=HTML_ERROR_PAGE, content_type="text/html")
    fake.fail_next("/helix/streams", 502, body=HTML_ERROR_PAGE, content_type="text/html")
    query = [("user_id", user.id), ("first", "100")]
    token = await token_for(fake, http)

    answers = [await helix_raw(fake, http, "/streams", query, token=token) for _ in range(5)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 502, 200]
    assert json.loads(answers[0][2]) == {"error": "upstream"}
    assert json.loads(answers[1][2]) == {"data": None}
    for _, headers, text in answers[2:4]:
        assert headers["Content-Type"].startswith("text/html")
        assert text == HTML_ERROR_PAGE
    assert all("Ratelimit-Remaining" in headers for _, headers, _ in answers)
    assert [s["user_id"] for s in json.loads(answers[4][2])["data"]] == [user.id]  # faults used up


async def test_hung_request_times_out_the_client(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    user = fake.add_user("shroud")
    token = await token_for(fake, http)
    fake.hang_next("/helix/streams")
    query = [("user_id", user.id)]
    with pytest.raises(TimeoutError):
        await helix_raw(fake, http, "/streams", query, token=token, timeout=aiohttp.ClientTimeout(0.2))
    [hung] = fake.hung
    assert hung.path == "/helix/streams"
    assert hung.request.values("user_id") == [user.id]
    await eventually(lambda: hung.outcome == "abandoned", "the server to notice the client left")
    assert (await helix_raw(fake, http, "/streams", query, token=token))[0] == 200

    fake.hang_next("/helix/streams")
    waiting = asyncio.create_task(helix_raw(fake, http, "/streams", query, token=token))
    await eventually(lambda: len(fake.hung) == 2, "a second held request")
    assert not waiting.done()
    assert fake.release_hangs() == 1
    status, _, text = await asyncio.wait_for(waiting, 2)
    assert status == 200
    assert json.loads(text) == {"data": [], "pagination": {}}
    assert fake.hung[1].outcome == "answered"


async def test_stop_drops_held_requests_at_once(http: aiohttp.ClientSession) -> None:
    fake = FakeTwitch()
    await fake.start()
    fake.hang_next("/helix/streams", times=None)
    token = await token_for(fake, http)
    waiting = asyncio.create_task(helix_raw(fake, http, "/streams", [("user_id", "1")], token=token))
    await eventually(lambda: fake.hung, "a held request")
    await asyncio.wait_for(fake.stop(), 1.5)
    with pytest.raises(aiohttp.ClientError):
        await waiting
    assert [h.outcome for h in fake.hung] == ["dropped"]


# ------------------------------------------------------------------------------------ stream schedule


def hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


async def test_schedule_validates_like_twitch(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    user = fake.add_user("planner")
    other = fake.add_user("other")
    fake.add_segment(user.id, datetime.now(UTC) + timedelta(days=1))
    token = await token_for(fake, http)
    bad = [
        [],
        [("broadcaster_id", user.id), ("broadcaster_id", other.id)],  # not batchable
        [("broadcaster_id", "planner")],
        [("broadcaster_id", user.id), ("first", "26")],
        [("broadcaster_id", user.id), ("first", "0")],
        [("broadcaster_id", user.id), ("start_time", "tomorrow")],
        [("broadcaster_id", user.id), ("start_time", "2030-01-01T00:00:00")],  # no offset
        [("broadcaster_id", user.id), ("after", "not a cursor")],
        [("broadcaster_id", user.id), *[("id", str(i)) for i in range(101)]],
    ]
    for params in bad:
        status, headers, body = await helix(fake, http, "/schedule", params, token=token)
        assert (status, body["error"]) == (400, "Bad Request"), params
        assert "Ratelimit-Remaining" in headers
    status, _, body = await helix(fake, http, "/schedule", [("broadcaster_id", user.id), ("first", "25")], token=token)
    assert status == 200
    assert fake.count("/helix/schedule") == len(bad) + 1


async def test_schedule_without_segments_is_a_404(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    user = fake.add_user("planner")
    not_found = {"error": "Not Found", "status": 404, "message": "segments were not found"}
    assert (await helix(fake, http, "/schedule", [("broadcaster_id", user.id)]))[::2] == (404, not_found)
    assert (await helix(fake, http, "/schedule", [("broadcaster_id", "99999999")]))[0] == 404  # no such user
    segment = fake.add_segment(user.id, datetime.now(UTC) + timedelta(hours=5))
    assert (await helix(fake, http, "/schedule", [("broadcaster_id", user.id)]))[0] == 200
    fake.remove_segment(user.id, segment.id)
    assert (await helix(fake, http, "/schedule", [("broadcaster_id", user.id)]))[0] == 404
    fake.add_segment(user.id, datetime.now(UTC) + timedelta(hours=5))
    fake.clear_schedule(user.id)
    assert (await helix(fake, http, "/schedule", [("broadcaster_id", user.id)]))[0] == 404
    assert fake.unhandled == []


async def test_schedule_body_and_segments(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    user = fake.add_user("planner", display_name="Planner")
    start = hour(datetime.now(UTC)) + timedelta(days=1)
    later = fake.add_segment(user.id, start + timedelta(days=1), title="Later", duration=timedelta(hours=3))
    soon = fake.add_segment(user.id, start, title="Soon", game_name="Minecraft")
    weekly = fake.add_weekly(user.id, start + timedelta(hours=6), 3, title="Every Friday")
    fake.cancel_segment(user.id, later.id)

    status, _, body = await helix(fake, http, "/schedule", [("broadcaster_id", user.id)])
    assert status == 200
    data = body["data"]
    assert (data["broadcaster_id"], data["broadcaster_login"], data["broadcaster_name"]) == (
        user.id,
        "planner",
        "Planner",
    )
    assert data["vacation"] is None
    assert body["pagination"] == {}
    segments = data["segments"]
    assert [s["id"] for s in segments] == [soon.id, weekly[0].id, later.id, weekly[1].id, weekly[2].id]  # by start
    assert len({s["id"] for s in segments}) == 5  # each week its own id
    assert not any(s["id"].isdigit() for s in segments)
    first = segments[0]
    assert first == {
        "id": soon.id,
        "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": "Soon",
        "canceled_until": None,
        "category": {"id": "27471", "name": "Minecraft"},
        "is_recurring": False,
    }
    cancelled = segments[2]
    assert cancelled["canceled_until"] == cancelled["end_time"]
    assert cancelled["category"] is None
    assert [s["is_recurring"] for s in segments] == [False, True, False, True, True]

    _, _, body = await helix(fake, http, "/schedule", [("broadcaster_id", user.id), ("id", weekly[1].id)])
    assert [s["id"] for s in body["data"]["segments"]] == [weekly[1].id]


async def test_schedule_pagination(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    user = fake.add_user("planner")
    weekly = fake.add_weekly(user.id, datetime.now(UTC) + timedelta(hours=1), 30)
    token = await token_for(fake, http)
    query = [("broadcaster_id", user.id)]
    _, _, page1 = await helix(fake, http, "/schedule", query, token=token)  # first defaults to 20
    assert len(page1["data"]["segments"]) == 20
    cursor = page1["pagination"]["cursor"]
    _, _, page2 = await helix(fake, http, "/schedule", [*query, ("after", cursor)], token=token)
    assert page2["pagination"] == {}
    ids = [s["id"] for s in page1["data"]["segments"] + page2["data"]["segments"]]
    assert ids == [segment.id for segment in weekly]
    _, _, full = await helix(fake, http, "/schedule", [*query, ("first", "25")], token=token)
    assert len(full["data"]["segments"]) == 25
    assert full["pagination"]["cursor"]


async def test_schedule_lists_from_start_time_with_the_one_in_progress(
    fake: FakeTwitch, http: aiohttp.ClientSession
) -> None:
    user = fake.add_user("planner")
    now = datetime.now(UTC)
    fake.add_segment(user.id, now - timedelta(hours=5), duration=timedelta(hours=2), title="over")
    running = fake.add_segment(user.id, now - timedelta(hours=1), duration=timedelta(hours=2), title="running")
    upcoming = fake.add_segment(user.id, now + timedelta(hours=3), title="upcoming")
    _, _, body = await helix(fake, http, "/schedule", [("broadcaster_id", user.id)])
    assert [s["id"] for s in body["data"]["segments"]] == [running.id, upcoming.id]

    since = (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _, _, body = await helix(fake, http, "/schedule", [("broadcaster_id", user.id), ("start_time", since)])
    assert [s["id"] for s in body["data"]["segments"]] == [upcoming.id]
    since = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, _, body = await helix(fake, http, "/schedule", [("broadcaster_id", user.id), ("start_time", since)])
    assert status == 200
    assert body["data"]["segments"] is None  # a schedule with nothing left to list


async def test_vacation_hides_its_segments(fake: FakeTwitch, http: aiohttp.ClientSession) -> None:
    user = fake.add_user("planner")
    start = hour(datetime.now(UTC)) + timedelta(hours=2)
    weekly = fake.add_weekly(user.id, start, 4)
    away, back = start + timedelta(days=1), start + timedelta(days=15)
    fake.set_vacation(user.id, away, back)
    _, _, body = await helix(fake, http, "/schedule", [("broadcaster_id", user.id)])
    assert [s["id"] for s in body["data"]["segments"]] == [weekly[0].id, weekly[3].id]
    assert body["data"]["vacation"] == {
        "start_time": away.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": back.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    fake.set_vacation(user.id, None)
    _, _, body = await helix(fake, http, "/schedule", [("broadcaster_id", user.id)])
    assert len(body["data"]["segments"]) == 4
    assert body["data"]["vacation"] is None
    with pytest.raises(ValueError, match="end after its start"):
        fake.set_vacation(user.id, back, away)


async def test_schedule_goes_through_auth_rate_limit_and_faults(http: aiohttp.ClientSession) -> None:
    async with FakeTwitch(rate_limit=2) as fake:
        user = fake.add_user("planner")
        fake.add_segment(user.id, datetime.now(UTC) + timedelta(hours=1))
        query = [("broadcaster_id", user.id)]
        async with http.get(f"{fake.api_base}/schedule", params=query) as response:
            assert response.status == 401
        token = await token_for(fake, http)
        fake.malformed_next("/helix/schedule", body={"data": []})
        answers = [await helix(fake, http, "/schedule", query, token=token) for _ in range(4)]
        assert answers[0][2] == {"data": []}  # the injected fault (it costs no point)
        assert [status for status, _, _ in answers] == [200, 200, 200, 429]  # then the bucket of 2 points
        assert answers[1][2]["data"]["broadcaster_id"] == user.id
        assert fake.count("/helix/schedule") == 5
