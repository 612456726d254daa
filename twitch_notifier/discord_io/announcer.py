"""Posts, edits and deletes announcements through discord.py (core.ports.Announcer for Discord).

Turns Discord's failures into AnnounceError (MessageGone when the message or its channel is gone); every
request waits for its turn in the injected SendPacer, so a fan-out stays under Discord's global limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any, TypeVar

import aiohttp
import discord

from twitch_notifier.core.ports import AnnounceError, MessageGone, StillRunning
from twitch_notifier.core.publishing import PublishOutcome, PublishResult
from twitch_notifier.discord_io.channels import CHANNEL_DELETED, channel_problem
from twitch_notifier.discord_io.pacer import SendPacer
from twitch_notifier.models import JSON, Announcement, LiveStream, Streamer

__all__ = [
    "LONGEST_RATE_LIMIT_WAIT",
    "DiscordAnnouncer",
    "GuildDirectory",
    "allowed_mentions_from",
    "bounded",
    "link_view",
    "publish_problem",
]

GuildLookup = Callable[[int], discord.Guild | None]
T = TypeVar("T")
_log = logging.getLogger(__name__)


class GuildDirectory:
    """The guilds of a client that is built after its announcer (the bot needs the notifier, which needs
    the announcer): `client` is set once the bot exists; until then no guild is known."""

    def __init__(self) -> None:
        self.client: discord.Client | None = None

    def __call__(self, guild_id: int) -> discord.Guild | None:
        # Not Client.get_channel(): it scans every guild, which makes a fan-out to G guilds cost O(G²).
        return self.client.get_guild(guild_id) if self.client is not None else None


_BUTTON = 2
_LINK_STYLE = 5
CALL_TIMEOUT = 15.0
"""Longest one Discord request may take: discord.py has no timeout of its own (aiohttp's default is 5
minutes), and one hung request must not hold up the cycle for everyone. A post that timed out is retried
next cycle under the same nonce, so Discord does not post it twice if it did receive it."""
LONGEST_RATE_LIMIT_WAIT = 300.0
"""The bot's discord.py client raises RateLimited for a 429 (or a known bucket) asking to wait longer than this,
instead of sleeping through it: a publish refused for the rest of the hour (Discord's 10 per hour per channel)
must give up, not hang and publish a stale card an hour late; a post or edit that would wait that long is
retried next cycle instead. Not lower: discord.py also refuses, unasked, every request of a bucket whose
advertised reset is further away than this, even with requests left in it."""
_PUBLISH_PERMISSIONS = {"view_channel": "View Channel", "send_messages": "Send Messages"}


def publish_problem(channel: discord.abc.GuildChannel) -> str | None:
    """Why the bot cannot publish its own announcements in `channel`, in Discord's words (None: it can)."""
    if not isinstance(channel, discord.TextChannel) or not channel.is_news():
        return f"#{channel.name} is not an announcement channel"
    permissions = channel.permissions_for(channel.guild.me)
    missing = [label for name, label in _PUBLISH_PERMISSIONS.items() if not getattr(permissions, name)]
    return f"can't publish in #{channel.name}: missing {', '.join(missing)}" if missing else None


def allowed_mentions_from(data: JSON) -> discord.AllowedMentions:
    """Discord's allowed_mentions JSON (from rendering) as discord.py's object: nothing beyond it."""
    roles = [discord.Object(int(role_id)) for role_id in data.get("roles", [])]
    return discord.AllowedMentions(
        everyone="everyone" in data.get("parse", []), users=False, roles=roles or False, replied_user=False
    )


class CardView(discord.ui.View):
    """A card's buttons, rendered only: discord.py keeps no copy of it per message. Link buttons need no answer;
    a button with a custom id (the "Notify me" one) is answered by its custom id, in cogs.notify_button, which
    also serves cards posted before a restart."""

    def is_dispatchable(self) -> bool:
        return False


def link_view(components: list[JSON]) -> discord.ui.View:
    """The buttons of Discord's component JSON: link buttons (style 5), and buttons with a custom id."""
    view = CardView(timeout=None)
    for row in components:
        for item in row.get("components", []):
            if item.get("type") != _BUTTON:
                continue
            if item.get("style") == _LINK_STYLE:
                view.add_item(discord.ui.Button(style=discord.ButtonStyle.link, label=item["label"], url=item["url"]))
            elif item.get("custom_id"):
                style = discord.ButtonStyle(item.get("style", discord.ButtonStyle.secondary.value))
                view.add_item(discord.ui.Button(style=style, label=item["label"], custom_id=item["custom_id"]))
    return view


async def bounded(request: Coroutine[Any, Any, T], seconds: float, abandoned: set[asyncio.Task[Any]]) -> T:
    """Await `request` for at most `seconds`, then give up on it WITHOUT cancelling it.

    Cancelling discord.py mid-request is not safe: while it waits out a global 429 it has cleared its
    process-wide "global rate limit over" gate, and a cancellation there leaves the gate closed for
    good, stalling every later request. So the request runs on as a task, handed back in StillRunning:
    the notifier waits on it before a removal goes on, and records a post that succeeds late. Until it
    ends, the task is kept in `abandoned` (the caller's set), so nothing collects it mid-request."""
    task = asyncio.ensure_future(request)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except BaseException:
        _abandon(task, abandoned)  # the caller was cancelled (shutdown): the request still runs to its end
        raise
    if task not in done:
        _abandon(task, abandoned)
        raise StillRunning(f"Discord did not answer within {seconds:g} s", task)
    return task.result()


def _abandon(task: asyncio.Task[Any], abandoned: set[asyncio.Task[Any]]) -> None:
    abandoned.add(task)

    def forget(ended: asyncio.Task[Any]) -> None:
        abandoned.discard(ended)
        if not ended.cancelled() and ended.exception() is not None:
            _log.debug("A Discord request given up on ended with %r", ended.exception())

    task.add_done_callback(forget)


class DiscordAnnouncer:
    """Implements core.ports.Announcer with discord.py, for the guilds `guild_lookup` knows."""

    def __init__(self, guild_lookup: GuildLookup, pacer: SendPacer, *, call_timeout: float = CALL_TIMEOUT) -> None:
        self._guild = guild_lookup
        self.call_timeout = call_timeout
        # discord.py only reacts to Discord's global limit (50 requests/s per bot token) after a 429;
        # pacing keeps a fan-out to thousands of servers under it instead of into a 429 storm.
        self.pacer = pacer
        # Requests given up on but left running (see `bounded`); kept referenced until they end.
        self._abandoned: set[asyncio.Task[Any]] = set()

    async def _bounded(self, request: Coroutine[Any, Any, T]) -> T:
        return await bounded(request, self.call_timeout, self._abandoned)

    async def announce(
        self,
        channel_id: int,
        stream: LiveStream,
        streamer: Streamer,
        *,
        nonce: str,
        message: Announcement,
        guild_id: int,
    ) -> int:
        channel = self._channel(guild_id, channel_id)
        if not isinstance(channel, discord.TextChannel):
            raise AnnounceError(CHANNEL_DELETED, permanent=True)
        problem = channel_problem(channel)
        if problem:
            raise AnnounceError(problem, permanent=True)
        await self.pacer.acquire()
        return await self._bounded(self._post(channel, message, nonce))

    @staticmethod
    async def _post(channel: discord.TextChannel, message: Announcement, nonce: str) -> int:
        """One post, Discord's failures as AnnounceError (inside the task, so a late failure is one too)."""
        try:
            posted = await channel.send(
                content=message.content or None,
                embed=discord.Embed.from_dict(message.embed),
                view=link_view(message.components),
                allowed_mentions=allowed_mentions_from(message.allowed_mentions),
                nonce=nonce,
            )
        except discord.NotFound as exc:
            raise AnnounceError(CHANNEL_DELETED, permanent=True) from exc
        except discord.Forbidden as exc:
            raise AnnounceError(f"can't post in #{channel.name}: {exc.text or 'forbidden'}", permanent=True) from exc
        except discord.HTTPException as exc:
            raise AnnounceError(f"Discord answered {exc.status}: {exc.text}", permanent=False) from exc
        except discord.RateLimited as exc:
            raise AnnounceError(f"Discord asks to wait {exc.retry_after:.0f} s", permanent=False) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise AnnounceError(f"could not reach Discord: {exc!r}", permanent=False) from exc
        return posted.id

    async def edit(self, channel_id: int, message_id: int, message: Announcement, *, guild_id: int) -> None:
        partial = self._partial(guild_id, channel_id, message_id)
        # Before the request coroutine exists (a cancelled wait leaves none behind); behind any new announcement.
        await self.pacer.acquire(background=True)
        await self._bounded(
            self._change(
                partial.edit(
                    content=message.content,
                    embed=discord.Embed.from_dict(message.embed),
                    view=link_view(message.components),
                    allowed_mentions=allowed_mentions_from(message.allowed_mentions),
                )
            )
        )

    async def delete(self, channel_id: int, message_id: int, *, guild_id: int) -> None:
        partial = self._partial(guild_id, channel_id, message_id)
        await self.pacer.acquire(background=True)
        await self._bounded(self._change(partial.delete()))

    async def publish(self, channel_id: int, message_id: int, *, guild_id: int) -> PublishOutcome:
        """Crosspost one of the bot's messages (core.publishing.MessagePublisher): a news channel only, paced
        behind new announcements; Discord's refusals are the outcome, never raised."""
        channel = self._channel(guild_id, channel_id)
        if not isinstance(channel, discord.TextChannel) or not channel.is_news():
            return PublishOutcome(PublishResult.NOT_NEWS)
        problem = publish_problem(channel)
        if problem:
            return PublishOutcome(PublishResult.FAILED, reason=problem)
        partial = channel.get_partial_message(message_id)
        await self.pacer.acquire(background=True)
        try:
            return await self._bounded(self._crosspost(partial))
        except StillRunning as exc:
            return PublishOutcome(PublishResult.FAILED, reason=exc.reason)

    @staticmethod
    async def _crosspost(partial: discord.PartialMessage) -> PublishOutcome:
        try:
            await partial.publish()
        except discord.RateLimited as exc:
            return PublishOutcome(PublishResult.RATE_LIMITED, retry_after=exc.retry_after)
        except discord.HTTPException as exc:
            if exc.status == HTTPStatus.TOO_MANY_REQUESTS:
                return PublishOutcome(PublishResult.RATE_LIMITED)
            return PublishOutcome(PublishResult.FAILED, reason=f"Discord answered {exc.status}: {exc.text}")
        except (aiohttp.ClientError, OSError) as exc:
            return PublishOutcome(PublishResult.FAILED, reason=f"could not reach Discord: {exc!r}")
        return PublishOutcome(PublishResult.PUBLISHED)

    def _channel(self, guild_id: int, channel_id: int) -> discord.abc.GuildChannel | None:
        guild = self._guild(guild_id)
        return guild.get_channel(channel_id) if guild is not None else None

    def _partial(self, guild_id: int, channel_id: int, message_id: int) -> discord.PartialMessage:
        channel = self._channel(guild_id, channel_id)
        if not isinstance(channel, discord.TextChannel):
            raise MessageGone("its channel was deleted")
        return channel.get_partial_message(message_id)

    @staticmethod
    async def _change(request: Coroutine[Any, Any, object]) -> None:
        """One edit or delete, Discord's failures as MessageGone or AnnounceError."""
        try:
            await request
        except discord.NotFound as exc:
            raise MessageGone(f"Discord answered {HTTPStatus.NOT_FOUND.value}: {exc.text}") from exc
        except discord.Forbidden as exc:
            raise AnnounceError(f"Discord refused: {exc.text or 'forbidden'}", permanent=True) from exc
        except discord.HTTPException as exc:
            raise AnnounceError(f"Discord answered {exc.status}: {exc.text}", permanent=False) from exc
        except discord.RateLimited as exc:
            raise AnnounceError(f"Discord asks to wait {exc.retry_after:.0f} s", permanent=False) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise AnnounceError(f"could not reach Discord: {exc!r}", permanent=False) from exc
