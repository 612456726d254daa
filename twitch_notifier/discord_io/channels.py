"""What the bot needs in an announcement channel, and what is wrong with one, in Discord's words."""

from __future__ import annotations

import discord

__all__ = ["CHANNEL_DELETED", "REQUIRED_CHANNEL_PERMISSIONS", "channel_problem", "missing_channel_permissions"]

CHANNEL_DELETED = "the announcement channel was deleted; pick another with /setchannel or /addstreamer"
# What the bot needs in an announcement channel, with the names Discord's UI shows.
REQUIRED_CHANNEL_PERMISSIONS = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
}


def missing_channel_permissions(channel: discord.abc.GuildChannel) -> list[str]:
    """The permissions the bot lacks in `channel` to post an announcement, in Discord's words."""
    permissions = channel.permissions_for(channel.guild.me)
    return [label for name, label in REQUIRED_CHANNEL_PERMISSIONS.items() if not getattr(permissions, name)]


def channel_problem(channel: discord.abc.GuildChannel) -> str | None:
    missing = missing_channel_permissions(channel)
    if missing:
        return f"can't post in #{channel.name}: missing {', '.join(missing)}"
    return None
