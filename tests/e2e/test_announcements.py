"""End to end: the poll loop finds streams going live and the bot announces each exactly once per subscription."""

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from twitch_notifier.core.notifier import ANNOUNCEMENT_RETENTION
from twitch_notifier.core.poller import STREAMER_REFRESH_INTERVAL
from twitch_notifier.models import Streamer


async def follow(harness, guild, channel, login: str) -> None:
    reply = await harness.command(
        "addstreamer", {"streamer": login, "channel": channel.id}, guild=guild, channel=channel
    )
    assert "Now following" in reply.text, reply.text


def recorded_announcements(db_path: str, stream_id: str) -> list[tuple[int, int, int | None]]:
    """(subscription id, channel id, message id) of one stream's announcement records, read from the file."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT subscription_id, channel_id, message_id FROM announcements WHERE stream_id = ?", (stream_id,)
        ).fetchall()
    finally:
        conn.close()


def announcements(fake_discord, channel=None):
    messages = fake_discord.messages if channel is None else fake_discord.messages_in(channel.id)
    return [m for m in messages if m.embeds]


@pytest.fixture
async def three_guilds(harness, fake_discord, fake_twitch):
    guilds = []
    for index in range(3):
        guild = fake_discord.add_guild(f"Guild {index}")
        channel = fake_discord.add_text_channel(guild.id, f"alerts-{index}")
        guilds.append((guild, channel))
    fake_twitch.add_user("shroud", display_name="shroud")
    fake_twitch.add_user("some_one", display_name="Some_One")
    await harness.start()
    for guild, channel in guilds:
        await follow(harness, guild, channel, "shroud")
    await follow(harness, guilds[0][0], guilds[0][1], "some_one")
    return guilds


async def test_live_offline_live_again_across_guilds(three_guilds, harness, fake_discord, fake_twitch):
    stream = fake_twitch.go_live("shroud", title="@everyone FREE skins **now**", game_name="VALORANT", viewer_count=999)
    await harness.poll()
    posted = await fake_discord.wait_for_messages(3)
    assert sorted(m.channel_id for m in posted) == sorted(channel.id for _, channel in three_guilds)
    for message in posted:
        [embed] = message.embeds
        assert embed["title"].startswith("@\u200beveryone FREE skins \\*\\*now\\*\\*")
        assert embed["url"] == "https://www.twitch.tv/shroud"
        assert embed["author"]["name"] == "shroud"
        assert embed["author"]["icon_url"].startswith("https://")
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Game"] == "VALORANT"
        assert fields["Viewers"] == "999"
        assert embed["image"]["url"].startswith(
            "https://static-cdn.jtvnw.net/previews-ttv/live_user_shroud-1280x720.jpg?t="
        )
        assert embed["timestamp"].startswith(stream.started_at.strftime("%Y-%m-%dT%H:%M:%S"))
        assert message.allowed_mentions == {"parse": []} or message.allowed_mentions.get("parse") == []
        assert "@everyone" not in message.content

    # Still live, title changed: no new announcement.
    fake_twitch.update_stream(stream.user_id, title="still going")
    await harness.poll()
    assert len(announcements(fake_discord)) == 3

    # Offline (two polls absent), then live again with a new stream id: announced once more everywhere.
    fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()
    assert await harness.db.live_streams() == {}
    fake_twitch.go_live("shroud", title="second stream")
    await harness.poll()
    await fake_discord.wait_for_messages(6)
    await harness.poll()
    assert len(announcements(fake_discord)) == 6
    assert sorted(m.embeds[0]["title"] for m in announcements(fake_discord))[-3:] == ["second stream"] * 3


async def test_underscores_survive_and_names_do_not_ping(three_guilds, harness, fake_discord, fake_twitch):
    _guild, channel = three_guilds[0]
    fake_twitch.go_live("some_one", title="<@&123> and @here")
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=channel.id)
    assert "Some\\_One" in message.content
    assert message.allowed_mentions.get("parse") == []
    assert "@here" not in message.embeds[0]["title"]


async def test_blinking_stream_is_not_announced_twice(three_guilds, harness, fake_discord, fake_twitch):
    stream = fake_twitch.go_live("shroud")
    await harness.poll()
    await fake_discord.wait_for_messages(3)
    fake_twitch.go_offline("shroud")
    await harness.poll()  # absent once: not ended yet
    fake_twitch.go_live("shroud", stream_id=stream.id)
    await harness.poll()
    assert len(announcements(fake_discord)) == 3


async def test_restart_mid_stream_does_not_announce_again(three_guilds, harness, fake_discord, fake_twitch):
    fake_twitch.go_live("shroud")
    await harness.poll()
    await fake_discord.wait_for_messages(3)
    await harness.restart()  # the first cycle after start-up runs against the same live stream
    await harness.poll()
    assert len(announcements(fake_discord)) == 3


async def test_stream_started_while_the_bot_was_down_is_announced_once(
    three_guilds, harness, fake_discord, fake_twitch
):
    await harness.stop()
    fake_twitch.go_live("shroud")
    await harness.start()  # waits for the first cycle of the loop
    await fake_discord.wait_for_messages(3)
    await harness.poll()
    await harness.restart()
    assert len(announcements(fake_discord)) == 3


async def test_150_streamers_more_than_a_batch_and_more_than_20_live(harness, fake_discord, fake_twitch):
    guild = fake_discord.add_guild("Big")
    channel = fake_discord.add_text_channel(guild.id, "alerts")
    users = fake_twitch.add_users(150)
    await harness.start()
    # Following 150 through the slash command would spend most of the test on interactions; the command path is
    # covered elsewhere, so subscribe through the database layer here.
    for user in users:
        await harness.db.add_subscription(guild.id, channel.id, Streamer(user.id, user.login, user.display_name))
    live = users[::5]  # 30 live, spread over both batches
    for user in live:
        fake_twitch.go_live(user.id)
    before = fake_twitch.count("/helix/streams")
    await harness.poll()
    posted = await fake_discord.wait_for_messages(len(live), timeout=20)
    assert fake_twitch.count("/helix/streams") - before == 2
    for request in fake_twitch.requests_to("/helix/streams")[-2:]:
        assert request.values("first") == ["100"]
        assert 0 < len(request.values("user_id")) <= 100
    assert sorted(m.embeds[0]["author"]["name"] for m in posted) == sorted(u.display_name for u in live)


async def test_token_expiring_mid_run(three_guilds, harness, fake_discord, fake_twitch):
    fetches = fake_twitch.token_requests
    fake_twitch.expire_tokens()
    fake_twitch.go_live("shroud")
    await harness.poll()
    await fake_discord.wait_for_messages(3)
    assert fake_twitch.token_requests == fetches + 1
    fake_twitch.go_live("some_one")
    await harness.poll()
    await fake_discord.wait_for_messages(4)
    assert fake_twitch.token_requests == fetches + 1


async def test_one_guilds_failure_does_not_stop_the_others(three_guilds, harness, fake_discord, fake_twitch):
    (gone_guild, gone), (muted_guild, muted), (_, fine) = three_guilds
    await fake_discord.delete_channel(gone.id)
    fake_discord.set_bot_channel_permissions(muted.id, deny=("send_messages",))
    await fake_discord.drain()
    await harness.wait_for(lambda: harness.bot.get_channel(gone.id) is None, "the channel deletion")
    await harness.wait_for(
        lambda: (
            not harness.bot.get_channel(muted.id)
            .permissions_for(harness.bot.get_guild(muted_guild.id).me)
            .send_messages
        ),
        "the permission change",
    )
    fake_twitch.go_live("shroud")
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1)
    assert message.channel_id == fine.id
    # The failures are recorded and shown in /streamers in plain words, and the loop goes on.
    await harness.poll()
    assert len(announcements(fake_discord)) == 1
    reply = await harness.command("streamers", guild=muted_guild, channel=muted)
    assert "can't post in #alerts-1: missing Send Messages" in reply.text
    reply = await harness.command(
        "streamers", guild=gone_guild, channel=fake_discord.add_text_channel(gone_guild.id, "x")
    )
    assert "deleted" in reply.text


async def test_discord_error_on_send_is_survived_and_retried(three_guilds, harness, fake_discord, fake_twitch):
    fake_discord.fail_next(
        method="POST", path=r"/channels/\d+/messages", status=403, code=50013, message="Missing Permissions", times=3
    )
    fake_twitch.go_live("shroud")
    await harness.poll()
    await harness.poll()
    assert len(announcements(fake_discord)) == 3


async def test_twitch_outage_is_survived(three_guilds, harness, fake_discord, fake_twitch):
    fake_twitch.go_live("shroud")
    await harness.poll()
    await fake_discord.wait_for_messages(3)
    fake_twitch.fail_next(path="/helix/streams", status=503, times=50)
    await harness.poll()
    await harness.poll()
    assert fake_twitch.user("shroud").id in await harness.db.live_streams()  # unknown, not offline
    fake_twitch.clear_failures()
    await harness.poll()
    assert len(announcements(fake_discord)) == 3


async def test_the_loop_runs_by_itself_and_survives_errors(fake_discord, fake_twitch, tmp_path, error_logs):
    from tests.e2e.harness import BotHarness

    harness = BotHarness(fake_discord, fake_twitch, tmp_path / "loop.db", check_interval_seconds=0.05)
    guild = fake_discord.add_guild("Loop")
    channel = fake_discord.add_text_channel(guild.id, "alerts")
    fake_twitch.add_user("shroud")
    try:
        await harness.start()
        await follow(harness, guild, channel, "shroud")
        original = harness.bot.poller.run_cycle
        calls = 0

        async def flaky() -> None:
            nonlocal calls
            calls += 1
            if calls <= 2:
                raise RuntimeError("cycle exploded")
            return await original()

        harness.bot.poller.run_cycle = flaky
        fake_twitch.go_live("shroud")
        [message] = await fake_discord.wait_for_messages(1, timeout=10)
        assert message.channel_id == channel.id
        assert calls >= 3
        assert harness.bot.poll_loop.is_running()
    finally:
        await harness.stop()
    assert any("Poll cycle failed" in line for line in error_logs.formatted())
    error_logs.records.clear()


async def test_old_announcement_records_are_pruned_by_the_periodic_refresh(
    three_guilds, harness, fake_discord, fake_twitch
):
    stream = fake_twitch.go_live("shroud")
    await harness.poll()
    await fake_discord.wait_for_messages(3)
    fake_twitch.go_offline("shroud")
    await harness.poll()
    await harness.poll()
    assert len(recorded_announcements(harness.db.path, stream.id)) == 3
    harness.bot.notifier.clock = lambda: datetime.now(UTC) + ANNOUNCEMENT_RETENTION + timedelta(days=1)
    harness.clock.advance(STREAMER_REFRESH_INTERVAL)  # the 6-hourly refresh is due
    await harness.poll()
    assert recorded_announcements(harness.db.path, stream.id) == []
