"""Unit tests for tree.py: which answer each refused or failed command gets, and what is logged.

The channel cases are built the way discord.py 2.7 raises them (TransformerError from the TextChannel
transformer, with an AppCommandChannel or a bare Object as the value); the e2e twins are in
tests/e2e/test_bad_input.py.
"""

import logging
from types import SimpleNamespace

import discord
import pytest
from discord import app_commands
from discord.app_commands.transformers import BaseChannelTransformer

from twitch_notifier.discord_io.tree import SOMETHING_WENT_WRONG, error_text

GUILD_ID = 100
OTHER_GUILD_ID = 200
TEXT_CHANNEL = BaseChannelTransformer(discord.TextChannel)


def channel(channel_id: int, name: str, kind: discord.ChannelType, guild_id: int = GUILD_ID) -> SimpleNamespace:
    return SimpleNamespace(id=channel_id, name=name, type=kind, guild=SimpleNamespace(id=guild_id))


def interaction(*channels: SimpleNamespace, resolved: dict | None = None) -> SimpleNamespace:
    """An interaction in guild 100 whose cache holds `channels` (those of guild 100 in the guild)."""
    by_id = {c.id: c for c in channels}
    guild = SimpleNamespace(
        id=GUILD_ID, get_channel_or_thread=lambda i: c if (c := by_id.get(i)) and c.guild.id == GUILD_ID else None
    )
    return SimpleNamespace(
        command=SimpleNamespace(qualified_name="setchannel"),
        guild=guild,
        guild_id=GUILD_ID,
        data={"resolved": {"channels": resolved}} if resolved else {"options": []},
        client=SimpleNamespace(get_channel=by_id.get),
    )


def channel_error(channel_id: int, *, resolved: bool = True) -> app_commands.TransformerError:
    value = SimpleNamespace(id=channel_id, name="x") if resolved else discord.Object(channel_id)
    return app_commands.TransformerError(value, discord.AppCommandOptionType.channel, TEXT_CHANNEL)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (discord.ChannelType.voice, "#voice chat is a voice channel; pick a text channel for announcements."),
        (discord.ChannelType.stage_voice, "#voice chat is a stage channel; pick a text channel for announcements."),
        (discord.ChannelType.category, "#voice chat is a category; pick a text channel for announcements."),
        (discord.ChannelType.forum, "#voice chat is a forum channel; pick a text channel for announcements."),
        (discord.ChannelType.public_thread, "#voice chat is a thread; pick a text channel for announcements."),
    ],
)
def test_a_channel_of_the_wrong_kind_is_named(kind, expected, caplog):
    caplog.set_level(logging.INFO)
    inter = interaction(channel(1, "voice\u202e chat", kind))
    assert error_text(inter, channel_error(1)) == expected
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_markdown_in_a_channel_name_is_escaped():
    inter = interaction(channel(1, "**loud**", discord.ChannelType.voice))
    assert error_text(inter, channel_error(1)).startswith(r"#\*\*loud\*\* is a voice channel")


@pytest.mark.parametrize("resolved", [True, False])
def test_a_deleted_channel_no_longer_exists(resolved, caplog):
    text = error_text(interaction(), channel_error(1, resolved=resolved))
    assert text == "That channel no longer exists. Pick a text channel from the list for announcements."
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_text_channel_discord_did_not_resolve_is_gone_even_if_cached():
    inter = interaction(channel(1, "alerts", discord.ChannelType.text))
    assert error_text(inter, channel_error(1, resolved=False)).startswith("That channel no longer exists.")


def test_another_servers_channel_is_refused_by_the_cache_or_by_discords_guild_id():
    cached = interaction(channel(1, "elsewhere", discord.ChannelType.text, guild_id=OTHER_GUILD_ID))
    unknown = interaction(resolved={"2": {"id": "2", "type": 0, "guild_id": str(OTHER_GUILD_ID)}})
    expected = "That channel isn't in this server. Pick a text channel of this server for announcements."
    assert error_text(cached, channel_error(1)) == expected
    assert error_text(unknown, channel_error(2)) == expected


def test_other_errors_still_get_the_generic_answer_and_a_traceback(caplog):
    error = app_commands.TransformerError("x", discord.AppCommandOptionType.string, TEXT_CHANNEL)
    assert error_text(interaction(), error) == SOMETHING_WENT_WRONG
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "Command /setchannel failed"


def test_permission_refusals_are_unchanged():
    missing = app_commands.MissingPermissions(["manage_guild"])
    assert "Manage Server" in error_text(interaction(), missing)
    assert error_text(interaction(), app_commands.NoPrivateMessage()) == "This command only works in a server."
