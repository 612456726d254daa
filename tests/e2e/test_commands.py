"""End to end: every slash command through the real discord.py client, the fake Discord and the fake Twitch."""

import pytest

from tests.fakes.fake_discord import InteractionRefused

PAGE = 4000


@pytest.fixture
async def world(harness, fake_discord, fake_twitch):
    """One guild with an #alerts and a #general channel, Twitch users shroud and pokimane, the bot running."""
    guild = fake_discord.add_guild("Guild A")
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    general = fake_discord.add_text_channel(guild.id, "general")
    fake_twitch.add_user("shroud", display_name="shroud")
    fake_twitch.add_user("pokimane", display_name="Pokimane")
    await harness.start()
    return guild, alerts, general


async def test_commands_are_synced_guild_only_with_manage_server_for_mutations(world, fake_discord):
    commands = {c["name"]: c for c in fake_discord.synced_commands}
    assert set(commands) == {
        "setchannel",
        "addstreamer",
        "editstreamer",
        "removestreamer",
        "streamers",
        "live",
        "settings",
        "stats",
        "testalert",
        "diagnose",
    }
    manage_guild = str(1 << 5)
    for name in ("setchannel", "addstreamer", "editstreamer", "removestreamer", "settings", "testalert", "diagnose"):
        assert commands[name]["default_member_permissions"] == manage_guild
    for command in commands.values():
        assert command.get("contexts") == [0]


async def test_setchannel_sets_the_default_channel(world, harness):
    guild, alerts, general = world
    reply = await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=general)
    assert reply.ephemeral
    assert f"<#{alerts.id}>" in reply.text
    assert await harness.db.get_announce_channel(guild.id) == alerts.id


@pytest.mark.parametrize("typed", ["shroud", "Shroud", "twitch.tv/shroud", "https://www.twitch.tv/shroud/"])
async def test_addstreamer_accepts_logins_and_urls(world, harness, typed):
    guild, alerts, general = world
    await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=general)
    reply = await harness.command("addstreamer", {"streamer": typed}, guild=guild, channel=general)
    assert reply.ephemeral
    assert "Now following" in reply.text
    assert "shroud" in reply.text
    [sub] = await harness.db.guild_subscriptions(guild.id)
    assert sub.streamer.login == "shroud"
    assert sub.streamer.twitch_user_id == harness.twitch.user("shroud").id
    assert sub.channel_id == alerts.id


async def test_addstreamer_defers_before_asking_twitch(world, harness, fake_discord):
    guild, alerts, general = world
    interaction = await fake_discord.invoke(
        "addstreamer",
        {"streamer": "pokimane", "channel": alerts.id},
        guild_id=guild.id,
        channel_id=general.id,
        permissions=fake_discord.ADMIN_PERMISSIONS,
    )
    reply = await interaction.wait_reply(timeout=5)
    assert interaction.callbacks[0]["type"] == 5
    assert interaction.callbacks[0]["data"]["flags"] & 64
    assert reply.ephemeral
    assert "Pokimane" in reply.text


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "shr oud",
        "a" * 26,
        "ѕhroud",  # Cyrillic s
        "shroud🎮",
        "'; DROP TABLE subscriptions; --",
        "@everyone",
        "<@123456789>",
        "**shroud**",
        "https://youtube.com/shroud",
        "twitch.tv/",
        "https://www.twitch.tv/",
    ],
)
async def test_addstreamer_rejects_bad_input_without_asking_twitch(world, harness, fake_twitch, typed):
    guild, alerts, general = world
    before = fake_twitch.count("/helix/users")
    reply = await harness.command(
        "addstreamer", {"streamer": typed, "channel": alerts.id}, guild=guild, channel=general
    )
    assert reply.ephemeral
    assert "Now following" not in reply.text
    assert fake_twitch.count("/helix/users") == before
    assert await harness.db.guild_subscriptions(guild.id) == []
    assert "@everyone" not in reply.content or "\u200b" in reply.content


async def test_addstreamer_unknown_user(world, harness):
    guild, alerts, general = world
    reply = await harness.command(
        "addstreamer", {"streamer": "nobody_here", "channel": alerts.id}, guild=guild, channel=general
    )
    assert "no Twitch channel named" in reply.text
    assert await harness.db.guild_subscriptions(guild.id) == []


async def test_addstreamer_without_any_channel_asks_for_setchannel(world, harness, fake_twitch):
    guild, _alerts, general = world
    reply = await harness.command("addstreamer", {"streamer": "shroud"}, guild=guild, channel=general)
    assert "/setchannel" in reply.text
    assert await harness.db.guild_subscriptions(guild.id) == []
    assert fake_twitch.count("/helix/users") == 0


async def test_addstreamer_twice_changes_nothing(world, harness):
    guild, alerts, general = world
    await harness.command("addstreamer", {"streamer": "shroud", "channel": alerts.id}, guild=guild, channel=general)
    # Issue 4: uniqueness is (guild, streamer, channel), so only the same channel again is a repeat.
    reply = await harness.command(
        "addstreamer", {"streamer": "twitch.tv/SHROUD", "channel": alerts.id}, guild=guild, channel=general
    )
    assert "already announced in" in reply.text
    [sub] = await harness.db.guild_subscriptions(guild.id)
    assert sub.channel_id == alerts.id


async def test_addstreamer_explicit_channel_wins_over_default(world, harness):
    guild, alerts, general = world
    await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=general)
    await harness.command("addstreamer", {"streamer": "shroud", "channel": general.id}, guild=guild, channel=general)
    [sub] = await harness.db.guild_subscriptions(guild.id)
    assert sub.channel_id == general.id


async def test_addstreamer_refuses_past_the_per_guild_limit(harness, fake_discord, fake_twitch):
    harness.settings = harness.settings.__class__(
        **{
            **{f: getattr(harness.settings, f) for f in harness.settings.__dataclass_fields__},
            "max_streamers_per_guild": 1,
        }
    )
    guild = fake_discord.add_guild("Small")
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    fake_twitch.add_user("shroud")
    fake_twitch.add_user("pokimane")
    await harness.start()
    await harness.command("addstreamer", {"streamer": "shroud", "channel": alerts.id}, guild=guild, channel=alerts)
    reply = await harness.command(
        "addstreamer", {"streamer": "pokimane", "channel": alerts.id}, guild=guild, channel=alerts
    )
    assert "most allowed" in reply.text
    assert len(await harness.db.guild_subscriptions(guild.id)) == 1


async def test_removestreamer_with_autocomplete(world, harness, fake_discord):
    guild, alerts, general = world
    for name in ("shroud", "pokimane"):
        await harness.command("addstreamer", {"streamer": name, "channel": alerts.id}, guild=guild, channel=general)
    choices = await fake_discord.autocomplete(
        "removestreamer",
        "streamer",
        "pok",
        guild_id=guild.id,
        channel_id=general.id,
        permissions=fake_discord.ADMIN_PERMISSIONS,
    )
    assert [c["name"] for c in choices] == ["Pokimane"]
    reply = await harness.command("removestreamer", {"streamer": choices[0]["value"]}, guild=guild, channel=general)
    assert "Stopped following **Pokimane**" in reply.text
    assert [s.streamer.login for s in await harness.db.guild_subscriptions(guild.id)] == ["shroud"]
    # Typed by hand, as a login or a URL, works too; an unknown name changes nothing.
    reply = await harness.command("removestreamer", {"streamer": "nobody"}, guild=guild, channel=general)
    assert "isn't followed here" in reply.text
    reply = await harness.command("removestreamer", {"streamer": "twitch.tv/Shroud"}, guild=guild, channel=general)
    assert "Stopped following" in reply.text
    assert await harness.db.guild_subscriptions(guild.id) == []


async def test_autocomplete_only_shows_this_guilds_streamers(world, harness, fake_discord):
    guild, alerts, general = world
    other = fake_discord.add_guild("Guild B")
    await fake_discord.join_guild(other)
    other_channel = fake_discord.add_text_channel(other.id, "b-alerts")
    await harness.command("addstreamer", {"streamer": "shroud", "channel": alerts.id}, guild=guild, channel=general)
    choices = await fake_discord.autocomplete(
        "removestreamer",
        "streamer",
        "",
        guild_id=other.id,
        channel_id=other_channel.id,
        permissions=fake_discord.ADMIN_PERMISSIONS,
    )
    assert choices == []


async def test_streamers_lists_this_guild_only_with_live_state(world, harness, fake_discord, fake_twitch):
    guild, alerts, general = world
    other = fake_discord.add_guild("Guild B")
    await fake_discord.join_guild(other)
    other_channel = fake_discord.add_text_channel(other.id, "b-alerts")
    await harness.command("addstreamer", {"streamer": "shroud", "channel": alerts.id}, guild=guild, channel=general)
    await harness.command(
        "addstreamer", {"streamer": "pokimane", "channel": other_channel.id}, guild=other, channel=other_channel
    )
    fake_twitch.go_live("shroud", title="ranked")
    await harness.poll()
    reply = await harness.command("streamers", guild=guild, channel=general, admin=False)
    assert reply.ephemeral
    assert "shroud" in reply.text
    assert "live" in reply.text
    assert f"<#{alerts.id}>" in reply.text
    assert "Pokimane" not in reply.text


async def test_streamers_empty(world, harness):
    guild, _alerts, general = world
    reply = await harness.command("streamers", guild=guild, channel=general, admin=False)
    assert "No streamers are followed here yet" in reply.text


async def test_live_shows_title_game_viewers_uptime(world, harness, fake_twitch):
    guild, alerts, general = world
    for name in ("shroud", "pokimane"):
        await harness.command("addstreamer", {"streamer": name, "channel": alerts.id}, guild=guild, channel=general)
    reply = await harness.command("live", guild=guild, channel=general, admin=False)
    assert "None of this server's streamers are live" in reply.text
    fake_twitch.go_live("pokimane", title="Chatting *with* chat", game_name="Just Chatting", viewer_count=4321)
    reply = await harness.command("live", guild=guild, channel=general, admin=False)
    assert reply.ephemeral
    assert "Pokimane" in reply.text
    assert r"Chatting \*with\* chat" in reply.text
    assert "Just Chatting" in reply.text
    assert "4,321 viewers" in reply.text
    assert "up " in reply.text
    assert "shroud" not in reply.text


async def test_member_without_manage_server_is_refused_by_discord_and_by_the_bot(world, harness, fake_discord):
    guild, alerts, general = world
    # Discord itself hides the command from members lacking the default permission...
    with pytest.raises(InteractionRefused):
        await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=general, admin=False)
    # ...and if a server's admins opened it up to everyone, the bot still refuses on its side.
    for name, options in (
        ("setchannel", {"channel": alerts.id}),
        ("addstreamer", {"streamer": "shroud", "channel": alerts.id}),
        ("removestreamer", {"streamer": "shroud"}),
    ):
        reply = await harness.command(
            name, options, guild=guild, channel=general, admin=False, bypass_default_permissions=True
        )
        assert reply.ephemeral
        assert "Manage Server" in reply.text
    assert await harness.db.get_announce_channel(guild.id) is None
    assert await harness.db.guild_subscriptions(guild.id) == []


async def test_guild_settings_are_isolated(world, harness, fake_discord):
    guild, alerts, general = world
    other = fake_discord.add_guild("Guild B")
    await fake_discord.join_guild(other)
    b_alerts = fake_discord.add_text_channel(other.id, "b-alerts")
    await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=general)
    await harness.command("setchannel", {"channel": b_alerts.id}, guild=other, channel=b_alerts)
    assert await harness.db.get_announce_channel(guild.id) == alerts.id
    assert await harness.db.get_announce_channel(other.id) == b_alerts.id
