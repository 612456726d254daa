"""`python -m twitch_notifier.demo [--interactive] [--html FILE]` (what `./quickstart.sh demo` runs): the story, or
a prompt to drive it yourself, against the real bot; everything it started is stopped when it ends, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from twitch_notifier.demo.framing import EXIT_INTERRUPTED, STARTING, farewell, introduce, write_html
from twitch_notifier.demo.interactive import run_interactive
from twitch_notifier.demo.render_terminal import MUTED, TerminalView, make_console
from twitch_notifier.demo.story import play
from twitch_notifier.demo.world import BotDied, DemoTimings, DemoWorld

__all__ = ["main", "run_story"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./quickstart.sh demo",
        description=(
            "See what the bot does without any account: a fake Discord and a fake Twitch on 127.0.0.1, the real "
            "bot (python bot.py) against them, and each message shown as Discord would show it."
        ),
    )
    parser.add_argument(
        "--interactive", action="store_true", help="a prompt to drive it yourself instead of the story (try `help`)"
    )
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write the messages as a page in Discord's look")
    return parser.parse_args(argv)


def _stop_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP (the terminal closed) cancel the story once, so the clean-up runs; more of
    them while it runs change nothing (the default would kill the demo and leave the bot running)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("run inside a task")

    def stop() -> None:
        if not task.cancelling():
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop)


async def run_story(console: Console, *, html: Path | None = None, timings: DemoTimings | None = None) -> DemoWorld:
    """Start the world, play the story, stop everything; returns the (closed) world, with its transcript."""
    _stop_on_signals()
    started = time.monotonic()
    world = DemoWorld(timings=timings)
    view = TerminalView(console, world.transcript.names)
    world.set_sink(view.show)
    console.print(Text(STARTING, style=MUTED))
    finished = False
    try:
        async with world:
            introduce(view, world)
            await play(world)
        finished = True
    finally:
        farewell(console, world, started, finished=finished)
    if html is not None:
        write_html(console, world.transcript, html)
    return world


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = make_console()
    if args.interactive:
        return run_interactive(console, html=args.html)
    try:
        asyncio.run(run_story(console, html=args.html))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM / SIGHUP: after the clean-up
        return EXIT_INTERRUPTED
    except BotDied as exc:
        console.print(Text(f"The demo failed: {exc}", style="bold red"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
