"""The bot's EventSub conduit: found (or, only if the app has none, created) at start-up, its id kept in
the database, and its shards bound to the bot's WebSocket sessions or to its webhook.

Facts §2: an app has at most 5 conduits and Twitch deletes one 72 h after its last enabled shard, so the
conduit is reused across restarts; a shard PATCH answers 202 even when it failed, so only the shards
listed in `data[]` count as bound (one in `errors[]` is retried by the caller).
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

from twitch_notifier.core.ports import EventSubApi, PushStore
from twitch_notifier.twitch.errors import TwitchAPIError

__all__ = ["CONDUIT_STATE_KEY", "ConduitKeeper", "ConduitLost"]

_log = logging.getLogger(__name__)

CONDUIT_STATE_KEY = "eventsub_conduit_id"


class ConduitLost(Exception):
    """Twitch no longer knows the conduit (deleted after 72 h without an enabled shard): a new one is made
    and every subscription must be created again on it."""


class ConduitKeeper:
    """Finds or creates the conduit and binds its shards (see module docstring)."""

    def __init__(self, twitch: EventSubApi, store: PushStore, *, shard_count: int) -> None:
        if shard_count < 1:
            raise ValueError("a conduit needs at least one shard")
        self._twitch = twitch
        self._store = store
        self.shard_count = shard_count
        self.conduit_id: str | None = None
        self._lock = asyncio.Lock()
        self.generation = 0
        """Bumped every time the conduit changes (a lost one replaced): subscriptions follow it."""

    async def ensure(self) -> str:
        """The conduit's id: the stored one if Twitch still lists it, else the app's existing one, else a
        new one; with at least `shard_count` shards. Raises TwitchError when Twitch cannot say."""
        async with self._lock:
            if self.conduit_id is not None:
                return self.conduit_id
            stored = await self._store.get_state(CONDUIT_STATE_KEY)
            conduits = await self._twitch.get_conduits()
            chosen = next((c for c in conduits if c.id == stored), None) or (conduits[0] if conduits else None)
            if chosen is None:
                chosen = await self._twitch.create_conduit(self.shard_count)
                _log.info("Created EventSub conduit %s with %d shards", chosen.id, chosen.shard_count)
            else:
                if stored and chosen.id != stored:
                    _log.warning("EventSub conduit %s is gone; reusing the app's conduit %s", stored, chosen.id)
                else:
                    _log.info("Reusing EventSub conduit %s", chosen.id)
                if chosen.shard_count < self.shard_count:
                    chosen = await self._twitch.update_conduit(chosen.id, self.shard_count)
            if chosen.id != stored:
                await self._store.set_state(CONDUIT_STATE_KEY, chosen.id)
                self.generation += 1
            self.conduit_id = chosen.id
            return chosen.id

    async def bind_websocket(self, shard_id: str, session_id: str) -> bool:
        return await self._bind(shard_id, {"method": "websocket", "session_id": session_id})

    async def bind_webhook(self, shard_id: str, callback: str, secret: str) -> bool:
        return await self._bind(shard_id, {"method": "webhook", "callback": callback, "secret": secret})

    async def _bind(self, shard_id: str, transport: dict[str, str]) -> bool:
        conduit_id = await self.ensure()
        try:
            result = await self._twitch.update_conduit_shards(conduit_id, [{"id": shard_id, "transport": transport}])
        except TwitchAPIError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                await self.lost(conduit_id)
                raise ConduitLost(conduit_id) from exc
            raise
        for failure in result.failed:
            if failure.id == shard_id:
                _log.warning("Twitch did not bind shard %s of conduit %s: %s", shard_id, conduit_id, failure.message)
                return False
        return any(shard.id == shard_id for shard in result.updated)

    async def lost(self, conduit_id: str) -> None:
        """Twitch says `conduit_id` no longer exists: forget it; the next `ensure()` finds or makes one."""
        async with self._lock:
            if self.conduit_id == conduit_id:
                _log.warning("EventSub conduit %s no longer exists; a new one is set up", conduit_id)
                self.conduit_id = None
                await self._store.set_state(CONDUIT_STATE_KEY, None)
