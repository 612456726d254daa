"""Staying connected to Discord: log in and connect, and when Discord cannot be reached (DNS failure, 5xx,
a gateway that refuses) keep trying with capped exponential backoff, one log line per attempt.

Only what no retry can fix ends the session: an invalid token, intents Discord refuses, or a close code
that means the configuration is wrong (4011: more shards needed; 4010: a shard Discord refuses). discord.py's
own reconnect loop handles drops once connected, shard by shard.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import cast

import aiohttp
import discord

from twitch_notifier.discord_io.sharding import INVALID_SHARD, MAX_GUILDS_PER_SHARD, SHARDING_REQUIRED, ShardLaunchError

__all__ = ["Backoff", "SessionEnd", "run_session"]

_log = logging.getLogger(__name__)

AUTHENTICATION_FAILED = 4004
"""Gateway close code: the token was refused."""
_SLEEP_STEP = 0.25
"""Waiting between attempts is checked this often against a shutdown request."""
# What an outage looks like from discord.py: nothing here means the configuration is wrong.
_TRANSIENT = (
    discord.GatewayNotFound,
    discord.HTTPException,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
    ShardLaunchError,
)


class SessionEnd(Enum):
    CLOSED = "closed"
    """The bot was closed (a signal, or close() called): the normal end."""
    INVALID_TOKEN = "invalid token"  # noqa: S105 - the name of an outcome, not a secret
    PRIVILEGED_INTENTS = "privileged intents refused"
    SHARDING_REQUIRED = "sharding required"
    """4011: a shard would hold more than 2,500 guilds; SHARD_COUNT must grow (see the log line)."""
    INVALID_SHARD = "invalid shard"
    """4010: Discord refused the shard id or count (see the log line)."""
    REFUSED = "refused by Discord"
    """Discord closed the gateway with a code no retry can fix (see the log line)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter: attempt n waits about base * 2**(n-1), at most `cap`."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.1

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt - 1, 30))
        return ceiling * (1 - self.jitter * random.random())  # noqa: S311 - jitter, not cryptography


async def run_session(
    client: discord.Client,
    token: str,
    *,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> SessionEnd:
    """Log `client` in and keep it connected until it is closed; returns why the session ended."""
    ended = await _log_in(client, token, backoff, sleep)
    return ended if ended is not None else await _stay_connected(client, backoff, sleep)


async def _log_in(
    client: discord.Client, token: str, backoff: Backoff, sleep: Callable[[float], Awaitable[object]]
) -> SessionEnd | None:
    """Static login, application info, then setup_hook; None once logged in."""
    attempt = 0
    while not client.is_closed():
        try:
            await client.login(token)
        except discord.LoginFailure:
            return SessionEnd.INVALID_TOKEN
        except _TRANSIENT as exc:
            attempt += 1
            await _fresh_http(client)
            await _pause(client, "log in to", exc, attempt, backoff, sleep)
        else:
            return None
    return SessionEnd.CLOSED


async def _stay_connected(
    client: discord.Client, backoff: Backoff, sleep: Callable[[float], Awaitable[object]]
) -> SessionEnd:
    attempt = 0
    while not client.is_closed():
        try:
            await client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            return SessionEnd.PRIVILEGED_INTENTS
        except discord.ConnectionClosed as exc:
            if client.is_closed():  # discord.py closes the client for codes it cannot recover from
                return _refused(client, exc)
            attempt += 1
            await _pause(client, "connect to", exc, attempt, backoff, sleep)
        except _TRANSIENT as exc:
            attempt += 1
            await _pause(client, "connect to", exc, attempt, backoff, sleep)
        except AttributeError as exc:
            # discord.py 2.7 (issue #10520): when the very first gateway connection fails, its reconnect
            # path reads `self.ws.sequence` while ws is still None. That is an outage, not a bug of ours. The
            # sharded client has no such path (and no `ws` at all): there it is a bug, and raised.
            if isinstance(client, discord.AutoShardedClient) or cast(object, client.ws) is not None:
                raise
            attempt += 1
            await _pause(client, "connect to", exc, attempt, backoff, sleep)
        else:
            attempt = 0
    return SessionEnd.CLOSED


async def _fresh_http(client: discord.Client) -> None:
    """Close the HTTP session a failed login opened: each login opens a new one on the same connector,
    and an abandoned session is reported as unclosed. A new connector comes with the next login."""
    await client.http.close()
    client.http.connector = discord.utils.MISSING


def _refused(client: discord.Client, exc: discord.ConnectionClosed) -> SessionEnd:
    if exc.code == AUTHENTICATION_FAILED:
        return SessionEnd.INVALID_TOKEN
    shard = f"shard {exc.shard_id} of {client.shard_count}" if exc.shard_id is not None else "the session"
    if exc.code == SHARDING_REQUIRED:
        _log.error(
            "Discord closed %s with code 4011 (Sharding required): a shard may hold at most %s servers, and "
            "%d shard(s) are too few for this bot. Set SHARD_COUNT higher (about one shard per 1,000 servers), or "
            "leave SHARD_COUNT empty to use Discord's recommendation; not reconnecting until restarted",
            shard,
            f"{MAX_GUILDS_PER_SHARD:,}",
            client.shard_count or 1,
        )
        return SessionEnd.SHARDING_REQUIRED
    if exc.code == INVALID_SHARD:
        _log.error(
            "Discord closed %s with code 4010 (Invalid shard): check SHARD_COUNT and SHARD_IDS (every id below "
            "SHARD_COUNT; above 150,000 servers, SHARD_COUNT a multiple of the number Discord assigned); not "
            "reconnecting until restarted",
            shard,
        )
        return SessionEnd.INVALID_SHARD
    _log.error("Discord closed the gateway with code %s (%s); not retrying", exc.code, exc.reason or "no reason")
    return SessionEnd.REFUSED


def _describe(exc: BaseException) -> str:
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status}"
    if isinstance(exc, discord.ConnectionClosed):
        return f"gateway closed with code {exc.code}"
    if isinstance(exc, discord.GatewayNotFound):
        return "no gateway URL"
    if isinstance(exc, AttributeError):
        return "the first gateway connection failed"
    if isinstance(exc, ShardLaunchError):
        return str(exc)[:200]
    text = str(exc) or type(exc).__name__
    return text[:200]


async def _pause(
    client: discord.Client,
    what: str,
    exc: BaseException,
    attempt: int,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[object]],
) -> None:
    delay = backoff.delay(attempt)
    _log.warning(
        "Could not %s Discord (%s); attempt %d failed, retrying in %.1f s", what, _describe(exc), attempt, delay
    )
    waited = 0.0
    while waited < delay and not client.is_closed():
        step = min(_SLEEP_STEP, delay - waited)
        await sleep(step)
        waited += step
