"""Settings: one frozen, typed object built from the environment and an optional `.env` file.

A missing or invalid value is reported once, naming every bad variable and where to get its value.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

_log = logging.getLogger(__name__)

# Every default, once: the Settings fields and load_settings both use these.
DEFAULT_CHECK_INTERVAL_SECONDS = 90.0
DEFAULT_DATABASE_PATH = "twitch_bot.db"
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_TWITCH_API_BASE = "https://api.twitch.tv/helix"
DEFAULT_TWITCH_AUTH_BASE = "https://id.twitch.tv/oauth2"
DEFAULT_MAX_STREAMERS_PER_GUILD = 100
DEFAULT_OFFLINE_AFTER_POLLS = 2
DEFAULT_LIVE_UPDATE_INTERVAL_SECONDS = 300.0
# A live card is edited at most once per LIVE_UPDATE_INTERVAL_SECONDS. The floor keeps a typo from turning the
# throttle off: every card of a channel shares Discord's per-channel edit limit (5 per 5 s).
MIN_LIVE_UPDATE_INTERVAL_SECONDS = 5.0
MAX_LIVE_UPDATE_INTERVAL_SECONDS = 86_400.0
# Every interface, IPv4 and IPv6 (ALL_INTERFACES): Fly's health checks reach the machine on its private
# address, and `fly proxy` over the private network (6PN) is IPv6 only.
ALL_INTERFACES = ""
DEFAULT_HTTP_HOST = ALL_INTERFACES
DEFAULT_HTTP_PORT = 8080
# Stream history for /stats and the ended card's recap: streams that ended longer ago are forgotten.
DEFAULT_STATS_RETENTION_DAYS = 365
MAX_STATS_RETENTION_DAYS = 3650
# A stream that drops and comes back within this many seconds continues its card (0: off); servers may set their own.
DEFAULT_STREAM_RESTART_GRACE_SECONDS = 600
MAX_STREAM_RESTART_GRACE_SECONDS = 86_400
DEFAULT_EVENTSUB_TRANSPORT = "websocket"
DEFAULT_EVENTSUB_WS_URL = "wss://eventsub.wss.twitch.tv/ws"
EVENTSUB_TRANSPORTS = ("websocket", "webhook", "off")
RESERVED_PATHS = ("/healthz", "/metrics")

LOW_INTERVAL_WARNING_SECONDS = 30.0
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
IN_MEMORY_DATABASE = ":memory:"

# Where an operator finds each required value: the one place a misconfiguration message points to.
WHERE_TO_GET = {
    "DISCORD_TOKEN": (
        "the bot token from https://discord.com/developers/applications -> your application -> Bot -> Reset Token"
    ),
    "TWITCH_CLIENT_ID": ("the Client ID from https://dev.twitch.tv/console/apps -> your application -> Manage"),
    "TWITCH_CLIENT_SECRET": (
        "a Client Secret from https://dev.twitch.tv/console/apps -> your application -> Manage -> New Secret"
    ),
}


class ConfigError(Exception):
    """Raised with every configuration problem at once; `str()` is the operator-facing message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = ["The bot is not configured correctly:"]
        lines += [f"  - {problem}" for problem in problems]
        lines.append("Set these in the environment or in a .env file (see README.md, 'Configuration').")
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class Settings:
    discord_token: str
    twitch_client_id: str
    twitch_client_secret: str
    check_interval_seconds: float = DEFAULT_CHECK_INTERVAL_SECONDS
    database_path: str = DEFAULT_DATABASE_PATH
    # PostgreSQL instead of SQLite (README "Many processes"): several processes share it; empty means SQLite.
    database_url: str = ""
    log_level: str = DEFAULT_LOG_LEVEL
    twitch_api_base: str = DEFAULT_TWITCH_API_BASE
    twitch_auth_base: str = DEFAULT_TWITCH_AUTH_BASE
    max_streamers_per_guild: int = DEFAULT_MAX_STREAMERS_PER_GUILD
    offline_after_polls: int = DEFAULT_OFFLINE_AFTER_POLLS
    live_update_interval_seconds: float = DEFAULT_LIVE_UPDATE_INTERVAL_SECONDS
    http_host: str = DEFAULT_HTTP_HOST
    http_port: int = DEFAULT_HTTP_PORT
    # Only for running against a local mock of Discord (as the test suite does); empty means the real Discord.
    discord_api_base: str = ""
    discord_gateway_url: str = ""
    # Discord gateway shards (README "Configuration"): no count asks Discord for its recommendation (GET
    # /gateway/bot); no ids runs every shard, 0 to shard_count - 1, in this process.
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    # EventSub push (README "How alerts reach you"): websocket needs nothing more; webhook needs a public URL.
    eventsub_transport: str = DEFAULT_EVENTSUB_TRANSPORT
    eventsub_ws_url: str = DEFAULT_EVENTSUB_WS_URL
    eventsub_callback_url: str = ""
    eventsub_secret: str = ""
    stats_retention_days: int = DEFAULT_STATS_RETENTION_DAYS
    stream_restart_grace_seconds: int = DEFAULT_STREAM_RESTART_GRACE_SECONDS

    def __repr__(self) -> str:
        # Secrets must never reach a log line, even through a debug print of the settings.
        return (
            f"Settings(check_interval_seconds={self.check_interval_seconds}, "
            f"{self.database_description}, log_level={self.log_level!r}, "
            f"twitch_api_base={self.twitch_api_base!r}, twitch_auth_base={self.twitch_auth_base!r}, "
            f"max_streamers_per_guild={self.max_streamers_per_guild}, "
            f"offline_after_polls={self.offline_after_polls}, http={self.http_host}:{self.http_port}, "
            f"eventsub={self.eventsub_transport}, shards={self.shard_plan}, "
            f"live_update_interval_seconds={self.live_update_interval_seconds:g}, "
            f"stats_retention_days={self.stats_retention_days}, "
            f"stream_restart_grace_seconds={self.stream_restart_grace_seconds}, "
            "secrets=<hidden>)"
        )

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, ...]:
        values = (
            self.discord_token,
            self.twitch_client_id,
            self.twitch_client_secret,
            self.eventsub_secret,
            _url_password(self.database_url),
        )
        return tuple(value for value in values if value)

    @property
    def database_description(self) -> str:
        """Where the data lives, password hidden: `database_path='…'` or `database_url='postgresql://u:***@h/db'`."""
        if self.database_url:
            return f"database_url={redact_database_url(self.database_url)!r}"
        return f"database_path={self.database_path!r}"

    @property
    def shard_plan(self) -> str:
        """SHARD_COUNT and SHARD_IDS in a few words, for --check and the start-up log."""
        if self.shard_count is None:
            return "as Discord recommends"
        if self.shard_ids is None:
            return f"all {self.shard_count}"
        return f"{_ranges(self.shard_ids)} of {self.shard_count}"

    @property
    def webhook_path(self) -> str:
        """The path of EVENTSUB_CALLBACK_URL, which the bot's own HTTP server serves."""
        return urlsplit(self.eventsub_callback_url).path or "/"


def _env_source(environ: Mapping[str, str] | None, env_file: str | Path | None) -> dict[str, str]:
    """The process environment wins over `.env`, as python-dotenv's `load_dotenv` does by default."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def _whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        problems.append(f"{name} must be a whole number from {low} to {high} (default {default}), got {raw!r}")
    return value


def _base_url(name: str, raw: str, problems: list[str]) -> str:
    url = raw.strip().rstrip("/")
    if not url.startswith(("https://", "http://")):
        problems.append(f"{name} must be an http(s) URL, got {raw!r}")
    return url


def secret_problem(name: str, value: str) -> str | None:
    """The obvious paste mistakes in a token, id or secret; never echoes the value itself.

    Only what no real value can contain is refused: Discord tokens are base64url segments joined by
    dots, Twitch client ids and secrets are lower-case letters and digits.
    """
    if '"' in value or "'" in value:
        return f"{name} contains quotes: set the value alone, without quotes around it"
    if name == "DISCORD_TOKEN" and re.match(r"bot\s", value, re.IGNORECASE):
        return (
            "DISCORD_TOKEN starts with 'Bot ': set the token alone, without the 'Bot ' prefix "
            "(that is the form of Discord's Authorization header, not of the token)"
        )
    if any(character.isspace() for character in value):
        return f"{name} contains a space or line break: set the value alone, as one unbroken line"
    return None


def database_path_problem(path: str) -> str | None:
    """Why SQLite could not create or write the database at `path`, or None when it can."""
    if path == IN_MEMORY_DATABASE:
        return None
    target = Path(path)
    try:
        if target.is_dir():
            example = str(target / DEFAULT_DATABASE_PATH)
            return f"DATABASE_PATH {path!r} is a directory: name a file in it, e.g. {example!r}"
        directory = target.resolve().parent
        if not directory.is_dir():
            return (
                f"DATABASE_PATH {path!r}: its directory {str(directory)!r} does not exist; "
                "create it, or name a file in an existing directory"
            )
        exists = target.exists()
    except (OSError, RuntimeError) as exc:  # e.g. a parent this user may not enter; a symlink loop
        return f"DATABASE_PATH {path!r} cannot be used: {exc}"
    # SQLite writes its -wal and -shm files beside the database, so the directory must be writable too.
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"DATABASE_PATH {path!r}: this user cannot write in its directory {str(directory)!r}"
    if exists and not os.access(target, os.R_OK | os.W_OK):
        return f"DATABASE_PATH {path!r}: the file exists, but this user cannot read and write it"
    return None


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def redact_database_url(url: str) -> str:
    """DATABASE_URL with its password (if any) replaced by ***: what logs and messages may show."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unreadable URL>"
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def database_url_problem(url: str) -> str | None:
    """Why DATABASE_URL is not a PostgreSQL URL the bot can use, or None when it looks right (not connected)."""
    shown = redact_database_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"DATABASE_URL {shown!r} is not a URL ({exc}): write postgresql://user:password@host:5432/database"
    if parts.scheme not in ("postgresql", "postgres"):
        return (
            f"DATABASE_URL must be a PostgreSQL URL, postgresql://user:password@host:5432/database (leave it empty "
            f"for SQLite at DATABASE_PATH), got {shown!r}"
        )
    if not parts.hostname and "host=" not in parts.query:
        return f"DATABASE_URL {shown!r} names no host: write postgresql://user:password@host:5432/database"
    if not parts.path.strip("/"):
        return f"DATABASE_URL {shown!r} names no database: add it after the host, e.g. .../twitch_notifier"
    del port  # read only to validate it
    return None


def describe_check(settings: Settings) -> str:
    """What `python bot.py --check` prints when the configuration is valid: also what it did not check."""
    return (
        f"Configuration OK: {settings}\n"
        "The configuration is valid: every variable is set and well formed, and "
        f"{'DATABASE_URL is well formed (not connected)' if settings.database_url else 'DATABASE_PATH is usable'}.\n"
        "This check did NOT contact Discord or Twitch, so DISCORD_TOKEN, TWITCH_CLIENT_ID and "
        "TWITCH_CLIENT_SECRET were not verified: the bot verifies them when it starts."
    )


def _interval(env: Mapping[str, str], problems: list[str]) -> float:
    raw_interval = env.get("CHECK_INTERVAL_SECONDS", "").strip()
    if not raw_interval:
        return DEFAULT_CHECK_INTERVAL_SECONDS
    try:
        interval = float(raw_interval)
    except ValueError:
        interval = math.nan
    if not math.isfinite(interval) or interval <= 0:
        problems.append(
            "CHECK_INTERVAL_SECONDS must be a positive number of seconds "
            f"(default {DEFAULT_CHECK_INTERVAL_SECONDS:g}), got {raw_interval!r}"
        )
    return interval


def _live_update_interval(env: Mapping[str, str], problems: list[str]) -> float:
    raw = env.get("LIVE_UPDATE_INTERVAL_SECONDS", "").strip()
    if not raw:
        return DEFAULT_LIVE_UPDATE_INTERVAL_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not MIN_LIVE_UPDATE_INTERVAL_SECONDS <= seconds <= MAX_LIVE_UPDATE_INTERVAL_SECONDS:  # NaN fails too
        problems.append(
            f"LIVE_UPDATE_INTERVAL_SECONDS must be a number of seconds from {MIN_LIVE_UPDATE_INTERVAL_SECONDS:g} "
            f"to {MAX_LIVE_UPDATE_INTERVAL_SECONDS:g} (default {DEFAULT_LIVE_UPDATE_INTERVAL_SECONDS:g}), got {raw!r}"
        )
    return seconds


def _ranges(ids: tuple[int, ...]) -> str:
    """Sorted shard ids written as SHARD_IDS accepts them, e.g. "0-3,8"."""
    runs: list[list[int]] = []
    for shard in ids:
        if runs and shard == runs[-1][1] + 1:
            runs[-1][1] = shard
        else:
            runs.append([shard, shard])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


_SHARD_IDS_PART = re.compile(r"(?P<low>[0-9]+)(?:\s*-\s*(?P<high>[0-9]+))?")  # ASCII digits only, as int() is not


def _shard_ids_problem(raw: str, count: int) -> tuple[tuple[int, ...] | None, str | None]:
    """SHARD_IDS ("0-3,8") as sorted ids, or the one problem with it."""
    ranges: list[tuple[int, int]] = []
    for part in raw.split(","):
        match = _SHARD_IDS_PART.fullmatch(part.strip())
        if match is None:
            return None, f"SHARD_IDS must be shard ids and ranges separated by commas, e.g. 0-3,8, got {raw!r}"
        low = int(match["low"])
        high = int(match["high"] or low)
        if high < low:
            return None, f"SHARD_IDS has the range {low}-{high}, which runs backwards (write {high}-{low}), got {raw!r}"
        ranges.append((low, high))
    if any(high >= count for _, high in ranges):  # checked before expanding: "0-999999999" stays cheap
        return None, (
            f"SHARD_IDS must name shards from 0 to {count - 1} (SHARD_COUNT={count} shards, numbered from 0), "
            f"got {raw!r}"
        )
    ids = [shard for low, high in ranges for shard in range(low, high + 1)]
    if len(set(ids)) != len(ids):
        twice = sorted({shard for shard in ids if ids.count(shard) > 1})
        return None, f"SHARD_IDS names shard {_ranges(tuple(twice))} more than once, got {raw!r}"
    return tuple(sorted(ids)), None


def _shards(env: Mapping[str, str], problems: list[str]) -> tuple[int | None, tuple[int, ...] | None]:
    """SHARD_COUNT (empty: Discord's recommendation) and SHARD_IDS (empty: every shard; needs SHARD_COUNT).

    SHARD_IDS naming every shard is the same as leaving it empty, and is returned as None."""
    raw_count = env.get("SHARD_COUNT", "").strip()
    raw_ids = env.get("SHARD_IDS", "").strip()
    count: int | None = None
    if raw_count:
        count = int(raw_count) if raw_count.isdecimal() and raw_count.isascii() else 0
        if count < 1:
            problems.append(
                "SHARD_COUNT must be a whole number of at least 1 (leave it empty for the count Discord recommends), "
                f"got {raw_count!r}"
            )
            return None, None
    if not raw_ids:
        return count, None
    if count is None:
        problems.append(
            f"SHARD_IDS ({raw_ids!r}) needs SHARD_COUNT: set SHARD_COUNT to the bot's total number of shards, "
            "of which SHARD_IDS names the ones this process runs"
        )
        return None, None
    ids, problem = _shard_ids_problem(raw_ids, count)
    if problem is not None:
        problems.append(problem)
        return count, None
    return count, None if ids == tuple(range(count)) else ids


def _discord_endpoints(env: Mapping[str, str], problems: list[str]) -> tuple[str, str]:
    """DISCORD_API_BASE and DISCORD_GATEWAY_URL: empty (the real Discord) or a mock's URLs."""
    api_base = env.get("DISCORD_API_BASE", "").strip()
    if api_base:
        api_base = _base_url("DISCORD_API_BASE", api_base, problems)
    gateway_url = env.get("DISCORD_GATEWAY_URL", "").strip()
    if gateway_url and not gateway_url.startswith(("ws://", "wss://")):
        problems.append(f"DISCORD_GATEWAY_URL must be a ws(s):// URL, got {gateway_url!r}")
    return api_base, gateway_url


def _eventsub(env: Mapping[str, str], problems: list[str]) -> tuple[str, str, str, str]:
    """EVENTSUB_TRANSPORT, TWITCH_EVENTSUB_WS_URL and, for webhooks, EVENTSUB_CALLBACK_URL and EVENTSUB_SECRET."""
    transport = (env.get("EVENTSUB_TRANSPORT", "").strip() or DEFAULT_EVENTSUB_TRANSPORT).lower()
    if transport not in EVENTSUB_TRANSPORTS:
        problems.append(
            f"EVENTSUB_TRANSPORT must be one of {', '.join(EVENTSUB_TRANSPORTS)} "
            f"(default {DEFAULT_EVENTSUB_TRANSPORT}), got {env.get('EVENTSUB_TRANSPORT')!r}"
        )
    ws_url = env.get("TWITCH_EVENTSUB_WS_URL", "").strip() or DEFAULT_EVENTSUB_WS_URL
    if not ws_url.startswith(("ws://", "wss://")):
        problems.append(f"TWITCH_EVENTSUB_WS_URL must be a ws(s):// URL, got {ws_url!r}")
    callback = env.get("EVENTSUB_CALLBACK_URL", "").strip()
    secret = env.get("EVENTSUB_SECRET", "").strip()
    if transport != "webhook":
        return transport, ws_url, "", ""
    if not callback:
        problems.append(
            "EVENTSUB_CALLBACK_URL is missing (EVENTSUB_TRANSPORT=webhook): the public https URL Twitch posts "
            "to, e.g. https://<your-app>.fly.dev/eventsub; the bot serves its path on HTTP_PORT"
        )
    else:
        parts = urlsplit(callback)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme != "https" or not parts.hostname or port not in (None, 443):
            problems.append(
                f"EVENTSUB_CALLBACK_URL must be a public https URL on port 443 (Twitch's rule), got {callback!r}"
            )
        elif (parts.path or "/") in RESERVED_PATHS:
            problems.append(f"EVENTSUB_CALLBACK_URL's path must not be {parts.path} (the bot serves that itself)")
    if not secret:
        problems.append(
            "EVENTSUB_SECRET is missing (EVENTSUB_TRANSPORT=webhook): choose a random string of 10-100 characters, "
            "e.g. the output of `openssl rand -hex 32`, and set it as a secret (fly secrets set EVENTSUB_SECRET=...)"
        )
    elif not (secret.isascii() and secret.isprintable() and 10 <= len(secret) <= 100):
        problems.append(
            f"EVENTSUB_SECRET must be 10-100 printable ASCII characters (Twitch's rule), got {len(secret)} characters"
        )
    return transport, ws_url, callback, secret


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
    """Build the settings, or raise ConfigError naming every missing or invalid variable."""
    env = _env_source(environ, env_file)
    problems: list[str] = []

    required: dict[str, str] = {}
    for name, where in WHERE_TO_GET.items():
        value = env.get(name, "").strip()
        if not value:
            problems.append(f"{name} is missing: use {where}")
        elif (problem := secret_problem(name, value)) is not None:
            problems.append(problem)
        required[name] = value

    interval = _interval(env, problems)

    max_streamers = _whole_number(env, "MAX_STREAMERS_PER_GUILD", DEFAULT_MAX_STREAMERS_PER_GUILD, 1, 100_000, problems)
    offline_after_polls = _whole_number(env, "OFFLINE_AFTER_POLLS", DEFAULT_OFFLINE_AFTER_POLLS, 1, 100, problems)
    stats_retention_days = _whole_number(
        env, "STATS_RETENTION_DAYS", DEFAULT_STATS_RETENTION_DAYS, 1, MAX_STATS_RETENTION_DAYS, problems
    )
    live_update_interval = _live_update_interval(env, problems)
    restart_grace = _whole_number(
        env,
        "STREAM_RESTART_GRACE_SECONDS",
        DEFAULT_STREAM_RESTART_GRACE_SECONDS,
        0,
        MAX_STREAM_RESTART_GRACE_SECONDS,
        problems,
    )
    http_port = _whole_number(env, "HTTP_PORT", DEFAULT_HTTP_PORT, 0, 65535, problems)
    http_host = env.get("HTTP_HOST", "").strip() or DEFAULT_HTTP_HOST

    log_level = (env.get("LOG_LEVEL", "").strip() or DEFAULT_LOG_LEVEL).upper()
    if log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {env.get('LOG_LEVEL')!r}")

    database_path = env.get("DATABASE_PATH", "").strip() or DEFAULT_DATABASE_PATH
    database_url = env.get("DATABASE_URL", "").strip()
    if database_url:
        if (problem := database_url_problem(database_url)) is not None:
            problems.append(problem)
    elif (problem := database_path_problem(database_path)) is not None:
        problems.append(problem)
    api_base = _base_url("TWITCH_API_BASE", env.get("TWITCH_API_BASE", "").strip() or DEFAULT_TWITCH_API_BASE, problems)
    auth_base = _base_url(
        "TWITCH_AUTH_BASE", env.get("TWITCH_AUTH_BASE", "").strip() or DEFAULT_TWITCH_AUTH_BASE, problems
    )

    discord_api_base, discord_gateway_url = _discord_endpoints(env, problems)
    shard_count, shard_ids = _shards(env, problems)
    eventsub_transport, eventsub_ws_url, callback_url, eventsub_secret = _eventsub(env, problems)
    if shard_ids is not None and not database_url and eventsub_transport != "off":
        problems.append(
            f"SHARD_IDS ({env.get('SHARD_IDS', '').strip()!r}) runs only some of the {shard_count} shards: the "
            "processes running the others must share one PostgreSQL database, so that exactly one of them keeps "
            'the Twitch app\'s EventSub conduit. Set DATABASE_URL (README "Many processes"), or leave SHARD_IDS '
            "empty to run every shard here, or set EVENTSUB_TRANSPORT=off for processes that each poll for their "
            "own guilds from their own DATABASE_PATH"
        )

    if problems:
        raise ConfigError(problems)

    if interval < LOW_INTERVAL_WARNING_SECONDS:
        _log.warning(
            "CHECK_INTERVAL_SECONDS=%s is below %s s: that spends Twitch's rate budget quickly "
            "and is rarely useful, since Twitch's stream list itself lags by a minute or more",
            interval,
            LOW_INTERVAL_WARNING_SECONDS,
        )

    return Settings(
        discord_token=required["DISCORD_TOKEN"],
        twitch_client_id=required["TWITCH_CLIENT_ID"],
        twitch_client_secret=required["TWITCH_CLIENT_SECRET"],
        check_interval_seconds=interval,
        database_path=database_path,
        database_url=database_url,
        log_level=log_level,
        twitch_api_base=api_base,
        twitch_auth_base=auth_base,
        max_streamers_per_guild=max_streamers,
        offline_after_polls=offline_after_polls,
        live_update_interval_seconds=live_update_interval,
        http_host=http_host,
        http_port=http_port,
        discord_api_base=discord_api_base,
        discord_gateway_url=discord_gateway_url,
        shard_count=shard_count,
        shard_ids=shard_ids,
        eventsub_transport=eventsub_transport,
        eventsub_ws_url=eventsub_ws_url,
        eventsub_callback_url=callback_url,
        eventsub_secret=eventsub_secret,
        stats_retention_days=stats_retention_days,
        stream_restart_grace_seconds=restart_grace,
    )
