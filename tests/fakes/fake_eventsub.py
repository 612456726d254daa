"""The EventSub half of the fake Twitch: conduits and shards, subscriptions with cost accounting, the
EventSub WebSocket server (welcome, keepalive, notification, reconnect, revocation, close codes 4000-4007)
and webhook delivery to conduit shards whose transport is a webhook.

It follows /work/shared/twitch-eventsub-facts.md (section numbers are cited in the docstrings as "§n").
Every deadline (10-s bind window, keepalives, 30-s reconnect grace, 72-h conduit expiry) is measured on
the FakeTwitch clock, so a test can inject ``ManualClock`` and call ``await fake.eventsub.tick()`` after
``clock.advance(…)`` instead of sleeping; a background ticker evaluates them on a real clock too.

Webhooks (§2, §4): a callback must be https on port 443, which a test cannot serve; as in a deployment behind
a TLS proxy, ``webhook_targets`` maps the public callback URL to the bot's local http://127.0.0.1:PORT URL
that the fake really POSTs to. PATCHing a shard to a webhook sends the ``webhook_callback_verification``
challenge (``auto_verify_webhooks``; off, a test calls ``verify_webhook_shard``); notifications and
revocations routed to an enabled webhook shard are POSTed with the Twitch-Eventsub-* headers and an HMAC
signature, retried (same message id, Retry header counting up) on a non-2xx or a timeout. Every POST is in
``webhook_attempts``; ``await flush_webhooks()`` waits for those in flight; ``post_webhook`` hand-crafts one
(forged signature, stale timestamp, replayed id). The drop / delay / duplicate faults apply to them too."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.fakes.fake_twitch import FakeStream, FakeTwitch, FakeUser

__all__ = [
    "CLOSE_CODES",
    "Conduit",
    "EventSubCall",
    "FakeEventSub",
    "ManualClock",
    "SentMessage",
    "Session",
    "Shard",
    "Subscription",
    "WebhookAttempt",
    "webhook_signature",
]

MAX_CONDUITS: Final = 5  # §1, §2 "5 enabled conduits per client"
MAX_SHARDS: Final = 20_000  # §1 "up to 20,000 shards per conduit"
DEFAULT_MAX_TOTAL_COST: Final = 10_000  # §1, §5
WEBSOCKET_MAX_TOTAL_COST: Final = 10  # §1 plain WebSocket, per client_id + user_id
WEBSOCKET_MAX_CONNECTIONS: Final = 3  # §1 per user token, connections with enabled subscriptions
WEBSOCKET_MAX_SUBS_PER_CONNECTION: Final = 300  # §1
MAX_SAME_TYPE_AND_CONDITION: Final = 3  # §1 cost rules
CONDUIT_EXPIRY_SECONDS: Final = 72 * 3600  # §2 "no shard reactivated after 72 hours"
BIND_WINDOW_SECONDS: Final = 10.0  # §KEY QUESTION, §3 "10 seconds from the time you receive the Welcome"
RECONNECT_GRACE_SECONDS: Final = 30.0  # §3 "Sent 30 s before the edge closes the connection"
WEBHOOK_TIMEOUT_SECONDS: Final = 3.0  # §4 "respond … within a few seconds"; no exact number documented [U]
WEBHOOK_RETRIES: Final = 4  # §4 schedule undocumented [U]; T4J: "typically 5 [attempts] within a few minutes"

# §4 request headers of a webhook delivery.
MESSAGE_ID: Final = "Twitch-Eventsub-Message-Id"
MESSAGE_RETRY: Final = "Twitch-Eventsub-Message-Retry"
MESSAGE_TYPE: Final = "Twitch-Eventsub-Message-Type"
MESSAGE_SIGNATURE: Final = "Twitch-Eventsub-Message-Signature"
MESSAGE_TIMESTAMP: Final = "Twitch-Eventsub-Message-Timestamp"
SUBSCRIPTION_TYPE: Final = "Twitch-Eventsub-Subscription-Type"
SUBSCRIPTION_VERSION: Final = "Twitch-Eventsub-Subscription-Version"

# §3 close-code table; the value is the shard / WebSocket-subscription status the close leaves behind (§2, §5).
CLOSE_CODES: Final[dict[int, tuple[str, str]]] = {
    4000: ("internal server error", "websocket_internal_error"),
    4001: ("client sent inbound traffic", "websocket_received_inbound_traffic"),
    4002: ("client failed ping-pong", "websocket_failed_ping_pong"),
    4003: ("connection unused", "websocket_connection_unused"),
    4004: ("reconnect grace time expired", "websocket_failed_to_reconnect"),
    4005: ("network timeout", "websocket_network_timeout"),
    4006: ("network error", "websocket_network_error"),
    4007: ("invalid reconnect", "websocket_failed_to_reconnect"),
}

# §6: the types this fake knows, with their version, condition keys and whether they cost 1 for a user who
# has not authorized the app (§1 cost rules; stream.offline by the facts file's "strong inference").
_TYPES: Final[dict[tuple[str, str], tuple[tuple[str, ...], bool]]] = {
    ("stream.online", "1"): (("broadcaster_user_id",), True),
    ("stream.offline", "1"): (("broadcaster_user_id",), True),
    ("channel.update", "2"): (("broadcaster_user_id",), True),
    ("conduit.shard.disabled", "1"): (("client_id",), False),  # cost 0 per the example (§2, [U])
}
_STREAM_ONLINE_TYPES: Final = ("live", "playlist", "watch_party", "premiere", "rerun")  # §6
_SUB_STATUSES: Final = (  # §5 "Subscription statuses"
    "enabled",
    "webhook_callback_verification_pending",
    "webhook_callback_verification_failed",
    "notification_failures_exceeded",
    "authorization_revoked",
    "moderator_removed",
    "user_removed",
    "chat_user_banned",
    "version_removed",
    "beta_maintenance",
    "websocket_disconnected",
    "websocket_failed_ping_pong",
    "websocket_received_inbound_traffic",
    "websocket_connection_unused",
    "websocket_internal_error",
    "websocket_network_timeout",
    "websocket_network_error",
    "websocket_failed_to_reconnect",
    "guest_star_moderator_removed",
    "conduit_deleted",
)
_SHARD_STATUSES: Final = (  # §2 "Shard statuses"
    "enabled",
    "webhook_callback_verification_pending",
    "webhook_callback_verification_failed",
    "notification_failures_exceeded",
    "websocket_disconnected",
    "websocket_failed_ping_pong",
    "websocket_received_inbound_traffic",
    "websocket_internal_error",
    "websocket_network_timeout",
    "websocket_network_error",
    "websocket_failed_to_reconnect",
)
_REVOCATION_STATUSES: Final = ("user_removed", "authorization_revoked", "version_removed")  # §3 revocation


class ManualClock:
    """A clock a test moves by hand: ``FakeTwitch(clock=clock)``, then ``clock.advance(11)`` and
    ``await fake.eventsub.tick()``. Starts at the real time so timestamps look sane."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass(slots=True, eq=False)
class Shard:
    id: str
    status: str = "websocket_disconnected"  # an unassigned shard is not enabled [U: undocumented]
    method: Literal["websocket", "webhook"] | None = None
    session_id: str | None = None
    connected_at: float | None = None
    disconnected_at: float | None = None
    callback: str | None = None
    secret: str | None = field(default=None, repr=False)
    challenge: str | None = field(default=None, repr=False)  # the verification in flight, if any
    failed_deliveries: int = 0  # webhook messages in a row that exhausted their retries

    def to_json(self) -> dict[str, Any]:
        if self.method == "webhook":
            transport: dict[str, Any] = {"method": "webhook", "callback": self.callback}
        else:
            transport = {"method": "websocket", "session_id": self.session_id or ""}
            if self.connected_at is not None:
                transport["connected_at"] = _rfc3339(self.connected_at)
            if self.disconnected_at is not None:
                transport["disconnected_at"] = _rfc3339(self.disconnected_at)
        return {"id": self.id, "status": self.status, "transport": transport}


@dataclass(slots=True, eq=False)
class Conduit:
    id: str
    shard_count: int
    created_at: float
    shards: dict[str, Shard] = field(default_factory=dict)
    no_enabled_shard_since: float | None = None  # for the 72-h rule (§2)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "shard_count": self.shard_count}

    def shard(self, index: int) -> Shard:
        return self.shards.setdefault(str(index), Shard(str(index)))


@dataclass(slots=True, eq=False)
class Subscription:
    id: str
    type: str
    version: str
    condition: dict[str, str]
    transport: dict[str, str]  # as stored: conduit {method, conduit_id}; websocket {method, session_id}; webhook
    cost: int
    created_at: float
    status: str = "enabled"
    owner_user_id: str | None = None  # the user token's user, for plain WebSocket subscriptions

    @property
    def method(self) -> str:
        return self.transport["method"]

    @property
    def broadcaster_user_id(self) -> str | None:
        return self.condition.get("broadcaster_user_id")

    def to_json(self) -> dict[str, Any]:
        transport = dict(self.transport)
        transport.pop("secret", None)  # never echoed
        return {
            "id": self.id,
            "status": self.status,
            "type": self.type,
            "version": self.version,
            "condition": dict(self.condition),
            "created_at": _rfc3339(self.created_at),
            "transport": transport,
            "cost": self.cost,
        }


@dataclass(slots=True, eq=False)
class Session:
    """One EventSub WebSocket connection. ``state``: "connected" (welcomed), "reconnecting" (a
    session_reconnect went out), "superseded" (its successor was welcomed), "closed"."""

    id: str
    keepalive_timeout_seconds: int
    connected_at: float
    ws: web.WebSocketResponse = field(repr=False)
    state: Literal["connected", "reconnecting", "superseded", "closed"] = "connected"
    used: bool = False  # bound to a shard or given a WebSocket subscription (the 4003 rule, §3)
    keepalive_enabled: bool = True
    last_sent_at: float = 0.0
    reconnect_deadline: float | None = None
    reconnect_id: str | None = None
    successor: str | None = None
    predecessor: str | None = None
    ping_sent_at: float | None = None
    pongs: int = 0
    closing: bool = False  # a close is queued
    close_code: int | None = None  # the code of the close frame, whoever sent it
    closed_by: Literal["server", "client", "network"] | None = None
    closed_at: float | None = None
    sent: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue, repr=False)
    _writer: asyncio.Task[None] | None = field(default=None, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def live(self) -> bool:
        """Receives notifications: welcomed and not yet handed over or closed."""
        return self.state in ("connected", "reconnecting")


@dataclass(slots=True)
class SentMessage:
    session_id: str
    message: dict[str, Any]
    at: float

    @property
    def type(self) -> str:
        return str(self.message["metadata"]["message_type"])

    @property
    def message_id(self) -> str:
        return str(self.message["metadata"]["message_id"])


@dataclass(slots=True)
class WebhookAttempt:
    """One POST the fake made (or could not make) to a webhook callback. ``callback`` is the public https URL,
    ``target`` the local URL ``webhook_targets`` maps it to (None: unmapped, nothing was sent); ``status`` is
    None when no answer came (unmapped, refused, timed out) and ``error`` says why. ``origin``: a routed
    "delivery", a shard's "verification" challenge, or a "manual" one from ``post_webhook``."""

    callback: str
    target: str | None
    headers: dict[str, str]
    body: bytes
    origin: Literal["delivery", "verification", "manual"]
    at: float  # FakeTwitch clock
    status: int | None = None
    response: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def message_id(self) -> str:
        return self.headers[MESSAGE_ID]

    @property
    def message_type(self) -> str:
        return self.headers[MESSAGE_TYPE]

    @property
    def retry(self) -> int:
        return int(self.headers[MESSAGE_RETRY])

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class EventSubCall:
    """One Helix EventSub call: the JSON body sent and the answer (``token`` is "app", "user:<id>" or None)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any
    status: int
    response: Any
    token: str | None


@dataclass(slots=True)
class _Fault:
    kind: Literal["drop", "delay", "duplicate"]
    subscription_type: str | None
    times: int | None
    delay: float = 0.0
    copies: int = 2
    same_id: bool = True


@dataclass(slots=True)
class _Close:
    code: int
    reason: str


class _Problem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FakeEventSub:
    """EventSub for a FakeTwitch. Knobs (plain attributes): ``max_total_cost``, ``bind_window``,
    ``reconnect_grace``, ``keepalive_lead``, ``pong_timeout``, ``ping_interval``, ``conduit_expiry``,
    ``reconnect_moves_shard``, ``deleted_conduit_status``, ``auth_mismatch_status``, page sizes; for webhooks
    ``webhook_targets``, ``auto_verify_webhooks``, ``webhook_timeout``, ``webhook_retries``,
    ``webhook_retry_backoff`` and ``webhook_failures_to_disable`` (real seconds, not the clock)."""

    def __init__(self, twitch: FakeTwitch, *, tick_interval: float = 0.05) -> None:
        self.twitch = twitch
        self.tick_interval = tick_interval
        self.max_total_cost = DEFAULT_MAX_TOTAL_COST
        self.websocket_max_total_cost = WEBSOCKET_MAX_TOTAL_COST
        self.max_conduits = MAX_CONDUITS
        self.bind_window = BIND_WINDOW_SECONDS
        self.reconnect_grace = RECONNECT_GRACE_SECONDS
        self.conduit_expiry = CONDUIT_EXPIRY_SECONDS
        # A keepalive goes out once a session has been idle for keepalive_timeout - keepalive_lead seconds, so
        # a client that waits exactly keepalive_timeout never times out on a healthy link (timing [U]).
        self.keepalive_lead = 1.0
        self.ping_interval: float | None = None  # server WebSocket pings; Twitch's interval is undocumented
        self.pong_timeout = 5.0  # [U]
        self.reconnect_moves_shard = True  # [U] §3: TwitchIO assumes a handover carries the shard along
        self.deleted_conduit_status = "conduit_deleted"  # [U] §5: library-documented only
        self.auth_mismatch_status = 400  # §KEY QUESTION [I] 400 "invalid transport and auth combination"
        self.subscriptions_page_size = 100  # §5 "Page size is undetermined"
        self.shards_page_size = 100
        self.stream_online_id_matches_helix = True  # §6 [U] highly likely; set False to test the fallback
        # Webhooks (§2, §4). The public https callback -> the local http://127.0.0.1:PORT/… the fake POSTs to.
        self.webhook_targets: dict[str, str] = {}
        self.auto_verify_webhooks = True  # PATCH to a webhook sends the challenge; False: verify_webhook_shard
        self.webhook_timeout = WEBHOOK_TIMEOUT_SECONDS  # per attempt; no answer in time counts as a failure
        self.webhook_retries = WEBHOOK_RETRIES  # resends after the first attempt, same message id
        self.webhook_retry_backoff = 0.02  # seconds before the first resend, doubled for each next one [U]
        # After this many messages in a row exhausted their retries the shard becomes
        # notification_failures_exceeded (§2, §4 "after an extended outage"); None: never.
        self.webhook_failures_to_disable: int | None = None

        self.conduits: dict[str, Conduit] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.sessions: dict[str, Session] = {}
        self.sent: list[SentMessage] = []  # every message written (or queued) to any session, in order
        self.dropped: list[tuple[str, dict[str, Any]]] = []  # (reason, message) never delivered
        self.webhook_deliveries: list[tuple[str, str, dict[str, Any]]] = []  # (conduit, shard, message) 2xx'd
        self.webhook_attempts: list[WebhookAttempt] = []  # every webhook POST, retries and challenges included
        self.calls: list[EventSubCall] = []
        self.deleted_conduits: list[str] = []

        self._faults: list[_Fault] = []
        self._reconnects: dict[str, str] = {}  # reconnect_id -> old session id
        self._by_key: dict[tuple[str, str], list[Subscription]] = {}
        self._offline_ids = itertools.count(1)
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._webhook_tasks: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None

    # -------------------------------------------------------------------------------------- lifecycle

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("GET", "/ws", self._ws_handler)
        for method in ("GET", "POST", "PATCH", "DELETE"):
            router.add_route(method, "/helix/eventsub/conduits", self._conduits)
        for method in ("GET", "PATCH"):
            router.add_route(method, "/helix/eventsub/conduits/shards", self._shards)
        for method in ("GET", "POST", "DELETE"):
            router.add_route(method, "/helix/eventsub/subscriptions", self._subscriptions)

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        if self._http is not None:
            await self._http.close()
            self._http = None
        for session in list(self.sessions.values()):
            if session.state != "closed":
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.ws.close(code=1001, message=b"server shutting down"), 0.5)
            if session._writer is not None:
                session._writer.cancel()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.twitch.port}/ws"

    # ------------------------------------------------------------------------------- world → events

    def stream_online(self, user: FakeUser, stream: FakeStream, online_type: str = "live") -> None:
        """§6 stream.online v1; called by FakeTwitch.go_live."""
        if online_type not in _STREAM_ONLINE_TYPES:
            raise ValueError(f"stream.online type must be one of {_STREAM_ONLINE_TYPES}")
        stream_id = stream.id if self.stream_online_id_matches_helix else f"es{stream.id}"
        event = {
            "id": stream_id,
            **_broadcaster(user),
            "type": online_type,
            "started_at": _rfc3339(stream.started_at.timestamp(), digits=3),
        }
        self._emit("stream.online", user.id, event)

    def stream_offline(self, user: FakeUser) -> None:
        """§6 stream.offline v1 (no stream id); called by FakeTwitch.go_offline."""
        self._emit("stream.offline", user.id, _broadcaster(user))

    def channel_update(
        self,
        user_id_or_login: str,
        *,
        title: str,
        category_id: str,
        category_name: str,
        language: str = "en",
        content_classification_labels: Iterable[str] = (),
    ) -> None:
        """§6 channel.update v2, always pushed; a test can call it for an offline channel (it fires while
        offline too). The channel information (/helix/channels, and a live stream) changes to match, as with
        ``FakeTwitch.update_channel``, which pushes only on a real change."""
        user = self.twitch.update_channel(
            user_id_or_login,
            title=title,
            game_id=category_id,
            game_name=category_name,
            language=language,
            content_classification_labels=content_classification_labels,
            push=False,
        )
        self.push_channel_update(user)

    def push_channel_update(self, user: FakeUser) -> None:
        """§6 channel.update v2 with the channel's current information; called by FakeTwitch.update_channel."""
        event = {
            **_broadcaster(user),
            "title": user.title,
            "language": user.broadcaster_language,
            "category_id": user.game_id,
            "category_name": user.game_name,
            "content_classification_labels": list(user.content_classification_labels),
        }
        self._emit("channel.update", user.id, event)

    # ---------------------------------------------------------------------------------- test controls

    def drop_next(self, subscription_type: str | None = None, times: int | None = 1) -> None:
        """The next matching notification(s) are never sent (recorded in ``dropped``)."""
        self._faults.append(_Fault("drop", subscription_type, times))

    def delay_next(self, seconds: float, subscription_type: str | None = None, times: int | None = 1) -> None:
        """The next matching notification(s) go out ``seconds`` of real time late."""
        self._faults.append(_Fault("delay", subscription_type, times, delay=seconds))

    def duplicate_next(
        self, subscription_type: str | None = None, *, copies: int = 2, same_id: bool = True, times: int | None = 1
    ) -> None:
        """At-least-once delivery (§7): the next matching notification is sent ``copies`` times, with the
        same message_id (documented resend) or, ``same_id=False``, fresh ids (observed [I], §7)."""
        self._faults.append(_Fault("duplicate", subscription_type, times, copies=copies, same_id=same_id))

    def resend(self, message_id: str) -> None:
        """Send an earlier notification again, same message_id, to the session now serving its shard."""
        original = next(m for m in self.sent if m.message_id == message_id)
        sub = self.subscriptions[original.message["payload"]["subscription"]["id"]]
        key = sub.broadcaster_user_id or sub.condition.get("conduit_id") or sub.id
        self._route(sub, key, dict(original.message), reason_if_dropped="resend")

    def send_reconnect(self, session: Session | str) -> str:
        """§3 session_reconnect: returns the reconnect_url. The old socket keeps working until the new
        one is welcomed; 4004 after ``reconnect_grace`` if the client is still there."""
        old = self._session(session)
        if not old.live:
            raise ValueError(f"session {old.id} is {old.state}")
        reconnect_id = secrets.token_urlsafe(12)
        old.state = "reconnecting"
        old.reconnect_id = reconnect_id
        old.reconnect_deadline = self.twitch.clock() + self.reconnect_grace
        self._reconnects[reconnect_id] = old.id
        url = f"{self.ws_url}?reconnect_id={reconnect_id}"
        payload = {
            "session": {
                "id": old.id,
                "status": "reconnecting",
                "keepalive_timeout_seconds": None,
                "reconnect_url": url,
                "connected_at": _rfc3339(old.connected_at),
            }
        }
        self._enqueue(old, _envelope("session_reconnect", payload, self.twitch.clock()))
        return url

    async def close_session(self, session: Session | str, code: int = 4006) -> None:
        """Close a session from the server side with a §3 close code (4000-4007), after what is queued."""
        target = self._session(session)
        if code not in CLOSE_CODES:
            raise ValueError(f"close code must be one of {sorted(CLOSE_CODES)}")
        self._close(target, code)
        await self.flush()

    def revoke(self, subscription: Subscription | str, status: str = "authorization_revoked") -> None:
        """§3/§4 revocation: the subscription takes ``status`` and one revocation message goes out."""
        sub = subscription if isinstance(subscription, Subscription) else self.subscriptions[subscription]
        if status not in (*_REVOCATION_STATUSES, "notification_failures_exceeded", "moderator_removed"):
            raise ValueError(f"not a revocation status: {status}")
        was_enabled = sub.status == "enabled"
        sub.status = status
        if was_enabled:
            message = _envelope("revocation", {"subscription": sub.to_json()}, self.twitch.clock(), sub)
            self._route(sub, sub.broadcaster_user_id or sub.id, message, reason_if_dropped="revocation")

    def set_keepalive(self, session: Session | str, *, enabled: bool) -> None:
        """Stop (or resume) keepalives on one session, to exercise the client's watchdog."""
        self._session(session).keepalive_enabled = enabled

    async def ping(self, session: Session | str) -> None:
        """Send a WebSocket Ping; no Pong within ``pong_timeout`` closes the session 4002 (§3)."""
        target = self._session(session)
        target.ping_sent_at = self.twitch.clock()
        await target.ws.ping(b"fake-twitch")

    def verify_webhook_shard(self, conduit_id: str, shard_id: str, *, ok: bool = True) -> Shard:
        """Finish a webhook shard's callback verification by hand: for ``auto_verify_webhooks = False`` (no
        challenge is sent then), or to overrule a challenge still in flight (its answer is then ignored)."""
        shard = self.conduits[conduit_id].shards[shard_id]
        if shard.status != "webhook_callback_verification_pending":
            raise ValueError(f"shard {shard_id} is {shard.status}")
        shard.challenge = None
        self._set_shard_status(
            self.conduits[conduit_id], shard, "enabled" if ok else "webhook_callback_verification_failed"
        )
        return shard

    def shard_for(self, conduit_id: str, key: str) -> str:
        """The shard id notifications for ``key`` (a broadcaster id) go to first (§2 "hashing mechanism")."""
        return str(zlib.crc32(key.encode()) % self.conduits[conduit_id].shard_count)

    def session(self, session_id: str | None = None) -> Session:
        """A session by id, or the only live one."""
        if session_id is not None:
            return self.sessions[session_id]
        live = [s for s in self.sessions.values() if s.live]
        if len(live) != 1:
            raise LookupError(f"{len(live)} live sessions")
        return live[0]

    def messages(self, message_type: str | None = None, session: Session | str | None = None) -> list[SentMessage]:
        sid = None if session is None else self._session(session).id
        return [m for m in self.sent if (message_type in (None, m.type)) and (sid is None or m.session_id == sid)]

    async def tick(self) -> None:
        """Evaluate every deadline against the clock now, then wait until what it caused is written."""
        self._check_deadlines()
        await self.flush()

    async def flush(self) -> None:
        """Wait until every queued message (and queued close) has been written."""
        await asyncio.gather(*(s._queue.join() for s in self.sessions.values() if s._writer is not None))

    async def flush_webhooks(self) -> None:
        """Wait until every webhook POST in flight is finished: verification challenges, and deliveries with
        all their retries (a ``delay_next`` delivery still waiting out its delay is not in flight yet)."""
        while self._webhook_tasks:
            await asyncio.gather(*list(self._webhook_tasks), return_exceptions=True)

    async def post_webhook(
        self,
        callback_url: str,
        *,
        message_type: str = "notification",
        subscription: Mapping[str, Any],
        event: Mapping[str, Any] | None = None,
        secret: str,
        message_id: str | None = None,
        timestamp: str | float | None = None,
        signature: str | None = None,
        raw_body: bytes | str | None = None,
        retry: int = 0,
        challenge: str | None = None,
    ) -> tuple[int, str]:
        """Send one hand-crafted webhook request through ``webhook_targets``, as Twitch (or a forger) would:
        the body is ``raw_body`` verbatim, else ``{"subscription", "event"}`` (plus ``challenge`` if given);
        ``message_id`` (default: a fresh one; reuse one to replay), ``timestamp`` (RFC 3339 text as is, or a
        clock value; default: now), ``signature`` (default: the correct §4 HMAC with ``secret``). Returns the
        answer's (status, text); raises ConnectionError when none came. Recorded as a "manual" attempt."""
        if raw_body is None:
            payload: dict[str, Any] = {"subscription": dict(subscription)}
            if event is not None:
                payload["event"] = dict(event)
            if challenge is not None:
                payload["challenge"] = challenge
            body = json.dumps(payload).encode()
        else:
            body = raw_body.encode() if isinstance(raw_body, str) else raw_body
        if timestamp is None:
            timestamp = self.twitch.clock()
        stamp = timestamp if isinstance(timestamp, str) else _rfc3339(timestamp)
        headers = _webhook_headers(
            secret,
            message_id or str(uuid.uuid4()),
            retry,
            message_type,
            stamp,
            body,
            subscription.get("type"),
            subscription.get("version"),
        )
        if signature is not None:
            headers[MESSAGE_SIGNATURE] = signature
        attempt = await self._post_webhook(callback_url, headers, body, "manual")
        if attempt.status is None:
            raise ConnectionError(attempt.error)
        return attempt.status, attempt.response

    # ---------------------------------------------------------------------------------- WebSocket side

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        keepalive = self._keepalive_param(request)
        if isinstance(keepalive, web.Response):
            return keepalive
        reconnect_id = request.query.get("reconnect_id")
        ws = web.WebSocketResponse(autoping=False, timeout=2.0)
        await ws.prepare(request)
        now = self.twitch.clock()
        old: Session | None = None
        if reconnect_id is not None:
            old_id = self._reconnects.pop(reconnect_id, None)
            old = self.sessions.get(old_id) if old_id else None
            if old is None or old.state != "reconnecting":
                await ws.close(code=4007, message=b"invalid reconnect")  # §3
                return ws
            keepalive = old.keepalive_timeout_seconds
        session = Session(id=_session_id(), keepalive_timeout_seconds=keepalive, connected_at=now, ws=ws)
        session.last_sent_at = now
        self.sessions[session.id] = session
        session._writer = asyncio.create_task(self._write_forever(session))
        welcome = {
            "session": {
                "id": session.id,
                "status": "connected",
                "connected_at": _rfc3339(now),
                "keepalive_timeout_seconds": keepalive,
                "reconnect_url": None,
            }
        }
        self._enqueue(session, _envelope("session_welcome", welcome, now))
        if old is not None:
            self._hand_over(old, session)
        try:
            await self._read_forever(session)
        finally:
            self._closed(session)
        return ws

    def _keepalive_param(self, request: web.Request) -> int | web.Response:
        raw = request.query.get("keepalive_timeout_seconds")
        if raw is None:
            return 10
        try:
            value = float(raw)
        except ValueError:
            # Undocumented [U]; Twitch clamps numeric values only (§3).
            return web.Response(status=400, text="invalid keepalive_timeout_seconds")
        return min(600, max(10, round(value)))  # §3 "will return the nearest acceptable value"

    async def _read_forever(self, session: Session) -> None:
        ws = session.ws
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                self._close(session, 4001)  # §3 "supports only outgoing messages"
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                session.pongs += 1
                session.ping_sent_at = None
            elif msg.type == WSMsgType.CLOSE:
                if session.closed_by is None:
                    session.closed_by, session.close_code = "client", int(msg.data or 1005)
                await ws.close()
                return
            else:  # CLOSING / CLOSED / ERROR: the connection is gone
                if session.closed_by is None:
                    session.closed_by = "network"
                return

    async def _write_forever(self, session: Session) -> None:
        while True:
            item = await session._queue.get()
            try:
                if session.state == "closed" or session.ws.closed:
                    continue
                if isinstance(item, _Close):
                    if session.closed_by is None:
                        session.closed_by, session.close_code = "server", item.code
                    await session.ws.close(code=item.code, message=item.reason.encode())
                else:
                    await session.ws.send_str(item)
            except (ConnectionError, RuntimeError):
                pass
            finally:
                session._queue.task_done()

    def _enqueue(self, session: Session, message: dict[str, Any]) -> None:
        now = self.twitch.clock()
        session.last_sent_at = now
        session.sent.append(message)
        self.sent.append(SentMessage(session.id, message, now))
        session._queue.put_nowait(json.dumps(message))

    def _close(self, session: Session, code: int) -> None:
        if session.state != "closed" and not session.closing:
            session.closing = True
            session._queue.put_nowait(_Close(code, CLOSE_CODES.get(code, ("closed", ""))[0]))

    def _hand_over(self, old: Session, new: Session) -> None:
        """§3: the new connection "will include the same subscriptions that the old connection had"."""
        old.state = "superseded"
        old.successor, new.predecessor = new.id, old.id
        for sub in self.subscriptions.values():
            if sub.method == "websocket" and sub.transport.get("session_id") == old.id:
                sub.transport["session_id"] = new.id
                new.used = True
        if self.reconnect_moves_shard:
            for conduit in self.conduits.values():
                for shard in conduit.shards.values():
                    if shard.method == "websocket" and shard.session_id == old.id:
                        shard.session_id, shard.connected_at = new.id, new.connected_at
                        new.used = True

    def _closed(self, session: Session) -> None:
        was = session.state
        session.state = "closed"
        session.closed_at = self.twitch.clock()
        if session.reconnect_id is not None:
            self._reconnects.pop(session.reconnect_id, None)
        session._done.set()
        if was == "superseded":
            return  # handed over: its shards and subscriptions live on in the successor
        if session.closed_by == "server" and session.close_code in CLOSE_CODES:
            status = CLOSE_CODES[session.close_code][1]
        elif session.closed_by == "client":
            status = "websocket_disconnected"  # §2 "The client closed the connection"
        else:
            status = "websocket_network_error"  # [U] a TCP drop without a close frame
        for sub in self.subscriptions.values():
            if sub.method == "websocket" and sub.transport.get("session_id") == session.id and sub.status == "enabled":
                sub.status = status  # §1 plain WS: all its subscriptions are disabled, no replay
                sub.transport["disconnected_at"] = _rfc3339(session.closed_at)
        shard_status = "websocket_failed_to_reconnect" if status == "websocket_connection_unused" else status
        for conduit in self.conduits.values():
            for shard in conduit.shards.values():
                if shard.method == "websocket" and shard.session_id == session.id and shard.status == "enabled":
                    shard.disconnected_at = session.closed_at
                    self._set_shard_status(conduit, shard, shard_status)

    def _check_deadlines(self) -> None:
        now = self.twitch.clock()
        for session in list(self.sessions.values()):
            if session.state == "closed" or session.closing:
                continue
            if not session.used and session.live and now - session.connected_at >= self.bind_window:
                self._close(session, 4003)  # §3 "Connection unused"
            elif session.reconnect_deadline is not None and now >= session.reconnect_deadline:
                self._close(session, 4004)  # §3 reconnect grace expired
            elif session.ping_sent_at is not None and now - session.ping_sent_at >= self.pong_timeout:
                self._close(session, 4002)
            elif (
                session.keepalive_enabled
                and now - session.last_sent_at >= session.keepalive_timeout_seconds - self.keepalive_lead
            ):
                self._enqueue(session, _envelope("session_keepalive", {}, now))  # §3
            if (
                self.ping_interval is not None
                and session.ping_sent_at is None
                and now - session.connected_at >= self.ping_interval * (session.pongs + 1)
            ):
                session.ping_sent_at = now
                self._spawn(session.ws.ping(b"fake-twitch"))
        self._expire_conduits(now)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            with contextlib.suppress(Exception):
                self._check_deadlines()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _session(self, session: Session | str) -> Session:
        return session if isinstance(session, Session) else self.sessions[session]

    # -------------------------------------------------------------------------------------- delivery

    def _emit(self, sub_type: str, broadcaster_id: str, event: dict[str, Any]) -> None:
        for sub in list(self._by_key.get((sub_type, broadcaster_id), ())):
            if sub.status != "enabled":
                continue
            message = _envelope(
                "notification", {"subscription": sub.to_json(), "event": event}, self.twitch.clock(), sub
            )
            self._deliver(sub, broadcaster_id, message)

    def _deliver(self, sub: Subscription, key: str, message: dict[str, Any]) -> None:
        fault = self._take_fault(sub.type)
        if fault is None:
            self._route(sub, key, message)
        elif fault.kind == "drop":
            self.dropped.append(("injected drop", message))
        elif fault.kind == "delay":
            self._spawn(self._later(fault.delay, sub, key, message))
        else:
            for copy in range(fault.copies):
                again = message
                if copy and not fault.same_id:
                    again = {**message, "metadata": {**message["metadata"], "message_id": str(uuid.uuid4())}}
                self._route(sub, key, again)

    async def _later(self, seconds: float, sub: Subscription, key: str, message: dict[str, Any]) -> None:
        await asyncio.sleep(seconds)
        self._route(sub, key, message)

    def _route(self, sub: Subscription, key: str, message: dict[str, Any], reason_if_dropped: str = "") -> None:
        if sub.method == "websocket":
            session = self.sessions.get(sub.transport.get("session_id", ""))
            if session is not None and session.live:
                self._enqueue(session, message)
            else:
                self.dropped.append((reason_if_dropped or "websocket session gone", message))
            return
        conduit = self.conduits.get(sub.transport.get("conduit_id", ""))
        if sub.method != "conduit" or conduit is None:
            self.dropped.append((reason_if_dropped or "no conduit", message))
            return
        # §2: the hashed shard first; if it is disabled, one other shard; if that is disabled too, drop.
        first = zlib.crc32(key.encode()) % conduit.shard_count
        candidates = [first] if conduit.shard_count == 1 else [first, (first + 1) % conduit.shard_count]
        for index in candidates:
            shard = conduit.shards.get(str(index))
            if shard is None or shard.status != "enabled":
                continue
            if shard.method == "webhook":
                # §2: a failed webhook delivery "will not be resent to another shard", only retried.
                self._spawn_webhook(self._deliver_webhook(conduit, shard, message))
                return
            session = self.sessions.get(shard.session_id or "")
            if session is not None and session.live:
                self._enqueue(session, message)
                return
        self.dropped.append((reason_if_dropped or "shards disabled", message))

    def _take_fault(self, sub_type: str) -> _Fault | None:
        for fault in self._faults:
            if fault.subscription_type in (None, sub_type):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    # ---------------------------------------------------------------------------------------- webhooks

    def _spawn_webhook(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        self._webhook_tasks.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(self._webhook_tasks.discard)

    async def _verify_webhook_shard(self, conduit: Conduit, shard: Shard, challenge: str) -> None:
        """§2 "Verifying a conduit": the challenge carries ``conduit_shard`` (no subscription). Only a 200 whose
        body is the raw challenge, with a matching Content-Length, enables the shard; one attempt [U]."""
        await asyncio.sleep(0)  # the handler's 202 goes out first
        if not self._verifying(conduit, shard, challenge):
            return  # a later update of the same shard (even in the same PATCH) superseded this one
        callback, secret = shard.callback or "", shard.secret or ""
        payload = {"challenge": challenge, "conduit_shard": {"conduit_id": conduit.id, "shard": shard.id}}
        body = json.dumps(payload).encode()
        stamp = _rfc3339(self.twitch.clock())
        # No subscription, so no Subscription-Type/-Version headers [U: undocumented for conduit shards].
        headers = _webhook_headers(secret, str(uuid.uuid4()), 0, "webhook_callback_verification", stamp, body)
        attempt = await self._post_webhook(callback, headers, body, "verification")
        if not self._verifying(conduit, shard, challenge):
            return  # re-PATCHed, verified by hand, scaled away or deleted meanwhile
        shard.challenge = None
        length = attempt.response_headers.get("Content-Length")
        passed = attempt.status == 200 and attempt.response == challenge and length == str(len(challenge.encode()))
        self._set_shard_status(conduit, shard, "enabled" if passed else "webhook_callback_verification_failed")

    def _verifying(self, conduit: Conduit, shard: Shard, challenge: str) -> bool:
        return (
            self.conduits.get(conduit.id) is conduit
            and conduit.shards.get(shard.id) is shard
            and shard.challenge == challenge
            and shard.status == "webhook_callback_verification_pending"
        )

    async def _deliver_webhook(self, conduit: Conduit, shard: Shard, message: dict[str, Any]) -> None:
        """§4: the metadata goes in headers, the body is the payload (``{"subscription", "event"}``, or only
        ``subscription`` for a revocation). A non-2xx or no answer is retried with the same message id and
        timestamp [U], the Retry header counting up; after the last failure the message is dropped."""
        callback, secret = shard.callback or "", shard.secret or ""
        metadata = message["metadata"]
        body = json.dumps(message["payload"]).encode()
        for retry in range(self.webhook_retries + 1):
            if retry:
                await asyncio.sleep(self.webhook_retry_backoff * 2 ** (retry - 1))
            headers = _webhook_headers(
                secret,
                metadata["message_id"],
                retry,
                metadata["message_type"],
                metadata["message_timestamp"],
                body,
                metadata.get("subscription_type"),
                metadata.get("subscription_version"),
            )
            attempt = await self._post_webhook(callback, headers, body, "delivery")
            if attempt.ok:
                shard.failed_deliveries = 0
                self.webhook_deliveries.append((conduit.id, shard.id, message))
                return
        self.dropped.append(("webhook delivery failed", message))
        shard.failed_deliveries += 1
        limit = self.webhook_failures_to_disable
        if (
            limit is not None
            and shard.failed_deliveries >= limit
            and shard.status == "enabled"
            and shard.callback == callback
            and conduit.shards.get(shard.id) is shard
        ):
            self._set_shard_status(conduit, shard, "notification_failures_exceeded")

    async def _post_webhook(
        self,
        callback: str,
        headers: dict[str, str],
        body: bytes,
        origin: Literal["delivery", "verification", "manual"],
    ) -> WebhookAttempt:
        """One POST to the local target of ``callback``; redirects are not followed (§1)."""
        target = self.webhook_targets.get(callback)
        attempt = WebhookAttempt(callback, target, dict(headers), body, origin, self.twitch.clock())
        self.webhook_attempts.append(attempt)
        if target is None:
            attempt.error = "no webhook target for this callback"
            return attempt
        if not _loopback(target):
            attempt.error = "webhook targets must be on 127.0.0.1"
            return attempt
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(trust_env=False)
        try:
            async with self._http.post(
                target,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as response:
                text = await response.text(errors="replace")
                attempt.response_headers = dict(response.headers)
                attempt.response, attempt.status = text, response.status
        except TimeoutError:
            attempt.error = "timeout"
        except aiohttp.ClientError as exc:
            attempt.error = f"{type(exc).__name__}: {exc}"
        return attempt

    # ---------------------------------------------------------------------------------- conduit state

    def _set_shard_status(self, conduit: Conduit, shard: Shard, status: str) -> None:
        previous, shard.status = shard.status, status
        now = self.twitch.clock()
        if any(s.status == "enabled" for s in conduit.shards.values()):
            conduit.no_enabled_shard_since = None
        elif conduit.no_enabled_shard_since is None:
            conduit.no_enabled_shard_since = now
        if previous == "enabled" and status != "enabled":
            event = {
                "conduit_id": conduit.id,
                "shard_id": shard.id,
                "status": status,
                "transport": shard.to_json()["transport"],
            }
            for sub in list(self.subscriptions.values()):
                wanted = sub.condition.get("conduit_id")
                if sub.type == "conduit.shard.disabled" and sub.status == "enabled" and wanted in (None, conduit.id):
                    message = _envelope("notification", {"subscription": sub.to_json(), "event": event}, now, sub)
                    self._deliver(sub, conduit.id, message)

    def _expire_conduits(self, now: float) -> None:
        for conduit in list(self.conduits.values()):
            since = conduit.no_enabled_shard_since
            if since is not None and now - since >= self.conduit_expiry:
                self._delete_conduit(conduit)  # §2 the 72-h rule

    def _delete_conduit(self, conduit: Conduit) -> None:
        self.conduits.pop(conduit.id, None)
        self.deleted_conduits.append(conduit.id)
        for sub in self.subscriptions.values():  # §2 "Subscriptions will be disabled when a conduit is deleted"
            if sub.method == "conduit" and sub.transport.get("conduit_id") == conduit.id and sub.status == "enabled":
                sub.status = self.deleted_conduit_status

    # ------------------------------------------------------------------------------------------ Helix

    async def _conduits(self, request: web.Request) -> web.Response:
        return await self._api(request, self._conduits_body)

    async def _shards(self, request: web.Request) -> web.Response:
        return await self._api(request, self._shards_body)

    async def _subscriptions(self, request: web.Request) -> web.Response:
        return await self._api(request, self._subscriptions_body)

    async def _api(
        self, request: web.Request, body_handler: Callable[[web.Request, Any], web.Response]
    ) -> web.Response:
        body: Any = None
        bad_json = False
        if request.method in ("POST", "PATCH"):
            text = await request.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                bad_json = True

        def handle(req: web.Request) -> web.Response:
            self._expire_conduits(self.twitch.clock())
            if bad_json:
                return _error(400, "Malformed request body")  # [U] wording
            try:
                return body_handler(req, body)
            except _Problem as problem:
                return _error(problem.status, problem.message)

        response = await self.twitch._helix(request, handle)
        try:
            answer = json.loads(response.text) if response.text else None
        except ValueError:
            answer = response.text
        self.calls.append(
            EventSubCall(
                request.method,
                request.path,
                list(request.query.items()),
                body,
                response.status,
                answer,
                self._token_label(request),
            )
        )
        return response

    def _token_label(self, request: web.Request) -> str | None:
        record = self.twitch._bearer_record(request)
        if record is None:
            return None
        return "app" if record.user_id is None else f"user:{record.user_id}"

    def _user_id(self, request: web.Request) -> str | None:
        record = self.twitch._bearer_record(request)
        return None if record is None else record.user_id

    def _require_app_token(self, request: web.Request) -> None:
        if self._user_id(request) is not None:
            raise _Problem(401, "Authorization header required with an app access token")  # §2 Get Conduits 401

    # conduits (§2) ------------------------------------------------------------------------------

    def _conduits_body(self, request: web.Request, body: Any) -> web.Response:
        self._require_app_token(request)
        if request.method == "GET":
            return _ok({"data": [c.to_json() for c in self.conduits.values()]})
        if request.method == "DELETE":
            conduit = self._conduit(request.query.get("id"), "The id query parameter is required")
            self._delete_conduit(conduit)
            return web.Response(status=204)
        count = _shard_count(body)
        if request.method == "POST":
            if len(self.conduits) >= self.max_conduits:
                raise _Problem(429, "Conduit limit reached")
            now = self.twitch.clock()
            conduit = Conduit(id=str(uuid.uuid4()), shard_count=count, created_at=now, no_enabled_shard_since=now)
            for index in range(count):
                conduit.shard(index)
            self.conduits[conduit.id] = conduit
            return _ok({"data": [conduit.to_json()]})
        conduit = self._conduit(_field(body, "id"), "The id query parameter is required")  # PATCH
        for index in range(count, conduit.shard_count):  # scaling down disables the shards above the count
            shard = conduit.shards.pop(str(index), None)
            if shard is not None and shard.status == "enabled":
                self._set_shard_status(conduit, shard, "websocket_disconnected")
        for index in range(conduit.shard_count, count):
            conduit.shard(index)
        conduit.shard_count = count
        self._set_shard_status_refresh(conduit)
        return _ok({"data": [conduit.to_json()]})

    def _set_shard_status_refresh(self, conduit: Conduit) -> None:
        if any(s.status == "enabled" for s in conduit.shards.values()):
            conduit.no_enabled_shard_since = None
        elif conduit.no_enabled_shard_since is None:
            conduit.no_enabled_shard_since = self.twitch.clock()

    def _conduit(self, conduit_id: Any, missing: str) -> Conduit:
        if not isinstance(conduit_id, str) or not conduit_id:
            raise _Problem(400, missing)
        conduit = self.conduits.get(conduit_id)
        if conduit is None:
            raise _Problem(404, "Conduit not found")
        return conduit

    # shards (§2) --------------------------------------------------------------------------------

    def _shards_body(self, request: web.Request, body: Any) -> web.Response:
        self._require_app_token(request)
        if request.method == "GET":
            conduit = self._conduit(request.query.get("conduit_id"), "The conduit_id query parameter is required")
            status = request.query.get("status")
            if status is not None and status not in _SHARD_STATUSES:
                raise _Problem(400, "The status query parameter is invalid")
            shards = [conduit.shards[str(i)] for i in range(conduit.shard_count) if str(i) in conduit.shards]
            items = [s.to_json() for s in shards if status in (None, s.status)]
            return _ok(_page(items, request.query.get("after"), self.shards_page_size))
        conduit = self._conduit(_field(body, "conduit_id"), "The conduit_id field is required")
        updates = body.get("shards")
        if not isinstance(updates, list) or not updates:
            raise _Problem(400, "The shards field is required")
        data: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        for update in updates:
            shard_id = str(update.get("id", "")) if isinstance(update, dict) else ""
            message = self._update_shard(conduit, shard_id, update)
            if message is None:
                data.append(conduit.shards[shard_id].to_json())
            else:
                errors.append({"id": shard_id, "message": message, "code": "invalid_parameter"})
        return _ok({"data": data, "errors": errors}, status=202)  # §2: 202 even with errors[]

    def _update_shard(self, conduit: Conduit, shard_id: str, update: Any) -> str | None:
        """Bind one shard; returns the §2 error message, or None on success."""
        if not shard_id.isdigit() or int(shard_id) >= conduit.shard_count:
            return "The shard id is outside the conduit's range"
        transport = update.get("transport") if isinstance(update, dict) else None
        if not isinstance(transport, dict):
            transport = {}
        method = transport.get("method")
        shard = conduit.shard(int(shard_id))
        now = self.twitch.clock()
        if method == "websocket":
            session = self.sessions.get(str(transport.get("session_id") or ""))
            if not transport.get("session_id"):
                return "The session_id is required for websocket transport"
            if session is None or not session.live:
                return "The websocket session is not connected."
            if not session.used and now - session.connected_at > self.bind_window:
                self._close(session, 4003)  # the deadline passed before the ticker noticed
                return "The websocket session is not connected."
            session.used = True
            shard.method, shard.session_id, shard.callback, shard.secret = "websocket", session.id, None, None
            shard.connected_at, shard.disconnected_at = session.connected_at, None
            shard.challenge, shard.failed_deliveries = None, 0
            self._set_shard_status(conduit, shard, "enabled")
            return None
        if method == "webhook":
            problem = _webhook_problem(transport)
            if problem:
                return problem
            shard.method, shard.session_id, shard.connected_at, shard.disconnected_at = "webhook", None, None, None
            shard.callback, shard.secret = str(transport["callback"]), str(transport["secret"])
            shard.challenge, shard.failed_deliveries = None, 0
            self._set_shard_status(conduit, shard, "webhook_callback_verification_pending")
            if self.auto_verify_webhooks:
                shard.challenge = secrets.token_urlsafe(24)
                self._spawn_webhook(self._verify_webhook_shard(conduit, shard, shard.challenge))
            return None
        return "The transport method is invalid"

    # subscriptions (§5) -------------------------------------------------------------------------

    def _subscriptions_body(self, request: web.Request, body: Any) -> web.Response:
        if request.method == "POST":
            return self._create_subscription(request, body)
        if request.method == "DELETE":
            sub_id = request.query.get("id")
            if not sub_id:
                raise _Problem(400, "The id query parameter is required")
            sub = self.subscriptions.get(sub_id)
            if sub is None or not self._visible(sub, self._user_id(request)):
                raise _Problem(404, "The subscription was not found")
            self._forget(sub)
            return web.Response(status=204)
        return self._list_subscriptions(request)

    def _visible(self, sub: Subscription, user_id: str | None) -> bool:
        # §1: an app token sees webhook and conduit subscriptions, a user token that user's WebSocket ones.
        if user_id is None:
            return sub.method in ("webhook", "conduit")
        return sub.method == "websocket" and sub.owner_user_id == user_id

    def _costs(self, user_id: str | None) -> tuple[int, int, int]:
        mine = [s for s in self.subscriptions.values() if self._visible(s, user_id)]
        live = ("enabled", "webhook_callback_verification_pending")
        cost = sum(s.cost for s in mine if s.status in live)  # disabled ones do not count [U]
        cap = self.max_total_cost if user_id is None else self.websocket_max_total_cost
        return len(mine), cost, cap

    def _list_subscriptions(self, request: web.Request) -> web.Response:
        user_id = self._user_id(request)
        filters = [k for k in ("status", "type", "user_id", "subscription_id") if k in request.query]
        if len(filters) > 1:
            raise _Problem(400, "The status, type, user_id and subscription_id filters are mutually exclusive")
        subs = [s for s in self.subscriptions.values() if self._visible(s, user_id)]  # oldest first
        if filters:
            value = request.query[filters[0]]
            if filters[0] == "status":
                if value not in _SUB_STATUSES:
                    raise _Problem(400, "The status query parameter is invalid")
                subs = [s for s in subs if s.status == value]
            elif filters[0] == "type":
                if value not in {t for t, _ in _TYPES}:
                    raise _Problem(400, "The type query parameter is invalid")
                subs = [s for s in subs if s.type == value]
            elif filters[0] == "user_id":
                subs = [s for s in subs if value in s.condition.values()]
            else:
                subs = [s for s in subs if s.id == value]
        total, total_cost, cap = self._costs(user_id)
        page = _page([s.to_json() for s in subs], request.query.get("after"), self.subscriptions_page_size)
        return _ok({**page, "total": total, "total_cost": total_cost, "max_total_cost": cap})

    def _create_subscription(self, request: web.Request, body: Any) -> web.Response:
        user_id = self._user_id(request)
        if not isinstance(body, dict):
            raise _Problem(400, "Malformed request body")
        sub_type, version = body.get("type"), body.get("version")
        condition, transport = body.get("condition"), body.get("transport")
        if not isinstance(condition, dict) or not condition:
            raise _Problem(400, "The condition field is required")
        known = _TYPES.get((str(sub_type), str(version)))
        if known is None:
            raise _Problem(400, "The combination of values in the type and version fields is not valid")
        keys, costs_when_unauthorized = known
        if not isinstance(transport, dict):
            raise _Problem(400, "The transport field is required")
        stored = self._transport(transport, user_id)
        condition = {str(k): str(v) for k, v in condition.items()}
        for key in keys:
            if not condition.get(key):
                raise _Problem(400, f"The condition is missing the {key} field")
        if "broadcaster_user_id" in condition and condition["broadcaster_user_id"] not in self.twitch.users:
            raise _Problem(400, "The user in the condition does not exist")
        if sub_type == "conduit.shard.disabled":
            if user_id is not None:
                raise _Problem(self.auth_mismatch_status, "invalid transport and auth combination")
            if condition["client_id"] != self.twitch.client_id:
                raise _Problem(403, "The client_id in the condition must match the token")
        same = [
            s
            for s in self._by_key.get(
                (str(sub_type), condition.get("broadcaster_user_id", "")), self.subscriptions.values()
            )
            if s.type == sub_type
            and s.condition == condition
            and s.status in ("enabled", "webhook_callback_verification_pending")
        ]
        if any(s.version == version and _same_transport(s.transport, stored) for s in same):
            raise _Problem(409, "subscription already exists")  # §5; a dead one does not 409
        if len(same) >= MAX_SAME_TYPE_AND_CONDITION:
            raise _Problem(429, "maximum subscriptions with type and condition exceeded")  # §5 [I]
        broadcaster = condition.get("broadcaster_user_id")
        authorized = broadcaster is not None and broadcaster in self.twitch.authorized_user_ids
        cost = 1 if costs_when_unauthorized and not authorized else 0  # §1 cost rules
        if stored["method"] == "websocket":
            self._check_websocket_limits(stored["session_id"], user_id)
        _, total_cost, cap = self._costs(user_id)
        if total_cost + cost > cap:
            raise _Problem(429, "maximum total cost exceeded")  # §5: exact answer unverified [U]
        status = "webhook_callback_verification_pending" if stored["method"] == "webhook" else "enabled"
        sub = Subscription(
            id=str(uuid.uuid4()),
            type=str(sub_type),
            version=str(version),
            condition=condition,
            transport=stored,
            cost=cost,
            created_at=self.twitch.clock(),
            status=status,
            owner_user_id=user_id if stored["method"] == "websocket" else None,
        )
        self.subscriptions[sub.id] = sub
        self._by_key.setdefault((sub.type, condition.get("broadcaster_user_id", "")), []).append(sub)
        if stored["method"] == "websocket":
            self.sessions[stored["session_id"]].used = True
        total, total_cost, cap = self._costs(user_id)
        return _ok(
            {"data": [sub.to_json()], "total": total, "total_cost": total_cost, "max_total_cost": cap}, status=202
        )

    def _transport(self, transport: dict[str, Any], user_id: str | None) -> dict[str, str]:
        method = transport.get("method")
        if method == "conduit":
            if user_id is not None:  # §KEY QUESTION: "The request will fail if you use a user access token."
                raise _Problem(self.auth_mismatch_status, "invalid transport and auth combination")
            conduit_id = transport.get("conduit_id")
            if not conduit_id:
                raise _Problem(400, "The conduit_id field is required if you specify the Conduit transport method.")
            if conduit_id not in self.conduits:
                raise _Problem(400, "The conduit does not exist")  # [U] wording
            return {"method": "conduit", "conduit_id": str(conduit_id)}
        if method == "websocket":
            if user_id is None:  # §KEY QUESTION: plain WebSocket needs a user token
                raise _Problem(self.auth_mismatch_status, "invalid transport and auth combination")
            session_id = transport.get("session_id")
            if not session_id:
                raise _Problem(400, "The session_id field is required if you specify the WebSocket transport method.")
            session = self.sessions.get(str(session_id))
            now = self.twitch.clock()
            if (
                session is None
                or not session.live
                or (not session.used and now - session.connected_at > self.bind_window)
            ):
                raise _Problem(400, "websocket transport session does not exist or has already disconnected")  # [I]
            return {"method": "websocket", "session_id": session.id, "connected_at": _rfc3339(session.connected_at)}
        if method == "webhook":
            if user_id is not None:
                raise _Problem(self.auth_mismatch_status, "invalid transport and auth combination")
            problem = _webhook_problem(transport)
            if problem:
                raise _Problem(400, problem)
            return {"method": "webhook", "callback": transport["callback"], "secret": transport["secret"]}
        raise _Problem(400, "The transport method is invalid")

    def _check_websocket_limits(self, session_id: str, user_id: str | None) -> None:
        enabled = [s for s in self.subscriptions.values() if s.method == "websocket" and s.status == "enabled"]
        if sum(1 for s in enabled if s.transport["session_id"] == session_id) >= WEBSOCKET_MAX_SUBS_PER_CONNECTION:
            raise _Problem(429, "number of subscriptions per websocket transport limit exceeded")  # [U] wording
        others = {s.transport["session_id"] for s in enabled if s.owner_user_id == user_id} - {session_id}
        if len(others) >= WEBSOCKET_MAX_CONNECTIONS:
            raise _Problem(429, "number of websocket transports limit exceeded")  # §5 [I]

    def _forget(self, sub: Subscription) -> None:
        self.subscriptions.pop(sub.id, None)
        bucket = self._by_key.get((sub.type, sub.condition.get("broadcaster_user_id", "")), [])
        if sub in bucket:
            bucket.remove(sub)


# ------------------------------------------------------------------------------------------------ helpers


def _ok(payload: Any, *, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")


_REASONS: Final = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}


def _error(status: int, message: str) -> web.Response:
    reason = _REASONS.get(status, "Too Many Requests" if status == 429 else "Error")
    return _ok({"error": reason, "status": status, "message": message}, status=status)


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


def _shard_count(body: Any) -> int:
    count = _field(body, "shard_count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_SHARDS:
        raise _Problem(400, "Invalid shard count")
    return count


def _webhook_problem(transport: dict[str, Any]) -> str | None:
    """§2 / §4: an HTTPS callback on port 443 and an ASCII secret of 10-100 characters."""
    callback = transport.get("callback")
    if not callback:
        return "The callback field is required if you specify the webhook transport method"
    parts = urlsplit(str(callback))
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != "https" or port not in (None, 443):
        return "The callback must use HTTPS and port 443"
    secret = transport.get("secret")
    if not isinstance(secret, str) or not secret.isascii() or not 10 <= len(secret) <= 100:
        return "The secret must be between 10 and 100 ASCII characters"
    return None


def webhook_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """§4: "sha256=" + hex HMAC-SHA256 keyed with the secret over message id + timestamp + raw body bytes."""
    digest = hmac.new(secret.encode(), message_id.encode() + timestamp.encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _webhook_headers(
    secret: str,
    message_id: str,
    retry: int,
    message_type: str,
    timestamp: str,
    body: bytes,
    subscription_type: str | None = None,
    subscription_version: str | None = None,
) -> dict[str, str]:
    headers = {
        MESSAGE_ID: message_id,
        MESSAGE_RETRY: str(retry),
        MESSAGE_TYPE: message_type,
        MESSAGE_SIGNATURE: webhook_signature(secret, message_id, timestamp, body),
        MESSAGE_TIMESTAMP: timestamp,
    }
    if subscription_type is not None:
        headers[SUBSCRIPTION_TYPE] = subscription_type
    if subscription_version is not None:
        headers[SUBSCRIPTION_VERSION] = subscription_version
    headers["Content-Type"] = "application/json"
    return headers


def _loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _same_transport(a: dict[str, str], b: dict[str, str]) -> bool:
    keys = ("method", "conduit_id", "session_id", "callback")
    return all(a.get(k) == b.get(k) for k in keys)


def _page(items: list[dict[str, Any]], after: str | None, size: int) -> dict[str, Any]:
    offset = 0
    if after:
        try:
            offset = int(bytes.fromhex(after).decode().removeprefix("o:"))
        except ValueError as exc:
            raise _Problem(400, "The after query parameter is invalid") from exc
    chunk = items[offset : offset + size]
    more = offset + size < len(items)
    return {"data": chunk, "pagination": {"cursor": f"o:{offset + size}".encode().hex()} if more else {}}


def _envelope(
    message_type: str, payload: dict[str, Any], now: float, sub: Subscription | None = None
) -> dict[str, Any]:
    """§3 message envelope; subscription_type / subscription_version only on notification and revocation."""
    metadata: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "message_type": message_type,
        "message_timestamp": _rfc3339(now, digits=9),
    }
    if sub is not None:
        metadata["subscription_type"] = sub.type
        metadata["subscription_version"] = sub.version
    return {"metadata": metadata, "payload": payload}


def _broadcaster(user: FakeUser) -> dict[str, str]:
    return {
        "broadcaster_user_id": user.id,
        "broadcaster_user_login": user.login,
        "broadcaster_user_name": user.display_name,
    }


def _session_id() -> str:
    return "AQoQ" + secrets.token_urlsafe(18)[:24]  # the documented shape, e.g. "AQoQILE98gtqShGmLD7AM6yJThAB"


def _rfc3339(moment: float, digits: int = 9) -> str:
    """RFC 3339 in UTC with a fraction of ``digits`` digits (Twitch uses nanoseconds in metadata)."""
    whole = int(moment)
    nanos = round((moment - whole) * 1_000_000_000)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}"[: len(stamp) + 1 + digits] + "Z"
