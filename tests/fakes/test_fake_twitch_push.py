"""Tests for the fake Twitch's current channel information (/helix/channels), the /helix/streams listing lag,
and EventSub webhook delivery to conduit shards, with a bare aiohttp client and a small local receiver
standing in for the bot behind its TLS proxy. Each checks one behaviour of
/work/shared/twitch-eventsub-facts.md (cited as §n)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.fake_eventsub import ManualClock, webhook_signature
from tests.fakes.fake_twitch import FakeTwitch

NANOS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
CALLBACK = "https://example.fly.dev/eventsub"
SECRET = "0123456789abcdef-secret"
CHANNEL_KEYS = {
    "broadcaster_id",
    "broadcaster_login",
    "broadcaster_name",
    "broadcaster_language",
    "game_id",
    "game_name",
    "title",
    "delay",
    "tags",
    "content_classification_labels",
    "is_branded_content",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeTwitch]:
    async with FakeTwitch(clock=clock) as server:
        server.eventsub.webhook_retry_backoff = 0.005
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


async def helix(
    fake: FakeTwitch,
    http: aiohttp.ClientSession,
    token: str | None,
    method: str,
    path: str,
    body: Any = None,
    params=(),
) -> tuple[int, dict[str, str], Any]:
    headers = {"Client-Id": fake.client_id}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {"headers": headers, "params": list(params)}
    if body is not None:
        kwargs["json"] = body
    async with http.request(method, f"{fake.api_base}{path}", **kwargs) as response:
        text = await response.text()
        return response.status, dict(response.headers), (json.loads(text) if text else None)


async def channels(fake: FakeTwitch, http, token: str, *ids: str) -> list[dict[str, Any]]:
    status, _, body = await helix(fake, http, token, "GET", "/channels", params=[("broadcaster_id", i) for i in ids])
    assert status == 200, body
    return body["data"]


async def listed(fake: FakeTwitch, http, token: str, user_id: str) -> list[dict[str, Any]]:
    status, _, body = await helix(fake, http, token, "GET", "/streams", params=[("user_id", user_id)])
    assert status == 200, body
    return body["data"]


# --------------------------------------------------------------------------------------- the receiver


Answer = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


class Receiver:
    """The bot's local webhook port: records every request (headers, raw body) and answers with ``answer``;
    by default it checks the §4 signature and answers the challenge with the raw value, else 204."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answer: Answer = self.default_answer
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/eventsub", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/eventsub"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        self.arrived.set()
        return await self.answer(request, body)

    @staticmethod
    async def default_answer(request: web.Request, body: bytes) -> web.StreamResponse:
        headers = request.headers
        expected = webhook_signature(
            SECRET, headers["Twitch-Eventsub-Message-Id"], headers["Twitch-Eventsub-Message-Timestamp"], body
        )
        if not hmac.compare_digest(expected, headers["Twitch-Eventsub-Message-Signature"]):
            return web.Response(status=403)
        if headers["Twitch-Eventsub-Message-Type"] == "webhook_callback_verification":
            return web.Response(text=json.loads(body)["challenge"], content_type="text/plain")
        return web.Response(status=204)

    def of_type(self, message_type: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.requests if h["Twitch-Eventsub-Message-Type"] == message_type]


@pytest.fixture
async def receiver(fake: FakeTwitch) -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    fake.eventsub.webhook_targets[CALLBACK] = server.url
    yield server
    await server.stop()


async def patch_webhook_shard(fake, http, token, conduit_id: str, shard: str = "0", callback: str = CALLBACK):
    transport = {"method": "webhook", "callback": callback, "secret": SECRET}
    body = {"conduit_id": conduit_id, "shards": [{"id": shard, "transport": transport}]}
    status, _, answer = await helix(fake, http, token, "PATCH", "/eventsub/conduits/shards", body)
    assert status == 202, answer
    return answer


async def new_conduit(fake, http, token, shards: int = 1) -> str:
    status, _, body = await helix(fake, http, token, "POST", "/eventsub/conduits", {"shard_count": shards})
    assert status == 200
    return body["data"][0]["id"]


async def subscribe(fake, http, token, conduit_id: str, user_id: str, sub_type="stream.online", version="1"):
    body = {
        "type": sub_type,
        "version": version,
        "condition": {"broadcaster_user_id": user_id},
        "transport": {"method": "conduit", "conduit_id": conduit_id},
    }
    status, _, answer = await helix(fake, http, token, "POST", "/eventsub/subscriptions", body)
    assert status == 202, answer
    return answer["data"][0]


async def webhook_conduit(fake, http, token, receiver: Receiver, user_id: str, *types: tuple[str, str]) -> str:
    """A one-shard conduit whose shard is a verified webhook, with subscriptions for ``user_id``."""
    conduit_id = await new_conduit(fake, http, token)
    await patch_webhook_shard(fake, http, token, conduit_id)
    await fake.eventsub.flush_webhooks()
    assert fake.eventsub.conduits[conduit_id].shards["0"].status == "enabled"
    for sub_type, version in types or (("stream.online", "1"),):
        await subscribe(fake, http, token, conduit_id, user_id, sub_type, version)
    receiver.requests.clear()
    return conduit_id


def status_sequence(*statuses: int) -> Answer:
    """Answer notifications with these statuses in turn (the last one repeats); challenges as usual."""
    remaining = list(statuses)

    async def answer(request: web.Request, body: bytes) -> web.StreamResponse:
        if request.headers["Twitch-Eventsub-Message-Type"] == "webhook_callback_verification":
            return await Receiver.default_answer(request, body)
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return web.Response(status=status)

    return answer


# ------------------------------------------------------------------------------------- /helix/channels


async def test_channels_are_current_with_no_lag_and_keep_last_values_offline(
    fake: FakeTwitch, http, app_token, clock
) -> None:
    user = fake.add_user("Cool_User")
    [fresh] = await channels(fake, http, app_token, user.id)
    assert set(fresh) == CHANNEL_KEYS  # Get Channel Information
    assert fresh == {
        "broadcaster_id": user.id,
        "broadcaster_login": "cool_user",
        "broadcaster_name": "Cool_User",
        "broadcaster_language": "en",
        "game_id": "",
        "game_name": "",
        "title": "",
        "delay": 0,
        "tags": [],
        "content_classification_labels": [],
        "is_branded_content": False,
    }

    fake.listing_lag = 45  # §7: the listing lags the go-live; the channel does not
    fake.go_live(user.id, title="Speedrun!", game_name="Minecraft", tags=("English", "Speedrun"))
    assert await listed(fake, http, app_token, user.id) == []
    [live] = await channels(fake, http, app_token, user.id)
    assert (live["title"], live["game_id"], live["game_name"], live["tags"]) == (
        "Speedrun!",
        "27471",
        "Minecraft",
        ["English", "Speedrun"],
    )
    fake.update_stream(user.id, title="Any% attempt", game_name="VALORANT")
    [changed] = await channels(fake, http, app_token, user.id)
    assert (changed["title"], changed["game_name"]) == ("Any% attempt", "VALORANT")
    fake.go_offline(user.id)
    [offline] = await channels(fake, http, app_token, user.id)
    assert offline == changed  # the last title and category stay

    fake.update_channel(user.id, title="Back tomorrow", language="de", content_classification_labels=["Gambling"])
    [edited] = await channels(fake, http, app_token, user.id)
    assert (edited["title"], edited["broadcaster_language"], edited["content_classification_labels"]) == (
        "Back tomorrow",
        "de",
        ["Gambling"],
    )


async def test_channels_ids_unknown_absent_limits_auth_and_faults(fake: FakeTwitch, http, app_token) -> None:
    first, second = fake.add_users(2)
    data = await channels(fake, http, app_token, second.id, "999999", first.id, second.id)
    assert [c["broadcaster_id"] for c in data] == [second.id, first.id]  # unknown ids are simply absent
    fake.remove_user(first.id)
    assert await channels(fake, http, app_token, first.id) == []

    status, headers, body = await helix(
        fake, http, app_token, "GET", "/channels", params=[("broadcaster_id", str(i)) for i in range(101)]
    )
    assert (status, body["status"]) == (400, 400)
    assert {"Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset"} <= set(headers)
    assert (await helix(fake, http, app_token, "GET", "/channels"))[0] == 400
    assert (await helix(fake, http, None, "GET", "/channels", params=[("broadcaster_id", second.id)]))[0] == 401
    status, _, body = await helix(fake, http, "not-a-token", "GET", "/channels", params=[("broadcaster_id", "1")])
    assert (status, body["message"]) == (401, "Invalid OAuth token")

    fake.fail_next("/helix/channels", 503)
    assert (await helix(fake, http, app_token, "GET", "/channels", params=[("broadcaster_id", second.id)]))[0] == 503
    assert len(await channels(fake, http, app_token, second.id)) == 1
    assert fake.count("/helix/channels") == 8
    assert fake.unhandled == []


async def test_channel_update_push_matches_channels(fake: FakeTwitch, http, app_token, receiver) -> None:
    user = fake.add_user("pusher")
    await webhook_conduit(fake, http, app_token, receiver, user.id, ("channel.update", "2"))
    fake.update_channel(user.id, tags=["English"])  # tags are not part of channel.update (§6)
    fake.update_channel(user.id, title="Same")
    fake.update_channel(user.id, title="Same")  # no change: nothing pushed
    fake.update_channel(user.id, game_name="Fortnite", push=False)
    fake.eventsub.channel_update(user.id, title="Pushed by hand", category_id="27471", category_name="Minecraft")
    await fake.eventsub.flush_webhooks()
    events = [json.loads(body)["event"] for _, body in receiver.of_type("notification")]
    assert [(e["title"], e["category_name"]) for e in events] == [("Same", ""), ("Pushed by hand", "Minecraft")]
    [info] = await channels(fake, http, app_token, user.id)
    assert (info["title"], info["game_id"], info["game_name"]) == ("Pushed by hand", "27471", "Minecraft")


# -------------------------------------------------------------------------------------- listing lag (§7)


async def test_listing_lag_hides_a_new_stream_until_due(fake: FakeTwitch, http, app_token, clock) -> None:
    user, other, third = fake.add_users(3)
    stream = fake.go_live(user.id)  # the default: listed at once
    assert [s["id"] for s in await listed(fake, http, app_token, user.id)] == [stream.id]

    fake.listing_lag = 45.0
    stream = fake.go_live(other.id)
    assert stream.listed_from == clock() + 45
    assert await listed(fake, http, app_token, other.id) == []
    assert not fake.is_listed(other.id)
    _, _, body = await helix(fake, http, app_token, "GET", "/streams")  # the unfiltered listing too
    assert other.id not in {s["user_id"] for s in body["data"]}
    clock.advance(44.9)
    assert await listed(fake, http, app_token, other.id) == []
    clock.advance(0.1)
    [entry] = await listed(fake, http, app_token, other.id)
    assert entry["id"] == stream.id
    assert fake.is_listed(other.id)

    assert fake.go_live(third.id, listed_after=0).listed_from == clock()  # per-stream override
    assert len(await listed(fake, http, app_token, third.id)) == 1
    fake.listing_lag = 0.0
    fake.go_live(third.id, listed_after=10)  # a new stream: hidden again for its own lag
    assert await listed(fake, http, app_token, third.id) == []
    clock.advance(10)
    assert len(await listed(fake, http, app_token, third.id)) == 1


async def test_offline_lag_keeps_an_ended_stream_listed(fake: FakeTwitch, http, app_token, clock) -> None:
    user = fake.add_user("lingers")
    fake.go_live(user.id, title="first")
    fake.go_offline(user.id)  # offline_lag 0: gone at once
    assert await listed(fake, http, app_token, user.id) == []

    fake.offline_lag = 20.0
    stream = fake.go_live(user.id, title="second", viewer_count=77)
    fake.go_offline(user.id)
    assert user.id not in fake.streams
    [entry] = await listed(fake, http, app_token, user.id)
    assert (entry["id"], entry["title"], entry["viewer_count"], entry["type"]) == (stream.id, "second", 77, "live")
    clock.advance(19.9)
    assert len(await listed(fake, http, app_token, user.id)) == 1
    clock.advance(0.1)
    assert await listed(fake, http, app_token, user.id) == []
    assert fake.ended_streams == {}

    fake.go_live(user.id, title="third")
    fake.go_offline(user.id)
    newest = fake.go_live(user.id, title="fourth")  # a new stream replaces the ended one at once
    assert [s["id"] for s in await listed(fake, http, app_token, user.id)] == [newest.id]
    fake.go_live(user.id, title="fifth", listed_after=30)  # ends "fourth", which would linger; replaced
    assert await listed(fake, http, app_token, user.id) == []

    fake.listing_lag = 60.0
    late = fake.add_user("never_listed")
    fake.go_live(late.id)
    fake.go_offline(late.id)  # ended inside its listing lag: never listed, so nothing lingers
    clock.advance(60)
    assert await listed(fake, http, app_token, late.id) == []


# ---------------------------------------------------------------------------------- webhook verification


async def test_webhook_shard_challenge_enables_shard(fake: FakeTwitch, http, app_token, receiver) -> None:
    conduit_id = await new_conduit(fake, http, app_token, shards=2)
    answer = await patch_webhook_shard(fake, http, app_token, conduit_id, shard="1")
    assert answer["data"][0]["status"] == "webhook_callback_verification_pending"  # in the 202 (§2)
    await fake.eventsub.flush_webhooks()
    [(headers, body)] = receiver.requests
    assert headers["Twitch-Eventsub-Message-Type"] == "webhook_callback_verification"
    assert headers["Twitch-Eventsub-Message-Retry"] == "0"
    assert headers["Content-Type"] == "application/json"
    assert NANOS.fullmatch(headers["Twitch-Eventsub-Message-Timestamp"])
    payload = json.loads(body)
    assert set(payload) == {"challenge", "conduit_shard"}  # §2 "Verifying a conduit"
    assert payload["conduit_shard"] == {"conduit_id": conduit_id, "shard": "1"}
    message = headers["Twitch-Eventsub-Message-Id"].encode() + headers["Twitch-Eventsub-Message-Timestamp"].encode()
    digest = hmac.new(SECRET.encode(), message + body, hashlib.sha256).hexdigest()
    assert headers["Twitch-Eventsub-Message-Signature"] == f"sha256={digest}"  # §4
    [attempt] = fake.eventsub.webhook_attempts
    assert (attempt.origin, attempt.status, attempt.target, attempt.callback) == (
        "verification",
        200,
        receiver.url,
        CALLBACK,
    )
    _, _, shards = await helix(
        fake, http, app_token, "GET", "/eventsub/conduits/shards", params=[("conduit_id", conduit_id)]
    )
    assert [(s["id"], s["status"]) for s in shards["data"]] == [("0", "websocket_disconnected"), ("1", "enabled")]
    assert shards["data"][1]["transport"] == {"method": "webhook", "callback": CALLBACK}


async def json_challenge(request: web.Request, body: bytes) -> web.StreamResponse:
    return web.json_response(json.loads(body)["challenge"])  # a framework that JSON-encodes the answer (§4)


async def created_challenge(request: web.Request, body: bytes) -> web.StreamResponse:
    return web.Response(status=201, text=json.loads(body)["challenge"])


async def ok_but_empty(request: web.Request, body: bytes) -> web.StreamResponse:
    return web.Response(status=200)


@pytest.mark.parametrize("answer", [json_challenge, created_challenge, ok_but_empty])
async def test_wrong_challenge_answer_fails_verification(fake: FakeTwitch, http, app_token, receiver, answer) -> None:
    receiver.answer = answer
    conduit_id = await new_conduit(fake, http, app_token)
    await patch_webhook_shard(fake, http, app_token, conduit_id)
    await fake.eventsub.flush_webhooks()
    assert len(receiver.requests) == 1
    assert fake.eventsub.conduits[conduit_id].shards["0"].status == "webhook_callback_verification_failed"


async def test_unmapped_or_non_local_callback_fails_verification(fake: FakeTwitch, http, app_token) -> None:
    conduit_id = await new_conduit(fake, http, app_token, shards=2)
    fake.eventsub.webhook_targets["https://elsewhere.example.com/hook"] = "http://10.1.2.3/hook"
    await patch_webhook_shard(fake, http, app_token, conduit_id, "0")  # no target at all
    await patch_webhook_shard(fake, http, app_token, conduit_id, "1", "https://elsewhere.example.com/hook")
    await fake.eventsub.flush_webhooks()
    shards = fake.eventsub.conduits[conduit_id].shards
    assert {s.status for s in shards.values()} == {"webhook_callback_verification_failed"}
    assert [(a.status, a.error) for a in fake.eventsub.webhook_attempts] == [
        (None, "no webhook target for this callback"),
        (None, "webhook targets must be on 127.0.0.1"),
    ]


async def test_manual_verification_when_auto_verify_is_off(fake: FakeTwitch, http, app_token, receiver) -> None:
    fake.eventsub.auto_verify_webhooks = False
    conduit_id = await new_conduit(fake, http, app_token, shards=2)
    await patch_webhook_shard(fake, http, app_token, conduit_id, "0")
    await patch_webhook_shard(fake, http, app_token, conduit_id, "1")
    await fake.eventsub.flush_webhooks()
    assert receiver.requests == []
    assert fake.eventsub.conduits[conduit_id].shards["0"].status == "webhook_callback_verification_pending"
    assert fake.eventsub.verify_webhook_shard(conduit_id, "0").status == "enabled"
    failed = fake.eventsub.verify_webhook_shard(conduit_id, "1", ok=False)
    assert failed.status == "webhook_callback_verification_failed"
    with pytest.raises(ValueError, match="is enabled"):
        fake.eventsub.verify_webhook_shard(conduit_id, "0")


async def test_late_challenge_answer_after_repatch_is_ignored(fake: FakeTwitch, http, app_token, receiver) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request, body: bytes) -> web.StreamResponse:
        await release.wait()
        return await Receiver.default_answer(request, body)

    receiver.answer = slow
    conduit_id = await new_conduit(fake, http, app_token)
    await patch_webhook_shard(fake, http, app_token, conduit_id)
    await receiver.arrived.wait()
    ws = await http.ws_connect(fake.eventsub_ws_url)
    session_id = json.loads((await ws.receive(timeout=2)).data)["payload"]["session"]["id"]
    transport = {"method": "websocket", "session_id": session_id}
    body = {"conduit_id": conduit_id, "shards": [{"id": "0", "transport": transport}]}
    assert (await helix(fake, http, app_token, "PATCH", "/eventsub/conduits/shards", body))[0] == 202
    release.set()
    await fake.eventsub.flush_webhooks()
    shard = fake.eventsub.conduits[conduit_id].shards["0"]
    assert (shard.method, shard.status, shard.session_id) == ("websocket", "enabled", session_id)
    await ws.close()


# ------------------------------------------------------------------------------------ webhook delivery (§4)


async def test_notification_headers_signature_and_body(fake: FakeTwitch, http, app_token, receiver) -> None:
    user = fake.add_user("hooked")
    conduit_id = await webhook_conduit(fake, http, app_token, receiver, user.id)
    stream = fake.go_live(user.id)
    await fake.eventsub.flush_webhooks()
    [(headers, body)] = receiver.requests
    assert {
        "Twitch-Eventsub-Message-Id",
        "Twitch-Eventsub-Message-Retry",
        "Twitch-Eventsub-Message-Type",
        "Twitch-Eventsub-Message-Signature",
        "Twitch-Eventsub-Message-Timestamp",
        "Twitch-Eventsub-Subscription-Type",
        "Twitch-Eventsub-Subscription-Version",
    } <= set(headers)
    assert headers["Content-Type"] == "application/json"
    assert (headers["Twitch-Eventsub-Message-Type"], headers["Twitch-Eventsub-Message-Retry"]) == ("notification", "0")
    assert (headers["Twitch-Eventsub-Subscription-Type"], headers["Twitch-Eventsub-Subscription-Version"]) == (
        "stream.online",
        "1",
    )
    assert NANOS.fullmatch(headers["Twitch-Eventsub-Message-Timestamp"])
    signed = (headers["Twitch-Eventsub-Message-Id"] + headers["Twitch-Eventsub-Message-Timestamp"]).encode() + body
    assert headers["Twitch-Eventsub-Message-Signature"] == (
        "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    )
    payload = json.loads(body)
    assert set(payload) == {"subscription", "event"}  # no metadata envelope: that is in the headers
    assert payload["subscription"]["transport"] == {"method": "conduit", "conduit_id": conduit_id}
    assert (payload["event"]["id"], payload["event"]["broadcaster_user_id"]) == (stream.id, user.id)
    [(delivered_conduit, shard_id, message)] = fake.eventsub.webhook_deliveries
    assert (delivered_conduit, shard_id) == (conduit_id, "0")
    assert message["metadata"]["message_id"] == headers["Twitch-Eventsub-Message-Id"]
    assert fake.eventsub.webhook_attempts[-1].json() == payload
    assert fake.eventsub.sent == []  # nothing went over a WebSocket


async def test_failed_delivery_is_retried_with_the_same_id(fake: FakeTwitch, http, app_token, receiver) -> None:
    user = fake.add_user("flaky")
    await webhook_conduit(fake, http, app_token, receiver, user.id)
    receiver.answer = status_sequence(500, 502, 200)
    fake.go_live(user.id)
    await fake.eventsub.flush_webhooks()
    attempts = [a for a in fake.eventsub.webhook_attempts if a.origin == "delivery"]
    assert [(a.status, a.retry) for a in attempts] == [(500, 0), (502, 1), (200, 2)]
    assert len({a.message_id for a in attempts}) == 1
    assert len({a.headers["Twitch-Eventsub-Message-Signature"] for a in attempts}) == 1
    assert [h["Twitch-Eventsub-Message-Retry"] for h, _ in receiver.requests] == ["0", "1", "2"]
    assert len(fake.eventsub.webhook_deliveries) == 1

    receiver.answer = status_sequence(503)  # down for good: every retry fails, then the message is dropped
    fake.eventsub.webhook_retries = 2
    fake.go_offline(user.id)  # not subscribed: nothing sent
    fake.go_live(user.id)
    await fake.eventsub.flush_webhooks()
    later = [a for a in fake.eventsub.webhook_attempts if a.origin == "delivery"][len(attempts) :]
    assert [(a.status, a.retry) for a in later] == [(503, 0), (503, 1), (503, 2)]
    assert fake.eventsub.dropped[-1][0] == "webhook delivery failed"
    assert len(fake.eventsub.webhook_deliveries) == 1


async def test_slow_answer_times_out_and_is_retried(fake: FakeTwitch, http, app_token, receiver) -> None:
    user = fake.add_user("slowpoke")
    await webhook_conduit(fake, http, app_token, receiver, user.id)
    fake.eventsub.webhook_timeout = 0.1
    calls = 0

    async def slow_once(request: web.Request, body: bytes) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.5)
        return web.Response(status=200)

    receiver.answer = slow_once
    fake.go_live(user.id)
    await fake.eventsub.flush_webhooks()
    first, second = fake.eventsub.webhook_attempts[-2:]
    assert (first.status, first.error, first.retry) == (None, "timeout", 0)
    assert (second.status, second.retry, second.message_id) == (200, 1, first.message_id)


async def test_repeated_failures_can_disable_the_shard(fake: FakeTwitch, http, app_token, receiver) -> None:
    user = fake.add_user("outage")
    conduit_id = await webhook_conduit(fake, http, app_token, receiver, user.id)
    fake.eventsub.webhook_retries = 0
    fake.eventsub.webhook_failures_to_disable = 2
    receiver.answer = status_sequence(500)
    fake.go_live(user.id)
    await fake.eventsub.flush_webhooks()
    assert fake.eventsub.conduits[conduit_id].shards["0"].status == "enabled"
    fake.go_live(user.id)
    await fake.eventsub.flush_webhooks()
    assert fake.eventsub.conduits[conduit_id].shards["0"].status == "notification_failures_exceeded"  # §2, §4
    fake.go_live(user.id)  # a disabled shard gets nothing
    await fake.eventsub.flush_webhooks()
    assert len(receiver.requests) == 2
    assert fake.eventsub.dropped[-1][0] == "shards disabled"


async def test_revocation_is_posted(fake: FakeTwitch, http, app_token, receiver) -> None:
    user = fake.add_user("revoked")
    await webhook_conduit(fake, http, app_token, receiver, user.id)
    [sub] = fake.eventsub.subscriptions.values()
    fake.eventsub.revoke(sub, "user_removed")
    await fake.eventsub.flush_webhooks()
    [(headers, body)] = receiver.requests
    assert headers["Twitch-Eventsub-Message-Type"] == "revocation"
    assert headers["Twitch-Eventsub-Subscription-Type"] == "stream.online"
    payload = json.loads(body)
    assert set(payload) == {"subscription"}
    assert payload["subscription"]["status"] == "user_removed"


async def test_drop_delay_and_duplicate_faults_apply_to_webhooks(fake: FakeTwitch, http, app_token, receiver) -> None:
    user = fake.add_user("faulty")
    await webhook_conduit(fake, http, app_token, receiver, user.id)
    fake.eventsub.duplicate_next("stream.online")
    fake.go_live(user.id)
    await fake.eventsub.flush_webhooks()
    first, second = receiver.requests
    assert first[1] == second[1]
    assert first[0]["Twitch-Eventsub-Message-Id"] == second[0]["Twitch-Eventsub-Message-Id"]  # §7 resend

    fake.eventsub.drop_next()
    fake.go_live(user.id)
    await fake.eventsub.flush_webhooks()
    assert len(receiver.requests) == 2
    assert fake.eventsub.dropped[-1][0] == "injected drop"

    receiver.arrived.clear()
    fake.eventsub.delay_next(0.05)
    fake.go_live(user.id)
    await fake.eventsub.flush_webhooks()
    assert len(receiver.requests) == 2  # still waiting out its delay
    await asyncio.wait_for(receiver.arrived.wait(), 2)
    await fake.eventsub.flush_webhooks()
    assert len(receiver.requests) == 3
    assert len(fake.eventsub.webhook_deliveries) == 3


async def test_post_webhook_hand_crafted_deliveries(fake: FakeTwitch, http, app_token, receiver, clock) -> None:
    subscription = {"id": "sub-1", "type": "stream.offline", "version": "1", "status": "enabled"}
    event = {"broadcaster_user_id": "1337"}
    assert await fake.eventsub.post_webhook(CALLBACK, subscription=subscription, event=event, secret=SECRET) == (
        204,
        "",
    )
    headers, body = receiver.requests[-1]
    assert json.loads(body) == {"subscription": subscription, "event": event}
    assert headers["Twitch-Eventsub-Subscription-Type"] == "stream.offline"
    replayed = headers["Twitch-Eventsub-Message-Id"]

    status, _ = await fake.eventsub.post_webhook(
        CALLBACK, subscription=subscription, event=event, secret=SECRET, signature="sha256=" + "0" * 64
    )
    assert status == 403  # the receiver's own check of a forged signature
    assert receiver.requests[-1][0]["Twitch-Eventsub-Message-Signature"] == "sha256=" + "0" * 64
    await fake.eventsub.post_webhook(CALLBACK, subscription=subscription, secret="the-wrong-secret")
    assert fake.eventsub.webhook_attempts[-1].status == 403

    await fake.eventsub.post_webhook(
        CALLBACK, subscription=subscription, event=event, secret=SECRET, message_id=replayed, timestamp=clock() - 700
    )
    headers, _ = receiver.requests[-1]
    assert headers["Twitch-Eventsub-Message-Id"] == replayed
    assert NANOS.fullmatch(headers["Twitch-Eventsub-Message-Timestamp"])
    await fake.eventsub.post_webhook(
        CALLBACK, subscription=subscription, secret=SECRET, timestamp="2020-01-01T00:00:00Z", raw_body=b"{not json"
    )
    headers, body = receiver.requests[-1]
    assert (body, headers["Twitch-Eventsub-Message-Timestamp"]) == (b"{not json", "2020-01-01T00:00:00Z")

    status, text = await fake.eventsub.post_webhook(
        CALLBACK,
        message_type="webhook_callback_verification",
        subscription={**subscription, "status": "webhook_callback_verification_pending"},
        secret=SECRET,
        challenge="pogchamp-kappa",
    )
    assert (status, text) == (200, "pogchamp-kappa")
    assert {a.origin for a in fake.eventsub.webhook_attempts} == {"manual"}
    with pytest.raises(ConnectionError, match="no webhook target"):
        await fake.eventsub.post_webhook("https://unknown.example/x", subscription=subscription, secret=SECRET)


async def test_stop_closes_the_webhook_client(clock: ManualClock) -> None:
    fake = FakeTwitch(clock=clock)
    await fake.start()
    receiver = Receiver()
    await receiver.start()
    fake.eventsub.webhook_targets[CALLBACK] = receiver.url
    await fake.eventsub.post_webhook(CALLBACK, subscription={"type": "stream.online", "version": "1"}, secret=SECRET)
    client = fake.eventsub._http
    assert client is not None
    assert not client.closed
    await fake.stop()
    assert client.closed
    await receiver.stop()
