"""Per-server message templates and ping settings: parsing, validation and safe substitution.

Plain Python (no discord import): the bot validates what admins type here, messages.py renders with it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

PLACEHOLDERS: tuple[str, ...] = ("streamer", "title", "game", "url", "viewers", "ping")
DEFAULT_TEMPLATE = "\N{LARGE RED CIRCLE} **{streamer}** is live on Twitch!"
# The literal text of a template; the rest of Discord's 2,000 characters is left for the values.
TEMPLATE_MAX_LENGTH = 1000
CONTENT_LIMIT = 2000

END_ACTIONS: tuple[str, ...] = ("edit", "delete", "keep")
DEFAULT_END_ACTION = "edit"

# A ping is stored as text: "" (none), "everyone", "here", or a role id.
PING_NONE = ""
_ROLE_MENTION = re.compile(r"^<@&(\d{15,21})>$")
_ROLE_ID = re.compile(r"^(?:role:)?(\d{15,21})$")


class TemplateError(ValueError):
    """A template or ping an admin typed is not usable; the message is safe to show as is."""


# ------------------------------------------------------------------------------------------------ pings


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


def ping_allowed_mentions(ping: str | None) -> dict:
    """Discord's allowed_mentions that let exactly this one ping through and nothing else."""
    allowed: dict = {"parse": [], "replied_user": False}
    if ping in ("everyone", "here"):
        allowed["parse"] = ["everyone"]  # Discord has no separate switch for @here
    elif ping:
        allowed["roles"] = [ping]
    return allowed


def describe_ping(ping: str | None) -> str:
    if not ping:
        return "none"
    return ping_mention(ping)


# ------------------------------------------------------------------------------------------- templates


def placeholders_in(template: str) -> list[str]:
    """The placeholder names a template uses; raises TemplateError for malformed braces."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"The message has a stray `{{` or `}}` ({exc}). Placeholders look like `{{title}}`; "
            "write `{{{{` or `}}}}` for a literal brace."
        ) from None
    names: list[str] = []
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field == "" or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise TemplateError(f"`{shown}` is not a placeholder. Use {_known()}.")
        names.append(field)
    return names


def validate_template(template: str) -> str:
    """Check an admin's template; returns it stripped, or raises TemplateError naming the problem."""
    text = template.strip()
    if not text:
        raise TemplateError("The message can't be empty. Use `/settings reset` to go back to the default.")
    if len(text) > TEMPLATE_MAX_LENGTH:
        raise TemplateError(
            f"The message is {len(text):,} characters long; at most {TEMPLATE_MAX_LENGTH:,} are allowed "
            "(Discord allows 2,000 once the placeholders are filled in)."
        )
    unknown = [name for name in placeholders_in(text) if name not in PLACEHOLDERS]
    if unknown:
        listed = ", ".join(f"`{{{name}}}`" for name in dict.fromkeys(unknown))
        noun = "placeholder" if len(set(unknown)) == 1 else "placeholders"
        raise TemplateError(f"Unknown {noun} {listed}. Use {_known()}.")
    return text


def render_template(template: str | None, values: Mapping[str, str], limit: int = CONTENT_LIMIT) -> str:
    """Fill a validated template. The values are already escaped; each is cut so the result fits `limit`."""
    text = template or DEFAULT_TEMPLATE
    names = placeholders_in(text)
    literal_length = len(text.format_map(dict.fromkeys(PLACEHOLDERS, "")))
    budget = limit - literal_length
    filled = {name: values.get(name, "") for name in PLACEHOLDERS}
    if names and sum(len(filled[name]) for name in names) > budget:
        # Share what is left between the placeholders used: short values (the URL, the ping) keep their whole
        # length, the long ones split the rest.
        remaining = max(0, budget)
        caps: dict[str, int] = {}
        ordered = sorted(names, key=lambda name: len(filled[name]))
        for index, name in enumerate(ordered):
            take = min(len(filled[name]), remaining // (len(ordered) - index))
            caps[name] = min(caps.get(name, take), take)
            remaining -= take
        filled = {name: _cut(value, caps.get(name, len(value))) for name, value in filled.items()}
    return text.format_map(filled)[:limit]


def _cut(value: str, length: int) -> str:
    if len(value) <= length:
        return value
    if length <= 1:
        return ""
    cut = value[: length - 1]
    if cut.endswith("\\") and not cut.endswith("\\\\"):
        cut = cut[:-1]  # never leave half of an escape sequence
    return cut + "…"


def _known() -> str:
    return ", ".join(f"`{{{name}}}`" for name in PLACEHOLDERS)


# ---------------------------------------------------------------------------------------- game filters


def parse_game_list(text: str) -> list[str] | None:
    """Split a typed list of categories (`VALORANT, Minecraft`). None means "no filter" (`any`, empty)."""
    parts = [part.strip() for part in text.split(",")]
    names = list(dict.fromkeys(part for part in parts if part))
    if not names or (len(names) == 1 and names[0].lower() in ("any", "all", "none", "every", "*")):
        return None
    return names
