"""What several cogs share: the guild of an interaction, the Manage Server check, parsing of ping options,
the announcement-channel check, and the autocomplete answers for streamers, pings and categories."""

from __future__ import annotations

import logging
from collections import Counter

import discord
from discord import app_commands

from database import Database
from twitch_api import TwitchClient
from twitch_notifier.core.subscriptions import ChannelCheck, ChannelStatus
from twitch_notifier.discord_io.channels import channel_problem
from twitch_notifier.rendering.invisible import strip_invisible
from twitch_notifier.rendering.limits import CHOICE_NAME_LIMIT, CHOICE_VALUE_LIMIT, MAX_CHOICES
from twitch_notifier.rendering.pings import PingChoice, parse_ping
from twitch_notifier.rendering.templates import TemplateError
from twitch_notifier.twitch.errors import TwitchError

__all__ = [
    "CANT_SEE_CHANNEL",
    "NOT_FOLLOWED",
    "TWITCH_UNREACHABLE",
    "announcement_channel",
    "channel_check",
    "escaped",
    "games_choices",
    "guild_of",
    "is_default",
    "manage_guild_only",
    "parse_ping_option",
    "ping_choices",
    "ping_warning",
    "subscription_choices",
]

_log = logging.getLogger(__name__)

manage_guild_only = app_commands.checks.has_permissions(manage_guild=True)

NOT_FOLLOWED = "That streamer isn't followed here. `/streamers` shows the list."
CANT_SEE_CHANNEL = "I can't see that channel. Pick a text channel I have access to."
TWITCH_UNREACHABLE = "Twitch is not answering just now. Please try again in a minute."


def guild_of(interaction: discord.Interaction) -> discord.Guild:
    # Every command is guild-only; Discord enforces it and this keeps the type checker and DMs honest.
    if interaction.guild is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild


def escaped(text: str) -> str:
    """Text from Twitch (or typed by an admin) shown literally in a reply: nothing invisible, no markdown."""
    return discord.utils.escape_markdown(strip_invisible(text))


def is_default(text: str) -> bool:
    """`default`, `server` or `reset`: the option goes back to the server's setting."""
    return text.strip().lower() in ("default", "server", "reset")


def parse_ping_option(guild: discord.Guild, text: str) -> PingChoice:
    choice = parse_ping(text, everyone_role_id=guild.id)
    if choice.role_id is not None and guild.get_role(choice.role_id) is None:
        raise TemplateError("I can't find that role in this server. Pick one from the list.")
    return choice


def ping_warning(guild: discord.Guild, choice: PingChoice) -> str:
    """Why a configured ping would not notify anyone, if it would not."""
    me = guild.me
    can_mention_all = me is not None and me.guild_permissions.mention_everyone
    if choice.value in ("everyone", "here") and not can_mention_all:
        return (
            f"\n\N{WARNING SIGN} I lack **Mention @everyone, @here, and All Roles**, so Discord won't notify "
            f"anyone for @{choice.value}."
        )
    role = guild.get_role(choice.role_id) if choice.role_id else None
    if role is not None and not role.mentionable and not can_mention_all:
        return (
            f"\n\N{WARNING SIGN} {role.mention} isn't mentionable and I lack **Mention @everyone, @here, and "
            "All Roles**, so Discord won't notify its members."
        )
    return ""


def announcement_channel(
    guild: discord.Guild, channel_id: int, *, missing: str = CANT_SEE_CHANNEL
) -> tuple[discord.TextChannel | None, str]:
    """The text channel to announce in, or None and the reason to give the admin (`missing` if it is gone)."""
    target = guild.get_channel(channel_id)
    if not isinstance(target, discord.TextChannel):
        return None, missing
    if problem := channel_problem(target):
        return None, unusable_channel_text(problem)
    return target, ""


def unusable_channel_text(problem: str) -> str:
    return f"I {problem}. Give me those permissions there, or pick another channel."


def channel_check(guild: discord.Guild) -> ChannelCheck:
    """The core's ChannelCheck, answered from this guild in Discord's cache."""

    def check(channel_id: int) -> ChannelStatus:
        channel = guild.get_channel(channel_id)
        if not isinstance(channel, discord.TextChannel):
            return ChannelStatus(exists=False)
        return ChannelStatus(exists=True, problem=channel_problem(channel))

    return check


async def subscription_choices(
    db: Database, interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    if interaction.guild_id is None:
        return []
    subs = await db.search_guild_subscriptions(interaction.guild_id, current)
    counts = Counter(sub.streamer.twitch_user_id for sub in subs)
    guild = interaction.guild
    choices = []
    for sub in subs:
        s = sub.streamer
        shown = strip_invisible(s.display_name).strip() or s.login
        name = shown if shown.lower() == s.login else f"{shown} ({s.login})"
        if counts[s.twitch_user_id] > 1:
            channel = guild.get_channel(sub.channel_id) if guild else None
            name += f" → #{channel.name}" if channel else " → a deleted channel"
        choices.append(app_commands.Choice(name=name[:CHOICE_NAME_LIMIT], value=f"sub:{sub.id}"))
    return choices


def ping_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    typed = current.strip().lstrip("@").lower()
    options = [("none (no ping)", "none"), ("@everyone", "everyone"), ("@here", "here")]
    if interaction.command is not None and interaction.command.name == "editstreamer":
        options.insert(0, ("the server's setting", "default"))
    guild = interaction.guild
    if guild is not None:
        roles = sorted((r for r in guild.roles if not r.is_default() and not r.managed), key=lambda r: -r.position)
        options += [(f"@{role.name}", str(role.id)) for role in roles]
    matching = [(name, value) for name, value in options if typed in name.lower()]
    return [app_commands.Choice(name=name[:CHOICE_NAME_LIMIT], value=value) for name, value in matching][:MAX_CHOICES]


async def games_choices(twitch: TwitchClient, current: str) -> list[app_commands.Choice[str]]:
    *done, typing = [part.strip() for part in current.split(",")]
    done = [part for part in done if part]
    if not typing.strip():
        return []
    try:
        hits = await twitch.search_categories(typing, first=10)
    except TwitchError as exc:
        _log.warning("Category search for autocomplete failed: %s", exc)
        return []
    choices = []
    for hit in hits:
        value = ", ".join([*done, hit.name])
        if len(value) <= CHOICE_VALUE_LIMIT:
            choices.append(app_commands.Choice(name=value, value=value))
    return choices
