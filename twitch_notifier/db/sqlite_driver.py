"""The SQLite driver: one long-lived aiosqlite connection to a database file, the file's instance lock, its
PRAGMAs, and the migrations of twitch_notifier/db/migrations.py (recorded in `PRAGMA user_version`).

One connection serves every coroutine, and a transaction is the connection's state: whatever ran on it while
another coroutine's transaction is open would see (or write into) that transaction. So every statement takes
one asyncio lock, and a transaction holds it from BEGIN to COMMIT or ROLLBACK. aiosqlite runs the connection's
statements one at a time on its own thread anyway: the lock costs no parallelism, it only keeps a reader from
slipping in between a transaction's statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from twitch_notifier.db.driver import Backend, Row, SqlParams
from twitch_notifier.db.errors import DatabaseError, DatabaseLocked, IntegrityViolation
from twitch_notifier.db.migrations import MIGRATIONS, SCHEMA_VERSION, Migration

__all__ = ["MIN_SQLITE", "SqliteDriver"]

_log = logging.getLogger(__name__)

MIN_SQLITE = (3, 39, 0)
"""The oldest SQLite the shared SQL runs on: ON CONFLICT after INSERT…SELECT (3.24), RETURNING (3.35) and
IS [NOT] DISTINCT FROM (3.39)."""


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


# -- statements ----------------------------------------------------------------------------------------------


class _Statements:
    """Runs statements on the connection without taking the lock: the caller holds it."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: SqlParams = ()) -> list[Row]:
        try:
            async with self._conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc

    async def fetchone(self, sql: str, params: SqlParams = ()) -> Row | None:
        try:
            async with self._conn.execute(sql, params) as cursor:
                row: sqlite3.Row | None = await cursor.fetchone()
                return row
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc

    async def execute(self, sql: str, params: SqlParams = ()) -> int:
        try:
            async with self._conn.execute(sql, params) as cursor:
                return cursor.rowcount
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc

    async def executemany(self, sql: str, rows: Iterable[SqlParams]) -> None:
        try:
            await self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc


class SqliteDriver:
    """A database file (or ":memory:"). Use `await SqliteDriver.open(path)` and `await driver.close()`."""

    backend: Backend = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: str, *, lock_fd: int | None = None) -> None:
        self._conn = conn
        self._statements = _Statements(conn)
        self.name = path
        self._lock_fd = lock_fd
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteDriver:
        """Open (creating if absent) and migrate; a file that is not a usable database is an error, and so
        is a file another running bot has open (DatabaseLocked)."""
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise DatabaseError(
                f"this Python's SQLite is {sqlite3.sqlite_version}; the bot needs "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer"
            )
        lock_fd = _claim_file(path)
        try:
            try:
                # Autocommit mode: transactions are explicit (see `transaction()`), never opened behind our back.
                conn = await aiosqlite.connect(path, isolation_level=None)
            except sqlite3.Error as exc:
                raise DatabaseError(f"cannot open the database file {path!r}: {exc}") from exc
            conn.row_factory = aiosqlite.Row
            driver = cls(conn, path, lock_fd=lock_fd)
            try:
                await driver._configure()
                await driver._migrate()
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
        return driver

    async def _configure(self) -> None:
        # Reading the schema first makes a corrupt or foreign file fail here, before anything is written.
        async with self._conn.execute("SELECT count(*) FROM sqlite_master") as cursor:
            await cursor.fetchall()
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA foreign_keys=ON")
        await self._conn.execute("PRAGMA busy_timeout=5000")

    async def _migrate(self) -> None:
        version = await self.schema_version()
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"the database file {self.name!r} has schema version {version}, newer than this bot's "
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
                "Database %s migrated to schema version %d: %s", self.name, migration.version, migration.description
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
                        f"migrating {self.name!r} to schema version {migration.version} would break "
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

    async def schema_version(self) -> int:
        async with self._lock, self._conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        try:
            async with self._lock:  # a transaction still running finishes first
                try:
                    await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    # A read cut short at shutdown (its task cancelled) can leave a statement open, which locks
                    # the checkpoint ("database table is locked"). Nothing is lost: SQLite folds the WAL in when
                    # the file is finally closed, or at the next open. So a line in the log, not a traceback.
                    _log.warning("WAL checkpoint before closing %s did not run: %s", self.name, exc)
                await self._conn.close()
        finally:
            if self._lock_fd is not None:
                _release_instance_lock(self._lock_fd)
                self._lock_fd = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Statements]:
        async with self._lock:
            try:
                # Inside the try: aiosqlite runs a queued BEGIN even when the awaiting task is cancelled, and
                # an open transaction nobody rolls back would refuse every later write.
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._statements
            except BaseException:
                with contextlib.suppress(sqlite3.OperationalError):  # "no transaction is active"
                    await asyncio.shield(self._conn.execute("ROLLBACK"))
                raise
            else:
                await self._conn.execute("COMMIT")

    async def fetchall(self, sql: str, params: SqlParams = ()) -> list[Row]:
        async with self._lock:
            return await self._statements.fetchall(sql, params)

    async def fetchone(self, sql: str, params: SqlParams = ()) -> Row | None:
        async with self._lock:
            return await self._statements.fetchone(sql, params)

    async def execute(self, sql: str, params: SqlParams = ()) -> int:
        async with self.transaction() as statements:
            return await statements.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[SqlParams]) -> None:
        async with self.transaction() as statements:
            await statements.executemany(sql, rows)
