"""A throwaway PostgreSQL server for the tests: initdb in a temporary directory, `postgres` on 127.0.0.1 and a
free port, one fresh database per test, everything stopped and removed at the end.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user (Debian's package
creates it). The binaries are `$PG_BIN` if set, else found as scripts/ensure_postgres.sh finds them, else
installed by that script.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
ENSURE_SCRIPT = ROOT / "scripts" / "ensure_postgres.sh"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # A throwaway server: durability buys nothing here and costs seconds.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def _version(bin_dir: str) -> tuple[int, ...]:
    name = Path(bin_dir).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def find_bin_dir() -> str | None:
    """The directory holding `postgres`, `initdb` and `pg_isready`, searched as ensure_postgres.sh does."""
    debian = [str(Path(p).parent) for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")]
    if debian:
        return max(debian, key=_version)
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bin_dir = result.stdout.strip()
        if result.returncode == 0 and (Path(bin_dir) / "postgres").is_file():
            return bin_dir
    on_path = shutil.which("postgres")
    return str(Path(on_path).parent) if on_path else None


def ensure_bin_dir() -> str:
    """`$PG_BIN`, or the installed server's bin directory, or the one ensure_postgres.sh installs; else an error
    saying why."""
    override = os.environ.get("PG_BIN")
    if override:
        if not (Path(override) / "postgres").is_file():
            raise RuntimeError(f"PG_BIN={override} holds no `postgres` binary")
        return override
    found = find_bin_dir()
    if found:
        return found
    result = subprocess.run(["bash", str(ENSURE_SCRIPT)], capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"no PostgreSQL server for the tests (scripts/ensure_postgres.sh):\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """One server: `start()`, then `url(dbname)` or `await create_database()`; `stop()` removes it all."""

    def __init__(self, bin_dir: str | None = None) -> None:
        self.bin_dir = Path(bin_dir or ensure_bin_dir())
        self.port = 0
        self.tmp: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        # As root, every server process runs as `postgres` (Popen's user=, no wrapper process in between).
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root and there is no `postgres` user to run PostgreSQL as "
                    "(scripts/ensure_postgres.sh creates it)"
                ) from None
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    @property
    def data_dir(self) -> Path:
        assert self.tmp is not None, "the cluster is not started"
        return self.tmp / "data"

    @property
    def log_path(self) -> Path:
        assert self.tmp is not None, "the cluster is not started"
        return self.tmp / "server.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AssertionError):
            return "(no server log)"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self.tmp,
            timeout=120,
            check=False,
            **self._as,
        )

    def start(self) -> None:
        # As root /tmp, not $TMPDIR: the `postgres` user must be able to reach it (mkdtemp's own 0700 directory).
        self.tmp = Path(tempfile.mkdtemp(prefix="pg-test-", dir="/tmp" if self._as else None))  # noqa: S108
        try:
            if self._as:
                os.chown(self.tmp, self._as["user"], self._as["group"])
            init = self._run(
                "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
                "--locale=C",
            )  # fmt: skip
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
            # The port is free when read, but may be taken by the time postgres binds it: try a few.
            for _attempt in range(3):
                if self._launch(free_port()):
                    return
            raise RuntimeError(f"PostgreSQL could not bind a free port three times:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _launch(self, port: int) -> bool:
        """Starts the server on `port` and waits until it accepts connections; False if the port was taken."""
        self.port = port
        settings = [arg for name, value in SERVER_SETTINGS.items() for arg in ("-c", f"{name}={value}")]
        command = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(port), "-k", str(self.tmp)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*command, *settings], stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.tmp, **self._as
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                if "could not bind" in tail or "Address already in use" in tail:
                    return False
                raise RuntimeError(f"PostgreSQL exited with status {self.process.returncode} at start:\n{tail}")
            ready = self._run("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-t", "1")
            if ready.returncode == 0:
                return True
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not accept connections within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions ended, no checkpoint wait), then the temporary directory removed."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def _check_alive(self) -> None:
        if not self.alive():
            status = "never started" if self.process is None else f"exited with status {self.process.returncode}"
            raise RuntimeError(f"the test PostgreSQL server {status}:\n{self.log_tail()}")

    async def create_database(self) -> str:
        """A fresh, empty database with a unique name; returns its URL."""
        self._check_alive()
        name = f"test_{uuid.uuid4().hex[:16]}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    async def drop_database(self, name: str) -> None:
        """Drops `name`, ending its sessions first (WITH (FORCE), PostgreSQL 13+)."""
        self._check_alive()
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
