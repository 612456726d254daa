"""EventSub's vocabulary: conduits, shards, subscriptions and the messages Twitch pushes, as frozen
dataclasses, and the one parser that turns a WebSocket frame or a webhook delivery into them.

Pure and defensive: whatever Twitch (or someone forging a webhook) sends, parsing either returns a typed
message or raises MalformedMessage; unknown fields are ignored (Twitch adds some, e.g. `recovery_url`).
Facts: /work/shared/twitch-eventsub-facts.md §3 (envelope), §5 (subscriptions), §6 (events).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from twitch_notifier.twitch.times import parse_time

__all__ = [
    "CHANNEL_UPDATE",
    "STREAM_OFFLINE",
    "STREAM_ONLINE",
    "WANTED_TYPES",
    "ChannelInfo",
    "ChannelUpdate",
    "Conduit",
    "ConduitShard",
    "EventSubListing",
    "EventSubMessage",
    "EventSubSubscription",
    "Keepalive",
    "MalformedMessage",
    "Metadata",
    "Notification",
    "Reconnect",
    "Revocation",
    "SessionInfo",
    "ShardFailure",
    "ShardUpdate",
    "StreamOffline",
    "StreamOnline",
    "Welcome",
    "parse_envelope",
    "parse_subscription",
    "parse_time",
    "parse_webhook",
]

STREAM_ONLINE: Final = ("stream.online", "1")
STREAM_OFFLINE: Final = ("stream.offline", "1")
CHANNEL_UPDATE: Final = ("channel.update", "2")
WANTED_TYPES: Final = (STREAM_ONLINE, STREAM_OFFLINE, CHANNEL_UPDATE)
"""The (type, version) pairs the bot subscribes to for each followed streamer, most important first: near
the cost cap, stream.online is kept over stream.offline over channel.update (§10.8)."""

_ID_LIMIT = 100
_TEXT_LIMIT = 500


class MalformedMessage(ValueError):
    """A frame or delivery that is not an EventSub message the bot can read (logged and dropped)."""


# ------------------------------------------------------------------------------------------ Helix shapes


@dataclass(frozen=True, slots=True)
class Conduit:
    id: str
    shard_count: int


@dataclass(frozen=True, slots=True)
class ConduitShard:
    id: str
    status: str
    method: str = ""
    session_id: str = ""
    callback: str = ""


@dataclass(frozen=True, slots=True)
class ShardFailure:
    id: str
    message: str
    code: str = ""


@dataclass(frozen=True, slots=True)
class ShardUpdate:
    """The 202 of PATCH /eventsub/conduits/shards: only the shards in `updated` took the change (§2)."""

    updated: tuple[ConduitShard, ...] = ()
    failed: tuple[ShardFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class EventSubSubscription:
    id: str
    type: str
    version: str
    status: str
    broadcaster_user_id: str = ""
    method: str = ""
    conduit_id: str = ""
    cost: int = 0

    @property
    def kind(self) -> tuple[str, str]:
        return (self.type, self.version)


@dataclass(frozen=True, slots=True)
class EventSubListing:
    """Every page of GET /eventsub/subscriptions (or a create's answer), with the cost figures."""

    subscriptions: tuple[EventSubSubscription, ...]
    total_cost: int
    max_total_cost: int


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """GET /helix/channels: the channel's title and category right now (no listing lag)."""

    broadcaster_id: str
    login: str
    display_name: str
    title: str
    game_id: str
    game_name: str
    language: str = ""


# ------------------------------------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class Metadata:
    message_id: str
    message_type: str
    timestamp: datetime | None
    subscription_type: str = ""
    subscription_version: str = ""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    status: str
    keepalive_timeout_seconds: int | None
    reconnect_url: str | None


@dataclass(frozen=True, slots=True)
class Welcome:
    metadata: Metadata
    session: SessionInfo


@dataclass(frozen=True, slots=True)
class Keepalive:
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class Reconnect:
    metadata: Metadata
    session: SessionInfo


@dataclass(frozen=True, slots=True)
class StreamOnline:
    broadcaster_user_id: str
    login: str
    display_name: str
    stream_id: str
    type: str
    """live, playlist, watch_party, premiere or rerun (§6)."""
    started_at: datetime | None


@dataclass(frozen=True, slots=True)
class StreamOffline:
    broadcaster_user_id: str
    login: str
    display_name: str


@dataclass(frozen=True, slots=True)
class ChannelUpdate:
    broadcaster_user_id: str
    login: str
    display_name: str
    title: str
    category_id: str
    category_name: str
    language: str = ""


Event = StreamOnline | StreamOffline | ChannelUpdate


@dataclass(frozen=True, slots=True)
class Notification:
    metadata: Metadata
    subscription: EventSubSubscription
    event: Event | None
    """None for a type the bot did not ask for: ignored (and logged) by whoever receives it."""


@dataclass(frozen=True, slots=True)
class Revocation:
    metadata: Metadata
    subscription: EventSubSubscription


EventSubMessage = Welcome | Keepalive | Reconnect | Notification | Revocation


@dataclass(frozen=True, slots=True)
class _Fields:
    """A JSON object read without trusting its types."""

    raw: Mapping[str, Any] = field(default_factory=dict)

    def text(self, name: str, limit: int = _ID_LIMIT) -> str:
        value = self.raw.get(name)
        if value is None or isinstance(value, bool | dict | list):
            return ""
        text = value if isinstance(value, str) else str(value)
        if not text.isascii():
            text = text.encode("utf-8", "replace").decode("utf-8")
        return text[:limit]

    def child(self, name: str) -> _Fields:
        value = self.raw.get(name)
        return _Fields(value if isinstance(value, dict) else {})

    def integer(self, name: str) -> int | None:
        value = self.raw.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return None


def parse_subscription(raw: object) -> EventSubSubscription | None:
    """One subscription object (from a listing, a create, a notification or a revocation)."""
    if not isinstance(raw, dict):
        return None
    item = _Fields(raw)
    sub_id = item.text("id")
    sub_type = item.text("type")
    if not sub_id or not sub_type:
        return None
    transport = item.child("transport")
    return EventSubSubscription(
        id=sub_id,
        type=sub_type,
        version=item.text("version"),
        status=item.text("status"),
        broadcaster_user_id=item.child("condition").text("broadcaster_user_id"),
        method=transport.text("method"),
        conduit_id=transport.text("conduit_id"),
        cost=max(0, item.integer("cost") or 0),
    )


def parse_envelope(message: object) -> EventSubMessage:
    """A WebSocket text frame, already JSON-decoded: `{"metadata": …, "payload": …}` (§3)."""
    if not isinstance(message, dict):
        raise MalformedMessage("not a JSON object")
    envelope = _Fields(message)
    meta = envelope.child("metadata")
    metadata = Metadata(
        message_id=meta.text("message_id"),
        message_type=meta.text("message_type"),
        timestamp=parse_time(meta.raw.get("message_timestamp")),
        subscription_type=meta.text("subscription_type"),
        subscription_version=meta.text("subscription_version"),
    )
    if not metadata.message_id or not metadata.message_type:
        raise MalformedMessage("no message_id or message_type in metadata")
    return _message(metadata, envelope.child("payload"))


def parse_webhook(headers: Mapping[str, str], body: object) -> EventSubMessage:
    """A webhook delivery (§4): the metadata travels in Twitch-Eventsub-* headers, the body is the payload.
    Call it only after the signature is verified; a challenge is answered before parsing."""
    metadata = Metadata(
        message_id=(headers.get("Twitch-Eventsub-Message-Id") or "")[:_ID_LIMIT],
        message_type=(headers.get("Twitch-Eventsub-Message-Type") or "")[:_ID_LIMIT],
        timestamp=parse_time(headers.get("Twitch-Eventsub-Message-Timestamp")),
        subscription_type=(headers.get("Twitch-Eventsub-Subscription-Type") or "")[:_ID_LIMIT],
        subscription_version=(headers.get("Twitch-Eventsub-Subscription-Version") or "")[:_ID_LIMIT],
    )
    if not metadata.message_id or not metadata.message_type:
        raise MalformedMessage("no Twitch-Eventsub-Message-Id or -Type header")
    if not isinstance(body, dict):
        raise MalformedMessage("the body is not a JSON object")
    return _message(metadata, _Fields(body))


def _message(metadata: Metadata, payload: _Fields) -> EventSubMessage:
    kind = metadata.message_type
    if kind == "session_keepalive":
        return Keepalive(metadata)
    if kind in ("session_welcome", "session_reconnect"):
        raw = payload.child("session")
        session = SessionInfo(
            id=raw.text("id"),
            status=raw.text("status"),
            keepalive_timeout_seconds=raw.integer("keepalive_timeout_seconds"),
            reconnect_url=raw.text("reconnect_url", _TEXT_LIMIT) or None,
        )
        if not session.id:
            raise MalformedMessage(f"{kind} without a session id")
        if kind == "session_welcome":
            return Welcome(metadata, session)
        if not session.reconnect_url:
            raise MalformedMessage("session_reconnect without a reconnect_url")
        return Reconnect(metadata, session)
    if kind in ("notification", "revocation"):
        subscription = parse_subscription(payload.raw.get("subscription"))
        if subscription is None:
            raise MalformedMessage(f"{kind} without a readable subscription")
        if kind == "revocation":
            return Revocation(metadata, subscription)
        return Notification(metadata, subscription, _event(subscription.kind, payload.child("event")))
    raise MalformedMessage(f"unknown message_type {kind!r}")


def _event(kind: tuple[str, str], event: _Fields) -> Event | None:
    if kind not in WANTED_TYPES:
        return None
    user_id = event.text("broadcaster_user_id")
    if not (user_id.isdigit() and user_id.isascii()):
        raise MalformedMessage(f"{kind[0]} event without a numeric broadcaster_user_id")
    login = event.text("broadcaster_user_login").lower()
    name = event.text("broadcaster_user_name") or login
    if kind == STREAM_ONLINE:
        stream_id = event.text("id")
        if not stream_id:
            raise MalformedMessage("stream.online event without a stream id")
        return StreamOnline(
            broadcaster_user_id=user_id,
            login=login,
            display_name=name,
            stream_id=stream_id,
            type=event.text("type") or "live",
            started_at=parse_time(event.raw.get("started_at")),
        )
    if kind == STREAM_OFFLINE:
        return StreamOffline(broadcaster_user_id=user_id, login=login, display_name=name)
    return ChannelUpdate(
        broadcaster_user_id=user_id,
        login=login,
        display_name=name,
        title=event.text("title", _TEXT_LIMIT),
        category_id=event.text("category_id"),
        category_name=event.text("category_name", _TEXT_LIMIT),
        language=event.text("language"),
    )
