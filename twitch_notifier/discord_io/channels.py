"""Discord helpers shared by the announcer and the slash commands: what the bot needs in a channel,
channel problems in plain words, and ephemeral replies that never ping.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord

from database import Streamer
from twitch_api import TwitchUser

CHANNEL_DELETED = "the announcement channel was deleted; pick another with /setchannel or /addstreamer"
NO_MENTIONS = discord.AllowedMentions.none()
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


def streamer_from_user(user: TwitchUser) -> Streamer:
    return Streamer(
        twitch_user_id=user.id,
        login=user.login,
        display_name=user.display_name,
        profile_image_url=user.profile_image_url,
    )


async def reply(interaction: discord.Interaction, text: str | None = None, **kwargs: object) -> None:
    """Answer ephemerally, whether or not the interaction was already deferred."""
    kwargs.setdefault("allowed_mentions", NO_MENTIONS)
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, **kwargs)  # type: ignore[arg-type]
    else:
        await interaction.response.send_message(text, ephemeral=True, **kwargs)  # type: ignore[arg-type]


async def reply_pages(interaction: discord.Interaction, title: str, pages: Sequence[str]) -> None:
    for index, page in enumerate(pages):
        heading = title if len(pages) == 1 else f"{title} ({index + 1}/{len(pages)})"
        embed = discord.Embed(title=heading, description=page, colour=discord.Colour(0x9146FF))
        await reply(interaction, embed=embed)
