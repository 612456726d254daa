"""What the core needs from the world, as Protocols: the store, Twitch, the announcer and the renderer.

The core is written against these alone; database.Database, twitch_api.TwitchClient, the Discord
announcer and rendering.cards implement them, and tests substitute small fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from twitch_notifier.core.filters import ExitReason
from twitch_notifier.core.history import StreamSummary
from twitch_notifier.models import (
    Announcement,
    CardToClose,
    CardUpdate,
    Category,
    FilteredCard,
    ListedEvent,
    LiveEventRecord,
    LiveEventTarget,
    LiveStream,
    PendingAnnouncement,
    ScheduledEventSpec,
    ScheduleEventRecord,
    ShardScope,
    Streamer,
    StreamHistory,
    StreamObservation,
    Subscription,
    TitleFilter,
)
from twitch_notifier.twitch.eventsub import ChannelInfo, Conduit, ConduitShard, EventSubListing, ShardUpdate
from twitch_notifier.twitch.models import StreamsSnapshot, TwitchCategory, TwitchUser

__all__ = [
    "AnnounceError",
    "Announcer",
    "CardRenderer",
    "EventCalendar",
    "EventSubApi",
    "EventsRefused",
    "LiveEventStore",
    "MessageGone",
    "NotifierStore",
    "PollerStore",
    "PushStore",
    "StillRunning",
    "SubscriptionStore",
    "TwitchDirectory",
    "TwitchSource",
    "UpcomingEvents",
]


class AnnounceError(Exception):
    """Posting failed. `permanent` means retrying cannot help until someone changes something
    (channel deleted, permission missing); the reason is shown to the guild's admins in /streamers."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class StillRunning(AnnounceError):
    """Discord did not answer in time, but the request was left running (cancelling discord.py mid-request
    is unsafe): `outcome` ends when the request does, with its result (a message id for a post) or its
    AnnounceError. Until then the message may still appear, so whoever waits on the subscription waits
    on this too."""

    def __init__(self, reason: str, outcome: asyncio.Future[Any]) -> None:
        super().__init__(reason, permanent=False)
        self.outcome = outcome


class MessageGone(AnnounceError):
    """The message to edit or delete no longer exists (a human deleted it, or its channel is gone)."""

    def __init__(self, reason: str = "the message no longer exists") -> None:
        super().__init__(reason, permanent=True)


class Announcer(Protocol):
    """Where announcements go (Discord, in production)."""

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
        """Post `message`, the live announcement of `stream`, in `channel_id` of `guild_id`; return the
        message id or raise AnnounceError.

        `nonce` is the same for every attempt at one (subscription, stream): Discord returns the message
        it already created for a repeated nonce instead of posting it twice."""
        ...

    async def edit(self, channel_id: int, message_id: int, message: Announcement, *, guild_id: int) -> None:
        """Replace a posted message's content, embed and components; raise MessageGone or AnnounceError."""
        ...

    async def delete(self, channel_id: int, message_id: int, *, guild_id: int) -> None:
        """Delete a posted message; raise MessageGone or AnnounceError."""
        ...


class CardRenderer(Protocol):
    """Turns live state into the messages the announcer posts (rendering.cards.Cards in production)."""

    def live(
        self,
        stream: LiveStream,
        streamer: Streamer,
        *,
        ping: str | None,
        template: str | None,
        box_art_url: str,
        notify_button: bool = False,
    ) -> Announcement:
        """The live card; with `notify_button`, the "Notify me" button beside the Watch button."""
        ...

    def ended(
        self,
        streamer: Streamer,
        *,
        title: str,
        game_name: str,
        started_at: datetime | None,
        ended_at: datetime | None,
        vod_url: str | None,
        recap: StreamSummary | None = None,
    ) -> Announcement:
        """The "was live" card; `recap` (from the stream's history, when kept) adds its peak and average
        viewers and its categories, each linked to its moment in the VOD when there is one."""
        ...

    def reconnected(
        self,
        stream: LiveStream,
        streamer: Streamer,
        *,
        template: str | None,
        box_art_url: str,
        notify_button: bool = False,
    ) -> Announcement:
        """The live card of a stream that came back within the restart grace: noted so, and pinging nobody."""
        ...

    def left_filter(
        self, stream: LiveStream, streamer: Streamer, *, reason: ExitReason, games: Sequence[Category] | None
    ) -> Announcement:
        """The card of a live stream that left its entry's filter, saying why ("no longer VALORANT")."""
        ...


class NotifierStore(Protocol):
    """The storage the notifier reads and writes (database.Database)."""

    async def live_streams(self) -> dict[str, LiveStream]: ...

    async def update_streamer_names(self, streamers: Iterable[Streamer]) -> None: ...

    async def apply_live_changes(
        self,
        upserts: Iterable[LiveStream],
        missed: dict[str, int],
        ended: Iterable[str],
        ended_streams: Iterable[str] = (),
        observations: Iterable[StreamObservation] = (),
    ) -> None:
        """One observation's changes in one write, its streams' history included (never a write per stream)."""
        ...

    async def stream_histories(self, stream_ids: Iterable[str]) -> dict[str, StreamHistory]: ...

    async def games_needing_art(self, game_ids: Iterable[str], older_than: datetime) -> list[str]: ...

    async def store_games(self, games: Iterable[Category]) -> None: ...

    async def pending_announcements(self, scope: ShardScope | None = None) -> list[PendingAnnouncement]:
        """The pairs not announced yet, of the scope's guilds only (None: every guild)."""
        ...

    async def claim_announcements(
        self, pending: Sequence[PendingAnnouncement], owner: str, until: datetime
    ) -> set[tuple[int, str]]:
        """The (subscription id, stream id) pairs `owner` may announce: claimed now (in one write), already its
        own, or taken over from an expired claim; never one announced already."""
        ...

    async def notify(self, channel: str, payload: str = "") -> None:
        """Tell the bot's other processes on the same database (PostgreSQL NOTIFY); nothing with SQLite."""
        ...

    async def streamers_by_id(self, user_ids: Iterable[str]) -> dict[str, Streamer]: ...

    async def set_subscription_error(self, subscription_id: int, error: str | None, *, channel_id: int) -> None:
        """Record `error` only while the subscription still points at `channel_id`, where posting failed."""
        ...

    async def record_announcement(
        self, pending: PendingAnnouncement, message_id: int | None, stream: LiveStream | None = None
    ) -> None: ...

    async def record_ping(self, pending: PendingAnnouncement, ping: str, *, remember: bool) -> None:
        """Whom a posted announcement pinged (for the ping throttle, and with `remember` for its card's edits)."""
        ...

    async def cards_to_update(self, not_since: datetime, scope: ShardScope | None = None) -> list[CardUpdate]: ...

    async def mark_cards_rendered(self, cards: Iterable[tuple[int, LiveStream]]) -> None: ...

    async def cards_to_close(self, scope: ShardScope | None = None) -> list[CardToClose]: ...

    async def open_cards_of(self, subscription_id: int) -> list[CardToClose]: ...

    async def close_cards(self, cards: Iterable[tuple[int, str]]) -> None: ...

    async def prune_announcements(self, older_than: datetime) -> int: ...

    async def filtered_cards(self, scope: ShardScope | None = None) -> list[FilteredCard]:
        """Live cards of filtered entries in guilds whose cards follow the filter (edit or delete)."""
        ...

    async def mark_left_filter(self, cards: Iterable[tuple[int, str]], *, left: bool) -> None: ...

    async def record_continuation(
        self, pending: PendingAnnouncement, message_id: int | None, stream: LiveStream, previous_stream_id: str
    ) -> None:
        """The pair continues the card of `previous_stream_id` (restart grace); that card is closed with it."""
        ...

    async def set_stream_type(self, user_id: str, stream_id: str, stream_type: str) -> None: ...


class PollerStore(Protocol):
    """The storage the poller and housekeeping use."""

    async def monitored_user_ids(self) -> list[str]: ...

    async def refresh_streamers(self, found: Iterable[Streamer], missing: Iterable[str]) -> None: ...

    async def prune_history(self, older_than: datetime) -> int:
        """Forget streams that ended before `older_than`; end open ones no longer live at their last sighting."""
        ...

    async def history_to_thin(self, ended_before: datetime, limit: int) -> list[StreamHistory]: ...

    async def store_thinned(self, histories: Iterable[StreamHistory]) -> None: ...


class SubscriptionStore(Protocol):
    """The storage the add/edit/remove rules use."""

    async def get_announce_channel(self, guild_id: int) -> int | None: ...

    async def get_subscription(self, guild_id: int, subscription_id: int) -> Subscription | None: ...

    async def find_subscriptions(self, guild_id: int, query: str) -> list[Subscription]: ...

    async def count_subscriptions(self, guild_id: int) -> int: ...

    async def add_subscription(
        self,
        guild_id: int,
        channel_id: int,
        streamer: Streamer,
        added_by: int | None = None,
        *,
        ping: str | None = None,
        message_template: str | None = None,
        games: Sequence[Category] | None = None,
        max_per_guild: int | None = None,
        title_filter: TitleFilter | None = None,
    ) -> Subscription: ...

    async def set_subscription_channel(self, subscription_id: int, channel_id: int) -> None: ...

    async def remove_subscription_by_id(self, guild_id: int, subscription_id: int) -> Subscription | None: ...


class TwitchSource(Protocol):
    """What the poller and housekeeping ask Twitch (twitch_api.TwitchClient)."""

    async def get_streams(self, user_ids: Iterable[str]) -> StreamsSnapshot: ...

    async def get_users(self, *, logins: Iterable[str] = (), ids: Iterable[str] = ()) -> list[TwitchUser]: ...

    async def validate_token(self) -> bool: ...


class TwitchDirectory(Protocol):
    """What the add/edit rules look up on Twitch: users and categories."""

    async def get_users(self, *, logins: Iterable[str] = (), ids: Iterable[str] = ()) -> list[TwitchUser]: ...

    async def get_games(self, ids: Iterable[str] = (), *, names: Iterable[str] = ()) -> list[TwitchCategory]: ...

    async def search_categories(self, query: str, *, first: int = 25) -> list[TwitchCategory]: ...


class EventSubApi(Protocol):
    """The Helix calls EventSub push needs (twitch_api.TwitchClient), all with the app access token."""

    async def get_channels(self, broadcaster_ids: Iterable[str]) -> list[ChannelInfo]: ...

    async def get_conduits(self) -> list[Conduit]: ...

    async def create_conduit(self, shard_count: int) -> Conduit: ...

    async def update_conduit(self, conduit_id: str, shard_count: int) -> Conduit: ...

    async def update_conduit_shards(self, conduit_id: str, shards: Sequence[Mapping[str, Any]]) -> ShardUpdate: ...

    async def get_conduit_shards(self, conduit_id: str) -> list[ConduitShard]: ...

    async def get_eventsub_subscriptions(self, *, sub_type: str | None = None) -> EventSubListing: ...

    async def create_eventsub_subscription(
        self, sub_type: str, version: str, condition: Mapping[str, str], transport: Mapping[str, str]
    ) -> EventSubListing: ...

    async def delete_eventsub_subscription(self, subscription_id: str) -> bool: ...


class PushStore(Protocol):
    """The storage EventSub push keeps its state in (database.Database)."""

    async def monitored_user_ids(self) -> list[str]: ...

    async def get_state(self, key: str) -> str | None: ...

    async def set_state(self, key: str, value: str | None) -> None: ...

    async def push_states(self) -> dict[str, str]: ...

    async def set_push_states(self, states: Mapping[str, str | None]) -> None: ...


class EventsRefused(AnnounceError):
    """A guild's scheduled events are refused for want of a permission: the guild's live events wait until an
    admin sets the option again, or an hour, rather than being asked for every cycle. `asked` is False when the
    bot's cached permissions said so and no request was made (then the permission being granted lifts the wait)."""

    def __init__(self, reason: str, *, asked: bool = True) -> None:
        super().__init__(reason, permanent=True)
        self.asked = asked


class EventCalendar(Protocol):
    """Discord's guild scheduled events (discord_io.events in production). Failures are AnnounceError:
    EventsRefused for a missing permission, MessageGone for an event that no longer exists, StillRunning
    for a request Discord did not answer in time (it may still happen)."""

    async def create_event(self, guild_id: int, spec: ScheduledEventSpec) -> int:
        """Create an EXTERNAL event (SCHEDULED, starting at `spec.start`); return its id."""
        ...

    async def edit_event(
        self,
        guild_id: int,
        event_id: int,
        *,
        status: int | None = None,
        name: str | None = None,
        description: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Change an event's status (2 ACTIVE, 3 COMPLETED, 4 CANCELED) and/or what it shows; `start` only
        for an event not started yet."""
        ...

    async def list_events(self, guild_id: int) -> list[ListedEvent]: ...

    def may_create_events(self, guild_id: int) -> bool:
        """Whether the bot's cached permissions let it create events in the guild (no request)."""
        ...


class UpcomingEvents(Protocol):
    """The events made ahead for broadcasts of the streamers' Twitch schedules (core.schedule_events)."""

    async def adopt(self, guild_id: int, twitch_user_id: str, now: datetime) -> ScheduleEventRecord | None:
        """The upcoming event of the broadcast a stream going live at `now` is, handed over (None if none)."""
        ...


class LiveEventStore(Protocol):
    """The storage live scheduled events keep their state in (database.Database)."""

    async def live_events_wanted(self, scope: ShardScope | None = None) -> bool:
        """Whether any guild keeps live events, or any event is still open (one cheap query)."""
        ...

    async def live_event_targets(self, scope: ShardScope | None = None) -> list[LiveEventTarget]:
        """One row per (guild, live stream) announced in a guild that keeps live events."""
        ...

    async def live_event_records(self, scope: ShardScope | None = None) -> list[LiveEventRecord]:
        """The events not final yet (creating, scheduled, active), and the final ones of streams still live."""
        ...

    async def save_live_event(self, record: LiveEventRecord) -> None: ...

    async def set_events_error(self, guild_id: int, error: str | None) -> None:
        """Record (or clear, with None) why Discord refused the guild's events, with the time."""
        ...

    async def prune_live_events(self, older_than: datetime) -> int:
        """Forget final events last changed before `older_than`."""
        ...
