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
    "Broadcast",
    "CardToClose",
    "CardUpdate",
    "Category",
    "CategoryChange",
    "EndAction",
    "FilteredCard",
    "GuildSettings",
    "GuildStreamer",
    "LastAnnouncement",
    "LastPing",
    "ListedEvent",
    "LiveEventRecord",
    "LiveEventTarget",
    "LiveStream",
    "OptInTarget",
    "PendingAnnouncement",
    "PreviousCard",
    "PublishWindow",
    "ScheduleEventRecord",
    "ScheduleEventTarget",
    "ScheduledEventSpec",
    "ShardScope",
    "StreamHistory",
    "StreamObservation",
    "Streamer",
    "Subscription",
    "SubscriptionLimitReached",
    "SubscriptionUpdate",
    "TitleFilter",
    "Unchanged",
    "ViewerSample",
    "shard_of",
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
class TitleFilter:
    """A subscription's title filter (core.filters decides with it): announce only a stream whose title has one of
    `include` (if any) and none of `exclude` (whole words or phrases, case-insensitive), matches `regex` (if set),
    and, with `skip_reruns`, whose EventSub type is `live` (not a rerun, playlist, premiere or watch party)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    regex: str | None = None
    skip_reruns: bool = False

    @property
    def empty(self) -> bool:
        return not (self.include or self.exclude or self.regex or self.skip_reruns)


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
    last_failure: str | None = None
    """The last reason posting for this entry failed, kept after a later success (for /diagnose)."""
    last_failure_at: datetime | None = None
    """When that failure was first recorded."""
    title_filter: TitleFilter | None = None
    """Title filter (words, regex, reruns); None announces whatever the title."""
    title_filter_unreadable: bool = False
    """The stored title filter cannot be read: nothing is announced for this entry until it is set again."""
    notify_button: bool | None = None
    """Override of the guild's "Notify me" button (opt-in role ping); None uses the guild's."""


@dataclass(slots=True)
class SubscriptionUpdate:
    """Changes to one subscription; fields left KEEP stay as they are."""

    channel_id: int | Unchanged = KEEP
    ping: str | Unchanged | None = KEEP
    message_template: str | Unchanged | None = KEEP
    games: Sequence[Category] | Unchanged | None = KEEP
    title_filter: TitleFilter | Unchanged | None = KEEP
    notify_button: bool | Unchanged | None = KEEP


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    announce_channel_id: int | None = None
    ping: str | None = None
    message_template: str | None = None
    end_action: EndAction = EndAction.EDIT
    live_updates: bool = True
    live_events: bool = False
    """Keep a Discord scheduled event for each announced live stream (core.live_events)."""
    events_error: str | None = None
    """Why Discord last refused this server's live events (a missing permission), until it is settled."""
    publish: bool = False
    """Publish (crosspost) announcements posted in an announcement (news) channel to the servers following it."""
    filter_exit: EndAction = EndAction.KEEP
    """What happens to a live card whose stream leaves its entry's game or title filter (keep, edit, delete)."""
    restart_grace_seconds: int | None = None
    """The server's own restart grace (0: off); None uses the operator's STREAM_RESTART_GRACE_SECONDS."""
    notify_button: bool = False
    """Live cards carry a "Notify me" button handing out a per-streamer opt-in role, which the announcement
    pings instead of `ping` (core.opt_in)."""
    ping_throttle_hours: int | None = None
    """Ping each streamer at most once per this many hours (a new stream within it is announced silently)."""
    schedule_events: bool = False
    """Show each followed streamer's Twitch schedule as upcoming Discord events (core.schedule_events)."""


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
    stream_type: str = "live"
    """EventSub's type of the stream (live, rerun, playlist, premiere, watch_party); the poll only sees "live"."""


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord delivers this guild's events on (gateway docs, "Sharding"); database.py's shard filter
    is the same rule in SQL."""
    return (guild_id >> 22) % shard_count


@dataclass(frozen=True, slots=True)
class ShardScope:
    """The Discord shards one process runs (SHARD_IDS of SHARD_COUNT): it posts and edits for their guilds only."""

    count: int
    ids: tuple[int, ...]

    def holds(self, guild_id: int) -> bool:
        """Whether the guild is on one of these shards."""
        return shard_of(guild_id, self.count) in self.ids


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
    publish: bool = False
    """The guild publishes announcements posted in a news channel (the setting; the channel may be no news one)."""
    title_filter: TitleFilter | None = None
    title_filter_unreadable: bool = False
    previous: PreviousCard | None = None
    """The subscription's card of the streamer's last ended stream, which this stream may continue (restart grace)."""
    restart_grace_seconds: int | None = None
    """The guild's restart grace (None: the operator's)."""
    notify_button: bool = False
    """The card carries the "Notify me" button, and pings the streamer's opt-in role instead of `ping`."""
    notify_role_id: int | None = None
    """The guild's opt-in role of the streamer, once someone pressed the button (else nobody is pinged)."""
    ping_throttle_hours: int | None = None
    last_ping: LastPing | None = None
    """The last stream of this streamer that pinged in this guild (for the throttle)."""


@dataclass(frozen=True, slots=True)
class LastPing:
    """The last announcement of a streamer that pinged anyone in a guild: which stream, and when."""

    stream_id: str
    pinged_at: datetime


@dataclass(frozen=True, slots=True)
class PreviousCard:
    """A subscription's card of an ended stream: a new stream of the streamer within the restart grace continues it."""

    stream_id: str
    channel_id: int
    message_id: int | None
    started_at: datetime | None
    ended_at: datetime | None
    deleted: bool = False
    """Known to be gone (closed under on_end delete, or deleted because the stream left the filter)."""


@dataclass(frozen=True, slots=True)
class FilteredCard:
    """A live card of an entry with a game or title filter, in a guild whose cards follow the filter (edit or
    delete): checked each cycle, since SQL cannot evaluate title filters."""

    subscription_id: int
    guild_id: int
    channel_id: int
    message_id: int
    action: EndAction
    games: tuple[Category, ...] | None
    title_filter: TitleFilter | None
    unreadable: bool
    left: bool
    """The card already says the stream left the filter (edited)."""
    ping: str | None
    """The ping the card was posted with (else the configured one), as its live updates render it."""
    template: str | None
    box_art_url: str
    live: LiveStream
    streamer: Streamer
    reconnected: bool = False
    """The card continues the card of a stream that dropped within the restart grace (it says so)."""
    notify_button: bool = False
    """The entry has the "Notify me" button: the card drawn back to live carries it."""


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
    reconnected: bool = False
    """The card continues the card of a stream that dropped within the restart grace (it says so)."""
    notify_button: bool = False
    """The card carries the "Notify me" button (and `ping` is the one it was posted with)."""


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
class PublishWindow:
    """What the bot knows of one news channel's publishing budget (Discord: 10 publishes per hour per channel):
    the times of its publishes within the last hour, and until when Discord refused more, if it did."""

    channel_id: int
    published: tuple[datetime, ...] = ()
    blocked_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class LastAnnouncement:
    """An entry's most recent announcement still on record (for /diagnose)."""

    subscription_id: int
    channel_id: int
    message_id: int | None
    posted_at: datetime
    title: str | None = None
    game_name: str | None = None


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


# -- live scheduled events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveEventTarget:
    """A live stream announced in a guild that keeps live events: it should have a scheduled event."""

    guild_id: int
    stream_id: str
    twitch_user_id: str
    login: str
    display_name: str
    title: str
    game_name: str
    started_at: datetime
    refused_at: datetime | None = None
    """When Discord last refused this guild's events (a missing permission): not asked again for a while."""


@dataclass(frozen=True, slots=True)
class LiveEventRecord:
    """The scheduled event of one (guild, stream), as stored: `status` is "creating" (asked for, id not known
    yet), "scheduled", "active", or one of the final "completed", "canceled", "gone" (deleted by a human)."""

    guild_id: int
    stream_id: str
    twitch_user_id: str
    status: str
    created_at: datetime
    synced_at: datetime
    event_id: int | None = None
    name: str = ""
    description: str = ""
    location: str = ""
    ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScheduledEventSpec:
    """What a live stream's scheduled event shows: Discord's EXTERNAL event, at the stream's URL."""

    name: str
    description: str
    location: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class ListedEvent:
    """One of a guild's scheduled events as Discord lists them (to find one whose creation timed out)."""

    event_id: int
    status: int
    location: str
    start: datetime
    mine: bool
    """Created by this bot."""


@dataclass(frozen=True, slots=True)
class Broadcast:
    """One planned broadcast of a streamer's Twitch schedule, as stored (not cancelled, not in a vacation)."""

    segment_id: str
    start: datetime
    end: datetime | None
    title: str
    category_name: str = ""
    recurring: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleEventTarget:
    """One broadcast of a streamer's stored Twitch schedule, in a guild that follows the streamer and imports
    schedules: it may get an upcoming event."""

    guild_id: int
    twitch_user_id: str
    login: str
    display_name: str
    segment_id: str
    start: datetime
    end: datetime | None
    title: str
    category_name: str = ""
    recurring: bool = False
    refused_at: datetime | None = None
    """When Discord last refused this guild's events (a missing permission): not asked again for a while."""


@dataclass(frozen=True, slots=True)
class ScheduleEventRecord:
    """The upcoming event of one (guild, streamer, segment), as stored: `status` is "creating" (asked for, id not
    known yet), "scheduled", or one of the final "adopted" (the stream went live and its live event took this
    event over), "canceled", "gone" (deleted or changed by a human)."""

    guild_id: int
    twitch_user_id: str
    segment_id: str
    status: str
    start: datetime
    end: datetime
    created_at: datetime
    synced_at: datetime
    event_id: int | None = None
    name: str = ""
    description: str = ""
    location: str = ""


# -- opt-in pings ("Notify me") ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OptInTarget:
    """What a "Notify me" press in a guild needs to know about the streamer its button names."""

    guild_id: int
    streamer: Streamer
    followed: bool
    """The guild still follows the streamer (in at least one channel)."""
    enabled: bool
    """At least one of those entries has the button on (its own override, else the guild's setting)."""
    role_id: int | None
    """The opt-in role the bot created for this streamer in this guild, if it has."""
