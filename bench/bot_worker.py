"""The measured process: the bot as shipped (app.run.run with app.build.build_bot), instrumented to time
each poll cycle.

Started by the benchmarks with one JSON argument (endpoints of the fakes, database path, options). It prints
{"event": "started"}, then {"event": "first_cycle", ...} once the loop's first cycle is done, then answers
stdin commands: {"cmd": "cycle"} runs one more cycle exactly as the loop does; {"cmd": "quit"} shuts down.
Every CPU and memory figure it reports is this process's own (threads included), never the fakes'.
"""

from __future__ import annotations

import time

PROCESS_STARTED = time.time()  # before the heavy imports: they are part of start-up

import asyncio  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import bot as bot_module  # noqa: E402
from bench.common import DISCORD_TOKEN, TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET  # noqa: E402
from config import Settings  # noqa: E402
from database import Database  # noqa: E402
from twitch_api import TwitchClient  # noqa: E402
from twitch_notifier.app.build import build_bot  # noqa: E402
from twitch_notifier.app.logs import setup_logging  # noqa: E402
from twitch_notifier.app.run import run  # noqa: E402
from twitch_notifier.discord_io.pacer import SendPacer  # noqa: E402
from twitch_notifier.ops.metrics import Metrics  # noqa: E402

IMPORTS_DONE = time.time()
MAX_SECONDS = 3600.0


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB.

    The peak is VmHWM, which belongs to this program image. ru_maxrss would not do: Linux carries it across
    fork and exec, so it would include the benchmark process's RSS at the moment it spawned this one.
    """
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024  # kB
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


class Instruments:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.bot: bot_module.TwitchNotifierBot | None = None
        self.phases: dict[str, float] = {"process_started": PROCESS_STARTED, "imports_done": IMPORTS_DONE}
        self.cycles: list[dict[str, Any]] = []
        self.first_cycle = asyncio.Event()
        self.steps: dict[str, list[float]] = {}
        self.shims = "none"
        self._profiler: Any = None
        self.ready_task: asyncio.Task | None = None
        self.rss_at: dict[str, float] = {"imports_done": rss_mb()[0]}

    def install(self) -> None:
        instruments = self
        original_setup = bot_module.TwitchNotifierBot.setup_hook
        original_poll = bot_module.TwitchNotifierBot.poll_now

        async def setup_hook(bot: bot_module.TwitchNotifierBot) -> None:
            instruments.phases["setup_hook"] = time.time()
            instruments.attach(bot)
            await original_setup(bot)
            instruments.ready_task = asyncio.create_task(instruments.mark_ready(bot))

        async def poll_now(bot: bot_module.TwitchNotifierBot) -> None:
            await instruments.measure(functools.partial(original_poll, bot))

        bot_module.TwitchNotifierBot.setup_hook = setup_hook  # type: ignore[method-assign]
        bot_module.TwitchNotifierBot.poll_now = poll_now  # type: ignore[method-assign]

    async def mark_ready(self, bot: bot_module.TwitchNotifierBot) -> None:
        await bot.wait_until_ready()
        self.phases["gateway_ready"] = time.time()
        self.rss_at["gateway_ready"] = rss_mb()[0]

    def attach(self, bot: bot_module.TwitchNotifierBot) -> None:
        self.bot = bot
        # The pacer and the per-guild channel look-up are the shipped wiring (app.build), not bench shims.
        self.shims = "none"
        # Per-step timers; the objects are the bot's own, so the loop's calls go through them too.
        self._time(bot.db, "monitored_user_ids", "db: monitored ids")
        self._time(bot.twitch, "get_streams", "twitch: get_streams")
        self._time(bot.twitch, "get_users", "twitch: get_users (refresh)")
        self._time(bot.notifier, "apply", "notifier: apply (reconcile, store, announce)")
        self._time(bot.db, "refresh_streamers", "db: refresh_streamers")

    def builder(self) -> Any:
        """The production builder with this run's options: discord.py's guild wait, the pacer's rate."""
        ready = self.config.get("guild_ready_timeout")
        rate = self.config.get("pacer_rate")

        def build(settings: Settings, db: Database, twitch: TwitchClient, metrics: Metrics) -> Any:
            options: dict[str, Any] = {"metrics": metrics}
            if ready is not None:
                options["guild_ready_timeout"] = ready
            if rate:
                options["pacer"] = SendPacer(rate)
            return build_bot(settings, db, twitch, **options)

        return build

    def _time(self, owner: Any, name: str, label: str) -> None:
        original: Callable[..., Awaitable[Any]] | None = getattr(owner, name, None)
        if original is None:
            return
        steps = self.steps

        async def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return await original(*args, **kwargs)
            finally:
                entry = steps.setdefault(label, [0.0, 0.0])
                entry[0] += time.perf_counter() - wall
                entry[1] += time.process_time() - cpu

        setattr(owner, name, timed)

    async def measure(self, cycle: Callable[[], Awaitable[None]]) -> None:
        bot = self.bot
        assert bot is not None
        self.steps.clear()
        queries, requests = bot.db.query_count, bot.twitch.request_count
        if self.config.get("profile_dir"):
            self._start_profile()
        started, wall, cpu = time.time(), time.perf_counter(), time.process_time()
        await cycle()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if self._profiler is not None:
            self._stop_profile(len(self.cycles) + 1)
        report = bot.poller.last_report
        current, peak = rss_mb()
        self.cycles.append(
            {
                "started": started,
                "wall_s": wall,
                "cpu_s": cpu,
                "db_queries": bot.db.query_count - queries,
                "twitch_requests": bot.twitch.request_count - requests,
                "checked": report.checked if report else 0,
                "failed": report.failed if report else 0,
                "live": report.live if report else 0,
                "started_streams": report.started if report else 0,
                "announced": report.announced if report else 0,
                "announce_failed": report.announce_failed if report else 0,
                "rss_mb": current,
                "peak_rss_mb": peak,
                "steps": {k: {"wall_s": v[0], "cpu_s": v[1]} for k, v in self.steps.items()},
                "shims": self.shims,
            }
        )
        if not self.first_cycle.is_set():
            self.phases["first_cycle_done"] = time.time()
            self.rss_at["first_cycle_done"] = current
            self.first_cycle.set()

    def _start_profile(self) -> None:
        from pyinstrument import Profiler  # optional: only when profiling

        # async_mode disabled: samples show what is on the CPU; time in epoll.poll is idle.
        self._profiler = Profiler(async_mode="disabled", interval=0.0005)
        self._profiler.start()

    def _stop_profile(self, number: int) -> None:
        self._profiler.stop()
        out = Path(self.config["profile_dir"])
        out.mkdir(parents=True, exist_ok=True)
        (out / f"cycle-{number}.txt").write_text(self._profiler.output_text(unicode=False, color=False, show_all=False))
        self._profiler = None


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main_async(config: dict[str, Any]) -> int:
    settings = Settings(
        discord_token=DISCORD_TOKEN,
        twitch_client_id=TWITCH_CLIENT_ID,
        twitch_client_secret=TWITCH_CLIENT_SECRET,
        check_interval_seconds=24 * 3600,  # the loop runs its first cycle at start-up; later ones on command
        database_path=config["database_path"],
        log_level=config.get("log_level", "INFO"),
        twitch_api_base=config["twitch_api_base"],
        twitch_auth_base=config["twitch_auth_base"],
        http_host="127.0.0.1",
        http_port=0,
        discord_api_base=config["discord_api_base"],
        discord_gateway_url=config["discord_gateway_url"],
        eventsub_transport=config.get("eventsub_transport", "off"),
        eventsub_ws_url=config.get("eventsub_ws_url", "wss://eventsub.wss.twitch.tv/ws"),
    )
    setup_logging(settings.log_level, settings.secrets)
    instruments = Instruments(config)
    instruments.install()
    _emit({"event": "started", "pid": os.getpid()})
    running = asyncio.create_task(run(settings, builder=instruments.builder()), name="bot.run")
    first = asyncio.create_task(instruments.first_cycle.wait())
    await asyncio.wait({running, first}, return_when=asyncio.FIRST_COMPLETED)
    if not first.done():
        _emit({"error": f"the bot stopped before its first cycle (exit status {running.result()})"})
        return 1
    _emit(
        {
            "event": "first_cycle",
            "phases": instruments.phases,
            "rss_at": instruments.rss_at,
            "cycle": instruments.cycles[0],
        }
    )
    reader = await _stdin()
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            name = json.loads(line)["cmd"]
            if name == "quit":
                break
            if name == "cycle":
                assert instruments.bot is not None
                await instruments.bot.poll_now()
                _emit({"cycle": instruments.cycles[-1]})
            elif name == "memory":
                current, peak = rss_mb()
                _emit({"rss_mb": current, "peak_rss_mb": peak})
            else:
                _emit({"error": f"unknown command {name!r}"})
    finally:
        if instruments.bot is not None:
            await instruments.bot.close()
        status = await asyncio.wait_for(running, 60)
    _emit({"ok": True, "exit_status": status})
    return 0


def main() -> int:
    config = json.loads(sys.argv[1])
    loop_deadline = config.get("max_seconds", MAX_SECONDS)
    try:
        return asyncio.run(asyncio.wait_for(main_async(config), loop_deadline))
    except TimeoutError:
        print(f"bot worker: stopping after {loop_deadline} s", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
