"""The shared builders of the test suite: the fake Discord and fake Twitch on 127.0.0.1, the bot harness,
a watch on ERROR logs, a throwaway PostgreSQL server with a fresh database per test (`postgres_url`), and
`build_notifier` for unit tests of the notifier."""

import logging
from typing import Any

import pytest

from tests.e2e.harness import (
    DISCORD_TOKEN,
    IDENTIFY_WINDOW,
    TWITCH_CLIENT_ID,
    TWITCH_CLIENT_SECRET,
    BotHarness,
    LogWatcher,
)
from tests.fakes.fake_discord import FakeDiscord, patch_discord_endpoints
from tests.fakes.fake_twitch import FakeTwitch
from tests.pg_cluster import PostgresCluster
from twitch_notifier.core.notifier import Notifier
from twitch_notifier.core.ports import Announcer, NotifierStore
from twitch_notifier.rendering.cards import Cards


def build_notifier(db: NotifierStore, announcer: Announcer, **options: Any) -> Notifier:
    """A Notifier with the production renderer; `options` are Notifier's keyword arguments."""
    options.setdefault("renderer", Cards())
    return Notifier(db, announcer, **options)


def pytest_configure(config):
    config.addinivalue_line("markers", "allow_error_logs: the test expects ERROR log records")


@pytest.fixture
async def fake_discord():
    # Discord's identify window is 5 s: a bot restarted within it (kill -9 tests) would wait that long.
    fake = FakeDiscord(token=DISCORD_TOKEN, identify_window_seconds=IDENTIFY_WINDOW)
    await fake.start()
    with patch_discord_endpoints(fake):
        yield fake
    await fake.stop()
    assert fake.unhandled == [], f"the bot called routes the fake does not implement: {fake.unhandled}"
    assert fake.rejected == [], f"the fake Discord rejected payloads: {fake.rejected}"


@pytest.fixture
async def fake_twitch():
    fake = FakeTwitch(client_id=TWITCH_CLIENT_ID, client_secret=TWITCH_CLIENT_SECRET)
    await fake.start()
    yield fake
    await fake.stop()
    assert fake.unhandled == [], f"the bot called Twitch routes the fake does not implement: {fake.unhandled}"


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL server (tests/pg_cluster.py), started the first time a test asks for one. No
    server and no way to install one fails the test, saying why: a store test that skips cannot fail."""
    try:
        cluster = PostgresCluster()
        cluster.start()
    except RuntimeError as error:
        pytest.fail(str(error))
    yield cluster
    cluster.stop()


@pytest.fixture
async def postgres_url(postgres_cluster):
    """The URL of a fresh, empty database on the test server, dropped after the test."""
    url = await postgres_cluster.create_database()
    yield url
    await postgres_cluster.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def error_logs(request):
    watcher = LogWatcher()
    root = logging.getLogger()
    root.addHandler(watcher)
    yield watcher
    root.removeHandler(watcher)
    if request.node.get_closest_marker("allow_error_logs") is None:
        assert watcher.records == [], f"unexpected ERROR logs: {watcher.formatted()}"


@pytest.fixture
async def harness(fake_discord, fake_twitch, tmp_path, error_logs):
    """A bot not yet started: tests add guilds/channels to the fake first, then `await harness.start()`."""
    h = BotHarness(fake_discord, fake_twitch, tmp_path / "bot.db")
    yield h
    await h.stop()


@pytest.fixture
async def guild_a(harness, fake_discord, fake_twitch):
    """A started bot in "Guild A" with #alerts and #general, and Twitch users shroud and pokimane."""
    guild = fake_discord.add_guild("Guild A")
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    general = fake_discord.add_text_channel(guild.id, "general")
    fake_twitch.add_user("shroud")
    fake_twitch.add_user("pokimane", display_name="Pokimane")
    await harness.start()
    return guild, alerts, general
