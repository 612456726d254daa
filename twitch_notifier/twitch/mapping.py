"""Twitch's values as the bot's domain types: the one place a TwitchStream becomes a LiveStream."""

from __future__ import annotations

from twitch_notifier.models import Category, LiveStream, Streamer
from twitch_notifier.twitch.models import TwitchCategory, TwitchStream, TwitchUser

__all__ = ["category_from", "live_stream_from", "streamer_from_stream", "streamer_from_user"]


def live_stream_from(stream: TwitchStream) -> LiveStream:
    return LiveStream(
        twitch_user_id=stream.user_id,
        stream_id=stream.id,
        title=stream.title,
        game_name=stream.game_name,
        viewer_count=stream.viewer_count,
        started_at=stream.started_at,
        thumbnail_url=stream.thumbnail_url,
        game_id=stream.game_id,
        stream_type=stream.type or "live",
    )


def streamer_from_user(user: TwitchUser) -> Streamer:
    return Streamer(
        twitch_user_id=user.id,
        login=user.login,
        display_name=user.display_name,
        profile_image_url=user.profile_image_url,
    )


def streamer_from_stream(stream: TwitchStream) -> Streamer:
    """The names a stream reports (no avatar: /streams does not carry it)."""
    return Streamer(twitch_user_id=stream.user_id, login=stream.user_login, display_name=stream.user_name)


def category_from(game: TwitchCategory) -> Category:
    return Category(game.id, game.name, game.box_art_url)
