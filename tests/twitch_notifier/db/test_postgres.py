"""The PostgreSQL back-end as only it can be used: several Database instances (processes) on one database,
several opening it at once, a database of a newer bot, operator mistakes in DATABASE_URL, NOTIFY, and a server
whose default collation is not C. The behaviour both back-ends share is tested in tests/test_database.py."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from database import SCHEMA_VERSION, Database, DatabaseError, open_database
from twitch_notifier.db.postgres_driver import _connect_error, redact_url, rows_changed
from twitch_notifier.models import LiveStream, ShardScope, Streamer

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SHROUD = Streamer("37402112", "shroud", "shroud")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def live(streamer: Streamer, stream_id: str) -> LiveStream:
    return LiveStream(streamer.twitch_user_id, stream_id, "hello", "VALORANT", 10, NOW, "https://x/{width}.jpg")


@pytest.fixture
async def two(postgres_url):
    """Two Database instances on one PostgreSQL database, as two processes of the bot have, on one clock."""
    clock = Clock()
    first = await Database.open_url(postgres_url, clock=clock)
    second = await Database.open_url(postgres_url, clock=clock)
    yield first, second, clock
    await first.close()
    await second.close()


async def followed_live(db: Database, count: int) -> list:
    streamers = [Streamer(str(1000 + i), f"user{i}", f"User{i}") for i in range(count)]
    for i, streamer in enumerate(streamers):
        await db.add_subscription((i % 4) << 22, 10 + i, streamer)
    await db.apply_live_changes([live(s, f"stream{i}") for i, s in enumerate(streamers)], {}, [])
    return await db.pending_announcements()


async def test_what_one_instance_writes_the_other_reads(two):
    first, second, _ = two
    await first.add_subscription(1, 10, SHROUD)
    assert [s.streamer for s in await second.guild_subscriptions(1)] == [SHROUD]
    assert first.backend == second.backend == "postgresql"


async def test_claims_made_at_once_by_two_instances_split_the_pairs(two):
    first, second, clock = two
    pending = await followed_live(first, 40)
    assert len(await second.pending_announcements()) == 40
    until = clock.now + timedelta(minutes=1)
    for _ in range(5):  # both keep claiming everything at once: each pair stays with whoever got it first
        got_a, got_b = await asyncio.gather(
            first.claim_announcements(pending, "a", until), second.claim_announcements(pending, "b", until)
        )
        assert got_a.isdisjoint(got_b)
        assert got_a | got_b == {(p.subscription_id, p.stream_id) for p in pending}
    owners = await first.claim_announcements(pending, "a", until), await second.claim_announcements(pending, "b", until)
    assert owners == (got_a, got_b)


async def test_an_expired_claim_is_taken_over_by_the_other_instance(two):
    first, second, clock = two
    [pending] = await followed_live(first, 1)
    pair = {(pending.subscription_id, pending.stream_id)}
    assert await first.claim_announcements([pending], "a", clock.now + timedelta(seconds=30)) == pair
    assert await second.claim_announcements([pending], "b", clock.now + timedelta(seconds=30)) == set()
    clock.now += timedelta(seconds=31)  # "a" died without announcing
    assert await second.claim_announcements([pending], "b", clock.now + timedelta(seconds=30)) == pair
    assert await first.claim_announcements([pending], "a", clock.now + timedelta(seconds=30)) == set()
    await second.record_announcement(pending, 555)
    clock.now += timedelta(hours=1)
    assert await first.claim_announcements([pending], "a", clock.now + timedelta(seconds=30)) == set()
    assert await first.pending_announcements() == []


async def test_a_process_taking_over_shards_drops_the_claims_of_the_one_gone(two):
    first, second, clock = two
    pending = await followed_live(first, 8)  # guilds on shards 0, 1, 2, 3 of 4
    until = clock.now + timedelta(minutes=10)
    assert len(await first.claim_announcements(pending, "gone", until)) == 8
    taken = ShardScope(4, (1, 2))
    assert await second.drop_claims(taken, except_owner="b") == 4
    mine = await second.claim_announcements(await second.pending_announcements(taken), "b", until)
    assert {sub_id for sub_id, _ in mine} == {p.subscription_id for p in pending if taken.holds(p.guild_id)}
    assert await second.claim_announcements(pending, "b", until) == mine  # the other shards' claims still hold


async def test_instances_opening_one_empty_database_at_once_migrate_it_once(postgres_url, caplog):
    caplog.set_level(logging.INFO)
    opened = await asyncio.gather(*(Database.open_url(postgres_url) for _ in range(6)))
    try:
        assert [await db.schema_version() for db in opened] == [SCHEMA_VERSION] * 6
        created = [r for r in caplog.records if "created at schema version" in r.getMessage()]
        migrated = [r for r in caplog.records if "migrated to schema version" in r.getMessage()]
        assert len(created) == 1
        assert len(migrated) == SCHEMA_VERSION - 7  # the baseline is version 7
    finally:
        for db in opened:
            await db.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetch("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    finally:
        await conn.close()


async def test_a_database_of_a_newer_bot_is_refused(postgres_url):
    db = await Database.open_url(postgres_url)
    await db.add_subscription(1, 10, SHROUD)
    await db.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("UPDATE schema_version SET version = $1", SCHEMA_VERSION + 1)
    finally:
        await conn.close()
    with pytest.raises(DatabaseError, match="newer") as refused:
        await Database.open_url(postgres_url)
    assert "DATABASE_URL" in str(refused.value)


async def test_a_database_holding_someone_elses_tables_is_refused(postgres_url):
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TABLE subscriptions (id int)")
    finally:
        await conn.close()
    with pytest.raises(DatabaseError, match="not built by this bot"):
        await Database.open_url(postgres_url)


async def test_open_database_picks_the_back_end(postgres_url, tmp_path):
    db = await open_database(str(tmp_path / "bot.db"), postgres_url)
    try:
        assert db.backend == "postgresql"
    finally:
        await db.close()
    assert not (tmp_path / "bot.db").exists()
    db = await open_database(str(tmp_path / "bot.db"), None)
    try:
        assert db.backend == "sqlite"
    finally:
        await db.close()


async def test_notify_reaches_a_listener(postgres_url):
    db = await Database.open_url(postgres_url)
    listener = await asyncpg.connect(postgres_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener("twitch_notifier_live", lambda *args: heard.put_nowait(args[3]))
        await db.notify("twitch_notifier_live", "37402112")
        assert await asyncio.wait_for(heard.get(), 10) == "37402112"
    finally:
        await listener.close()
        await db.close()


# -- operator mistakes in DATABASE_URL -----------------------------------------------------------------------


def url_with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


async def test_an_unknown_database_is_named_without_the_password(postgres_url):
    url = url_with_password(postgres_url.rsplit("/", 1)[0] + "/no_such_database", "hunter2-secret")
    with pytest.raises(DatabaseError) as refused:
        await Database.open_url(url)
    message = str(refused.value)
    assert message.startswith("DATABASE_URL postgresql://postgres:***@")
    assert "no_such_database" in message
    assert "does not exist" in message
    assert "hunter2" not in message
    assert refused.value.__cause__ is None  # nothing chained that could carry the URL either


async def test_an_unknown_user_is_a_refused_login(postgres_url):
    url = postgres_url.replace("postgresql://postgres@", "postgresql://nobody:pw%40rd@")
    with pytest.raises(DatabaseError, match="refused the login") as refused:
        await Database.open_url(url)
    assert "nobody" in str(refused.value)
    assert "pw%40rd" not in str(refused.value)
    assert "pw@rd" not in str(refused.value)


async def test_a_server_that_is_not_there_is_unreachable(unused_tcp_port):
    url = f"postgresql://bot:s3cret@127.0.0.1:{unused_tcp_port}/bot"
    with pytest.raises(DatabaseError, match="cannot reach the PostgreSQL server") as refused:
        await Database.open_url(url)
    assert str(refused.value).startswith(f"DATABASE_URL postgresql://bot:***@127.0.0.1:{unused_tcp_port}/bot:")
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    ["mysql://bot:s3cret@db/bot", "bot:s3cret@db/bot", "postgresql://bot:s3cret@db:notaport/bot", "postgresql://[bad"],
)
async def test_an_unusable_url_is_refused_without_its_password(url):
    with pytest.raises(DatabaseError, match="DATABASE_URL") as refused:
        await Database.open_url(url)
    assert "s3cret" not in str(refused.value)
    assert "postgresql://user:password@host:port/database" in str(refused.value)


def test_a_wrong_password_says_so_without_it():
    # The test server trusts every login, so the server's answer to a wrong password is made up here.
    url = "postgresql://bot:Tr0ub4dor%263@db.example:5432/bot?sslmode=require&password=other-secret"
    error = _connect_error(url, asyncpg.InvalidPasswordError('password authentication failed for user "bot"'))
    message = str(error)
    assert message.startswith("DATABASE_URL postgresql://bot:***@db.example:5432/bot?sslmode=require&password=***:")
    assert "refused the password" in message
    for secret in ("Tr0ub4dor", "other-secret"):
        assert secret not in message


def test_redacted_urls_keep_everything_but_the_password():
    assert redact_url("postgresql://bot@db/bot") == "postgresql://bot@db/bot"
    assert redact_url("postgresql://bot:x@db:5433/bot") == "postgresql://bot:***@db:5433/bot"
    assert redact_url("postgres://bot:p:w@h1,h2/bot?password=y") == "postgres://bot:***@h1,h2/bot?password=***"
    assert redact_url("postgresql://db/bot") == "postgresql://db/bot"


def test_rows_changed_reads_the_command_status():
    assert [rows_changed(s) for s in ("UPDATE 3", "INSERT 0 1", "DELETE 0", "SELECT 12", "CREATE TABLE")] == [
        3,
        1,
        0,
        12,
        0,
    ]


# -- a server whose default collation is not C ------------------------------------------------------------


@pytest.fixture
async def icu_url(postgres_url):
    """A database whose default collation is ICU's en-US (most servers default to a natural-language one)."""
    base, name = postgres_url.rsplit("/", 1)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(
            f"CREATE DATABASE \"{name}_icu\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        )
    finally:
        await conn.close()
    yield f"{base}/{name}_icu"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}_icu" WITH (FORCE)')
    finally:
        await conn.close()


async def test_names_order_and_match_as_in_sqlite_whatever_the_servers_collation(icu_url, tmp_path):
    names = ["Zed", "émile", "eve", "ÉMILE", "_under", "Bob"]
    results = []
    for db in (await Database.open_url(icu_url), await Database.open(str(tmp_path / "bot.db"))):
        try:
            for i, name in enumerate(names):
                await db.add_subscription(1, 10, Streamer(str(i), f"login{i}", name))
            ordered = [s.streamer.display_name for s in await db.guild_subscriptions(1)]
            found = [s.streamer.display_name for s in await db.search_guild_subscriptions(1, "émile")]
            results.append((ordered, found))
        finally:
            await db.close()
    postgres, sqlite = results
    assert postgres == sqlite
    # Code point order of lower(): only ASCII letters are lowered; "_" comes before letters, "É" and "é" after "z".
    assert sqlite[0] == ["_under", "Bob", "eve", "Zed", "ÉMILE", "émile"]
    assert sqlite[1] == ["émile"]
