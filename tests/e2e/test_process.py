"""End to end through `python bot.py` as shipped: health endpoint, metrics, SIGTERM, exit statuses, logs
free of secrets, and `kill -9` at any point of a cycle without a duplicate or a miss."""

import asyncio
import json
import sqlite3
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from database import Database
from tests.e2e.bot_process import SECRETS, BotProcess, bot_environment
from twitch_notifier.models import Streamer


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


async def subscribe(db_path, pairs) -> None:
    """Follow (guild, channel, fake Twitch user) before the bot starts."""
    db = await Database.open(str(db_path))
    try:
        for guild, channel, user in pairs:
            await db.add_subscription(guild.id, channel.id, Streamer(user.id, user.login, user.display_name))
    finally:
        await db.close()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "bot.db"


async def test_health_metrics_sigterm_and_no_secret_in_logs(fake_discord, fake_twitch, tmp_path, db_path):
    guild = fake_discord.add_guild("Guild A")
    channel = fake_discord.add_text_channel(guild.id, "alerts")
    user = fake_twitch.add_user("shroud")
    await subscribe(db_path, [(guild, channel, user)])
    bot = await BotProcess(bot_environment(fake_discord, fake_twitch, db_path), tmp_path).start()
    try:
        status, body = await bot.get("/healthz")
        assert status == 503, body  # not connected and not polled yet
        assert json.loads(body)["status"] == "unhealthy"

        deadline = time.monotonic() + 20
        while (status := (await bot.get("/healthz"))[0]) != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        status, body = await bot.get("/healthz")
        assert status == 200, body
        assert json.loads(body)["status"] == "ok"

        _, metrics = await bot.get("/metrics")
        assert metric(metrics, "twitch_notifier_poll_cycles_total", outcome="ok") >= 1
        assert metric(metrics, "twitch_notifier_notifications_total", result="sent") == 0
        assert metric(metrics, "twitch_notifier_monitored_streamers") == 1

        fake_twitch.go_live("shroud", title="hello")
        [message] = await fake_discord.wait_for_messages(1, timeout=20)
        assert message.channel_id == channel.id
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            _, metrics = await bot.get("/metrics")
            if metric(metrics, "twitch_notifier_notifications_total", result="sent") == 1:
                break
            await asyncio.sleep(0.05)
        assert metric(metrics, "twitch_notifier_notifications_total", result="sent") == 1
        assert metric(metrics, "twitch_notifier_live_streams") == 1
        assert metric(metrics, "twitch_notifier_twitch_requests_total", status="200") >= 2
        assert metric(metrics, "twitch_notifier_last_successful_poll_timestamp_seconds") > time.time() - 60

        started = time.monotonic()
        code = await bot.terminate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        await bot.kill()
    assert code == 0, bot.output[-3000:]
    assert elapsed < 10
    assert "Shut down cleanly" in bot.output
    assert "Traceback" not in bot.output
    for secret in SECRETS:
        assert secret not in bot.output

    # The database is intact, checkpointed, and opens cleanly with the announcement recorded.
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    wal = db_path.with_name(db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    db = await Database.open(str(db_path))
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            [(channel_id, message_id)] = conn.execute(
                "SELECT channel_id, message_id FROM announcements WHERE stream_id = ?",
                (fake_twitch.streams[user.id].id,),
            ).fetchall()
        finally:
            conn.close()
        assert (channel_id, message_id) == (channel.id, message.id)
    finally:
        await db.close()


@pytest.mark.parametrize("kill_after", [1, 17, 45])
async def test_kill_9_mid_cycle_then_restart_announces_each_exactly_once(
    fake_discord, fake_twitch, tmp_path, db_path, kill_after
):
    channels = []
    for index in range(3):
        guild = fake_discord.add_guild(f"G{index}")
        channels.append((guild, fake_discord.add_text_channel(guild.id, "alerts")))
    users = fake_twitch.add_users(20)
    await subscribe(db_path, [(g, c, u) for g, c in channels for u in users])
    for user in users:
        fake_twitch.go_live(user.id)
    expected = {(c.id, u.display_name) for _, c in channels for u in users}

    env = bot_environment(fake_discord, fake_twitch, db_path, LOG_LEVEL="INFO")
    first = await BotProcess(env, tmp_path).start()
    try:
        await fake_discord.wait_for_messages(kill_after, timeout=30)
    finally:
        await first.kill()  # SIGKILL: no cleanup at all, whatever the cycle was doing
    assert first.process.returncode == -9

    second = await BotProcess(env, tmp_path).start()
    try:
        await fake_discord.wait_for_messages(len(expected), timeout=30)
        await second.wait_for_line(r"Poll: .*", timeout=30)
        await asyncio.sleep(1)  # a few more cycles: nothing more may be posted
        code = await second.terminate()
    finally:
        await second.kill()
    assert code == 0
    posted = [(m.channel_id, m.embeds[0]["author"]["name"]) for m in fake_discord.messages]
    assert len(posted) == len(set(posted)), "duplicate announcement after kill -9"
    assert set(posted) == expected


async def test_corrupt_database_is_a_clear_error(fake_discord, fake_twitch, tmp_path, db_path):
    db_path.write_bytes(b"definitely not sqlite" * 200)
    bot = await BotProcess(bot_environment(fake_discord, fake_twitch, db_path), tmp_path).start()
    code = await bot.wait()
    assert code == 1
    assert "DATABASE_PATH" in bot.output
    assert str(db_path) in bot.output
    assert "Traceback" not in bot.output
    assert db_path.read_bytes().startswith(b"definitely not sqlite")  # never silently re-created


async def test_rejected_discord_token_names_the_variable(fake_discord, fake_twitch, tmp_path, db_path):
    env = bot_environment(fake_discord, fake_twitch, db_path, DISCORD_TOKEN="not-the-right-token")
    bot = await BotProcess(env, tmp_path).start()
    code = await bot.wait()
    assert code == 2
    assert "DISCORD_TOKEN" in bot.output
    assert "Traceback" not in bot.output
    assert "not-the-right-token" not in bot.output
    assert [(r.path, r.status) for r in fake_discord.rejected] == [("/users/@me", 401)]
    fake_discord.rejected.clear()  # expected: the fixture checks nothing else was refused


async def test_rejected_twitch_secret_names_the_variables(fake_discord, fake_twitch, tmp_path, db_path):
    env = bot_environment(fake_discord, fake_twitch, db_path, TWITCH_CLIENT_SECRET="wrong-secret-value")
    bot = await BotProcess(env, tmp_path).start()
    code = await bot.wait()
    assert code == 2
    assert "TWITCH_CLIENT_SECRET" in bot.output
    assert "Traceback" not in bot.output
    assert "wrong-secret-value" not in bot.output


async def test_discord_unreachable_at_start_up_is_retried_until_it_answers(
    fake_discord, fake_twitch, tmp_path, db_path
):
    # Before: the first 5xx at login or refused gateway ended the process with status 1 and a traceback.
    guild = fake_discord.add_guild("Guild A")
    channel = fake_discord.add_text_channel(guild.id, "alerts")
    user = fake_twitch.add_user("shroud")
    fake_twitch.go_live("shroud", title="back online")
    await subscribe(db_path, [(guild, channel, user)])
    fake_discord.fail_next("GET", "/users/@me", status=503, times=2)
    fake_discord.refuse_gateway(2, mode="http")
    bot = await BotProcess(bot_environment(fake_discord, fake_twitch, db_path), tmp_path).start()
    try:
        await bot.wait_for_line(r"Could not log in to Discord \(HTTP 503\); attempt 1 failed, retrying in")
        await bot.wait_for_line(r"Could not log in to Discord \(HTTP 503\); attempt 2 failed")
        await bot.wait_for_line(r"Could not connect to Discord .*attempt 1 failed", timeout=30)
        await fake_discord.wait_for_messages(1, timeout=30)
        assert bot.process.returncode is None
    finally:
        code = await bot.terminate()
    assert code == 0
    assert "Traceback" not in bot.output
    assert " ERROR " not in bot.output  # an outage is a warning per attempt, not an error with a traceback
    assert [m.embeds[0]["title"] for m in fake_discord.messages_in(channel.id)] == ["back online"]


async def test_a_second_instance_on_the_same_database_refuses_to_start(fake_discord, fake_twitch, tmp_path, db_path):
    # Before: it started silently and doubled every poll and post.
    fake_discord.add_guild("Guild A")
    first = await BotProcess(bot_environment(fake_discord, fake_twitch, db_path), tmp_path).start()
    try:
        await first.wait_health_port()
        second = await BotProcess(bot_environment(fake_discord, fake_twitch, db_path), tmp_path).start()
        code = await second.wait()
        assert first.process.returncode is None
    finally:
        assert await first.terminate() == 0
    assert code == 2
    assert "DATABASE_PATH" in second.output
    assert str(db_path) in second.output
    assert f"pid {first.process.pid}" in second.output
    assert "Traceback" not in second.output
