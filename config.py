"""Settings: one frozen, typed object built from the environment and an optional `.env` file.

A missing or invalid value is reported once, naming every bad variable and where to get its value.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

_log = logging.getLogger(__name__)

DEFAULT_CHECK_INTERVAL_SECONDS = 90.0
LOW_INTERVAL_WARNING_SECONDS = 30.0
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

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
    database_path: str = "twitch_bot.db"
    log_level: str = "INFO"
    twitch_api_base: str = "https://api.twitch.tv/helix"
    twitch_auth_base: str = "https://id.twitch.tv/oauth2"
    max_streamers_per_guild: int = 100
    offline_after_polls: int = 2
    http_host: str = "0.0.0.0"  # noqa: S104 - the health endpoint must be reachable by the platform's checks
    http_port: int = 8080
    # Only for running against a local mock of Discord (as the test suite does); empty means the real Discord.
    discord_api_base: str = ""
    discord_gateway_url: str = ""

    def __repr__(self) -> str:
        # Secrets must never reach a log line, even through a debug print of the settings.
        return (
            f"Settings(check_interval_seconds={self.check_interval_seconds}, "
            f"database_path={self.database_path!r}, log_level={self.log_level!r}, "
            f"twitch_api_base={self.twitch_api_base!r}, twitch_auth_base={self.twitch_auth_base!r}, "
            f"max_streamers_per_guild={self.max_streamers_per_guild}, "
            f"offline_after_polls={self.offline_after_polls}, http={self.http_host}:{self.http_port}, "
            "secrets=<hidden>)"
        )

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.discord_token, self.twitch_client_id, self.twitch_client_secret)


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


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
    """Build the settings, or raise ConfigError naming every missing or invalid variable."""
    env = _env_source(environ, env_file)
    problems: list[str] = []

    required: dict[str, str] = {}
    for name, where in WHERE_TO_GET.items():
        value = env.get(name, "").strip()
        if not value:
            problems.append(f"{name} is missing: use {where}")
        required[name] = value

    interval = DEFAULT_CHECK_INTERVAL_SECONDS
    raw_interval = env.get("CHECK_INTERVAL_SECONDS", "").strip()
    if raw_interval:
        try:
            interval = float(raw_interval)
        except ValueError:
            interval = math.nan
        if not math.isfinite(interval) or interval <= 0:
            problems.append(
                f"CHECK_INTERVAL_SECONDS must be a positive number of seconds (default 90), got {raw_interval!r}"
            )

    max_streamers = _whole_number(env, "MAX_STREAMERS_PER_GUILD", 100, 1, 100_000, problems)
    offline_after_polls = _whole_number(env, "OFFLINE_AFTER_POLLS", 2, 1, 100, problems)
    http_port = _whole_number(env, "HTTP_PORT", 8080, 0, 65535, problems)
    http_host = env.get("HTTP_HOST", "").strip() or "0.0.0.0"  # noqa: S104 - see Settings.http_host

    log_level = (env.get("LOG_LEVEL", "").strip() or "INFO").upper()
    if log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {env.get('LOG_LEVEL')!r}")

    database_path = env.get("DATABASE_PATH", "").strip() or "twitch_bot.db"
    api_base = _base_url(
        "TWITCH_API_BASE", env.get("TWITCH_API_BASE", "").strip() or "https://api.twitch.tv/helix", problems
    )
    auth_base = _base_url(
        "TWITCH_AUTH_BASE", env.get("TWITCH_AUTH_BASE", "").strip() or "https://id.twitch.tv/oauth2", problems
    )

    discord_api_base = env.get("DISCORD_API_BASE", "").strip()
    if discord_api_base:
        discord_api_base = _base_url("DISCORD_API_BASE", discord_api_base, problems)
    discord_gateway_url = env.get("DISCORD_GATEWAY_URL", "").strip()
    if discord_gateway_url and not discord_gateway_url.startswith(("ws://", "wss://")):
        problems.append(f"DISCORD_GATEWAY_URL must be a ws(s):// URL, got {discord_gateway_url!r}")

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
        log_level=log_level,
        twitch_api_base=api_base,
        twitch_auth_base=auth_base,
        max_streamers_per_guild=max_streamers,
        offline_after_polls=offline_after_polls,
        http_host=http_host,
        http_port=http_port,
        discord_api_base=discord_api_base,
        discord_gateway_url=discord_gateway_url,
    )
