"""What the demo shows, as plain data: narration, the admin's commands with the bot's replies, and the messages
the bot posted, edited or deleted. The terminal and HTML renderers both draw from these values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["ChangeKind", "ChannelChange", "CommandRun", "Event", "Narration", "ShownMessage", "Sink", "Transcript"]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ShownMessage:
    """A message as Discord shows it: who posted it and when, its text, its embeds and its buttons."""

    author: str
    content: str
    embeds: tuple[JSON, ...]
    components: tuple[JSON, ...]
    at: datetime
    ephemeral: bool = False
    edited: bool = False


@dataclass(frozen=True, slots=True)
class Narration:
    """A step of the story: a heading and, optionally, a sentence on what happens behind it."""

    title: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CommandRun:
    """A member ran a slash command; `reply` is the bot's answer, `refused` Discord's reason not to deliver it."""

    user: str
    command: str
    channel: str
    reply: ShownMessage | None
    refused: str | None = None


ChangeKind = Literal["posted", "edited", "deleted"]


@dataclass(frozen=True, slots=True)
class ChannelChange:
    """A message of a channel as it is after the bot posted, edited or deleted it."""

    channel: str
    kind: ChangeKind
    message_id: int
    message: ShownMessage
    note: str = ""


Event = Narration | CommandRun | ChannelChange
Sink = Callable[[Event], None]


@dataclass(slots=True)
class Transcript:
    """Every event of one demo run, in order, and the names Discord shows for the ids in the messages."""

    server: str = "Demo Server"
    events: list[Event] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    """Channel and role ids -> their names, for `<#id>` and `<@&id>` mentions."""

    def add(self, event: Event) -> None:
        self.events.append(event)

    def changes(self, kind: ChangeKind | None = None) -> list[ChannelChange]:
        return [e for e in self.events if isinstance(e, ChannelChange) and kind in (None, e.kind)]

    def commands(self) -> list[CommandRun]:
        return [e for e in self.events if isinstance(e, CommandRun)]
