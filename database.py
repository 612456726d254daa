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
    Broadcast,
    CardToClose,
    CardUpdate,
    Category,
    CategoryChange,
    EndAction,
    FilteredCard,
    GuildSettings,
    GuildStreamer,
    LastAnnouncement,
    LastPing,
    LiveEventRecord,
    LiveEventTarget,
    LiveStream,
    OptInTarget,
    PendingAnnouncement,
    PreviousCard,
    PublishWindow,
    ScheduleEventRecord,
    ScheduleEventTarget,
    ShardScope,
    Streamer,
    StreamHistory,
    StreamObservation,
    Subscription,
    SubscriptionLimitReached,
    SubscriptionUpdate,
    TitleFilter,
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
    s.last_failure AS sub_last_failure, s.last_failure_at AS sub_last_failure_at,
    s.notify_button AS sub_notify_button,
    s.title_filter AS sub_title_filter,
    st.missing_since AS streamer_missing_since, st.push_state AS streamer_push_state, {_STREAMER_COLUMNS}
"""
_LIVE_COLUMNS = """
    l.twitch_user_id AS live_user_id, l.stream_id AS live_stream_id, l.title AS live_title,
    l.game_name AS live_game_name, l.viewer_count AS live_viewer_count, l.started_at AS live_started_at,
    l.thumbnail_url AS live_thumbnail_url, l.missed_polls AS live_missed_polls, l.game_id AS live_game_id,
    l.pushed_at AS live_pushed_at, l.stream_type AS live_stream_type
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
    "live_events": "live_events",
    "publish": "publish",
    "filter_exit": "filter_exit",
    "restart_grace_seconds": "restart_grace_seconds",
    "notify_button": "notify_button",
    "ping_throttle_hours": "ping_throttle_hours",
    "schedule_events": "schedule_events",
}
_GUILD_SETTINGS_DEFAULTS = {
    "announce_channel_id": None,
    "ping": None,
    "message_template": None,
    "end_action": "edit",
    "live_updates": 1,
    "live_events": 0,
    "publish": 0,
    "filter_exit": None,
    "restart_grace_seconds": None,
    "notify_button": 0,
    "ping_throttle_hours": None,
    "schedule_events": 0,
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


def _title_filter_json(title_filter: TitleFilter | None) -> str | None:
    if title_filter is None or title_filter.empty:
        return None
    return json.dumps(
        {
            "include": list(title_filter.include),
            "exclude": list(title_filter.exclude),
            "regex": title_filter.regex,
            "skip_reruns": title_filter.skip_reruns,
        }
    )


def _title_filter_from_json(text: str | None) -> tuple[TitleFilter | None, bool]:
    """A stored title filter and whether it was unreadable (then it fails closed: nothing is announced)."""
    if text is None:
        return None, False
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None, True
    if not isinstance(data, dict):
        return None, True
    include, exclude, regex = data.get("include", []), data.get("exclude", []), data.get("regex")
    words_ok = all(isinstance(w, list) and all(isinstance(x, str) and x.strip() for x in w) for w in (include, exclude))
    if not words_ok or not (regex is None or isinstance(regex, str)) or not isinstance(data.get("skip_reruns"), bool):
        return None, True
    return TitleFilter(tuple(include), tuple(exclude), regex or None, data["skip_reruns"]), False


def _filter_exit(value: str | None) -> EndAction:
    """A stored filter-exit choice; none (the default) or an unknown one keeps the card as it is."""
    try:
        return EndAction(value) if value is not None else EndAction.KEEP
    except ValueError:
        return EndAction.KEEP


def _previous_card(row: Row) -> PreviousCard | None:
    """The `prev_*` columns of pending_announcements: the entry's card of the streamer's last ended stream."""
    if row["prev_stream_id"] is None:
        return None
    closed = row["prev_closed_at"] is not None
    deleted = closed and (
        _end_action(row["end_action"]) is EndAction.DELETE
        or (row["prev_left_at"] is not None and _filter_exit(row["filter_exit"]) is EndAction.DELETE)
    )
    return PreviousCard(
        stream_id=row["prev_stream_id"],
        channel_id=row["prev_channel_id"],
        message_id=row["prev_message_id"],
        started_at=_read_optional_time(row["prev_started_at"]),
        ended_at=_read_optional_time(row["prev_ended_at"]),
        deleted=deleted or row["prev_message_id"] is None,
    )


def _streamer(row: Row) -> Streamer:
    return Streamer(
        twitch_user_id=row["streamer_user_id"],
        login=row["streamer_login"],
        display_name=row["streamer_display_name"],
        profile_image_url=row["streamer_avatar"],
    )


def _subscription(row: Row) -> Subscription:
    games, games_unreadable = _games_from_json(row["sub_games"])
    title_filter, title_filter_unreadable = _title_filter_from_json(row["sub_title_filter"])
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
        last_failure=row["sub_last_failure"],
        last_failure_at=_read_optional_time(row["sub_last_failure_at"]),
        title_filter=title_filter,
        title_filter_unreadable=title_filter_unreadable,
        notify_button=None if row["sub_notify_button"] is None else bool(row["sub_notify_button"]),
    )


def _last_ping(row: Row) -> LastPing | None:
    """The streamer's last ping in the guild, from a pending announcement's row (None if it never pinged)."""
    if not row["last_ping_at"]:
        return None
    return LastPing(row["last_ping_stream"], _read_time(row["last_ping_at"]))


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
        stream_type=row["live_stream_type"] or "live",
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
            SELECT announce_channel_id, ping, message_template, end_action, live_updates, publish,
                   live_events, events_error,
                   filter_exit, restart_grace_seconds, notify_button, ping_throttle_hours, schedule_events
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
            live_events=bool(row["live_events"]),
            events_error=row["events_error"],
            publish=bool(row["publish"]),
            filter_exit=_filter_exit(row["filter_exit"]),
            restart_grace_seconds=row["restart_grace_seconds"],
            notify_button=bool(row["notify_button"]),
            ping_throttle_hours=row["ping_throttle_hours"],
            schedule_events=bool(row["schedule_events"]),
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
            await conn.execute("DELETE FROM live_events WHERE guild_id = ?", (guild_id,))
            await conn.execute("DELETE FROM schedule_events WHERE guild_id = ?", (guild_id,))
            await conn.execute("DELETE FROM guilds_seen WHERE guild_id = ?", (guild_id,))
            await conn.execute("DELETE FROM notify_roles WHERE guild_id = ?", (guild_id,))
            await conn.execute("DELETE FROM last_pings WHERE guild_id = ?", (guild_id,))
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
        title_filter: TitleFilter | None = None,
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
            if title_filter is not None and not title_filter.empty:
                await conn.execute(
                    "UPDATE subscriptions SET title_filter = ? WHERE id = ?",
                    (_title_filter_json(title_filter), subscription_id),
                )
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
            title_filter=title_filter if title_filter is not None and not title_filter.empty else None,
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
        if update.title_filter is not KEEP:
            sets.append("title_filter = :title_filter")
            params["title_filter"] = _title_filter_json(update.title_filter)
        if update.notify_button is not KEEP:
            sets.append("notify_button = :notify_button")
            params["notify_button"] = None if update.notify_button is None else int(update.notify_button)
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
        pointed at another channel meanwhile: the old channel's failure must not overwrite an admin's repair.
        A failure is also kept, with its time, as the entry's last failure (/diagnose), which a success leaves."""
        if error is None:
            await self._execute(
                "UPDATE subscriptions SET last_error = NULL WHERE id = ? AND channel_id = ?",
                (subscription_id, channel_id),
            )
            return
        await self._execute(
            """
            UPDATE subscriptions SET last_error = :error, last_failure = :error, last_failure_at = :now
            WHERE id = :sub AND channel_id = :channel
            """,
            {"error": error, "now": self._now(), "sub": subscription_id, "channel": channel_id},
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
                "stream_type": s.stream_type,
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
                                              pushed_at, stream_type)
                    SELECT :user_id, :stream_id, :title, :game, CAST(:viewers AS BIGINT), :started_at, :thumbnail,
                           CAST(:missed AS BIGINT), :now, :game_id, :pushed_at, :stream_type
                    WHERE EXISTS (SELECT 1 FROM streamers WHERE twitch_user_id = :user_id)
                    ON CONFLICT (twitch_user_id) DO UPDATE SET
                        stream_id = excluded.stream_id, title = excluded.title,
                        game_name = excluded.game_name, viewer_count = excluded.viewer_count,
                        started_at = excluded.started_at, thumbnail_url = excluded.thumbnail_url,
                        missed_polls = excluded.missed_polls, last_seen_at = excluded.last_seen_at,
                        game_id = excluded.game_id, pushed_at = excluded.pushed_at,
                        -- Only push knows a rerun: a poll (or a channel update) of the same stream keeps its type.
                        stream_type = CASE WHEN live_streams.stream_id = excluded.stream_id
                                            AND excluded.stream_type = 'live'
                                           THEN live_streams.stream_type ELSE excluded.stream_type END
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
                   coalesce(gm.box_art_url, '') AS box_art_url, coalesce(gs.publish, 0) AS publish,
                   s.title_filter AS title_filter, gs.restart_grace_seconds AS restart_grace_seconds,
                   gs.end_action AS end_action, gs.filter_exit AS filter_exit,
                   prev.stream_id AS prev_stream_id, prev.message_id AS prev_message_id,
                   prev.channel_id AS prev_channel_id,
                   prev.started_at AS prev_started_at, prev.ended_at AS prev_ended_at,
                   prev.closed_at AS prev_closed_at, prev.left_filter_at AS prev_left_at,
                   coalesce(s.notify_button, gs.notify_button, 0) AS notify_button, nr.role_id AS notify_role_id,
                   gs.ping_throttle_hours AS ping_throttle_hours, lp.stream_id AS last_ping_stream,
                   lp.pinged_at AS last_ping_at
            FROM live_streams l
            JOIN subscriptions s ON s.twitch_user_id = l.twitch_user_id
            LEFT JOIN announcements a ON a.subscription_id = s.id AND a.stream_id = l.stream_id
            LEFT JOIN guild_settings gs ON gs.guild_id = s.guild_id
            LEFT JOIN games gm ON gm.id = l.game_id
            LEFT JOIN notify_roles nr ON nr.guild_id = s.guild_id AND nr.twitch_user_id = l.twitch_user_id
            LEFT JOIN last_pings lp ON lp.guild_id = s.guild_id AND lp.twitch_user_id = l.twitch_user_id
            -- The entry's card of the streamer's last ended stream: a restart within the grace continues it.
            LEFT JOIN announcements prev ON prev.subscription_id = s.id AND prev.stream_id = (
                SELECT p.stream_id FROM announcements p
                WHERE p.subscription_id = s.id AND p.stream_id != l.stream_id AND p.ended_at IS NOT NULL
                ORDER BY p.ended_at DESC, p.created_at DESC LIMIT 1)
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
                publish=bool(row["publish"]),
                title_filter=(title_filter := _title_filter_from_json(row["title_filter"]))[0],
                title_filter_unreadable=title_filter[1],
                previous=_previous_card(row),
                restart_grace_seconds=row["restart_grace_seconds"],
                notify_button=bool(row["notify_button"]),
                notify_role_id=row["notify_role_id"],
                ping_throttle_hours=row["ping_throttle_hours"],
                last_ping=_last_ping(row),
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
                   coalesce(a.ping_sent, s.ping, gs.ping) AS ping,
                   coalesce(s.message_template, gs.message_template) AS template,
                   coalesce(gm.box_art_url, '') AS box_art_url, a.continued_from AS continued_from,
                   coalesce(s.notify_button, gs.notify_button, 0) AS notify_button,
                   {_STREAMER_COLUMNS}, {_LIVE_COLUMNS}
            FROM announcements a
            JOIN live_streams l ON l.stream_id = a.stream_id AND l.twitch_user_id = a.twitch_user_id
            JOIN subscriptions s ON s.id = a.subscription_id
            JOIN streamers st ON st.twitch_user_id = a.twitch_user_id
            LEFT JOIN guild_settings gs ON gs.guild_id = a.guild_id
            LEFT JOIN games gm ON gm.id = l.game_id
            WHERE a.closed_at IS NULL AND a.ended_at IS NULL AND a.message_id IS NOT NULL
              AND a.left_filter_at IS NULL
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
                reconnected=row["continued_from"] is not None,
                notify_button=bool(row["notify_button"]),
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

    # -- title filters and the restart grace ------------------------------------------------------

    async def filtered_cards(self, scope: ShardScope | None = None) -> list[FilteredCard]:
        """The live cards of entries with a game or title filter in guilds whose cards follow the filter (edit or
        delete; keep needs no look), with what a re-render needs: one query per cycle, the filters themselves are
        evaluated by the caller (SQL cannot apply a title filter). With `scope`, only guilds on its shards."""
        on_shards, params = self._on_shards("a.guild_id", scope)
        rows = await self._fetchall(
            f"""
            SELECT a.subscription_id AS subscription_id, a.guild_id AS guild_id, a.channel_id AS channel_id,
                   a.message_id AS message_id, gs.filter_exit AS filter_exit, s.games AS games,
                   s.title_filter AS title_filter, a.left_filter_at AS left_filter_at,
                   coalesce(a.ping_sent, s.ping, gs.ping) AS ping,
                   coalesce(s.message_template, gs.message_template) AS template,
                   coalesce(gm.box_art_url, '') AS box_art_url, a.continued_from AS continued_from,
                   coalesce(s.notify_button, gs.notify_button, 0) AS notify_button,
                   {_STREAMER_COLUMNS}, {_LIVE_COLUMNS}
            FROM announcements a
            JOIN live_streams l ON l.stream_id = a.stream_id AND l.twitch_user_id = a.twitch_user_id
            JOIN subscriptions s ON s.id = a.subscription_id
            JOIN streamers st ON st.twitch_user_id = a.twitch_user_id
            JOIN guild_settings gs ON gs.guild_id = a.guild_id
            LEFT JOIN games gm ON gm.id = l.game_id
            WHERE a.closed_at IS NULL AND a.ended_at IS NULL AND a.message_id IS NOT NULL
              AND gs.filter_exit IN ('edit', 'delete')
              AND (s.games IS NOT NULL OR s.title_filter IS NOT NULL OR a.left_filter_at IS NOT NULL)
              {on_shards}
            ORDER BY a.subscription_id
            """,
            params,
        )
        cards = []
        for row in rows:
            games, games_unreadable = _games_from_json(row["games"])
            title_filter, title_unreadable = _title_filter_from_json(row["title_filter"])
            cards.append(
                FilteredCard(
                    subscription_id=row["subscription_id"],
                    guild_id=row["guild_id"],
                    channel_id=row["channel_id"],
                    message_id=row["message_id"],
                    action=_filter_exit(row["filter_exit"]),
                    games=games,
                    title_filter=title_filter,
                    unreadable=games_unreadable or title_unreadable,
                    left=row["left_filter_at"] is not None,
                    ping=row["ping"],
                    template=row["template"],
                    box_art_url=row["box_art_url"],
                    live=_live(row),
                    streamer=_streamer(row),
                    reconnected=row["continued_from"] is not None,
                    notify_button=bool(row["notify_button"]),
                )
            )
        return cards

    async def mark_left_filter(self, cards: Iterable[tuple[int, str]], *, left: bool) -> None:
        """(subscription id, stream id) cards whose stream left its entry's filter (`left`), or came back into it."""
        now = self._now()
        rows = [{"sub": sub_id, "stream_id": stream_id, "at": now if left else None} for sub_id, stream_id in cards]
        if not rows:
            return
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.executemany(
                """
                UPDATE announcements SET left_filter_at = :at
                WHERE subscription_id = :sub AND stream_id = :stream_id
                """,
                rows,
            )

    async def record_continuation(
        self, pending: PendingAnnouncement, message_id: int | None, stream: LiveStream, previous_stream_id: str
    ) -> None:
        """A new stream continues the card of the entry's previous one (a restart within the grace): the pair is
        announced with that card's message (or the one posted in its place), its start kept from the card, and the
        previous card is closed, never edited again; one transaction, the claim dropped with it."""
        now = self._now()
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute(
                """
                INSERT INTO announcements
                    (subscription_id, stream_id, twitch_user_id, guild_id, channel_id, message_id, created_at,
                     title, game_name, viewer_count, thumbnail_url, started_at, card_updated_at, continued_from)
                SELECT CAST(:sub AS BIGINT), :stream_id, :user_id, CAST(:guild_id AS BIGINT),
                       CAST(:channel_id AS BIGINT), CAST(:message_id AS BIGINT), :now,
                       :title, :game, CAST(:viewers AS BIGINT), :thumbnail,
                       coalesce((SELECT p.started_at FROM announcements p
                                 WHERE p.subscription_id = CAST(:sub AS BIGINT) AND p.stream_id = :previous),
                                :started_at),
                       :now, :previous
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
                    "title": stream.title,
                    "game": stream.game_name,
                    "viewers": stream.viewer_count,
                    "thumbnail": stream.thumbnail_url,
                    "started_at": _stored_time(stream.started_at),
                    "previous": previous_stream_id,
                },
            )
            await conn.execute(
                """
                UPDATE announcements SET closed_at = coalesce(closed_at, ?)
                WHERE subscription_id = ? AND stream_id = ?
                """,
                (now, pending.subscription_id, previous_stream_id),
            )
            await conn.execute(
                "UPDATE subscriptions SET last_error = NULL WHERE id = ? AND last_error IS NOT NULL",
                (pending.subscription_id,),
            )
            await conn.execute(
                "DELETE FROM announcement_claims WHERE subscription_id = ? AND stream_id = ?",
                (pending.subscription_id, pending.stream_id),
            )

    async def set_stream_type(self, user_id: str, stream_id: str, stream_type: str) -> None:
        """EventSub told the type (rerun, playlist, ...) of a stream the poll found first (it only sees "live")."""
        await self._execute(
            "UPDATE live_streams SET stream_type = ? WHERE twitch_user_id = ? AND stream_id = ? AND stream_type != ?",
            (stream_type, user_id, stream_id, stream_type),
        )

    # -- publishing (news channels) and diagnostics -------------------------------------------------

    async def publish_window(self, channel_id: int) -> PublishWindow:
        """The publishes recorded for one news channel (an empty window if none, or if unreadable)."""
        row = await self._fetchone(
            "SELECT published, blocked_until FROM channel_publishing WHERE channel_id = ?", (channel_id,)
        )
        if row is None:
            return PublishWindow(channel_id)
        try:
            times = tuple(_read_time(str(text)) for text in json.loads(row["published"]))
        except (ValueError, TypeError):
            times = ()  # written by nobody but this class; unreadable means: start counting afresh
        return PublishWindow(channel_id, times, _read_optional_time(row["blocked_until"]))

    async def save_publish_window(self, window: PublishWindow, *, forget_before: datetime) -> None:
        """Store one channel's window; rows of other channels with nothing after `forget_before` are dropped."""
        now = self._now()
        cutoff = _stored_time(forget_before)
        published = json.dumps([_stored_time(moment) for moment in window.published])
        blocked = _stored_time(window.blocked_until) if window.blocked_until is not None else None
        self.query_count += 1
        async with self.transaction() as conn:
            await conn.execute(
                """
                INSERT INTO channel_publishing (channel_id, published, blocked_until, updated_at)
                VALUES (?, ?, ?, ?)
                ON CONFLICT (channel_id) DO UPDATE SET published = excluded.published,
                    blocked_until = excluded.blocked_until, updated_at = excluded.updated_at
                """,
                (window.channel_id, published, blocked, now),
            )
            await conn.execute(
                """
                DELETE FROM channel_publishing
                WHERE updated_at < ? AND (blocked_until IS NULL OR blocked_until < ?) AND channel_id != ?
                """,
                (cutoff, cutoff, window.channel_id),
            )

    async def last_announcements(self, guild_id: int) -> dict[int, LastAnnouncement]:
        """Per subscription of the guild, its most recent announcement still on record (see ANNOUNCEMENT_RETENTION)."""
        rows = await self._fetchall(
            """
            SELECT a.subscription_id, a.channel_id, a.message_id, a.created_at, a.title, a.game_name
            FROM announcements a
            WHERE a.guild_id = ? AND a.created_at = (
                SELECT max(b.created_at) FROM announcements b WHERE b.subscription_id = a.subscription_id
            )
            ORDER BY a.subscription_id, a.message_id
            """,
            (guild_id,),
        )
        # Two announcements within one second tie on created_at: the later row (higher message id) wins.
        return {
            row["subscription_id"]: LastAnnouncement(
                row["subscription_id"],
                row["channel_id"],
                row["message_id"],
                _read_time(row["created_at"]),
                title=row["title"],
                game_name=row["game_name"],
            )
            for row in rows
        }

    # -- opt-in pings ("Notify me") -----------------------------------------------------------------

    async def opt_in_target(self, guild_id: int, twitch_user_id: str) -> OptInTarget | None:
        """The streamer a "Notify me" button names, as seen from one guild; None if the bot has never heard of
        them (a forged custom id, or a streamer nobody follows any more)."""
        row = await self._fetchone(
            f"""
            SELECT {_STREAMER_COLUMNS},
                   (SELECT count(*) FROM subscriptions s WHERE s.guild_id = :guild AND s.twitch_user_id = :user)
                       AS followed,
                   (SELECT count(*) FROM subscriptions s
                    LEFT JOIN guild_settings gs ON gs.guild_id = s.guild_id
                    WHERE s.guild_id = :guild AND s.twitch_user_id = :user
                      AND coalesce(s.notify_button, gs.notify_button, 0) = 1) AS enabled,
                   (SELECT nr.role_id FROM notify_roles nr WHERE nr.guild_id = :guild AND nr.twitch_user_id = :user)
                       AS role_id
            FROM streamers st WHERE st.twitch_user_id = :user
            """,
            {"guild": guild_id, "user": twitch_user_id},
        )
        if row is None:
            return None
        return OptInTarget(
            guild_id, _streamer(row), followed=row["followed"] > 0, enabled=row["enabled"] > 0, role_id=row["role_id"]
        )

    async def set_notify_role(self, guild_id: int, twitch_user_id: str, role_id: int) -> None:
        """Remember the opt-in role the bot created for a streamer in a guild (replacing one deleted meanwhile)."""
        await self._execute(
            """
            INSERT INTO notify_roles (guild_id, twitch_user_id, role_id, created_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (guild_id, twitch_user_id) DO UPDATE SET role_id = excluded.role_id,
                created_at = excluded.created_at
            """,
            (guild_id, twitch_user_id, role_id, self._now()),
        )

    async def forget_notify_role(self, guild_id: int, twitch_user_id: str, role_id: int) -> None:
        """The opt-in role is gone (deleted by a human): forgotten, unless another one replaced it already."""
        await self._execute(
            "DELETE FROM notify_roles WHERE guild_id = ? AND twitch_user_id = ? AND role_id = ?",
            (guild_id, twitch_user_id, role_id),
        )

    async def forget_deleted_role(self, guild_id: int, role_id: int) -> None:
        """A role of the guild was deleted: if it was an opt-in role, it is forgotten (created again on the next
        press), so no announcement pings it meanwhile."""
        await self._execute("DELETE FROM notify_roles WHERE guild_id = ? AND role_id = ?", (guild_id, role_id))

    async def notify_roles(self, guild_id: int) -> dict[str, int]:
        """A guild's opt-in roles, by Twitch user id (for /streamers)."""
        rows = await self._fetchall("SELECT twitch_user_id, role_id FROM notify_roles WHERE guild_id = ?", (guild_id,))
        return {row["twitch_user_id"]: row["role_id"] for row in rows}

    async def last_pings(self, guild_id: int) -> dict[str, LastPing]:
        """Each streamer's last announcement that pinged anyone in the guild, by Twitch user id (for /diagnose)."""
        rows = await self._fetchall(
            "SELECT twitch_user_id, stream_id AS last_ping_stream, pinged_at AS last_ping_at FROM last_pings "
            "WHERE guild_id = ?",
            (guild_id,),
        )
        return {row["twitch_user_id"]: last for row in rows if (last := _last_ping(row)) is not None}

    async def record_ping(self, pending: PendingAnnouncement, ping: str, *, remember: bool) -> None:
        """An announcement was posted with `ping` ("" for none). With `remember` (the opt-in role or the throttle
        decided it, not the configured ping) its card keeps showing that one. A real ping is the streamer's last
        in the guild, for the throttle; the first announcement of a stream that pinged keeps the time (its entries
        in other channels ping too, and do not push the throttle's window on)."""
        self.query_count += 1
        async with self.transaction() as conn:
            if remember:
                await conn.execute(
                    "UPDATE announcements SET ping_sent = ? WHERE subscription_id = ? AND stream_id = ?",
                    (ping, pending.subscription_id, pending.stream_id),
                )
            if ping:
                await conn.execute(
                    """
                    INSERT INTO last_pings (guild_id, twitch_user_id, stream_id, pinged_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (guild_id, twitch_user_id) DO UPDATE SET stream_id = excluded.stream_id,
                        pinged_at = excluded.pinged_at
                    WHERE last_pings.stream_id != excluded.stream_id
                    """,
                    (pending.guild_id, pending.twitch_user_id, pending.stream_id, self._now()),
                )

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

    # -- live scheduled events (core.live_events) --------------------------------------------------

    async def live_events_wanted(self, scope: ShardScope | None = None) -> bool:
        """Whether any of the scope's guilds keeps live events, or has an event not final yet."""
        on_shards, params = self._on_shards("guild_id", scope)
        row = await self._fetchone(
            f"""
            SELECT EXISTS (SELECT 1 FROM guild_settings WHERE live_events = 1 {on_shards})
                OR EXISTS (SELECT 1 FROM live_events WHERE status IN ('creating', 'scheduled', 'active') {on_shards})
                AS wanted
            """,
            params,
        )
        return row is not None and bool(row["wanted"])

    async def live_event_targets(self, scope: ShardScope | None = None) -> list[LiveEventTarget]:
        """One row per (guild, live stream) announced in a guild whose live_events is on, however many of the
        guild's entries announced it; with when the guild's events were last refused."""
        on_shards, params = self._on_shards("a.guild_id", scope)
        rows = await self._fetchall(
            f"""
            SELECT DISTINCT a.guild_id AS guild_id, l.stream_id AS stream_id, l.twitch_user_id AS user_id,
                   st.login AS login, st.display_name AS display_name, l.title AS title,
                   l.game_name AS game_name, l.started_at AS started_at, gs.events_error_at AS refused_at
            FROM live_streams l
            JOIN announcements a ON a.stream_id = l.stream_id AND a.twitch_user_id = l.twitch_user_id
            JOIN guild_settings gs ON gs.guild_id = a.guild_id AND gs.live_events = 1
            JOIN streamers st ON st.twitch_user_id = l.twitch_user_id
            WHERE a.ended_at IS NULL {on_shards}
            ORDER BY a.guild_id, l.stream_id
            """,
            params,
        )
        return [
            LiveEventTarget(
                guild_id=row["guild_id"],
                stream_id=row["stream_id"],
                twitch_user_id=row["user_id"],
                login=row["login"],
                display_name=row["display_name"],
                title=row["title"],
                game_name=row["game_name"],
                started_at=_read_time(row["started_at"]),
                refused_at=_read_optional_time(row["refused_at"]),
            )
            for row in rows
        ]

    async def live_event_records(self, scope: ShardScope | None = None) -> list[LiveEventRecord]:
        """The stored events of the scope's guilds that are not final (creating, scheduled or active), and the
        final ones of streams still live (so that an event a human deleted is not made again)."""
        on_shards, params = self._on_shards("guild_id", scope)
        rows = await self._fetchall(
            f"""
            SELECT guild_id, stream_id, twitch_user_id, event_id, status, name, description, location, ends_at,
                   synced_at, created_at
            FROM live_events
            WHERE (status IN ('creating', 'scheduled', 'active')
                   OR stream_id IN (SELECT l.stream_id FROM live_streams l)) {on_shards}
            ORDER BY guild_id, stream_id
            """,
            params,
        )
        return [
            LiveEventRecord(
                guild_id=row["guild_id"],
                stream_id=row["stream_id"],
                twitch_user_id=row["twitch_user_id"],
                status=row["status"],
                created_at=_read_time(row["created_at"]),
                synced_at=_read_time(row["synced_at"]),
                event_id=row["event_id"],
                name=row["name"],
                description=row["description"],
                location=row["location"],
                ends_at=_read_optional_time(row["ends_at"]),
            )
            for row in rows
        ]

    async def save_live_event(self, record: LiveEventRecord) -> None:
        """Store one (guild, stream)'s event as it is now; committed at once (a restart continues from it)."""
        await self._execute(
            """
            INSERT INTO live_events (guild_id, stream_id, twitch_user_id, event_id, status, name, description,
                                     location, ends_at, synced_at, created_at)
            VALUES (CAST(:guild_id AS BIGINT), :stream_id, :user_id, CAST(:event_id AS BIGINT), :status, :name,
                    :description, :location, :ends_at, :synced_at, :created_at)
            ON CONFLICT (guild_id, stream_id) DO UPDATE SET
                event_id = excluded.event_id, status = excluded.status, name = excluded.name,
                description = excluded.description, location = excluded.location, ends_at = excluded.ends_at,
                synced_at = excluded.synced_at
            """,
            {
                "guild_id": record.guild_id,
                "stream_id": record.stream_id,
                "user_id": record.twitch_user_id,
                "event_id": record.event_id,
                "status": record.status,
                "name": record.name,
                "description": record.description,
                "location": record.location,
                "ends_at": _stored_time(record.ends_at) if record.ends_at is not None else None,
                "synced_at": _stored_time(record.synced_at),
                "created_at": _stored_time(record.created_at),
            },
        )

    async def set_events_error(self, guild_id: int, error: str | None) -> None:
        """Record why Discord refused the guild's live events, with the time (None clears it)."""
        await self._execute(
            "UPDATE guild_settings SET events_error = :error, events_error_at = :at WHERE guild_id = :guild_id",
            {"error": error, "at": self._now() if error is not None else None, "guild_id": guild_id},
        )

    async def prune_live_events(self, older_than: datetime) -> int:
        """Forget finished events last changed before `older_than`."""
        return await self._execute(
            "DELETE FROM live_events WHERE status IN ('completed', 'canceled', 'gone') AND synced_at < ?",
            (_stored_time(older_than),),
        )

    # -- Twitch schedule import (core.schedule_events) ---------------------------------------------

    async def schedule_import_wanted(self, scope: ShardScope | None = None) -> bool:
        """Whether any of the scope's guilds imports schedules, or has an upcoming event not final yet."""
        on_shards, params = self._on_shards("guild_id", scope)
        row = await self._fetchone(
            f"""
            SELECT EXISTS (SELECT 1 FROM guild_settings WHERE schedule_events = 1 {on_shards})
                OR EXISTS (SELECT 1 FROM schedule_events WHERE status IN ('creating', 'scheduled') {on_shards})
                AS wanted
            """,
            params,
        )
        return row is not None and bool(row["wanted"])

    async def schedule_streamers_due(self, *, fresh_before: datetime, failed_before: datetime, limit: int) -> list[str]:
        """Streamers followed by a guild importing schedules, whose schedule is older than `fresh_before` (or
        was never read) and did not fail after `failed_before`; never read first, then the stalest."""
        rows = await self._fetchall(
            """
            SELECT s.twitch_user_id AS user_id, f.fetched_at AS fetched_at
            FROM subscriptions s
            JOIN guild_settings gs ON gs.guild_id = s.guild_id AND gs.schedule_events = 1
            LEFT JOIN schedule_fetches f ON f.twitch_user_id = s.twitch_user_id
            WHERE (f.fetched_at IS NULL OR f.fetched_at < :fresh_before)
              AND (f.failed_at IS NULL OR f.failed_at < :failed_before)
            GROUP BY s.twitch_user_id, f.fetched_at
            ORDER BY COALESCE(f.fetched_at, ''), s.twitch_user_id
            LIMIT :limit
            """,
            {
                "fresh_before": _stored_time(fresh_before),
                "failed_before": _stored_time(failed_before),
                "limit": limit,
            },
        )
        return [row["user_id"] for row in rows]

    async def store_schedule(self, twitch_user_id: str, segments: Sequence[Broadcast], at: datetime) -> None:
        """Replace the streamer's stored broadcasts with what Twitch listed at `at` (in one transaction)."""
        async with self.transaction() as conn:
            exists = await conn.fetchone("SELECT 1 FROM streamers WHERE twitch_user_id = ?", (twitch_user_id,))
            if exists is None:
                return  # unfollowed everywhere while Twitch answered
            await conn.execute("DELETE FROM schedule_segments WHERE twitch_user_id = ?", (twitch_user_id,))
            for segment in segments:
                await conn.execute(
                    """
                    INSERT INTO schedule_segments (twitch_user_id, segment_id, start_time, end_time, title,
                                                   category_name, recurring)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (twitch_user_id, segment_id) DO NOTHING
                    """,
                    (
                        twitch_user_id,
                        segment.segment_id,
                        _stored_time(segment.start),
                        _stored_time(segment.end) if segment.end is not None else None,
                        segment.title,
                        segment.category_name,
                        int(segment.recurring),
                    ),
                )
            await conn.execute(
                """
                INSERT INTO schedule_fetches (twitch_user_id, fetched_at, failed_at) VALUES (?, ?, NULL)
                ON CONFLICT (twitch_user_id) DO UPDATE SET fetched_at = excluded.fetched_at, failed_at = NULL
                """,
                (twitch_user_id, _stored_time(at)),
            )

    async def next_broadcasts(self, user_ids: Iterable[str], after: datetime) -> dict[str, Broadcast]:
        """Each streamer's first stored broadcast starting after `after` (streamers with none are left out)."""
        rows = await self._fetchall(
            f"""
            SELECT twitch_user_id, segment_id, start_time, end_time, title, category_name, recurring
            FROM schedule_segments
            WHERE twitch_user_id IN (SELECT j.value FROM {self._sql.elements("?")}) AND start_time > ?
            ORDER BY twitch_user_id, start_time, segment_id
            """,
            (json.dumps(list(user_ids)), _stored_time(after)),
        )
        found: dict[str, Broadcast] = {}
        for row in rows:
            found.setdefault(
                row["twitch_user_id"],
                Broadcast(
                    segment_id=row["segment_id"],
                    start=_read_time(row["start_time"]),
                    end=_read_optional_time(row["end_time"]),
                    title=row["title"],
                    category_name=row["category_name"],
                    recurring=bool(row["recurring"]),
                ),
            )
        return found

    async def schedule_fetch_failed(self, twitch_user_id: str, at: datetime) -> None:
        """Twitch could not give the streamer's schedule at `at`: its stored broadcasts stay as they were."""
        await self._execute(
            """
            INSERT INTO schedule_fetches (twitch_user_id, fetched_at, failed_at)
            SELECT twitch_user_id, NULL, :at FROM streamers WHERE twitch_user_id = :user_id
            ON CONFLICT (twitch_user_id) DO UPDATE SET failed_at = excluded.failed_at
            """,
            {"user_id": twitch_user_id, "at": _stored_time(at)},
        )

    async def schedule_event_targets(self, scope: ShardScope | None = None) -> list[ScheduleEventTarget]:
        """One row per (guild, streamer, stored broadcast) for the scope's guilds that import schedules, however
        many of the guild's entries follow the streamer; with when the guild's events were last refused."""
        on_shards, params = self._on_shards("s.guild_id", scope)
        rows = await self._fetchall(
            f"""
            SELECT DISTINCT s.guild_id AS guild_id, seg.twitch_user_id AS user_id, st.login AS login,
                   st.display_name AS display_name, seg.segment_id AS segment_id, seg.start_time AS start_time,
                   seg.end_time AS end_time, seg.title AS title, seg.category_name AS category_name,
                   seg.recurring AS recurring, gs.events_error_at AS refused_at
            FROM schedule_segments seg
            JOIN subscriptions s ON s.twitch_user_id = seg.twitch_user_id
            JOIN guild_settings gs ON gs.guild_id = s.guild_id AND gs.schedule_events = 1
            JOIN streamers st ON st.twitch_user_id = seg.twitch_user_id
            WHERE 1 = 1 {on_shards}
            ORDER BY guild_id, start_time, user_id, segment_id
            """,
            params,
        )
        return [
            ScheduleEventTarget(
                guild_id=row["guild_id"],
                twitch_user_id=row["user_id"],
                login=row["login"],
                display_name=row["display_name"],
                segment_id=row["segment_id"],
                start=_read_time(row["start_time"]),
                end=_read_optional_time(row["end_time"]),
                title=row["title"],
                category_name=row["category_name"],
                recurring=bool(row["recurring"]),
                refused_at=_read_optional_time(row["refused_at"]),
            )
            for row in rows
        ]

    async def schedule_event_records(
        self, scope: ShardScope | None = None, *, guild_id: int | None = None, twitch_user_id: str | None = None
    ) -> list[ScheduleEventRecord]:
        """The upcoming events not final yet (creating or scheduled) of the scope's guilds, or of one (guild,
        streamer) when both are given."""
        on_shards, params = self._on_shards("guild_id", scope)
        one = ""
        if guild_id is not None and twitch_user_id is not None:
            one = "AND guild_id = CAST(:guild_id AS BIGINT) AND twitch_user_id = :user_id"
            params = {**params, "guild_id": guild_id, "user_id": twitch_user_id}
        rows = await self._fetchall(
            f"""
            SELECT guild_id, twitch_user_id, segment_id, event_id, status, name, description, location, start_time,
                   end_time, synced_at, created_at
            FROM schedule_events
            WHERE status IN ('creating', 'scheduled') {on_shards} {one}
            ORDER BY guild_id, start_time, twitch_user_id, segment_id
            """,
            params,
        )
        return [
            ScheduleEventRecord(
                guild_id=row["guild_id"],
                twitch_user_id=row["twitch_user_id"],
                segment_id=row["segment_id"],
                status=row["status"],
                start=_read_time(row["start_time"]),
                end=_read_time(row["end_time"]),
                created_at=_read_time(row["created_at"]),
                synced_at=_read_time(row["synced_at"]),
                event_id=row["event_id"],
                name=row["name"],
                description=row["description"],
                location=row["location"],
            )
            for row in rows
        ]

    async def save_schedule_event(self, record: ScheduleEventRecord) -> None:
        """Store one upcoming event as it is now; committed at once (a restart continues from it)."""
        await self._execute(
            """
            INSERT INTO schedule_events (guild_id, twitch_user_id, segment_id, event_id, status, name, description,
                                         location, start_time, end_time, synced_at, created_at)
            VALUES (CAST(:guild_id AS BIGINT), :user_id, :segment_id, CAST(:event_id AS BIGINT), :status, :name,
                    :description, :location, :start_time, :end_time, :synced_at, :created_at)
            ON CONFLICT (guild_id, twitch_user_id, segment_id) DO UPDATE SET
                event_id = excluded.event_id, status = excluded.status, name = excluded.name,
                description = excluded.description, location = excluded.location,
                start_time = excluded.start_time, end_time = excluded.end_time, synced_at = excluded.synced_at
            """,
            {
                "guild_id": record.guild_id,
                "user_id": record.twitch_user_id,
                "segment_id": record.segment_id,
                "event_id": record.event_id,
                "status": record.status,
                "name": record.name,
                "description": record.description,
                "location": record.location,
                "start_time": _stored_time(record.start),
                "end_time": _stored_time(record.end),
                "synced_at": _stored_time(record.synced_at),
                "created_at": _stored_time(record.created_at),
            },
        )

    async def prune_schedule_events(self, older_than: datetime) -> int:
        """Forget final upcoming events last changed before `older_than`."""
        return await self._execute(
            "DELETE FROM schedule_events WHERE status IN ('adopted', 'canceled', 'gone') AND synced_at < ?",
            (_stored_time(older_than),),
        )


async def open_database(path: str, url: str | None, *, clock: Clock = _utc_now) -> Database:
    """The store the settings ask for: PostgreSQL at `url` (DATABASE_URL) when it is set, else the SQLite file at
    `path` (DATABASE_PATH, the embedded default)."""
    if url:
        return await Database.open_url(url, clock=clock)
    return await Database.open(path, clock=clock)
