"""End to end: EventSub push through a conduit whose shard is the bot's own WebSocket session.

The real bot (discord.py against the fake Discord) with EVENTSUB_TRANSPORT=websocket against the fake Twitch and
its fake EventSub: what a push makes Discord receive, what the bot asks of Twitch's EventSub API, and that the
poll, which keeps running, never contradicts push. Faults of the transport are in test_push_faults.py.
"""

import asyncio
import copy
import dataclasses
import logging
import uuid

import pytest

from tests.e2e.harness import announcements, follow

LISTING_NEVER = 3600.0
"""The listing lag of these tests: /helix/streams does not show a stream within a test unless it says so."""
ENDED = "**shroud** was live on Twitch."


# ------------------------------------------------------------------------------------------- helpers


async def start_pushed(harness, fake_discord, fake_twitch, *logins, bound=True):
    """A bot with EVENTSUB_TRANSPORT=websocket in Guild A (#alerts default), following `logins` (shroud by
    default); with `bound`, returns once the shard is bound and each streamer's go-lives are pushed."""
    logins = logins or ("shroud",)
    harness.settings = dataclasses.replace(harness.settings, eventsub_transport="websocket")
    guild = fake_discord.add_guild("Guild A")
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    for login in logins:
        fake_twitch.add_user(login)
    fake_twitch.listing_lag = LISTING_NEVER
    await harness.start()
    await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=alerts)
    for login in logins:
        reply = await follow(harness, guild, alerts, login)
        assert "Now following" in reply.text, reply.text
    if bound:
        await wait_pushed(harness, fake_twitch, *logins)
    return guild, alerts


async def wait_pushed(harness, fake_twitch, *logins, complete=True):
    """Wait until the shard is bound and each of `logins` is pushed; with `complete`, until the fake also holds
    all three subscriptions of each (stream.online is created first, the other two right after it)."""
    push = harness.bot.push
    await harness.wait_for(lambda: push.status().connected, "the shard to be bound")
    for login in logins:
        user_id = fake_twitch.user(login).id
        await harness.wait_for(lambda uid=user_id: push.sync.push_covers(uid), f"{login}'s subscriptions")
        if complete:
            await harness.wait_for(lambda login=login: subs_of(fake_twitch, login) == ALL_THREE, f"all of {login}'s")


@pytest.fixture
async def pushed(harness, fake_discord, fake_twitch):
    """A bot with EVENTSUB_TRANSPORT=websocket, in Guild A (#alerts default), following shroud."""
    return await start_pushed(harness, fake_discord, fake_twitch)


def subs_of(fake_twitch, login, status="enabled"):
    """The fake's subscriptions on `login` (enabled ones by default), as sorted (type, version) pairs."""
    user_id = fake_twitch.user(login).id
    return sorted(
        (s.type, s.version)
        for s in fake_twitch.eventsub.subscriptions.values()
        if s.broadcaster_user_id == user_id and status in (None, s.status)
    )


ALL_THREE = [("channel.update", "2"), ("stream.offline", "1"), ("stream.online", "1")]


def eventsub_calls(fake_twitch, method, path="/helix/eventsub/subscriptions"):
    return [c for c in fake_twitch.eventsub.calls if c.method == method and c.path == path]


def pushed_of(fake_twitch, subscription_type):
    """The notifications of one type the fake wrote to the bot's sessions."""
    return [
        m
        for m in fake_twitch.eventsub.messages("notification")
        if m.message["metadata"]["subscription_type"] == subscription_type
    ]


def fields(message):
    return {f["name"]: f["value"] for f in message.embeds[0].get("fields", [])}


def edits_of(fake_discord, message):
    return [r for r in fake_discord.requests if r.method == "PATCH" and r.path.endswith(f"/messages/{message.id}")]


def inject(fake_twitch, message):
    """Write a hand-made EventSub message on the live session (the fake has no public control for this)."""
    eventsub = fake_twitch.eventsub
    eventsub._enqueue(eventsub.session(), message)


async def handled(harness, count):
    """Wait until the bot has handled `count` notifications and revocations in all (duplicates included)."""
    push = harness.bot.push
    await harness.wait_for(lambda: push.handler.stats.received >= count, f"{count} EventSub messages")
    for socket in push.sockets:
        await socket.drain()
    assert push.handler.stats.received == count


# ---------------------------------------------------------------------------------------------- go-live


async def test_go_live_is_announced_before_the_listing_shows_it(pushed, harness, fake_discord, fake_twitch):
    """A pushed go-live is posted at once with the title and category of /helix/channels; polls whose listing
    does not show the stream yet neither end it nor post it again; once the listing catches up, the card's
    next update (5 minutes on) fills in the viewer count, still one message."""
    _guild, alerts = pushed
    user_id = fake_twitch.user("shroud").id
    cycles = harness.bot.poller.cycles
    stream = fake_twitch.go_live("shroud", title="Ranked grind", game_name="VALORANT", viewer_count=777)
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    assert harness.bot.poller.cycles == cycles  # push did it, not a poll
    assert not fake_twitch.is_listed("shroud")
    assert message.channel_id == alerts.id
    assert message.embeds[0]["title"] == "Ranked grind"
    assert fields(message)["Game"] == "VALORANT"
    # Looked up at the go-live (the first look-up is the seed when shroud was followed: a fallback title).
    lookups = [r.values("broadcaster_id") for r in fake_twitch.requests_to("/helix/channels")]
    assert lookups == [[user_id], [user_id]]

    await harness.poll()  # offline_after_polls is 2: two polls that miss it would end a polled stream
    await harness.poll()
    live = await harness.db.live_streams()
    assert live[user_id].stream_id == stream.id
    assert live[user_id].missed_polls == 0
    assert len(announcements(fake_discord)) == 1
    assert edits_of(fake_discord, message) == []

    stream.listed_from = fake_twitch.clock()  # the listing catches up
    await harness.poll()  # the card was posted less than 5 minutes ago: not edited yet
    assert edits_of(fake_discord, message) == []
    assert (await harness.db.live_streams())[user_id].viewer_count == 777
    harness.clock.advance(6 * 60)
    await harness.poll()
    assert len(edits_of(fake_discord, message)) == 1
    assert fields(message)["Viewers"] == "777"
    assert message.embeds[0]["title"] == "Ranked grind"
    assert len(announcements(fake_discord)) == 1


@pytest.mark.parametrize("same_id", [True, False], ids=["same-message-id", "new-message-id"])
async def test_a_redelivered_go_live_is_announced_once(pushed, harness, fake_discord, fake_twitch, same_id):
    """Twitch delivers at least once, resending with the same message id and (observed) with a new one."""
    fake_twitch.eventsub.duplicate_next("stream.online", same_id=same_id)
    fake_twitch.go_live("shroud", title="Twice?")
    await handled(harness, 2)
    first, second = pushed_of(fake_twitch, "stream.online")
    assert (first.message_id == second.message_id) is same_id
    await asyncio.sleep(0.05)
    [message] = announcements(fake_discord)
    assert message.embeds[0]["title"] == "Twice?"
    assert harness.bot.push.handler.stats.duplicates == (1 if same_id else 0)


async def test_a_late_go_live_of_an_ended_stream_does_not_revive_it(pushed, harness, fake_discord, fake_twitch):
    """A stream.online arriving again after its stream.offline (resent as is, or with a new message id) leaves
    the stream ended: no second post, the ended card untouched, nothing live."""
    fake_twitch.go_live("shroud", title="Short one")
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    fake_twitch.go_offline("shroud")
    await fake_discord.wait_until(lambda: message.content == ENDED, what="the ended card")
    edits = len(edits_of(fake_discord, message))
    [online] = pushed_of(fake_twitch, "stream.online")
    fake_twitch.eventsub.resend(online.message_id)
    late = copy.deepcopy(online.message)
    late["metadata"]["message_id"] = str(uuid.uuid4())
    inject(fake_twitch, late)
    await handled(harness, 4)  # online, offline, and the two late copies
    await harness.poll()
    assert await harness.db.live_streams() == {}
    assert len(announcements(fake_discord)) == 1
    assert message.content == ENDED
    assert len(edits_of(fake_discord, message)) == edits


# ---------------------------------------------------------------------------------------------- offline


async def test_stream_offline_ends_the_stream_at_once(pushed, harness, fake_discord, fake_twitch):
    """stream.offline edits the card into the ended card with no poll; the listing, which keeps showing the
    ended stream a while (Twitch's cache), neither brings it back nor posts it again."""
    fake_twitch.offline_lag = 3600
    fake_twitch.go_live("shroud", title="Last game", game_name="VALORANT", listed_after=0)
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    await harness.poll()  # the listing shows it too: all agree
    cycles = harness.bot.poller.cycles
    fake_twitch.go_offline("shroud")
    await fake_discord.wait_until(lambda: message.content == ENDED, what="the ended card")
    assert harness.bot.poller.cycles == cycles
    assert message.embeds[0]["author"]["name"] == "shroud was live"
    assert message.embeds[0]["title"] == "Last game"
    assert await harness.db.live_streams() == {}
    edits = len(edits_of(fake_discord, message))
    assert edits == 1

    assert fake_twitch.is_listed("shroud")  # the stale listing
    await harness.poll()
    await harness.poll()
    assert await harness.db.live_streams() == {}
    assert len(announcements(fake_discord)) == 1
    assert message.content == ENDED
    assert len(edits_of(fake_discord, message)) == edits


# --------------------------------------------------------------------------------------- channel.update


async def test_channel_update_while_live_retitles_the_stream(pushed, harness, fake_discord, fake_twitch):
    """channel.update gives the live stream its new title and category at once: /live shows them, and the card
    takes them on its next update (due here: 5 minutes have passed), both with the listing still lagging."""
    guild, alerts = pushed
    fake_twitch.go_live("shroud", title="Warming up", game_name="VALORANT")
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    reply = await harness.command("live", guild=guild, channel=alerts)
    assert "Warming up" in reply.text, reply.text

    harness.clock.advance(6 * 60)  # the card's 5-minute throttle has passed
    cycles = harness.bot.poller.cycles
    fake_twitch.update_stream("shroud", title="Tournament finals", game_name="Minecraft")
    await fake_discord.wait_until(
        lambda: message.embeds[0]["title"] == "Tournament finals", what="the card with the new title"
    )
    assert fields(message)["Game"] == "Minecraft"
    assert harness.bot.poller.cycles == cycles
    assert not fake_twitch.is_listed("shroud")
    [live] = (await harness.db.live_streams()).values()
    assert (live.title, live.game_name) == ("Tournament finals", "Minecraft")
    reply = await harness.command("live", guild=guild, channel=alerts)
    assert "Tournament finals" in reply.text, reply.text
    assert "Warming up" not in reply.text
    assert len(announcements(fake_discord)) == 1


async def test_channel_update_while_offline_announces_nothing(pushed, harness, fake_discord, fake_twitch):
    """channel.update fires while offline too (facts §6): it is never taken for a go-live."""
    fake_twitch.update_channel("shroud", title="Tomorrow 8pm", game_name="Minecraft")
    await handled(harness, 1)
    await harness.poll()
    assert await harness.db.live_streams() == {}
    assert announcements(fake_discord) == []


# --------------------------------------------------------------------------------- following changes


async def test_subscriptions_follow_addstreamer_and_removestreamer(pushed, harness, fake_discord, fake_twitch):
    """/addstreamer creates the three subscriptions within 3 s of its reply; /removestreamer keeps them while
    another server still follows the streamer and deletes them within 3 s once the last follower is gone."""
    guild, alerts = pushed
    sync = harness.bot.push.sync
    assert subs_of(fake_twitch, "shroud") == ALL_THREE
    fake_twitch.add_user("pokimane")
    reply = await follow(harness, guild, alerts, "pokimane")
    assert "Now following" in reply.text
    await harness.wait_for(lambda: subs_of(fake_twitch, "pokimane") == ALL_THREE, "pokimane's subscriptions", 3)
    await harness.wait_for(lambda: sync.push_covers(fake_twitch.user("pokimane").id), "pokimane pushed", 3)

    other = fake_discord.add_guild("Guild B")
    await fake_discord.join_guild(other)
    b_alerts = await fake_discord.create_channel(other.id, "b-alerts")
    await harness.wait_for(lambda: harness.bot.get_channel(b_alerts.id) is not None, "the new channel")
    reply = await follow(harness, other, b_alerts, "shroud", b_alerts)
    assert "Now following" in reply.text, reply.text
    await harness.wait_for(sync.synced.is_set, "the pass after Guild B's follow")
    posts = len(eventsub_calls(fake_twitch, "POST"))

    passes = sync.passes
    reply = await harness.command("removestreamer", {"streamer": "shroud"}, guild=guild, channel=alerts)
    assert "Stopped following" in reply.text, reply.text
    await harness.wait_for(lambda: sync.passes > passes, "the pass after the removal", 3)
    assert subs_of(fake_twitch, "shroud") == ALL_THREE  # Guild B still follows shroud
    assert eventsub_calls(fake_twitch, "DELETE") == []

    reply = await harness.command("removestreamer", {"streamer": "pokimane"}, guild=guild, channel=alerts)
    assert "Stopped following" in reply.text, reply.text
    await harness.wait_for(lambda: subs_of(fake_twitch, "pokimane", None) == [], "pokimane unsubscribed", 3)
    assert len(eventsub_calls(fake_twitch, "DELETE")) == 3
    assert not sync.push_covers(fake_twitch.user("pokimane").id)
    assert subs_of(fake_twitch, "shroud") == ALL_THREE
    assert len(eventsub_calls(fake_twitch, "POST")) == posts  # nothing was created again


# ----------------------------------------------------------------------------------------------- off


async def test_transport_off_never_touches_eventsub(guild_a, harness, fake_discord, fake_twitch):
    """EVENTSUB_TRANSPORT=off (the default): no WebSocket session, no EventSub call; the poll announces."""
    guild, alerts, _general = guild_a
    assert harness.settings.eventsub_transport == "off"
    assert harness.bot.push is None
    await follow(harness, guild, alerts, "shroud", alerts)
    fake_twitch.go_live("shroud", title="Polled")
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    assert message.embeds[0]["title"] == "Polled"
    assert fake_twitch.eventsub.sessions == {}
    assert fake_twitch.eventsub.calls == []
    assert [r.path for r in fake_twitch.requests if r.path.startswith(("/ws", "/helix/eventsub"))] == []
    reply = await harness.command("streamers", guild=guild, channel=alerts)
    assert "polling only" not in reply.text  # no push notes where there is no push
    assert "\N{INFORMATION SOURCE}" not in reply.text


# ------------------------------------------------------------------------------------ unknown messages


async def test_a_notification_of_a_type_not_asked_for_is_ignored_and_logged(
    pushed, harness, fake_discord, fake_twitch, caplog
):
    """A notification of another type (here channel.follow) changes nothing and is logged; an unreadable
    message type is skipped too; the session carries on and the next go-live is pushed as usual."""
    caplog.set_level(logging.INFO, logger="twitch_notifier")
    eventsub = fake_twitch.eventsub
    user_id = fake_twitch.user("shroud").id
    [conduit_id] = eventsub.conduits
    subscription = {
        "id": str(uuid.uuid4()),
        "status": "enabled",
        "type": "channel.follow",
        "version": "2",
        "condition": {"broadcaster_user_id": user_id, "moderator_user_id": user_id},
        "transport": {"method": "conduit", "conduit_id": conduit_id},
        "created_at": "2026-01-01T00:00:00.000Z",
        "cost": 0,
    }
    [welcome] = eventsub.messages("session_welcome")
    stamp = welcome.message["metadata"]["message_timestamp"]
    # An unknown message type first (it is read, and skipped, before the notification after it).
    inject(fake_twitch, {"metadata": {"message_id": str(uuid.uuid4()), "message_type": "surprise"}, "payload": {}})
    follow_event = {"user_id": "1234", "user_login": "fan", "user_name": "Fan", "broadcaster_user_id": user_id}
    inject(
        fake_twitch,
        {
            "metadata": {
                "message_id": str(uuid.uuid4()),
                "message_type": "notification",
                "message_timestamp": stamp,
                "subscription_type": "channel.follow",
                "subscription_version": "2",
            },
            "payload": {"subscription": subscription, "event": follow_event},
        },
    )
    await handled(harness, 1)
    push = harness.bot.push
    assert push.handler.stats.ignored == 1
    assert any("did not ask for: channel.follow" in r.getMessage() for r in caplog.records)
    assert any("unreadable" in r.getMessage() and "surprise" in r.getMessage() for r in caplog.records)
    assert announcements(fake_discord) == []
    assert push.sockets[0].stats().reconnects == 0

    fake_twitch.go_live("shroud", title="Still pushed")
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    assert message.embeds[0]["title"] == "Still pushed"


# ------------------------------------------------------------------------------- a go-live during edits


async def test_a_go_live_pushed_while_the_polls_card_edits_hang_is_posted_at_once(harness, fake_discord, fake_twitch):
    """Before, the poll held the notifier's lock through its round of card edits, and a pushed go-live waited for
    all of them (seconds with hundreds of cards; here, a hung edit, until the 5 s call timeout)."""
    _guild, alerts = await start_pushed(harness, fake_discord, fake_twitch, "shroud", "tfue")
    fake_twitch.go_live("shroud", title="Ranked grind", listed_after=0)
    [card] = await fake_discord.wait_for_messages(1, timeout=5)
    await harness.poll()
    harness.clock.advance(6 * 60)  # the card's next update is due
    fake_twitch.update_stream("shroud", viewer_count=4321)
    fake_discord.hang_next("PATCH", rf"/channels/{alerts.id}/messages/{card.id}")
    poll = asyncio.create_task(harness.poll())
    await fake_discord.wait_until(lambda: fake_discord.hung, what="the card's edit held by Discord")
    fake_twitch.go_live("tfue", title="Fresh")
    [_, fresh] = await fake_discord.wait_for_messages(2, timeout=3)
    assert not poll.done()  # posted while the poll's edit still hangs
    assert fresh.embeds[0]["title"] == "Fresh"
    fake_discord.release_hangs()
    await asyncio.wait_for(poll, 10)
    assert len(announcements(fake_discord)) == 2
