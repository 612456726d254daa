"""Persistence: one long-lived aiosqlite connection, a versioned schema, and every SQL statement of the bot.

Knows nothing about Discord or Twitch clients; values cross its boundary as plain dataclasses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

_log = logging.getLogger(__name__)


class DatabaseError(Exception):
    """The database file cannot be used (unreadable, corrupt, or from a newer version of the bot)."""


class AlreadySubscribed(Exception):
    """The guild already follows this streamer."""


@dataclass(frozen=True, slots=True)
class Streamer:
    twitch_user_id: str
    login: str
    display_name: str
    profile_image_url: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    guild_id: int
    channel_id: int
    streamer: Streamer
    last_error: str | None = None
    missing_since: str | None = None
    """When Twitch stopped returning this streamer (banned or deleted), if it did."""


@dataclass(frozen=True, slots=True)
class LiveStream:
    """What the bot believes is live right now for one streamer."""

    twitch_user_id: str
    stream_id: str
    title: str
    game_name: str
    viewer_count: int
    started_at: datetime
    thumbnail_url: str
    missed_polls: int = 0


@dataclass(frozen=True, slots=True)
class PendingAnnouncement:
    """A (subscription, live stream) pair that has not been announced yet."""

    subscription_id: int
    guild_id: int
    channel_id: int
    twitch_user_id: str
    stream_id: str
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class GuildStreamer:
    """One row of a guild's list, for /streamers and /live."""

    subscription: Subscription
    live: LiveStream | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Ordered migrations: MIGRATIONS[n] moves a database from user_version n to n + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE guild_settings (
        guild_id            INTEGER PRIMARY KEY,
        announce_channel_id INTEGER,
        updated_at          TEXT NOT NULL
    );
    CREATE TABLE streamers (
        twitch_user_id    TEXT PRIMARY KEY,
        login             TEXT NOT NULL,
        display_name      TEXT NOT NULL,
        profile_image_url TEXT NOT NULL DEFAULT '',
        updated_at        TEXT NOT NULL
    );
    CREATE TABLE subscriptions (
        id             INTEGER PRIMARY KEY,
        guild_id       INTEGER NOT NULL,
        twitch_user_id TEXT NOT NULL REFERENCES streamers (twitch_user_id),
        channel_id     INTEGER NOT NULL,
        added_by       INTEGER,
        created_at     TEXT NOT NULL,
        last_error     TEXT,
        UNIQUE (guild_id, twitch_user_id)
    );
    CREATE INDEX ix_subscriptions_user ON subscriptions (twitch_user_id);
    CREATE INDEX ix_subscriptions_channel ON subscriptions (channel_id);
    CREATE TABLE live_streams (
        twitch_user_id TEXT PRIMARY KEY REFERENCES streamers (twitch_user_id) ON DELETE CASCADE,
        stream_id      TEXT NOT NULL,
        title          TEXT NOT NULL,
        game_name      TEXT NOT NULL,
        viewer_count   INTEGER NOT NULL,
        started_at     TEXT NOT NULL,
        thumbnail_url  TEXT NOT NULL,
        missed_polls   INTEGER NOT NULL DEFAULT 0,
        last_seen_at   TEXT NOT NULL
    );
    CREATE TABLE announcements (
        subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
        stream_id       TEXT NOT NULL,
        twitch_user_id  TEXT NOT NULL,
        guild_id        INTEGER NOT NULL,
        channel_id      INTEGER NOT NULL,
        message_id      INTEGER,
        created_at      TEXT NOT NULL,
        PRIMARY KEY (subscription_id, stream_id)
    );
    CREATE INDEX ix_announcements_stream ON announcements (stream_id);
    """,
    # 2: remember when Twitch stopped returning a user (banned or deleted) so /streamers can say so.
    """
    ALTER TABLE streamers ADD COLUMN missing_since TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_SUBSCRIPTION_COLUMNS = """
    s.id, s.guild_id, s.channel_id, s.last_error,
    st.twitch_user_id, st.login, st.display_name, st.profile_image_url, st.missing_since
"""
_SUBSCRIPTION_WIDTH = 9
_LIVE_COLUMNS = """
    l.twitch_user_id, l.stream_id, l.title, l.game_name, l.viewer_count, l.started_at,
    l.thumbnail_url, l.missed_polls
"""


def _subscription(row: Sequence) -> Subscription:
    return Subscription(
        id=row[0],
        guild_id=row[1],
        channel_id=row[2],
        last_error=row[3],
        streamer=Streamer(twitch_user_id=row[4], login=row[5], display_name=row[6], profile_image_url=row[7]),
        missing_since=row[8],
    )


def _live(row: Sequence) -> LiveStream:
    return LiveStream(
        twitch_user_id=row[0],
        stream_id=row[1],
        title=row[2],
        game_name=row[3],
        viewer_count=row[4],
        started_at=_parse_time(row[5]),
        thumbnail_url=row[6],
        missed_polls=row[7],
    )


class Database:
    """All of the bot's storage. Use `await Database.open(path)` and `await db.close()`."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()
        self.query_count = 0  # statements executed; benchmarks use it to prove O(1) queries per cycle

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str) -> Database:
        """Open (creating if absent) and migrate; a file that is not a usable database is an error."""
        if path != ":memory:":
            parent = Path(path).resolve().parent
            if not parent.is_dir():
                raise DatabaseError(f"DATABASE_PATH {path!r}: the directory {str(parent)!r} does not exist")
        try:
            # Autocommit mode: transactions are explicit (see `transaction()`), never opened behind our back.
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the database file {path!r}: {exc}") from exc
        db = cls(conn, path)
        try:
            await db._configure()
            await db._migrate()
        except sqlite3.DatabaseError as exc:
            await conn.close()
            raise DatabaseError(
                f"the database file {path!r} is not a usable SQLite database ({exc}); restore it from a "
                "backup or move it away to start with an empty one"
            ) from exc
        except DatabaseError:
            await conn.close()
            raise
        return db

    async def _configure(self) -> None:
        # Reading the schema first makes a corrupt or foreign file fail here, before anything is written.
        async with self._conn.execute("SELECT count(*) FROM sqlite_master") as cursor:
            await cursor.fetchall()
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA foreign_keys=ON")
        await self._conn.execute("PRAGMA busy_timeout=5000")

    async def _migrate(self) -> None:
        async with self._conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = row[0] if row else 0
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"the database file {self.path!r} has schema version {version}, newer than this bot's "
                f"{SCHEMA_VERSION}: upgrade the bot instead of running an older version on it"
            )
        for target in range(version, SCHEMA_VERSION):
            # executescript commits on its own, so the version bump is part of the same script.
            await self._conn.executescript(f"BEGIN; {MIGRATIONS[target]}; PRAGMA user_version = {target + 1}; COMMIT;")
            _log.info("Database %s migrated to schema version %d", self.path, target + 1)

    async def close(self) -> None:
        try:
            await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            _log.warning("WAL checkpoint failed while closing %s", self.path, exc_info=True)
        await self._conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; rolled back if anything inside raises."""
        # One connection serves every coroutine, so transactions take turns instead of nesting.
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                await self._conn.execute("COMMIT")

    async def _fetchall(self, sql: str, params: Sequence | dict = ()) -> list[sqlite3.Row]:
        self.query_count += 1
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _fetchone(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Row | None:
        self.query_count += 1
        async with self._conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _execute(self, sql: str, params: Sequence | dict = ()) -> int:
        """Run one statement in its own transaction; returns the number of rows changed."""
        self.query_count += 1
        async with self.transaction() as conn, conn.execute(sql, params) as cursor:
            return cursor.rowcount

    # -- guild settings ----------------------------------------------------------------------------

    async def set_announce_channel(self, guild_id: int, channel_id: int) -> None:
        await self._execute(
            """
            INSERT INTO guild_settings (guild_id, announce_channel_id, updated_at) VALUES (?, ?, ?)
            ON CONFLICT (guild_id) DO UPDATE SET
                announce_channel_id = excluded.announce_channel_id, updated_at = excluded.updated_at
            """,
            (guild_id, channel_id, _now()),
        )

    async def get_announce_channel(self, guild_id: int) -> int | None:
        row = await self._fetchone("SELECT announce_channel_id FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return row[0] if row else None

    async def delete_guild(self, guild_id: int) -> None:
        """Forget everything about a guild (the bot was removed from it)."""
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute("DELETE FROM subscriptions WHERE guild_id = ?", (guild_id,))
            await conn.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
            await self._delete_orphan_streamers(conn)

    # -- streamers and subscriptions ---------------------------------------------------------------

    async def add_subscription(
        self, guild_id: int, channel_id: int, streamer: Streamer, added_by: int | None = None
    ) -> Subscription:
        """Follow a streamer in a guild; raises AlreadySubscribed if the guild already does."""
        self.query_count += 1
        async with self.transaction() as conn:
            await self._upsert_streamer(conn, streamer)
            try:
                cursor = await conn.execute(
                    """
                    INSERT INTO subscriptions (guild_id, twitch_user_id, channel_id, added_by, created_at)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                    (guild_id, streamer.twitch_user_id, channel_id, added_by, _now()),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadySubscribed(streamer.login) from exc
            subscription_id = cursor.lastrowid or 0
        return Subscription(id=subscription_id, guild_id=guild_id, channel_id=channel_id, streamer=streamer)

    async def remove_subscription(self, guild_id: int, query: str) -> Streamer | None:
        """Stop following a streamer, found by user id or (case-insensitive) login or display name."""
        subscription = await self.find_subscription(guild_id, query)
        if subscription is None:
            return None
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute("DELETE FROM subscriptions WHERE id = ?", (subscription.id,))
            await self._delete_orphan_streamers(conn)
        return subscription.streamer

    async def find_subscription(self, guild_id: int, query: str) -> Subscription | None:
        text = query.strip()
        row = await self._fetchone(
            f"""
            SELECT {_SUBSCRIPTION_COLUMNS} FROM subscriptions s
            JOIN streamers st ON st.twitch_user_id = s.twitch_user_id
            WHERE s.guild_id = ? AND (st.twitch_user_id = ? OR st.login = lower(?)
                                      OR lower(st.display_name) = lower(?))
            ORDER BY st.twitch_user_id = ? DESC
            LIMIT 1
            """,
            (guild_id, text, text, text, text),
        )
        return _subscription(row) if row else None

    async def count_subscriptions(self, guild_id: int) -> int:
        row = await self._fetchone("SELECT count(*) FROM subscriptions WHERE guild_id = ?", (guild_id,))
        return row[0] if row else 0

    async def guild_subscriptions(self, guild_id: int) -> list[Subscription]:
        rows = await self._fetchall(
            f"""
            SELECT {_SUBSCRIPTION_COLUMNS} FROM subscriptions s
            JOIN streamers st ON st.twitch_user_id = s.twitch_user_id
            WHERE s.guild_id = ? ORDER BY lower(st.display_name)
            """,
            (guild_id,),
        )
        return [_subscription(row) for row in rows]

    async def guild_streamers(self, guild_id: int) -> list[GuildStreamer]:
        """A guild's subscriptions with their live state, for /streamers and /live (one query)."""
        rows = await self._fetchall(
            f"""
            SELECT {_SUBSCRIPTION_COLUMNS}, {_LIVE_COLUMNS} FROM subscriptions s
            JOIN streamers st ON st.twitch_user_id = s.twitch_user_id
            LEFT JOIN live_streams l ON l.twitch_user_id = s.twitch_user_id
            WHERE s.guild_id = ? ORDER BY lower(st.display_name)
            """,
            (guild_id,),
        )
        return [
            GuildStreamer(
                subscription=_subscription(row[:_SUBSCRIPTION_WIDTH]),
                live=_live(row[_SUBSCRIPTION_WIDTH:]) if row[_SUBSCRIPTION_WIDTH] else None,
            )
            for row in rows
        ]

    async def search_guild_streamers(self, guild_id: int, prefix: str, limit: int = 25) -> list[Streamer]:
        """Autocomplete: this guild's streamers whose login or display name contains the text typed."""
        pattern = "%" + prefix.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._fetchall(
            """
            SELECT st.twitch_user_id, st.login, st.display_name, st.profile_image_url
            FROM subscriptions s JOIN streamers st ON st.twitch_user_id = s.twitch_user_id
            WHERE s.guild_id = ? AND (st.login LIKE ? ESCAPE '\\' OR lower(st.display_name) LIKE ? ESCAPE '\\')
            ORDER BY lower(st.display_name) LIMIT ?
            """,
            (guild_id, pattern, pattern, limit),
        )
        return [Streamer(*row) for row in rows]

    async def monitored_user_ids(self) -> list[str]:
        """Every Twitch user id followed by at least one guild: the poll's one read of who to check."""
        rows = await self._fetchall("SELECT DISTINCT twitch_user_id FROM subscriptions")
        return [row[0] for row in rows]

    async def streamers_by_id(self, user_ids: Iterable[str]) -> dict[str, Streamer]:
        rows = await self._fetchall(
            """
            SELECT twitch_user_id, login, display_name, profile_image_url FROM streamers
            WHERE twitch_user_id IN (SELECT value FROM json_each(?))
            """,
            (json.dumps(list(user_ids)),),
        )
        return {row[0]: Streamer(*row) for row in rows}

    async def update_streamer_names(self, streamers: Iterable[Streamer]) -> None:
        """Refresh logins/display names (renames) and avatars reported by Twitch."""
        rows = [
            {
                "id": s.twitch_user_id,
                "login": s.login,
                "name": s.display_name,
                "avatar": s.profile_image_url,
                "now": _now(),
            }
            for s in streamers
        ]
        if not rows:
            return
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.executemany(
                """
                UPDATE streamers SET login = :login, display_name = :name,
                    profile_image_url = CASE WHEN :avatar = '' THEN profile_image_url ELSE :avatar END,
                    updated_at = :now
                WHERE twitch_user_id = :id
                  AND (login != :login OR display_name != :name OR (:avatar != '' AND profile_image_url != :avatar))
                """,
                rows,
            )

    async def refresh_streamers(self, found: Iterable[Streamer], missing: Iterable[str]) -> None:
        """Apply a periodic /users lookup: names and avatars refreshed; users Twitch no longer returns marked."""
        found = list(found)
        await self.update_streamer_names(found)
        now = _now()
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.executemany(
                "UPDATE streamers SET missing_since = NULL WHERE twitch_user_id = ? AND missing_since IS NOT NULL",
                [(s.twitch_user_id,) for s in found],
            )
            await conn.executemany(
                "UPDATE streamers SET missing_since = ? WHERE twitch_user_id = ? AND missing_since IS NULL",
                [(now, user_id) for user_id in missing],
            )

    async def set_subscription_error(self, subscription_id: int, error: str | None) -> None:
        await self._execute("UPDATE subscriptions SET last_error = ? WHERE id = ?", (error, subscription_id))

    async def set_subscription_channel(self, subscription_id: int, channel_id: int) -> None:
        """Point a subscription at another channel; whatever was wrong with the old one no longer applies."""
        await self._execute(
            "UPDATE subscriptions SET channel_id = ?, last_error = NULL WHERE id = ?", (channel_id, subscription_id)
        )

    async def channel_deleted(self, guild_id: int, channel_id: int, error: str) -> tuple[int, int]:
        """A channel is gone: its subscriptions move to the guild's default channel when that is another,
        live channel, otherwise they are marked with `error`. Returns (moved, marked)."""
        default = await self.get_announce_channel(guild_id)
        self.query_count += 1
        async with self.transaction() as conn:
            if default is not None and default != channel_id:
                cursor = await conn.execute(
                    "UPDATE subscriptions SET channel_id = ?, last_error = NULL WHERE guild_id = ? AND channel_id = ?",
                    (default, guild_id, channel_id),
                )
                return cursor.rowcount, 0
            cursor = await conn.execute(
                "UPDATE subscriptions SET last_error = ? WHERE guild_id = ? AND channel_id = ?",
                (error, guild_id, channel_id),
            )
            return 0, cursor.rowcount

    async def move_guild_subscriptions(self, guild_id: int, from_channels: Iterable[int], to_channel: int) -> int:
        """Move a guild's subscriptions from (deleted) channels to `to_channel`, clearing their marks."""
        rows = [(to_channel, guild_id, channel_id) for channel_id in from_channels]
        if not rows:
            return 0
        self.query_count += 1
        async with self.transaction() as conn:
            cursor = await conn.executemany(
                "UPDATE subscriptions SET channel_id = ?, last_error = NULL WHERE guild_id = ? AND channel_id = ?",
                rows,
            )
            return cursor.rowcount

    async def clear_channel_errors(self, guild_id: int, channel_id: int) -> int:
        return await self._execute(
            """
            UPDATE subscriptions SET last_error = NULL
            WHERE guild_id = ? AND channel_id = ? AND last_error IS NOT NULL
            """,
            (guild_id, channel_id),
        )

    @staticmethod
    async def _upsert_streamer(conn: aiosqlite.Connection, streamer: Streamer) -> None:
        await conn.execute(
            """
            INSERT INTO streamers (twitch_user_id, login, display_name, profile_image_url, updated_at)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (twitch_user_id) DO UPDATE SET
                login = excluded.login, display_name = excluded.display_name,
                profile_image_url = excluded.profile_image_url, updated_at = excluded.updated_at
            """,
            (streamer.twitch_user_id, streamer.login, streamer.display_name, streamer.profile_image_url, _now()),
        )

    @staticmethod
    async def _delete_orphan_streamers(conn: aiosqlite.Connection) -> None:
        # A streamer nobody follows any more is not polled; its live state and history go with it.
        await conn.execute(
            """
            DELETE FROM live_streams WHERE twitch_user_id NOT IN (SELECT twitch_user_id FROM subscriptions)
            """
        )
        await conn.execute(
            "DELETE FROM streamers WHERE twitch_user_id NOT IN (SELECT twitch_user_id FROM subscriptions)"
        )

    # -- live state and announcements --------------------------------------------------------------

    async def live_streams(self) -> dict[str, LiveStream]:
        rows = await self._fetchall(f"SELECT {_LIVE_COLUMNS} FROM live_streams l")
        return {row[0]: _live(row) for row in rows}

    async def apply_live_changes(
        self, upserts: Iterable[LiveStream], missed: dict[str, int], ended: Iterable[str]
    ) -> None:
        """Record one poll's outcome in a single transaction: live/updated, missed once more, ended."""
        now = _now()
        live_rows = [
            {
                "user_id": s.twitch_user_id,
                "stream_id": s.stream_id,
                "title": s.title,
                "game": s.game_name,
                "viewers": s.viewer_count,
                "started_at": s.started_at.isoformat(),
                "thumbnail": s.thumbnail_url,
                "missed": s.missed_polls,
                "now": now,
            }
            for s in upserts
        ]
        ended_rows = [(user_id,) for user_id in ended]
        missed_rows = [(count, user_id) for user_id, count in missed.items()]
        if not (live_rows or ended_rows or missed_rows):
            return
        self.query_count += 1
        async with self.transaction() as conn:
            if live_rows:
                await conn.executemany(
                    """
                    INSERT INTO live_streams (twitch_user_id, stream_id, title, game_name, viewer_count,
                                              started_at, thumbnail_url, missed_polls, last_seen_at)
                    SELECT :user_id, :stream_id, :title, :game, :viewers, :started_at, :thumbnail, :missed, :now
                    WHERE EXISTS (SELECT 1 FROM streamers WHERE twitch_user_id = :user_id)
                    ON CONFLICT (twitch_user_id) DO UPDATE SET
                        stream_id = excluded.stream_id, title = excluded.title,
                        game_name = excluded.game_name, viewer_count = excluded.viewer_count,
                        started_at = excluded.started_at, thumbnail_url = excluded.thumbnail_url,
                        missed_polls = excluded.missed_polls, last_seen_at = excluded.last_seen_at
                    """,
                    live_rows,
                )
            if missed_rows:
                await conn.executemany("UPDATE live_streams SET missed_polls = ? WHERE twitch_user_id = ?", missed_rows)
            if ended_rows:
                await conn.executemany("DELETE FROM live_streams WHERE twitch_user_id = ?", ended_rows)

    async def pending_announcements(self) -> list[PendingAnnouncement]:
        """Every (subscription, live stream) pair with no announcement yet — the 'went live' set."""
        rows = await self._fetchall(
            """
            SELECT s.id, s.guild_id, s.channel_id, l.twitch_user_id, l.stream_id, s.last_error
            FROM live_streams l
            JOIN subscriptions s ON s.twitch_user_id = l.twitch_user_id
            LEFT JOIN announcements a ON a.subscription_id = s.id AND a.stream_id = l.stream_id
            WHERE a.subscription_id IS NULL
            ORDER BY l.twitch_user_id, s.id
            """
        )
        return [PendingAnnouncement(*row) for row in rows]

    async def record_announcement(self, pending: PendingAnnouncement, message_id: int | None) -> None:
        """Mark a stream as announced for one subscription; committed at once to keep the
        crash-between-send-and-commit window as small as possible."""
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute(
                """
                INSERT OR IGNORE INTO announcements
                    (subscription_id, stream_id, twitch_user_id, guild_id, channel_id, message_id, created_at)
                SELECT :sub, :stream_id, :user_id, :guild_id, :channel_id, :message_id, :now
                WHERE EXISTS (SELECT 1 FROM subscriptions WHERE id = :sub)
                """,
                {
                    "sub": pending.subscription_id,
                    "stream_id": pending.stream_id,
                    "user_id": pending.twitch_user_id,
                    "guild_id": pending.guild_id,
                    "channel_id": pending.channel_id,
                    "message_id": message_id,
                    "now": _now(),
                },
            )
            await conn.execute(
                "UPDATE subscriptions SET last_error = NULL WHERE id = ? AND last_error IS NOT NULL",
                (pending.subscription_id,),
            )

    async def announcements_for_stream(self, stream_id: str) -> list[tuple[int, int, int | None]]:
        """(subscription id, channel id, message id) of every announcement of one stream."""
        rows = await self._fetchall(
            "SELECT subscription_id, channel_id, message_id FROM announcements WHERE stream_id = ?",
            (stream_id,),
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def prune_announcements(self, older_than: datetime) -> int:
        """Forget announcements of streams long over (kept a while so a blinking stream never repeats)."""
        return await self._execute(
            """
            DELETE FROM announcements WHERE created_at < ?
            AND stream_id NOT IN (SELECT stream_id FROM live_streams)
            """,
            (older_than.isoformat(timespec="seconds"),),
        )

    async def counts(self) -> dict[str, int]:
        row = await self._fetchone(
            """
            SELECT (SELECT count(*) FROM subscriptions),
                   (SELECT count(DISTINCT twitch_user_id) FROM subscriptions),
                   (SELECT count(DISTINCT guild_id) FROM subscriptions),
                   (SELECT count(*) FROM live_streams)
            """
        )
        row = row or (0, 0, 0, 0)
        return {"subscriptions": row[0], "streamers": row[1], "guilds": row[2], "live_streams": row[3]}
