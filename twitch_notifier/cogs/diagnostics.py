"""/testalert and /diagnose: see an entry's announcement before a stream does (posted as a test that pings nobody),
and what stands between each entry and its announcements (permissions, ping, last post and failure).

Manage Server only; both answer privately.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from database import Database
from twitch_notifier.cogs.context import services_of
from twitch_notifier.cogs.notify_button import button_on
from twitch_notifier.cogs.options import escaped, guild_of, manage_guild_only, subscription_choices
from twitch_notifier.cogs.streamers import target_problem
from twitch_notifier.core.opt_in import throttle_ends
from twitch_notifier.core.subscriptions import SubscriptionRules
from twitch_notifier.discord_io.announcer import allowed_mentions_from, link_view
from twitch_notifier.discord_io.channels import REQUIRED_CHANNEL_PERMISSIONS, missing_channel_permissions
from twitch_notifier.discord_io.events import EVENTS_PERMISSION, can_create_events
from twitch_notifier.discord_io.opt_in_roles import opt_in_block
from twitch_notifier.discord_io.replies import reply, reply_pages
from twitch_notifier.models import GuildSettings, LastAnnouncement, LiveStream, Subscription
from twitch_notifier.rendering.diagnosis import (
    MENTION_EVERYONE_LABEL,
    TEST_MARK,
    ChannelDiagnosis,
    EntryDiagnosis,
    alert_preview,
    channel_line,
    entry_line,
    throttle_note,
)
from twitch_notifier.rendering.limits import EMBED_DESCRIPTION_LIMIT
from twitch_notifier.rendering.messages import NOTIFY_LABEL, escape, paginate

__all__ = ["Diagnostics", "diagnose_channel", "entry_ping", "ping_problem", "setup"]

_log = logging.getLogger(__name__)

PAGE_LIMIT = EMBED_DESCRIPTION_LIMIT - 96
SAMPLE_TITLE = "A sample stream title (this streamer has no stream on record yet)"
SAMPLE_GAME = "Just Chatting"
_POST = ("view_channel", "send_messages")
_EMBED = ("embed_links",)


def diagnose_channel(guild: discord.Guild, channel_id: int, settings: GuildSettings) -> ChannelDiagnosis:
    """What the bot may do in one channel, from Discord's cache."""
    channel = guild.get_channel(channel_id)
    if not isinstance(channel, discord.TextChannel):
        return ChannelDiagnosis(channel_id, exists=False)
    missing = set(missing_channel_permissions(channel))
    labels = REQUIRED_CHANNEL_PERMISSIONS
    return ChannelDiagnosis(
        channel_id,
        cannot_post=tuple(labels[name] for name in _POST if labels[name] in missing),
        cannot_embed=tuple(labels[name] for name in _EMBED if labels[name] in missing),
        news=channel.is_news(),
        publish_wanted=settings.publish,
    )


def ping_problem(guild: discord.Guild, channel_id: int, ping: str) -> str | None:
    """Why Discord would not deliver the ping `ping` (stored form) in that channel, naming what is missing."""
    channel = guild.get_channel(channel_id)
    me = guild.me
    if not ping or not isinstance(channel, discord.TextChannel) or me is None:
        return None
    can_mention_all = channel.permissions_for(me).mention_everyone
    if ping in ("everyone", "here"):
        return None if can_mention_all else f"missing **{MENTION_EVERYONE_LABEL}**"
    role = guild.get_role(int(ping)) if ping.isdigit() else None
    if role is None:
        return "the role no longer exists: pick another ping"
    if role.mentionable or can_mention_all:
        return None
    return f"@{escaped(role.name)} isn't mentionable and I lack **{MENTION_EVERYONE_LABEL}**"


def events_line(guild: discord.Guild, settings: GuildSettings) -> str:
    """Whether the bot may create the server's live events (a server-wide permission), and whether they are on."""
    state = "live events on" if settings.live_events else "live events off"
    if can_create_events(guild):
        return f"create events \N{WHITE HEAVY CHECK MARK} ({state})"
    return f"create events \N{CROSS MARK} missing **{EVENTS_PERMISSION}** ({state})"


def entry_ping(guild: discord.Guild, sub: Subscription, settings: GuildSettings, opt_in_role_id: int | None) -> str:
    """Whom a real announcement of the entry pings (stored form, "" nobody): with the Notify me button on, its
    opt-in role instead of the configured ping (nobody while no role exists: nobody has opted in yet)."""
    if button_on(sub, settings):
        role = guild.get_role(opt_in_role_id) if opt_in_role_id is not None else None
        return str(role.id) if role is not None else ""
    return sub.ping if sub.ping is not None else (settings.ping or "")


def _ping_described(guild: discord.Guild, ping: str, notify_button: bool) -> str:
    """Whom a real announcement would ping, for the test alert and its reply: words that ping nobody."""
    if ping:
        opted_in = f", the members who opted in with {NOTIFY_LABEL}" if notify_button else ""
        return f"a real one would ping {escape(ping_text(guild, ping))}{opted_in}"
    if notify_button:
        return f"a real one would ping the members who opt in with {NOTIFY_LABEL} (none yet)"
    return "nobody is pinged"


def ping_text(guild: discord.Guild, ping: str | None) -> str:
    """The ping as plain words (a role by its name), to be shown through rendering's escape(): pings nobody."""
    if not ping:
        return "none"
    if ping in ("everyone", "here"):
        return f"@{ping}"
    role = guild.get_role(int(ping)) if ping.isdigit() else None
    return f"@{role.name}" if role is not None else "a deleted role"


class Diagnostics(commands.Cog):
    """/testalert and /diagnose."""

    def __init__(
        self, db: Database, rules: SubscriptionRules, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.db = db
        self.rules = rules
        self.clock = clock

    @app_commands.command(name="testalert", description="Post a test of a streamer's announcement (pings nobody)")
    @app_commands.describe(streamer="A streamer this server follows")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def testalert(self, interaction: discord.Interaction, streamer: str) -> None:
        guild = guild_of(interaction)
        target = await self.rules.find(guild.id, streamer)
        sub = target.subscription
        if sub is None:
            await reply(interaction, target_problem(target))
            return
        channel = guild.get_channel(sub.channel_id)
        if not isinstance(channel, discord.TextChannel):
            await reply(interaction, "That entry's channel no longer exists. Move it with `/editstreamer channel:`.")
            return
        if missing := missing_channel_permissions(channel):
            await reply(interaction, f"I can't post in {channel.mention}: I'm missing **{', '.join(missing)}** there.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        settings = await self.db.get_guild_settings(guild.id)
        notify_button = button_on(sub, settings)
        role_id = (await self.db.notify_roles(guild.id)).get(sub.streamer.twitch_user_id) if notify_button else None
        ping = entry_ping(guild, sub, settings, role_id)
        described = _ping_described(guild, ping, notify_button)
        held_until = None
        if ping and settings.ping_throttle_hours:
            last_ping = (await self.db.last_pings(guild.id)).get(sub.streamer.twitch_user_id)
            held_until = throttle_ends(last_ping, settings.ping_throttle_hours, self.clock())
        template = sub.message_template if sub.message_template is not None else settings.message_template
        stream = await self._stream_for(sub)
        # The button as on a real card: a press toggles the opt-in role the same way (same custom id).
        message = alert_preview(
            stream,
            sub.streamer,
            template=template,
            notify_button=notify_button,
            ping_described=f"pinging nobody ({described})",
        )
        try:
            posted = await channel.send(
                content=message.content,
                embed=discord.Embed.from_dict(message.embed),
                view=link_view(message.components),
                allowed_mentions=allowed_mentions_from(message.allowed_mentions),
            )
        except discord.Forbidden as exc:
            await reply(
                interaction,
                f"Discord refused the test in {channel.mention}: {escaped(exc.text or 'Missing Permissions')}. "
                "I need **View Channel, Send Messages and Embed Links** there.",
            )
            return
        except discord.HTTPException as exc:
            _log.warning("A test alert in channel %s failed: %s", channel.id, exc)
            await reply(interaction, f"Discord didn't take the test just now ({exc.status}). Please try again.")
            return
        name = escaped(sub.streamer.display_name)
        await reply(
            interaction,
            f"{TEST_MARK} for **{name}** posted in {channel.mention}: {posted.jump_url}\n"
            f"It pinged nobody; {described}."
            + (f"\n{throttle_note(held_until)} (the ping throttle)." if held_until is not None else ""),
        )

    @testalert.autocomplete("streamer")
    async def _testalert_streamer(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await subscription_choices(self.db, interaction, current)

    async def _stream_for(self, sub: Subscription) -> LiveStream:
        """The streamer's stream now, else the last one announced for this entry, else a plausible sample."""
        live = (await self.db.live_streams()).get(sub.streamer.twitch_user_id)
        if live is not None:
            return live
        last = (await self.db.last_announcements(sub.guild_id)).get(sub.id)
        return LiveStream(
            twitch_user_id=sub.streamer.twitch_user_id,
            stream_id="test",
            title=(last.title if last and last.title else SAMPLE_TITLE),
            game_name=(last.game_name if last and last.game_name else SAMPLE_GAME),
            viewer_count=0,
            started_at=datetime.now(UTC),
            thumbnail_url="",
        )

    @app_commands.command(name="diagnose", description="Check what could keep each entry from being announced")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def diagnose(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        subs = await self.db.guild_subscriptions(guild.id)
        if not subs:
            await reply(interaction, "No streamers are followed here yet. Add one with `/addstreamer`.")
            return
        settings = await self.db.get_guild_settings(guild.id)
        last = await self.db.last_announcements(guild.id)
        roles = await self.db.notify_roles(guild.id) if any(button_on(sub, settings) for sub in subs) else {}
        pings = await self.db.last_pings(guild.id) if settings.ping_throttle_hours else {}
        now = self.clock()
        lines = [f"Server-wide: {events_line(guild, settings)}"]
        for channel_id, entries in _by_channel(subs).items():
            lines.append(channel_line(diagnose_channel(guild, channel_id, settings)))
            lines.extend(
                entry_line(
                    guild.id,
                    self._entry(
                        guild,
                        sub,
                        settings,
                        last.get(sub.id),
                        roles.get(sub.streamer.twitch_user_id),
                        throttle_ends(pings.get(sub.streamer.twitch_user_id), settings.ping_throttle_hours, now),
                    ),
                )
                for sub in entries
            )
        await reply_pages(interaction, f"Diagnosis: {len(subs)} entries", paginate(lines, PAGE_LIMIT))

    @staticmethod
    def _entry(
        guild: discord.Guild,
        sub: Subscription,
        settings: GuildSettings,
        last: LastAnnouncement | None,
        opt_in_role_id: int | None = None,
        pings_held_until: datetime | None = None,
    ) -> EntryDiagnosis:
        notify_button = button_on(sub, settings)
        ping = entry_ping(guild, sub, settings, opt_in_role_id)
        block = opt_in_block(guild, opt_in_role_id) if notify_button else None
        return EntryDiagnosis(
            subscription_id=sub.id,
            streamer=sub.streamer,
            channel_id=sub.channel_id,
            ping=ping_text(guild, ping) if ping or not notify_button else "nobody until a member opts in",
            ping_problem=ping_problem(guild, sub.channel_id, ping),
            last=last,
            last_failure=sub.last_failure,
            last_failure_at=sub.last_failure_at,
            current_error=sub.last_error,
            notify_button=notify_button,
            opt_in_missing=(block.missing,) if block is not None and block.missing else (),
            opt_in_role_above=block.role_above.name if block is not None and block.role_above else None,
            pings_held_until=pings_held_until if ping else None,  # nobody to ping: nothing is held back
        )


def _by_channel(subs: list[Subscription]) -> dict[int, list[Subscription]]:
    grouped: dict[int, list[Subscription]] = {}
    for sub in subs:
        grouped.setdefault(sub.channel_id, []).append(sub)
    return grouped


async def setup(bot: commands.Bot) -> None:
    services = services_of(bot)
    await bot.add_cog(Diagnostics(services.db, services.rules, clock=services.clock))
