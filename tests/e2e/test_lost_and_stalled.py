"""End to end: the faults that used to stall the bot, lose announcements or end live cards early, each
reproduced through the fakes the way the real services misbehave."""

import pytest

from tests.fakes.fake_twitch import HTML_ERROR_PAGE, RawJSON


def announcements(fake_discord, channel=None):
    messages = fake_discord.messages if channel is None else fake_discord.messages_in(channel.id)
    return [m for m in messages if m.embeds]


async def follow(harness, guild, channel, login, target=None):
    options = {"streamer": login}
    if target is not None:
        options["channel"] = target.id
    return await harness.command("addstreamer", options, guild=guild, channel=channel)


@pytest.fixture
async def guild_a(harness, fake_discord, fake_twitch):
    guild = fake_discord.add_guild("Guild A")
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    general = fake_discord.add_text_channel(guild.id, "general")
    fake_twitch.add_user("shroud")
    fake_twitch.add_user("pokimane", display_name="Pokimane")
    await harness.start()
    return guild, alerts, general


# -- what Twitch says ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "poison",
    [
        {"viewer_count": RawJSON("1e999")},
        {"viewer_count": 123456789012345678901234567890},
        {"title": RawJSON('"\\ud800"'), "started_at": "not a time"},
    ],
)
async def test_one_poisoned_stream_entry_does_not_blind_every_server(
    guild_a, harness, fake_discord, fake_twitch, poison
):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    await follow(harness, guild, general, "pokimane", alerts)
    fake_twitch.go_live("shroud", title="poisoned")
    fake_twitch.go_live("pokimane", title="fine")
    fake_twitch.poison_stream("shroud", **poison)
    for _ in range(3):  # before the fix every one of these cycles failed, for everybody
        await harness.poll()
    titles = sorted(m.embeds[0]["title"] for m in announcements(fake_discord, alerts))
    assert len(titles) == 2
    assert "fine" in titles
    assert harness.bot.poller.last_report.failed == 0


@pytest.mark.parametrize("body", ['{"error": "upstream"}', '{"data": null}', HTML_ERROR_PAGE])
async def test_answers_without_data_do_not_end_live_cards(guild_a, harness, fake_discord, fake_twitch, body):
    guild, alerts, general = guild_a
    await follow(harness, guild, general, "shroud", alerts)
    fake_twitch.go_live("shroud", title="still live")
    await harness.poll()
    [card] = announcements(fake_discord, alerts)
    fake_twitch.malformed_next(
        "/helix/streams", body, times=None, content_type="text/html" if "<" in body else "application/json"
    )
    for _ in range(3):  # more than OFFLINE_AFTER_POLLS: before the fix the card became "was live"
        await harness.poll()
    fake_twitch.clear_failures()
    await harness.poll()
    assert [m.id for m in announcements(fake_discord, alerts)] == [card.id]
    assert card.embeds[0]["title"] == "still live"
    assert "was live" not in (card.content or "")
    assert (await harness.db.live_streams()).keys() == {fake_twitch.user("shroud").id}
