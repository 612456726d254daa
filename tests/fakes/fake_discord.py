"""Fake Discord (REST API v10 + JSON gateway) that the real discord.py client runs against in tests.

Strict like Discord: bot-token auth, message/embed limits, Discord's error codes, 429s with ``Via``;
tests drive it through FakeDiscord's methods (add guilds, invoke slash commands, inject faults).

Fault injection, all of it recorded so tests can assert it happened:

- ``fail_next(method, path_regex, status=…, times=…, body=…, content_type=…)``: answer with an error
  (Discord's JSON, or a raw body such as a proxy's HTML page); works for any route, login included.
- ``hang_next(method, path_regex, times=…, create=…)``: accept a request and never answer it
  (``fake.hung``), until ``release_hangs()`` or ``stop()``.
- ``refuse_gateway(times, mode=…)``: the websocket upgrade fails (HTTP 5xx, an immediate close, or a
  dropped connection), as in an outage (``fake.gateway_refusals``).
- ``omit_from_next_ready(guilds, unavailable=…)`` / ``ready_guild_filter``: a READY without some guilds.
- ``reset_token()``: the bot's token stops working (REST 401, gateway 4004).
- ``nonce_window_seconds`` with ``clock`` / ``advance_clock()``: ``enforce_nonce`` only within a window.

Sharding, as Discord's gateway docs say (see discord_gateway.py): ``GET /gateway/bot`` recommends one shard per
1,000 guilds (or ``recommended_shards``) with a ``session_start_limit``; each IDENTIFY's shard gets READY and
GUILD_CREATE for its own guilds only, and every later guild event (interactions included) goes to the owning
shard's session, DMs to shard 0. ``add_guild(name, shard=(id, count))`` places a guild on a shard; by default
guild ids fall on consecutive shards. The limits (2,500 guilds per shard, one IDENTIFY per bucket per 5 s, 1,000
session starts) are in ``fake.limits`` (a GatewayLimits), which tests may lower.

Several bot processes at once (one bot token, each running some shards of one shard count): every process has
its own gateway sessions, and each guild's events go to the process whose session owns its shard. The REST limits
are Discord's (``enforce_rate_limits=True``): the global one (``global_rate_limit`` requests per second) is keyed
on the bot token, so every process spends one budget; the per-channel one (``message_rate_limit``) is per channel,
whoever posts. Each request records its client's TCP port (``RecordedRequest.client_port``) and each channel message
the port of the request that created it (``message_ports``), so a test can tell which process did what; enforced
429s are in ``rate_limited``, the global ones also in ``global_rate_limited``. ``latency`` (seconds) holds every
REST request that long before the fake handles it: a slow Discord.

Announcement (news, type 5) channels: ``POST /channels/{id}/messages/{id}/crosspost`` publishes a message (Send
Messages for the bot's own, Manage Messages besides for others'; 400 for another channel type or a message published
already). Discord allows ``publish_limit`` (10) publishes per ``publish_period`` (an hour) per channel, whoever
publishes, always enforced: beyond it a 429 whose body's ``retry_after`` runs until the oldest publish leaves the
window (on ``clock`` + ``advance_clock``). ``publish_as_member(channel_id)`` spends one as a member would.

Roles and buttons (discord_roles.py): ``POST /guilds/{id}/roles`` and ``PUT/DELETE
/guilds/{id}/members/{user}/roles/{role}`` with Discord's permission hierarchy; ``press_button(message, custom_id)``
is a member pressing a button (INTERACTION_CREATE type 3, answered with type 4, 5 or 6); ``delete_role`` is a
human deleting a role (GUILD_ROLE_DELETE).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import mimetypes
import re
import secrets
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import BodyPartReader, web

from tests.fakes.discord_events import EventApiError, ScheduledEvents
from tests.fakes.discord_gateway import (
    DEFAULT_MAX_GUILDS_PER_SHARD,
    GUILDS_PER_RECOMMENDED_SHARD,
    PROXY_502_HTML,
    FakeGateway,
    GatewayLimits,
    GatewayRefusal,
    RefusalMode,
    RefusedIdentify,
)
from tests.fakes.discord_interactions import (
    FakeInteraction,
    InteractionRefused,
    InteractionReply,
    OptionResolver,
    TypedChannel,
    check_allowed,
    find_command,
)
from tests.fakes.discord_payloads import (
    ADMIN_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DM_CHANNEL,
    EMBED_LINKS,
    FLAG_CROSSPOSTED,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    JSON,
    MANAGE_GUILD_PERMISSIONS,
    MANAGE_MESSAGES,
    MEMBER_PERMISSIONS,
    MENTION_EVERYONE,
    NEWS_CHANNEL,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    TEXT_CHANNEL,
    VIEW_CHANNEL,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    Overwrite,
    SnowflakeFactory,
    channel_permissions,
    is_empty_message,
    iso_now,
    permission_value,
    shard_of,
    validate_choices,
    validate_commands,
    validate_message,
)
from tests.fakes.discord_roles import GuildRoles, RoleApiError, pressable_button

__all__ = [
    "ADMIN_PERMISSIONS",
    "DEFAULT_BOT_PERMISSIONS",
    "MANAGE_GUILD_PERMISSIONS",
    "MEMBER_PERMISSIONS",
    "PROXY_502_HTML",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "Fault",
    "GatewayLimits",
    "GatewayRefusal",
    "HungRequest",
    "InteractionRefused",
    "InteractionReply",
    "RecordedRequest",
    "RefusedIdentify",
    "Rejection",
    "TypedChannel",
    "patch_discord_endpoints",
    "permission_value",
    "shard_of",
]

_log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
_INTERACTION_TOKEN_TTL = 15 * 60
_ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
_MAX_ATTACHMENTS = 10
_MAX_REQUEST_BYTES = (_MAX_ATTACHMENTS + 1) * _ATTACHMENT_SIZE_LIMIT  # aiohttp's own cap must not be hit first
_CLOCK_SLACK = 0.01  # a client that slept exactly Reset-After must not be refused for a rounding error
DEFAULT_NONCE_WINDOW = 300.0  # Discord: a repeated nonce is caught "in the past few minutes"
_JSON_BODY = web.RequestKey("fake_discord_json", object)
_FILES = web.RequestKey("fake_discord_files", list)
_CLIENT_PORT = web.RequestKey("fake_discord_client_port", object)  # read on arrival: the client may be gone later


class _Upload(NamedTuple):
    """One `files[n]` part of a multipart body."""

    placeholder: int
    filename: str
    data: bytes


def _described(entry: JSON) -> JSON:
    return {"description": entry["description"]} if entry.get("description") else {}


class RecordedRequest(NamedTuple):
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    json: Any
    client_port: int | None = None  # the TCP port of the client's end: which process sent it, when several do


class Rejection(NamedTuple):
    """A request the fake refused because the bot sent something Discord would refuse (400/401)."""

    method: str
    path: str
    status: int
    body: JSON
    request_json: Any


@dataclass(slots=True)
class Fault:
    """An injected failure for the next ``times`` requests matching ``method`` and the ``path`` regex.

    ``body`` (with ``content_type``) replaces Discord's JSON error with raw bytes, e.g. a proxy's HTML
    page. ``hang`` holds the request unanswered instead (see ``FakeDiscord.hang_next``); ``create`` then
    lets the request take effect before the answer is withheld.
    """

    method: str
    path: str
    status: int
    code: int = 0
    message: str = "Injected failure"
    times: int = 1
    retry_after: float = 0.05
    global_: bool = False
    scope: str = "user"
    hits: int = 0
    body: str | bytes | None = None
    content_type: str = "application/json"
    hang: bool = False
    create: bool = False

    def matches(self, method: str, path: str) -> bool:
        return self.hits < self.times and method == self.method and re.fullmatch(self.path, path) is not None


@dataclass(slots=True, eq=False)
class HungRequest:
    """A request held unanswered by ``hang_next``.

    ``processed``: the request took effect (``create=True``, or it was answered on release).
    ``outcome``: ``"held"`` while waiting, then ``"answered"`` (``release_hangs()``) or ``"dropped"``
    (``release_hangs(answer=False)`` or ``stop()``: the connection is closed without an answer).
    ``status``: the status the fake answered with, or would have answered with had it answered.
    """

    request: RecordedRequest
    fault: Fault
    processed: bool = False
    outcome: Literal["held", "answered", "dropped"] = "held"
    status: int | None = None
    _answer: bool = field(default=True, repr=False)
    _released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        return self.request.path


_MEMBER_ROLE = "/guilds/{guild_id:\\d+}/members/{user_id:\\d+}/roles/{role_id:\\d+}"


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.body: JSON = {"code": code, "message": message}
        if errors:
            self.body["errors"] = errors


def _form_error(errors: JSON) -> _ApiError:
    return _ApiError(400, 50035, "Invalid Form Body", errors)


def _round_up(seconds: float) -> float:
    """Discord's rate-limit headers carry milliseconds; rounding down would invite a too-early retry."""
    return math.ceil(seconds * 1000) / 1000


def _json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    # discord.py only parses JSON when Content-Type is exactly application/json (no charset).
    body = json.dumps(data).encode()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _client_port(request: web.Request) -> int | None:
    """The port of the client's end of the connection (each bot process has its own connections)."""
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    return int(peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else None


def _drop_connection(request: web.Request) -> web.Response:
    """Close the client's connection without an answer; the returned response is never written."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)


@dataclass(slots=True)
class _RouteSpec:
    auth: bool
    bucket: str | None


@dataclass(slots=True)
class _Window:
    reset_at: float
    count: int = 0


class FakeDiscord:
    """Discord as the bot sees it: one bot user, one application, guilds/channels built by the test.

    Nonces: a ``POST /channels/{id}/messages`` with a ``nonce`` and ``enforce_nonce: true`` returns the
    message created earlier in that channel with the same nonce (200, no new message, no MESSAGE_CREATE)
    if that message was created less than ``nonce_window_seconds`` ago (Discord: "in the past few
    minutes"; default 300 s); later, the same nonce creates a new message, which is then the one
    remembered. The window is measured from the first message's creation, not refreshed by repeats, on
    ``clock`` (default ``time.monotonic``) plus whatever ``advance_clock(seconds)`` added, so a test can
    jump past the window at once. Each de-duplicated request is recorded in ``deduplicated``.
    """

    MEMBER_PERMISSIONS = MEMBER_PERMISSIONS
    MANAGE_GUILD_PERMISSIONS = MANAGE_GUILD_PERMISSIONS
    ADMIN_PERMISSIONS = ADMIN_PERMISSIONS
    DEFAULT_BOT_PERMISSIONS = DEFAULT_BOT_PERMISSIONS

    def __init__(
        self,
        token: str = "fake-discord-token",  # noqa: S107 - a test token
        *,
        enforce_rate_limits: bool = False,
        allowed_privileged_intents: int = 0,
        interaction_response_timeout: float = 3.0,
        heartbeat_interval_ms: int = 41_250,
        message_rate_limit: tuple[int, float] = (5, 5.0),
        global_rate_limit: int = 50,
        nonce_window_seconds: float = DEFAULT_NONCE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        max_guilds_per_shard: int = DEFAULT_MAX_GUILDS_PER_SHARD,
        recommended_shards: int | None = None,
        max_concurrency: int = 1,
        session_start_total: int = 1000,
        identify_window_seconds: float = 5.0,
        latency: float = 0.0,
    ) -> None:
        self.token = token
        self.latency = latency
        self.limits = GatewayLimits(
            max_guilds_per_shard=max_guilds_per_shard,
            recommended_shards=recommended_shards,
            max_concurrency=max_concurrency,
            session_start_total=session_start_total,
            identify_window_seconds=identify_window_seconds,
        )
        self.nonce_window_seconds = nonce_window_seconds
        self.clock = clock
        self._clock_offset = 0.0
        self._nonces: dict[tuple[int, str | int], tuple[FakeMessage, float]] = {}
        self.deduplicated: list[tuple[str | int, FakeMessage]] = []  # (nonce, the earlier message returned)
        self.enforce_rate_limits = enforce_rate_limits
        self.interaction_response_timeout = interaction_response_timeout
        # Opt-in limits: requests per second per token, and (requests, per seconds) per channel.
        self.global_rate_limit = global_rate_limit
        self._bucket_limits = {"channel_message_create": message_rate_limit, "channel_message_edit": message_rate_limit}
        self._next_id = SnowflakeFactory()
        self.scheduled_events = ScheduledEvents(self._next_id)  # guild scheduled events (discord_events.py)
        self.bot_user = FakeUser(self._next_id(), "NotifierBot", bot=True)
        self.bot_user_id = self.bot_user.id
        self.guild_roles = GuildRoles(self._next_id, self.bot_user_id)  # roles the bot manages (discord_roles.py)
        self.application_id = self.bot_user.id  # Discord uses the bot user's id for newer apps
        self.owner = FakeUser(self._next_id(), "app-owner")
        self.default_user = FakeUser(self._next_id(), "member")
        self.users: dict[int, FakeUser] = {u.id: u for u in (self.bot_user, self.owner, self.default_user)}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: list[FakeMessage] = []
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[tuple[str, str]] = []
        self.rejected: list[Rejection] = []
        self.uploaded: dict[str, bytes] = {}  # attachment id -> the file's bytes (see "file uploads")
        self.rate_limited: list[RecordedRequest] = []  # 429s from enforced (not injected) limits
        self.global_rate_limited: list[RecordedRequest] = []  # those of them from the global limit
        self.message_ports: dict[int, int | None] = {}  # channel message id -> client port of its creating request
        self.publish_limit = 10
        self.publish_period = 3600.0
        self._publishes: dict[int, list[float]] = {}  # news channel id -> when its publishes were (self.now())
        self.crossposted: list[FakeMessage] = []  # messages the bot published, in order
        self.faults: list[Fault] = []
        self.hung: list[HungRequest] = []  # requests held by hang_next, in arrival order
        self.ready_guild_filter: Callable[[FakeGuild], bool] | None = None  # False: left out of every READY
        self._next_ready_omit: dict[int, bool] = {}  # guild id -> listed as unavailable
        self._hidden_guilds: set[int] = set()  # joined guilds the current session was not told about
        self._stopping = False
        self.synced_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self.gateway = FakeGateway(
            token,
            initial_dispatches=self._initial_dispatches,
            members_chunk=self._members_chunk,
            on_change=self._bump,
            unhandled=self.unhandled,
            heartbeat_interval_ms=heartbeat_interval_ms,
            allowed_privileged_intents=allowed_privileged_intents,
            limits=self.limits,
            shard_guild_count=self._shard_guild_count,
            reset_token=self.reset_token,
        )
        self.identify_payloads = self.gateway.identify_payloads  # those that started a session
        self.refused_identifies = self.gateway.refused_identifies  # 4010, 4011, op 9, session starts used up
        self.resume_payloads = self.gateway.resume_payloads
        self.gateway_refusals = self.gateway.refused  # one GatewayRefusal per refused connection attempt
        self.dispatched = self.gateway.dispatched  # event names sent to the bot, in order
        self.dispatched_on = self.gateway.dispatched_on  # (event name, shard of the session it went to)
        self._changed = asyncio.Event()
        self._route_specs: dict[str, _RouteSpec] = {}
        self._windows: dict[tuple[str, str], _Window] = {}
        self._global_hits: dict[str, list[float]] = {}  # bot token -> its requests in the last second
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway/"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=_MAX_REQUEST_BYTES)
        self._add_routes(app)
        app.router.add_get("/gateway/", self.gateway.handler)
        # A short shutdown timeout is only a safety net: stop() releases held requests itself.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._stopping = False

    async def stop(self) -> None:
        """Stop serving; requests held by ``hang_next`` are dropped (closed without an answer)."""
        self._stopping = True
        self.release_hangs(answer=False)
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ clock (nonce memory)

    def now(self) -> float:
        """The fake's clock in seconds: ``clock()`` plus every ``advance_clock`` so far."""
        return self.clock() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Jump the fake's clock forward (only nonce memory reads it; rate limits use the event loop)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._clock_offset += seconds

    # ------------------------------------------------------------------ building the world

    def add_user(self, username: str, *, bot: bool = False) -> FakeUser:
        user = FakeUser(self._next_id(), username, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self, name: str, *, bot_permissions: int = DEFAULT_BOT_PERMISSIONS, shard: tuple[int, int] | None = None
    ) -> FakeGuild:
        """Create a guild with the bot as a member; once its shard is connected, announce it with ``join_guild``.

        ``shard=(shard_id, num_shards)`` picks an id Discord puts on that shard; otherwise ids made one after
        another fall on consecutive shards."""
        guild = FakeGuild(self._next_id.spread(shard), name, owner_id=self.add_user(f"{name} owner").id)
        # Before its shard's IDENTIFY the guild simply shows up in that shard's READY.
        guild.bot_joined = not self.gateway.sessions_for(guild.id)
        guild.roles[guild.id] = FakeRole(guild.id, guild.id, "@everyone", MEMBER_PERMISSIONS)
        bot_role = FakeRole(
            self._next_id(), guild.id, self.bot_user.username, bot_permissions, 1, managed=True, bot_id=self.bot_user_id
        )
        guild.roles[bot_role.id] = bot_role
        guild.members[self.bot_user_id] = FakeMember(self.bot_user, [bot_role.id])
        guild.members[guild.owner_id] = FakeMember(self.users[guild.owner_id])
        self.guilds[guild.id] = guild
        return guild

    def add_role(self, guild_id: int, name: str, *, permissions: int = 0, mentionable: bool = False) -> FakeRole:
        guild = self.guilds[guild_id]
        role = FakeRole(self._next_id(), guild_id, name, permissions, len(guild.roles), mentionable=mentionable)
        guild.roles[role.id] = role
        self._dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": role.payload()}, guild=guild)
        return role

    def add_channel(
        self, guild_id: int, name: str, *, type: int = TEXT_CHANNEL, topic: str | None = None
    ) -> FakeChannel:
        guild = self.guilds[guild_id]
        channel = FakeChannel(self._next_id(), guild_id, name, type, position=len(guild.channels), topic=topic)
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self._dispatch("CHANNEL_CREATE", channel.payload(), guild=guild)
        return channel

    def add_text_channel(self, guild_id: int, name: str, *, topic: str | None = None) -> FakeChannel:
        """Create a text channel; dispatches CHANNEL_CREATE when the bot is connected."""
        return self.add_channel(guild_id, name, type=TEXT_CHANNEL, topic=topic)

    async def create_channel(self, guild_id: int, name: str, *, type: int = TEXT_CHANNEL) -> FakeChannel:
        """Like ``add_channel`` but returns once CHANNEL_CREATE has been written to the socket."""
        channel = self.add_channel(guild_id, name, type=type)
        await self.drain()
        return channel

    async def join_guild(self, guild: FakeGuild | int) -> None:
        """The bot is added to a guild: GUILD_CREATE without ``unavailable`` (discord.py: on_guild_join)."""
        guild = self.guilds[guild if isinstance(guild, int) else guild.id]
        guild.bot_joined = True
        self._hidden_guilds.discard(guild.id)
        self._dispatch("GUILD_CREATE", guild.gateway_payload(initial=False), guild=guild)
        await self.drain()

    async def remove_guild(self, guild_id: int) -> None:
        """The bot is kicked: GUILD_DELETE (discord.py: on_guild_remove); REST on it then answers 50001."""
        self._leave_guild(self.guilds[guild_id])
        await self.drain()

    def _leave_guild(self, guild: FakeGuild) -> None:
        self._dispatch("GUILD_DELETE", {"id": str(guild.id)}, guild=guild)
        guild.bot_joined = False

    async def delete_channel(self, channel_id: int) -> None:
        channel = self.channels[channel_id]
        self._dispatch("CHANNEL_DELETE", channel.payload(), guild=self.guilds[channel.guild_id])
        channel.deleted = True
        await self.drain()

    def set_channel_overwrite(
        self, channel_id: int, target_id: int, *, target_type: int, allow: int = 0, deny: int = 0
    ) -> None:
        """Replace one permission overwrite (type 0 role, 1 member); dispatches CHANNEL_UPDATE."""
        channel = self.channels[channel_id]
        channel.overwrites = [o for o in channel.overwrites if (o.type, o.id) != (target_type, target_id)]
        if allow or deny:
            channel.overwrites.append(Overwrite(target_id, target_type, allow, deny))
        self._dispatch("CHANNEL_UPDATE", channel.payload(), guild=self.guilds[channel.guild_id])

    def set_bot_channel_permissions(
        self, channel_id: int, *, allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()
    ) -> None:
        """Member overwrite for the bot in a channel, by discord.py permission names."""
        self.set_channel_overwrite(
            channel_id,
            self.bot_user_id,
            target_type=1,
            allow=permission_value(*allow),
            deny=permission_value(*deny),
        )

    def set_bot_guild_permissions(self, guild_id: int, permissions: int) -> None:
        """Change the bot's managed role; dispatches GUILD_ROLE_UPDATE."""
        guild = self.guilds[guild_id]
        role = next(r for r in guild.roles.values() if r.bot_id == self.bot_user_id)
        role.permissions = permissions
        self._dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(guild_id), "role": role.payload()}, guild=guild)

    def bot_permissions_in(self, channel_id: int) -> int:
        channel = self.channels[channel_id]
        guild = self.guilds[channel.guild_id]
        return channel_permissions(guild, channel, guild.members[self.bot_user_id])

    # ------------------------------------------------------------------ faults and inspection

    def fail_next(
        self,
        method: str,
        path: str,
        *,
        status: int = 500,
        code: int = 0,
        message: str = "Injected failure",
        times: int = 1,
        retry_after: float = 0.05,
        global_: bool = False,
        scope: str | None = None,
        body: str | bytes | None = None,
        content_type: str = "application/json",
    ) -> Fault:
        """Fail the next ``times`` requests whose path (without /api/v10) fully matches ``path``.

        ``status=429`` answers like Discord's rate limiter (JSON ``retry_after``, ``Via`` header).
        ``body`` sends those bytes instead of Discord's JSON error, with ``content_type`` — e.g.
        ``status=502, body=PROXY_502_HTML, content_type="text/html"`` for what a proxy answers in an
        outage (discord.py then gets the text, not JSON). Any route can fail this way, including the
        login (``GET /users/@me``) and ``GET /gateway/bot``; injected faults are not ``rejected``.
        """
        fault = Fault(method.upper(), path, status, code, message, times, retry_after, global_)
        fault.scope = scope or ("global" if global_ else "user")
        fault.body, fault.content_type = body, content_type
        self.faults.append(fault)
        return fault

    def hang_next(self, method: str, path: str, *, times: int = 1, create: bool = False) -> Fault:
        """Accept the next ``times`` requests matching ``method`` and the ``path`` regex, and never answer.

        The request is read and recorded (``requests``, and ``hung`` as a HungRequest), then held until
        ``release_hangs()`` or ``stop()``, so the client's own timeout is what ends it. With
        ``create=True`` the request takes effect first (the message is created and MESSAGE_CREATE sent)
        and only the answer is lost — as when Discord did the work but the response never arrived.
        """
        fault = Fault(method.upper(), path, 0, times=times, hang=True, create=create)
        self.faults.append(fault)
        return fault

    def release_hangs(self, *, answer: bool = True) -> int:
        """Release every held request; returns how many.

        ``answer=True``: each is served now (a ``create=False`` request takes effect only now, possibly
        after its client gave up). ``answer=False``: each connection is closed without an answer.
        """
        held = [h for h in self.hung if h.outcome == "held" and not h._released.is_set()]
        for hung in held:
            hung._answer = answer
            if not answer:
                hung.outcome = "dropped"
            hung._released.set()
        return len(held)

    def refuse_gateway(
        self,
        times: int = 1,
        *,
        mode: RefusalMode = "http",
        status: int = 503,
        body: str = PROXY_502_HTML,
        close_code: int = 1001,
    ) -> GatewayRefusal:
        """Refuse the next ``times`` gateway connection attempts, as in an outage.

        ``mode="http"``: the websocket upgrade is answered with HTTP ``status`` and an HTML ``body`` (what
        Cloudflare answers when the gateway is down); aiohttp raises ``WSServerHandshakeError``.
        ``mode="close"``: the upgrade succeeds, then the socket is closed with ``close_code`` before HELLO.
        ``mode="drop"``: the TCP connection is closed without any answer (``ServerDisconnectedError``).
        ``times`` counts connections, and aiohttp retries a dropped GET once by itself: ``times=2``
        makes one ``ws_connect`` fail.
        discord.py 2.7.1 retries each of these with its exponential backoff (up to 2 s, then 4 s, …)
        and logs "Attempting a reconnect" at ERROR — except on its very first connection, where it has
        no websocket to resume from and ``connect()`` dies with AttributeError (discord.py #10520).
        """
        return self.gateway.refuse(times, mode=mode, status=status, body=body, close_code=close_code)

    def reset_token(self, new_token: str | None = None) -> str:
        """Discord resets the bot's token (leaked, or too many IDENTIFYs); returns the new one.

        From now on REST with the old token answers 401 and IDENTIFY / RESUME with it are closed with
        4004. The live websocket is left alone; ``disconnect_gateway()`` makes the bot try again.
        """
        self.token = new_token or f"{self.token}.reset-{secrets.token_hex(4)}"
        self.gateway.token = self.token
        return self.token

    def omit_from_next_ready(self, guilds: Iterable[FakeGuild | int], *, unavailable: bool = False) -> None:
        """Leave these guilds out of the next READY only, and send no GUILD_CREATE for them.

        ``unavailable=False``: not listed at all — what the bot sees when started with another
        application's token, or when READY is partial; discord.py never hears of them.
        ``unavailable=True``: listed as ``{"id", "unavailable": true}`` stubs but never created — a
        Discord outage; discord.py keeps them as unavailable guilds. Either way the fake sends no
        events for them on that session until ``make_guild_available`` or ``join_guild``. REST is
        unchanged (the bot is still a member); set ``guild.bot_joined = False`` before start for a guild
        the bot is really not in. For every READY, set ``ready_guild_filter`` instead.
        """
        for guild in guilds:
            self._next_ready_omit[guild if isinstance(guild, int) else guild.id] = unavailable

    async def make_guild_available(self, guild: FakeGuild | int) -> None:
        """A guild hidden from READY comes back: GUILD_CREATE with ``unavailable: false``.

        discord.py dispatches ``on_guild_available`` (not ``on_guild_join``).
        """
        found = self.guilds[guild if isinstance(guild, int) else guild.id]
        self._hidden_guilds.discard(found.id)
        self._dispatch("GUILD_CREATE", found.gateway_payload(initial=True), guild=found)
        await self.drain()

    def messages_in(self, channel_id: int) -> list[FakeMessage]:
        return [m for m in self.messages if m.channel_id == channel_id and not m.deleted]

    async def wait_for_messages(
        self, n: int, channel_id: int | None = None, *, timeout: float = 5.0
    ) -> list[FakeMessage]:
        """Wait until at least ``n`` live channel messages exist (in ``channel_id`` if given)."""

        def current() -> list[FakeMessage]:
            return [m for m in self.messages if not m.deleted and channel_id in (None, m.channel_id)]

        where = f" in channel {channel_id}" if channel_id else ""
        await self.wait_until(lambda: len(current()) >= n, timeout=timeout, what=f"{n} message(s){where}")
        return current()

    async def wait_until(self, predicate: Callable[[], Any], *, timeout: float = 5.0, what: str = "condition") -> None:
        """Wait until ``predicate()`` is true; re-checked after every request and gateway event."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{self.describe()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _bump(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def describe(self) -> str:
        """Human-readable dump of recent traffic, for failure messages."""
        lines = ["-- last requests:"]
        lines += [f"   {r.method} {r.path} {r.query or ''} {json.dumps(r.json)[:200]}" for r in self.requests[-15:]]
        lines.append("-- messages:")
        lines += [
            f"   {m.id} ch={m.channel_id}{' (deleted)' if m.deleted else ''}: {m.text[:120]!r}" for m in self.messages
        ]
        lines.append(f"-- interactions: {list(self.interactions.values())}")
        lines.append(f"-- unhandled: {self.unhandled}  rejected: {self.rejected}")
        if self.hung or self.gateway_refusals:
            lines.append(f"-- hung: {self.hung}  gateway refusals: {self.gateway_refusals}")
        lines.append(f"-- gateway connected: {self.connected} (shards {self.connected_shards})")
        if self.refused_identifies:
            lines.append(f"-- refused IDENTIFYs: {self.refused_identifies}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ gateway controls

    @property
    def connected(self) -> bool:
        """Some gateway session has a live socket (see ``connected_shards``)."""
        return self.gateway.connected

    @property
    def connected_shards(self) -> list[int]:
        """The shards with a live gateway session, sorted."""
        return self.gateway.connected_shards

    @property
    def session_starts_remaining(self) -> int:
        return self.gateway.session_starts_remaining

    async def wait_connected(self, timeout: float = 5.0, *, shards: Iterable[int] | None = None) -> None:
        """Wait for a gateway session, or for one on each of ``shards``."""
        wanted = None if shards is None else set(shards)
        what = "a gateway session" if wanted is None else f"gateway sessions on shards {sorted(wanted)}"
        await self.wait_until(
            lambda: self.connected if wanted is None else wanted <= set(self.connected_shards),
            timeout=timeout,
            what=what,
        )

    def guilds_on_shard(self, shard_id: int, num_shards: int) -> list[FakeGuild]:
        """The guilds Discord puts on that shard (the bot's or not)."""
        return [g for g in self.guilds.values() if shard_of(g.id, num_shards) == shard_id]

    def _shard_guild_count(self, shard_id: int, num_shards: int) -> int:
        return sum(1 for g in self.guilds_on_shard(shard_id, num_shards) if g.bot_joined)

    async def drain(self) -> None:
        """Return once every queued gateway frame has been written to the bot's socket."""
        await self.gateway.drain()

    async def disconnect_gateway(
        self, code: int = 4000, *, invalidate_session: bool = False, shard: int | None = None
    ) -> None:
        """Close the bot's websocket (every shard's, or ``shard``'s); with 4000 discord.py reconnects and RESUMEs."""
        await self.gateway.disconnect(code, invalidate_session=invalidate_session, shard=shard)

    async def send_reconnect(self, *, shard: int | None = None) -> None:
        """Op 7 RECONNECT (to every shard, or ``shard``): discord.py closes the socket and RESUMEs on a new one."""
        await self.gateway.send_reconnect(shard=shard)

    async def invalidate_session(self, *, resumable: bool = False, shard: int | None = None) -> None:
        """Op 9 INVALID_SESSION (every shard, or ``shard``); with ``resumable=False`` the bot must IDENTIFY again."""
        await self.gateway.invalidate_session(resumable=resumable, shard=shard)

    # ------------------------------------------------------------------ interactions

    async def invoke(
        self,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        user_id: int | None = None,
        permissions: int = MEMBER_PERMISSIONS,
        subcommand: str | None = None,
        bypass_default_permissions: bool = False,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs ``/command`` (``subcommand`` may be ``"group sub"``); raises InteractionRefused."""
        inter = self._new_interaction(
            2, command, dict(options or {}), None, guild_id, channel_id, user_id, permissions, subcommand,
            bypass_default_permissions, locale,
        )  # fmt: skip
        await self.drain()
        return inter

    async def autocomplete(
        self,
        command: str,
        option: str,
        value: str,
        options: Mapping[str, Any] | None = None,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        user_id: int | None = None,
        permissions: int = MEMBER_PERMISSIONS,
        subcommand: str | None = None,
        timeout: float = 5.0,
    ) -> list[JSON]:
        """A user types ``value`` into ``option``; returns the choices the bot answered with."""
        inter = self._new_interaction(
            4, command, {**(options or {}), option: value}, option, guild_id, channel_id, user_id, permissions,
            subcommand, False, "en-US",
        )  # fmt: skip
        await self.wait_until(lambda: inter.callbacks, timeout=timeout, what=f"autocomplete for /{command} {option}")
        return inter.choices or []

    def _new_interaction(
        self,
        itype: int,
        name: str,
        given: dict[str, Any],
        focused: str | None,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int | None,
        permissions: int,
        subcommand: str | None,
        bypass: bool,
        locale: str,
    ) -> FakeInteraction:
        if not self.gateway.sessions:
            raise RuntimeError("the bot has not identified on the gateway")
        guild = self.guilds.get(guild_id) if guild_id is not None else None
        if guild_id is not None and (guild is None or not guild.bot_joined):
            raise InteractionRefused(f"the bot is not in guild {guild_id}")
        scopes = [self.guild_commands.get(guild.id, []), self.synced_commands] if guild else [self.synced_commands]
        cmd = find_command(name, scopes)
        check_allowed(cmd, guild_id, permissions, bypass=bypass)
        if user_id is None:
            user = self.default_user
        elif (found := self.users.get(user_id)) is not None:
            user = found
        else:
            user = self.users[user_id] = FakeUser(user_id, f"user{user_id}")
        data = OptionResolver(guild, self.channels, self.users, permissions).command_data(
            cmd, subcommand, given, focused
        )

        payload: JSON = {
            "id": str(self._next_id()),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "token": secrets.token_urlsafe(32),
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": _ATTACHMENT_SIZE_LIMIT,
        }
        if guild is not None:
            channel = self._interaction_channel(guild, channel_id)
            member = guild.members.setdefault(user.id, FakeMember(user))
            payload |= {
                "guild_id": str(guild.id),
                "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "channel_id": str(channel.id),
                "channel": channel.payload() | {"permissions": str(permissions)},
                "member": member.payload() | {"permissions": str(permissions)},
                "app_permissions": str(self.bot_permissions_in(channel.id)),
                "authorizing_integration_owners": {"0": str(guild.id)},
                "context": 0,
            }
        else:
            dm_id = channel_id or self._next_id()
            payload |= {
                "channel_id": str(dm_id),
                "channel": {"id": str(dm_id), "type": DM_CHANNEL, "last_message_id": None, "flags": 0,
                            "recipients": [user.payload()]},
                "user": user.payload(),
                "app_permissions": str(permission_value("view_channel", "send_messages", "embed_links")),
                "authorizing_integration_owners": {"0": "0"},
                "context": 1,
            }  # fmt: skip
        inter = FakeInteraction(payload, created=asyncio.get_running_loop().time(), wait_until=self.wait_until)
        self.interactions[inter.id] = inter
        self._interactions_by_token[inter.token] = inter
        # On the guild's shard (a DM on shard 0); with no session there it reaches nobody, as on Discord.
        inter.shards = tuple(
            self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id if guild is not None else None)
        )
        return inter

    def _interaction_channel(self, guild: FakeGuild, channel_id: int | None) -> FakeChannel:
        if channel_id is None:
            texts = [c for c in guild.live_channels() if c.type == TEXT_CHANNEL]
            if not texts:
                raise InteractionRefused(f"guild {guild.id} has no text channel to invoke in")
            return texts[0]
        channel = guild.channels.get(channel_id)
        if channel is None or channel.deleted:
            raise InteractionRefused(f"channel {channel_id} is not a live channel of guild {guild.id}")
        return channel

    # ------------------------------------------------------------------ gateway state

    def _dispatch(self, event: str, data: JSON, *, guild: FakeGuild | None = None) -> None:
        """Dispatch to the bot, unless the event concerns a guild the bot is not in (or was not told of)."""
        if guild is None:
            self.gateway.dispatch(event, data)
        elif guild.bot_joined and guild.id not in self._hidden_guilds:
            self.gateway.dispatch(event, data, guild_id=guild.id)

    def _initial_dispatches(
        self, session_id: str, shard_id: int, num_shards: int, echo_shard: bool
    ) -> list[tuple[str, JSON]]:
        """READY and the GUILD_CREATEs of one session: the guilds of its shard only."""
        omit = {gid: u for gid, u in self._next_ready_omit.items() if shard_of(gid, num_shards) == shard_id}
        for gid in omit:
            del self._next_ready_omit[gid]
        keep = self.ready_guild_filter or (lambda guild: True)
        joined = [g for g in self.guilds_on_shard(shard_id, num_shards) if g.bot_joined]
        created = [g for g in joined if g.id not in omit and keep(g)]
        created_ids = {g.id for g in created}
        listed = [g for g in joined if g.id in created_ids or omit.get(g.id)]
        joined_ids = {g.id for g in joined}
        self._hidden_guilds = (self._hidden_guilds - joined_ids) | (joined_ids - created_ids)
        ready: JSON = {
            "v": 10,
            "user": self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0, "email": None},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in listed],
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "guild_join_requests": [],
            "auth": {},
            "_trace": ["fake-gateway"],
        }
        if echo_shard:
            ready["shard"] = [shard_id, num_shards]
        return [("READY", ready)] + [("GUILD_CREATE", g.gateway_payload(initial=True)) for g in created]

    def _members_chunk(self, data: JSON) -> JSON | None:
        guild = self.guilds.get(int(data.get("guild_id", 0)))
        if guild is None:
            return None
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in guild.members.values()],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        return chunk

    # ------------------------------------------------------------------ REST plumbing

    def _add_routes(self, app: web.Application) -> None:
        chan = r"/channels/{channel_id:\d+}"
        hook = "/webhooks/{app_id:\\d+}/{token}"
        routes: list[tuple[str, str, Callable[[web.Request], Any], bool, str | None]] = [
            ("GET", "/users/@me", self._get_me, True, None),
            ("GET", "/oauth2/applications/@me", self._get_application, True, None),
            ("GET", "/gateway", self._get_gateway, False, None),
            ("GET", "/gateway/bot", self._get_gateway_bot, True, None),
            ("PUT", "/applications/{app_id:\\d+}/commands", self._put_commands, True, None),
            ("GET", "/applications/{app_id:\\d+}/commands", self._get_commands, True, None),
            ("PUT", "/applications/{app_id:\\d+}/guilds/{guild_id:\\d+}/commands", self._put_commands, True, None),
            ("GET", "/applications/{app_id:\\d+}/guilds/{guild_id:\\d+}/commands", self._get_commands, True, None),
            ("POST", "/interactions/{interaction_id:\\d+}/{token}/callback", self._interaction_callback, False, None),
            ("POST", hook, self._webhook_execute, False, None),
            ("GET", hook + "/messages/{message_id:@original|\\d+}", self._webhook_message_get, False, None),
            ("PATCH", hook + "/messages/{message_id:@original|\\d+}", self._webhook_message_patch, False, None),
            ("DELETE", hook + "/messages/{message_id:@original|\\d+}", self._webhook_message_delete, False, None),
            ("POST", chan + "/messages", self._create_message, True, "channel_message_create"),
            ("GET", chan + "/messages", self._list_messages, True, None),
            ("GET", chan + "/messages/{message_id:\\d+}", self._get_message, True, None),
            ("PATCH", chan + "/messages/{message_id:\\d+}", self._edit_message, True, "channel_message_edit"),
            ("DELETE", chan + "/messages/{message_id:\\d+}", self._delete_message, True, None),
            ("POST", chan + "/messages/{message_id:\\d+}/crosspost", self._crosspost_message, True, None),
            ("GET", chan, self._get_channel, True, None),
            ("GET", "/guilds/{guild_id:\\d+}", self._get_guild, True, None),
            ("GET", "/guilds/{guild_id:\\d+}/channels", self._get_guild_channels, True, None),
            ("GET", "/guilds/{guild_id:\\d+}/members/{user_id:\\d+}", self._get_member, True, None),
            ("DELETE", "/users/@me/guilds/{guild_id:\\d+}", self._leave_guild_route, True, None),
            ("GET", "/guilds/{guild_id:\\d+}/scheduled-events", self._list_scheduled_events, True, None),
            ("POST", "/guilds/{guild_id:\\d+}/scheduled-events", self._create_scheduled_event, True, None),
            (
                "PATCH",
                "/guilds/{guild_id:\\d+}/scheduled-events/{event_id:\\d+}",
                self._edit_scheduled_event,
                True,
                None,
            ),
            ("POST", "/guilds/{guild_id:\\d+}/roles", self._create_role, True, None),
            ("PUT", _MEMBER_ROLE, self._add_member_role, True, None),
            ("DELETE", _MEMBER_ROLE, self._remove_member_role, True, None),
        ]
        for i, (method, path, handler, auth, bucket) in enumerate(routes):
            name = f"r{i}"
            app.router.add_route(method, API_PREFIX + path, handler, name=name)
            self._route_specs[name] = _RouteSpec(auth, bucket)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        path = request.path.removeprefix(API_PREFIX)
        request[_CLIENT_PORT] = _client_port(request)
        try:
            try:
                await self._read_body(request, path)
            finally:
                self.requests.append(
                    RecordedRequest(
                        request.method, path, dict(request.query), request.get(_JSON_BODY), request[_CLIENT_PORT]
                    )
                )
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            return await self._handle(request, handler, path)
        except _ApiError as err:
            return self._error_response(request, path, err)
        finally:
            self._bump()

    def _error_response(self, request: web.Request, path: str, err: _ApiError) -> web.Response:
        if err.status in (400, 401):
            self.rejected.append(Rejection(request.method, path, err.status, err.body, request.get(_JSON_BODY)))
        return _json_response(err.status, err.body)

    async def _handle(
        self, request: web.Request, handler: Callable[[web.Request], Any], path: str
    ) -> web.StreamResponse:
        http_exc = request.match_info.http_exception
        if http_exc is not None:
            self.unhandled.append((request.method, path))
            return _json_response(http_exc.status, {"code": 0, "message": f"{http_exc.status}: {http_exc.reason}"})
        name = request.match_info.route.name or ""
        spec = self._route_specs[name]
        if spec.auth and request.headers.get("Authorization") != f"Bot {self.token}":
            raise _ApiError(401, 0, "401: Unauthorized")
        for fault in self.faults:
            if fault.matches(request.method, path):
                fault.hits += 1
                if fault.hang:
                    return await self._hang(request, handler, path, fault)
                if fault.body is not None:
                    body = fault.body.encode() if isinstance(fault.body, str) else fault.body
                    return web.Response(status=fault.status, body=body, content_type=fault.content_type)
                if fault.status == 429:
                    return self._rate_limited(fault.retry_after, global_=fault.global_, scope=fault.scope, bucket=name)
                return _json_response(fault.status, {"code": fault.code, "message": fault.message})
        headers: dict[str, str] = {}
        if self.enforce_rate_limits:
            limited, headers = self._apply_rate_limits(request, spec, name)
            if limited is not None:
                self.rate_limited.append(self.requests[-1])
                if limited.headers.get("X-RateLimit-Global") == "true":
                    self.global_rate_limited.append(self.requests[-1])
                return limited
        response: web.StreamResponse = await handler(request)
        response.headers.update(headers)
        return response

    async def _hang(
        self, request: web.Request, handler: Callable[[web.Request], Any], path: str, fault: Fault
    ) -> web.StreamResponse:
        """Hold a request unanswered until release_hangs() or stop() (see hang_next)."""
        hung = HungRequest(self.requests[-1], fault)
        self.hung.append(hung)
        response: web.StreamResponse | None = None
        if fault.create:
            response = await self._run_handler(request, handler, path)
            hung.processed, hung.status = True, response.status
        if self._stopping:
            hung._answer = False
        else:
            self._bump()
            await hung._released.wait()
        if not hung._answer:
            hung.outcome = "dropped"
            return _drop_connection(request)
        if response is None:
            response = await self._run_handler(request, handler, path)
            hung.processed = True
        hung.outcome, hung.status = "answered", response.status
        return response

    async def _run_handler(
        self, request: web.Request, handler: Callable[[web.Request], Any], path: str
    ) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except _ApiError as err:
            return self._error_response(request, path, err)
        return response

    async def _read_body(self, request: web.Request, path: str) -> None:
        """Parse a JSON or multipart (payload_json + files[n]) body into the request's storage."""
        request[_FILES] = []
        if not request.body_exists:
            return None
        if request.content_type == "application/json":
            try:
                request[_JSON_BODY] = json.loads(await request.read())
            except ValueError:
                raise _ApiError(400, 50109, "The request body contains invalid JSON.") from None
            return
        if request.content_type == "multipart/form-data":
            await self._read_multipart(request, path)
            return
        self.unhandled.append((request.method, f"{path} (Content-Type {request.content_type})"))

    def _rate_limited(self, retry_after: float, *, global_: bool, scope: str, bucket: str) -> web.Response:
        headers = {
            "Retry-After": str(math.ceil(retry_after)),
            "Via": "1.1 google",  # without it discord.py treats the 429 as a Cloudflare ban
            "X-RateLimit-Scope": scope,
        }
        if global_:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers |= {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": f"fake-{bucket}",
            }
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
        return _json_response(429, body, headers)

    def _apply_rate_limits(
        self, request: web.Request, spec: _RouteSpec, name: str
    ) -> tuple[web.Response | None, dict[str, str]]:
        now = asyncio.get_running_loop().time()
        if spec.auth:  # the global limit counts bot-token requests only, per token: every process of a bot shares it
            hits = [t for t in self._global_hits.get(self.token, []) if t > now - 1.0 + _CLOCK_SLACK]
            self._global_hits[self.token] = hits
            if len(hits) >= self.global_rate_limit:
                retry = _round_up(hits[0] + 1.0 - now)
                return self._rate_limited(retry, global_=True, scope="global", bucket=name), {}
            hits.append(now)
        if spec.bucket is None:
            return None, {}
        limit, period = self._bucket_limits[spec.bucket]
        key = (spec.bucket, request.match_info.get("channel_id", ""))
        window = self._windows.get(key)
        if window is None or now >= window.reset_at - _CLOCK_SLACK:
            window = self._windows[key] = _Window(now + period)
        reset_after = _round_up(window.reset_at - now)
        if window.count >= limit:
            return self._rate_limited(reset_after, global_=False, scope="user", bucket=spec.bucket), {}
        window.count += 1
        return None, {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - window.count),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"fake-{spec.bucket}",
        }

    @staticmethod
    def _body(request: web.Request, kind: type = dict) -> Any:
        body = request.get(_JSON_BODY)
        if not isinstance(body, kind):
            raise _form_error({"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]})
        return body

    # ------------------------------------------------------------------ REST: identity, gateway, commands

    async def _get_me(self, request: web.Request) -> web.Response:
        return _json_response(200, self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0})

    async def _get_application(self, request: web.Request) -> web.Response:
        return _json_response(
            200,
            {
                "id": str(self.application_id),
                "name": self.bot_user.username,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.owner.payload(),
                "team": None,
                "verify_key": secrets.token_hex(32),
                "flags": 0,
                "bot": self.bot_user.payload(),
                "interactions_endpoint_url": None,
                "tags": [],
                "redirect_uris": [],
                "approximate_guild_count": sum(g.bot_joined for g in self.guilds.values()),
            },
        )

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return _json_response(200, {"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        """Discord's shape: the recommended shard count (one per 1,000 guilds, at least one) and the session start
        limit, whose ``remaining`` counts every session started so far."""
        shards = self.limits.recommended_shards
        if shards is None:
            joined = sum(g.bot_joined for g in self.guilds.values())
            shards = max(1, math.ceil(joined / GUILDS_PER_RECOMMENDED_SHARD))
        limit = {
            "total": self.limits.session_start_total,
            "remaining": self.gateway.session_starts_remaining,
            "reset_after": self.limits.session_reset_after_ms,
            "max_concurrency": self.limits.max_concurrency,
        }
        return _json_response(200, {"url": self.gateway_url, "shards": shards, "session_start_limit": limit})

    def _command_scope(self, request: web.Request) -> tuple[list[JSON], int | None]:
        if int(request.match_info["app_id"]) != self.application_id:
            raise _ApiError(403, 20012, "You are not authorized to perform this action on this application")
        if "guild_id" not in request.match_info:
            return self.synced_commands, None
        guild = self._bot_guild(request.match_info["guild_id"])
        return self.guild_commands.setdefault(guild.id, []), guild.id

    async def _put_commands(self, request: web.Request) -> web.Response:
        current, guild_id = self._command_scope(request)
        body = self._body(request, list)
        if errors := validate_commands(body):
            raise _form_error(errors.tree)
        existing = {(c["name"], c.get("type", 1)): c for c in current}
        stored: list[JSON] = []
        for cmd in body:
            old = existing.get((cmd["name"], cmd.get("type", 1)))
            perms = cmd.get("default_member_permissions")
            stored.append(
                {
                    "id": old["id"] if old else str(self._next_id()),
                    "application_id": str(self.application_id),
                    "version": str(self._next_id()),
                    "type": cmd.get("type", 1),
                    "name": cmd["name"],
                    "description": cmd.get("description", ""),
                    "options": cmd.get("options") or [],
                    "default_member_permissions": None if perms is None else str(perms),
                    "dm_permission": cmd.get("dm_permission", True),
                    "contexts": cmd.get("contexts"),
                    "integration_types": cmd.get("integration_types") or [0],
                    "nsfw": cmd.get("nsfw", False),
                    "name_localizations": cmd.get("name_localizations"),
                    "description_localizations": cmd.get("description_localizations"),
                }
                | ({"guild_id": str(guild_id)} if guild_id else {})
            )
        current[:] = stored
        return _json_response(200, stored)

    async def _get_commands(self, request: web.Request) -> web.Response:
        current, _ = self._command_scope(request)
        return _json_response(200, current)

    # ------------------------------------------------------------------ REST: interactions and webhooks

    def _interaction_message(self, inter: FakeInteraction, data: JSON, flags: int) -> FakeMessage:
        return FakeMessage(
            self._next_id(),
            inter.channel_id,
            inter.guild_id,
            self.bot_user,
            content=data.get("content") or "",
            embeds=[{"type": "rich"} | e for e in data.get("embeds") or []],
            components=data.get("components") or [],
            allowed_mentions=data.get("allowed_mentions"),
            flags=flags,
            webhook_id=self.application_id,
            interaction={
                "id": str(inter.id),
                "type": inter.type,
                "name": inter.name,
                "user": self.users[inter.user_id].payload(),
            },
        )

    def _check_message_body(self, body: JSON, *, creating: bool, attachments: int = 0) -> None:
        if errors := validate_message(body):
            raise _form_error(errors.tree)
        if creating and is_empty_message(body) and not attachments:
            raise _ApiError(400, 50006, "Cannot send an empty message")

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        inter = self.interactions.get(int(request.match_info["interaction_id"]))
        if inter is None or inter.token != request.match_info["token"]:
            raise _ApiError(404, 10062, "Unknown interaction")
        body = self._body(request)
        if inter.callbacks:
            raise _ApiError(400, 40060, "Interaction has already been acknowledged.")
        age = asyncio.get_running_loop().time() - inter.created
        if age > self.interaction_response_timeout:
            self.rejected.append(Rejection("POST", request.path.removeprefix(API_PREFIX), 404, {"late_by": age}, body))
            raise _ApiError(404, 10062, "Unknown interaction")
        ctype = body.get("type")
        allowed = (8,) if inter.type == 4 else (4, 5, 6) if inter.type == 3 else (4, 5)
        if ctype not in allowed:
            error = {
                "code": "INTERACTION_RESPONSE_TYPE_INVALID",
                "message": f"Response type {ctype} is not valid here.",
            }
            raise _form_error({"type": {"_errors": [error]}})
        data = body.get("data") or {}
        message: FakeMessage | None = None
        if ctype == 4:
            self._check_message_body(data, creating=True, attachments=len(request[_FILES]))
            message = self._interaction_message(inter, data, int(data.get("flags") or 0))
            message.attachments = self._attachments(request, data, inter.channel_id, ephemeral=message.ephemeral)
        elif ctype == 5:
            message = self._interaction_message(
                inter, {}, FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            )
        elif errors := validate_choices(data.get("choices")):
            raise _form_error(errors.tree)
        inter.callbacks.append(body)
        inter.original = message
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        result: JSON = {"interaction": {"id": str(inter.id), "type": inter.type}, "resource": {"type": ctype}}
        if message is not None:
            result["interaction"] |= {
                "response_message_id": str(message.id),
                "response_message_loading": bool(message.flags & FLAG_LOADING),
                "response_message_ephemeral": message.ephemeral,
            }
            result["resource"]["message"] = message.payload()
        return _json_response(200, result)

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        inter = self._interactions_by_token.get(request.match_info["token"])
        if int(request.match_info["app_id"]) != self.application_id or inter is None:
            raise _ApiError(404, 10015, "Unknown Webhook")
        if asyncio.get_running_loop().time() - inter.created > _INTERACTION_TOKEN_TTL:
            raise _ApiError(401, 50027, "Invalid Webhook Token")
        if not inter.callbacks or inter.type == 4:  # no webhook before the ack, nor for autocomplete
            raise _ApiError(404, 10015, "Unknown Webhook")
        return inter

    def _webhook_message(self, request: web.Request) -> tuple[FakeInteraction, FakeMessage]:
        inter = self._webhook_interaction(request)
        mid = request.match_info["message_id"]
        candidates = [inter.original, *inter.followups]
        found = inter.original if mid == "@original" else next((m for m in candidates if m and str(m.id) == mid), None)
        if found is None or found.deleted:
            raise _ApiError(404, 10008, "Unknown Message")
        return inter, found

    async def _webhook_execute(self, request: web.Request) -> web.Response:
        inter = self._webhook_interaction(request)
        body = self._body(request)
        self._check_message_body(body, creating=True, attachments=len(request[_FILES]))
        original = inter.original
        if original is not None and original.flags & FLAG_LOADING:
            # The first follow-up after a defer replaces the "thinking" message (keeping its ephemerality).
            attachments = self._attachments(request, body, inter.channel_id, ephemeral=original.ephemeral)
            self._apply_edit(original, {k: v for k, v in body.items() if k != "flags"}, record=False)
            original.flags &= ~FLAG_LOADING
            original.attachments = attachments
            message = original
        else:
            flags = int(body.get("flags") or 0)
            attachments = self._attachments(request, body, inter.channel_id, ephemeral=bool(flags & FLAG_EPHEMERAL))
            message = self._interaction_message(inter, body, flags)
            message.attachments = attachments
            inter.followups.append(message)
        if request.query.get("wait") in ("1", "true", "True"):
            return _json_response(200, message.payload())
        return web.Response(status=204)

    async def _webhook_message_get(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        return _json_response(200, message.payload())

    async def _webhook_message_patch(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        body = self._body(request)
        self._check_message_body(body, creating=False)
        attachments = self._edited_attachments(request, body, message)
        self._apply_edit(message, body)
        message.attachments = attachments
        message.flags &= ~FLAG_LOADING
        return _json_response(200, message.payload())

    async def _webhook_message_delete(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        message.deleted = True
        return web.Response(status=204)

    # ------------------------------------------------------------------ REST: file uploads (attachments)
    # Discord's "Uploading Files" (developers/reference) and the attachment objects (resources/message): files
    # come in a multipart/form-data body, the JSON as `payload_json` and each file as `files[n]`, whose
    # Content-Disposition must carry a filename and a unique name; `n` is the placeholder id that an entry of the
    # JSON's `attachments` array (the callback's `data.attachments` for an interaction response) refers to, with
    # the file's `filename` and `description` (alt text, at most 1,024 characters). Each file is at most
    # `attachment_size_limit` (10 MiB by default), a message holds at most 10 attachments (error 30015). On an
    # edit, new files are appended; with an `attachments` array, only the files it lists stay (existing ones by
    # id, new ones by placeholder). Attachments of an ephemeral message are ephemeral. The bytes of every file
    # stored are kept: `attachment_bytes(attachment)`.

    async def _read_multipart(self, request: web.Request, path: str) -> None:
        # Part by part (aiohttp's request.post() would fold two parts of one name into one).
        request[_JSON_BODY] = {}  # payload_json is optional: files alone are a message
        names: set[str] = set()
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                raise _form_error({"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "Each part needs a name."}]})
            key = part.name
            if key in names:
                error = {"code": "DUPLICATE_FIELD", "message": f"Each form field must be named once: {key!r}"}
                raise _form_error({key: {"_errors": [error]}})
            names.add(key)
            data = await part.read(decode=True)
            placeholder = re.fullmatch(r"files\[(\d+)\]", key)
            if key == "payload_json":
                try:
                    request[_JSON_BODY] = json.loads(data)
                except ValueError:
                    raise _ApiError(400, 50109, "The request body contains invalid JSON.") from None
            elif placeholder is not None:
                if not part.filename:
                    error = {"code": "BASE_TYPE_REQUIRED", "message": "A file needs a filename (Content-Disposition)."}
                    raise _form_error({key: {"_errors": [error]}})
                request[_FILES].append(_Upload(int(placeholder[1]), part.filename, bytes(data)))
            else:
                self.unhandled.append((request.method, f"{path} (multipart field {key!r})"))

    def _attachments(
        self, request: web.Request, body: JSON, channel_id: int, *, ephemeral: bool, keep: list[JSON] | None = None
    ) -> list[JSON]:
        """The attachments a message gets from this request's files and its JSON's `attachments`; `keep` are the
        message's own (an edit). Raises Discord's error for what Discord refuses."""
        uploads: dict[int, _Upload] = {upload.placeholder: upload for upload in request[_FILES]}
        existing = {str(a["id"]): a for a in keep or []}
        listed = body.get("attachments")
        if listed is None:  # no array: every file is added, and an edit keeps what the message had
            entries: list[JSON] = [{"id": placeholder} for placeholder in sorted(uploads)]
            kept = list(existing.values())
        else:
            if not isinstance(listed, list) or not all(isinstance(item, dict) for item in listed):
                raise _form_error(
                    {"attachments": {"_errors": [{"code": "BASE_TYPE_LIST", "message": "Must be a list."}]}}
                )
            entries, kept = [], []
            for index, item in enumerate(listed):
                if str(item.get("id")) in existing:
                    kept.append(existing[str(item["id"])] | _described(item))
                elif isinstance(item.get("id"), int | str) and str(item["id"]).isdigit() and int(item["id"]) in uploads:
                    entries.append(item)
                else:
                    error = {"code": "ATTACHMENT_NOT_FOUND", "message": f"No file or attachment {item.get('id')!r}."}
                    raise _form_error({"attachments": {str(index): {"id": {"_errors": [error]}}}})
                if len(str(item.get("description") or "")) > 1024:
                    error = {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 1024 or fewer in length."}
                    raise _form_error({"attachments": {str(index): {"description": {"_errors": [error]}}}})
        if len(kept) + len(entries) > _MAX_ATTACHMENTS:
            raise _ApiError(400, 30015, "Maximum number of attachments in a message reached (10)")
        added = []
        for entry in entries:
            upload = uploads[int(entry["id"])]
            if len(upload.data) > _ATTACHMENT_SIZE_LIMIT:
                raise _ApiError(413, 40005, "Request entity too large")
            added.append(self._stored_attachment(upload, entry, channel_id, ephemeral=ephemeral))
        return kept + added

    def _edited_attachments(self, request: web.Request, body: JSON, message: FakeMessage) -> list[JSON]:
        if not request[_FILES] and "attachments" not in body:
            return message.attachments
        return self._attachments(
            request, body, message.channel_id, ephemeral=message.ephemeral, keep=message.attachments
        )

    def _stored_attachment(self, upload: _Upload, entry: JSON, channel_id: int, *, ephemeral: bool) -> JSON:
        attachment_id = str(self._next_id())
        filename = str(entry.get("filename") or upload.filename)
        content_type, _ = mimetypes.guess_type(filename)  # Discord reports the type it detects, not the part's
        attachment: JSON = {
            "id": attachment_id,
            "filename": filename,
            "size": len(upload.data),
            "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{attachment_id}/{filename}",
            "proxy_url": f"https://media.discordapp.net/attachments/{channel_id}/{attachment_id}/{filename}",
        } | _described(entry)
        if content_type:
            attachment["content_type"] = content_type
        if upload.data[:8] == b"\x89PNG\r\n\x1a\n" and len(upload.data) >= 24:  # IHDR: width, height
            attachment["width"], attachment["height"] = struct.unpack(">II", upload.data[16:24])
        if ephemeral:
            attachment["ephemeral"] = True
        self.uploaded[attachment_id] = upload.data
        return attachment

    def attachment_bytes(self, attachment: JSON) -> bytes:
        """The file behind an attachment object of a message the fake stored."""
        return self.uploaded[str(attachment["id"])]

    # ------------------------------------------------------------------ REST: channels, messages, guilds

    def _bot_guild(self, raw_id: str) -> FakeGuild:
        guild = self.guilds.get(int(raw_id))
        if guild is None:
            raise _ApiError(404, 10004, "Unknown Guild")
        if not guild.bot_joined:
            raise _ApiError(403, 50001, "Missing Access")
        return guild

    def _bot_channel(self, request: web.Request, need: int = 0) -> tuple[FakeChannel, int]:
        """The channel from the URL plus the bot's permissions there, or Discord's error."""
        channel = self.channels.get(int(request.match_info["channel_id"]))
        if channel is None or channel.deleted:
            raise _ApiError(404, 10003, "Unknown Channel")
        if not self.guilds[channel.guild_id].bot_joined:
            raise _ApiError(403, 50001, "Missing Access")
        perms = self.bot_permissions_in(channel.id)
        if not perms & VIEW_CHANNEL:
            raise _ApiError(403, 50001, "Missing Access")
        if need & ~perms:
            raise _ApiError(403, 50013, "Missing Permissions")
        return channel, perms

    def _channel_message(self, channel: FakeChannel, raw_id: str) -> FakeMessage:
        mid = int(raw_id)
        for message in self.messages:
            if message.id == mid and message.channel_id == channel.id and not message.deleted:
                return message
        raise _ApiError(404, 10008, "Unknown Message")

    def _effective_mentions(self, guild: FakeGuild, message: FakeMessage, perms: int) -> None:
        """Which role / @everyone pings Discord would actually deliver, honouring allowed_mentions."""
        allowed = message.allowed_mentions
        parse = ["users", "roles", "everyone"] if allowed is None else allowed.get("parse", [])
        listed = {str(r) for r in (allowed or {}).get("roles", [])}
        message.mention_roles = [
            int(rid)
            for rid in dict.fromkeys(re.findall(r"<@&(\d+)>", message.content))
            if int(rid) in guild.roles
            and ("roles" in parse or rid in listed)
            and (guild.roles[int(rid)].mentionable or perms & MENTION_EVERYONE)
        ]
        pings_everyone = "@everyone" in message.content or "@here" in message.content
        message.mention_everyone = pings_everyone and "everyone" in parse and bool(perms & MENTION_EVERYONE)

    def _apply_edit(self, message: FakeMessage, body: JSON, *, record: bool = True) -> None:
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = [{"type": "rich"} | e for e in body["embeds"] or []]
        if "components" in body:
            message.components = body["components"] or []
        if "allowed_mentions" in body:
            message.allowed_mentions = body["allowed_mentions"]
        if body.get("flags") is not None:
            message.flags = (message.flags & (FLAG_EPHEMERAL | FLAG_LOADING | FLAG_CROSSPOSTED)) | int(body["flags"])
        if record:
            message.edits.append(body)
            message.edited_timestamp = iso_now()

    async def _create_message(self, request: web.Request) -> web.Response:
        channel, perms = self._bot_channel(request, need=SEND_MESSAGES)
        body = self._body(request)
        files = request[_FILES]
        self._check_message_body(body, creating=True, attachments=len(files))
        if body.get("embeds") and not perms & EMBED_LINKS:
            raise _ApiError(403, 50013, "Missing Permissions")
        attachments = self._attachments(request, body, channel.id, ephemeral=False)
        nonce = body.get("nonce")
        remembered = self._remembered_nonce(channel.id, nonce)
        if remembered is not None and body.get("enforce_nonce"):
            self.deduplicated.append((nonce, remembered))
            return _json_response(200, remembered.payload())
        message = FakeMessage(
            self._next_id(),
            channel.id,
            channel.guild_id,
            self.bot_user,
            content=body.get("content") or "",
            embeds=[{"type": "rich"} | e for e in body.get("embeds") or []],
            components=body.get("components") or [],
            allowed_mentions=body.get("allowed_mentions"),
            nonce=nonce,
            flags=int(body.get("flags") or 0),
            tts=bool(body.get("tts")),
            message_reference=body.get("message_reference"),
        )
        message.attachments = attachments
        guild = self.guilds[channel.guild_id]
        self._effective_mentions(guild, message, perms)
        channel.last_message_id = message.id
        self.messages.append(message)
        self.message_ports[message.id] = request.get(_CLIENT_PORT)
        if nonce is not None and remembered is None:
            self._nonces[(channel.id, nonce)] = (message, self.now())
        member = guild.members[self.bot_user_id].payload(with_user=False)
        self._dispatch("MESSAGE_CREATE", message.payload() | {"member": member}, guild=guild)
        return _json_response(200, message.payload())

    def _remembered_nonce(self, channel_id: int, nonce: Any) -> FakeMessage | None:
        """The message created in this channel with this nonce within the nonce window, if any."""
        if not isinstance(nonce, str | int):
            return None
        seen = self._nonces.get((channel_id, nonce))
        if seen is None:
            return None
        if self.now() - seen[1] >= self.nonce_window_seconds:
            del self._nonces[(channel_id, nonce)]
            return None
        return seen[0]

    async def _list_messages(self, request: web.Request) -> web.Response:
        channel, perms = self._bot_channel(request)
        try:
            limit = int(request.query.get("limit", "50"))
            before = int(request.query["before"]) if "before" in request.query else None
            after = int(request.query["after"]) if "after" in request.query else None
        except ValueError:
            raise _form_error(
                {"limit": {"_errors": [{"code": "NUMBER_TYPE_COERCE", "message": "Not an int."}]}}
            ) from None
        if not 1 <= limit <= 100:
            raise _form_error({"limit": {"_errors": [{"code": "NUMBER_TYPE_MAX", "message": "Must be 1-100."}]}})
        if not perms & READ_MESSAGE_HISTORY:
            return _json_response(200, [])  # Discord returns nothing rather than an error here
        found = sorted((m for m in self.messages if m.channel_id == channel.id and not m.deleted), key=lambda m: m.id)
        if after is not None:
            found = [m for m in found if m.id > after][:limit]
        else:
            found = [m for m in found if before is None or m.id < before][-limit:]
        return _json_response(200, [m.payload() for m in reversed(found)])

    async def _get_message(self, request: web.Request) -> web.Response:
        channel, _ = self._bot_channel(request, need=READ_MESSAGE_HISTORY)
        return _json_response(200, self._channel_message(channel, request.match_info["message_id"]).payload())

    async def _edit_message(self, request: web.Request) -> web.Response:
        channel, perms = self._bot_channel(request)
        message = self._channel_message(channel, request.match_info["message_id"])
        if message.author.id != self.bot_user_id:
            raise _ApiError(403, 50005, "Cannot edit a message authored by another user")
        body = self._body(request)
        self._check_message_body(body, creating=False)
        if body.get("embeds") and not perms & EMBED_LINKS:
            raise _ApiError(403, 50013, "Missing Permissions")
        attachments = self._edited_attachments(request, body, message)
        merged = {"content": message.content, "embeds": message.embeds, "attachments": attachments} | body
        if is_empty_message(merged):
            raise _ApiError(400, 50006, "Cannot send an empty message")
        self._apply_edit(message, body)
        message.attachments = attachments
        guild = self.guilds[channel.guild_id]
        self._effective_mentions(guild, message, perms)
        self._dispatch("MESSAGE_UPDATE", message.payload(), guild=guild)
        return _json_response(200, message.payload())

    async def _delete_message(self, request: web.Request) -> web.Response:
        channel, perms = self._bot_channel(request)
        message = self._channel_message(channel, request.match_info["message_id"])
        if message.author.id != self.bot_user_id and not perms & MANAGE_MESSAGES:
            raise _ApiError(403, 50013, "Missing Permissions")
        message.deleted = True
        event = {"id": str(message.id), "channel_id": str(channel.id), "guild_id": str(channel.guild_id)}
        self._dispatch("MESSAGE_DELETE", event, guild=self.guilds[channel.guild_id])
        return web.Response(status=204)

    def publish_as_member(self, channel_id: int, count: int = 1) -> None:
        """Someone else publishes in this news channel: it counts against the channel's limit like the bot's."""
        self._publishes.setdefault(channel_id, []).extend([self.now()] * count)

    def publishes_left(self, channel_id: int) -> int:
        """How many more publishes the channel's limit allows now."""
        return self.publish_limit - len(self._recent_publishes(channel_id))

    def _recent_publishes(self, channel_id: int) -> list[float]:
        now = self.now()
        recent = [t for t in self._publishes.get(channel_id, []) if t > now - self.publish_period]
        self._publishes[channel_id] = recent
        return recent

    async def _crosspost_message(self, request: web.Request) -> web.Response:
        channel, perms = self._bot_channel(request, need=SEND_MESSAGES)
        message = self._channel_message(channel, request.match_info["message_id"])
        if channel.type != NEWS_CHANNEL:
            raise _ApiError(400, 50024, "Cannot execute action on this channel type")
        if message.author.id != self.bot_user_id and not perms & MANAGE_MESSAGES:
            raise _ApiError(403, 50013, "Missing Permissions")
        if message.flags & FLAG_CROSSPOSTED:
            raise _ApiError(400, 40033, "This message has already been crossposted.")
        recent = self._recent_publishes(channel.id)
        if len(recent) >= self.publish_limit:
            # As Discord reports this limit: in the body's retry_after, scope "shared", no bucket headers (the
            # route's own bucket headers are short-lived ones; the hour is a limit of the channel, not the route).
            reset_after = _round_up(recent[0] + self.publish_period - self.now())
            self.rate_limited.append(self.requests[-1])
            headers = {"Retry-After": str(math.ceil(reset_after)), "Via": "1.1 google", "X-RateLimit-Scope": "shared"}
            body = {"message": "You are being rate limited.", "retry_after": reset_after, "global": False}
            return _json_response(429, body, headers)
        recent.append(self.now())
        message.flags |= FLAG_CROSSPOSTED
        self.crossposted.append(message)
        self._dispatch("MESSAGE_UPDATE", message.payload(), guild=self.guilds[channel.guild_id])
        return _json_response(200, message.payload())

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel, _ = self._bot_channel(request)
        return _json_response(200, channel.payload())

    async def _get_guild(self, request: web.Request) -> web.Response:
        guild = self._bot_guild(request.match_info["guild_id"])
        data = guild.rest_payload()
        if request.query.get("with_counts") in ("1", "true", "True"):
            data |= {"approximate_member_count": len(guild.members), "approximate_presence_count": 0}
        return _json_response(200, data)

    async def _get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._bot_guild(request.match_info["guild_id"])
        return _json_response(200, [c.payload() for c in guild.live_channels()])

    async def _get_member(self, request: web.Request) -> web.Response:
        guild = self._bot_guild(request.match_info["guild_id"])
        member = guild.members.get(int(request.match_info["user_id"]))
        if member is None:
            raise _ApiError(404, 10007, "Unknown Member")
        return _json_response(200, member.payload())

    async def _leave_guild_route(self, request: web.Request) -> web.Response:
        self._leave_guild(self._bot_guild(request.match_info["guild_id"]))
        return web.Response(status=204)

    # ------------------------------------------------------------------ REST: guild scheduled events

    async def _list_scheduled_events(self, request: web.Request) -> web.Response:
        guild = self._bot_guild(request.match_info["guild_id"])
        return _json_response(200, [e.payload() for e in self.scheduled_events.in_guild(guild.id, open_only=True)])

    async def _create_scheduled_event(self, request: web.Request) -> web.Response:
        guild = self._bot_guild(request.match_info["guild_id"])
        try:
            event = self.scheduled_events.create(guild, self.bot_user_id, request.get(_JSON_BODY))
        except EventApiError as err:
            raise _ApiError(err.status, err.code, err.message, err.errors) from None
        return _json_response(200, event.payload())

    async def _edit_scheduled_event(self, request: web.Request) -> web.Response:
        guild = self._bot_guild(request.match_info["guild_id"])
        try:
            event = self.scheduled_events.edit(
                guild, self.bot_user_id, request.match_info["event_id"], request.get(_JSON_BODY)
            )
        except EventApiError as err:
            raise _ApiError(err.status, err.code, err.message, err.errors) from None
        return _json_response(200, event.payload())

    # ------------------------------------------------------------------ REST: roles (discord_roles.py)

    async def _create_role(self, request: web.Request) -> web.Response:
        guild = self._bot_guild(request.match_info["guild_id"])
        try:
            role, moved = self.guild_roles.create(guild, request.get(_JSON_BODY) or {})
        except RoleApiError as err:
            raise _ApiError(err.status, err.code, err.message, err.errors) from None
        self._dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()}, guild=guild)
        for other in moved:
            self._dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(guild.id), "role": other.payload()}, guild=guild)
        return _json_response(200, role.payload())

    async def _add_member_role(self, request: web.Request) -> web.Response:
        return self._change_member_role(request, add=True)

    async def _remove_member_role(self, request: web.Request) -> web.Response:
        return self._change_member_role(request, add=False)

    def _change_member_role(self, request: web.Request, *, add: bool) -> web.Response:
        guild = self._bot_guild(request.match_info["guild_id"])
        user_id, role_id = int(request.match_info["user_id"]), int(request.match_info["role_id"])
        change = self.guild_roles.add_to_member if add else self.guild_roles.remove_from_member
        try:
            change(guild, user_id, role_id)
        except RoleApiError as err:
            raise _ApiError(err.status, err.code, err.message, err.errors) from None
        return web.Response(status=204)

    def delete_role(self, guild_id: int, role_id: int) -> None:
        """A human deletes a role (Server Settings → Roles): GUILD_ROLE_DELETE."""
        guild = self.guilds[guild_id]
        self.guild_roles.delete(guild, role_id)
        self._dispatch("GUILD_ROLE_DELETE", {"guild_id": str(guild_id), "role_id": str(role_id)}, guild=guild)

    def member_role_ids(self, guild_id: int, user_id: int) -> list[int]:
        member = self.guilds[guild_id].members.get(user_id)
        return list(member.role_ids) if member is not None else []

    async def press_button(
        self, message: FakeMessage, custom_id: str, *, user_id: int | None = None, permissions: int = MEMBER_PERMISSIONS
    ) -> FakeInteraction:
        """A member presses a button of a message: INTERACTION_CREATE type 3 on the guild's shard (see
        discord_roles.py); raises InteractionRefused for a message or button Discord would not let one press."""
        if not self.gateway.sessions:
            raise RuntimeError("the bot has not identified on the gateway")
        guild = self.guilds.get(message.guild_id or 0)
        if guild is None or not guild.bot_joined:
            raise InteractionRefused("the message is not in a guild the bot is in")
        if message.deleted or message.ephemeral:
            raise InteractionRefused("that message is gone (or is someone else's ephemeral message)")
        button = pressable_button(message, custom_id)
        if button is None or button.get("disabled"):
            raise InteractionRefused(f"the message has no enabled button with custom_id {custom_id!r}")
        user = self.users.get(user_id) if user_id is not None else self.default_user
        if user is None:
            user = self.users[user_id] = FakeUser(user_id, f"user{user_id}")  # type: ignore[arg-type]
        channel = self.channels[message.channel_id]
        member = guild.members.setdefault(user.id, FakeMember(user))
        payload: JSON = {
            "id": str(self._next_id()),
            "application_id": str(self.application_id),
            "type": 3,
            "data": {"custom_id": custom_id, "component_type": 2},
            "token": secrets.token_urlsafe(32),
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": _ATTACHMENT_SIZE_LIMIT,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "guild_locale": "en-US",
            "channel_id": str(channel.id),
            "channel": channel.payload() | {"permissions": str(permissions)},
            "member": member.payload() | {"permissions": str(permissions)},
            "message": message.payload(),
            "app_permissions": str(self.bot_permissions_in(channel.id)),
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
        }
        inter = FakeInteraction(payload, created=asyncio.get_running_loop().time(), wait_until=self.wait_until)
        self.interactions[inter.id] = inter
        self._interactions_by_token[inter.token] = inter
        inter.shards = tuple(self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id))
        await self.drain()
        return inter


@contextlib.contextmanager
def patch_discord_endpoints(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at a started fake; restore them afterwards."""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
