"""A strict fake of Twitch's OAuth and Helix endpoints, served by aiohttp on 127.0.0.1 for tests.
It checks credentials and limits like real Twitch and lets tests inject failures, latency and rate limits.

Fault injection: ``fail_next`` (any status, raw body and content type, delay), ``malformed_next`` (a 200
whose body is not what Helix promises), ``hang_next`` (a request that is never answered until
``release_hangs()`` or ``stop()``), and ``poison_stream`` / ``go_live(raw_overrides=…)`` (one entry of
an otherwise normal /helix/streams page carries raw field values, emitted exactly, see ``RawJSON``).

Channels: ``GET /helix/channels`` serves each user's *current* channel information (title, category,
language, tags, CCLs) with no lag: ``go_live`` / ``update_stream`` / ``update_channel`` set it at once and it
keeps the last title and category while the channel is offline.

Listing lag (facts §7: Get Streams lags a go-live by 30-60 s): a stream appears in ``/helix/streams`` only
``listing_lag`` seconds (on ``clock``) after ``go_live`` (``go_live(listed_after=…)`` per stream), and with
``offline_lag`` an ended stream stays listed, with its last values, that long after ``go_offline``. Both
default to 0, i.e. the listing follows ``go_live`` / ``go_offline`` at once.

Schedules (Get Channel Stream Schedule, ``GET /helix/schedule``): ``schedules`` holds each broadcaster's segments
(``add_segment``, ``add_weekly``, ``set_schedule``, ``cancel_segment``, ``remove_segment``, ``clear_schedule``) and
``vacations`` their vacation (``set_vacation``). As on Twitch: exactly one ``broadcaster_id`` (not batchable, 400
otherwise), optional ``id`` (up to 100), ``start_time`` (RFC 3339, default now on ``clock``), ``first`` (1-25,
default 20) and ``after``; ``data`` is an *object* (``segments``, ``broadcaster_*``, ``vacation``), not a list.
Segments are ordered by start; listed are those starting at or after ``start_time`` and the one in progress;
none inside the vacation (``segments`` is null when nothing is left). Each week of a recurring segment is its
own segment with its own id; a cancelled one has ``canceled_until`` (its end). No segments at all (or an unknown
broadcaster): 404 "segments were not found".

EventSub (conduits, shards, subscriptions, the /ws server, webhook delivery) lives in fake_eventsub.py as
``fake.eventsub``; ``go_live`` / ``update_stream`` / ``update_channel`` / ``go_offline`` push the matching
notification unless ``push=False``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import math
import secrets
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Self

from aiohttp import web

from tests.fakes.fake_eventsub import FakeEventSub

__all__ = [
    "GAMES",
    "HTML_ERROR_PAGE",
    "OMIT",
    "FakeGame",
    "FakeSegment",
    "FakeStream",
    "FakeTwitch",
    "FakeUser",
    "FakeVideo",
    "HungRequest",
    "RawJSON",
    "RecordedRequest",
]

MAX_PER_REQUEST = 100
MAX_SCHEDULE_PAGE = 25
DEFAULT_TOKEN_TTL = 5_000_000
DEFAULT_BUCKET = 800

# What a CDN / load balancer in front of Helix serves when the origin misbehaves: HTML, not JSON.
HTML_ERROR_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Twitch</title></head>"
    "<body><h1>Something went wrong</h1><p>upstream connect error</p></body></html>\n"
)


@dataclass(frozen=True, slots=True)
class RawJSON:
    """A JSON token emitted exactly as written, for values json.dumps cannot or will not produce:
    ``RawJSON("1e999")`` (a number no double holds; json.dumps would write the invalid ``Infinity``),
    ``RawJSON("1.0")``, ``RawJSON("-0")``, even invalid JSON such as ``RawJSON("NaN")``."""

    text: str


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()
"""As a poisoned field's value: leave the key out of the entry altogether."""


@dataclass(frozen=True, slots=True)
class FakeGame:
    id: str
    name: str
    igdb_id: str = ""

    def box_art_url(self, size: str = "{width}x{height}") -> str:
        return f"https://static-cdn.jtvnw.net/ttv-boxart/{self.id}-{size}.jpg"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "box_art_url": self.box_art_url(), "igdb_id": self.igdb_id}


GAMES: tuple[FakeGame, ...] = (
    FakeGame("509658", "Just Chatting"),
    FakeGame("27471", "Minecraft", "121"),
    FakeGame("33214", "Fortnite", "1905"),
    FakeGame("516575", "VALORANT", "126459"),
    FakeGame("21779", "League of Legends", "115"),
    FakeGame("32399", "Counter-Strike", "242408"),
)


@dataclass(slots=True)
class FakeUser:
    id: str
    login: str
    display_name: str
    profile_image_url: str
    broadcaster_type: str = ""
    description: str = ""
    created_at: datetime = field(default_factory=lambda: datetime(2016, 5, 1, 12, 0, tzinfo=UTC))
    # The channel (GET /helix/channels): current values, kept while offline; a new channel has no title/game.
    title: str = ""
    game_id: str = ""
    game_name: str = ""
    broadcaster_language: str = "en"
    tags: list[str] = field(default_factory=list)
    content_classification_labels: list[str] = field(default_factory=list)
    is_branded_content: bool = False
    delay: int = 0

    def channel_json(self) -> dict[str, Any]:
        """One item of Get Channel Information."""
        return {
            "broadcaster_id": self.id,
            "broadcaster_login": self.login,
            "broadcaster_name": self.display_name,
            "broadcaster_language": self.broadcaster_language,
            "game_id": self.game_id,
            "game_name": self.game_name,
            "title": self.title,
            "delay": self.delay,
            "tags": list(self.tags),
            "content_classification_labels": list(self.content_classification_labels),
            "is_branded_content": self.is_branded_content,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "login": self.login,
            "display_name": self.display_name,
            "type": "",
            "broadcaster_type": self.broadcaster_type,
            "description": self.description,
            "profile_image_url": self.profile_image_url,
            "offline_image_url": "",
            "view_count": 0,
            "created_at": _iso(self.created_at),
        }


@dataclass(slots=True)
class FakeStream:
    id: str
    user_id: str
    title: str
    game_id: str
    game_name: str
    viewer_count: int
    started_at: datetime
    language: str = "en"
    is_mature: bool = False
    tags: list[str] = field(default_factory=lambda: ["English"])
    raw_overrides: dict[str, Any] = field(default_factory=dict)  # poisoned fields, see poison_stream
    listed_from: float = 0.0  # FakeTwitch clock: in /helix/streams from then on (the listing lag, §7)
    listed_until: float | None = None  # set when it ended: still listed until then (FakeTwitch.offline_lag)

    def to_json(self, user: FakeUser) -> dict[str, Any]:
        data = self._clean_json(user)
        for key, value in self.raw_overrides.items():
            if value is OMIT:
                data.pop(key, None)
            else:
                data[key] = value
        return data

    def _clean_json(self, user: FakeUser) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": user.id,
            "user_login": user.login,
            "user_name": user.display_name,
            "game_id": self.game_id,
            "game_name": self.game_name,
            "type": "live",
            "title": self.title,
            "tags": list(self.tags),
            "viewer_count": self.viewer_count,
            "started_at": _iso(self.started_at),
            "language": self.language,
            "thumbnail_url": f"https://static-cdn.jtvnw.net/previews-ttv/live_user_{user.login}-{{width}}x{{height}}.jpg",
            "tag_ids": [],
            "is_mature": self.is_mature,
        }


@dataclass(slots=True)
class FakeVideo:
    id: str
    stream_id: str
    user_id: str
    title: str
    created_at: datetime
    duration: str
    type: str = "archive"
    view_count: int = 0

    @property
    def url(self) -> str:
        return f"https://www.twitch.tv/videos/{self.id}"

    def to_json(self, user: FakeUser) -> dict[str, Any]:
        return {
            "id": self.id,
            "stream_id": self.stream_id,
            "user_id": user.id,
            "user_login": user.login,
            "user_name": user.display_name,
            "title": self.title,
            "description": "",
            "created_at": _iso(self.created_at),
            "published_at": _iso(self.created_at),
            "url": self.url,
            "thumbnail_url": f"https://static-cdn.jtvnw.net/cf_vods/d2nvs31859zcd8/{self.id}/thumb/thumb0-%{{width}}x%{{height}}.jpg",
            "viewable": "public",
            "view_count": self.view_count,
            "language": "en",
            "type": self.type,
            "duration": self.duration,
            "muted_segments": None,
        }


@dataclass(slots=True)
class FakeSegment:
    """One broadcast of a channel's schedule; ``id`` is given by ``set_schedule`` / ``add_segment`` when empty
    (opaque base64 like Twitch's, never a number)."""

    start_time: datetime
    end_time: datetime
    title: str = ""
    category_id: str = ""
    category_name: str = ""
    is_recurring: bool = False
    canceled: bool = False
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        category = {"id": self.category_id, "name": self.category_name} if self.category_id else None
        return {
            "id": self.id,
            "start_time": _iso(self.start_time),
            "end_time": _iso(self.end_time),
            "title": self.title,
            "canceled_until": _iso(self.end_time) if self.canceled else None,
            "category": category,
            "is_recurring": self.is_recurring,
        }


@dataclass(slots=True)
class RecordedRequest:
    """One request the fake saw. Unpacks as (method, path, query, headers); Authorization is redacted
    to a label like "Bearer [token 2]" so tests can tell tokens apart without holding secrets."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    status: int | None = None
    at: float = field(default_factory=time.monotonic)
    """When the request arrived (time.monotonic), for tests of the bot's pacing and schedule."""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.method, self.path, self.query, self.headers))

    def __getitem__(self, index: int) -> Any:
        return (self.method, self.path, self.query, self.headers)[index]

    def values(self, key: str) -> list[str]:
        return [value for name, value in self.query if name == key]


_RECORD = web.RequestKey("fake_record", RecordedRequest)


@dataclass(slots=True, eq=False)
class HungRequest:
    """A request held by ``hang_next``: ``outcome`` is "held", then "answered" (``release_hangs()``),
    "dropped" (``release_hangs(answer=False)`` or ``stop()``) or "abandoned" (the client went away)."""

    request: RecordedRequest
    outcome: Literal["held", "answered", "dropped", "abandoned"] = "held"
    _answer: bool = field(default=True, repr=False)
    _released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def path(self) -> str:
        return self.request.path


@dataclass(slots=True)
class _Failure:
    path: str
    status: int | None
    times: int | None
    body: str | None
    delay: float
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    content_type: str = "application/json"
    hang: bool = False

    def matches(self, path: str, query: list[tuple[str, str]]) -> bool:
        return path.startswith(self.path) and all(pair in query for pair in self.query)


@dataclass(slots=True)
class _Token:
    number: int
    expires_at: float
    valid: bool = True
    user_id: str | None = None  # None: an app access token (client credentials)
    scopes: tuple[str, ...] = ()


class FakeTwitch:
    """Fake id.twitch.tv/oauth2 and api.twitch.tv/helix on one local port."""

    def __init__(
        self,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",  # noqa: S107 - a fake's well-known test secret
        *,
        token_ttl: int = DEFAULT_TOKEN_TTL,
        rate_limit: int | None = None,
        rate_limit_window: float = 60.0,
        latency: float = 0.0,
        page_size_cap: int = MAX_PER_REQUEST,
        top_streams: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.rate_limit = rate_limit  # points per window; None = never 429 (headers still sent)
        self.rate_limit_window = rate_limit_window
        self.latency = latency
        self.page_size_cap = page_size_cap  # test knob: serve smaller pages than `first` to force pagination
        self.clock = clock

        self.users: dict[str, FakeUser] = {}
        self.streams: dict[str, FakeStream] = {}  # live streams, by user id
        self.ended_streams: dict[str, FakeStream] = {}  # ended but still listed (offline_lag), by user id
        self.listing_lag = 0.0  # seconds after go_live before /helix/streams lists a stream (§7: 30-60 s)
        self.offline_lag = 0.0  # seconds an ended stream stays listed after go_offline (Twitch's cache)
        self.videos: list[FakeVideo] = []
        self.schedules: dict[str, list[FakeSegment]] = {}  # by broadcaster id; see add_segment
        self.vacations: dict[str, tuple[datetime, datetime]] = {}  # by broadcaster id: (start, end)
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        self.token_requests = 0
        self.validate_requests = 0
        self.issued_tokens: list[str] = []  # so tests can prove no token leaks into logs
        self.hung: list[HungRequest] = []  # requests held by hang_next, in arrival order

        self._tokens: dict[str, _Token] = {}
        self._failures: list[_Failure] = []
        self._user_ids = itertools.count(10_000_001)
        self._stream_ids = itertools.count(40_000_000_001)
        self._video_ids = itertools.count(2_000_000_001)
        self._segment_ids = itertools.count(1)
        self._window_end = 0.0
        self._window_used = 0
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.authorized_user_ids: set[str] = set()  # users who granted this app a scope (EventSub cost 0)
        self.eventsub = FakeEventSub(self)
        self.top_user_ids: list[str] = []
        if top_streams:
            self._add_top_streams()

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("POST", "/oauth2/token", self._token)
        app.router.add_route("GET", "/oauth2/validate", self._validate)
        app.router.add_route("GET", "/helix/users", self._users)
        app.router.add_route("GET", "/helix/streams", self._streams)
        app.router.add_route("GET", "/helix/channels", self._channels)
        app.router.add_route("GET", "/helix/videos", self._videos)
        app.router.add_route("GET", "/helix/games", self._games)
        app.router.add_route("GET", "/helix/search/categories", self._search_categories)
        app.router.add_route("GET", "/helix/schedule", self._schedule)
        self.eventsub.add_routes(app.router)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self.eventsub.start()

    async def stop(self) -> None:
        """Stop serving; requests held by ``hang_next`` are dropped (closed without an answer)."""
        self._stopping.set()
        self.release_hangs(answer=False)
        await self.eventsub.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._port}/helix"

    @property
    def auth_base(self) -> str:
        return f"http://127.0.0.1:{self._port}/oauth2"

    @property
    def eventsub_ws_url(self) -> str:
        """The EventSub WebSocket server, like wss://eventsub.wss.twitch.tv/ws."""
        return self.eventsub.ws_url

    # ------------------------------------------------------------------------------------- world control

    def add_user(
        self,
        login: str,
        *,
        display_name: str | None = None,
        user_id: str | None = None,
        broadcaster_type: str = "",
    ) -> FakeUser:
        uid = user_id or str(next(self._user_ids))
        if uid in self.users:
            raise ValueError(f"user id {uid} already exists")
        if self._by_login(login) is not None:
            raise ValueError(f"login {login} already exists")
        user = FakeUser(
            id=uid,
            login=login.lower(),
            display_name=display_name or login,
            profile_image_url=_profile_image(login.lower()),
            broadcaster_type=broadcaster_type,
        )
        self.users[uid] = user
        return user

    def add_users(self, count: int, prefix: str = "streamer") -> list[FakeUser]:
        return [self.add_user(f"{prefix}_{index}") for index in range(count)]

    def user(self, user_id_or_login: str) -> FakeUser:
        user = self.users.get(user_id_or_login) or self._by_login(user_id_or_login)
        if user is None:
            raise KeyError(user_id_or_login)
        return user

    def rename_user(self, user_id: str, new_login: str, new_display_name: str | None = None) -> FakeUser:
        user = self.user(user_id)
        user.login = new_login.lower()
        user.display_name = new_display_name or new_login
        user.profile_image_url = _profile_image(user.login)
        return user

    def remove_user(self, user_id: str) -> None:
        """Banned or deleted: gone from /users, /streams, /channels and /schedule (ids stay reserved)."""
        user = self.user(user_id)
        self.users.pop(user.id, None)
        self.streams.pop(user.id, None)
        self.ended_streams.pop(user.id, None)
        self.schedules.pop(user.id, None)
        self.vacations.pop(user.id, None)

    def go_live(
        self,
        user_id_or_login: str,
        title: str = "Playing with chat!",
        game_name: str | None = None,
        game_id: str | None = None,
        viewer_count: int = 123,
        started_at: datetime | None = None,
        stream_id: str | None = None,
        *,
        language: str = "en",
        is_mature: bool = False,
        tags: Iterable[str] = ("English",),
        raw_overrides: Mapping[str, Any] | None = None,
        push: bool = True,
        online_type: str = "live",
        listed_after: float | None = None,
    ) -> FakeStream:
        """Start a stream (a new stream id each call unless given; an earlier live stream ends first).
        ``raw_overrides`` poisons fields of its /helix/streams entry, as ``poison_stream`` does.
        With ``push`` (the default) the EventSub ``stream.online`` notification (``type=online_type``) goes
        to every enabled subscription; ``push=False`` is a start only polling sees.
        The channel's title, category, language and tags (/helix/channels) change at once; /helix/streams
        lists the stream ``listed_after`` seconds from now on ``clock`` (default: ``listing_lag``, §7). An
        ended stream still listed by ``offline_lag`` is replaced at once."""
        user = self.user(user_id_or_login)
        previous = self.streams.get(user.id)
        if previous is not None and (stream_id is None or previous.id != stream_id):
            self.go_offline(user.id, push=push)
            previous = None
        self.ended_streams.pop(user.id, None)
        gid, gname = _resolve_game(game_id, game_name)
        if listed_after is not None:
            listed_from = self.clock() + listed_after
        elif previous is not None:  # the same stream again: already listed (or due) as before
            listed_from = previous.listed_from
        else:
            listed_from = self.clock() + self.listing_lag
        stream = FakeStream(
            id=stream_id or str(next(self._stream_ids)),
            user_id=user.id,
            title=title,
            game_id=gid,
            game_name=gname,
            viewer_count=viewer_count,
            started_at=started_at or self._now(),
            language=language,
            is_mature=is_mature,
            tags=list(tags),
            listed_from=listed_from,
        )
        self.streams[user.id] = stream
        user.title, user.game_id, user.game_name = stream.title, stream.game_id, stream.game_name
        user.broadcaster_language, user.tags = stream.language, list(stream.tags)
        if raw_overrides:
            self.poison_stream(user.id, **raw_overrides)
        if push:
            self.eventsub.stream_online(user, stream, online_type)
        return stream

    def poison_stream(self, user_id_or_login: str, **fields: Any) -> FakeStream:
        """Make the live stream's /helix/streams entry carry raw values Twitch's fake never produces,
        in an otherwise normal page: ``viewer_count=RawJSON("1e999")`` (or ``float("inf")``, emitted as
        ``1e999``), ``viewer_count=123456789012345678901234567890`` (an exact integer token),
        ``viewer_count="12"``, ``started_at="yesterday"``, ``title=None`` (null), ``user_id=OMIT``
        (key missing). Lasts until the stream ends; ``clear_poison`` undoes it. Ordering and filtering
        still use the stream's real values."""
        stream = self.streams[self.user(user_id_or_login).id]
        stream.raw_overrides.update({key: _raw_value(value) for key, value in fields.items()})
        return stream

    def clear_poison(self, user_id_or_login: str) -> None:
        self.streams[self.user(user_id_or_login).id].raw_overrides.clear()

    def update_stream(
        self,
        user_id_or_login: str,
        *,
        title: str | None = None,
        game_name: str | None = None,
        game_id: str | None = None,
        viewer_count: int | None = None,
        tags: Iterable[str] | None = None,
        push: bool = True,
    ) -> FakeStream:
        """Change a live stream (KeyError if offline); a title or category change is a channel change too
        (see ``update_channel``: /helix/channels at once, EventSub ``channel.update`` pushed)."""
        user = self.user(user_id_or_login)
        stream = self.streams[user.id]
        if viewer_count is not None:
            stream.viewer_count = viewer_count
        self.update_channel(user.id, title=title, game_name=game_name, game_id=game_id, tags=tags, push=push)
        return stream

    def update_channel(
        self,
        user_id_or_login: str,
        *,
        title: str | None = None,
        game_name: str | None = None,
        game_id: str | None = None,
        language: str | None = None,
        tags: Iterable[str] | None = None,
        content_classification_labels: Iterable[str] | None = None,
        push: bool = True,
    ) -> FakeUser:
        """Change the channel information, live or offline (as the broadcaster's dashboard does): it shows
        in /helix/channels at once and, when live, in the stream too. With ``push``, a change of title,
        category, language or CCLs pushes EventSub ``channel.update`` (§6: it fires while offline too);
        tags are not part of that event."""
        user = self.user(user_id_or_login)
        before = (user.title, user.game_id, user.game_name, user.broadcaster_language)
        labels_before = list(user.content_classification_labels)
        if title is not None:
            user.title = title
        if game_name is not None or game_id is not None:
            user.game_id, user.game_name = _resolve_game(game_id, game_name)
        if language is not None:
            user.broadcaster_language = language
        if tags is not None:
            user.tags = list(tags)
        if content_classification_labels is not None:
            user.content_classification_labels = list(content_classification_labels)
        stream = self.streams.get(user.id)
        if stream is not None:  # only what changed: a test may have edited the stream's own fields
            if title is not None:
                stream.title = user.title
            if game_name is not None or game_id is not None:
                stream.game_id, stream.game_name = user.game_id, user.game_name
            if language is not None:
                stream.language = user.broadcaster_language
            if tags is not None:
                stream.tags = list(user.tags)
        after = (user.title, user.game_id, user.game_name, user.broadcaster_language)
        if push and (before != after or labels_before != user.content_classification_labels):
            self.eventsub.push_channel_update(user)
        return user

    def is_listed(self, user_id_or_login: str) -> bool:
        """Whether /helix/streams lists the user's stream now (see ``listing_lag`` / ``offline_lag``)."""
        user = self.user(user_id_or_login)
        return any(uid == user.id for uid, _ in self._listed_streams())

    def go_offline(self, user_id_or_login: str, *, archive: bool = True, push: bool = True) -> FakeVideo | None:
        """End the stream; like Twitch, leave an archive VOD unless the streamer disabled them. With
        ``push`` an EventSub ``stream.offline`` goes out too. /helix/streams drops it at once, or after
        ``offline_lag`` seconds (still showing its last values) if it had been listed; /helix/channels keeps
        the last title and category."""
        user = self.user(user_id_or_login)
        stream = self.streams.pop(user.id, None)
        now = self.clock()
        if stream is not None and self.offline_lag > 0 and stream.listed_from <= now:
            stream.listed_until = now + self.offline_lag  # Twitch's listing shows it a little longer
            self.ended_streams[user.id] = stream
        if stream is not None and push:
            self.eventsub.stream_offline(user)
        if stream is None or not archive:
            return None
        seconds = max(0, int((self._now() - stream.started_at).total_seconds()))
        video = FakeVideo(
            id=str(next(self._video_ids)),
            stream_id=stream.id,
            user_id=user.id,
            title=stream.title,
            created_at=stream.started_at,
            duration=_duration(seconds),
        )
        self.videos.append(video)
        return video

    # Schedules (GET /helix/schedule) -------------------------------------------------------------

    def add_segment(
        self,
        user_id_or_login: str,
        start: datetime,
        *,
        duration: timedelta = timedelta(hours=2),
        title: str = "Scheduled stream",
        game_name: str | None = None,
        game_id: str | None = None,
        recurring: bool = False,
        segment_id: str | None = None,
    ) -> FakeSegment:
        """Plan one broadcast on the user's schedule (no category unless `game_name` or `game_id` is given)."""
        user = self.user(user_id_or_login)
        has_game = game_name is not None or game_id is not None
        gid, gname = _resolve_game(game_id, game_name) if has_game else ("", "")
        segment = FakeSegment(start, start + duration, title, gid, gname, is_recurring=recurring, id=segment_id or "")
        self.set_schedule(user.id, [*self.schedules.get(user.id, []), segment])
        return segment

    def add_weekly(
        self,
        user_id_or_login: str,
        start: datetime,
        weeks: int,
        *,
        duration: timedelta = timedelta(hours=2),
        title: str = "Weekly stream",
        game_name: str | None = None,
    ) -> list[FakeSegment]:
        """A recurring broadcast: `weeks` segments a week apart, each with its own id (as on Twitch)."""
        return [
            self.add_segment(
                user_id_or_login,
                start + timedelta(weeks=week),
                duration=duration,
                title=title,
                game_name=game_name,
                recurring=True,
            )
            for week in range(weeks)
        ]

    def set_schedule(self, user_id_or_login: str, segments: Iterable[FakeSegment]) -> list[FakeSegment]:
        """Replace the user's schedule; segments without an id get one. An empty one answers 404, like none."""
        user = self.user(user_id_or_login)
        planned = list(segments)
        for segment in planned:
            if not segment.id:
                segment.id = self._new_segment_id(segment.start_time)
        planned.sort(key=lambda segment: (segment.start_time, segment.id))
        self.schedules[user.id] = planned
        return planned

    def cancel_segment(self, user_id_or_login: str, segment_id: str, *, canceled: bool = True) -> FakeSegment:
        """Cancel (or, with canceled=False, restore) one broadcast: it stays listed, with `canceled_until`."""
        segment = self._segment(user_id_or_login, segment_id)
        segment.canceled = canceled
        return segment

    def remove_segment(self, user_id_or_login: str, segment_id: str) -> None:
        """Delete one broadcast from the schedule (KeyError if it is not there)."""
        segment = self._segment(user_id_or_login, segment_id)
        self.schedules[self.user(user_id_or_login).id].remove(segment)

    def clear_schedule(self, user_id_or_login: str) -> None:
        """No schedule any more (and no vacation): /helix/schedule answers 404."""
        user = self.user(user_id_or_login)
        self.schedules.pop(user.id, None)
        self.vacations.pop(user.id, None)

    def set_vacation(self, user_id_or_login: str, start: datetime | None, end: datetime | None = None) -> None:
        """The broadcaster's vacation (segments starting inside it are not listed); start=None ends it."""
        user = self.user(user_id_or_login)
        if start is None:
            self.vacations.pop(user.id, None)
            return
        if end is None or end <= start:
            raise ValueError("a vacation needs an end after its start")
        self.vacations[user.id] = (start, end)

    def _segment(self, user_id_or_login: str, segment_id: str) -> FakeSegment:
        user = self.user(user_id_or_login)
        for segment in self.schedules.get(user.id, []):
            if segment.id == segment_id:
                return segment
        raise KeyError(segment_id)

    def _new_segment_id(self, start: datetime) -> str:
        # Twitch's segment ids are base64 JSON naming the segment and its ISO week (one id per occurrence).
        year, week, _ = start.isocalendar()
        raw = {"segmentID": f"fake-segment-{next(self._segment_ids)}", "isoYear": year, "isoWeek": week}
        return base64.b64encode(json.dumps(raw, separators=(",", ":")).encode()).decode()

    def issue_user_token(self, user_id_or_login: str, scopes: Iterable[str] = ("user:read:email",)) -> str:
        """A user access token for this client (as an authorization-code flow would give). The user has now
        authorized the app, so EventSub subscriptions on them cost 0 (facts §1)."""
        user = self.user(user_id_or_login)
        token = secrets.token_hex(15)
        self._tokens[token] = _Token(
            number=len(self._tokens) + 1,
            expires_at=self.clock() + self.token_ttl,
            user_id=user.id,
            scopes=tuple(scopes),
        )
        self.issued_tokens.append(token)
        self.authorized_user_ids.add(user.id)
        return token

    def _bearer_record(self, request: web.Request) -> _Token | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return self._live_token(token) if scheme.lower() == "bearer" else None

    def expire_tokens(self) -> None:
        """Every token issued so far becomes invalid (Helix and /validate answer 401)."""
        for token in self._tokens.values():
            token.valid = False

    def fail_next(
        self,
        path: str = "/helix/streams",
        status: int | None = 500,
        times: int | None = 1,
        body: str | bytes | Mapping[str, Any] | list[Any] | None = None,
        *,
        delay: float = 0.0,
        query: Iterable[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next `times` requests whose path starts with `path` (and whose query holds all
        `query` pairs) with `status` and `body`; times=None means forever. status=None only adds
        `delay` and then serves normally; a 2xx status with a body overrides a real answer.
        `body` is sent as is when text or bytes (with `content_type`), JSON-encoded (RawJSON allowed)
        when a dict or list."""
        if body is not None and not isinstance(body, str):
            body = body.decode() if isinstance(body, bytes) else _dumps(body)
        failure = _Failure(path, status, times, body, delay, tuple(query), dict(headers or {}), content_type)
        self._failures.append(failure)

    def malformed_next(
        self,
        path: str = "/helix/streams",
        body: str | bytes | Mapping[str, Any] | list[Any] = '{"error": "upstream"}',
        times: int | None = 1,
        *,
        content_type: str = "application/json",
        query: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Answer the next `times` matching requests with HTTP 200 and a body that breaks Helix's
        contract: JSON without `data` (the default), `{"data": None}`, or an HTML page with
        `content_type="text/html"` (see HTML_ERROR_PAGE). Ratelimit-* headers are still sent."""
        self.fail_next(path, 200, times, body, query=query, content_type=content_type)

    def hang_next(
        self, path: str = "/helix/streams", times: int | None = 1, *, query: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Accept the next `times` requests whose path starts with `path` and never answer them: each is
        recorded (`requests`, `hung`) and held until `release_hangs()` or `stop()`, so only the
        client's own timeout ends it."""
        self._failures.append(_Failure(path, None, times, None, 0.0, tuple(query), {}, hang=True))

    def release_hangs(self, *, answer: bool = True) -> int:
        """Release every held request (returns how many): served normally now with `answer=True`,
        or the connection is closed without an answer with `answer=False`."""
        held = [h for h in self.hung if h.outcome == "held" and not h._released.is_set()]
        for hung in held:
            hung._answer = answer
            if not answer:
                hung.outcome = "dropped"
            hung._released.set()
        return len(held)

    def clear_failures(self) -> None:
        self._failures.clear()

    def count(self, path: str, method: str | None = None) -> int:
        return sum(1 for r in self.requests if r.path == path and (method is None or r.method == method))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # ------------------------------------------------------------------------------------------ plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        query = list(request.query.items())
        record = RecordedRequest(request.method, request.path, query, self._safe_headers(request))
        self.requests.append(record)
        request[_RECORD] = record
        failure = self._take_failure(request.path, query)
        if failure is not None and failure.hang and not await self._hold(record):
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never written: the connection is gone
        if failure is not None and failure.delay:
            await self._pause(failure.delay)
        if request.path.startswith("/helix/") and self.latency:
            await self._pause(self.latency)
        if failure is not None and failure.status is not None:
            response = self._failure_response(failure, request.path)
        else:
            response = await handler(request)
        record.status = response.status
        return response

    async def _hold(self, record: RecordedRequest) -> bool:
        """Hold a hung request until released; True if it should then be answered."""
        hung = HungRequest(record)
        self.hung.append(hung)
        if self._stopping.is_set():
            hung._answer = False
        else:
            try:
                await hung._released.wait()
            except asyncio.CancelledError:  # the client went away (handler_cancellation)
                if hung.outcome == "held":
                    hung.outcome = "abandoned"
                raise
        hung.outcome = "answered" if hung._answer else "dropped"
        return hung._answer

    def _take_failure(self, path: str, query: list[tuple[str, str]]) -> _Failure | None:
        for failure in self._failures:
            if failure.matches(path, query):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    def _failure_response(self, failure: _Failure, path: str) -> web.Response:
        status = failure.status or 500
        headers = dict(failure.headers)
        if path.startswith("/helix/"):
            limit, remaining, reset = self._bucket_state()
            if status == 429:
                remaining, reset = 0, math.ceil(self.clock()) + 1
            headers.setdefault("Ratelimit-Limit", str(limit))
            headers.setdefault("Ratelimit-Remaining", str(remaining))
            headers.setdefault("Ratelimit-Reset", str(reset))
        if failure.body is not None:
            return web.Response(status=status, text=failure.body, content_type=failure.content_type, headers=headers)
        reason = _REASONS.get(status, "Error")
        payload = {"error": reason, "status": status, "message": reason}
        return _json(payload, status=status, headers=headers)

    async def _pause(self, seconds: float) -> None:
        # Wakes early when the fake stops, so a simulated hang never delays teardown.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _safe_headers(self, request: web.Request) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            if name.lower() == "authorization":
                scheme, _, token = value.partition(" ")
                known = self._tokens.get(token)
                label = f"token {known.number}" if known else "unknown token"
                headers[name] = f"{scheme} [{label}]"
            elif name.lower() != "cookie":
                headers[name] = value
        return headers

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _by_login(self, login: str) -> FakeUser | None:
        wanted = login.lower()
        return next((u for u in self.users.values() if u.login == wanted), None)

    def _add_top_streams(self) -> None:
        # Someone else's streams: what /helix/streams returns when a request lost its user_id query.
        for index, (login, viewers) in enumerate((("top_streamer_one", 48_213), ("top_streamer_two", 31_870))):
            user = self.add_user(login, display_name=login.title(), user_id=str(90_000_001 + index))
            self.top_user_ids.append(user.id)
            self.go_live(user.id, title="Big event!", game_name="Fortnite", viewer_count=viewers)

    # ------------------------------------------------------------------------------------------- OAuth2

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = dict(request.query)
        form.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        client_id = form.get("client_id", "")
        if not client_id:
            return _json({"status": 400, "message": "missing client id"}, status=400)
        if client_id != self.client_id:
            return _json({"status": 400, "message": "invalid client"}, status=400)
        if form.get("client_secret") != self.client_secret:
            return _json({"status": 403, "message": "invalid client secret"}, status=403)
        if form.get("grant_type") != "client_credentials":
            return _json({"status": 400, "message": "unsupported grant type"}, status=400)
        token = secrets.token_hex(15)
        self._tokens[token] = _Token(number=len(self._tokens) + 1, expires_at=self.clock() + self.token_ttl)
        self.issued_tokens.append(token)
        return _json({"access_token": token, "expires_in": self.token_ttl, "token_type": "bearer"})

    async def _validate(self, request: web.Request) -> web.Response:
        self.validate_requests += 1
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not token or scheme.lower() != "oauth":
            return _json({"status": 401, "message": "missing authorization token"}, status=401)
        record = self._live_token(token)
        if record is None:
            return _json({"status": 401, "message": "invalid access token"}, status=401)
        expires_in = max(0, int(record.expires_at - self.clock()))
        if record.user_id is not None and record.user_id in self.users:
            user = self.users[record.user_id]
            body = {"client_id": self.client_id, "login": user.login, "scopes": list(record.scopes)}
            return _json({**body, "user_id": user.id, "expires_in": expires_in})
        return _json({"client_id": self.client_id, "scopes": [], "expires_in": expires_in})

    def _live_token(self, token: str) -> _Token | None:
        record = self._tokens.get(token)
        if record is None or not record.valid or record.expires_at <= self.clock():
            return None
        return record

    # --------------------------------------------------------------------------------------------- Helix

    def _helix_auth(self, request: web.Request) -> web.Response | None:
        client_id = request.headers.get("Client-Id", "")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not token or scheme.lower() != "bearer":
            return _unauthorized("OAuth token is missing")
        if self._live_token(token) is None:
            return _unauthorized("Invalid OAuth token")
        if client_id != self.client_id:
            return _unauthorized("Client ID and OAuth token do not match")
        return None

    def _bucket_state(self) -> tuple[int, int, int]:
        now = self.clock()
        if self.rate_limit is None:
            return DEFAULT_BUCKET, DEFAULT_BUCKET - 1, math.ceil(now)
        if now >= self._window_end:
            self._window_used = 0
            self._window_end = now + self.rate_limit_window
        return self.rate_limit, max(0, self.rate_limit - self._window_used), math.ceil(self._window_end)

    async def _helix(self, request: web.Request, handler: Callable[[web.Request], web.Response]) -> web.Response:
        denied = self._helix_auth(request)
        limit, remaining, reset = self._bucket_state()
        if denied is None and self.rate_limit is not None:
            if remaining <= 0:
                denied = _json(
                    {"error": "Too Many Requests", "status": 429, "message": "Too Many Requests"}, status=429
                )
            else:
                self._window_used += 1
                remaining -= 1
        response = denied or handler(request)
        response.headers["Ratelimit-Limit"] = str(limit)
        response.headers["Ratelimit-Remaining"] = str(remaining)
        response.headers["Ratelimit-Reset"] = str(reset)
        return response

    async def _users(self, request: web.Request) -> web.Response:
        return await self._helix(request, self._users_body)

    def _users_body(self, request: web.Request) -> web.Response:
        ids = request.query.getall("id", [])
        logins = request.query.getall("login", [])
        if not ids and not logins:
            return _bad_request("Must provide an ID, Login or OAuth Token.")
        if len(ids) + len(logins) > MAX_PER_REQUEST:
            return _bad_request("The sum of login and id values must not be greater than 100.")
        if any(not _login_ok(login) for login in logins) or any(not i.isdigit() for i in ids):
            return _bad_request("Invalid login names, emails or IDs in request")
        found: dict[str, FakeUser] = {}
        for uid in ids:
            if uid in self.users:
                found[uid] = self.users[uid]
        for login in logins:
            user = self._by_login(login)
            if user is not None:
                found[user.id] = user
        return _json({"data": [user.to_json() for user in found.values()]})

    async def _streams(self, request: web.Request) -> web.Response:
        return await self._helix(request, self._streams_body)

    def _streams_body(self, request: web.Request) -> web.Response:
        ids = request.query.getall("user_id", [])
        logins = [login.lower() for login in request.query.getall("user_login", [])]
        if len(ids) > MAX_PER_REQUEST or len(logins) > MAX_PER_REQUEST:
            name = "user_id" if len(ids) > MAX_PER_REQUEST else "user_login"
            return _bad_request(f'The parameter "{name}" may only be specified up to 100 times.')
        first = _first(request)
        if isinstance(first, web.Response):
            return first
        offset = _offset(request)
        if isinstance(offset, web.Response):
            return offset
        live = [(s, self.users[uid]) for uid, s in self._listed_streams() if uid in self.users]
        if ids or logins:
            live = [(s, u) for s, u in live if u.id in ids or u.login in logins]
        live.sort(key=lambda pair: (-pair[0].viewer_count, pair[0].id))
        return _page([s.to_json(u) for s, u in live], offset, min(first, self.page_size_cap))

    def _listed_streams(self) -> list[tuple[str, FakeStream]]:
        """What /helix/streams lists now: live streams past their listing lag, and ended ones still inside
        their offline lag (a user has at most one: go_live drops the ended one)."""
        now = self.clock()
        for uid, ended in list(self.ended_streams.items()):
            if ended.listed_until is None or ended.listed_until <= now:
                del self.ended_streams[uid]
        listed = [(uid, s) for uid, s in self.streams.items() if s.listed_from <= now]
        listed += [(uid, s) for uid, s in self.ended_streams.items() if uid not in self.streams]
        return listed

    async def _channels(self, request: web.Request) -> web.Response:
        return await self._helix(request, self._channels_body)

    def _channels_body(self, request: web.Request) -> web.Response:
        """Get Channel Information: current values, no lag; unknown ids are simply absent."""
        ids = request.query.getall("broadcaster_id", [])
        if not ids:
            return _bad_request('Missing required parameter "broadcaster_id"')
        if len(ids) > MAX_PER_REQUEST:
            return _bad_request('The parameter "broadcaster_id" may only be specified up to 100 times.')
        found = {uid: self.users[uid] for uid in ids if uid in self.users}  # request order, no repeats
        return _json({"data": [user.channel_json() for user in found.values()]})

    async def _videos(self, request: web.Request) -> web.Response:
        return await self._helix(request, self._videos_body)

    def _videos_body(self, request: web.Request) -> web.Response:
        selectors = [key for key in ("id", "user_id", "game_id") if key in request.query]
        if len(selectors) != 1:
            return _bad_request("Exactly one of id, user_id or game_id must be specified.")
        first = _first(request)
        if isinstance(first, web.Response):
            return first
        offset = _offset(request)
        if isinstance(offset, web.Response):
            return offset
        kind = request.query.get("type", "all")
        if kind not in ("all", "archive", "highlight", "upload"):
            return _bad_request('The parameter "type" was malformed.')
        videos = [v for v in self.videos if v.user_id in self.users and kind in ("all", v.type)]
        if selectors[0] == "id":
            wanted = request.query.getall("id")
            videos = [v for v in videos if v.id in wanted]
        elif selectors[0] == "user_id":
            videos = [v for v in videos if v.user_id == request.query["user_id"]]
        else:
            videos = []
        videos.sort(key=lambda v: (v.created_at, int(v.id)), reverse=True)
        return _page([v.to_json(self.users[v.user_id]) for v in videos], offset, first)

    async def _games(self, request: web.Request) -> web.Response:
        return await self._helix(request, self._games_body)

    def _games_body(self, request: web.Request) -> web.Response:
        ids = request.query.getall("id", [])
        names = [n.lower() for n in request.query.getall("name", [])]
        igdb = request.query.getall("igdb_id", [])
        if not (ids or names or igdb):
            return _bad_request("Missing required parameter: id, name or igdb_id")
        if len(ids) + len(names) + len(igdb) > MAX_PER_REQUEST:
            return _bad_request("Too many ids, names or igdb_ids (max 100).")
        games = [g for g in GAMES if g.id in ids or g.name.lower() in names or (g.igdb_id and g.igdb_id in igdb)]
        return _json({"data": [g.to_json() for g in games]})

    async def _search_categories(self, request: web.Request) -> web.Response:
        return await self._helix(request, self._search_body)

    def _search_body(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "").strip().lower()
        if not query:
            return _bad_request('Missing required parameter "query"')
        first = _first(request)
        if isinstance(first, web.Response):
            return first
        offset = _offset(request)
        if isinstance(offset, web.Response):
            return offset
        hits = [
            {"id": g.id, "name": g.name, "box_art_url": g.box_art_url("52x72")}
            for g in GAMES
            if query in g.name.lower()
        ]
        return _page(hits, offset, first)

    async def _schedule(self, request: web.Request) -> web.Response:
        return await self._helix(request, self._schedule_body)

    def _schedule_body(self, request: web.Request) -> web.Response:
        """Get Channel Stream Schedule: one broadcaster per request; `data` is an object, not a list."""
        broadcaster_ids = request.query.getall("broadcaster_id", [])
        if not broadcaster_ids:
            return _bad_request('Missing required parameter "broadcaster_id"')
        if len(broadcaster_ids) > 1:
            return _bad_request('The parameter "broadcaster_id" may only be specified once.')
        broadcaster_id = broadcaster_ids[0]
        if not (broadcaster_id.isdigit() and broadcaster_id.isascii()):
            return _bad_request('The parameter "broadcaster_id" was malformed')
        wanted = request.query.getall("id", [])
        if len(wanted) > MAX_PER_REQUEST:
            return _bad_request('The parameter "id" may only be specified up to 100 times.')
        first = _first(request, MAX_SCHEDULE_PAGE)
        if isinstance(first, web.Response):
            return first
        offset = _offset(request)
        if isinstance(offset, web.Response):
            return offset
        since = _rfc3339(request.query["start_time"]) if "start_time" in request.query else self._now()
        if since is None:
            return _bad_request('The parameter "start_time" was malformed')
        user = self.users.get(broadcaster_id)
        if user is None or not self.schedules.get(broadcaster_id):
            return _json({"error": "Not Found", "status": 404, "message": "segments were not found"}, status=404)
        vacation = self.vacations.get(user.id)
        listed = [
            segment
            for segment in self.schedules[user.id]
            # Starting at or after start_time, or in progress at it.
            if (segment.start_time >= since or segment.end_time > since)
            and (not wanted or segment.id in wanted)
            and not (vacation is not None and vacation[0] <= segment.start_time < vacation[1])
        ]
        size = min(first, self.page_size_cap)
        chunk = [segment.to_json() for segment in listed[offset : offset + size]]
        data = {
            "segments": chunk or None,
            "broadcaster_id": user.id,
            "broadcaster_name": user.display_name,
            "broadcaster_login": user.login,
            "vacation": {"start_time": _iso(vacation[0]), "end_time": _iso(vacation[1])} if vacation else None,
        }
        pagination = {"cursor": _cursor_for(offset + size)} if offset + size < len(listed) else {}
        return _json({"data": data, "pagination": pagination})

    async def _not_found(self, request: web.Request) -> web.Response:
        self.unhandled.append(request[_RECORD])
        return _json({"error": "Not Found", "status": 404, "message": "Not Found"}, status=404)


# ------------------------------------------------------------------------------------------------- helpers

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _login_ok(login: str) -> bool:
    return 0 < len(login) <= 25 and login.isascii() and all(ch.isalnum() or ch == "_" for ch in login)


def _json(payload: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=_dumps(payload), content_type="application/json", headers=headers)


def _dumps(payload: Any) -> str:
    """json.dumps, except that RawJSON values are written verbatim (json.dumps cannot emit 1e999)."""
    raws: list[str] = []

    def placeholder(value: Any) -> str:
        if isinstance(value, RawJSON):
            raws.append(value.text)
            return f"\x00raw{len(raws) - 1}\x00"
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    text = json.dumps(payload, default=placeholder, allow_nan=False)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{index}\x00"), raw, 1)
    return text


def _raw_value(value: Any) -> Any:
    """Infinite floats become the number token 1e999 (what a poisoned upstream would really send)."""
    if isinstance(value, float) and math.isinf(value):
        return RawJSON("1e999" if value > 0 else "-1e999")
    if isinstance(value, float) and math.isnan(value):
        raise ValueError("JSON has no NaN token; use RawJSON('NaN') for invalid JSON on purpose")
    return value


def _bad_request(message: str) -> web.Response:
    return _json({"error": "Bad Request", "status": 400, "message": message}, status=400)


def _unauthorized(message: str) -> web.Response:
    return _json({"error": "Unauthorized", "status": 401, "message": message}, status=401)


def _first(request: web.Request, maximum: int = MAX_PER_REQUEST) -> int | web.Response:
    raw = request.query.get("first", "20")
    try:
        first = int(raw)
    except ValueError:
        return _bad_request('The parameter "first" was malformed: the value must be an integer')
    if not 1 <= first <= maximum:
        return _bad_request(f'The parameter "first" was malformed: the value must be between 1 and {maximum}')
    return first


def _rfc3339(text: str) -> datetime | None:
    """An RFC 3339 time as Twitch accepts it (an offset or Z is required), else None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def _offset(request: web.Request) -> int | web.Response:
    cursor = request.query.get("after")
    if not cursor:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
        return int(decoded["o"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        return _bad_request('The parameter "after" was malformed')


def _cursor_for(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"b": None, "o": offset}).encode()).decode().rstrip("=")


def _page(items: list[dict[str, Any]], offset: int, size: int) -> web.Response:
    chunk = items[offset : offset + size]
    pagination = {"cursor": _cursor_for(offset + size)} if offset + size < len(items) else {}
    return _json({"data": chunk, "pagination": pagination})


def _resolve_game(game_id: str | None, game_name: str | None) -> tuple[str, str]:
    if game_id is None and game_name is None:
        return GAMES[0].id, GAMES[0].name
    known = next((g for g in GAMES if g.id == game_id or (game_name and g.name.lower() == game_name.lower())), None)
    if game_id is None:
        return (known.id if known else str(100_000 + zlib.crc32((game_name or "").encode()) % 900_000)), game_name or ""
    if game_name is None:
        return game_id, known.name if known else ""
    return game_id, game_name


def _profile_image(login: str) -> str:
    return f"https://static-cdn.jtvnw.net/jtv_user_pictures/{login}-profile_image-300x300.png"


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
