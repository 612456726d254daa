"""The errors of the Twitch client: one root (TwitchError) for every failure to talk to Twitch, and
InvalidLogin for user input that is not a channel name or link."""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "InvalidLogin",
    "TwitchAPIError",
    "TwitchAuthError",
    "TwitchConflict",
    "TwitchError",
    "TwitchLimitExceeded",
    "TwitchRateLimited",
    "TwitchServerError",
    "TwitchUnavailable",
    "error_message",
]

BODY_SNIPPET = 300
"""How much of an error body is kept (and shown in logs)."""


class TwitchError(Exception):
    """Root of every error this module raises (except InvalidLogin, which is about user input)."""


class TwitchAuthError(TwitchError):
    """The token endpoint rejected the client id/secret: an operator misconfiguration, not a blip."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TwitchAPIError(TwitchError):
    """Twitch answered with an error status."""

    def __init__(self, status: int, body: str, message: str | None = None) -> None:
        self.status = status
        self.body = body[:BODY_SNIPPET]
        self.message = message or error_message(body) or "(no message)"
        super().__init__(f"Twitch API returned HTTP {status}: {self.message}")


class TwitchRateLimited(TwitchAPIError):
    """Still rate limited (429) after waiting for the bucket to refill max_retries times."""

    def __init__(self, status: int, body: str, reset_at: float) -> None:
        super().__init__(status, body)
        self.reset_at = reset_at


class TwitchLimitExceeded(TwitchAPIError):
    """A 429 that is not the points bucket but a quota waiting cannot fix (EventSub's "maximum total cost
    exceeded", "Conduit limit reached"): raised at once, never retried."""


class TwitchConflict(TwitchAPIError):
    """409: what was to be created exists already (an EventSub subscription of that type and condition)."""


class TwitchUnavailable(TwitchError):
    """Twitch could not be reached (timeouts, connection errors, 5xx) even after retrying."""


class TwitchServerError(TwitchAPIError, TwitchUnavailable):
    """5xx after retries: both an API error (it has a status) and 'Twitch is unavailable'."""


class InvalidLogin(ValueError):
    """User input that is not a Twitch channel name or channel link; the message is safe to show."""


def error_message(text: str) -> str:
    payload = json_object(text)
    if payload is not None:
        message = payload.get("message")
        if isinstance(message, str) and message:
            return message[:BODY_SNIPPET]
        error = payload.get("error")
        if isinstance(error, str):
            return error[:BODY_SNIPPET]
    return text.strip()[:BODY_SNIPPET]


def json_object(text: str) -> dict[str, Any] | None:
    """`text` parsed as a JSON object, or None (not JSON, or not an object)."""
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
