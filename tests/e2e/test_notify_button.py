"""End to end (issue 14, item 2): the "🔔 Notify me" button on live cards and the per-streamer opt-in role.

A press creates the role on demand (below the bot's), gives it, a second press takes it; the next announcement
pings that role and nothing else; buttons posted before a restart still work; without Manage Roles the member is
told so and nothing changes; the ping throttle keeps a streamer's next stream within N hours silent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.harness import BotHarness
from tests.fakes.fake_discord import DEFAULT_BOT_PERMISSIONS, permission_value
from twitch_notifier.core.opt_in import notify_custom_id

MANAGE_ROLES = permission_value("manage_roles")


def cards(fake_discord, channel):
    return [m for m in fake_discord.messages_in(channel.id) if m.embeds and m.interaction is None and not m.deleted]


def custom_ids(message):
    return [b.get("custom_id") for row in message.components for b in row["components"]]


def opt_in_roles(guild, name="shroud live"):
    return [r for r in guild.roles.values() if r.name == name]


def role_requests(fake_discord):
    return [r for r in fake_discord.requests if "/roles" in r.path]


@pytest.fixture
async def world(harness, fake_discord, fake_twitch):
    guild = fake_discord.add_guild("Guild A", bot_permissions=DEFAULT_BOT_PERMISSIONS | MANAGE_ROLES)
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    user = fake_twitch.add_user("shroud", display_name="shroud")
    viewer = fake_discord.add_user("viewer")
    await harness.start()
    return guild, alerts, user.id, viewer


async def setup_button(harness, guild, alerts, **settings):
    reply = await harness.command(
        "addstreamer", {"streamer": "shroud", "channel": alerts.id}, guild=guild, channel=alerts
    )
    assert "Now following" in reply.text, reply.text
    reply = await harness.command(
        "settings", {"notify_button": True, **settings}, guild=guild, channel=alerts, subcommand="set"
    )
    assert "Settings saved" in reply.text, reply.text
    return reply


async def go_live(harness, fake_discord, fake_twitch, alerts, count, title="ranked", **stream):
    fake_twitch.go_live("shroud", title=title, game_name="VALORANT", viewer_count=100, **stream)
    await harness.poll()
    found = await fake_discord.wait_for_messages(count, channel_id=alerts.id)
    return [m for m in found if m.embeds][-1]


async def end_stream(harness, fake_twitch):
    fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()  # OFFLINE_AFTER_POLLS = 2


async def press(harness, fake_discord, card, user_id, viewer):
    interaction = await fake_discord.press_button(card, notify_custom_id(user_id), user_id=viewer.id)
    return await interaction.wait_reply(timeout=5)


async def test_press_creates_the_role_gives_it_and_a_second_press_takes_it(world, harness, fake_discord, fake_twitch):
    guild, alerts, user_id, viewer = world
    reply = await setup_button(harness, guild, alerts)
    assert "Notify me" in reply.text
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)
    assert custom_ids(card) == [None, f"notify:{user_id}"]  # the Watch link, then the button

    first = await press(harness, fake_discord, card, user_id, viewer)
    assert first.ephemeral
    assert not first.deferred
    assert "You'll be pinged when **shroud** goes live" in first.text
    [role] = opt_in_roles(guild)
    bot_role = next(r for r in guild.roles.values() if r.bot_id == fake_discord.bot_user_id)
    assert (role.position, role.permissions, role.mentionable) == (1, 0, True)
    assert role.position < bot_role.position
    assert role.id in fake_discord.member_role_ids(guild.id, viewer.id)
    assert await harness.db.notify_roles(guild.id) == {user_id: role.id}
    assert first.payload["mention_roles"] == []  # the answer names the role without pinging it

    await harness.wait_for(lambda: harness.bot.get_guild(guild.id).get_role(role.id) is not None, "the role cached")
    second = await press(harness, fake_discord, card, user_id, viewer)
    assert second.ephemeral
    assert "You won't be pinged anymore" in second.text
    assert role.id not in fake_discord.member_role_ids(guild.id, viewer.id)
    assert opt_in_roles(guild) == [role]  # kept for the next press, not created again
    assert [r.method for r in role_requests(fake_discord)] == ["POST", "PUT", "DELETE"]


async def test_next_announcement_pings_the_opt_in_role_only_and_the_ended_card_drops_the_button(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts, user_id, viewer = world
    await setup_button(harness, guild, alerts, ping="@everyone")  # the button's role replaces @everyone
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)
    assert "@everyone" not in card.content  # nobody opted in yet: nobody is pinged
    assert (card.mention_everyone, card.mention_roles) == (False, [])
    await press(harness, fake_discord, card, user_id, viewer)
    [role] = opt_in_roles(guild)

    await end_stream(harness, fake_twitch)
    await fake_discord.wait_until(lambda: card.edits, what="the ended card")
    assert all(custom_id is None for custom_id in custom_ids(card))
    assert "was live" in card.text

    second = await go_live(harness, fake_discord, fake_twitch, alerts, 2, title="@everyone again")
    assert second.content.startswith(f"<@&{role.id}> ")
    assert "@everyone" not in second.content.replace("@\u200beveryone", "")
    assert second.allowed_mentions["parse"] == []
    assert [str(r) for r in second.allowed_mentions["roles"]] == [str(role.id)]
    assert (second.mention_roles, second.mention_everyone) == ([role.id], False)
    assert custom_ids(second) == [None, f"notify:{user_id}"]


async def test_the_button_works_after_a_restart(world, harness, fake_discord, fake_twitch):
    guild, alerts, user_id, viewer = world
    await setup_button(harness, guild, alerts)
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)
    await harness.restart()
    answer = await press(harness, fake_discord, card, user_id, viewer)
    assert "You'll be pinged" in answer.text
    [role] = opt_in_roles(guild)
    assert role.id in fake_discord.member_role_ids(guild.id, viewer.id)


async def test_without_manage_roles_the_member_is_told_and_nothing_changes(harness, fake_discord, fake_twitch):
    guild = fake_discord.add_guild("Guild B")  # the invite's permissions: no Manage Roles
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    user = fake_twitch.add_user("shroud", display_name="shroud")
    viewer = fake_discord.add_user("viewer")
    await harness.start()
    reply = await setup_button(harness, guild, alerts)
    assert "Manage Roles" in reply.text  # the admin is warned when turning it on
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)
    before = fake_discord.member_role_ids(guild.id, viewer.id)
    answer = await press(harness, fake_discord, card, user.id, viewer)
    assert answer.ephemeral
    assert "Manage Roles" in answer.text
    assert "nothing was changed" in answer.text
    assert role_requests(fake_discord) == []
    assert opt_in_roles(guild) == []
    assert fake_discord.member_role_ids(guild.id, viewer.id) == before
    listing = await harness.command("streamers", guild=guild, channel=alerts, admin=False)
    assert "Manage Roles" in listing.text


async def test_an_opt_in_role_above_the_bots_is_explained_and_nothing_changes(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts, user_id, viewer = world
    await setup_button(harness, guild, alerts)
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)
    above = fake_discord.add_role(guild.id, "shroud live", mentionable=True)  # a new role sits above the bot's
    await harness.db.set_notify_role(guild.id, user_id, above.id)
    cached = harness.bot.get_guild(guild.id)
    await harness.wait_for(lambda: cached.get_role(above.id) is not None, "the role in the cache")
    before = fake_discord.member_role_ids(guild.id, viewer.id)
    answer = await press(harness, fake_discord, card, user_id, viewer)
    assert answer.ephemeral
    assert "My role is below this streamer's opt-in role" in answer.text
    assert "nothing was changed" in answer.text
    assert role_requests(fake_discord) == []
    assert fake_discord.member_role_ids(guild.id, viewer.id) == before


async def test_a_role_deleted_by_a_human_is_created_again(world, harness, fake_discord, fake_twitch):
    guild, alerts, user_id, viewer = world
    await setup_button(harness, guild, alerts)
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)
    await press(harness, fake_discord, card, user_id, viewer)
    [old] = opt_in_roles(guild)
    fake_discord.delete_role(guild.id, old.id)
    await harness.eventually(lambda: _no_roles(harness, guild), "the deleted role forgotten")
    answer = await press(harness, fake_discord, card, user_id, viewer)
    assert "You'll be pinged" in answer.text
    [new] = opt_in_roles(guild)
    assert new.id != old.id
    assert await harness.db.notify_roles(guild.id) == {user_id: new.id}
    assert new.id in fake_discord.member_role_ids(guild.id, viewer.id)


async def _no_roles(harness, guild):
    return await harness.db.notify_roles(guild.id) == {}


async def test_throttle_keeps_the_next_stream_within_n_hours_silent(world, harness, fake_discord, fake_twitch):
    guild, alerts, user_id, viewer = world
    reply = await setup_button(harness, guild, alerts, ping_throttle=3)
    assert "at most one ping per streamer every 3 h" in reply.text
    first = await go_live(harness, fake_discord, fake_twitch, alerts, 1)
    await press(harness, fake_discord, first, user_id, viewer)
    [role] = opt_in_roles(guild)
    await end_stream(harness, fake_twitch)

    pinged = await go_live(harness, fake_discord, fake_twitch, alerts, 2)
    assert pinged.mention_roles == [role.id]
    await end_stream(harness, fake_twitch)

    harness.clock.advance(2 * 3600)  # two hours after the ping: within the throttle
    silent = await go_live(harness, fake_discord, fake_twitch, alerts, 3)
    assert f"<@&{role.id}>" not in silent.content
    assert silent.mention_roles == []
    assert custom_ids(silent) == [None, f"notify:{user_id}"]  # still a card with the button
    await end_stream(harness, fake_twitch)
    last_ping = (await harness.db.last_pings(guild.id))[user_id]
    # Two hours ago (stored to the second): the held-back stream is not a ping.
    assert abs(harness.clock.now() - timedelta(hours=2) - last_ping.pinged_at) < timedelta(seconds=5)
    held_until = int((last_ping.pinged_at + timedelta(hours=3)).timestamp())
    diagnosis = (await harness.command("diagnose", guild=guild, channel=alerts)).text
    assert f"\N{HOURGLASS WITH FLOWING SAND} a new stream pings nobody until <t:{held_until}:R>" in diagnosis
    test = await harness.command("testalert", {"streamer": "shroud"}, guild=guild, channel=alerts)
    assert f"pings nobody until <t:{held_until}:R> (the ping throttle)." in test.text, test.text

    harness.clock.advance(3600 + 60)  # over three hours since the last ping
    assert "pings nobody until" not in (await harness.command("diagnose", guild=guild, channel=alerts)).text
    again = await go_live(harness, fake_discord, fake_twitch, alerts, 4)
    assert again.mention_roles == [role.id]
    assert len(cards(fake_discord, alerts)) == 5  # four announcements and the test alert


async def test_settings_show_lists_the_button_and_the_throttle_off_by_default(world, harness):
    guild, alerts, _user_id, _viewer = world
    shown = await harness.command("settings", guild=guild, channel=alerts, subcommand="show")
    fields = {f["name"]: f["value"] for f in shown.embeds[0]["fields"]}
    assert fields["\N{BELL} Notify me button"] == "off"
    assert fields["Ping throttle"] == "off"
    await harness.command(
        "settings", {"notify_button": True, "ping_throttle": 6}, guild=guild, channel=alerts, subcommand="set"
    )
    reset = await harness.command(
        "settings", {"setting": "ping_throttle_hours"}, guild=guild, channel=alerts, subcommand="reset"
    )
    fields = {f["name"]: f["value"] for f in reset.embeds[0]["fields"]}
    assert fields["Ping throttle"] == "off"
    assert fields["\N{BELL} Notify me button"].startswith("on")


async def test_an_entry_can_turn_the_button_on_for_itself(world, harness, fake_discord, fake_twitch):
    guild, alerts, user_id, viewer = world
    await harness.command("addstreamer", {"streamer": "shroud", "channel": alerts.id}, guild=guild, channel=alerts)
    edited = await harness.command(
        "editstreamer", {"streamer": "shroud", "notify_button": "on"}, guild=guild, channel=alerts
    )
    assert "Notify me button on" in edited.text, edited.text
    listing = await harness.command("streamers", guild=guild, channel=alerts, admin=False)
    assert "\N{BELL} Notify me button on" in listing.text
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)  # the server's setting is off
    assert custom_ids(card) == [None, f"notify:{user_id}"]
    assert "You'll be pinged" in (await press(harness, fake_discord, card, user_id, viewer)).text

    await harness.command(
        "editstreamer", {"streamer": "shroud", "notify_button": "default"}, guild=guild, channel=alerts
    )
    await harness.wait_for(lambda: harness.bot.get_guild(guild.id).get_role(opt_in_roles(guild)[0].id), "role cached")
    # Off again: a member who has the role may still drop it, nobody may take it.
    assert "won't be pinged" in (await press(harness, fake_discord, card, user_id, viewer)).text
    refused = await press(harness, fake_discord, card, user_id, viewer)
    assert "turned the \N{BELL} Notify me button off" in refused.text


async def test_a_slow_discord_gets_a_deferred_answer(world, harness, fake_discord, fake_twitch):
    guild, alerts, user_id, viewer = world
    await setup_button(harness, guild, alerts)
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)
    harness.bot.get_cog("NotifyButton").answer_within = 0.05  # Discord's 3 s, scaled down
    fake_discord.hang_next("POST", r"/guilds/\d+/roles")
    interaction = await fake_discord.press_button(card, notify_custom_id(user_id), user_id=viewer.id)
    await fake_discord.wait_until(lambda: interaction.callbacks, what="the deferral")
    assert interaction.callbacks[0]["type"] == 5
    assert interaction.callbacks[0]["data"]["flags"] & 64
    fake_discord.release_hangs()
    answer = await interaction.wait_reply(timeout=5)
    assert answer.deferred
    assert answer.ephemeral
    assert "You'll be pinged" in answer.text


async def test_a_restart_within_the_grace_pings_the_role_no_second_time(world, harness, fake_discord, fake_twitch):
    guild, alerts, user_id, viewer = world
    await setup_button(harness, guild, alerts, restart_grace=600)
    # Started a while ago (Twitch's times are to the second): the stream after it is clearly a later one.
    card = await go_live(
        harness, fake_discord, fake_twitch, alerts, 1, started_at=datetime.now(UTC) - timedelta(minutes=10)
    )
    await press(harness, fake_discord, card, user_id, viewer)  # a new post of this streamer would ping the role now
    await end_stream(harness, fake_twitch)
    await fake_discord.wait_until(lambda: card.edits, what="the ended card")

    fake_twitch.go_live("shroud", title="back again", game_name="VALORANT", viewer_count=100)  # a new stream id
    await harness.poll()
    await fake_discord.wait_until(lambda: "back again" in card.text, what="the card continued")
    assert cards(fake_discord, alerts) == [card]  # no new message, so no ping
    assert card.mention_roles == []


async def test_a_card_back_in_its_filter_is_drawn_as_posted_with_its_button(world, harness, fake_discord, fake_twitch):
    guild, alerts, user_id, _viewer = world
    await setup_button(harness, guild, alerts, ping="@everyone", on_filter_exit="edit")
    edited = await harness.command("editstreamer", {"streamer": "shroud", "games": "VALORANT"}, guild=guild,
                                   channel=alerts)  # fmt: skip
    assert "VALORANT" in edited.text, edited.text
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)  # nobody opted in: no ping
    posted = card.content
    fake_twitch.update_stream("shroud", game_name="Minecraft")
    await harness.poll()
    assert "no longer VALORANT" in card.content
    assert custom_ids(card) == [None]
    fake_twitch.update_stream("shroud", game_name="VALORANT")
    await harness.poll()
    # Drawn as its live updates draw it: not with @everyone (the button's role replaces it), with the button.
    assert card.content == posted
    assert custom_ids(card) == [None, f"notify:{user_id}"]
    assert card.embeds[0]["color"] == 0x9146FF


@pytest.fixture
async def pg_harness(fake_discord, fake_twitch, tmp_path, postgres_url, error_logs):
    """A bot keeping its data in PostgreSQL (DATABASE_URL), as a cluster's processes do."""
    harness = BotHarness(fake_discord, fake_twitch, tmp_path / "unused.db", database_url=postgres_url)
    yield harness
    await harness.stop()


async def test_on_postgresql_a_press_and_the_next_ping(pg_harness, fake_discord, fake_twitch):
    harness = pg_harness
    guild = fake_discord.add_guild("Guild P", bot_permissions=DEFAULT_BOT_PERMISSIONS | MANAGE_ROLES)
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    user = fake_twitch.add_user("shroud", display_name="shroud")
    viewer = fake_discord.add_user("viewer")
    await harness.start()
    await setup_button(harness, guild, alerts, ping_throttle=1)
    card = await go_live(
        harness, fake_discord, fake_twitch, alerts, 1, started_at=datetime.now(UTC) - timedelta(hours=1)
    )
    assert "You'll be pinged" in (await press(harness, fake_discord, card, user.id, viewer)).text
    [role] = opt_in_roles(guild)
    await end_stream(harness, fake_twitch)
    second = await go_live(harness, fake_discord, fake_twitch, alerts, 2)
    assert second.mention_roles == [role.id]
    assert await harness.db.notify_roles(guild.id) == {user.id: role.id}


async def test_presses_at_the_same_moment_make_one_role(world, harness, fake_discord, fake_twitch):
    """The reach bench saw 100 roles for 50 (server, streamer) pairs: two presses at once each created one."""
    guild, alerts, user_id, viewer = world
    others = [fake_discord.add_user(f"viewer{i}") for i in range(3)]
    await setup_button(harness, guild, alerts)
    card = await go_live(harness, fake_discord, fake_twitch, alerts, 1)
    replies = await asyncio.gather(*(press(harness, fake_discord, card, user_id, v) for v in [viewer, *others]))
    assert all("You'll be pinged" in r.text for r in replies), [r.text for r in replies]
    [role] = opt_in_roles(guild)
    assert await harness.db.notify_roles(guild.id) == {user_id: role.id}
    for member in [viewer, *others]:
        assert role.id in fake_discord.member_role_ids(guild.id, member.id)
