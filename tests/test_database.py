"""Unit tests for database.py: schema, migrations, subscriptions, live state and announcements."""

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from database import SCHEMA_VERSION, Database, DatabaseError
from twitch_notifier.models import (
    AlreadySubscribed,
    Category,
    GuildSettings,
    LiveStream,
    Streamer,
    SubscriptionUpdate,
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


def _build(path, version: int) -> sqlite3.Connection:
    """A database file created by an older bot: the first `version` migrations, nothing after."""
    from database import MIGRATIONS

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys=ON")
    for target in range(version):
        conn.executescript(f"BEGIN; {MIGRATIONS[target]}; PRAGMA user_version = {target + 1}; COMMIT;")
    return conn


async def test_migrates_a_version_2_database_without_loss(tmp_path):
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
        async with db._conn.execute("PRAGMA user_version") as cur:
            assert (await cur.fetchone())[0] == SCHEMA_VERSION
        async with db._conn.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1
        async with db._conn.execute("PRAGMA foreign_key_check") as cur:
            assert await cur.fetchall() == []
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
        assert await db.announcements_for_stream("s-live") == [(7, 10, 111), (12, 20, 333)]
        assert await db.announcements_for_stream("p-over") == [(9, 11, 222)]
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
        assert await db.announcements_for_stream("p-over") == []
    finally:
        await db.close()


async def test_a_migration_that_would_break_foreign_keys_is_rolled_back(tmp_path):
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
    assert card.title == "hello" and card.started_at == STARTED and card.ended_at is not None
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
    assert (await db.cached_games(["1"]))["1"] == Category("1", "One renamed", "https://art/1.jpg")
