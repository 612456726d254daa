"""The rules of following streamers: add, find, edit, remove — Discord-free, so they are unit-tested alone.

The cogs parse what an admin typed, ask these rules, and turn the typed outcome into a reply; whether a
channel is usable is asked through an injected `ChannelCheck` (the cog answers it from Discord's cache).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from twitch_notifier.core.ports import SubscriptionStore, TwitchDirectory
from twitch_notifier.models import (
    AlreadySubscribed,
    Category,
    Streamer,
    Subscription,
    SubscriptionLimitReached,
    TitleFilter,
)
from twitch_notifier.twitch.errors import InvalidLogin, TwitchUnavailable
from twitch_notifier.twitch.logins import parse_login
from twitch_notifier.twitch.mapping import category_from, streamer_from_user

__all__ = [
    "MAX_GAMES",
    "AddOutcome",
    "AddRefusal",
    "AddRequest",
    "AddResult",
    "ChannelCheck",
    "ChannelStatus",
    "Removal",
    "Retirer",
    "SubscriptionRules",
    "Target",
    "TooManyCategories",
    "UnknownCategory",
]

MAX_GAMES = 10
"""At most this many categories in one streamer's game filter."""
TWITCH_BUDGET = 8.0
"""All the Twitch look-ups of one interaction together get this long (the client retries inside it): an
admin gets "Twitch is not answering" in seconds, not after the client's retries add up to a minute."""


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """What Discord's cache says of a channel the bot would announce in."""

    exists: bool
    """It is a text channel of this guild that the bot can see."""
    problem: str | None = None
    """Why the bot can't post there (missing permissions), in Discord's words."""


ChannelCheck = Callable[[int], ChannelStatus]
BeforeSlow = Callable[[], Awaitable[object]]
"""Called once just before the first request to Twitch (the cog defers the interaction there)."""


class Retirer(Protocol):
    """Who must know that a subscription is going away (the notifier)."""

    async def retire(self, subscription_id: int) -> int: ...

    def unretire(self, subscription_id: int) -> None: ...

    def removed(self, subscription_id: int) -> None: ...


class UnknownCategory(Exception):
    """Twitch has no category with this name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class TooManyCategories(Exception):
    """More than MAX_GAMES categories in one filter."""


class AddRefusal(Enum):
    NO_CHANNEL = "no announcement channel given or set"
    DEFAULT_CHANNEL_GONE = "the channel set with /setchannel no longer exists"
    CHANNEL_MISSING = "the channel given is not a text channel the bot can see"
    CHANNEL_UNUSABLE = "the bot lacks permissions in the channel"
    LIMIT_REACHED = "the guild follows the most streamers allowed"
    NO_SUCH_USER = "Twitch has no such channel"


@dataclass(frozen=True, slots=True)
class AddRequest:
    guild_id: int
    login: str
    """Already parsed (twitch.logins.parse_login)."""
    channel_id: int | None = None
    """Where to announce; None means the guild's default channel."""
    added_by: int | None = None
    ping: str | None = None
    template: str | None = None
    game_names: Sequence[str] | None = None
    title_filter: TitleFilter | None = None


class AddOutcome(Enum):
    ADDED = "added"
    ALREADY = "already"
    """The streamer is already announced in that channel: nothing changed."""
    REPAIRED = "repaired"
    """The streamer was followed but its entry was broken; it now announces in the channel asked for."""
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class AddResult:
    outcome: AddOutcome
    streamer: Streamer | None = None
    """Who was added, found already there, or repaired."""
    refusal: AddRefusal | None = None
    detail: str = ""
    """The refusal's specifics: the permission problem, the limit, the login."""
    channel_id: int | None = None
    """The channel the request resolved to."""
    also_in: tuple[int, ...] = ()
    """Other channels of the guild that already announce this streamer."""
    categories: tuple[Category, ...] | None = None

    @classmethod
    def refused(cls, refusal: AddRefusal, channel_id: int | None = None, detail: str = "") -> AddResult:
        return cls(AddOutcome.REFUSED, refusal=refusal, detail=detail, channel_id=channel_id)


@dataclass(frozen=True, slots=True)
class Target:
    """Which subscription an option value names. `subscription` is None when none or several match."""

    subscription: Subscription | None
    candidates: tuple[Subscription, ...] = field(default=())
    """Several entries matched (the streamer is followed in several channels)."""


class SubscriptionRules:
    """Adding, finding and removing a guild's streamers, with the checks that guard each."""

    def __init__(
        self,
        store: SubscriptionStore,
        twitch: TwitchDirectory,
        *,
        max_per_guild: int,
        twitch_budget: float = TWITCH_BUDGET,
        retirer: Retirer | None = None,
        on_followed_changed: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._retirer = retirer
        self.on_followed_changed = on_followed_changed
        """Told after a streamer is followed or unfollowed (EventSub push subscribes or unsubscribes)."""
        self._twitch = twitch
        self.max_per_guild = max_per_guild
        self.twitch_budget = twitch_budget

    async def add(self, request: AddRequest, channels: ChannelCheck, before_slow: BeforeSlow) -> AddResult:
        """Follow a streamer. Checks in order: a channel to announce in and that it is usable, an entry
        already there (nothing changes) or broken (repaired by moving it), the guild's limit, then Twitch
        (the user, the categories). Raises TwitchError, UnknownCategory and TooManyCategories."""
        guild_id = request.guild_id
        channel_id = request.channel_id
        if channel_id is None:
            channel_id = await self._store.get_announce_channel(guild_id)
            if channel_id is None:
                return AddResult.refused(AddRefusal.NO_CHANNEL)
        status = channels(channel_id)
        if not status.exists:
            missing = AddRefusal.CHANNEL_MISSING if request.channel_id else AddRefusal.DEFAULT_CHANNEL_GONE
            return AddResult.refused(missing, channel_id)
        if status.problem:
            return AddResult.refused(AddRefusal.CHANNEL_UNUSABLE, channel_id, status.problem)
        existing = await self._store.find_subscriptions(guild_id, request.login)
        here = next((sub for sub in existing if sub.channel_id == channel_id), None)
        if here is not None:
            return AddResult(AddOutcome.ALREADY, here.streamer, channel_id=channel_id)
        broken = next((sub for sub in existing if sub.last_error or not channels(sub.channel_id).exists), None)
        if broken is not None:
            # Adding again is how an admin repairs a streamer whose channel broke.
            await self._store.set_subscription_channel(broken.id, channel_id)
            return AddResult(AddOutcome.REPAIRED, broken.streamer, channel_id=channel_id)
        if await self._store.count_subscriptions(guild_id) >= self.max_per_guild:
            return AddResult.refused(AddRefusal.LIMIT_REACHED, channel_id, str(self.max_per_guild))

        await before_slow()
        async with self._twitch_budget():
            users = await self._twitch.get_users(logins=[request.login])
            categories = await self._categories(request.game_names) if request.game_names else None
        if not users:
            return AddResult.refused(AddRefusal.NO_SUCH_USER, channel_id, request.login)
        streamer = streamer_from_user(users[0])
        try:
            await self._store.add_subscription(
                guild_id,
                channel_id,
                streamer,
                added_by=request.added_by,
                ping=request.ping,
                message_template=request.template,
                games=categories,
                max_per_guild=self.max_per_guild,  # checked again in the insert's transaction: adds race
                title_filter=request.title_filter,
            )
        except SubscriptionLimitReached:
            return AddResult.refused(AddRefusal.LIMIT_REACHED, channel_id, str(self.max_per_guild))
        except AlreadySubscribed:
            return AddResult(AddOutcome.ALREADY, streamer, channel_id=channel_id)  # added meanwhile
        self._followed_changed()
        return AddResult(
            AddOutcome.ADDED,
            streamer,
            channel_id=channel_id,
            also_in=tuple(sub.channel_id for sub in existing),
            categories=tuple(categories) if categories is not None else None,
        )

    def _followed_changed(self) -> None:
        if self.on_followed_changed is not None:
            self.on_followed_changed()

    async def resolve_categories(self, names: Sequence[str]) -> list[Category]:
        """Category names typed (or picked from autocomplete) as Twitch's categories, without duplicates,
        within the Twitch budget. Raises TooManyCategories, UnknownCategory naming the first one Twitch
        does not know, TwitchError (TwitchUnavailable when the budget runs out)."""
        async with self._twitch_budget():
            return await self._categories(names)

    @contextlib.asynccontextmanager
    async def _twitch_budget(self) -> AsyncIterator[None]:
        """The Twitch look-ups of one interaction together: TwitchUnavailable once the budget is spent."""
        try:
            async with asyncio.timeout(self.twitch_budget):
                yield
        except TimeoutError:
            raise TwitchUnavailable(f"Twitch did not answer within {self.twitch_budget:g} s") from None

    async def _categories(self, names: Sequence[str]) -> list[Category]:
        if len(names) > MAX_GAMES:
            raise TooManyCategories()
        found = {g.name.casefold(): g for g in await self._twitch.get_games(names=names)}
        result: list[Category] = []
        for name in names:
            game = found.get(name.casefold())
            if game is None:
                # /games wants the exact name; the search forgives case and finds the canonical spelling.
                hits = await self._twitch.search_categories(name, first=20)
                game = next((g for g in hits if g.name.casefold() == name.casefold()), None)
            if game is None:
                raise UnknownCategory(name)
            result.append(category_from(game))
        return list({c.id: c for c in result}.values())

    async def find(self, guild_id: int, text: str, channel_id: int | None = None) -> Target:
        """The one subscription an option value names: `sub:<id>` from autocomplete, or a typed login, URL
        or display name (which may match several channels' entries: then they are the candidates)."""
        text = text.strip()
        if text.startswith("sub:") and text[4:].isdigit():
            return Target(await self._store.get_subscription(guild_id, int(text[4:])))
        with contextlib.suppress(InvalidLogin):
            text = parse_login(text)
        subs = await self._store.find_subscriptions(guild_id, text)
        if channel_id is not None:
            subs = [sub for sub in subs if sub.channel_id == channel_id]
        if len(subs) > 1:
            return Target(None, tuple(subs))
        return Target(subs[0] if subs else None)

    async def remove(self, guild_id: int, subscription: Subscription, before_slow: BeforeSlow | None = None) -> Removal:
        """Stop one entry. Removed means removed: once this returns nothing more is posted for the entry,
        and the cards it has are closed like any other (the retirer waits for a post under way, then edits
        or deletes cards, so `before_slow` is called first: the cog defers there)."""
        unclosed = 0
        if self._retirer is not None:
            if before_slow is not None:
                await before_slow()
            try:
                unclosed = await self._retirer.retire(subscription.id)
            except BaseException:
                self._retirer.unretire(subscription.id)  # nothing was deleted: keep announcing it
                raise
        try:
            removed = await self._store.remove_subscription_by_id(guild_id, subscription.id)
        finally:
            if self._retirer is not None:
                self._retirer.removed(subscription.id)
        if removed is None:
            return Removal(None)
        self._followed_changed()
        others = await self._store.find_subscriptions(guild_id, removed.streamer.twitch_user_id)
        return Removal(removed, [other.channel_id for other in others], unclosed)


@dataclass(frozen=True, slots=True)
class Removal:
    removed: Subscription | None
    """The entry removed; None if it was already gone."""
    still_in: list[int] = field(default_factory=list)
    """Other channels of the guild that still announce the streamer."""
    unclosed_cards: int = 0
    """Cards Discord would not let the bot close (they stay as they are)."""
