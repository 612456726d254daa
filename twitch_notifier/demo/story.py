"""The demo's story, played against a running DemoWorld: an admin sets the bot up for three streamers, one goes
live by push and one by poll, one changes game (the card follows), one ends (the card becomes the recap).

Each step waits for its last effect in the fake Discord (never a fixed sleep) and then shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.fakes.fake_discord import FakeMessage
from twitch_notifier.demo.transcript import Narration
from twitch_notifier.demo.world import DemoWorld

__all__ = ["STREAMERS", "play"]

STREAMERS = (("shroud", "shroud"), ("pokimane", "Pokimane"), ("lirik", "LIRIK"))
"""(login, display name) of the three Twitch accounts the admin follows."""
PUSHED = "shroud"
POLLED = "pokimane"
FIRST_GAME = "Counter-Strike"
NEW_GAME = "VALORANT"
PUSHED_VIEWERS = 23_456
POLLED_LIVE_FOR = timedelta(hours=2, minutes=13)


def field_value(message: FakeMessage | None, name: str) -> str | None:
    """The value of the embed field `name` of `message`, if it has one."""
    if message is None or not message.embeds:
        return None
    return next((f.get("value") for f in message.embeds[0].get("fields", []) if f.get("name") == name), None)


def has_ended(message: FakeMessage | None) -> bool:
    """A "was live" card: what a live card becomes when its stream ends."""
    return message is not None and bool(message.embeds) and message.embeds[0]["author"]["name"].endswith(" was live")


async def set_up(world: DemoWorld) -> None:
    """/setchannel, then /addstreamer for each of STREAMERS; returns once Twitch pushes their events."""
    world.say(
        Narration(
            "An admin chooses where announcements go",
            "Commands go through the fake Discord as a member with Manage Server would send them; the replies "
            "are private (ephemeral), as in Discord.",
        )
    )
    await world.command("setchannel", {"channel": world.alerts.id})
    world.say(Narration("…and follows three streamers"))
    for login, display_name in STREAMERS:
        world.add_twitch_user(login, display_name)
        await world.command("addstreamer", {"streamer": login})
    await world.wait_for(
        lambda: all(world.pushed(login) for login, _ in STREAMERS), "the EventSub subscriptions of the three"
    )
    world.say(
        Narration(
            "Anyone in the server can see the list: /streamers",
            "By now the bot has subscribed to each streamer's stream.online, stream.offline and channel.update "
            "on Twitch's EventSub.",
        )
    )
    await world.command("streamers")


async def go_live_by_push(world: DemoWorld) -> None:
    lag = world.timings.listing_lag
    world.say(
        Narration(
            f"{PUSHED} goes live: Twitch pushes it",
            "EventSub's stream.online reaches the bot over its own WebSocket the moment the stream starts. "
            f"Twitch's stream listing lags a go-live (30-60 s on Twitch, {lag:g} s here), so no poll could have "
            "announced it yet: this card came by push.",
        )
    )
    world.go_live(PUSHED, "ranked grind with the squad", FIRST_GAME, viewer_count=PUSHED_VIEWERS)
    took = await world.wait_for(lambda: world.card_of(PUSHED) is not None, f"{PUSHED}'s announcement")
    world.flush(note=f"posted {took:.1f} s after Twitch's push")


async def go_live_by_poll(world: DemoWorld) -> None:
    interval = world.timings.check_interval
    world.say(
        Narration(
            f"Pokimane has been live for {_hours(POLLED_LIVE_FOR)}, but no push ever came",
            "Her stream.online was never delivered (as when EventSub is down). Polling stays on as the safety "
            f"net: every CHECK_INTERVAL_SECONDS ({interval:g} s here, 90 s by default) the bot asks Twitch about "
            "every followed streamer, up to 100 per request, and announces what push missed.",
        )
    )
    world.go_live(
        POLLED,
        "cozy morning stream, come hang out",
        "Just Chatting",
        viewer_count=8_765,
        push=False,
        listed_after=0,
        started_at=datetime.now(UTC) - POLLED_LIVE_FOR,
    )
    display_name = dict(STREAMERS)[POLLED]
    took = await world.wait_for(lambda: world.card_of(display_name) is not None, f"{display_name}'s announcement")
    world.flush(note=f"posted by the poll, {took:.1f} s later")


async def change_game(world: DemoWorld) -> None:
    interval = world.timings.live_update_interval
    world.say(
        Narration(
            f"{PUSHED} switches to {NEW_GAME}",
            "Twitch pushes channel.update; the card follows on the bot's live-update schedule, at most one edit "
            f"per card every LIVE_UPDATE_INTERVAL_SECONDS ({interval:g} s here, 5 minutes by default), with the "
            "viewer count Twitch's listing now shows.",
        )
    )
    world.twitch.update_stream(PUSHED, game_name=NEW_GAME)
    within = interval + world.timings.listing_lag + 4 * world.timings.check_interval + 15

    def updated() -> bool:
        card = world.card_of(PUSHED)
        return field_value(card, "Game") == NEW_GAME and field_value(card, "Viewers") == f"{PUSHED_VIEWERS:,}"

    took = await world.wait_for(updated, f"{PUSHED}'s card to show {NEW_GAME} and its viewers", within)
    world.flush(note=f"the card above, edited {took:.1f} s after the change")


async def end_stream(world: DemoWorld) -> None:
    world.say(
        Narration(
            "Pokimane ends her stream",
            "Twitch pushes stream.offline and the stream ends at once (without push, after two checks that no "
            'longer list it). The card becomes the grey "was live" recap, with a link to the VOD Twitch kept.',
        )
    )
    world.twitch.go_offline(POLLED)
    display_name = dict(STREAMERS)[POLLED]
    took = await world.wait_for(lambda: has_ended(world.card_of(display_name)), f"{display_name}'s recap")
    world.flush(note=f"the card above, edited {took:.1f} s after the stream ended")


async def play(world: DemoWorld) -> None:
    """The whole story, on a started `world`."""
    await set_up(world)
    await go_live_by_push(world)
    await go_live_by_poll(world)
    world.say(Narration("Who is live right now? /live"))
    await world.command("live")
    await change_game(world)
    await end_stream(world)
    world.say(Narration("And now? /live again"))
    await world.command("live")


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    return f"{minutes // 60} h {minutes % 60:02d} min"
