"""Unit tests for config.py: defaults, validation, .env loading, and the operator-facing messages."""

import ast
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import config
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
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr


# -- defaults, defined once --------------------------------------------------------------------------------

DEFAULTS = {
    "check_interval_seconds": "DEFAULT_CHECK_INTERVAL_SECONDS",
    "database_path": "DEFAULT_DATABASE_PATH",
    "log_level": "DEFAULT_LOG_LEVEL",
    "twitch_api_base": "DEFAULT_TWITCH_API_BASE",
    "twitch_auth_base": "DEFAULT_TWITCH_AUTH_BASE",
    "max_streamers_per_guild": "DEFAULT_MAX_STREAMERS_PER_GUILD",
    "offline_after_polls": "DEFAULT_OFFLINE_AFTER_POLLS",
    "live_update_interval_seconds": "DEFAULT_LIVE_UPDATE_INTERVAL_SECONDS",
    "http_host": "DEFAULT_HTTP_HOST",
    "http_port": "DEFAULT_HTTP_PORT",
}
ENV_NAMES = {field: field.upper() for field in DEFAULTS}


def test_each_default_is_one_named_constant_used_by_the_dataclass_and_the_loader():
    field_defaults = {field.name: field.default for field in dataclasses.fields(config.Settings)}
    loaded = load_settings(REQUIRED, env_file=None)
    blank = load_settings({**REQUIRED, **dict.fromkeys(ENV_NAMES.values(), "  ")}, env_file=None)
    for field, constant in DEFAULTS.items():
        value = getattr(config, constant)
        assert field_defaults[field] == value, f"Settings.{field} does not default to {constant}"
        assert getattr(loaded, field) == value, f"load_settings does not default {field} to {constant}"
        assert getattr(blank, field) == value, f"a blank {ENV_NAMES[field]} does not mean {constant}"
    assert (config.DEFAULT_HTTP_PORT, config.DEFAULT_OFFLINE_AFTER_POLLS) == (8080, 2)


def test_no_default_value_is_written_twice_in_config_py():
    tree = ast.parse((ROOT / "config.py").read_text())
    literals = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)]
    for constant in DEFAULTS.values():
        value = getattr(config, constant)
        if isinstance(value, str) and value:  # "" (every interface) is also every env.get's fallback
            expected = 2 if value in config.LOG_LEVELS else 1  # "INFO" is also one of the accepted levels
            assert literals.count(value) == expected, f"{value!r} is written {literals.count(value)} times"
    # The numeric defaults: no literal 90, 8080 or 2 outside their constants (100 is also an upper bound).
    for value in (90, 90.0, 8080, 2):
        assert literals.count(value) <= 1, f"{value!r} is written {literals.count(value)} times in config.py"


# -- DATABASE_PATH ----------------------------------------------------------------------------------------


def test_database_path_in_a_missing_directory_is_a_config_error(tmp_path):
    path = tmp_path / "missing" / "bot.db"
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, "DATABASE_PATH": str(path)}, env_file=None)
    [problem] = info.value.problems
    assert problem.startswith("DATABASE_PATH")
    assert str(tmp_path / "missing") in problem
    assert "does not exist" in problem
    assert not path.parent.exists()  # nothing created


def test_database_path_that_is_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, "DATABASE_PATH": str(tmp_path)}, env_file=None)
    [problem] = info.value.problems
    assert problem.startswith("DATABASE_PATH")
    assert "is a directory" in problem
    assert str(tmp_path / "twitch_bot.db") in problem  # what to write instead


def test_database_path_problems_are_reported_with_the_others(tmp_path):
    env = {"DISCORD_TOKEN": "x", "DATABASE_PATH": str(tmp_path / "no" / "x.db"), "LOG_LEVEL": "loud"}
    with pytest.raises(ConfigError) as info:
        load_settings(env, env_file=None)
    names = [problem.split()[0] for problem in info.value.problems]
    assert sorted(names) == ["DATABASE_PATH", "LOG_LEVEL", "TWITCH_CLIENT_ID", "TWITCH_CLIENT_SECRET"]


def test_database_path_in_memory_and_in_a_writable_directory_are_accepted(tmp_path):
    assert load_settings({**REQUIRED, "DATABASE_PATH": ":memory:"}, env_file=None).database_path == ":memory:"
    existing = tmp_path / "bot.db"
    existing.write_bytes(b"")
    for path in (tmp_path / "new.db", existing):
        assert load_settings({**REQUIRED, "DATABASE_PATH": str(path)}, env_file=None).database_path == str(path)


def test_a_relative_database_path_is_checked_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(REQUIRED, env_file=None).database_path == "twitch_bot.db"
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, "DATABASE_PATH": "data/bot.db"}, env_file=None)
    [problem] = info.value.problems
    assert problem.startswith("DATABASE_PATH 'data/bot.db'")
    assert str(tmp_path / "data") in problem


@pytest.mark.parametrize("unwritable", ["directory", "file"])
def test_database_path_not_writable_is_a_config_error(tmp_path, monkeypatch, unwritable):
    # The suite runs as root, for whom os.access allows everything: deny it for the one path instead.
    existing = tmp_path / "bot.db"
    existing.write_bytes(b"")
    denied = tmp_path if unwritable == "directory" else existing
    real_access = os.access
    monkeypatch.setattr(config.os, "access", lambda path, mode: Path(path) != denied and real_access(path, mode))
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, "DATABASE_PATH": str(existing)}, env_file=None)
    [problem] = info.value.problems
    assert problem.startswith(f"DATABASE_PATH {str(existing)!r}")
    assert "cannot" in problem
    assert ("directory" in problem) == (unwritable == "directory")


def _as_unprivileged_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot become a user that permissions apply to")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def test_python_bot_py_with_an_unwritable_database_directory_exits_2_naming_it():
    # For real, with permissions that apply: root drops to `nobody`, who may not write in `locked`.
    # Not under pytest's tmp_path, whose root-only parent `nobody` could not even enter.
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(base), **REQUIRED, "DATABASE_PATH": str(locked / "x.db")}
        result = subprocess.run(
            [*_as_unprivileged_user(), sys.executable, str(ROOT / "bot.py"), "--check"],
            cwd=base,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        [line] = [line for line in result.stderr.splitlines() if "DATABASE_PATH" in line]
        assert f"cannot write in its directory {str(locked)!r}" in line
        assert not (locked / "x.db").exists()


def test_python_bot_py_with_a_database_path_that_is_a_directory_exits_2_with_one_message(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **REQUIRED, "DATABASE_PATH": str(tmp_path)}
    result = _run_bot([], env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("The bot is not configured correctly:")
    assert "DATABASE_PATH" in result.stderr
    assert "is a directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# -- malformed secrets --------------------------------------------------------------------------------------

DISCORD_SHAPED = "MTI3NjQ1MjM0NTY3ODkwMTIzNA.GAbCdE.x1Y2z3-A_b4C5d6E7f8G9h0IjKlMnOpQrStUv"
TWITCH_SHAPED = "wbmytr93xzw8zbg0p1izqyzzc5mbiz"


def test_real_shaped_tokens_ids_and_secrets_are_accepted():
    env = {"DISCORD_TOKEN": DISCORD_SHAPED, "TWITCH_CLIENT_ID": TWITCH_SHAPED, "TWITCH_CLIENT_SECRET": TWITCH_SHAPED}
    settings = load_settings(env, env_file=None)
    assert settings.secrets == (DISCORD_SHAPED, TWITCH_SHAPED, TWITCH_SHAPED)
    # Surrounding whitespace (a pasted trailing newline) is harmless and simply removed, as before.
    assert load_settings({**env, "DISCORD_TOKEN": f"  {DISCORD_SHAPED}\n"}, env_file=None).discord_token == (
        DISCORD_SHAPED
    )
    # A token that merely starts with the letters "bot" is not the header form.
    assert load_settings({**env, "DISCORD_TOKEN": "botABC.def.ghi"}, env_file=None).discord_token == "botABC.def.ghi"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param("DISCORD_TOKEN", f"Bot {DISCORD_SHAPED}", "without the 'Bot ' prefix", id="Bot-prefix"),
        pytest.param("DISCORD_TOKEN", f"bot\t{DISCORD_SHAPED}", "without the 'Bot ' prefix", id="bot-tab-prefix"),
        pytest.param("DISCORD_TOKEN", f'"{DISCORD_SHAPED}"', "without quotes", id="token-double-quotes"),
        pytest.param("DISCORD_TOKEN", f"'{DISCORD_SHAPED}'", "without quotes", id="token-single-quotes"),
        pytest.param(
            "DISCORD_TOKEN", f"{DISCORD_SHAPED[:20]} {DISCORD_SHAPED[20:]}", "one unbroken line", id="token-space"
        ),
        pytest.param("TWITCH_CLIENT_ID", f'"{TWITCH_SHAPED}"', "without quotes", id="id-quotes"),
        pytest.param("TWITCH_CLIENT_ID", f"{TWITCH_SHAPED} {TWITCH_SHAPED}", "one unbroken line", id="id-space"),
        pytest.param("TWITCH_CLIENT_SECRET", f"'{TWITCH_SHAPED}", "without quotes", id="secret-one-quote"),
        pytest.param(
            "TWITCH_CLIENT_SECRET", f"{TWITCH_SHAPED}\n{TWITCH_SHAPED}", "one unbroken line", id="secret-newline"
        ),
    ],
)
def test_obviously_malformed_secrets_are_refused_by_name_without_echoing_them(name, value, expected):
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, name: value}, env_file=None)
    [problem] = info.value.problems
    assert problem.startswith(name)
    assert expected in problem
    assert DISCORD_SHAPED not in str(info.value)
    assert TWITCH_SHAPED not in str(info.value)


def test_a_quoted_value_in_dot_env_is_fine_python_dotenv_removes_the_quotes(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"DISCORD_TOKEN=\"{DISCORD_SHAPED}\"\nTWITCH_CLIENT_ID='{TWITCH_SHAPED}'\n")
    settings = load_settings({"TWITCH_CLIENT_SECRET": TWITCH_SHAPED}, env_file=env_file)
    assert (settings.discord_token, settings.twitch_client_id) == (DISCORD_SHAPED, TWITCH_SHAPED)


def test_every_malformed_secret_is_reported_together_with_the_other_problems(tmp_path):
    env = {
        "DISCORD_TOKEN": f"Bot {DISCORD_SHAPED}",
        "TWITCH_CLIENT_ID": f'"{TWITCH_SHAPED}"',
        "TWITCH_CLIENT_SECRET": "two words",
        "DATABASE_PATH": str(tmp_path),
    }
    with pytest.raises(ConfigError) as info:
        load_settings(env, env_file=None)
    names = [problem.split()[0] for problem in info.value.problems]
    assert names == ["DISCORD_TOKEN", "TWITCH_CLIENT_ID", "TWITCH_CLIENT_SECRET", "DATABASE_PATH"]


# -- what --check says ---------------------------------------------------------------------------------------


def test_describe_check_says_valid_and_that_nothing_was_contacted():
    settings = load_settings(REQUIRED, env_file=None)
    text = config.describe_check(settings)
    assert text.startswith("Configuration OK")
    assert "configuration is valid" in text
    assert "did NOT contact Discord or Twitch" in text
    for name in REQUIRED:
        assert name in text  # which values were not verified
    assert "not verified" in text
    for secret in REQUIRED.values():
        assert secret not in text


def test_check_says_the_configuration_is_valid_and_that_nothing_was_contacted(tmp_path):
    # `python bot.py --check` prints config.describe_check(settings).
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **REQUIRED, "DATABASE_PATH": str(tmp_path / "x.db")}
    result = _run_bot(["--check"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == config.describe_check(load_settings(env, env_file=None))


# -- EventSub push -------------------------------------------------------------------------------------------

WEBHOOK = {
    **REQUIRED,
    "EVENTSUB_TRANSPORT": "webhook",
    "EVENTSUB_CALLBACK_URL": "https://my-bot.fly.dev/eventsub",
    "EVENTSUB_SECRET": "a-webhook-secret-of-32-characters",
}


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(env, env_file=None)
    return info.value.problems


def test_eventsub_defaults_to_websocket_push_with_nothing_else_to_set() -> None:
    settings = load_settings(REQUIRED, env_file=None)
    assert settings.eventsub_transport == config.DEFAULT_EVENTSUB_TRANSPORT == "websocket"
    assert settings.eventsub_ws_url == config.DEFAULT_EVENTSUB_WS_URL == "wss://eventsub.wss.twitch.tv/ws"
    assert (settings.eventsub_callback_url, settings.eventsub_secret) == ("", "")
    field_defaults = {field.name: field.default for field in dataclasses.fields(config.Settings)}
    assert field_defaults["eventsub_transport"] == config.DEFAULT_EVENTSUB_TRANSPORT
    assert field_defaults["eventsub_ws_url"] == config.DEFAULT_EVENTSUB_WS_URL
    blank = load_settings({**REQUIRED, "EVENTSUB_TRANSPORT": " ", "TWITCH_EVENTSUB_WS_URL": " "}, env_file=None)
    assert (blank.eventsub_transport, blank.eventsub_ws_url) == (
        config.DEFAULT_EVENTSUB_TRANSPORT,
        config.DEFAULT_EVENTSUB_WS_URL,
    )


@pytest.mark.parametrize(
    ("raw", "expected"), [("websocket", "websocket"), ("WebSocket", "websocket"), (" OFF ", "off"), ("Off", "off")]
)
def test_eventsub_transport_is_case_insensitive(raw: str, expected: str) -> None:
    assert load_settings({**REQUIRED, "EVENTSUB_TRANSPORT": raw}, env_file=None).eventsub_transport == expected


def test_eventsub_transport_webhook_in_any_case() -> None:
    assert load_settings({**WEBHOOK, "EVENTSUB_TRANSPORT": "WEBHOOK"}, env_file=None).eventsub_transport == "webhook"


@pytest.mark.parametrize("raw", ["push", "ws", "conduit", "web hook", "none"])
def test_an_unknown_eventsub_transport_is_named_with_the_choices(raw: str) -> None:
    [problem] = problems_of({**REQUIRED, "EVENTSUB_TRANSPORT": raw})
    assert problem.startswith("EVENTSUB_TRANSPORT")
    assert "websocket, webhook, off" in problem
    assert repr(raw) in problem


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:8081/ws", "wss://eventsub.wss.twitch.tv/ws?keepalive_timeout_seconds=30"]
)
def test_a_ws_or_wss_eventsub_url_is_accepted(url: str) -> None:
    assert load_settings({**REQUIRED, "TWITCH_EVENTSUB_WS_URL": f" {url} "}, env_file=None).eventsub_ws_url == url


@pytest.mark.parametrize("url", ["https://eventsub.wss.twitch.tv/ws", "eventsub.wss.twitch.tv/ws", "http://x/ws"])
def test_an_eventsub_url_that_is_not_a_websocket_is_named(url: str) -> None:
    [problem] = problems_of({**REQUIRED, "TWITCH_EVENTSUB_WS_URL": url})
    assert problem.startswith("TWITCH_EVENTSUB_WS_URL")
    assert url in problem


def test_a_webhook_configuration_is_loaded_with_its_path_and_secret() -> None:
    settings = load_settings(
        {**WEBHOOK, "EVENTSUB_CALLBACK_URL": " https://my-bot.fly.dev:443/eventsub/twitch?from=twitch "},
        env_file=None,
    )
    assert settings.eventsub_transport == "webhook"
    assert settings.eventsub_callback_url == "https://my-bot.fly.dev:443/eventsub/twitch?from=twitch"
    assert settings.webhook_path == "/eventsub/twitch"
    assert settings.eventsub_secret == WEBHOOK["EVENTSUB_SECRET"]
    assert WEBHOOK["EVENTSUB_SECRET"] in settings.secrets  # so the log filter redacts it
    for text in (repr(settings), str(settings)):
        assert WEBHOOK["EVENTSUB_SECRET"] not in text
    assert (
        load_settings({**WEBHOOK, "EVENTSUB_CALLBACK_URL": "https://my-bot.fly.dev"}, env_file=None).webhook_path == "/"
    )


def test_the_secrets_hold_only_what_is_set() -> None:
    settings = load_settings(REQUIRED, env_file=None)
    assert settings.secrets == tuple(REQUIRED.values())


def test_without_webhook_transport_the_callback_and_secret_are_ignored() -> None:
    env = {**REQUIRED, "EVENTSUB_CALLBACK_URL": "http://not-checked", "EVENTSUB_SECRET": "short"}
    for transport in ("websocket", "off"):
        settings = load_settings({**env, "EVENTSUB_TRANSPORT": transport}, env_file=None)
        assert (settings.eventsub_callback_url, settings.eventsub_secret) == ("", "")
        assert "short" not in settings.secrets


def test_webhook_without_a_callback_or_secret_names_both() -> None:
    problems = problems_of({**REQUIRED, "EVENTSUB_TRANSPORT": "webhook"})
    assert len(problems) == 2
    assert problems[0].startswith("EVENTSUB_CALLBACK_URL is missing")
    assert "https" in problems[0]
    assert problems[1].startswith("EVENTSUB_SECRET is missing")
    assert "10-100" in problems[1]


@pytest.mark.parametrize(
    "url",
    [
        "http://my-bot.fly.dev/eventsub",  # not https
        "https://my-bot.fly.dev:8443/eventsub",  # not 443
        "https://my-bot.fly.dev:80/eventsub",
        "https://my-bot.fly.dev:https/eventsub",  # not a port at all
        "https:///eventsub",  # no host
        "my-bot.fly.dev/eventsub",
        "ftp://my-bot.fly.dev/eventsub",
    ],
)
def test_a_callback_twitch_would_refuse_is_named(url: str) -> None:
    [problem] = problems_of({**WEBHOOK, "EVENTSUB_CALLBACK_URL": url})
    assert problem.startswith("EVENTSUB_CALLBACK_URL")
    assert "443" in problem
    assert url in problem


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_a_callback_on_the_bots_own_paths_is_refused(path: str) -> None:
    [problem] = problems_of({**WEBHOOK, "EVENTSUB_CALLBACK_URL": f"https://my-bot.fly.dev{path}"})
    assert problem.startswith("EVENTSUB_CALLBACK_URL")
    assert path in problem


@pytest.mark.parametrize("length", [10, 100])
def test_a_secret_of_10_to_100_printable_ascii_characters_is_accepted(length: int) -> None:
    secret = ("Ab3~ -_!x" * 20)[:length]  # spaces and punctuation inside are fine
    settings = load_settings({**WEBHOOK, "EVENTSUB_SECRET": secret}, env_file=None)
    assert settings.eventsub_secret == secret


@pytest.mark.parametrize(
    "secret",
    ["x" * 9, "x" * 101, "é" * 12, "abcdefghij\x01k", "abcdefghij\tk", "0123456789\u200b"],
    ids=["9", "101", "non-ascii", "control", "tab", "zero-width"],
)
def test_a_secret_twitch_would_refuse_is_named_without_echoing_it(secret: str) -> None:
    [problem] = problems_of({**WEBHOOK, "EVENTSUB_SECRET": secret})
    assert problem.startswith("EVENTSUB_SECRET must be 10-100 printable ASCII characters")
    assert f"got {len(secret)} characters" in problem
    assert secret not in problem


def test_eventsub_problems_are_reported_with_the_others() -> None:
    env = {
        **REQUIRED,
        "LOG_LEVEL": "chatty",
        "EVENTSUB_TRANSPORT": "webhook",
        "EVENTSUB_CALLBACK_URL": "http://x/eventsub",
        "EVENTSUB_SECRET": "short",
        "TWITCH_EVENTSUB_WS_URL": "https://x",
    }
    problems = problems_of(env)
    named = sorted(problem.split()[0] for problem in problems)
    assert named == ["EVENTSUB_CALLBACK_URL", "EVENTSUB_SECRET", "LOG_LEVEL", "TWITCH_EVENTSUB_WS_URL"]
    assert "short" not in "\n".join(problems)


def test_eventsub_settings_come_from_dot_env_too(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "EVENTSUB_TRANSPORT=webhook\nEVENTSUB_CALLBACK_URL=https://my-bot.fly.dev/hook\n"
        "EVENTSUB_SECRET=from-the-file-0123456789\n"
    )
    settings = load_settings(REQUIRED, env_file=env_file)
    assert (settings.eventsub_transport, settings.webhook_path, settings.eventsub_secret) == (
        "webhook",
        "/hook",
        "from-the-file-0123456789",
    )


# -- LIVE_UPDATE_INTERVAL_SECONDS --------------------------------------------------------------------------


def test_the_live_update_interval_defaults_to_the_notifiers_five_minutes() -> None:
    from twitch_notifier.core.notifier import LIVE_UPDATE_INTERVAL

    assert load_settings(REQUIRED, env_file=None).live_update_interval_seconds == 300
    assert LIVE_UPDATE_INTERVAL.total_seconds() == config.DEFAULT_LIVE_UPDATE_INTERVAL_SECONDS


@pytest.mark.parametrize(("raw", "expected"), [("5", 5.0), ("60", 60.0), ("90.5", 90.5), ("86400", 86_400.0)])
def test_a_live_update_interval_from_5_s_to_a_day_is_accepted(raw: str, expected: float) -> None:
    settings = load_settings({**REQUIRED, "LIVE_UPDATE_INTERVAL_SECONDS": raw}, env_file=None)
    assert settings.live_update_interval_seconds == expected


@pytest.mark.parametrize("raw", ["0", "4.9", "-1", "86401", "nan", "inf", "five"])
def test_a_live_update_interval_outside_5_s_to_a_day_is_named_with_its_range(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, "LIVE_UPDATE_INTERVAL_SECONDS": raw}, env_file=None)
    [problem] = info.value.problems
    assert problem.startswith("LIVE_UPDATE_INTERVAL_SECONDS must be a number of seconds from 5 to 86400")
    assert repr(raw) in problem


async def test_the_bot_throttles_live_cards_by_the_configured_interval(tmp_path: Path) -> None:
    from database import Database
    from twitch_notifier.app.build import build_bot, build_twitch_client

    settings = load_settings(
        {**REQUIRED, "LIVE_UPDATE_INTERVAL_SECONDS": "45", "DATABASE_PATH": str(tmp_path / "bot.db")}, env_file=None
    )
    db = await Database.open(settings.database_path)
    try:
        async with build_twitch_client(settings) as twitch:
            bot = build_bot(settings, db, twitch)
            assert bot.notifier.update_interval.total_seconds() == 45
    finally:
        await db.close()


# -- SHARD_COUNT and SHARD_IDS ----------------------------------------------------------------------------


def test_without_shard_settings_discord_recommends_the_count_and_every_shard_runs_here() -> None:
    settings = load_settings(REQUIRED, env_file=None)
    assert (settings.shard_count, settings.shard_ids) == (None, None)
    assert settings.shard_plan == "as Discord recommends"
    blank = load_settings({**REQUIRED, "SHARD_COUNT": " ", "SHARD_IDS": ""}, env_file=None)
    assert (blank.shard_count, blank.shard_ids) == (None, None)


def test_a_shard_count_alone_runs_every_shard() -> None:
    settings = load_settings({**REQUIRED, "SHARD_COUNT": "4"}, env_file=None)
    assert (settings.shard_count, settings.shard_ids) == (4, None)
    assert settings.shard_plan == "all 4"
    assert "shards=all 4" in repr(settings)


@pytest.mark.parametrize(
    ("raw", "expected", "plan"),
    [
        ("0-3,8", (0, 1, 2, 3, 8), "0-3,8 of 16"),
        (" 8 , 0 - 3 ", (0, 1, 2, 3, 8), "0-3,8 of 16"),
        ("5", (5,), "5 of 16"),
        ("15,0", (0, 15), "0,15 of 16"),
    ],
)
def test_shard_ids_take_ids_and_ranges(raw: str, expected: tuple[int, ...], plan: str) -> None:
    settings = load_settings({**REQUIRED, "SHARD_COUNT": "16", "SHARD_IDS": raw, **SHARED_DATABASE}, env_file=None)
    assert settings.shard_ids == expected
    assert settings.shard_plan == plan


def test_shard_ids_naming_every_shard_are_the_same_as_none() -> None:
    settings = load_settings({**REQUIRED, "SHARD_COUNT": "3", "SHARD_IDS": "0-2"}, env_file=None)
    assert (settings.shard_count, settings.shard_ids) == (3, None)


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5", "3e2", "٣"])
def test_a_shard_count_below_one_or_not_whole_is_named(raw: str) -> None:
    [problem] = problems_of({**REQUIRED, "SHARD_COUNT": raw})
    assert problem.startswith("SHARD_COUNT must be a whole number of at least 1")
    assert "Discord recommends" in problem
    assert repr(raw) in problem


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("0,,2", "must be shard ids and ranges separated by commas, e.g. 0-3,8"),
        ("a-b", "must be shard ids and ranges separated by commas"),
        ("-1", "must be shard ids and ranges separated by commas"),
        ("0-3,", "must be shard ids and ranges separated by commas"),
        ("3-1", "has the range 3-1, which runs backwards (write 1-3)"),
        ("0-4", "must name shards from 0 to 3 (SHARD_COUNT=4 shards, numbered from 0)"),
        ("4", "must name shards from 0 to 3"),
        ("0-999999999", "must name shards from 0 to 3"),
        ("0-2,1", "names shard 1 more than once"),
        ("0,0,1-3,3", "names shard 0,3 more than once"),
    ],
)
def test_each_bad_shard_ids_is_one_precise_problem(raw: str, says: str) -> None:
    [problem] = problems_of({**REQUIRED, "SHARD_COUNT": "4", "SHARD_IDS": raw})
    assert problem.startswith("SHARD_IDS ")
    assert says in problem
    assert repr(raw) in problem


def test_shard_ids_without_a_shard_count_are_refused() -> None:
    [problem] = problems_of({**REQUIRED, "SHARD_IDS": "0,2"})
    assert problem.startswith("SHARD_IDS ('0,2') needs SHARD_COUNT")


def test_a_bad_shard_count_is_reported_once_even_with_shard_ids() -> None:
    problems = problems_of({**REQUIRED, "SHARD_COUNT": "zero", "SHARD_IDS": "0"})
    assert [p.split()[0] for p in problems] == ["SHARD_COUNT"]


def test_shard_problems_are_reported_with_the_others() -> None:
    problems = problems_of({**REQUIRED, "LOG_LEVEL": "chatty", "SHARD_COUNT": "2", "SHARD_IDS": "2"})
    assert [p.split()[0] for p in problems] == ["LOG_LEVEL", "SHARD_IDS"]


def test_shard_settings_come_from_dot_env_too(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"SHARD_COUNT=6\nSHARD_IDS=3-5\nDATABASE_URL={SHARED_DATABASE['DATABASE_URL']}\n")
    settings = load_settings(REQUIRED, env_file=env_file)
    assert (settings.shard_count, settings.shard_ids) == (6, (3, 4, 5))


def test_some_shards_without_a_shared_database_are_refused_while_eventsub_is_on() -> None:
    [problem] = problems_of({**REQUIRED, "SHARD_COUNT": "4", "SHARD_IDS": "0-1"})
    assert problem.startswith("SHARD_IDS ('0-1') runs only some of the 4 shards")
    assert "Set DATABASE_URL" in problem
    assert "EVENTSUB_TRANSPORT=off" in problem
    # Polling only, each process on its own SQLite file, polls for its own guilds: nothing is shared, nothing clashes.
    polling = load_settings(
        {**REQUIRED, "SHARD_COUNT": "4", "SHARD_IDS": "0-1", "EVENTSUB_TRANSPORT": "off"}, env_file=None
    )
    assert polling.shard_ids == (0, 1)


# -- DATABASE_URL -----------------------------------------------------------------------------------------

SHARED_DATABASE = {"DATABASE_URL": "postgresql://bot:s3cret-pw@db.internal:5432/twitch_notifier"}


def test_a_database_url_is_taken_and_its_password_never_shown() -> None:
    settings = load_settings({**REQUIRED, **SHARED_DATABASE}, env_file=None)
    assert settings.database_url == SHARED_DATABASE["DATABASE_URL"]
    assert "s3cret-pw" in settings.secrets  # so the log filter hides it wherever it appears
    assert "s3cret-pw" not in repr(settings)
    assert "database_url='postgresql://bot:***@db.internal:5432/twitch_notifier'" in repr(settings)
    assert config.redact_database_url("postgres://u@h/db") == "postgres://u@h/db"


def test_with_a_database_url_the_database_path_is_not_checked(tmp_path: Path) -> None:
    missing = str(tmp_path / "no" / "such" / "dir" / "bot.db")
    settings = load_settings({**REQUIRED, **SHARED_DATABASE, "DATABASE_PATH": missing}, env_file=None)
    assert settings.database_url


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("mysql://u:pw@h/db", "DATABASE_URL must be a PostgreSQL URL, postgresql://user:password@host:5432/database"),
        ("sqlite:///bot.db", "leave it empty for SQLite at DATABASE_PATH"),
        ("postgresql:///db", "names no host"),
        ("postgresql://u:pw@h:5432", "names no database"),
        ("postgresql://u:pw@h:99999/db", "is not a URL"),
    ],
)
def test_each_bad_database_url_is_one_precise_problem_without_its_password(raw: str, says: str) -> None:
    [problem] = problems_of({**REQUIRED, "DATABASE_URL": raw})
    assert problem.startswith("DATABASE_URL ")
    assert says in problem
    assert ":pw@" not in problem


# -- STATS_RETENTION_DAYS ---------------------------------------------------------------------------------


def test_stats_retention_defaults_to_a_year_and_a_blank_value_means_the_default() -> None:
    assert config.DEFAULT_STATS_RETENTION_DAYS == 365
    assert config.Settings("t", "i", "s").stats_retention_days == config.DEFAULT_STATS_RETENTION_DAYS
    assert load_settings(REQUIRED, env_file=None).stats_retention_days == 365
    assert load_settings({**REQUIRED, "STATS_RETENTION_DAYS": "  "}, env_file=None).stats_retention_days == 365
    assert load_settings({**REQUIRED, "STATS_RETENTION_DAYS": "30"}, env_file=None).stats_retention_days == 30


@pytest.mark.parametrize("raw", ["0", "-5", "a year", "1.5", "3651"])
def test_a_bad_stats_retention_is_refused_with_its_range(raw: str) -> None:
    [problem] = problems_of({**REQUIRED, "STATS_RETENTION_DAYS": raw})
    assert problem == (
        f"STATS_RETENTION_DAYS must be a whole number from 1 to {config.MAX_STATS_RETENTION_DAYS} (default 365), "
        f"got {raw!r}"
    )


# -- STREAM_RESTART_GRACE_SECONDS -------------------------------------------------------------------------


def test_restart_grace_defaults_to_ten_minutes_and_zero_turns_it_off() -> None:
    assert config.DEFAULT_STREAM_RESTART_GRACE_SECONDS == 600
    assert config.Settings("t", "i", "s").stream_restart_grace_seconds == 600
    assert load_settings(REQUIRED, env_file=None).stream_restart_grace_seconds == 600
    blank = load_settings({**REQUIRED, "STREAM_RESTART_GRACE_SECONDS": " "}, env_file=None)
    assert blank.stream_restart_grace_seconds == 600
    off = load_settings({**REQUIRED, "STREAM_RESTART_GRACE_SECONDS": "0"}, env_file=None)
    assert off.stream_restart_grace_seconds == 0
    assert "stream_restart_grace_seconds=600" in repr(config.Settings("t", "i", "s"))


@pytest.mark.parametrize("raw", ["-1", "ten minutes", "1.5", "86401"])
def test_a_bad_restart_grace_is_refused_with_its_range(raw: str) -> None:
    [problem] = problems_of({**REQUIRED, "STREAM_RESTART_GRACE_SECONDS": raw})
    assert problem == (
        f"STREAM_RESTART_GRACE_SECONDS must be a whole number from 0 to {config.MAX_STREAM_RESTART_GRACE_SECONDS} "
        f"(default 600), got {raw!r}"
    )
