"""/addstreamer, /editstreamer and /removestreamer: following streamers, with their per-entry overrides.

Manage Server only. The rules live in core.subscriptions; this cog parses the options and words the reply.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from database import Database
from twitch_api import TwitchClient
from twitch_notifier.cogs.context import services_of
from twitch_notifier.cogs.notify_button import NOTIFY_OVERRIDE_CHOICES, notify_override, notify_override_text
from twitch_notifier.cogs.options import (
    CANT_SEE_CHANNEL,
    NOT_FOLLOWED,
    TWITCH_UNREACHABLE,
    announcement_channel,
    channel_check,
    escaped,
    games_choices,
    guild_of,
    is_default,
    manage_guild_only,
    parse_ping_option,
    ping_choices,
    ping_warning,
    subscription_choices,
    unusable_channel_text,
)
from twitch_notifier.core.filters import FilterError, apply_title_options
from twitch_notifier.core.subscriptions import (
    MAX_GAMES,
    AddOutcome,
    AddRefusal,
    AddRequest,
    AddResult,
    SubscriptionRules,
    Target,
    TooManyCategories,
    UnknownCategory,
)
from twitch_notifier.discord_io.replies import reply
from twitch_notifier.models import KEEP, AlreadySubscribed, Subscription, SubscriptionUpdate, TitleFilter
from twitch_notifier.rendering.filter_cards import title_filter_summary
from twitch_notifier.rendering.pings import describe_ping
from twitch_notifier.rendering.templates import TemplateError, parse_game_list, validate_template
from twitch_notifier.twitch.errors import InvalidLogin, TwitchError
from twitch_notifier.twitch.logins import parse_login

__all__ = ["StreamerCommands", "setup"]

_log = logging.getLogger(__name__)

NO_CHANNEL_YET = (
    "There is no announcement channel yet. Run `/setchannel` first, "
    "or give a channel: `/addstreamer streamer:… channel:#…`."
)
DEFAULT_CHANNEL_GONE = (
    "The announcement channel set with `/setchannel` no longer exists. Run `/setchannel` again, "
    "or give a channel with this command."
)


def category_error_text(error: UnknownCategory | TooManyCategories) -> str:
    if isinstance(error, TooManyCategories):
        return f"At most {MAX_GAMES} categories per streamer."
    return (
        f"Twitch has no category called **{escaped(error.name)}**. Pick categories from the list "
        "(separate several with commas)."
    )


def target_problem(target: Target, channel: discord.abc.GuildChannel | None = None) -> str:
    """Why an option value names no single entry."""
    if target.candidates:
        where = ", ".join(f"<#{sub.channel_id}>" for sub in target.candidates)
        return (
            f"**{escaped(target.candidates[0].streamer.display_name)}** is followed in several channels here "
            f"({where}). Pick the entry you mean from the list."
        )
    return NOT_FOLLOWED if channel is None else f"That streamer isn't followed in {channel.mention}."


def add_reply(result: AddResult, ping_note: str = "", title_filter: TitleFilter | None = None) -> str:
    """The answer to /addstreamer for each outcome of the rules."""
    where = f"<#{result.channel_id}>"
    name = escaped(result.streamer.display_name) if result.streamer else ""
    if result.outcome is AddOutcome.ALREADY:
        return (
            f"**{name}** is already announced in {where}. Nothing changed; `/editstreamer` changes its ping, "
            "message or games."
        )
    if result.outcome is AddOutcome.REPAIRED:
        return f"**{name}** was already followed but could not be announced; announcements now go to {where}."
    if result.outcome is AddOutcome.ADDED and result.streamer is not None:
        text = f"Now following **{name}** (twitch.tv/{result.streamer.login}). I'll announce in {where} when they "
        text += "go live"
        categories = result.categories
        text += f", only while they stream {', '.join(c.name for c in categories)}." if categories else "."
        if title_filter is not None:
            text += f" Title filter: {title_filter_summary(title_filter)}."
        if result.also_in:
            text += f" They are also announced in {', '.join(f'<#{channel}>' for channel in result.also_in)}."
        return text + ping_note
    refusals = {
        AddRefusal.NO_CHANNEL: NO_CHANNEL_YET,
        AddRefusal.DEFAULT_CHANNEL_GONE: DEFAULT_CHANNEL_GONE,
        AddRefusal.CHANNEL_MISSING: CANT_SEE_CHANNEL,
        AddRefusal.CHANNEL_UNUSABLE: unusable_channel_text(result.detail),
        AddRefusal.LIMIT_REACHED: (
            f"This server already follows {result.detail} streamers, the most allowed. Remove one with "
            "`/removestreamer` first."
        ),
        AddRefusal.NO_SUCH_USER: f"There is no Twitch channel named **{result.detail}**. Check the spelling.",
    }
    return refusals[result.refusal] if result.refusal else NOT_FOLLOWED


def overrides_from_options(
    guild: discord.Guild, ping: str | None, message: str | None
) -> tuple[SubscriptionUpdate, list[str]]:
    """The ping and message of an /editstreamer as changes, with a note on each; raises TemplateError."""
    changes = SubscriptionUpdate()
    notes: list[str] = []
    if ping is not None:
        choice = None if is_default(ping) else parse_ping_option(guild, ping)
        changes.ping = choice.value if choice else None
        notes.append(f"ping: {describe_ping(choice.value) if choice else 'the server’s setting'}")
        if choice is not None and (warning := ping_warning(guild, choice)):
            notes.append(warning.strip())
    if message is not None:
        changes.message_template = None if is_default(message) else validate_template(message)
        notes.append("message: " + ("the server’s" if changes.message_template is None else "its own"))
    return changes, notes


class StreamerCommands(commands.Cog):
    """Following streamers: add, edit, remove."""

    def __init__(self, db: Database, twitch: TwitchClient, rules: SubscriptionRules) -> None:
        self.db = db
        self.twitch = twitch
        self.rules = rules

    @app_commands.command(name="addstreamer", description="Announce when a Twitch streamer goes live")
    @app_commands.describe(
        streamer="Twitch login or channel URL, e.g. shroud or twitch.tv/shroud",
        channel="Where to announce (defaults to the channel set with /setchannel)",
        ping="Who to ping for this streamer instead of the server's setting: none, @everyone, @here or a role",
        message="This streamer's own message above the card, e.g. {ping} {streamer} plays {game}!",
        games="Announce only while streaming these categories (separate several with commas)",
        include_words="Announce only if the title has one of these words or phrases (comma-separated)",
        exclude_words="Never announce a title with one of these words or phrases (comma-separated)",
        title_regex="Announce only if the title matches this regular expression (case-insensitive)",
        skip_reruns="Don't announce reruns, playlists, premieres or watch parties (known from Twitch's push)",
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def addstreamer(
        self,
        interaction: discord.Interaction,
        streamer: str,
        channel: discord.TextChannel | None = None,
        ping: str | None = None,
        message: str | None = None,
        games: str | None = None,
        include_words: str | None = None,
        exclude_words: str | None = None,
        title_regex: str | None = None,
        skip_reruns: bool | None = None,
    ) -> None:
        guild = guild_of(interaction)
        try:
            title_filter = apply_title_options(
                None, include=include_words, exclude=exclude_words, regex=title_regex, skip_reruns=skip_reruns
            )
        except FilterError as exc:
            await reply(interaction, str(exc))
            return
        try:
            login = parse_login(streamer)
        except InvalidLogin as exc:
            await reply(interaction, str(exc))
            return
        try:
            ping_choice = parse_ping_option(guild, ping) if ping and not is_default(ping) else None
            template = validate_template(message) if message and not is_default(message) else None
            game_names = parse_game_list(games) if games else None
        except TemplateError as exc:
            await reply(interaction, str(exc))
            return
        request = AddRequest(
            guild_id=guild.id,
            login=login,
            channel_id=channel.id if channel else None,
            added_by=interaction.user.id,
            ping=ping_choice.value if ping_choice else None,
            template=template,
            game_names=game_names,
            title_filter=title_filter,
        )

        async def defer() -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)

        try:
            result = await self.rules.add(request, channel_check(guild), defer)
        except (UnknownCategory, TooManyCategories) as exc:
            await reply(interaction, category_error_text(exc))
            return
        except TwitchError as exc:
            _log.warning("Twitch lookup of %r failed: %s", login, exc)
            await reply(interaction, TWITCH_UNREACHABLE)
            return
        note = ping_warning(guild, ping_choice) if ping_choice is not None else ""
        await reply(interaction, add_reply(result, note, title_filter))

    @app_commands.command(
        name="editstreamer", description="Change a followed streamer's channel, ping, message or games"
    )
    @app_commands.describe(
        streamer="The entry to change",
        channel="Move its announcements to this channel",
        ping="none, @everyone, @here, a role, or default (the server's setting)",
        message="Its own message above the card, or default (the server's message)",
        games="Only announce in these categories (comma-separated), or any",
        include_words="Only announce titles with one of these words or phrases (comma-separated), or none",
        exclude_words="Never announce titles with one of these words or phrases (comma-separated), or none",
        title_regex="Only announce titles matching this regular expression, or none",
        skip_reruns="Don't announce reruns, playlists, premieres or watch parties",
        notify_button="This streamer's 🔔 Notify me button: on, off, or default (the server's setting)",
    )
    @app_commands.choices(notify_button=NOTIFY_OVERRIDE_CHOICES)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def editstreamer(
        self,
        interaction: discord.Interaction,
        streamer: str,
        channel: discord.TextChannel | None = None,
        ping: str | None = None,
        message: str | None = None,
        games: str | None = None,
        include_words: str | None = None,
        exclude_words: str | None = None,
        title_regex: str | None = None,
        skip_reruns: bool | None = None,
        notify_button: app_commands.Choice[str] | None = None,
    ) -> None:
        guild = guild_of(interaction)
        title_options = (include_words, exclude_words, title_regex, skip_reruns)
        nothing = channel is None and ping is None and message is None and games is None and notify_button is None
        if nothing and title_options == (None,) * 4:
            await reply(
                interaction,
                "Nothing to change: give a `channel`, `ping`, `message`, `games` or a title filter "
                "(`include_words`, `exclude_words`, `title_regex`, `skip_reruns`).",
            )
            return
        target = await self.rules.find(guild.id, streamer)
        sub = target.subscription
        if sub is None:
            await reply(interaction, target_problem(target))
            return
        try:
            changes, notes = overrides_from_options(guild, ping, message)
            if notify_button is not None:
                changes.notify_button = notify_override(notify_button.value)
                notes.append(notify_override_text(changes.notify_button) or "Notify me button: the server's setting")
            game_names = parse_game_list(games) if games is not None else None
            if title_options != (None,) * 4:
                changes.title_filter = title_filter = apply_title_options(
                    sub.title_filter if not sub.title_filter_unreadable else None,
                    include=include_words,
                    exclude=exclude_words,
                    regex=title_regex,
                    skip_reruns=skip_reruns,
                )
                notes.append("title filter: " + (title_filter_summary(title_filter) or "none"))
        except (TemplateError, FilterError) as exc:
            await reply(interaction, str(exc))
            return
        if channel is not None and channel.id != sub.channel_id:
            target_channel, refusal = announcement_channel(guild, channel.id)
            if target_channel is None:
                await reply(interaction, refusal)
                return
            changes.channel_id = target_channel.id
            notes.append(f"channel: {target_channel.mention}")
        if games is not None and (problem := await self._change_games(interaction, game_names, changes, notes)):
            await reply(interaction, problem)
            return
        await reply(interaction, await self._apply(sub, changes, notes))

    async def _change_games(
        self,
        interaction: discord.Interaction,
        game_names: list[str] | None,
        changes: SubscriptionUpdate,
        notes: list[str],
    ) -> str | None:
        """Put the game filter into `changes` (asking Twitch for the categories); the refusal, if any."""
        if game_names is None:
            changes.games = None
            notes.append("games: any")
            return None
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            changes.games = categories = await self.rules.resolve_categories(game_names)
        except (UnknownCategory, TooManyCategories) as exc:
            return category_error_text(exc)
        except TwitchError as exc:
            _log.warning("Twitch category lookup failed: %s", exc)
            return TWITCH_UNREACHABLE
        notes.append("games: only " + ", ".join(c.name for c in categories))
        return None

    async def _apply(self, sub: Subscription, changes: SubscriptionUpdate, notes: list[str]) -> str:
        name = escaped(sub.streamer.display_name)
        try:
            await self.db.update_subscription(sub.id, changes)
        except AlreadySubscribed:
            return f"**{name}** is already announced in <#{changes.channel_id}>. Nothing changed."
        channel_id = sub.channel_id if changes.channel_id is KEEP else changes.channel_id
        return f"Updated **{name}** (announced in <#{channel_id}>): " + "; ".join(notes) + "."

    @app_commands.command(name="removestreamer", description="Stop announcing a Twitch streamer")
    @app_commands.describe(
        streamer="The streamer to remove", channel="Only its entry in this channel, if it has several"
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def removestreamer(
        self, interaction: discord.Interaction, streamer: str, channel: discord.TextChannel | None = None
    ) -> None:
        guild = guild_of(interaction)
        # Autocomplete sends `sub:<id>`; a typed name may be a login, a URL or a display name.
        target = await self.rules.find(guild.id, streamer, channel.id if channel else None)
        if target.subscription is None:
            await reply(interaction, target_problem(target, channel))
            return

        async def defer() -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)

        removal = await self.rules.remove(guild.id, target.subscription, defer)
        removed, others = removal.removed, removal.still_in
        if removed is None:
            await reply(interaction, NOT_FOLLOWED)
            return
        text = f"Stopped following **{escaped(removed.streamer.display_name)}**"
        if others:
            text += f" in <#{removed.channel_id}>; still announced in " + ", ".join(f"<#{o}>" for o in others)
        text += "."
        if removal.unclosed_cards:
            text += (
                f" Discord didn't let me update its last announcement in <#{removed.channel_id}>; "
                "delete it by hand if it still says live."
            )
        await reply(interaction, text)

    @removestreamer.autocomplete("streamer")
    async def _removestreamer_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await subscription_choices(self.db, interaction, current)

    @editstreamer.autocomplete("streamer")
    async def _editstreamer_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await subscription_choices(self.db, interaction, current)

    @addstreamer.autocomplete("ping")
    async def _addstreamer_ping(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return ping_choices(interaction, current)

    @editstreamer.autocomplete("ping")
    async def _editstreamer_ping(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return ping_choices(interaction, current)

    @addstreamer.autocomplete("games")
    async def _addstreamer_games(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await games_choices(self.twitch, current)

    @editstreamer.autocomplete("games")
    async def _editstreamer_games(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await games_choices(self.twitch, current)


async def setup(bot: commands.Bot) -> None:
    services = services_of(bot)
    await bot.add_cog(StreamerCommands(services.db, services.twitch, services.rules))
