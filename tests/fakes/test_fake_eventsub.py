"""Tests for the fake Twitch's EventSub (conduits, shards, subscriptions, the WebSocket server) with a bare
aiohttp client: each checks one behaviour of /work/shared/twitch-eventsub-facts.md (cited as §n)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.fake_eventsub import ManualClock
from tests.fakes.fake_twitch import FakeTwitch

NANOS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeTwitch]:
    async with FakeTwitch(clock=clock) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def app_token(fake: FakeTwitch, http: aiohttp.ClientSession) -> str:
    form = {"client_id": fake.client_id, "client_secret": fake.client_secret, "grant_type": "client_credentials"}
    async with http.post(f"{fake.auth_base}/token", data=form) as response:
        return (await response.json())["access_token"]


async def call(
    fake: FakeTwitch, http: aiohttp.ClientSession, token: str, method: str, path: str, body: Any = None, params=()
) -> tuple[int, Any]:
    headers = {"Client-Id": fake.client_id, "Authorization": f"Bearer {token}"}
    kwargs: dict[str, Any] = {"headers": headers, "params": list(params)}
    if body is not None:
        kwargs["json"] = body
    async with http.request(method, f"{fake.api_base}/eventsub{path}", **kwargs) as response:
        text = await response.text()
        return response.status, (json.loads(text) if text else None)


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2.0) -> int:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    return msg.data


async def open_session(http: aiohttp.ClientSession, url: str) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await http.ws_connect(url)
    welcome = await recv(ws)
    assert welcome["metadata"]["message_type"] == "session_welcome"
    return ws, welcome["payload"]["session"]["id"]


async def conduit_with_shards(fake, http, token, count: int = 1) -> str:
    status, body = await call(fake, http, token, "POST", "/conduits", {"shard_count": count})
    assert status == 200
    return body["data"][0]["id"]


async def bind(fake, http, token, conduit_id: str, shard: str, session_id: str) -> tuple[int, Any]:
    transport = {"method": "websocket", "session_id": session_id}
    return await call(
        fake,
        http,
        token,
        "PATCH",
        "/conduits/shards",
        {"conduit_id": conduit_id, "shards": [{"id": shard, "transport": transport}]},
    )


def sub_body(sub_type: str, version: str, user_id: str, conduit_id: str) -> dict[str, Any]:
    return {
        "type": sub_type,
        "version": version,
        "condition": {"broadcaster_user_id": user_id},
        "transport": {"method": "conduit", "conduit_id": conduit_id},
    }


# ---------------------------------------------------------------------------------------------- conduits


async def test_conduit_crud_limit_and_app_token(fake: FakeTwitch, http, app_token: str) -> None:
    status, body = await call(fake, http, app_token, "POST", "/conduits", {"shard_count": 2})  # §2 Create
    assert status == 200
    [conduit] = body["data"]
    assert set(conduit) == {"id", "shard_count"}
    assert conduit["shard_count"] == 2
    assert (await call(fake, http, app_token, "POST", "/conduits", {"shard_count": 0}))[0] == 400
    assert (await call(fake, http, app_token, "POST", "/conduits", {"shard_count": "2"}))[0] == 400
    for _ in range(4):
        assert (await call(fake, http, app_token, "POST", "/conduits", {"shard_count": 1}))[0] == 200
    status, body = await call(fake, http, app_token, "POST", "/conduits", {"shard_count": 1})
    assert (status, body["message"]) == (429, "Conduit limit reached")  # §1: 5 per client

    status, body = await call(fake, http, app_token, "GET", "/conduits")
    assert status == 200
    assert len(body["data"]) == 5
    status, body = await call(fake, http, app_token, "PATCH", "/conduits", {"id": conduit["id"], "shard_count": 5})
    assert (status, body["data"]) == (200, [{"id": conduit["id"], "shard_count": 5}])
    assert (await call(fake, http, app_token, "PATCH", "/conduits", {"shard_count": 5}))[0] == 400
    assert (await call(fake, http, app_token, "PATCH", "/conduits", {"id": "nope", "shard_count": 5}))[0] == 404

    assert (await call(fake, http, app_token, "DELETE", "/conduits", params=[("id", conduit["id"])])) == (204, None)
    assert (await call(fake, http, app_token, "DELETE", "/conduits", params=[("id", conduit["id"])]))[0] == 404
    assert (await call(fake, http, app_token, "DELETE", "/conduits"))[0] == 400

    fake.add_user("someone")
    user_token = fake.issue_user_token("someone")
    status, body = await call(fake, http, user_token, "GET", "/conduits")
    assert (status, body["message"]) == (401, "Authorization header required with an app access token")
    assert [c.status for c in fake.eventsub.calls][-1] == 401
    assert fake.eventsub.calls[0].body == {"shard_count": 2}
    assert fake.eventsub.calls[-1].token == f"user:{fake.user('someone').id}"


# -------------------------------------------------------------------------------------- WebSocket basics


async def test_welcome_and_keepalive_shapes(fake: FakeTwitch, http, clock: ManualClock) -> None:
    ws, session_id = await open_session(http, fake.eventsub_ws_url)
    welcome = fake.eventsub.messages("session_welcome")[0].message
    assert set(welcome["metadata"]) == {"message_id", "message_type", "message_timestamp"}  # §3
    assert NANOS.fullmatch(welcome["metadata"]["message_timestamp"])
    session = welcome["payload"]["session"]
    assert session["status"] == "connected"
    assert session["keepalive_timeout_seconds"] == 10  # the default
    assert session["reconnect_url"] is None
    assert re.fullmatch(r"AQoQ[\w-]{24}", session_id)
    fake.eventsub.session(session_id).used = True  # not testing 4003 here

    clock.advance(8)
    await fake.eventsub.tick()
    assert fake.eventsub.messages("session_keepalive") == []
    clock.advance(1)  # idle for keepalive_timeout - keepalive_lead
    await fake.eventsub.tick()
    keepalive = await recv(ws)
    assert keepalive["metadata"]["message_type"] == "session_keepalive"
    assert keepalive["payload"] == {}
    fake.eventsub.set_keepalive(session_id, enabled=False)
    clock.advance(30)
    await fake.eventsub.tick()
    assert len(fake.eventsub.messages("session_keepalive")) == 1
    await ws.close()

    for asked, granted in (("5", 10), ("42", 42), ("900", 600)):  # §3: clamped to 10-600
        ws, _ = await open_session(http, f"{fake.eventsub_ws_url}?keepalive_timeout_seconds={asked}")
        assert fake.eventsub.sent[-1].message["payload"]["session"]["keepalive_timeout_seconds"] == granted
        await ws.close()


async def test_inbound_traffic_closes_4001(fake: FakeTwitch, http) -> None:
    ws, session_id = await open_session(http, fake.eventsub_ws_url)
    await ws.send_str('{"hello": "twitch"}')  # §3: only Pong frames may be sent
    assert await closed_with(ws) == 4001
    assert fake.eventsub.session(session_id).closed_by == "server"


async def test_unused_session_closes_4003_and_late_bind_fails(fake: FakeTwitch, http, app_token, clock) -> None:
    conduit_id = await conduit_with_shards(fake, http, app_token)
    ws, session_id = await open_session(http, fake.eventsub_ws_url)
    clock.advance(10.5)  # past the 10-s window, before the ticker noticed
    status, body = await bind(fake, http, app_token, conduit_id, "0", session_id)
    assert status == 202
    assert body["data"] == []
    assert body["errors"] == [
        {"id": "0", "message": "The websocket session is not connected.", "code": "invalid_parameter"}
    ]
    assert await closed_with(ws) == 4003

    ws, _ = await open_session(http, fake.eventsub_ws_url)  # never bound at all
    clock.advance(10)
    await fake.eventsub.tick()
    assert await closed_with(ws) == 4003


async def test_ping_pong_failure_closes_4002(fake: FakeTwitch, http, clock) -> None:
    ws = await http.ws_connect(fake.eventsub_ws_url, autoping=False)
    session_id = (await recv(ws))["payload"]["session"]["id"]
    fake.eventsub.session(session_id).used = True
    await fake.eventsub.ping(session_id)
    assert (await ws.receive(timeout=2)).type == aiohttp.WSMsgType.PING  # not answered
    clock.advance(5)
    await fake.eventsub.tick()
    assert await closed_with(ws) == 4002


# ------------------------------------------------------------------------------------------------ shards


async def test_shard_bind_within_window_and_per_shard_errors(fake: FakeTwitch, http, app_token, clock) -> None:
    conduit_id = await conduit_with_shards(fake, http, app_token, count=3)
    ws, session_id = await open_session(http, fake.eventsub_ws_url)
    clock.advance(9)
    shards = [
        {"id": "0", "transport": {"method": "websocket", "session_id": session_id}},
        {"id": "1", "transport": {"method": "websocket", "session_id": "AQoQnotasession"}},
        {"id": "2", "transport": {"method": "websocket"}},
        {"id": "3", "transport": {"method": "websocket", "session_id": session_id}},
        {"id": "2", "transport": {"method": "webhook", "callback": "http://example.com/cb", "secret": "s" * 20}},
    ]
    status, body = await call(
        fake, http, app_token, "PATCH", "/conduits/shards", {"conduit_id": conduit_id, "shards": shards}
    )
    assert status == 202  # §2: 202 Accepted, with data[] and errors[]
    [bound] = body["data"]
    assert bound["id"] == "0"
    assert bound["status"] == "enabled"
    assert bound["transport"]["method"] == "websocket"
    assert bound["transport"]["session_id"] == session_id
    assert NANOS.fullmatch(bound["transport"]["connected_at"])
    assert [(e["id"], e["message"]) for e in body["errors"]] == [
        ("1", "The websocket session is not connected."),
        ("2", "The session_id is required for websocket transport"),
        ("3", "The shard id is outside the conduit's range"),
        ("2", "The callback must use HTTPS and port 443"),
    ]
    webhook = {"method": "webhook", "callback": "https://bot.example.com/eventsub", "secret": "short"}
    status, body = await call(
        fake,
        http,
        app_token,
        "PATCH",
        "/conduits/shards",
        {"conduit_id": conduit_id, "shards": [{"id": "1", "transport": webhook}]},
    )
    assert body["errors"][0]["message"] == "The secret must be between 10 and 100 ASCII characters"
    webhook["secret"] = "0123456789abcdef"
    status, body = await call(
        fake,
        http,
        app_token,
        "PATCH",
        "/conduits/shards",
        {"conduit_id": conduit_id, "shards": [{"id": "1", "transport": webhook}]},
    )
    assert body["data"] == [
        {
            "id": "1",
            "status": "webhook_callback_verification_pending",
            "transport": {"method": "webhook", "callback": webhook["callback"]},
        }
    ]
    assert (await bind(fake, http, app_token, "no-such-conduit", "0", session_id))[0] == 404

    fake.eventsub.shards_page_size = 2
    status, page1 = await call(fake, http, app_token, "GET", "/conduits/shards", params=[("conduit_id", conduit_id)])
    assert status == 200
    assert [s["id"] for s in page1["data"]] == ["0", "1"]
    cursor = page1["pagination"]["cursor"]
    _, page2 = await call(
        fake, http, app_token, "GET", "/conduits/shards", params=[("conduit_id", conduit_id), ("after", cursor)]
    )
    assert ([s["id"] for s in page2["data"]], page2["pagination"]) == (["2"], {})
    _, enabled = await call(
        fake, http, app_token, "GET", "/conduits/shards", params=[("conduit_id", conduit_id), ("status", "enabled")]
    )
    assert [s["id"] for s in enabled["data"]] == ["0"]
    assert (await call(fake, http, app_token, "GET", "/conduits/shards"))[0] == 400
    await ws.close()


async def test_closed_session_disables_its_shard(fake: FakeTwitch, http, app_token, clock) -> None:
    conduit_id = await conduit_with_shards(fake, http, app_token, count=2)
    ws0, s0 = await open_session(http, fake.eventsub_ws_url)
    ws1, s1 = await open_session(http, fake.eventsub_ws_url)
    await bind(fake, http, app_token, conduit_id, "0", s0)
    await bind(fake, http, app_token, conduit_id, "1", s1)
    await ws0.close()  # the client closes
    await fake.eventsub.session(s0)._done.wait()
    await ws1.send_bytes(b"oops")  # inbound traffic: the server closes 4001
    assert await closed_with(ws1) == 4001
    await fake.eventsub.session(s1)._done.wait()
    _, body = await call(fake, http, app_token, "GET", "/conduits/shards", params=[("conduit_id", conduit_id)])
    first, second = body["data"]
    assert first["status"] == "websocket_disconnected"  # §2 "The client closed the connection"
    assert NANOS.fullmatch(first["transport"]["disconnected_at"])
    assert second["status"] == "websocket_received_inbound_traffic"


# ----------------------------------------------------------------------------------------- subscriptions


async def test_subscription_create_duplicate_cost_list_delete(fake: FakeTwitch, http, app_token) -> None:
    conduit_id = await conduit_with_shards(fake, http, app_token)
    streamers = fake.add_users(3)
    status, body = await call(
        fake, http, app_token, "POST", "/subscriptions", sub_body("stream.online", "1", streamers[0].id, conduit_id)
    )
    assert status == 202  # §5
    [sub] = body["data"]
    assert (sub["status"], sub["cost"], sub["transport"]) == (
        "enabled",
        1,
        {"method": "conduit", "conduit_id": conduit_id},
    )
    assert (body["total"], body["total_cost"], body["max_total_cost"]) == (1, 1, 10_000)
    status, body = await call(
        fake, http, app_token, "POST", "/subscriptions", sub_body("stream.online", "1", streamers[0].id, conduit_id)
    )
    assert status == 409  # §5 duplicate
    assert body["status"] == 409

    fake.issue_user_token(streamers[1].id)  # authorized the app: cost 0 (§1)
    _, body = await call(
        fake, http, app_token, "POST", "/subscriptions", sub_body("channel.update", "2", streamers[1].id, conduit_id)
    )
    assert (body["data"][0]["cost"], body["total_cost"]) == (0, 1)
    bad = sub_body("channel.update", "1", streamers[1].id, conduit_id)
    assert (await call(fake, http, app_token, "POST", "/subscriptions", bad))[0] == 400  # bad type+version
    bad = sub_body("stream.online", "1", "424242", conduit_id)
    assert (await call(fake, http, app_token, "POST", "/subscriptions", bad))[0] == 400  # user does not exist

    fake.eventsub.max_total_cost = 2
    assert (
        await call(
            fake,
            http,
            app_token,
            "POST",
            "/subscriptions",
            sub_body("stream.offline", "1", streamers[0].id, conduit_id),
        )
    )[0] == 202
    status, body = await call(
        fake, http, app_token, "POST", "/subscriptions", sub_body("stream.online", "1", streamers[2].id, conduit_id)
    )
    assert (status, body["message"]) == (429, "maximum total cost exceeded")

    fake.eventsub.subscriptions_page_size = 2
    _, page1 = await call(fake, http, app_token, "GET", "/subscriptions")
    assert (page1["total"], page1["total_cost"], page1["max_total_cost"]) == (3, 2, 2)
    assert [s["type"] for s in page1["data"]] == ["stream.online", "channel.update"]  # oldest first
    _, page2 = await call(
        fake, http, app_token, "GET", "/subscriptions", params=[("after", page1["pagination"]["cursor"])]
    )
    assert ([s["type"] for s in page2["data"]], page2["pagination"]) == (["stream.offline"], {})
    _, by_type = await call(fake, http, app_token, "GET", "/subscriptions", params=[("type", "stream.offline")])
    assert len(by_type["data"]) == 1
    _, by_user = await call(fake, http, app_token, "GET", "/subscriptions", params=[("user_id", streamers[0].id)])
    assert len(by_user["data"]) == 2
    _, by_status = await call(fake, http, app_token, "GET", "/subscriptions", params=[("status", "user_removed")])
    assert by_status["data"] == []
    both = [("type", "stream.online"), ("user_id", streamers[0].id)]
    assert (await call(fake, http, app_token, "GET", "/subscriptions", params=both))[0] == 400  # mutually exclusive
    assert (await call(fake, http, app_token, "GET", "/subscriptions", params=[("status", "bogus")]))[0] == 400

    assert await call(fake, http, app_token, "DELETE", "/subscriptions", params=[("id", sub["id"])]) == (204, None)
    status, body = await call(fake, http, app_token, "DELETE", "/subscriptions", params=[("id", sub["id"])])
    assert (status, body["message"]) == (404, "The subscription was not found")
    _, listing = await call(fake, http, app_token, "GET", "/subscriptions")
    assert (listing["total"], listing["total_cost"]) == (2, 1)


async def test_token_and_transport_refusals(fake: FakeTwitch, http, app_token) -> None:
    conduit_id = await conduit_with_shards(fake, http, app_token)
    user = fake.add_user("streamer")
    user_token = fake.issue_user_token(user.id)
    ws, session_id = await open_session(http, fake.eventsub_ws_url)
    plain = {
        **sub_body("stream.online", "1", user.id, conduit_id),
        "transport": {"method": "websocket", "session_id": session_id},
    }

    status, body = await call(fake, http, app_token, "POST", "/subscriptions", plain)  # §KEY QUESTION
    assert (status, body["message"]) == (400, "invalid transport and auth combination")
    status, body = await call(
        fake, http, user_token, "POST", "/subscriptions", sub_body("stream.online", "1", user.id, conduit_id)
    )
    assert (status, body["message"]) == (400, "invalid transport and auth combination")
    missing = {**sub_body("stream.online", "1", user.id, conduit_id), "transport": {"method": "conduit"}}
    status, body = await call(fake, http, app_token, "POST", "/subscriptions", missing)
    assert body["message"] == "The conduit_id field is required if you specify the Conduit transport method."

    status, body = await call(fake, http, user_token, "POST", "/subscriptions", plain)  # the one valid plain-WS form
    assert status == 202
    assert body["max_total_cost"] == 10  # §1 plain WebSocket cap
    _, mine = await call(fake, http, user_token, "GET", "/subscriptions")
    _, apps = await call(fake, http, app_token, "GET", "/subscriptions")
    assert (len(mine["data"]), len(apps["data"])) == (1, 0)  # §1: each token sees its own kind
    await ws.close()
    await fake.eventsub.session(session_id)._done.wait()
    assert next(iter(fake.eventsub.subscriptions.values())).status == "websocket_disconnected"


# ----------------------------------------------------------------------------------------- notifications


async def live_conduit(fake, http, token, user_id: str, types=(("stream.online", "1"),), shards: int = 1):
    conduit_id = await conduit_with_shards(fake, http, token, shards)
    sockets = []
    for index in range(shards):
        ws, session_id = await open_session(http, fake.eventsub_ws_url)
        status, body = await bind(fake, http, token, conduit_id, str(index), session_id)
        assert (status, body["errors"]) == (202, [])
        sockets.append((ws, session_id))
    for sub_type, version in types:
        assert (
            await call(fake, http, token, "POST", "/subscriptions", sub_body(sub_type, version, user_id, conduit_id))
        )[0] == 202
    return conduit_id, sockets


async def test_go_live_update_offline_push_notifications(fake: FakeTwitch, http, app_token) -> None:
    user = fake.add_user("cool_user", display_name="Cool_User")
    types = (("stream.online", "1"), ("channel.update", "2"), ("stream.offline", "1"))
    conduit_id, [(ws, _)] = await live_conduit(fake, http, app_token, user.id, types)

    stream = fake.go_live(user.id, title="hello", game_name="Minecraft")
    online = await recv(ws)
    meta = online["metadata"]
    assert (meta["message_type"], meta["subscription_type"], meta["subscription_version"]) == (
        "notification",
        "stream.online",
        "1",
    )
    assert NANOS.fullmatch(meta["message_timestamp"])
    event = online["payload"]["event"]
    assert set(event) == {
        "id",
        "broadcaster_user_id",
        "broadcaster_user_login",
        "broadcaster_user_name",
        "type",
        "started_at",
    }
    assert (event["id"], event["broadcaster_user_login"], event["broadcaster_user_name"], event["type"]) == (
        stream.id,
        "cool_user",
        "Cool_User",
        "live",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["started_at"])
    assert "title" not in event  # §6: no title or category
    assert online["payload"]["subscription"]["transport"] == {"method": "conduit", "conduit_id": conduit_id}

    fake.update_stream(user.id, viewer_count=999)  # not a channel change: nothing pushed
    fake.update_stream(user.id, title="new title", game_name="VALORANT")
    update = await recv(ws)
    assert update["metadata"]["subscription_version"] == "2"
    assert update["payload"]["event"] == {
        "broadcaster_user_id": user.id,
        "broadcaster_user_login": "cool_user",
        "broadcaster_user_name": "Cool_User",
        "title": "new title",
        "language": "en",
        "category_id": "516575",
        "category_name": "VALORANT",
        "content_classification_labels": [],
    }
    fake.go_offline(user.id)
    offline = await recv(ws)
    assert offline["payload"]["event"] == {
        "broadcaster_user_id": user.id,
        "broadcaster_user_login": "cool_user",
        "broadcaster_user_name": "Cool_User",
    }

    fake.go_live(user.id, push=False)  # only polling sees this one
    fake.go_live(user.id, online_type="rerun", push=True)  # ends the previous stream (offline) and starts anew
    assert (await recv(ws))["metadata"]["subscription_type"] == "stream.offline"
    assert (await recv(ws))["payload"]["event"]["type"] == "rerun"
    assert [m.type for m in fake.eventsub.sent[-5:]] == ["notification"] * 5
    await ws.close()


async def test_duplicates_drops_and_resend(fake: FakeTwitch, http, app_token) -> None:
    user = fake.add_user("dup")
    _, [(ws, _)] = await live_conduit(fake, http, app_token, user.id)
    fake.eventsub.duplicate_next("stream.online")
    fake.go_live(user.id)
    first, second = await recv(ws), await recv(ws)
    assert first == second  # §7 at-least-once: a resend has the same message_id
    fake.eventsub.duplicate_next(same_id=False)
    fake.go_live(user.id)
    third, fourth = await recv(ws), await recv(ws)
    assert third["metadata"]["message_id"] != fourth["metadata"]["message_id"]  # observed [I] §7
    assert third["payload"] == fourth["payload"]
    fake.eventsub.drop_next()
    fake.go_live(user.id)
    assert fake.eventsub.dropped[-1][0] == "injected drop"
    fake.eventsub.resend(first["metadata"]["message_id"])
    assert await recv(ws) == first
    await ws.close()


async def test_disabled_shard_falls_back_once_then_drops(fake: FakeTwitch, http, app_token) -> None:
    user = fake.add_user("hashme")
    conduit_id, sockets = await live_conduit(fake, http, app_token, user.id, shards=2)
    home = int(fake.eventsub.shard_for(conduit_id, user.id))
    home_ws, home_session = sockets[home]
    other_ws, other_session = sockets[1 - home]
    fake.go_live(user.id)
    assert (await recv(home_ws))["payload"]["event"]["broadcaster_user_id"] == user.id

    await fake.eventsub.close_session(home_session, 4005)
    assert await closed_with(home_ws) == 4005
    await fake.eventsub.session(home_session)._done.wait()
    assert fake.eventsub.conduits[conduit_id].shards[str(home)].status == "websocket_network_timeout"
    fake.go_live(user.id)  # §2: resent to another shard
    assert (await recv(other_ws))["payload"]["event"]["broadcaster_user_id"] == user.id
    await other_ws.close()
    await fake.eventsub.session(other_session)._done.wait()
    fake.go_live(user.id)  # §2: both disabled, dropped
    assert fake.eventsub.dropped[-1][0] == "shards disabled"


async def test_revocation_message(fake: FakeTwitch, http, app_token) -> None:
    user = fake.add_user("leaver")
    _, [(ws, _)] = await live_conduit(fake, http, app_token, user.id)
    [sub] = fake.eventsub.subscriptions.values()
    fake.eventsub.revoke(sub.id, "user_removed")
    message = await recv(ws)
    assert message["metadata"]["message_type"] == "revocation"
    assert message["metadata"]["subscription_type"] == "stream.online"
    assert "event" not in message["payload"]
    assert message["payload"]["subscription"]["status"] == "user_removed"
    fake.go_live(user.id)  # no longer enabled: nothing sent
    _, listing = await call(fake, http, app_token, "GET", "/subscriptions", params=[("status", "user_removed")])
    assert [s["id"] for s in listing["data"]] == [sub.id]
    await ws.close()


# ----------------------------------------------------------------------------------------------- reconnect


async def test_reconnect_keeps_subscriptions_and_moves_the_shard(fake: FakeTwitch, http, app_token) -> None:
    user = fake.add_user("mover")
    conduit_id, [(old_ws, old_id)] = await live_conduit(fake, http, app_token, user.id)
    url = fake.eventsub.send_reconnect(old_id)
    message = await recv(old_ws)
    session = message["payload"]["session"]
    assert (message["metadata"]["message_type"], session["status"]) == ("session_reconnect", "reconnecting")
    assert (session["id"], session["reconnect_url"], session["keepalive_timeout_seconds"]) == (old_id, url, None)

    fake.go_live(user.id)  # the old connection still delivers until the new one is welcomed
    assert (await recv(old_ws))["metadata"]["subscription_type"] == "stream.online"
    new_ws, new_id = await open_session(http, url)
    assert new_id != old_id
    await old_ws.close()
    await fake.eventsub.session(old_id)._done.wait()
    _, shards = await call(fake, http, app_token, "GET", "/conduits/shards", params=[("conduit_id", conduit_id)])
    assert [(s["status"], s["transport"]["session_id"]) for s in shards["data"]] == [("enabled", new_id)]
    fake.go_live(user.id)
    assert (await recv(new_ws))["payload"]["event"]["broadcaster_user_id"] == user.id
    await new_ws.close()


async def test_reconnect_grace_4004_and_invalid_reconnect_4007(fake: FakeTwitch, http, app_token, clock) -> None:
    user = fake.add_user("slow")
    conduit_id, [(old_ws, old_id)] = await live_conduit(fake, http, app_token, user.id)
    url = fake.eventsub.send_reconnect(old_id)
    await recv(old_ws)
    bad = await http.ws_connect(f"{fake.eventsub_ws_url}?reconnect_id=forged")
    assert await closed_with(bad) == 4007
    clock.advance(30)
    await fake.eventsub.tick()
    assert await closed_with(old_ws) == 4004
    await fake.eventsub.session(old_id)._done.wait()
    assert fake.eventsub.conduits[conduit_id].shards["0"].status == "websocket_failed_to_reconnect"
    late = await http.ws_connect(url)  # the old session is gone: the URL is no longer valid
    assert await closed_with(late) == 4007


# -------------------------------------------------------------------------------------------------- expiry


async def test_conduit_without_enabled_shard_expires_after_72h(fake: FakeTwitch, http, app_token, clock) -> None:
    user = fake.add_user("gone")
    conduit_id, [(ws, session_id)] = await live_conduit(fake, http, app_token, user.id)
    await ws.close()
    await fake.eventsub.session(session_id)._done.wait()
    clock.advance(72 * 3600 - 1)
    await fake.eventsub.tick()
    assert conduit_id in fake.eventsub.conduits  # §2: still there, all shards disabled
    clock.advance(1)
    _, body = await call(fake, http, app_token, "GET", "/conduits")  # checked on every call, too
    assert body["data"] == []
    _, subs = await call(fake, http, app_token, "GET", "/subscriptions")
    assert [s["status"] for s in subs["data"]] == ["conduit_deleted"]
    assert fake.eventsub.deleted_conduits == [conduit_id]


async def test_delayed_notification(fake: FakeTwitch, http, app_token) -> None:
    user = fake.add_user("laggy")
    _, [(ws, _)] = await live_conduit(fake, http, app_token, user.id)
    fake.eventsub.delay_next(0.2)
    fake.go_live(user.id)
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.05)
    assert (await recv(ws))["metadata"]["subscription_type"] == "stream.online"
    await ws.close()


async def test_conduit_shard_disabled_notification(fake: FakeTwitch, http, app_token) -> None:
    user = fake.add_user("watcher")
    conduit_id, sockets = await live_conduit(fake, http, app_token, user.id, types=(), shards=2)
    body = {
        "type": "conduit.shard.disabled",
        "version": "1",
        "condition": {"client_id": fake.client_id, "conduit_id": conduit_id},
        "transport": {"method": "conduit", "conduit_id": conduit_id},
    }
    status, created = await call(fake, http, app_token, "POST", "/subscriptions", body)
    assert (status, created["data"][0]["cost"]) == (202, 0)
    wrong = {**body, "condition": {"client_id": "someone-else"}}
    assert (await call(fake, http, app_token, "POST", "/subscriptions", wrong))[0] == 403
    (ws0, s0), (ws1, _) = sockets
    await ws0.close()
    await fake.eventsub.session(s0)._done.wait()
    message = await recv(ws1)  # whichever shard it hashes to, only shard 1 is left
    event = message["payload"]["event"]
    assert (event["conduit_id"], event["shard_id"], event["status"]) == (conduit_id, "0", "websocket_disconnected")
    assert event["transport"]["session_id"] == s0
    assert "disconnected_at" in event["transport"]
    await ws1.close()
