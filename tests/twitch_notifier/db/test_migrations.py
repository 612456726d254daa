"""Unit tests for db/migrations.py: the schema's history is ordered, described, and run as described."""

import dataclasses
import logging
import sqlite3

import pytest

from database import SCHEMA_VERSION, Database
from twitch_notifier.db.migrations import MIGRATIONS, Migration


def test_versions_run_one_to_n_without_gaps():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert len(MIGRATIONS) == SCHEMA_VERSION


def test_every_migration_says_what_it_does_and_is_frozen():
    for migration in MIGRATIONS:
        assert migration.description.strip()
        assert migration.sql.strip()
    with pytest.raises(dataclasses.FrozenInstanceError):
        MIGRATIONS[0].sql = "DROP TABLE subscriptions"  # type: ignore[misc]


def test_only_the_subscriptions_rebuild_runs_with_foreign_keys_off():
    assert [m.version for m in MIGRATIONS if m.rebuilds_tables] == [3, 5]  # both rebuild subscriptions
    assert Migration(9, "x", "SELECT 1").rebuilds_tables is False


def test_each_script_builds_its_version_in_plain_sqlite():
    conn = sqlite3.connect(":memory:")
    try:
        for migration in MIGRATIONS:
            conn.executescript(f"BEGIN; {migration.sql}; PRAGMA user_version = {migration.version}; COMMIT;")
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


async def test_the_runner_logs_each_migrations_description(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="database")
    db = await Database.open(str(tmp_path / "bot.db"))
    await db.close()
    logged = [r.getMessage() for r in caplog.records if "migrated to schema version" in r.getMessage()]
    assert len(logged) == len(MIGRATIONS)
    for message, migration in zip(logged, MIGRATIONS, strict=True):
        assert f"schema version {migration.version}: {migration.description}" in message
