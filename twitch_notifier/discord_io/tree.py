"""The bot's command tree: one place that turns a failed or refused command into a friendly answer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import discord
from discord import app_commands

from twitch_notifier.discord_io.replies import reply
from twitch_notifier.rendering.invisible import strip_invisible

__all__ = ["NotifierCommandTree", "channel_option_text", "error_text"]

_log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = "Something went wrong on my side. Please try again in a moment."
CHANNEL_GONE = "That channel no longer exists. Pick {needed} from the list for announcements."
CHANNEL_ELSEWHERE = "That channel isn't in this server. Pick {needed} of this server for announcements."
CHANNEL_WRONG_KIND = "#{name} is {kind}; pick {needed} for announcements."

# Each kind as the admin knows it from Discord's channel list ("Announcement" is what Discord calls news).
CHANNEL_KINDS = {
    discord.ChannelType.text: "a text channel",
    discord.ChannelType.news: "an announcement channel",
    discord.ChannelType.voice: "a voice channel",
    discord.ChannelType.stage_voice: "a stage channel",
    discord.ChannelType.category: "a category",
    discord.ChannelType.forum: "a forum channel",
    discord.ChannelType.media: "a media channel",
    discord.ChannelType.news_thread: "a thread",
    discord.ChannelType.public_thread: "a thread",
    discord.ChannelType.private_thread: "a thread",
}


def error_text(interaction: discord.Interaction, error: app_commands.AppCommandError) -> str:
    """What to tell the user; an unexpected error is logged with its traceback."""
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the **Manage Server** permission to use this command."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
    if isinstance(error, app_commands.TransformerError) and error.type is discord.AppCommandOptionType.channel:
        return channel_option_text(interaction, error)
    original = getattr(error, "original", error)
    command = interaction.command.qualified_name if interaction.command else "?"
    _log.error("Command /%s failed", command, exc_info=original)
    return SOMETHING_WENT_WRONG


def channel_option_text(interaction: discord.Interaction, error: app_commands.TransformerError) -> str:
    """Why the channel an admin gave is refused, before the command ran (so nothing was stored).

    discord.py raises TransformerError for a channel option whenever the id, looked up in its cache of the
    interaction's guild, is not a channel of the annotated type (`discord.TextChannel` here): a voice channel
    or a category typed past Discord's picker, a channel deleted before the interaction arrived (resolved by
    Discord but gone from the cache, or not resolved at all, when the value is a bare `discord.Object`), or
    another server's channel (discord.py looks every resolved channel up in the interaction's guild).
    """
    value = error.value
    channel_id: int | None = getattr(value, "id", None)
    needed = _needed_kind(error.transformer)
    command = interaction.command.qualified_name if interaction.command else "?"
    guild = interaction.guild
    home = _home_guild_id(interaction, channel_id)
    found = guild.get_channel_or_thread(channel_id) if guild is not None and channel_id is not None else None
    if home is not None and home != interaction.guild_id:
        why, text = "in another server", CHANNEL_ELSEWHERE.format(needed=needed)
    elif found is None or found.type in error.transformer.channel_types:
        # Of the right kind yet refused: Discord did not resolve it, so it is gone even if the cache lags.
        why, text = "gone", CHANNEL_GONE.format(needed=needed)
    else:
        kind = CHANNEL_KINDS.get(found.type, "not a channel I can announce in")
        name = discord.utils.escape_markdown(strip_invisible(found.name))
        why, text = str(found.type), CHANNEL_WRONG_KIND.format(name=name, kind=kind, needed=needed)
    # An admin's choice refused, not a fault of the bot: no traceback, one line for whoever reads the log.
    _log.info("/%s refused channel option %s: %s", command, channel_id, why)
    return text


def _needed_kind(transformer: app_commands.Transformer[Any]) -> str:
    # The annotation's channel types, as discord.py also sends them to Discord (`channel_types`):
    # discord.TextChannel is [text, news], "a text channel" in Discord's words.
    types = transformer.channel_types
    return CHANNEL_KINDS.get(types[0], "another channel") if types else "another channel"


def _home_guild_id(interaction: discord.Interaction, channel_id: int | None) -> int | None:
    """The guild the channel belongs to, as far as Discord's resolved data or the bot's cache tell."""
    if channel_id is None:
        return None
    # discord.py drops the `guild_id` of a resolved channel (it assumes the interaction's guild), so read the
    # raw payload; Discord documents guild_id among a resolved partial channel's fields.
    data = cast("Mapping[str, Any]", interaction.data or {})
    resolved = (data.get("resolved") or {}).get("channels", {}).get(str(channel_id), {})
    if raw := resolved.get("guild_id"):
        return int(raw)
    cached = interaction.client.get_channel(channel_id)
    guild = getattr(cached, "guild", None)
    return guild.id if guild is not None else None


class NotifierCommandTree(app_commands.CommandTree):
    """A CommandTree whose on_error answers the user ephemerally instead of only logging."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        text = error_text(interaction, error)
        try:
            await reply(interaction, text)
        except discord.HTTPException:
            _log.warning("Could not report a command error to the user", exc_info=True)
