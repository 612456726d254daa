"""What the terminal and the HTML page show alike: an embed's colour, what an image URL of the bot's is, a
message's time as Discord writes it, and the words for a change to a channel's message."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CHANGE_LABELS", "DEFAULT_EMBED_COLOUR", "embed_colour", "image_label", "when"]

DEFAULT_EMBED_COLOUR = "#1e1f22"
"""Discord's bar for an embed without a colour."""
CHANGE_LABELS = {"posted": "new message", "edited": "message edited", "deleted": "message deleted"}


def embed_colour(embed: Mapping[str, Any]) -> str:
    """The embed's colour bar as #rrggbb."""
    colour = embed.get("color")
    return f"#{colour:06x}" if isinstance(colour, int) and 0 <= colour <= 0xFFFFFF else DEFAULT_EMBED_COLOUR


def image_label(url: str) -> str:
    """What an image URL of the bot's shows, in words (neither the terminal nor the offline page loads it)."""
    path = urlsplit(url).path
    name = path.rsplit("/", 1)[-1]
    if "/previews-ttv/" in path:
        return f"live preview ({name})"
    if "/ttv-boxart/" in path:
        return f"box art ({name})"
    if "profile_image" in path:
        return f"avatar ({name})"
    return name or url


def when(moment: datetime, now: datetime | None = None) -> str:
    """A message's time as Discord writes it, in this machine's time zone: "Today at 14:03", else the date."""
    local = moment.astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    return f"Today at {local:%H:%M}" if local.date() == today else f"{local:%d/%m/%Y %H:%M}"
