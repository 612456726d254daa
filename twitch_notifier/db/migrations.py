"""The database schema's history: ordered migrations with their descriptions (the drivers run them).

MIGRATIONS[n] moves a SQLite database from schema version n (its `user_version`) to n + 1; postgres_schema.py
builds the same versions in PostgreSQL. A migration is never edited once released: files in the field were
built by it; a change of schema is a new migration at the end (for both back-ends).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: the SQL script that builds schema version `version` from `version - 1`."""

    version: int
    description: str
    sql: str
    rebuilds_tables: bool = False
    """The script rebuilds a table other tables reference: foreign keys are off while it runs (SQLite cannot
    switch them inside a transaction) and checked with `PRAGMA foreign_key_check` before it commits."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "guild settings, streamers, subscriptions, live streams and announcements",
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
    ),
    Migration(
        2,
        "remember when Twitch stopped returning a user (banned or deleted) so /streamers can say so",
        """
        ALTER TABLE streamers ADD COLUMN missing_since TEXT;
        """,
    ),
    Migration(
        3,
        "per-server settings, per-subscription overrides, one streamer in several channels of a guild "
        "(uniqueness becomes guild + streamer + channel: a table rebuild, ids kept), the card's life (what it "
        "shows, when it was last edited, when its stream ended and when the card was dealt with) and a cache of "
        "game box art; announcements of streams already over are closed: never touched again",
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
        rebuilds_tables=True,
    ),
    Migration(
        4,
        "when the bot last saw each guild, so a READY that lists fewer guilds than usual (an outage, a "
        "partial start) is not taken for being removed from them; every guild held counts as seen now",
        # strftime writes the one stored time format of database.py (ISO-8601 UTC, whole seconds, +00:00):
        # the script runs without parameters, so SQLite's clock stands in for the bot's here, once.
        """
        CREATE TABLE guilds_seen (
            guild_id     INTEGER PRIMARY KEY,
            last_seen_at TEXT NOT NULL
        );
        INSERT INTO guilds_seen (guild_id, last_seen_at)
            SELECT guild_id, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')
            FROM (SELECT guild_id FROM subscriptions UNION SELECT guild_id FROM guild_settings);
        """,
    ),
    Migration(
        5,
        "subscription ids are never reused (AUTOINCREMENT): an id is part of the announcement's message nonce, "
        "and a removed streamer added back under the same id got the old, closed card back from Discord's "
        "nonce check instead of a new announcement",
        """
        CREATE TABLE subscriptions_v5 (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
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
        INSERT INTO subscriptions_v5 (id, guild_id, twitch_user_id, channel_id, added_by, created_at, last_error,
                                      ping, message_template, games)
            SELECT id, guild_id, twitch_user_id, channel_id, added_by, created_at, last_error,
                   ping, message_template, games
            FROM subscriptions;
        DROP TABLE subscriptions;
        ALTER TABLE subscriptions_v5 RENAME TO subscriptions;
        CREATE INDEX ix_subscriptions_user ON subscriptions (twitch_user_id);
        CREATE INDEX ix_subscriptions_channel ON subscriptions (channel_id);
        """,
        rebuilds_tables=True,
    ),
    Migration(
        6,
        "EventSub: a small key-value table for what the bot keeps about itself (its conduit's id); each "
        "streamer's push state (NULL: pushed or being set up; 'poll_only': over Twitch's cost budget; or the "
        "status Twitch revoked its subscription with, e.g. 'user_removed'); and when push reported a live "
        "stream the poll's listing has not shown yet (it lags a go-live), so a restart does not end it",
        """
        CREATE TABLE bot_state (
            key        TEXT PRIMARY KEY,
            value      TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        ALTER TABLE streamers ADD COLUMN push_state TEXT;
        ALTER TABLE live_streams ADD COLUMN pushed_at TEXT;
        """,
    ),
    Migration(
        7,
        "stream history for /stats and the recap on ended cards: one row per stream (start, last seen, end, peak "
        "viewers, and once thinned its time-weighted totals), its viewer counts and its categories, each keyed by "
        "seconds since the stream's start; a streamer nobody follows takes their history along",
        # Samples and categories are rows of their own (WITHOUT ROWID, keyed by stream and offset): a poll adds a
        # row per live stream, where one growing text per stream would be rewritten whole on every poll.
        """
        CREATE TABLE stream_history (
            id               INTEGER PRIMARY KEY,
            stream_id        TEXT NOT NULL UNIQUE,
            twitch_user_id   TEXT NOT NULL REFERENCES streamers (twitch_user_id) ON DELETE CASCADE,
            started_at       TEXT NOT NULL,
            last_seen_at     TEXT NOT NULL,
            ended_at         TEXT,
            peak_viewers     INTEGER NOT NULL DEFAULT 0,
            viewer_seconds   INTEGER,
            observed_seconds INTEGER
        );
        CREATE INDEX ix_stream_history_user ON stream_history (twitch_user_id, started_at);
        CREATE TABLE stream_samples (
            history_id INTEGER NOT NULL REFERENCES stream_history (id) ON DELETE CASCADE,
            offset_s   INTEGER NOT NULL,
            viewers    INTEGER NOT NULL,
            PRIMARY KEY (history_id, offset_s)
        ) WITHOUT ROWID;
        CREATE TABLE stream_categories (
            history_id INTEGER NOT NULL REFERENCES stream_history (id) ON DELETE CASCADE,
            offset_s   INTEGER NOT NULL,
            game_id    TEXT NOT NULL,
            game_name  TEXT NOT NULL,
            PRIMARY KEY (history_id, offset_s)
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        8,
        "several processes on one database (PostgreSQL): a claim on each (subscription, stream) one of them is "
        "announcing, held by its owner until it expires, so two processes never post the same announcement; "
        "recording the announcement drops its claim, and removing a subscription drops its claims",
        """
        CREATE TABLE announcement_claims (
            subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
            stream_id       TEXT NOT NULL,
            owner           TEXT NOT NULL,
            expires_at      TEXT NOT NULL,
            PRIMARY KEY (subscription_id, stream_id)
        );
        """,
    ),
    Migration(
        9,
        "announcement channels and /diagnose: a server's choice to publish (crosspost) announcements posted in a "
        "news channel; per channel, the times of the bot's publishes within the last hour and until when Discord "
        "refused more (its limit is 10 per hour per channel), so a restart does not forget them; and each entry's "
        "last failure to post, with its time, kept after a later success",
        """
        ALTER TABLE guild_settings ADD COLUMN publish INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE subscriptions ADD COLUMN last_failure TEXT;
        ALTER TABLE subscriptions ADD COLUMN last_failure_at TEXT;
        CREATE TABLE channel_publishing (
            channel_id    INTEGER PRIMARY KEY,
            published     TEXT NOT NULL,
            blocked_until TEXT,
            updated_at    TEXT NOT NULL
        );
        """,
    ),
    Migration(
        10,
        "live scheduled events: a server's choice to have a Discord scheduled event for each announced live stream, "
        "and the last refusal to create one (with its time, so it is not retried every cycle); per (server, stream) "
        "the event's id, its status, and what it shows, so a restart continues the same event",
        """
        ALTER TABLE guild_settings ADD COLUMN live_events INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE guild_settings ADD COLUMN events_error TEXT;
        ALTER TABLE guild_settings ADD COLUMN events_error_at TEXT;
        CREATE TABLE live_events (
            guild_id       INTEGER NOT NULL,
            stream_id      TEXT NOT NULL,
            twitch_user_id TEXT NOT NULL,
            event_id       INTEGER,
            status         TEXT NOT NULL,
            name           TEXT NOT NULL DEFAULT '',
            description    TEXT NOT NULL DEFAULT '',
            location       TEXT NOT NULL DEFAULT '',
            ends_at        TEXT,
            synced_at      TEXT NOT NULL,
            created_at     TEXT NOT NULL,
            PRIMARY KEY (guild_id, stream_id)
        );
        CREATE INDEX ix_live_events_status ON live_events (status);
        """,
    ),
    Migration(
        11,
        "title filters and the restart grace: each entry's title filter (JSON: include and exclude words, a regex, "
        "skip reruns); a server's choice for a card whose stream leaves its entry's filter and its own restart grace "
        "(NULL: the operator's); each live stream's EventSub type (live, rerun, playlist, ...), which the poll "
        "cannot see; per card, the stream whose card it continues (a restart within the grace) and when its stream "
        "left the filter",
        """
        ALTER TABLE subscriptions ADD COLUMN title_filter TEXT;
        ALTER TABLE guild_settings ADD COLUMN filter_exit TEXT;
        ALTER TABLE guild_settings ADD COLUMN restart_grace_seconds INTEGER;
        ALTER TABLE live_streams ADD COLUMN stream_type TEXT NOT NULL DEFAULT 'live';
        ALTER TABLE announcements ADD COLUMN continued_from TEXT;
        ALTER TABLE announcements ADD COLUMN left_filter_at TEXT;
        """,
    ),
    Migration(
        12,
        "opt-in pings: a server's choice to put a “Notify me” button on live cards (each entry may override it) "
        "and to ping a streamer at most once per so many hours; per (server, streamer) the opt-in role the button "
        "hands out and the last stream that pinged, with its time; per card, the ping it was posted with",
        """
        ALTER TABLE guild_settings ADD COLUMN notify_button INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE guild_settings ADD COLUMN ping_throttle_hours INTEGER;
        ALTER TABLE subscriptions ADD COLUMN notify_button INTEGER;
        ALTER TABLE announcements ADD COLUMN ping_sent TEXT;
        CREATE TABLE notify_roles (
            guild_id       INTEGER NOT NULL,
            twitch_user_id TEXT NOT NULL,
            role_id        INTEGER NOT NULL,
            created_at     TEXT NOT NULL,
            PRIMARY KEY (guild_id, twitch_user_id)
        );
        CREATE TABLE last_pings (
            guild_id       INTEGER NOT NULL,
            twitch_user_id TEXT NOT NULL,
            stream_id      TEXT NOT NULL,
            pinged_at      TEXT NOT NULL,
            PRIMARY KEY (guild_id, twitch_user_id)
        );
        """,
    ),
    Migration(
        13,
        "Twitch schedule import: a server's choice to show its streamers' Twitch schedules as upcoming Discord "
        "events; per streamer the schedule last read from Twitch (its segments) and when; per (server, streamer, "
        "segment) the upcoming event made for it, so a restart updates or cancels the same event",
        """
        ALTER TABLE guild_settings ADD COLUMN schedule_events INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE schedule_fetches (
            twitch_user_id TEXT PRIMARY KEY REFERENCES streamers (twitch_user_id) ON DELETE CASCADE,
            fetched_at     TEXT,
            failed_at      TEXT
        );
        CREATE TABLE schedule_segments (
            twitch_user_id TEXT NOT NULL REFERENCES streamers (twitch_user_id) ON DELETE CASCADE,
            segment_id     TEXT NOT NULL,
            start_time     TEXT NOT NULL,
            end_time       TEXT,
            title          TEXT NOT NULL DEFAULT '',
            category_name  TEXT NOT NULL DEFAULT '',
            recurring      INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (twitch_user_id, segment_id)
        );
        CREATE TABLE schedule_events (
            guild_id       INTEGER NOT NULL,
            twitch_user_id TEXT NOT NULL,
            segment_id     TEXT NOT NULL,
            event_id       INTEGER,
            status         TEXT NOT NULL,
            name           TEXT NOT NULL DEFAULT '',
            description    TEXT NOT NULL DEFAULT '',
            location       TEXT NOT NULL DEFAULT '',
            start_time     TEXT NOT NULL,
            end_time       TEXT NOT NULL,
            synced_at      TEXT NOT NULL,
            created_at     TEXT NOT NULL,
            PRIMARY KEY (guild_id, twitch_user_id, segment_id)
        );
        CREATE INDEX ix_schedule_events_status ON schedule_events (status);
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this bot builds, on either back-end; a database with a newer one is refused."""
