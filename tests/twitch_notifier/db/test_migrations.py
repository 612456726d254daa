"""Unit tests for db/migrations.py and db/postgres_schema.py: the schema's history is ordered, described, run as
described, and builds the same tables and columns in SQLite and in PostgreSQL."""

import dataclasses
import logging
import sqlite3

import asyncpg
import pytest

from database import SCHEMA_VERSION, Database
from twitch_notifier.db.migrations import MIGRATIONS, Migration
from twitch_notifier.db.postgres_schema import BASELINE_VERSION, MIGRATIONS_AFTER_BASELINE


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
    caplog.set_level(logging.INFO)
    db = await Database.open(str(tmp_path / "bot.db"))
    await db.close()
    logged = [r.getMessage() for r in caplog.records if "migrated to schema version" in r.getMessage()]
    assert len(logged) == len(MIGRATIONS)
    for message, migration in zip(logged, MIGRATIONS, strict=True):
        assert f"schema version {migration.version}: {migration.description}" in message


def test_every_migration_after_the_postgresql_baseline_has_its_postgresql_twin():
    assert [m.version for m in MIGRATIONS_AFTER_BASELINE] == list(range(BASELINE_VERSION + 1, SCHEMA_VERSION + 1))
    for twin in MIGRATIONS_AFTER_BASELINE:
        assert twin.description == MIGRATIONS[twin.version - 1].description
        assert twin.sql.strip() != MIGRATIONS[twin.version - 1].sql.strip()  # PostgreSQL's types, not a copy


def sqlite_columns() -> dict[str, list[str]]:
    conn = sqlite3.connect(":memory:")
    try:
        for migration in MIGRATIONS:
            conn.executescript(f"BEGIN; {migration.sql}; COMMIT;")
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            table: sorted(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
            for table in tables
            if not table.startswith("sqlite_")
        }
    finally:
        conn.close()


async def test_both_back_ends_build_the_same_tables_and_columns(postgres_url):
    db = await Database.open_url(postgres_url)
    await db.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        )
    finally:
        await conn.close()
    postgres: dict[str, list[str]] = {}
    for row in rows:
        postgres.setdefault(row["table_name"], []).append(row["column_name"])
    assert sorted(postgres.pop("schema_version")) == ["version"]  # where PostgreSQL keeps SQLite's user_version
    assert {table: sorted(columns) for table, columns in postgres.items()} == sqlite_columns()


async def test_every_postgresql_text_column_compares_by_code_point_like_sqlite(postgres_url):
    db = await Database.open_url(postgres_url)
    await db.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = 'text'"
        )
    finally:
        await conn.close()
    assert rows
    assert [(r["table_name"], r["column_name"]) for r in rows if r["collation_name"] != "C"] == []
