"""One EventSub WebSocket session serving one conduit shard, kept alive for as long as the bot runs.

Facts §3: welcome → bind the shard within 10 s (PATCH, by the `bind` callback) → keepalives and
notifications; `session_reconnect` is followed by connecting to its URL as given and reading the old
socket until the new one's welcome; a watchdog opens a fresh session when nothing (not even a keepalive)
arrives within the welcome's keepalive_timeout_seconds plus a grace; after a close, a loss or a refused
upgrade the socket reconnects with jittered backoff capped at BACKOFF_MAX. The bot never sends a data
frame (Twitch closes with 4001); aiohttp answers pings with pongs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from twitch_notifier.twitch.eventsub import (
    EventSubMessage,
    MalformedMessage,
    Notification,
    Reconnect,
    Revocation,
    Welcome,
    parse_envelope,
)

__all__ = ["BACKOFF_MAX", "KEEPALIVE_SECONDS", "WATCHDOG_GRACE", "ShardSocket", "SocketStats", "with_keepalive"]

_log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 30
"""Asked for in the URL (Twitch allows 10-600): a silent link is noticed within this plus the grace."""
WATCHDOG_GRACE = 5.0
"""Slack on top of the welcome's keepalive_timeout_seconds before the watchdog gives up on a session."""
WELCOME_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
"""Reconnect delays grow from BACKOFF_BASE, with full jitter, to at most this."""
MAX_FRAME = 1024 * 1024
"""Twitch's messages are a few kilobytes; a bigger frame is refused by aiohttp rather than buffered."""
# Close codes that mean the bot did something wrong (facts §3): logged as errors, not as weather.
_BUG_CODES = {4001: "the bot sent a data frame", 4002: "the bot missed a ping", 4003: "the shard was not bound in time"}

MessageSink = Callable[[EventSubMessage, float], Awaitable[None]]
Binder = Callable[[str], Awaitable[bool]]


def with_keepalive(url: str, seconds: int) -> str:
    """The EventSub URL with `keepalive_timeout_seconds` set (a query the operator gave is kept)."""
    parts = urlsplit(url)
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("keepalive_timeout_seconds="))
    extra = urlencode({"keepalive_timeout_seconds": seconds})
    return urlunsplit(parts._replace(query=f"{query}&{extra}" if query else extra))


@dataclass(frozen=True, slots=True)
class SocketStats:
    connected: bool
    session_id: str | None
    connects: int
    reconnects: int
    handovers: int
    watchdog_timeouts: int
    bind_failures: int


_RECONNECT_FAILED = object()


class _SessionEnded(Exception):
    """The session in hand is over (closed, lost or silent); the reason is logged."""


class ShardSocket:
    """Keeps shard `shard_id` of the conduit served by a live WebSocket session (see module docstring).

    `bind(session_id)` PATCHes the shard onto a session and says whether Twitch took it; `on_message`
    receives every notification and revocation in order, one at a time (a go-live is never overtaken by
    the offline that follows it); `on_bound(first)` is told every time the shard is served again after a
    fresh bind, `on_handover(session_id)` after a session_reconnect handed it to a new session."""

    def __init__(
        self,
        url: str,
        *,
        shard_id: str,
        bind: Binder,
        on_message: MessageSink,
        on_bound: Callable[[bool], None] | None = None,
        on_handover: Callable[[str], None] | None = None,
        session: aiohttp.ClientSession | None = None,
        keepalive_seconds: int = KEEPALIVE_SECONDS,
        watchdog_grace: float = WATCHDOG_GRACE,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = with_keepalive(url, keepalive_seconds)
        self.shard_id = shard_id
        self._bind = bind
        self._on_message = on_message
        self._on_bound = on_bound
        self._on_handover = on_handover
        self._session = session
        self._owns_session = session is None
        self._watchdog_grace = watchdog_grace
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._monotonic = monotonic
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography
        self._task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[tuple[EventSubMessage, float]] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = False
        self._session_id: str | None = None
        self._keepalive: float = keepalive_seconds
        self._connects = 0
        self._reconnects = 0
        self._handovers = 0
        self._watchdog_timeouts = 0
        self._bind_failures = 0
        self._ever_bound = False

    # ------------------------------------------------------------------------------------------ control

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"EventSub shard {self.shard_id}")
            self._consumer = asyncio.create_task(self._consume(), name=f"EventSub shard {self.shard_id} messages")

    async def stop(self) -> None:
        for task in (self._task, self._consumer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._consumer = None
        self._connected = False
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def drain(self) -> None:
        """Wait until every message received so far has been handed to `on_message` (for tests)."""
        await self._queue.join()

    @property
    def connected(self) -> bool:
        """True while a session is welcomed, bound to the shard, and not given up on."""
        return self._connected

    @property
    def session_id(self) -> str | None:
        return self._session_id if self._connected else None

    def stats(self) -> SocketStats:
        return SocketStats(
            connected=self._connected,
            session_id=self.session_id,
            connects=self._connects,
            reconnects=self._reconnects,
            handovers=self._handovers,
            watchdog_timeouts=self._watchdog_timeouts,
            bind_failures=self._bind_failures,
        )

    # --------------------------------------------------------------------------------------------- loop

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                served = await self._serve_one()
            except _SessionEnded as exc:
                served = exc.args[1] if len(exc.args) > 1 else False
                _log.warning("EventSub shard %s: %s", self.shard_id, exc.args[0])
            except Exception:
                served = False
                _log.exception("EventSub shard %s: unexpected error; reconnecting", self.shard_id)
            self._connected = False
            self._reconnects += 1
            failures = 0 if served else failures + 1
            await asyncio.sleep(self._delay(failures))

    def _delay(self, failures: int) -> float:
        """A session that served a while is replaced at once (a short jitter); failures back off."""
        if failures == 0:
            return self._rng.uniform(0, self._backoff_base / 4)
        return self._rng.uniform(
            self._backoff_base / 2, min(self._backoff_max, self._backoff_base * 2 ** (failures - 1))
        )

    async def _serve_one(self) -> bool:
        """Connect, welcome, bind, then read until the session ends; True if it got as far as serving."""
        ws = await self._connect(self._url)
        try:
            welcome = await self._welcome(ws)
            if not await self._bind_session(welcome.session.id):
                raise _SessionEnded(f"Twitch did not take session {welcome.session.id} for the shard", False)
            self._adopt(ws, welcome)
            first = not self._ever_bound
            self._ever_bound = True
            _log.info("EventSub shard %s is served by session %s", self.shard_id, welcome.session.id)
            if self._on_bound is not None:
                self._on_bound(first)
            await self._read(ws)
            return True
        finally:
            ws_now = self._ws if self._ws is not None else ws
            for socket in {ws, ws_now}:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(socket.close(), 2.0)
            self._ws = None

    async def _connect(self, url: str) -> aiohttp.ClientWebSocketResponse:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        self._connects += 1
        try:
            return await self._session.ws_connect(
                url,
                autoping=True,
                heartbeat=None,
                max_msg_size=MAX_FRAME,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                compress=0,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _SessionEnded(f"could not open the EventSub WebSocket ({type(exc).__name__}: {exc})", False) from exc

    async def _welcome(self, ws: aiohttp.ClientWebSocketResponse) -> Welcome:
        """The first message of a session must be its welcome (within WELCOME_TIMEOUT)."""
        try:
            async with asyncio.timeout(WELCOME_TIMEOUT):
                message = await self._next_message(ws)
        except TimeoutError as exc:
            raise _SessionEnded("no welcome within 10 s of connecting", False) from exc
        if not isinstance(message, Welcome):
            raise _SessionEnded(f"the session began with {type(message).__name__}, not a welcome", False)
        return message

    async def _bind_session(self, session_id: str) -> bool:
        try:
            async with asyncio.timeout(WELCOME_TIMEOUT - 1):
                bound = await self._bind(session_id)
        except TimeoutError:
            bound = False
        except Exception:
            _log.exception("EventSub shard %s: binding session %s failed", self.shard_id, session_id)
            bound = False
        if not bound:
            self._bind_failures += 1
        return bound

    def _adopt(self, ws: aiohttp.ClientWebSocketResponse, welcome: Welcome) -> None:
        self._ws = ws
        self._session_id = welcome.session.id
        self._keepalive = float(welcome.session.keepalive_timeout_seconds or KEEPALIVE_SECONDS)
        self._connected = True

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read messages until the session ends; a session_reconnect swaps `ws` for its successor."""
        successor: asyncio.Task[tuple[aiohttp.ClientWebSocketResponse, Welcome]] | None = None
        try:
            while True:
                message = await self._next_or_successor(ws, successor)
                if message is _RECONNECT_FAILED:
                    successor = None
                    continue
                if isinstance(message, tuple):  # the successor is welcomed: it takes over
                    new_ws, welcome = message
                    successor = None
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(), 2.0)
                    ws = new_ws
                    self._adopt(ws, welcome)
                    self._handovers += 1
                    _log.info("EventSub shard %s handed over to session %s", self.shard_id, welcome.session.id)
                    if self._on_handover is not None:
                        self._on_handover(welcome.session.id)  # Twitch does not say the shard follows: check
                    continue
                if isinstance(message, Reconnect):
                    if successor is None and message.session.reconnect_url:
                        successor = asyncio.create_task(self._successor(message.session.reconnect_url))
                    continue
                if isinstance(message, Notification | Revocation):
                    self._queue.put_nowait((message, self._monotonic()))
        finally:
            if successor is not None:
                successor.cancel()
                with contextlib.suppress(BaseException):
                    new_ws, _ = await successor
                    await asyncio.wait_for(new_ws.close(), 2.0)

    async def _successor(self, url: str) -> tuple[aiohttp.ClientWebSocketResponse, Welcome]:
        """Facts §3: connect to reconnect_url exactly as given; the old socket is read until this welcome."""
        ws = await self._connect(url)
        try:
            return ws, await self._welcome(ws)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
            raise

    async def _next_or_successor(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        successor: asyncio.Task[tuple[aiohttp.ClientWebSocketResponse, Welcome]] | None,
    ) -> EventSubMessage | tuple[aiohttp.ClientWebSocketResponse, Welcome] | object:
        """The next message of `ws` (watched by the watchdog), the successor once it is welcomed, or
        _RECONNECT_FAILED when the successor could not be reached."""
        limit = self._keepalive + self._watchdog_grace
        reading = asyncio.ensure_future(self._next_message(ws))
        waiting: set[asyncio.Future[object]] = {reading}  # type: ignore[arg-type]
        if successor is not None:
            waiting.add(successor)  # type: ignore[arg-type]
        try:
            done, _ = await asyncio.wait(waiting, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            reading.cancel()
            raise
        if successor is not None and successor in done:
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading
            try:
                return successor.result()
            except _SessionEnded as exc:
                _log.warning("EventSub shard %s: the reconnect failed (%s)", self.shard_id, exc.args[0])
                # The old session goes on until Twitch closes it; the loop then reconnects from scratch.
                return _RECONNECT_FAILED
        if reading not in done:
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading
            self._watchdog_timeouts += 1
            raise _SessionEnded(f"nothing received for {limit:.0f} s; opening a fresh session", True)
        return reading.result()

    async def _next_message(self, ws: aiohttp.ClientWebSocketResponse) -> EventSubMessage:
        """The next readable message; unreadable frames are logged and skipped; the end raises."""
        while True:
            frame = await ws.receive()
            if frame.type is aiohttp.WSMsgType.TEXT:
                try:
                    return parse_envelope(json.loads(frame.data))
                except (ValueError, MalformedMessage) as exc:
                    _log.warning("EventSub shard %s: skipped an unreadable message (%s)", self.shard_id, exc)
                    continue
            if frame.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            if frame.type is aiohttp.WSMsgType.BINARY:
                _log.warning("EventSub shard %s: skipped a binary frame", self.shard_id)
                continue
            code = ws.close_code
            if code in _BUG_CODES:
                _log.error("EventSub closed the session with %s: %s (a bug)", code, _BUG_CODES[code])
            raise _SessionEnded(f"the session ended (close code {code}, {frame.type.name})", True)

    async def _consume(self) -> None:
        while True:
            message, received_at = await self._queue.get()
            try:
                await self._on_message(message, received_at)
            except Exception:
                _log.exception("Handling an EventSub %s failed", type(message).__name__)
            finally:
                self._queue.task_done()
