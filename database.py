"""Persistence: every SQL statement of the bot, a versioned schema, and the one store class, `Database`.

The statements are written once, in SQL that SQLite and PostgreSQL both accept, with a dialect fragment where
the two have no common spelling (`_Dialect`); twitch_notifier/db/ runs them: a SQLite file (DATABASE_PATH, the
embedded default) or a PostgreSQL database (DATABASE_URL). Knows nothing about Discord or Twitch clients; values
cross its boundary as plain dataclasses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from twitch_notifier.db.driver import Backend, Driver, Executor, Row, SqlParams
from twitch_notifier.db.errors import DatabaseError as DatabaseError
from twitch_notifier.db.errors import DatabaseLocked as DatabaseLocked
from twitch_notifier.db.errors import IntegrityViolation
from twitch_notifier.db.migrations import SCHEMA_VERSION as SCHEMA_VERSION
from twitch_notifier.db.sqlite_driver import SqliteDriver
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
    ShardScope,
    Streamer,
    StreamHistory,
    StreamObservation,
    Subscription,
    SubscriptionLimitReached,
    SubscriptionUpdate,
    ViewerSample,
)

__all__ = [
    "SCHEMA_VERSION",
    "Clock",
    "Database",
    "DatabaseError",
    "DatabaseLocked",
    "SqlParams",
    "open_database",
]

_log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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
_SQLITE_GAME_FILTER_ALLOWS = """
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
# The same in PostgreSQL, where a cast of text that is not JSON raises: notifier_try_json (postgres_schema.py)
# reads such text as NULL instead, and CASE's order keeps json_typeof and json_array_elements off it and off a
# document that is not an array. `->` is NULL for a key an element lacks and for an element that is no object.
_POSTGRES_GAME_FILTER_ALLOWS = """
    CASE
        WHEN s.games IS NULL THEN TRUE
        WHEN notifier_try_json(s.games) IS NULL THEN FALSE
        WHEN json_typeof(notifier_try_json(s.games)) != 'array' THEN FALSE
        WHEN EXISTS (SELECT 1 FROM json_array_elements(notifier_try_json(s.games)) j
                     WHERE j.value -> 'id' IS NULL OR j.value -> 'name' IS NULL) THEN FALSE
        ELSE EXISTS (SELECT 1 FROM json_array_elements(notifier_try_json(s.games)) j
                     WHERE j.value ->> 'id' = l.game_id)
    END
"""


@dataclass(frozen=True, slots=True)
class _Dialect:
    """The few fragments SQLite and PostgreSQL spell differently; every statement is otherwise written once.

    A list travels as one parameter, the JSON text of the list (json.dumps), on both: SQLite reads it with
    json_each, PostgreSQL with json_array_elements(_text)."""

    backend: Backend
    greatest: str
    """The scalar maximum of two values: max(a, b) in SQLite, greatest(a, b) in PostgreSQL."""
    game_filter_allows: str

    def elements(self, param: str, alias: str = "j") -> str:
        """A table of the JSON array bound at `param`, one row per element in `{alias}.value`: a string as text,
        a number as a number in SQLite and as text in PostgreSQL (so compare it with CAST(… AS BIGINT));
        `{alias}.key` orders the rows as the array does."""
        if self.backend == "sqlite":
            return f"json_each({param}) {alias}"
        return f"json_array_elements_text(CAST({param} AS json)) WITH ORDINALITY AS {alias}(value, key)"

    def arrays(self, param: str, alias: str = "j") -> str:
        """A table of the JSON array of arrays bound at `param`: `{alias}.value ->> 0` is an element's first item
        (a number in SQLite, text in PostgreSQL: CAST it)."""
        if self.backend == "sqlite":
            return f"json_each({param}) {alias}"
        return f"json_array_elements(CAST({param} AS json)) AS {alias}(value)"


_DIALECTS: dict[Backend, _Dialect] = {
    "sqlite": _Dialect("sqlite", greatest="max", game_filter_allows=_SQLITE_GAME_FILTER_ALLOWS),
    "postgresql": _Dialect("postgresql", greatest="greatest", game_filter_allows=_POSTGRES_GAME_FILTER_ALLOWS),
}

# UPDATE OR IGNORE, in SQL both engines accept: a subscription whose streamer the target channel already
# announces stays where it is, where moving it would break the guild + streamer + channel uniqueness.
_MOVE_SUBSCRIPTIONS = """
    UPDATE subscriptions SET channel_id = :to_channel, last_error = NULL
    WHERE guild_id = :guild_id AND channel_id = :from_channel
      AND NOT EXISTS (SELECT 1 FROM subscriptions taken
                      WHERE taken.guild_id = subscriptions.guild_id
                        AND taken.twitch_user_id = subscriptions.twitch_user_id
                        AND taken.channel_id = :to_channel AND taken.id != subscriptions.id)
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


def _streamer(row: Row) -> Streamer:
    return Streamer(
        twitch_user_id=row["streamer_user_id"],
        login=row["streamer_login"],
        display_name=row["streamer_display_name"],
        profile_image_url=row["streamer_avatar"],
    )


def _subscription(row: Row) -> Subscription:
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


def _live(row: Row) -> LiveStream:
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
    row: Row,
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
    """All of the bot's storage, on either back-end. Use `await open_database(path, url)` (or `Database.open`
    for a SQLite file, `Database.open_url` for PostgreSQL) and `await db.close()`."""

    def __init__(self, driver: Driver, *, clock: Clock = _utc_now) -> None:
        self._driver = driver
        self._sql = _DIALECTS[driver.backend]
        self.backend: Backend = driver.backend
        self.path = driver.name
        """The SQLite file's path, or the PostgreSQL URL with its password left out: what messages show."""
        self._clock = clock
        self.query_count = 0  # statements executed; benchmarks use it to prove O(1) queries per cycle

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str, *, clock: Clock = _utc_now) -> Database:
        """Open a SQLite file (creating if absent) and migrate; a file that is not a usable database is an
        error, and so is a file another running bot has open (DatabaseLocked). `clock` gives the time every
        stored timestamp is taken from."""
        return cls(await SqliteDriver.open(path), clock=clock)

    @classmethod
    async def open_url(cls, url: str, *, clock: Clock = _utc_now) -> Database:
        """Connect to a PostgreSQL database (`postgresql://user:password@host:port/database`) and migrate;
        an unreachable server, a refused login, an unknown database or one of a newer bot is a DatabaseError
        naming DATABASE_URL, without its password. Several processes may share the database."""
        # Imported here: a bot on SQLite never loads asyncpg.
        from twitch_notifier.db.postgres_driver import PostgresDriver

        return cls(await PostgresDriver.open(url), clock=clock)

    async def close(self) -> None:
        await self._driver.close()

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """One write transaction; rolled back if anything inside raises. Nothing else writes until it ends
        (on SQLite nothing else runs at all), so inside it use the executor it yields, never this class's own
        methods."""
        return self._driver.transaction()

    async def _fetchall(self, sql: str, params: SqlParams = ()) -> list[Row]:
        self.query_count += 1
        return await self._driver.fetchall(sql, params)

    async def _fetchone(self, sql: str, params: SqlParams = ()) -> Row | None:
        self.query_count += 1
        return await self._driver.fetchone(sql, params)

    async def _execute(self, sql: str, params: SqlParams = ()) -> int:
        """Run one statement in its own transaction; returns the number of rows changed."""
        self.query_count += 1
        return await self._driver.execute(sql, params)

    def _now(self) -> str:
        return _stored_time(self._clock())

    async def schema_version(self) -> int:
        """The schema version of the open database (SCHEMA_VERSION once opened)."""
        return await self._driver.schema_version()

    async def pragma(self, name: str) -> object:
        """A read-only diagnostic of a SQLite database: the value of journal_mode, foreign_keys, busy_timeout,
        user_version or synchronous, or for foreign_key_check the list of broken references (empty when all
        hold). PostgreSQL has no pragmas: there it raises DatabaseError."""
        if self.backend != "sqlite":
            raise DatabaseError(f"pragma({name!r}): pragmas are SQLite's; this database is PostgreSQL")
        if name == "foreign_key_check":
            return [tuple(row) for row in await self._fetchall("PRAGMA foreign_key_check")]
        if name not in _DIAGNOSTIC_PRAGMAS:
            raise ValueError(f"not a diagnostic pragma: {name!r}")
        row = await self._fetchone(f"PRAGMA {name}")  # the name is one of the fixed set above
        return row[0] if row else None  # a setting answers one row of one column

    async def notify(self, channel: str, payload: str = "") -> None:
        """Tell the other processes on this database something happened (PostgreSQL's NOTIFY on `channel`, sent
        at once, outside any transaction). With SQLite there is one process, so nobody to tell: nothing runs."""
        if self.backend == "sqlite":
            return
        await self._fetchone("SELECT pg_notify(:channel, :payload)", {"channel": channel, "payload": payload})

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
                seen = await conn.fetchone(
                    "SELECT 1 FROM guilds_seen WHERE guild_id = ? AND last_seen_at >= ?",
                    (guild_id, _stored_time(unseen_since)),
                )
                if seen is not None:
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

    async def _mark_seen(self, conn: Executor, guild_ids: Iterable[int], now: str) -> None:
        # A command from a guild is a sighting too, so every guild holding data has one. A sighting never
        # moves back in time (a slow READY handler racing a newer event).
        await conn.executemany(
            f"""
            INSERT INTO guilds_seen (guild_id, last_seen_at) VALUES (?, ?)
            ON CONFLICT (guild_id) DO UPDATE SET
                last_seen_at = {self._sql.greatest}(guilds_seen.last_seen_at, excluded.last_seen_at)
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
                row = await conn.fetchone("SELECT count(*) AS n FROM subscriptions WHERE guild_id = ?", (guild_id,))
                if row is not None and row["n"] >= max_per_guild:
                    raise SubscriptionLimitReached(max_per_guild)
            await self._upsert_streamer(conn, streamer, now)
            try:
                inserted = await conn.fetchone(
                    """
                    INSERT INTO subscriptions (guild_id, twitch_user_id, channel_id, added_by, created_at,
                                               ping, message_template, games)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    RETURNING id
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
            except IntegrityViolation as exc:
                raise AlreadySubscribed(streamer.login) from exc
            subscription_id = int(inserted["id"]) if inserted is not None else 0
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
            except IntegrityViolation as exc:
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
        # "!" escapes: a backslash reads differently in the two engines' string literals, "!" the same.
        pattern = "%" + prefix.strip().lower().replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
        rows = await self._fetchall(
            f"""
            SELECT {_SUBSCRIPTION_COLUMNS} FROM subscriptions s
            JOIN streamers st ON st.twitch_user_id = s.twitch_user_id
            WHERE s.guild_id = ? AND (lower(st.login) LIKE ? ESCAPE '!' OR lower(st.display_name) LIKE ? ESCAPE '!')
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
            WHERE st.twitch_user_id IN (SELECT j.value FROM {self._sql.elements("?")})
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
                "UPDATE streamers SET push_state = ? WHERE twitch_user_id = ? AND push_state IS DISTINCT FROM ?",
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
                # A streamer the default channel already announces keeps that entry; the one of the deleted
                # channel stays behind, marked, for the admin to remove.
                moved = await conn.execute(
                    _MOVE_SUBSCRIPTIONS, {"to_channel": default, "guild_id": guild_id, "from_channel": channel_id}
                )
                marked = await conn.execute(
                    "UPDATE subscriptions SET last_error = ? WHERE guild_id = ? AND channel_id = ?",
                    (error, guild_id, channel_id),
                )
                return moved, marked
            marked = await conn.execute(
                "UPDATE subscriptions SET last_error = ? WHERE guild_id = ? AND channel_id = ?",
                (error, guild_id, channel_id),
            )
            return 0, marked

    async def move_guild_subscriptions(self, guild_id: int, from_channels: Iterable[int], to_channel: int) -> int:
        """Move a guild's subscriptions from (deleted) channels to `to_channel`, clearing their marks."""
        rows = [{"to_channel": to_channel, "guild_id": guild_id, "from_channel": c} for c in from_channels]
        if not rows:
            return 0
        self.query_count += 1
        async with self.transaction() as conn:
            # An entry whose streamer `to_channel` already announces stays where it was (marked). One channel
            # after the other: an entry moved from the first is what a second entry of its streamer meets.
            moved = 0
            for row in rows:
                moved += await conn.execute(_MOVE_SUBSCRIPTIONS, row)
            return moved

    async def clear_channel_errors(self, guild_id: int, channel_id: int) -> int:
        return await self._execute(
            """
            UPDATE subscriptions SET last_error = NULL
            WHERE guild_id = ? AND channel_id = ? AND last_error IS NOT NULL
            """,
            (guild_id, channel_id),
        )

    @staticmethod
    async def _upsert_streamer(conn: Executor, streamer: Streamer, now: str) -> None:
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
    async def _upsert_games(conn: Executor, games: Iterable[Category], now: str) -> None:
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
            f"""
            SELECT j.value AS game_id FROM {self._sql.elements("?")}
            LEFT JOIN games g ON g.id = j.value
            WHERE g.id IS NULL OR g.box_art_url = '' OR g.updated_at < ?
            ORDER BY j.key
            """,
            (json.dumps(ids), _stored_time(older_than)),
        )
        return [row["game_id"] for row in rows]

    @staticmethod
    async def _delete_orphan_streamers(conn: Executor) -> None:
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
                    f"WHERE ended_at IS NULL AND stream_id IN (SELECT j.value FROM {self._sql.elements('?')})",
                    (ended_stream_ids,),
                )
                # Before the live rows are replaced or deleted: they hold when each stream was last seen.
                await conn.execute(
                    f"""
                    UPDATE announcements SET ended_at = coalesce(
                        (SELECT l.last_seen_at FROM live_streams l WHERE l.stream_id = announcements.stream_id),
                        :now)
                    WHERE ended_at IS NULL AND closed_at IS NULL
                      AND stream_id IN (SELECT j.value FROM {self._sql.elements(":ids")})
                    """,
                    {"ids": ended_stream_ids, "now": now},
                )
            if live_rows:
                await conn.executemany(
                    """
                    INSERT INTO live_streams (twitch_user_id, stream_id, title, game_name, viewer_count,
                                              started_at, thumbnail_url, missed_polls, last_seen_at, game_id,
                                              pushed_at)
                    SELECT :user_id, :stream_id, :title, :game, CAST(:viewers AS BIGINT), :started_at, :thumbnail,
                           CAST(:missed AS BIGINT), :now, :game_id, :pushed_at
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

    def _on_shards(self, guild_column: str, scope: ShardScope | None) -> tuple[str, dict[str, object]]:
        """`AND` the guild in `guild_column` (a fixed fragment) is on one of the scope's shards, with its
        parameters; nothing for None, which is every guild. Discord's rule: (guild_id >> 22) % shard_count."""
        if scope is None:
            return "", {}
        return (
            f"AND ({guild_column} >> 22) % :shard_count IN "
            f"(SELECT CAST(shard.value AS BIGINT) FROM {self._sql.elements(':shard_ids', 'shard')})",
            {"shard_count": scope.count, "shard_ids": json.dumps(list(scope.ids))},
        )

    async def pending_announcements(self, scope: ShardScope | None = None) -> list[PendingAnnouncement]:
        """Every (subscription, live stream) pair with no announcement yet — the 'went live' set — with the
        ping and template in effect. A subscription with a game filter only while the stream's category is
        in it, so a stream switching into a listed category becomes pending then (and is announced once);
        one whose filter is unreadable never, without failing the query for the others. With `scope`, only
        the pairs of guilds on its shards."""
        on_shards, params = self._on_shards("s.guild_id", scope)
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
            WHERE a.subscription_id IS NULL AND {self._sql.game_filter_allows} {on_shards}
            ORDER BY l.twitch_user_id, s.id
            """,
            params,
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
        keep the crash-between-send-and-commit window as small as possible. The pair's claim (see
        claim_announcements) goes in the same transaction: once announced, nobody claims it again."""
        now = self._now()
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute(
                """
                INSERT INTO announcements
                    (subscription_id, stream_id, twitch_user_id, guild_id, channel_id, message_id, created_at,
                     title, game_name, viewer_count, thumbnail_url, started_at, card_updated_at)
                SELECT CAST(:sub AS BIGINT), :stream_id, :user_id, CAST(:guild_id AS BIGINT),
                       CAST(:channel_id AS BIGINT), CAST(:message_id AS BIGINT), :now,
                       :title, :game, CAST(:viewers AS BIGINT), :thumbnail, :started_at, :now
                WHERE EXISTS (SELECT 1 FROM subscriptions WHERE id = :sub)
                ON CONFLICT DO NOTHING
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
            await conn.execute(
                "DELETE FROM announcement_claims WHERE subscription_id = ? AND stream_id = ?",
                (pending.subscription_id, pending.stream_id),
            )

    async def claim_announcements(
        self, pending: Sequence[PendingAnnouncement], owner: str, until: datetime
    ) -> set[tuple[int, str]]:
        """Claim the right to announce these pairs for `owner` (one process) until `until`, in one statement;
        returns the (subscription id, stream id) pairs `owner` now holds: claimed now, already its own, or
        taken over from a claim that expired. Never a pair that is announced already, or whose subscription
        is gone. Two processes claiming the same pairs at once split them: each pair goes to one of them."""
        pairs = list(dict.fromkeys((p.subscription_id, p.stream_id) for p in pending))
        if not pairs:
            return set()
        rows = await self._claim(pairs, owner, _stored_time(until))
        return {(int(row["subscription_id"]), str(row["stream_id"])) for row in rows}

    async def _claim(self, pairs: list[tuple[int, str]], owner: str, until: str) -> list[Row]:
        self.query_count += 1
        async with self.transaction() as conn:
            return await conn.fetchall(
                f"""
                INSERT INTO announcement_claims (subscription_id, stream_id, owner, expires_at)
                SELECT CAST(c.value ->> 0 AS BIGINT), CAST(c.value ->> 1 AS TEXT), :owner, :until
                FROM {self._sql.arrays(":pairs", "c")}
                WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = CAST(c.value ->> 0 AS BIGINT))
                  AND NOT EXISTS (SELECT 1 FROM announcements a
                                  WHERE a.subscription_id = CAST(c.value ->> 0 AS BIGINT)
                                    AND a.stream_id = CAST(c.value ->> 1 AS TEXT))
                ON CONFLICT (subscription_id, stream_id) DO UPDATE SET
                    owner = excluded.owner, expires_at = excluded.expires_at
                WHERE announcement_claims.owner = excluded.owner OR announcement_claims.expires_at < :now
                RETURNING subscription_id, stream_id
                """,
                {"pairs": json.dumps(pairs), "owner": owner, "until": until, "now": self._now()},
            )

    async def drop_claims(self, scope: ShardScope, *, except_owner: str) -> int:
        """Forget the claims of every owner but `except_owner` on subscriptions of guilds on the scope's shards:
        a process taking over shards whose previous holder is gone need not wait for its claims to expire.
        Returns how many claims were dropped."""
        on_shards, params = self._on_shards("s.guild_id", scope)
        return await self._execute(
            f"""
            DELETE FROM announcement_claims WHERE owner != :owner
              AND subscription_id IN (SELECT s.id FROM subscriptions s WHERE 1 = 1 {on_shards})
            """,
            {**params, "owner": except_owner},
        )

    async def cards_to_update(self, not_since: datetime, scope: ShardScope | None = None) -> list[CardUpdate]:
        """Live cards (in guilds with live updates on) whose stream's title, game, viewers or thumbnail
        differ from what the card shows and that were not edited after `not_since` (one query). With `scope`,
        only the cards of guilds on its shards."""
        on_shards, params = self._on_shards("a.guild_id", scope)
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
              AND (a.title IS DISTINCT FROM l.title OR a.game_name IS DISTINCT FROM l.game_name
                   OR a.viewer_count IS DISTINCT FROM l.viewer_count
                   OR a.thumbnail_url IS DISTINCT FROM l.thumbnail_url)
              {on_shards}
            ORDER BY a.subscription_id
            """,
            {**params, "cutoff": _stored_time(not_since)},
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

    async def cards_to_close(self, scope: ShardScope | None = None) -> list[CardToClose]:
        """Announcements whose stream has ended and whose card was not yet edited, deleted or kept; with
        `scope`, only those of guilds on its shards."""
        on_shards, params = self._on_shards("a.guild_id", scope)
        return await self._cards(f"a.ended_at IS NOT NULL {on_shards}", params)

    async def open_cards_of(self, subscription_id: int) -> list[CardToClose]:
        """Every card of one subscription not yet dealt with, live or ended: what is closed when it is
        removed. A live one gets the current time as its end."""
        return await self._cards("a.subscription_id = :sub", {"sub": subscription_id})

    async def _cards(self, condition: str, params: dict[str, object]) -> list[CardToClose]:
        # `condition` is one of the fixed fragments above, never text from outside.
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
        """Forget announcements of streams long over (kept a while so a blinking stream never repeats), and claims
        that expired that long ago without an announcement (their stream ended before anyone posted it)."""
        cutoff = _stored_time(older_than)
        self.query_count += 1
        async with self.transaction() as conn:
            pruned = await conn.execute(
                """
                DELETE FROM announcements WHERE created_at < ?
                AND stream_id NOT IN (SELECT stream_id FROM live_streams)
                """,
                (cutoff,),
            )
            await conn.execute("DELETE FROM announcement_claims WHERE expires_at < ?", (cutoff,))
        return pruned

    # -- stream history (statistics) ---------------------------------------------------------------

    async def _record_history(self, conn: Executor, rows: Sequence[Mapping[str, object]]) -> None:
        """Inside apply_live_changes' transaction: each stream seen is (re)opened and last seen now, with a
        viewer sample when the source counted viewers and a category change when its category differs from
        the last one recorded (the first one counts from the stream's start: the bot may have come late)."""
        greatest = self._sql.greatest
        await conn.executemany(
            f"""
            INSERT INTO stream_history (stream_id, twitch_user_id, started_at, last_seen_at, peak_viewers)
            SELECT :stream_id, :user_id, :started_at, :now, coalesce(CAST(:viewers AS BIGINT), 0)
            WHERE EXISTS (SELECT 1 FROM streamers WHERE twitch_user_id = :user_id)
            ON CONFLICT (stream_id) DO UPDATE SET
                last_seen_at = {greatest}(stream_history.last_seen_at, excluded.last_seen_at), ended_at = NULL,
                peak_viewers = {greatest}(stream_history.peak_viewers, excluded.peak_viewers)
            """,
            rows,
        )
        sampled = [row for row in rows if row["viewers"] is not None]
        if sampled:
            await conn.executemany(
                """
                INSERT INTO stream_samples (history_id, offset_s, viewers)
                SELECT id, CAST(:offset AS BIGINT), CAST(:viewers AS BIGINT) FROM stream_history
                WHERE stream_id = :stream_id
                ON CONFLICT (history_id, offset_s) DO UPDATE SET viewers = excluded.viewers
                """,
                sampled,
            )
        await conn.executemany(
            """
            INSERT INTO stream_categories (history_id, offset_s, game_id, game_name)
            SELECT h.id,
                   CASE WHEN EXISTS (SELECT 1 FROM stream_categories c WHERE c.history_id = h.id)
                        THEN CAST(:offset AS BIGINT) ELSE 0 END,
                   :game_id, :game_name
            FROM stream_history h
            WHERE h.stream_id = :stream_id AND CAST(:game_id AS TEXT) IS DISTINCT FROM (
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
                f"""
                SELECT history_id, offset_s, viewers FROM stream_samples
                WHERE history_id IN (SELECT CAST(j.value AS BIGINT) FROM {self._sql.elements("?")})
                ORDER BY history_id, offset_s
                """,
                (json.dumps(wanted),),
            ):
                by_id.setdefault(sample["history_id"], []).append(ViewerSample(sample["offset_s"], sample["viewers"]))
        changes: dict[int, list[CategoryChange]] = {}
        if categories:
            for change in await self._fetchall(
                f"""
                SELECT history_id, offset_s, game_id, game_name FROM stream_categories
                WHERE history_id IN (SELECT CAST(j.value AS BIGINT) FROM {self._sql.elements("?")})
                ORDER BY history_id, offset_s
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
            f"h.stream_id IN (SELECT j.value FROM {self._sql.elements(':ids')})",
            {"ids": ids},
            samples="all",
            categories=True,
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
            return await conn.execute(
                "DELETE FROM stream_history WHERE coalesce(ended_at, last_seen_at) < ?", (_stored_time(older_than),)
            )

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
                row = await conn.fetchone("SELECT id FROM stream_history WHERE stream_id = ?", (history.stream_id,))
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


async def open_database(path: str, url: str | None, *, clock: Clock = _utc_now) -> Database:
    """The store the settings ask for: PostgreSQL at `url` (DATABASE_URL) when it is set, else the SQLite file at
    `path` (DATABASE_PATH, the embedded default)."""
    if url:
        return await Database.open_url(url, clock=clock)
    return await Database.open(path, clock=clock)
