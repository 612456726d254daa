"""Who an announcement pings: what admins type (`@everyone`, a role...), its stored form, its mention
text, and the allowed_mentions that let exactly that ping through and nothing else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from twitch_notifier.rendering.templates import TemplateError

# A ping is stored as text: "" (none), "everyone", "here", or a role id.
PING_NONE = ""
_ROLE_MENTION = re.compile(r"^<@&(\d{15,21})>$")
_ROLE_ID = re.compile(r"^(?:role:)?(\d{15,21})$")


@dataclass(frozen=True, slots=True)
class PingChoice:
    """What an admin typed for a ping, parsed: `value` is the stored form, `role_id` set for a role."""

    value: str
    role_id: int | None = None


def parse_ping(text: str, everyone_role_id: int | None = None) -> PingChoice:
    """Parse `none`, `@everyone`, `@here`, a role mention `<@&id>` or a role id (also `role:id`)."""
    raw = text.strip()
    lowered = raw.lower().lstrip("@")
    if lowered in ("", "none", "off", "no", "nobody"):
        return PingChoice(PING_NONE)
    if lowered in ("everyone", "here"):
        return PingChoice(lowered)
    match = _ROLE_MENTION.match(raw) or _ROLE_ID.match(raw)
    if match is None:
        raise TemplateError(
            "A ping is `none`, `@everyone`, `@here` or a role (pick one from the list or type its mention)."
        )
    role_id = int(match.group(1))
    if everyone_role_id is not None and role_id == everyone_role_id:
        return PingChoice("everyone")
    return PingChoice(str(role_id), role_id)


def ping_mention(ping: str | None) -> str:
    """The text that pings: `@everyone`, `@here`, `<@&id>`, or nothing."""
    if not ping:
        return ""
    if ping in ("everyone", "here"):
        return f"@{ping}"
    return f"<@&{ping}>"


def ping_allowed_mentions(ping: str | None) -> dict[str, Any]:
    """Discord's allowed_mentions that let exactly this one ping through and nothing else."""
    allowed: dict[str, Any] = {"parse": [], "replied_user": False}
    if ping in ("everyone", "here"):
        allowed["parse"] = ["everyone"]  # Discord has no separate switch for @here
    elif ping:
        allowed["roles"] = [ping]
    return allowed


def describe_ping(ping: str | None) -> str:
    if not ping:
        return "none"
    return ping_mention(ping)
