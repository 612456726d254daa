"""The Discord bot: TwitchNotifierBot, the announcer, the poll loop wiring, start-up and `main()`.

The slash commands live in slash_commands.py, the helpers both share in discord_common.py.

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
from collections.abc import Awaitable, Sequence

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands, tasks

from config import ConfigError, Settings, load_settings
from database import (
    Category,
    Database,
    DatabaseError,
    LiveStream,
    Streamer,
)
from discord_common import (
    CHANNEL_DELETED,
    NO_MENTIONS,
    channel_problem,
    reply,
    streamer_from_user,
)
from health_server import HealthServer, HealthStatus, evaluate_health
from messages import (
    Announcement,
)
from metrics import Metrics
from notifier import AnnounceError, CycleReport, MessageGone, Notifier, Poller
from send_pacer import SendPacer
from slash_commands import StreamerCommands
from twitch_api import TwitchAuthError, TwitchClient, TwitchError

_log = logging.getLogger("bot")  # not __name__: run as a script it would read "__main__"

TOKEN_VALIDATION_INTERVAL = 3600.0
SHUTDOWN_CYCLE_GRACE = 10.0  # fly.toml's kill_timeout (30 s) leaves room for this and the rest of shutdown
STREAMER_REFRESH_INTERVAL = 6 * 3600.0


def _allowed_mentions(data: dict) -> discord.AllowedMentions:
    """Discord's allowed_mentions JSON (from messages.py) as discord.py's object: nothing beyond it."""
    roles = [discord.Object(int(role_id)) for role_id in data.get("roles", [])]
    return discord.AllowedMentions(
        everyone="everyone" in data.get("parse", []), users=False, roles=roles or False, replied_user=False
    )


def _link_view(components: list[dict]) -> discord.ui.View:
    """Link buttons (style 5) from Discord's component JSON; they need no interaction handling."""
    view = discord.ui.View(timeout=None)
    for row in components:
        for item in row.get("components", []):
            if item.get("type") == 2 and item.get("style") == 5:
                view.add_item(discord.ui.Button(style=discord.ButtonStyle.link, label=item["label"], url=item["url"]))
    return view


class DiscordAnnouncer:
    """Posts, edits and deletes announcements through discord.py; turns Discord's failures into
    AnnounceError (MessageGone when the message or its channel no longer exists)."""

    def __init__(self, bot: commands.Bot, pacer: SendPacer | None = None) -> None:
        self._bot = bot
        # discord.py only reacts to Discord's global limit (50 requests/s per bot token) after a 429;
        # pacing keeps a fan-out to thousands of servers under it instead of into a 429 storm.
        self._pacer = pacer or SendPacer()

    async def announce(
        self,
        channel_id: int,
        stream: LiveStream,
        streamer: Streamer,
        *,
        nonce: str,
        message: Announcement,
        guild_id: int,
    ) -> int:
        channel = self._channel(guild_id, channel_id)
        if not isinstance(channel, discord.TextChannel):
            raise AnnounceError(CHANNEL_DELETED, permanent=True)
        problem = channel_problem(channel)
        if problem:
            raise AnnounceError(problem, permanent=True)
        await self._pacer.acquire()
        try:
            posted = await channel.send(
                content=message.content or None,
                embed=discord.Embed.from_dict(message.embed),
                view=_link_view(message.components),
                allowed_mentions=_allowed_mentions(message.allowed_mentions),
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
        return posted.id

    async def edit(self, channel_id: int, message_id: int, message: Announcement, *, guild_id: int) -> None:
        partial = self._partial(guild_id, channel_id, message_id)
        await self._pacer.acquire()
        await self._call(
            partial.edit(
                content=message.content,
                embed=discord.Embed.from_dict(message.embed),
                view=_link_view(message.components),
                allowed_mentions=_allowed_mentions(message.allowed_mentions),
            )
        )

    async def delete(self, channel_id: int, message_id: int, *, guild_id: int) -> None:
        partial = self._partial(guild_id, channel_id, message_id)
        await self._pacer.acquire()
        await self._call(partial.delete())

    def _channel(self, guild_id: int, channel_id: int) -> discord.abc.GuildChannel | None:
        # Not bot.get_channel(): it scans every guild, which makes a fan-out to G guilds cost O(G²).
        guild = self._bot.get_guild(guild_id)
        return guild.get_channel(channel_id) if guild is not None else None

    def _partial(self, guild_id: int, channel_id: int, message_id: int) -> discord.PartialMessage:
        channel = self._channel(guild_id, channel_id)
        if not isinstance(channel, discord.TextChannel):
            raise MessageGone("its channel was deleted")
        return channel.get_partial_message(message_id)

    @staticmethod
    async def _call(request: Awaitable[object]) -> None:
        try:
            await request
        except discord.NotFound as exc:
            raise MessageGone(f"Discord answered 404: {exc.text}") from exc
        except discord.Forbidden as exc:
            raise AnnounceError(f"Discord refused: {exc.text or 'forbidden'}", permanent=True) from exc
        except discord.HTTPException as exc:
            raise AnnounceError(f"Discord answered {exc.status}: {exc.text}", permanent=False) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AnnounceError(f"could not reach Discord: {exc!r}", permanent=False) from exc


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
        self.notifier = Notifier(
            db,
            DiscordAnnouncer(self),
            offline_after_polls=settings.offline_after_polls,
            vod_lookup=twitch.find_vod_url,
            art_lookup=self._fetch_box_art,
        )
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
        # Guilds that removed the bot while it was offline: READY lists every guild the bot is in (an
        # unavailable one too), so anything else the database holds is gone for good.
        for guild_id in await self.db.guild_ids() - {guild.id for guild in self.guilds}:
            await self.db.delete_guild(guild_id)
            _log.info("Removed from guild %s while offline: its streamers and settings were deleted", guild_id)

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

    async def _fetch_box_art(self, game_ids: list[str]) -> list[Category]:
        games = await self.twitch.get_games(game_ids)
        return [Category(g.id, g.name, g.box_art_url) for g in games]

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
        # Announcement records are kept 30 days (a stream id never repeats within that), then forgotten,
        # so the table stays the size of a month of streams.
        pruned = await self.notifier.prune()
        if pruned:
            _log.info("Forgot %d announcement records older than 30 days", pruned)

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
            await reply(interaction, text)
        except discord.HTTPException:
            _log.warning("Could not report a command error to the user", exc_info=True)


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
