"""End to end (issue 14, items 4 and 5): title filters set with /addstreamer and /editstreamer, a card whose stream
leaves its filter (keep, edit, delete), reruns skipped, and the restart grace continuing a card across a drop."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.test_push import start_pushed
from tests.fakes.discord_interactions import InteractionRefused
from tests.fakes.fake_discord import DEFAULT_BOT_PERMISSIONS, permission_value
from twitch_notifier.models import TitleFilter


def cards(fake_discord, channel):
    """Every announcement posted in `channel`, deleted ones included."""
    return [
        m
        for m in fake_discord.messages
        if m.channel_id == channel.id and m.embeds and m.interaction is None and not m.ephemeral
    ]


def calls(fake_discord, method, message):
    return [r for r in fake_discord.requests if r.method == method and r.path.endswith(f"/messages/{message.id}")]


def shown_setting(reply, name):
    """The value /settings shows for one setting (a field of its embed)."""
    return next(f["value"] for e in reply.embeds for f in e.get("fields", []) if f["name"] == name)


def footer(message):
    return message.embeds[0].get("footer", {}).get("text")


@pytest.fixture
async def world(harness, fake_discord, fake_twitch):
    """Guild A with #alerts (the default channel) and a mentionable role, shroud on Twitch; the bot started."""
    guild = fake_discord.add_guild(
        "Guild A", bot_permissions=DEFAULT_BOT_PERMISSIONS | permission_value("mention_everyone")
    )
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    role = fake_discord.add_role(guild.id, "Live Alerts", mentionable=True)
    fake_twitch.add_user("shroud", display_name="shroud")
    await harness.start()
    await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=alerts)
    return guild, alerts, role


async def settings(harness, guild, channel, **options):
    reply = await harness.command("settings", options, guild=guild, channel=channel, subcommand="set")
    assert "Settings saved" in reply.text, reply.text
    return reply


async def follow(harness, guild, channel, **options):
    reply = await harness.command("addstreamer", {"streamer": "shroud", **options}, guild=guild, channel=channel)
    assert "Now following" in reply.text, reply.text
    return reply


async def with_grace(harness, seconds=600):
    """Restart the bot with STREAM_RESTART_GRACE_SECONDS (the harness runs without it unless a test asks)."""
    harness.settings = dataclasses.replace(harness.settings, stream_restart_grace_seconds=seconds)
    await harness.restart()


# ------------------------------------------------------------------------------------------ title filters


async def test_title_filters_are_set_shown_and_refused_politely(world, harness):
    guild, alerts, _role = world
    reply = await harness.command(
        "addstreamer",
        {"streamer": "shroud", "include_words": "ranked, just chatting", "title_regex": "(a+)+"},
        guild=guild,
        channel=alerts,
    )
    assert reply.ephemeral
    assert "may not repeat something that itself repeats" in reply.text
    assert await harness.db.guild_subscriptions(guild.id) == []  # nothing changed

    reply = await follow(
        harness,
        guild,
        alerts,
        include_words="ranked, just  chatting",
        exclude_words="rerun",
        title_regex=r"\bday \d+",
        skip_reruns=True,
    )
    assert "Title filter: title has “ranked” or “just chatting” · title lacks “rerun”" in reply.text
    [sub] = await harness.db.guild_subscriptions(guild.id)
    assert sub.title_filter == TitleFilter(("ranked", "just chatting"), ("rerun",), r"\bday \d+", True)
    reply = await harness.command("streamers", guild=guild, channel=alerts)
    assert "title has “ranked” or “just chatting”" in reply.text
    assert "no reruns" in reply.text

    reply = await harness.command(
        "editstreamer", {"streamer": "shroud", "exclude_words": " , "}, guild=guild, channel=alerts
    )
    assert "at least one word" in reply.text
    assert (await harness.db.guild_subscriptions(guild.id))[0].title_filter == sub.title_filter
    reply = await harness.command(
        "editstreamer",
        {"streamer": "shroud", "include_words": "none", "title_regex": "none", "skip_reruns": False},
        guild=guild,
        channel=alerts,
    )
    assert "title filter: title lacks “rerun”" in reply.text
    [sub] = await harness.db.guild_subscriptions(guild.id)
    assert sub.title_filter == TitleFilter(exclude=("rerun",))
    reply = await harness.command("editstreamer", {"streamer": "shroud", "exclude_words": "none"}, guild=guild,
                                  channel=alerts)  # fmt: skip
    assert "title filter: none" in reply.text
    assert (await harness.db.guild_subscriptions(guild.id))[0].title_filter is None


async def test_a_title_change_makes_the_stream_eligible_and_it_is_announced_once(world, harness, fake_twitch,
                                                                               fake_discord):  # fmt: skip
    guild, alerts, _role = world
    await follow(harness, guild, alerts, include_words="ranked", exclude_words="rerun")
    fake_twitch.go_live("shroud", title="chill morning")
    await harness.poll()
    assert cards(fake_discord, alerts) == []
    fake_twitch.update_stream("shroud", title="RANKED grind!")
    await harness.poll()
    [card] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    assert card.embeds[0]["title"] == "RANKED grind!"
    # Out of the filter and back: the same stream is not announced again.
    fake_twitch.update_stream("shroud", title="ranked (rerun)")
    await harness.poll()
    fake_twitch.update_stream("shroud", title="ranked again")
    await harness.poll()
    assert len(cards(fake_discord, alerts)) == 1
    assert calls(fake_discord, "DELETE", card) == []  # keep, the default: the card stays as it is


@pytest.mark.parametrize("choice", ["keep", "edit", "delete"])
async def test_a_card_whose_stream_leaves_the_filter_follows_the_servers_choice(world, harness, fake_twitch,
                                                                              fake_discord, choice):  # fmt: skip
    guild, alerts, role = world
    reply = await settings(harness, guild, alerts, on_filter_exit=choice, ping=str(role.id))
    assert "When a stream leaves its filter" in reply.text
    await follow(harness, guild, alerts, games="VALORANT")
    fake_twitch.go_live("shroud", title="ranked", game_name="VALORANT")
    await harness.poll()
    [card] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    assert card.content.startswith(f"<@&{role.id}>")

    fake_twitch.update_stream("shroud", game_name="Minecraft")
    await harness.poll()
    if choice == "keep":
        assert calls(fake_discord, "PATCH", card) == calls(fake_discord, "DELETE", card) == []
    elif choice == "edit":
        [patch] = calls(fake_discord, "PATCH", card)
        assert card.content == "**shroud** is still live, but no longer VALORANT."
        assert card.embeds[0]["author"]["name"] == "shroud · no longer matches"
        assert card.embeds[0]["color"] == 0x6E6E78
        assert patch.json["allowed_mentions"]["parse"] == []
        assert "roles" not in patch.json["allowed_mentions"]
    else:
        [_delete] = calls(fake_discord, "DELETE", card)
        assert card.deleted
    await harness.poll()  # dealt with once
    assert len(calls(fake_discord, "PATCH", card)) == (1 if choice == "edit" else 0)

    fake_twitch.update_stream("shroud", game_name="VALORANT")  # back in the filter
    await harness.poll()
    assert len(cards(fake_discord, alerts)) == 1  # never a second message for the stream
    if choice == "edit":
        [_left, back] = calls(fake_discord, "PATCH", card)
        assert card.embeds[0]["color"] == 0x9146FF
        assert {f["name"]: f["value"] for f in card.embeds[0]["fields"]}["Game"] == "VALORANT"
        assert [str(r) for r in back.json["allowed_mentions"]["roles"]] == [str(role.id)]  # edits notify nobody
    reply = await harness.command("settings", guild=guild, channel=alerts, subcommand="show")
    assert {"keep": "keep the card as it is", "edit": "no longer matches", "delete": "delete the card"}[choice] in (
        reply.text
    )


async def test_a_title_that_changes_away_edits_the_card_and_removing_the_filter_brings_it_back(
    world, harness, fake_twitch, fake_discord
):
    guild, alerts, _role = world
    await settings(harness, guild, alerts, on_filter_exit="edit")
    await follow(harness, guild, alerts, include_words="ranked")
    fake_twitch.go_live("shroud", title="ranked grind")
    await harness.poll()
    [card] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    fake_twitch.update_stream("shroud", title="chill chat")
    await harness.poll()
    assert card.content == "**shroud** is still live, but title no longer matches the filter."
    assert card.embeds[0]["title"] == "chill chat"
    await harness.command("editstreamer", {"streamer": "shroud", "include_words": "none"}, guild=guild, channel=alerts)
    await harness.poll()
    assert card.content == "\N{LARGE RED CIRCLE} **shroud** is live on Twitch!"
    assert card.embeds[0]["color"] == 0x9146FF
    assert len(cards(fake_discord, alerts)) == 1


async def test_a_rerun_is_skipped_when_the_entry_says_so(harness, fake_discord, fake_twitch):
    guild, alerts = await start_pushed(harness, fake_discord, fake_twitch)
    reply = await harness.command("editstreamer", {"streamer": "shroud", "skip_reruns": True}, guild=guild,
                                  channel=alerts)  # fmt: skip
    assert "no reruns" in reply.text
    fake_twitch.go_live("shroud", title="yesterday's stream", online_type="rerun")
    await harness.wait_for(lambda: harness.bot.push.handler.stats.online >= 1, "the rerun's go-live")
    stream = fake_twitch.streams[fake_twitch.user("shroud").id]
    await harness.eventually(
        lambda: _live_type(harness, stream.id), "the rerun to be recorded as one"
    )  # fmt: skip
    await harness.poll()
    assert cards(fake_discord, alerts) == []
    fake_twitch.go_live("shroud", title="live for real")  # a new stream, type live
    [card] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    assert card.embeds[0]["title"] == "live for real"


async def _live_type(harness, stream_id):
    live = await harness.db.live_streams()
    return any(s.stream_id == stream_id and s.stream_type == "rerun" for s in live.values())


# ------------------------------------------------------------------------------------------ restart grace


async def announce_and_end(harness, fake_discord, fake_twitch, alerts, **live):
    """shroud goes live and is announced, then the stream drops and the card is closed (two polls)."""
    fake_twitch.go_live("shroud", **live)
    await harness.poll()
    [card] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()
    return card


async def test_a_restart_within_the_grace_continues_the_card_without_a_ping(world, harness, fake_discord,
                                                                          fake_twitch):  # fmt: skip
    guild, alerts, role = world
    await with_grace(harness)
    await settings(harness, guild, alerts, ping=str(role.id))
    await follow(harness, guild, alerts)
    card = await announce_and_end(harness, fake_discord, fake_twitch, alerts, title="first half")
    assert card.embeds[0]["author"]["name"] == "shroud was live"
    edits_before = len(calls(fake_discord, "PATCH", card))

    fake_twitch.go_live("shroud", title="back after a drop")  # a new stream id, minutes later
    await harness.poll()
    assert cards(fake_discord, alerts) == [card]  # no new message
    reconnect = calls(fake_discord, "PATCH", card)[edits_before]
    assert reconnect.json["allowed_mentions"]["parse"] == []
    assert "roles" not in reconnect.json["allowed_mentions"]
    assert "<@&" not in reconnect.json["content"]
    assert card.content == "\N{LARGE RED CIRCLE} **shroud** is live on Twitch!"
    assert card.embeds[0]["title"] == "back after a drop"
    assert card.embeds[0]["color"] == 0x9146FF
    assert footer(card) == "Twitch · reconnected"
    await harness.poll()
    assert len(calls(fake_discord, "PATCH", card)) == edits_before + 1

    # Its end edits the same card into "was live" again; statistics keep the two streams apart.
    fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()
    assert card.embeds[0]["author"]["name"] == "shroud was live"
    assert len(cards(fake_discord, alerts)) == 1
    user_id = fake_twitch.user("shroud").id
    assert len(await harness.db.streamer_history(user_id, None)) == 2


async def test_after_the_grace_a_new_stream_is_a_new_card(world, harness, fake_discord, fake_twitch):
    guild, alerts, role = world
    await with_grace(harness, 60)
    await settings(harness, guild, alerts, ping=str(role.id))
    await follow(harness, guild, alerts)
    first = await announce_and_end(harness, fake_discord, fake_twitch, alerts)
    fake_twitch.go_live("shroud", title="next day", started_at=datetime.now(UTC) + timedelta(minutes=2))
    await harness.poll()
    [_first, second] = await fake_discord.wait_for_messages(2, channel_id=alerts.id)
    assert second.content.startswith(f"<@&{role.id}>")
    assert footer(second) == "Twitch"
    assert first.embeds[0]["author"]["name"] == "shroud was live"


async def test_a_server_grace_of_zero_turns_it_off(world, harness, fake_discord, fake_twitch):
    guild, alerts, _role = world
    await with_grace(harness)
    reply = await settings(harness, guild, alerts, restart_grace=0)
    assert shown_setting(reply, "Restart grace") == "off"
    with pytest.raises(InteractionRefused, match="above max_value"):  # Discord itself keeps it in range
        await harness.command("settings", {"restart_grace": 86_401}, guild=guild, channel=alerts, subcommand="set")
    assert (await harness.db.get_guild_settings(guild.id)).restart_grace_seconds == 0
    await follow(harness, guild, alerts)
    await announce_and_end(harness, fake_discord, fake_twitch, alerts)
    fake_twitch.go_live("shroud", title="again")
    await harness.poll()
    await fake_discord.wait_for_messages(2, channel_id=alerts.id)
    reply = await harness.command("settings", {"setting": "restart_grace_seconds"}, guild=guild, channel=alerts,
                                  subcommand="reset")  # fmt: skip
    assert shown_setting(reply, "Restart grace") == "10 min (the bot's default)"


async def test_a_restart_of_the_bot_inside_the_grace_still_continues_the_card(world, harness, fake_discord,
                                                                            fake_twitch):  # fmt: skip
    guild, alerts, _role = world
    await with_grace(harness)
    await follow(harness, guild, alerts)
    card = await announce_and_end(harness, fake_discord, fake_twitch, alerts)
    await harness.restart()
    fake_twitch.go_live("shroud", title="both came back")
    await harness.poll()
    assert cards(fake_discord, alerts) == [card]
    assert footer(card) == "Twitch · reconnected"


async def test_a_card_deleted_at_the_end_is_posted_anew_without_a_ping(world, harness, fake_discord, fake_twitch):
    guild, alerts, role = world
    await with_grace(harness)
    await settings(harness, guild, alerts, ping=str(role.id), on_end="delete")
    await follow(harness, guild, alerts)
    first = await announce_and_end(harness, fake_discord, fake_twitch, alerts)
    assert first.deleted
    fake_twitch.go_live("shroud", title="reconnected")
    await harness.poll()
    [_first, second] = cards(fake_discord, alerts)
    assert second.content == "\N{LARGE RED CIRCLE} **shroud** is live on Twitch!"
    assert second.allowed_mentions["parse"] == []
    assert "roles" not in second.allowed_mentions
    assert second.mention_roles == []
    assert footer(second) == "Twitch · reconnected"


async def test_pushed_offline_then_online_continues_the_card(harness, fake_discord, fake_twitch):
    harness.settings = dataclasses.replace(harness.settings, stream_restart_grace_seconds=600)
    _guild, alerts = await start_pushed(harness, fake_discord, fake_twitch)
    fake_twitch.go_live("shroud", title="pushed")
    [card] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    fake_twitch.go_offline("shroud")
    await harness.wait_for(lambda: card.embeds[0]["author"]["name"] == "shroud was live", "the was-live edit")
    fake_twitch.go_live("shroud", title="pushed again")
    await harness.wait_for(lambda: footer(card) == "Twitch · reconnected", "the card to come back")
    assert cards(fake_discord, alerts) == [card]
