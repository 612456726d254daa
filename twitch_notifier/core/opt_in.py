"""Opt-in pings: the "Notify me" button's custom id, the opt-in role's name, and whom an announcement pings.

Pure decisions over the models: the Discord side (the button press, the role) lives in discord_io.opt_in_roles,
the storage in database.py. A card with the button pings the streamer's opt-in role instead of the configured
ping; the server's throttle keeps a streamer from pinging more than once per so many hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from twitch_notifier.models import LastPing, PendingAnnouncement

__all__ = [
    "CUSTOM_ID_PREFIX",
    "ROLE_NAME_LIMIT",
    "PingDecision",
    "announcement_ping",
    "notify_custom_id",
    "parse_notify_custom_id",
    "role_name",
    "throttle_ends",
]

CUSTOM_ID_PREFIX = "notify:"
"""The button's custom id is `notify:<twitch user id>`: stable, so cards posted before a restart still work."""
ROLE_NAME_LIMIT = 100
"""Discord's longest role name."""
ROLE_SUFFIX = " live"
_TWITCH_ID = re.compile(r"^[0-9]{1,20}$")
# Characters Discord would treat specially in a role's name when it is mentioned or shown: none of them needed.
_UNWANTED = re.compile(r"[@#:`<>\s]+")


def notify_custom_id(twitch_user_id: str) -> str:
    """The custom id of a streamer's "Notify me" button (Discord allows 100 characters; this takes at most 27)."""
    return f"{CUSTOM_ID_PREFIX}{twitch_user_id}"


def parse_notify_custom_id(custom_id: str) -> str | None:
    """The Twitch user id a "Notify me" button names, or None for any other (or a forged) custom id."""
    if not custom_id.startswith(CUSTOM_ID_PREFIX):
        return None
    user_id = custom_id[len(CUSTOM_ID_PREFIX) :]
    return user_id if _TWITCH_ID.match(user_id) else None


def role_name(display_name: str, login: str) -> str:
    """The opt-in role's name, e.g. "Shroud live": the display name cleaned of anything mention-like, else the
    login (Twitch keeps logins to [a-z0-9_]), cut to Discord's limit."""
    cleaned = _UNWANTED.sub(" ", display_name).strip() or login
    return cleaned[: ROLE_NAME_LIMIT - len(ROLE_SUFFIX)] + ROLE_SUFFIX


@dataclass(frozen=True, slots=True)
class PingDecision:
    """Whom one announcement pings (`ping` in the stored form: "" nobody, "everyone", "here", a role id), and
    whether that differs from the configured ping in a way the card must remember (`remember`: its live
    updates render the same text)."""

    ping: str | None
    remember: bool = False
    throttled: bool = False
    """A ping was due but the server's throttle held it back."""


def announcement_ping(pending: PendingAnnouncement, now: datetime) -> PingDecision:
    """The ping of an announcement about to be posted.

    With the "Notify me" button on, the streamer's opt-in role replaces the configured ping (nobody is pinged
    until someone opted in: the button is how members ask for it). With a throttle, a streamer who pinged this
    guild for another stream less than `ping_throttle_hours` ago is announced without a ping; the entries of
    one stream in several channels all ping (the throttle is about new streams, not about channels). A stream
    reconnecting within the restart grace never gets here: the notifier continues its card, pinging nobody."""
    if pending.notify_button:
        ping: str | None = str(pending.notify_role_id) if pending.notify_role_id is not None else ""
    else:
        ping = pending.ping
    remember = pending.notify_button
    last = pending.last_ping
    held = throttle_ends(last, pending.ping_throttle_hours, now) is not None
    if ping and held and last is not None and last.stream_id != pending.stream_id:
        return PingDecision("", remember=True, throttled=True)
    return PingDecision(ping, remember=remember)


def throttle_ends(last: LastPing | None, hours: int | None, now: datetime) -> datetime | None:
    """When a new stream of the streamer may ping again under a throttle of `hours` (None or 0: off), given its
    last ping in the guild; None if it may now."""
    if not hours or last is None:
        return None
    ends = last.pinged_at + timedelta(hours=hours)
    return ends if now < ends else None
