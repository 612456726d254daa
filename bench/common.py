"""Shared pieces of the benchmarks: the two child processes (fakes, bot), the database fixture, tables.

The bot runs in its own process (bench/bot_worker.py) and the fakes in another (bench/fake_services.py), so
CPU time and RSS measured in the bot's process are the bot's alone. Both speak JSON lines over stdin/stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from database import Database

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# Credentials shared by the fakes and the bot; nothing here is a real secret.
DISCORD_TOKEN = "bench-discord-token.Abc123.SecretPart"  # noqa: S105
TWITCH_CLIENT_ID = "benchclientid0123456789"
TWITCH_CLIENT_SECRET = "benchclientsecret9876543210"  # noqa: S105

USER_ID_BASE = 100_000_000  # bench streamers are user ids USER_ID_BASE + index
SUBSCRIPTIONS_PER_GUILD = 100  # the bot's default MAX_STREAMERS_PER_GUILD
REPLY_TIMEOUT = 900.0  # longest any single command may take (a 100k cycle waits for Twitch's bucket)


def user_id(index: int) -> str:
    return str(USER_ID_BASE + index)


def live_indices(streamers: int, fraction: float = 0.01, seed: int = 6) -> list[int]:
    """Which streamers are live: a fixed random 1 % (at least one)."""
    count = max(1, round(streamers * fraction))
    return sorted(random.Random(seed).sample(range(streamers), count))


# ------------------------------------------------------------------------------------------ child processes


class ChildError(RuntimeError):
    pass


class JsonLineChild:
    """A child process driven by JSON lines: one command written, one JSON line read back."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0
        self._log = None

    async def start(self, *, timeout: float = 60.0) -> dict[str, Any]:
        """Spawn and return its first line (the child's 'started' event)."""
        self._log = self.log_path.open("ab")
        self.spawned_at = time.time()
        self.proc = await asyncio.create_subprocess_exec(
            PYTHON,
            *self.args,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            limit=64 * 1024 * 1024,
        )
        return await self.read(timeout=timeout)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def read(self, *, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise ChildError(f"{self.name}: no answer within {timeout:.0f} s; see {self.log_path}") from None
        if not line:
            code = await self._exit_code()
            raise ChildError(f"{self.name} exited (status {code}); see {self.log_path}:\n{self.log_tail()}")
        message = json.loads(line)
        if message.get("error"):
            raise ChildError(f"{self.name}: {message['error']}\n{self.log_tail()}")
        return message

    async def request(self, cmd: str, *, timeout: float = REPLY_TIMEOUT, **fields: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.read(timeout=timeout)

    async def stop(self, *, timeout: float = 30.0) -> None:
        """Ask it to quit; kill it (this child only) if it does not within `timeout`."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.request("quit", timeout=timeout)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._log is not None:
            self._log.close()
        self.proc = None

    async def _exit_code(self) -> int | None:
        assert self.proc is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 5)
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass(frozen=True, slots=True)
class FakeOptions:
    twitch_rate_limit: int | None = 800
    twitch_latency: float = 0.05
    discord_limits: bool = True


async def start_fakes(workdir: Path, options: FakeOptions) -> tuple[JsonLineChild, dict[str, Any]]:
    args = ["-m", "bench.fake_services", "--twitch-latency", str(options.twitch_latency)]
    if options.twitch_rate_limit:
        args += ["--twitch-rate-limit", str(options.twitch_rate_limit)]
    if not options.discord_limits:
        args.append("--no-discord-limits")
    child = JsonLineChild("fake services", args, workdir / "fake_services.log")
    started = await child.start()
    return child, started


async def start_bot(
    workdir: Path,
    fakes: dict[str, Any],
    db_path: Path,
    *,
    pacer_rate: float | None,
    guild_ready_timeout: float | None = None,
    profile_dir: Path | None = None,
    fast_channel_lookup: bool = False,
    first_cycle_timeout: float = REPLY_TIMEOUT,
    log_name: str = "bot.log",
) -> tuple[JsonLineChild, dict[str, Any]]:
    """Start the real bot in its own process; returns once its first poll cycle (run by the loop) is done."""
    config = {
        "twitch_api_base": f"http://127.0.0.1:{fakes['twitch_port']}/helix",
        "twitch_auth_base": f"http://127.0.0.1:{fakes['twitch_port']}/oauth2",
        "discord_api_base": f"http://127.0.0.1:{fakes['discord_port']}/api/v10",
        "discord_gateway_url": f"ws://127.0.0.1:{fakes['discord_port']}/gateway/",
        "database_path": str(db_path),
        "pacer_rate": pacer_rate,
        "guild_ready_timeout": guild_ready_timeout,
        "profile_dir": str(profile_dir) if profile_dir else None,
        "fast_channel_lookup": fast_channel_lookup,
    }
    child = JsonLineChild("bot", ["-m", "bench.bot_worker", json.dumps(config)], workdir / log_name)
    await child.start(timeout=first_cycle_timeout)  # the 'started' line comes at once
    first = await child.read(timeout=first_cycle_timeout)
    first["spawned_at"] = child.spawned_at
    return child, first


@contextlib.contextmanager
def workdir(keep: str | None = None) -> Iterator[Path]:
    """A scratch directory for the database and the children's logs (kept if a path is given)."""
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        yield Path(tmp)


# ---------------------------------------------------------------------------------------------- database


def poll_layout(streamers: int, subs_per_streamer: int = 5) -> tuple[int, list[tuple[int, int]]]:
    """Guilds of 100 subscriptions each; streamer i is followed by `subs_per_streamer` distinct guilds.

    Returns (guild count, [(guild index, streamer index)]). Guild k*blocks + i//100 follows streamer i.
    """
    blocks = math.ceil(streamers / SUBSCRIPTIONS_PER_GUILD)
    pairs = [(k * blocks + i // SUBSCRIPTIONS_PER_GUILD, i) for k in range(subs_per_streamer) for i in range(streamers)]
    return blocks * subs_per_streamer, pairs


async def create_fixture_db(
    path: Path, streamers: int, pairs: Iterable[tuple[int, int]], channels: Sequence[tuple[int, int]]
) -> None:
    """Bench-only bulk fixture: schema from the bot's own migrations, rows by sqlite3 executemany.

    `pairs` are (guild index, streamer index); `channels[g]` is guild g's (guild id, channel id). Runs before the
    bot opens the file; adding 500,000 subscriptions one `add_subscription` at a time would take minutes.
    """
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)  # a kept work directory is reused from run to run
    db = await Database.open(str(path))
    await db.close()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO streamers (twitch_user_id, login, display_name, profile_image_url, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    (user_id(i), f"bench_{i}", f"Bench_{i}", f"https://example.invalid/{i}.png", now)
                    for i in range(streamers)
                ),
            )
            conn.executemany(
                "INSERT INTO subscriptions (guild_id, twitch_user_id, channel_id, added_by, created_at) "
                "VALUES (?, ?, ?, NULL, ?)",
                ((channels[g][0], user_id(i), channels[g][1], now) for g, i in pairs),
            )
            conn.executemany(
                "INSERT INTO guild_settings (guild_id, announce_channel_id, updated_at) VALUES (?, ?, ?)",
                ((guild, channel, now) for guild, channel in channels),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------ output


def machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model or platform.processor() or "?",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_line() -> str:
    m = machine()
    return f"{m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, {m['platform']}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table, readable as plain text too."""
    text_rows = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in text_rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}" if value < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def save_json(name: str, data: Any) -> Path:
    """Raw results next to the tables (bench/results/, not committed)."""
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "at": time.time(), "data": data}, indent=1))
    return path
