"""/streamers and /live: what this server follows, and who of them is live now. Everyone may use them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from database import Database
from twitch_api import TwitchClient
from twitch_notifier.cogs.context import services_of
from twitch_notifier.cogs.notify_button import notify_override_text, opt_in_warnings
from twitch_notifier.cogs.options import guild_of
from twitch_notifier.core.notifier import PUSH_LISTING_GRACE
from twitch_notifier.discord_io.channels import CHANNEL_DELETED, channel_problem
from twitch_notifier.discord_io.replies import reply, reply_pages
from twitch_notifier.models import GuildStreamer
from twitch_notifier.rendering.filter_cards import title_filter_summary
from twitch_notifier.rendering.limits import EMBED_DESCRIPTION_LIMIT
from twitch_notifier.rendering.messages import (
    live_line,
    next_broadcast_text,
    overrides_summary,
    paginate,
    push_note,
    streamer_line,
)
from twitch_notifier.twitch.errors import TwitchError
from twitch_notifier.twitch.mapping import live_stream_from

__all__ = ["ListingCommands", "setup"]

_log = logging.getLogger(__name__)

PAGE_LIMIT = EMBED_DESCRIPTION_LIMIT - 96
"""One page of a list: an embed description, with room to spare for a note."""

NOTHING_FOLLOWED = "No streamers are followed here yet. Add one with `/addstreamer`."
UNREADABLE_FILTER = (
    "its game filter can't be read, so nothing is announced for it: set it again with "
    "`/editstreamer games:` (or `games: any`)"
)


UNREADABLE_TITLE_FILTER = (
    "its title filter can't be read, so nothing is announced for it: set it again with `/editstreamer` "
    "(`include_words`, `exclude_words`, `title_regex`)"
)


def streamer_problem(guild: discord.Guild, row: GuildStreamer) -> tuple[str, str | None]:
    """The channel mention of one entry and what is wrong with it, if anything, in plain words."""
    sub = row.subscription
    channel = guild.get_channel(sub.channel_id)
    if isinstance(channel, discord.TextChannel):
        mention = channel.mention
        problem = channel_problem(channel) or (
            f"last announcement failed: {sub.last_error}" if sub.last_error else None
        )
    else:
        mention, problem = "a deleted channel", CHANNEL_DELETED
    if sub.title_filter_unreadable:
        problem = f"{problem}\n  \N{WARNING SIGN} {UNREADABLE_TITLE_FILTER}" if problem else UNREADABLE_TITLE_FILTER
    if sub.games_unreadable:
        # A corrupt filter fails closed (nothing announced): say so, or the silence looks like a bug.
        problem = f"{problem}\n  \N{WARNING SIGN} {UNREADABLE_FILTER}" if problem else UNREADABLE_FILTER
    if sub.missing_since:
        twitch_problem = (
            f"Twitch no longer returns this account (since {sub.missing_since.date().isoformat()}): "
            "banned, deleted, or renamed and re-used"
        )
        problem = f"{problem}\n  \N{WARNING SIGN} {twitch_problem}" if problem else twitch_problem
    return mention, problem


class ListingCommands(commands.Cog):
    """/streamers and /live."""

    def __init__(
        self,
        db: Database,
        twitch: TwitchClient,
        *,
        push_enabled: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.twitch = twitch
        self.push_enabled = push_enabled
        self.clock = clock

    @app_commands.command(name="streamers", description="List the Twitch streamers this server follows")
    @app_commands.guild_only()
    async def streamers(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        rows = await self.db.guild_streamers(guild.id)
        if not rows:
            await reply(interaction, NOTHING_FOLLOWED)
            return
        settings = await self.db.get_guild_settings(guild.id)
        upcoming = (
            await self.db.next_broadcasts({row.subscription.streamer.twitch_user_id for row in rows}, self.clock())
            if settings.schedule_events
            else {}
        )
        lines = []
        for row in rows:
            sub = row.subscription
            mention, problem = streamer_problem(guild, row)
            games = [g.name for g in sub.games] if sub.games is not None and not sub.games_unreadable else None
            overrides = overrides_summary(sub.ping, sub.message_template, games)
            if title_filter := title_filter_summary(sub.title_filter):
                overrides = f"{overrides} · {title_filter}" if overrides else title_filter
            if notify := notify_override_text(sub.notify_button):
                overrides = f"{overrides} · {notify}" if overrides else notify
            note = push_note(sub.push_state) if self.push_enabled else None
            broadcast = upcoming.get(sub.streamer.twitch_user_id)
            shown_next = next_broadcast_text(broadcast) if broadcast is not None and row.live is None else None
            lines.append(streamer_line(sub.streamer, mention, row.live, problem, overrides, note, shown_next))
        if settings.live_events and settings.events_error:
            # A guild-wide problem: first, so that it is seen on the first page.
            lines.insert(0, f"\N{WARNING SIGN} Live events: {settings.events_error}")
        lines[:0] = await opt_in_warnings(self.db, guild, settings, [row.subscription for row in rows])
        live_count = len({row.subscription.streamer.twitch_user_id for row in rows if row.live})
        title = f"Followed streamers: {len(rows)} ({live_count} live)"
        await reply_pages(interaction, title, paginate(lines, PAGE_LIMIT))

    @app_commands.command(name="live", description="Show which of this server's streamers are live now")
    @app_commands.guild_only()
    async def live(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        rows = await self.db.guild_streamers(guild.id)
        if not rows:
            await reply(interaction, NOTHING_FOLLOWED)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        streamers = {row.subscription.streamer.twitch_user_id: row.subscription.streamer for row in rows}
        channels: dict[str, list[int]] = {}
        for row in rows:
            channels.setdefault(row.subscription.streamer.twitch_user_id, []).append(row.subscription.channel_id)
        note = ""
        live = list({row.live.twitch_user_id: row.live for row in rows if row.live is not None}.values())
        try:
            snapshot = await self.twitch.get_streams(streamers)
        except TwitchError as exc:
            _log.warning("/live could not ask Twitch: %s", exc)
            snapshot = None
        if snapshot is None or snapshot.failed:
            note = "\n\n*Twitch didn't answer just now; this is the state from the last check.*"
        else:
            listed = {s.twitch_user_id: s for s in map(live_stream_from, snapshot.streams.values())}
            if self.push_enabled:
                # Twitch's listing lags a go-live by a minute: a stream push reported that recently is live.
                recent = discord.utils.utcnow() - PUSH_LISTING_GRACE
                listed.update(
                    {s.twitch_user_id: s for s in live if s.twitch_user_id not in listed and s.started_at > recent}
                )
            live = list(listed.values())
        if not live:
            await reply(interaction, "None of this server's streamers are live right now." + note)
            return
        live.sort(key=lambda s: s.viewer_count, reverse=True)
        lines = [
            live_line(
                streamers[s.twitch_user_id],
                s,
                where=" ".join(f"<#{c}>" for c in dict.fromkeys(channels[s.twitch_user_id])),
            )
            for s in live
            if s.twitch_user_id in streamers
        ]
        pages = paginate(lines, PAGE_LIMIT - len(note))
        pages[-1] += note
        await reply_pages(interaction, f"Live now: {len(lines)}", pages)


async def setup(bot: commands.Bot) -> None:
    services = services_of(bot)
    await bot.add_cog(
        ListingCommands(services.db, services.twitch, push_enabled=services.push_enabled, clock=services.clock)
    )
