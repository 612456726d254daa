"""EventSub push as one service the bot starts and stops: the conduit, its shards (WebSocket sessions the
bot opens, or the operator's webhook), the subscriptions, and the messages handed to the PushHandler.

Nothing here is needed for the bot to work: polling stays on for every streamer, so while Twitch or the
socket is down, or before the first bind, the bot is exactly as it is without push (a poll runs each time
a shard is served again, since Twitch never replays what it could not deliver).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from twitch_notifier.core.ports import EventSubApi, PushStore
from twitch_notifier.core.push import PushHandler, PushStats
from twitch_notifier.eventsub.conduit import ConduitKeeper, ConduitLost
from twitch_notifier.eventsub.socket import KEEPALIVE_SECONDS, ShardSocket
from twitch_notifier.eventsub.sync import SubscriptionSync, SyncSummary
from twitch_notifier.eventsub.webhook import WebhookReceiver, WebhookStats
from twitch_notifier.twitch.errors import TwitchAPIError, TwitchError
from twitch_notifier.twitch.eventsub import EventSubMessage

__all__ = ["SHARD_CHECK_INTERVAL", "WEBSOCKET_SHARDS", "EventSubService", "EventSubStatus", "Transport"]

_log = logging.getLogger(__name__)

WEBSOCKET_SHARDS = 2
"""Two sessions, two shards: Twitch retries a notification once on another shard when the hashed one is
down (facts §2), so one socket being replaced loses nothing."""
SHARD_CHECK_INTERVAL = 120.0
"""How often the shards' status is read back from Twitch (a disabled-shard notice can itself be lost)."""
START_BACKOFF_MAX = 60.0


class Transport(StrEnum):
    WEBSOCKET = "websocket"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class EventSubStatus:
    """What /healthz and /metrics show of push."""

    transport: str
    connected: bool
    """At least one shard is served (its session bound, or the webhook shard enabled)."""
    shards_connected: int
    shards_total: int
    conduit_id: str | None
    subscriptions: SyncSummary
    push: PushStats
    webhook: WebhookStats | None = None
    reconnects: int = 0


class EventSubService:
    """See the module docstring. `start()` returns at once; everything runs in background tasks."""

    def __init__(
        self,
        *,
        transport: Transport,
        twitch: EventSubApi,
        store: PushStore,
        handler: PushHandler,
        websocket_url: str = "",
        callback_url: str = "",
        webhook_path: str = "",
        secret: str = "",
        on_resumed: Callable[[], None] | None = None,
        shard_count: int | None = None,
        keepalive_seconds: int = KEEPALIVE_SECONDS,
        shard_check_interval: float = SHARD_CHECK_INTERVAL,
        socket_backoff: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self._twitch = twitch
        self.handler = handler
        self.on_resumed = on_resumed
        count = shard_count or (WEBSOCKET_SHARDS if transport is Transport.WEBSOCKET else 1)
        self._store = store
        self.keeper = ConduitKeeper(twitch, store, shard_count=count)
        self.sync = SubscriptionSync(twitch, store, self.keeper, monotonic=monotonic)
        handler.on_revocation = self.sync.revoked
        self._websocket_url = websocket_url
        self._callback_url = callback_url
        self._secret = secret
        self._shard_check_interval = shard_check_interval
        self._rng = random.Random()  # noqa: S311 - jitter
        self._tasks: set[asyncio.Task[None]] = set()
        self._webhook_enabled = False
        self.sockets: list[ShardSocket] = []
        self.receiver: WebhookReceiver | None = None
        if transport is Transport.WEBHOOK:
            self.receiver = WebhookReceiver(secret=secret, path=webhook_path, on_message=self._on_webhook)
        else:
            self.sockets = [
                ShardSocket(
                    websocket_url,
                    shard_id=str(index),
                    bind=functools.partial(self._bind_socket, str(index)),
                    on_message=self._on_message,
                    on_bound=self._bound,
                    on_handover=self._handed_over,
                    keepalive_seconds=keepalive_seconds,
                    backoff_base=socket_backoff,
                    monotonic=monotonic,
                )
                for index in range(count)
            ]

    # ---------------------------------------------------------------------------------------- control

    def start(self) -> None:
        self._spawn(self._start(), "EventSub start-up")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for socket in self.sockets:
            await socket.stop()
        if self.receiver is not None:
            await self.receiver.close()
        await self.handler.close()

    def followed_changed(self) -> None:
        """Someone followed or unfollowed a streamer: subscriptions follow within a second or two."""
        self.sync.request()
        if self.status().connected:
            self._spawn(self._seed_channels(), "EventSub channel seed")

    def status(self) -> EventSubStatus:
        summary = self.sync.summary()
        if self.transport is Transport.WEBHOOK:
            served = 1 if self._webhook_enabled else 0
            total = 1
        else:
            served = sum(1 for s in self.sockets if s.connected)
            total = len(self.sockets)
        return EventSubStatus(
            transport=str(self.transport),
            connected=served > 0,
            shards_connected=served,
            shards_total=total,
            conduit_id=self.keeper.conduit_id,
            subscriptions=summary,
            push=self.handler.stats,
            webhook=self.receiver.stats() if self.receiver is not None else None,
            reconnects=sum(s.stats().reconnects for s in self.sockets),
        )

    # -------------------------------------------------------------------------------------- start-up

    async def _start(self) -> None:
        """Find the conduit (retrying while Twitch is unreachable), then serve its shards and sync."""
        failures = 0
        while True:
            try:
                await self.keeper.ensure()
                break
            except TwitchError as exc:
                failures += 1
                delay = self._retry_delay(failures)
                _log.warning("EventSub push is not set up yet (%s); polling meanwhile, retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
        self._spawn(self.sync.run(), "EventSub subscriptions")
        if self.transport is Transport.WEBSOCKET:
            for socket in self.sockets:
                socket.start()
        else:
            await self._keep_webhook_bound()
            await self._await_verification()
        self._spawn(self._watch_shards(), "EventSub shard check")

    async def _bind_socket(self, shard_id: str, session_id: str) -> bool:
        return await self._bind(functools.partial(self.keeper.bind_websocket, shard_id, session_id))

    async def _bind_webhook(self) -> bool:
        return await self._bind(functools.partial(self.keeper.bind_webhook, "0", self._callback_url, self._secret))

    async def _bind(self, bind: Callable[[], Awaitable[bool]]) -> bool:
        """Bind a shard; if Twitch lost the conduit, the keeper has made a new one: subscribe everything on
        it again (a full pass) and bind there."""
        try:
            return await bind()
        except ConduitLost:
            self.sync.request(full=True)
            return await bind()

    def _retry_delay(self, failures: int) -> float:
        """Seconds before set-up is tried again after `failures` failures in a row (jittered, capped)."""
        return self._rng.uniform(1, min(START_BACKOFF_MAX, 2.0**failures))

    def _bound(self, first: bool) -> None:
        self._connected_again()
        if not first and self.on_resumed is not None:
            self.on_resumed()  # what was pushed while the shard was down is lost: poll now

    def _connected_again(self) -> None:
        """A shard is served (again): learn the channels not known yet."""
        self._spawn(self._seed_channels(), "EventSub channel seed")

    async def _seed_channels(self) -> None:
        """Title and category of every followed streamer not known yet, in batched look-ups (100 per
        request), so a go-live has them even if Twitch's look-up at that moment fails (channel.update
        keeps them current)."""
        try:
            missing = self.handler.unknown(await self._store.monitored_user_ids())
            if missing:
                await self.handler.seed(missing)
        except TwitchError as exc:
            _log.info("Could not read the followed channels ahead of their go-lives (%s); looked up then", exc)

    def _handed_over(self, session_id: str) -> None:
        """After a session_reconnect, make sure Twitch moved the shard to the new session (undocumented
        for conduits, facts §3): read the shards back and re-bind if it did not."""
        self._spawn(self._check_after_handover(), "EventSub handover check")
        if self.on_resumed is not None:
            self.on_resumed()  # a handover should lose nothing; a poll makes sure of it

    async def _check_after_handover(self) -> None:
        try:
            await self._check_shards()
        except TwitchError as exc:
            _log.warning("Could not check the EventSub shards after a reconnect (%s)", exc)

    async def _keep_webhook_bound(self) -> None:
        """Bind shard 0 to the webhook; Twitch then verifies it with a challenge the receiver answers."""
        failures = 0
        while True:
            try:
                if await self._bind_webhook():
                    return
            except TwitchError as exc:
                _log.warning("Could not bind the EventSub webhook shard (%s)", exc)
            failures += 1
            await asyncio.sleep(self._retry_delay(failures))

    async def _await_verification(self, attempts: int = 30) -> None:
        """Twitch verifies a webhook shard with a challenge just after the bind: read its status back
        (every second, for a while) so push counts as up as soon as it is."""
        for _ in range(attempts):
            try:
                # A failed verification is final (Twitch sends one challenge): the check binds again at once.
                await self._check_shards()
            except TwitchError as exc:
                _log.debug("Could not read the EventSub shards (%s)", exc)
            if self._webhook_enabled:
                return
            await asyncio.sleep(1.0)

    async def _watch_shards(self) -> None:
        """Read the shards back from Twitch now and then: re-bind one that Twitch disabled behind our back."""
        while True:
            try:
                await self._check_shards()
            except TwitchError as exc:
                _log.debug("Could not read the EventSub shards (%s)", exc)
            await asyncio.sleep(self._shard_check_interval)

    async def _check_shards(self) -> None:
        conduit_id = await self.keeper.ensure()
        try:
            listed = await self._twitch.get_conduit_shards(conduit_id)
        except TwitchAPIError as exc:
            if exc.status != HTTPStatus.NOT_FOUND:
                raise
            await self.keeper.lost(conduit_id)  # deleted by Twitch: a new one, every subscription again
            self.sync.request(full=True)
            conduit_id = await self.keeper.ensure()
            listed = await self._twitch.get_conduit_shards(conduit_id)
        shards = {shard.id: shard for shard in listed}
        if self.transport is Transport.WEBHOOK:
            shard = shards.get("0")
            was = self._webhook_enabled
            self._webhook_enabled = shard is not None and shard.status == "enabled" and shard.method == "webhook"
            if self._webhook_enabled and not was:
                self._connected_again()
                if self.on_resumed is not None:
                    self.on_resumed()
            pending = shard is not None and shard.status == "webhook_callback_verification_pending"
            if not self._webhook_enabled and not pending:
                _log.warning("The EventSub webhook shard is %s; binding it again", shard.status if shard else "missing")
                await self._bind_webhook()
            return
        for socket in self.sockets:
            shard = shards.get(socket.shard_id)
            session_id = socket.session_id
            if session_id is None:
                continue
            if shard is None or shard.status != "enabled" or shard.session_id != session_id:
                _log.warning(
                    "EventSub shard %s is not on session %s at Twitch; binding it again", socket.shard_id, session_id
                )
                await self._bind_socket(socket.shard_id, session_id)

    # -------------------------------------------------------------------------------------- messages

    async def _on_message(self, message: EventSubMessage, received_at: float) -> None:
        await self.handler.handle(message, received_at)

    async def _on_webhook(self, message: EventSubMessage) -> None:
        if not self._webhook_enabled:
            self._webhook_enabled = True  # a delivery proves the shard is enabled
            self._connected_again()
        await self.handler.handle(message)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("EventSub task %s stopped", task.get_name(), exc_info=task.exception())
