"""What Twitch's Helix API returns, as frozen dataclasses (parsed by twitch_api.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "ChannelSchedule",
    "ScheduleSegment",
    "StreamsSnapshot",
    "TwitchCategory",
    "TwitchStream",
    "TwitchUser",
    "TwitchVideo",
    "channel_url",
]


def channel_url(login: str) -> str:
    return f"https://www.twitch.tv/{login}"


@dataclass(frozen=True, slots=True)
class TwitchUser:
    id: str
    login: str
    display_name: str
    profile_image_url: str
    broadcaster_type: str = ""

    @property
    def url(self) -> str:
        return channel_url(self.login)


@dataclass(frozen=True, slots=True)
class TwitchStream:
    id: str
    user_id: str
    user_login: str
    user_name: str
    game_id: str
    game_name: str
    title: str
    viewer_count: int
    started_at: datetime
    thumbnail_url: str
    language: str = ""
    is_mature: bool = False
    tags: tuple[str, ...] = ()
    type: str = "live"
    """EventSub's stream.online type (live, rerun, playlist, premiere, watch_party); /helix/streams says "live"."""

    def thumbnail(self, width: int = 1280, height: int = 720) -> str:
        return self.thumbnail_url.replace("{width}", str(width)).replace("{height}", str(height))

    @property
    def url(self) -> str:
        return channel_url(self.user_login)


@dataclass(frozen=True, slots=True)
class TwitchCategory:
    """A category (game). `box_art_url` keeps Twitch's {width}x{height} placeholders."""

    id: str
    name: str
    box_art_url: str = ""


@dataclass(frozen=True, slots=True)
class TwitchVideo:
    id: str
    user_id: str
    stream_id: str
    title: str
    url: str
    created_at: datetime | None
    duration: str = ""
    type: str = "archive"


@dataclass(frozen=True, slots=True)
class StreamsSnapshot:
    """One poll over many streamers. A user id in `failed` has an UNKNOWN state: never treat it as offline."""

    streams: dict[str, TwitchStream]
    checked: frozenset[str]
    failed: frozenset[str]
    requests: int

    @property
    def offline(self) -> frozenset[str]:
        """Ids that Twitch positively reported as not live in this poll."""
        return self.checked.difference(self.streams)


@dataclass(frozen=True, slots=True)
class ScheduleSegment:
    """One broadcast of a channel's stream schedule (`GET /helix/schedule`). Each week of a recurring segment is
    its own segment, with its own id."""

    id: str
    start: datetime
    end: datetime | None
    title: str
    category_name: str = ""
    canceled: bool = False
    """The broadcaster cancelled this one broadcast (Twitch's `canceled_until` is set)."""
    recurring: bool = False


@dataclass(frozen=True, slots=True)
class ChannelSchedule:
    """A channel's upcoming broadcasts, soonest first. No segments: the broadcaster has no schedule (Twitch's
    404), or nothing is planned. During a vacation Twitch lists no segments inside it."""

    broadcaster_id: str
    segments: tuple[ScheduleSegment, ...]
    vacation_start: datetime | None = None
    vacation_end: datetime | None = None
