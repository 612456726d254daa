"""Discord gateway v10 (JSON text frames) for the fake Discord: sessions, RESUME replay, ops 7 and 9, sharding.

FakeDiscord owns one FakeGateway and feeds it dispatches; this module only speaks the protocol. Sharding follows
Discord's gateway docs ("Sharding", "Session Start Limit"): IDENTIFY's ``shard: [id, count]`` (none means
[0, 1]) is refused with 4010 when ``id >= count``, and with 4011 when that shard would hold more than
``max_guilds_per_shard`` guilds; a guild's events go only to the sessions of shard ``(guild_id >> 22) % count``,
events without a guild to shard 0; IDENTIFYs are bucketed by ``shard_id % max_concurrency``, one per bucket per
``identify_window_seconds`` (more gets op 9), and each session start is counted against ``session_start_total``:
an IDENTIFY with none left makes Discord end every session and reset the token.
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

# Builds READY plus one GUILD_CREATE per guild of its shard for a new session:
# (session_id, shard_id, num_shards, whether READY echoes the shard) -> dispatches.
InitialDispatches = Callable[[str, int, int, bool], list[tuple[str, JSON]]]

DEFAULT_MAX_GUILDS_PER_SHARD = 2500  # Discord: "Each shard can only support a maximum of 2500 guilds"
GUILDS_PER_RECOMMENDED_SHARD = 1000  # what Discord's recommendation works out to
_CLOCK_SLACK = 0.01  # a client that waited exactly the window must not be refused for a rounding error


@dataclass(slots=True)
class GatewayLimits:
    """Discord's sharding limits as the fake applies them. The defaults are Discord's; tests lower them (a
    ``max_guilds_per_shard`` of 3 instead of 2,500, an identify window of 50 ms instead of 5 s)."""

    max_guilds_per_shard: int = DEFAULT_MAX_GUILDS_PER_SHARD
    recommended_shards: int | None = None
    """What GET /gateway/bot recommends; None: one shard per 1,000 guilds the bot is in (at least one)."""
    max_concurrency: int = 1
    session_start_total: int = 1000
    session_reset_after_ms: int = 14_400_000
    identify_window_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class RefusedIdentify:
    """An IDENTIFY the fake started no session for, and how it answered (a close code, or "op 9")."""

    shard: Any
    answer: int | str
    reason: str


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
        self.closed_by_fake = False
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
        self.closed_by_fake = True
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
    shard_id: int = 0
    num_shards: int = 1
    seq: int = 0
    log: list[tuple[int, str]] = field(default_factory=list)  # every dispatch, for RESUME replay
    conn: _Connection | None = None

    def owns(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.num_shards == self.shard_id


def _intent_for(event: str) -> int:
    if event.startswith("MESSAGE_"):
        return INTENT_GUILD_MESSAGES
    if event.startswith(("GUILD_", "CHANNEL_")):
        return INTENT_GUILDS
    return 0


def _parse_shard(raw: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as (id, count): absent means (0, 1); anything Discord would refuse is None."""
    if raw is None:
        return 0, 1
    if not isinstance(raw, list) or len(raw) != 2 or not all(type(v) is int for v in raw):
        return None
    shard_id, count = raw
    return (shard_id, count) if 0 <= shard_id < count else None


class FakeGateway:
    """The bot's gateway sessions (one per shard it identifies) across any number of websocket connections."""

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
        limits: GatewayLimits | None = None,
        shard_guild_count: Callable[[int, int], int] = lambda shard_id, num_shards: 0,
        reset_token: Callable[[], str] | None = None,
    ) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.allowed_privileged_intents = allowed_privileged_intents
        self.limits = limits or GatewayLimits()
        self.identify_payloads: list[JSON] = []  # the IDENTIFYs that started a session
        self.refused_identifies: list[RefusedIdentify] = []
        self.session_starts = 0  # counted against limits.session_start_total
        self.resume_payloads: list[JSON] = []
        self.presence_updates: list[JSON] = []
        self.refusals: list[GatewayRefusal] = []
        self.refused: list[GatewayRefusal] = []  # one entry per refused connection attempt
        self.dispatched: list[str] = []  # every dispatch's event name, in order (once per session sent to)
        self.dispatched_on: list[tuple[str, int]] = []  # (event name, shard id of the session it went to)
        self.sessions: dict[str, _Session] = {}  # by session id: live ones, and resumable ones without a socket
        self._initial_dispatches = initial_dispatches
        self._members_chunk = members_chunk
        self._on_change = on_change
        self._unhandled = unhandled
        self._shard_guild_count = shard_guild_count
        self._reset_token = reset_token
        self._connections: set[_Connection] = set()
        self._bucket_identified: dict[int, float] = {}  # rate-limit bucket -> loop time of its last IDENTIFY

    @property
    def session(self) -> _Session | None:
        """The most recent session, if any (the only one of an unsharded bot)."""
        return next(reversed(self.sessions.values()), None)

    @property
    def connected(self) -> bool:
        """Some session has a live socket."""
        return any(s.conn is not None for s in self.sessions.values())

    @property
    def connected_shards(self) -> list[int]:
        """The shard ids that have a session with a live socket, sorted."""
        return sorted({s.shard_id for s in self.sessions.values() if s.conn is not None})

    @property
    def session_starts_remaining(self) -> int:
        return max(0, self.limits.session_start_total - self.session_starts)

    def sessions_for(self, guild_id: int | None) -> list[_Session]:
        """The sessions a guild's events go to (events without a guild: shard 0's)."""
        if guild_id is None:
            return [s for s in self.sessions.values() if s.shard_id == 0]
        return [s for s in self.sessions.values() if s.owns(guild_id)]

    def dispatch(self, event: str, data: JSON, *, guild_id: int | None = None) -> list[int]:
        """Send an op-0 dispatch to the sessions of the guild's shard (shard 0's without a guild), buffered for
        RESUME replay while a session is disconnected; returns the shard ids it went to."""
        needed = _intent_for(event)
        sent = []
        for session in self.sessions_for(guild_id):
            if needed and not session.intents & needed:
                continue
            self._send(session, event, data)
            sent.append(session.shard_id)
        return sent

    def _send(self, session: _Session, event: str, data: JSON) -> None:
        session.seq += 1
        self.dispatched.append(event)
        self.dispatched_on.append((event, session.shard_id))
        frame = json.dumps({"op": 0, "t": event, "s": session.seq, "d": data})
        session.log.append((session.seq, frame))
        if session.conn is not None:
            session.conn.send(frame)

    async def drain(self) -> None:
        """Return once every queued frame has been written to the sockets."""
        conns = [s.conn for s in self.sessions.values() if s.conn is not None]
        await asyncio.gather(*(conn.drain() for conn in conns))

    def _live(self, shard: int | None) -> list[_Session]:
        live = [s for s in self.sessions.values() if s.conn is not None and shard in (None, s.shard_id)]
        if not live:
            where = "" if shard is None else f" on shard {shard}"
            raise RuntimeError(f"the bot has no live gateway connection{where}")
        return live

    async def disconnect(self, code: int = 4000, *, invalidate_session: bool = False, shard: int | None = None) -> None:
        for session in self._live(shard):
            conn = session.conn
            assert conn is not None
            self._detach(conn)
            if invalidate_session:
                self.sessions.pop(session.id, None)
            await conn.close(code, "closed by the fake")

    async def send_reconnect(self, *, shard: int | None = None) -> None:
        conns = [s.conn for s in self._live(shard) if s.conn is not None]
        for conn in conns:
            conn.send_op(7)
        await asyncio.gather(*(conn.drain() for conn in conns))

    async def invalidate_session(self, *, resumable: bool = False, shard: int | None = None) -> None:
        conns = []
        for session in self._live(shard):
            if not resumable:
                self.sessions.pop(session.id, None)
            if session.conn is not None:
                session.conn.send_op(9, resumable)
                conns.append(session.conn)
        await asyncio.gather(*(conn.drain() for conn in conns))

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

    async def close_all(self, code: int = 1001, reason: str = "fake Discord shutting down") -> None:
        for conn in list(self._connections):
            conn.closed_by_fake = True
            await conn.ws.close(code=code, message=reason.encode())

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
            session = conn.session
            if session is not None and not conn.closed_by_fake and ws.close_code in (1000, 1001):
                # Discord: a client closing with 1000 or 1001 invalidates its session (it cannot RESUME).
                self.sessions.pop(session.id, None)
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
                self._send(conn.session, "GUILD_MEMBERS_CHUNK", chunk)
        else:
            self._unhandled.append(("GATEWAY", f"op {op}"))
            await conn.close(4001, "Unknown opcode.")
        self._on_change()

    async def _refuse_identify(self, conn: _Connection, data: JSON, code: int, reason: str) -> None:
        self.refused_identifies.append(RefusedIdentify(data.get("shard"), code, reason))
        await conn.close(code, reason)

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
        shard = _parse_shard(data.get("shard"))
        if shard is None:
            await self._refuse_identify(conn, data, 4010, "Invalid shard.")
            return
        shard_id, num_shards = shard
        if not self._may_identify(conn, data, shard_id):
            return
        if self.session_starts_remaining <= 0:
            await self._session_starts_exhausted(data)
            return
        self.session_starts += 1
        if self._shard_guild_count(shard_id, num_shards) > self.limits.max_guilds_per_shard:
            await self._refuse_identify(conn, data, 4011, "Sharding required.")
            return
        self.identify_payloads.append(data)
        session = _Session(secrets.token_hex(16), intents, shard_id, num_shards)
        # A session of this shard left without a socket belongs to a bot that died or identified again: gone.
        for old in [s for s in self.sessions.values() if s.conn is None]:
            if (old.shard_id, old.num_shards) == shard:
                del self.sessions[old.id]
        self.sessions[session.id] = session
        session.conn, conn.session = conn, session
        for event, payload in self._initial_dispatches(session.id, shard_id, num_shards, "shard" in data):
            self._send(session, event, payload)

    def _may_identify(self, conn: _Connection, data: JSON, shard_id: int) -> bool:
        """One IDENTIFY per rate-limit bucket (shard_id % max_concurrency) per window, else op 9 (not resumable)."""
        now = asyncio.get_running_loop().time()
        bucket = shard_id % max(1, self.limits.max_concurrency)
        last = self._bucket_identified.get(bucket)
        if last is not None and now - last < self.limits.identify_window_seconds - _CLOCK_SLACK:
            self.refused_identifies.append(RefusedIdentify(data.get("shard"), "op 9", "identify rate limit"))
            conn.send_op(9, False)
            return False
        self._bucket_identified[bucket] = now
        return True

    async def _session_starts_exhausted(self, data: JSON) -> None:
        """Discord: with no session starts left, every active session is terminated and the token is reset."""
        self.refused_identifies.append(RefusedIdentify(data.get("shard"), 4004, "session start limit reached"))
        if self._reset_token is not None:
            self._reset_token()
        self.sessions.clear()
        await self.close_all(4004, "Authentication failed.")

    async def _resume(self, conn: _Connection, data: JSON) -> None:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return
        if data.get("token") != self.token:
            await conn.close(4004, "Authentication failed.")
            return
        session = self.sessions.get(str(data.get("session_id")))
        if session is None:
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
        self._send(session, "RESUMED", {"_trace": ["fake-gateway"]})
