"""Start-up and shutdown: `main()` reads the settings, `run()` opens the database, the Twitch client and
the health server, runs the bot until a signal stops it, and turns an operator's mistake into one precise
message and exit status 2. `python bot.py --check` validates the configuration without connecting."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from bot import TwitchNotifierBot
from config import ConfigError, Settings, describe_check, load_settings, redact_database_url
from database import Database, DatabaseError, DatabaseLocked, open_database
from twitch_api import TwitchAuthError, TwitchClient, TwitchError
from twitch_notifier.app.build import build_bot, build_twitch_client
from twitch_notifier.app.logs import setup_logging
from twitch_notifier.app.signals import stop_on_signals
from twitch_notifier.discord_io.endpoints import use_discord_endpoints
from twitch_notifier.discord_io.session import SessionEnd, run_session
from twitch_notifier.ops.health import HealthServer
from twitch_notifier.ops.metrics import Metrics

__all__ = ["EXIT_MISCONFIGURED", "EXIT_OK", "check_configuration", "main", "run"]

_log = logging.getLogger(__name__)

BotBuilder = Callable[[Settings, Database, TwitchClient, Metrics], TwitchNotifierBot]
"""Builds the bot from its parts (app.build.build_bot; the benchmarks pass one with their options)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MISCONFIGURED = 2
"""The operator has something to fix (a variable, a token, a port); restarting will not help."""
_SHARDING_REFUSED = {
    SessionEnd.SHARDING_REQUIRED: "Discord refused the gateway: 4011 Sharding required (set SHARD_COUNT higher)",
    SessionEnd.INVALID_SHARD: "Discord refused the gateway: 4010 Invalid shard (check SHARD_COUNT and SHARD_IDS)",
}
"""Refusals after IDENTIFY: restarting would spend one of Discord's 1,000 daily session starts per shard each time
(running out resets the bot's token), so the process waits for the operator instead of exiting."""


def _build(settings: Settings, db: Database, twitch: TwitchClient, metrics: Metrics) -> TwitchNotifierBot:
    return build_bot(settings, db, twitch, metrics=metrics)


async def run(settings: Settings, *, builder: BotBuilder = _build) -> int:
    """Open the database and Twitch client, run the bot until it stops; returns the exit status."""
    use_discord_endpoints(settings.discord_api_base, settings.discord_gateway_url)
    db = await _open_store(settings)
    if isinstance(db, int):
        return db
    metrics = Metrics()
    health_server: HealthServer | None = None
    try:
        async with build_twitch_client(settings, metrics) as twitch:
            try:
                await twitch.validate_token()
            except TwitchAuthError as exc:
                _log.error(
                    "Twitch refused TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET (%s). Check both at "
                    "https://dev.twitch.tv/console/apps",
                    exc,
                )
                return EXIT_MISCONFIGURED
            except TwitchError as exc:
                _log.warning("Twitch is not reachable at start-up (%s); the bot starts and keeps trying", exc)
            bot = builder(settings, db, twitch, metrics)
            receiver = bot.push.receiver if bot.push is not None else None
            health_server = HealthServer(
                host=settings.http_host,
                port=settings.http_port,
                health=bot.health,
                metrics=metrics,
                routes=[("POST", receiver.path, receiver.handle)] if receiver is not None else (),
            )
            try:
                await health_server.start()
            except OSError as exc:
                _log.error(
                    "HTTP_PORT %s on HTTP_HOST %s cannot be used: %s", settings.http_port, settings.http_host, exc
                )
                return EXIT_MISCONFIGURED
            _log.info(
                "Health and metrics on http://%s:%d/healthz and /metrics",
                settings.http_host or "*",
                health_server.port,
            )
            stopped = asyncio.Event()

            async def stop() -> None:
                stopped.set()
                await bot.close()

            stopping = stop_on_signals(stop)
            _log.info("Discord shards: %s", settings.shard_plan)
            try:
                await bot.start_coordinator()
            except Exception as exc:  # asyncpg's errors, OSError: the database is not reachable
                if stopped.is_set():
                    return EXIT_OK  # stopped while it waited for a shard another process still ran
                _log.error("DATABASE_URL: cannot hold this process's shard locks on the database: %s", exc)
                return EXIT_FAILED
            async with bot:
                end = await run_session(bot, settings.discord_token)
            if end in _SHARDING_REFUSED:
                # No exit: Fly restarts a process that exits (exit status 2 included), and every restart would
                # IDENTIFY again. /healthz says why until the operator fixes the variable and restarts.
                bot.gateway_problem = _SHARDING_REFUSED[end]
                _log.warning(
                    "Staying up without a Discord connection until restarted (each restart would spend session "
                    "starts on a refused IDENTIFY); /healthz reports it meanwhile"
                )
                await stopped.wait()
            status = _exit_status(end)
            if bot.fatal_problem is not None:
                _log.error("Stopped: %s; exiting for the supervisor to restart this process", bot.fatal_problem)
                status = EXIT_FAILED
            for task in stopping:
                await task
            return status
    finally:
        if health_server is not None:
            await health_server.stop()
        await db.close()
        _log.info("Shut down cleanly")


async def _open_store(settings: Settings) -> Database | int:
    """The database (SQLite at DATABASE_PATH, or PostgreSQL at DATABASE_URL), or the exit status when it cannot
    be used, after one line naming the variable."""
    variable = "DATABASE_URL" if settings.database_url else "DATABASE_PATH"
    try:
        db = await open_database(settings.database_path, settings.database_url or None)
    except DatabaseLocked as exc:
        # Two bots on one file would poll and post everything twice: the second one refuses to start.
        _log.error("%s: %s", variable, exc)
        return EXIT_MISCONFIGURED
    except DatabaseError as exc:
        _log.error("%s: %s", variable, exc)
        return EXIT_FAILED
    if settings.database_url:
        _log.info("Database: PostgreSQL at %s", redact_database_url(settings.database_url))
    return db


def _exit_status(end: SessionEnd) -> int:
    """The exit status for why the Discord session ended, with the operator's line for what they must fix."""
    if end is SessionEnd.INVALID_TOKEN:
        _log.error(
            "Discord refused DISCORD_TOKEN. Copy the bot token again from "
            "https://discord.com/developers/applications -> your application -> Bot"
        )
        return EXIT_MISCONFIGURED
    if end is SessionEnd.PRIVILEGED_INTENTS:
        _log.error("Discord refused the gateway intents; this bot needs none of the privileged ones")
        return EXIT_MISCONFIGURED
    if end in _SHARDING_REFUSED:
        return EXIT_MISCONFIGURED  # session.py logged which shard and what to set
    if end is SessionEnd.REFUSED:
        return EXIT_FAILED
    return EXIT_OK


def check_configuration(settings: Settings) -> int:
    """`python bot.py --check`: load_settings has validated every variable (DATABASE_PATH included)
    without connecting anywhere; say so, and that the secrets were therefore not verified."""
    print(describe_check(settings))  # noqa: T201 - a command-line answer; secrets are hidden by Settings
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # noqa: T201 - logging is not configured before settings exist
        return EXIT_MISCONFIGURED
    if args == ["--check"]:
        return check_configuration(settings)
    if args:
        print("usage: python bot.py [--check]", file=sys.stderr)  # noqa: T201
        return EXIT_MISCONFIGURED
    setup_logging(settings.log_level, settings.secrets)
    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return EXIT_OK
