"""`--interactive`: a small prompt (cmd.Cmd, with readline's tab completion where Python has it) to drive the
demo yourself: make a streamer go live, change game or end, and run the admin's slash commands.

The fakes and the bot's process run on an event loop in a background thread; each command hands the loop one
coroutine and waits for it, so everything the demo prints comes while the prompt is waiting, never over it.
"""

from __future__ import annotations

import asyncio
import cmd
import shlex
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from rich.console import Console
from rich.text import Text

from tests.fakes.fake_twitch import GAMES
from twitch_notifier.demo.framing import EXIT_INTERRUPTED, STARTING, farewell, introduce, write_html
from twitch_notifier.demo.render_terminal import MUTED, TerminalView
from twitch_notifier.demo.world import BotDied, DemoWorld

__all__ = ["BackgroundLoop", "DemoShell", "run_interactive"]

T = TypeVar("T")

SLASH_COMMANDS = ("/addstreamer", "/removestreamer", "/setchannel", "/streamers", "/live")
PLAIN_COMMANDS = ("live", "offline", "wait", "help", "quit")
HELP = """Make Twitch do something, or be the server's admin (Tab completes; help COMMAND says more):
  live LOGIN ["TITLE"] ["GAME"] [--poll]  go live (pushed; --poll: only the poll finds it),
                                          or, live already, change title and game
  offline LOGIN                           end the stream: the card becomes the recap
  /addstreamer LOGIN [#channel]           follow LOGIN (every name exists on the fake Twitch)
  /removestreamer LOGIN                   stop following LOGIN
  /setchannel #channel                    where announcements go: #alerts or #general
  /streamers   /live                      the bot's lists, as anyone in the server sees them
  wait [SECONDS]                          show what the bot does meanwhile (a poll, a card update)
  quit                                    stop the bot and the fakes (Ctrl-D and Ctrl-C too)"""


class BackgroundLoop:
    """An event loop on its own thread; `run(coro)` runs a coroutine there and waits for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="demo-loop", daemon=True)
        self._current: Future[Any] | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        self._current = future
        try:
            return future.result()
        finally:
            self._current = None

    def cancel_current(self) -> None:
        """Cancel what `run` was waiting for when Ctrl-C interrupted it."""
        if self._current is not None:
            self._current.cancel()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class DemoShell(cmd.Cmd):
    """The prompt. Each command runs on the background loop, then shows what the bot did."""

    prompt = "demo> "
    identchars = cmd.Cmd.identchars + "/"

    def __init__(self, world: DemoWorld, loop: BackgroundLoop, console: Console) -> None:
        super().__init__()
        self.world = world
        self.background = loop
        self.console = console
        self._matches: list[str] = []

    # -- the loop's plumbing -------------------------------------------------------------------------------

    def _run(self, action: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            self.background.run(action())
        except BotDied:
            raise
        except (ValueError, KeyError) as exc:
            self.console.print(Text(str(exc), style="red"))

    def preloop(self) -> None:
        try:
            import readline
        except ImportError:  # no line editing here: commands still work, without Tab
            return
        # Names and "/commands" complete whole; only spaces separate words (games are quoted).
        readline.set_completer_delims(" \t\n")

    def emptyline(self) -> bool:
        self._run(self._show_changes)
        return False

    def default(self, line: str) -> None:
        self.console.print(Text(f"Unknown command: {line.split()[0]!r}. Type help.", style="red"))

    async def _show_changes(self) -> None:
        self.world.flush()

    async def _settle(self, within: float) -> None:
        """Wait (up to `within` s) for the bot to post or edit something, then show it."""
        try:
            await self.world.wait_for(self.world.has_changes, "the bot to post or edit", within)
        except BotDied:
            if self.world.process is not None and self.world.process.returncode is not None:
                raise
            self.console.print(Text(f"(nothing from the bot within {within:g} s)", style=MUTED))
        self.world.flush()

    # -- Twitch's side -------------------------------------------------------------------------------------

    def do_live(self, arg: str) -> bool:
        """live LOGIN ["TITLE"] ["GAME"] [--poll]: LOGIN goes live, or (live already) changes title and game."""
        words = shlex.split(arg)
        poll = "--poll" in words
        words = [w for w in words if w != "--poll"]
        if not words:
            self.console.print(Text('usage: live LOGIN ["TITLE"] ["GAME"] [--poll]', style="red"))
            return False
        padded: list[str | None] = [*words, None, None]
        login, title, game = words[0], padded[1], padded[2]
        timings = self.world.timings

        async def action() -> None:
            self.world.add_twitch_user(login)
            if self.world.is_live(login):
                self.world.twitch.update_stream(login, title=title, game_name=game, push=not poll)
                await self._settle(timings.live_update_interval + 2 * timings.check_interval + 3)
                return
            self.world.go_live(
                login, title or "Playing with chat!", game or "Just Chatting", push=not poll, listed_after=0
            )
            await self._settle(2 * timings.check_interval + 3)

        self._run(action)
        return False

    def do_offline(self, arg: str) -> bool:
        """offline LOGIN: LOGIN ends the stream; the card becomes the "was live" recap."""
        words = shlex.split(arg)
        if not words:
            self.console.print(Text("usage: offline LOGIN", style="red"))
            return False

        async def action() -> None:
            if not self.world.is_live(words[0]):
                raise ValueError(f"{words[0]} is not live")
            self.world.twitch.go_offline(words[0])
            await self._settle(2 * self.world.timings.check_interval + 3)

        self._run(action)
        return False

    def do_wait(self, arg: str) -> bool:
        """wait [SECONDS]: show what the bot posts or edits meanwhile (default: two poll intervals)."""
        seconds = float(arg) if arg.strip() else 2 * self.world.timings.check_interval

        async def action() -> None:
            await asyncio.sleep(seconds)
            self.world.flush()

        self._run(action)
        return False

    # -- the admin's side ----------------------------------------------------------------------------------

    def _slash(self, name: str, options: dict[str, Any]) -> None:
        async def action() -> None:
            await self.world.command(name, options)
            self.world.flush()

        self._run(action)

    def do_addstreamer(self, arg: str) -> bool:
        """/addstreamer LOGIN [#channel]: follow LOGIN (announced in the channel, or the server's default)."""
        words = shlex.split(arg)
        if not words:
            self.console.print(Text("usage: /addstreamer LOGIN [#channel]", style="red"))
            return False
        options: dict[str, Any] = {"streamer": words[0]}
        if len(words) > 1:
            options["channel"] = self._channel(words[1])

        async def action() -> None:
            self.world.add_twitch_user(words[0])
            run = await self.world.command("addstreamer", options)
            if run.reply is not None and "Now following" in run.reply.content:
                # Its go-lives are pushed once the bot has subscribed (a second or two).
                await self.world.wait_for(lambda: self.world.pushed(words[0]), "its EventSub subscriptions", 10)

        self._run(action)
        return False

    def do_removestreamer(self, arg: str) -> bool:
        """/removestreamer LOGIN: stop following LOGIN."""
        words = shlex.split(arg)
        if not words:
            self.console.print(Text("usage: /removestreamer LOGIN", style="red"))
            return False
        self._slash("removestreamer", {"streamer": words[0]})
        return False

    def do_setchannel(self, arg: str) -> bool:
        """/setchannel #channel: the server's announcement channel."""
        words = shlex.split(arg)
        if not words:
            self.console.print(Text("usage: /setchannel #channel", style="red"))
            return False
        self._slash("setchannel", {"channel": self._channel(words[0])})
        return False

    def do_streamers(self, arg: str) -> bool:
        """/streamers: the server's list, with who is live."""
        self._slash("streamers", {})
        return False

    def do_live_(self, arg: str) -> bool:
        """/live: who of the server's streamers is live now."""
        self._slash("live", {})
        return False

    def _channel(self, word: str) -> int:
        name = word.lstrip("#")
        for channel_id, known in self.world.transcript.names.items():
            if known == name:
                return channel_id
        raise ValueError(f"no channel #{name}: the server has #alerts and #general")

    # -- help, leaving -------------------------------------------------------------------------------------

    def do_help(self, arg: str) -> bool:
        """help [COMMAND]: what each command does."""
        if arg.strip():
            method = self._method(arg.strip())
            doc = method.__doc__ if method is not None else None
            self.console.print(Text(doc or f"No help on {arg.strip()!r}.", style=MUTED))
        else:
            self.console.print(Text(HELP, style=MUTED))
        return False

    def do_quit(self, arg: str) -> bool:
        """quit: stop the bot and the fakes, and leave."""
        return True

    do_exit = do_quit

    def do_EOF(self, arg: str) -> bool:  # cmd.Cmd's name for Ctrl-D
        self.console.print()
        return True

    def _method(self, word: str) -> Callable[[str], bool] | None:
        """The handler of a typed command: "/live" is the slash command, "live" makes a streamer go live."""
        name = {"/live": "live_"}.get(word, word.removeprefix("/"))
        method: Callable[[str], bool] | None = getattr(self, f"do_{name}", None)
        return method

    def onecmd(self, line: str) -> bool:
        line = line.strip()
        if not line:
            return self.emptyline()
        word, _, rest = line.partition(" ")
        if word == "?":
            word = "help"
        method = self._method(word)
        if method is None or word.startswith("do_"):
            self.default(line)
            return False
        try:
            return method(rest)
        except ValueError as exc:  # a quote left open, a bad number of seconds
            self.console.print(Text(str(exc), style="red"))
            return False

    # -- Tab -----------------------------------------------------------------------------------------------

    def streamer_logins(self) -> list[str]:
        """The Twitch accounts of the demo (not the fake's unrelated "top streams")."""
        twitch = self.world.twitch
        return sorted(u.login for uid, u in twitch.users.items() if uid not in twitch.top_user_ids)

    def candidates(self, line: str, text: str) -> list[str]:
        """What Tab offers for the word `text` at the end of `line` (the line up to the cursor)."""
        before = line[: len(line) - len(text)]
        try:
            words = shlex.split(before)  # a quoted title is one word
        except ValueError:
            words = before.split()
        index = len(words)
        if index == 0:
            return [c for c in (*PLAIN_COMMANDS, *SLASH_COMMANDS) if c.startswith(text)]
        command = words[0]
        options: list[str] = []
        if command in ("live", "offline", "/addstreamer", "/removestreamer") and index == 1:
            options = self.streamer_logins()
            if command == "offline":
                options = [login for login in options if self.world.is_live(login)]
        elif (command == "/setchannel" and index == 1) or (command == "/addstreamer" and index == 2):
            options = [f"#{name}" for name in sorted(set(self.world.transcript.names.values()))]
        elif command == "live" and index == 3:
            options = [f'"{game.name}"' for game in GAMES]
        elif command == "live" and index >= 2:
            options = ["--poll"]
        elif command == "help" and index == 1:
            options = [*PLAIN_COMMANDS, *SLASH_COMMANDS]
        return [option for option in options if option.startswith(text)]

    def complete(self, text: str, state: int) -> str | None:  # type: ignore[override]  # typeshed: list[str]
        """readline's completer: the `state`-th match of `text` (readline asks 0, 1, ... until None)."""
        if state == 0:
            import readline

            line = readline.get_line_buffer()[: readline.get_endidx()]
            # Python's readline appends nothing to a completed word: the space that ends it comes from here.
            self._matches = [f"{match} " for match in self.candidates(line, text)]
        return self._matches[state] if state < len(self._matches) else None


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_interactive(console: Console, *, html: Path | None = None) -> int:
    """Start the world, give the prompt, and stop everything when it ends (quit, Ctrl-D, Ctrl-C, SIGTERM)."""
    started = time.monotonic()
    world = DemoWorld()
    view = TerminalView(console, world.transcript.names)
    world.set_sink(view.show)
    background = BackgroundLoop()
    background.start()
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    status = 0
    try:
        console.print(Text(STARTING, style=MUTED))
        background.run(world.start())
        introduce(view, world)
        background.run(_prepare(world))
        console.print(Text(HELP, style=MUTED))
        DemoShell(world, background, console).cmdloop()
    except KeyboardInterrupt:
        background.cancel_current()
        status = EXIT_INTERRUPTED
    except BotDied as exc:
        console.print(Text(f"The demo failed: {exc}", style="bold red"))
        status = 1
    finally:
        # A second Ctrl-C, or the SIGHUP of a closing terminal, must not cut the clean-up short.
        ignored = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            background.cancel_current()
            background.run(world.close())
        finally:
            background.stop()
            for sig, handler in {**ignored, **previous}.items():
                signal.signal(sig, handler)
    farewell(console, world, started, finished=status == 0)
    if html is not None:
        write_html(console, world.transcript, html)
    return status


async def _prepare(world: DemoWorld) -> None:
    """The server as the prompt finds it: announcements in #alerts, shroud followed."""
    await world.command("setchannel", {"channel": world.alerts.id})
    world.add_twitch_user("shroud")
    await world.command("addstreamer", {"streamer": "shroud"})
    await world.wait_for(lambda: world.pushed("shroud"), "shroud's EventSub subscriptions")
