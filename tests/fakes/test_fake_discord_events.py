"""Proves the fake Discord's guild scheduled events refuse what Discord refuses (tests/fakes/discord_events.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.fakes.discord_events import ACTIVE, CANCELED, COMPLETED, CREATE_EVENTS, MANAGE_EVENTS, SCHEDULED
from tests.fakes.fake_discord import DEFAULT_BOT_PERMISSIONS, FakeDiscord, FakeGuild

TOKEN = "fake-discord-token.Abc.Secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(token=TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


class Api:
    def __init__(self, fake: FakeDiscord, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.fake.api_base + path, json=body) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def api(fake: FakeDiscord) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {TOKEN}"}) as session:
        yield Api(fake, session)


def event_body(**changes: Any) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(seconds=30)
    body = {
        "name": "ranked",
        "description": "shroud is live",
        "privacy_level": 2,
        "entity_type": 3,
        "entity_metadata": {"location": "https://www.twitch.tv/shroud"},
        "scheduled_start_time": start.isoformat(),
        "scheduled_end_time": (start + timedelta(hours=4)).isoformat(),
    }
    return body | changes


def guild_with(fake: FakeDiscord, permissions: int) -> FakeGuild:
    return fake.add_guild("Guild", bot_permissions=DEFAULT_BOT_PERMISSIONS | permissions)


async def test_an_external_event_is_created_listed_and_run_through_its_statuses(fake: FakeDiscord, api: Api) -> None:
    guild = guild_with(fake, CREATE_EVENTS)
    status, created = await api.call("POST", f"/guilds/{guild.id}/scheduled-events", event_body())
    assert status == 200, created
    assert created["status"] == SCHEDULED
    assert created["creator_id"] == str(fake.bot_user_id)
    assert created["entity_metadata"] == {"location": "https://www.twitch.tv/shroud"}
    path = f"/guilds/{guild.id}/scheduled-events/{created['id']}"
    assert (await api.call("GET", f"/guilds/{guild.id}/scheduled-events"))[1] == [created]
    assert (await api.call("PATCH", path, {"status": COMPLETED}))[0] == 400  # SCHEDULED cannot complete
    assert (await api.call("PATCH", path, {"status": ACTIVE}))[1]["status"] == ACTIVE
    assert (await api.call("PATCH", path, {"status": CANCELED}))[0] == 400  # an ACTIVE event cannot be cancelled
    assert (await api.call("PATCH", path, {"name": "renamed"}))[1]["name"] == "renamed"
    assert (await api.call("PATCH", path, {"status": COMPLETED}))[1]["status"] == COMPLETED
    status, refused = await api.call("PATCH", path, {"name": "too late"})
    assert status == 400
    assert refused["code"] == 180000
    assert (await api.call("GET", f"/guilds/{guild.id}/scheduled-events"))[1] == []
    fake.scheduled_events.delete(int(created["id"]))
    assert (await api.call("PATCH", path, {"name": "x"}))[1]["code"] == 10070


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"description": "x" * 1001}, "description"),
        ({"privacy_level": 1}, "privacy_level"),
        ({"entity_metadata": None}, "entity_metadata"),
        ({"entity_metadata": {"location": "x" * 101}}, "entity_metadata"),
        ({"scheduled_end_time": None}, "scheduled_end_time"),
        ({"scheduled_start_time": (datetime.now(UTC) - timedelta(seconds=5)).isoformat()}, "scheduled_start_time"),
        ({"scheduled_end_time": datetime.now(UTC).isoformat()}, "scheduled_end_time"),
        ({"channel_id": "123"}, "channel_id"),
    ],
)
async def test_a_bad_event_is_refused_with_the_field_named(
    fake: FakeDiscord, api: Api, changes: dict[str, Any], field: str
) -> None:
    guild = guild_with(fake, CREATE_EVENTS)
    status, body = await api.call("POST", f"/guilds/{guild.id}/scheduled-events", event_body(**changes))
    assert status == 400
    assert body["code"] == 50035
    assert field in body["errors"]
    assert fake.scheduled_events.in_guild(guild.id) == []


async def test_creating_needs_create_events_and_manage_events_alone_is_not_enough(fake: FakeDiscord, api: Api) -> None:
    for permissions in (0, MANAGE_EVENTS):
        guild = guild_with(fake, permissions)
        status, body = await api.call("POST", f"/guilds/{guild.id}/scheduled-events", event_body())
        assert (status, body["code"]) == (403, 50013)


async def test_changing_an_event_of_someone_else_needs_manage_events(fake: FakeDiscord, api: Api) -> None:
    guild = guild_with(fake, CREATE_EVENTS)
    owned = fake.scheduled_events.create(guild, guild.owner_id, event_body())
    path = f"/guilds/{guild.id}/scheduled-events/{owned.id}"
    status, body = await api.call("PATCH", path, {"name": "mine now"})
    assert (status, body["code"]) == (403, 50013)
    fake.set_bot_guild_permissions(guild.id, DEFAULT_BOT_PERMISSIONS | MANAGE_EVENTS)
    assert (await api.call("PATCH", path, {"name": "managed"}))[0] == 200


async def test_at_most_100_open_events_per_guild(fake: FakeDiscord, api: Api) -> None:
    guild = guild_with(fake, CREATE_EVENTS)
    for _ in range(100):
        fake.scheduled_events.create(guild, fake.bot_user_id, event_body())
    status, body = await api.call("POST", f"/guilds/{guild.id}/scheduled-events", event_body())
    assert (status, body["code"]) == (400, 30038)
