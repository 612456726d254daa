"""Proves the fake Discord with the real discord.py client: login, gateway, commands, messages, faults.

A small commands.Bot (not the shipped bot) exercises each behaviour the e2e tests rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord_payloads import CATEGORY_CHANNEL, VOICE_CHANNEL
from tests.fakes.fake_discord import (
    PROXY_502_HTML,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeRole,
    InteractionRefused,
    TypedChannel,
    patch_discord_endpoints,
    permission_value,
)

TOKEN = "fake-discord-token.Abc.Secret"
IDENTIFY_WINDOW = 0.05  # the fake's identify rate-limit window here (Discord's is 5 s), and MiniBot's pause
STREAMERS = ["shroud", "shroomy", "xqc"]


def _build_commands() -> list[app_commands.Command[Any, ..., Any] | app_commands.Group]:
    @app_commands.command(name="addstreamer", description="Follow a streamer")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def addstreamer(interaction: discord.Interaction, streamer: str, channel: discord.TextChannel) -> None:
        if not interaction.permissions.manage_guild:  # Discord's default can be overridden by server admins
            await interaction.response.send_message("You need the Manage Server permission.", ephemeral=True)
            return
        embed = discord.Embed(title="Now following", description=f"{streamer} in {channel.mention}")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="status", description="Show the bot's status")
    async def status(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        embed = discord.Embed(title="Status", description="polling").set_footer(text="fake")
        await interaction.followup.send("All systems go", embed=embed, ephemeral=True)

    @app_commands.command(name="removestreamer", description="Stop following a streamer")
    @app_commands.guild_only()
    async def removestreamer(interaction: discord.Interaction, streamer: str) -> None:
        await interaction.response.send_message(f"Removed {streamer}", ephemeral=True)

    @removestreamer.autocomplete("streamer")
    async def streamer_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=s, value=s) for s in STREAMERS if s.startswith(current)]

    config = app_commands.Group(name="config", description="Settings", guild_only=True)

    @config.command(name="show", description="Show the settings")
    async def show(interaction: discord.Interaction, verbose: bool = False, role: discord.Role | None = None) -> None:
        await interaction.response.send_message(f"verbose={verbose} role={role.name if role else None}")

    return [addstreamer, status, removestreamer, config]


class MiniBot(commands.Bot):
    def __init__(self) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            help_command=None,
            guild_ready_timeout=0.05,  # passed through to ConnectionState; discord.py waits 2 s by default
        )
        for command in _build_commands():
            self.tree.add_command(command)

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py's pause before a re-IDENTIFY, as long as the fake's shortened window (not 5 s)."""
        if not initial:
            await asyncio.sleep(IDENTIFY_WINDOW)


class ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def expect(self, pattern: str) -> list[logging.LogRecord]:
        """Take the ERROR records a test expects (at least one) out of the collector."""
        matched = [r for r in self.records if re.search(pattern, r.getMessage())]
        assert matched, f"no ERROR log matching {pattern!r}: {[r.getMessage() for r in self.records]}"
        self.records = [r for r in self.records if r not in matched]
        return matched


@dataclass
class World:
    guild: FakeGuild
    alerts: FakeChannel
    general: FakeChannel
    role: FakeRole


@pytest.fixture(autouse=True)
def no_discord_errors() -> Iterator[ErrorCollector]:
    """Every test fails if any discord.* logger recorded an ERROR it did not ``expect``."""
    errors = ErrorCollector()
    logger = logging.getLogger("discord")
    logger.addHandler(errors)
    yield errors
    logger.removeHandler(errors)
    assert [f"{r.name}: {r.getMessage()}" for r in errors.records] == []


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(token=TOKEN, identify_window_seconds=IDENTIFY_WINDOW)
    await fake.start()
    with patch_discord_endpoints(fake):
        yield fake
    await fake.stop()
    assert fake.unhandled == []


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild = fake.add_guild("Guild A")
    alerts = fake.add_text_channel(guild.id, "alerts")
    general = fake.add_text_channel(guild.id, "general")
    role = fake.add_role(guild.id, "live-pings", mentionable=True)
    return World(guild, alerts, general, role)


@contextlib.asynccontextmanager
async def running_bot() -> AsyncIterator[MiniBot]:
    """A MiniBot logged in, connected and ready; fails at once if ``connect()`` dies."""
    bot = MiniBot()
    await bot.login(TOKEN)
    task = asyncio.create_task(bot.connect(), name="bot.connect")
    ready = asyncio.ensure_future(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({ready, task}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            raise AssertionError(f"bot.connect() died: {task.exception()!r}")
        assert ready in done, "bot never became ready"
        yield bot
        # Let command handlers finish their last HTTP call before the session closes.
        invokers = [t for t in asyncio.all_tasks() if t.get_name() == "CommandTree-invoker"]
        await asyncio.wait_for(asyncio.gather(*invokers), 5)
    finally:
        ready.cancel()
        await bot.close()
        await asyncio.wait_for(task, 5)


@pytest.fixture
async def bot(fake: FakeDiscord, world: World) -> AsyncIterator[MiniBot]:
    async with running_bot() as bot:
        yield bot


async def expect_event(bot: MiniBot, event: str, trigger: Awaitable[Any], timeout: float = 5.0) -> Any:
    """Run ``trigger`` and wait for discord.py to dispatch ``event`` because of it."""
    waiter = bot.wait_for(event, timeout=timeout)  # registers the listener before the trigger
    await trigger
    return await waiter


# --------------------------------------------------------------------------- login and ready


async def test_login_with_wrong_token_fails(fake: FakeDiscord) -> None:
    bot = MiniBot()
    with pytest.raises(discord.LoginFailure):
        await bot.login("not-the-token")
    await bot.close()
    assert [(r.method, r.path, r.status) for r in fake.rejected] == [("GET", "/users/@me", 401)]


async def test_ready_shows_guilds_channels_and_bot_permissions(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    assert fake.identify_payloads[0]["intents"] == discord.Intents.default().value
    assert bot.application_id == fake.application_id
    guild = bot.get_guild(world.guild.id)
    assert guild is not None
    assert guild.name == "Guild A"
    assert {c.name for c in guild.text_channels} == {"alerts", "general"}
    assert guild.me.id == fake.bot_user_id
    alerts = guild.get_channel(world.alerts.id)
    assert isinstance(alerts, discord.TextChannel)
    perms = alerts.permissions_for(guild.me)
    assert perms.view_channel
    assert perms.send_messages
    assert perms.embed_links
    assert not perms.manage_guild

    fake.set_bot_channel_permissions(world.alerts.id, deny=("send_messages",))
    await expect_event(bot, "guild_channel_update", fake.drain())
    perms = alerts.permissions_for(guild.me)
    assert perms.view_channel
    assert not perms.send_messages
    assert not perms.embed_links
    # discord.py strips voice permissions in text channels; otherwise both agree.
    assert perms.value == fake.bot_permissions_in(world.alerts.id) & ~discord.Permissions.voice().value


async def test_runtime_channel_create_and_role_update(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    channel = await expect_event(bot, "guild_channel_create", fake.create_channel(world.guild.id, "new"))
    assert channel.name == "new"
    assert channel.guild.id == world.guild.id
    assert not channel.permissions_for(channel.guild.me).manage_guild
    fake.set_bot_guild_permissions(world.guild.id, permission_value("administrator"))
    await expect_event(bot, "guild_role_update", fake.drain())
    assert channel.permissions_for(channel.guild.me).manage_guild


async def test_guild_join_and_remove_at_runtime(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    other = fake.add_guild("Guild B")
    other_channel = fake.add_text_channel(other.id, "b-alerts")
    assert bot.get_guild(other.id) is None
    joined = await expect_event(bot, "guild_join", fake.join_guild(other))
    assert joined.id == other.id
    assert joined.me is not None
    assert joined.get_channel(other_channel.id) is not None

    removed = await expect_event(bot, "guild_remove", fake.remove_guild(other.id))
    assert removed.id == other.id
    assert bot.get_guild(other.id) is None
    with pytest.raises(discord.Forbidden) as excinfo:
        await bot.get_partial_messageable(other_channel.id).send("still here?")
    assert excinfo.value.code == 50001


# --------------------------------------------------------------------------- commands and interactions


async def test_tree_sync_is_stored(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    synced = {c["name"]: c for c in fake.synced_commands}
    assert set(synced) == {"addstreamer", "status", "removestreamer", "config"}
    assert synced["addstreamer"]["default_member_permissions"] == str(1 << 5)
    assert synced["addstreamer"]["contexts"] == [0]
    fetched = await bot.tree.fetch_commands()
    assert {c.id for c in fetched} == {int(c["id"]) for c in fake.synced_commands}

    bot.tree.copy_global_to(guild=discord.Object(world.guild.id))
    await bot.tree.sync(guild=discord.Object(world.guild.id))
    assert {c["name"] for c in fake.guild_commands[world.guild.id]} == set(synced)
    assert all(c["guild_id"] == str(world.guild.id) for c in fake.guild_commands[world.guild.id])


async def test_invoke_gets_an_ephemeral_reply(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    inter = await fake.invoke(
        "addstreamer",
        {"streamer": "shroud", "channel": world.alerts.id},
        guild_id=world.guild.id,
        channel_id=world.general.id,
        permissions=fake.MANAGE_GUILD_PERMISSIONS,
    )
    reply = await inter.wait_reply()
    assert inter.callbacks[0]["type"] == 4
    assert reply.ephemeral
    assert not reply.deferred
    assert "Now following" in reply.text
    assert f"shroud in <#{world.alerts.id}>" in reply.text
    assert reply.payload["interaction"]["name"] == "addstreamer"


async def test_defer_then_follow_up(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    inter = await fake.invoke("status", guild_id=world.guild.id, channel_id=world.general.id)
    reply = await inter.wait_reply()
    assert inter.callbacks == [{"type": 5, "data": {"flags": 64}}]
    assert reply.deferred
    assert reply.ephemeral
    assert reply.content == "All systems go"
    assert reply.text == "All systems go\nStatus\npolling\nfake"


async def test_invoke_in_a_dm(bot: MiniBot, fake: FakeDiscord) -> None:
    reply = await (await fake.invoke("status")).wait_reply()
    assert reply.content == "All systems go"
    with pytest.raises(InteractionRefused, match=r"guild-only|context"):
        await fake.invoke("addstreamer", {"streamer": "x", "channel": 1})


async def test_subcommand_with_role_option(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    inter = await fake.invoke(
        "config", {"verbose": True, "role": world.role.id}, subcommand="show", guild_id=world.guild.id
    )
    reply = await inter.wait_reply()
    assert reply.content == "verbose=True role=live-pings"
    assert not reply.ephemeral
    with pytest.raises(InteractionRefused, match="needs a subcommand"):
        await fake.invoke("config", guild_id=world.guild.id)


async def test_autocomplete_returns_the_bots_choices(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    choices = await fake.autocomplete("removestreamer", "streamer", "sh", guild_id=world.guild.id)
    assert choices == [{"name": "shroud", "value": "shroud"}, {"name": "shroomy", "value": "shroomy"}]


async def test_discord_refuses_what_the_schema_does_not_allow(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    where: dict[str, Any] = {"guild_id": world.guild.id, "channel_id": world.general.id}
    good = {"streamer": "shroud", "channel": world.alerts.id}
    with pytest.raises(InteractionRefused, match="default_member_permissions"):
        await fake.invoke("addstreamer", good, permissions=fake.MEMBER_PERMISSIONS, **where)
    with pytest.raises(InteractionRefused, match="required option 'channel'"):
        await fake.invoke("addstreamer", {"streamer": "shroud"}, permissions=fake.ADMIN_PERMISSIONS, **where)
    with pytest.raises(InteractionRefused, match="unknown option"):
        await fake.invoke("addstreamer", {**good, "extra": 1}, permissions=fake.ADMIN_PERMISSIONS, **where)
    with pytest.raises(InteractionRefused, match="expected a string"):
        await fake.invoke("addstreamer", {**good, "streamer": 5}, permissions=fake.ADMIN_PERMISSIONS, **where)
    with pytest.raises(InteractionRefused, match="not a synced command"):
        await fake.invoke("nope", **where)
    assert fake.interactions == {}
    # An admin opened the command to everyone: the bot's own check must still refuse.
    inter = await fake.invoke(
        "addstreamer", good, permissions=fake.MEMBER_PERMISSIONS, bypass_default_permissions=True, **where
    )
    reply = await inter.wait_reply()
    assert reply.ephemeral
    assert "Manage Server" in reply.text


async def logged(errors: ErrorCollector, pattern: str, timeout: float = 5.0) -> list[logging.LogRecord]:
    """Wait for the ERROR records matching ``pattern`` (logged by a command handler task) and take them."""
    async with asyncio.timeout(timeout):
        while not any(re.search(pattern, r.getMessage()) for r in errors.records):
            await asyncio.sleep(0.01)
    return errors.expect(pattern)


async def test_a_typed_channel_skips_the_pickers_channel_types(
    bot: MiniBot, fake: FakeDiscord, world: World, no_discord_errors: ErrorCollector
) -> None:
    where: dict[str, Any] = {"guild_id": world.guild.id, "permissions": fake.ADMIN_PERMISSIONS}
    voice = await fake.create_channel(world.guild.id, "voice-chat", type=VOICE_CHANNEL)
    category = await fake.create_channel(world.guild.id, "Streams", type=CATEGORY_CHANNEL)
    async with asyncio.timeout(5):
        while bot.get_channel(category.id) is None:
            await asyncio.sleep(0.01)
    assert isinstance(bot.get_channel(category.id), discord.CategoryChannel)
    assert isinstance(bot.get_channel(voice.id), discord.VoiceChannel)
    # Picked: the picker only shows the types discord.py derived from the annotation (text, news).
    with pytest.raises(InteractionRefused, match=r"channel type 2 not in \[0, 5\]"):
        await fake.invoke("addstreamer", {"streamer": "s", "channel": voice.id}, **where)
    # Typed: delivered and resolved with its real type; discord.py's TextChannel transformer refuses it.
    inter = await fake.invoke("addstreamer", {"streamer": "s", "channel": TypedChannel(voice.id)}, **where)
    data = inter.payload["data"]
    assert {"name": "channel", "type": 7, "value": str(voice.id)} in data["options"]
    resolved = data["resolved"]["channels"][str(voice.id)]
    assert (resolved["type"], resolved["name"], resolved["guild_id"]) == (
        VOICE_CHANNEL,
        "voice-chat",
        str(world.guild.id),
    )
    [record] = await logged(no_discord_errors, "Ignoring exception in command 'addstreamer'")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], app_commands.TransformerError)
    # Unresolved: the bare id, no resolved entry; discord.py hands the transformer a discord.Object.
    inter = await fake.invoke(
        "addstreamer", {"streamer": "s", "channel": TypedChannel(category.id, resolved=False)}, **where
    )
    assert "resolved" not in inter.payload["data"]
    [record] = await logged(no_discord_errors, "Ignoring exception in command 'addstreamer'")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], app_commands.TransformerError)
    assert isinstance(record.exc_info[1].value, discord.Object)
    with pytest.raises(InteractionRefused, match="never had"):
        await fake.invoke("addstreamer", {"streamer": "s", "channel": TypedChannel(12345)}, **where)


async def test_second_callback_is_refused(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    inter = await fake.invoke("status", guild_id=world.guild.id)
    await inter.wait_reply()
    route = discord.http.Route("POST", "/interactions/{i}/{t}/callback", i=inter.id, t=inter.token)
    with pytest.raises(discord.HTTPException) as excinfo:
        await bot.http.request(route, json={"type": 4, "data": {"content": "again"}})
    assert excinfo.value.status == 400
    assert excinfo.value.code == 40060


# --------------------------------------------------------------------------- channel messages


async def test_send_records_embed_and_allowed_mentions(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    channel = bot.get_channel(world.alerts.id)
    assert isinstance(channel, discord.TextChannel)
    mentions = discord.AllowedMentions(everyone=False, users=False, roles=[discord.Object(world.role.id)])
    embed = discord.Embed(title="shroud is live", url="https://twitch.tv/shroud", description="ranked")
    embed.add_field(name="Game", value="VALORANT")
    sent = await channel.send(f"<@&{world.role.id}> @everyone", embed=embed, allowed_mentions=mentions)

    [stored] = await fake.wait_for_messages(1, channel_id=world.alerts.id)
    assert stored.id == sent.id
    assert sent.author.id == fake.bot_user_id
    assert stored.allowed_mentions == {"parse": [], "roles": [world.role.id], "replied_user": True}
    assert stored.mention_roles == [world.role.id]
    assert not stored.mention_everyone
    assert stored.embeds[0]["title"] == "shroud is live"
    assert sent.embeds[0].fields[0].value == "VALORANT"
    assert [r.path for r in fake.requests if r.method == "POST"] == [f"/channels/{world.alerts.id}/messages"]

    edited = await sent.edit(content="edited", embed=None)
    assert edited.content == "edited"
    assert edited.embeds == []
    assert stored.content == "edited"
    assert stored.edits[0]["embeds"] == []
    history = [m async for m in channel.history(limit=10)]
    assert [m.id for m in history] == [sent.id]
    await sent.delete()
    assert stored.deleted
    assert fake.messages_in(world.alerts.id) == []


async def test_rest_reads_files_and_leaving(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    channel = await bot.fetch_channel(world.alerts.id)
    assert isinstance(channel, discord.TextChannel)
    assert channel.name == "alerts"
    guild = await bot.fetch_guild(world.guild.id)
    assert guild.name == "Guild A"
    assert {r.name for r in guild.roles} >= {"@everyone", "live-pings"}
    assert {c.name for c in await guild.fetch_channels()} == {"alerts", "general"}
    assert (await guild.fetch_member(fake.bot_user_id)).bot

    sent = await channel.send("with a file", file=discord.File(io.BytesIO(b"hello"), "hello.txt"))  # multipart
    assert sent.attachments[0].filename == "hello.txt"
    assert fake.messages[0].attachments[0]["size"] == 5
    assert fake.requests[-1].json["content"] == "with a file"
    assert (await channel.fetch_message(sent.id)).content == "with a file"
    with pytest.raises(discord.NotFound) as excinfo:
        await channel.fetch_message(sent.id + 1)
    assert excinfo.value.code == 10008

    cached = bot.get_guild(world.guild.id)
    assert cached is not None
    await expect_event(bot, "guild_remove", cached.leave())
    assert not fake.guilds[world.guild.id].bot_joined


async def test_over_limit_payloads_are_rejected(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    channel = bot.get_partial_messageable(world.alerts.id)
    with pytest.raises(discord.HTTPException) as excinfo:
        await channel.send(embed=discord.Embed(title="x" * 257))
    assert excinfo.value.status == 400
    assert excinfo.value.code == 50035
    assert "embeds.0.title" in str(excinfo.value)
    big = [discord.Embed(description="y" * 3500) for _ in range(2)]
    with pytest.raises(discord.HTTPException, match=r"MAX_EMBED_SIZE_EXCEEDED|6000"):
        await channel.send(embeds=big)
    with pytest.raises(discord.HTTPException, match="Cannot send an empty message"):
        await bot.http.send_message(world.alerts.id, params=discord.http.MultipartParameters({}, None, None))
    assert [r.status for r in fake.rejected] == [400, 400, 400]
    assert fake.messages == []


async def test_deleted_channel_is_unknown(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    await expect_event(bot, "guild_channel_delete", fake.delete_channel(world.alerts.id))
    assert bot.get_channel(world.alerts.id) is None
    with pytest.raises(discord.NotFound) as excinfo:
        await bot.get_partial_messageable(world.alerts.id).send("hello?")
    assert excinfo.value.code == 10003


async def test_missing_permissions_are_forbidden(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    channel = bot.get_partial_messageable(world.alerts.id)
    fake.set_bot_channel_permissions(world.alerts.id, deny=("embed_links",))
    await channel.send("plain text still works")
    with pytest.raises(discord.Forbidden) as excinfo:
        await channel.send(embed=discord.Embed(title="needs Embed Links"))
    assert excinfo.value.code == 50013
    fake.set_bot_channel_permissions(world.alerts.id, deny=("send_messages",))
    with pytest.raises(discord.Forbidden) as excinfo:
        await channel.send("muted")
    assert excinfo.value.code == 50013
    fake.set_bot_channel_permissions(world.alerts.id, deny=("view_channel",))
    with pytest.raises(discord.Forbidden) as excinfo:
        await channel.send("hidden")
    assert excinfo.value.code == 50001
    assert len(fake.messages) == 1
    await fake.drain()  # the CHANNEL_UPDATEs reach the bot before it closes


# --------------------------------------------------------------------------- injected faults


@pytest.mark.parametrize("global_", [False, True])
async def test_injected_429_is_retried(bot: MiniBot, fake: FakeDiscord, world: World, global_: bool) -> None:
    fault = fake.fail_next("POST", r"/channels/\d+/messages", status=429, retry_after=0.05, global_=global_)
    await bot.get_partial_messageable(world.alerts.id).send("after the rate limit")
    assert fault.hits == 1
    assert len([r for r in fake.requests if r.method == "POST"]) == 2
    assert [m.content for m in fake.messages] == ["after the rate limit"]


async def test_injected_500_is_retried(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    fault = fake.fail_next("POST", r"/channels/\d+/messages", status=500, message="500: Internal Server Error")
    await bot.get_partial_messageable(world.alerts.id).send("after a 500")  # discord.py waits 1 s
    assert fault.hits == 1
    assert len(fake.messages) == 1


async def test_unknown_route_is_recorded(bot: MiniBot, fake: FakeDiscord) -> None:
    with pytest.raises(discord.NotFound):
        await bot.http.request(discord.http.Route("GET", "/nope/{x}", x=1))
    assert fake.unhandled == [("GET", "/nope/1")]
    fake.unhandled.clear()


async def test_enforced_rate_limits_are_respected_by_discord_py() -> None:
    fake = FakeDiscord(token=TOKEN, enforce_rate_limits=True, message_rate_limit=(2, 0.2))
    guild = fake.add_guild("Guild A")
    channel = fake.add_text_channel(guild.id, "alerts")
    await fake.start()
    try:
        with patch_discord_endpoints(fake):
            client = discord.Client(intents=discord.Intents.default())
            await client.login(TOKEN)
            try:
                target = client.get_partial_messageable(channel.id)
                for i in range(5):
                    await target.send(f"message {i}")
            finally:
                await client.close()
    finally:
        await fake.stop()
    assert len(fake.messages) == 5
    assert fake.rate_limited == []  # discord.py waited on the headers instead of hitting 429s
    assert fake.unhandled == []


async def test_raw_http_shapes_and_global_rate_limit() -> None:
    fake = FakeDiscord(token=TOKEN, enforce_rate_limits=True, global_rate_limit=3)
    await fake.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{fake.api_base}/users/@me") as resp:
                assert resp.status == 401
                assert resp.headers["Content-Type"] == "application/json"
                assert await resp.json() == {"code": 0, "message": "401: Unauthorized"}
            auth = {"Authorization": f"Bot {TOKEN}"}
            statuses = []
            for _ in range(3):
                async with session.get(f"{fake.api_base}/users/@me", headers=auth) as resp:
                    statuses.append(resp.status)
            assert statuses == [200] * 3
            async with session.get(f"{fake.api_base}/users/@me", headers=auth) as resp:
                assert resp.status == 429
                assert resp.headers["Via"] == "1.1 google"
                assert resp.headers["X-RateLimit-Global"] == "true"
                assert resp.headers["X-RateLimit-Scope"] == "global"
                assert int(resp.headers["Retry-After"]) >= 1
                body = await resp.json()
            assert body["global"] is True
            assert 0 < body["retry_after"] <= 1
    finally:
        await fake.stop()
    assert len(fake.rate_limited) == 1


async def test_wait_for_messages_times_out_with_a_dump(fake: FakeDiscord) -> None:
    with pytest.raises(TimeoutError, match=r"1 message\(s\)[\s\S]*last requests"):
        await fake.wait_for_messages(1, timeout=0.05)


# --------------------------------------------------------------------------- gateway resilience


async def test_privileged_intents_are_refused(fake: FakeDiscord, world: World) -> None:
    client = discord.Client(intents=discord.Intents.all())
    await client.login(TOKEN)
    try:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(client.connect(), 5)
    finally:
        await client.close()
    assert fake.identify_payloads == []


async def test_close_4000_resumes_and_replays_missed_events(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    resumed = bot.wait_for("resumed", timeout=5)
    await fake.disconnect_gateway(4000)
    inter = await fake.invoke("status", guild_id=world.guild.id)  # sent while the bot is away
    await resumed
    reply = await inter.wait_reply()
    assert reply.content == "All systems go"
    assert len(fake.identify_payloads) == 1
    assert len(fake.resume_payloads) == 1
    assert isinstance(fake.resume_payloads[0]["seq"], int)

    await expect_event(bot, "resumed", fake.send_reconnect())
    assert len(fake.resume_payloads) == 2
    reply = await (await fake.invoke("status", guild_id=world.guild.id)).wait_reply()
    assert reply.deferred


async def test_invalid_session_makes_the_bot_identify_again(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    await expect_event(bot, "ready", fake.invalidate_session())
    assert len(fake.identify_payloads) == 2
    assert bot.get_guild(world.guild.id) is not None
    reply = await (await fake.invoke("status", guild_id=world.guild.id)).wait_reply()
    assert reply.content == "All systems go"


def test_component_validation_like_discord() -> None:
    from tests.fakes.discord_payloads import validate_message

    link = {"type": 2, "style": 5, "label": "Watch stream", "url": "https://www.twitch.tv/x"}
    assert not validate_message({"components": [{"type": 1, "components": [link]}]})
    bad = [
        [link],  # a button outside an action row
        [{"type": 1, "components": []}],
        [{"type": 1, "components": [link] * 6}],
        [{"type": 1, "components": [{**link, "url": None}]}],
        [{"type": 1, "components": [{**link, "custom_id": "x"}]}],
        [{"type": 1, "components": [{**link, "label": "x" * 81}]}],
        [{"type": 1, "components": [{"type": 2, "style": 1, "label": "no id"}]}],
    ]
    for components in bad:
        assert validate_message({"components": components}), components


# --------------------------------------------------------------------------- requests that never answer


async def test_hung_post_times_out_the_client_and_takes_effect_only_when_released(
    bot: MiniBot, fake: FakeDiscord, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    fault = fake.hang_next("POST", rf"/channels/{world.alerts.id}/messages")
    channel = bot.get_partial_messageable(world.alerts.id)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(channel.send("lost"), 0.2)  # discord.py itself would wait 5 minutes
    [hung] = fake.hung
    assert (hung.method, hung.path, hung.outcome, hung.processed) == (
        "POST",
        f"/channels/{world.alerts.id}/messages",
        "held",
        False,
    )
    assert hung.request.json["content"] == "lost"
    assert fault.hits == 1
    assert fake.messages == []

    sent = await channel.send("the next one is answered")
    assert [m.id for m in fake.messages] == [sent.id]
    # Released after its client gave up: it takes effect late, and the answer goes nowhere.
    assert fake.release_hangs() == 1
    await fake.wait_until(lambda: hung.outcome == "answered", what="the held request to be served")
    assert [m.content for m in fake.messages] == ["the next one is answered", "lost"]
    assert hung.status == 200
    assert [r.levelname for r in caplog.records if r.name.startswith("aiohttp")] == []


async def test_hung_post_with_create_posts_but_never_answers(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    fake.hang_next("POST", r"/channels/\d+/messages", create=True)
    channel = bot.get_partial_messageable(world.alerts.id)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(channel.send("posted anyway", nonce="announce-1"), 0.2)
    [created] = fake.messages
    assert created.content == "posted anyway"
    assert created.nonce == "announce-1"
    assert fake.hung[0].processed
    assert fake.hung[0].status == 200
    assert fake.hung[0].outcome == "held"
    assert fake.dispatched.count("MESSAGE_CREATE") == 1

    # A retry with the same nonce gets the message Discord already made: no duplicate.
    retried = await channel.send("posted anyway", nonce="announce-1")
    assert retried.id == created.id
    assert len(fake.messages) == 1
    assert fake.deduplicated == [("announce-1", created)]
    # stop() drops the request still held; the fixture's teardown proves it does not hang.


async def test_release_hangs_answers_the_waiting_client(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    fake.hang_next("POST", r"/channels/\d+/messages")
    send = asyncio.create_task(bot.get_partial_messageable(world.alerts.id).send("late"))
    await fake.wait_until(lambda: fake.hung, what="a held request")
    assert fake.messages == []
    assert not send.done()
    assert fake.release_hangs() == 1
    sent = await asyncio.wait_for(send, 5)
    assert [m.id for m in fake.messages] == [sent.id]
    assert (fake.hung[0].outcome, fake.hung[0].processed, fake.hung[0].status) == ("answered", True, 200)


async def test_stop_drops_held_requests_at_once() -> None:
    fake = FakeDiscord(token=TOKEN)
    await fake.start()
    fake.hang_next("GET", "/users/@me", times=2)
    async with aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bot {TOKEN}"}
        pending = [asyncio.create_task(session.get(f"{fake.api_base}/users/@me", headers=auth)) for _ in range(2)]
        await fake.wait_until(lambda: len(fake.hung) == 2, what="two held requests")
        await asyncio.wait_for(fake.stop(), 1.5)
        for request in pending:
            with pytest.raises(aiohttp.ClientError):
                await request
    assert [h.outcome for h in fake.hung] == ["dropped", "dropped"]


# --------------------------------------------------------------------------- nonce memory


async def test_enforce_nonce_deduplicates_only_within_the_window(bot: MiniBot, fake: FakeDiscord, world: World) -> None:
    alerts = bot.get_partial_messageable(world.alerts.id)
    first = await alerts.send("live!", nonce="a1")  # discord.py adds enforce_nonce: true
    assert (await alerts.send("live!", nonce="a1")).id == first.id
    fake.advance_clock(299.9)
    assert (await alerts.send("live!", nonce="a1")).id == first.id  # repeats do not extend the window
    fake.advance_clock(0.1)  # 300 s after the first post: Discord no longer remembers the nonce
    later = await alerts.send("live!", nonce="a1")
    assert later.id != first.id
    assert (await alerts.send("live!", nonce="a1")).id == later.id  # the new message is remembered now
    assert [nonce for nonce, _ in fake.deduplicated] == ["a1"] * 3
    assert len(fake.messages_in(world.alerts.id)) == 2

    other = await bot.get_partial_messageable(world.general.id).send("live!", nonce="a1")
    assert other.id not in (first.id, later.id)  # remembered per channel
    without = await bot.http.request(
        discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=world.alerts.id),
        json={"content": "no enforce", "nonce": "a1"},
    )
    assert int(without["id"]) != later.id
    assert without["nonce"] == "a1"


async def test_nonce_window_and_clock_are_injectable() -> None:
    now = [1_000.0]
    fake = FakeDiscord(token=TOKEN, nonce_window_seconds=10, clock=lambda: now[0])
    guild = fake.add_guild("Guild A")
    channel = fake.add_text_channel(guild.id, "alerts")
    await fake.start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bot {TOKEN}"}) as session:

            async def post() -> str:
                body = {"content": "hi", "nonce": "n", "enforce_nonce": True}
                async with session.post(f"{fake.api_base}/channels/{channel.id}/messages", json=body) as resp:
                    assert resp.status == 200
                    return str((await resp.json())["id"])

            first = await post()
            now[0] += 9.9
            assert await post() == first
            now[0] += 0.1
            assert await post() != first
    finally:
        await fake.stop()
    assert len(fake.messages) == 2
    assert fake.now() == 1_010.0


# --------------------------------------------------------------------------- start-up faults


async def test_login_survives_a_proxy_502_but_not_a_503(fake: FakeDiscord) -> None:
    fault = fake.fail_next("GET", "/users/@me", status=502, body=PROXY_502_HTML, content_type="text/html")
    bot = MiniBot()
    try:
        await bot.login(TOKEN)  # discord.py retries 500/502/504/524 after 1 s, 3 s, …
    finally:
        await bot.close()
    assert fault.hits == 1
    assert [r.path for r in fake.requests].count("/users/@me") == 2

    fake.fail_next("GET", "/users/@me", status=503, body="<html>down for maintenance</html>", content_type="text/html")
    bot = MiniBot()
    try:
        with pytest.raises(discord.DiscordServerError) as excinfo:
            await bot.login(TOKEN)  # 503 is not retried
    finally:
        await bot.close()
    assert excinfo.value.status == 503
    assert excinfo.value.text == "<html>down for maintenance</html>"
    assert fake.rejected == []  # injected faults are not the bot's fault


async def test_gateway_bot_5xx_for_an_auto_sharded_client(fake: FakeDiscord, world: World) -> None:
    fake.fail_next("GET", "/gateway/bot", status=503, message="Service Unavailable")
    client = discord.AutoShardedClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    await client.login(TOKEN)
    try:
        with pytest.raises(discord.GatewayNotFound) as excinfo:
            await asyncio.wait_for(client.connect(), 5)  # launch_shards asks /gateway/bot first
        assert isinstance(excinfo.value.__cause__, discord.DiscordServerError)
    finally:
        await client.close()

    fake.fail_next("GET", "/gateway/bot", status=502, body=PROXY_502_HTML, content_type="text/html")
    client = discord.AutoShardedClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    await client.login(TOKEN)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), 5)  # retried after 1 s, then sharded as told
        assert client.shard_count == 1
        assert client.get_guild(world.guild.id) is not None
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)
    assert [r.path for r in fake.requests].count("/gateway/bot") == 3


async def test_reset_token_refuses_the_old_one_on_rest_and_gateway(fake: FakeDiscord, world: World) -> None:
    client = discord.Client(intents=discord.Intents.default())
    await client.login(TOKEN)
    new_token = fake.reset_token()
    try:
        with pytest.raises(discord.ConnectionClosed) as excinfo:
            await asyncio.wait_for(client.connect(), 5)
        assert excinfo.value.code == 4004  # Authentication failed: discord.py does not reconnect
    finally:
        await client.close()
    bot = MiniBot()
    with pytest.raises(discord.LoginFailure):
        await bot.login(TOKEN)
    await bot.login(new_token)
    await bot.close()
    assert fake.identify_payloads == []
    assert [r.status for r in fake.rejected] == [401]
    fake.rejected.clear()


async def test_gateway_refusal_modes_as_aiohttp_sees_them(fake: FakeDiscord) -> None:
    fake.refuse_gateway()
    fake.refuse_gateway(mode="close", close_code=1001)
    fake.refuse_gateway(2, mode="drop")  # aiohttp retries a dropped GET once by itself
    url = f"{fake.gateway_url}?v=10&encoding=json"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as excinfo:
            await session.ws_connect(url)
        assert excinfo.value.status == 503
        ws = await session.ws_connect(url)
        closed = await ws.receive()
        assert closed.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1001
        await ws.close()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.ws_connect(url)
        ws = await session.ws_connect(url)  # refusals used up: served again
        assert (await ws.receive_json())["op"] == 10
        await ws.close()
    assert [r.mode for r in fake.gateway_refusals] == ["http", "close", "drop", "drop"]


async def test_gateway_outage_during_a_reconnect_is_retried(
    bot: MiniBot, fake: FakeDiscord, world: World, no_discord_errors: ErrorCollector
) -> None:
    fake.refuse_gateway(1)
    resumed = bot.wait_for("resumed", timeout=10)
    await fake.disconnect_gateway(4000)
    await resumed  # after discord.py's backoff (up to 2 s)
    assert len(fake.gateway_refusals) == 1
    assert len(fake.resume_payloads) == 1
    assert len(fake.identify_payloads) == 1
    no_discord_errors.expect("Attempting a reconnect")


async def test_gateway_outage_on_the_first_connect_kills_discord_py(
    fake: FakeDiscord, world: World, no_discord_errors: ErrorCollector
) -> None:
    """discord.py 2.7.1 retries, then resumes from ``self.ws``, which is still None (issue #10520)."""
    fake.refuse_gateway(1)
    client = discord.Client(intents=discord.Intents.default())
    await client.login(TOKEN)
    try:
        with pytest.raises(AttributeError, match="sequence"):
            await asyncio.wait_for(client.connect(), 10)
    finally:
        await client.close()
    assert len(fake.gateway_refusals) == 1
    assert fake.identify_payloads == []
    no_discord_errors.expect("Attempting a reconnect")


# --------------------------------------------------------------------------- partial READY


async def test_ready_without_some_guilds(fake: FakeDiscord, world: World) -> None:
    other = fake.add_guild("Guild B")
    fake.add_text_channel(other.id, "b-alerts")
    fake.omit_from_next_ready([other])
    async with running_bot() as bot:
        assert bot.get_guild(world.guild.id) is not None
        assert bot.get_guild(other.id) is None
        assert fake.dispatched == ["READY", "GUILD_CREATE"]
        fake.add_text_channel(other.id, "while-hidden")  # the session was never told of this guild
        assert "CHANNEL_CREATE" not in fake.dispatched

        joined = await expect_event(bot, "guild_join", fake.join_guild(other))
        assert {c.name for c in joined.text_channels} == {"b-alerts", "while-hidden"}
        # The omission was for one READY only.
        await expect_event(bot, "ready", fake.invalidate_session())
        assert fake.dispatched[-3:] == ["READY", "GUILD_CREATE", "GUILD_CREATE"]


async def test_ready_with_unavailable_guilds_then_available(fake: FakeDiscord, world: World) -> None:
    fake.omit_from_next_ready([world.guild.id], unavailable=True)
    async with running_bot() as bot:  # on_ready comes after guild_ready_timeout anyway
        guild = bot.get_guild(world.guild.id)
        assert guild is not None
        assert guild.unavailable
        assert guild.get_channel(world.alerts.id) is None
        available = await expect_event(bot, "guild_available", fake.make_guild_available(world.guild))
        assert available.id == world.guild.id
        assert not available.unavailable
        assert available.get_channel(world.alerts.id) is not None


async def test_ready_guild_filter_applies_to_every_ready(fake: FakeDiscord, world: World) -> None:
    fake.ready_guild_filter = lambda guild: guild.name != "Guild A"  # another application's token
    async with running_bot() as bot:
        assert list(bot.guilds) == []
        await expect_event(bot, "ready", fake.invalidate_session())
        assert list(bot.guilds) == []
        assert "GUILD_CREATE" not in fake.dispatched


# --------------------------------------------------------------------------- sharding


async def raw_identify(fake: FakeDiscord, shard: list[int] | None, *, token: str = TOKEN) -> tuple[Any, Any]:
    """IDENTIFY over a bare websocket; returns (the first answer, or None if the socket closed; the close code)."""
    data: dict[str, Any] = {"token": token, "intents": 1, "properties": {}}
    if shard is not None:
        data["shard"] = shard
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
        assert (await ws.receive_json())["op"] == 10
        await ws.send_json({"op": 2, "d": data})
        msg = await ws.receive(timeout=5)
        answer = msg.json() if msg.type is aiohttp.WSMsgType.TEXT else None
        return answer, ws.close_code


async def test_gateway_bot_recommends_a_shard_per_thousand_guilds_and_counts_session_starts() -> None:
    fake = FakeDiscord(token=TOKEN, identify_window_seconds=0.0)
    for index in range(2001):
        fake.add_guild(f"g{index}")
    await fake.start()
    try:
        auth = {"Authorization": f"Bot {TOKEN}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{fake.api_base}/gateway/bot", headers=auth) as resp:
                first = await resp.json()
            await raw_identify(fake, [0, 3])
            await raw_identify(fake, [1, 3])
            fake.limits.recommended_shards = 16
            fake.limits.max_concurrency = 16
            async with session.get(f"{fake.api_base}/gateway/bot", headers=auth) as resp:
                second = await resp.json()
    finally:
        await fake.stop()
    assert first == {
        "url": fake.gateway_url,
        "shards": 3,  # ceil(2001 / 1000)
        "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 14_400_000, "max_concurrency": 1},
    }
    assert second["shards"] == 16
    assert second["session_start_limit"]["remaining"] == 998
    assert second["session_start_limit"]["max_concurrency"] == 16


async def test_each_shard_gets_ready_and_guild_create_for_its_own_guilds_only() -> None:
    fake = FakeDiscord(token=TOKEN, identify_window_seconds=0.0)
    placed = {shard: [fake.add_guild(f"s{shard}-{i}", shard=(shard, 3)).id for i in range(2)] for shard in range(3)}
    spread = [fake.add_guild(f"spread{i}").id for i in range(6)]  # consecutive ids: consecutive shards
    await fake.start()
    try:
        ready, _ = await raw_identify(fake, [1, 3])
    finally:
        await fake.stop()
    assert ready["t"] == "READY"
    assert ready["d"]["shard"] == [1, 3]
    on_shard_1 = {g for g in [*placed[1], *spread] if (g >> 22) % 3 == 1}
    assert {int(g["id"]) for g in ready["d"]["guilds"]} == on_shard_1
    assert len(on_shard_1) == 4  # the two placed there, and two of the six spread ones
    assert fake.dispatched_on.count(("GUILD_CREATE", 1)) == 4
    assert {shard for _, shard in fake.dispatched_on} == {1}


async def test_an_invalid_shard_is_closed_with_4010(fake: FakeDiscord) -> None:
    fake.limits.identify_window_seconds = 0.0
    for shard in ([3, 3], [0, 0], [-1, 2], [0], ["0", 1]):
        answer, code = await raw_identify(fake, shard)
        assert (answer, code) == (None, 4010), shard
    assert [r.answer for r in fake.refused_identifies] == [4010] * 5
    assert fake.identify_payloads == []


async def test_a_shard_over_the_guild_cap_is_closed_with_4011(fake: FakeDiscord) -> None:
    fake.limits.max_guilds_per_shard = 2  # Discord's is 2,500
    fake.limits.identify_window_seconds = 0.0
    for shard in (0, 0, 0, 1):
        fake.add_guild(f"on {shard}", shard=(shard, 2))
    assert await raw_identify(fake, None) == (None, 4011)  # four guilds on the only shard
    assert await raw_identify(fake, [0, 2]) == (None, 4011)  # three
    answer, _ = await raw_identify(fake, [1, 2])  # one
    assert answer["t"] == "READY"
    assert [(r.shard, r.answer) for r in fake.refused_identifies] == [(None, 4011), ([0, 2], 4011)]
    assert fake.session_starts_remaining == 997  # the refused ones were session starts too


async def test_identifies_over_max_concurrency_per_window_get_op_9(fake: FakeDiscord) -> None:
    fake.limits.identify_window_seconds = 0.5
    assert (await raw_identify(fake, [0, 2]))[0]["t"] == "READY"
    answer, _ = await raw_identify(fake, [1, 2])  # same bucket (max_concurrency 1), within the window
    assert answer == {"op": 9, "d": False, "s": None, "t": None}
    fake.limits.max_concurrency = 2
    assert (await raw_identify(fake, [1, 3]))[0]["t"] == "READY"  # bucket 1 of 2: free
    await asyncio.sleep(0.5)
    assert (await raw_identify(fake, [1, 2]))[0]["t"] == "READY"  # the window has passed
    assert [(r.shard, r.answer) for r in fake.refused_identifies] == [([1, 2], "op 9")]
    assert fake.session_starts_remaining == 997  # the op 9 started no session


async def test_running_out_of_session_starts_resets_the_token(fake: FakeDiscord) -> None:
    fake.limits.session_start_total = 1
    fake.limits.identify_window_seconds = 0.0
    assert (await raw_identify(fake, None))[0]["t"] == "READY"
    assert await raw_identify(fake, None) == (None, 4004)
    assert fake.token != TOKEN  # Discord resets it and emails the owner
    assert [r.reason for r in fake.refused_identifies] == ["session start limit reached"]


class ShardedMiniBot(commands.AutoShardedBot):
    def __init__(self, **options: Any) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            help_command=None,
            guild_ready_timeout=0.05,
            **options,
        )
        for command in _build_commands():
            self.tree.add_command(command)

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:
            await asyncio.sleep(IDENTIFY_WINDOW)


async def test_a_sharded_client_gets_each_guilds_events_and_interactions_on_the_owning_shard(fake: FakeDiscord) -> None:
    guilds = [fake.add_guild(f"guild on {shard}", shard=(shard, 3)) for shard in range(3)]
    channels = [fake.add_text_channel(g.id, "alerts") for g in guilds]
    bot = ShardedMiniBot(shard_count=3)
    await bot.login(TOKEN)
    task = asyncio.create_task(bot.connect())
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        assert sorted(bot.shards) == [0, 1, 2]
        assert [bot.get_guild(g.id).shard_id for g in guilds] == [0, 1, 2]
        for shard, channel in enumerate(channels):
            inter = await fake.invoke("status", guild_id=channel.guild_id, channel_id=channel.id)
            assert inter.shards == (shard,)
            assert (await inter.wait_reply()).content == "All systems go"
        dm = await fake.invoke("status")
        assert dm.shards == (0,)  # no guild: shard 0
        await dm.wait_reply()
        created = await fake.create_channel(guilds[2].id, "late")
        assert fake.dispatched_on[-1] == ("CHANNEL_CREATE", 2)
        await asyncio.sleep(0.05)
        assert bot.get_channel(created.id) is not None
        # A single shard's session: the others are left alone.
        resumed = bot.wait_for("shard_resumed", timeout=5)
        await fake.disconnect_gateway(4000, shard=1)
        assert await resumed == 1
        assert [p["seq"] is not None for p in fake.resume_payloads] == [True]
        assert fake.connected_shards == [0, 1, 2]
    finally:
        await bot.close()
        await asyncio.wait_for(task, 5)
    assert len(fake.identify_payloads) == 3


async def test_an_unsharded_client_is_shard_0_of_1_and_gets_every_guild(
    bot: MiniBot, fake: FakeDiscord, world: World
) -> None:
    assert "shard" not in fake.identify_payloads[0]
    assert fake.gateway.session is not None
    assert (fake.gateway.session.shard_id, fake.gateway.session.num_shards) == (0, 1)
    other = fake.add_guild("Guild B", shard=(2, 3))  # shard 2 of 3, but this bot runs 1 shard: it is on 0
    assert not other.bot_joined  # the session exists, so it must be told: join_guild
    joined = await expect_event(bot, "guild_join", fake.join_guild(other))
    assert joined.id == other.id


async def test_a_close_with_1000_invalidates_the_session_and_4000_keeps_it(fake: FakeDiscord, world: World) -> None:
    bot = ShardedMiniBot(shard_count=2)
    await bot.login(TOKEN)
    task = asyncio.create_task(bot.connect())
    await asyncio.wait_for(bot.wait_until_ready(), 5)
    resumed = bot.wait_for("shard_resumed", timeout=5)
    await fake.disconnect_gateway(4000, shard=0)  # resumable: kept for the RESUME
    await resumed
    assert len(fake.gateway.sessions) == 2
    await bot.close()  # discord.py's sharded client stops reading, then closes each shard with 1000
    await asyncio.wait_for(task, 5)
    await fake.wait_until(lambda: not fake.gateway.sessions, what="the closed sessions to be dropped")


# --------------------------------------------------------------------------- several bot processes at once


@contextlib.asynccontextmanager
async def running_shards(shard_ids: list[int], shard_count: int) -> AsyncIterator[ShardedMiniBot]:
    """One "process" of a sharded bot: its own client, HTTP connections and gateway sessions."""
    bot = ShardedMiniBot(shard_ids=shard_ids, shard_count=shard_count)
    await bot.login(TOKEN)
    task = asyncio.create_task(bot.connect())
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, 5)


async def test_two_processes_of_one_bot_each_get_their_own_shards_guilds_and_interactions(fake: FakeDiscord) -> None:
    guilds = [fake.add_guild(f"guild on {shard}", shard=(shard, 2)) for shard in (0, 1, 0, 1)]
    channels = [fake.add_text_channel(g.id, "alerts") for g in guilds]
    async with running_shards([0], 2) as first, running_shards([1], 2) as second:
        assert fake.connected_shards == [0, 1]
        assert {g.id for g in first.guilds} == {guilds[0].id, guilds[2].id}
        assert {g.id for g in second.guilds} == {guilds[1].id, guilds[3].id}
        for channel, owner in zip(channels, (first, second, first, second), strict=True):
            inter = await fake.invoke("status", guild_id=channel.guild_id, channel_id=channel.id)
            assert inter.shards == (owner.get_guild(channel.guild_id).shard_id,)
            assert (await inter.wait_reply()).content == "All systems go"
        # Each process posts over its own connections, and the fake tells them apart.
        one = await first.get_partial_messageable(channels[0].id).send("from the first")
        two = await second.get_partial_messageable(channels[1].id).send("from the second")
        assert fake.message_ports[one.id] is not None
        assert fake.message_ports[two.id] is not None
        assert fake.message_ports[one.id] != fake.message_ports[two.id]
        # One process restarting its shard leaves the other's session alone.
        resumed = second.wait_for("shard_resumed", timeout=5)
        await fake.disconnect_gateway(4000, shard=1)
        assert await resumed == 1
        assert fake.connected_shards == [0, 1]
    assert sorted(p["shard"] for p in fake.identify_payloads) == [[0, 2], [1, 2]]
    assert fake.refused_identifies == []


async def test_the_global_limit_is_one_budget_per_token_whatever_the_connection() -> None:
    fake = FakeDiscord(token=TOKEN, enforce_rate_limits=True, global_rate_limit=4)
    await fake.start()
    auth = {"Authorization": f"Bot {TOKEN}"}
    try:
        # Two "processes": two sessions, so two sets of TCP connections.
        async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
            statuses = []
            for session in (first, second, first, second):
                async with session.get(f"{fake.api_base}/users/@me", headers=auth) as resp:
                    statuses.append(resp.status)
            assert statuses == [200] * 4
            for session in (first, second):
                async with session.get(f"{fake.api_base}/users/@me", headers=auth) as resp:
                    assert resp.status == 429
                    assert resp.headers["X-RateLimit-Global"] == "true"
                    assert resp.headers["X-RateLimit-Scope"] == "global"
                    assert (await resp.json())["global"] is True
            # Interaction callbacks carry no bot token: not the global limit's (Discord: not bound to it).
            async with first.post(f"{fake.api_base}/interactions/1/nope/callback", json={"type": 4}) as resp:
                assert resp.status == 404
            # A reset token is another authentication: a budget of its own.
            new = fake.reset_token()
            async with second.get(f"{fake.api_base}/users/@me", headers={"Authorization": f"Bot {new}"}) as resp:
                assert resp.status == 200
    finally:
        await fake.stop()
    ports = {r.client_port for r in fake.requests[:4]}
    assert len(ports) == 2  # the two sessions, told apart
    assert len(fake.rate_limited) == len(fake.global_rate_limited) == 2
    assert {r.client_port for r in fake.global_rate_limited} == ports


async def test_the_per_channel_limit_counts_every_process_posting_there() -> None:
    fake = FakeDiscord(token=TOKEN, enforce_rate_limits=True, message_rate_limit=(2, 5.0))
    guild = fake.add_guild("Guild A")
    busy = fake.add_text_channel(guild.id, "busy")
    quiet = fake.add_text_channel(guild.id, "quiet")
    await fake.start()
    auth = {"Authorization": f"Bot {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
            for session, text in ((first, "one"), (second, "two")):
                async with session.post(
                    f"{fake.api_base}/channels/{busy.id}/messages", headers=auth, json={"content": text}
                ) as resp:
                    assert resp.status == 200
            async with first.post(
                f"{fake.api_base}/channels/{busy.id}/messages", headers=auth, json={"content": "three"}
            ) as resp:
                assert resp.status == 429
                assert resp.headers["X-RateLimit-Scope"] == "user"
                assert "X-RateLimit-Global" not in resp.headers
                assert resp.headers["X-RateLimit-Bucket"] == "fake-channel_message_create"
                assert resp.headers["X-RateLimit-Remaining"] == "0"
                assert 0 < (await resp.json())["retry_after"] <= 5
            async with second.post(
                f"{fake.api_base}/channels/{quiet.id}/messages", headers=auth, json={"content": "elsewhere"}
            ) as resp:
                assert resp.status == 200  # another channel, another bucket
    finally:
        await fake.stop()
    assert [m.content for m in fake.messages] == ["one", "two", "elsewhere"]
    assert len(fake.rate_limited) == 1
    assert fake.global_rate_limited == []
    first_port, second_port = (fake.message_ports[m.id] for m in fake.messages[:2])
    assert first_port != second_port


async def test_latency_holds_every_rest_request_before_it_is_handled() -> None:
    fake = FakeDiscord(token=TOKEN, latency=0.2)
    guild = fake.add_guild("Guild A")
    channel = fake.add_text_channel(guild.id, "alerts")
    await fake.start()
    auth = {"Authorization": f"Bot {TOKEN}"}
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession() as session:
            post = session.post(f"{fake.api_base}/channels/{channel.id}/messages", headers=auth, json={"content": "x"})
            started = loop.time()
            async with post as resp:
                assert resp.status == 200
            elapsed = loop.time() - started
    finally:
        await fake.stop()
    assert elapsed >= 0.2  # a lower bound only: the sleep, never a measure of speed
    assert [m.content for m in fake.messages] == ["x"]


async def test_crosspost_in_a_news_channel_within_ten_per_hour() -> None:
    fake = FakeDiscord(token=TOKEN)
    guild = fake.add_guild("Guild A")
    news = fake.add_channel(guild.id, "news", type=5)
    text = fake.add_text_channel(guild.id, "alerts")
    await fake.start()
    auth = {"Authorization": f"Bot {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as session:

            async def post(channel_id: int) -> int:
                url = f"{fake.api_base}/channels/{channel_id}/messages"
                async with session.post(url, headers=auth, json={"content": "live!"}) as resp:
                    return int((await resp.json())["id"])

            async def crosspost(channel_id: int, message_id: int) -> tuple[int, Any]:
                url = f"{fake.api_base}/channels/{channel_id}/messages/{message_id}/crosspost"
                async with session.post(url, headers=auth) as resp:
                    return resp.status, await resp.json()

            first = await post(news.id)
            status, body = await crosspost(news.id, first)
            assert (status, body["flags"] & 1) == (200, 1)
            assert (await crosspost(news.id, first))[1]["code"] == 40033  # published already
            assert (await crosspost(text.id, await post(text.id)))[1]["code"] == 50024  # no news channel
            fake.publish_as_member(news.id, 8)
            assert fake.publishes_left(news.id) == 1
            assert (await crosspost(news.id, await post(news.id)))[0] == 200
            url = f"{fake.api_base}/channels/{news.id}/messages/{await post(news.id)}/crosspost"
            async with session.post(url, headers=auth) as resp:
                assert resp.status == 429
                assert resp.headers["Via"] == "1.1 google"
                assert resp.headers["X-RateLimit-Scope"] == "shared"
                refused = await resp.json()
            assert refused["global"] is False
            assert 3500 < refused["retry_after"] <= 3600
            fake.advance_clock(3600)
            assert fake.publishes_left(news.id) == 10
    finally:
        await fake.stop()
    assert len(fake.crossposted) == 2
    assert [r.status for r in fake.rejected] == [400, 400]
