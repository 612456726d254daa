"""Per-server message templates and game filters: parsing, validation and safe substitution.

Plain Python (no discord import): the cogs validate what admins type here, messages.py renders with it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from twitch_notifier.rendering.limits import CONTENT_LIMIT

PLACEHOLDERS: tuple[str, ...] = ("streamer", "title", "game", "url", "viewers", "ping")
DEFAULT_TEMPLATE = "\N{LARGE RED CIRCLE} **{streamer}** is live on Twitch!"
# The literal text of a template; the rest of Discord's 2,000 characters is left for the values.
TEMPLATE_MAX_LENGTH = 1000


class TemplateError(ValueError):
    """A template, ping or filter an admin typed is not usable; the message is safe to show as is."""


# ------------------------------------------------------------------------------------------- templates


STRAY_CLOSING_BRACE = (
    "The message has a stray `}` without its `{`: placeholders look like `{title}`; write `}}` for a literal brace."
)
STRAY_OPENING_BRACE = (
    "The message has a stray `{` without its `}`: placeholders look like `{title}`; write `{{` for a literal brace."
)
UNREADABLE_BRACES = (
    "The message has a stray brace inside a placeholder: placeholders look like `{title}`; write `{{` or `}}` "
    "for a literal brace."
)


def placeholders_in(template: str) -> list[str]:
    """The placeholder names a template uses; raises TemplateError for malformed braces."""
    # Python's own messages ("Single '}' encountered in format string") mean nothing to an admin: find the
    # stray brace first and say which it is; whatever else Python refuses is a brace inside a placeholder.
    if problem := _brace_problem(template):
        raise TemplateError(problem)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise TemplateError(UNREADABLE_BRACES) from None
    names: list[str] = []
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field == "" or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise TemplateError(f"`{shown}` is not a placeholder. Use {_known()}.")
        names.append(field)
    return names


def _brace_problem(template: str) -> str | None:
    """What is wrong with the braces of `template` as str.format reads them, if a brace is unpaired."""
    index = 0
    while index < len(template):
        char = template[index]
        if template.startswith(("{{", "}}"), index):
            index += 2
        elif char == "{":
            close = template.find("}", index + 1)
            if close == -1:
                return STRAY_OPENING_BRACE
            index = close + 1
        elif char == "}":
            return STRAY_CLOSING_BRACE
        else:
            index += 1
    return None


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
