"""Discord gateway v10 (JSON text frames) for the fake Discord: sessions, RESUME replay, ops 7 and 9.

FakeDiscord owns one FakeGateway and feeds it dispatches; this module only speaks the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web

from tests.fakes.discord_payloads import INTENT_GUILD_MESSAGES, INTENT_GUILDS, JSON, PRIVILEGED_INTENTS

_log = logging.getLogger(__name__)

# Builds READY plus one GUILD_CREATE per guild for a new session: (session_id, shard) -> dispatches.
InitialDispatches = Callable[[str, list[int] | None], list[tuple[str, JSON]]]

RefusalMode = Literal["http", "close", "drop"]

# Roughly what Cloudflare serves in front of Discord when the origin is down (not JSON, not Discord's).
PROXY_502_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(slots=True)
class GatewayRefusal:
    """Refuse the next ``times`` websocket connection attempts (see FakeDiscord.refuse_gateway)."""

    times: int
    mode: RefusalMode = "http"
    status: int = 503
    body: str = PROXY_502_HTML
    close_code: int = 1001
    hits: int = 0


class _Connection:
    """One gateway websocket; a writer task keeps frames in the order they were queued."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: _Session | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())

    def send(self, frame: str) -> None:
        self._queue.put_nowait(frame)

    def send_op(self, op: int, data: Any = None) -> None:
        self.send(json.dumps({"op": op, "d": data, "s": None, "t": None}))

    async def _write(self) -> None:
        while True:
            frame = await self._queue.get()
            try:
                if not self.ws.closed:
                    await self.ws.send_str(frame)
            except ConnectionError:
                _log.debug("gateway write failed; the client is gone")
            finally:
                self._queue.task_done()

    async def drain(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(TimeoutError):
            await self.drain()
        await self.ws.close(code=code, message=reason.encode())

    async def stop(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


@dataclass(slots=True)
class _Session:
    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    log: list[tuple[int, str]] = field(default_factory=list)  # every dispatch, for RESUME replay
    conn: _Connection | None = None


def _intent_for(event: str) -> int:
    if event.startswith("MESSAGE_"):
        return INTENT_GUILD_MESSAGES
    if event.startswith(("GUILD_", "CHANNEL_")):
        return INTENT_GUILDS
    return 0


class FakeGateway:
    """The bot's gateway session across any number of websocket connections over time."""

    def __init__(
        self,
        token: str,
        *,
        initial_dispatches: InitialDispatches,
        members_chunk: Callable[[JSON], JSON | None],
        on_change: Callable[[], None],
        unhandled: list[tuple[str, str]],
        heartbeat_interval_ms: int = 41_250,
        allowed_privileged_intents: int = 0,
    ) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.allowed_privileged_intents = allowed_privileged_intents
        self.identify_payloads: list[JSON] = []
        self.resume_payloads: list[JSON] = []
        self.presence_updates: list[JSON] = []
        self.refusals: list[GatewayRefusal] = []
        self.refused: list[GatewayRefusal] = []  # one entry per refused connection attempt
        self.dispatched: list[str] = []  # every dispatch's event name, in order
        self.session: _Session | None = None
        self._initial_dispatches = initial_dispatches
        self._members_chunk = members_chunk
        self._on_change = on_change
        self._unhandled = unhandled
        self._connections: set[_Connection] = set()

    @property
    def connected(self) -> bool:
        return self.session is not None and self.session.conn is not None

    def dispatch(self, event: str, data: JSON) -> None:
        """Send an op-0 dispatch; buffered for RESUME replay while the bot is disconnected."""
        session = self.session
        if session is None:
            return  # not identified yet: READY and GUILD_CREATE will carry the state
        needed = _intent_for(event)
        if needed and not session.intents & needed:
            return
        session.seq += 1
        self.dispatched.append(event)
        frame = json.dumps({"op": 0, "t": event, "s": session.seq, "d": data})
        session.log.append((session.seq, frame))
        if session.conn is not None:
            session.conn.send(frame)

    async def drain(self) -> None:
        """Return once every queued frame has been written to the socket."""
        if self.session is not None and self.session.conn is not None:
            await self.session.conn.drain()

    def _live_connection(self) -> _Connection:
        if self.session is None or self.session.conn is None:
            raise RuntimeError("the bot has no live gateway connection")
        return self.session.conn

    async def disconnect(self, code: int = 4000, *, invalidate_session: bool = False) -> None:
        conn = self._live_connection()
        self._detach(conn)
        if invalidate_session:
            self.session = None
        await conn.close(code, "closed by the fake")

    async def send_reconnect(self) -> None:
        conn = self._live_connection()
        conn.send_op(7)
        await conn.drain()

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        conn = self._live_connection()
        if not resumable:
            self.session = None
        conn.send_op(9, resumable)
        await conn.drain()

    def refuse(self, times: int, *, mode: RefusalMode, status: int, body: str, close_code: int) -> GatewayRefusal:
        if mode not in ("http", "close", "drop"):
            raise ValueError(f"unknown refusal mode {mode!r}")
        refusal = GatewayRefusal(times, mode, status, body, close_code)
        self.refusals.append(refusal)
        return refusal

    def _take_refusal(self) -> GatewayRefusal | None:
        for refusal in self.refusals:
            if refusal.hits < refusal.times:
                refusal.hits += 1
                self.refused.append(refusal)
                return refusal
        return None

    async def _refuse(self, request: web.Request, refusal: GatewayRefusal) -> web.StreamResponse:
        if refusal.mode == "http":
            return web.Response(status=refusal.status, body=refusal.body.encode(), content_type="text/html")
        if refusal.mode == "drop":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never written: the connection is gone
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close(code=refusal.close_code, message=b"refused by the fake")
        return ws

    async def close_all(self) -> None:
        for conn in list(self._connections):
            await conn.ws.close(code=1001, message=b"fake Discord shutting down")

    def _detach(self, conn: _Connection) -> None:
        if conn.session is not None and conn.session.conn is conn:
            conn.session.conn = None
        conn.session = None

    async def handler(self, request: web.Request) -> web.StreamResponse:
        refusal = self._take_refusal()
        if refusal is not None:
            try:
                return await self._refuse(request, refusal)
            finally:
                self._on_change()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Connection(ws)
        self._connections.add(conn)
        try:
            if request.query.get("v") != "10" or request.query.get("encoding", "json") != "json":
                await conn.close(4012, "Invalid API version")
                return ws
            conn.send_op(10, {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-gateway"]})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_frame(conn, msg.data)
                else:
                    await conn.close(4002, "Error while decoding payload.")
        finally:
            self._detach(conn)
            await conn.stop()
            self._connections.discard(conn)
            self._on_change()
        return ws

    async def _on_frame(self, conn: _Connection, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            await conn.close(4002, "Error while decoding payload.")
            return
        op, data = msg.get("op"), msg.get("d")
        if op == 1:
            conn.send_op(11)
        elif op == 2:
            await self._identify(conn, data)
        elif op == 6:
            await self._resume(conn, data)
        elif conn.session is None:
            await conn.close(4003, "Not authenticated.")
        elif op == 3:
            self.presence_updates.append(data)
        elif op == 8:
            if (chunk := self._members_chunk(data)) is not None:
                self.dispatch("GUILD_MEMBERS_CHUNK", chunk)
        else:
            self._unhandled.append(("GATEWAY", f"op {op}"))
            await conn.close(4001, "Unknown opcode.")
        self._on_change()

    async def _identify(self, conn: _Connection, data: JSON) -> None:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return
        if data.get("token") != self.token:
            await conn.close(4004, "Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int):
            await conn.close(4013, "Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents:
            await conn.close(4014, "Disallowed intent(s).")
            return
        self.identify_payloads.append(data)
        session = _Session(secrets.token_hex(16), intents, data.get("shard"))
        self.session, session.conn, conn.session = session, conn, session
        for event, payload in self._initial_dispatches(session.id, session.shard):
            self.dispatch(event, payload)

    async def _resume(self, conn: _Connection, data: JSON) -> None:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return
        if data.get("token") != self.token:
            await conn.close(4004, "Authentication failed.")
            return
        session = self.session
        if session is None or data.get("session_id") != session.id:
            conn.send_op(9, False)
            return
        self.resume_payloads.append(data)
        if session.conn is not None:
            self._detach(session.conn)
        session.conn, conn.session = conn, session
        last = data.get("seq") or 0
        for seq, frame in session.log:
            if seq > last:
                conn.send(frame)
        self.dispatch("RESUMED", {"_trace": ["fake-gateway"]})
