"""End to end: announcements in an announcement (news) channel are published to following servers when the server
chose so, within Discord's 10 publishes per hour per channel (remembered across a restart); never their edits."""

import pytest

from tests.e2e.harness import announcements
from tests.fakes.discord_payloads import FLAG_CROSSPOSTED, NEWS_CHANNEL

CROSSPOST = "/crosspost"


def crosspost_requests(fake_discord, channel=None) -> list:
    prefix = f"/channels/{channel.id}/" if channel is not None else "/channels/"
    return [r for r in fake_discord.requests if r.path.endswith(CROSSPOST) and r.path.startswith(prefix)]


def metric(harness, result: str) -> float:
    body, _ = harness.bot.metrics.render()
    line = f'twitch_notifier_publishes_total{{result="{result}"}} '
    [value] = [row.removeprefix(line) for row in body.decode().splitlines() if row.startswith(line)]
    return float(value)


@pytest.fixture
async def newsroom(harness, fake_discord, fake_twitch):
    """Guild A with an announcement channel #news and a text channel #alerts, streamers s0…s11, the bot running."""
    guild = fake_discord.add_guild("Guild A")
    news = fake_discord.add_channel(guild.id, "news", type=NEWS_CHANNEL)
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    for index in range(12):
        fake_twitch.add_user(f"s{index}")
    await harness.start()
    return guild, news, alerts


async def follow_in(harness, guild, channel, login: str) -> None:
    reply = await harness.command(
        "addstreamer", {"streamer": login, "channel": channel.id}, guild=guild, channel=channel
    )
    assert "Now following" in reply.text, reply.text


async def publish_on(harness, guild, channel) -> str:
    reply = await harness.command("settings", {"publish": True}, guild=guild, channel=channel, subcommand="set")
    assert "Settings saved" in reply.text, reply.text
    return reply.text


async def go_live_and_settle(harness, fake_discord, fake_twitch, logins: list[str], total: int) -> None:
    for login in logins:
        fake_twitch.go_live(login)
    await harness.poll()
    await fake_discord.wait_until(lambda: len(announcements(fake_discord)) >= total, what=f"{total} announcements")
    await harness.bot.notifier.publisher.wait_idle()


async def test_publishing_is_off_by_default_and_shown_in_settings(newsroom, harness, fake_discord, fake_twitch):
    guild, news, _alerts = newsroom
    shown = await harness.command("settings", guild=guild, channel=news, subcommand="show")
    assert "Publish in announcement channels" in shown.text
    await follow_in(harness, guild, news, "s0")
    await go_live_and_settle(harness, fake_discord, fake_twitch, ["s0"], 1)
    assert crosspost_requests(fake_discord) == []
    assert not announcements(fake_discord)[0].flags & FLAG_CROSSPOSTED


async def test_a_new_announcement_in_a_news_channel_is_published_and_its_edits_are_not(
    newsroom, harness, fake_discord, fake_twitch
):
    guild, news, alerts = newsroom
    await follow_in(harness, guild, alerts, "s1")
    # Only #alerts, no announcement channel, is used yet: the admin is told nothing would be published.
    assert "None of this server's announcement channels" in await publish_on(harness, guild, news)
    shown = await harness.command("settings", guild=guild, channel=news, subcommand="show")
    assert "on (up to 10 per channel per hour)" in shown.text
    await follow_in(harness, guild, news, "s0")
    assert "None of this server's" not in await publish_on(harness, guild, news)
    await go_live_and_settle(harness, fake_discord, fake_twitch, ["s0", "s1"], 2)
    [in_news] = announcements(fake_discord, news)
    [in_alerts] = announcements(fake_discord, alerts)
    assert in_news.flags & FLAG_CROSSPOSTED
    assert fake_discord.crossposted == [in_news]
    assert not in_alerts.flags & FLAG_CROSSPOSTED
    assert crosspost_requests(fake_discord, alerts) == []  # a plain text channel: not even tried
    assert metric(harness, "published") == 1

    # A live update edits the card: the edit is never published again.
    fake_twitch.update_stream(fake_twitch.user("s0").id, title="new title")
    harness.clock.advance(3600)
    await harness.poll()
    await fake_discord.wait_until(lambda: in_news.edits, what="the live card's edit")
    await harness.bot.notifier.publisher.wait_idle()
    assert len(crosspost_requests(fake_discord)) == 1
    assert in_news.flags & FLAG_CROSSPOSTED


async def test_eleventh_publish_of_the_hour_is_skipped_even_after_a_restart(
    newsroom, harness, fake_discord, fake_twitch
):
    guild, news, _alerts = newsroom
    await publish_on(harness, guild, news)
    for index in range(12):
        await follow_in(harness, guild, news, f"s{index}")
    await go_live_and_settle(harness, fake_discord, fake_twitch, [f"s{i}" for i in range(11)], 11)
    posted = announcements(fake_discord, news)
    assert len(posted) == 11  # every announcement is posted, published or not
    assert len(fake_discord.crossposted) == 10
    assert len(crosspost_requests(fake_discord)) == 10  # the eleventh is not even asked for
    assert fake_discord.rate_limited == []
    assert (metric(harness, "published"), metric(harness, "skipped_limit")) == (10, 1)

    # A restart remembers the hour's publishes: the next go-live is announced, not published.
    await harness.restart()
    await go_live_and_settle(harness, fake_discord, fake_twitch, ["s11"], 12)
    assert len(crosspost_requests(fake_discord)) == 10
    assert metric(harness, "skipped_limit") == 1

    # An hour later the channel has its budget back.
    for index in range(12):
        fake_twitch.go_offline(f"s{index}")
    await harness.poll()
    await harness.poll()
    harness.clock.advance(3601)
    fake_discord.advance_clock(3601)
    await go_live_and_settle(harness, fake_discord, fake_twitch, ["s0"], 13)
    assert len(fake_discord.crossposted) == 11
    assert metric(harness, "published") == 1


async def test_discords_refusal_is_remembered_and_the_announcement_stands(newsroom, harness, fake_discord, fake_twitch):
    guild, news, _alerts = newsroom
    await publish_on(harness, guild, news)
    await follow_in(harness, guild, news, "s0")
    await follow_in(harness, guild, news, "s1")
    fake_discord.publish_as_member(news.id, 10)  # the moderators published their own posts this hour
    await go_live_and_settle(harness, fake_discord, fake_twitch, ["s0"], 1)
    assert len(announcements(fake_discord, news)) == 1
    assert fake_discord.crossposted == []
    assert len(fake_discord.rate_limited) == 1
    assert metric(harness, "rate_limited") == 1
    window = await harness.db.publish_window(news.id)
    assert window.blocked_until is not None
    assert window.blocked_until > harness.clock.now()

    # Until Discord's retry_after has passed, the bot does not ask again.
    await go_live_and_settle(harness, fake_discord, fake_twitch, ["s1"], 2)
    assert len(crosspost_requests(fake_discord)) == 1
    assert metric(harness, "skipped_limit") == 1


async def test_a_publish_that_hangs_never_holds_up_the_next_announcement(newsroom, harness, fake_discord, fake_twitch):
    guild, news, _alerts = newsroom
    await publish_on(harness, guild, news)
    await follow_in(harness, guild, news, "s0")
    await follow_in(harness, guild, news, "s1")
    fake_discord.hang_next("POST", r"/channels/\d+/messages/\d+/crosspost")
    fake_twitch.go_live("s0")
    await harness.poll()
    await fake_discord.wait_until(lambda: fake_discord.hung, what="the publish to hang")
    fake_twitch.go_live("s1")
    await harness.poll()  # the next cycle announces while the first publish still hangs
    assert len(announcements(fake_discord, news)) == 2
    assert len(fake_discord.hung) == 1
    fake_discord.release_hangs()
    await harness.bot.notifier.publisher.wait_idle()
    assert len(fake_discord.crossposted) == 2
