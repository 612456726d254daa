"""The slash commands: /setchannel, /addstreamer, /editstreamer, /removestreamer, /streamers, /live and
/settings. Guild-only; the mutating ones need Manage Server (Discord's default and the bot's own check).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from database import (
    AlreadySubscribed,
    Category,
    GuildSettings,
    LiveStream,
    Streamer,
    Subscription,
)
from discord_common import (
    CHANNEL_DELETED,
    channel_problem,
    reply,
    reply_pages,
    streamer_from_user,
)
from live_tracker import live_stream_from
from messages import (
    TWITCH_PURPLE,
    announcement_content,
    live_line,
    overrides_summary,
    paginate,
    streamer_line,
)
from templates import (
    DEFAULT_TEMPLATE,
    PingChoice,
    TemplateError,
    describe_ping,
    parse_game_list,
    parse_ping,
    validate_template,
)
from twitch_api import InvalidLogin, TwitchError, parse_login

if TYPE_CHECKING:
    from bot import TwitchNotifierBot

_log = logging.getLogger(__name__)

manage_guild_only = app_commands.checks.has_permissions(manage_guild=True)


def _guild(interaction: discord.Interaction) -> discord.Guild:
    # Every command is guild-only; Discord enforces it and this keeps the type checker and DMs honest.
    if interaction.guild is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild


NOT_FOLLOWED = "That streamer isn't followed here. `/streamers` shows the list."
MAX_GAMES = 10
END_ACTION_LABELS = {
    "edit": "edit the card into a “was live” card (with the VOD link)",
    "delete": "delete the announcement",
    "keep": "keep the announcement as it is",
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


CANT_SEE_CHANNEL = "I can't see that channel. Pick a text channel I have access to."
TWITCH_UNREACHABLE = "I couldn't reach Twitch just now. Please try again in a minute."


def _announcement_channel(
    guild: discord.Guild, channel_id: int, *, missing: str = CANT_SEE_CHANNEL
) -> tuple[discord.TextChannel | None, str]:
    """The text channel to announce in, or None and the reason to give the admin (`missing` if it is gone)."""
    target = guild.get_channel(channel_id)
    if not isinstance(target, discord.TextChannel):
        return None, missing
    if problem := channel_problem(target):
        return None, f"I {problem}. Give me those permissions there, or pick another channel."
    return target, ""


def _escaped(text: str) -> str:
    return discord.utils.escape_markdown(text)


def _ping_warning(guild: discord.Guild, choice: PingChoice) -> str:
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


class StreamerCommands(commands.Cog):
    """The slash commands: /setchannel, /addstreamer, /editstreamer, /removestreamer, /streamers, /live and
    the /settings group."""

    settings_group = app_commands.Group(
        name="settings",
        description="This server's announcement settings",
        allowed_contexts=app_commands.AppCommandContext(guild=True),
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: TwitchNotifierBot) -> None:
        self.bot = bot
        self.db = bot.db

    # -- shared parsing of options -------------------------------------------------------------------

    def _parse_ping(self, guild: discord.Guild, text: str) -> PingChoice:
        choice = parse_ping(text, everyone_role_id=guild.id)
        if choice.role_id is not None and guild.get_role(choice.role_id) is None:
            raise TemplateError("I can't find that role in this server. Pick one from the list.")
        return choice

    @staticmethod
    def _is_default(text: str) -> bool:
        return text.strip().lower() in ("default", "server", "reset")

    async def _resolve_games(self, names: list[str]) -> list[Category]:
        """Category names typed (or picked from autocomplete) as Twitch's categories; raises TemplateError
        naming the first one Twitch does not know. Needs Twitch: call after deferring."""
        if len(names) > MAX_GAMES:
            raise TemplateError(f"At most {MAX_GAMES} categories per streamer.")
        found = {g.name.casefold(): g for g in await self.bot.twitch.get_games(names=names)}
        result: list[Category] = []
        for name in names:
            game = found.get(name.casefold())
            if game is None:
                # /games wants the exact name; the search forgives case and finds the canonical spelling.
                hits = await self.bot.twitch.search_categories(name, first=20)
                game = next((g for g in hits if g.name.casefold() == name.casefold()), None)
            if game is None:
                raise TemplateError(
                    f"Twitch has no category called **{_escaped(name)}**. Pick categories from the list "
                    "(separate several with commas)."
                )
            result.append(Category(game.id, game.name, game.box_art_url))
        return list({c.id: c for c in result}.values())

    async def _target_subscription(
        self, guild: discord.Guild, streamer: str, channel: discord.abc.GuildChannel | None = None
    ) -> tuple[Subscription | None, str]:
        """The one subscription an option value names: `sub:<id>` from autocomplete, or a typed name (which
        may match several channels' entries: then a message listing them)."""
        text = streamer.strip()
        if text.startswith("sub:") and text[4:].isdigit():
            found = await self.db.get_subscription(guild.id, int(text[4:]))
            return (found, "") if found else (None, NOT_FOLLOWED)
        with contextlib.suppress(InvalidLogin):
            text = parse_login(text)
        subs = await self.db.find_subscriptions(guild.id, text)
        if channel is not None:
            subs = [sub for sub in subs if sub.channel_id == channel.id]
        if not subs:
            return None, NOT_FOLLOWED if channel is None else f"That streamer isn't followed in {channel.mention}."
        if len(subs) > 1:
            where = ", ".join(f"<#{sub.channel_id}>" for sub in subs)
            return None, (
                f"**{_escaped(subs[0].streamer.display_name)}** is followed in several channels here ({where}). "
                "Pick the entry you mean from the list."
            )
        return subs[0], ""

    async def _subscription_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        subs = await self.db.search_guild_subscriptions(interaction.guild_id, current)
        counts = Counter(sub.streamer.twitch_user_id for sub in subs)
        guild = interaction.guild
        choices = []
        for sub in subs:
            s = sub.streamer
            name = s.display_name if s.display_name.lower() == s.login else f"{s.display_name} ({s.login})"
            if counts[s.twitch_user_id] > 1:
                channel = guild.get_channel(sub.channel_id) if guild else None
                name += f" → #{channel.name}" if channel else " → a deleted channel"
            choices.append(app_commands.Choice(name=name[:100], value=f"sub:{sub.id}"))
        return choices

    async def _ping_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        typed = current.strip().lstrip("@").lower()
        options = [("none (no ping)", "none"), ("@everyone", "everyone"), ("@here", "here")]
        if interaction.command is not None and interaction.command.name == "editstreamer":
            options.insert(0, ("the server's setting", "default"))
        guild = interaction.guild
        if guild is not None:
            roles = sorted((r for r in guild.roles if not r.is_default() and not r.managed), key=lambda r: -r.position)
            options += [(f"@{role.name}", str(role.id)) for role in roles]
        return [app_commands.Choice(name=name[:100], value=value) for name, value in options if typed in name.lower()][
            :25
        ]

    async def _games_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        *done, typing = [part.strip() for part in current.split(",")]
        done = [part for part in done if part]
        if not typing.strip():
            return []
        try:
            hits = await self.bot.twitch.search_categories(typing, first=10)
        except TwitchError as exc:
            _log.warning("Category search for autocomplete failed: %s", exc)
            return []
        choices = []
        for hit in hits:
            value = ", ".join([*done, hit.name])
            if len(value) <= 100:
                choices.append(app_commands.Choice(name=value, value=value))
        return choices

    # -- commands --------------------------------------------------------------------------------------

    @app_commands.command(name="setchannel", description="Set the channel where live announcements are posted")
    @app_commands.describe(channel="The text channel for announcements")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def setchannel(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        guild = _guild(interaction)
        target, refusal = _announcement_channel(guild, channel.id)
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

    @app_commands.command(name="addstreamer", description="Announce when a Twitch streamer goes live")
    @app_commands.describe(
        streamer="Twitch login or channel URL, e.g. shroud or twitch.tv/shroud",
        channel="Where to announce (defaults to the channel set with /setchannel)",
        ping="Who to ping for this streamer instead of the server's setting: none, @everyone, @here or a role",
        message="This streamer's own message above the card, e.g. {ping} {streamer} plays {game}!",
        games="Announce only while streaming these categories (separate several with commas)",
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
    ) -> None:
        guild = _guild(interaction)
        try:
            login = parse_login(streamer)
        except InvalidLogin as exc:
            await reply(interaction, str(exc))
            return
        try:
            ping_choice = self._parse_ping(guild, ping) if ping and not self._is_default(ping) else None
            template = validate_template(message) if message and not self._is_default(message) else None
            game_names = parse_game_list(games) if games else None
        except TemplateError as exc:
            await reply(interaction, str(exc))
            return

        channel_id = channel.id if channel else await self.db.get_announce_channel(guild.id)
        if channel_id is None:
            await reply(
                interaction,
                "There is no announcement channel yet. Run `/setchannel` first, "
                "or give a channel: `/addstreamer streamer:… channel:#…`.",
            )
            return
        target, refusal = _announcement_channel(
            guild,
            channel_id,
            missing="The announcement channel set with `/setchannel` no longer exists. Run `/setchannel` again, "
            "or give a channel with this command.",
        )
        if target is None:
            await reply(interaction, refusal)
            return
        existing = await self.db.find_subscriptions(guild.id, login)
        here = next((sub for sub in existing if sub.channel_id == target.id), None)
        if here is not None:
            await reply(
                interaction,
                f"**{_escaped(here.streamer.display_name)}** is already announced in {target.mention}. Nothing "
                "changed; `/editstreamer` changes its ping, message or games.",
            )
            return
        broken = next((sub for sub in existing if sub.last_error or guild.get_channel(sub.channel_id) is None), None)
        if broken is not None:
            # Adding again is how an admin repairs a streamer whose channel broke.
            await self.db.set_subscription_channel(broken.id, target.id)
            await reply(
                interaction,
                f"**{_escaped(broken.streamer.display_name)}** was already followed but could not be announced; "
                f"announcements now go to {target.mention}.",
            )
            return
        limit = self.bot.settings.max_streamers_per_guild
        if await self.db.count_subscriptions(guild.id) >= limit:
            await reply(
                interaction,
                f"This server already follows {limit} streamers, the most allowed. Remove one with "
                "`/removestreamer` first.",
            )
            return

        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            user = await self.bot.twitch.get_user(login)
            categories = await self._resolve_games(game_names) if game_names else None
        except TemplateError as exc:
            await reply(interaction, str(exc))
            return
        except TwitchError as exc:
            _log.warning("Twitch lookup of %r failed: %s", login, exc)
            await reply(interaction, TWITCH_UNREACHABLE)
            return
        if user is None:
            await reply(interaction, f"There is no Twitch channel named **{login}**. Check the spelling.")
            return
        record = streamer_from_user(user)
        name = _escaped(user.display_name)
        try:
            await self.db.add_subscription(
                guild.id,
                target.id,
                record,
                added_by=interaction.user.id,
                ping=ping_choice.value if ping_choice else None,
                message_template=template,
                games=categories,
            )
        except AlreadySubscribed:
            await reply(interaction, f"**{name}** is already announced in {target.mention}. Nothing changed.")
            return
        text = f"Now following **{name}** (twitch.tv/{user.login}). I'll announce in {target.mention} when they go live"
        text += f", only while they stream {', '.join(c.name for c in categories)}." if categories else "."
        if existing:
            text += f" They are also announced in {', '.join(f'<#{sub.channel_id}>' for sub in existing)}."
        if ping_choice is not None:
            text += _ping_warning(guild, ping_choice)
        await reply(interaction, text)

    @app_commands.command(
        name="editstreamer", description="Change a followed streamer's channel, ping, message or games"
    )
    @app_commands.describe(
        streamer="The entry to change",
        channel="Move its announcements to this channel",
        ping="none, @everyone, @here, a role, or default (the server's setting)",
        message="Its own message above the card, or default (the server's message)",
        games="Only announce in these categories (comma-separated), or any",
    )
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
    ) -> None:
        guild = _guild(interaction)
        if channel is None and ping is None and message is None and games is None:
            await reply(interaction, "Nothing to change: give a `channel`, `ping`, `message` or `games`.")
            return
        sub, problem = await self._target_subscription(guild, streamer)
        if sub is None:
            await reply(interaction, problem)
            return
        changes: dict[str, object] = {}
        notes: list[str] = []
        try:
            if ping is not None:
                choice = None if self._is_default(ping) else self._parse_ping(guild, ping)
                changes["ping"] = choice.value if choice else None
                notes.append(f"ping: {describe_ping(choice.value) if choice else 'the server’s setting'}")
                if choice is not None and (warning := _ping_warning(guild, choice)):
                    notes.append(warning.strip())
            if message is not None:
                changes["message_template"] = None if self._is_default(message) else validate_template(message)
                notes.append("message: " + ("the server’s" if changes["message_template"] is None else "its own"))
            game_names = parse_game_list(games) if games is not None else None
        except TemplateError as exc:
            await reply(interaction, str(exc))
            return
        if channel is not None and channel.id != sub.channel_id:
            target, refusal = _announcement_channel(guild, channel.id)
            if target is None:
                await reply(interaction, refusal)
                return
            changes["channel_id"] = target.id
            notes.append(f"channel: {target.mention}")
        if games is not None:
            if game_names is None:
                changes["games"] = None
                notes.append("games: any")
            else:
                await interaction.response.defer(ephemeral=True, thinking=True)
                try:
                    changes["games"] = categories = await self._resolve_games(game_names)
                except TemplateError as exc:
                    await reply(interaction, str(exc))
                    return
                except TwitchError as exc:
                    _log.warning("Twitch category lookup failed: %s", exc)
                    await reply(interaction, TWITCH_UNREACHABLE)
                    return
                notes.append("games: only " + ", ".join(c.name for c in categories))
        try:
            await self.db.update_subscription(sub.id, **changes)  # type: ignore[arg-type]
        except AlreadySubscribed:
            await reply(
                interaction,
                f"**{_escaped(sub.streamer.display_name)}** is already announced in <#{changes['channel_id']}>. "
                "Nothing changed.",
            )
            return
        await reply(
            interaction,
            f"Updated **{_escaped(sub.streamer.display_name)}** (announced in "
            f"<#{changes.get('channel_id', sub.channel_id)}>): " + "; ".join(notes) + ".",
        )

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
        guild = _guild(interaction)
        # Autocomplete sends `sub:<id>`; a typed name may be a login, a URL or a display name.
        sub, problem = await self._target_subscription(guild, streamer, channel)
        removed = await self.db.remove_subscription_by_id(guild.id, sub.id) if sub else None
        if removed is None:
            await reply(interaction, problem or NOT_FOLLOWED)
            return
        others = await self.db.find_subscriptions(guild.id, removed.streamer.twitch_user_id)
        text = f"Stopped following **{_escaped(removed.streamer.display_name)}**"
        if others:
            text += f" in <#{removed.channel_id}>; still announced in " + ", ".join(
                f"<#{o.channel_id}>" for o in others
            )
        await reply(interaction, text + ".")

    @removestreamer.autocomplete("streamer")
    async def _removestreamer_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._subscription_choices(interaction, current)

    @editstreamer.autocomplete("streamer")
    async def _editstreamer_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._subscription_choices(interaction, current)

    @addstreamer.autocomplete("ping")
    async def _addstreamer_ping(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._ping_choices(interaction, current)

    @editstreamer.autocomplete("ping")
    async def _editstreamer_ping(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._ping_choices(interaction, current)

    @addstreamer.autocomplete("games")
    async def _addstreamer_games(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._games_choices(interaction, current)

    @editstreamer.autocomplete("games")
    async def _editstreamer_games(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._games_choices(interaction, current)

    @app_commands.command(name="streamers", description="List the Twitch streamers this server follows")
    @app_commands.guild_only()
    async def streamers(self, interaction: discord.Interaction) -> None:
        guild = _guild(interaction)
        rows = await self.db.guild_streamers(guild.id)
        if not rows:
            await reply(interaction, "No streamers are followed here yet. Add one with `/addstreamer`.")
            return
        lines = []
        for row in rows:
            sub = row.subscription
            channel = guild.get_channel(sub.channel_id)
            if isinstance(channel, discord.TextChannel):
                mention = channel.mention
                problem = channel_problem(channel) or (
                    f"last announcement failed: {sub.last_error}" if sub.last_error else None
                )
            else:
                mention, problem = "a deleted channel", CHANNEL_DELETED
            if sub.missing_since:
                twitch_problem = (
                    f"Twitch no longer returns this account (since {sub.missing_since[:10]}): "
                    "banned, deleted, or renamed and re-used"
                )
                problem = f"{problem}\n  \N{WARNING SIGN} {twitch_problem}" if problem else twitch_problem
            overrides = overrides_summary(
                sub.ping, sub.message_template, [g.name for g in sub.games] if sub.games is not None else None
            )
            lines.append(streamer_line(sub.streamer, mention, row.live, problem, overrides))
        live_count = len({row.subscription.streamer.twitch_user_id for row in rows if row.live})
        title = f"Followed streamers: {len(rows)} ({live_count} live)"
        await reply_pages(interaction, title, paginate(lines, 4000))

    @app_commands.command(name="live", description="Show which of this server's streamers are live now")
    @app_commands.guild_only()
    async def live(self, interaction: discord.Interaction) -> None:
        guild = _guild(interaction)
        rows = await self.db.guild_streamers(guild.id)
        if not rows:
            await reply(interaction, "No streamers are followed here yet. Add one with `/addstreamer`.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        streamers = {row.subscription.streamer.twitch_user_id: row.subscription.streamer for row in rows}
        channels: dict[str, list[int]] = {}
        for row in rows:
            channels.setdefault(row.subscription.streamer.twitch_user_id, []).append(row.subscription.channel_id)
        note = ""
        live = list({row.live.twitch_user_id: row.live for row in rows if row.live is not None}.values())
        try:
            snapshot = await self.bot.twitch.get_streams(streamers)
        except TwitchError as exc:
            _log.warning("/live could not ask Twitch: %s", exc)
            snapshot = None
        if snapshot is None or snapshot.failed:
            note = "\n\n*Twitch didn't answer just now; this is the state from the last check.*"
        else:
            live = [live_stream_from(stream) for stream in snapshot.streams.values()]
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
        pages = paginate(lines, 4000 - len(note))
        pages[-1] += note
        await reply_pages(interaction, f"Live now: {len(lines)}", pages)

    # -- /settings -------------------------------------------------------------------------------------

    @settings_group.command(name="show", description="Show this server's announcement settings")
    @manage_guild_only
    async def settings_show(self, interaction: discord.Interaction) -> None:
        guild = _guild(interaction)
        settings = await self.db.get_guild_settings(guild.id)
        await reply(interaction, embed=self._settings_embed(settings))

    @settings_group.command(name="set", description="Change this server's announcement settings")
    @app_commands.describe(
        ping="Who to ping when a stream goes live: none, @everyone, @here or a role",
        message="The text above the card; placeholders {streamer} {title} {game} {url} {viewers} {ping}",
        on_end="What happens to the announcement when the stream ends",
        live_updates="Keep the card's title, game, viewers and thumbnail current while live",
    )
    @app_commands.choices(
        on_end=[
            app_commands.Choice(name="edit into a “was live” card", value="edit"),
            app_commands.Choice(name="delete the announcement", value="delete"),
            app_commands.Choice(name="keep it as it is", value="keep"),
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
        guild = _guild(interaction)
        changes: dict[str, object] = {}
        warning = ""
        try:
            if ping is not None:
                choice = self._parse_ping(guild, ping)
                changes["ping"] = choice.value
                warning = _ping_warning(guild, choice)
            if message is not None:
                changes["message_template"] = validate_template(message)
        except TemplateError as exc:
            await reply(interaction, str(exc))
            return
        if on_end is not None:
            changes["end_action"] = on_end.value
        if live_updates is not None:
            changes["live_updates"] = live_updates
        if not changes:
            await reply(interaction, "Nothing to change: give `ping`, `message`, `on_end` or `live_updates`.")
            return
        settings = await self.db.update_guild_settings(guild.id, **changes)
        embeds = [self._settings_embed(settings)]
        if "message_template" in changes or "ping" in changes:
            preview = announcement_content(
                SAMPLE_STREAM, SAMPLE_STREAMER, ping=settings.ping, template=settings.message_template
            )
            embeds.append(discord.Embed(title="Preview", description=preview or "*(no text)*", colour=TWITCH_PURPLE))
        await reply(interaction, "Settings saved." + warning, embeds=embeds)

    @settings_set.autocomplete("ping")
    async def _settings_ping(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._ping_choices(interaction, current)

    @settings_group.command(name="reset", description="Put one of this server's settings (or all) back to default")
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
        guild = _guild(interaction)
        names = (
            ["ping", "message_template", "end_action", "live_updates"] if setting.value == "all" else [setting.value]
        )
        settings = await self.db.reset_guild_settings(guild.id, names)
        await reply(interaction, f"Reset {setting.name} to the default.", embed=self._settings_embed(settings))

    @staticmethod
    def _settings_embed(settings: GuildSettings) -> discord.Embed:
        embed = discord.Embed(title="Announcement settings", colour=TWITCH_PURPLE)
        channel = f"<#{settings.announce_channel_id}>" if settings.announce_channel_id else "not set (`/setchannel`)"
        template = settings.message_template or DEFAULT_TEMPLATE
        embed.add_field(name="Channel", value=channel, inline=True)
        embed.add_field(name="Ping", value=describe_ping(settings.ping), inline=True)
        embed.add_field(
            name="When the stream ends", value=END_ACTION_LABELS.get(settings.end_action, "?"), inline=False
        )
        embed.add_field(name="Live updates", value="on" if settings.live_updates else "off", inline=True)
        shown = template.replace("`", "ˋ")
        embed.add_field(
            name="Message" + ("" if settings.message_template else " (default)"),
            value=f"`{shown}`"[:1024],
            inline=False,
        )
        return embed


# -- start-up ---------------------------------------------------------------------------------------
