"""End to end: stream history through the shipped bot. The ended card's recap (peak and average viewers, the
category timeline linked into the VOD), /stats streamer and /stats server with their chart attached as Discord
attaches files, the friendly answers when there is nothing to show, and the history surviving a restart."""

import struct
from datetime import UTC, datetime, timedelta

import pytest

from twitch_notifier.rendering.charts import MAX_CHART_BYTES
from twitch_notifier.twitch.models import TwitchStream

TEN_MINUTES = 600
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def world(harness, fake_discord, fake_twitch):
    guild = fake_discord.add_guild("Guild A")
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    fake_twitch.add_user("shroud", display_name="shroud")
    fake_twitch.add_user("pokimane", display_name="Pokimane")
    await harness.start()
    return guild, alerts


async def follow(harness, guild, channel, login):
    reply = await harness.command(
        "addstreamer", {"streamer": login, "channel": channel.id}, guild=guild, channel=channel
    )
    assert "Now following" in reply.text, reply.text


async def stats(harness, guild, channel, subcommand, options=None, *, admin=False):
    return await harness.command(
        "stats", options or {}, guild=guild, channel=channel, subcommand=subcommand, admin=admin
    )


async def a_stream_with_two_categories(harness, fake_discord, fake_twitch, alerts):
    """Live two hours already when first seen with 100 viewers in VALORANT, then 300 viewers in Just Chatting ten
    minutes later, 200 another ten minutes on, then offline: ended at the last sighting, 2 h 20 min in."""
    fake_twitch.go_live(
        "shroud", title="two games", game_name="VALORANT", viewer_count=100,
        started_at=harness.clock.now() - timedelta(hours=2),
    )  # fmt: skip
    await harness.poll()
    [card] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    harness.clock.advance(TEN_MINUTES)
    fake_twitch.update_stream("shroud", game_name="Just Chatting", viewer_count=300)
    await harness.poll()
    harness.clock.advance(TEN_MINUTES)
    fake_twitch.update_stream("shroud", viewer_count=200)
    await harness.poll()
    video = fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()
    await fake_discord.wait_until(lambda: card.embeds[0]["author"]["name"].endswith(" was live"), what="the ended card")
    return card, video


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    return struct.unpack(">II", data[16:24])


# ------------------------------------------------------------------------------------------ the recap


async def test_the_ended_card_recaps_viewers_and_links_each_category_into_the_vod(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts = world
    await follow(harness, guild, alerts, "shroud")
    card, video = await a_stream_with_two_categories(harness, fake_discord, fake_twitch, alerts)
    [embed] = card.embeds
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Duration"] == "2h 20m"
    assert fields["Peak viewers"] == "300"
    # Time-weighted: 100 viewers for ten minutes, 300 for ten; the last count, seen at the very end, weighs nothing.
    assert fields["Average viewers"] == "200"
    assert fields["Categories"] == (
        f"[0:00:00]({video.url}?t=0h0m0s) VALORANT · 2h 10m\n[2:10:00]({video.url}?t=2h10m0s) Just Chatting · 10m"
    )
    assert embed["url"] == video.url


async def test_without_a_vod_the_timeline_has_no_links_and_one_category_has_none(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts = world
    await follow(harness, guild, alerts, "shroud")
    fake_twitch.go_live("shroud", game_name="VALORANT", viewer_count=50)
    await harness.poll()
    [card] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    harness.clock.advance(TEN_MINUTES)
    fake_twitch.update_stream("shroud", game_name="Just Chatting", viewer_count=70)
    await harness.poll()
    fake_twitch.go_offline("shroud", archive=False)
    await harness.poll()
    await harness.poll()
    await fake_discord.wait_until(lambda: card.embeds[0]["color"] == 0x6E6E78, what="the ended card")
    fields = {f["name"]: f["value"] for f in card.embeds[0]["fields"]}
    assert fields["Categories"].startswith("`0:00:00` VALORANT · ")
    assert "`0:10:" in fields["Categories"]
    assert "](" not in fields["Categories"]
    assert fields["Peak viewers"] == "70"

    # A stream in one category: its Game field says it all, there is no timeline.
    fake_twitch.go_live("shroud", game_name="VALORANT", viewer_count=10)
    await harness.poll()
    [_, second] = await fake_discord.wait_for_messages(2, channel_id=alerts.id)
    fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()
    await fake_discord.wait_until(lambda: second.embeds[0]["color"] == 0x6E6E78, what="the second ended card")
    names = [f["name"] for f in second.embeds[0]["fields"]]
    assert names == ["Game", "Duration", "Peak viewers", "Average viewers"]


# ------------------------------------------------------------------------------------------ /stats streamer


async def test_stats_is_a_group_everyone_may_use_in_servers(world, fake_discord):
    [command] = [c for c in fake_discord.synced_commands if c["name"] == "stats"]
    assert command.get("default_member_permissions") is None
    assert command["contexts"] == [0]
    subcommands = {o["name"]: o for o in command["options"]}
    assert set(subcommands) == {"streamer", "server"}
    period = {o["name"]: o for o in subcommands["streamer"]["options"]}["period"]
    assert [c["value"] for c in period["choices"]] == ["7d", "30d", "90d", "all"]


async def test_stats_streamer_replies_privately_with_the_numbers_and_a_png_chart(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts = world
    await follow(harness, guild, alerts, "shroud")
    await a_stream_with_two_categories(harness, fake_discord, fake_twitch, alerts)
    reply = await stats(harness, guild, alerts, "streamer", {"streamer": "shroud"})  # a member, not an admin
    assert reply.ephemeral
    assert reply.deferred
    [embed] = reply.embeds
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Streams"] == "1"
    assert fields["Hours live"] == "2.3 h"
    assert fields["Average length"] == "2h 20m"
    assert fields["Peak viewers"] == "300"
    assert fields["Average viewers"] == "200"
    assert fields["Top categories"] == "VALORANT · 2.2 h (93%)\nJust Chatting · 0.2 h (7%)"
    assert "peak 300 · average 200" in fields["Last stream"]
    assert "the last 30 days" in embed["description"]
    assert "UTC" in embed["description"]
    [attachment] = reply.payload["attachments"]
    assert attachment["filename"] == "stats_streamer_shroud_30d.png"
    assert embed["image"]["url"] == "attachment://stats_streamer_shroud_30d.png"
    assert attachment["content_type"] == "image/png"
    assert attachment["ephemeral"] is True
    chart = fake_discord.attachment_bytes(attachment)
    assert png_size(chart) == (attachment["width"], attachment["height"]) == (1200, 800)
    assert attachment["size"] == len(chart) <= MAX_CHART_BYTES


async def test_stats_can_be_posted_publicly_and_a_second_ask_uses_the_cached_chart(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts = world
    await follow(harness, guild, alerts, "shroud")
    await a_stream_with_two_categories(harness, fake_discord, fake_twitch, alerts)
    cog = harness.bot.get_cog("StatsCommands")
    first = await stats(harness, guild, alerts, "streamer", {"streamer": "shroud", "period": "7d", "public": True})
    assert not first.ephemeral
    [attachment] = first.payload["attachments"]
    assert "ephemeral" not in attachment
    second = await stats(harness, guild, alerts, "streamer", {"streamer": "shroud", "period": "7d"})
    assert second.ephemeral
    assert fake_discord.attachment_bytes(second.payload["attachments"][0]) == fake_discord.attachment_bytes(attachment)
    assert (cog.charts.hits, cog.charts.misses) == (1, 1)
    assert "the last 7 days" in second.embeds[0]["description"]


async def test_stats_for_a_streamer_without_history_explains_instead_of_an_empty_chart(world, harness):
    guild, alerts = world
    await follow(harness, guild, alerts, "pokimane")
    reply = await stats(harness, guild, alerts, "streamer", {"streamer": "pokimane", "public": True})
    assert reply.ephemeral
    assert not reply.deferred
    assert "No streams of **Pokimane** recorded yet" in reply.text
    assert reply.payload["attachments"] == []


async def test_stats_for_a_period_without_streams_points_to_the_last_one(world, harness, fake_discord, fake_twitch):
    guild, alerts = world
    await follow(harness, guild, alerts, "shroud")
    await a_stream_with_two_categories(harness, fake_discord, fake_twitch, alerts)
    harness.clock.advance(8 * 86_400)
    reply = await stats(harness, guild, alerts, "streamer", {"streamer": "shroud", "period": "7d"})
    assert "No streams of **shroud** in the last 7 days" in reply.text
    assert "<t:" in reply.text
    assert reply.payload["attachments"] == []
    longer = await stats(harness, guild, alerts, "streamer", {"streamer": "shroud", "period": "all"})
    assert {f["name"]: f["value"] for f in longer.embeds[0]["fields"]}["Streams"] == "1"


async def test_stats_refuses_a_streamer_this_server_does_not_follow(world, harness):
    guild, alerts = world
    reply = await stats(harness, guild, alerts, "streamer", {"streamer": "shroud"})
    assert reply.ephemeral
    assert "isn't followed here" in reply.text


async def test_stats_autocompletes_each_followed_streamer_once(world, harness, fake_discord):
    guild, alerts = world
    general = fake_discord.add_text_channel(guild.id, "general")
    await fake_discord.drain()
    await harness.wait_for(lambda: harness.bot.get_channel(general.id) is not None, "the new channel in the cache")
    await follow(harness, guild, alerts, "shroud")
    await follow(harness, guild, general, "shroud")
    await follow(harness, guild, alerts, "pokimane")
    choices = await fake_discord.autocomplete(
        "stats", "streamer", "", guild_id=guild.id, channel_id=alerts.id, subcommand="streamer"
    )
    assert choices == [{"name": "Pokimane", "value": "pokimane"}, {"name": "shroud", "value": "shroud"}]


# ------------------------------------------------------------------------------------------ /stats server


async def test_stats_server_ranks_the_followed_streamers_with_a_chart(world, harness, fake_discord, fake_twitch):
    guild, alerts = world
    await follow(harness, guild, alerts, "shroud")
    await follow(harness, guild, alerts, "pokimane")
    await a_stream_with_two_categories(harness, fake_discord, fake_twitch, alerts)
    fake_twitch.go_live("pokimane", viewer_count=900, started_at=harness.clock.now() - timedelta(minutes=30))
    await harness.poll()
    reply = await stats(harness, guild, alerts, "server", {"period": "all"})
    [embed] = reply.embeds
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Most hours live"].splitlines() == [
        "1. **shroud** · 2.3 h · 1 stream",
        "2. **Pokimane** · 0.5 h · 1 stream",
    ]
    assert fields["Highest peaks"].splitlines()[0] == "1. **Pokimane** · 900 viewers · 1 stream"
    [attachment] = reply.payload["attachments"]
    assert png_size(fake_discord.attachment_bytes(attachment)) == (1200, 800)


async def test_stats_server_with_nothing_recorded_yet(world, harness):
    guild, alerts = world
    reply = await stats(harness, guild, alerts, "server")
    assert "No streamers are followed here yet" in reply.text
    await follow(harness, guild, alerts, "shroud")
    reply = await stats(harness, guild, alerts, "server")
    assert "No streams of this server's streamers recorded yet" in reply.text


# ------------------------------------------------------------------------------------------ restarts


async def test_history_survives_a_restart_and_a_stream_that_ended_meanwhile_ends_at_its_last_sighting(
    world, harness, fake_discord, fake_twitch
):
    guild, alerts = world
    await follow(harness, guild, alerts, "shroud")
    fake_twitch.go_live("shroud", viewer_count=40, started_at=harness.clock.now() - timedelta(minutes=50))
    await harness.poll()
    [card] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    harness.clock.advance(TEN_MINUTES)
    await harness.poll()
    await harness.stop()
    fake_twitch.go_offline("shroud")  # while the bot is down
    harness.clock.advance(3 * 3600)
    await harness.start()  # the start-up cycle misses it once
    await harness.poll()  # and again: over
    await fake_discord.wait_until(lambda: card.embeds[0]["color"] == 0x6E6E78, what="the ended card")
    fields = {f["name"]: f["value"] for f in card.embeds[0]["fields"]}
    assert fields["Duration"] == "1h 00m"  # to the last sighting, not to the restart three hours later
    reply = await stats(harness, guild, alerts, "streamer", {"streamer": "shroud"})
    fields = {f["name"]: f["value"] for f in reply.embeds[0]["fields"]}
    assert (fields["Streams"], fields["Average length"], fields["Peak viewers"]) == ("1", "1h 00m", "40")


async def test_the_history_is_written_with_the_poll_in_one_transaction(world, harness, fake_discord, fake_twitch):
    guild, alerts = world
    await follow(harness, guild, alerts, "shroud")
    await follow(harness, guild, alerts, "pokimane")
    fake_twitch.go_live("shroud")
    fake_twitch.go_live("pokimane")
    await harness.poll()
    await fake_discord.wait_for_messages(2, channel_id=alerts.id)
    # Each poll ten minutes after the last (on real time, two polls a moment apart may fall on one second or
    # straddle two, so the sample count would depend on luck): three polls, three samples.
    harness.clock.advance(TEN_MINUTES)
    before = harness.db.query_count
    await harness.poll()  # two live streams, nothing to announce: the same queries as without history
    steady = harness.db.query_count - before
    harness.clock.advance(TEN_MINUTES)
    before = harness.db.query_count
    await harness.poll()
    assert harness.db.query_count - before == steady
    history = await harness.db.streamer_history(fake_twitch.user("shroud").id, None)
    assert [len(h.samples) for h in history] == [3]


async def test_a_pushed_go_live_adds_no_viewer_sample(world, harness, fake_discord, fake_twitch):
    guild, alerts = world
    await follow(harness, guild, alerts, "shroud")
    stream = fake_twitch.go_live("shroud", game_name="VALORANT", viewer_count=500, push=False)
    pushed = TwitchStream(
        id=stream.id, user_id=stream.user_id, user_login="shroud", user_name="shroud", game_id=stream.game_id,
        game_name="VALORANT", title="t", viewer_count=0, started_at=stream.started_at, thumbnail_url="",
    )  # fmt: skip
    await harness.bot.notifier.push_online(pushed)  # what the push handler does with a stream.online
    [history] = await harness.db.streamer_history(stream.user_id, None)
    assert history.samples == ()
    assert [c.game_name for c in history.categories] == ["VALORANT"]
    await harness.poll()
    [history] = await harness.db.streamer_history(stream.user_id, None)
    assert [s.viewers for s in history.samples] == [500]
    assert datetime.now(UTC) - history.started_at < timedelta(minutes=1)
