"""The demo's world: the fake Discord and fake Twitch of tests/fakes/ on 127.0.0.1, and the real bot as shipped
(`python bot.py`, configured through the environment as an operator would) running against them.

`DemoWorld` owns all of it, and `close()` takes all of it down again: the bot process, both fakes and the
temporary directory with the bot's database. It turns what happened in the fake Discord into
transcript events: the admin's commands with the bot's replies, and each message the bot posted or edited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from config import MIN_LIVE_UPDATE_INTERVAL_SECONDS
from tests.fakes.fake_discord import (
    ADMIN_PERMISSIONS,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeInteraction,
    FakeMessage,
    InteractionRefused,
    InteractionReply,
)
from tests.fakes.fake_twitch import FakeStream, FakeTwitch, FakeUser
from twitch_notifier.demo.transcript import (
    ChangeKind,
    ChannelChange,
    CommandRun,
    Event,
    ShownMessage,
    Sink,
    Transcript,
)

__all__ = ["ROOT", "BotDied", "DemoTimings", "DemoWorld"]

ROOT = Path(__file__).resolve().parents[2]
"""The checkout: bot.py and tests/fakes/ live here."""

# Made-up credentials, the only ones the fakes accept: shaped like real ones so the bot's checks pass them.
DISCORD_TOKEN = "demo-discord-token.Demo42.NotASecret"  # noqa: S105 - the fake's own token
TWITCH_CLIENT_ID = "democlientid0123456789"
TWITCH_CLIENT_SECRET = "democlientsecret9876543210"  # noqa: S105 - the fake's own secret

_HEALTH_LINE = re.compile(r"Health and metrics on http://[^:]+:(\d+)/healthz")
_STOP_GRACE = 10.0  # the bot's own shutdown waits for a cycle in flight; then it is killed
LOG_TAIL = 40
REPLY_TIMEOUT = 15.0  # Discord gives a bot 3 s to answer or defer, and 15 minutes to follow up a deferral
POLL_INTERVAL = 0.05  # how often wait_for looks again: the fakes change in-process, so a look is cheap


class BotDied(RuntimeError):
    """The bot process ended (or never became ready); the message carries the end of its log."""


@dataclass(frozen=True, slots=True)
class DemoTimings:
    """How fast the demo's bot runs: real settings, set short so the story fits in a minute."""

    check_interval: float = 2.0
    """CHECK_INTERVAL_SECONDS: how soon the poll finds a go-live that push did not bring (90 s by default)."""
    live_update_interval: float = MIN_LIVE_UPDATE_INTERVAL_SECONDS
    """LIVE_UPDATE_INTERVAL_SECONDS: how soon a live card follows a change (5 minutes by default)."""
    listing_lag: float = 3.0
    """How long the fake's /helix/streams lags a go-live (30-60 s on Twitch): push announces before it."""
    ready_timeout: float = 40.0
    """How long the bot may take to connect, sync its commands and bind its EventSub shards."""


class DemoWorld:
    """The fakes, the server the demo plays in, and the bot process; every change becomes a transcript event."""

    def __init__(
        self,
        *,
        timings: DemoTimings | None = None,
        sink: Sink | None = None,
        python: str = sys.executable,
        log_level: str = "INFO",
    ) -> None:
        self.timings = timings or DemoTimings()
        self.transcript = Transcript()
        self._sink = sink
        self._python = python
        self._log_level = log_level
        self.workdir: Path | None = None
        self.discord = FakeDiscord(token=DISCORD_TOKEN)
        self.twitch = FakeTwitch(client_id=TWITCH_CLIENT_ID, client_secret=TWITCH_CLIENT_SECRET)
        self.twitch.listing_lag = self.timings.listing_lag
        self.guild: FakeGuild = self.discord.add_guild(self.transcript.server)
        self.alerts: FakeChannel = self.discord.add_text_channel(self.guild.id, "alerts")
        self.general: FakeChannel = self.discord.add_text_channel(self.guild.id, "general")
        self.admin = self.discord.add_user("admin")
        self.transcript.names.update({self.alerts.id: "alerts", self.general.id: "general"})
        self.process: asyncio.subprocess.Process | None = None
        self.bot_lines: list[str] = []
        self.health_port: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._seen: dict[int, tuple[int, bool]] = {}  # message id -> (edits shown, deleted shown)
        self._http: aiohttp.ClientSession | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start both fakes and `python bot.py`; return once the bot is ready and its push is connected."""
        self.workdir = Path(tempfile.mkdtemp(prefix="twitch-notifier-demo-"))
        await self.discord.start()
        await self.twitch.start()
        self._http = aiohttp.ClientSession()
        # The bot's working directory is the temporary one, so a developer's .env in the checkout stays out.
        self.process = await asyncio.create_subprocess_exec(
            self._python,
            str(ROOT / "bot.py"),
            cwd=self.workdir,
            env=self.bot_environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read_log(), name="demo.bot-log")
        await self.wait_for(self._bot_ready, "the bot to connect to Discord and Twitch", self.timings.ready_timeout)

    def bot_environment(self) -> dict[str, str]:
        """The bot's whole environment: the fakes' URLs, the demo's credentials, a temporary database."""
        if self.workdir is None:
            raise RuntimeError("start() first: the environment names the temporary directory")
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "PYTHONUNBUFFERED": "1",
            "DISCORD_TOKEN": DISCORD_TOKEN,
            "TWITCH_CLIENT_ID": TWITCH_CLIENT_ID,
            "TWITCH_CLIENT_SECRET": TWITCH_CLIENT_SECRET,
            "DISCORD_API_BASE": self.discord.api_base,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "TWITCH_API_BASE": self.twitch.api_base,
            "TWITCH_AUTH_BASE": self.twitch.auth_base,
            "EVENTSUB_TRANSPORT": "websocket",
            "TWITCH_EVENTSUB_WS_URL": self.twitch.eventsub_ws_url,
            "DATABASE_PATH": str(self.workdir / "demo.db"),
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "CHECK_INTERVAL_SECONDS": f"{self.timings.check_interval:g}",
            "LIVE_UPDATE_INTERVAL_SECONDS": f"{self.timings.live_update_interval:g}",
            "LOG_LEVEL": self._log_level,
        }

    async def close(self) -> None:
        """Stop the bot (SIGTERM, then SIGKILL after a grace), both fakes, and remove the temporary directory.
        Safe to call at any point, and more than once; each step runs even if an earlier one failed, and a
        cancellation meanwhile (a second Ctrl-C, a SIGTERM) does not cut it short: it is raised once done."""
        closing = asyncio.ensure_future(self._close())
        cancelled = False
        while True:
            try:
                await asyncio.shield(closing)
            except asyncio.CancelledError:
                if closing.done():
                    raise
                cancelled = True
                continue
            break
        if cancelled:
            raise asyncio.CancelledError

    async def _close(self) -> None:
        failures: list[Exception] = []
        for step in (self._stop_bot, self._close_http, self.twitch.stop, self.discord.stop):
            try:
                await step()
            except Exception as exc:  # the next steps still run; the first failure is raised at the end
                failures.append(exc)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if failures:
            raise failures[0]

    async def _close_http(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _stop_bot(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), _STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, 5)

    async def __aenter__(self) -> DemoWorld:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the bot process --------------------------------------------------------------------------------

    async def _read_log(self) -> None:
        if self.process is None or self.process.stdout is None:
            return
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.bot_lines.append(line)
            if self.health_port is None and (match := _HEALTH_LINE.search(line)):
                self.health_port = int(match.group(1))

    @property
    def bot_pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        return "\n".join(self.bot_lines[-lines:])

    async def health(self) -> dict[str, Any] | None:
        """The bot's own /healthz, or None before it serves it."""
        if self.health_port is None or self._http is None:
            return None
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                body: dict[str, Any] = json.loads(await response.text())
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def _bot_ready(self) -> bool:
        """Healthy (connected to Discord, a poll done) with every EventSub shard bound."""
        health = await self.health()
        if health is None or health.get("status") != "ok":
            return False
        eventsub = health.get("eventsub")
        return (
            isinstance(eventsub, dict)
            and eventsub.get("shards", 0) > 0
            and (eventsub.get("shards_enabled") == eventsub.get("shards"))
        )

    async def wait_for(self, check: Callable[[], Any], what: str, within: float = 20.0) -> float:
        """Wait until `check()` (or `await check()`) holds; returns the seconds it took. Fails at once with the
        bot's log if the bot process ends meanwhile, or after `within` seconds."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(within):
                while True:
                    result = check()
                    if asyncio.iscoroutine(result):
                        result = await result
                    if result:
                        return time.monotonic() - started
                    if self.process is not None and self.process.returncode is not None:
                        raise BotDied(
                            f"the bot exited with status {self.process.returncode} while waiting for {what}; "
                            f"its log ends:\n{self.log_tail()}"
                        )
                    await asyncio.sleep(POLL_INTERVAL)
        except TimeoutError:
            raise BotDied(
                f"timed out after {within:g} s waiting for {what}; the bot's log ends:\n{self.log_tail()}"
            ) from None

    # -- Twitch -----------------------------------------------------------------------------------------

    def add_twitch_user(self, login: str, display_name: str | None = None) -> FakeUser:
        """A Twitch account (on the fake Twitch every name the demo follows exists)."""
        try:
            return self.twitch.user(login.lower())
        except KeyError:
            return self.twitch.add_user(login, display_name=display_name)

    def pushed(self, login: str) -> bool:
        """Whether all three EventSub subscriptions of `login` are enabled on the fake Twitch."""
        user = self.twitch.user(login)
        types = {
            sub.type
            for sub in self.twitch.eventsub.subscriptions.values()
            if sub.broadcaster_user_id == user.id and sub.status == "enabled"
        }
        return {"stream.online", "stream.offline", "channel.update"} <= types

    def go_live(self, login: str, title: str, game: str, **options: Any) -> FakeStream:
        return self.twitch.go_live(login, title=title, game_name=game, **options)

    def is_live(self, login: str) -> bool:
        return self.twitch.user(login).id in self.twitch.streams

    # -- Discord ----------------------------------------------------------------------------------------

    async def command(
        self, name: str, options: Mapping[str, Any] | None = None, *, channel: FakeChannel | None = None
    ) -> CommandRun:
        """The admin (Manage Server) runs `/name options` in #general; the run and the reply become an event."""
        where = channel or self.general
        shown = " ".join([f"/{name}", *(f"{k}:{self._option_text(v)}" for k, v in (options or {}).items())])
        try:
            interaction = await self.discord.invoke(
                name,
                dict(options or {}),
                guild_id=self.guild.id,
                channel_id=where.id,
                user_id=self.admin.id,
                permissions=ADMIN_PERMISSIONS,
            )
        except InteractionRefused as exc:
            run = CommandRun(self.admin.username, shown, where.name, None, refused=str(exc))
        else:
            reply = await self._reply(interaction, name)
            run = CommandRun(self.admin.username, shown, where.name, self._shown_reply(reply))
        self._emit(run)
        return run

    async def _reply(self, interaction: FakeInteraction, name: str) -> InteractionReply:
        """The bot's answer; fails with the bot's log if it never comes or the bot dies meanwhile."""
        waiting = asyncio.ensure_future(interaction.wait_reply(timeout=REPLY_TIMEOUT))
        try:
            await self.wait_for(waiting.done, f"the reply to /{name}", within=REPLY_TIMEOUT + 1)
        finally:
            waiting.cancel()
        try:
            return waiting.result()
        except TimeoutError:
            raise BotDied(f"the bot did not answer /{name}; its log ends:\n{self.log_tail()}") from None

    def _option_text(self, value: Any) -> str:
        if isinstance(value, int) and value in self.transcript.names:
            return f"#{self.transcript.names[value]}"
        return str(value)

    def _shown_reply(self, reply: InteractionReply) -> ShownMessage:
        return ShownMessage(
            author=self.discord.bot_user.username,
            content=reply.content,
            embeds=tuple(reply.embeds),
            components=tuple(reply.payload.get("components") or ()),
            at=datetime.now(UTC),
            ephemeral=reply.ephemeral,
        )

    def channel_messages(self, channel: FakeChannel | None = None) -> list[FakeMessage]:
        """The messages the bot has in `channel` (#alerts by default), not deleted."""
        return self.discord.messages_in((channel or self.alerts).id)

    def card_of(self, display_name: str) -> FakeMessage | None:
        """The latest card in #alerts whose embed's author is `display_name` (live) or "`name` was live"."""
        for message in reversed(self.channel_messages()):
            author = (message.embeds[0].get("author") or {}).get("name", "") if message.embeds else ""
            if author in (display_name, f"{display_name} was live"):
                return message
        return None

    def has_changes(self) -> bool:
        """Whether a message was posted, edited or deleted since the last flush."""
        return any(
            self._seen.get(m.id) != (len(m.edits), m.deleted) and not (m.id not in self._seen and m.deleted)
            for m in self.discord.messages
        )

    def flush(self, note: str = "") -> list[ChannelChange]:
        """Turn what changed in the fake Discord's channels since the last flush into events (one per
        message: its state now), in the order the messages were first posted."""
        changes: list[ChannelChange] = []
        for message in self.discord.messages:
            seen = self._seen.get(message.id)
            edits = len(message.edits)
            kind: ChangeKind
            if seen is None:
                kind = "posted"
            elif message.deleted and not seen[1]:
                kind = "deleted"
            elif edits > seen[0]:
                kind = "edited"
            else:
                continue
            self._seen[message.id] = (edits, message.deleted)
            channel = self.discord.channels.get(message.channel_id)
            change = ChannelChange(
                channel=channel.name if channel is not None else str(message.channel_id),
                kind=kind,
                message_id=message.id,
                message=ShownMessage(
                    author=message.author.username,
                    content=message.content,
                    embeds=tuple(message.embeds),
                    components=tuple(message.components),
                    at=_moment(message.edited_timestamp or message.timestamp),
                    edited=message.edited_timestamp is not None,
                ),
                note=note,
            )
            changes.append(change)
            self._emit(change)
        return changes

    def _emit(self, event: Event) -> None:
        self.transcript.add(event)
        if self._sink is not None:
            self._sink(event)

    def set_sink(self, sink: Sink | None) -> None:
        """Where each event goes as it happens (the terminal), besides the transcript."""
        self._sink = sink

    def say(self, event: Event) -> None:
        """Add a narration (or any event) to the transcript and show it."""
        self._emit(event)


def _moment(iso: str) -> datetime:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
