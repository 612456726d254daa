"""The domain types every layer shares: streamers, subscriptions, settings, live state and cards.

Frozen dataclasses with no behaviour worth the name and no imports beyond the standard library: the
storage, the core, the rendering and the cogs all speak these, so none depends on another for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, Final

__all__ = [
    "JSON",
    "KEEP",
    "AlreadySubscribed",
    "Announcement",
    "CardToClose",
    "CardUpdate",
    "Category",
    "CategoryChange",
    "EndAction",
    "GuildSettings",
    "GuildStreamer",
    "LiveStream",
    "PendingAnnouncement",
    "ShardScope",
    "StreamHistory",
    "StreamObservation",
    "Streamer",
    "Subscription",
    "SubscriptionLimitReached",
    "SubscriptionUpdate",
    "Unchanged",
    "ViewerSample",
]

JSON = dict[str, Any]


class Unchanged(Enum):
    """Marks a field of an update as "leave it as it is" (None is a value: it clears an override)."""

    KEEP = "keep"


KEEP: Final = Unchanged.KEEP


class AlreadySubscribed(Exception):
    """The guild already follows this streamer in that channel."""


class SubscriptionLimitReached(Exception):
    """The guild already has `limit` subscriptions (checked in the same transaction as the insert)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"this server already follows {limit} streamers, the most allowed")
        self.limit = limit


class EndAction(StrEnum):
    """What happens to a live card when its stream ends (a server setting; stored as its value)."""

    EDIT = "edit"
    """Edit it into a muted "was live" card with the duration and the VOD link."""
    DELETE = "delete"
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Category:
    """A Twitch category (game) a subscription's game filter allows."""

    id: str
    name: str
    box_art_url: str = ""


@dataclass(frozen=True, slots=True)
class Streamer:
    twitch_user_id: str
    login: str
    display_name: str
    profile_image_url: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One guild following one streamer into one channel, with its own overrides of the guild's settings."""

    id: int
    guild_id: int
    channel_id: int
    streamer: Streamer
    last_error: str | None = None
    missing_since: datetime | None = None
    """When Twitch stopped returning this streamer (banned or deleted), if it did."""
    ping: str | None = None
    """Override of the guild's ping ("" none, "everyone", "here", a role id); None uses the guild's."""
    message_template: str | None = None
    """Override of the guild's message template; None uses the guild's."""
    games: tuple[Category, ...] | None = None
    """Game filter: announce only while the stream is in one of these categories; None announces always."""
    games_unreadable: bool = False
    """The stored game filter cannot be read (corrupt): nothing is announced for this subscription until an
    admin sets the filter again (`games` is then empty)."""
    push_state: str | None = None
    """Why this streamer is not pushed by EventSub (None: it is, or push is off): 'poll_only' when Twitch's
    cost budget is spent, else the status Twitch revoked the subscription with (e.g. 'user_removed'). Such a
    streamer is still announced, by the poll."""


@dataclass(slots=True)
class SubscriptionUpdate:
    """Changes to one subscription; fields left KEEP stay as they are."""

    channel_id: int | Unchanged = KEEP
    ping: str | Unchanged | None = KEEP
    message_template: str | Unchanged | None = KEEP
    games: Sequence[Category] | Unchanged | None = KEEP


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    announce_channel_id: int | None = None
    ping: str | None = None
    message_template: str | None = None
    end_action: EndAction = EndAction.EDIT
    live_updates: bool = True


@dataclass(frozen=True, slots=True)
class LiveStream:
    """What the bot believes is live right now for one streamer."""

    twitch_user_id: str
    stream_id: str
    title: str
    game_name: str
    viewer_count: int
    started_at: datetime
    thumbnail_url: str
    missed_polls: int = 0
    game_id: str = ""
    pushed_at: datetime | None = None
    """When EventSub reported this stream live, while the poll's listing has not shown it yet (None once
    it has, or when the poll found it first)."""


@dataclass(frozen=True, slots=True)
class ShardScope:
    """The Discord shards one process runs (SHARD_IDS of SHARD_COUNT): it posts and edits for their guilds only."""

    count: int
    ids: tuple[int, ...]

    def holds(self, guild_id: int) -> bool:
        """Whether the guild is on one of these shards (Discord: shard = (guild_id >> 22) % shard_count)."""
        return (guild_id >> 22) % self.count in self.ids


@dataclass(frozen=True, slots=True)
class PendingAnnouncement:
    """A (subscription, live stream) pair that has not been announced yet."""

    subscription_id: int
    guild_id: int
    channel_id: int
    twitch_user_id: str
    stream_id: str
    last_error: str | None = None
    ping: str | None = None
    """The ping in effect (the subscription's override, else the guild's)."""
    template: str | None = None
    """The message template in effect (override, else the guild's; None is the default)."""
    box_art_url: str = ""


@dataclass(frozen=True, slots=True)
class CardUpdate:
    """A live card whose stream changed since it was last rendered (and not within the throttle)."""

    subscription_id: int
    guild_id: int
    channel_id: int
    message_id: int
    ping: str | None
    template: str | None
    box_art_url: str
    live: LiveStream
    streamer: Streamer


@dataclass(frozen=True, slots=True)
class CardToClose:
    """An announced stream that has ended and whose card has not been dealt with yet."""

    subscription_id: int
    stream_id: str
    guild_id: int
    channel_id: int
    message_id: int | None
    end_action: EndAction
    title: str
    game_name: str
    started_at: datetime | None
    ended_at: datetime | None
    streamer: Streamer


@dataclass(frozen=True, slots=True)
class GuildStreamer:
    """One row of a guild's list, for /streamers and /live."""

    subscription: Subscription
    live: LiveStream | None


@dataclass(frozen=True, slots=True)
class Announcement:
    """A message in Discord's JSON shapes: content, one embed, components (link buttons) and
    allowed_mentions, which lets through at most the one ping configured and nothing else."""

    content: str
    embed: JSON
    components: list[JSON] = field(default_factory=list)
    allowed_mentions: JSON = field(default_factory=lambda: {"parse": [], "replied_user": False})


# -- stream history (statistics) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamObservation:
    """One sighting of a live stream, as its history records it. `viewers` is None when the source did not
    count them (a push reports a go-live or a new category, never a viewer count)."""

    twitch_user_id: str
    stream_id: str
    started_at: datetime
    game_id: str
    game_name: str
    viewers: int | None


@dataclass(frozen=True, slots=True)
class ViewerSample:
    """A viewer count seen `offset` seconds after the stream started."""

    offset: int
    viewers: int


@dataclass(frozen=True, slots=True)
class CategoryChange:
    """The stream was in this category from `offset` seconds after its start (until the next change)."""

    offset: int
    game_id: str
    game_name: str


@dataclass(frozen=True, slots=True)
class StreamHistory:
    """One stream as the bot saw it: when, how many watched (samples), in which categories.

    `ended_at` is None while the stream is live; an ended stream ends when it was last seen. Old streams
    keep fewer samples (thinned), and their time-weighted totals are kept from before the thinning
    (`viewer_seconds` over `observed_seconds`); None means: compute them from the samples."""

    stream_id: str
    twitch_user_id: str
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    peak_viewers: int
    samples: tuple[ViewerSample, ...] = ()
    categories: tuple[CategoryChange, ...] = ()
    viewer_seconds: int | None = None
    observed_seconds: int | None = None
