"""The server's own settings: /setchannel (the default announcement channel) and the /settings group
(show, set, reset: ping, message template, what happens to a card at the end, live updates).

Manage Server only.
"""

from __future__ import annotations

from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from database import Database
from twitch_notifier.cogs.context import services_of
from twitch_notifier.cogs.options import (
    announcement_channel,
    guild_of,
    manage_guild_only,
    parse_ping_option,
    ping_choices,
    ping_warning,
)
from twitch_notifier.discord_io.replies import reply
from twitch_notifier.models import EndAction, GuildSettings, LiveStream, Streamer
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
RESETTABLE = ("ping", "message_template", "end_action", "live_updates")


def settings_embed(settings: GuildSettings) -> discord.Embed:
    embed = discord.Embed(title="Announcement settings", colour=TWITCH_PURPLE)
    channel = f"<#{settings.announce_channel_id}>" if settings.announce_channel_id else "not set (`/setchannel`)"
    template = settings.message_template or DEFAULT_TEMPLATE
    embed.add_field(name="Channel", value=channel, inline=True)
    embed.add_field(name="Ping", value=describe_ping(settings.ping), inline=True)
    embed.add_field(name="When the stream ends", value=END_ACTION_LABELS[settings.end_action], inline=False)
    embed.add_field(name="Live updates", value="on" if settings.live_updates else "off", inline=True)
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

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__()

    @app_commands.command(name="show", description="Show this server's announcement settings")
    @manage_guild_only
    async def settings_show(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        settings = await self.db.get_guild_settings(guild.id)
        await reply(interaction, embed=settings_embed(settings))

    @app_commands.command(name="set", description="Change this server's announcement settings")
    @app_commands.describe(
        ping="Who to ping when a stream goes live: none, @everyone, @here or a role",
        message="The text above the card; placeholders {streamer} {title} {game} {url} {viewers} {ping}",
        on_end="What happens to the announcement when the stream ends",
        live_updates="Keep the card's title, game, viewers and thumbnail current while live",
    )
    @app_commands.choices(
        on_end=[
            app_commands.Choice(name="edit into a “was live” card", value=EndAction.EDIT.value),
            app_commands.Choice(name="delete the announcement", value=EndAction.DELETE.value),
            app_commands.Choice(name="keep it as it is", value=EndAction.KEEP.value),
        ]
    )
    @manage_guild_only
    async def settings_set(
        self,
        interaction: discord.Interaction,
        ping: str | None = None,
        message: str | None = None,
        on_end: app_commands.Choice[str] | None = None,
        live_updates: bool | None = None,
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
        if not changes:
            await reply(interaction, "Nothing to change: give `ping`, `message`, `on_end` or `live_updates`.")
            return
        settings = await self.db.update_guild_settings(guild.id, **changes)
        embeds = [settings_embed(settings)]
        if "message_template" in changes or "ping" in changes:
            preview = announcement_content(
                SAMPLE_STREAM, SAMPLE_STREAMER, ping=settings.ping, template=settings.message_template
            )
            embeds.append(discord.Embed(title="Preview", description=preview or "*(no text)*", colour=TWITCH_PURPLE))
        await reply(interaction, "Settings saved." + warning, embeds=embeds)

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
            app_commands.Choice(name="all of them", value="all"),
        ]
    )
    @manage_guild_only
    async def settings_reset(self, interaction: discord.Interaction, setting: app_commands.Choice[str]) -> None:
        guild = guild_of(interaction)
        names = list(RESETTABLE) if setting.value == "all" else [setting.value]
        settings = await self.db.reset_guild_settings(guild.id, names)
        await reply(interaction, f"Reset {setting.name} to the default.", embed=settings_embed(settings))


async def setup(bot: commands.Bot) -> None:
    services = services_of(bot)
    await bot.add_cog(AnnouncementChannel(services.db))
    await bot.add_cog(ServerSettings(services.db))
