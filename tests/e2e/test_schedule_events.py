"""End to end (issue 14, item 1, the schedule import): a streamer's Twitch schedule (`GET /helix/schedule` on the
fake Twitch) becomes upcoming events on the fake Discord, through the real client: created for the next
broadcasts, updated and cancelled as the schedule changes, read at most hourly and only for streamers of servers
that import schedules; and when the stream goes live, the live event takes the broadcast's event over."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes.discord_events import ACTIVE, CANCELED, COMPLETED, CREATE_EVENTS, SCHEDULED
from tests.fakes.fake_discord import DEFAULT_BOT_PERMISSIONS

HOUR = timedelta(hours=1)


def schedule_requests(fake_twitch):
    return [r for r in fake_twitch.requests if r.path == "/helix/schedule"]


def events_of(fake_discord, guild):
    return sorted(fake_discord.scheduled_events.in_guild(guild.id), key=lambda e: e.start)


async def run(harness, name, options=None, *, guild, channel, subcommand=None):
    kwargs = {"subcommand": subcommand} if subcommand else {}
    return await harness.command(name, options or {}, guild=guild, channel=channel, **kwargs)


async def add(harness, guild, channel, login):
    reply = await run(harness, "addstreamer", {"streamer": login, "channel": channel.id}, guild=guild, channel=channel)
    assert "Now following" in reply.text, reply.text


async def set_options(harness, guild, channel, **options):
    reply = await run(harness, "settings", options, guild=guild, channel=channel, subcommand="set")
    assert "Settings saved" in reply.text, reply.text
    return reply


def hours_later(harness, hours):
    """The import's clock `hours` ahead (its hourly refresh); Discord and Twitch keep real time."""
    harness.bot.schedule_events.clock = lambda: datetime.now(UTC) + hours * HOUR


@pytest.fixture
async def world(harness, fake_discord, fake_twitch):
    guild = fake_discord.add_guild("Guild A", bot_permissions=DEFAULT_BOT_PERMISSIONS | CREATE_EVENTS)
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    fake_twitch.add_user("shroud", display_name="shroud")
    fake_twitch.add_user("pokimane", display_name="Pokimane")
    other = fake_discord.add_guild("Guild B", bot_permissions=DEFAULT_BOT_PERMISSIONS | CREATE_EVENTS)
    harness.other_guild_id = other.id
    harness.other_channel_id = fake_discord.add_text_channel(other.id, "alerts").id
    await harness.start()
    return guild, alerts


async def test_the_schedule_becomes_upcoming_events_kept_current_and_read_hourly(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts = world
    await add(harness, guild, alerts, "shroud")
    other = fake_discord.guilds[harness.other_guild_id]
    other_alerts = fake_discord.channels[harness.other_channel_id]
    await add(harness, other, other_alerts, "pokimane")  # no server of pokimane imports schedules: never asked
    fake_twitch.add_segment("pokimane", datetime.now(UTC) + 3 * HOUR, title="not imported")
    start = (datetime.now(UTC) + 5 * HOUR).replace(microsecond=0)
    day = 24 * HOUR
    nights = [
        fake_twitch.add_segment("shroud", start + d * day, title="Ranked night", game_name="VALORANT", recurring=True)
        for d in range(4)
    ]
    charity = fake_twitch.add_segment("shroud", start + 2 * HOUR, title="Charity")
    await harness.bot.schedule_events.run_pass()
    assert schedule_requests(fake_twitch) == []  # off by default: no Twitch request at all

    reply = await set_options(harness, guild, alerts, schedule_events=True)
    assert {f["name"]: f["value"] for f in reply.embeds[0]["fields"]}["Twitch schedules"].startswith("on")
    await harness.bot.schedule_events.run_pass()
    [asked] = schedule_requests(fake_twitch)
    assert asked.values("broadcaster_id") == [fake_twitch.user("shroud").id]
    events = events_of(fake_discord, guild)
    assert [(e.name, e.start, e.status) for e in events] == [
        ("Ranked night", start, SCHEDULED),
        ("Charity", start + 2 * HOUR, SCHEDULED),
        ("Ranked night", start + day, SCHEDULED),
    ]  # the next three of the streamer
    assert events[0].description == "shroud streams on Twitch: VALORANT. Every week at this time."
    assert events[0].end == start + 2 * HOUR
    assert events[0].location == "https://www.twitch.tv/shroud"
    assert events_of(fake_discord, other) == []

    # Within the hour nothing is asked again; after it, changes on Twitch reach the events.
    await harness.bot.schedule_events.run_pass()
    assert len(schedule_requests(fake_twitch)) == 1
    fake_twitch.remove_segment("shroud", charity.id)
    nights[0].title = "Ranked night (moved)"
    nights[0].start_time += HOUR
    nights[0].end_time += HOUR
    fake_twitch.cancel_segment("shroud", nights[1].id)
    hours_later(harness, 1.1)
    await harness.bot.schedule_events.run_pass()
    assert len(schedule_requests(fake_twitch)) == 2
    assert events[0].name == "Ranked night (moved)"
    assert events[0].start == start + HOUR
    assert events[1].status == CANCELED  # removed on Twitch
    assert events[2].status == CANCELED  # cancelled on Twitch
    shown = [(e.name, e.start) for e in events_of(fake_discord, guild) if e.status == SCHEDULED]
    assert shown == [
        ("Ranked night (moved)", start + HOUR),
        ("Ranked night", start + 2 * day),
        ("Ranked night", start + 3 * day),
    ]  # the next ones take the freed places

    # Turned off: every upcoming event is cancelled, and Twitch is not asked any more.
    await set_options(harness, guild, alerts, schedule_events=False)
    hours_later(harness, 2.2)
    await harness.bot.schedule_events.run_pass()
    assert [e.status for e in events_of(fake_discord, guild) if e.status == SCHEDULED] == []
    assert len(schedule_requests(fake_twitch)) == 2
    assert fake_discord.rejected == []


async def test_twitch_failing_keeps_the_events_and_a_404_means_no_schedule(world, harness, fake_discord, fake_twitch):
    guild, alerts = world
    await add(harness, guild, alerts, "shroud")
    start = (datetime.now(UTC) + 5 * HOUR).replace(microsecond=0)
    fake_twitch.add_segment("shroud", start, title="Tonight")
    await set_options(harness, guild, alerts, schedule_events=True)
    await harness.bot.schedule_events.run_pass()
    [event] = events_of(fake_discord, guild)

    fake_twitch.fail_next("/helix/schedule", status=503, times=None)
    hours_later(harness, 1.1)
    report = await harness.bot.schedule_events.run_pass()
    assert report.fetch_failures == 1
    assert event.status == SCHEDULED  # nothing is cancelled on a guess

    fake_twitch.clear_schedule("shroud")  # Twitch's 404: the broadcaster has no schedule now
    fake_twitch.clear_failures()
    hours_later(harness, 2.2)
    report = await harness.bot.schedule_events.run_pass()
    assert report.fetched == 1
    assert event.status == CANCELED


async def test_going_live_turns_the_broadcasts_event_into_the_live_event(world, harness, fake_discord, fake_twitch):
    guild, alerts = world
    await add(harness, guild, alerts, "shroud")
    start = (datetime.now(UTC) + 30 * timedelta(minutes=1)).replace(microsecond=0)
    fake_twitch.add_segment("shroud", start, title="Planned")
    await set_options(harness, guild, alerts, schedule_events=True, live_events=True)
    await harness.bot.schedule_events.run_pass()
    [event] = events_of(fake_discord, guild)
    assert event.status == SCHEDULED

    fake_twitch.go_live("shroud", title="Early start!", game_name="VALORANT")  # half an hour early
    await harness.poll()
    await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    await harness.wait_for(lambda: event.status == ACTIVE, "the broadcast's event to be started")
    assert len(events_of(fake_discord, guild)) == 1  # taken over, not a second event
    assert event.name == "Early start!"
    assert event.description == "shroud is live on Twitch, playing VALORANT."
    await harness.bot.schedule_events.run_pass()
    assert event.status == ACTIVE  # the import leaves an adopted event alone

    fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()
    await harness.wait_for(lambda: event.status == COMPLETED, "the event to be completed")
    assert fake_discord.rejected == []


async def test_streamers_shows_each_streamers_next_broadcast_where_the_import_is_on(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts = world
    await add(harness, guild, alerts, "shroud")
    other = fake_discord.guilds[harness.other_guild_id]
    other_alerts = fake_discord.channels[harness.other_channel_id]
    await add(harness, other, other_alerts, "shroud")  # Guild B follows shroud too, but imports no schedule
    soon = (datetime.now(UTC) + 5 * HOUR).replace(microsecond=0)
    fake_twitch.add_segment("shroud", soon + 24 * HOUR, title="Later")
    fake_twitch.add_segment("shroud", soon, title="Ranked *night*", game_name="VALORANT", recurring=True)
    await set_options(harness, guild, alerts, schedule_events=True)
    await harness.bot.schedule_events.run_pass()

    listing = (await run(harness, "streamers", guild=guild, channel=alerts)).embeds[0]["description"]
    at = int(soon.timestamp())
    assert (
        f"\N{SPIRAL CALENDAR PAD} next on Twitch: <t:{at}:f> (<t:{at}:R>) — Ranked \\*night\\* · VALORANT · weekly"
        in (listing)
    )
    assert "Later" not in listing  # only the next one
    elsewhere = (await run(harness, "streamers", guild=other, channel=other_alerts)).embeds[0]["description"]
    assert "next on Twitch" not in elsewhere
