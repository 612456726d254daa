"""End to end: faults on Discord's and Twitch's side, scripted through the fakes, with assertions on exactly
which messages Discord received."""

import pytest

from bot import FORGET_ABSENT_GUILDS_AFTER
from tests.e2e.harness import announcements, follow
from tests.fakes.fake_discord import InteractionRefused
from twitch_notifier.core.poller import STREAMER_REFRESH_INTERVAL


async def _channel_of(harness, guild_id, login, expected) -> bool:
    subscriptions = await harness.db.find_subscriptions(guild_id, login)
    return bool(subscriptions) and subscriptions[0].channel_id == expected


# -- the bot's own permissions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("denied", "named"),
    [
        (("send_messages",), "Send Messages"),
        (("embed_links",), "Embed Links"),
        (("view_channel",), "View Channel"),
    ],
)
async def test_setchannel_and_addstreamer_refuse_a_channel_the_bot_cannot_post_in(
    guild_a, harness, fake_discord, fake_twitch, denied, named
):
    guild, alerts, general = guild_a
    fake_discord.set_bot_channel_permissions(alerts.id, deny=denied)
    await fake_discord.drain()
    await harness.wait_for(
        lambda: (
            not getattr(
                harness.bot.get_channel(alerts.id).permissions_for(harness.bot.get_guild(guild.id).me), denied[0]
            )
        ),
        "the permission change",
    )
    reply = await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=general)
    assert reply.ephemeral
    assert named in reply.text
    assert "#alerts" in reply.text
    assert await harness.db.get_announce_channel(guild.id) is None
    users_before = fake_twitch.count("/helix/users")
    reply = await follow(harness, guild, general, "shroud", alerts)
    assert named in reply.text
    assert await harness.db.guild_subscriptions(guild.id) == []
    assert fake_twitch.count("/helix/users") == users_before


async def test_permission_lost_then_restored(guild_a, harness, fake_discord, fake_twitch):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    fake_discord.set_bot_channel_permissions(alerts.id, deny=("send_messages",))
    await fake_discord.drain()
    me = lambda: harness.bot.get_guild(guild.id).me  # noqa: E731
    await harness.wait_for(lambda: not harness.bot.get_channel(alerts.id).permissions_for(me()).send_messages, "deny")
    fake_twitch.go_live("shroud")
    await harness.poll()
    assert announcements(fake_discord) == []
    # No failed request was even sent: the bot checks its permissions from the gateway cache first.
    assert not [r for r in fake_discord.requests if r.method == "POST" and r.path.endswith("/messages")]
    reply = await harness.command("streamers", guild=guild, channel=general)
    assert "can't post in #alerts: missing Send Messages" in reply.text
    # The admin fixes the permission: the pending announcement goes out on the next cycle, once.
    fake_discord.set_bot_channel_permissions(alerts.id, allow=("send_messages",))
    await fake_discord.drain()
    await harness.wait_for(lambda: harness.bot.get_channel(alerts.id).permissions_for(me()).send_messages, "allow")
    await harness.poll()
    await harness.poll()
    assert len(announcements(fake_discord, alerts)) == 1
    assert (await harness.db.find_subscriptions(guild.id, "shroud"))[0].last_error is None
    reply = await harness.command("streamers", guild=guild, channel=general)
    assert "can't post" not in reply.text


async def test_forbidden_answer_from_discord_marks_and_clears(guild_a, harness, fake_discord, fake_twitch):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    # The cache says all is well but Discord refuses (e.g. an overwrite the bot has not seen yet).
    fake_discord.fail_next(
        "POST", rf"/channels/{alerts.id}/messages", status=403, code=50013, message="Missing Permissions"
    )
    fake_twitch.go_live("shroud")
    await harness.poll()
    assert announcements(fake_discord) == []
    assert "Missing Permissions" in (await harness.db.find_subscriptions(guild.id, "shroud"))[0].last_error
    await harness.poll()
    assert len(announcements(fake_discord)) == 1
    assert (await harness.db.find_subscriptions(guild.id, "shroud"))[0].last_error is None


# -- channels and guilds going away ---------------------------------------------------------------------


async def test_deleted_channel_falls_back_to_the_default(guild_a, harness, fake_discord, fake_twitch):
    guild, alerts, general = guild_a
    await harness.command("setchannel", {"channel": general.id}, guild=guild, channel=general)
    await follow(harness, guild, general, "shroud", alerts)
    await fake_discord.delete_channel(alerts.id)
    await harness.eventually(
        lambda: _channel_of(harness, guild.id, "shroud", general.id), "the subscription to move to the default"
    )
    fake_twitch.go_live("shroud")
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1)
    assert message.channel_id == general.id


async def test_deleted_channel_without_default_is_marked_until_setchannel(guild_a, harness, fake_discord, fake_twitch):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    await fake_discord.delete_channel(alerts.id)
    await harness.wait_for(lambda: harness.bot.get_channel(alerts.id) is None, "the channel deletion")
    fake_twitch.go_live("shroud")
    await harness.poll()
    assert announcements(fake_discord) == []
    reply = await harness.command("streamers", guild=guild, channel=general)
    assert "deleted" in reply.text
    reply = await harness.command("setchannel", {"channel": general.id}, guild=guild, channel=general)
    assert "whose channel was deleted now announce there" in reply.text
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1)
    assert message.channel_id == general.id


async def test_addstreamer_again_repairs_a_broken_entry(guild_a, harness, fake_discord, fake_twitch):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    await fake_discord.delete_channel(alerts.id)
    await harness.wait_for(lambda: harness.bot.get_channel(alerts.id) is None, "the channel deletion")
    reply = await follow(harness, guild, general, "shroud", general)
    assert "announcements now go to" in reply.text
    [sub] = await harness.db.guild_subscriptions(guild.id)
    assert (sub.channel_id, sub.last_error) == (general.id, None)


async def test_removed_from_a_guild_deletes_its_rows(guild_a, harness, fake_discord):
    guild, alerts, general = guild_a
    other = fake_discord.add_guild("Guild B")
    await fake_discord.join_guild(other)
    b_alerts = fake_discord.add_text_channel(other.id, "b-alerts")
    await harness.wait_for(lambda: harness.bot.get_guild(other.id) is not None, "the new guild")
    await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=general)
    await follow(harness, guild, general, "shroud")
    await follow(harness, other, b_alerts, "shroud", b_alerts)
    await fake_discord.remove_guild(guild.id)

    async def rows_gone() -> bool:
        settings = await harness.db.get_announce_channel(guild.id)
        return await harness.db.guild_subscriptions(guild.id) == [] and settings is None

    await harness.eventually(rows_gone, "the removed guild's rows to be deleted")
    assert [s.guild_id for s in await harness.db.guild_subscriptions(other.id)] == [other.id]


# -- Discord rate limits, errors and the gateway ----------------------------------------------------------


async def test_a_429_storm_delays_but_loses_nothing(harness, fake_discord, fake_twitch):
    channels = []
    for index in range(4):
        guild = fake_discord.add_guild(f"G{index}")
        channels.append((guild, fake_discord.add_text_channel(guild.id, "alerts")))
    users = fake_twitch.add_users(5)
    await harness.start()
    for guild, channel in channels:
        for user in users:
            await follow(harness, guild, channel, user.login, channel)
    storm = fake_discord.fail_next("POST", r"/channels/\d+/messages", status=429, times=12, retry_after=0.02)
    for user in users:
        fake_twitch.go_live(user.login)
    await harness.poll()
    # discord.py retries a 429 up to five times; a post that meets five of the storm's twelve in a row (the luck of
    # the timing) fails this cycle, transiently, and the next cycle posts it under the same nonce.
    await harness.poll()
    await fake_discord.wait_for_messages(20, timeout=15)
    await harness.poll()
    assert storm.hits == 12
    posted = sorted((m.channel_id, m.embeds[0]["author"]["name"]) for m in announcements(fake_discord))
    assert posted == sorted((c.id, u.display_name) for _, c in channels for u in users)


async def test_a_discord_server_error_is_retried(guild_a, harness, fake_discord, fake_twitch):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    fake_discord.fail_next("POST", rf"/channels/{alerts.id}/messages", status=502, times=1)
    fake_twitch.go_live("shroud")
    await harness.poll()
    await harness.poll()
    assert len(announcements(fake_discord)) == 1


async def test_gateway_disconnect_the_loop_keeps_posting_and_the_bot_resumes(
    guild_a, harness, fake_discord, fake_twitch
):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    await fake_discord.disconnect_gateway(code=4000)
    fake_twitch.go_live("shroud")
    await harness.poll()  # REST does not need the gateway
    await fake_discord.wait_for_messages(1)
    await fake_discord.wait_until(lambda: len(fake_discord.resume_payloads) >= 1, what="a RESUME")
    await fake_discord.wait_connected()
    reply = await harness.command("streamers", guild=guild, channel=general)
    assert "live" in reply.text
    assert len(announcements(fake_discord)) == 1


async def test_commands_in_dms_are_refused(guild_a, fake_discord):
    for name in ("setchannel", "addstreamer", "removestreamer", "streamers", "live"):
        with pytest.raises(InteractionRefused):
            await fake_discord.invoke(name, {}, guild_id=None, permissions=fake_discord.ADMIN_PERMISSIONS)


# -- Twitch faults --------------------------------------------------------------------------------------


async def test_twitch_429_is_retried_with_the_same_query(guild_a, harness, fake_discord, fake_twitch):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    fake_twitch.go_live("shroud")
    fake_twitch.fail_next(path="/helix/streams", status=429, times=1)
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1)
    assert message.embeds[0]["author"]["name"] == "shroud"
    last_two = fake_twitch.requests_to("/helix/streams")[-2:]
    assert last_two[0].status == 429
    assert last_two[0].query == last_two[1].query
    assert last_two[1].values("user_id")


async def test_rename_is_followed(guild_a, harness, fake_discord, fake_twitch):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    user = fake_twitch.user("shroud")
    fake_twitch.rename_user(user.id, "shroud_new", "Shroud_New")
    fake_twitch.go_live(user.id)
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1)
    assert message.embeds[0]["url"] == "https://www.twitch.tv/shroud_new"
    reply = await harness.command("streamers", guild=guild, channel=general)
    assert "Shroud\\_New" in reply.text
    reply = await harness.command("removestreamer", {"streamer": "shroud_new"}, guild=guild, channel=general)
    assert "Stopped following" in reply.text


async def test_offline_rename_and_banned_user_found_by_the_periodic_refresh(guild_a, harness, fake_twitch):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    await follow(harness, guild, general, "pokimane", alerts)
    fake_twitch.rename_user(fake_twitch.user("shroud").id, "shroud2", "SHROUD2")
    fake_twitch.remove_user(fake_twitch.user("pokimane").id)
    harness.clock.advance(STREAMER_REFRESH_INTERVAL)  # the refresh is due (it runs every 6 hours)
    await harness.poll()
    reply = await harness.command("streamers", guild=guild, channel=general)
    assert "SHROUD2" in reply.text
    assert "Twitch no longer returns this account" in reply.text
    assert len(await harness.db.guild_subscriptions(guild.id)) == 2  # reported, not silently dropped


async def test_token_is_validated_hourly_and_replaced_when_invalid(guild_a, harness, fake_twitch):
    before = (fake_twitch.validate_requests, fake_twitch.token_requests)
    await harness.poll()
    assert fake_twitch.validate_requests == before[0]  # not due yet
    fake_twitch.expire_tokens()
    harness.clock.advance(3601)  # an hour later
    await harness.poll()
    assert fake_twitch.validate_requests == before[0] + 1
    assert fake_twitch.token_requests == before[1] + 1  # the invalid token was replaced at once


async def test_hostile_stream_text_pings_nobody(guild_a, harness, fake_discord, fake_twitch):
    guild, alerts, general = guild_a
    role = fake_discord.add_role(guild.id, "subs", mentionable=True)
    await follow(harness, guild, general, "shroud", alerts)
    title = f"@everyone @here <@&{role.id}> <@{fake_discord.default_user.id}> **bold** " + "x" * 300
    fake_twitch.go_live("shroud", title=title, game_name="@everyone")
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1)
    # What Discord would actually deliver as pings, computed by the fake from allowed_mentions and content.
    assert message.mention_everyone is False
    assert message.mention_roles == []
    assert message.allowed_mentions["parse"] == []
    embed = message.embeds[0]
    assert len(embed["title"]) <= 256
    assert embed["title"].endswith("…")
    assert "@everyone" not in embed["title"]
    assert "\\*\\*bold\\*\\*" in embed["title"]


async def test_removed_from_a_guild_while_offline_is_forgotten_after_the_grace(guild_a, harness, fake_discord):
    guild, alerts, general = guild_a
    other = fake_discord.add_guild("Guild B")
    await fake_discord.join_guild(other)
    b_alerts = fake_discord.add_text_channel(other.id, "b-alerts")
    await harness.wait_for(lambda: harness.bot.get_guild(other.id) is not None, "the new guild")
    await follow(harness, guild, general, "shroud", alerts)
    await follow(harness, other, b_alerts, "shroud", b_alerts)
    await harness.stop()
    fake_discord.guilds[other.id].bot_joined = False  # kicked while the bot was down: no event reaches it
    await harness.start()
    assert [s.guild_id for s in await harness.db.guild_subscriptions(other.id)] == [other.id]  # kept for now
    await harness.stop()
    harness.clock.advance(FORGET_ABSENT_GUILDS_AFTER.total_seconds() + 3600)
    await harness.start()

    async def forgotten() -> bool:
        return await harness.db.guild_subscriptions(other.id) == []

    await harness.eventually(forgotten, "the rows of the guild that removed the bot")
    assert [s.guild_id for s in await harness.db.guild_subscriptions(guild.id)] == [guild.id]


@pytest.mark.parametrize(("unavailable", "count"), [(False, 3), (True, 3), (False, 1)])
async def test_a_ready_without_the_usual_guilds_deletes_nothing(harness, fake_discord, fake_twitch, unavailable, count):
    # Before: every guild missing from READY was deleted at once with its whole configuration (another
    # application's token, or a partial READY, wiped every server's setup).
    fake_twitch.add_user("shroud")
    guilds = []
    for index in range(count):  # one guild: a self-hosted bot started with another application's token
        guild = fake_discord.add_guild(f"G{index}")
        guilds.append((guild, fake_discord.add_text_channel(guild.id, "alerts")))
    await harness.start()
    for guild, channel in guilds:
        await harness.command("setchannel", {"channel": channel.id}, guild=guild, channel=channel)
        await follow(harness, guild, channel, "shroud", channel)
    await harness.stop()
    fake_discord.omit_from_next_ready([guild for guild, _ in guilds], unavailable=unavailable)
    harness.clock.advance(FORGET_ABSENT_GUILDS_AFTER.total_seconds() + 3600)  # even when long unseen
    await harness.start()
    await harness.poll()
    for guild, channel in guilds:
        assert [s.channel_id for s in await harness.db.guild_subscriptions(guild.id)] == [channel.id]
        assert await harness.db.get_announce_channel(guild.id) == channel.id
