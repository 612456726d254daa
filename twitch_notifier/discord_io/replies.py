"""Answers to interactions: always ephemeral, never pinging, whether or not the interaction was deferred."""

from __future__ import annotations

from collections.abc import Sequence

import discord
from discord.utils import MISSING

from twitch_notifier.rendering.messages import TWITCH_PURPLE

__all__ = ["NO_MENTIONS", "reply", "reply_pages"]

NO_MENTIONS = discord.AllowedMentions.none()


async def reply(
    interaction: discord.Interaction,
    text: str | None = None,
    *,
    embed: discord.Embed | None = None,
    embeds: Sequence[discord.Embed] | None = None,
    allowed_mentions: discord.AllowedMentions = NO_MENTIONS,
) -> None:
    """Answer ephemerally, whether or not the interaction was already deferred."""
    if embed is not None and embeds is not None:
        raise ValueError("give embed or embeds, not both")
    many: Sequence[discord.Embed] = [embed] if embed is not None else (embeds or [])
    if interaction.response.is_done():
        await interaction.followup.send(
            text or MISSING, embeds=list(many) or MISSING, ephemeral=True, allowed_mentions=allowed_mentions
        )
    else:
        await interaction.response.send_message(
            text, embeds=list(many) or MISSING, ephemeral=True, allowed_mentions=allowed_mentions
        )


async def reply_pages(interaction: discord.Interaction, title: str, pages: Sequence[str]) -> None:
    for index, page in enumerate(pages):
        heading = title if len(pages) == 1 else f"{title} ({index + 1}/{len(pages)})"
        embed = discord.Embed(title=heading, description=page, colour=discord.Colour(TWITCH_PURPLE))
        await reply(interaction, embed=embed)
