"""Tests for eventsub/webhook.py: the signature helpers against a known vector, and the receiver served by a
real HealthServer on 127.0.0.1, posted to the way Twitch posts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from twitch_notifier.eventsub.webhook import (
    CLOSE_GRACE_SECONDS,
    WebhookReceiver,
    WebhookStats,
    signature_for,
    verify_signature,
)
from twitch_notifier.ops.health import HealthServer, HealthStatus
from twitch_notifier.ops.metrics import Metrics
from twitch_notifier.twitch.eventsub import EventSubMessage, Notification, Revocation, StreamOnline

SECRET = "s3cr3t-webhook-secret"
PATH = "/eventsub/webhook"
NOW = 1_796_206_272.0  # 2026-12-02T10:11:12Z
TIMESTAMP = "2026-12-02T10:11:12.123456789Z"

ONLINE_BODY = {
    "subscription": {
        "id": "s1",
        "type": "stream.online",
        "version": "1",
        "status": "enabled",
        "cost": 1,
        "condition": {"broadcaster_user_id": "1337"},
        "transport": {"method": "conduit", "conduit_id": "c1"},
        "created_at": "2026-01-01T00:00:00Z",
    },
    "event": {
        "id": "9001",
        "broadcaster_user_id": "1337",
        "broadcaster_user_login": "cool_user",
        "broadcaster_user_name": "Cool_User",
        "type": "live",
        "started_at": "2026-01-01T00:00:00.123Z",
    },
}
REVOKED_BODY = {
    "subscription": {
        "id": "s2",
        "type": "stream.offline",
        "version": "1",
        "status": "authorization_revoked",
        "cost": 1,
        "condition": {"broadcaster_user_id": "1337"},
        "transport": {"method": "conduit", "conduit_id": "c1"},
        "created_at": "2026-01-01T00:00:00Z",
    }
}
CHALLENGE_BODY = {
    "challenge": "pogchamp-kappa-360noscope-vohiyo",
    "subscription": {
        "id": "s3",
        "type": "stream.online",
        "version": "1",
        "status": "webhook_callback_verification_pending",
        "cost": 1,
        "condition": {"broadcaster_user_id": "1337"},
        "transport": {"method": "webhook", "callback": "https://example.com/eventsub/webhook"},
        "created_at": "2026-01-01T00:00:00Z",
    },
}


def encode(body: object) -> bytes:
    return json.dumps(body).encode()


def twitch_headers(
    body: bytes,
    *,
    message_type: str = "notification",
    message_id: str = "msg-1",
    timestamp: str = TIMESTAMP,
    secret: str = SECRET,
    subscription_type: str = "stream.online",
) -> dict[str, str]:
    return {
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Retry": "0",
        "Twitch-Eventsub-Message-Type": message_type,
        "Twitch-Eventsub-Message-Signature": signature_for(secret, message_id, timestamp, body),
        "Twitch-Eventsub-Message-Timestamp": timestamp,
        "Twitch-Eventsub-Subscription-Type": subscription_type,
        "Twitch-Eventsub-Subscription-Version": "1",
        "Content-Type": "application/json",
    }


# -- signature_for / verify_signature ---------------------------------------------------------------------


def test_signature_for_matches_an_hmac_computed_by_hand() -> None:
    body = b'{"hello":"world"}'
    by_hand = hmac.new(b"0123456789abcdef", b"abc-123" + b"2026-12-02T10:11:12Z" + body, hashlib.sha256).hexdigest()
    assert signature_for("0123456789abcdef", "abc-123", "2026-12-02T10:11:12Z", body) == "sha256=" + by_hand


def test_signature_for_a_fixed_vector() -> None:
    # HMAC-SHA256(key "secret", "id" + "ts" + b"body"), written out (and checked with `openssl dgst -sha256
    # -hmac secret`) so a change of order or encoding shows.
    known = "sha256=60d0b23637d1498ebe2bd71c5e71485019ac6e01bb8448b382ae0c89df32243c"
    assert "sha256=" + hmac.new(b"secret", b"idtsbody", hashlib.sha256).hexdigest() == known
    assert signature_for("secret", "id", "ts", b"body") == known


def test_signature_order_is_id_then_timestamp_then_body() -> None:
    assert signature_for("secret", "a", "b", b"c") != signature_for("secret", "b", "a", b"c")
    assert signature_for("secret", "ab", "", b"c") == signature_for("secret", "a", "b", b"c")


def test_signature_for_signs_the_raw_bytes_of_a_header_aiohttp_decoded() -> None:
    # aiohttp decodes header bytes as UTF-8 with surrogateescape; the HMAC is over the bytes on the wire.
    by_hand = hmac.new(b"secret", b"id\xffts" + b"body", hashlib.sha256).hexdigest()
    assert signature_for("secret", "id\udcff", "ts", b"body") == "sha256=" + by_hand


def test_verify_signature_accepts_the_right_one() -> None:
    header = signature_for(SECRET, "id", TIMESTAMP, b"{}")
    assert verify_signature(SECRET, "id", TIMESTAMP, b"{}", header)


@pytest.mark.parametrize(
    ("message_id", "timestamp", "body", "header"),
    [
        ("id", TIMESTAMP, b"{}", None),
        ("id", TIMESTAMP, b"{}", ""),
        (None, TIMESTAMP, b"{}", "GOOD"),
        ("id", None, b"{}", "GOOD"),
        ("", TIMESTAMP, b"{}", "GOOD"),
        ("id", TIMESTAMP, b"{ }", "GOOD"),  # tampered body
        ("id2", TIMESTAMP, b"{}", "GOOD"),  # another message's id
        ("id", TIMESTAMP, b"{}", "GOOD-no-prefix"),
        ("id", TIMESTAMP, b"{}", "GOOD-uppercase"),
        ("id", TIMESTAMP, b"{}", "GOOD-truncated"),
        ("id", TIMESTAMP, b"{}", "sha256="),
        ("id", TIMESTAMP, b"{}", "sha256=zzzz"),
        ("id", TIMESTAMP, b"{}", "sha256=é"),
        ("id", TIMESTAMP, b"{}", "md5=abc"),
        ("id\ud800", TIMESTAMP, b"{}", "GOOD"),  # cannot be encoded: False, not an exception
    ],
)
def test_verify_signature_rejects_without_raising(message_id, timestamp, body, header) -> None:
    good = signature_for(SECRET, "id", TIMESTAMP, b"{}")
    header = {
        "GOOD": good,
        "GOOD-no-prefix": good.removeprefix("sha256="),
        "GOOD-uppercase": "sha256=" + good.removeprefix("sha256=").upper(),
        "GOOD-truncated": good[:-1],
    }.get(header, header)
    assert verify_signature(SECRET, message_id, timestamp, body, header) is False


def test_verify_signature_with_another_secret_is_false() -> None:
    header = signature_for("another-secret-value", "id", TIMESTAMP, b"{}")
    assert not verify_signature(SECRET, "id", TIMESTAMP, b"{}", header)


def test_verify_signature_with_an_empty_secret_is_false() -> None:
    assert not verify_signature("", "id", TIMESTAMP, b"{}", signature_for("", "id", TIMESTAMP, b"{}"))


# -- construction -----------------------------------------------------------------------------------------


async def _ignore(message: EventSubMessage) -> None:
    pass


@pytest.mark.parametrize(
    "options",
    [
        {"secret": "short"},
        {"secret": "x" * 101},
        {"secret": "nön-ascii-secret"},
        {"path": "no-slash"},
        {"max_age": 0},
        {"max_body": 0},
    ],
)
def test_bad_options_are_rejected(options) -> None:
    kwargs = {"secret": SECRET, "path": PATH, "on_message": _ignore, **options}
    with pytest.raises(ValueError, match="must") as raised:
        WebhookReceiver(**kwargs)
    assert SECRET not in str(raised.value)


def test_the_repr_never_shows_the_secret() -> None:
    receiver = WebhookReceiver(secret=SECRET, path=PATH, on_message=_ignore)
    assert SECRET not in repr(receiver)
    assert receiver.path == PATH
    assert receiver.stats() == WebhookStats()


# -- served -----------------------------------------------------------------------------------------------


@dataclass
class Consumer:
    messages: list[EventSubMessage] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event | None = None
    fail: bool = False

    async def __call__(self, message: EventSubMessage) -> None:
        self.messages.append(message)
        self.arrived.set()
        if self.release is not None:
            await self.release.wait()
        if self.fail:
            raise RuntimeError("consumer bug")

    async def wait(self, count: int = 1) -> None:
        async with asyncio.timeout(2):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()


@dataclass
class Served:
    receiver: WebhookReceiver
    consumer: Consumer
    server: HealthServer
    session: aiohttp.ClientSession
    clock: list[float]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}{PATH}"

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, str]:
        async with self.session.post(self.url, data=body, headers=headers) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.text()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    consumer = Consumer()
    clock = [NOW]
    receiver = WebhookReceiver(secret=SECRET, path=PATH, on_message=consumer, clock=lambda: clock[0])
    server = HealthServer(
        host="127.0.0.1",
        port=0,
        health=lambda: HealthStatus(True, "ok", {}),
        metrics=Metrics(),
        routes=[("POST", receiver.path, receiver.handle)],
    )
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Served(receiver, consumer, server, session, clock)
    finally:
        await server.stop()
        await receiver.close()


async def test_a_signed_notification_is_acknowledged_and_handed_on(served: Served) -> None:
    body = encode(ONLINE_BODY)
    status, _, _ = await served.post(body, twitch_headers(body))
    assert 200 <= status < 300
    await served.consumer.wait()
    [message] = served.consumer.messages
    assert isinstance(message, Notification)
    assert message.metadata.message_id == "msg-1"
    assert message.metadata.message_type == "notification"
    assert message.subscription.id == "s1"
    assert isinstance(message.event, StreamOnline)
    assert message.event.stream_id == "9001"
    assert message.event.login == "cool_user"
    assert served.receiver.stats() == WebhookStats(received=1, accepted=1)


async def test_header_names_are_case_insensitive(served: Served) -> None:
    body = encode(ONLINE_BODY)
    headers = {name.lower(): value for name, value in twitch_headers(body).items()}
    status, _, _ = await served.post(body, headers)
    assert status == 204
    await served.consumer.wait()


async def test_a_revocation_is_delivered(served: Served) -> None:
    body = encode(REVOKED_BODY)
    status, _, _ = await served.post(body, twitch_headers(body, message_type="revocation", message_id="rev-1"))
    assert 200 <= status < 300
    await served.consumer.wait()
    [message] = served.consumer.messages
    assert isinstance(message, Revocation)
    assert message.subscription.status == "authorization_revoked"
    assert message.subscription.id == "s2"


async def test_the_challenge_is_answered_with_the_raw_string(served: Served) -> None:
    body = encode(CHALLENGE_BODY)
    status, content_type, text = await served.post(
        body, twitch_headers(body, message_type="webhook_callback_verification")
    )
    assert status == 200
    assert text == "pogchamp-kappa-360noscope-vohiyo"
    assert content_type == "text/plain"
    assert served.consumer.messages == []
    assert served.receiver.stats() == WebhookStats(received=1, challenges=1)


async def test_the_challenge_body_is_exact_bytes(served: Served) -> None:
    body = encode(CHALLENGE_BODY)
    headers = twitch_headers(body, message_type="webhook_callback_verification")
    async with served.session.post(served.url, data=body, headers=headers) as response:
        raw = await response.read()
        assert response.headers["Content-Length"] == str(len(CHALLENGE_BODY["challenge"]))
    assert raw == b"pogchamp-kappa-360noscope-vohiyo"


@pytest.mark.parametrize("body", [{"subscription": {}}, {"challenge": ""}, {"challenge": 42}, ["challenge"]])
async def test_a_challenge_without_a_challenge_string_is_400(served: Served, body) -> None:
    raw = encode(body)
    status, _, _ = await served.post(raw, twitch_headers(raw, message_type="webhook_callback_verification"))
    assert status == 400
    assert served.receiver.stats().malformed == 1


async def test_an_unsigned_challenge_is_403(served: Served) -> None:
    body = encode(CHALLENGE_BODY)
    headers = twitch_headers(body, message_type="webhook_callback_verification", secret="not-the-secret")
    status, _, text = await served.post(body, headers)
    assert status == 403
    assert CHALLENGE_BODY["challenge"] not in text


async def test_a_wrong_secret_is_403(served: Served, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    body = encode(ONLINE_BODY)
    headers = twitch_headers(body, secret="attacker-guessed-secret")
    status, _, _ = await served.post(body, headers)
    assert status == 403
    await asyncio.sleep(0.05)
    assert served.consumer.messages == []
    assert served.receiver.stats() == WebhookStats(received=1, forged=1)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "signature" in logged
    assert SECRET not in logged
    assert headers["Twitch-Eventsub-Message-Signature"] not in logged
    assert headers["Twitch-Eventsub-Message-Signature"].removeprefix("sha256=") not in logged


async def test_a_tampered_body_is_403(served: Served) -> None:
    body = encode(ONLINE_BODY)
    headers = twitch_headers(body)
    tampered = body.replace(b"9001", b"9002")
    status, _, _ = await served.post(tampered, headers)
    assert status == 403
    await asyncio.sleep(0.05)
    assert served.consumer.messages == []


async def test_a_replayed_signature_under_another_id_is_403(served: Served) -> None:
    body = encode(ONLINE_BODY)
    headers = twitch_headers(body)
    headers["Twitch-Eventsub-Message-Id"] = "msg-2"
    status, _, _ = await served.post(body, headers)
    assert status == 403


@pytest.mark.parametrize(
    "missing", ["Twitch-Eventsub-Message-Signature", "Twitch-Eventsub-Message-Id", "Twitch-Eventsub-Message-Timestamp"]
)
async def test_a_missing_header_is_403(served: Served, missing: str) -> None:
    body = encode(ONLINE_BODY)
    headers = twitch_headers(body)
    del headers[missing]
    status, _, _ = await served.post(body, headers)
    assert status == 403
    await asyncio.sleep(0.05)
    assert served.consumer.messages == []
    assert served.receiver.stats().forged == 1


async def test_a_forged_malformed_body_is_403_not_400(served: Served) -> None:
    # The signature is checked before the JSON is read: an unsigned body says nothing about its shape.
    body = b"{not json"
    status, _, _ = await served.post(body, twitch_headers(body, secret="not-the-secret"))
    assert status == 403
    assert served.receiver.stats() == WebhookStats(received=1, forged=1)


@pytest.mark.parametrize("offset", [-(11 * 60), 11 * 60])
async def test_a_timestamp_more_than_ten_minutes_away_is_rejected(served: Served, offset: float) -> None:
    served.clock[0] = NOW - offset  # the delivery is 11 minutes old (or 11 minutes in the future)
    body = encode(ONLINE_BODY)
    status, _, _ = await served.post(body, twitch_headers(body))
    assert 400 <= status < 500
    assert status == 400
    await asyncio.sleep(0.05)
    assert served.consumer.messages == []
    assert served.receiver.stats() == WebhookStats(received=1, stale=1)


async def test_a_timestamp_nine_minutes_old_is_accepted(served: Served) -> None:
    served.clock[0] = NOW + 9 * 60
    body = encode(ONLINE_BODY)
    status, _, _ = await served.post(body, twitch_headers(body))
    assert status == 204
    await served.consumer.wait()


async def test_an_unreadable_timestamp_is_400(served: Served) -> None:
    body = encode(ONLINE_BODY)
    status, _, _ = await served.post(body, twitch_headers(body, timestamp="yesterday"))
    assert status == 400
    assert served.receiver.stats().stale == 1


async def test_an_oversized_body_is_413(served: Served) -> None:
    body = b'{"pad": "' + b"x" * (64 * 1024) + b'"}'
    status, _, _ = await served.post(body, twitch_headers(body))
    assert status == 413
    assert served.receiver.stats() == WebhookStats(received=1, too_large=1)
    assert served.consumer.messages == []


async def test_an_oversized_chunked_body_is_413(served: Served) -> None:
    body = b'{"pad": "' + b"x" * (64 * 1024) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    headers = twitch_headers(body)
    async with served.session.post(served.url, data=chunks(), headers=headers) as response:
        assert response.status == 413
    assert served.receiver.stats().too_large == 1


async def test_a_body_at_the_limit_is_read() -> None:
    consumer = Consumer()
    receiver = WebhookReceiver(secret=SECRET, path=PATH, on_message=consumer, clock=lambda: NOW, max_body=512)
    body = encode(ONLINE_BODY)
    body = body[:-1] + b" " * (512 - len(body)) + b"}"
    assert len(body) == 512
    server = HealthServer(
        host="127.0.0.1",
        port=0,
        health=lambda: HealthStatus(True, "ok", {}),
        metrics=Metrics(),
        routes=[("POST", receiver.path, receiver.handle)],
    )
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}{PATH}"
            async with session.post(url, data=body, headers=twitch_headers(body)) as response:
                assert response.status == 204
            bigger = body + b" "
            async with session.post(url, data=bigger, headers=twitch_headers(bigger)) as response:
                assert response.status == 413
    finally:
        await server.stop()
        await receiver.close()
    assert len(consumer.messages) == 1


async def test_signed_malformed_json_is_400(served: Served) -> None:
    body = b'{"subscription": '
    status, _, _ = await served.post(body, twitch_headers(body))
    assert status == 400
    assert served.receiver.stats() == WebhookStats(received=1, malformed=1)


async def test_signed_non_utf8_body_is_400(served: Served) -> None:
    body = b"\xff\xfe{}"
    status, _, _ = await served.post(body, twitch_headers(body))
    assert status == 400


async def test_a_signed_notification_without_a_subscription_is_400(served: Served) -> None:
    body = encode({"event": ONLINE_BODY["event"]})
    status, _, _ = await served.post(body, twitch_headers(body))
    assert status == 400
    assert served.receiver.stats().malformed == 1
    await asyncio.sleep(0.05)
    assert served.consumer.messages == []


async def test_an_unknown_message_type_is_acknowledged_and_dropped(served: Served) -> None:
    body = encode(ONLINE_BODY)
    status, _, _ = await served.post(body, twitch_headers(body, message_type="session_welcome"))
    assert status == 204
    await asyncio.sleep(0.05)
    assert served.consumer.messages == []
    assert served.receiver.stats() == WebhookStats(received=1)


async def test_a_slow_consumer_does_not_delay_the_answer(served: Served) -> None:
    served.consumer.release = asyncio.Event()
    body = encode(ONLINE_BODY)
    async with asyncio.timeout(1):
        status, _, _ = await served.post(body, twitch_headers(body))
    assert status == 204
    await served.consumer.wait()
    assert len(served.receiver._tasks) == 1
    served.consumer.release.set()
    async with asyncio.timeout(1):
        while served.receiver._tasks:
            await asyncio.sleep(0.01)


@pytest.mark.allow_error_logs
async def test_a_failing_consumer_is_logged_and_the_server_keeps_serving(served: Served, caplog) -> None:
    served.consumer.fail = True
    body = encode(ONLINE_BODY)
    status, _, _ = await served.post(body, twitch_headers(body))
    assert status == 204
    await served.consumer.wait()
    async with asyncio.timeout(1):
        while served.receiver._tasks:
            await asyncio.sleep(0.01)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(failures) == 1
    assert "msg-1" in failures[0].getMessage()
    assert isinstance(failures[0].exc_info[1], RuntimeError)

    served.consumer.fail = False
    second = twitch_headers(body, message_id="msg-2")
    status, _, _ = await served.post(body, second)
    assert status == 204
    await served.consumer.wait(2)
    assert served.receiver.stats().accepted == 2


async def test_other_methods_are_405(served: Served) -> None:
    async with served.session.get(served.url) as response:
        assert response.status == 405


async def test_the_handler_itself_refuses_other_methods() -> None:
    # Registered for every method, the handler still only takes POST.
    receiver = WebhookReceiver(secret=SECRET, path=PATH, on_message=_ignore)
    server = HealthServer(
        host="127.0.0.1",
        port=0,
        health=lambda: HealthStatus(True, "ok", {}),
        metrics=Metrics(),
        routes=[("*", receiver.path, receiver.handle)],
    )
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.put(f"http://127.0.0.1:{server.port}{PATH}", data=b"{}") as response,
        ):
            assert response.status == 405
            assert response.headers["Allow"] == "POST"
    finally:
        await server.stop()


async def test_healthz_is_still_served_beside_the_webhook(served: Served) -> None:
    async with served.session.get(f"http://127.0.0.1:{served.server.port}/healthz") as response:
        assert response.status == 200


# -- close ------------------------------------------------------------------------------------------------


async def test_close_waits_for_a_consumer_that_finishes() -> None:
    consumer = Consumer(release=asyncio.Event())
    receiver = WebhookReceiver(secret=SECRET, path=PATH, on_message=consumer, clock=lambda: NOW)
    server = HealthServer(
        host="127.0.0.1",
        port=0,
        health=lambda: HealthStatus(True, "ok", {}),
        metrics=Metrics(),
        routes=[("POST", receiver.path, receiver.handle)],
    )
    await server.start()
    try:
        body = encode(ONLINE_BODY)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{server.port}{PATH}", data=body, headers=twitch_headers(body)) as response,
        ):
            assert response.status == 204
        await consumer.wait()
        [task] = receiver._tasks
        closing = asyncio.create_task(receiver.close())
        await asyncio.sleep(0.05)
        assert not closing.done()
        consumer.release.set()
        await asyncio.wait_for(closing, 1)
        assert task.done()
        assert not task.cancelled()

        # Closed: a new delivery is refused so that Twitch sends it again.
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{server.port}{PATH}", data=body, headers=twitch_headers(body)) as response,
        ):
            assert response.status == 503
    finally:
        await server.stop()


async def test_close_cancels_a_consumer_that_hangs(monkeypatch) -> None:
    monkeypatch.setattr("twitch_notifier.eventsub.webhook.CLOSE_GRACE_SECONDS", 0.05)
    assert CLOSE_GRACE_SECONDS > 0.05
    consumer = Consumer(release=asyncio.Event())
    receiver = WebhookReceiver(secret=SECRET, path=PATH, on_message=consumer, clock=lambda: NOW)
    server = HealthServer(
        host="127.0.0.1",
        port=0,
        health=lambda: HealthStatus(True, "ok", {}),
        metrics=Metrics(),
        routes=[("POST", receiver.path, receiver.handle)],
    )
    await server.start()
    try:
        body = encode(ONLINE_BODY)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{server.port}{PATH}", data=body, headers=twitch_headers(body)) as response,
        ):
            assert response.status == 204
        await consumer.wait()
        [task] = receiver._tasks
        await asyncio.wait_for(receiver.close(), 2)
        assert task.cancelled()
        assert not receiver._tasks
        await receiver.close()  # idempotent
    finally:
        await server.stop()


class EndlessBody:
    """A request body that never ends and counts what the handler took from it."""

    def __init__(self) -> None:
        self.taken = 0

    async def read(self, n: int = -1) -> bytes:
        assert n > 0, "the handler must read with a bound"
        self.taken += n
        return b"x" * n


async def test_a_body_without_a_length_is_read_only_up_to_the_limit() -> None:
    body = EndlessBody()
    receiver = WebhookReceiver(secret=SECRET, path=PATH, on_message=_ignore, max_body=1000)
    request = make_mocked_request("POST", PATH, headers={"Transfer-Encoding": "chunked"}, payload=body)
    response = await receiver.handle(request)
    assert response.status == 413
    assert body.taken == 1001


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    body = EndlessBody()
    receiver = WebhookReceiver(secret=SECRET, path=PATH, on_message=_ignore, max_body=1000)
    request = make_mocked_request("POST", PATH, headers={"Content-Length": "1001"}, payload=body)
    response = await receiver.handle(request)
    assert response.status == 413
    assert body.taken == 0
