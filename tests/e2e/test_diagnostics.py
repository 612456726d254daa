"""End to end: /testalert posts an entry's announcement as a test that pings nobody; /diagnose names, per entry,
what could keep it from being announced (each missing permission), its last announcement and its last failure."""

import re

import pytest

from tests.e2e.harness import announcements
from tests.fakes.discord_payloads import FLAG_LOADING, NEWS_CHANNEL, permission_value
from twitch_notifier.models import Streamer
from twitch_notifier.rendering.diagnosis import TEST_MARK
from twitch_notifier.rendering.limits import CONTENT_LIMIT, EMBED_DESCRIPTION_LIMIT

BOT_WITH_MENTIONS = permission_value(
    "view_channel", "send_messages", "embed_links", "read_message_history", "mention_everyone"
)


@pytest.fixture
async def world(harness, fake_discord, fake_twitch):
    guild = fake_discord.add_guild("Guild A", bot_permissions=BOT_WITH_MENTIONS)
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    general = fake_discord.add_text_channel(guild.id, "general")
    fake_twitch.add_user("shroud", display_name="shroud")
    fake_twitch.add_user("pokimane", display_name="Pokimane")
    await harness.start()
    for login in ("shroud", "pokimane"):
        reply = await harness.command(
            "addstreamer", {"streamer": login, "channel": alerts.id}, guild=guild, channel=general
        )
        assert "Now following" in reply.text, reply.text
    return guild, alerts, general


async def entry(harness, guild, login: str) -> str:
    [sub] = [s for s in await harness.db.guild_subscriptions(guild.id) if s.streamer.login == login]
    return f"sub:{sub.id}"


async def test_testalert_previews_the_entry_and_pings_nobody(world, harness, fake_discord, fake_twitch):
    guild, alerts, general = world
    await harness.command(
        "settings",
        {"ping": "everyone", "message": "{ping} {streamer} is live: {title}"},
        guild=guild,
        channel=general,
        subcommand="set",
    )
    fake_twitch.go_live("shroud", title="Ranked grind", game_name="VALORANT")
    await harness.poll()
    [real] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    assert real.mention_everyone  # the real announcement does ping: the test must not

    interaction = await fake_discord.invoke(
        "testalert",
        {"streamer": await entry(harness, guild, "shroud")},
        guild_id=guild.id,
        channel_id=general.id,
        permissions=fake_discord.ADMIN_PERMISSIONS,
    )
    reply = await interaction.wait_reply()
    assert interaction.callbacks[0]["type"] == 5  # deferred, privately, before posting
    assert interaction.callbacks[0]["data"]["flags"] & 64
    assert reply.ephemeral
    [_, test] = announcements(fake_discord, alerts)
    assert f"https://discord.com/channels/{guild.id}/{alerts.id}/{test.id}" in reply.text
    assert TEST_MARK in test.content
    assert TEST_MARK in test.embeds[0]["footer"]["text"]
    assert "shroud is live: Ranked grind" in test.content  # the server's template, the current stream
    assert test.embeds[0]["title"] == "Ranked grind"
    assert test.components[0]["components"][0]["url"] == "https://www.twitch.tv/shroud"
    assert test.allowed_mentions["parse"] == []
    assert not test.allowed_mentions.get("roles")
    assert not test.mention_everyone
    assert test.mention_roles == []
    assert "@everyone" not in test.content  # described (defused), never the text that pings
    assert "would ping @\u200beveryone" in test.content
    assert len(announcements(fake_discord, alerts)) == 2  # nothing recorded: the poll posts nothing more
    await harness.poll()
    assert len(announcements(fake_discord, alerts)) == 2


async def test_testalert_with_a_role_ping_and_no_stream_on_record(world, harness, fake_discord):
    guild, alerts, general = world
    role = fake_discord.add_role(guild.id, "Live", mentionable=True)
    await harness.wait_for(lambda: harness.bot.get_guild(guild.id).get_role(role.id), "the role in the cache")
    reply = await harness.command(
        "editstreamer",
        {"streamer": await entry(harness, guild, "pokimane"), "ping": str(role.id)},
        guild=guild,
        channel=general,
    )
    assert "ping" in reply.text
    reply = await harness.command(
        "testalert", {"streamer": await entry(harness, guild, "pokimane")}, guild=guild, channel=general
    )
    [test] = announcements(fake_discord, alerts)
    assert test.mention_roles == []
    assert f"<@&{role.id}>" not in test.content
    assert "would ping @Live" in test.content
    assert "sample stream title" in test.embeds[0]["title"]
    assert "It pinged nobody" in reply.text


async def test_testalert_of_an_entry_with_the_notify_button_shows_it_and_pings_nobody(world, harness, fake_discord):
    guild, alerts, general = world
    await harness.command("settings", {"notify_button": True, "ping": "everyone"}, guild=guild, channel=general,
                          subcommand="set")  # fmt: skip
    shroud = await entry(harness, guild, "shroud")
    reply = await harness.command("testalert", {"streamer": shroud}, guild=guild, channel=general)
    [test] = announcements(fake_discord, alerts)
    [sub] = [s for s in await harness.db.guild_subscriptions(guild.id) if s.streamer.login == "shroud"]
    buttons = test.components[0]["components"]
    assert [b.get("custom_id") for b in buttons] == [None, f"notify:{sub.streamer.twitch_user_id}"]
    assert test.allowed_mentions["parse"] == []
    assert (test.mention_everyone, test.mention_roles) == (False, [])
    # The button's opt-in role replaces @everyone: that is what a real one would ping.
    assert "would ping the members who opt in with \N{BELL} Notify me (none yet)" in test.content
    assert "everyone" not in test.content
    assert "It pinged nobody" in reply.text


async def test_testalert_names_what_is_missing_and_reports_discords_refusal(world, harness, fake_discord):
    guild, alerts, general = world
    shroud = await entry(harness, guild, "shroud")
    fake_discord.set_bot_channel_permissions(alerts.id, deny=("embed_links",))
    await harness.wait_for(
        lambda: not harness.bot.get_channel(alerts.id).permissions_for(harness.bot.get_guild(guild.id).me).embed_links,
        "the overwrite in the cache",
    )
    reply = await harness.command("testalert", {"streamer": shroud}, guild=guild, channel=general)
    assert reply.ephemeral
    assert "missing **Embed Links**" in reply.text
    assert announcements(fake_discord, alerts) == []

    fake_discord.set_bot_channel_permissions(alerts.id)
    await harness.wait_for(
        lambda: harness.bot.get_channel(alerts.id).permissions_for(harness.bot.get_guild(guild.id).me).embed_links,
        "the overwrite gone from the cache",
    )
    fake_discord.fail_next("POST", r"/channels/\d+/messages", status=403, code=50013, message="Missing Permissions")
    reply = await harness.command("testalert", {"streamer": shroud}, guild=guild, channel=general)
    assert "Discord refused the test" in reply.text
    assert "Missing Permissions" in reply.text
    assert announcements(fake_discord, alerts) == []

    reply = await harness.command("testalert", {"streamer": "nobody_here"}, guild=guild, channel=general)
    assert "isn't followed here" in reply.text
    reply = await harness.command(
        "testalert", {"streamer": shroud}, guild=guild, channel=general, admin=False, bypass_default_permissions=True
    )
    assert "Manage Server" in reply.text
    assert announcements(fake_discord, alerts) == []


async def test_testalert_autocompletes_the_servers_entries(world, harness, fake_discord):
    guild, _alerts, general = world
    choices = await fake_discord.autocomplete(
        "testalert",
        "streamer",
        "pok",
        guild_id=guild.id,
        channel_id=general.id,
        permissions=fake_discord.ADMIN_PERMISSIONS,
    )
    [choice] = choices
    assert choice["name"] == "Pokimane"
    assert choice["value"] == await entry(harness, guild, "pokimane")


async def test_diagnose_names_each_missing_permission_and_the_last_post_and_failure(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts, general = world
    news = fake_discord.add_channel(guild.id, "news", type=NEWS_CHANNEL)
    shy = fake_discord.add_role(guild.id, "Shy")  # not mentionable
    fake_twitch.add_user("lirik")
    await harness.wait_for(lambda: harness.bot.get_channel(news.id), "the news channel in the cache")
    await harness.command("settings", {"publish": True}, guild=guild, channel=general, subcommand="set")
    await harness.command(
        "addstreamer", {"streamer": "lirik", "channel": news.id, "ping": str(shy.id)}, guild=guild, channel=general
    )
    fake_twitch.go_live("shroud")
    await harness.poll()
    [posted] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    # Posting into #news then fails for want of Send Messages: recorded with its time.
    fake_discord.set_bot_channel_permissions(news.id, deny=("send_messages",))
    fake_discord.set_bot_guild_permissions(guild.id, permission_value("view_channel", "send_messages", "embed_links"))
    await harness.wait_for(
        lambda: not harness.bot.get_guild(guild.id).me.guild_permissions.mention_everyone, "the new permissions"
    )
    fake_twitch.go_live("lirik")
    await harness.poll()
    await harness.eventually(lambda: _failed(harness, guild.id, "lirik"), "the failure to be recorded", timeout=5)

    interaction = await fake_discord.invoke(
        "diagnose", {}, guild_id=guild.id, channel_id=general.id, permissions=fake_discord.ADMIN_PERMISSIONS
    )
    reply = await interaction.wait_reply()
    assert interaction.callbacks[0]["type"] == 5
    assert interaction.callbacks[0]["data"]["flags"] & 64
    assert reply.ephemeral
    text = reply.text
    assert "Diagnosis: 3 entries" in text
    assert "Server-wide: create events ❌ missing **Create Events** (live events off)" in text
    assert f"<#{alerts.id}>** — post ✅ · embed ✅ · publish: not an announcement channel" in text
    assert (
        f"<#{news.id}>** — post ❌ missing **Send Messages** · embed ❌ missing **Embed Links** · publish ❌ missing "
        "**Send Messages**" in text
    )
    assert "isn't mentionable and I lack **Mention @everyone, @here, and All Roles**" in text
    assert f"https://discord.com/channels/{guild.id}/{alerts.id}/{posted.id}" in text
    assert re.search(
        r"\*\*lirik\*\*.*\n  ❌ failing: can't post in \\#news\\: missing Send Messages, Embed Links "
        r"\(since <t:\d+:R>\)",
        text,
    )
    assert "no announcement on record" in text  # pokimane never went live


async def test_diagnose_says_whether_the_opt_in_role_can_be_handed_out(world, harness, fake_discord):
    guild, _alerts, general = world
    await harness.command("editstreamer", {"streamer": await entry(harness, guild, "shroud"), "notify_button": "on"},
                          guild=guild, channel=general)  # fmt: skip
    text = (await harness.command("diagnose", guild=guild, channel=general)).text
    lines = {line.split("**")[1]: line for line in text.splitlines() if line.startswith("• ")}
    shroud, pokimane = lines["shroud"], lines["Pokimane"]
    assert "ping nobody until a member opts in · \N{BELL} Notify me ❌ missing **Manage Roles**" in shroud
    assert "Notify me" not in pokimane  # its button is off: nothing to hand out

    fake_discord.set_bot_guild_permissions(guild.id, BOT_WITH_MENTIONS | permission_value("manage_roles"))
    above = fake_discord.add_role(guild.id, "shroud live", mentionable=True)  # moved above the bot's role
    [sub] = [s for s in await harness.db.guild_subscriptions(guild.id) if s.streamer.login == "shroud"]
    await harness.db.set_notify_role(guild.id, sub.streamer.twitch_user_id, above.id)
    cached = harness.bot.get_guild(guild.id)
    await harness.wait_for(lambda: cached.me.guild_permissions.manage_roles and cached.get_role(above.id), "the cache")
    text = (await harness.command("diagnose", guild=guild, channel=general)).text
    assert "ping @shroud live · \N{BELL} Notify me ❌ @shroud live is above my highest role: move mine above" in text


async def _failed(harness, guild_id: int, login: str) -> bool:
    subs = await harness.db.guild_subscriptions(guild_id)
    return any(s.streamer.login == login and s.last_failure_at is not None for s in subs)


async def test_diagnose_of_a_hundred_entries_stays_within_discords_limits(world, harness, fake_discord):
    guild, _alerts, general = world
    channels = [fake_discord.add_text_channel(guild.id, f"alerts-{i}") for i in range(10)]
    fake_discord.set_bot_guild_permissions(guild.id, BOT_WITH_MENTIONS | permission_value("create_events"))
    await harness.wait_for(lambda: harness.bot.get_channel(channels[-1].id), "the channels in the cache")
    await harness.wait_for(
        lambda: harness.bot.get_guild(guild.id).me.guild_permissions.create_events, "the new permission"
    )
    for index in range(98):
        streamer = Streamer(f"9{index:04d}", f"streamer_{index}", f"Streamer_{index}_with_a_long_display_name")
        await harness.db.add_subscription(guild.id, channels[index % 10].id, streamer)
    interaction = await fake_discord.invoke(
        "diagnose", {}, guild_id=guild.id, channel_id=general.id, permissions=fake_discord.ADMIN_PERMISSIONS
    )
    await interaction.wait_reply()

    def pages():
        messages = [m for m in [interaction.original, *interaction.followups] if m and not m.flags & FLAG_LOADING]
        return [m for m in messages if m.embeds]

    await fake_discord.wait_until(
        lambda: any(re.search(r"\((\d+)/\1\)$", p.embeds[0]["title"]) for p in pages()), what="the last page"
    )
    found = pages()
    assert 1 < len(found) <= 10
    text = "\n".join(p.embeds[0]["description"] for p in found)
    for page in found:
        assert len(page.embeds[0]["description"]) <= EMBED_DESCRIPTION_LIMIT
        assert len(page.content) <= CONTENT_LIMIT
        assert page.ephemeral
    assert "Diagnosis: 100 entries" in found[0].embeds[0]["title"]
    assert found[0].embeds[0]["description"].startswith("Server-wide: create events ✅ (live events off)")
    for index in range(98):
        assert f"Streamer\\_{index}\\_with" in text
