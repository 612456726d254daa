"""Discord's guild scheduled events for core.live_events and core.schedule_events (core.ports.EventCalendar over
discord.py's HTTP client).

Each request waits for a background turn of the shared SendPacer (a new announcement never queues behind it), is
bounded like the announcer's, and Discord's failures become AnnounceError: EventsRefused for a missing
permission (checked in the cache first, so a server without it costs no request), MessageGone for a deleted event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import discord

from twitch_notifier.core.ports import AnnounceError, EventsRefused, MessageGone
from twitch_notifier.discord_io.announcer import CALL_TIMEOUT, GuildDirectory, bounded
from twitch_notifier.discord_io.pacer import SendPacer
from twitch_notifier.models import ListedEvent, ScheduledEventSpec

__all__ = ["EVENTS_PERMISSION", "MISSING_EVENTS_PERMISSION", "DiscordEventCalendar", "can_create_events"]

_log = logging.getLogger(__name__)

EVENTS_PERMISSION = "Create Events"
MISSING_EVENTS_PERMISSION = (
    f"I lack the **{EVENTS_PERMISSION}** permission, so Discord refuses me live events: grant it to my role "
    "(Server Settings → Roles), then turn `live_events` (or `schedule_events`) on again with `/settings set`"
)
# Discord's docs (guild-scheduled-event, and the permission split of discord-api-docs PR #7991 in force since
# 2026-02-23): creating an event needs CREATE_EVENTS (MANAGE_EVENTS alone no longer does for bots); changing one
# needs MANAGE_EVENTS, or CREATE_EVENTS for an event the bot created itself. So Create Events is all it needs.
_UNKNOWN_EVENT = 10070
START_MARGIN = timedelta(seconds=5)
"""A new event's start is at least this far ahead when the request leaves (clock skew, the trip to Discord)."""
_EXTERNAL = 3
_GUILD_ONLY = 2


def can_create_events(guild: discord.Guild) -> bool:
    """Whether the bot's cached permissions in `guild` let it create (and so run) its own events."""
    me = guild.me
    return me is not None and me.guild_permissions.create_events


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


class DiscordEventCalendar:
    """Implements core.ports.EventCalendar for the guilds of `guilds` (the bot's cache)."""

    def __init__(self, guilds: GuildDirectory, pacer: SendPacer, *, call_timeout: float = CALL_TIMEOUT) -> None:
        self._guilds = guilds
        self.pacer = pacer
        self.call_timeout = call_timeout
        self._abandoned: set[asyncio.Task[Any]] = set()

    def _client(self, guild_id: int) -> tuple[discord.Client, discord.Guild]:
        client = self._guilds.client
        guild = self._guilds(guild_id)
        if client is None or guild is None:
            raise AnnounceError("the server is not in the bot's cache", permanent=False)
        return client, guild

    async def create_event(self, guild_id: int, spec: ScheduledEventSpec) -> int:
        client, guild = self._client(guild_id)
        if not can_create_events(guild):
            raise EventsRefused(MISSING_EVENTS_PERMISSION, asked=False)
        await self.pacer.acquire(background=True)
        # The start was planned before the wait for a background turn, which can outlast its lead under load:
        # Discord refuses a start in the past, so a start gone stale is moved to a moment ahead of the request.
        start = max(spec.start, datetime.now(UTC) + START_MARGIN)
        end = max(spec.end, start + (spec.end - spec.start))
        payload: dict[str, Any] = {
            "name": spec.name,
            "description": spec.description,
            "privacy_level": _GUILD_ONLY,
            "entity_type": _EXTERNAL,
            "entity_metadata": {"location": spec.location},
            "scheduled_start_time": _iso(start),
            "scheduled_end_time": _iso(end),
        }
        data = await self._bounded(self._call(client.http.create_guild_scheduled_event(guild_id, **payload)))
        return int(data["id"])

    async def edit_event(
        self,
        guild_id: int,
        event_id: int,
        *,
        status: int | None = None,
        name: str | None = None,
        description: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        client, guild = self._client(guild_id)
        me = guild.me
        if me is None or not (me.guild_permissions.create_events or me.guild_permissions.manage_events):
            raise EventsRefused(MISSING_EVENTS_PERMISSION, asked=False)
        payload: dict[str, Any] = {}
        if status is not None:
            payload["status"] = status
        if name is not None:
            payload["name"] = name
        if description is not None:
            payload["description"] = description
        if start is not None:
            payload["scheduled_start_time"] = _iso(start)
        if end is not None:
            payload["scheduled_end_time"] = _iso(end)
        if not payload:
            return
        await self.pacer.acquire(background=True)
        await self._bounded(self._call(client.http.edit_scheduled_event(guild_id, event_id, **payload)))

    def may_create_events(self, guild_id: int) -> bool:
        guild = self._guilds(guild_id)
        return guild is not None and can_create_events(guild)

    async def list_events(self, guild_id: int) -> list[ListedEvent]:
        client, _guild = self._client(guild_id)
        await self.pacer.acquire(background=True)
        listed = await self._bounded(self._call(client.http.get_scheduled_events(guild_id, False)))
        me = client.user.id if client.user is not None else None
        events = []
        for data in listed:
            metadata = data.get("entity_metadata") or {}
            events.append(
                ListedEvent(
                    event_id=int(data["id"]),
                    status=int(data["status"]),
                    location=str(metadata.get("location") or ""),
                    start=datetime.fromisoformat(data["scheduled_start_time"]),
                    mine=me is not None and str(data.get("creator_id")) == str(me),
                )
            )
        return events

    @staticmethod
    async def _call(request: Coroutine[Any, Any, Any]) -> Any:
        """One request, Discord's failures as the ports' errors (inside the task, so a late failure is one too)."""
        try:
            return await request
        except discord.NotFound as exc:
            if exc.code == _UNKNOWN_EVENT:
                raise MessageGone("the event was deleted") from exc
            raise AnnounceError(f"Discord answered 404: {exc.text}", permanent=False) from exc
        except discord.Forbidden as exc:
            raise EventsRefused(MISSING_EVENTS_PERMISSION) from exc
        except discord.HTTPException as exc:
            # 400: a change Discord does not allow (an event a human already ended, say): asking again cannot help.
            raise AnnounceError(f"Discord answered {exc.status}: {exc.text}", permanent=exc.status < 500) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise AnnounceError(f"could not reach Discord: {exc!r}", permanent=False) from exc

    async def _bounded(self, request: Coroutine[Any, Any, Any]) -> Any:
        """At most call_timeout seconds, then given up on without cancelling it, as the announcer's calls."""
        return await bounded(request, self.call_timeout, self._abandoned)
