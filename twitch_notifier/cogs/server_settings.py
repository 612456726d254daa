"""The server's own settings: /setchannel (the default announcement channel) and the /settings group
(show, set, reset: ping, message template, what happens to a card at the end, live updates).

Manage Server only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from database import Database
from twitch_notifier.cogs.context import services_of
from twitch_notifier.cogs.notify_button import (
    MAX_THROTTLE_HOURS,
    NOTIFY_SETTING,
    OPT_IN_SETTINGS,
    notify_value,
    opt_in_changes,
    throttle_value,
)
from twitch_notifier.cogs.options import (
    announcement_channel,
    guild_of,
    manage_guild_only,
    parse_ping_option,
    ping_choices,
    ping_warning,
)
from twitch_notifier.core.grace import MAX_GRACE_SECONDS
from twitch_notifier.discord_io.events import MISSING_EVENTS_PERMISSION, can_create_events
from twitch_notifier.discord_io.replies import reply
from twitch_notifier.models import EndAction, GuildSettings, LiveStream, Streamer
from twitch_notifier.rendering.filter_cards import FILTER_EXIT_LABELS, grace_text
from twitch_notifier.rendering.limits import EMBED_FIELD_VALUE_LIMIT
from twitch_notifier.rendering.messages import TWITCH_PURPLE, announcement_content
from twitch_notifier.rendering.pings import describe_ping
from twitch_notifier.rendering.templates import DEFAULT_TEMPLATE, TemplateError, validate_template

__all__ = ["AnnouncementChannel", "ServerSettings", "setup"]

END_ACTION_LABELS = {
    EndAction.EDIT: "edit the card into a “was live” card (with the VOD link)",
    EndAction.DELETE: "delete the announcement",
    EndAction.KEEP: "keep the announcement as it is",
}
SAMPLE_STREAM = LiveStream(
    twitch_user_id="0",
    stream_id="0",
    title="Ranked with viewers!",
    game_name="VALORANT",
    viewer_count=1234,
    started_at=datetime(2026, 1, 1, tzinfo=UTC),
    thumbnail_url="",
)
SAMPLE_STREAMER = Streamer("0", "example_streamer", "Example_Streamer")
RESETTABLE: tuple[str, ...] = (
    "ping",
    "message_template",
    "end_action",
    "live_updates",
    "live_events",
    "schedule_events",
    "publish",
    "filter_exit",
    "restart_grace_seconds",
)
PUBLISH_LABEL = "Publish in announcement channels"


LIVE_EVENTS_LABEL = "Live events"
SCHEDULE_EVENTS_LABEL = "Twitch schedules"


def live_events_value(settings: GuildSettings) -> str:
    if not settings.live_events:
        return "off"
    if settings.events_error:
        return f"on, but \N{WARNING SIGN} {settings.events_error}"
    return "on (a server event for each live stream)"


def schedule_events_value(settings: GuildSettings) -> str:
    if not settings.schedule_events:
        return "off"
    if settings.events_error:
        return f"on, but \N{WARNING SIGN} {settings.events_error}"
    return "on (each streamer's next broadcasts as upcoming server events, read hourly)"


def live_events_warning(guild: discord.Guild) -> str:
    """What to grant for live events, when the bot lacks it."""
    return "" if can_create_events(guild) else f"\n\N{WARNING SIGN} {MISSING_EVENTS_PERMISSION}."


def filter_and_grace_changes(
    on_filter_exit: app_commands.Choice[str] | None, restart_grace: int | None
) -> dict[str, object]:
    """The /settings set options of title filters and the restart grace, as changes."""
    changes: dict[str, object] = {}
    if on_filter_exit is not None:
        changes["filter_exit"] = EndAction(on_filter_exit.value)
    if restart_grace is not None:
        changes["restart_grace_seconds"] = restart_grace
    return changes


def settings_embed(settings: GuildSettings, *, default_grace: int | None = None) -> discord.Embed:
    embed = discord.Embed(title="Announcement settings", colour=TWITCH_PURPLE)
    channel = f"<#{settings.announce_channel_id}>" if settings.announce_channel_id else "not set (`/setchannel`)"
    template = settings.message_template or DEFAULT_TEMPLATE
    embed.add_field(name="Channel", value=channel, inline=True)
    embed.add_field(name="Ping", value=describe_ping(settings.ping), inline=True)
    embed.add_field(name="When the stream ends", value=END_ACTION_LABELS[settings.end_action], inline=False)
    embed.add_field(name="Live updates", value="on" if settings.live_updates else "off", inline=True)
    embed.add_field(
        name="When a stream leaves its filter", value=FILTER_EXIT_LABELS[settings.filter_exit], inline=False
    )
    grace = grace_text(settings.restart_grace_seconds, default_grace)
    embed.add_field(name="Restart grace", value=grace, inline=True)
    embed.add_field(name=LIVE_EVENTS_LABEL, value=live_events_value(settings), inline=True)
    embed.add_field(name=SCHEDULE_EVENTS_LABEL, value=schedule_events_value(settings), inline=True)
    embed.add_field(name=NOTIFY_SETTING, value=notify_value(settings), inline=False)
    embed.add_field(name="Ping throttle", value=throttle_value(settings), inline=True)
    embed.add_field(
        name=PUBLISH_LABEL,
        value="on (up to 10 per channel per hour)" if settings.publish else "off",
        inline=True,
    )
    shown = template.replace("`", "ˋ")
    embed.add_field(
        name="Message" + ("" if settings.message_template else " (default)"),
        value=f"`{shown}`"[:EMBED_FIELD_VALUE_LIMIT],
        inline=False,
    )
    return embed


class AnnouncementChannel(commands.Cog):
    """/setchannel."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @app_commands.command(name="setchannel", description="Set the channel where live announcements are posted")
    @app_commands.describe(channel="The text channel for announcements")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def setchannel(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        guild = guild_of(interaction)
        target, refusal = announcement_channel(guild, channel.id)
        if target is None:
            await reply(interaction, refusal)
            return
        await self.db.set_announce_channel(guild.id, target.id)
        await self.db.clear_channel_errors(guild.id, target.id)
        # Subscriptions whose channel was deleted follow the new default instead of staying broken.
        gone = {sub.channel_id for sub in await self.db.guild_subscriptions(guild.id)} - {c.id for c in guild.channels}
        moved = await self.db.move_guild_subscriptions(guild.id, gone, target.id)
        text = f"Live announcements will be posted in {target.mention}."
        if moved:
            text += f" {moved} streamer(s) whose channel was deleted now announce there too."
        else:
            text += " Streamers added with their own channel keep theirs."
        await reply(interaction, text)


@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.default_permissions(manage_guild=True)
class ServerSettings(commands.GroupCog, group_name="settings", group_description="This server's announcement settings"):
    """The /settings group: show, set, reset."""

    live_events_changed: Callable[[], None] | None = None
    """Wakes the live scheduled events and the schedule import when this server turns either on or off (set by
    `setup`)."""

    def __init__(self, db: Database, *, default_grace: int | None = None) -> None:
        self.db = db
        self.default_grace = default_grace
        """The operator's STREAM_RESTART_GRACE_SECONDS, which a server without its own grace uses."""
        super().__init__()

    async def _events_option(self, guild: discord.Guild, name: str, value: bool, changes: dict[str, object]) -> str:
        """`live_events` or `schedule_events` given to /settings set: the change, and what to grant if the bot
        lacks it."""
        changes[name] = value
        if not value:
            return ""
        await self.db.set_events_error(guild.id, None)  # asked again: Discord is asked again too
        return live_events_warning(guild)

    def _live_events_saved(self, changes: dict[str, object]) -> None:
        if ("live_events" in changes or "schedule_events" in changes) and self.live_events_changed is not None:
            self.live_events_changed()  # after the write: the pass it wakes reads it

    @app_commands.command(name="show", description="Show this server's announcement settings")
    @manage_guild_only
    async def settings_show(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        settings = await self.db.get_guild_settings(guild.id)
        await reply(interaction, embed=settings_embed(settings, default_grace=self.default_grace))

    @app_commands.command(name="set", description="Change this server's announcement settings")
    @app_commands.describe(
        ping="Who to ping when a stream goes live: none, @everyone, @here or a role",
        message="The text above the card; placeholders {streamer} {title} {game} {url} {viewers} {ping}",
        on_end="What happens to the announcement when the stream ends",
        live_updates="Keep the card's title, game, viewers and thumbnail current while live",
        live_events="Keep a server event for each live stream announced (needs Create Events)",
        schedule_events="Show each streamer's Twitch schedule as upcoming server events (needs Create Events)",
        publish="In an announcement channel, publish each new announcement to the servers following it",
        on_filter_exit="What happens to a live card whose stream leaves its entry's game or title filter",
        restart_grace="Seconds a dropped stream may take to come back and keep its card (0: off)",
        notify_button="Put a 🔔 Notify me button on live cards; ping the streamer's opt-in role instead",
        ping_throttle="Ping each streamer at most once per this many hours (0: off)",
    )
    @app_commands.choices(
        on_end=[
            app_commands.Choice(name="edit into a “was live” card", value=EndAction.EDIT.value),
            app_commands.Choice(name="delete the announcement", value=EndAction.DELETE.value),
            app_commands.Choice(name="keep it as it is", value=EndAction.KEEP.value),
        ],
        on_filter_exit=[
            app_commands.Choice(name="keep the card as it is", value=EndAction.KEEP.value),
            app_commands.Choice(name="edit it to say it no longer matches", value=EndAction.EDIT.value),
            app_commands.Choice(name="delete the card", value=EndAction.DELETE.value),
        ],
    )
    @manage_guild_only
    async def settings_set(
        self,
        interaction: discord.Interaction,
        ping: str | None = None,
        message: str | None = None,
        on_end: app_commands.Choice[str] | None = None,
        live_updates: bool | None = None,
        live_events: bool | None = None,
        schedule_events: bool | None = None,
        publish: bool | None = None,
        on_filter_exit: app_commands.Choice[str] | None = None,
        restart_grace: app_commands.Range[int, 0, MAX_GRACE_SECONDS] | None = None,
        notify_button: bool | None = None,
        ping_throttle: app_commands.Range[int, 0, MAX_THROTTLE_HOURS] | None = None,
    ) -> None:
        guild = guild_of(interaction)
        changes: dict[str, object] = {}
        warning = ""
        try:
            if ping is not None:
                choice = parse_ping_option(guild, ping)
                changes["ping"] = choice.value
                warning = ping_warning(guild, choice)
            if message is not None:
                changes["message_template"] = validate_template(message)
        except TemplateError as exc:
            await reply(interaction, str(exc))
            return
        if on_end is not None:
            changes["end_action"] = EndAction(on_end.value)
        if live_updates is not None:
            changes["live_updates"] = live_updates
        if live_events is not None:
            warning += await self._events_option(guild, "live_events", live_events, changes)
        if schedule_events is not None:
            events_warning = await self._events_option(guild, "schedule_events", schedule_events, changes)
            warning += "" if events_warning and events_warning in warning else events_warning
        if publish is not None:
            changes["publish"] = publish
            if publish:
                warning += await self._publish_warning(guild)
        changes |= filter_and_grace_changes(on_filter_exit, restart_grace)
        opt_in, opt_in_warning = opt_in_changes(guild, notify_button, ping_throttle)
        changes |= opt_in
        warning += opt_in_warning
        if not changes:
            await reply(
                interaction, "Nothing to change: give `ping`, `message`, `on_end`, `live_updates` or `publish`."
            )
            return
        settings = await self.db.update_guild_settings(guild.id, **changes)
        self._live_events_saved(changes)
        embeds = [settings_embed(settings, default_grace=self.default_grace)]
        if "message_template" in changes or "ping" in changes:
            preview = announcement_content(
                SAMPLE_STREAM, SAMPLE_STREAMER, ping=settings.ping, template=settings.message_template
            )
            embeds.append(discord.Embed(title="Preview", description=preview or "*(no text)*", colour=TWITCH_PURPLE))
        await reply(interaction, "Settings saved." + warning, embeds=embeds)

    async def _publish_warning(self, guild: discord.Guild) -> str:
        """Publishing only applies in announcement channels: say so when none of this server's is one."""
        used = {sub.channel_id for sub in await self.db.guild_subscriptions(guild.id)}
        used.add(await self.db.get_announce_channel(guild.id) or 0)
        if any(isinstance(c := guild.get_channel(i), discord.TextChannel) and c.is_news() for i in used):
            return ""
        return (
            "\n\N{INFORMATION SOURCE} None of this server's announcement channels is an *Announcement* channel yet, "
            "so nothing is published until one is."
        )

    @settings_set.autocomplete("ping")
    async def _settings_ping(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return ping_choices(interaction, current)

    @app_commands.command(name="reset", description="Put one of this server's settings (or all) back to default")
    @app_commands.choices(
        setting=[
            app_commands.Choice(name="ping", value="ping"),
            app_commands.Choice(name="message", value="message_template"),
            app_commands.Choice(name="on_end", value="end_action"),
            app_commands.Choice(name="live_updates", value="live_updates"),
            app_commands.Choice(name="live_events", value="live_events"),
            app_commands.Choice(name="schedule_events", value="schedule_events"),
            app_commands.Choice(name="publish", value="publish"),
            app_commands.Choice(name="on_filter_exit", value="filter_exit"),
            app_commands.Choice(name="restart_grace", value="restart_grace_seconds"),
            app_commands.Choice(name="notify_button", value="notify_button"),
            app_commands.Choice(name="ping_throttle", value="ping_throttle_hours"),
            app_commands.Choice(name="all of them", value="all"),
        ]
    )
    @manage_guild_only
    async def settings_reset(self, interaction: discord.Interaction, setting: app_commands.Choice[str]) -> None:
        guild = guild_of(interaction)
        names = list(RESETTABLE + OPT_IN_SETTINGS) if setting.value == "all" else [setting.value]
        settings = await self.db.reset_guild_settings(guild.id, names)
        embed = settings_embed(settings, default_grace=self.default_grace)
        await reply(interaction, f"Reset {setting.name} to the default.", embed=embed)


async def setup(bot: commands.Bot) -> None:
    services = services_of(bot)
    await bot.add_cog(AnnouncementChannel(services.db))
    server_settings = ServerSettings(services.db, default_grace=services.restart_grace_seconds)
    server_settings.live_events_changed = services.live_events_changed
    await bot.add_cog(server_settings)
