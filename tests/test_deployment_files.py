"""Consistency checks that read the deployment files: Dockerfile, .dockerignore, fly.toml, Procfile, DEPLOYMENT.md,
the requirements and their lock, .gitignore, .pre-commit-config.yaml and quickstart.sh.

Docker can't run here, so these parse the files and check they agree with each other and with the code.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import importlib.metadata
import json
import os
import posixpath
import pty
import re
import select
import shlex
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import termios
import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

import config
from twitch_notifier.ops.health import HEALTH_PATH, METRICS_PATH

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
            for word in words:
                name, _, value = word.partition("=")
                env[name] = value
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


def project_module(name: str) -> Path | None:
    """The file of the project's module `name` (dotted), or None if it is not one of the project's."""
    parts = name.split(".")
    for candidate in (ROOT.joinpath(*parts[:-1], f"{parts[-1]}.py"), ROOT.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(entry: str) -> tuple[set[Path], set[str]]:
    """Every project file `entry` imports, directly or through another one (packages' __init__ included),
    and the top-level names of everything else they import (standard library and dependencies)."""
    files: set[Path] = set()
    others: set[str] = set()
    todo = [ROOT / entry]
    while todo:
        path = todo.pop()
        if path in files:
            continue
        files.add(path)
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                bases, candidates = [a.name for a in node.names], [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                # `from package import name`: the name may be a module of the package.
                bases, candidates = [base], [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for base in bases:
                if project_module(base.split(".")[0]) is None:
                    others.add(base.split(".")[0])
            for candidate in candidates:
                parts = candidate.split(".")
                todo += [f for i in range(1, len(parts) + 1) if (f := project_module(".".join(parts[:i])))]
    return files, others


def image_files() -> set[str]:
    """The project files the COPY lines put into the image, as paths relative to WORKDIR."""
    patterns = dockerignore()
    result: set[str] = set()
    for sources, destination in copies():
        into_directory = destination.endswith("/") or destination in (".", "./") or len(sources) > 1
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                for file in sorted(path.rglob("*")):
                    inside = file.relative_to(path).as_posix()
                    if file.is_file() and not ignored(posixpath.join(source.rstrip("/"), inside), patterns):
                        result.add(posixpath.normpath(posixpath.join(destination, inside)))
            elif into_directory:
                result.add(posixpath.normpath(posixpath.join(destination, path.name)))
            else:
                result.add(posixpath.normpath(destination))
    return result


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(name: str) -> list[str]:
    lines = []
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def pins(name: str) -> dict[str, str]:
    """{canonical name: version} of a requirements file; every line must be an exact pin (or `-r`)."""
    result = {}
    for line in requirement_lines(name):
        if line.startswith("-r "):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"{name}: {line!r} is not pinned with =="
        result[canonical(match.group(1))] = match.group(2)
    return result


def lock() -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, sha256 hashes)} of requirements.lock."""
    joined = (ROOT / "requirements.lock").read_text().replace("\\\n", " ")
    result = {}
    for raw in joined.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)", line)
        assert match, f"requirements.lock: {line!r} is not a pinned requirement with hashes"
        result[canonical(match.group(1))] = (match.group(2), re.findall(r"sha256:([0-9a-f]{64})", match.group(3)))
    return result


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
        path = ROOT / source
        assert path.is_file() or path.is_dir(), f"Dockerfile copies {source}, which does not exist"
        assert not ignored(source.rstrip("/"), patterns), f"Dockerfile copies {source}, but .dockerignore excludes it"
        if path.is_dir():
            modules = [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
            assert modules, f"Dockerfile copies {source}, which holds no module"
            for module in modules:
                inside = module.relative_to(ROOT).as_posix()
                assert not ignored(inside, patterns), f"Dockerfile copies {source}, but .dockerignore excludes {inside}"


def test_the_package_is_copied_whole_and_under_its_own_name() -> None:
    # A module added to the package reaches the image without touching the Dockerfile.
    assert (["twitch_notifier/"], "./twitch_notifier/") in copies()
    assert "twitch_notifier/__init__.py" in image_files()
    assert not any("__pycache__" in path or path.endswith(".pyc") for path in image_files())


def test_the_image_has_every_module_the_bot_imports() -> None:
    files, _ = imports_of("bot.py")
    needed = {path.relative_to(ROOT).as_posix() for path in files}
    copied = image_files()
    assert needed <= copied, f"missing from the image: {sorted(needed - copied)}"
    # The two the platform talks to: /healthz for the check and /metrics for the scraper.
    for module in ("twitch_notifier.ops.health", "twitch_notifier.ops.metrics"):
        path = project_module(module)
        assert path is not None, f"bot.py no longer reaches {module}"
        assert path in files, f"bot.py no longer reaches {module}"


def test_everything_the_bot_imports_exists_or_is_a_declared_dependency() -> None:
    # bot.py's imports (and theirs) are the project's own modules, the standard library, or packages
    # that requirements.txt names itself, not ones that only happen to come with another package.
    _, others = imports_of("bot.py")
    declared = set(pins("requirements.txt"))
    providers = importlib.metadata.packages_distributions()
    for name in sorted(others - set(sys.stdlib_module_names)):
        distributions = {canonical(d) for d in providers.get(name, [])}
        assert distributions, f"{name} is imported, but it is neither a module of the project nor installed"
        assert distributions & declared, (
            f"{name} is imported directly: declare {sorted(distributions)} in requirements.txt"
        )


# -- the image ---------------------------------------------------------------------------------------------


def test_base_image_is_slim_official_python_supported_by_the_project() -> None:
    (base,) = all_of("FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(-\w+)?", base.args)
    assert match, f"expected an official python slim image, got {base.args!r}"
    with (ROOT / "pyproject.toml").open("rb") as handle:
        requires = tomllib.load(handle)["project"]["requires-python"]
    required = re.search(r">=\s*(\d+)\.(\d+)", requires)
    assert required, f"requires-python {requires!r} names no minimum"
    minimum = tuple(int(n) for n in required.groups())
    assert (int(match.group(1)), int(match.group(2))) >= minimum


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    order = dockerfile()
    first_requirements = next(n for n, i in enumerate(order) if i.keyword == "COPY" and "requirements.lock" in i.args)
    install = next(n for n, i in enumerate(order) if i.keyword == "RUN" and "pip install" in i.args)
    first_code = next(n for n, i in enumerate(order) if i.keyword == "COPY" and ".py" in i.args)
    assert first_requirements < install < first_code
    assert "--no-cache-dir" in order[install].args
    # The lock, with every hash checked: the image gets exactly the tested packages, nothing else.
    assert "--require-hashes -r requirements.lock" in order[install].args
    assert [i.args for i in order if i.keyword == "RUN" and "pip install" in i.args] == [order[install].args]
    # The requirements COPY brings nothing else, or every code change would reinstall the dependencies.
    assert copies()[0][0] == ["requirements.lock"]


# -- requirements and their lock ---------------------------------------------------------------------------


def test_the_lock_pins_every_requirement_at_its_version_with_hashes() -> None:
    locked = lock()
    for name, version in pins("requirements.txt").items():
        assert name in locked, f"{name} is in requirements.txt but not in requirements.lock: regenerate the lock"
        assert locked[name][0] == version, f"{name}: requirements.txt says {version}, the lock {locked[name][0]}"
    for name, (version, hashes) in locked.items():
        assert hashes, f"requirements.lock has no hash for {name}=={version}"
    # Transitive dependencies are in the lock too (aiohttp's, at least), or --require-hashes would fail.
    assert {"aiosignal", "frozenlist", "propcache", "attrs"} <= set(locked)


def test_the_lock_says_how_it_was_made_and_names_no_index() -> None:
    text = (ROOT / "requirements.lock").read_text()
    assert "pip-compile" in text
    assert "--generate-hashes" in text
    assert "requirements.txt" in text
    assert not re.search(r"^\s*--(index-url|extra-index-url|find-links)", text, re.MULTILINE)


def test_the_dev_requirements_add_pinned_tools_to_the_runtime_ones() -> None:
    assert "-r requirements.txt" in requirement_lines("requirements-dev.txt")
    dev = pins("requirements-dev.txt")
    assert {"pytest", "ruff", "mypy"} <= set(dev)
    assert not set(dev) & set(pins("requirements.txt")), "a runtime package pinned twice could disagree"


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
    assert not any(posixpath.basename(path).startswith(".env") for path in image_files())


def test_dockerignore_keeps_secrets_venv_databases_and_tests_out() -> None:
    patterns = dockerignore()
    for required in (".env", ".venv", "*.db", "tests"):
        assert required in patterns, f".dockerignore does not list {required}"
    for path in (
        ".env",
        ".env.Xy12Ab",  # quickstart.sh's file of answers, before it becomes .env
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
    assert "http_service" not in config_, "the bot is a worker: no public service"
    assert "services" not in config_, "the bot is a worker: no public service"
    (vm,) = config_["vm"]
    assert vm == {"memory": "256mb", "cpu_kind": "shared", "cpus": 1}
    assert config_["mounts"]["source"] == "bot_data"


def test_fly_restarts_the_bot_whenever_its_process_ends() -> None:
    # Fly's default gives up after 10 restarts within 5 minutes; failing health checks restart nothing.
    (restart,) = fly()["restart"]
    assert restart["policy"] == "always"
    assert "retries" not in restart
    # No process groups: the policy applies to the app's one machine.
    assert "processes" not in restart
    assert "processes" not in fly()
    text = (ROOT / "fly.toml").read_text()
    assert re.search(r"(^#.*\n)+\[\[restart\]\]", text, re.MULTILINE), "say why, in a comment above [[restart]]"


def test_fly_gives_the_bot_time_to_shut_down_cleanly() -> None:
    timeout = fly()["kill_timeout"]
    seconds = int(timeout.removesuffix("s")) if isinstance(timeout, str) else timeout
    assert 10 <= seconds <= 300  # Fly's maximum is 300 s


def test_fly_env_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    # /data is the image's volume, not a directory of this machine: only that check is left out.
    monkeypatch.setattr(config, "database_path_problem", lambda path: None)
    env = {key: str(value) for key, value in fly()["env"].items()}
    assert env["CHECK_INTERVAL_SECONDS"] == "90"
    secrets = dict.fromkeys(SECRET_NAMES, "placeholder-value")
    settings = config.load_settings({**docker_env(), **env, **secrets}, env_file=None)
    assert settings.check_interval_seconds == 90
    assert settings.database_path == docker_env()["DATABASE_PATH"]
    assert settings.http_port == fly()["checks"]["health"]["port"]
    # Fly's checks reach the machine on its private address and `fly proxy` comes over the IPv6 private
    # network, so the endpoint listens on every interface of both families.
    assert settings.http_host == config.ALL_INTERFACES


# -- DEPLOYMENT.md -------------------------------------------------------------------------------------------


def test_invite_links_ask_for_exactly_the_permissions_the_bot_checks() -> None:
    discord = pytest.importorskip("discord")
    from twitch_notifier.discord_io.channels import REQUIRED_CHANNEL_PERMISSIONS

    needed = discord.Permissions(**dict.fromkeys(REQUIRED_CHANNEL_PERMISSIONS, True)).value
    assert needed == 1024 + 2048 + 16384 == 19456
    for document in ("DEPLOYMENT.md", "README.md"):
        links = re.findall(r"https://discord\.com/oauth2/authorize\?\S+", (ROOT / document).read_text())
        assert links, f"{document} has no invite link"
        for link in links:
            assert "scope=bot+applications.commands" in link
            permissions = re.search(r"permissions=(\d+)", link)
            assert permissions, f"{link} asks for no permissions"
            assert permissions.group(1) == str(needed)


def test_deployment_guide_uses_the_names_in_fly_toml() -> None:
    guide = (ROOT / "DEPLOYMENT.md").read_text()
    source = fly()["mounts"]["source"]
    assert f"fly volumes create {source} " in guide
    for command in (
        "fly apps create",
        "fly secrets set",
        "fly deploy",
        "fly logs",
        "fly status",
        "fly checks list",
    ):
        assert command in guide, f"DEPLOYMENT.md does not show `{command}`"
    for secret in SECRET_NAMES:
        assert f"{secret}=" in guide


def shell_lines(document: str) -> list[str]:
    """The lines of the ```sh blocks of a Markdown document."""
    blocks = re.findall(r"^```sh\n(.*?)^```", (ROOT / document).read_text(), re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines()]


def test_deployment_guide_creates_the_app_without_rewriting_fly_toml() -> None:
    guide = (ROOT / "DEPLOYMENT.md").read_text()
    # `fly launch` (even with --copy-config) rewrites fly.toml and drops its comments.
    assert "--copy-config" not in guide
    assert not [line for line in shell_lines("DEPLOYMENT.md") if line.startswith(("fly launch", "flyctl launch"))]
    assert "fly apps create <your-app-name>" in shell_lines("DEPLOYMENT.md")
    # ... so the guide has the reader write the two values into fly.toml, which must have them to edit.
    for key in ("app", "primary_region"):
        assert f'{key} = "<' in guide
        assert key in fly()


def backup_commands() -> list[tuple[str, str, str]]:
    """(python code, source, destination) of each `python -c '…' SRC DST` in DEPLOYMENT.md."""
    guide = (ROOT / "DEPLOYMENT.md").read_text()
    return re.findall(r"python -c '([^']+)' (\S+) ([^\s\"]+)\"", guide)


def test_backup_and_restore_commands_work_on_a_live_wal_database(tmp_path: Path) -> None:
    commands = backup_commands()
    assert len(commands) == 2, "expected one backup and one restore command"
    (backup_code, backup_src, backup_dst), (restore_code, restore_src, restore_dst) = commands
    database_path = docker_env()["DATABASE_PATH"]
    assert backup_src == database_path
    assert restore_dst == database_path
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


# -- .gitignore and the pre-commit hooks ----------------------------------------------------------------------


def gitignored(path: str) -> bool:
    """Whether a top-level `path` matches one of .gitignore's patterns (none of them is negated)."""
    patterns = [p.rstrip("/") for p in requirement_lines(".gitignore")]
    assert not any(p.startswith("!") for p in patterns)
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def quickstart_env_template() -> str:
    (template,) = re.findall(r"mktemp (\S+)\)", (ROOT / "quickstart.sh").read_text())
    return template.strip("\"'")


def test_gitignore_keeps_every_env_file_and_the_tools_caches_out_of_git() -> None:
    template = quickstart_env_template()
    for path in (".env", ".env.local", ".env.production", template, ".venv", ".mypy_cache", ".ruff_cache"):
        assert gitignored(path), f".gitignore does not cover {path}"
    for path in ("twitch_bot.db", "twitch_bot.db-wal", "__pycache__", ".pytest_cache", ".hypothesis"):
        assert gitignored(path), f".gitignore does not cover {path}"
    for path in ("requirements.lock", "quickstart.sh", ".pre-commit-config.yaml", ".gitignore", "fly.toml"):
        assert not gitignored(path), f".gitignore hides {path}, which belongs in the repository"
    # quickstart.sh's file of answers stays out of an image built from a half-set-up checkout too.
    assert ignored(template, dockerignore())


def pre_commit_hooks() -> list[dict[str, str]]:
    """The hooks of .pre-commit-config.yaml, read as the flat `key: value` lines they are (no YAML parser here)."""
    hooks: list[dict[str, str]] = []
    for raw in (ROOT / ".pre-commit-config.yaml").read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line.startswith("- id:"):
            hooks.append({})
            line = line[2:]
        key, sep, value = line.partition(":")
        if hooks and sep and value.strip():
            hooks[-1][key.strip()] = value.strip()
    return hooks


def test_pre_commit_runs_the_checks_of_quickstart_test_with_the_venv_tools() -> None:
    text = (ROOT / ".pre-commit-config.yaml").read_text()
    assert re.search(r"^\s*- repo: local$", text, re.MULTILINE)
    assert "repo: http" not in text, "hooks fetched from the network would not run offline"
    hooks = pre_commit_hooks()
    assert [hook["entry"].split(" --force-exclude")[0] for hook in hooks] == [
        ".venv/bin/ruff check",
        ".venv/bin/ruff format --check",
        ".venv/bin/mypy",
    ]
    for hook in hooks:
        assert hook["language"] == "system", f"{hook['id']} must use the installed tools"
        assert "python" in hook.get("types_or", hook.get("types", "")), f"{hook['id']} must run on Python files"
    # mypy takes its files from pyproject.toml: given only the changed files it would miss what they break.
    (mypy,) = [hook for hook in hooks if hook["id"] == "mypy"]
    assert mypy["pass_filenames"] == "false"
    # The same tools, in the same order, as `./quickstart.sh test`.
    script = (ROOT / "quickstart.sh").read_text()
    test_branch = script[script.index("    test)") :].split(";;", 1)[0]
    steps = re.findall(r'"\$VENV/bin/(ruff|mypy|python)"( check| format --check| -m pytest)?', test_branch)
    assert steps == [("ruff", " check"), ("ruff", " format --check"), ("mypy", ""), ("python", " -m pytest")]


# -- quickstart.sh, run for real against stand-ins for Python and the tools ------------------------------------

STUB = """#!/bin/sh
# A stand-in for {name}: records how it was called; {behaviour}
echo "{name} $*" >> "{log}"
{body}
exit 0
"""


def write_stub(path: Path, name: str, log: Path, body: str = "", behaviour: str = "succeeds") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STUB.format(name=name, log=log, body=body, behaviour=behaviour))
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory with quickstart.sh and a working stand-in .venv: nothing is installed, nothing downloaded."""
    shutil.copy(ROOT / "quickstart.sh", tmp_path / "quickstart.sh")
    log = tmp_path / "calls.log"
    for tool in ("python", "ruff", "mypy"):
        write_stub(tmp_path / ".venv" / "bin" / tool, tool, log)
    return tmp_path


def calls(directory: Path) -> list[str]:
    log = directory / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def quickstart_env(directory: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(directory), "PYTHON": sys.executable, **extra}


class Terminal:
    """quickstart.sh on a pseudo-terminal of its own, as in an interactive shell (Ctrl-C included)."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.output = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the script at once, and never return into pytest
            try:
                os.chdir(directory)
                os.execve("/bin/bash", ["bash", "quickstart.sh", *args], quickstart_env(directory))  # noqa: S606
            finally:
                os._exit(127)

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                pytest.fail(f"quickstart.sh never printed {text!r}; it printed {self.output!r}")
            self.output += os.read(self.fd, 4096)

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def echo_is_on(self) -> bool:
        return bool(termios.tcgetattr(self.fd)[3] & termios.ECHO)

    def stop(self, how: str) -> int:
        """Ctrl-C or SIGTERM while the script waits for an answer; its exit status."""
        deadline = time.monotonic() + 20
        while self.echo_is_on() and time.monotonic() < deadline:  # until `read -s` has started
            time.sleep(0.01)
        # A signal that lands between the prompt and bash's blocking read is only handled at the next
        # one (no person is that fast): so it is repeated until the script is gone.
        while time.monotonic() < deadline:
            if how == "ctrl-c":
                self.type("\x03")  # the terminal turns it into SIGINT for the script
            else:
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(pytest.fail.Exception):
                return self.finish(timeout=1)
        pytest.fail(f"quickstart.sh ignored {how}; it printed {self.output!r}")

    def finish(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = 0
                with contextlib.suppress(OSError):  # the rest of the output, until the terminal closes
                    while select.select([self.fd], [], [], 0.2)[0] and (chunk := os.read(self.fd, 4096)):
                        self.output += chunk
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        pytest.fail(f"quickstart.sh did not exit; it printed {self.output!r}")

    def close(self) -> None:
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture
def terminal(checkout: Path):
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        started.append(Terminal(checkout, *args))
        return started[-1]

    yield start
    for term in started:
        term.close()


def answer_two_of_three(term: Terminal) -> None:
    term.wait_for("\nDiscord bot token: ")
    term.type("token-typed-in\n")
    term.wait_for("\nTwitch client ID: ")
    term.type("id-typed-in\n")
    term.wait_for("\nTwitch client secret: ")


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_interrupting_the_secret_questions_leaves_no_env_file(checkout: Path, terminal, stop: str) -> None:
    term = terminal()
    answer_two_of_three(term)
    assert [p.name for p in checkout.glob(".env*")] != [".env"], "the answers must not be written to .env itself"
    code = term.stop(stop)
    assert code == (130 if stop == "ctrl-c" else 143), term.output
    assert not list(checkout.glob(".env*")), "a half-written .env (or its temporary file) was left behind"
    assert term.echo_is_on(), "the terminal was left without echo"
    assert "python bot.py" not in calls(checkout), "the bot must not start without a .env"


def test_answering_the_three_questions_writes_env_readable_only_by_the_user_then_starts(
    checkout: Path, terminal
) -> None:
    term = terminal()
    answer_two_of_three(term)
    term.type("secret-typed-in\n")
    assert term.finish() == 0, term.output
    env_file = checkout / ".env"
    assert env_file.read_text() == (
        "DISCORD_TOKEN=token-typed-in\nTWITCH_CLIENT_ID=id-typed-in\nTWITCH_CLIENT_SECRET=secret-typed-in\n"
    )
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert [p.name for p in checkout.glob(".env*")] == [".env"], "the temporary file must become .env"
    assert calls(checkout)[-1] == "python bot.py"
    assert b"Creating .venv" not in term.output
    assert b"incomplete" not in term.output


def test_an_existing_env_is_never_asked_for_or_touched(checkout: Path) -> None:
    (checkout / ".env").write_text("DISCORD_TOKEN=mine\n")
    result = subprocess.run(
        ["bash", "quickstart.sh"],
        cwd=checkout,
        env=quickstart_env(checkout),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (checkout / ".env").read_text() == "DISCORD_TOKEN=mine\n"
    assert calls(checkout)[-1] == "python bot.py"


def fake_python(checkout: Path) -> Path:
    """A stand-in for the system Python whose `-m venv DIR` makes a working stand-in venv."""
    path = checkout / "system-python"
    venv_python = STUB.format(name="python", log=checkout / "calls.log", body="", behaviour="succeeds")
    body = f"""if [ "$1" = -m ] && [ "$2" = venv ]; then
    mkdir -p "$3/bin"
    cat > "$3/bin/python" <<'STUB'
{venv_python}STUB
    chmod +x "$3/bin/python"
fi"""
    write_stub(path, "system-python", checkout / "calls.log", body=body, behaviour="`-m venv DIR` makes a stand-in")
    return path


@pytest.mark.parametrize("damage", ["no python", "no pip", "python broken"])
def test_a_half_made_venv_is_made_again(checkout: Path, damage: str) -> None:
    venv = checkout / ".venv"
    (venv / "left-over").write_text("from the interrupted attempt")
    if damage == "no python":
        (venv / "bin" / "python").unlink()
    elif damage == "no pip":
        body = 'if [ "$*" = "-m pip --version" ]; then exit 1; fi'
        write_stub(venv / "bin" / "python", "python", checkout / "calls.log", body=body, behaviour="has no pip")
    else:
        write_stub(venv / "bin" / "python", "python", checkout / "calls.log", body="exit 127", behaviour="fails")
    env = quickstart_env(checkout, PYTHON=str(fake_python(checkout)))
    result = subprocess.run(["bash", "quickstart.sh", "check"], cwd=checkout, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [message] = [line for line in result.stdout.splitlines() if "incomplete" in line]
    assert message.startswith(".venv ")
    assert "creating it again" in message
    assert not (venv / "left-over").exists(), "the broken venv must be removed, not patched"
    assert "system-python -m venv .venv" in calls(checkout)
    assert calls(checkout)[-1] == "python bot.py --check"


def test_the_test_command_runs_ruff_then_mypy_then_pytest_with_the_extra_arguments(checkout: Path) -> None:
    result = subprocess.run(
        ["bash", "quickstart.sh", "test", "-x", "tests/e2e"],
        cwd=checkout,
        env=quickstart_env(checkout),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert calls(checkout)[-5:] == [
        "python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt",
        "ruff check .",
        "ruff format --check .",
        "mypy ",
        "python -m pytest -n 2 -x tests/e2e",  # two workers by default: CI has two cores
    ]


def test_test_workers_sets_how_many_processes_run_the_suite(checkout: Path) -> None:
    result = subprocess.run(
        ["bash", "quickstart.sh", "test", "-s"],
        cwd=checkout,
        env=quickstart_env(checkout, TEST_WORKERS="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert calls(checkout)[-1] == "python -m pytest -n 0 -s"


def test_the_test_command_stops_at_the_first_failing_check(checkout: Path) -> None:
    write_stub(checkout / ".venv" / "bin" / "mypy", "mypy", checkout / "calls.log", body="exit 1", behaviour="fails")
    result = subprocess.run(
        ["bash", "quickstart.sh", "test"], cwd=checkout, env=quickstart_env(checkout), capture_output=True, timeout=60
    )
    assert result.returncode == 1
    assert calls(checkout)[-1] == "mypy "
