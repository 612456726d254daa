"""The PostgreSQL driver: an asyncpg pool, the shared SQL's parameters rewritten as `$n`, and the schema of
postgres_schema.py built and migrated under an advisory lock.

Reads take any pooled connection and run side by side; write transactions run one at a time within a process
(one asyncio lock, as on SQLite), each on one pooled connection. A connection problem at start-up is a
DatabaseError whose message names DATABASE_URL with its password left out.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import asyncpg

from twitch_notifier.db.driver import Backend, Row, SqlParams
from twitch_notifier.db.errors import DatabaseError, IntegrityViolation
from twitch_notifier.db.migrations import SCHEMA_VERSION
from twitch_notifier.db.paramstyle import bind, numbered
from twitch_notifier.db.postgres_schema import (
    BASELINE,
    BASELINE_VERSION,
    MIGRATIONS_AFTER_BASELINE,
    SCHEMA_LOCK_KEY,
)

__all__ = ["PostgresDriver", "redact_url", "rows_changed"]

_log = logging.getLogger(__name__)

_SCHEMES = ("postgresql", "postgres")
_REDACTED = "***"
_BOT_TABLES = ["guild_settings", "streamers", "subscriptions", "announcements", "live_streams"]


def redact_url(url: str) -> str:
    """The URL as it may be shown or logged: any password (in the user part or `?password=`) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{_REDACTED}@{hosts}" if has_password else f"{user}@{hosts}"
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", rf"\g<1>\g<2>{_REDACTED}", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _passwords(url: str) -> list[str]:
    """Every spelling of the URL's password that an error message could quote."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    found += [value for key, value in parse_qsl(parts.query, keep_blank_values=True) if key.lower() == "password"]
    found += [unquote(text) for text in found]
    return sorted({text for text in found if text}, key=len, reverse=True)


def _scrubbed(text: str, url: str) -> str:
    for password in _passwords(url):
        text = text.replace(password, _REDACTED)
    return text


def _connect_error(url: str, exc: BaseException) -> DatabaseError:
    """The operator's message for a pool that could not open."""
    shown = redact_url(url)
    detail = _scrubbed(str(exc) or type(exc).__name__, url)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        advice = "the database does not exist on that server: create it (createdb) or correct its name in the URL"
    elif isinstance(exc, asyncpg.InvalidPasswordError):
        advice = "the server refused the password: correct the user name or password in the URL"
    elif isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        advice = "the server refused the login: check the user name in the URL and the server's pg_hba.conf"
    elif isinstance(exc, OSError | TimeoutError):
        advice = "cannot reach the PostgreSQL server: check the host and port in the URL and that the server runs"
    elif isinstance(exc, ValueError | asyncpg.InterfaceError):
        advice = "not a usable PostgreSQL URL (the form is postgresql://user:password@host:port/database)"
    else:
        advice = "the PostgreSQL server refused the connection"
    return DatabaseError(f"DATABASE_URL {shown}: {advice} ({detail})")


def rows_changed(status: str) -> int:
    """The row count of a PostgreSQL command status ("UPDATE 3", "INSERT 0 1"); 0 when it carries none."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _Statements:
    """Runs statements on one connection (pooled, or holding the open transaction)."""

    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy[Any]) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: SqlParams = ()) -> list[Row]:
        statement = numbered(sql)
        try:
            records = await self._conn.fetch(statement.sql, *bind(statement, params))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityViolation(str(exc)) from exc
        return list(records)

    async def fetchone(self, sql: str, params: SqlParams = ()) -> Row | None:
        statement = numbered(sql)
        try:
            record: Row | None = await self._conn.fetchrow(statement.sql, *bind(statement, params))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityViolation(str(exc)) from exc
        return record

    async def execute(self, sql: str, params: SqlParams = ()) -> int:
        statement = numbered(sql)
        try:
            status = await self._conn.execute(statement.sql, *bind(statement, params))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityViolation(str(exc)) from exc
        return rows_changed(status)

    async def executemany(self, sql: str, rows: Iterable[SqlParams]) -> None:
        statement = numbered(sql)
        args = [bind(statement, params) for params in rows]
        if not args:
            return
        try:
            await self._conn.executemany(statement.sql, args)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityViolation(str(exc)) from exc


class PostgresDriver:
    """A PostgreSQL database. Use `await PostgresDriver.open(url)` and `await driver.close()`."""

    backend: Backend = "postgresql"

    def __init__(self, pool: asyncpg.Pool[Any], name: str) -> None:
        self._pool = pool
        self.name = name
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 5) -> PostgresDriver:
        """Connect a pool and migrate; an unreachable server, a refused login or an unknown database is a
        DatabaseError naming DATABASE_URL (password redacted), and so is a database of a newer bot."""
        try:
            scheme = urlsplit(url).scheme
        except ValueError:
            scheme = ""
        if scheme not in _SCHEMES:  # then where its password is cannot be told: the URL is not shown
            raise DatabaseError(
                "DATABASE_URL is not a PostgreSQL URL: it starts with postgresql:// (the form is "
                "postgresql://user:password@host:port/database)"
            )
        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _connect_error(url, exc) from None
        driver = cls(pool, redact_url(url))
        try:
            await driver._migrate()
        except BaseException:
            await pool.close()
            raise
        return driver

    async def _migrate(self) -> None:
        async with self._lock, self._pool.acquire() as conn, conn.transaction():
            # Held until this transaction ends: a second process starting now waits here, then finds it done.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
            version = await self._version_in(conn)
            if version > SCHEMA_VERSION:
                raise DatabaseError(
                    f"the database at DATABASE_URL {self.name} has schema version {version}, newer than this "
                    f"bot's {SCHEMA_VERSION}: upgrade the bot instead of running an older version on it"
                )
            if version == 0:
                await conn.execute(BASELINE)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", BASELINE_VERSION)
                version = BASELINE_VERSION
                _log.info("Database %s created at schema version %d", self.name, version)
            for migration in MIGRATIONS_AFTER_BASELINE:
                if migration.version <= version:
                    continue
                await conn.execute(migration.sql)
                await conn.execute("UPDATE schema_version SET version = $1", migration.version)
                _log.info(
                    "Database %s migrated to schema version %d: %s",
                    self.name,
                    migration.version,
                    migration.description,
                )

    async def _version_in(self, conn: asyncpg.pool.PoolConnectionProxy[Any]) -> int:
        """The schema version (0: an empty database); a database holding something else is refused."""
        if await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
            version = await conn.fetchval("SELECT max(version) FROM schema_version")
            if isinstance(version, int) and version >= BASELINE_VERSION:
                return version
            raise DatabaseError(
                f"the database at DATABASE_URL {self.name} has an unreadable schema version ({version!r}); "
                "it was not built by this bot: give the bot an empty database of its own"
            )
        found = await conn.fetchval(
            "SELECT count(*) FROM unnest($1::text[]) AS t(name) WHERE to_regclass(name) IS NOT NULL", _BOT_TABLES
        )
        if found:
            raise DatabaseError(
                f"the database at DATABASE_URL {self.name} holds tables named like the bot's but no schema "
                "version: it was not built by this bot; give the bot an empty database of its own"
            )
        return 0

    async def schema_version(self) -> int:
        async with self._pool.acquire() as conn:
            version = await conn.fetchval("SELECT version FROM schema_version")
        return int(version)

    async def close(self) -> None:
        async with self._lock:  # a transaction still running finishes first
            await self._pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Statements]:
        async with self._lock, self._pool.acquire() as conn, conn.transaction():
            yield _Statements(conn)

    async def fetchall(self, sql: str, params: SqlParams = ()) -> list[Row]:
        async with self._pool.acquire() as conn:
            return await _Statements(conn).fetchall(sql, params)

    async def fetchone(self, sql: str, params: SqlParams = ()) -> Row | None:
        async with self._pool.acquire() as conn:
            return await _Statements(conn).fetchone(sql, params)

    async def execute(self, sql: str, params: SqlParams = ()) -> int:
        async with self.transaction() as statements:
            return await statements.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[SqlParams]) -> None:
        async with self.transaction() as statements:
            await statements.executemany(sql, rows)
