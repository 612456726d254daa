"""End to end: what an admin or a streamer can send that the bot must refuse or neutralise, not choke on.

A channel option that names no usable text channel (a voice channel or a category typed past Discord's picker,
a channel deleted while the admin was typing, another server's channel) is refused in plain words before
anything is stored; a title or name full of bidi overrides is shown without them; a template of a lone brace
is refused in our words, not Python's.
"""

import logging

import pytest

from tests.fakes.discord_payloads import CATEGORY_CHANNEL, VOICE_CHANNEL
from tests.fakes.fake_discord import InteractionRefused, TypedChannel

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: everything after it is drawn reversed
INVISIBLE = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u200c\u2060\ufeff"


@pytest.fixture
async def world(harness, fake_discord, fake_twitch):
    """Guild A (#alerts, #general, a voice channel, a category) and Guild B (#elsewhere), the bot in both."""
    guild = fake_discord.add_guild("Guild A")
    alerts = fake_discord.add_text_channel(guild.id, "alerts")
    general = fake_discord.add_text_channel(guild.id, "general")
    voice = fake_discord.add_channel(guild.id, "voice-chat", type=VOICE_CHANNEL)
    category = fake_discord.add_channel(guild.id, "Streams", type=CATEGORY_CHANNEL)
    other = fake_discord.add_guild("Guild B")
    elsewhere = fake_discord.add_text_channel(other.id, "elsewhere")
    fake_twitch.add_user("shroud", display_name="shroud")
    await harness.start()
    return guild, alerts, general, voice, category, elsewhere


def channel_refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused channel option" in r.getMessage()]


async def test_the_picker_offers_no_voice_channel(world, harness):
    """Discord's own filter (channel_types from the annotation), kept by the fake for a picked channel."""
    guild, _alerts, general, voice, category, elsewhere = world
    for channel in (voice, category, elsewhere):
        with pytest.raises(InteractionRefused):
            await harness.command("setchannel", {"channel": channel.id}, guild=guild, channel=general)


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("voice", "#voice-chat is a voice channel; pick a text channel for announcements."),
        ("category", "#Streams is a category; pick a text channel for announcements."),
    ],
)
async def test_setchannel_refuses_a_channel_of_the_wrong_kind(world, harness, caplog, which, expected):
    guild, _alerts, general, voice, category, _elsewhere = world
    typed = {"voice": voice, "category": category}[which]
    caplog.set_level(logging.INFO, logger="twitch_notifier")
    reply = await harness.command("setchannel", {"channel": TypedChannel(typed.id)}, guild=guild, channel=general)
    assert reply.ephemeral
    assert reply.text == expected
    assert await harness.db.get_announce_channel(guild.id) is None
    assert channel_refusals(caplog) == [f"/setchannel refused channel option {typed.id}: {which}"]


@pytest.mark.parametrize("resolved", [True, False], ids=["resolved-by-discord", "unresolved-id"])
async def test_setchannel_refuses_a_channel_deleted_while_typing(world, harness, fake_discord, resolved):
    """The admin picked #general, then it was deleted; the bot heard CHANNEL_DELETE before the command."""
    guild, alerts, general, _voice, _category, _elsewhere = world
    await fake_discord.delete_channel(general.id)
    await harness.wait_for(lambda: harness.bot.get_channel(general.id) is None, "CHANNEL_DELETE to reach the cache")
    options = {"channel": TypedChannel(general.id, resolved=resolved)}
    reply = await harness.command("setchannel", options, guild=guild, channel=alerts)
    assert reply.ephemeral
    assert reply.text == "That channel no longer exists. Pick a text channel from the list for announcements."
    assert await harness.db.get_announce_channel(guild.id) is None


async def test_setchannel_refuses_another_servers_channel(world, harness, fake_discord):
    guild, alerts, general, _voice, _category, elsewhere = world
    stranger = fake_discord.add_guild("Guild C, without the bot")
    hidden = fake_discord.add_text_channel(stranger.id, "hidden")
    for channel in (elsewhere, hidden):
        reply = await harness.command("setchannel", {"channel": TypedChannel(channel.id)}, guild=guild, channel=general)
        assert reply.ephemeral
        assert reply.text == "That channel isn't in this server. Pick a text channel of this server for announcements."
    assert await harness.db.get_announce_channel(guild.id) is None
    # The refusal stored nothing, and the command still works with a good channel.
    reply = await harness.command("setchannel", {"channel": alerts.id}, guild=guild, channel=general)
    assert f"<#{alerts.id}>" in reply.text
    assert await harness.db.get_announce_channel(guild.id) == alerts.id


async def test_every_channel_option_refuses_the_same_way(world, harness, fake_twitch):
    """/addstreamer, /editstreamer and /removestreamer: the same refusal, nothing added, changed or removed."""
    guild, alerts, general, voice, category, _elsewhere = world
    voice_refusal = "#voice-chat is a voice channel; pick a text channel for announcements."
    twitch_calls = len(fake_twitch.requests)
    reply = await harness.command(
        "addstreamer", {"streamer": "shroud", "channel": TypedChannel(voice.id)}, guild=guild, channel=general
    )
    assert reply.ephemeral
    assert reply.text == voice_refusal
    assert await harness.db.guild_subscriptions(guild.id) == []
    assert len(fake_twitch.requests) == twitch_calls  # refused before Twitch was asked

    reply = await harness.command(
        "addstreamer", {"streamer": "shroud", "channel": alerts.id}, guild=guild, channel=general
    )
    assert "Now following" in reply.text
    [before] = await harness.db.guild_subscriptions(guild.id)
    reply = await harness.command(
        "editstreamer", {"streamer": "shroud", "channel": TypedChannel(category.id)}, guild=guild, channel=general
    )
    assert reply.text == "#Streams is a category; pick a text channel for announcements."
    reply = await harness.command(
        "removestreamer", {"streamer": "shroud", "channel": TypedChannel(voice.id)}, guild=guild, channel=general
    )
    assert reply.text == voice_refusal
    assert await harness.db.guild_subscriptions(guild.id) == [before]


async def test_invisible_characters_in_titles_and_names_are_stripped(world, harness, fake_discord, fake_twitch):
    guild, alerts, general, *_ = world
    fake_twitch.add_user("trickster", display_name=f"Trick{RLO}ster")
    reply = await harness.command(
        "addstreamer", {"streamer": "trickster", "channel": alerts.id, "message": "{streamer}: {title} ({game})"},
        guild=guild, channel=general,
    )  # fmt: skip
    assert "Now following **Trickster**" in reply.text, reply.text
    fake_twitch.go_live(
        "trickster", title=f"free skins {RLO}knil siht kcilc{INVISIBLE} now", game_name=f"Just{RLO} Chatting"
    )
    await harness.poll()
    [message] = await fake_discord.wait_for_messages(1, channel_id=alerts.id)
    [embed] = message.embeds
    assert embed["title"] == "free skins knil siht kcilc now"
    assert embed["author"]["name"] == "Trickster"
    assert {f["name"]: f["value"] for f in embed["fields"]}["Game"] == "Just Chatting"
    assert message.content == "Trickster: free skins knil siht kcilc now (Just Chatting)"
    reply = await harness.command("live", guild=guild, channel=general)
    assert "Trickster" in reply.text
    assert "free skins knil siht kcilc now" in reply.text
    assert not set(INVISIBLE) & set(reply.text + message.text)


async def test_a_lone_brace_template_is_refused_in_our_words(world, harness):
    guild, _alerts, general, *_ = world
    reply = await harness.command("settings", {"message": "}"}, guild=guild, channel=general, subcommand="set")
    assert reply.ephemeral
    assert reply.text == (
        "The message has a stray `}` without its `{`: placeholders look like `{title}`; write `}}` for a literal brace."
    )
    reply = await harness.command("settings", {"message": "{"}, guild=guild, channel=general, subcommand="set")
    assert reply.text == (
        "The message has a stray `{` without its `}`: placeholders look like `{title}`; write `{{` for a literal brace."
    )
    assert (await harness.db.get_guild_settings(guild.id)).message_template is None
