"""The throwaway PostgreSQL server of tests/pg_cluster.py and its fixtures: real databases, fresh and empty
per test, on 127.0.0.1 only, advisory locks across connections, and clear errors when the server is gone."""

import asyncio
import os
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.pg_cluster import ROOT, PostgresCluster, find_bin_dir

TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"


async def test_the_url_connects_to_a_fresh_database(postgres_url):
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == urlsplit(postgres_url).path.lstrip("/")
        assert await conn.fetchval(TABLES) == 0
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO t VALUES (1)")
        assert await conn.fetchval("SELECT id FROM t") == 1
    finally:
        await conn.close()


@pytest.fixture
async def second_url(postgres_cluster):
    url = await postgres_cluster.create_database()
    yield url
    await postgres_cluster.drop_database(urlsplit(url).path.lstrip("/"))


async def test_two_databases_are_different_and_empty(postgres_url, second_url):
    assert postgres_url != second_url
    first = await asyncpg.connect(postgres_url)
    second = await asyncpg.connect(second_url)
    try:
        await first.execute("CREATE TABLE only_here (id int)")
        assert await first.fetchval(TABLES) == 1
        assert await second.fetchval(TABLES) == 0
    finally:
        await first.close()
        await second.close()


async def test_a_dropped_database_is_gone_even_with_a_session_open(postgres_cluster):
    url = await postgres_cluster.create_database()
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(url)
    await postgres_cluster.drop_database(name)  # WITH (FORCE) ends the open session
    with pytest.raises((asyncpg.InvalidCatalogNameError, asyncpg.ConnectionDoesNotExistError)):
        await asyncpg.connect(url)
    with pytest.raises((asyncpg.InterfaceError, asyncpg.PostgresConnectionError, ConnectionError)):
        await conn.fetchval("SELECT 1")
    await conn.close()


async def test_the_server_listens_on_127_0_0_1_only(postgres_url, postgres_cluster):
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SHOW port") == str(postgres_cluster.port)
    finally:
        await conn.close()
    # Another loopback address on the same port: nothing is bound there.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", postgres_cluster.port), timeout=5).close()
    with socket.create_connection(("127.0.0.1", postgres_cluster.port), timeout=5):
        pass


async def test_an_advisory_lock_is_held_by_one_connection_until_it_closes(postgres_url):
    first = await asyncpg.connect(postgres_url)
    second = await asyncpg.connect(postgres_url)
    try:
        assert await first.fetchval("SELECT pg_try_advisory_lock(42)") is True
        assert await second.fetchval("SELECT pg_try_advisory_lock(42)") is False
        await first.close()
        # The server releases a closed session's locks once it has noticed the close: poll briefly.
        for _ in range(100):
            if await second.fetchval("SELECT pg_try_advisory_lock(42)"):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the advisory lock was not released when its connection closed")
    finally:
        await first.close()
        await second.close()


def test_the_server_is_stopped_and_its_directory_removed():
    cluster = PostgresCluster()
    cluster.start()
    tmp, process = cluster.tmp, cluster.process
    assert tmp is not None
    assert process is not None
    assert (tmp / "data" / "PG_VERSION").is_file()
    if os.geteuid() == 0:
        assert (tmp / "data").stat().st_uid != 0, "the server's files belong to root"
    cluster.stop()
    assert process.poll() is not None
    assert not tmp.exists()


async def test_a_dead_server_is_reported_with_its_log():
    cluster = PostgresCluster()
    cluster.start()
    try:
        assert cluster.process is not None
        cluster.process.kill()
        cluster.process.wait()
        with pytest.raises(RuntimeError, match=r"exited with status -9"):
            await cluster.create_database()
    finally:
        cluster.stop()


def test_the_script_finds_the_same_server_as_the_module():
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure_postgres.sh")], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr
    bin_dir = result.stdout.strip().splitlines()[-1]
    assert bin_dir == find_bin_dir()
    assert (Path(bin_dir) / "postgres").is_file()
