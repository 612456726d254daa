"""Twitch's timestamps (RFC 3339, in Helix and in EventSub) read as aware UTC datetimes, never raising."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_time"]

_TIME_TEXT_LIMIT = 64


def parse_time(value: object) -> datetime | None:
    """RFC 3339 as Twitch writes it (nanoseconds in metadata, milliseconds in events), in UTC."""
    if not isinstance(value, str) or not value or len(value) > _TIME_TEXT_LIMIT:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:
        # Python reads at most 6 fraction digits: cut nanoseconds to microseconds.
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
