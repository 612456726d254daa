"""What the demo says around the story or the prompt: the banner with what runs where, the closing lines that
say what was stopped, and the HTML file."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

from twitch_notifier.demo.render_html import render_page
from twitch_notifier.demo.render_terminal import MUTED, TerminalView
from twitch_notifier.demo.transcript import Transcript
from twitch_notifier.demo.world import DemoWorld

__all__ = ["EXIT_INTERRUPTED", "STARTING", "farewell", "introduce", "write_html"]

EXIT_INTERRUPTED = 130
"""Ctrl-C, as a shell reports it (128 + SIGINT)."""
STARTING = "Starting a fake Discord, a fake Twitch and python bot.py against them …"


def introduce(view: TerminalView, world: DemoWorld) -> None:
    view.banner(
        "Twitch notifier demo: no account needed",
        [
            f"Discord: a fake one at {world.discord.api_base}, server {world.transcript.server!r}",
            f"Twitch:  a fake one at {world.twitch.api_base}, EventSub push over WebSocket",
            f"The bot: python bot.py as shipped (pid {world.bot_pid}), database in {world.workdir}",
        ],
    )


def farewell(console: Console, world: DemoWorld, started: float, *, finished: bool = True) -> None:
    """What happened, and what was stopped: said from the state of things, not assumed. The terminal may be gone
    (its SIGHUP is what stopped the demo): then there is no one to tell."""
    with contextlib.suppress(OSError):
        _farewell(console, world, started, finished=finished)


def _farewell(console: Console, world: DemoWorld, started: float, *, finished: bool) -> None:
    transcript = world.transcript
    console.print()
    posted, edited, commands = (
        len(transcript.changes("posted")),
        len(transcript.changes("edited")),
        len(transcript.commands()),
    )
    console.print(
        Text(
            f"{'Done' if finished else 'Interrupted'} after {time.monotonic() - started:.1f} s: "
            f"{_count(posted, 'message')} posted, {edited} edited, {_count(commands, 'command')} answered.",
            style="bold",
        )
    )
    status = world.process.returncode if world.process is not None else None
    bot = "never started" if world.process is None else f"(pid {world.bot_pid}) exited with status {status}"
    removed = "is removed" if world.workdir is None or not world.workdir.exists() else "could not be removed"
    console.print(Text(f"Stopped: the bot {bot}, both fakes are closed, and {world.workdir} {removed}.", style=MUTED))


def write_html(console: Console, transcript: Transcript, path: Path) -> None:
    path.write_text(render_page(transcript), encoding="utf-8")
    with contextlib.suppress(OSError):  # written all the same when the terminal is gone
        console.print(Text(f"The same messages as a page in Discord's look: {path.resolve()}", style="bold"))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
