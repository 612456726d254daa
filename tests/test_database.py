"""Unit tests for database.py: schema, migrations, subscriptions, live state and announcements."""

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from database import SCHEMA_VERSION, AlreadySubscribed, Database, DatabaseError, LiveStream, Streamer

SHROUD = Streamer("37402112", "shroud", "shroud", "https://static-cdn.jtvnw.net/shroud.png")
POKI = Streamer("44445592", "pokimane", "Pokimane")
STARTED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def live(streamer: Streamer, stream_id: str, **changes) -> LiveStream:
    values = {
        "twitch_user_id": streamer.twitch_user_id,
        "stream_id": stream_id,
        "title": "hello",
        "game_name": "VALORANT",
        "viewer_count": 10,
        "started_at": STARTED,
        "thumbnail_url": "https://x/{width}x{height}.jpg",
    } | changes
    return LiveStream(**values)


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(str(tmp_path / "bot.db"))
    yield database
    await database.close()


async def test_pragmas_and_version(db):
    async with db._conn.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"
    async with db._conn.execute("PRAGMA foreign_keys") as cur:
        assert (await cur.fetchone())[0] == 1
    async with db._conn.execute("PRAGMA busy_timeout") as cur:
        assert (await cur.fetchone())[0] == 5000
    async with db._conn.execute("PRAGMA user_version") as cur:
        assert (await cur.fetchone())[0] == SCHEMA_VERSION


async def test_reopen_keeps_data(tmp_path):
    path = str(tmp_path / "bot.db")
    first = await Database.open(path)
    await first.set_announce_channel(1, 10)
    await first.add_subscription(1, 10, SHROUD)
    await first.close()
    second = await Database.open(path)
    assert await second.get_announce_channel(1) == 10
    assert [s.streamer for s in await second.guild_subscriptions(1)] == [SHROUD]
    await second.close()


async def test_corrupt_file_is_a_clear_error_and_is_not_replaced(tmp_path):
    path = tmp_path / "bot.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    with pytest.raises(DatabaseError, match=r"bot\.db"):
        await Database.open(str(path))
    assert path.read_bytes() == garbage


async def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "bot.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer"):
        await Database.open(str(path))


async def test_missing_directory_is_named(tmp_path):
    with pytest.raises(DatabaseError, match="does not exist"):
        await Database.open(str(tmp_path / "nope" / "bot.db"))


async def test_subscriptions_are_per_guild_and_unique(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(2, 20, SHROUD)
    with pytest.raises(AlreadySubscribed):
        await db.add_subscription(1, 11, SHROUD)
    assert [s.channel_id for s in await db.guild_subscriptions(1)] == [10]
    assert await db.monitored_user_ids() == [SHROUD.twitch_user_id]
    assert await db.count_subscriptions(1) == 1


async def test_find_by_id_login_or_display_name(db):
    await db.add_subscription(1, 10, POKI)
    for query in ("44445592", "pokimane", "POKIMANE", " Pokimane "):
        found = await db.find_subscription(1, query)
        assert found is not None and found.streamer == POKI
    assert await db.find_subscription(2, "pokimane") is None


async def test_remove_deletes_orphan_streamer_and_its_live_state(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    assert await db.remove_subscription(1, "shroud") == SHROUD
    assert await db.monitored_user_ids() == []
    assert await db.live_streams() == {}
    assert await db.remove_subscription(1, "shroud") is None


async def test_autocomplete_search_escapes_like_wildcards(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 10, POKI)
    await db.add_subscription(1, 10, Streamer("1", "a_b", "a_b"))
    assert [s.login for s in await db.search_guild_streamers(1, "")] == ["a_b", "pokimane", "shroud"]
    assert [s.login for s in await db.search_guild_streamers(1, "_")] == ["a_b"]
    assert [s.login for s in await db.search_guild_streamers(1, "%")] == []
    assert [s.login for s in await db.search_guild_streamers(2, "")] == []


async def test_pending_announcements_follow_live_state_and_records(db):
    sub_a = await db.add_subscription(1, 10, SHROUD)
    sub_b = await db.add_subscription(2, 20, SHROUD)
    await db.add_subscription(1, 10, POKI)
    assert await db.pending_announcements() == []
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    pending = await db.pending_announcements()
    assert [(p.subscription_id, p.channel_id, p.stream_id) for p in pending] == [
        (sub_a.id, 10, "s1"),
        (sub_b.id, 20, "s1"),
    ]
    await db.record_announcement(pending[0], 555)
    assert [p.subscription_id for p in await db.pending_announcements()] == [sub_b.id]
    assert await db.announcements_for_stream("s1") == [(sub_a.id, 10, 555)]
    # The same stream id coming back after it ended is not pending again for who already had it.
    await db.apply_live_changes([], {}, [SHROUD.twitch_user_id])
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    assert [p.subscription_id for p in await db.pending_announcements()] == [sub_b.id]


async def test_live_changes_update_miss_and_end(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    await db.apply_live_changes([], {SHROUD.twitch_user_id: 1}, [])
    assert (await db.live_streams())[SHROUD.twitch_user_id].missed_polls == 1
    await db.apply_live_changes([live(SHROUD, "s1", title="new", viewer_count=99)], {}, [])
    state = (await db.live_streams())[SHROUD.twitch_user_id]
    assert (state.title, state.viewer_count, state.missed_polls, state.started_at) == ("new", 99, 0, STARTED)
    await db.apply_live_changes([], {}, [SHROUD.twitch_user_id])
    assert await db.live_streams() == {}


async def test_live_state_for_unfollowed_streamer_is_ignored(db):
    # A streamer removed while a poll was in flight must not come back through that poll's result.
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    assert await db.live_streams() == {}


async def test_record_for_removed_subscription_is_ignored(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [pending] = await db.pending_announcements()
    await db.remove_subscription(1, "shroud")
    await db.record_announcement(pending, 1)
    assert await db.announcements_for_stream("s1") == []


async def test_subscription_error_is_cleared_by_a_successful_announcement(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.set_subscription_error(sub.id, "missing Send Messages")
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [pending] = await db.pending_announcements()
    assert pending.last_error == "missing Send Messages"
    await db.record_announcement(pending, 9)
    assert (await db.find_subscription(1, "shroud")).last_error is None


async def test_renames_are_followed(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.update_streamer_names([Streamer(SHROUD.twitch_user_id, "shroud2", "Shroud2")])
    [sub] = await db.guild_subscriptions(1)
    assert (sub.streamer.login, sub.streamer.display_name) == ("shroud2", "Shroud2")
    assert sub.streamer.profile_image_url == SHROUD.profile_image_url


async def test_guild_streamers_joins_live_state(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 10, POKI)
    await db.apply_live_changes([live(POKI, "p1")], {}, [])
    rows = await db.guild_streamers(1)
    assert [(r.subscription.streamer.login, r.live.stream_id if r.live else None) for r in rows] == [
        ("pokimane", "p1"),
        ("shroud", None),
    ]


async def test_delete_guild_removes_only_that_guild(db):
    await db.set_announce_channel(1, 10)
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(2, 20, POKI)
    await db.delete_guild(1)
    assert await db.get_announce_channel(1) is None
    assert await db.monitored_user_ids() == [POKI.twitch_user_id]


async def test_prune_keeps_live_streams_announcements(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 10, POKI)
    await db.apply_live_changes([live(SHROUD, "s1"), live(POKI, "p1")], {}, [])
    for pending in await db.pending_announcements():
        await db.record_announcement(pending, 1)
    await db.apply_live_changes([], {}, [POKI.twitch_user_id])
    assert await db.prune_announcements(datetime.now(UTC) + timedelta(days=1)) == 1
    assert await db.announcements_for_stream("s1") != []
    assert await db.announcements_for_stream("p1") == []


async def test_queries_are_parameterised_against_hostile_text(db):
    evil = Streamer("666", "x'); DROP TABLE subscriptions; --", "Robert'); DROP TABLE streamers;--")
    await db.add_subscription(1, 10, evil)
    assert (await db.find_subscription(1, evil.display_name)).streamer == evil
    assert await db.search_guild_streamers(1, "drop table") == [evil]
    assert await db.count_subscriptions(1) == 1


async def test_counts(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(2, 20, SHROUD)
    await db.add_subscription(2, 20, POKI)
    await db.apply_live_changes([live(POKI, "p1")], {}, [])
    assert await db.counts() == {"subscriptions": 3, "streamers": 2, "guilds": 2, "live_streams": 1}


async def test_concurrent_writers_take_turns(db):
    import asyncio

    subs = [await db.add_subscription(1, 10, Streamer(str(i), f"user{i}", f"User{i}")) for i in range(20)]
    await db.apply_live_changes([live(sub.streamer, f"st{i}") for i, sub in enumerate(subs)], {}, [])
    pending = await db.pending_announcements()
    await asyncio.gather(*(db.record_announcement(p, i) for i, p in enumerate(pending)))
    assert await db.pending_announcements() == []


async def test_migrates_a_version_1_database_without_loss(tmp_path):
    from database import MIGRATIONS

    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    conn.execute("INSERT INTO guild_settings VALUES (1, 10, '2026-01-01T00:00:00+00:00')")
    conn.execute("INSERT INTO streamers VALUES ('37402112', 'shroud', 'shroud', '', '2026-01-01T00:00:00+00:00')")
    conn.execute(
        "INSERT INTO subscriptions (guild_id, twitch_user_id, channel_id, created_at) "
        "VALUES (1, '37402112', 10, '2026-01-01T00:00:00+00:00')"
    )
    conn.commit()
    conn.close()
    db = await Database.open(str(path))
    try:
        async with db._conn.execute("PRAGMA user_version") as cur:
            assert (await cur.fetchone())[0] == SCHEMA_VERSION
        [sub] = await db.guild_subscriptions(1)
        assert (sub.streamer.login, sub.channel_id, sub.missing_since) == ("shroud", 10, None)
        assert await db.get_announce_channel(1) == 10
    finally:
        await db.close()


async def test_refresh_marks_and_clears_missing_streamers(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 10, POKI)
    await db.refresh_streamers(
        [Streamer(SHROUD.twitch_user_id, "shroud", "SHROUD", "https://new.png")], [POKI.twitch_user_id]
    )
    subs = {s.streamer.login: s for s in await db.guild_subscriptions(1)}
    assert subs["pokimane"].missing_since is not None
    assert subs["shroud"].missing_since is None
    assert subs["shroud"].streamer.display_name == "SHROUD"
    assert subs["shroud"].streamer.profile_image_url == "https://new.png"
    await db.refresh_streamers([POKI], [])
    assert (await db.find_subscription(1, "pokimane")).missing_since is None


async def test_deleted_channel_falls_back_to_default_or_is_marked(db):
    await db.add_subscription(1, 11, SHROUD)
    await db.add_subscription(2, 21, POKI)
    await db.set_announce_channel(1, 10)
    assert await db.channel_deleted(1, 11, "gone") == (1, 0)
    assert (await db.find_subscription(1, "shroud")).channel_id == 10
    assert await db.channel_deleted(2, 21, "gone") == (0, 1)
    assert (await db.find_subscription(2, "pokimane")).last_error == "gone"
    assert await db.move_guild_subscriptions(2, [21], 22) == 1
    moved = await db.find_subscription(2, "pokimane")
    assert (moved.channel_id, moved.last_error) == (22, None)


async def test_set_channel_and_clear_errors(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.set_subscription_error(sub.id, "missing Send Messages")
    assert await db.clear_channel_errors(1, 10) == 1
    await db.set_subscription_error(sub.id, "x")
    await db.set_subscription_channel(sub.id, 12)
    found = await db.find_subscription(1, "shroud")
    assert (found.channel_id, found.last_error) == (12, None)
