"""The notifier's renderer: the live card and the "was live" card, as messages.py draws them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from twitch_notifier.core.filters import ExitReason
from twitch_notifier.core.history import StreamSummary
from twitch_notifier.models import Announcement, Category, LiveStream, Streamer
from twitch_notifier.rendering.filter_cards import (
    exit_reason_text,
    left_filter_announcement,
    reconnected_announcement,
)
from twitch_notifier.rendering.messages import ended_announcement, live_announcement

__all__ = ["Cards"]


class Cards:
    """Implements core.ports.CardRenderer with the bot's message layout."""

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
        return live_announcement(
            stream, streamer, ping=ping, template=template, box_art_url=box_art_url, notify=notify_button
        )

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
        return ended_announcement(
            streamer,
            title=title,
            game_name=game_name,
            started_at=started_at,
            ended_at=ended_at,
            vod_url=vod_url,
            recap=recap,
        )

    def reconnected(
        self,
        stream: LiveStream,
        streamer: Streamer,
        *,
        template: str | None,
        box_art_url: str,
        notify_button: bool = False,
    ) -> Announcement:
        return reconnected_announcement(
            stream, streamer, template=template, box_art_url=box_art_url, notify=notify_button
        )

    def left_filter(
        self, stream: LiveStream, streamer: Streamer, *, reason: ExitReason, games: Sequence[Category] | None
    ) -> Announcement:
        return left_filter_announcement(stream, streamer, reason=exit_reason_text(reason, games))
