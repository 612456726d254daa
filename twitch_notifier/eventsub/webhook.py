"""The receiver for EventSub webhook deliveries: checks each POST's HMAC signature and age, answers Twitch's
challenge, and acknowledges notifications and revocations at once, handing them on in the background.

Served on the bot's own HTTP port (ops/health.py `routes=`) behind the TLS proxy that owns :443. It does not
deduplicate: the caller dedupes the webhook and WebSocket transports together.
Facts: /work/shared/twitch-eventsub-facts.md §4 (headers, signature, challenge, deadline, replay).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from twitch_notifier.twitch.eventsub import EventSubMessage, MalformedMessage, parse_time, parse_webhook

_log = logging.getLogger(__name__)

__all__ = [
    "CHALLENGE",
    "MESSAGE_ID",
    "MESSAGE_RETRY",
    "MESSAGE_SIGNATURE",
    "MESSAGE_TIMESTAMP",
    "MESSAGE_TYPE",
    "NOTIFICATION",
    "REVOCATION",
    "SUBSCRIPTION_TYPE",
    "SUBSCRIPTION_VERSION",
    "WebhookReceiver",
    "WebhookStats",
    "signature_for",
    "verify_signature",
]

MESSAGE_ID: Final = "Twitch-Eventsub-Message-Id"
MESSAGE_RETRY: Final = "Twitch-Eventsub-Message-Retry"
MESSAGE_TYPE: Final = "Twitch-Eventsub-Message-Type"
MESSAGE_SIGNATURE: Final = "Twitch-Eventsub-Message-Signature"
MESSAGE_TIMESTAMP: Final = "Twitch-Eventsub-Message-Timestamp"
SUBSCRIPTION_TYPE: Final = "Twitch-Eventsub-Subscription-Type"
SUBSCRIPTION_VERSION: Final = "Twitch-Eventsub-Subscription-Version"

CHALLENGE: Final = "webhook_callback_verification"
NOTIFICATION: Final = "notification"
REVOCATION: Final = "revocation"

SIGNATURE_PREFIX: Final = "sha256="
# Twitch's rule for the secret a webhook transport is created with (§4).
SECRET_MIN_LENGTH: Final = 10
SECRET_MAX_LENGTH: Final = 100
# At shutdown, handed-on messages get this long to finish before they are cancelled: they were already
# acknowledged, so Twitch will not send them again.
CLOSE_GRACE_SECONDS: Final = 5.0
CANCEL_WAIT_SECONDS: Final = 1.0
# Attacker-controlled values are cut to this before they reach a log line.
_LOGGED_LIMIT = 100

_PLAIN_TEXT = "text/plain"


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """Counters since start. `received` counts every request; the others say how one ended."""

    received: int = 0
    accepted: int = 0
    """Notifications and revocations acknowledged and handed on."""
    challenges: int = 0
    forged: int = 0
    stale: int = 0
    malformed: int = 0
    too_large: int = 0


def signature_for(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """`"sha256=" + hex(HMAC-SHA256(secret, id + timestamp + raw body))`, the order Twitch signs in."""
    # surrogateescape gives back the exact bytes of a header aiohttp decoded with it.
    message = message_id.encode("utf-8", "surrogateescape") + timestamp.encode("utf-8", "surrogateescape") + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: str,
    message_id: str | None,
    timestamp: str | None,
    body: bytes,
    signature_header: str | None,
) -> bool:
    """True when `signature_header` is the signature of this delivery, compared in constant time.

    A missing id, timestamp or signature, or one that cannot be an HMAC header at all, is False, never an
    exception."""
    if not secret or not message_id or not timestamp or not signature_header:
        return False
    if not signature_header.isascii() or not signature_header.startswith(SIGNATURE_PREFIX):
        return False
    try:
        expected = signature_for(secret, message_id, timestamp, body)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), signature_header.encode("ascii"))


def _cut(value: str | None) -> str:
    return (value or "")[:_LOGGED_LIMIT]


class WebhookReceiver:
    """An aiohttp handler for one webhook path; `on_message` gets every authentic notification and revocation.

    Order of the checks: method (405), size (413), signature over the raw body (403), age (400), then the
    message type. `on_message` runs in a task of its own after the 2xx has been decided, so a slow or failing
    consumer never makes Twitch wait (§4: "within a few seconds", else the subscription is revoked).
    """

    def __init__(
        self,
        *,
        secret: str,
        path: str,
        on_message: Callable[[EventSubMessage], Awaitable[None]],
        clock: Callable[[], float] = time.time,
        max_age: float = 600.0,
        max_body: int = 64 * 1024,
    ) -> None:
        if not (secret.isascii() and SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH):
            raise ValueError(
                f"the webhook secret must be {SECRET_MIN_LENGTH}-{SECRET_MAX_LENGTH} ASCII characters (Twitch's rule)"
            )
        if not path.startswith("/"):
            raise ValueError(f"the webhook path must start with '/', got {path!r}")
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age!r}")
        if max_body <= 0:
            raise ValueError(f"max_body must be positive, got {max_body!r}")
        self._secret = secret
        self._path = path
        self._on_message = on_message
        self._clock = clock
        self._max_age = max_age
        self._max_body = max_body
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._received = 0
        self._accepted = 0
        self._challenges = 0
        self._forged = 0
        self._stale = 0
        self._malformed = 0
        self._too_large = 0

    def __repr__(self) -> str:
        # Never the secret.
        return f"WebhookReceiver(path={self._path!r})"

    @property
    def path(self) -> str:
        return self._path

    def stats(self) -> WebhookStats:
        return WebhookStats(
            received=self._received,
            accepted=self._accepted,
            challenges=self._challenges,
            forged=self._forged,
            stale=self._stale,
            malformed=self._malformed,
            too_large=self._too_large,
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self._received += 1
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"})
        if self._closed:
            # Not acknowledged, so Twitch delivers it again (to the next instance, or after the restart).
            return web.Response(status=503, text="shutting down")
        body = await self._read_bounded(request)
        if body is None:
            self._too_large += 1
            _log.warning("Rejected a webhook delivery over %d bytes from %s", self._max_body, request.remote)
            response = web.Response(status=413, text="body too large")
            response.force_close()  # the rest of the body was never read: don't reuse the connection
            return response

        headers = request.headers
        message_id = headers.get(MESSAGE_ID)
        timestamp = headers.get(MESSAGE_TIMESTAMP)
        if not verify_signature(self._secret, message_id, timestamp, body, headers.get(MESSAGE_SIGNATURE)):
            self._forged += 1
            _log.warning(
                "Rejected a webhook delivery with a missing or wrong signature from %s (message id %r)",
                request.remote,
                _cut(message_id),
            )
            return web.Response(status=403, text="invalid signature")

        if not self._fresh(timestamp):
            self._stale += 1
            _log.warning(
                "Rejected a webhook delivery with a stale or unreadable timestamp %r (message id %r)",
                _cut(timestamp),
                _cut(message_id),
            )
            return web.Response(status=400, text="stale timestamp")

        message_type = headers.get(MESSAGE_TYPE, "")
        if message_type == CHALLENGE:
            return self._answer_challenge(body, message_id)
        if message_type in (NOTIFICATION, REVOCATION):
            return self._accept(request, body, message_type)
        _log.debug(
            "Ignored a webhook delivery of unknown type %r (message id %r)", _cut(message_type), _cut(message_id)
        )
        return web.Response(status=204)

    async def close(self) -> None:
        """Refuse new deliveries (503, so Twitch retries them) and end the messages still being handed on:
        they get CLOSE_GRACE_SECONDS to finish, then are cancelled. Idempotent."""
        self._closed = True
        pending = set(self._tasks)
        if not pending:
            return
        _, pending = await asyncio.wait(pending, timeout=CLOSE_GRACE_SECONDS)
        if not pending:
            return
        _log.warning("Cancelling %d EventSub webhook message(s) still being handled at shutdown", len(pending))
        for task in pending:
            task.cancel()
        _, stuck = await asyncio.wait(pending, timeout=CANCEL_WAIT_SECONDS)
        if stuck:
            _log.warning("%d EventSub webhook message handler(s) ignored the cancellation", len(stuck))

    # -------------------------------------------------------------------------------------------- helpers

    async def _read_bounded(self, request: web.Request) -> bytes | None:
        """The raw body, or None when it is over max_body; never reads more than max_body + 1 bytes."""
        declared = request.content_length
        if declared is not None and declared > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(self._max_body + 1 - size)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)

    def _fresh(self, timestamp: str | None) -> bool:
        sent = parse_time(timestamp)
        if sent is None:
            return False
        return abs(self._clock() - sent.timestamp()) <= self._max_age

    def _json(self, body: bytes, message_id: str | None) -> object | None:
        try:
            parsed: object = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            self._malformed += 1
            _log.warning("Rejected a signed webhook delivery whose body is not JSON (message id %r)", message_id)
            return None
        return parsed

    def _answer_challenge(self, body: bytes, message_id: str | None) -> web.Response:
        payload = self._json(body, message_id)
        if payload is None:
            return web.Response(status=400, text="body is not JSON")
        if not isinstance(payload, dict):
            payload = {}
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            self._malformed += 1
            _log.warning("Rejected a webhook challenge without a challenge string (message id %r)", message_id)
            return web.Response(status=400, text="no challenge")
        self._challenges += 1
        subscription = payload.get("subscription")
        sub_id = subscription.get("id") if isinstance(subscription, dict) else None
        _log.info("Answered Twitch's webhook challenge for subscription %r", sub_id)
        # The raw string, not JSON: Twitch compares the body byte for byte.
        return web.Response(body=challenge.encode("utf-8"), headers={"Content-Type": _PLAIN_TEXT})

    def _accept(self, request: web.Request, body: bytes, message_type: str) -> web.Response:
        message_id = request.headers.get(MESSAGE_ID)
        payload = self._json(body, message_id)
        if payload is None:
            return web.Response(status=400, text="body is not JSON")
        try:
            message = parse_webhook(request.headers, payload)
        except MalformedMessage as exc:
            self._malformed += 1
            _log.warning(
                "Rejected a signed webhook %s that cannot be read: %s (message id %r)", message_type, exc, message_id
            )
            return web.Response(status=400, text="malformed message")
        self._accepted += 1
        # Acknowledge first: the consumer runs after the 204 is on its way.
        task = asyncio.create_task(self._deliver(message), name=f"EventSub webhook {message_type}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=204)

    async def _deliver(self, message: EventSubMessage) -> None:
        try:
            await self._on_message(message)
        except Exception:
            # Already acknowledged: a failure here is the consumer's bug, logged, never the server's problem.
            _log.exception("Handling the EventSub webhook message %r failed", message.metadata.message_id)
