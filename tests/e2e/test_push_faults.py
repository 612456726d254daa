"""End to end: EventSub push through a conduit when things go wrong — a session_reconnect handover, a silent
socket, a WebSocket refused, a restart, Twitch's cost budget, a revocation — with assertions on what Discord
received and on what the bot asked of Twitch's EventSub API."""

import dataclasses

import pytest

from tests.e2e.harness import announcements, follow
from tests.e2e.test_push import (
    ALL_THREE,
    LISTING_NEVER,
    edits_of,
    eventsub_calls,
    pushed_of,
    start_pushed,
    subs_of,
    wait_pushed,
)


@pytest.fixture
async def pushed(harness, fake_discord, fake_twitch):
    """A bot with EVENTSUB_TRANSPORT=websocket, in Guild A (#alerts default), following shroud."""
    return await start_pushed(harness, fake_discord, fake_twitch)


def shard_session(fake_twitch):
    """The session id shard 0 of the (only) conduit is bound to at the fake, if it is enabled."""
    [conduit] = fake_twitch.eventsub.conduits.values()
    shard = conduit.shards["0"]
    return shard.session_id if shard.status == "enabled" else None


# --------------------------------------------------------------------------------------------- handover


@pytest.mark.parametrize("moves_shard", [True, False], ids=["shard-follows", "shard-stays"])
async def test_session_reconnect_hands_over_without_resubscribing(
    pushed, harness, fake_discord, fake_twitch, moves_shard
):
    """On session_reconnect the bot connects to the reconnect URL, closes the old socket itself once the new one
    is welcomed, creates no subscription again, and a go-live after the handover is announced once. Whether
    Twitch moves a conduit shard along with the handover is undocumented (facts §3), so both are tried."""
    eventsub = fake_twitch.eventsub
    eventsub.reconnect_moves_shard = moves_shard
    socket = harness.bot.push.sockets[0]
    old = eventsub.session()
    posts = len(eventsub_calls(fake_twitch, "POST"))
    eventsub.send_reconnect(old)
    await harness.wait_for(lambda: old.state == "closed", "the old session to be closed")
    new = eventsub.session()
    assert new.predecessor == old.id  # it came through the reconnect URL
    assert old.closed_by == "client"
    assert old.closed_at >= new.connected_at  # after the new welcome
    assert old.close_code not in (4004, 4007)
    await harness.wait_for(lambda: shard_session(fake_twitch) == new.id, "the shard on the new session")
    assert socket.stats().handovers == 1
    assert socket.session_id == new.id
    assert harness.bot.push.status().connected

    fake_twitch.go_live("shroud", title="After the handover")
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    assert message.embeds[0]["title"] == "After the handover"
    assert not fake_twitch.is_listed("shroud")  # so push announced it, not a poll
    [online] = pushed_of(fake_twitch, "stream.online")
    assert online.session_id == new.id
    assert eventsub.dropped == []
    assert len(eventsub_calls(fake_twitch, "POST")) == posts
    assert subs_of(fake_twitch, "shroud") == ALL_THREE
    assert len(announcements(fake_discord)) == 1


# ---------------------------------------------------------------------------------------------- watchdog


async def test_silent_socket_is_replaced_and_the_lost_go_live_is_polled_at_once(
    pushed, harness, fake_discord, fake_twitch
):
    """A session that goes silent (no keepalive) is given up by the watchdog; the bot opens a fresh one, binds
    the shard to it and polls at once, since Twitch never replays what it could not deliver: the go-live lost
    meanwhile is announced, once."""
    eventsub = fake_twitch.eventsub
    push = harness.bot.push
    socket = push.sockets[0]
    old = eventsub.session()
    eventsub.set_keepalive(old, enabled=False)
    # The watchdog waits keepalive_timeout_seconds (at least 10, from the welcome) plus a 5-s grace. Rather
    # than 15 s of real time, this session's keepalive is taken as -4 s: the watchdog then gives up after 1 s
    # of silence, counted from the next message read (the new session's welcome puts the real value back).
    socket._keepalive = -4.0
    fake_twitch.update_channel("shroud", title="Soon live")  # the message the 1-s wait starts after
    await harness.wait_for(lambda: push.handler.stats.updates == 1, "the channel.update")
    cycles = harness.bot.poller.cycles
    eventsub.drop_next("stream.online")
    fake_twitch.go_live("shroud", title="Lost in the silence", listed_after=0)
    [(_reason, lost)] = eventsub.dropped
    assert lost["metadata"]["subscription_type"] == "stream.online"

    [message] = await fake_discord.wait_for_messages(1, timeout=8)
    assert message.embeds[0]["title"] == "Lost in the silence"
    assert socket.stats().watchdog_timeouts == 1
    await harness.wait_for(lambda: harness.bot.poller.cycles > cycles, "the poll that posted it")
    new = eventsub.session()
    assert new.id != old.id
    assert old.state == "closed"
    assert old.closed_by == "client"
    assert shard_session(fake_twitch) == new.id
    assert socket.session_id == new.id
    await harness.poll()
    assert len(announcements(fake_discord)) == 1


# ------------------------------------------------------------------------------------- refused socket


async def test_websocket_refused_at_start_polling_announces_then_push_comes_back(harness, fake_discord, fake_twitch):
    """While Twitch refuses the WebSocket, the bot announces by polling as always; once it accepts again, the
    shard is bound without a restart and go-lives are pushed again."""
    fake_twitch.fail_next("/ws", 503, times=None)
    await start_pushed(harness, fake_discord, fake_twitch, "shroud", "pokimane", bound=False)
    push = harness.bot.push
    await harness.wait_for(lambda: push.sockets[0].stats().connects >= 2, "a second refused attempt")
    assert not push.status().connected
    assert fake_twitch.eventsub.sessions == {}
    assert [r.status for r in fake_twitch.requests_to("/ws")][:2] == [503, 503]

    fake_twitch.go_live("shroud", title="Polled meanwhile", listed_after=0)
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    assert message.embeds[0]["title"] == "Polled meanwhile"

    fake_twitch.clear_failures()
    await wait_pushed(harness, fake_twitch, "shroud", "pokimane")
    fake_twitch.go_live("pokimane", title="Pushed again")
    [_, second] = await fake_discord.wait_for_messages(2, timeout=5)
    assert second.embeds[0]["title"] == "Pushed again"
    assert not fake_twitch.is_listed("pokimane")
    assert len(announcements(fake_discord)) == 2


# ---------------------------------------------------------------------------------------------- restart


async def test_restart_reuses_the_conduit_and_its_subscriptions(pushed, harness, fake_discord, fake_twitch):
    """After a restart the bot finds its conduit (no second one is created), creates no subscription again
    (still exactly three on the streamer), and neither the poll nor a go-live resent to the new session posts
    the stream live across the restart a second time."""
    eventsub = fake_twitch.eventsub
    stream = fake_twitch.go_live("shroud", title="Across the restart")
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    [online] = pushed_of(fake_twitch, "stream.online")
    [conduit_id] = eventsub.conduits
    stream.listed_from = fake_twitch.clock()  # by the restart, the listing shows it
    posts = len(eventsub_calls(fake_twitch, "POST"))
    assert posts == 3

    await harness.restart()
    await wait_pushed(harness, fake_twitch, "shroud")
    await harness.wait_for(lambda: harness.bot.push.sync.passes >= 1, "the start-up pass")
    assert harness.bot.push.status().subscriptions.synced  # it read the listing back: a full pass
    assert list(eventsub.conduits) == [conduit_id]
    assert harness.bot.push.keeper.conduit_id == conduit_id
    assert len(eventsub_calls(fake_twitch, "POST", "/helix/eventsub/conduits")) == 1
    assert len(eventsub_calls(fake_twitch, "GET", "/helix/eventsub/conduits")) == 2
    assert subs_of(fake_twitch, "shroud", None) == ALL_THREE
    assert len(eventsub_calls(fake_twitch, "POST")) == posts
    assert shard_session(fake_twitch) == eventsub.session().id

    eventsub.resend(online.message_id)  # a resend reaching the new session (the old one is gone)
    await harness.wait_for(lambda: harness.bot.push.handler.stats.online == 1, "the resent go-live")
    for socket in harness.bot.push.sockets:
        await socket.drain()
    await harness.poll()
    assert len(announcements(fake_discord)) == 1
    assert edits_of(fake_discord, message) == []
    [live] = (await harness.db.live_streams()).values()
    assert live.stream_id == stream.id


# ----------------------------------------------------------------------------------------------- budget


async def follow_then_push(harness, fake_discord, fake_twitch, *logins):
    """Follow `logins` in Guild A with push off, then restart the bot with EVENTSUB_TRANSPORT=websocket, so
    that one start-up pass subscribes them all (by priority: every stream.online first)."""
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
    await harness.stop()
    harness.settings = dataclasses.replace(harness.settings, eventsub_transport="websocket")
    await harness.start()
    push = harness.bot.push
    await harness.wait_for(lambda: push.status().connected, "the shard to be bound")
    await harness.wait_for(lambda: push.sync.passes >= 1, "the first pass")
    return guild, alerts


async def test_a_small_budget_goes_to_every_stream_online_first(harness, fake_discord, fake_twitch):
    """With room for 4 subscriptions and 3 streamers, all three get stream.online (the announcement), one gets
    stream.offline, none channel.update; every go-live is pushed and announced once."""
    fake_twitch.eventsub.max_total_cost = 4
    logins = ("alpha", "bravo", "charlie")
    await follow_then_push(harness, fake_discord, fake_twitch, *logins)
    kinds = sorted(s.type for s in fake_twitch.eventsub.subscriptions.values())
    assert kinds == ["stream.offline", *["stream.online"] * 3]
    summary = harness.bot.push.status().subscriptions
    assert (summary.pushed, summary.poll_only) == (3, 0)
    assert (summary.total_cost, summary.max_total_cost) == (4, 4)
    assert await harness.db.push_states() == {}
    for count, login in enumerate(logins, 1):
        fake_twitch.go_live(login, title=f"{login} live")
        await fake_discord.wait_for_messages(count, timeout=5)
    assert [m.embeds[0]["title"] for m in announcements(fake_discord)] == [f"{login} live" for login in logins]
    assert not any(fake_twitch.is_listed(login) for login in logins)


async def test_over_the_budget_a_streamer_is_poll_only_and_still_announced(harness, fake_discord, fake_twitch):
    """With room for 2 subscriptions and 3 streamers, the third is poll-only: /streamers and the status say so,
    its go-live is announced by the poll, the two others' by push, each once; when a pushed streamer is
    removed, the budget it frees goes to the poll-only one."""
    fake_twitch.eventsub.max_total_cost = 2
    guild, alerts = await follow_then_push(harness, fake_discord, fake_twitch, "alpha", "bravo", "charlie")
    push = harness.bot.push
    charlie = fake_twitch.user("charlie").id
    assert [s.type for s in fake_twitch.eventsub.subscriptions.values()] == ["stream.online"] * 2
    assert subs_of(fake_twitch, "charlie") == []
    assert await harness.db.push_states() == {charlie: "poll_only"}
    summary = push.status().subscriptions
    assert (summary.pushed, summary.poll_only) == (2, 1)
    health = harness.bot.health().details["eventsub"]
    assert (health["streamers_pushed"], health["streamers_poll_only"]) == (2, 1)
    reply = await harness.command("streamers", guild=guild, channel=alerts)
    [charlie_line] = [line for line in reply.text.split("\n\n") if "charlie" in line]
    assert "polling only" in charlie_line, reply.text
    assert reply.text.count("polling only") == 1, reply.text

    fake_twitch.go_live("alpha", title="alpha pushed")
    fake_twitch.go_live("bravo", title="bravo pushed")
    await fake_discord.wait_for_messages(2, timeout=5)
    fake_twitch.go_live("charlie", title="charlie polled", listed_after=0)
    assert len(pushed_of(fake_twitch, "stream.online")) == 2  # nothing to push charlie's on
    assert len(announcements(fake_discord)) == 2
    await harness.poll()
    await fake_discord.wait_for_messages(3, timeout=5)
    titles = sorted(m.embeds[0]["title"] for m in announcements(fake_discord))
    assert titles == ["alpha pushed", "bravo pushed", "charlie polled"]

    reply = await harness.command("removestreamer", {"streamer": "alpha"}, guild=guild, channel=alerts)
    assert "Stopped following" in reply.text, reply.text
    await harness.wait_for(lambda: push.sync.push_covers(charlie), "charlie to be pushed", 3)
    await harness.eventually(lambda: _states_are(harness, {}), "charlie's poll-only state to be cleared")
    assert subs_of(fake_twitch, "alpha", None) == []
    assert push.status().subscriptions.poll_only == 0


async def _states_are(harness, expected):
    return await harness.db.push_states() == expected


# ------------------------------------------------------------------------------------------- revocation


async def test_a_revoked_stream_online_falls_back_to_polling(pushed, harness, fake_discord, fake_twitch):
    """Twitch revokes the stream.online subscription (user_removed): the streamer is polled from then on,
    still announced, its push state recorded and shown, and the subscription is not created again."""
    guild, alerts = pushed
    eventsub = fake_twitch.eventsub
    push = harness.bot.push
    user_id = fake_twitch.user("shroud").id
    [online] = [s for s in eventsub.subscriptions.values() if s.type == "stream.online"]
    posts = len(eventsub_calls(fake_twitch, "POST"))
    eventsub.revoke(online, "user_removed")
    await harness.wait_for(lambda: push.handler.stats.revocations == 1, "the revocation")
    await harness.eventually(lambda: _states_are(harness, {user_id: "user_removed"}), "the push state")
    assert not push.sync.push_covers(user_id)
    assert push.status().subscriptions.revoked == {"user_removed": 1}
    reply = await harness.command("streamers", guild=guild, channel=alerts)
    assert "user_removed" in reply.text, reply.text

    fake_twitch.go_live("shroud", title="Found by the poll", listed_after=0)
    assert pushed_of(fake_twitch, "stream.online") == []  # nothing to push it on any more
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, timeout=5)
    assert message.embeds[0]["title"] == "Found by the poll"
    await harness.poll()
    assert len(announcements(fake_discord)) == 1
    assert len(eventsub_calls(fake_twitch, "POST")) == posts


# ----------------------------------------------------------------------------------- production's 2 shards


async def test_two_shards_as_in_production_and_one_socket_lost_loses_no_go_live(harness, fake_discord, fake_twitch):
    """Production binds two sessions to two shards; when one session drops, Twitch retries the other shard
    (facts §2), so a go-live routed to the lost shard is still pushed, once, while its socket reconnects."""
    harness.eventsub_options["shard_count"] = 2
    harness.eventsub_options["socket_backoff"] = 5.0  # the dropped socket stays down during the test
    logins = [f"streamer{index}" for index in range(6)]
    _guild, alerts = await start_pushed(harness, fake_discord, fake_twitch, *logins, bound=False)
    push = harness.bot.push
    await harness.wait_for(lambda: push.status().shards_connected == 2, "both shards to be bound")
    await wait_pushed(harness, fake_twitch, *logins)
    [conduit] = fake_twitch.eventsub.conduits.values()
    assert conduit.shard_count == 2
    assert {shard.status for shard in conduit.shards.values()} == {"enabled"}
    assert len({shard.session_id for shard in conduit.shards.values()}) == 2  # one session each

    lost = conduit.shards["0"].session_id
    await fake_twitch.eventsub.close_session(lost, 4006)  # a network error on shard 0's session
    await harness.wait_for(lambda: push.status().shards_connected == 1, "shard 0 to be seen down")
    for login in logins:  # some hash to shard 0, whose session is gone: Twitch retries them on shard 1
        fake_twitch.go_live(login, title=f"{login} live")
    posted = await fake_discord.wait_for_messages(len(logins), timeout=5)
    assert sorted(m.embeds[0]["title"] for m in posted) == sorted(f"{login} live" for login in logins)
    assert {m.channel_id for m in posted} == {alerts.id}
    routed_to_lost = [
        login for login in logins if fake_twitch.eventsub.shard_for(conduit.id, fake_twitch.user(login).id) == "0"
    ]
    assert routed_to_lost, "the test needs a streamer whose go-lives hash to shard 0"
    assert fake_twitch.eventsub.dropped == []
    assert len(announcements(fake_discord)) == len(logins)
