"""End to end: EventSub push through a conduit whose shard 0 is the bot's webhook (EVENTSUB_TRANSPORT=webhook).

As in production (app/run.py) the bot's own HTTP server (ops/health.py HealthServer) serves the callback's path
with the bot's WebhookReceiver; the fake Twitch reaches it through ``webhook_targets``, the way Fly's TLS proxy
maps the public https://…:443 callback to the local port. The harness runs no HealthServer, so the fixture
starts one on 127.0.0.1 port 0.

Start order: the receiver exists once the bot is built, but the bot binds the shard during its login (push
starts in setup_hook), before `harness.start()` returns, and the fake sends its challenge right after that
PATCH. The fixture therefore holds the bot's first EventSub call (GET conduits) until the server is
listening and mapped, so the very first challenge reaches the receiver; `test_a_late_http_server_is_survived`
covers the other order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from bot import TwitchNotifierBot
from database import Database
from tests.e2e.harness import BotHarness, announcements, follow
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_eventsub import WebhookAttempt, webhook_signature
from tests.fakes.fake_twitch import FakeStream, FakeTwitch
from twitch_notifier.eventsub.service import EventSubService
from twitch_notifier.eventsub.webhook import WebhookReceiver
from twitch_notifier.ops.health import HealthServer

CALLBACK = "https://notifier.example.com/eventsub/callback"
SECRET = "webhook-secret-0123456789"
ENDED_COLOR = 0x6E6E78  # the "was live" card (see test_card_life)


@dataclasses.dataclass
class WebhookBot:
    guild: Any
    alerts: Any
    server: HealthServer
    conduit_id: str

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/eventsub/callback"


def _webhook_settings(harness: BotHarness) -> None:
    harness.settings = dataclasses.replace(
        harness.settings,
        eventsub_transport="webhook",
        eventsub_callback_url=CALLBACK,
        eventsub_secret=SECRET,
    )


def _bot(harness: BotHarness) -> TwitchNotifierBot:
    assert harness.bot is not None, "the bot is started"
    return harness.bot


def _push(harness: BotHarness) -> EventSubService:
    push = _bot(harness).push
    assert push is not None, "EVENTSUB_TRANSPORT=webhook builds the EventSub service"
    return push


def _receiver(harness: BotHarness) -> WebhookReceiver:
    receiver = _push(harness).receiver
    assert receiver is not None, "EVENTSUB_TRANSPORT=webhook builds a WebhookReceiver"
    return receiver


def _db(harness: BotHarness) -> Database:
    assert harness.db is not None, "the bot is started"
    return harness.db


def _http_server(harness: BotHarness) -> HealthServer:
    """The bot's HTTP server as app/run.py builds it: /healthz, /metrics and the receiver's POST route."""
    bot = _bot(harness)
    receiver = _receiver(harness)
    return HealthServer(
        host="127.0.0.1",
        port=0,
        health=bot.health,
        metrics=bot.metrics,
        routes=[("POST", receiver.path, receiver.handle)],
    )


def _conduit_id(fake_twitch: FakeTwitch) -> str:
    [conduit_id] = fake_twitch.eventsub.conduits
    return conduit_id


def _shard(fake_twitch: FakeTwitch) -> Any:
    return fake_twitch.eventsub.conduits[_conduit_id(fake_twitch)].shards["0"]


def _shard_enabled(fake_twitch: FakeTwitch) -> bool:
    conduits = fake_twitch.eventsub.conduits
    return len(conduits) == 1 and _shard(fake_twitch).status == "enabled"


def _subscription(fake_twitch: FakeTwitch, login: str, sub_type: str = "stream.online") -> Any:
    user_id = fake_twitch.user(login).id
    [sub] = [
        s
        for s in fake_twitch.eventsub.subscriptions.values()
        if s.type == sub_type and s.broadcaster_user_id == user_id and s.status == "enabled"
    ]
    return sub


def _attempts(fake_twitch: FakeTwitch, origin: str, message_type: str | None = None) -> list[WebhookAttempt]:
    return [
        a
        for a in fake_twitch.eventsub.webhook_attempts
        if a.origin == origin and (message_type is None or a.message_type == message_type)
    ]


def _stamp(moment: float) -> str:
    """RFC 3339 as Twitch writes it in the Message-Timestamp header."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _online_event(fake_twitch: FakeTwitch, stream: FakeStream, login: str) -> dict[str, str]:
    """The §6 stream.online event for `stream`, as Twitch (and the fake) sends it."""
    user = fake_twitch.user(login)
    return {
        "id": stream.id,
        "broadcaster_user_id": user.id,
        "broadcaster_user_login": user.login,
        "broadcaster_user_name": user.display_name,
        "type": "live",
        "started_at": stream.started_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }


async def _quiet(harness: BotHarness, seconds: float = 0.2) -> None:
    """Give a wrongly accepted delivery the time to be announced (the positive controls take far less)."""
    await asyncio.sleep(seconds)
    assert harness.gateway_failure() is None


@pytest.fixture
async def webhook_bot(
    harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> AsyncIterator[WebhookBot]:
    """A bot with EVENTSUB_TRANSPORT=webhook, its HTTP server serving the callback, shard 0 verified, in
    Guild A (#alerts default) following shroud, whose subscriptions are on the conduit."""
    _webhook_settings(harness)
    guild = fake_discord.add_guild("Guild A")
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    fake_twitch.add_user("shroud")
    fake_twitch.listing_lag = 3600  # the listing never catches up within a test unless it says so
    fake_twitch.eventsub.webhook_timeout = 1.0  # an answer later than this is a failed delivery (retried)
    # Hold the bot's first EventSub call (finding its conduit) until its HTTP server listens: the shard
    # bind, and with it the fake's challenge, follow that call at once.
    fake_twitch.hang_next("/helix/eventsub/conduits")
    await harness.start()
    server = _http_server(harness)
    await server.start()
    try:
        fake_twitch.eventsub.webhook_targets[CALLBACK] = f"http://127.0.0.1:{server.port}/eventsub/callback"
        await harness.wait_for(lambda: len(fake_twitch.hung) == 1, "the bot to look for its conduit")
        assert fake_twitch.release_hangs() == 1
        await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=alerts)
        reply = await follow(harness, guild, alerts, "shroud")
        assert "Now following" in reply.text, reply.text
        await harness.wait_for(lambda: _shard_enabled(fake_twitch), "the webhook shard to be verified")
        push = _push(harness)
        user_id = fake_twitch.user("shroud").id
        await harness.wait_for(lambda: push.sync.push_covers(user_id), "shroud's subscriptions")
        await harness.wait_for(
            lambda: len([s for s in fake_twitch.eventsub.subscriptions.values() if s.status == "enabled"]) == 3,
            "all three of shroud's subscriptions",
        )
        await fake_twitch.eventsub.flush_webhooks()
        yield WebhookBot(guild, alerts, server, _conduit_id(fake_twitch))
        await fake_twitch.eventsub.flush_webhooks()
    finally:
        await harness.stop()  # as app/run.py: the bot (and its receiver) first, then the HTTP server
        await server.stop()


# ------------------------------------------------------------------------------------------------ start-up


async def test_start_up_binds_the_webhook_shard_answers_the_challenge_and_subscribes(
    webhook_bot: WebhookBot, harness: BotHarness, fake_twitch: FakeTwitch
) -> None:
    eventsub = fake_twitch.eventsub
    conduit_id = webhook_bot.conduit_id
    # The bind: shard 0 of the conduit, the configured public callback and secret (§2 webhook shard form).
    binds = [c for c in eventsub.calls if c.method == "PATCH" and c.path == "/helix/eventsub/conduits/shards"]
    assert binds, "the bot never bound a shard"
    for call in binds:
        assert call.status == 202
        assert call.body == {
            "conduit_id": conduit_id,
            "shards": [{"id": "0", "transport": {"method": "webhook", "callback": CALLBACK, "secret": SECRET}}],
        }
    shard = _shard(fake_twitch)
    assert (shard.status, shard.method, shard.callback, shard.secret) == ("enabled", "webhook", CALLBACK, SECRET)
    # The challenge reached the bot's own server on the callback's path and was answered byte for byte.
    [challenge] = _attempts(fake_twitch, "verification")
    assert challenge.target == webhook_bot.local_url
    expected = challenge.json()["challenge"]
    assert challenge.status == 200
    assert challenge.response == expected
    assert challenge.response_headers["Content-Length"] == str(len(expected.encode()))
    assert challenge.response_headers["Content-Type"].startswith("text/plain")
    assert _receiver(harness).stats().challenges == 1
    # The conduit is kept for the next start.
    assert await _db(harness).get_state("eventsub_conduit_id") == conduit_id
    # Subscriptions: the three types, for shroud, on the conduit (never on a webhook transport of their own).
    user_id = fake_twitch.user("shroud").id
    subs = sorted(
        (s.type, s.version, s.condition["broadcaster_user_id"], json.dumps(s.transport, sort_keys=True))
        for s in eventsub.subscriptions.values()
    )
    transport = json.dumps({"method": "conduit", "conduit_id": conduit_id}, sort_keys=True)
    assert subs == [
        ("channel.update", "2", user_id, transport),
        ("stream.offline", "1", user_id, transport),
        ("stream.online", "1", user_id, transport),
    ]
    assert {s.status for s in eventsub.subscriptions.values()} == {"enabled"}
    status = _push(harness).status()
    assert (status.transport, status.shards_total, status.conduit_id) == ("webhook", 1, conduit_id)
    assert status.subscriptions.pushed == 1


async def test_start_up_binds_the_shard_once(
    caplog: pytest.LogCaptureFixture, webhook_bot: WebhookBot, harness: BotHarness, fake_twitch: FakeTwitch
) -> None:
    """One PATCH, one challenge, no warning: the shard check that runs at start-up must not race the bind."""
    binds = [c for c in fake_twitch.eventsub.calls if c.method == "PATCH" and c.path.endswith("/conduits/shards")]
    assert len(binds) == 1, binds
    assert len(_attempts(fake_twitch, "verification")) == 1
    records = caplog.get_records("setup") + caplog.records
    warnings = [
        r.getMessage() for r in records if r.levelno >= logging.WARNING and r.name.startswith("twitch_notifier")
    ]
    assert warnings == []


async def test_status_shows_the_verified_webhook_shard_as_connected(
    webhook_bot: WebhookBot, harness: BotHarness, fake_twitch: FakeTwitch
) -> None:
    """/healthz and /metrics say push is up soon after the challenge, not only at the next shard check."""
    push = _push(harness)
    await harness.wait_for(lambda: push.status().connected, "push to report the webhook shard", timeout=3)
    assert push.status().shards_connected == 1


async def test_a_late_http_server_is_survived(
    harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    """The naive order (the server starts after the bot): the first challenge finds nothing listening, and the
    bot binds the shard again at its next shard check (every 0.1 s here), which then passes."""
    _webhook_settings(harness)
    harness.eventsub_options["shard_check_interval"] = 0.1
    await harness.start()
    await harness.wait_for(lambda: bool(_attempts(fake_twitch, "verification")), "the first challenge")
    await fake_twitch.eventsub.flush_webhooks()
    assert not _shard_enabled(fake_twitch)
    server = _http_server(harness)
    await server.start()
    try:
        fake_twitch.eventsub.webhook_targets[CALLBACK] = f"http://127.0.0.1:{server.port}/eventsub/callback"
        await harness.wait_for(lambda: _shard_enabled(fake_twitch), "the shard to be verified on a re-bind", timeout=2)
        await harness.wait_for(lambda: _push(harness).status().connected, "push to report the shard")
        answered = [a for a in _attempts(fake_twitch, "verification") if a.ok]
        assert len(answered) == 1
        assert answered[0].response == answered[0].json()["challenge"]
    finally:
        await harness.stop()
        await server.stop()


# ------------------------------------------------------------------------------------------------- go-live


async def test_go_live_by_webhook_is_announced_at_once_and_once(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    cycles = _bot(harness).poller.cycles
    started = time.monotonic()
    stream = fake_twitch.go_live("shroud", title="Ranked grind", game_name="VALORANT")
    [message] = await fake_discord.wait_for_messages(1, timeout=3)
    assert time.monotonic() - started < 2.0
    assert message.channel_id == webhook_bot.alerts.id
    assert message.embeds[0]["title"].startswith("Ranked grind")
    assert _bot(harness).poller.cycles == cycles, "announced by a poll, not by the push"
    await fake_twitch.eventsub.flush_webhooks()
    # One delivery, answered 2xx at the first attempt (no retry: the answer came within webhook_timeout).
    [delivery] = _attempts(fake_twitch, "delivery", "notification")
    assert delivery.ok, (delivery.status, delivery.error)
    assert delivery.retry == 0
    assert delivery.target == webhook_bot.local_url
    assert delivery.json()["event"]["id"] == stream.id
    # The listing still lags: a poll neither ends nor announces it again.
    await harness.poll()
    await _quiet(harness)
    assert len(announcements(fake_discord)) == 1
    assert (await _db(harness).live_streams())[fake_twitch.user("shroud").id].stream_id == stream.id


async def test_delivery_is_acknowledged_before_it_is_processed(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    """Processing a go-live waits on /helix/channels (slow here, 1 s); the 2xx must not wait for it."""
    fake_twitch.eventsub.webhook_timeout = 0.3
    fake_twitch.fail_next("/helix/channels", status=None, delay=1.0)
    fake_twitch.go_live("shroud", title="Slow lookup")
    await fake_twitch.eventsub.flush_webhooks()
    [delivery] = _attempts(fake_twitch, "delivery", "notification")
    assert delivery.ok, (delivery.status, delivery.error)
    [message] = await fake_discord.wait_for_messages(1, timeout=4)
    assert message.embeds[0]["title"].startswith("Slow lookup")
    await _quiet(harness)
    assert len(announcements(fake_discord)) == 1


# ------------------------------------------------------------------------------- forged, stale, replayed


async def test_forged_deliveries_are_refused_and_change_nothing(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    eventsub = fake_twitch.eventsub
    stream = fake_twitch.go_live("shroud", title="Forged?", push=False)
    subscription = _subscription(fake_twitch, "shroud").to_json()
    event = _online_event(fake_twitch, stream, "shroud")
    # Signed with another secret.
    status, _ = await eventsub.post_webhook(CALLBACK, subscription=subscription, event=event, secret="not-the-secret")
    assert status == 403
    # A correctly signed body, tampered with on the way (the title field added after signing).
    message_id, stamp = str(uuid.uuid4()), _stamp(time.time())
    signed = json.dumps({"subscription": subscription, "event": event}).encode()
    tampered = json.dumps({"subscription": subscription, "event": {**event, "id": "666"}}).encode()
    status, _ = await eventsub.post_webhook(
        CALLBACK,
        subscription=subscription,
        secret=SECRET,
        message_id=message_id,
        timestamp=stamp,
        raw_body=tampered,
        signature=webhook_signature(SECRET, message_id, stamp, signed),
    )
    assert status == 403
    # No signature at all.
    status, _ = await eventsub.post_webhook(
        CALLBACK, subscription=subscription, event=event, secret=SECRET, signature=""
    )
    assert status == 403
    await _quiet(harness)
    assert announcements(fake_discord) == []
    assert _push(harness).handler.stats.received == 0
    assert _receiver(harness).stats().forged == 3
    # The control: the very same delivery, signed with the secret, is announced.
    status, _ = await eventsub.post_webhook(
        CALLBACK, subscription=subscription, secret=SECRET, message_id=message_id, timestamp=stamp, raw_body=signed
    )
    assert 200 <= status < 300
    [message] = await fake_discord.wait_for_messages(1, timeout=3)
    assert message.embeds[0]["title"].startswith("Forged?")


@pytest.mark.parametrize("age", [601.0, -601.0], ids=["stale", "from-the-future"])
async def test_a_delivery_outside_ten_minutes_is_refused(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch, age: float
) -> None:
    eventsub = fake_twitch.eventsub
    stream = fake_twitch.go_live("shroud", title="Replayed later", push=False)
    subscription = _subscription(fake_twitch, "shroud").to_json()
    event = _online_event(fake_twitch, stream, "shroud")
    status, _ = await eventsub.post_webhook(
        CALLBACK, subscription=subscription, event=event, secret=SECRET, timestamp=_stamp(time.time() - age)
    )
    assert 400 <= status < 500
    await _quiet(harness)
    assert announcements(fake_discord) == []
    assert _receiver(harness).stats().stale == 1
    # The control: the same, sent now.
    status, _ = await eventsub.post_webhook(CALLBACK, subscription=subscription, event=event, secret=SECRET)
    assert 200 <= status < 300
    await fake_discord.wait_for_messages(1, timeout=3)


async def test_a_replayed_message_id_is_acknowledged_and_acted_on_once(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    eventsub = fake_twitch.eventsub
    stream = fake_twitch.go_live("shroud", title="Said twice", push=False)
    subscription = _subscription(fake_twitch, "shroud").to_json()
    event = _online_event(fake_twitch, stream, "shroud")
    message_id, stamp = str(uuid.uuid4()), _stamp(time.time())
    first, _ = await eventsub.post_webhook(
        CALLBACK, subscription=subscription, event=event, secret=SECRET, message_id=message_id, timestamp=stamp
    )
    await fake_discord.wait_for_messages(1, timeout=3)
    again, _ = await eventsub.post_webhook(
        CALLBACK,
        subscription=subscription,
        event=event,
        secret=SECRET,
        message_id=message_id,
        timestamp=stamp,
        retry=1,
    )
    # Both acknowledged: Twitch must stop resending.
    assert 200 <= first < 300
    assert 200 <= again < 300
    await _quiet(harness)
    assert len(announcements(fake_discord)) == 1
    assert _push(harness).handler.stats.duplicates == 1


async def test_a_replay_arriving_while_the_first_is_processed_is_acted_on_once(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    """Both copies land before the first is announced (a slow /helix/channels holds it)."""
    eventsub = fake_twitch.eventsub
    fake_twitch.fail_next("/helix/channels", status=None, delay=0.3, times=2)
    stream = fake_twitch.go_live("shroud", title="Said twice, fast", push=False)
    subscription = _subscription(fake_twitch, "shroud").to_json()
    event = _online_event(fake_twitch, stream, "shroud")
    message_id, stamp = str(uuid.uuid4()), _stamp(time.time())
    statuses = await asyncio.gather(
        *(
            eventsub.post_webhook(
                CALLBACK,
                subscription=subscription,
                event=event,
                secret=SECRET,
                message_id=message_id,
                timestamp=stamp,
                retry=retry,
            )
            for retry in (0, 1)
        )
    )
    assert all(200 <= status < 300 for status, _ in statuses)
    await fake_discord.wait_for_messages(1, timeout=3)
    await _quiet(harness, 0.5)
    assert len(announcements(fake_discord)) == 1


async def test_the_same_stream_under_a_second_message_id_is_announced_once(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    fake_twitch.eventsub.duplicate_next(subscription_type="stream.online", same_id=False)
    fake_twitch.go_live("shroud", title="Once only")
    await fake_twitch.eventsub.flush_webhooks()
    deliveries = _attempts(fake_twitch, "delivery", "notification")
    assert len({a.message_id for a in deliveries}) == 2
    assert all(a.ok for a in deliveries)
    await fake_discord.wait_for_messages(1, timeout=3)
    await _quiet(harness)
    assert len(announcements(fake_discord)) == 1


# ------------------------------------------------------------------------------------------------- offline


async def test_offline_by_webhook_ends_the_card_at_once(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    fake_twitch.go_live("shroud", title="Short one", game_name="VALORANT")
    [message] = await fake_discord.wait_for_messages(1, timeout=3)
    assert message.embeds[0]["color"] != ENDED_COLOR
    cycles = _bot(harness).poller.cycles
    video = fake_twitch.go_offline("shroud")
    assert video is not None
    await harness.wait_for(lambda: bool(message.edits), "the card to be edited", timeout=3)
    await fake_twitch.eventsub.flush_webhooks()
    [offline] = [
        a
        for a in _attempts(fake_twitch, "delivery")
        if a.headers.get("Twitch-Eventsub-Subscription-Type") == "stream.offline"
    ]
    assert offline.ok
    assert message.content == "**shroud** was live on Twitch."
    [embed] = message.embeds
    assert embed["color"] == ENDED_COLOR
    assert embed["author"]["name"] == "shroud was live"
    assert embed["url"] == video.url
    assert _bot(harness).poller.cycles == cycles, "ended by a poll, not by the push"
    assert await _db(harness).live_streams() == {}
    await harness.poll()
    assert len(message.edits) == 1


# ---------------------------------------------------------------------------------------------- revocation


async def test_revocation_by_webhook_falls_back_to_polling(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    user_id = fake_twitch.user("shroud").id
    online = _subscription(fake_twitch, "shroud")
    fake_twitch.eventsub.revoke(online, status="user_removed")
    await fake_twitch.eventsub.flush_webhooks()
    [revocation] = _attempts(fake_twitch, "delivery", "revocation")
    assert revocation.ok, (revocation.status, revocation.error)
    push = _push(harness)

    async def recorded() -> bool:
        return (await _db(harness).push_states()).get(user_id) == "user_removed"

    await harness.eventually(recorded, "the revocation to be recorded as shroud's push state", timeout=3)
    assert not push.sync.push_covers(user_id)
    assert push.handler.stats.revocations == 1
    assert push.status().subscriptions.revoked == {"user_removed": 1}
    # No push for shroud any more (the fake sends nothing on a revoked subscription): a poll announces it.
    fake_twitch.go_live("shroud", title="Polled again", listed_after=0)
    await fake_twitch.eventsub.flush_webhooks()
    assert _attempts(fake_twitch, "delivery", "notification") == []
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, timeout=3)
    assert message.embeds[0]["title"].startswith("Polled again")


async def test_revoked_authorization_is_subscribed_again(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    """An app token needs no authorization for stream.online: the bot subscribes again and pushes resume."""
    user_id = fake_twitch.user("shroud").id
    revoked = _subscription(fake_twitch, "shroud")
    fake_twitch.eventsub.revoke(revoked, status="authorization_revoked")
    push = _push(harness)
    await harness.wait_for(lambda: push.handler.stats.revocations == 1, "the revocation to arrive", timeout=3)

    def subscribed_again() -> bool:
        subs = [
            s
            for s in fake_twitch.eventsub.subscriptions.values()
            if s.type == "stream.online" and s.broadcaster_user_id == user_id and s.status == "enabled"
        ]
        return len(subs) == 1 and subs[0].id != revoked.id and push.sync.push_covers(user_id)

    await harness.wait_for(subscribed_again, "a new stream.online subscription", timeout=3)
    fake_twitch.go_live("shroud", title="Pushed again")
    await fake_discord.wait_for_messages(1, timeout=3)
    assert await _db(harness).push_states() == {}


# ---------------------------------------------------------------------------------------------- robustness


async def test_an_oversized_body_is_refused_and_the_bot_carries_on(
    webhook_bot: WebhookBot, harness: BotHarness, fake_discord: FakeDiscord, fake_twitch: FakeTwitch
) -> None:
    eventsub = fake_twitch.eventsub
    subscription = _subscription(fake_twitch, "shroud").to_json()
    huge = b'{"subscription": {}, "event": {"pad": "' + b"x" * (64 * 1024) + b'"}}'
    status, _ = await eventsub.post_webhook(CALLBACK, subscription=subscription, secret=SECRET, raw_body=huge)
    assert status == 413
    # The same without a Content-Length (chunked): the receiver must stop reading, not buffer it all.

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * 4096

    async with aiohttp.ClientSession() as http:
        headers = {"Twitch-Eventsub-Message-Type": "notification", "Content-Type": "application/json"}
        async with http.post(webhook_bot.local_url, data=chunks(), headers=headers) as response:
            assert response.status == 413
    assert _receiver(harness).stats().too_large == 2
    assert announcements(fake_discord) == []
    # Fine afterwards: the HTTP server answers and a real go-live is pushed and announced.
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{webhook_bot.server.port}/healthz") as r:
        assert r.status in (200, 503)
        assert (await r.json())["status"] in ("ok", "unhealthy")
    fake_twitch.go_live("shroud", title="Still here")
    [message] = await fake_discord.wait_for_messages(1, timeout=3)
    assert message.embeds[0]["title"].startswith("Still here")
    await fake_twitch.eventsub.flush_webhooks()
    assert all(a.ok for a in _attempts(fake_twitch, "delivery"))
