"""End to end (issue 4): per-server settings, per-streamer overrides, several channels per streamer, the game
filter, and the card's whole life — posted with a link button, kept current, then edited, deleted or kept."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes.fake_discord import DEFAULT_BOT_PERMISSIONS, permission_value

MINUTES = timedelta(minutes=6)


def announcements(fake_discord, channel=None):
    messages = fake_discord.messages if channel is None else fake_discord.messages_in(channel.id)
    return [m for m in messages if m.embeds and m.interaction is None and not m.ephemeral and not m.deleted]


def requests(fake_discord, method, message):
    return [r for r in fake_discord.requests if r.method == method and r.path.endswith(f"/messages/{message.id}")]


def watch_button(login):
    return [
        {"type": 2, "style": 5, "label": "Watch stream", "url": f"https://www.twitch.tv/{login}"},
    ]


def buttons(message):
    [row] = message.components
    assert row["type"] == 1
    return [{k: b[k] for k in ("type", "style", "label", "url")} for b in row["components"]]


def role_ids(allowed):
    return [str(r) for r in allowed.get("roles", [])]


def later(harness, delta=MINUTES):
    """Move the notifier's clock forward: the 5-minute throttle of live updates has passed."""
    harness.bot.notifier.clock = lambda: datetime.now(UTC) + delta


@pytest.fixture
async def world(harness, fake_discord, fake_twitch):
    guild = fake_discord.add_guild(
        "Guild A", bot_permissions=DEFAULT_BOT_PERMISSIONS | permission_value("mention_everyone")
    )
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    log = fake_discord.add_text_channel(guild.id, "stream-log")
    role = fake_discord.add_role(guild.id, "Live Alerts", mentionable=True)
    fake_twitch.add_user("shroud", display_name="shroud")
    fake_twitch.add_user("pokimane", display_name="Pokimane")
    await harness.start()
    return guild, alerts, log, role


async def run(harness, name, options=None, *, guild, channel, subcommand=None):
    kwargs = {"subcommand": subcommand} if subcommand else {}
    return await harness.command(name, options or {}, guild=guild, channel=channel, **kwargs)


async def add(harness, guild, channel, login, **options):
    reply = await run(
        harness, "addstreamer", {"streamer": login, "channel": channel.id, **options}, guild=guild, channel=channel
    )
    assert "Now following" in reply.text, reply.text
    return reply


# ------------------------------------------------------------------------------------------ settings


async def test_default_card_has_a_watch_button_and_pings_nobody(world, harness, fake_discord, fake_twitch):
    guild, alerts, _log, _role = world
    await add(harness, guild, alerts, "shroud")
    stream = fake_twitch.go_live("shroud", title="@everyone ranked", game_name="VALORANT", viewer_count=999)
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    assert message.content == "\N{LARGE RED CIRCLE} **shroud** is live on Twitch!"
    [embed] = message.embeds
    assert embed["title"] == "@\u200beveryone ranked"
    assert embed["url"] == "https://www.twitch.tv/shroud"
    assert embed["color"] == 0x9146FF
    assert embed["author"]["name"] == "shroud"
    assert embed["author"]["icon_url"].startswith("https://")
    assert {f["name"]: f["value"] for f in embed["fields"]}["Viewers"] == "999"
    assert embed["timestamp"].startswith(stream.started_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert buttons(message) == watch_button("shroud")
    assert message.allowed_mentions["parse"] == []
    assert role_ids(message.allowed_mentions) == []
    assert not message.allowed_mentions.get("replied_user")
    assert (message.mention_everyone, message.mention_roles) == (False, [])


async def test_role_ping_and_template_exactly_as_configured(world, harness, fake_discord, fake_twitch):
    guild, alerts, _log, role = world
    await add(harness, guild, alerts, "shroud")
    reply = await run(
        harness,
        "settings",
        {"ping": str(role.id), "message": "{ping} {streamer} is live: {title} ({game}, {viewers} viewers) {url}"},
        guild=guild,
        channel=alerts,
        subcommand="set",
    )
    assert reply.ephemeral
    assert "Settings saved" in reply.text
    [_settings, preview] = reply.embeds
    assert preview["title"] == "Preview"
    assert preview["description"] == (
        f"<@&{role.id}> Example\\_Streamer is live: Ranked with viewers! (VALORANT, 1,234 viewers) "
        "https://www.twitch.tv/example_streamer"
    )
    assert reply.payload["mention_roles"] == []  # the preview pings nobody

    fake_twitch.go_live("shroud", title="ranked *grind* @here", game_name="VALORANT", viewer_count=999)
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    assert message.content == (
        f"<@&{role.id}> shroud is live: ranked \\*grind\\* @\u200bhere (VALORANT, 999 viewers) "
        "https://www.twitch.tv/shroud"
    )
    assert message.allowed_mentions["parse"] == []
    assert role_ids(message.allowed_mentions) == [str(role.id)]
    assert (message.mention_roles, message.mention_everyone) == ([role.id], False)
    assert buttons(message) == watch_button("shroud")


@pytest.mark.parametrize("ping", ["@everyone", "here"])
async def test_everyone_or_here_ping_is_the_only_mention(world, harness, fake_discord, fake_twitch, ping):
    guild, alerts, _log, role = world
    await add(harness, guild, alerts, "shroud")
    await run(harness, "settings", {"ping": ping}, guild=guild, channel=alerts, subcommand="set")
    fake_twitch.go_live("shroud", title=f"<@&{role.id}> come watch")
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    word = ping.lstrip("@")
    assert message.content == f"@{word} \N{LARGE RED CIRCLE} **shroud** is live on Twitch!"
    assert message.allowed_mentions["parse"] == ["everyone"]
    assert role_ids(message.allowed_mentions) == []
    assert message.mention_everyone
    assert message.mention_roles == []


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{streamer} is live {foo}", "Unknown placeholder `{foo}`"),
        ("{streamer} {Title} {gmae}", "Unknown placeholders `{Title}`, `{gmae}`"),
        ("{streamer is live", "stray"),
        ("{title!r}", "is not a placeholder"),
        ("{}", "is not a placeholder"),
        ("x" * 1001, "at most 1,000"),
    ],
)
async def test_template_validation_errors(world, harness, template, expected):
    guild, alerts, _log, _role = world
    reply = await run(harness, "settings", {"message": template}, guild=guild, channel=alerts, subcommand="set")
    assert reply.ephemeral, reply.text
    assert expected in reply.text, reply.text
    assert (await harness.db.get_guild_settings(guild.id)).message_template is None
    reply = await run(
        harness, "addstreamer", {"streamer": "shroud", "channel": alerts.id, "message": template}, guild=guild,
        channel=alerts,
    )  # fmt: skip
    assert expected in reply.text
    assert await harness.db.guild_subscriptions(guild.id) == []


async def test_bad_ping_and_unknown_role_are_refused(world, harness):
    guild, alerts, _log, _role = world
    reply = await run(harness, "settings", {"ping": "the mods"}, guild=guild, channel=alerts, subcommand="set")
    assert "A ping is" in reply.text
    reply = await run(
        harness, "settings", {"ping": "123456789012345678"}, guild=guild, channel=alerts, subcommand="set"
    )
    assert "can't find that role" in reply.text
    assert (await harness.db.get_guild_settings(guild.id)).ping is None


async def test_settings_show_reset_and_ping_autocomplete(world, harness, fake_discord):
    guild, alerts, _log, role = world
    await run(
        harness, "settings", {"ping": "@here", "on_end": "delete", "live_updates": False}, guild=guild,
        channel=alerts, subcommand="set",
    )  # fmt: skip
    reply = await run(harness, "settings", guild=guild, channel=alerts, subcommand="show")
    assert "@here" in reply.text
    assert "delete the announcement" in reply.text
    assert "off" in reply.text
    reply = await run(harness, "settings", {"setting": "all"}, guild=guild, channel=alerts, subcommand="reset")
    settings = await harness.db.get_guild_settings(guild.id)
    assert (settings.ping, settings.end_action, settings.live_updates) == (None, "edit", True)
    assert "was live" in reply.text
    choices = await fake_discord.autocomplete(
        "settings", "ping", "live", subcommand="set", guild_id=guild.id, channel_id=alerts.id,
        permissions=fake_discord.ADMIN_PERMISSIONS,
    )  # fmt: skip
    assert choices == [{"name": "@Live Alerts", "value": str(role.id)}]
    # Members without Manage Server never see the group, and the bot refuses them too.
    reply = await harness.command(
        "settings", {"ping": "@everyone"}, guild=guild, channel=alerts, admin=False, subcommand="set",
        bypass_default_permissions=True,
    )  # fmt: skip
    assert "Manage Server" in reply.text


# ------------------------------------------------------------------------------ the card's whole life


async def test_live_updates_patch_the_same_message_at_most_every_5_minutes(world, harness, fake_discord, fake_twitch):
    guild, alerts, _log, _role = world
    await add(harness, guild, alerts, "shroud")
    fake_twitch.go_live("shroud", title="first title", game_name="VALORANT", viewer_count=10)
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)

    later(harness)
    await harness.poll()  # nothing changed: no edit
    assert requests(fake_discord, "PATCH", message) == []

    harness.bot.notifier.clock = lambda: datetime.now(UTC)
    fake_twitch.update_stream("shroud", title="second title", game_name="Minecraft", viewer_count=20)
    await harness.poll()  # changed, but the card was posted less than 5 minutes ago
    assert requests(fake_discord, "PATCH", message) == []

    later(harness)
    await harness.poll()
    [patch] = requests(fake_discord, "PATCH", message)
    assert patch.path == f"/channels/{alerts.id}/messages/{message.id}"
    [embed] = message.embeds
    assert embed["title"] == "second title"
    assert {f["name"]: f["value"] for f in embed["fields"]}["Game"] == "Minecraft"
    assert {f["name"]: f["value"] for f in embed["fields"]}["Viewers"] == "20"
    assert embed["image"]["url"].startswith("https://static-cdn.jtvnw.net/previews-ttv/live_user_shroud-1280x720")
    assert buttons(message) == watch_button("shroud")
    assert len(announcements(fake_discord)) == 1

    await harness.poll()  # unchanged since the edit
    assert len(requests(fake_discord, "PATCH", message)) == 1


async def test_live_updates_off(world, harness, fake_discord, fake_twitch):
    guild, alerts, _log, _role = world
    await add(harness, guild, alerts, "shroud")
    await run(harness, "settings", {"live_updates": False}, guild=guild, channel=alerts, subcommand="set")
    fake_twitch.go_live("shroud", viewer_count=10)
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    fake_twitch.update_stream("shroud", title="changed", viewer_count=50)
    later(harness)
    await harness.poll()
    assert requests(fake_discord, "PATCH", message) == []


async def test_end_edits_the_card_into_a_was_live_card_with_the_vod(world, harness, fake_discord, fake_twitch):
    guild, alerts, _log, role = world
    await add(harness, guild, alerts, "shroud")
    await run(harness, "settings", {"ping": str(role.id)}, guild=guild, channel=alerts, subcommand="set")
    stream = fake_twitch.go_live(
        "shroud", title="long stream", game_name="VALORANT", started_at=datetime.now(UTC) - timedelta(hours=2)
    )
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    video = fake_twitch.go_offline("shroud")
    await harness.poll()  # absent once: not over yet
    assert requests(fake_discord, "PATCH", message) == []
    await harness.poll()
    [patch] = requests(fake_discord, "PATCH", message)
    assert patch.path == f"/channels/{alerts.id}/messages/{message.id}"
    assert message.content == "**shroud** was live on Twitch."
    [embed] = message.embeds
    assert embed["color"] == 0x6E6E78
    assert embed["title"] == "long stream"
    assert embed["url"] == video.url
    assert embed["author"]["name"] == "shroud was live"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Game"] == "VALORANT"
    assert fields["Duration"].startswith("2h 0")
    assert buttons(message) == [{"type": 2, "style": 5, "label": "Watch the VOD", "url": video.url}]
    assert message.allowed_mentions["parse"] == []
    assert role_ids(message.allowed_mentions) == []
    videos = fake_twitch.requests_to("/helix/videos")
    assert len(videos) == 1
    assert videos[0].values("user_id") == [stream.user_id]
    await harness.poll()
    await harness.restart()
    assert len(requests(fake_discord, "PATCH", message)) == 1  # dealt with once, also across restarts


async def test_no_vod_links_the_channel(world, harness, fake_discord, fake_twitch):
    guild, alerts, _log, _role = world
    await add(harness, guild, alerts, "shroud")
    fake_twitch.go_live("shroud")
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    fake_twitch.go_offline("shroud", archive=False)
    await harness.poll()
    await harness.poll()
    [embed] = message.embeds
    assert embed["url"] == "https://www.twitch.tv/shroud"
    assert embed["color"] == 0x6E6E78
    assert buttons(message)[0]["url"] == "https://www.twitch.tv/shroud"


async def test_a_new_stream_replacing_the_old_one_ends_the_old_card(world, harness, fake_discord, fake_twitch):
    guild, alerts, _log, _role = world
    await add(harness, guild, alerts, "shroud")
    fake_twitch.go_live("shroud", title="first")
    await harness.poll()
    [first] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    fake_twitch.go_live("shroud", title="second")  # a new stream id at once, never seen offline
    await harness.poll()
    await fake_discord.wait_for_messages(2, channel_id=alerts.id)
    assert first.embeds[0]["author"]["name"] == "shroud was live"
    assert [m.embeds[0]["title"] for m in announcements(fake_discord, alerts)] == ["first", "second"]


async def test_end_delete_and_keep(world, harness, fake_discord, fake_twitch):
    guild, alerts, _log, _role = world
    other = fake_discord.add_guild("Guild B")
    await fake_discord.join_guild(other)
    b_alerts = await fake_discord.create_channel(other.id, "b-alerts")
    await harness.wait_for(lambda: harness.bot.get_channel(b_alerts.id) is not None, "the new channel")
    await add(harness, guild, alerts, "shroud")
    await add(harness, other, b_alerts, "shroud")
    await run(harness, "settings", {"on_end": "delete"}, guild=guild, channel=alerts, subcommand="set")
    await run(harness, "settings", {"on_end": "keep"}, guild=other, channel=b_alerts, subcommand="set")
    fake_twitch.go_live("shroud", title="bye soon")
    await harness.poll()
    [deleted] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    [kept] = await fake_discord.wait_for_messages(1, channel_id=b_alerts.id)
    fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()
    [delete] = requests(fake_discord, "DELETE", deleted)
    assert delete.path == f"/channels/{alerts.id}/messages/{deleted.id}"
    assert deleted.deleted
    assert not kept.deleted
    assert kept.edits == []
    assert kept.embeds[0]["title"] == "bye soon"
    assert requests(fake_discord, "PATCH", kept) == []
    assert requests(fake_discord, "DELETE", kept) == []
    assert fake_twitch.count("/helix/videos") == 0  # no VOD needed when no card is edited


async def test_a_card_deleted_by_a_human_is_forgotten(world, harness, fake_discord, fake_twitch):
    guild, alerts, _log, _role = world
    await add(harness, guild, alerts, "shroud")
    fake_twitch.go_live("shroud", viewer_count=1)
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    message.deleted = True  # a moderator deleted it
    fake_twitch.update_stream("shroud", viewer_count=2)
    later(harness)
    await harness.poll()
    assert len(requests(fake_discord, "PATCH", message)) == 1  # answered 404 Unknown Message
    fake_twitch.update_stream("shroud", viewer_count=3)
    later(harness, 2 * MINUTES)
    await harness.poll()
    fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()
    assert len(requests(fake_discord, "PATCH", message)) == 1  # never again, and no new announcement
    assert announcements(fake_discord) == []


# ------------------------------------------------------------------- several channels and overrides


async def test_one_streamer_in_two_channels_with_their_own_ping(world, harness, fake_discord, fake_twitch):
    guild, alerts, log, role = world
    await add(harness, guild, alerts, "shroud", ping=str(role.id))
    reply = await add(harness, guild, log, "shroud")
    assert f"also announced in <#{alerts.id}>" in reply.text
    reply = await run(harness, "addstreamer", {"streamer": "shroud", "channel": log.id}, guild=guild, channel=log)
    assert "already announced in" in reply.text

    fake_twitch.go_live("shroud", title="hello")
    await harness.poll()
    [in_alerts] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    [in_log] = await fake_discord.wait_for_messages(1, channel_id=log.id)
    assert in_alerts.content == f"<@&{role.id}> \N{LARGE RED CIRCLE} **shroud** is live on Twitch!"
    assert role_ids(in_alerts.allowed_mentions) == [str(role.id)]
    assert in_alerts.mention_roles == [role.id]
    assert in_log.content == "\N{LARGE RED CIRCLE} **shroud** is live on Twitch!"
    assert in_log.allowed_mentions["parse"] == []
    assert role_ids(in_log.allowed_mentions) == []
    await harness.poll()
    assert len(announcements(fake_discord)) == 2

    reply = await run(harness, "live", guild=guild, channel=log)
    assert reply.text.count("hello") == 1
    assert f"<#{alerts.id}>" in reply.text
    assert f"<#{log.id}>" in reply.text
    reply = await run(harness, "streamers", guild=guild, channel=log)
    assert f"ping <@&{role.id}>" in reply.text
    assert "(1 live)" in reply.text

    # A typed name that matches both entries is ambiguous; autocomplete names each entry by channel.
    reply = await run(harness, "removestreamer", {"streamer": "shroud"}, guild=guild, channel=log)
    assert "several channels" in reply.text
    assert f"<#{log.id}>" in reply.text
    choices = await fake_discord.autocomplete(
        "removestreamer", "streamer", "shr", guild_id=guild.id, channel_id=log.id,
        permissions=fake_discord.ADMIN_PERMISSIONS,
    )  # fmt: skip
    assert [c["name"] for c in choices] == ["shroud → #alerts", "shroud → #stream-log"]
    reply = await run(harness, "removestreamer", {"streamer": choices[1]["value"]}, guild=guild, channel=log)
    assert f"still announced in <#{alerts.id}>" in reply.text
    reply = await run(harness, "removestreamer", {"streamer": "shroud", "channel": log.id}, guild=guild, channel=log)
    assert "isn't followed in" in reply.text
    assert [s.channel_id for s in await harness.db.guild_subscriptions(guild.id)] == [alerts.id]


async def test_editstreamer_changes_overrides_and_channel_without_removing(world, harness, fake_discord, fake_twitch):
    guild, alerts, log, role = world
    await add(harness, guild, alerts, "pokimane", ping="@here", message="{streamer} went live!")
    [sub] = await harness.db.guild_subscriptions(guild.id)
    assert (sub.ping, sub.message_template) == ("here", "{streamer} went live!")
    choices = await fake_discord.autocomplete(
        "editstreamer", "streamer", "poki", guild_id=guild.id, channel_id=alerts.id,
        permissions=fake_discord.ADMIN_PERMISSIONS,
    )  # fmt: skip
    assert choices == [{"name": "Pokimane", "value": f"sub:{sub.id}"}]
    reply = await run(
        harness, "editstreamer", {"streamer": choices[0]["value"], "ping": str(role.id), "channel": log.id,
                                  "message": "{ping} {streamer}: {title}"},
        guild=guild, channel=alerts,
    )  # fmt: skip
    assert "Updated **Pokimane**" in reply.text
    assert f"<#{log.id}>" in reply.text
    [edited] = await harness.db.guild_subscriptions(guild.id)
    assert (edited.id, edited.channel_id, edited.ping) == (sub.id, log.id, str(role.id))
    reply = await run(harness, "streamers", guild=guild, channel=alerts)
    assert f"ping <@&{role.id}>" in reply.text
    assert "own message" in reply.text

    fake_twitch.go_live("pokimane", title="chatting")
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=log.id)
    assert message.content == f"<@&{role.id}> Pokimane: chatting"
    assert role_ids(message.allowed_mentions) == [str(role.id)]

    # "default" goes back to the server's setting.
    await run(harness, "editstreamer", {"streamer": "pokimane", "ping": "default", "message": "default"},
              guild=guild, channel=alerts)  # fmt: skip
    [edited] = await harness.db.guild_subscriptions(guild.id)
    assert (edited.ping, edited.message_template) == (None, None)
    reply = await run(
        harness, "editstreamer", {"streamer": "pokimane", "message": "{nope}"}, guild=guild, channel=alerts
    )
    assert "Unknown placeholder `{nope}`" in reply.text
    reply = await run(harness, "editstreamer", {"streamer": "nobody"}, guild=guild, channel=alerts)
    assert "Nothing to change" in reply.text


# ------------------------------------------------------------------------------------------ game filter


async def test_game_filter_with_mid_stream_switch_announces_once(world, harness, fake_discord, fake_twitch):
    guild, alerts, log, _role = world
    choices = await fake_discord.autocomplete(
        "addstreamer", "games", "Minecraft, val", {"streamer": "shroud"}, guild_id=guild.id, channel_id=alerts.id,
        permissions=fake_discord.ADMIN_PERMISSIONS,
    )  # fmt: skip
    assert choices == [{"name": "Minecraft, VALORANT", "value": "Minecraft, VALORANT"}]
    assert fake_twitch.requests_to("/helix/search/categories")[-1].values("query") == ["val"]
    reply = await add(harness, guild, alerts, "shroud", games="minecraft, VALORANT")
    assert "only while they stream Minecraft, VALORANT" in reply.text
    await add(harness, guild, log, "shroud")  # no filter in #stream-log
    [filtered, _] = await harness.db.guild_subscriptions(guild.id)
    assert [g.name for g in filtered.games] == ["Minecraft", "VALORANT"]

    fake_twitch.go_live("shroud", title="just chatting first", game_name="Just Chatting")
    await harness.poll()
    await fake_discord.wait_for_messages(1, channel_id=log.id)
    assert announcements(fake_discord, alerts) == []
    fake_twitch.update_stream("shroud", game_name="VALORANT")
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    assert {f["name"]: f["value"] for f in message.embeds[0]["fields"]}["Game"] == "VALORANT"
    assert message.embeds[0]["thumbnail"]["url"] == "https://static-cdn.jtvnw.net/ttv-boxart/516575-144x192.jpg"
    # Out of the list and back in: the same stream is not announced again.
    fake_twitch.update_stream("shroud", game_name="Fortnite")
    await harness.poll()
    fake_twitch.update_stream("shroud", game_name="Minecraft")
    await harness.poll()
    assert len(announcements(fake_discord, alerts)) == 1
    assert len(announcements(fake_discord, log)) == 1
    # Box art comes from /helix/games once per category and is cached: the filter's categories came with it
    # when they were resolved, the others were fetched by id the first time they were streamed.
    games_requests = fake_twitch.requests_to("/helix/games")
    fetched = [game_id for r in games_requests for game_id in r.values("id")]
    assert sorted(fetched) == ["33214", "509658"]

    reply = await run(harness, "streamers", guild=guild, channel=alerts)
    assert "only Minecraft, VALORANT" in reply.text


async def test_game_filter_unknown_category_and_clearing(world, harness, fake_twitch):
    guild, alerts, _log, _role = world
    reply = await run(
        harness, "addstreamer", {"streamer": "shroud", "channel": alerts.id, "games": "Valorant, Nope Game"},
        guild=guild, channel=alerts,
    )  # fmt: skip
    assert "no category called **Nope Game**" in reply.text
    assert await harness.db.guild_subscriptions(guild.id) == []
    await add(harness, guild, alerts, "shroud", games="valorant")
    reply = await run(harness, "editstreamer", {"streamer": "shroud", "games": "any"}, guild=guild, channel=alerts)
    assert "games: any" in reply.text
    [sub] = await harness.db.guild_subscriptions(guild.id)
    assert sub.games is None
