"""Twitch Helix client: app access token, batched user and stream look-ups, schedules, retries and rate limits.

Plain asyncio + aiohttp, nothing from Discord. The values it returns and the errors it raises live in
twitch_notifier/twitch/ and are re-exported here, so `from twitch_api import TwitchStream` keeps working."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from multidict import CIMultiDict

from twitch_notifier.twitch.errors import (
    InvalidLogin,
    TwitchAPIError,
    TwitchAuthError,
    TwitchConflict,
    TwitchError,
    TwitchLimitExceeded,
    TwitchRateLimited,
    TwitchServerError,
    TwitchUnavailable,
    error_message,
    json_object,
)
from twitch_notifier.twitch.eventsub import (
    ChannelInfo,
    Conduit,
    ConduitShard,
    EventSubListing,
    EventSubSubscription,
    ShardFailure,
    ShardUpdate,
    parse_subscription,
)
from twitch_notifier.twitch.logins import LOGIN_RE, parse_login
from twitch_notifier.twitch.models import (
    ChannelSchedule,
    ScheduleSegment,
    StreamsSnapshot,
    TwitchCategory,
    TwitchStream,
    TwitchUser,
    TwitchVideo,
)
from twitch_notifier.twitch.times import parse_time

__all__ = [
    "DEFAULT_API_BASE",
    "DEFAULT_AUTH_BASE",
    "LOGIN_RE",
    "MAX_IDS_PER_REQUEST",
    "ChannelSchedule",
    "InvalidLogin",
    "ScheduleSegment",
    "StreamsSnapshot",
    "TwitchAPIError",
    "TwitchAuthError",
    "TwitchCategory",
    "TwitchClient",
    "TwitchConflict",
    "TwitchError",
    "TwitchLimitExceeded",
    "TwitchRateLimited",
    "TwitchServerError",
    "TwitchStream",
    "TwitchUnavailable",
    "TwitchUser",
    "TwitchVideo",
    "parse_login",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_Keyed = TypeVar("_Keyed", "TwitchUser", "TwitchCategory")
_ShapeCheck = Callable[[dict[str, Any] | None], str | None]

DEFAULT_API_BASE = "https://api.twitch.tv/helix"
DEFAULT_AUTH_BASE = "https://id.twitch.tv/oauth2"
MAX_IDS_PER_REQUEST = 100

# Longest we ever sleep for a rate limit: a Ratelimit-Reset far in the future means clock skew, not a plan.
MAX_RATE_LIMIT_WAIT = 60.0
# Default lifetime assumed when the token endpoint omits expires_in (it never should).
_FALLBACK_TOKEN_TTL = 3600
MAX_VIEWER_COUNT = 2**31 - 1
"""A viewer count above this is clamped to it (a number that large is an error, and must still be storable)."""
# Longest text kept from a Twitch field: far above Twitch's own limits, far below what could hurt.
_ID_LIMIT = 100
_NAME_LIMIT = 300
_TITLE_LIMIT = 1000
_URL_LIMIT = 2000
_MAX_TAGS = 50
_NUMBER_TEXT_LIMIT = 64
# Guards against a server that keeps handing out cursors: 100 ids can never need more pages than this.
_MAX_PAGES = MAX_IDS_PER_REQUEST + 1
# EventSub listings: 10,000 subscriptions (the default cost cap) at Twitch's page size, with room to spare.
_MAX_LISTING_PAGES = 1000
# Get Channel Stream Schedule serves at most 25 segments a page.
_SCHEDULE_PAGE_SIZE = 25


# ------------------------------------------------------------------------------------------------ the client


@dataclass(slots=True)
class _Tally:
    requests: int = 0


@dataclass(slots=True)
class _Retries:
    """What one request has used of its retry budget."""

    limit: int
    failures: int = 0
    rate_limited: int = 0
    reauthorized: bool = False

    def failed(self) -> bool:
        """Count one more failure; True when that exhausts the budget."""
        self.failures += 1
        return self.failures > self.limit


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: CIMultiDict[str]
    text: str


@dataclass(slots=True)
class _Batch:
    ids: list[str]
    streams: dict[str, TwitchStream] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)


class TwitchClient:
    """Helix client with one session, one cached app token and one `_request()` every call goes through."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        session: aiohttp.ClientSession | None = None,
        api_base: str = DEFAULT_API_BASE,
        auth_base: str = DEFAULT_AUTH_BASE,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_concurrency: int = 4,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        on_response: Callable[[int | None], None] | None = None,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session
        self._owns_session = session is None
        self._api_base = api_base.rstrip("/")
        self._auth_base = auth_base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max(0, max_retries)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_concurrency = max(1, max_concurrency)
        self._clock = clock
        self._sleep = sleep
        # Told every response's HTTP status (None for a timeout or connection error): the metrics hook.
        self._on_response = on_response
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography

        self._semaphore = asyncio.Semaphore(self._max_concurrency)
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()
        self._fetches_done = 0
        self._fetch_error: TwitchError | None = None

        self._rl_limit: int | None = None
        self._rl_remaining: int | None = None
        self._rl_reset = 0.0

        self.request_count = 0
        self.token_fetches = 0

    # ----------------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session, but only if this client created it."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    @property
    def rate_limit_remaining(self) -> int | None:
        """Points left in the app's Helix bucket, as of the last response (None before the first)."""
        return self._rl_remaining

    @property
    def rate_limit_reset(self) -> float:
        return self._rl_reset

    # ------------------------------------------------------------------------------------------ public API

    async def get_users(self, *, logins: Iterable[str] = (), ids: Iterable[str] = ()) -> list[TwitchUser]:
        """Look users up by id and/or login, 100 per request. Unknown ones are simply absent."""
        # Twitch rejects a whole request for one malformed value, and such a user can't exist anyway.
        pairs: list[tuple[str, str]] = []
        for raw in _unique(str(i).strip() for i in ids):
            if raw.isdigit() and raw.isascii():
                pairs.append(("id", raw))
            elif raw:
                _log.debug("Skipping malformed Twitch user id %r", raw[:40])
        for raw in _unique(str(name).strip().lower() for name in logins):
            if LOGIN_RE.fullmatch(raw):
                pairs.append(("login", raw))
            elif raw:
                _log.debug("Skipping malformed Twitch login %r", raw[:40])
        return await self._lookup("/users", pairs, _parse_user)

    async def _lookup(
        self,
        path: str,
        pairs: list[tuple[str, str]],
        parse: Callable[[Mapping[str, Any]], _Keyed | None],
    ) -> list[_Keyed]:
        """GET `path` for every (key, value) pair, 100 pairs per request concurrently; results by unique id."""
        chunks = [pairs[i : i + MAX_IDS_PER_REQUEST] for i in range(0, len(pairs), MAX_IDS_PER_REQUEST)]
        results = await _gather_all(self._request("GET", path, chunk) for chunk in chunks)
        found: dict[str, _Keyed] = {}
        for payload in results:
            for item in _data_items(payload):
                parsed = parse(item)
                if parsed is not None:
                    found.setdefault(parsed.id, parsed)
        return list(found.values())

    async def get_user(self, login: str) -> TwitchUser | None:
        """One user by login (anything parse_login accepts); None if no such user. Raises InvalidLogin."""
        name = parse_login(login)
        users = await self.get_users(logins=[name])
        return users[0] if users else None

    async def get_streams(self, user_ids: Iterable[str]) -> StreamsSnapshot:
        """Poll many streamers: batches of 100 ids with first=100, run concurrently.

        A batch that fails after retries puts its ids in `failed`; only TwitchAuthError is raised.
        """
        wanted: list[str] = []
        malformed: set[str] = set()
        for uid in _unique(str(u).strip() for u in user_ids):
            if uid.isdigit() and uid.isascii():
                wanted.append(uid)
            elif uid:
                malformed.add(uid)
        if malformed:
            # One bad id would make Twitch reject its whole batch of 100, cycle after cycle.
            _log.warning("Not asking Twitch about %d malformed user ids (not numbers)", len(malformed))
        batches = [_Batch(wanted[i : i + MAX_IDS_PER_REQUEST]) for i in range(0, len(wanted), MAX_IDS_PER_REQUEST)]
        tally = _Tally()
        outcomes = await asyncio.gather(*(self._poll_batch(batch, tally) for batch in batches), return_exceptions=True)
        streams: dict[str, TwitchStream] = {}
        checked: set[str] = set()
        failed: set[str] = set(malformed)
        fatal: BaseException | None = None
        for batch, outcome in zip(batches, outcomes, strict=True):
            if isinstance(outcome, TwitchAuthError) or (
                isinstance(outcome, BaseException) and not isinstance(outcome, TwitchError)
            ):
                fatal = fatal or outcome
                failed.update(batch.ids)
            elif isinstance(outcome, TwitchError):
                _log.warning(
                    "Twitch streams check for %d streamers failed, their state is unknown this time: %s",
                    len(batch.ids),
                    outcome,
                )
                failed.update(batch.ids)
            else:
                streams.update(batch.streams)
                failed.update(batch.unknown)
                checked.update(uid for uid in batch.ids if uid not in batch.unknown)
        if fatal is not None:
            raise fatal
        return StreamsSnapshot(
            streams=streams, checked=frozenset(checked), failed=frozenset(failed), requests=tally.requests
        )

    async def get_games(self, ids: Iterable[str] = (), *, names: Iterable[str] = ()) -> list[TwitchCategory]:
        """Categories by id and/or exact name, 100 per request (box art included). Unknown ones are absent."""
        pairs = [("id", i) for i in _unique(str(i).strip() for i in ids) if i.isdigit() and i.isascii()]
        pairs += [("name", n) for n in _unique(str(n).strip() for n in names) if n]
        return await self._lookup("/games", pairs, _parse_category)

    async def search_categories(self, query: str, *, first: int = 25) -> list[TwitchCategory]:
        """Categories whose name matches what a user is typing (autocomplete); one page only."""
        text = query.strip()
        if not text:
            return []
        first = max(1, min(MAX_IDS_PER_REQUEST, first))
        payload = await self._request("GET", "/search/categories", [("query", text[:100]), ("first", str(first))])
        return [c for c in (_parse_category(item) for item in _data_items(payload)) if c is not None]

    async def get_latest_vod(self, user_id: str) -> TwitchVideo | None:
        """The user's most recent archive (past broadcast), or None if they keep none."""
        if not (user_id.isdigit() and user_id.isascii()):
            return None
        payload = await self._request("GET", "/videos", [("user_id", user_id), ("type", "archive"), ("first", "1")])
        for item in _data_items(payload):
            video = _parse_video(item)
            if video is not None:
                return video
        return None

    async def find_vod_url(self, user_id: str, stream_id: str) -> str | None:
        """The VOD of one particular stream, if Twitch kept one (the latest archive, when it is that stream's)."""
        video = await self.get_latest_vod(user_id)
        if video is None or (video.stream_id and video.stream_id != stream_id):
            return None
        return video.url or f"https://www.twitch.tv/videos/{video.id}"

    async def validate_token(self) -> bool:
        """Twitch's required periodic token check. False (and a fresh token fetched) if it was revoked."""
        token = await self._ensure_token()
        reply = await self._send("GET", f"{self._auth_base}/validate", headers={"Authorization": f"OAuth {token}"})
        if reply.status == HTTPStatus.OK:
            payload = json_object(reply.text) or {}
            _log.debug("Twitch app token %s is valid, expires in %ss", _fingerprint(token), payload.get("expires_in"))
            return True
        if reply.status == HTTPStatus.UNAUTHORIZED:
            _log.info("Twitch app token %s is no longer valid; fetching a new one", _fingerprint(token))
            self._invalidate_token(token)
            await self._ensure_token()
            return False
        if reply.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise TwitchServerError(reply.status, reply.text)
        raise TwitchAPIError(reply.status, reply.text)

    async def get_channels(self, broadcaster_ids: Iterable[str]) -> list[ChannelInfo]:
        """Title and category of channels right now (GET /channels: no listing lag, unlike /streams)."""
        pairs = [("broadcaster_id", i) for i in _unique(str(i).strip() for i in broadcaster_ids) if _is_id(i)]
        chunks = [pairs[i : i + MAX_IDS_PER_REQUEST] for i in range(0, len(pairs), MAX_IDS_PER_REQUEST)]
        results = await _gather_all(self._request("GET", "/channels", chunk) for chunk in chunks)
        return [c for payload in results for c in map(_parse_channel, _data_items(payload)) if c is not None]

    async def get_channel_schedule(
        self, broadcaster_id: str, *, horizon: timedelta | None = None, max_segments: int = 25
    ) -> ChannelSchedule:
        """A channel's upcoming broadcasts (GET /schedule, one channel per request: Twitch does not batch it),
        soonest first, with the one in progress; at most `max_segments`, and none starting after now +
        `horizon`. Pages are read only while they are still inside the horizon.

        No schedule (Twitch's 404) and a malformed id are an empty schedule; other failures raise as usual."""
        wanted = broadcaster_id.strip()
        if not _is_id(wanted):
            _log.debug("Not asking Twitch for the schedule of malformed user id %r", wanted[:40])
            return ChannelSchedule(wanted, ())
        if max_segments < 1:
            return ChannelSchedule(wanted, ())
        until = datetime.fromtimestamp(self._clock(), UTC) + horizon if horizon is not None else None
        base = [("broadcaster_id", wanted), ("first", str(_SCHEDULE_PAGE_SIZE))]
        found: dict[str, ScheduleSegment] = {}
        vacation: tuple[datetime | None, datetime | None] = (None, None)
        cursor: str | None = None
        seen: set[str] = set()
        # Every page read adds a segment or ends the loop, so max_segments bounds the pages too.
        while len(found) < max_segments:
            params = base if cursor is None else [*base, ("after", cursor)]
            try:
                payload = await self._request("GET", "/schedule", params, shape=_schedule_shape_problem)
            except TwitchAPIError as exc:
                if exc.status != HTTPStatus.NOT_FOUND:
                    raise
                break  # "segments were not found": no schedule (or, past the first page, nothing more)
            data = payload.get("data")  # its shape was checked by _request (a 204 would have none)
            if not isinstance(data, dict):
                break
            if cursor is None:
                vacation = _parse_vacation(data.get("vacation"))
            page = [s for s in map(_parse_segment, _schedule_items(data)) if s is not None]
            fresh = [s for s in page if s.id not in found and (until is None or s.start <= until)]
            for segment in fresh:
                found[segment.id] = segment
            cursor = _cursor(payload)
            if not cursor or cursor in seen or not fresh or (until is not None and page[-1].start > until):
                break
            seen.add(cursor)
        segments = sorted(found.values(), key=lambda s: (s.start, s.id))[:max_segments]
        return ChannelSchedule(wanted, tuple(segments), vacation_start=vacation[0], vacation_end=vacation[1])

    # EventSub (app token; facts §2 and §5) ------------------------------------------------------------

    async def get_conduits(self) -> list[Conduit]:
        payload = await self._request("GET", "/eventsub/conduits")
        return [c for c in map(_parse_conduit, _data_items(payload)) if c is not None]

    async def create_conduit(self, shard_count: int) -> Conduit:
        """Raises TwitchLimitExceeded when the app has its 5 conduits already."""
        payload = await self._request("POST", "/eventsub/conduits", body={"shard_count": shard_count})
        for conduit in map(_parse_conduit, _data_items(payload)):
            if conduit is not None:
                return conduit
        raise TwitchServerError(HTTPStatus.OK, "", "Create Conduits answered without a conduit")

    async def update_conduit(self, conduit_id: str, shard_count: int) -> Conduit:
        payload = await self._request(
            "PATCH", "/eventsub/conduits", body={"id": conduit_id, "shard_count": shard_count}
        )
        for conduit in map(_parse_conduit, _data_items(payload)):
            if conduit is not None:
                return conduit
        return Conduit(conduit_id, shard_count)

    async def update_conduit_shards(self, conduit_id: str, shards: Sequence[Mapping[str, Any]]) -> ShardUpdate:
        """PATCH shards; the 202 may hold both `data` (done) and `errors` (not done, §2): both are returned."""
        payload = await self._request(
            "PATCH", "/eventsub/conduits/shards", body={"conduit_id": conduit_id, "shards": list(shards)}
        )
        errors = payload.get("errors")
        return ShardUpdate(
            updated=tuple(s for s in map(_parse_shard, _data_items(payload)) if s is not None),
            failed=tuple(
                _parse_shard_failure(e) for e in (errors if isinstance(errors, list) else []) if isinstance(e, dict)
            ),
        )

    async def get_conduit_shards(self, conduit_id: str) -> list[ConduitShard]:
        shards: list[ConduitShard] = []
        async for payload in self._pages("/eventsub/conduits/shards", [("conduit_id", conduit_id)]):
            shards.extend(s for s in map(_parse_shard, _data_items(payload)) if s is not None)
        return shards

    async def get_eventsub_subscriptions(self, *, sub_type: str | None = None) -> EventSubListing:
        """Every page of the app's webhook and conduit subscriptions (of one type, if given)."""
        subscriptions: list[EventSubSubscription] = []
        total_cost = max_total_cost = 0
        async for payload in self._pages("/eventsub/subscriptions", [("type", sub_type)] if sub_type else []):
            subscriptions.extend(s for s in map(parse_subscription, _data_items(payload)) if s is not None)
            total_cost = _as_int(payload.get("total_cost")) or 0
            max_total_cost = _as_int(payload.get("max_total_cost")) or max_total_cost
        return EventSubListing(tuple(subscriptions), total_cost, max_total_cost)

    async def create_eventsub_subscription(
        self, sub_type: str, version: str, condition: Mapping[str, str], transport: Mapping[str, str]
    ) -> EventSubListing:
        """Create one subscription; the answer's listing holds it and the cost figures after it.
        Raises TwitchConflict (409: it exists) and TwitchLimitExceeded (429: the cost budget is spent)."""
        body = {"type": sub_type, "version": version, "condition": dict(condition), "transport": dict(transport)}
        payload = await self._request("POST", "/eventsub/subscriptions", body=body)
        return EventSubListing(
            tuple(s for s in map(parse_subscription, _data_items(payload)) if s is not None),
            _as_int(payload.get("total_cost")) or 0,
            _as_int(payload.get("max_total_cost")) or 0,
        )

    async def delete_eventsub_subscription(self, subscription_id: str) -> bool:
        """Delete one subscription; False if Twitch did not know it (404), which is as good."""
        try:
            await self._request("DELETE", "/eventsub/subscriptions", [("id", subscription_id)])
        except TwitchAPIError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return False
            raise
        return True

    async def _pages(self, path: str, params: Sequence[tuple[str, str]]) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_LISTING_PAGES):
            payload = await self._request("GET", path, [*params, ("after", cursor)] if cursor else params)
            yield payload
            cursor = _cursor(payload)
            if not cursor or cursor in seen or not _data_items(payload):
                return
            seen.add(cursor)
        raise TwitchUnavailable(f"Twitch kept paginating {path} past {_MAX_LISTING_PAGES} pages")

    # ----------------------------------------------------------------------------------------- internals

    async def _poll_batch(self, batch: _Batch, tally: _Tally) -> None:
        requested = set(batch.ids)
        base: list[tuple[str, str]] = [("user_id", uid) for uid in batch.ids]
        base.append(("first", str(MAX_IDS_PER_REQUEST)))
        cursor: str | None = None
        seen_cursors: set[str] = set()
        for _ in range(_MAX_PAGES):
            params = base if cursor is None else [*base, ("after", cursor)]
            payload = await self._request("GET", "/streams", params, tally=tally)
            items = _data_items(payload)
            strangers = 0
            for item in items:
                user_id = _text(item.get("user_id"), _ID_LIMIT)
                if user_id not in requested:
                    # The infamous bug: a request that lost its query gets Twitch's top streams back.
                    strangers += 1
                    continue
                stream_type = item.get("type", "live")
                if stream_type != "live":
                    # Twitch sets type "" when something went wrong on its side: state unknown.
                    batch.unknown.add(user_id)
                    continue
                try:
                    stream = _parse_stream(item, self._clock)
                    if not stream.id:
                        raise ValueError("no stream id")  # it would be announced as stream "" and again later
                except (ValueError, TypeError, OverflowError) as exc:
                    # One entry Twitch got wrong: that streamer is unknown this time, the batch goes on.
                    _log.warning("Skipped a malformed /streams entry of user %s: %r", user_id, exc)
                    batch.unknown.add(user_id)
                    continue
                batch.streams[user_id] = stream
            if strangers:
                _log.warning("Ignored %d streams of users that were not asked for", strangers)
            cursor = _cursor(payload)
            if not cursor or not items or cursor in seen_cursors:
                return
            seen_cursors.add(cursor)
        # Stopping early would make the streamers on unseen pages look offline.
        raise TwitchUnavailable(f"Twitch kept paginating /streams past {_MAX_PAGES} pages")

    async def _request(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        tally: _Tally | None = None,
        body: Mapping[str, Any] | None = None,
        shape: _ShapeCheck | None = None,
    ) -> dict[str, Any]:
        """Send one Helix request, retrying it (same method, path, query and body) until it succeeds or
        gives up.

        A success is a 2xx whose body has Helix's shape (a JSON object with a `data` array, or what `shape`
        accepts for an endpoint that differs; 204 has no body): a 200 that is an HTML page or JSON without
        `data` (a proxy, an upstream hiccup) says nothing about the streams asked for, so it is retried like
        a 5xx and never read as "nothing is live"."""
        url = self._api_base + path
        query = tuple(params)  # the exact same pairs on every attempt
        retries = _Retries(self._max_retries)
        while True:
            token = await self._ensure_token()
            headers = {"Client-Id": self._client_id, "Authorization": f"Bearer {token}"}
            try:
                reply = await self._attempt(method, url, query, headers, tally, body)
            except TwitchUnavailable as exc:
                if retries.failed():
                    raise
                await self._backoff(retries.failures, method, path, str(exc))
                continue
            payload = await self._answer(reply, token, retries, method, path, shape or _helix_shape_problem)
            if payload is not None:
                return payload

    async def _answer(
        self, reply: _Reply, token: str, retries: _Retries, method: str, path: str, shape: _ShapeCheck
    ) -> dict[str, Any] | None:
        """The payload of a successful reply; None after waiting to try again; raises when giving up."""
        status = reply.status
        if status == HTTPStatus.NO_CONTENT:
            return {}
        if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
            payload = json_object(reply.text)
            problem = shape(payload)
            if problem is None and payload is not None:
                return payload
            if retries.failed():
                raise TwitchServerError(status, reply.text, f"response {problem}")
            await self._backoff(retries.failures, method, path, f"response {problem}")
        elif status == HTTPStatus.UNAUTHORIZED:
            self._invalidate_token(token)
            if retries.reauthorized:
                raise TwitchAPIError(status, reply.text)
            retries.reauthorized = True
            _log.info("Twitch rejected app token %s; fetching a new one", _fingerprint(token))
        elif status == HTTPStatus.TOO_MANY_REQUESTS and not _is_quota_refusal(reply):
            retries.rate_limited += 1
            reset_at = _float_header(reply.headers, "Ratelimit-Reset")
            if retries.rate_limited > self._max_retries:
                raise TwitchRateLimited(status, reply.text, reset_at or self._clock())
            await self._wait_rate_limit(reset_at, retries.rate_limited, path)
        elif status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            if retries.failed():
                raise TwitchServerError(status, reply.text)
            await self._backoff(retries.failures, method, path, f"HTTP {status}")
        else:
            raise _refusal(reply)
        return None

    async def _attempt(
        self,
        method: str,
        url: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        tally: _Tally | None,
        body: Mapping[str, Any] | None = None,
    ) -> _Reply:
        async with self._semaphore:
            await self._pace()
            self.request_count += 1
            if tally is not None:
                tally.requests += 1
            reply = await self._send(method, url, params=query, headers=headers, json_body=body)
            # Still holding the semaphore, so the next request paces on this response's numbers.
            self._note_rate_limit(reply.headers)
            return reply

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> _Reply:
        """The one place that talks HTTP: a single exchange with a timeout; transport errors become
        TwitchUnavailable."""
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise TwitchUnavailable("the HTTP session given to TwitchClient is closed")
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(
                method, url, params=list(params), headers=headers, data=data, json=json_body, timeout=self._timeout
            ) as response:
                text = await response.text(errors="replace")
                self._observe(response.status)
                return _Reply(response.status, CIMultiDict(response.headers), text)
        except TimeoutError as exc:
            self._observe(None)
            raise TwitchUnavailable(f"timed out after {self._timeout.total}s ({_route(url)})") from exc
        except aiohttp.ClientError as exc:
            self._observe(None)
            raise TwitchUnavailable(f"{type(exc).__name__} ({_route(url)})") from exc

    def _observe(self, status: int | None) -> None:
        if self._on_response is not None:
            self._on_response(status)

    async def _backoff(self, failures: int, method: str, path: str, reason: str) -> None:
        """Exponential backoff with full jitter."""
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** (failures - 1))
        delay = self._rng.uniform(0, ceiling)
        _log.debug(
            "Twitch %s %s failed (%s); retry %d/%d in %.2fs",
            method,
            path,
            reason,
            failures,
            self._max_retries,
            delay,
        )
        await self._sleep(delay)

    async def _wait_rate_limit(self, reset_at: float | None, attempt: int, path: str) -> None:
        wait = reset_at - self._clock() if reset_at is not None else 0.0
        if reset_at is None or wait <= 0:
            # No usable reset time (missing header or clock skew): back off instead.
            wait = min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1))
        wait = min(wait, MAX_RATE_LIMIT_WAIT)
        _log.info("Twitch rate limit hit on %s; retrying the same request in %.1fs", path, wait)
        await self._sleep(wait)

    async def _pace(self) -> None:
        """When the points bucket is nearly empty, wait for it to refill instead of earning a 429."""
        remaining, reset = self._rl_remaining, self._rl_reset
        if remaining is None or remaining > self._max_concurrency:
            return
        wait = reset - self._clock()
        if wait > 0:
            wait = min(wait, MAX_RATE_LIMIT_WAIT)
            _log.info("Twitch rate limit nearly used up (%d left); waiting %.1fs for it to reset", remaining, wait)
            await self._sleep(wait)
        if self._rl_reset == reset:
            self._rl_remaining = None  # the bucket is full again; the next response says how full

    def _note_rate_limit(self, headers: Mapping[str, str]) -> None:
        remaining = _int_header(headers, "Ratelimit-Remaining")
        reset = _float_header(headers, "Ratelimit-Reset")
        if remaining is None or reset is None:
            return
        if self._rl_remaining is None or reset > self._rl_reset:
            self._rl_remaining, self._rl_reset = remaining, reset
        elif reset == self._rl_reset:
            # Responses to concurrent requests can arrive out of order: within one window, lowest wins.
            self._rl_remaining = min(self._rl_remaining, remaining)
        # else: a late response from an older window; ignore it
        self._rl_limit = _int_header(headers, "Ratelimit-Limit") or self._rl_limit

    # ------------------------------------------------------------------------------------------------ auth

    def _current_token(self) -> str | None:
        if self._token is not None and self._clock() < self._token_expires_at:
            return self._token
        return None

    def _invalidate_token(self, token: str) -> None:
        # Only the token that failed: a caller holding an older one must not discard a fresh refresh.
        if self._token == token:
            self._token = None

    async def _ensure_token(self) -> str:
        """The cached app token, else a new one. Concurrent callers share one fetch (and its failure)."""
        token = self._current_token()
        if token is not None:
            return token
        done = self._fetches_done
        async with self._token_lock:
            token = self._current_token()
            if token is not None:
                return token
            if self._fetches_done != done and self._fetch_error is not None:
                raise self._fetch_error  # the fetch we queued behind just failed; don't hammer the endpoint
            try:
                token = await self._fetch_token()
            except TwitchError as exc:
                self._fetch_error = exc
                raise
            finally:
                self._fetches_done += 1
            self._fetch_error = None
            return token

    async def _fetch_token(self) -> str:
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "grant_type": "client_credentials",
        }
        url = f"{self._auth_base}/token"
        failures = 0
        while True:
            self.token_fetches += 1
            try:
                reply = await self._send("POST", url, data=form)
            except TwitchUnavailable:
                failures += 1
                if failures > self._max_retries:
                    raise
                await self._backoff(failures, "POST", "/oauth2/token", "no response")
                continue
            status = reply.status
            if status == HTTPStatus.OK:
                payload = json_object(reply.text) or {}
                token = payload.get("access_token")
                if not isinstance(token, str) or not token:
                    raise TwitchAPIError(status, "", "token response had no access_token")
                expires_in = _as_int(payload.get("expires_in")) or _FALLBACK_TOKEN_TTL
                margin = min(60.0, expires_in * 0.1)
                self._token = token
                self._token_expires_at = self._clock() + expires_in - margin
                _log.info("Fetched a Twitch app access token %s (expires in %ds)", _fingerprint(token), expires_in)
                return token
            message = self._redact(error_message(reply.text) or f"HTTP {status}")
            if status in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
                raise TwitchAuthError(
                    f"Twitch rejected the client id/secret (HTTP {status}: {message}). Check the Twitch "
                    "client id and client secret of your application at https://dev.twitch.tv/console/apps",
                    status=status,
                )
            if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
                failures += 1
                if failures > self._max_retries:
                    raise TwitchServerError(status, self._redact(reply.text))
                await self._backoff(failures, "POST", "/oauth2/token", f"HTTP {status}")
                continue
            raise TwitchAPIError(status, self._redact(reply.text))

    def _redact(self, text: str) -> str:
        return text.replace(self._client_secret, "[secret]")


# ------------------------------------------------------------------------------------------------- parsing


def _parse_user(item: Mapping[str, Any]) -> TwitchUser | None:
    user_id = _text(item.get("id"), _ID_LIMIT)
    login = _text(item.get("login"), _ID_LIMIT).lower()
    if not user_id or not login:
        return None
    return TwitchUser(
        id=user_id,
        login=login,
        display_name=_text(item.get("display_name"), _NAME_LIMIT) or login,
        profile_image_url=_text(item.get("profile_image_url"), _URL_LIMIT),
        broadcaster_type=_text(item.get("broadcaster_type"), _ID_LIMIT),
    )


def _parse_stream(item: Mapping[str, Any], clock: Callable[[], float]) -> TwitchStream:
    """One /streams entry, defensively: a field that is missing, malformed or out of range is dropped to
    its default or clamped (and logged), so one odd value can't stop the batch or the database."""
    login = _text(item.get("user_login"), _ID_LIMIT).lower()
    tags = item.get("tags")
    user_id = _text(item.get("user_id"), _ID_LIMIT)
    return TwitchStream(
        id=_text(item.get("id"), _ID_LIMIT),
        user_id=user_id,
        user_login=login,
        user_name=_text(item.get("user_name"), _NAME_LIMIT) or login,
        game_id=_text(item.get("game_id"), _ID_LIMIT),
        game_name=_text(item.get("game_name"), _NAME_LIMIT),
        title=_text(item.get("title"), _TITLE_LIMIT),
        viewer_count=_viewer_count(item.get("viewer_count"), user_id),
        started_at=parse_time(item.get("started_at")) or datetime.fromtimestamp(clock(), UTC),
        thumbnail_url=_text(item.get("thumbnail_url"), _URL_LIMIT),
        language=_text(item.get("language"), _ID_LIMIT),
        is_mature=item.get("is_mature") is True,
        tags=tuple(_text(tag, _NAME_LIMIT) for tag in tags[:_MAX_TAGS]) if isinstance(tags, list) else (),
    )


def _viewer_count(value: object, user_id: str) -> int:
    count = _as_int(value)
    if count is None:
        if value is not None:
            _log.warning("Twitch sent an unreadable viewer_count for user %s; counting 0", user_id)
        return 0
    if not 0 <= count <= MAX_VIEWER_COUNT:
        _log.warning("Twitch sent viewer_count %s for user %s; clamped", str(count)[:40], user_id)
        return min(max(count, 0), MAX_VIEWER_COUNT)
    return count


def _parse_category(item: Mapping[str, Any]) -> TwitchCategory | None:
    game_id = _text(item.get("id"), _ID_LIMIT)
    name = _text(item.get("name"), _NAME_LIMIT)
    if not game_id or not name:
        return None
    return TwitchCategory(id=game_id, name=name, box_art_url=_text(item.get("box_art_url"), _URL_LIMIT))


def _parse_video(item: Mapping[str, Any]) -> TwitchVideo | None:
    video_id = _text(item.get("id"), _ID_LIMIT)
    if not video_id:
        return None
    return TwitchVideo(
        id=video_id,
        user_id=_text(item.get("user_id"), _ID_LIMIT),
        stream_id=_text(item.get("stream_id"), _ID_LIMIT),
        title=_text(item.get("title"), _TITLE_LIMIT),
        url=_text(item.get("url"), _URL_LIMIT),
        created_at=parse_time(item.get("created_at")),
        duration=_text(item.get("duration"), _ID_LIMIT),
        type=_text(item.get("type"), _ID_LIMIT) or "archive",
    )


def _parse_segment(item: Mapping[str, Any]) -> ScheduleSegment | None:
    """One schedule segment, or None (logged) when it has no id or no readable start."""
    raw_id = _as_str(item.get("id"))
    segment_id = _text(raw_id, _URL_LIMIT)  # Twitch's ids are long base64: cut one, and it names nothing
    start = parse_time(item.get("start_time"))
    if not segment_id or len(raw_id) > _URL_LIMIT or start is None:
        when = _as_str(item.get("start_time"))[:40]
        _log.debug("Skipped a malformed schedule segment (id %r, start_time %r)", segment_id[:40], when)
        return None
    end = parse_time(item.get("end_time"))
    if end is not None and end <= start:
        end = None  # an end before the start is no end at all
    category = item.get("category")
    return ScheduleSegment(
        id=segment_id,
        start=start,
        end=end,
        title=_text(item.get("title"), _TITLE_LIMIT),
        category_name=_text(category.get("name"), _NAME_LIMIT) if isinstance(category, dict) else "",
        canceled=item.get("canceled_until") not in (None, ""),
        recurring=item.get("is_recurring") is True,
    )


def _parse_vacation(value: object) -> tuple[datetime | None, datetime | None]:
    if not isinstance(value, dict):
        return None, None
    start, end = parse_time(value.get("start_time")), parse_time(value.get("end_time"))
    if start is None or end is None or end <= start:
        return None, None
    return start, end


def _schedule_items(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    segments = data.get("segments")
    if not isinstance(segments, list):
        return []  # null: nothing planned from start_time on (a vacation, say)
    return [item for item in segments if isinstance(item, dict)]


def _refusal(reply: _Reply) -> TwitchAPIError:
    """The error of a final 4xx: one that retrying the same request cannot change."""
    if reply.status == HTTPStatus.CONFLICT:
        return TwitchConflict(reply.status, reply.text)
    if reply.status == HTTPStatus.TOO_MANY_REQUESTS:
        return TwitchLimitExceeded(reply.status, reply.text)
    return TwitchAPIError(reply.status, reply.text)


def _is_quota_refusal(reply: _Reply) -> bool:
    """A 429 from a quota (EventSub cost, conduit count) rather than the points bucket: the bucket's 429
    comes with Ratelimit-Remaining 0, a quota's with points left or a message naming the limit."""
    remaining = _int_header(reply.headers, "Ratelimit-Remaining")
    message = error_message(reply.text).lower()
    return (remaining is not None and remaining > 0) or "exceeded" in message or "limit reached" in message


def _is_id(value: str) -> bool:
    return value.isdigit() and value.isascii()


def _parse_channel(item: Mapping[str, Any]) -> ChannelInfo | None:
    broadcaster_id = _text(item.get("broadcaster_id"), _ID_LIMIT)
    if not broadcaster_id:
        return None
    login = _text(item.get("broadcaster_login"), _ID_LIMIT).lower()
    return ChannelInfo(
        broadcaster_id=broadcaster_id,
        login=login,
        display_name=_text(item.get("broadcaster_name"), _NAME_LIMIT) or login,
        title=_text(item.get("title"), _TITLE_LIMIT),
        game_id=_text(item.get("game_id"), _ID_LIMIT),
        game_name=_text(item.get("game_name"), _NAME_LIMIT),
        language=_text(item.get("broadcaster_language"), _ID_LIMIT),
    )


def _parse_conduit(item: Mapping[str, Any]) -> Conduit | None:
    conduit_id = _text(item.get("id"), _ID_LIMIT)
    count = _as_int(item.get("shard_count"))
    if not conduit_id or count is None:
        return None
    return Conduit(conduit_id, count)


def _parse_shard(item: Mapping[str, Any]) -> ConduitShard | None:
    shard_id = _text(item.get("id"), _ID_LIMIT)
    if not shard_id:
        return None
    transport = item.get("transport")
    transport = transport if isinstance(transport, dict) else {}
    return ConduitShard(
        id=shard_id,
        status=_text(item.get("status"), _ID_LIMIT),
        method=_text(transport.get("method"), _ID_LIMIT),
        session_id=_text(transport.get("session_id"), _ID_LIMIT),
        callback=_text(transport.get("callback"), _URL_LIMIT),
    )


def _parse_shard_failure(item: Mapping[str, Any]) -> ShardFailure:
    return ShardFailure(
        id=_text(item.get("id"), _ID_LIMIT),
        message=_text(item.get("message"), _NAME_LIMIT),
        code=_text(item.get("code"), _ID_LIMIT),
    )


def _helix_shape_problem(payload: dict[str, Any] | None) -> str | None:
    """Why a 2xx body is not a Helix answer, or None when it is one."""
    if payload is None:
        return "was not a JSON object"
    if not isinstance(payload.get("data"), list):
        return "had no data array"
    return None


def _schedule_shape_problem(payload: dict[str, Any] | None) -> str | None:
    """Like _helix_shape_problem for Get Channel Stream Schedule, whose `data` is an object whose `segments`
    is an array or null: an object without them must not read as "nothing planned" (it would cancel events)."""
    if payload is None:
        return "was not a JSON object"
    data = payload.get("data")
    if not isinstance(data, dict):
        return "had no data object"
    if "segments" not in data or not isinstance(data["segments"], list | None):
        return "had no segments array"
    return None


def _data_items(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = payload.get("data")
    if not isinstance(data, list):
        return []  # `{}` instead of `{"data": []}` means "nothing"
    return [item for item in data if isinstance(item, dict)]


def _cursor(payload: Mapping[str, Any]) -> str | None:
    pagination = payload.get("pagination")
    if isinstance(pagination, dict):
        cursor = pagination.get("cursor")
        if isinstance(cursor, str) and cursor:
            return cursor
    return None


def _as_str(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _text(value: object, limit: int) -> str:
    """A JSON value as text that SQLite and Discord accept: lone surrogates (valid in JSON, not in UTF-8)
    replaced, and cut to `limit` characters (Twitch's own limits are far lower)."""
    text = _as_str(value)
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit]


def _as_int(value: object) -> int | None:
    """An integer from JSON or a header, or None: never raises, whatever the value (1e999, "NaN", 2**99)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= _NUMBER_TEXT_LIMIT:
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) else None
    return None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    return _as_int(_header(headers, name))


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    value = _header(headers, name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name)


def _fingerprint(token: str) -> str:
    """A short, irreversible label so logs can tell tokens apart without containing them."""
    return "#" + hashlib.sha256(token.encode()).hexdigest()[:8]


def _route(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


async def _gather_all(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """gather() that lets every call finish before raising the first error (no orphaned requests)."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]
