"""core.opt_in: the Notify me button's custom id, the opt-in role's name, and whom an announcement pings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twitch_notifier.core.opt_in import (
    ROLE_NAME_LIMIT,
    PingDecision,
    announcement_ping,
    notify_custom_id,
    parse_notify_custom_id,
    role_name,
    throttle_ends,
)
from twitch_notifier.models import LastPing, PendingAnnouncement

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


def pending(**changes) -> PendingAnnouncement:
    values: dict = {
        "subscription_id": 1,
        "guild_id": 10,
        "channel_id": 20,
        "twitch_user_id": "123",
        "stream_id": "s2",
        "ping": "everyone",
    }
    return PendingAnnouncement(**(values | changes))


def test_custom_id_round_trip_and_fits_discord():
    custom_id = notify_custom_id("98765432109876543210")
    assert custom_id == "notify:98765432109876543210"
    assert len(custom_id) <= 100
    assert parse_notify_custom_id(custom_id) == "98765432109876543210"


@pytest.mark.parametrize(
    "custom_id",
    ["", "notify:", "notify:abc", "notify:12 3", "notify:123:456", "NOTIFY:123", "watch:123", "notify:" + "1" * 21],
)
def test_other_or_forged_custom_ids_name_nobody(custom_id):
    assert parse_notify_custom_id(custom_id) is None


def test_role_name_is_the_display_name_cleaned_and_cut():
    assert role_name("Shroud", "shroud") == "Shroud live"
    assert role_name("@everyone <@&1>", "evil") == "everyone &1 live"  # nothing mention-like is left
    assert role_name("   ", "fallback_login") == "fallback_login live"
    assert len(role_name("x" * 300, "x")) == ROLE_NAME_LIMIT


def test_without_the_button_the_configured_ping_goes_out():
    assert announcement_ping(pending(), NOW) == PingDecision("everyone")
    assert announcement_ping(pending(ping=None), NOW) == PingDecision(None)


def test_the_button_pings_the_opt_in_role_instead_of_the_configured_ping():
    decision = announcement_ping(pending(notify_button=True, notify_role_id=555), NOW)
    assert decision == PingDecision("555", remember=True)


def test_the_button_without_a_role_yet_pings_nobody():
    decision = announcement_ping(pending(notify_button=True), NOW)
    assert decision == PingDecision("", remember=True)


def test_throttle_holds_back_a_new_streams_ping_within_the_window():
    last = LastPing("s1", NOW - timedelta(hours=2, minutes=59))
    decision = announcement_ping(pending(ping_throttle_hours=3, last_ping=last), NOW)
    assert decision == PingDecision("", remember=True, throttled=True)


def test_throttle_lets_the_ping_through_once_the_window_is_over():
    last = LastPing("s1", NOW - timedelta(hours=3))
    assert announcement_ping(pending(ping_throttle_hours=3, last_ping=last), NOW) == PingDecision("everyone")


def test_throttle_never_silences_the_same_stream_in_another_channel():
    last = LastPing("s2", NOW - timedelta(minutes=1))
    decision = announcement_ping(
        pending(ping_throttle_hours=3, last_ping=last, notify_button=True, notify_role_id=7), NOW
    )
    assert decision == PingDecision("7", remember=True)


def test_throttle_off_or_never_pinged_changes_nothing():
    recent = LastPing("s1", NOW - timedelta(minutes=1))
    assert announcement_ping(pending(ping_throttle_hours=None, last_ping=recent), NOW) == PingDecision("everyone")
    assert announcement_ping(pending(ping_throttle_hours=3, last_ping=None), NOW) == PingDecision("everyone")


def test_throttle_ends_says_until_when_a_new_stream_pings_nobody():
    last = LastPing("s1", NOW - timedelta(hours=1))
    assert throttle_ends(last, 3, NOW) == NOW + timedelta(hours=2)
    assert throttle_ends(last, 1, NOW) is None  # exactly over: it may ping again
    assert throttle_ends(last, None, NOW) is None
    assert throttle_ends(last, 0, NOW) is None
    assert throttle_ends(None, 3, NOW) is None
