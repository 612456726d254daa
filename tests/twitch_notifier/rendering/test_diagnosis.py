"""rendering.diagnosis: the test alert pings nobody and says so; the diagnosis lines name what is missing."""

from datetime import UTC, datetime

from twitch_notifier.models import LastAnnouncement, LiveStream, Streamer
from twitch_notifier.rendering.diagnosis import (
    TEST_MARK,
    ChannelDiagnosis,
    EntryDiagnosis,
    alert_preview,
    as_test_alert,
    channel_line,
    entry_line,
)
from twitch_notifier.rendering.messages import live_announcement

STREAMER = Streamer("1", "shroud", "shroud")
STREAM = LiveStream("1", "s1", "Ranked", "VALORANT", 10, datetime(2026, 12, 1, tzinfo=UTC), "")
AT = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_a_test_alert_is_marked_and_allows_no_mention_whatever_the_card_allowed():
    card = live_announcement(STREAM, STREAMER, ping="everyone", template="{ping} {streamer} is live")
    assert card.allowed_mentions["parse"] == ["everyone"]
    test = as_test_alert(card, ping_described="a real one would ping @\u200beveryone")
    assert test.allowed_mentions == {"parse": [], "replied_user": False}
    assert test.content.startswith(f"-# {TEST_MARK}")
    assert test.embed["footer"]["text"] == f"{TEST_MARK} · Twitch"
    assert test.embed["title"] == card.embed["title"]
    assert test.components == card.components
    assert card.embed["footer"]["text"] == "Twitch"  # the card itself is left as it was


def test_a_test_alert_of_an_entry_with_the_button_shows_it_and_still_pings_nobody():
    test = alert_preview(
        STREAM, STREAMER, template="{ping} {streamer} is live", notify_button=True, ping_described="pinging nobody"
    )
    [row] = test.components
    assert [b["label"] for b in row["components"]] == ["Watch stream", "\N{BELL} Notify me"]
    assert row["components"][1]["custom_id"] == "notify:1"  # a press works as on a real card
    assert test.allowed_mentions == {"parse": [], "replied_user": False}
    assert test.content == f"-# {TEST_MARK}: a preview, pinging nobody\nshroud is live"
    without = alert_preview(STREAM, STREAMER, template=None, notify_button=False, ping_described="pinging nobody")
    assert [b["label"] for b in without.components[0]["components"]] == ["Watch stream"]


def test_channel_line_names_each_missing_permission_and_the_publish_state():
    fine = channel_line(ChannelDiagnosis(5, news=True, publish_wanted=True))
    assert fine == "**<#5>** — post ✅ · embed ✅ · publish ✅"
    broken = channel_line(ChannelDiagnosis(5, cannot_post=("Send Messages",), cannot_embed=("Embed Links",)))
    assert broken == "**<#5>** — post ❌ missing **Send Messages** · embed ❌ missing **Embed Links** · publish: off"
    assert "not an announcement channel" in channel_line(ChannelDiagnosis(5, publish_wanted=True))
    assert "deleted" in channel_line(ChannelDiagnosis(5, exists=False))


def test_entry_line_links_the_last_announcement_and_dates_the_failures():
    last = LastAnnouncement(7, 5, 99, AT)
    line = entry_line(3, EntryDiagnosis(7, STREAMER, 5, "@everyone", last=last))
    assert line == (
        f"• **shroud** · ping @\u200beveryone · last announced <t:{int(AT.timestamp())}:R> "
        "([message](https://discord.com/channels/3/5/99))"
    )
    old = entry_line(3, EntryDiagnosis(7, STREAMER, 5, "none", last_failure="Discord answered 503", last_failure_at=AT))
    assert old.endswith(f"\n  last failure <t:{int(AT.timestamp())}:R>: Discord answered 503")
    current = entry_line(
        3,
        EntryDiagnosis(7, STREAMER, 5, "none", last_failure="gone", last_failure_at=AT, current_error="gone"),
    )
    assert current.endswith(f"\n  ❌ failing: gone (since <t:{int(AT.timestamp())}:R>)")
    assert "no announcement on record" in current


def test_entry_line_says_whether_the_opt_in_role_can_be_handed_out():
    def line(**opt_in):
        return entry_line(3, EntryDiagnosis(7, STREAMER, 5, "@shroud live", notify_button=True, **opt_in))

    assert line() == "• **shroud** · ping @shroud live · \N{BELL} Notify me ✅ · no announcement on record"
    assert "\N{BELL} Notify me ❌ missing **Manage Roles** · " in line(opt_in_missing=("Manage Roles",))
    above = line(opt_in_role_above="shroud_live*")
    assert "\N{BELL} Notify me ❌ @shroud\\_live\\* is above my highest role: move mine above it" in above
    both = line(opt_in_missing=("Manage Roles",), opt_in_role_above="x")
    assert "❌ missing **Manage Roles**; @x is above my highest role" in both
    assert "Notify me" not in entry_line(3, EntryDiagnosis(7, STREAMER, 5, "none"))  # button off: not checked
