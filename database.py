"""Persistence: one long-lived aiosqlite connection, a versioned schema, and every SQL statement of the bot.

Knows nothing about Discord or Twitch clients; values cross its boundary as plain dataclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeAlias

import aiosqlite

from twitch_notifier.db.migrations import MIGRATIONS, Migration
from twitch_notifier.models import (
    KEEP,
    AlreadySubscribed,
    CardToClose,
    CardUpdate,
    Category,
    CategoryChange,
    EndAction,
    GuildSettings,
    GuildStreamer,
    LiveStream,
    PendingAnnouncement,
    Streamer,
    StreamHistory,
    StreamObservation,
    Subscription,
    SubscriptionLimitReached,
    SubscriptionUpdate,
    ViewerSample,
)

SqlParams: TypeAlias = Sequence[object] | Mapping[str, object]
"""Bound parameters of one statement: positional or named, never interpolated."""

_log = logging.getLogger(__name__)

SCHEMA_VERSION = len(MIGRATIONS)

Clock = Callable[[], datetime]


class DatabaseError(Exception):
    """The database file cannot be used (unreadable, corrupt, or from a newer version of the bot)."""


class DatabaseLocked(DatabaseError):
    """Another running bot holds the database file: two bots on one file would announce everything twice."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _stored_time(moment: datetime) -> str:
    """The one way a time is written: ISO-8601 in UTC to the second, e.g. `2026-11-27T12:00:00+00:00`.

    One format for every column is what makes SQL's text comparisons (`updated_at < ?`) compare times."""
    if moment.tzinfo is None:
        raise ValueError(f"a stored time must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _read_time(text: str) -> datetime:
    """The one way a stored time is read: an aware datetime in UTC (text without an offset is UTC)."""
    parsed = datetime.fromisoformat(text)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _read_optional_time(text: str | None) -> datetime | None:
    return _read_time(text) if text else None


def _end_action(value: str | None) -> EndAction:
    """A stored end action; an unknown value (written by a newer version) keeps the card untouched."""
    if value is None:
        return EndAction.EDIT
    try:
        return EndAction(value)
    except ValueError:
        return EndAction.KEEP


# -- one instance per database file ------------------------------------------------------------------------


def _claim_file(path: str) -> int | None:
    """Check the database file's directory exists and take the instance lock (None for ":memory:")."""
    if path == ":memory:":
        return None
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise DatabaseError(f"DATABASE_PATH {path!r}: the directory {str(parent)!r} does not exist")
    return _take_instance_lock(path)


def _lock_path(path: str) -> Path:
    resolved = Path(path).resolve()  # two spellings of one file (relative, symlinked) share one lock
    return resolved.with_name(resolved.name + ".lock")


def _take_instance_lock(path: str) -> int:
    """Hold `<path>.lock` exclusively, without waiting, for as long as the returned descriptor stays open.

    flock belongs to the open file, so the kernel releases it when the process dies, even by `kill -9`: a
    crashed bot never leaves a stale lock behind. The holder's pid is written in for the refusal message."""
    lock_path = _lock_path(path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DatabaseError(f"cannot create the lock file {str(lock_path)!r} beside the database file: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise DatabaseLocked(
            f"the database file {path!r} is in use by another running bot (pid {holder or 'unknown'}); "
            "stop it first, or give this one its own DATABASE_PATH"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise DatabaseError(f"cannot lock {str(lock_path)!r}: {exc}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _lock_holder(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None  # the holder has not written its pid yet, or the file is not ours


def _release_instance_lock(fd: int) -> None:
    # The file itself stays: a process that opened it just before a removal would lock the removed file
    # while the next one creates and locks a new one, and both would run. An empty file says nobody holds it.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)


# -- columns and rows --------------------------------------------------------------------------------------
# Columns of several tables are read by name, so each gets an alias no other table in the query uses.

_STREAMER_COLUMNS = """
    st.twitch_user_id AS streamer_user_id, st.login AS streamer_login,
    st.display_name AS streamer_display_name, st.profile_image_url AS streamer_avatar
"""
_SUBSCRIPTION_COLUMNS = f"""
    s.id AS sub_id, s.guild_id AS sub_guild_id, s.channel_id AS sub_channel_id, s.last_error AS sub_last_error,
    s.ping AS sub_ping, s.message_template AS sub_template, s.games AS sub_games,
    st.missing_since AS streamer_missing_since, st.push_state AS streamer_push_state, {_STREAMER_COLUMNS}
"""
_LIVE_COLUMNS = """
    l.twitch_user_id AS live_user_id, l.stream_id AS live_stream_id, l.title AS live_title,
    l.game_name AS live_game_name, l.viewer_count AS live_viewer_count, l.started_at AS live_started_at,
    l.thumbnail_url AS live_thumbnail_url, l.missed_polls AS live_missed_polls, l.game_id AS live_game_id,
    l.pushed_at AS live_pushed_at
"""
# Whether subscription `s`'s game filter lets live stream `l` through: NULL lets everything through; a
# filter that is not a JSON array of {id, name} objects lets nothing through (the reading _games_from_json
# gives it). CASE tries its branches in order and stops at the first, so SQLite's JSON functions never see
# text they cannot parse: they raise on it, which would fail the whole query and the poll for every guild.
# Elements are reached by path into the validated document, never by re-parsing an element's own text.
_GAME_FILTER_ALLOWS = """
    CASE
        WHEN s.games IS NULL THEN 1
        WHEN NOT json_valid(s.games) THEN 0
        WHEN json_type(s.games) != 'array' THEN 0
        WHEN EXISTS (SELECT 1 FROM json_each(s.games) j
                     WHERE json_type(s.games, j.fullkey || '.id') IS NULL
                        OR json_type(s.games, j.fullkey || '.name') IS NULL) THEN 0
        ELSE EXISTS (SELECT 1 FROM json_each(s.games) j
                     WHERE json_extract(s.games, j.fullkey || '.id') = l.game_id)
    END
"""
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
# Settings a diagnostic may read (`Database.pragma`); every one of them only reads.
_DIAGNOSTIC_PRAGMAS = frozenset({"journal_mode", "foreign_keys", "busy_timeout", "user_version", "synchronous"})


def _games_json(games: Iterable[Category] | None) -> str | None:
    if games is None:
        return None
    return json.dumps([{"id": g.id, "name": g.name} for g in games])


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python accepts them, SQLite's json_valid not


def _games_from_json(text: str | None) -> tuple[tuple[Category, ...] | None, bool]:
    """A stored game filter and whether it was unreadable. Unreadable (not JSON, not a list of {id, name})
    fails closed, as in _GAME_FILTER_ALLOWS: an empty filter, which announces nothing, and a flag to show."""
    if text is None:
        return None, False
    try:
        items = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return (), True
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and "id" in item and "name" in item for item in items
    ):
        return (), True
    return tuple(Category(str(item["id"]), str(item["name"])) for item in items), False


def _streamer(row: sqlite3.Row) -> Streamer:
    return Streamer(
        twitch_user_id=row["streamer_user_id"],
        login=row["streamer_login"],
        display_name=row["streamer_display_name"],
        profile_image_url=row["streamer_avatar"],
    )


def _subscription(row: sqlite3.Row) -> Subscription:
    games, games_unreadable = _games_from_json(row["sub_games"])
    return Subscription(
        id=row["sub_id"],
        guild_id=row["sub_guild_id"],
        channel_id=row["sub_channel_id"],
        last_error=row["sub_last_error"],
        streamer=_streamer(row),
        missing_since=_read_optional_time(row["streamer_missing_since"]),
        ping=row["sub_ping"],
        message_template=row["sub_template"],
        games=games,
        games_unreadable=games_unreadable,
        push_state=row["streamer_push_state"],
    )


def _live(row: sqlite3.Row) -> LiveStream:
    return LiveStream(
        twitch_user_id=row["live_user_id"],
        stream_id=row["live_stream_id"],
        title=row["live_title"],
        game_name=row["live_game_name"],
        viewer_count=row["live_viewer_count"],
        started_at=_read_time(row["live_started_at"]),
        thumbnail_url=row["live_thumbnail_url"],
        missed_polls=row["live_missed_polls"],
        game_id=row["live_game_id"] or "",
        pushed_at=_read_optional_time(row["live_pushed_at"]),
    )


_HISTORY_COLUMNS = """
    h.id AS h_id, h.stream_id AS h_stream_id, h.twitch_user_id AS h_user_id, h.started_at AS h_started_at,
    h.last_seen_at AS h_last_seen_at, h.ended_at AS h_ended_at, h.peak_viewers AS h_peak,
    h.viewer_seconds AS h_viewer_seconds, h.observed_seconds AS h_observed_seconds
"""


def _history_rows(observations: Iterable[StreamObservation], moment: datetime) -> list[dict[str, object]]:
    """One row per stream observed (the last observation of a stream wins), keyed by seconds since its start."""
    now = _stored_time(moment)
    rows: dict[str, dict[str, object]] = {
        o.stream_id: {
            "stream_id": o.stream_id,
            "user_id": o.twitch_user_id,
            "started_at": _stored_time(o.started_at),
            "now": now,
            # A clock a little behind Twitch's would put a sample before the start.
            "offset": max(0, int((moment - o.started_at).total_seconds())),
            "viewers": o.viewers,
            "game_id": o.game_id,
            "game_name": o.game_name,
        }
        for o in observations
    }
    return list(rows.values())


def _history(
    row: sqlite3.Row,
    samples: Mapping[int, Sequence[ViewerSample]] | None = None,
    categories: Mapping[int, Sequence[CategoryChange]] | None = None,
) -> StreamHistory:
    history_id = row["h_id"]
    return StreamHistory(
        stream_id=row["h_stream_id"],
        twitch_user_id=row["h_user_id"],
        started_at=_read_time(row["h_started_at"]),
        last_seen_at=_read_time(row["h_last_seen_at"]),
        ended_at=_read_optional_time(row["h_ended_at"]),
        peak_viewers=row["h_peak"],
        samples=tuple(samples.get(history_id, ())) if samples else (),
        categories=tuple(categories.get(history_id, ())) if categories else (),
        viewer_seconds=row["h_viewer_seconds"],
        observed_seconds=row["h_observed_seconds"],
    )


class Database:
    """All of the bot's storage. Use `await Database.open(path)` and `await db.close()`."""

    def __init__(
        self, conn: aiosqlite.Connection, path: str, *, clock: Clock = _utc_now, lock_fd: int | None = None
    ) -> None:
        self._conn = conn
        self.path = path
        self._clock = clock
        self._lock_fd = lock_fd
        # One connection serves every coroutine, and a transaction is the connection's state: whatever ran on
        # it while another coroutine's transaction is open would see (or write into) that transaction. So
        # every statement takes this lock, and a transaction holds it from BEGIN to COMMIT or ROLLBACK.
        # aiosqlite runs the connection's statements one at a time on its own thread anyway: the lock costs
        # no parallelism, it only keeps a reader from slipping in between a transaction's statements.
        self._lock = asyncio.Lock()
        self.query_count = 0  # statements executed; benchmarks use it to prove O(1) queries per cycle

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str, *, clock: Clock = _utc_now) -> Database:
        """Open (creating if absent) and migrate; a file that is not a usable database is an error, and so
        is a file another running bot has open (DatabaseLocked). `clock` gives the time every stored
        timestamp is taken from."""
        lock_fd = _claim_file(path)
        try:
            try:
                # Autocommit mode: transactions are explicit (see `transaction()`), never opened behind our back.
                conn = await aiosqlite.connect(path, isolation_level=None)
            except sqlite3.Error as exc:
                raise DatabaseError(f"cannot open the database file {path!r}: {exc}") from exc
            conn.row_factory = aiosqlite.Row
            db = cls(conn, path, clock=clock, lock_fd=lock_fd)
            try:
                await db._configure()
                await db._migrate()
            except sqlite3.DatabaseError as exc:
                await conn.close()
                raise DatabaseError(
                    f"the database file {path!r} is not a usable SQLite database ({exc}); restore it from a "
                    "backup or move it away to start with an empty one"
                ) from exc
            except BaseException:
                await conn.close()
                raise
        except BaseException:
            if lock_fd is not None:
                _release_instance_lock(lock_fd)
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
        version = row["user_version"] if row else 0
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"the database file {self.path!r} has schema version {version}, newer than this bot's "
                f"{SCHEMA_VERSION}: upgrade the bot instead of running an older version on it"
            )
        for migration in MIGRATIONS[version:]:
            if migration.rebuilds_tables:
                await self._rebuilding_migration(migration)
            else:
                # executescript commits on its own, so the version bump is part of the same script.
                await self._conn.executescript(
                    f"BEGIN; {migration.sql}; PRAGMA user_version = {migration.version}; COMMIT;"
                )
            _log.info(
                "Database %s migrated to schema version %d: %s", self.path, migration.version, migration.description
            )

    async def _rebuilding_migration(self, migration: Migration) -> None:
        await self._conn.execute("PRAGMA foreign_keys=OFF")
        try:
            try:
                # executescript commits anything pending first, then leaves this script's transaction open.
                await self._conn.executescript(f"BEGIN; {migration.sql};")
                async with self._conn.execute("PRAGMA foreign_key_check") as cursor:
                    broken = list(await cursor.fetchall())
                if broken:
                    raise DatabaseError(
                        f"migrating {self.path!r} to schema version {migration.version} would break "
                        f"{len(broken)} foreign key(s) (first: {tuple(broken[0])}); nothing was changed"
                    )
                await self._conn.execute(f"PRAGMA user_version = {migration.version}")
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")
        finally:
            await self._conn.execute("PRAGMA foreign_keys=ON")

    async def close(self) -> None:
        try:
            async with self._lock:  # a transaction still running finishes first
                try:
                    await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    _log.warning("WAL checkpoint failed while closing %s", self.path, exc_info=True)
                await self._conn.close()
        finally:
            if self._lock_fd is not None:
                _release_instance_lock(self._lock_fd)
                self._lock_fd = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; rolled back if anything inside raises. Nothing else runs on the connection
        until it ends, so inside it use the connection it yields, never this class's own methods."""
        async with self._lock:
            try:
                # Inside the try: aiosqlite runs a queued BEGIN even when the awaiting task is cancelled, and
                # an open transaction nobody rolls back would refuse every later write.
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.OperationalError):  # "no transaction is active"
                    await asyncio.shield(self._conn.execute("ROLLBACK"))
                raise
            else:
                await self._conn.execute("COMMIT")

    async def _fetchall(self, sql: str, params: SqlParams = ()) -> list[sqlite3.Row]:
        self.query_count += 1
        async with self._lock, self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _fetchone(self, sql: str, params: SqlParams = ()) -> sqlite3.Row | None:
        self.query_count += 1
        async with self._lock, self._conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _execute(self, sql: str, params: SqlParams = ()) -> int:
        """Run one statement in its own transaction; returns the number of rows changed."""
        self.query_count += 1
        async with self.transaction() as conn, conn.execute(sql, params) as cursor:
            return cursor.rowcount

    def _now(self) -> str:
        return _stored_time(self._clock())

    async def pragma(self, name: str) -> object:
        """A read-only diagnostic: the value of journal_mode, foreign_keys, busy_timeout, user_version or
        synchronous, or for foreign_key_check the list of broken references (empty when all hold)."""
        if name == "foreign_key_check":
            return [tuple(row) for row in await self._fetchall("PRAGMA foreign_key_check")]
        if name not in _DIAGNOSTIC_PRAGMAS:
            raise ValueError(f"not a diagnostic pragma: {name!r}")
        row = await self._fetchone(f"PRAGMA {name}")  # the name is one of the fixed set above
        return row[0] if row else None  # a setting answers one row of one column

    # -- guild settings and presence ---------------------------------------------------------------

    async def set_announce_channel(self, guild_id: int, channel_id: int) -> None:
        now = self._now()
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute(
                """
                INSERT INTO guild_settings (guild_id, announce_channel_id, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (guild_id) DO UPDATE SET
                    announce_channel_id = excluded.announce_channel_id, updated_at = excluded.updated_at
                """,
                (guild_id, channel_id, now),
            )
            await self._mark_seen(conn, [guild_id], now)

    async def get_announce_channel(self, guild_id: int) -> int | None:
        row = await self._fetchone("SELECT announce_channel_id FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return row["announce_channel_id"] if row else None

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
        return GuildSettings(
            guild_id,
            announce_channel_id=row["announce_channel_id"],
            ping=row["ping"],
            message_template=row["message_template"],
            end_action=_end_action(row["end_action"]),
            live_updates=bool(row["live_updates"]),
        )

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
        now = self._now()
        params = {f"v_{name}": (int(v) if isinstance(v, bool) else v) for name, v in values.items()}
        params |= {"guild_id": guild_id, "now": now}
        insert_values = ", ".join(f":v_{name}" for name in values)
        updates = ", ".join(f"{column} = excluded.{column}" for column in columns)
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute(
                f"""
                INSERT INTO guild_settings (guild_id, {", ".join(columns)}, updated_at)
                VALUES (:guild_id, {insert_values}, :now)
                ON CONFLICT (guild_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at
                """,
                params,
            )
            await self._mark_seen(conn, [guild_id], now)
        return await self.get_guild_settings(guild_id)

    async def reset_guild_settings(self, guild_id: int, names: Iterable[str]) -> GuildSettings:
        """Put some of a guild's settings back to their defaults."""
        return await self.update_guild_settings(guild_id, **{name: _GUILD_SETTINGS_DEFAULTS[name] for name in names})

    async def guild_ids(self) -> set[int]:
        """Every guild the database holds anything for."""
        rows = await self._fetchall(
            "SELECT guild_id AS guild_id FROM subscriptions UNION SELECT guild_id FROM guild_settings"
        )
        return {row["guild_id"] for row in rows}

    async def delete_guild(self, guild_id: int, *, unseen_since: datetime | None = None) -> bool:
        """Forget everything about a guild (the bot was removed from it); returns whether it did.

        With `unseen_since`, only if the guild has still not been seen since then, checked in the same
        transaction: a guild that re-added the bot a moment ago keeps its configuration."""
        self.query_count += 1
        async with self.transaction() as conn:
            if unseen_since is not None:
                async with conn.execute(
                    "SELECT 1 FROM guilds_seen WHERE guild_id = ? AND last_seen_at >= ?",
                    (guild_id, _stored_time(unseen_since)),
                ) as cursor:
                    if await cursor.fetchone() is not None:
                        return False
            await conn.execute("DELETE FROM subscriptions WHERE guild_id = ?", (guild_id,))
            await conn.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
            await conn.execute("DELETE FROM guilds_seen WHERE guild_id = ?", (guild_id,))
            await self._delete_orphan_streamers(conn)
        return True

    async def mark_guilds_seen(self, guild_ids: Iterable[int], now: datetime) -> None:
        """Discord listed these guilds at `now` (READY, a guild becoming available or joined). A READY that
        lists fewer guilds than usual then forgets nothing: absent guilds keep their last sighting."""
        ids = list(dict.fromkeys(guild_ids))
        if not ids:
            return
        self.query_count += 1
        async with self.transaction() as conn:
            await self._mark_seen(conn, ids, _stored_time(now))

    async def absent_guilds(self, not_seen_since: datetime) -> list[int]:
        """Guilds the database holds anything for whose last sighting is before `not_seen_since` (or that
        were never seen): the ones the bot may have been removed from while it was not listening."""
        rows = await self._fetchall(
            """
            SELECT held.guild_id AS guild_id
            FROM (SELECT guild_id FROM subscriptions UNION SELECT guild_id FROM guild_settings) held
            LEFT JOIN guilds_seen seen ON seen.guild_id = held.guild_id
            WHERE seen.last_seen_at IS NULL OR seen.last_seen_at < ?
            ORDER BY held.guild_id
            """,
            (_stored_time(not_seen_since),),
        )
        return [row["guild_id"] for row in rows]

    @staticmethod
    async def _mark_seen(conn: aiosqlite.Connection, guild_ids: Iterable[int], now: str) -> None:
        # A command from a guild is a sighting too, so every guild holding data has one. A sighting never
        # moves back in time (a slow READY handler racing a newer event).
        await conn.executemany(
            """
            INSERT INTO guilds_seen (guild_id, last_seen_at) VALUES (?, ?)
            ON CONFLICT (guild_id) DO UPDATE SET last_seen_at = max(last_seen_at, excluded.last_seen_at)
            """,
            [(guild_id, now) for guild_id in guild_ids],
        )

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
        max_per_guild: int | None = None,
    ) -> Subscription:
        """Follow a streamer in a guild's channel; raises AlreadySubscribed if that channel already does, and
        SubscriptionLimitReached if the guild already has `max_per_guild` subscriptions. The count and the
        insert share one transaction, so adds arriving together cannot all pass the limit."""
        now = self._now()
        self.query_count += 1
        async with self.transaction() as conn:
            if max_per_guild is not None:
                async with conn.execute(
                    "SELECT count(*) AS n FROM subscriptions WHERE guild_id = ?", (guild_id,)
                ) as cursor:
                    row = await cursor.fetchone()
                if row is not None and row["n"] >= max_per_guild:
                    raise SubscriptionLimitReached(max_per_guild)
            await self._upsert_streamer(conn, streamer, now)
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
                        now,
                        ping,
                        message_template,
                        _games_json(games),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadySubscribed(streamer.login) from exc
            subscription_id = cursor.lastrowid or 0
            if games:
                await self._upsert_games(conn, games, now)
            await self._mark_seen(conn, [guild_id], now)
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
        now = self._now()
        self.query_count += 1
        async with self.transaction() as conn:
            try:
                await conn.execute(f"UPDATE subscriptions SET {', '.join(sets)} WHERE id = :id", params)
            except sqlite3.IntegrityError as exc:
                raise AlreadySubscribed(str(subscription_id)) from exc
            if update.games is not KEEP and update.games is not None:
                await self._upsert_games(conn, update.games, now)

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

    async def count_subscriptions(self, guild_id: int) -> int:
        row = await self._fetchone("SELECT count(*) AS n FROM subscriptions WHERE guild_id = ?", (guild_id,))
        return row["n"] if row else 0

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
                subscription=_subscription(row),
                live=_live(row) if row["live_user_id"] is not None else None,
            )
            for row in rows
        ]

    async def monitored_user_ids(self) -> list[str]:
        """Every Twitch user id followed by at least one guild: the poll's one read of who to check."""
        rows = await self._fetchall("SELECT DISTINCT twitch_user_id FROM subscriptions")
        return [row["twitch_user_id"] for row in rows]

    async def streamers_by_id(self, user_ids: Iterable[str]) -> dict[str, Streamer]:
        rows = await self._fetchall(
            f"""
            SELECT {_STREAMER_COLUMNS} FROM streamers st
            WHERE st.twitch_user_id IN (SELECT value FROM json_each(?))
            """,
            (json.dumps(list(user_ids)),),
        )
        return {streamer.twitch_user_id: streamer for streamer in map(_streamer, rows)}

    async def update_streamer_names(self, streamers: Iterable[Streamer]) -> None:
        """Refresh logins/display names (renames) and avatars reported by Twitch."""
        now = self._now()
        rows = [
            {
                "id": s.twitch_user_id,
                "login": s.login,
                "name": s.display_name,
                "avatar": s.profile_image_url,
                "now": now,
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
        now = self._now()
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

    # -- EventSub ------------------------------------------------------------------------------------

    async def get_state(self, key: str) -> str | None:
        """A value the bot keeps about itself (e.g. its EventSub conduit id), or None."""
        row = await self._fetchone("SELECT value FROM bot_state WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def set_state(self, key: str, value: str | None) -> None:
        """Store (None: forget) a value the bot keeps about itself."""
        if value is None:
            await self._execute("DELETE FROM bot_state WHERE key = ?", (key,))
            return
        await self._execute(
            """
            INSERT INTO bot_state (key, value, updated_at) VALUES (?, ?, ?)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
            """,
            (key, value, self._now()),
        )

    async def push_states(self) -> dict[str, str]:
        """Followed streamers that are not pushed, with why ('poll_only', or a revocation status)."""
        rows = await self._fetchall("SELECT twitch_user_id, push_state FROM streamers WHERE push_state IS NOT NULL")
        return {row["twitch_user_id"]: row["push_state"] for row in rows}

    async def set_push_states(self, states: Mapping[str, str | None]) -> None:
        """Record (None: clear) why streamers are not pushed; unknown user ids are ignored."""
        if not states:
            return
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.executemany(
                "UPDATE streamers SET push_state = ? WHERE twitch_user_id = ? AND push_state IS NOT ?",
                [(state, user_id, state) for user_id, state in states.items()],
            )

    async def set_subscription_error(self, subscription_id: int, error: str | None, *, channel_id: int) -> None:
        """Record why posting into `channel_id` failed (None clears it), unless the subscription has been
        pointed at another channel meanwhile: the old channel's failure must not overwrite an admin's repair."""
        await self._execute(
            "UPDATE subscriptions SET last_error = ? WHERE id = ? AND channel_id = ?",
            (error, subscription_id, channel_id),
        )

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
                # OR IGNORE: a streamer the default channel already announces keeps that entry; the one of the
                # deleted channel stays behind, marked, for the admin to remove.
                cursor = await conn.execute(
                    "UPDATE OR IGNORE subscriptions SET channel_id = ?, last_error = NULL "
                    "WHERE guild_id = ? AND channel_id = ?",
                    (default, guild_id, channel_id),
                )
                moved = cursor.rowcount
                cursor = await conn.execute(
                    "UPDATE subscriptions SET last_error = ? WHERE guild_id = ? AND channel_id = ?",
                    (error, guild_id, channel_id),
                )
                return moved, cursor.rowcount
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
            # OR IGNORE: an entry whose streamer `to_channel` already announces stays where it was (marked).
            cursor = await conn.executemany(
                "UPDATE OR IGNORE subscriptions SET channel_id = ?, last_error = NULL "
                "WHERE guild_id = ? AND channel_id = ?",
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
    async def _upsert_streamer(conn: aiosqlite.Connection, streamer: Streamer, now: str) -> None:
        await conn.execute(
            """
            INSERT INTO streamers (twitch_user_id, login, display_name, profile_image_url, updated_at)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (twitch_user_id) DO UPDATE SET
                login = excluded.login, display_name = excluded.display_name,
                profile_image_url = excluded.profile_image_url, updated_at = excluded.updated_at
            """,
            (streamer.twitch_user_id, streamer.login, streamer.display_name, streamer.profile_image_url, now),
        )

    @staticmethod
    async def _upsert_games(conn: aiosqlite.Connection, games: Iterable[Category], now: str) -> None:
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
            [{"id": g.id, "name": g.name, "art": g.box_art_url, "now": now} for g in games],
        )

    # -- game box art cache ------------------------------------------------------------------------

    async def store_games(self, games: Iterable[Category]) -> None:
        games = list(games)
        if not games:
            return
        now = self._now()
        self.query_count += 1
        async with self.transaction() as conn:
            await self._upsert_games(conn, games, now)

    async def games_needing_art(self, game_ids: Iterable[str], older_than: datetime) -> list[str]:
        """Of these game ids, those with no cached box art or art fetched before `older_than` (one query)."""
        ids = sorted({g for g in game_ids if g})
        if not ids:
            return []
        rows = await self._fetchall(
            """
            SELECT j.value AS game_id FROM json_each(?) j
            LEFT JOIN games g ON g.id = j.value
            WHERE g.id IS NULL OR g.box_art_url = '' OR g.updated_at < ?
            """,
            (json.dumps(ids), _stored_time(older_than)),
        )
        return [row["game_id"] for row in rows]

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
        return {live.twitch_user_id: live for live in map(_live, rows)}

    async def apply_live_changes(
        self,
        upserts: Iterable[LiveStream],
        missed: dict[str, int],
        ended: Iterable[str],
        ended_streams: Iterable[str] = (),
        observations: Iterable[StreamObservation] = (),
    ) -> None:
        """Record one poll's outcome in a single transaction: live/updated, missed once more, ended.

        `ended_streams` are the stream ids that are over (including ones replaced by a newer stream of the
        same streamer): their announcements are marked ended, with the time the stream was last seen, so
        the cards are turned into "was live" cards even if the bot stops before doing it; their history ends
        then too. `observations` go into the streams' history in the same transaction (see _record_history)."""
        moment = self._clock()
        now = _stored_time(moment)
        history_rows = _history_rows(observations, moment)
        ended_stream_ids = json.dumps(list(dict.fromkeys(ended_streams)))
        live_rows = [
            {
                "user_id": s.twitch_user_id,
                "stream_id": s.stream_id,
                "title": s.title,
                "game": s.game_name,
                "viewers": s.viewer_count,
                "started_at": _stored_time(s.started_at),
                "thumbnail": s.thumbnail_url,
                "missed": s.missed_polls,
                "game_id": s.game_id,
                "pushed_at": _stored_time(s.pushed_at) if s.pushed_at is not None else None,
                "now": now,
            }
            for s in upserts
        ]
        ended_rows = [(user_id,) for user_id in ended]
        missed_rows = [(count, user_id) for user_id, count in missed.items()]
        if not (live_rows or ended_rows or missed_rows or history_rows or ended_stream_ids != "[]"):
            return
        self.query_count += 1
        async with self.transaction() as conn:
            if history_rows:
                await self._record_history(conn, history_rows)
            if ended_stream_ids != "[]":
                await conn.execute(
                    "UPDATE stream_history SET ended_at = last_seen_at "
                    "WHERE ended_at IS NULL AND stream_id IN (SELECT value FROM json_each(?))",
                    (ended_stream_ids,),
                )
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
                                              started_at, thumbnail_url, missed_polls, last_seen_at, game_id,
                                              pushed_at)
                    SELECT :user_id, :stream_id, :title, :game, :viewers, :started_at, :thumbnail, :missed, :now,
                           :game_id, :pushed_at
                    WHERE EXISTS (SELECT 1 FROM streamers WHERE twitch_user_id = :user_id)
                    ON CONFLICT (twitch_user_id) DO UPDATE SET
                        stream_id = excluded.stream_id, title = excluded.title,
                        game_name = excluded.game_name, viewer_count = excluded.viewer_count,
                        started_at = excluded.started_at, thumbnail_url = excluded.thumbnail_url,
                        missed_polls = excluded.missed_polls, last_seen_at = excluded.last_seen_at,
                        game_id = excluded.game_id, pushed_at = excluded.pushed_at
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
        in it, so a stream switching into a listed category becomes pending then (and is announced once);
        one whose filter is unreadable never, without failing the query for the others."""
        rows = await self._fetchall(
            f"""
            SELECT s.id AS subscription_id, s.guild_id AS guild_id, s.channel_id AS channel_id,
                   l.twitch_user_id AS twitch_user_id, l.stream_id AS stream_id, s.last_error AS last_error,
                   coalesce(s.ping, gs.ping) AS ping,
                   coalesce(s.message_template, gs.message_template) AS template,
                   coalesce(gm.box_art_url, '') AS box_art_url
            FROM live_streams l
            JOIN subscriptions s ON s.twitch_user_id = l.twitch_user_id
            LEFT JOIN announcements a ON a.subscription_id = s.id AND a.stream_id = l.stream_id
            LEFT JOIN guild_settings gs ON gs.guild_id = s.guild_id
            LEFT JOIN games gm ON gm.id = l.game_id
            WHERE a.subscription_id IS NULL AND {_GAME_FILTER_ALLOWS}
            ORDER BY l.twitch_user_id, s.id
            """
        )
        return [
            PendingAnnouncement(
                subscription_id=row["subscription_id"],
                guild_id=row["guild_id"],
                channel_id=row["channel_id"],
                twitch_user_id=row["twitch_user_id"],
                stream_id=row["stream_id"],
                last_error=row["last_error"],
                ping=row["ping"],
                template=row["template"],
                box_art_url=row["box_art_url"],
            )
            for row in rows
        ]

    async def record_announcement(
        self, pending: PendingAnnouncement, message_id: int | None, stream: LiveStream | None = None
    ) -> None:
        """Mark a stream as announced for one subscription, with what its card shows; committed at once to
        keep the crash-between-send-and-commit window as small as possible."""
        now = self._now()
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
                    "started_at": _stored_time(stream.started_at) if stream else None,
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
            SELECT a.subscription_id AS subscription_id, a.guild_id AS guild_id, a.channel_id AS channel_id,
                   a.message_id AS message_id,
                   coalesce(s.ping, gs.ping) AS ping,
                   coalesce(s.message_template, gs.message_template) AS template,
                   coalesce(gm.box_art_url, '') AS box_art_url,
                   {_STREAMER_COLUMNS}, {_LIVE_COLUMNS}
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
            {"cutoff": _stored_time(not_since)},
        )
        return [
            CardUpdate(
                subscription_id=row["subscription_id"],
                guild_id=row["guild_id"],
                channel_id=row["channel_id"],
                message_id=row["message_id"],
                ping=row["ping"],
                template=row["template"],
                box_art_url=row["box_art_url"],
                streamer=_streamer(row),
                live=_live(row),
            )
            for row in rows
        ]

    async def mark_cards_rendered(self, cards: Iterable[tuple[int, LiveStream]]) -> None:
        """Remember what (subscription id, stream) cards now show, and when they were edited."""
        now = self._now()
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
        return await self._cards("a.ended_at IS NOT NULL", {})

    async def open_cards_of(self, subscription_id: int) -> list[CardToClose]:
        """Every card of one subscription not yet dealt with, live or ended: what is closed when it is
        removed. A live one gets the current time as its end."""
        return await self._cards("a.subscription_id = :sub", {"sub": subscription_id})

    async def _cards(self, condition: str, params: dict[str, object]) -> list[CardToClose]:
        # `condition` is one of the two fixed fragments above, never text from outside.
        rows = await self._fetchall(
            f"""
            SELECT a.subscription_id AS subscription_id, a.stream_id AS stream_id, a.guild_id AS guild_id,
                   a.channel_id AS channel_id, a.message_id AS message_id,
                   coalesce(gs.end_action, 'edit') AS end_action, coalesce(a.title, '') AS title,
                   coalesce(a.game_name, '') AS game_name, a.started_at AS started_at,
                   coalesce(a.ended_at, :now) AS ended_at,
                   {_STREAMER_COLUMNS}
            FROM announcements a
            JOIN streamers st ON st.twitch_user_id = a.twitch_user_id
            LEFT JOIN guild_settings gs ON gs.guild_id = a.guild_id
            WHERE a.closed_at IS NULL AND {condition}
            ORDER BY a.stream_id, a.subscription_id
            """,
            {**params, "now": self._now()},
        )
        return [
            CardToClose(
                subscription_id=row["subscription_id"],
                stream_id=row["stream_id"],
                guild_id=row["guild_id"],
                channel_id=row["channel_id"],
                message_id=row["message_id"],
                end_action=_end_action(row["end_action"]),
                title=row["title"],
                game_name=row["game_name"],
                started_at=_read_optional_time(row["started_at"]),
                ended_at=_read_optional_time(row["ended_at"]),
                streamer=_streamer(row),
            )
            for row in rows
        ]

    async def close_cards(self, cards: Iterable[tuple[int, str]]) -> None:
        """(subscription id, stream id) cards that are dealt with: never edited or deleted again. Also
        how a card whose message a human deleted is forgotten (it stays announced: never posted again)."""
        now = self._now()
        rows = [{"sub": sub_id, "stream_id": stream_id, "now": now} for sub_id, stream_id in cards]
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

    async def prune_announcements(self, older_than: datetime) -> int:
        """Forget announcements of streams long over (kept a while so a blinking stream never repeats)."""
        return await self._execute(
            """
            DELETE FROM announcements WHERE created_at < ?
            AND stream_id NOT IN (SELECT stream_id FROM live_streams)
            """,
            (_stored_time(older_than),),
        )

    # -- stream history (statistics) ---------------------------------------------------------------

    @staticmethod
    async def _record_history(conn: aiosqlite.Connection, rows: Sequence[Mapping[str, object]]) -> None:
        """Inside apply_live_changes' transaction: each stream seen is (re)opened and last seen now, with a
        viewer sample when the source counted viewers and a category change when its category differs from
        the last one recorded (the first one counts from the stream's start: the bot may have come late)."""
        await conn.executemany(
            """
            INSERT INTO stream_history (stream_id, twitch_user_id, started_at, last_seen_at, peak_viewers)
            SELECT :stream_id, :user_id, :started_at, :now, coalesce(:viewers, 0)
            WHERE EXISTS (SELECT 1 FROM streamers WHERE twitch_user_id = :user_id)
            ON CONFLICT (stream_id) DO UPDATE SET
                last_seen_at = max(last_seen_at, excluded.last_seen_at), ended_at = NULL,
                peak_viewers = max(peak_viewers, excluded.peak_viewers)
            """,
            rows,
        )
        sampled = [row for row in rows if row["viewers"] is not None]
        if sampled:
            await conn.executemany(
                """
                INSERT INTO stream_samples (history_id, offset_s, viewers)
                SELECT id, :offset, :viewers FROM stream_history WHERE stream_id = :stream_id
                ON CONFLICT (history_id, offset_s) DO UPDATE SET viewers = excluded.viewers
                """,
                sampled,
            )
        await conn.executemany(
            """
            INSERT INTO stream_categories (history_id, offset_s, game_id, game_name)
            SELECT h.id,
                   CASE WHEN EXISTS (SELECT 1 FROM stream_categories c WHERE c.history_id = h.id)
                        THEN :offset ELSE 0 END,
                   :game_id, :game_name
            FROM stream_history h
            WHERE h.stream_id = :stream_id AND :game_id IS NOT (
                SELECT c.game_id FROM stream_categories c WHERE c.history_id = h.id
                ORDER BY c.offset_s DESC LIMIT 1)
            ON CONFLICT (history_id, offset_s) DO UPDATE SET
                game_id = excluded.game_id, game_name = excluded.game_name
            """,
            rows,
        )

    async def _histories(
        self, condition: str, params: SqlParams, *, samples: Literal["all", "needed", "none"], categories: bool
    ) -> list[StreamHistory]:
        """History rows matching `condition` (one of this class's fixed fragments), oldest first, with their
        categories if asked, and samples: of every row, of those `needed` (rows whose totals are not kept,
        which are computed from the samples, and the latest row, which is charted), or of none."""
        rows = await self._fetchall(
            f"SELECT {_HISTORY_COLUMNS} FROM stream_history h WHERE {condition} ORDER BY h.started_at, h.id",
            params,
        )
        if not rows:
            return []
        by_id: dict[int, list[ViewerSample]] = {}
        if samples != "none":
            wanted = [
                row["h_id"] for row in rows if samples == "all" or row["h_viewer_seconds"] is None or row is rows[-1]
            ]
            for sample in await self._fetchall(
                """
                SELECT history_id, offset_s, viewers FROM stream_samples
                WHERE history_id IN (SELECT value FROM json_each(?)) ORDER BY history_id, offset_s
                """,
                (json.dumps(wanted),),
            ):
                by_id.setdefault(sample["history_id"], []).append(ViewerSample(sample["offset_s"], sample["viewers"]))
        changes: dict[int, list[CategoryChange]] = {}
        if categories:
            for change in await self._fetchall(
                """
                SELECT history_id, offset_s, game_id, game_name FROM stream_categories
                WHERE history_id IN (SELECT value FROM json_each(?)) ORDER BY history_id, offset_s
                """,
                (json.dumps([row["h_id"] for row in rows]),),
            ):
                changes.setdefault(change["history_id"], []).append(
                    CategoryChange(change["offset_s"], change["game_id"], change["game_name"])
                )
        return [_history(row, by_id, changes) for row in rows]

    async def stream_histories(self, stream_ids: Iterable[str]) -> dict[str, StreamHistory]:
        """The history of these streams, with every sample and category: for the recap of ended cards."""
        ids = json.dumps(sorted(set(stream_ids)))
        if ids == "[]":
            return {}
        found = await self._histories(
            "h.stream_id IN (SELECT value FROM json_each(:ids))", {"ids": ids}, samples="all", categories=True
        )
        return {history.stream_id: history for history in found}

    async def streamer_history(self, user_id: str, since: datetime | None) -> list[StreamHistory]:
        """One streamer's streams that were live at `since` or later (None: all kept), oldest first, with
        their categories and the samples the statistics need (see _histories)."""
        return await self._histories(
            "h.twitch_user_id = :user_id AND coalesce(h.ended_at, h.last_seen_at) >= :since",
            {"user_id": user_id, "since": _stored_time(since) if since is not None else ""},
            samples="needed",
            categories=True,
        )

    async def last_stream_started(self, user_id: str) -> datetime | None:
        """When the latest stream kept of this streamer began (None: no history at all)."""
        row = await self._fetchone(
            "SELECT max(started_at) AS started_at FROM stream_history WHERE twitch_user_id = ?", (user_id,)
        )
        return _read_optional_time(row["started_at"]) if row is not None else None

    async def guild_history(
        self, guild_id: int, since: datetime | None
    ) -> tuple[list[Streamer], dict[str, list[StreamHistory]]]:
        """A guild's followed streamers (each once) and their streams live at `since` or later, without
        samples or categories: the server ranking needs only each stream's times and peak."""
        streamers = await self._fetchall(
            f"""
            SELECT DISTINCT {_STREAMER_COLUMNS} FROM subscriptions s
            JOIN streamers st ON st.twitch_user_id = s.twitch_user_id
            WHERE s.guild_id = ? ORDER BY st.login
            """,
            (guild_id,),
        )
        found = await self._histories(
            """
            h.twitch_user_id IN (SELECT twitch_user_id FROM subscriptions WHERE guild_id = :guild_id)
            AND coalesce(h.ended_at, h.last_seen_at) >= :since
            """,
            {"guild_id": guild_id, "since": _stored_time(since) if since is not None else ""},
            samples="none",
            categories=False,
        )
        by_user: dict[str, list[StreamHistory]] = {}
        for history in found:
            by_user.setdefault(history.twitch_user_id, []).append(history)
        return [_streamer(row) for row in streamers], by_user

    async def prune_history(self, older_than: datetime) -> int:
        """Forget streams that ended before `older_than` (samples and categories go with them), and end at
        their last sighting any stream still open that is no longer live (left open by an older version, or
        by a crash between two writes); returns how many streams were forgotten."""
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute(
                """
                UPDATE stream_history SET ended_at = last_seen_at
                WHERE ended_at IS NULL AND stream_id NOT IN (SELECT stream_id FROM live_streams)
                """
            )
            cursor = await conn.execute(
                "DELETE FROM stream_history WHERE coalesce(ended_at, last_seen_at) < ?", (_stored_time(older_than),)
            )
            return cursor.rowcount

    async def history_to_thin(self, ended_before: datetime, limit: int) -> list[StreamHistory]:
        """Up to `limit` streams that ended before `ended_before` and still have every sample, oldest first."""
        return await self._histories(
            "h.id IN (SELECT id FROM stream_history WHERE ended_at < :before AND viewer_seconds IS NULL "
            "ORDER BY ended_at LIMIT :limit)",
            {"before": _stored_time(ended_before), "limit": limit},
            samples="all",
            categories=False,
        )

    async def store_thinned(self, histories: Iterable[StreamHistory]) -> None:
        """Replace the samples of these streams with their thinned ones and keep their totals (one transaction)."""
        items = [h for h in histories if h.viewer_seconds is not None and h.observed_seconds is not None]
        if not items:
            return
        self.query_count += 1
        async with self.transaction() as conn:
            for history in items:
                async with conn.execute(
                    "SELECT id FROM stream_history WHERE stream_id = ?", (history.stream_id,)
                ) as cursor:
                    row = await cursor.fetchone()
                if row is None:
                    continue  # forgotten meanwhile
                history_id = row["id"]
                await conn.execute("DELETE FROM stream_samples WHERE history_id = ?", (history_id,))
                await conn.executemany(
                    "INSERT INTO stream_samples (history_id, offset_s, viewers) VALUES (?, ?, ?)",
                    [(history_id, sample.offset, sample.viewers) for sample in history.samples],
                )
                await conn.execute(
                    "UPDATE stream_history SET viewer_seconds = ?, observed_seconds = ? WHERE id = ?",
                    (history.viewer_seconds, history.observed_seconds, history_id),
                )
