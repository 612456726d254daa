"""The bot's command tree: one place that turns a failed or refused command into a friendly answer."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from twitch_notifier.discord_io.replies import reply

__all__ = ["NotifierCommandTree", "error_text"]

_log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = "Something went wrong on my side. Please try again in a moment."


def error_text(interaction: discord.Interaction, error: app_commands.AppCommandError) -> str:
    """What to tell the user; an unexpected error is logged with its traceback."""
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the **Manage Server** permission to use this command."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
    original = getattr(error, "original", error)
    command = interaction.command.qualified_name if interaction.command else "?"
    _log.error("Command /%s failed", command, exc_info=original)
    return SOMETHING_WENT_WRONG


class NotifierCommandTree(app_commands.CommandTree):
    """A CommandTree whose on_error answers the user ephemerally instead of only logging."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        text = error_text(interaction, error)
        try:
            await reply(interaction, text)
        except discord.HTTPException:
            _log.warning("Could not report a command error to the user", exc_info=True)
