"""Soak run: many poll cycles with random faults on the fake Twitch and fake Discord and random restarts.

    .venv/bin/python bench/soak.py [--cycles 500] [--seed 1]

The real bot (TwitchNotifierBot, real discord.py) runs in this process against the fakes, as in the
end-to-end tests. Streamers go live, go offline and blink out of Twitch's listing at random; Twitch answers
5xx / 429 / expired tokens, Discord answers 429 / 5xx and drops the gateway; the bot is restarted gracefully
or "crashed" (its cycle cancelled mid-flight, no clean shutdown) at random. Prints duplicates, misses and
crashes, which must all be 0; exits 1 otherwise. Not part of the unit suite (it takes about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import DISCORD_TOKEN, TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET, BotHarness, LogWatcher
from tests.fakes.fake_discord import FakeDiscord, patch_discord_endpoints
from tests.fakes.fake_twitch import FakeTwitch
from twitch_notifier.models import Streamer

GUILDS = 4
STREAMERS = 12
SETTLE_CYCLES = 8  # longer than any injected fault lasts: a stream live this long must be announced


@dataclass
class Tally:
    cycles: int = 0
    restarts: int = 0
    crashes_simulated: int = 0
    twitch_faults: int = 0
    discord_faults: int = 0
    gateway_drops: int = 0
    streams: int = 0
    blinks: int = 0
    bot_crashes: list[str] = field(default_factory=list)


async def soak(cycles: int, seed: int) -> int:
    rng = random.Random(seed)
    tally = Tally()
    watcher = LogWatcher()
    root = logging.getLogger()
    root.addHandler(watcher)
    try:
        return await _soak(cycles, seed, rng, tally, watcher)
    finally:
        root.removeHandler(watcher)


async def _soak(cycles: int, seed: int, rng: random.Random, tally: Tally, watcher: LogWatcher) -> int:
    discord_fake = FakeDiscord(token=DISCORD_TOKEN)
    twitch_fake = FakeTwitch(client_id=TWITCH_CLIENT_ID, client_secret=TWITCH_CLIENT_SECRET)
    await discord_fake.start()
    await twitch_fake.start()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, patch_discord_endpoints(discord_fake):
        harness = BotHarness(discord_fake, twitch_fake, Path(tmp) / "soak.db", offline_after_polls=2)
        channels = []
        for index in range(GUILDS):
            guild = discord_fake.add_guild(f"Soak {index}")
            channels.append(discord_fake.add_text_channel(guild.id, "alerts"))
            channels.append(discord_fake.add_text_channel(guild.id, "streams"))
        users = twitch_fake.add_users(STREAMERS, prefix="soak")
        await harness.start()
        follows: dict[str, set[int]] = {u.id: set() for u in users}
        for channel in channels[::2]:
            guild_channels = [c for c in channels if c.guild_id == channel.guild_id]
            for user in rng.sample(users, k=STREAMERS // 2):
                target = rng.choice(guild_channels)
                await harness.db.add_subscription(
                    channel.guild_id, target.id, Streamer(user.id, user.login, user.display_name)
                )
                follows[user.id].add(target.id)

        live_for: dict[str, int] = {}  # stream id -> cycles it has been in Twitch's listing
        stream_user: dict[str, str] = {}
        must_announce: set[tuple[int, str]] = set()
        try:
            for _ in range(cycles):
                tally.cycles += 1
                blinking: list[tuple[str, str]] = []
                for user in users:
                    current = twitch_fake.streams.get(user.id)
                    roll = rng.random()
                    if current is None and roll < 0.08:
                        tally.streams += 1
                        stream = twitch_fake.go_live(user.id, title="pending")
                        twitch_fake.update_stream(user.id, title=f"stream {stream.id}")
                        stream_user[stream.id] = user.id
                    elif current is not None and roll < 0.06:
                        twitch_fake.go_offline(user.id)
                    elif current is not None and roll < 0.10:
                        blinking.append((user.id, current.id))  # dropped from this one listing only
                        twitch_fake.go_offline(user.id, archive=False)
                        tally.blinks += 1
                if rng.random() < 0.08:
                    tally.twitch_faults += 1
                    status = rng.choice([500, 502, 503, 429])
                    twitch_fake.fail_next(path="/helix/streams", status=status, times=rng.randint(1, 5))
                if rng.random() < 0.02:
                    tally.twitch_faults += 1
                    twitch_fake.expire_tokens()
                if rng.random() < 0.06:
                    tally.discord_faults += 1
                    status = rng.choice([429, 429, 429, 500])
                    discord_fake.fail_next(
                        "POST", r"/channels/\d+/messages", status=status, times=rng.randint(1, 3), retry_after=0.01
                    )
                if rng.random() < 0.01:
                    tally.gateway_drops += 1
                    await discord_fake.disconnect_gateway(code=4000)

                roll = rng.random()
                if roll < 0.015:
                    # A crash: the cycle is cancelled wherever it is, and nothing is shut down cleanly.
                    tally.crashes_simulated += 1
                    cycle = asyncio.create_task(harness.poll())
                    await asyncio.sleep(rng.uniform(0, 0.02))
                    cycle.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await cycle
                    await harness.restart()
                elif roll < 0.03:
                    tally.restarts += 1
                    await harness.restart()
                else:
                    await harness.poll()

                for user_id, stream_id in blinking:
                    twitch_fake.go_live(user_id, stream_id=stream_id, title=f"stream {stream_id}")
                for user in users:
                    stream = twitch_fake.streams.get(user.id)
                    if stream is not None:
                        live_for[stream.id] = live_for.get(stream.id, 0) + 1
                        if live_for[stream.id] >= SETTLE_CYCLES:
                            must_announce.update((channel_id, stream.id) for channel_id in follows[user.id])
                failure = harness.gateway_failure()
                if failure is not None:
                    tally.bot_crashes.append(f"gateway task ended: {failure}")
                    break

            # Settle: no more faults, a few clean cycles.
            twitch_fake.clear_failures()
            discord_fake.faults.clear()
            for _ in range(3):
                await harness.poll()
            for user in users:
                stream = twitch_fake.streams.get(user.id)
                if stream is not None:
                    must_announce.update((channel_id, stream.id) for channel_id in follows[user.id])
        finally:
            await harness.stop()
            await discord_fake.stop()
            await twitch_fake.stop()

    posted = Counter(
        (m.channel_id, m.embeds[0]["title"].removeprefix("stream ")) for m in discord_fake.messages if m.embeds
    )
    duplicates = {key: n for key, n in posted.items() if n > 1}
    misses = must_announce - set(posted)
    unknown = {key for key in posted if key[1] not in stream_user}
    tally.bot_crashes += [f"ERROR log: {line}" for line in watcher.formatted()]
    elapsed = time.monotonic() - started

    print(f"soak: {tally.cycles} cycles in {elapsed:.1f} s (seed {seed})")
    print(f"  streams started {tally.streams}, blinks {tally.blinks}, announcements posted {sum(posted.values())}")
    print(
        f"  Twitch faults {tally.twitch_faults}, Discord faults {tally.discord_faults}, "
        f"gateway drops {tally.gateway_drops}"
    )
    print(f"  graceful restarts {tally.restarts}, simulated crashes {tally.crashes_simulated}")
    print(f"  duplicates: {len(duplicates)}")
    print(f"  misses:     {len(misses)}")
    print(f"  crashes:    {len(tally.bot_crashes)}")
    print(f"  announcements of streams never live: {len(unknown)}")
    for problem in [*tally.bot_crashes[:10], *map(str, duplicates.items()), *map(str, sorted(misses))][:20]:
        print(f"    {problem}")
    return 0 if not (duplicates or misses or tally.bot_crashes or unknown) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(soak(args.cycles, args.seed))


if __name__ == "__main__":
    sys.exit(main())
