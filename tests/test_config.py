"""Unit tests for config.py: defaults, validation, .env loading, and the operator-facing messages."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings

REQUIRED = {"DISCORD_TOKEN": "discord-secret", "TWITCH_CLIENT_ID": "client-id", "TWITCH_CLIENT_SECRET": "client-s3cret"}
ROOT = Path(__file__).resolve().parent.parent


def test_defaults():
    settings = load_settings(REQUIRED, env_file=None)
    assert settings.check_interval_seconds == 90
    assert settings.database_path == "twitch_bot.db"
    assert settings.log_level == "INFO"
    assert settings.twitch_api_base == "https://api.twitch.tv/helix"
    assert settings.twitch_auth_base == "https://id.twitch.tv/oauth2"
    assert settings.max_streamers_per_guild == 100


def test_every_missing_variable_is_named_with_where_to_get_it():
    with pytest.raises(ConfigError) as info:
        load_settings({}, env_file=None)
    message = str(info.value)
    for name in REQUIRED:
        assert name in message
    assert "discord.com/developers/applications" in message
    assert "dev.twitch.tv/console/apps" in message
    assert len(info.value.problems) == 3


@pytest.mark.parametrize("value", ["0", "-5", "abc", "nan", "inf", ""])
def test_interval_must_be_positive(value):
    env = {**REQUIRED, "CHECK_INTERVAL_SECONDS": value}
    if value == "":
        assert load_settings(env, env_file=None).check_interval_seconds == 90
        return
    with pytest.raises(ConfigError, match="CHECK_INTERVAL_SECONDS"):
        load_settings(env, env_file=None)


def test_short_interval_is_allowed_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        settings = load_settings({**REQUIRED, "CHECK_INTERVAL_SECONDS": "5.5"}, env_file=None)
    assert settings.check_interval_seconds == 5.5
    assert "CHECK_INTERVAL_SECONDS" in caplog.text


def test_invalid_optional_values_are_all_reported_together():
    env = {
        **REQUIRED,
        "LOG_LEVEL": "chatty",
        "TWITCH_API_BASE": "ftp://x",
        "MAX_STREAMERS_PER_GUILD": "many",
        "CHECK_INTERVAL_SECONDS": "-1",
    }
    with pytest.raises(ConfigError) as info:
        load_settings(env, env_file=None)
    message = str(info.value)
    for name in ("LOG_LEVEL", "TWITCH_API_BASE", "MAX_STREAMERS_PER_GUILD", "CHECK_INTERVAL_SECONDS"):
        assert name in message


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DISCORD_TOKEN=from-file\nTWITCH_CLIENT_ID=file-id\nTWITCH_CLIENT_SECRET=file-secret\nLOG_LEVEL=debug\n"
    )
    settings = load_settings({"TWITCH_CLIENT_ID": "env-id"}, env_file=env_file)
    assert settings.discord_token == "from-file"
    assert settings.twitch_client_id == "env-id"
    assert settings.log_level == "DEBUG"


def test_bases_are_normalised_for_local_mocks():
    env = {
        **REQUIRED,
        "TWITCH_API_BASE": "http://127.0.0.1:8080/mock/",
        "TWITCH_AUTH_BASE": "http://127.0.0.1:8080/auth",
    }
    settings = load_settings(env, env_file=None)
    assert settings.twitch_api_base == "http://127.0.0.1:8080/mock"
    assert settings.twitch_auth_base == "http://127.0.0.1:8080/auth"


def test_repr_never_shows_secrets():
    settings = load_settings(REQUIRED, env_file=None)
    for text in (repr(settings), str(settings), f"{settings}"):
        for secret in REQUIRED.values():
            assert secret not in text


def test_python_bot_py_without_configuration_exits_2_with_one_message(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for name in REQUIRED:
        assert name in result.stderr
    assert result.stdout == ""


def _run_bot(args, env, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_validates_and_exits_without_connecting(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **REQUIRED, "DATABASE_PATH": str(tmp_path / "x.db")}
    result = _run_bot(["--check"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Configuration OK" in result.stdout
    for secret in REQUIRED.values():
        assert secret not in result.stdout + result.stderr
    assert not (tmp_path / "x.db").exists()  # nothing created, nothing contacted


def test_check_reports_bad_configuration(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **REQUIRED, "DATABASE_PATH": str(tmp_path / "no" / "x.db")}
    result = _run_bot(["--check"], env, tmp_path)
    assert result.returncode == 2
    assert "DATABASE_PATH" in result.stderr
    result = _run_bot(["--check"], {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, tmp_path)
    assert result.returncode == 2 and "DISCORD_TOKEN" in result.stderr
