"""/stats streamer and /stats server: a followed streamer's stream history, or the server's streamers ranked,
with a chart. Everyone may use them; the answer is private unless `public` is set.

The numbers come from core.history over what database.py keeps; the chart is drawn by rendering.charts in a
worker thread (the event loop keeps serving the gateway and the poll meanwhile), one at a time, and kept an hour.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from datetime import datetime

import discord
from discord import app_commands
from discord.ext import commands

from database import Database
from twitch_notifier.cogs.context import services_of
from twitch_notifier.cogs.options import NOT_FOLLOWED, guild_of
from twitch_notifier.core.history import PERIODS, period_length, server_stats, streamer_stats
from twitch_notifier.discord_io.replies import NO_MENTIONS, reply
from twitch_notifier.models import JSON, Streamer
from twitch_notifier.rendering.charts import ChartCache, render_server_chart, render_streamer_chart
from twitch_notifier.rendering.invisible import strip_invisible
from twitch_notifier.rendering.limits import CHOICE_NAME_LIMIT, MAX_CHOICES
from twitch_notifier.rendering.statistics import (
    PERIOD_WORDS,
    chart_filename,
    no_history_text,
    server_stats_embed,
    streamer_stats_embed,
)
from twitch_notifier.twitch.errors import InvalidLogin
from twitch_notifier.twitch.logins import parse_login

__all__ = ["DEFAULT_PERIOD", "StatsCommands", "setup"]

_log = logging.getLogger(__name__)

DEFAULT_PERIOD = "30d"
PERIOD_CHOICES = [app_commands.Choice(name=PERIOD_WORDS[key], value=key) for key in PERIODS]
NOTHING_FOLLOWED = "No streamers are followed here yet. Add one with `/addstreamer`."
NO_CHART = "\n*(The chart could not be drawn just now; the numbers above are complete.)*"

Renderer = Callable[[], bytes]


@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
class StatsCommands(
    commands.GroupCog, group_name="stats", group_description="Stream history and statistics of this server's streamers"
):
    """The /stats group: streamer, server."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime], cache: ChartCache | None = None) -> None:
        self.db = db
        self.clock = clock
        self.charts = cache if cache is not None else ChartCache()
        self._drawing = asyncio.Lock()  # one chart at a time: each takes a core for a fraction of a second
        super().__init__()

    @app_commands.command(name="streamer", description="A followed streamer's streams: hours, viewers, categories")
    @app_commands.describe(
        streamer="A streamer this server follows",
        period="How far back to look (default: the last 30 days)",
        public="Post the answer in this channel for everyone (default: only you see it)",
    )
    @app_commands.choices(period=PERIOD_CHOICES)
    async def stats_streamer(
        self,
        interaction: discord.Interaction,
        streamer: str,
        period: app_commands.Choice[str] | None = None,
        public: bool = False,
    ) -> None:
        guild = guild_of(interaction)
        chosen = await self._followed(guild.id, streamer)
        if chosen is None:
            await reply(interaction, NOT_FOLLOWED)
            return
        name = period.value if period is not None else DEFAULT_PERIOD
        now = self.clock()
        length = period_length(name)
        # Read before deferring (milliseconds): with nothing to show, the answer stays private whatever `public`.
        histories = await self.db.streamer_history(chosen.twitch_user_id, now - length if length else None)
        if not histories:
            last = await self.db.last_stream_started(chosen.twitch_user_id)
            await reply(interaction, no_history_text(chosen, last, name))
            return
        await interaction.response.defer(ephemeral=not public, thinking=True)
        stats = streamer_stats(histories, now=now, period=name)
        filename = chart_filename("streamer", chosen.login, name)
        chart = await self._chart(
            ChartCache.key(f"streamer:{chosen.twitch_user_id}", name, now),
            lambda: render_streamer_chart(chosen.display_name or chosen.login, stats),
        )
        embed = streamer_stats_embed(chosen, stats, image=filename if chart is not None else None)
        await self._send(interaction, embed, chart, filename, public=public)

    @stats_streamer.autocomplete("streamer")
    async def _streamer_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        choices: dict[str, app_commands.Choice[str]] = {}
        for sub in await self.db.search_guild_subscriptions(interaction.guild_id, current, limit=50):
            found = sub.streamer
            shown = strip_invisible(found.display_name).strip() or found.login
            label = shown if shown.lower() == found.login else f"{shown} ({found.login})"
            # One choice per streamer, however many channels announce them.
            choices.setdefault(
                found.twitch_user_id, app_commands.Choice(name=label[:CHOICE_NAME_LIMIT], value=found.login)
            )
        return list(choices.values())[:MAX_CHOICES]

    @app_commands.command(name="server", description="This server's streamers ranked by hours live and peak viewers")
    @app_commands.describe(
        period="How far back to look (default: the last 30 days)",
        public="Post the answer in this channel for everyone (default: only you see it)",
    )
    @app_commands.choices(period=PERIOD_CHOICES)
    async def stats_server(
        self, interaction: discord.Interaction, period: app_commands.Choice[str] | None = None, public: bool = False
    ) -> None:
        guild = guild_of(interaction)
        name = period.value if period is not None else DEFAULT_PERIOD
        now = self.clock()
        length = period_length(name)
        streamers, histories = await self.db.guild_history(guild.id, now - length if length else None)
        if not streamers:
            await reply(interaction, NOTHING_FOLLOWED)
            return
        if not histories:
            everything = (await self.db.guild_history(guild.id, None))[1] if length else {}
            starts = [h.started_at for items in everything.values() for h in items]
            await reply(interaction, no_history_text(None, max(starts) if starts else None, name))
            return
        await interaction.response.defer(ephemeral=not public, thinking=True)
        stats = server_stats(histories, streamers, now=now, period=name)
        filename = chart_filename("server", str(guild.id), name)
        chart = await self._chart(
            ChartCache.key(f"server:{guild.id}", name, now), lambda: render_server_chart(guild.name, stats)
        )
        embed = server_stats_embed(guild.name, stats, image=filename if chart is not None else None)
        await self._send(interaction, embed, chart, filename, public=public)

    async def _followed(self, guild_id: int, text: str) -> Streamer | None:
        """The streamer this guild follows that `text` names: a login, display name or user id (what the
        autocomplete sends), or a channel URL."""
        found = await self.db.find_subscriptions(guild_id, text)
        if not found:
            try:
                login = parse_login(text)
            except InvalidLogin:
                return None
            found = await self.db.find_subscriptions(guild_id, login)
        return found[0].streamer if found else None

    async def _chart(self, key: tuple[str, str, str], draw: Renderer) -> bytes | None:
        """The chart for `key`: from the cache, or drawn in a worker thread; None if drawing failed."""
        cached = self.charts.get(key)
        if cached is not None:
            return cached
        async with self._drawing:
            cached = self.charts.peek(key)  # drawn by the ask this one waited for
            if cached is not None:
                return cached
            try:
                chart = await asyncio.to_thread(draw)
            except Exception:
                _log.exception("Could not draw the /stats chart %s", key)
                return None
            self.charts.put(key, chart)
            return chart

    @staticmethod
    async def _send(
        interaction: discord.Interaction, embed: JSON, chart: bytes | None, filename: str, *, public: bool
    ) -> None:
        answer = discord.Embed.from_dict(embed if chart else {**embed, "description": embed["description"] + NO_CHART})
        if chart is None:
            await interaction.followup.send(embed=answer, ephemeral=not public, allowed_mentions=NO_MENTIONS)
            return
        upload = discord.File(io.BytesIO(chart), filename=filename, description="stream statistics chart")
        await interaction.followup.send(embed=answer, file=upload, ephemeral=not public, allowed_mentions=NO_MENTIONS)


async def setup(bot: commands.Bot) -> None:
    services = services_of(bot)
    await bot.add_cog(StatsCommands(services.db, clock=services.clock))
