"""The Discord bot: TwitchNotifierBot, its slash commands, the poll loop wiring, and `main()`.

Run with `python bot.py`; configuration comes from the environment or `.env` (see config.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands, tasks

from config import ConfigError, Settings, load_settings
from database import AlreadySubscribed, Database, DatabaseError, LiveStream, Streamer
from health_server import HealthServer, HealthStatus, evaluate_health
from live_tracker import live_stream_from
from messages import live_announcement, live_line, paginate, streamer_line
from metrics import Metrics
from notifier import AnnounceError, CycleReport, Notifier, Poller
from twitch_api import InvalidLogin, TwitchAuthError, TwitchClient, TwitchError, TwitchUser, parse_login

_log = logging.getLogger(__name__)

TOKEN_VALIDATION_INTERVAL = 3600.0
SHUTDOWN_CYCLE_GRACE = 10.0  # fly.toml's kill_timeout (30 s) leaves room for this and the rest of shutdown
STREAMER_REFRESH_INTERVAL = 6 * 3600.0
CHANNEL_DELETED = "the announcement channel was deleted; pick another with /setchannel or /addstreamer"
NO_MENTIONS = discord.AllowedMentions.none()
# What the bot needs in an announcement channel, with the names Discord's UI shows.
REQUIRED_CHANNEL_PERMISSIONS = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
}


def missing_channel_permissions(channel: discord.abc.GuildChannel) -> list[str]:
    """The permissions the bot lacks in `channel` to post an announcement, in Discord's words."""
    permissions = channel.permissions_for(channel.guild.me)
    return [label for name, label in REQUIRED_CHANNEL_PERMISSIONS.items() if not getattr(permissions, name)]


def channel_problem(channel: discord.abc.GuildChannel) -> str | None:
    missing = missing_channel_permissions(channel)
    if missing:
        return f"can't post in #{channel.name}: missing {', '.join(missing)}"
    return None


def streamer_from_user(user: TwitchUser) -> Streamer:
    return Streamer(
        twitch_user_id=user.id,
        login=user.login,
        display_name=user.display_name,
        profile_image_url=user.profile_image_url,
    )


class DiscordAnnouncer:
    """Posts announcements through discord.py; turns Discord's failures into AnnounceError."""

    def __init__(self, bot: commands.Bot) -> None:
        self._bot = bot

    async def announce(self, channel_id: int, stream: LiveStream, streamer: Streamer, *, nonce: str) -> int:
        channel = self._bot.get_channel(channel_id)
        if not isinstance(channel, discord.TextChannel):
            raise AnnounceError(CHANNEL_DELETED, permanent=True)
        problem = channel_problem(channel)
        if problem:
            raise AnnounceError(problem, permanent=True)
        rendered = live_announcement(stream, streamer)
        try:
            message = await channel.send(
                content=rendered.content,
                embed=discord.Embed.from_dict(rendered.embed),
                allowed_mentions=NO_MENTIONS,
                nonce=nonce,
            )
        except discord.NotFound as exc:
            raise AnnounceError(CHANNEL_DELETED, permanent=True) from exc
        except discord.Forbidden as exc:
            raise AnnounceError(f"can't post in #{channel.name}: {exc.text or 'forbidden'}", permanent=True) from exc
        except discord.HTTPException as exc:
            raise AnnounceError(f"Discord answered {exc.status}: {exc.text}", permanent=False) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AnnounceError(f"could not reach Discord: {exc!r}", permanent=False) from exc
        return message.id


async def _reply(interaction: discord.Interaction, text: str | None = None, **kwargs: object) -> None:
    """Answer ephemerally, whether or not the interaction was already deferred."""
    kwargs.setdefault("allowed_mentions", NO_MENTIONS)
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, **kwargs)  # type: ignore[arg-type]
    else:
        await interaction.response.send_message(text, ephemeral=True, **kwargs)  # type: ignore[arg-type]


async def _reply_pages(interaction: discord.Interaction, title: str, pages: Sequence[str]) -> None:
    for index, page in enumerate(pages):
        heading = title if len(pages) == 1 else f"{title} ({index + 1}/{len(pages)})"
        embed = discord.Embed(title=heading, description=page, colour=discord.Colour(0x9146FF))
        await _reply(interaction, embed=embed)


class TwitchNotifierBot(commands.Bot):
    """Announces Twitch streams going live in the Discord servers that follow them."""

    def __init__(self, settings: Settings, db: Database, twitch: TwitchClient, metrics: Metrics | None = None) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channel and permission cache; nothing privileged is needed
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
        )
        self.settings = settings
        self.db = db
        self.twitch = twitch
        self.notifier = Notifier(db, DiscordAnnouncer(self), offline_after_polls=settings.offline_after_polls)
        self.poller = Poller(db, twitch, self.notifier)
        # run() validates the token at start-up; the loop does it again every hour.
        self._last_token_validation = time.monotonic()
        self._last_streamer_refresh = 0.0
        self._cycle_lock = asyncio.Lock()
        self._shutting_down = False
        self.metrics = metrics or Metrics()
        self.started_at = time.time()

    async def setup_hook(self) -> None:
        await self.add_cog(StreamerCommands(self))
        self.tree.on_error = self.on_app_command_error
        synced = await self.tree.sync()
        _log.info("Synced %d slash commands", len(synced))
        self.poll_loop.change_interval(seconds=self.settings.check_interval_seconds)
        self.poll_loop.start()

    async def close(self) -> None:
        """Shut down: let a poll cycle in flight finish (bounded), then close the gateway and HTTP."""
        self._shutting_down = True
        if self._cycle_lock.locked():
            _log.info("Waiting up to %s s for the poll cycle in flight to finish", SHUTDOWN_CYCLE_GRACE)
            try:
                await asyncio.wait_for(self._cycle_lock.acquire(), SHUTDOWN_CYCLE_GRACE)
            except TimeoutError:
                _log.warning("The poll cycle did not finish in time; abandoning it (its state is saved per post)")
            else:
                self._cycle_lock.release()
        # No await between the check above and this cancel: no new cycle can start in between.
        self.poll_loop.cancel()
        await super().close()

    def health(self) -> HealthStatus:
        ws = self.ws
        return evaluate_health(
            gateway_connected=self.is_ready() and not self.is_closed() and ws is not None and ws.open,
            last_cycle_finished=self.poller.last_success,
            started_at=self.started_at,
            interval=self.settings.check_interval_seconds,
            now=time.time(),
        )

    async def on_ready(self) -> None:
        _log.info("Connected as %s in %d guilds", self.user, len(self.guilds))

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.db.delete_guild(guild.id)
        _log.info("Removed from guild %s (%s): its streamers and settings were deleted", guild.name, guild.id)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        moved, marked = await self.db.channel_deleted(channel.guild.id, channel.id, CHANNEL_DELETED)
        if moved or marked:
            _log.info(
                "Channel %s of guild %s was deleted: %d subscriptions moved to the default channel, %d marked",
                channel.id,
                channel.guild.id,
                moved,
                marked,
            )

    # -- the poll loop -----------------------------------------------------------------------------

    @tasks.loop(seconds=90)
    async def poll_loop(self) -> None:
        await self.poll_now()

    @poll_loop.before_loop
    async def _before_poll_loop(self) -> None:
        await self.wait_until_ready()

    async def poll_now(self) -> None:
        """Run one cycle; any failure is logged and the next cycle runs as usual."""
        if self._shutting_down:
            return
        async with self._cycle_lock:
            started = time.monotonic()
            try:
                await self._validate_token_if_due()
                report = await self.poller.run_cycle()
            except Exception:
                self.metrics.observe_cycle(time.monotonic() - started, False, 0, 0)
                _log.exception("Poll cycle failed; the next one runs in %s s", self.settings.check_interval_seconds)
                return
            self._record_cycle(report)
            try:
                await self._refresh_streamers_if_due()
            except Exception:
                _log.exception("Refreshing streamer names failed; it is tried again next cycle")

    def _record_cycle(self, report: CycleReport) -> None:
        self.metrics.observe_cycle(report.duration, True, report.announced, report.announce_failed)
        if self.poller.last_success is not None:
            self.metrics.mark_success(self.poller.last_success)
        self.metrics.set_counts(
            streamers=report.checked + report.failed, guilds=len(self.guilds), live_streams=report.live
        )
        if report.started or report.ended or report.announced or report.announce_failed or report.failed:
            _log.info(
                "Poll: %d checked, %d live, %d started, %d ended, %d announced, %d failed to post, "
                "%d unknown (Twitch errors), %.2f s",
                report.checked,
                report.live,
                report.started,
                report.ended,
                report.announced,
                report.announce_failed,
                report.failed,
                report.duration,
            )

    async def _validate_token_if_due(self) -> None:
        # Twitch asks apps that keep a session to validate their token at start-up and hourly.
        now = time.monotonic()
        if now - self._last_token_validation < TOKEN_VALIDATION_INTERVAL:
            return
        self._last_token_validation = now
        try:
            await self.twitch.validate_token()
        except TwitchError as exc:
            _log.warning("Could not validate the Twitch token: %s", exc)

    async def _refresh_streamers_if_due(self) -> None:
        # Renames are also picked up from live streams; this catches offline renames, new avatars, and
        # users Twitch no longer returns (banned or deleted), which /streamers then flags.
        now = time.monotonic()
        if self._last_streamer_refresh and now - self._last_streamer_refresh < STREAMER_REFRESH_INTERVAL:
            return
        user_ids = await self.db.monitored_user_ids()
        try:
            users = await self.twitch.get_users(ids=user_ids)
        except TwitchError as exc:
            _log.warning("Could not refresh streamer names from Twitch: %s", exc)
            return
        self._last_streamer_refresh = now
        found = {user.id for user in users}
        missing = [user_id for user_id in user_ids if user_id not in found]
        if missing:
            _log.warning("Twitch no longer returns %d followed users (banned or deleted): %s", len(missing), missing)
        await self.db.refresh_streamers((streamer_from_user(user) for user in users), missing)

    # -- errors ------------------------------------------------------------------------------------

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.MissingPermissions):
            text = "You need the **Manage Server** permission to use this command."
        elif isinstance(error, app_commands.NoPrivateMessage):
            text = "This command only works in a server."
        elif isinstance(error, app_commands.CheckFailure):
            text = "You can't use this command here."
        else:
            original = getattr(error, "original", error)
            command = interaction.command.qualified_name if interaction.command else "?"
            _log.error("Command /%s failed", command, exc_info=original)
            text = "Something went wrong on my side. Please try again in a moment."
        try:
            await _reply(interaction, text)
        except discord.HTTPException:
            _log.warning("Could not report a command error to the user", exc_info=True)


manage_guild_only = app_commands.checks.has_permissions(manage_guild=True)


def _guild(interaction: discord.Interaction) -> discord.Guild:
    # Every command is guild-only; Discord enforces it and this keeps the type checker and DMs honest.
    if interaction.guild is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild


class StreamerCommands(commands.Cog):
    """The slash commands: /setchannel, /addstreamer, /removestreamer, /streamers, /live."""

    def __init__(self, bot: TwitchNotifierBot) -> None:
        self.bot = bot
        self.db = bot.db

    @app_commands.command(name="setchannel", description="Set the channel where live announcements are posted")
    @app_commands.describe(channel="The text channel for announcements")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def setchannel(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        guild = _guild(interaction)
        target = guild.get_channel(channel.id)
        if not isinstance(target, discord.TextChannel):
            await _reply(interaction, "I can't see that channel. Pick a text channel I have access to.")
            return
        problem = channel_problem(target)
        if problem:
            await _reply(interaction, f"I {problem}. Give me those permissions there, or pick another channel.")
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
        await _reply(interaction, text)

    @app_commands.command(name="addstreamer", description="Announce when a Twitch streamer goes live")
    @app_commands.describe(
        streamer="Twitch login or channel URL, e.g. shroud or twitch.tv/shroud",
        channel="Where to announce (defaults to the channel set with /setchannel)",
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def addstreamer(
        self, interaction: discord.Interaction, streamer: str, channel: discord.TextChannel | None = None
    ) -> None:
        guild = _guild(interaction)
        try:
            login = parse_login(streamer)
        except InvalidLogin as exc:
            await _reply(interaction, str(exc))
            return

        channel_id = channel.id if channel else await self.db.get_announce_channel(guild.id)
        if channel_id is None:
            await _reply(
                interaction,
                "There is no announcement channel yet. Run `/setchannel` first, "
                "or give a channel: `/addstreamer streamer:… channel:#…`.",
            )
            return
        target = guild.get_channel(channel_id)
        if not isinstance(target, discord.TextChannel):
            await _reply(
                interaction,
                "The announcement channel set with `/setchannel` no longer exists. Run `/setchannel` again, "
                "or give a channel with this command.",
            )
            return
        problem = channel_problem(target)
        if problem:
            await _reply(interaction, f"I {problem}. Give me those permissions there, or pick another channel.")
            return
        existing = await self.db.find_subscription(guild.id, login)
        if existing is not None and (existing.last_error or guild.get_channel(existing.channel_id) is None):
            # Adding again is how an admin repairs a streamer whose channel broke.
            await self.db.set_subscription_channel(existing.id, target.id)
            await _reply(
                interaction,
                f"**{discord.utils.escape_markdown(existing.streamer.display_name)}** was already followed but "
                f"could not be announced; announcements now go to {target.mention}.",
            )
            return
        if existing is not None:
            await _reply(
                interaction,
                f"**{discord.utils.escape_markdown(existing.streamer.display_name)}** is already followed here "
                f"(announced in <#{existing.channel_id}>). Nothing changed.",
            )
            return
        limit = self.bot.settings.max_streamers_per_guild
        if await self.db.count_subscriptions(guild.id) >= limit:
            await _reply(
                interaction,
                f"This server already follows {limit} streamers, the most allowed. Remove one with "
                "`/removestreamer` first.",
            )
            return

        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            user = await self.bot.twitch.get_user(login)
        except TwitchError as exc:
            _log.warning("Twitch lookup of %r failed: %s", login, exc)
            await _reply(interaction, "I couldn't reach Twitch just now. Please try again in a minute.")
            return
        if user is None:
            await _reply(interaction, f"There is no Twitch channel named **{login}**. Check the spelling.")
            return
        record = streamer_from_user(user)
        name = discord.utils.escape_markdown(user.display_name)
        try:
            await self.db.add_subscription(guild.id, target.id, record, added_by=interaction.user.id)
        except AlreadySubscribed:
            await _reply(interaction, f"**{name}** is already followed here. Nothing changed.")
            return
        await _reply(
            interaction,
            f"Now following **{name}** (twitch.tv/{user.login}). I'll announce in {target.mention} when they go live.",
        )

    @app_commands.command(name="removestreamer", description="Stop announcing a Twitch streamer")
    @app_commands.describe(streamer="The streamer to remove")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_guild_only
    async def removestreamer(self, interaction: discord.Interaction, streamer: str) -> None:
        guild = _guild(interaction)
        query = streamer.strip()
        # Autocomplete sends the user id; a typed name may be a login, a URL or a display name.
        with contextlib.suppress(InvalidLogin):
            query = parse_login(query)
        removed = await self.db.remove_subscription(guild.id, query)
        if removed is None:
            await _reply(interaction, "That streamer isn't followed here. `/streamers` shows the list.")
            return
        await _reply(interaction, f"Stopped following **{discord.utils.escape_markdown(removed.display_name)}**.")

    @removestreamer.autocomplete("streamer")
    async def _removestreamer_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        found = await self.db.search_guild_streamers(interaction.guild_id, current)
        return [
            app_commands.Choice(
                name=s.display_name if s.display_name.lower() == s.login else f"{s.display_name} ({s.login})",
                value=s.twitch_user_id,
            )
            for s in found
        ]

    @app_commands.command(name="streamers", description="List the Twitch streamers this server follows")
    @app_commands.guild_only()
    async def streamers(self, interaction: discord.Interaction) -> None:
        guild = _guild(interaction)
        rows = await self.db.guild_streamers(guild.id)
        if not rows:
            await _reply(interaction, "No streamers are followed here yet. Add one with `/addstreamer`.")
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
            lines.append(streamer_line(sub.streamer, mention, row.live, problem))
        live_count = sum(1 for row in rows if row.live)
        title = f"Followed streamers: {len(rows)} ({live_count} live)"
        await _reply_pages(interaction, title, paginate(lines, 4000))

    @app_commands.command(name="live", description="Show which of this server's streamers are live now")
    @app_commands.guild_only()
    async def live(self, interaction: discord.Interaction) -> None:
        guild = _guild(interaction)
        rows = await self.db.guild_streamers(guild.id)
        if not rows:
            await _reply(interaction, "No streamers are followed here yet. Add one with `/addstreamer`.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        streamers = {row.subscription.streamer.twitch_user_id: row.subscription.streamer for row in rows}
        note = ""
        live: list[LiveStream] = [row.live for row in rows if row.live is not None]
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
            await _reply(interaction, "None of this server's streamers are live right now." + note)
            return
        live.sort(key=lambda s: s.viewer_count, reverse=True)
        lines = [live_line(streamers[s.twitch_user_id], s) for s in live if s.twitch_user_id in streamers]
        pages = paginate(lines, 4000 - len(note))
        pages[-1] += note
        await _reply_pages(interaction, f"Live now: {len(lines)}", pages)


# -- start-up ---------------------------------------------------------------------------------------


class SecretRedactor(logging.Filter):
    """Last line of defence: replace any secret that slipped into a log record."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s"))
    handler.addFilter(SecretRedactor(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("discord.http").setLevel(logging.WARNING)
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, root.level))


def use_discord_endpoints(settings: Settings) -> None:
    """Point discord.py at a Discord mock when configured (the test suite's fake Discord)."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


async def run(settings: Settings) -> int:
    """Open the database and Twitch client, run the bot until it stops; returns the exit status."""
    use_discord_endpoints(settings)
    try:
        db = await Database.open(settings.database_path)
    except DatabaseError as exc:
        _log.error("DATABASE_PATH: %s", exc)
        return 1
    metrics = Metrics()
    health_server: HealthServer | None = None
    try:
        async with TwitchClient(
            settings.twitch_client_id,
            settings.twitch_client_secret,
            api_base=settings.twitch_api_base,
            auth_base=settings.twitch_auth_base,
            on_response=metrics.observe_twitch_response,
        ) as twitch:
            try:
                await twitch.validate_token()
            except TwitchAuthError as exc:
                _log.error(
                    "Twitch refused TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET (%s). Check both at "
                    "https://dev.twitch.tv/console/apps",
                    exc,
                )
                return 2
            except TwitchError as exc:
                _log.warning("Twitch is not reachable at start-up (%s); the bot starts and keeps trying", exc)
            bot = TwitchNotifierBot(settings, db, twitch, metrics)
            health_server = HealthServer(
                host=settings.http_host, port=settings.http_port, health=bot.health, metrics=metrics
            )
            try:
                await health_server.start()
            except OSError as exc:
                _log.error(
                    "HTTP_PORT %s on HTTP_HOST %s cannot be used: %s", settings.http_port, settings.http_host, exc
                )
                return 2
            _log.info("Health and metrics on http://%s:%d/healthz and /metrics", settings.http_host, health_server.port)
            stopping = _stop_on_signals(bot)
            async with bot:
                try:
                    await bot.start(settings.discord_token)
                except discord.LoginFailure:
                    _log.error(
                        "Discord refused DISCORD_TOKEN. Copy the bot token again from "
                        "https://discord.com/developers/applications -> your application -> Bot"
                    )
                    return 2
                except discord.PrivilegedIntentsRequired:
                    _log.error("Discord refused the gateway intents; this bot needs none of the privileged ones")
                    return 2
            for task in stopping:
                await task
    finally:
        if health_server is not None:
            await health_server.stop()
        await db.close()
        _log.info("Shut down cleanly")
    return 0


def _stop_on_signals(bot: TwitchNotifierBot) -> set[asyncio.Task]:
    """SIGTERM (Fly, Docker) and SIGINT (Ctrl-C) close the bot gracefully instead of killing it."""
    loop = asyncio.get_running_loop()
    tasks_: set[asyncio.Task] = set()

    def request_stop(name: str) -> None:
        if tasks_:
            return
        _log.info("Received %s: shutting down", name)
        tasks_.add(loop.create_task(bot.close(), name="shutdown"))

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
            loop.add_signal_handler(sig, request_stop, sig.name)
    return tasks_


def check_configuration(settings: Settings) -> int:
    """`python bot.py --check`: validate what can be validated without connecting anywhere."""
    directory = os.path.dirname(os.path.abspath(settings.database_path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        print(  # noqa: T201 - a command-line answer, not a log line
            f"DATABASE_PATH {settings.database_path!r}: the directory {directory!r} does not exist or is not writable",
            file=sys.stderr,
        )
        return 2
    print(f"Configuration OK: {settings}")  # noqa: T201 - secrets are hidden by Settings.__repr__
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # noqa: T201 - logging is not configured before settings exist
        return 2
    if args == ["--check"]:
        return check_configuration(settings)
    if args:
        print("usage: python bot.py [--check]", file=sys.stderr)  # noqa: T201
        return 2
    setup_logging(settings.log_level, settings.secrets)
    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
