"""Consistency checks that read the deployment files: Dockerfile, .dockerignore, fly.toml, Procfile, DEPLOYMENT.md.

Docker can't run here, so these parse the files and check they agree with each other and with the code.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import posixpath
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

import config
from health_server import HEALTH_PATH, METRICS_PATH

ROOT = Path(__file__).resolve().parent.parent
SECRET_NAMES = ("DISCORD_TOKEN", "TWITCH_CLIENT_ID", "TWITCH_CLIENT_SECRET")


# -- parsing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def all_of(keyword: str) -> list[Instruction]:
    return [i for i in dockerfile() if i.keyword == keyword]


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in all_of("ENV"):
        words = shlex.split(instruction.args)
        if "=" in words[0]:
            env.update(word.split("=", 1) for word in words)
        else:  # legacy form: ENV NAME value
            env[words[0]] = " ".join(words[1:])
    return env


def exec_form(keyword: str) -> list[str]:
    (instruction,) = all_of(keyword)
    value = json.loads(instruction.args)
    assert isinstance(value, list), f"{keyword} must use the exec (JSON) form, so signals reach the bot"
    return value


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY, flags such as --chown dropped."""
    result = []
    for instruction in all_of("COPY"):
        words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
        result.append((words[:-1], words[-1]))
    return result


def fly() -> dict:
    with (ROOT / "fly.toml").open("rb") as handle:
        return tomllib.load(handle)


def procfile() -> dict[str, str]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip():
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def dockerignore() -> list[str]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line.rstrip("/"))
    return patterns


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins, `!` re-includes; `**/` matches any depth."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        candidates = {body, body.removeprefix("**/")}
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, c) for prefix in prefixes for c in candidates) or (
            body.startswith("**/") and any(fnmatch.fnmatchcase(part, body[3:]) for part in parts)
        ):
            result = not negate
    return result


def local_modules_imported_by(entry: str) -> set[str]:
    """Every top-level module of this repository that `entry` imports, directly or through another one."""
    local = {p.stem for p in ROOT.glob("*.py")}
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((ROOT / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                todo += [a.name.split(".")[0] for a in node.names if a.name.split(".")[0] in local]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                root = node.module.split(".")[0]
                if root in local:
                    todo.append(root)
    return seen


def entrypoint_script() -> str:
    entrypoint = exec_form("ENTRYPOINT")
    assert entrypoint[:2] == ["/bin/sh", "-c"], "ENTRYPOINT is expected to be a /bin/sh -c script"
    return entrypoint[2]


def created_user() -> tuple[str, int]:
    """The user the Dockerfile creates with useradd, and its uid."""
    for instruction in all_of("RUN"):
        match = re.search(
            r"useradd\s+(?P<options>(?:--?\S+(?:\s+[^-\s]\S*)?\s+)*)(?P<name>[a-z_][a-z0-9_-]*)", instruction.args
        )
        if match:
            uid = re.search(r"--uid\s+(\d+)", match.group("options"))
            assert uid, "give the user a fixed uid, so files on the volume keep their owner across images"
            return match.group("name"), int(uid.group(1))
    pytest.fail("the Dockerfile creates no user (useradd)")


def default(field_name: str) -> object:
    return next(f.default for f in fields(config.Settings) if f.name == field_name)


# -- the consistency checks asked for ---------------------------------------------------------------------


def test_fly_mount_is_the_directory_of_the_database_path() -> None:
    database_path = docker_env()["DATABASE_PATH"]
    assert database_path == "/data/twitch_bot.db"
    assert fly()["mounts"]["destination"] == posixpath.dirname(database_path)
    # If fly.toml sets it too, it must say the same thing.
    assert fly()["env"].get("DATABASE_PATH", database_path) == database_path


def test_fly_health_check_port_is_the_default_http_port() -> None:
    checks = fly()["checks"]
    assert checks, "fly.toml has no health check"
    default_port = default("http_port")
    assert default_port == 8080
    for name, check in checks.items():
        assert check["port"] == default_port, f"check {name!r} probes port {check['port']}"
    assert int(docker_env()["HTTP_PORT"]) == default_port
    assert int(fly()["env"].get("HTTP_PORT", default_port)) == default_port
    assert fly()["metrics"]["port"] == default_port
    assert [i.args for i in all_of("EXPOSE")] == [str(default_port)]


def test_fly_health_check_hits_the_health_endpoint() -> None:
    (check,) = fly()["checks"].values()
    assert check["type"] == "http"
    assert check["path"] == HEALTH_PATH
    assert check.get("method", "get").lower() == "get"
    for key in ("interval", "timeout", "grace_period"):
        assert key in check
    assert fly()["metrics"]["path"] == METRICS_PATH


def test_procfile_command_is_the_dockerfile_command() -> None:
    assert (ROOT / "Procfile").read_text() == "worker: python bot.py\n"
    assert shlex.split(procfile()["worker"]) == exec_form("CMD") == ["python", "bot.py"]


def test_every_file_the_dockerfile_copies_exists_and_reaches_the_build() -> None:
    patterns = dockerignore()
    sources = [source for sources, _ in copies() for source in sources]
    assert sources
    for source in sources:
        assert (ROOT / source).is_file(), f"Dockerfile copies {source}, which does not exist"
        assert not ignored(source, patterns), f"Dockerfile copies {source}, but .dockerignore excludes it"


def test_the_image_has_every_module_the_bot_imports() -> None:
    copied = {Path(source).stem for sources, _ in copies() for source in sources if source.endswith(".py")}
    needed = local_modules_imported_by("bot")
    assert needed <= copied, f"missing from the image: {sorted(needed - copied)}"
    assert {"metrics", "health_server"} <= copied


# -- the image ---------------------------------------------------------------------------------------------


def test_base_image_is_slim_official_python_supported_by_the_project() -> None:
    (base,) = all_of("FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(-\w+)?", base.args)
    assert match, f"expected an official python slim image, got {base.args!r}"
    with (ROOT / "pyproject.toml").open("rb") as handle:
        requires = tomllib.load(handle)["project"]["requires-python"]
    minimum = tuple(int(n) for n in re.search(r">=\s*(\d+)\.(\d+)", requires).groups())
    assert (int(match.group(1)), int(match.group(2))) >= minimum


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    order = dockerfile()
    first_requirements = next(n for n, i in enumerate(order) if i.keyword == "COPY" and "requirements.txt" in i.args)
    install = next(n for n, i in enumerate(order) if i.keyword == "RUN" and "pip install" in i.args)
    first_code = next(n for n, i in enumerate(order) if i.keyword == "COPY" and ".py" in i.args)
    assert first_requirements < install < first_code
    assert "--no-cache-dir" in order[install].args
    assert "-r requirements.txt" in order[install].args
    # The requirements COPY brings nothing else, or every code change would reinstall the dependencies.
    assert copies()[0][0] == ["requirements.txt"]


def test_python_runs_unbuffered_without_bytecode_files() -> None:
    env = docker_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_no_volume_instruction_fly_mounts_the_volume() -> None:
    assert not all_of("VOLUME")


def test_the_bot_runs_as_an_unprivileged_user() -> None:
    name, uid = created_user()
    assert name != "root"
    assert uid != 0
    users = [i.args.split(":")[0] for i in all_of("USER")]
    if users and users[-1] not in ("root", "0"):
        assert users[-1] in (name, str(uid))
        return
    # Otherwise the container starts as root only to hand the volume to the user, and the
    # entrypoint must drop to that user before running the command.
    script = entrypoint_script()
    assert script.startswith("set -e;"), "if the hand-over fails, nothing must start (as root)"
    assert re.search(rf"exec setpriv --reuid={name} --regid={name} --init-groups -- \"\$@\"", script)
    # The one place the bot writes to is handed over, and it is the volume.
    assert f"chown -R {name}:{name} {fly()['mounts']['destination']};" in script
    # Every path that reaches the command as root goes through setpriv.
    root_branch = script.split("then", 1)[1].split("fi", 1)[0]
    assert "exec setpriv" in root_branch


def test_the_data_directory_exists_in_the_image_for_its_user() -> None:
    name, _ = created_user()
    runs = " ".join(i.args for i in all_of("RUN"))
    assert "--create-home" in runs
    assert "mkdir -p /data" in runs
    assert f"chown {name}:{name} /data" in runs


@pytest.mark.skipif(shutil.which("setpriv") is None and os.geteuid() == 0, reason="needs setpriv to leave root")
def test_entrypoint_passes_the_command_and_its_arguments_unchanged() -> None:
    # Run the entrypoint's non-root branch for real (the root branch would chown /data on this machine).
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []
    command = ["printf", "%s|", "python", "bot.py", "an argument with spaces", "$HOME"]
    result = subprocess.run(
        [*prefix, "/bin/sh", "-c", entrypoint_script(), "entrypoint", *command],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert result.stdout == "python|bot.py|an argument with spaces|$HOME|"


def test_stop_signal_is_sigterm_everywhere() -> None:
    (stop,) = all_of("STOPSIGNAL")
    assert stop.args == "SIGTERM"
    assert fly()["kill_signal"] == "SIGTERM"


def test_no_secret_is_baked_into_the_image_or_the_config() -> None:
    for instruction in all_of("ENV") + all_of("ARG"):
        for secret in SECRET_NAMES:
            assert secret not in instruction.args, f"{instruction.keyword} mentions {secret}"
    for secret in SECRET_NAMES:
        assert secret not in fly()["env"]
        assert not re.search(rf"^\s*{secret}\s*=", (ROOT / "fly.toml").read_text(), re.MULTILINE)
    assert not any(".env" in source for sources, _ in copies() for source in sources)
    assert not any(source in (".", "./") for sources, _ in copies() for source in sources)


def test_dockerignore_keeps_secrets_venv_databases_and_tests_out() -> None:
    patterns = dockerignore()
    for required in (".env", ".venv", "*.db", "tests"):
        assert required in patterns, f".dockerignore does not list {required}"
    for path in (
        ".env",
        ".venv/bin/python",
        "twitch_bot.db",
        "data/twitch_bot.db",
        "tests/test_config.py",
        ".git/HEAD",
    ):
        assert ignored(path, patterns), f"{path} would be sent to the Docker build"
    assert not ignored("Dockerfile", patterns)


# -- fly.toml on its own ------------------------------------------------------------------------------------


def test_fly_runs_a_small_shared_cpu_worker() -> None:
    config_ = fly()
    assert "http_service" not in config_ and "services" not in config_, "the bot is a worker: no public service"
    (vm,) = config_["vm"]
    assert vm == {"memory": "256mb", "cpu_kind": "shared", "cpus": 1}
    assert config_["mounts"]["source"] == "bot_data"


def test_fly_gives_the_bot_time_to_shut_down_cleanly() -> None:
    timeout = fly()["kill_timeout"]
    seconds = int(timeout.removesuffix("s")) if isinstance(timeout, str) else timeout
    assert 10 <= seconds <= 300  # Fly's maximum is 300 s


def test_fly_env_is_a_valid_configuration() -> None:
    env = {key: str(value) for key, value in fly()["env"].items()}
    assert env["CHECK_INTERVAL_SECONDS"] == "90"
    secrets = dict.fromkeys(SECRET_NAMES, "placeholder-value")
    settings = config.load_settings({**docker_env(), **env, **secrets}, env_file=None)
    assert settings.check_interval_seconds == 90
    assert settings.database_path == docker_env()["DATABASE_PATH"]
    assert settings.http_port == fly()["checks"]["health"]["port"]
    # Fly's checks reach the machine on its private address, so the endpoint listens on every interface.
    assert settings.http_host == "0.0.0.0"  # noqa: S104


# -- DEPLOYMENT.md -------------------------------------------------------------------------------------------


def test_invite_links_ask_for_exactly_the_permissions_the_bot_checks() -> None:
    discord = pytest.importorskip("discord")
    common = pytest.importorskip("discord_common")
    needed = discord.Permissions(**dict.fromkeys(common.REQUIRED_CHANNEL_PERMISSIONS, True)).value
    assert needed == 1024 + 2048 + 16384 == 19456
    for document in ("DEPLOYMENT.md", "README.md"):
        links = re.findall(r"https://discord\.com/oauth2/authorize\?\S+", (ROOT / document).read_text())
        assert links, f"{document} has no invite link"
        for link in links:
            assert "scope=bot+applications.commands" in link
            assert re.search(r"permissions=(\d+)", link).group(1) == str(needed)


def test_deployment_guide_uses_the_names_in_fly_toml() -> None:
    guide = (ROOT / "DEPLOYMENT.md").read_text()
    source = fly()["mounts"]["source"]
    assert f"fly volumes create {source} " in guide
    for command in (
        "fly launch --no-deploy",
        "fly secrets set",
        "fly deploy",
        "fly logs",
        "fly status",
        "fly checks list",
    ):
        assert command in guide, f"DEPLOYMENT.md does not show `{command}`"
    for secret in SECRET_NAMES:
        assert f"{secret}=" in guide


def backup_commands() -> list[tuple[str, str, str]]:
    """(python code, source, destination) of each `python -c '…' SRC DST` in DEPLOYMENT.md."""
    guide = (ROOT / "DEPLOYMENT.md").read_text()
    return re.findall(r"python -c '([^']+)' (\S+) ([^\s\"]+)\"", guide)


def test_backup_and_restore_commands_work_on_a_live_wal_database(tmp_path: Path) -> None:
    commands = backup_commands()
    assert len(commands) == 2, "expected one backup and one restore command"
    (backup_code, backup_src, backup_dst), (restore_code, restore_src, restore_dst) = commands
    database_path = docker_env()["DATABASE_PATH"]
    assert backup_src == database_path and restore_dst == database_path
    assert f"fly ssh sftp get {backup_dst} " in (ROOT / "DEPLOYMENT.md").read_text()
    assert f" {restore_src}\n" in (ROOT / "DEPLOYMENT.md").read_text()  # the sftp put target

    live, backup = tmp_path / "twitch_bot.db", tmp_path / "backup.db"
    # The bot's connection: WAL, kept open, with committed rows still only in the -wal file.
    bot = sqlite3.connect(live, isolation_level=None)
    bot.execute("PRAGMA journal_mode=WAL")
    bot.execute("PRAGMA wal_autocheckpoint=0")
    bot.execute("CREATE TABLE announced (stream_id TEXT PRIMARY KEY)")
    bot.executemany("INSERT INTO announced VALUES (?)", [("a",), ("b",)])
    try:
        subprocess.run([sys.executable, "-c", backup_code, str(live), str(backup)], check=True, timeout=30)
        assert not Path(f"{backup}-wal").exists(), "the backup must be one self-contained file"
        copy = sqlite3.connect(backup)
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT count(*) FROM announced").fetchone() == (2,)
        copy.close()

        bot.execute("INSERT INTO announced VALUES ('c')")
        subprocess.run([sys.executable, "-c", restore_code, str(backup), str(live)], check=True, timeout=30)
        # The still-open connection sees the restored content, as the bot would before its restart.
        assert sorted(bot.execute("SELECT stream_id FROM announced")) == [("a",), ("b",)]
        assert bot.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        bot.close()
