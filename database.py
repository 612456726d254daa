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
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from twitch_notifier.models import (
    KEEP,
    AlreadySubscribed,
    CardToClose,
    CardUpdate,
    Category,
    EndAction,
    GuildSettings,
    GuildStreamer,
    LiveStream,
    PendingAnnouncement,
    Streamer,
    Subscription,
    SubscriptionUpdate,
)

_log = logging.getLogger(__name__)


class DatabaseError(Exception):
    """The database file cannot be used (unreadable, corrupt, or from a newer version of the bot)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _end_action(value: str | None) -> EndAction:
    """A stored end action; an unknown value (written by a newer version) keeps the card untouched."""
    if value is None:
        return EndAction.EDIT
    try:
        return EndAction(value)
    except ValueError:
        return EndAction.KEEP


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
    # 3: per-server settings, per-subscription overrides, one streamer in several channels of a guild
    # (uniqueness becomes guild + streamer + channel: a table rebuild, ids kept), the card's life
    # (what it shows, when it was last edited, when its stream ended and when the card was dealt with)
    # and a cache of game box art. Announcements of streams already over are closed: never touched again.
    """
    ALTER TABLE guild_settings ADD COLUMN ping TEXT;
    ALTER TABLE guild_settings ADD COLUMN message_template TEXT;
    ALTER TABLE guild_settings ADD COLUMN end_action TEXT NOT NULL DEFAULT 'edit';
    ALTER TABLE guild_settings ADD COLUMN live_updates INTEGER NOT NULL DEFAULT 1;

    CREATE TABLE subscriptions_v3 (
        id               INTEGER PRIMARY KEY,
        guild_id         INTEGER NOT NULL,
        twitch_user_id   TEXT NOT NULL REFERENCES streamers (twitch_user_id),
        channel_id       INTEGER NOT NULL,
        added_by         INTEGER,
        created_at       TEXT NOT NULL,
        last_error       TEXT,
        ping             TEXT,
        message_template TEXT,
        games            TEXT,
        UNIQUE (guild_id, twitch_user_id, channel_id)
    );
    INSERT INTO subscriptions_v3 (id, guild_id, twitch_user_id, channel_id, added_by, created_at, last_error)
        SELECT id, guild_id, twitch_user_id, channel_id, added_by, created_at, last_error FROM subscriptions;
    DROP TABLE subscriptions;
    ALTER TABLE subscriptions_v3 RENAME TO subscriptions;
    CREATE INDEX ix_subscriptions_user ON subscriptions (twitch_user_id);
    CREATE INDEX ix_subscriptions_channel ON subscriptions (channel_id);

    ALTER TABLE live_streams ADD COLUMN game_id TEXT NOT NULL DEFAULT '';

    ALTER TABLE announcements ADD COLUMN title TEXT;
    ALTER TABLE announcements ADD COLUMN game_name TEXT;
    ALTER TABLE announcements ADD COLUMN viewer_count INTEGER;
    ALTER TABLE announcements ADD COLUMN thumbnail_url TEXT;
    ALTER TABLE announcements ADD COLUMN started_at TEXT;
    ALTER TABLE announcements ADD COLUMN card_updated_at TEXT;
    ALTER TABLE announcements ADD COLUMN ended_at TEXT;
    ALTER TABLE announcements ADD COLUMN closed_at TEXT;
    UPDATE announcements SET closed_at = created_at
        WHERE stream_id NOT IN (SELECT stream_id FROM live_streams);
    CREATE INDEX ix_announcements_open ON announcements (ended_at) WHERE closed_at IS NULL;

    CREATE TABLE games (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        box_art_url TEXT NOT NULL DEFAULT '',
        updated_at  TEXT NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# Migrations that rebuild a table other tables reference: foreign keys are off while they run (SQLite
# cannot switch them inside a transaction) and checked with `PRAGMA foreign_key_check` before commit.
_REBUILDING_MIGRATIONS = frozenset({2})

_SUBSCRIPTION_COLUMNS = """
    s.id, s.guild_id, s.channel_id, s.last_error,
    st.twitch_user_id, st.login, st.display_name, st.profile_image_url, st.missing_since,
    s.ping, s.message_template, s.games
"""
_SUBSCRIPTION_WIDTH = 12
_LIVE_COLUMNS = """
    l.twitch_user_id, l.stream_id, l.title, l.game_name, l.viewer_count, l.started_at,
    l.thumbnail_url, l.missed_polls, l.game_id
"""
_LIVE_WIDTH = 9
_GUILD_SETTINGS_COLUMNS = {
    "announce_channel_id": "announce_channel_id",
    "ping": "ping",
    "message_template": "message_template",
    "end_action": "end_action",
    "live_updates": "live_updates",
}
_GUILD_SETTINGS_DEFAULTS = {
    "announce_channel_id": None,
    "ping": None,
    "message_template": None,
    "end_action": "edit",
    "live_updates": 1,
}


def _games_json(games: Iterable[Category] | None) -> str | None:
    if games is None:
        return None
    return json.dumps([{"id": g.id, "name": g.name} for g in games])


def _games_from_json(text: str | None) -> tuple[Category, ...] | None:
    if text is None:
        return None
    try:
        items = json.loads(text)
    except ValueError:
        return None
    return tuple(Category(str(item["id"]), str(item["name"])) for item in items if isinstance(item, dict))


def _subscription(row: Sequence) -> Subscription:
    return Subscription(
        id=row[0],
        guild_id=row[1],
        channel_id=row[2],
        last_error=row[3],
        streamer=Streamer(twitch_user_id=row[4], login=row[5], display_name=row[6], profile_image_url=row[7]),
        missing_since=_parse_time(row[8]) if row[8] else None,
        ping=row[9],
        message_template=row[10],
        games=_games_from_json(row[11]),
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
        game_id=row[8] or "",
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
            if target in _REBUILDING_MIGRATIONS:
                await self._rebuilding_migration(target)
            else:
                # executescript commits on its own, so the version bump is part of the same script.
                await self._conn.executescript(
                    f"BEGIN; {MIGRATIONS[target]}; PRAGMA user_version = {target + 1}; COMMIT;"
                )
            _log.info("Database %s migrated to schema version %d", self.path, target + 1)

    async def _rebuilding_migration(self, target: int) -> None:
        await self._conn.execute("PRAGMA foreign_keys=OFF")
        try:
            try:
                # executescript commits anything pending first, then leaves this script's transaction open.
                await self._conn.executescript(f"BEGIN; {MIGRATIONS[target]};")
                async with self._conn.execute("PRAGMA foreign_key_check") as cursor:
                    broken = await cursor.fetchall()
                if broken:
                    raise DatabaseError(
                        f"migrating {self.path!r} to schema version {target + 1} would break "
                        f"{len(broken)} foreign key(s) (first: {tuple(broken[0])}); nothing was changed"
                    )
                await self._conn.execute(f"PRAGMA user_version = {target + 1}")
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")
        finally:
            await self._conn.execute("PRAGMA foreign_keys=ON")

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

    async def get_guild_settings(self, guild_id: int) -> GuildSettings:
        row = await self._fetchone(
            """
            SELECT announce_channel_id, ping, message_template, end_action, live_updates
            FROM guild_settings WHERE guild_id = ?
            """,
            (guild_id,),
        )
        if row is None:
            return GuildSettings(guild_id)
        return GuildSettings(guild_id, row[0], row[1], row[2], _end_action(row[3]), bool(row[4]))

    async def update_guild_settings(self, guild_id: int, **values: object) -> GuildSettings:
        """Set some of a guild's settings (announce_channel_id, ping, message_template, end_action,
        live_updates); the others keep their values."""
        if not values:
            return await self.get_guild_settings(guild_id)
        unknown = set(values) - set(_GUILD_SETTINGS_COLUMNS)
        if unknown:
            raise ValueError(f"unknown guild settings: {sorted(unknown)}")
        # Column names come from the fixed mapping above, never from the caller's text.
        columns = [_GUILD_SETTINGS_COLUMNS[name] for name in values]
        params = {f"v_{name}": (int(v) if isinstance(v, bool) else v) for name, v in values.items()}
        params |= {"guild_id": guild_id, "now": _now()}
        insert_values = ", ".join(f":v_{name}" for name in values)
        updates = ", ".join(f"{column} = excluded.{column}" for column in columns)
        await self._execute(
            f"""
            INSERT INTO guild_settings (guild_id, {", ".join(columns)}, updated_at)
            VALUES (:guild_id, {insert_values}, :now)
            ON CONFLICT (guild_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at
            """,
            params,
        )
        return await self.get_guild_settings(guild_id)

    async def reset_guild_settings(self, guild_id: int, names: Iterable[str]) -> GuildSettings:
        """Put some of a guild's settings back to their defaults."""
        return await self.update_guild_settings(guild_id, **{name: _GUILD_SETTINGS_DEFAULTS[name] for name in names})

    async def guild_ids(self) -> set[int]:
        """Every guild the database holds anything for."""
        rows = await self._fetchall("SELECT guild_id FROM subscriptions UNION SELECT guild_id FROM guild_settings")
        return {row[0] for row in rows}

    async def delete_guild(self, guild_id: int) -> None:
        """Forget everything about a guild (the bot was removed from it)."""
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute("DELETE FROM subscriptions WHERE guild_id = ?", (guild_id,))
            await conn.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
            await self._delete_orphan_streamers(conn)

    # -- streamers and subscriptions ---------------------------------------------------------------

    async def add_subscription(
        self,
        guild_id: int,
        channel_id: int,
        streamer: Streamer,
        added_by: int | None = None,
        *,
        ping: str | None = None,
        message_template: str | None = None,
        games: Sequence[Category] | None = None,
    ) -> Subscription:
        """Follow a streamer in a guild's channel; raises AlreadySubscribed if that channel already does."""
        self.query_count += 1
        async with self.transaction() as conn:
            await self._upsert_streamer(conn, streamer)
            try:
                cursor = await conn.execute(
                    """
                    INSERT INTO subscriptions (guild_id, twitch_user_id, channel_id, added_by, created_at,
                                               ping, message_template, games)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    (
                        guild_id,
                        streamer.twitch_user_id,
                        channel_id,
                        added_by,
                        _now(),
                        ping,
                        message_template,
                        _games_json(games),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadySubscribed(streamer.login) from exc
            subscription_id = cursor.lastrowid or 0
            if games:
                await self._upsert_games(conn, games)
        return Subscription(
            id=subscription_id,
            guild_id=guild_id,
            channel_id=channel_id,
            streamer=streamer,
            ping=ping,
            message_template=message_template,
            games=tuple(games) if games is not None else None,
        )

    async def update_subscription(self, subscription_id: int, update: SubscriptionUpdate) -> None:
        """Change a subscription's channel and overrides (None clears an override); fields left KEEP keep
        their value. Raises AlreadySubscribed if the new channel already follows the streamer."""
        sets: list[str] = []
        params: dict[str, object] = {"id": subscription_id}
        if update.channel_id is not KEEP:
            sets += ["channel_id = :channel_id", "last_error = NULL"]
            params["channel_id"] = update.channel_id
        if update.ping is not KEEP:
            sets.append("ping = :ping")
            params["ping"] = update.ping
        if update.message_template is not KEEP:
            sets.append("message_template = :template")
            params["template"] = update.message_template
        if update.games is not KEEP:
            sets.append("games = :games")
            params["games"] = _games_json(update.games)
        if not sets:
            return
        self.query_count += 1
        async with self.transaction() as conn:
            try:
                await conn.execute(f"UPDATE subscriptions SET {', '.join(sets)} WHERE id = :id", params)
            except sqlite3.IntegrityError as exc:
                raise AlreadySubscribed(str(subscription_id)) from exc
            if update.games is not KEEP and update.games is not None:
                await self._upsert_games(conn, update.games)

    async def get_subscription(self, guild_id: int, subscription_id: int) -> Subscription | None:
        row = await self._fetchone(
            f"""
            SELECT {_SUBSCRIPTION_COLUMNS} FROM subscriptions s
            JOIN streamers st ON st.twitch_user_id = s.twitch_user_id
            WHERE s.guild_id = ? AND s.id = ?
            """,
            (guild_id, subscription_id),
        )
        return _subscription(row) if row else None

    async def find_subscriptions(self, guild_id: int, query: str) -> list[Subscription]:
        """Every subscription of a guild to one streamer, found by user id or (case-insensitive) login or
        display name; several when the streamer is followed into several channels."""
        text = query.strip()
        rows = await self._fetchall(
            f"""
            SELECT {_SUBSCRIPTION_COLUMNS} FROM subscriptions s
            JOIN streamers st ON st.twitch_user_id = s.twitch_user_id
            WHERE s.guild_id = ? AND s.twitch_user_id = (
                SELECT st2.twitch_user_id FROM subscriptions s2
                JOIN streamers st2 ON st2.twitch_user_id = s2.twitch_user_id
                WHERE s2.guild_id = ? AND (st2.twitch_user_id = ? OR st2.login = lower(?)
                                           OR lower(st2.display_name) = lower(?))
                ORDER BY st2.twitch_user_id = ? DESC
                LIMIT 1
            )
            ORDER BY s.id
            """,
            (guild_id, guild_id, text, text, text, text),
        )
        return [_subscription(row) for row in rows]

    async def remove_subscription_by_id(self, guild_id: int, subscription_id: int) -> Subscription | None:
        subscription = await self.get_subscription(guild_id, subscription_id)
        if subscription is None:
            return None
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute("DELETE FROM subscriptions WHERE id = ?", (subscription.id,))
            await self._delete_orphan_streamers(conn)
        return subscription

    async def search_guild_subscriptions(self, guild_id: int, prefix: str, limit: int = 25) -> list[Subscription]:
        """Autocomplete: this guild's subscriptions whose streamer's login or display name contains the text."""
        pattern = "%" + prefix.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._fetchall(
            f"""
            SELECT {_SUBSCRIPTION_COLUMNS} FROM subscriptions s
            JOIN streamers st ON st.twitch_user_id = s.twitch_user_id
            WHERE s.guild_id = ? AND (st.login LIKE ? ESCAPE '\\' OR lower(st.display_name) LIKE ? ESCAPE '\\')
            ORDER BY lower(st.display_name), s.id LIMIT ?
            """,
            (guild_id, pattern, pattern, limit),
        )
        return [_subscription(row) for row in rows]

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
    async def _upsert_games(conn: aiosqlite.Connection, games: Iterable[Category]) -> None:
        # A category without box art (typed in a filter) must not wipe box art fetched earlier.
        await conn.executemany(
            """
            INSERT INTO games (id, name, box_art_url, updated_at) VALUES (:id, :name, :art, :now)
            ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                box_art_url = CASE WHEN excluded.box_art_url = '' THEN games.box_art_url
                                   ELSE excluded.box_art_url END,
                updated_at = CASE WHEN excluded.box_art_url = '' THEN games.updated_at
                                  ELSE excluded.updated_at END
            """,
            [{"id": g.id, "name": g.name, "art": g.box_art_url, "now": _now()} for g in games],
        )

    # -- game box art cache ------------------------------------------------------------------------

    async def store_games(self, games: Iterable[Category]) -> None:
        games = list(games)
        if not games:
            return
        self.query_count += 1
        async with self.transaction() as conn:
            await self._upsert_games(conn, games)

    async def games_needing_art(self, game_ids: Iterable[str], older_than: datetime) -> list[str]:
        """Of these game ids, those with no cached box art or art fetched before `older_than` (one query)."""
        ids = sorted({g for g in game_ids if g})
        if not ids:
            return []
        rows = await self._fetchall(
            """
            SELECT j.value FROM json_each(?) j
            LEFT JOIN games g ON g.id = j.value
            WHERE g.id IS NULL OR g.box_art_url = '' OR g.updated_at < ?
            """,
            (json.dumps(ids), older_than.isoformat(timespec="seconds")),
        )
        return [row[0] for row in rows]

    async def cached_games(self, game_ids: Iterable[str]) -> dict[str, Category]:
        rows = await self._fetchall(
            "SELECT id, name, box_art_url FROM games WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(set(game_ids))),),
        )
        return {row[0]: Category(row[0], row[1], row[2]) for row in rows}

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
        self,
        upserts: Iterable[LiveStream],
        missed: dict[str, int],
        ended: Iterable[str],
        ended_streams: Iterable[str] = (),
    ) -> None:
        """Record one poll's outcome in a single transaction: live/updated, missed once more, ended.

        `ended_streams` are the stream ids that are over (including ones replaced by a newer stream of the
        same streamer): their announcements are marked ended, with the time the stream was last seen, so
        the cards are turned into "was live" cards even if the bot stops before doing it."""
        now = _now()
        ended_stream_ids = json.dumps(list(dict.fromkeys(ended_streams)))
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
                "game_id": s.game_id,
                "now": now,
            }
            for s in upserts
        ]
        ended_rows = [(user_id,) for user_id in ended]
        missed_rows = [(count, user_id) for user_id, count in missed.items()]
        if not (live_rows or ended_rows or missed_rows or ended_stream_ids != "[]"):
            return
        self.query_count += 1
        async with self.transaction() as conn:
            if ended_stream_ids != "[]":
                # Before the live rows are replaced or deleted: they hold when each stream was last seen.
                await conn.execute(
                    """
                    UPDATE announcements SET ended_at = coalesce(
                        (SELECT l.last_seen_at FROM live_streams l WHERE l.stream_id = announcements.stream_id),
                        :now)
                    WHERE ended_at IS NULL AND closed_at IS NULL
                      AND stream_id IN (SELECT value FROM json_each(:ids))
                    """,
                    {"ids": ended_stream_ids, "now": now},
                )
            if live_rows:
                await conn.executemany(
                    """
                    INSERT INTO live_streams (twitch_user_id, stream_id, title, game_name, viewer_count,
                                              started_at, thumbnail_url, missed_polls, last_seen_at, game_id)
                    SELECT :user_id, :stream_id, :title, :game, :viewers, :started_at, :thumbnail, :missed, :now,
                           :game_id
                    WHERE EXISTS (SELECT 1 FROM streamers WHERE twitch_user_id = :user_id)
                    ON CONFLICT (twitch_user_id) DO UPDATE SET
                        stream_id = excluded.stream_id, title = excluded.title,
                        game_name = excluded.game_name, viewer_count = excluded.viewer_count,
                        started_at = excluded.started_at, thumbnail_url = excluded.thumbnail_url,
                        missed_polls = excluded.missed_polls, last_seen_at = excluded.last_seen_at,
                        game_id = excluded.game_id
                    """,
                    live_rows,
                )
            if missed_rows:
                await conn.executemany("UPDATE live_streams SET missed_polls = ? WHERE twitch_user_id = ?", missed_rows)
            if ended_rows:
                await conn.executemany("DELETE FROM live_streams WHERE twitch_user_id = ?", ended_rows)

    async def pending_announcements(self) -> list[PendingAnnouncement]:
        """Every (subscription, live stream) pair with no announcement yet — the 'went live' set — with the
        ping and template in effect. A subscription with a game filter only while the stream's category is
        in it, so a stream switching into a listed category becomes pending then (and is announced once)."""
        rows = await self._fetchall(
            """
            SELECT s.id, s.guild_id, s.channel_id, l.twitch_user_id, l.stream_id, s.last_error,
                   coalesce(s.ping, gs.ping), coalesce(s.message_template, gs.message_template),
                   coalesce(gm.box_art_url, '')
            FROM live_streams l
            JOIN subscriptions s ON s.twitch_user_id = l.twitch_user_id
            LEFT JOIN announcements a ON a.subscription_id = s.id AND a.stream_id = l.stream_id
            LEFT JOIN guild_settings gs ON gs.guild_id = s.guild_id
            LEFT JOIN games gm ON gm.id = l.game_id
            WHERE a.subscription_id IS NULL
              AND (s.games IS NULL OR EXISTS (
                    SELECT 1 FROM json_each(s.games) j WHERE json_extract(j.value, '$.id') = l.game_id))
            ORDER BY l.twitch_user_id, s.id
            """
        )
        return [PendingAnnouncement(*row) for row in rows]

    async def record_announcement(
        self, pending: PendingAnnouncement, message_id: int | None, stream: LiveStream | None = None
    ) -> None:
        """Mark a stream as announced for one subscription, with what its card shows; committed at once to
        keep the crash-between-send-and-commit window as small as possible."""
        now = _now()
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute(
                """
                INSERT OR IGNORE INTO announcements
                    (subscription_id, stream_id, twitch_user_id, guild_id, channel_id, message_id, created_at,
                     title, game_name, viewer_count, thumbnail_url, started_at, card_updated_at)
                SELECT :sub, :stream_id, :user_id, :guild_id, :channel_id, :message_id, :now,
                       :title, :game, :viewers, :thumbnail, :started_at, :now
                WHERE EXISTS (SELECT 1 FROM subscriptions WHERE id = :sub)
                """,
                {
                    "sub": pending.subscription_id,
                    "stream_id": pending.stream_id,
                    "user_id": pending.twitch_user_id,
                    "guild_id": pending.guild_id,
                    "channel_id": pending.channel_id,
                    "message_id": message_id,
                    "now": now,
                    "title": stream.title if stream else None,
                    "game": stream.game_name if stream else None,
                    "viewers": stream.viewer_count if stream else None,
                    "thumbnail": stream.thumbnail_url if stream else None,
                    "started_at": stream.started_at.isoformat() if stream else None,
                },
            )
            await conn.execute(
                "UPDATE subscriptions SET last_error = NULL WHERE id = ? AND last_error IS NOT NULL",
                (pending.subscription_id,),
            )

    async def cards_to_update(self, not_since: datetime) -> list[CardUpdate]:
        """Live cards (in guilds with live updates on) whose stream's title, game, viewers or thumbnail
        differ from what the card shows and that were not edited after `not_since` (one query)."""
        rows = await self._fetchall(
            f"""
            SELECT a.subscription_id, a.guild_id, a.channel_id, a.message_id,
                   coalesce(s.ping, gs.ping), coalesce(s.message_template, gs.message_template),
                   coalesce(gm.box_art_url, ''),
                   st.twitch_user_id, st.login, st.display_name, st.profile_image_url,
                   {_LIVE_COLUMNS}
            FROM announcements a
            JOIN live_streams l ON l.stream_id = a.stream_id AND l.twitch_user_id = a.twitch_user_id
            JOIN subscriptions s ON s.id = a.subscription_id
            JOIN streamers st ON st.twitch_user_id = a.twitch_user_id
            LEFT JOIN guild_settings gs ON gs.guild_id = a.guild_id
            LEFT JOIN games gm ON gm.id = l.game_id
            WHERE a.closed_at IS NULL AND a.ended_at IS NULL AND a.message_id IS NOT NULL
              AND coalesce(gs.live_updates, 1) = 1
              AND coalesce(a.card_updated_at, a.created_at) <= :cutoff
              AND (a.title IS NOT l.title OR a.game_name IS NOT l.game_name
                   OR a.viewer_count IS NOT l.viewer_count OR a.thumbnail_url IS NOT l.thumbnail_url)
            ORDER BY a.subscription_id
            """,
            {"cutoff": not_since.isoformat(timespec="seconds")},
        )
        return [
            CardUpdate(
                subscription_id=row[0],
                guild_id=row[1],
                channel_id=row[2],
                message_id=row[3],
                ping=row[4],
                template=row[5],
                box_art_url=row[6],
                streamer=Streamer(row[7], row[8], row[9], row[10]),
                live=_live(row[11:]),
            )
            for row in rows
        ]

    async def mark_cards_rendered(self, cards: Iterable[tuple[int, LiveStream]]) -> None:
        """Remember what (subscription id, stream) cards now show, and when they were edited."""
        now = _now()
        rows = [
            {
                "sub": sub_id,
                "stream_id": live.stream_id,
                "title": live.title,
                "game": live.game_name,
                "viewers": live.viewer_count,
                "thumbnail": live.thumbnail_url,
                "now": now,
            }
            for sub_id, live in cards
        ]
        if not rows:
            return
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.executemany(
                """
                UPDATE announcements SET title = :title, game_name = :game, viewer_count = :viewers,
                    thumbnail_url = :thumbnail, card_updated_at = :now
                WHERE subscription_id = :sub AND stream_id = :stream_id
                """,
                rows,
            )

    async def cards_to_close(self) -> list[CardToClose]:
        """Announcements whose stream has ended and whose card was not yet edited, deleted or kept."""
        rows = await self._fetchall(
            """
            SELECT a.subscription_id, a.stream_id, a.guild_id, a.channel_id, a.message_id,
                   coalesce(gs.end_action, 'edit'), coalesce(a.title, ''), coalesce(a.game_name, ''),
                   a.started_at, a.ended_at,
                   st.twitch_user_id, st.login, st.display_name, st.profile_image_url
            FROM announcements a
            JOIN streamers st ON st.twitch_user_id = a.twitch_user_id
            LEFT JOIN guild_settings gs ON gs.guild_id = a.guild_id
            WHERE a.closed_at IS NULL AND a.ended_at IS NOT NULL
            ORDER BY a.stream_id, a.subscription_id
            """
        )
        return [
            CardToClose(
                subscription_id=row[0],
                stream_id=row[1],
                guild_id=row[2],
                channel_id=row[3],
                message_id=row[4],
                end_action=_end_action(row[5]),
                title=row[6],
                game_name=row[7],
                started_at=_parse_time(row[8]) if row[8] else None,
                ended_at=_parse_time(row[9]) if row[9] else None,
                streamer=Streamer(row[10], row[11], row[12], row[13]),
            )
            for row in rows
        ]

    async def close_cards(self, cards: Iterable[tuple[int, str]]) -> None:
        """(subscription id, stream id) cards that are dealt with: never edited or deleted again. Also
        how a card whose message a human deleted is forgotten (it stays announced: never posted again)."""
        rows = [{"sub": sub_id, "stream_id": stream_id, "now": _now()} for sub_id, stream_id in cards]
        if not rows:
            return
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.executemany(
                """
                UPDATE announcements SET closed_at = :now
                WHERE subscription_id = :sub AND stream_id = :stream_id AND closed_at IS NULL
                """,
                rows,
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
