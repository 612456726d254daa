"""Property-based test of the went-live / ended decision and the exactly-once announcement.

For any sequence of Twitch observations (live, offline, blinking out of the listing, failed batches),
failed posts and restarts: each stream id is announced at most once per subscription, nothing is announced
for a streamer that never went live, and every stream still live at the end has been announced everywhere.
"""

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from database import Database
from tests.conftest import build_notifier
from twitch_notifier.core.ports import AnnounceError
from twitch_notifier.models import LiveStream, Streamer
from twitch_notifier.twitch.models import StreamsSnapshot, TwitchStream

USERS = [Streamer(str(i), f"user{i}", f"User{i}") for i in range(3)]
# (guild, channel) subscriptions: user0 in two guilds, user1 in one, user2 in none (never announced).
SUBSCRIPTIONS = [(1, 10, USERS[0]), (2, 20, USERS[0]), (2, 20, USERS[1])]
T0 = datetime(2026, 11, 27, tzinfo=UTC)

# One step of the world: for each user, what Twitch really does, and how the poll sees it.
user_step = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["stay", "stay", "start", "stop"]),
        "listing": st.sampled_from(["ok", "ok", "ok", "blink", "failed"]),
    }
)
step = st.fixed_dictionaries(
    {
        "users": st.lists(user_step, min_size=len(USERS), max_size=len(USERS)),
        "send_fails": st.sets(st.sampled_from([10, 20])),
        "permanent": st.booleans(),
        "restart": st.booleans(),
    }
)


class Announcer:
    def __init__(self, log: list[tuple[int, str]]) -> None:
        self.log = log
        self.failing: set[int] = set()
        self.permanent = False

    async def announce(
        self, channel_id: int, stream: LiveStream, streamer: Streamer, *, nonce: str, message=None, guild_id: int = 0
    ) -> int:
        if channel_id in self.failing:
            raise AnnounceError("nope", permanent=self.permanent)
        self.log.append((channel_id, stream.stream_id))
        return len(self.log)

    async def edit(self, channel_id: int, message_id: int, message, *, guild_id: int = 0) -> None:
        if channel_id in self.failing:
            raise AnnounceError("nope", permanent=self.permanent)

    async def delete(self, channel_id: int, message_id: int, *, guild_id: int = 0) -> None:
        if channel_id in self.failing:
            raise AnnounceError("nope", permanent=self.permanent)


def twitch_stream(user: Streamer, stream_id: str) -> TwitchStream:
    return TwitchStream(
        id=stream_id,
        user_id=user.twitch_user_id,
        user_login=user.login,
        user_name=user.display_name,
        game_id="1",
        game_name="g",
        title="t",
        viewer_count=1,
        started_at=T0,
        thumbnail_url="",
    )


async def scenario(path: Path, steps: list[dict], offline_after: int) -> None:
    db = await Database.open(str(path))
    for guild_id, channel_id, user in SUBSCRIPTIONS:
        await db.add_subscription(guild_id, channel_id, user)
    sent: list[tuple[int, str]] = []
    announcer = Announcer(sent)
    notifier = build_notifier(db, announcer, offline_after_polls=offline_after)
    live_now: dict[str, str] = {}  # what Twitch really has live: user id -> stream id
    ever_live: set[str] = set()
    counter = 0
    try:
        for world in steps:
            for user, change in zip(USERS, world["users"], strict=True):
                if change["action"] == "start":
                    counter += 1
                    live_now[user.twitch_user_id] = f"s{counter}"
                elif change["action"] == "stop":
                    live_now.pop(user.twitch_user_id, None)
            streams, checked, failed = {}, set(), set()
            for user, change in zip(USERS, world["users"], strict=True):
                uid = user.twitch_user_id
                if change["listing"] == "failed":
                    failed.add(uid)
                    continue
                checked.add(uid)
                if uid in live_now and change["listing"] != "blink":
                    streams[uid] = twitch_stream(user, live_now[uid])
                    ever_live.add(live_now[uid])
            announcer.failing = set(world["send_fails"])
            announcer.permanent = world["permanent"]
            await notifier.apply(
                StreamsSnapshot(streams=streams, checked=frozenset(checked), failed=frozenset(failed), requests=1)
            )
            if world["restart"]:
                await db.close()
                db = await Database.open(str(path))
                notifier = build_notifier(db, announcer, offline_after_polls=offline_after)

        # A final clean observation: no failures anywhere.
        announcer.failing = set()
        final = {uid: twitch_stream(USERS[int(uid)], sid) for uid, sid in live_now.items()}
        ever_live.update(live_now.values())
        await notifier.apply(
            StreamsSnapshot(
                streams=final, checked=frozenset(u.twitch_user_id for u in USERS), failed=frozenset(), requests=1
            )
        )
    finally:
        await db.close()

    # At most once per (channel, stream id); every channel here has one subscription per user.
    assert len(sent) == len(set(sent)), f"duplicate announcement in {sent}"
    # Nothing announced that Twitch never showed live.
    assert {stream_id for _, stream_id in sent} <= ever_live
    channels_by_user = {u.twitch_user_id: {c for _, c, su in SUBSCRIPTIONS if su == u} for u in USERS}
    # Every stream live at the end is announced in every channel following its streamer.
    for uid, stream_id in live_now.items():
        for channel in channels_by_user[uid]:
            assert (channel, stream_id) in sent, f"missed {stream_id} in {channel}: {sent}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=12), offline_after=st.integers(min_value=1, max_value=3))
def test_each_stream_is_announced_exactly_once_per_subscription(steps, offline_after):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp) / "bot.db", steps, offline_after))
