"""The fakes' process for the benchmarks: FakeTwitch and FakeDiscord (real limits enforced) on 127.0.0.1.

Run by the benchmarks, not by hand: prints {"event": "started", ports} then answers one JSON command per stdin
line (world, go_live, stats, reset, quit) with one JSON line. Exits on quit, at EOF, or after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from typing import Any

from aiohttp import web

from bench.common import DISCORD_TOKEN, TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET, user_id
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_twitch import FakeTwitch, FakeUser


class BenchDiscord(FakeDiscord):
    """FakeDiscord that also notes when each message was created and which limit each 429 came from."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.created_at: list[float] = []
        self.global_429 = 0
        self.route_429 = 0

    async def _create_message(self, request: web.Request) -> web.Response:
        before = len(self.messages)
        response = await super()._create_message(request)
        if len(self.messages) > before:
            self.created_at.append(time.monotonic())
        return response

    def _rate_limited(self, retry_after: float, *, global_: bool, scope: str, bucket: str) -> web.Response:
        if global_:
            self.global_429 += 1
        else:
            self.route_429 += 1
        return super()._rate_limited(retry_after, global_=global_, scope=scope, bucket=bucket)


class Services:
    def __init__(self, args: argparse.Namespace) -> None:
        self.twitch = FakeTwitch(
            TWITCH_CLIENT_ID,
            TWITCH_CLIENT_SECRET,
            rate_limit=args.twitch_rate_limit,
            latency=args.twitch_latency,
        )
        self.discord = BenchDiscord(token=DISCORD_TOKEN, enforce_rate_limits=not args.no_discord_limits)

    async def start(self) -> None:
        await self.twitch.start()
        await self.discord.start()

    async def stop(self) -> None:
        await self.discord.stop()
        await self.twitch.stop()

    def world(self, streamers: int, guilds: int, live: list[int]) -> dict[str, Any]:
        """Streamers (ids USER_ID_BASE + i), the live ones, and guilds with one text channel each."""
        for i in range(streamers):
            uid = user_id(i)
            # Straight into the dict: add_user() checks logins by a linear scan, quadratic at 100k users.
            self.twitch.users[uid] = FakeUser(
                id=uid,
                login=f"bench_{i}",
                display_name=f"Bench_{i}",
                profile_image_url=f"https://example.invalid/{i}.png",
            )
        self.go_live(live)
        channels = []
        for g in range(guilds):
            guild = self.discord.add_guild(f"bench-guild-{g}")
            channel = self.discord.add_text_channel(guild.id, "alerts")
            channels.append((guild.id, channel.id))
        return {"channels": channels}

    def go_live(self, indices: list[int]) -> dict[str, Any]:
        for i in indices:
            self.twitch.go_live(user_id(i), title=f"Bench stream {i} — come watch", game_name="Just Chatting")
        return {"live": len(self.twitch.streams)}

    def stats(self) -> dict[str, Any]:
        helix = [r for r in self.twitch.requests if r.path.startswith("/helix/")]
        statuses = Counter(str(r.status) for r in helix)
        by_path = Counter(r.path.removeprefix("/helix/") for r in helix)
        times = self.discord.created_at
        live_messages = [m for m in self.discord.messages if not m.deleted]
        return {
            "twitch": {
                "requests": len(helix),
                "by_path": dict(by_path),
                "statuses": dict(statuses),
                "http_429": statuses.get("429", 0),
                "token_requests": self.twitch.token_requests,
            },
            "discord": {
                "requests": len(self.discord.requests),
                "messages": len(live_messages),  # all so far; "created" counts since the last reset
                "created": len(times),
                "channels_with_message": len({m.channel_id for m in live_messages}),
                "duplicates": len(live_messages) - len({(m.channel_id, m.nonce) for m in live_messages}),
                "global_429": self.discord.global_429,
                "route_429": self.discord.route_429,
                "first_to_last_s": (times[-1] - times[0]) if len(times) > 1 else 0.0,
                "max_in_any_second": _max_in_window(times, 1.0),
                "unhandled": len(self.discord.unhandled),
                "rejected": len(self.discord.rejected),
            },
        }

    def reset(self) -> dict[str, Any]:
        self.twitch.requests.clear()
        self.discord.requests.clear()
        self.discord.created_at.clear()
        self.discord.global_429 = self.discord.route_429 = 0
        return {"ok": True}


def _max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve(args: argparse.Namespace) -> None:
    services = Services(args)
    await services.start()
    _emit(
        {
            "event": "started",
            "pid": os.getpid(),
            "twitch_port": services.twitch.port,
            "discord_port": services.discord.port,
        }
    )
    reader = await _stdin()
    try:
        while True:
            line = await reader.readline()
            if not line:
                return  # the benchmark went away
            command = json.loads(line)
            name = command.pop("cmd")
            try:
                if name == "quit":
                    _emit({"ok": True})
                    return
                if name == "world":
                    reply = services.world(command["streamers"], command["guilds"], command.get("live", []))
                elif name == "go_live":
                    reply = services.go_live(command["indices"])
                elif name == "stats":
                    reply = services.stats()
                elif name == "reset":
                    reply = services.reset()
                else:
                    reply = {"error": f"unknown command {name!r}"}
            except Exception as exc:
                reply = {"error": repr(exc)}
            _emit(reply)
    finally:
        await services.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--twitch-rate-limit", type=int, default=None, help="points per minute (Twitch: 800)")
    parser.add_argument("--twitch-latency", type=float, default=0.05, help="seconds added to every Helix answer")
    parser.add_argument("--no-discord-limits", action="store_true", help="don't enforce Discord's rate limits")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="exit after this long, whatever happens")
    args = parser.parse_args()
    try:
        asyncio.run(asyncio.wait_for(serve(args), args.max_seconds))
    except TimeoutError:
        print(f"fake services: stopping after --max-seconds {args.max_seconds}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
