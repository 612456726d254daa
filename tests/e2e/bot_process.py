"""Runs `python bot.py` as a real subprocess against the in-test fake Discord and fake Twitch.

Used by the tests that need the shipped entry point: signals, exit statuses, the health endpoint, logs,
and `kill -9` crash safety; and by those that run several at once on one database (tests/e2e/test_cluster.py,
bench/cluster_fanout.py), which tell the processes' requests apart by their TCP ports (`tcp_ports`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path

import aiohttp

from tests.e2e.harness import DISCORD_TOKEN, TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LINE = re.compile(r"Health and metrics on http://[^:]+:(\d+)/healthz")
SECRETS = (DISCORD_TOKEN, TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET)


def bot_environment(fake_discord, fake_twitch, db_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(db_path.parent),
        "PYTHONUNBUFFERED": "1",
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "TWITCH_CLIENT_ID": TWITCH_CLIENT_ID,
        "TWITCH_CLIENT_SECRET": TWITCH_CLIENT_SECRET,
        "DISCORD_API_BASE": fake_discord.api_base,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
        "TWITCH_API_BASE": fake_twitch.api_base,
        "TWITCH_AUTH_BASE": fake_twitch.auth_base,
        "TWITCH_EVENTSUB_WS_URL": fake_twitch.eventsub_ws_url,
        "EVENTSUB_TRANSPORT": "off",
        "DATABASE_PATH": str(db_path),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "CHECK_INTERVAL_SECONDS": "0.3",
        "LOG_LEVEL": "DEBUG",
    }
    env.update(overrides)
    return env


class BotProcess:
    """One `python bot.py` process; its combined output is collected line by line."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd  # not the repository: a developer's .env must not leak into the test
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._port_found = asyncio.Event()
        self.health_port: int | None = None

    async def start(self) -> BotProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bot.py"),
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            match = HEALTH_LINE.search(line)
            if match:
                self.health_port = int(match.group(1))
                self._port_found.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_health_port(self, timeout: float = 20) -> int:
        await asyncio.wait_for(self._port_found.wait(), timeout)
        assert self.health_port is not None
        return self.health_port

    async def get(self, path: str) -> tuple[int, str]:
        port = await self.wait_health_port()
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, await response.text()

    async def wait_for_line(self, pattern: str, timeout: float = 20) -> str:
        regex = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for line in self.lines:
                if regex.search(line):
                    return line
            if self.process is not None and self.process.returncode is not None:
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s; output:\n{self.output[-4000:]}")

    async def wait(self, timeout: float = 20) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def terminate(self, timeout: float = 10) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def kill(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
        await self.wait()

    async def health(self) -> dict:
        """/healthz as JSON, whatever its status."""
        _, body = await self.get("/healthz")
        return json.loads(body)

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) of the process in MB: its resident memory now, and at its peak."""
        assert self.process is not None
        kb = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                kb[name] = int(value.split()[0])
        return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024

    def tcp_ports(self) -> set[int]:
        """The local ports of the process's TCP sockets right now (Linux /proc): a fake that records its clients'
        ports can tell which process sent what."""
        assert self.process is not None
        inodes = set()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it may have just exited
            for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[len("socket:[") : -1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    if len(fields) > 9 and fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports


class PortSampler:
    """Notes, every `interval` seconds while running, which process holds which local TCP port, so that a request a
    fake recorded with its client's port can be traced to its process even after the connection closed (or the
    process died). `processes()` gives the processes to watch, by any key."""

    def __init__(self, processes: Callable[[], Mapping[Hashable, BotProcess]], interval: float = 0.02) -> None:
        self._processes = processes
        self._interval = interval
        self.owners: dict[int, set[Hashable]] = {}  # port -> keys of the processes seen holding it
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        for key, process in self._processes().items():
            if process.process is not None and process.process.returncode is None:
                for port in process.tcp_ports():
                    self.owners.setdefault(port, set()).add(key)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._interval)

    def owner_of(self, port: int | None) -> set[Hashable]:
        return set(self.owners.get(port, set())) if port is not None else set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
