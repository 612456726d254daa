"""Guild scheduled events for the fake Discord: `POST/GET /guilds/{id}/scheduled-events`, `PATCH .../{event id}`.

Checked against Discord's docs (discord-api-docs, resources/guild-scheduled-event, and the permission split of
PR #7991, in force for bots since 2026-02-23):
- name 1-100 characters, description up to 1,000, `privacy_level` 2 (GUILD_ONLY) only;
- EXTERNAL (`entity_type` 3): `channel_id` null, `entity_metadata.location` 1-100 characters and
  `scheduled_end_time` required; the end after the start; a new event's start not in the past;
- at most 100 SCHEDULED or ACTIVE events per guild;
- status SCHEDULED(1) -> ACTIVE(2) -> COMPLETED(3), or SCHEDULED -> CANCELED(4); a COMPLETED or CANCELED event
  can no longer be changed;
- a PATCH may move `scheduled_start_time`, not into the past (moving a started event's: not verified, allowed);
- creating needs CREATE_EVENTS (MANAGE_EVENTS alone no longer does); changing needs MANAGE_EVENTS, or
  CREATE_EVENTS for an event the bot created; else 403 50013. An unknown event is 404 10070.
Not verified in the docs, so kept permissive: starting (SCHEDULED -> ACTIVE) before the scheduled start.
The bot has no GUILD_SCHEDULED_EVENTS intent, so no gateway event is dispatched for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.discord_payloads import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    JSON,
    FakeGuild,
    FormErrors,
    permission_value,
)

__all__ = [
    "CREATE_EVENTS",
    "MANAGE_EVENTS",
    "EventApiError",
    "FakeScheduledEvent",
    "ScheduledEvents",
    "guild_permissions",
]

CREATE_EVENTS = permission_value("create_events")
MANAGE_EVENTS = permission_value("manage_events")
SCHEDULED, ACTIVE, COMPLETED, CANCELED = 1, 2, 3, 4
EXTERNAL = 3
GUILD_ONLY = 2
MAX_OPEN_EVENTS = 100
_TRANSITIONS = {SCHEDULED: {ACTIVE, CANCELED}, ACTIVE: {COMPLETED}}


class EventApiError(Exception):
    """Discord's answer refusing a request: status, JSON error code and message, form errors."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors


def guild_permissions(guild: FakeGuild, user_id: int) -> int:
    """A member's guild-wide permissions (its roles), as Discord resolves them outside any channel."""
    if user_id == guild.owner_id:
        return ALL_PERMISSIONS
    member = guild.members[user_id]
    perms = guild.everyone_role.permissions
    for role_id in member.role_ids:
        if role_id in guild.roles:
            perms |= guild.roles[role_id].permissions
    return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms


@dataclass(slots=True)
class FakeScheduledEvent:
    id: int
    guild_id: int
    creator_id: int
    name: str
    description: str | None
    start: datetime
    end: datetime | None
    location: str | None
    status: int = SCHEDULED
    entity_type: int = EXTERNAL
    privacy_level: int = GUILD_ONLY
    edits: list[JSON] = field(default_factory=list)  # each accepted PATCH body, in order
    deleted: bool = False

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "guild_id": str(self.guild_id),
            "channel_id": None,
            "creator_id": str(self.creator_id),
            "name": self.name,
            "description": self.description,
            "scheduled_start_time": self.start.isoformat(),
            "scheduled_end_time": self.end.isoformat() if self.end else None,
            "privacy_level": self.privacy_level,
            "status": self.status,
            "entity_type": self.entity_type,
            "entity_id": None,
            "entity_metadata": {"location": self.location} if self.location is not None else None,
            "recurrence_rule": None,
            "image": None,
        }


def _time(errors: FormErrors, name: str, value: Any, *, required: bool) -> datetime | None:
    if value is None:
        if required:
            errors.add([name], "BASE_TYPE_REQUIRED", "This field is required")
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        errors.add([name], "DATE_TIME_TYPE_PARSE", "Could not parse date time.")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class ScheduledEvents:
    """Every guild's scheduled events, and the rules Discord applies to them."""

    def __init__(self, next_id: Callable[[], int], *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._next_id = next_id
        self.now = now
        self.events: dict[int, FakeScheduledEvent] = {}

    def in_guild(self, guild_id: int, *, open_only: bool = False) -> list[FakeScheduledEvent]:
        return [
            e
            for e in self.events.values()
            if e.guild_id == guild_id and not e.deleted and (not open_only or e.status in (SCHEDULED, ACTIVE))
        ]

    def delete(self, event_id: int) -> None:
        """A human deletes the event."""
        self.events[event_id].deleted = True

    def create(self, guild: FakeGuild, bot_id: int, body: Any) -> FakeScheduledEvent:
        perms = guild_permissions(guild, bot_id)
        if not perms & CREATE_EVENTS:
            raise EventApiError(403, 50013, "Missing Permissions")
        if not isinstance(body, dict):
            raise EventApiError(400, 50035, "Invalid Form Body")
        errors = FormErrors()
        errors.max_length(["name"], body.get("name"), 100, required=True)
        errors.max_length(["description"], body.get("description"), 1000)
        if body.get("privacy_level") != GUILD_ONLY:
            errors.add(["privacy_level"], "BASE_TYPE_CHOICES", "Value must be one of {2}.")
        if body.get("entity_type") != EXTERNAL:  # the only kind this fake models
            errors.add(["entity_type"], "BASE_TYPE_CHOICES", "Value must be one of {3}.")
        if body.get("channel_id") is not None:
            errors.add(["channel_id"], "GUILD_SCHEDULED_EVENT_CHANNEL_NOT_NULL", "Must be null for EXTERNAL.")
        metadata = body.get("entity_metadata")
        location = metadata.get("location") if isinstance(metadata, dict) else None
        errors.max_length(["entity_metadata", "location"], location, 100, required=True)
        start = _time(errors, "scheduled_start_time", body.get("scheduled_start_time"), required=True)
        end = _time(errors, "scheduled_end_time", body.get("scheduled_end_time"), required=True)
        if start is not None and start < self.now():
            errors.add(["scheduled_start_time"], "GUILD_SCHEDULED_EVENT_SCHEDULE_PAST", "Cannot schedule in the past.")
        if start is not None and end is not None and end <= start:
            errors.add(["scheduled_end_time"], "GUILD_SCHEDULED_EVENT_END_BEFORE_START", "End must be after start.")
        if errors:
            raise EventApiError(400, 50035, "Invalid Form Body", errors.tree)
        if len(self.in_guild(guild.id, open_only=True)) >= MAX_OPEN_EVENTS:
            raise EventApiError(400, 30038, "Maximum number of guild scheduled events reached (100)")
        assert start is not None  # validated above
        event = FakeScheduledEvent(
            id=self._next_id(),
            guild_id=guild.id,
            creator_id=bot_id,
            name=body["name"],
            description=body.get("description"),
            start=start,
            end=end,
            location=location,
        )
        self.events[event.id] = event
        return event

    def get(self, guild: FakeGuild, raw_id: str) -> FakeScheduledEvent:
        event = self.events.get(int(raw_id))
        if event is None or event.deleted or event.guild_id != guild.id:
            raise EventApiError(404, 10070, "Unknown Guild Scheduled Event")
        return event

    def edit(self, guild: FakeGuild, bot_id: int, raw_id: str, body: Any) -> FakeScheduledEvent:
        event = self.get(guild, raw_id)
        perms = guild_permissions(guild, bot_id)
        if not (perms & MANAGE_EVENTS or (perms & CREATE_EVENTS and event.creator_id == bot_id)):
            raise EventApiError(403, 50013, "Missing Permissions")
        if not isinstance(body, dict):
            raise EventApiError(400, 50035, "Invalid Form Body")
        if event.status in (COMPLETED, CANCELED):
            raise EventApiError(400, 180000, "Cannot modify a finished event")
        errors = FormErrors()
        if "name" in body:
            errors.max_length(["name"], body["name"], 100, required=True)
        if "description" in body:
            errors.max_length(["description"], body["description"], 1000)
        start = event.start
        if "scheduled_start_time" in body:
            moved = _time(errors, "scheduled_start_time", body["scheduled_start_time"], required=True)
            if moved is not None and moved < self.now():
                errors.add(
                    ["scheduled_start_time"], "GUILD_SCHEDULED_EVENT_SCHEDULE_PAST", "Cannot schedule in the past."
                )
            elif moved is not None:
                start = moved
        end = event.end
        if "scheduled_end_time" in body:
            end = _time(errors, "scheduled_end_time", body["scheduled_end_time"], required=True)
        if end is not None and end <= start:
            errors.add(["scheduled_end_time"], "GUILD_SCHEDULED_EVENT_END_BEFORE_START", "End must be after start.")
        status = body.get("status", event.status)
        if status != event.status and status not in _TRANSITIONS.get(event.status, set()):
            errors.add(["status"], "GUILD_SCHEDULED_EVENT_INVALID_STATUS_TRANSITION", "Invalid status transition.")
        if errors:
            raise EventApiError(400, 50035, "Invalid Form Body", errors.tree)
        event.name = body.get("name", event.name)
        event.description = body.get("description", event.description)
        event.start = start
        event.end = end
        event.status = status
        event.edits.append(body)
        return event
