"""Unit tests for database.py: schema, migrations, subscriptions, live state and announcements.

Every test of the store's behaviour runs on both back-ends (ids `sqlite` and `postgresql`: the `db` and
`open_store` fixtures); tests named `test_sqlite_…` are about the SQLite file itself (pragmas, the file lock,
corrupt files, upgrades of files written by older bots) and run on SQLite only.
"""

import asyncio
import contextlib
import dataclasses
import os
import re
import sqlite3
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from unittest.mock import ANY

import asyncpg
import pytest

from database import SCHEMA_VERSION, Database, DatabaseError, DatabaseLocked
from twitch_notifier.db.migrations import MIGRATIONS
from twitch_notifier.db.paramstyle import numbered
from twitch_notifier.models import (
    AlreadySubscribed,
    Broadcast,
    Category,
    EndAction,
    GuildSettings,
    LastPing,
    LiveEventRecord,
    LiveStream,
    PendingAnnouncement,
    PublishWindow,
    ScheduleEventRecord,
    ShardScope,
    Streamer,
    SubscriptionLimitReached,
    SubscriptionUpdate,
    TitleFilter,
)

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


async def committed(db: Database, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows as another client of the database sees them, outside the bot's connections: what is committed
    (SQLite: the file opened read-only; PostgreSQL: a connection of its own). `?` parameters."""
    if db.backend == "sqlite":
        conn = sqlite3.connect(f"file:{db.path}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    pg = await asyncpg.connect(db.path)  # the test server trusts: the URL shown is the URL
    try:
        return [tuple(row) for row in await pg.fetch(numbered(sql).sql, *params)]
    finally:
        await pg.close()


async def write_outside(db: Database, sql: str, params: tuple = ()) -> None:
    """A write by another tool (or a bug) straight into the database, behind the bot's back."""
    if db.backend == "sqlite":
        conn = sqlite3.connect(db.path)
        with conn:
            conn.execute(sql, params)
        conn.close()
        return
    pg = await asyncpg.connect(db.path)
    try:
        await pg.execute(numbered(sql).sql, *params)
    finally:
        await pg.close()


async def announcements_of(db: Database, stream_id: str) -> list[tuple[int, int, int | None]]:
    """(subscription id, channel id, message id) of every announcement of one stream, as committed."""
    return await committed(
        db,
        "SELECT subscription_id, channel_id, message_id FROM announcements WHERE stream_id = ? "
        "ORDER BY subscription_id",
        (stream_id,),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path) -> tuple[str, str]:
    """(back-end, where): a SQLite file path, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "bot.db")
    return "postgresql", request.getfixturevalue("postgres_url")


@pytest.fixture
async def open_store(store_location):
    """Opens the test's database (the same one each time) on the back-end of the test's id; closes what it
    opened that the test left open."""
    backend, where = store_location
    opened: list[Database] = []

    async def open_(**options) -> Database:
        if backend == "sqlite":
            database = await Database.open(where, **options)
        else:
            database = await Database.open_url(where, **options)
        opened.append(database)
        return database

    yield open_
    for database in opened:
        with contextlib.suppress(Exception):  # closed by the test already
            await database.close()


@pytest.fixture
async def db(open_store):
    return await open_store()


@pytest.fixture
async def sqlite_db(tmp_path):
    database = await Database.open(str(tmp_path / "bot.db"))
    yield database
    await database.close()


async def test_sqlite_pragmas_and_version(sqlite_db):
    db = sqlite_db
    assert await db.pragma("journal_mode") == "wal"
    assert await db.pragma("foreign_keys") == 1
    assert await db.pragma("busy_timeout") == 5000
    assert await db.pragma("user_version") == SCHEMA_VERSION
    assert await db.pragma("synchronous") == 1  # NORMAL
    assert await db.pragma("foreign_key_check") == []
    with pytest.raises(ValueError, match="not a diagnostic pragma"):
        await db.pragma("journal_mode=DELETE")
    assert (db.backend, await db.schema_version()) == ("sqlite", SCHEMA_VERSION)


async def test_reopen_keeps_data(open_store):
    first = await open_store()
    assert await first.schema_version() == SCHEMA_VERSION
    await first.set_announce_channel(1, 10)
    await first.add_subscription(1, 10, SHROUD)
    await first.close()
    second = await open_store()
    assert await second.get_announce_channel(1) == 10
    assert [s.streamer for s in await second.guild_subscriptions(1)] == [SHROUD]
    await second.close()


async def test_sqlite_corrupt_file_is_a_clear_error_and_is_not_replaced(tmp_path):
    path = tmp_path / "bot.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    with pytest.raises(DatabaseError, match=r"bot\.db"):
        await Database.open(str(path))
    assert path.read_bytes() == garbage


async def test_sqlite_newer_schema_is_refused(tmp_path):
    path = tmp_path / "bot.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer"):
        await Database.open(str(path))


async def test_sqlite_missing_directory_is_named(tmp_path):
    with pytest.raises(DatabaseError, match="does not exist"):
        await Database.open(str(tmp_path / "nope" / "bot.db"))


async def test_subscriptions_are_unique_per_guild_streamer_and_channel(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(2, 20, SHROUD)
    with pytest.raises(AlreadySubscribed):
        await db.add_subscription(1, 10, SHROUD)
    # The same streamer into a second channel of the same guild is a second subscription.
    await db.add_subscription(1, 11, SHROUD)
    assert sorted(s.channel_id for s in await db.guild_subscriptions(1)) == [10, 11]
    assert await db.monitored_user_ids() == [SHROUD.twitch_user_id]
    assert await db.count_subscriptions(1) == 2
    assert [s.channel_id for s in await db.find_subscriptions(1, "SHROUD")] == [10, 11]


async def test_find_by_id_login_or_display_name(db):
    await db.add_subscription(1, 10, POKI)
    for query in ("44445592", "pokimane", "POKIMANE", " Pokimane "):
        [found] = await db.find_subscriptions(1, query)
        assert found is not None
        assert found.streamer == POKI
    assert await db.find_subscriptions(2, "pokimane") == []


async def test_remove_deletes_orphan_streamer_and_its_live_state(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    assert (await db.remove_subscription_by_id(1, sub.id)).streamer == SHROUD
    assert await db.monitored_user_ids() == []
    assert await db.live_streams() == {}
    assert await db.remove_subscription_by_id(1, sub.id) is None


async def test_autocomplete_search_escapes_like_wildcards(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 10, POKI)
    await db.add_subscription(1, 10, Streamer("1", "a_b", "a_b"))
    await db.add_subscription(1, 10, Streamer("2", "slash", "back\\slash"))

    async def logins(guild_id: int, text: str) -> list[str]:
        return [s.streamer.login for s in await db.search_guild_subscriptions(guild_id, text)]

    assert await logins(1, "") == ["a_b", "slash", "pokimane", "shroud"]
    assert await logins(1, "_") == ["a_b"]
    assert await logins(1, "%") == []
    assert await logins(1, "\\") == ["slash"]
    assert await logins(1, "k\\s") == ["slash"]
    assert await logins(2, "") == []


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
    assert await announcements_of(db, "s1") == [(sub_a.id, 10, 555)]
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
    await db.remove_subscription_by_id(1, pending.subscription_id)
    await db.record_announcement(pending, 1)
    assert await announcements_of(db, "s1") == []


async def test_subscription_error_is_cleared_by_a_successful_announcement(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.set_subscription_error(sub.id, "missing Send Messages", channel_id=10)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [pending] = await db.pending_announcements()
    assert pending.last_error == "missing Send Messages"
    await db.record_announcement(pending, 9)
    assert (await db.find_subscriptions(1, "shroud"))[0].last_error is None


async def test_the_last_failure_and_its_time_outlive_a_success(open_store):
    moment = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    db = await open_store(clock=lambda: moment)
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.set_subscription_error(sub.id, "missing Send Messages", channel_id=10)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [pending] = await db.pending_announcements()
    await db.record_announcement(pending, 9, live(SHROUD, "s1"))
    [after] = await db.guild_subscriptions(1)
    assert after.last_error is None
    assert (after.last_failure, after.last_failure_at) == ("missing Send Messages", moment)
    [last] = (await db.last_announcements(1)).values()
    assert (last.subscription_id, last.channel_id, last.message_id, last.posted_at) == (sub.id, 10, 9, moment)
    assert (last.title, last.game_name) == (live(SHROUD, "s1").title, live(SHROUD, "s1").game_name)
    assert await db.last_announcements(2) == {}


async def test_publish_windows_round_trip_and_stale_ones_are_dropped(db):
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert await db.publish_window(5) == PublishWindow(5)
    window = PublishWindow(5, (now - timedelta(minutes=30), now), now + timedelta(minutes=20))
    await db.save_publish_window(window, forget_before=now - timedelta(hours=1))
    assert await db.publish_window(5) == window
    await db.save_publish_window(PublishWindow(6, (now,)), forget_before=now - timedelta(hours=1))
    assert await db.publish_window(5) == window  # written just now: kept
    # Much later a save for another channel drops channel 5's row, long stale; never the saved one's.
    await db.save_publish_window(PublishWindow(7), forget_before=datetime.now(UTC) + timedelta(hours=2))
    assert await db.publish_window(5) == PublishWindow(5)
    assert await db.publish_window(7) == PublishWindow(7)


async def test_the_publish_setting_reaches_the_pending_announcements(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    assert [p.publish for p in await db.pending_announcements()] == [False]
    settings = await db.update_guild_settings(1, publish=True)
    assert settings.publish is True
    assert [p.publish for p in await db.pending_announcements()] == [True]
    assert (await db.reset_guild_settings(1, ["publish"])).publish is False


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
    assert await announcements_of(db, "s1") != []
    assert await announcements_of(db, "p1") == []


async def test_queries_are_parameterised_against_hostile_text(db):
    evil = Streamer("666", "x'); DROP TABLE subscriptions; --", "Robert'); DROP TABLE streamers;--")
    sub = await db.add_subscription(1, 10, evil, message_template="'); DELETE FROM guild_settings; --")
    assert (await db.find_subscriptions(1, evil.display_name))[0].streamer == evil
    assert [s.streamer for s in await db.search_guild_subscriptions(1, "drop table")] == [evil]
    assert [s.streamer for s in await db.search_guild_subscriptions(1, "'); drop")] == [evil]
    assert await db.find_subscriptions(1, "' OR 1=1 --") == []
    await db.update_subscription(sub.id, SubscriptionUpdate(ping="'; DROP TABLE announcements; --"))
    assert (await db.get_subscription(1, sub.id)).ping == "'; DROP TABLE announcements; --"
    assert await db.count_subscriptions(1) == 1
    assert await db.remove_subscription_by_id(1, sub.id) is not None
    assert await db.count_subscriptions(1) == 0
    assert await committed(db, "SELECT count(*) FROM streamers") == [(0,)]


async def test_counts(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(2, 20, SHROUD)
    await db.add_subscription(2, 20, POKI)
    await db.apply_live_changes([live(POKI, "p1")], {}, [])
    guilds = await db.guild_ids()
    counts = {
        "subscriptions": sum([await db.count_subscriptions(guild) for guild in guilds]),
        "streamers": len(await db.monitored_user_ids()),
        "guilds": len(guilds),
        "live_streams": len(await db.live_streams()),
    }
    assert counts == {"subscriptions": 3, "streamers": 2, "guilds": 2, "live_streams": 1}


async def test_concurrent_writers_take_turns(db):
    subs = [await db.add_subscription(1, 10, Streamer(str(i), f"user{i}", f"User{i}")) for i in range(20)]
    await db.apply_live_changes([live(sub.streamer, f"st{i}") for i, sub in enumerate(subs)], {}, [])
    pending = await db.pending_announcements()
    await asyncio.gather(*(db.record_announcement(p, i) for i, p in enumerate(pending)))
    assert await db.pending_announcements() == []


async def test_sqlite_migrates_a_version_1_database_without_loss(tmp_path):
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(f"BEGIN; {MIGRATIONS[0].sql}; PRAGMA user_version = 1; COMMIT;")
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
        assert await db.pragma("user_version") == SCHEMA_VERSION
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
    assert (await db.find_subscriptions(1, "pokimane"))[0].missing_since is None


async def test_deleted_channel_falls_back_to_default_or_is_marked(db):
    await db.add_subscription(1, 11, SHROUD)
    await db.add_subscription(2, 21, POKI)
    await db.set_announce_channel(1, 10)
    assert await db.channel_deleted(1, 11, "gone") == (1, 0)
    assert (await db.find_subscriptions(1, "shroud"))[0].channel_id == 10
    assert await db.channel_deleted(2, 21, "gone") == (0, 1)
    assert (await db.find_subscriptions(2, "pokimane"))[0].last_error == "gone"
    assert await db.move_guild_subscriptions(2, [21], 22) == 1
    [moved] = await db.find_subscriptions(2, "pokimane")
    assert (moved.channel_id, moved.last_error) == (22, None)


async def test_set_channel_and_clear_errors(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.set_subscription_error(sub.id, "missing Send Messages", channel_id=10)
    assert await db.clear_channel_errors(1, 10) == 1
    await db.set_subscription_error(sub.id, "x", channel_id=10)
    await db.set_subscription_channel(sub.id, 12)
    [found] = await db.find_subscriptions(1, "shroud")
    assert (found.channel_id, found.last_error) == (12, None)


def _build(path, version: int) -> sqlite3.Connection:
    """A database file created by an older bot: the first `version` migrations, nothing after."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys=ON")
    for migration in MIGRATIONS[:version]:
        conn.executescript(f"BEGIN; {migration.sql}; PRAGMA user_version = {migration.version}; COMMIT;")
    return conn


async def test_sqlite_migrates_a_version_2_database_without_loss(tmp_path):
    path = tmp_path / "v2.db"
    conn = _build(path, 2)
    t = "2026-01-01T00:00:00+00:00"
    conn.execute("INSERT INTO guild_settings VALUES (1, 10, ?)", (t,))
    conn.execute("INSERT INTO streamers VALUES ('37402112', 'shroud', 'shroud', 'https://a.png', ?, ?)", (t, t))
    conn.execute("INSERT INTO streamers VALUES ('44445592', 'pokimane', 'Pokimane', '', ?, NULL)", (t,))
    conn.execute(
        "INSERT INTO subscriptions (id, guild_id, twitch_user_id, channel_id, added_by, created_at, last_error) "
        "VALUES (7, 1, '37402112', 10, 99, ?, 'missing Send Messages'), (9, 1, '44445592', 11, NULL, ?, NULL), "
        "(12, 2, '37402112', 20, NULL, ?, NULL)",
        (t, t, t),
    )
    conn.execute(
        "INSERT INTO live_streams VALUES ('37402112', 's-live', 'hi', 'VALORANT', 5, ?, 'https://x/{width}.jpg', 0, ?)",
        (t, t),
    )
    conn.execute(
        "INSERT INTO announcements VALUES (7, 's-live', '37402112', 1, 10, 111, ?), "
        "(9, 'p-over', '44445592', 1, 11, 222, ?), (12, 's-live', '37402112', 2, 20, 333, ?)",
        (t, t, t),
    )
    conn.commit()
    conn.close()

    db = await Database.open(str(path))
    try:
        assert await db.pragma("user_version") == SCHEMA_VERSION
        assert await db.pragma("foreign_keys") == 1
        assert await db.pragma("foreign_key_check") == []
        subs = {s.id: s for s in await db.guild_subscriptions(1)}
        assert set(subs) == {7, 9}  # ids are kept: announcements still point at them
        assert (subs[7].channel_id, subs[7].last_error, subs[7].streamer.profile_image_url) == (
            10,
            "missing Send Messages",
            "https://a.png",
        )
        assert subs[7].missing_since == datetime.fromisoformat(t)
        assert (subs[7].ping, subs[7].message_template, subs[7].games) == (None, None, None)
        assert [s.id for s in await db.guild_subscriptions(2)] == [12]
        assert await announcements_of(db, "s-live") == [(7, 10, 111), (12, 20, 333)]
        assert await announcements_of(db, "p-over") == [(9, 11, 222)]
        assert await db.pending_announcements() == []  # nothing is announced twice after the upgrade
        assert (await db.live_streams())["37402112"].game_id == ""
        settings = await db.get_guild_settings(1)
        assert (settings.announce_channel_id, settings.ping, settings.end_action, settings.live_updates) == (
            10,
            None,
            "edit",
            True,
        )
        # The stream that was already over is closed: its old card is never edited; the live one still is.
        assert await db.cards_to_close() == []
        await db.apply_live_changes([], {}, ["37402112"], ended_streams=["s-live"])
        assert sorted(c.message_id for c in await db.cards_to_close()) == [111, 333]
        # The new uniqueness rule holds and the foreign key from announcements still cascades.
        await db.add_subscription(1, 11, Streamer("37402112", "shroud", "shroud"))
        with pytest.raises(AlreadySubscribed):
            await db.add_subscription(1, 10, Streamer("37402112", "shroud", "shroud"))
        await db.remove_subscription_by_id(1, 9)
        assert await announcements_of(db, "p-over") == []
    finally:
        await db.close()


async def test_sqlite_a_migration_that_would_break_foreign_keys_is_rolled_back(tmp_path):
    path = tmp_path / "broken.db"
    conn = _build(path, 2)
    conn.execute("PRAGMA foreign_keys=OFF")
    t = "2026-01-01T00:00:00+00:00"
    # An announcement of a subscription that no longer exists (written by a tool with foreign keys off).
    conn.execute("INSERT INTO announcements VALUES (404, 's', '1', 1, 10, 1, ?)", (t,))
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="foreign key"):
        await Database.open(str(path))
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 2
    assert check.execute("SELECT count(*) FROM announcements").fetchone()[0] == 1
    check.close()


async def test_guild_settings_set_and_reset(db):
    assert await db.get_guild_settings(5) == GuildSettings(5)
    await db.set_announce_channel(5, 50)
    await db.update_guild_settings(5, ping="everyone", message_template="{streamer}!", live_updates=False)
    settings = await db.update_guild_settings(5, end_action="delete")
    assert settings == GuildSettings(5, 50, "everyone", "{streamer}!", "delete", False)
    settings = await db.reset_guild_settings(5, ["ping", "live_updates"])
    assert settings == GuildSettings(5, 50, None, "{streamer}!", "delete", True)
    with pytest.raises(ValueError, match="unknown"):
        await db.update_guild_settings(5, **{"ping = 1; --": 1})


async def test_overrides_and_game_filter_decide_what_is_pending(db):
    valorant = Category("516575", "VALORANT")
    sub = await db.add_subscription(1, 10, SHROUD, ping="123456789012345678", games=[valorant])
    other = await db.add_subscription(1, 11, SHROUD)
    await db.update_guild_settings(1, ping="here", message_template="{streamer} live")
    await db.apply_live_changes([live(SHROUD, "s1", game_id="509658", game_name="Just Chatting")], {}, [])
    [pending] = await db.pending_announcements()
    assert (pending.subscription_id, pending.ping, pending.template) == (other.id, "here", "{streamer} live")
    # Switching into the listed category makes it pending for the filtered subscription too.
    await db.apply_live_changes([live(SHROUD, "s1", game_id="516575")], {}, [])
    pending = {p.subscription_id: p for p in await db.pending_announcements()}
    assert set(pending) == {sub.id, other.id}
    assert pending[sub.id].ping == "123456789012345678"
    await db.update_subscription(sub.id, SubscriptionUpdate(games=None, ping=None, channel_id=12))
    found = await db.get_subscription(1, sub.id)
    assert (found.games, found.ping, found.channel_id) == (None, None, 12)
    with pytest.raises(AlreadySubscribed):
        await db.update_subscription(sub.id, SubscriptionUpdate(channel_id=11))


async def test_cards_to_update_are_throttled_and_only_when_changed(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    stream = live(SHROUD, "s1")
    await db.apply_live_changes([stream], {}, [])
    [pending] = await db.pending_announcements()
    await db.record_announcement(pending, 555, stream)
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert await db.cards_to_update(later) == []  # nothing changed
    await db.apply_live_changes([live(SHROUD, "s1", title="new title")], {}, [])
    assert await db.cards_to_update(datetime.now(UTC) - timedelta(minutes=5)) == []  # edited too recently
    [card] = await db.cards_to_update(later)
    assert (card.subscription_id, card.message_id, card.live.title) == (sub.id, 555, "new title")
    await db.mark_cards_rendered([(sub.id, card.live)])
    assert await db.cards_to_update(later) == []
    await db.update_guild_settings(1, live_updates=False)
    await db.apply_live_changes([live(SHROUD, "s1", viewer_count=99)], {}, [])
    assert await db.cards_to_update(later) == []


async def test_ended_and_replaced_streams_are_closed_once(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [pending] = await db.pending_announcements()
    await db.record_announcement(pending, 555, live(SHROUD, "s1"))
    # A new stream id replaces s1 without an offline poll in between: s1's card is ended.
    await db.apply_live_changes([live(SHROUD, "s2")], {}, [], ended_streams=["s1"])
    [card] = await db.cards_to_close()
    assert (card.subscription_id, card.stream_id, card.message_id, card.end_action) == (sub.id, "s1", 555, "edit")
    assert card.title == "hello"
    assert card.started_at == STARTED
    assert card.ended_at is not None
    await db.close_cards([(sub.id, "s1")])
    assert await db.cards_to_close() == []
    assert [p.stream_id for p in await db.pending_announcements()] == ["s2"]


async def test_box_art_cache(db):
    old = datetime.now(UTC) - timedelta(days=1)
    assert await db.games_needing_art(["1", "2", ""], old) == ["1", "2"]
    await db.store_games([Category("1", "One", "https://art/1.jpg"), Category("2", "Two")])
    assert await db.games_needing_art(["1", "2"], old) == ["2"]
    assert await db.games_needing_art(["1"], datetime.now(UTC) + timedelta(days=1)) == ["1"]
    await db.store_games([Category("1", "One renamed")])  # no art: keeps the cached art
    [row] = await committed(db, "SELECT id, name, box_art_url FROM games WHERE id = '1'")
    assert Category(*row) == Category("1", "One renamed", "https://art/1.jpg")


# -- one connection, many coroutines -----------------------------------------------------------------------


async def test_a_read_never_sees_another_coroutines_open_transaction(db):
    written = asyncio.Event()
    finish = asyncio.Event()

    class Abandoned(Exception):
        pass

    async def half_done_write() -> None:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, announce_channel_id, updated_at) "
                "VALUES (1, 10, '2026-11-27T12:00:00+00:00')"
            )
            written.set()
            await finish.wait()
            raise Abandoned

    writing = asyncio.create_task(half_done_write())
    await written.wait()
    reading = asyncio.create_task(db.get_announce_channel(1))
    await asyncio.wait({reading}, timeout=0.2)  # every chance to run while the transaction is open
    finish.set()
    with pytest.raises(Abandoned):
        await writing
    assert await reading is None  # it never saw the uncommitted row
    assert await db.get_announce_channel(1) is None  # and after the rollback the row never existed


async def test_the_subscription_limit_holds_under_concurrent_adds(db):
    streamers = [Streamer(str(1000 + i), f"user{i}", f"User{i}") for i in range(40)]
    results = await asyncio.gather(
        *(db.add_subscription(1, 10, streamer, max_per_guild=30) for streamer in streamers), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, SubscriptionLimitReached)]
    assert len(refused) == 10
    assert {r.limit for r in refused} == {30}
    assert len([r for r in results if not isinstance(r, BaseException)]) == 30
    assert await db.count_subscriptions(1) == 30
    assert len(await db.monitored_user_ids()) == 30  # a refused add leaves no streamer behind
    # Another guild counts its own subscriptions; no limit means none.
    await db.add_subscription(2, 20, streamers[0], max_per_guild=30)
    await db.add_subscription(1, 11, streamers[0])
    assert await db.count_subscriptions(1) == 31


async def test_a_failure_report_does_not_overwrite_a_repair(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    # Posting into channel 10 fails; before the failure is recorded an admin moves the subscription.
    await db.set_subscription_channel(sub.id, 12)
    await db.set_subscription_error(sub.id, "missing Send Messages", channel_id=10)
    assert (await db.get_subscription(1, sub.id)).last_error is None
    await db.update_subscription(sub.id, SubscriptionUpdate(channel_id=13))
    await db.set_subscription_error(sub.id, "missing Send Messages", channel_id=12)
    assert (await db.get_subscription(1, sub.id)).last_error is None
    # A failure in the channel it still points at is recorded.
    await db.set_subscription_error(sub.id, "missing Send Messages", channel_id=13)
    assert (await db.get_subscription(1, sub.id)).last_error == "missing Send Messages"


# -- a corrupt game filter fails closed --------------------------------------------------------------------


@pytest.mark.parametrize(
    "stored",
    [
        "{not json",
        '{"id": "516575", "name": "VALORANT"}',
        "[1]",
        '["516575"]',
        '[{"id": "516575"}]',
        '[{"id": "516575", "name": "VALORANT"}, "x"]',
        '[{"id": "516575", "name": "VALORANT", "x": NaN}]',
        "",
    ],
)
async def test_an_unreadable_game_filter_announces_nothing_and_says_so(db, stored):
    valorant = Category("516575", "VALORANT")
    sub = await db.add_subscription(1, 10, SHROUD, games=[valorant])
    other = await db.add_subscription(1, 11, SHROUD)
    fine = await db.add_subscription(2, 20, SHROUD, games=[valorant])
    await write_outside(db, "UPDATE subscriptions SET games = ? WHERE id = ?", (stored, sub.id))
    await db.apply_live_changes([live(SHROUD, "s1", game_id="516575")], {}, [])
    assert [p.subscription_id for p in await db.pending_announcements()] == [other.id, fine.id]
    found = await db.get_subscription(1, sub.id)
    assert found.games_unreadable is True
    assert found.games == ()
    assert [(r.subscription.id, r.subscription.games_unreadable) for r in await db.guild_streamers(1)] == [
        (sub.id, True),
        (other.id, False),
    ]
    assert (await db.get_subscription(2, fine.id)).games == (valorant,)
    # Setting the filter again repairs it.
    await db.update_subscription(sub.id, SubscriptionUpdate(games=[valorant]))
    assert (await db.get_subscription(1, sub.id)).games_unreadable is False
    assert [p.subscription_id for p in await db.pending_announcements()] == [sub.id, other.id, fine.id]


# -- one representation of time ----------------------------------------------------------------------------

STORED_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


async def stored_times(db: Database) -> list[str]:
    rows = await committed(
        db,
        """
            SELECT updated_at FROM guild_settings UNION ALL SELECT updated_at FROM streamers
            UNION ALL SELECT missing_since FROM streamers UNION ALL SELECT created_at FROM subscriptions
            UNION ALL SELECT started_at FROM live_streams UNION ALL SELECT last_seen_at FROM live_streams
            UNION ALL SELECT created_at FROM announcements UNION ALL SELECT started_at FROM announcements
            UNION ALL SELECT card_updated_at FROM announcements UNION ALL SELECT ended_at FROM announcements
            UNION ALL SELECT closed_at FROM announcements UNION ALL SELECT updated_at FROM games
            UNION ALL SELECT last_seen_at FROM guilds_seen
            """,
    )
    return [text for (text,) in rows if text is not None]


async def test_every_time_is_written_one_way_from_the_injected_clock(open_store):
    moment = datetime(2026, 11, 27, 12, 0, 0, 987654, tzinfo=UTC)
    db = await open_store(clock=lambda: moment)
    try:
        await db.set_announce_channel(1, 10)
        sub = await db.add_subscription(1, 10, SHROUD, games=[Category("516575", "VALORANT", "https://art")])
        await db.add_subscription(1, 10, POKI)
        # Twitch's time of another offset, with a fraction of a second: stored in UTC, to the second.
        started = datetime(2026, 11, 27, 13, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
        stream = live(SHROUD, "s1", started_at=started, game_id="516575")
        await db.apply_live_changes([stream], {}, [])
        [pending] = await db.pending_announcements()
        await db.record_announcement(pending, 5, stream)
        await db.refresh_streamers([SHROUD], [POKI.twitch_user_id])
        await db.mark_guilds_seen([1], moment)
        times = await stored_times(db)
        assert set(times) == {"2026-11-27T12:00:00+00:00", "2026-11-27T12:30:15+00:00"}
        assert all(STORED_TIME.fullmatch(t) for t in times)
        [state] = (await db.live_streams()).values()
        assert state.started_at == started.replace(microsecond=0)
        assert state.started_at.tzinfo is UTC
        await db.apply_live_changes([], {}, [SHROUD.twitch_user_id], ended_streams=["s1"])
        [card] = await db.cards_to_close()
        assert (card.started_at, card.ended_at) == (started.replace(microsecond=0), moment.replace(microsecond=0))
        assert card.ended_at.tzinfo is UTC
        await db.close_cards([(sub.id, "s1")])
        assert all(STORED_TIME.fullmatch(t) for t in await stored_times(db))
        [poki] = await db.find_subscriptions(1, "pokimane")
        assert poki.missing_since == moment.replace(microsecond=0)
        # The times the core compares with are written the same way: to the second, in UTC.
        assert await db.cards_to_update(moment) == []
        with pytest.raises(ValueError, match="timezone-aware"):
            await db.prune_announcements(datetime(2026, 11, 27))
    finally:
        await db.close()


# -- one bot per database file -----------------------------------------------------------------------------


async def test_sqlite_a_second_open_of_the_same_file_is_refused_until_the_first_closes(tmp_path):
    path = tmp_path / "bot.db"
    lock = tmp_path / "bot.db.lock"
    first = await Database.open(str(path))
    try:
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(DatabaseLocked, match=rf"in use by another running bot \(pid {os.getpid()}\)") as refused:
            await Database.open(str(path))
        assert str(path) in str(refused.value)
        assert "DATABASE_PATH" in str(refused.value)
        # Another spelling of the same file is the same file.
        (tmp_path / "link.db").symlink_to(path)
        with pytest.raises(DatabaseLocked):
            await Database.open(str(tmp_path / "link.db"))
        await first.add_subscription(1, 10, SHROUD)  # the refusals left the running one alone
    finally:
        await first.close()
    assert lock.read_text() == ""
    second = await Database.open(str(path))
    try:
        assert [s.streamer for s in await second.guild_subscriptions(1)] == [SHROUD]
    finally:
        await second.close()


async def test_sqlite_a_failed_open_releases_the_file(tmp_path):
    path = tmp_path / "bot.db"
    path.write_bytes(b"this is not a database" * 100)
    for _ in range(2):  # the second attempt is refused for the file, not for a lock the first left behind
        with pytest.raises(DatabaseError, match="not a usable SQLite database"):
            await Database.open(str(path))


async def test_sqlite_in_memory_databases_share_nothing_so_need_no_lock():
    first = await Database.open(":memory:")
    second = await Database.open(":memory:")
    try:
        await first.add_subscription(1, 10, SHROUD)
        assert await second.guild_ids() == set()
    finally:
        await first.close()
        await second.close()


PROJECT_ROOT = Path(__file__).resolve().parent.parent
OPEN_IN_ANOTHER_PROCESS = """
import asyncio, sys
from database import Database, DatabaseLocked

async def main(path):
    try:
        db = await Database.open(path)
    except DatabaseLocked as exc:
        print(exc)
        return 3
    await db.close()
    return 0

sys.exit(asyncio.run(main(sys.argv[1])))
"""


async def open_in_another_process(path: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OPEN_IN_ANOTHER_PROCESS,
        str(path),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, output.decode()


async def test_sqlite_a_second_process_on_the_same_file_is_refused_and_told_the_pid(tmp_path):
    path = tmp_path / "bot.db"
    db = await Database.open(str(path))
    try:
        code, output = await open_in_another_process(path)
        assert code == 3, output
        assert f"pid {os.getpid()}" in output
        assert str(path) in output
    finally:
        await db.close()
    code, output = await open_in_another_process(path)
    assert code == 0, output


# -- guild presence ----------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


async def test_guilds_keep_their_last_sighting_and_a_short_ready_forgets_nothing(open_store):
    db = await open_store(clock=lambda: T0)
    try:
        # A command from a guild is a sighting: every guild holding data has one.
        await db.add_subscription(1, 10, SHROUD)
        await db.set_announce_channel(2, 20)
        await db.update_guild_settings(3, ping="here")
        assert await db.absent_guilds(T0) == []
        assert await db.absent_guilds(T0 + timedelta(seconds=1)) == [1, 2, 3]
        # READY lists guilds 1 and 2 (and 4, which holds nothing): 3 keeps its older sighting and its data.
        await db.mark_guilds_seen([1, 2, 4, 2], T0 + timedelta(hours=1))
        assert await db.absent_guilds(T0 + timedelta(minutes=30)) == [3]
        assert await db.guild_ids() == {1, 2, 3}
        # A READY listing nothing changes nothing; a late, older sighting never moves one back.
        await db.mark_guilds_seen([], T0 + timedelta(days=1))
        await db.mark_guilds_seen([1], T0 - timedelta(days=1))
        assert await db.absent_guilds(T0 + timedelta(minutes=30)) == [3]
        # The explicit removal forgets the guild, sighting included.
        await db.delete_guild(3)
        assert await db.absent_guilds(T0 + timedelta(days=1)) == [1, 2]
        assert await db.guild_ids() == {1, 2}
        # Data written without a sighting (another tool) counts as never seen.
        await write_outside(
            db, "INSERT INTO guild_settings (guild_id, updated_at) VALUES (5, '2026-11-27T12:00:00+00:00')"
        )
        assert await db.absent_guilds(T0 - timedelta(days=30)) == [5]
    finally:
        await db.close()


async def test_sqlite_migration_counts_every_guild_held_as_seen_now(tmp_path):
    path = tmp_path / "v3.db"
    conn = _build(path, 3)
    t = "2026-01-01T00:00:00+00:00"
    conn.execute("INSERT INTO guild_settings (guild_id, announce_channel_id, updated_at) VALUES (1, 10, ?)", (t,))
    conn.execute("INSERT INTO streamers VALUES ('37402112', 'shroud', 'shroud', '', ?, NULL)", (t,))
    conn.execute(
        "INSERT INTO subscriptions (guild_id, twitch_user_id, channel_id, created_at) "
        "VALUES (1, '37402112', 10, ?), (2, '37402112', 20, ?)",
        (t, t),
    )
    conn.commit()
    conn.close()
    before = datetime.now(UTC).replace(microsecond=0)
    db = await Database.open(str(path))
    try:
        assert await db.absent_guilds(before) == []
        assert await db.absent_guilds(datetime.now(UTC) + timedelta(seconds=2)) == [1, 2]
        assert all(STORED_TIME.fullmatch(t) for t in await stored_times(db))
    finally:
        await db.close()


async def test_subscription_ids_are_never_reused(db):
    # The id is part of the message nonce: a reused one got the old card back from Discord's nonce check.
    first = await db.add_subscription(1, 10, SHROUD)
    await db.remove_subscription_by_id(1, first.id)
    again = await db.add_subscription(1, 10, SHROUD)
    assert again.id > first.id


async def test_a_cancelled_write_leaves_no_transaction_open(db):
    task = asyncio.create_task(db.set_announce_channel(1, 10))
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await db.set_announce_channel(1, 11)  # before: "cannot start a transaction within a transaction"
    assert await db.get_announce_channel(1) == 11


async def test_a_deleted_channel_whose_streamer_the_default_also_announces_is_marked_not_crashed(db):
    await db.set_announce_channel(1, 10)
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 12, SHROUD)
    moved, marked = await db.channel_deleted(1, 12, "deleted")
    assert (moved, marked) == (0, 1)
    assert sorted((s.channel_id, s.last_error) for s in await db.guild_subscriptions(1)) == [
        (10, None),
        (12, "deleted"),
    ]
    assert await db.move_guild_subscriptions(1, [12], 10) == 0


async def test_delete_guild_with_a_cutoff_spares_a_guild_seen_since(db):
    now = datetime.now(UTC)
    await db.add_subscription(1, 10, SHROUD)
    await db.mark_guilds_seen([1], now)
    assert await db.delete_guild(1, unseen_since=now - timedelta(days=14)) is False
    assert len(await db.guild_subscriptions(1)) == 1
    assert await db.delete_guild(1, unseen_since=now + timedelta(seconds=1)) is True
    assert await db.guild_subscriptions(1) == []


# -- EventSub: bot state and push states (migration 6) -----------------------------------------------------


async def test_sqlite_migrates_a_version_5_database_keeping_everything_and_adding_push_state(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    conn = _build(path, 5)
    t = "2026-01-01T00:00:00+00:00"
    conn.execute("INSERT INTO guild_settings (guild_id, announce_channel_id, updated_at) VALUES (1, 10, ?)", (t,))
    conn.execute("INSERT INTO streamers VALUES ('37402112', 'shroud', 'shroud', 'https://a.png', ?, NULL)", (t,))
    conn.execute(
        "INSERT INTO subscriptions (id, guild_id, twitch_user_id, channel_id, created_at, ping) "
        "VALUES (41, 1, '37402112', 10, ?, 'here')",
        (t,),
    )
    conn.execute(
        "INSERT INTO live_streams VALUES ('37402112', 's-live', 'hi', 'VALORANT', 5, ?, 'https://x/{width}.jpg', 0, ?, "
        "'516575')",
        (t, t),
    )
    conn.execute(
        "INSERT INTO announcements (subscription_id, stream_id, twitch_user_id, guild_id, channel_id, message_id, "
        "created_at) VALUES (41, 's-live', '37402112', 1, 10, 111, ?)",
        (t,),
    )
    conn.commit()
    conn.close()

    db = await Database.open(str(path))
    try:
        assert await db.pragma("user_version") == SCHEMA_VERSION
        assert await db.pragma("foreign_key_check") == []
        [sub] = await db.guild_subscriptions(1)
        assert (sub.id, sub.channel_id, sub.ping, sub.streamer.profile_image_url) == (41, 10, "here", "https://a.png")
        assert sub.push_state is None  # the new column: NULL, pushed (or being set up)
        assert (await db.live_streams())["37402112"].stream_id == "s-live"
        assert await db.pending_announcements() == []
        assert await db.push_states() == {}
        assert await db.get_state("eventsub_conduit_id") is None
        await db.set_state("eventsub_conduit_id", "c-1")
        await db.set_push_states({"37402112": "poll_only"})
    finally:
        await db.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT key, value FROM bot_state").fetchall() == [("eventsub_conduit_id", "c-1")]
        assert check.execute("SELECT push_state FROM streamers").fetchall() == [("poll_only",)]
    finally:
        check.close()


async def test_bot_state_round_trips_and_is_forgotten_with_none(open_store) -> None:
    db = await open_store()
    try:
        assert await db.get_state("eventsub_conduit_id") is None
        await db.set_state("eventsub_conduit_id", "bfcfc993-26b1-b876-44d9-afe75a379dac")
        await db.set_state("other", "x")
        await db.set_state("eventsub_conduit_id", "26b1c993-new")  # replaced, not added
        assert await db.get_state("eventsub_conduit_id") == "26b1c993-new"
        await db.set_state("never-set", None)  # forgetting what is not there is fine
    finally:
        await db.close()
    db = await open_store()  # it survives a restart: that is what it is for
    try:
        assert await db.get_state("eventsub_conduit_id") == "26b1c993-new"
        await db.set_state("eventsub_conduit_id", None)
        assert await db.get_state("eventsub_conduit_id") is None
        assert await db.get_state("other") == "x"
    finally:
        await db.close()


async def test_push_states_round_trip_and_none_clears(db: Database) -> None:
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 10, POKI)
    assert await db.push_states() == {}
    await db.set_push_states({SHROUD.twitch_user_id: "poll_only", POKI.twitch_user_id: "user_removed"})
    assert await db.push_states() == {SHROUD.twitch_user_id: "poll_only", POKI.twitch_user_id: "user_removed"}
    await db.set_push_states({SHROUD.twitch_user_id: None, "999": "poll_only"})  # an unknown id is ignored
    assert await db.push_states() == {POKI.twitch_user_id: "user_removed"}
    await db.set_push_states({})
    assert await db.push_states() == {POKI.twitch_user_id: "user_removed"}


async def test_push_state_is_shown_on_every_subscription_row_of_the_streamer(db: Database) -> None:
    first = await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 11, SHROUD)
    await db.add_subscription(2, 20, SHROUD)
    await db.add_subscription(1, 10, POKI)
    await db.set_push_states({SHROUD.twitch_user_id: "poll_only"})

    states = {(s.guild_id, s.channel_id, s.streamer.login): s.push_state for s in await db.guild_subscriptions(1)}
    assert states == {(1, 10, "shroud"): "poll_only", (1, 11, "shroud"): "poll_only", (1, 10, "pokimane"): None}
    assert [s.push_state for s in await db.guild_subscriptions(2)] == ["poll_only"]
    rows = {row.subscription.streamer.login: row.subscription.push_state for row in await db.guild_streamers(1)}
    assert rows == {"shroud": "poll_only", "pokimane": None}
    found = await db.get_subscription(1, first.id)
    assert found is not None
    assert found.push_state == "poll_only"
    assert {s.push_state for s in await db.find_subscriptions(1, "shroud")} == {"poll_only"}
    assert [s.push_state for s in await db.search_guild_subscriptions(1, "shr")] == ["poll_only"] * 2


async def test_a_new_follow_keeps_the_streamers_push_state(db: Database) -> None:
    await db.add_subscription(1, 10, SHROUD)
    await db.set_push_states({SHROUD.twitch_user_id: "poll_only"})
    await db.add_subscription(2, 20, Streamer(SHROUD.twitch_user_id, "shroud", "Shroud", "https://new.png"))
    assert await db.push_states() == {SHROUD.twitch_user_id: "poll_only"}  # the upsert left it alone
    await db.update_streamer_names([Streamer(SHROUD.twitch_user_id, "shroud2", "Shroud2")])
    assert await db.push_states() == {SHROUD.twitch_user_id: "poll_only"}


async def test_the_last_unfollow_drops_the_push_state_with_the_streamer(db: Database) -> None:
    first = await db.add_subscription(1, 10, SHROUD)
    second = await db.add_subscription(2, 20, SHROUD)
    await db.add_subscription(1, 10, POKI)
    await db.set_push_states({SHROUD.twitch_user_id: "user_removed", POKI.twitch_user_id: "poll_only"})

    await db.remove_subscription_by_id(1, first.id)
    assert await db.push_states() == {SHROUD.twitch_user_id: "user_removed", POKI.twitch_user_id: "poll_only"}
    await db.remove_subscription_by_id(2, second.id)
    assert await db.push_states() == {POKI.twitch_user_id: "poll_only"}
    assert SHROUD.twitch_user_id not in await db.monitored_user_ids()

    again = await db.add_subscription(1, 10, SHROUD)  # followed again: a new row, pushed until told otherwise
    assert again.push_state is None
    assert [s.push_state for s in await db.find_subscriptions(1, "shroud")] == [None]
    assert await db.push_states() == {POKI.twitch_user_id: "poll_only"}


async def test_deleting_a_guild_drops_the_push_states_of_streamers_only_it_followed(db: Database) -> None:
    await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 10, POKI)
    await db.add_subscription(2, 20, POKI)
    await db.set_push_states({SHROUD.twitch_user_id: "poll_only", POKI.twitch_user_id: "poll_only"})
    assert await db.delete_guild(1) is True
    assert await db.push_states() == {POKI.twitch_user_id: "poll_only"}


# -- stream history (migration 7) --------------------------------------------------------------------------


class Clock:
    """The database's clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def seen(streamer: Streamer, stream_id: str, viewers: int | None, game: str = "VALORANT", started=STARTED):
    from twitch_notifier.models import StreamObservation

    return StreamObservation(streamer.twitch_user_id, stream_id, started, game.lower()[:4], game, viewers)


@pytest.fixture
async def clocked(open_store):
    clock = Clock(STARTED + timedelta(minutes=1))
    database = await open_store(clock=clock)
    await database.add_subscription(1, 10, SHROUD)
    return database, clock


async def test_sqlite_migrates_a_version_6_database_and_records_a_stream_already_live(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    conn = _build(path, 6)
    t = "2026-01-01T00:00:00+00:00"
    conn.execute("INSERT INTO streamers VALUES ('37402112', 'shroud', 'shroud', '', ?, NULL, NULL)", (t,))
    conn.execute(
        "INSERT INTO subscriptions (guild_id, twitch_user_id, channel_id, created_at) VALUES (1, '37402112', 10, ?)",
        (t,),
    )
    conn.execute(
        "INSERT INTO live_streams VALUES ('37402112', 's-live', 'hi', 'VALORANT', 5, ?, '', 0, ?, 'valo', NULL)",
        (STARTED.isoformat(), t),
    )
    conn.commit()
    conn.close()
    db = await Database.open(str(path), clock=lambda: STARTED + timedelta(hours=2))
    try:
        assert await db.pragma("user_version") == SCHEMA_VERSION
        assert await db.streamer_history("37402112", None) == []
        # The first sighting after the upgrade: the stream began two hours ago, its category counts from then.
        await db.apply_live_changes([], {}, [], observations=[seen(SHROUD, "s-live", 50)])
        [history] = await db.streamer_history("37402112", None)
        assert (history.started_at, history.last_seen_at, history.ended_at) == (
            STARTED,
            STARTED + timedelta(hours=2),
            None,
        )
        assert [(s.offset, s.viewers) for s in history.samples] == [(7200, 50)]
        assert [(c.offset, c.game_name) for c in history.categories] == [(0, "VALORANT")]
        assert await db.pragma("foreign_key_check") == []
    finally:
        await db.close()


async def test_history_rides_in_the_live_changes_write(clocked):
    db, clock = clocked
    before = db.query_count
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [], observations=[seen(SHROUD, "s1", 100)])
    clock.advance(90)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [], observations=[seen(SHROUD, "s1", 250)])
    clock.advance(30)  # a push: the new category at once, no viewer count
    await db.apply_live_changes([], {}, [], observations=[seen(SHROUD, "s1", None, "Just Chatting")])
    clock.advance(60)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [], observations=[seen(SHROUD, "s1", 80, "Just Chatting")])
    assert db.query_count - before == 4  # one statement batch per observation, history included
    [history] = await db.streamer_history(SHROUD.twitch_user_id, None)
    assert [(s.offset, s.viewers) for s in history.samples] == [(60, 100), (150, 250), (240, 80)]
    assert [(c.offset, c.game_name) for c in history.categories] == [(0, "VALORANT"), (180, "Just Chatting")]
    assert (history.peak_viewers, history.last_seen_at, history.ended_at) == (250, clock.now, None)
    clock.advance(90)
    await db.apply_live_changes([], {}, [SHROUD.twitch_user_id], ended_streams=["s1"])
    [history] = await db.streamer_history(SHROUD.twitch_user_id, None)
    assert history.ended_at == clock.now - timedelta(seconds=90)  # at its last sighting, not when it was noticed
    assert (await db.stream_histories(["s1", "unknown"])).keys() == {"s1"}


async def test_a_stream_id_that_comes_back_reopens_its_history(clocked):
    db, clock = clocked
    await db.apply_live_changes([], {}, [], observations=[seen(SHROUD, "s1", 10)])
    await db.apply_live_changes([], {}, [], ended_streams=["s1"])
    clock.advance(1800)
    await db.apply_live_changes([], {}, [], observations=[seen(SHROUD, "s1", 30)])
    [history] = await db.streamer_history(SHROUD.twitch_user_id, None)
    assert history.ended_at is None
    assert [s.viewers for s in history.samples] == [10, 30]


async def test_observations_of_a_streamer_nobody_follows_are_dropped_without_failing_the_rest(clocked):
    db, _ = clocked
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [], observations=[seen(POKI, "p1", 5), seen(SHROUD, "s1", 7)])
    assert await db.streamer_history(POKI.twitch_user_id, None) == []
    assert len(await db.streamer_history(SHROUD.twitch_user_id, None)) == 1
    assert (await db.live_streams()).keys() == {SHROUD.twitch_user_id}


async def test_the_last_unfollow_takes_the_history_along(clocked):
    db, _ = clocked
    sub = (await db.guild_subscriptions(1))[0]
    await db.apply_live_changes([], {}, [], observations=[seen(SHROUD, "s1", 7)])
    await db.remove_subscription_by_id(1, sub.id)
    counts = [
        (await committed(db, f"SELECT count(*) FROM {t}"))[0][0]  # noqa: S608 - fixed names
        for t in ("stream_history", "stream_samples", "stream_categories")
    ]
    assert counts == [0, 0, 0]


async def test_guild_history_lists_each_followed_streamer_once_with_their_streams(clocked):
    db, clock = clocked
    await db.add_subscription(1, 11, SHROUD)  # a second channel
    await db.add_subscription(1, 10, POKI)
    await db.add_subscription(2, 20, Streamer("9", "other", "Other"))
    await db.apply_live_changes(
        [],
        {},
        [],
        observations=[seen(SHROUD, "s1", 7), seen(POKI, "p1", 9), seen(Streamer("9", "other", "Other"), "o1", 1)],
    )
    streamers, histories = await db.guild_history(1, clock.now - timedelta(days=7))
    assert [s.login for s in streamers] == ["pokimane", "shroud"]
    assert histories.keys() == {SHROUD.twitch_user_id, POKI.twitch_user_id}
    assert all(h.samples == () for items in histories.values() for h in items)  # the ranking needs no samples
    assert (await db.guild_history(1, clock.now + timedelta(days=1)))[1] == {}
    assert await db.last_stream_started(POKI.twitch_user_id) == STARTED
    assert await db.last_stream_started("nobody") is None


async def test_retention_forgets_old_streams_and_ends_open_ones_no_longer_live(clocked):
    db, clock = clocked
    await db.apply_live_changes([], {}, [], observations=[seen(SHROUD, "old", 5)])
    await db.apply_live_changes([], {}, [], ended_streams=["old"])
    clock.advance(40 * 86_400)
    await db.apply_live_changes([], {}, [], observations=[seen(SHROUD, "open", 5)])  # never in live_streams
    assert await db.prune_history(clock.now - timedelta(days=30)) == 1
    [left] = await db.streamer_history(SHROUD.twitch_user_id, None)
    assert (left.stream_id, left.ended_at) == ("open", left.last_seen_at)


async def test_thinning_replaces_the_samples_and_keeps_the_totals(clocked):
    from twitch_notifier.core.history import thin

    db, clock = clocked
    for _ in range(40):
        await db.apply_live_changes([live(SHROUD, "s1")], {}, [], observations=[seen(SHROUD, "s1", 100)])
        clock.advance(90)
    await db.apply_live_changes([], {}, [SHROUD.twitch_user_id], ended_streams=["s1"])
    assert await db.history_to_thin(clock.now - timedelta(days=1), 10) == []  # not old enough yet
    clock.advance(31 * 86_400)
    [old] = await db.history_to_thin(clock.now - timedelta(days=30), 10)
    assert len(old.samples) == 40
    await db.store_thinned([thin(old)])
    [stored] = await db.streamer_history(SHROUD.twitch_user_id, None)
    assert len(stored.samples) == 6  # one per 10 minutes of an hour
    assert (stored.viewer_seconds, stored.observed_seconds) == (100 * 39 * 90, 39 * 90)
    assert await db.history_to_thin(clock.now - timedelta(days=30), 10) == []  # done once


HISTORY_OBJECTS = (
    "stream_history",
    "sqlite_autoindex_stream_history_1",
    "ix_stream_history_user",
    "stream_samples",
    "stream_categories",
)


def history_bytes(path: Path) -> int:
    """Bytes the history's tables and indexes fill in their pages (SQLite's dbstat), free space left out."""
    conn = sqlite3.connect(path)
    try:
        marks = ", ".join("?" for _ in HISTORY_OBJECTS)
        row = conn.execute(
            f"SELECT sum(pgsize - unused) FROM dbstat WHERE name IN ({marks})",  # noqa: S608 - fixed names
            HISTORY_OBJECTS,
        ).fetchone()
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table to measure with")
    finally:
        conn.close()
    return row[0] or 0


async def test_sqlite_bytes_per_stream_hour_raw_and_thinned(tmp_path):
    """Ten streamers live four hours each, a poll every 90 s, one change of category: what a stream-hour of
    history costs, as recorded and once thinned (bench/stats.py measures a year of it)."""
    from twitch_notifier.core.history import thin

    clock = Clock(STARTED)
    path = tmp_path / "bot.db"
    db = await Database.open(str(path), clock=clock)
    streamers = [Streamer(str(40_000_000 + i), f"streamer{i}", f"Streamer{i}") for i in range(10)]
    try:
        for streamer in streamers:
            await db.add_subscription(1, 10, streamer)
        stream_ids = [f"31{s.twitch_user_id}" for s in streamers]  # Twitch's stream ids: 11 digits or so
        for poll in range(160):
            game = "VALORANT" if poll < 80 else "Just Chatting"
            await db.apply_live_changes(
                [live(s, i, viewer_count=1000 + poll) for s, i in zip(streamers, stream_ids, strict=True)],
                {},
                [],
                observations=[seen(s, i, 1000 + poll, game) for s, i in zip(streamers, stream_ids, strict=True)],
            )
            clock.advance(90)
        await db.apply_live_changes([], {}, [s.twitch_user_id for s in streamers], ended_streams=stream_ids)
        raw = history_bytes(path) / 40
        clock.advance(31 * 86_400)
        await db.store_thinned(thin(h) for h in await db.history_to_thin(clock.now - timedelta(days=30), 100))
        thinned = history_bytes(path) / 40
    finally:
        await db.close()
    print(f"history: {raw:.0f} bytes per stream-hour as recorded, {thinned:.0f} once thinned")  # noqa: T201
    assert raw < 1000
    assert thinned < raw / 3


# -- several processes: announcement claims (migration 8) and shard scopes ---------------------------------


def guild_on(shard: int, n: int = 0) -> int:
    """A guild id with (guild_id >> 22) == shard + 4n: on shard `shard` of 4 (and on `shard % 2` of 2)."""
    return ((shard + 4 * n) << 22) | 12345


async def two_live_subscriptions(db: Database) -> list[PendingAnnouncement]:
    # `clocked` follows SHROUD in guild 1 (shard 0): POKI is followed on shards 0 and 1 only.
    await db.add_subscription(guild_on(0), 10, POKI)
    await db.add_subscription(guild_on(1), 20, POKI)
    await db.apply_live_changes([live(POKI, "p1")], {}, [])
    pending = await db.pending_announcements()
    assert len(pending) == 2
    return pending


def pairs(pending: list[PendingAnnouncement]) -> set[tuple[int, str]]:
    return {(p.subscription_id, p.stream_id) for p in pending}


async def test_a_claim_is_its_owners_until_it_expires(clocked):
    db, clock = clocked
    pending = await two_live_subscriptions(db)
    lease = timedelta(seconds=30)
    assert await db.claim_announcements(pending, "a", clock.now + lease) == pairs(pending)
    assert await db.claim_announcements(pending, "b", clock.now + lease) == set()  # held by a
    clock.advance(20)
    assert await db.claim_announcements(pending, "a", clock.now + lease) == pairs(pending)  # renewed by its owner
    clock.advance(20)
    assert await db.claim_announcements(pending, "b", clock.now + lease) == set()  # the renewal still holds
    clock.advance(11)
    assert await db.claim_announcements(pending[:1], "b", clock.now + lease) == pairs(pending[:1])  # expired: taken
    assert await db.claim_announcements(pending, "a", clock.now + lease) == pairs(pending[1:])
    assert sorted(await committed(db, "SELECT owner FROM announcement_claims")) == [("a",), ("b",)]


async def test_claiming_is_one_statement_whatever_the_count(clocked):
    db, clock = clocked
    subs = [await db.add_subscription(2, 20 + i, Streamer(str(i), f"u{i}", f"U{i}")) for i in range(25)]
    await db.apply_live_changes([live(sub.streamer, f"st{i}") for i, sub in enumerate(subs)], {}, [])
    pending = await db.pending_announcements()
    before = db.query_count
    held = await db.claim_announcements(pending + pending[:3], "a", clock.now + timedelta(minutes=1))  # repeats too
    assert db.query_count - before == 1
    assert held == pairs(pending)
    assert len(held) == 25
    before = db.query_count
    assert await db.claim_announcements([], "a", clock.now) == set()
    assert db.query_count == before


async def test_an_announced_pair_is_never_claimed_again_and_takes_its_claim_along(clocked):
    db, clock = clocked
    first, second = await two_live_subscriptions(db)
    until = clock.now + timedelta(minutes=1)
    assert await db.claim_announcements([first, second], "a", until) == pairs([first, second])
    await db.record_announcement(first, 555)
    assert await committed(db, "SELECT subscription_id FROM announcement_claims") == [(second.subscription_id,)]
    clock.advance(3600)  # every claim long expired
    assert await db.claim_announcements([first], "a", clock.now + timedelta(minutes=1)) == set()
    assert await db.claim_announcements([first], "b", clock.now + timedelta(minutes=1)) == set()
    assert await db.claim_announcements([second], "b", clock.now + timedelta(minutes=1)) == pairs([second])


async def test_pruning_forgets_claims_that_expired_long_ago_without_an_announcement(clocked):
    db, clock = clocked
    first, second = await two_live_subscriptions(db)
    await db.claim_announcements([first], "crashed", clock.now + timedelta(minutes=2))
    clock.advance(3600)
    await db.claim_announcements([second], "alive", clock.now + timedelta(minutes=2))
    await db.prune_announcements(clock.now - timedelta(minutes=30))
    assert await committed(db, "SELECT owner FROM announcement_claims") == [("alive",)]


async def test_claims_of_a_removed_subscription_go_with_it(clocked):
    db, clock = clocked
    first, second = await two_live_subscriptions(db)
    until = clock.now + timedelta(minutes=1)
    await db.claim_announcements([first, second], "a", until)
    await db.remove_subscription_by_id(first.guild_id, first.subscription_id)
    assert await committed(db, "SELECT subscription_id FROM announcement_claims") == [(second.subscription_id,)]
    assert await db.claim_announcements([first], "b", until) == set()  # a subscription that is gone


async def test_drop_claims_forgets_other_owners_claims_on_the_scopes_shards_only(clocked):
    db, clock = clocked
    on_0, on_1 = await two_live_subscriptions(db)
    until = clock.now + timedelta(minutes=5)
    await db.claim_announcements([on_0, on_1], "gone", until)
    assert await db.drop_claims(ShardScope(2, (0,)), except_owner="taker") == 1
    assert await db.claim_announcements([on_0, on_1], "taker", until) == pairs([on_0])  # on_1 is not its to take
    assert await db.drop_claims(ShardScope(2, (0,)), except_owner="taker") == 0  # its own claims stay
    assert await db.drop_claims(ShardScope(2, (0, 1)), except_owner="taker") == 1
    assert await committed(db, "SELECT owner FROM announcement_claims") == [("taker",)]


async def test_a_shard_scope_filters_pending_announcements_and_cards(clocked):
    db, clock = clocked
    guilds = [guild_on(0), guild_on(1), guild_on(2), guild_on(0, n=3), guild_on(3, n=5)]
    subs = [await db.add_subscription(guild, 10, POKI) for guild in guilds]
    await db.apply_live_changes([live(POKI, "p1")], {}, [])
    scopes = [ShardScope(4, (0,)), ShardScope(4, (1, 3)), ShardScope(2, (0,)), ShardScope(1, (0,)), ShardScope(4, ())]
    every = {p.subscription_id for p in await db.pending_announcements()}
    assert every == {sub.id for sub in subs}
    for scope in scopes:
        expected = {sub.id for sub in subs if scope.holds(sub.guild_id)}
        assert {p.subscription_id for p in await db.pending_announcements(scope)} == expected, scope
    assert {p.subscription_id for p in await db.pending_announcements(ShardScope(4, (1, 3)))} == {
        subs[1].id,
        subs[4].id,
    }
    for pending in await db.pending_announcements():
        await db.record_announcement(pending, 900 + pending.subscription_id, live(POKI, "p1"))
    await db.apply_live_changes([live(POKI, "p1", title="changed")], {}, [])
    later = clock.now + timedelta(hours=1)
    assert {c.subscription_id for c in await db.cards_to_update(later)} == every
    for scope in scopes:
        expected = {sub.id for sub in subs if scope.holds(sub.guild_id)}
        assert {c.subscription_id for c in await db.cards_to_update(later, scope)} == expected, scope
    await db.apply_live_changes([], {}, [POKI.twitch_user_id], ended_streams=["p1"])
    assert {c.subscription_id for c in await db.cards_to_close()} == every
    for scope in scopes:
        expected = {sub.id for sub in subs if scope.holds(sub.guild_id)}
        assert {c.subscription_id for c in await db.cards_to_close(scope)} == expected, scope


async def test_notify_is_sent_on_postgresql_and_nothing_on_sqlite(db):
    before = db.query_count
    await db.notify("twitch_notifier_test", "payload")
    await db.notify("twitch_notifier_test")
    assert db.query_count - before == (2 if db.backend == "postgresql" else 0)


async def test_pragmas_are_sqlites_only(db):
    assert db.backend in ("sqlite", "postgresql")
    assert await db.schema_version() == SCHEMA_VERSION
    if db.backend == "sqlite":
        assert await db.pragma("user_version") == SCHEMA_VERSION
    else:
        with pytest.raises(DatabaseError, match="SQLite"):
            await db.pragma("user_version")


# -- live scheduled events (issue 14) ----------------------------------------------------------------------


async def test_live_event_targets_are_one_per_guild_and_stream_where_the_option_is_on(db):
    subs = [
        await db.add_subscription(1, 10, SHROUD),
        await db.add_subscription(1, 11, SHROUD),  # a second channel of the same guild
        await db.add_subscription(2, 20, SHROUD),
        await db.add_subscription(3, 30, POKI),
    ]
    await db.apply_live_changes([live(SHROUD, "s1", title="ranked"), live(POKI, "p1")], {}, [])
    for pending in await db.pending_announcements():
        if pending.subscription_id != subs[2].id:  # guild 2's announcement is not posted yet
            await db.record_announcement(pending, 100 + pending.subscription_id)
    assert await db.live_event_targets() == []
    assert (await db.get_guild_settings(1)).live_events is False
    await db.update_guild_settings(1, live_events=True)
    await db.update_guild_settings(2, live_events=True)
    [target] = await db.live_event_targets()
    assert (target.guild_id, target.stream_id, target.twitch_user_id) == (1, "s1", SHROUD.twitch_user_id)
    assert (target.login, target.title, target.game_name) == ("shroud", "ranked", "VALORANT")
    assert target.started_at == STARTED
    assert target.refused_at is None
    assert await db.live_event_targets(ShardScope(2, (1,))) == []  # guild 1 is on shard 0 of 2
    await db.set_events_error(1, "I lack Create Events")
    assert (await db.get_guild_settings(1)).events_error == "I lack Create Events"
    [refused] = await db.live_event_targets()
    assert refused.refused_at is not None
    await db.set_events_error(1, None)
    assert (await db.get_guild_settings(1)).events_error is None
    assert (await db.reset_guild_settings(1, ["live_events"])).live_events is False
    await db.update_guild_settings(1, live_events=True)
    await db.apply_live_changes([], {}, [SHROUD.twitch_user_id], ended_streams=["s1"])
    assert await db.live_event_targets() == []


async def test_live_event_records_round_trip_and_final_ones_are_pruned(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    creating = LiveEventRecord(
        guild_id=1 << 40,
        stream_id="s1",
        twitch_user_id=SHROUD.twitch_user_id,
        status="creating",
        created_at=STARTED,
        synced_at=STARTED,
        location="https://www.twitch.tv/shroud",
    )
    await db.save_live_event(creating)
    assert await db.live_event_records() == [creating]
    active = dataclasses.replace(
        creating,
        status="active",
        event_id=(1 << 62) + 5,
        name="ranked",
        description="shroud is live on Twitch.",
        ends_at=STARTED + timedelta(hours=4),
        synced_at=STARTED + timedelta(minutes=5),
    )
    await db.save_live_event(active)
    assert await db.live_event_records() == [active]
    assert await db.live_event_records(ShardScope(2, (((1 << 40) >> 22) % 2,))) == [active]
    assert await db.live_event_records(ShardScope(2, ((((1 << 40) >> 22) + 1) % 2,))) == []
    gone = dataclasses.replace(active, status="gone")
    await db.save_live_event(gone)
    assert await db.live_event_records() == [gone]  # final, but its stream is live: kept in view
    await db.remove_subscription_by_id(1, sub.id)
    assert await db.live_event_records() == []
    assert await db.prune_live_events(STARTED) == 0
    assert await db.prune_live_events(STARTED + timedelta(minutes=6)) == 1
    assert await committed(db, "SELECT count(*) FROM live_events") == [(0,)]


async def test_live_events_are_wanted_while_a_guild_keeps_them_or_an_event_is_open(db):
    assert await db.live_events_wanted() is False
    await db.update_guild_settings(1 << 40, live_events=True)
    assert await db.live_events_wanted() is True
    shard = ((1 << 40) >> 22) % 2
    assert await db.live_events_wanted(ShardScope(2, (shard,))) is True
    assert await db.live_events_wanted(ShardScope(2, (1 - shard,))) is False
    await db.update_guild_settings(1 << 40, live_events=False)
    record = LiveEventRecord(1, "s1", SHROUD.twitch_user_id, "active", STARTED, STARTED, event_id=5)
    await db.save_live_event(record)
    assert await db.live_events_wanted() is True  # turned off with an event still open: it is ended first
    await db.save_live_event(dataclasses.replace(record, status="completed"))
    assert await db.live_events_wanted() is False


async def test_forgetting_a_guild_forgets_its_live_events(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.update_guild_settings(1, live_events=True)
    record = LiveEventRecord(1, "s1", SHROUD.twitch_user_id, "active", STARTED, STARTED, event_id=5)
    await db.save_live_event(record)
    assert await db.delete_guild(1)
    assert await committed(db, "SELECT count(*) FROM live_events") == [(0,)]


# -- opt-in pings ("Notify me") ---------------------------------------------------------------------------


async def test_notify_settings_default_off_and_round_trip(db):
    settings = await db.get_guild_settings(1)
    assert (settings.notify_button, settings.ping_throttle_hours) == (False, None)
    settings = await db.update_guild_settings(1, notify_button=True, ping_throttle_hours=6)
    assert (settings.notify_button, settings.ping_throttle_hours) == (True, 6)
    settings = await db.reset_guild_settings(1, ["notify_button", "ping_throttle_hours"])
    assert (settings.notify_button, settings.ping_throttle_hours) == (False, None)


async def test_opt_in_target_follows_the_entries_and_their_override(db):
    assert await db.opt_in_target(1, SHROUD.twitch_user_id) is None  # never heard of
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(2, 20, POKI)
    target = await db.opt_in_target(1, SHROUD.twitch_user_id)
    assert (target.streamer, target.followed, target.enabled, target.role_id) == (SHROUD, True, False, None)
    await db.update_guild_settings(1, notify_button=True)
    assert (await db.opt_in_target(1, SHROUD.twitch_user_id)).enabled
    await db.update_subscription(sub.id, SubscriptionUpdate(notify_button=False))
    assert not (await db.opt_in_target(1, SHROUD.twitch_user_id)).enabled
    assert (await db.get_subscription(1, sub.id)).notify_button is False
    # Guild 2 does not follow shroud: known to the bot, not followed there.
    other = await db.opt_in_target(2, SHROUD.twitch_user_id)
    assert (other.followed, other.enabled) == (False, False)


async def test_notify_roles_are_kept_replaced_and_forgotten(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.set_notify_role(1, SHROUD.twitch_user_id, 111)
    assert (await db.opt_in_target(1, SHROUD.twitch_user_id)).role_id == 111
    await db.set_notify_role(1, SHROUD.twitch_user_id, 222)  # recreated after a human deleted it
    assert await db.notify_roles(1) == {SHROUD.twitch_user_id: 222}
    await db.forget_notify_role(1, SHROUD.twitch_user_id, 111)  # a stale id forgets nothing
    assert await db.notify_roles(1) == {SHROUD.twitch_user_id: 222}
    await db.forget_deleted_role(1, 333)
    assert await db.notify_roles(1) == {SHROUD.twitch_user_id: 222}
    await db.forget_deleted_role(1, 222)
    assert await db.notify_roles(1) == {}
    await db.set_notify_role(1, SHROUD.twitch_user_id, 444)
    await db.delete_guild(1)
    assert await db.notify_roles(1) == {}


async def test_pending_announcement_carries_the_opt_in_role_and_the_last_ping(open_store):
    clock = [STARTED]
    db = await open_store(clock=lambda: clock[0])
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.update_guild_settings(1, notify_button=True, ping_throttle_hours=4)
    await db.set_notify_role(1, SHROUD.twitch_user_id, 777)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [first] = await db.pending_announcements()
    assert (first.notify_button, first.notify_role_id, first.ping_throttle_hours, first.last_ping) == (
        True,
        777,
        4,
        None,
    )
    await db.record_announcement(first, 555, live(SHROUD, "s1"))
    await db.record_ping(first, "777", remember=True)
    clock[0] = STARTED + timedelta(minutes=5)
    # A second entry of the same stream pinging later keeps the stream's first ping time.
    await db.record_ping(dataclasses.replace(first, subscription_id=sub.id + 100), "777", remember=False)
    await db.apply_live_changes([], {}, [SHROUD.twitch_user_id])
    await db.apply_live_changes([live(SHROUD, "s2")], {}, [])
    [second] = await db.pending_announcements()
    assert second.last_ping == LastPing("s1", STARTED)
    assert await db.last_pings(1) == {SHROUD.twitch_user_id: LastPing("s1", STARTED)}  # /diagnose reads it so
    assert await db.last_pings(2) == {}
    # The card's edits show the ping it was posted with, not the configured one.
    await db.update_guild_settings(1, ping="everyone")
    rows = await committed(db, "SELECT ping_sent FROM announcements WHERE stream_id = ?", ("s1",))
    assert rows == [("777",)]
    await db.update_subscription(sub.id, SubscriptionUpdate(notify_button=None))
    assert (await db.get_subscription(1, sub.id)).notify_button is None


async def test_cards_to_update_render_the_ping_they_were_posted_with(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.update_guild_settings(1, notify_button=True, ping="everyone")
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [pending] = await db.pending_announcements()
    await db.record_announcement(pending, 555, live(SHROUD, "s1"))
    await db.record_ping(pending, "", remember=True)  # nobody had opted in yet: posted without a ping
    await db.apply_live_changes([live(SHROUD, "s1", title="changed")], {}, [])
    [card] = await db.cards_to_update(datetime.now(UTC) + timedelta(days=1))
    assert (card.ping, card.notify_button) == ("", True)


# -- title filters and the restart grace (items 4 and 5 of issue 14) -------------------------------------


async def test_a_title_filter_round_trips_reaches_the_pending_and_clears(db):
    wanted = TitleFilter(include=("ranked", "just chatting"), exclude=("rerun",), regex=r"\bday \d+", skip_reruns=True)
    sub = await db.add_subscription(1, 10, SHROUD, title_filter=wanted)
    assert sub.title_filter == wanted
    assert (await db.get_subscription(1, sub.id)).title_filter == wanted
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [pending] = await db.pending_announcements()  # SQL does not apply it: the notifier does
    assert (pending.title_filter, pending.title_filter_unreadable) == (wanted, False)
    await db.update_subscription(sub.id, SubscriptionUpdate(title_filter=TitleFilter(exclude=("vod",))))
    assert (await db.get_subscription(1, sub.id)).title_filter == TitleFilter(exclude=("vod",))
    await db.update_subscription(sub.id, SubscriptionUpdate(title_filter=None))
    [row] = await db.guild_subscriptions(1)
    assert (row.title_filter, row.title_filter_unreadable) == (None, False)
    assert await committed(db, "SELECT title_filter FROM subscriptions") == [(None,)]


@pytest.mark.parametrize("stored", ["not json", "[1, 2]", '{"include": [1], "skip_reruns": false}', '{"regex": 5}'])
async def test_an_unreadable_title_filter_fails_closed_and_says_so(db, stored):
    sub = await db.add_subscription(1, 10, SHROUD)
    await write_outside(db, "UPDATE subscriptions SET title_filter = ? WHERE id = ?", (stored, sub.id))
    [row] = await db.guild_subscriptions(1)
    assert (row.title_filter, row.title_filter_unreadable) == (None, True)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [pending] = await db.pending_announcements()  # the query itself still answers, for every guild
    assert pending.title_filter_unreadable


async def test_filter_exit_and_restart_grace_settings_round_trip_and_reset(db):
    assert (await db.get_guild_settings(1)).filter_exit is EndAction.KEEP
    settings = await db.update_guild_settings(1, filter_exit=EndAction.DELETE, restart_grace_seconds=0)
    assert (settings.filter_exit, settings.restart_grace_seconds) == (EndAction.DELETE, 0)
    settings = await db.reset_guild_settings(1, ["filter_exit", "restart_grace_seconds"])
    assert (settings.filter_exit, settings.restart_grace_seconds) == (EndAction.KEEP, None)
    await write_outside(db, "UPDATE guild_settings SET filter_exit = 'explode' WHERE guild_id = 1")
    assert (await db.get_guild_settings(1)).filter_exit is EndAction.KEEP  # unknown (newer bot): keep


async def test_only_push_knows_a_rerun_and_a_poll_of_the_same_stream_keeps_it(db):
    await db.add_subscription(1, 10, SHROUD)
    await db.apply_live_changes([live(SHROUD, "s1", stream_type="rerun")], {}, [])
    await db.apply_live_changes([live(SHROUD, "s1", viewer_count=50)], {}, [])  # the poll says "live"
    [stream] = (await db.live_streams()).values()
    assert (stream.stream_type, stream.viewer_count) == ("rerun", 50)
    await db.apply_live_changes([live(SHROUD, "s2")], {}, [], ended_streams=["s1"])
    assert (await db.live_streams())[SHROUD.twitch_user_id].stream_type == "live"
    await db.set_stream_type(SHROUD.twitch_user_id, "s2", "playlist")
    await db.set_stream_type(SHROUD.twitch_user_id, "s1", "rerun")  # not the live stream: nothing
    assert (await db.live_streams())[SHROUD.twitch_user_id].stream_type == "playlist"


async def test_a_restarted_stream_finds_the_previous_card_and_continues_it(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [first] = await db.pending_announcements()
    assert first.previous is None
    await db.record_announcement(first, 555, live(SHROUD, "s1"))
    await db.apply_live_changes([], {}, [SHROUD.twitch_user_id], ended_streams=["s1"])
    await db.close_cards([(sub.id, "s1")])  # edited into "was live" (on_end edit)
    restarted = live(SHROUD, "s2", started_at=STARTED + timedelta(hours=3))
    await db.apply_live_changes([restarted], {}, [])
    [second] = await db.pending_announcements()
    previous = second.previous
    assert (previous.stream_id, previous.channel_id, previous.message_id, previous.deleted) == ("s1", 10, 555, False)
    assert previous.started_at == STARTED
    assert previous.ended_at is not None
    assert second.restart_grace_seconds is None
    await db.record_continuation(second, 555, restarted, "s1")
    assert await db.pending_announcements() == []
    assert await db.cards_to_close() == []
    await db.apply_live_changes([dataclasses.replace(restarted, title="back")], {}, [])
    [card] = await db.cards_to_update(datetime.now(UTC) + timedelta(days=1))
    assert (card.message_id, card.reconnected) == (555, True)
    # The card's session starts with the first stream: the "was live" duration covers both.
    assert await committed(db, "SELECT started_at FROM announcements WHERE stream_id = 's2'") == [
        ("2026-11-27T12:00:00+00:00",)
    ]


async def test_a_card_deleted_at_the_end_is_known_gone(db):
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.update_guild_settings(1, end_action=EndAction.DELETE, restart_grace_seconds=300)
    await db.apply_live_changes([live(SHROUD, "s1")], {}, [])
    [first] = await db.pending_announcements()
    await db.record_announcement(first, 555, live(SHROUD, "s1"))
    await db.apply_live_changes([live(SHROUD, "s2")], {}, [], ended_streams=["s1"])
    await db.close_cards([(sub.id, "s1")])
    [second] = await db.pending_announcements()
    assert (second.previous.deleted, second.restart_grace_seconds) == (True, 300)


async def test_filtered_cards_are_those_of_filtered_entries_in_guilds_that_follow_the_filter(db):
    game = Category("516575", "VALORANT")
    filtered = await db.add_subscription(1, 10, SHROUD, games=[game])
    unfiltered = await db.add_subscription(1, 11, SHROUD)
    other = await db.add_subscription(2, 20, SHROUD, title_filter=TitleFilter(include=("ranked",)))
    await db.update_guild_settings(1, filter_exit=EndAction.EDIT)  # guild 2 keeps (the default): not read
    stream = live(SHROUD, "s1", game_id="516575")
    await db.apply_live_changes([stream], {}, [])
    for pending in await db.pending_announcements():
        await db.record_announcement(pending, 500 + pending.subscription_id, stream)
    [card] = await db.filtered_cards()
    assert (card.subscription_id, card.action, card.games, card.left) == (filtered.id, EndAction.EDIT, (game,), False)
    assert (card.message_id, card.live.stream_id, card.streamer.login) == (500 + filtered.id, "s1", "shroud")
    await db.update_guild_settings(2, filter_exit=EndAction.DELETE)
    assert {c.subscription_id for c in await db.filtered_cards()} == {filtered.id, other.id}
    assert unfiltered.id not in {c.subscription_id for c in await db.filtered_cards(ShardScope(1, (0,)))}
    # A card that says its stream left the filter gets no live updates until it is back.
    await db.mark_left_filter([(filtered.id, "s1")], left=True)
    await db.apply_live_changes([live(SHROUD, "s1", game_id="516575", viewer_count=99)], {}, [])
    later = datetime.now(UTC) + timedelta(days=1)
    assert filtered.id not in {c.subscription_id for c in await db.cards_to_update(later)}
    assert next(c for c in await db.filtered_cards() if c.subscription_id == filtered.id).left
    # Its filter removed meanwhile, the card is still read: it has to come back to live.
    await db.update_subscription(filtered.id, SubscriptionUpdate(games=None))
    [back] = [c for c in await db.filtered_cards() if c.subscription_id == filtered.id]
    assert (back.left, back.games) == (True, None)
    await db.mark_left_filter([(filtered.id, "s1")], left=False)
    assert filtered.id in {c.subscription_id for c in await db.cards_to_update(later)}


async def test_a_filtered_card_carries_what_its_live_updates_render(db):
    """Drawn back to live, the card shows the ping it was posted with, its button and its "reconnected" note."""
    game = Category("516575", "VALORANT")
    sub = await db.add_subscription(1, 10, SHROUD, games=[game])
    await db.update_guild_settings(1, filter_exit=EndAction.EDIT, notify_button=True, ping="everyone")
    stream = live(SHROUD, "s1", game_id="516575")
    await db.apply_live_changes([stream], {}, [])
    [pending] = await db.pending_announcements()
    await db.record_announcement(pending, 555, stream)
    await db.record_ping(pending, "777", remember=True)
    [card] = await db.filtered_cards()
    assert (card.ping, card.notify_button, card.reconnected) == ("777", True, False)
    await db.update_subscription(sub.id, SubscriptionUpdate(notify_button=False))
    await db.apply_live_changes([live(SHROUD, "s2", game_id="516575")], {}, [], ended_streams=["s1"])
    [second] = await db.pending_announcements()
    await db.record_continuation(second, 555, live(SHROUD, "s2", game_id="516575"), "s1")
    [card] = await db.filtered_cards()
    # Posted with no ping_sent (the button is off now): the configured ping, as cards_to_update renders it.
    assert (card.live.stream_id, card.ping, card.notify_button, card.reconnected) == ("s2", "everyone", False, True)


async def test_schedules_due_stored_and_targeted_only_where_a_guild_imports_them(db):
    hour = timedelta(hours=1)
    now = STARTED
    sub = await db.add_subscription(1, 10, SHROUD)
    await db.add_subscription(1, 11, SHROUD)  # two channels: still one target per broadcast
    await db.add_subscription(2, 20, POKI)
    due = {"fresh_before": now - hour, "failed_before": now - hour / 6, "limit": 10}
    assert await db.schedule_import_wanted() is False
    assert await db.schedule_streamers_due(**due) == []
    await db.update_guild_settings(1, schedule_events=True)
    assert (await db.get_guild_settings(1)).schedule_events is True
    assert await db.schedule_import_wanted() is True
    assert await db.schedule_import_wanted(ShardScope(2, (1,))) is False  # guild 1 is on shard 0 of 2
    assert await db.schedule_streamers_due(**due) == [SHROUD.twitch_user_id]

    segments = [
        Broadcast("seg-b", now + 30 * hour, now + 32 * hour, "later", "VALORANT", recurring=True),
        Broadcast("seg-a", now + 5 * hour, None, "sooner"),
    ]
    await db.store_schedule(SHROUD.twitch_user_id, segments, now)
    await db.store_schedule(POKI.twitch_user_id, [Broadcast("p", now + hour, None, "x")], now)
    assert await db.schedule_streamers_due(**due) == []  # read just now
    later = {**due, "fresh_before": now + hour / 2}
    assert await db.schedule_streamers_due(**later) == [SHROUD.twitch_user_id]
    await db.schedule_fetch_failed(SHROUD.twitch_user_id, now + hour / 2)
    assert await db.schedule_streamers_due(**{**later, "failed_before": now + hour / 3}) == []

    targets = await db.schedule_event_targets()
    assert [(t.guild_id, t.segment_id) for t in targets] == [(1, "seg-a"), (1, "seg-b")]  # guild 2 imports none
    assert targets[0].end is None
    assert targets[0].start == now + 5 * hour
    assert (targets[1].title, targets[1].category_name, targets[1].recurring) == ("later", "VALORANT", True)
    assert targets[1].login == "shroud"
    assert await db.schedule_event_targets(ShardScope(2, (1,))) == []

    ids = [SHROUD.twitch_user_id, POKI.twitch_user_id, "404"]
    assert await db.next_broadcasts(ids, now) == {SHROUD.twitch_user_id: segments[1], POKI.twitch_user_id: ANY}
    assert await db.next_broadcasts(ids, now + 5 * hour) == {SHROUD.twitch_user_id: segments[0]}  # strictly after
    assert await db.next_broadcasts([], now) == {}

    await db.store_schedule(SHROUD.twitch_user_id, segments[:1], now + hour)  # seg-a is gone from Twitch
    assert [t.segment_id for t in await db.schedule_event_targets()] == ["seg-b"]
    await db.remove_subscription_by_id(1, sub.id)
    assert len(await db.schedule_event_targets()) == 1  # the other channel still follows shroud


async def test_schedule_event_records_round_trip_one_streamer_and_pruning(db):
    hour = timedelta(hours=1)
    record = ScheduleEventRecord(
        guild_id=1 << 40,
        twitch_user_id=SHROUD.twitch_user_id,
        segment_id="eyJzZWdtZW50SUQiOiJhIn0=",
        status="creating",
        start=STARTED + hour,
        end=STARTED + 3 * hour,
        created_at=STARTED,
        synced_at=STARTED,
        location="https://www.twitch.tv/shroud",
    )
    other = dataclasses.replace(record, twitch_user_id=POKI.twitch_user_id, status="scheduled", event_id=7)
    await db.save_schedule_event(record)
    await db.save_schedule_event(other)
    assert await db.schedule_event_records() == [record, other]
    scheduled = dataclasses.replace(record, status="scheduled", event_id=(1 << 62) + 5, name="n", description="d")
    await db.save_schedule_event(scheduled)
    one = await db.schedule_event_records(guild_id=1 << 40, twitch_user_id=SHROUD.twitch_user_id)
    assert one == [scheduled]
    await db.save_schedule_event(dataclasses.replace(scheduled, status="adopted"))
    assert await db.schedule_event_records() == [other]
    assert await db.prune_schedule_events(STARTED - hour) == 0
    assert await db.prune_schedule_events(STARTED + hour) == 1
