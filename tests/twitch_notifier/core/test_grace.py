"""The restart grace (core.grace): which new stream continues the card of the one before it."""

from datetime import UTC, datetime, timedelta

import config
from twitch_notifier.core.grace import MAX_GRACE_SECONDS, effective_grace, is_reconnect

ENDED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STARTED_BEFORE = ENDED - timedelta(hours=3)
TEN_MINUTES = timedelta(minutes=10)


def test_a_start_within_the_grace_of_the_last_end_is_a_reconnect():
    assert is_reconnect(ENDED, ENDED + timedelta(minutes=2), TEN_MINUTES)
    assert is_reconnect(ENDED, ENDED + TEN_MINUTES, TEN_MINUTES)  # the bound itself is inside
    assert not is_reconnect(ENDED, ENDED + TEN_MINUTES + timedelta(seconds=1), TEN_MINUTES)


def test_a_start_before_the_recorded_end_still_counts():
    # The end is the last sighting, which Twitch's lagging listing can place after the new stream began.
    assert is_reconnect(ENDED, ENDED - timedelta(seconds=40), TEN_MINUTES, previous_started_at=STARTED_BEFORE)


def test_zero_grace_no_end_or_an_older_stream_is_never_a_reconnect():
    assert not is_reconnect(ENDED, ENDED + timedelta(seconds=1), timedelta(0))
    assert not is_reconnect(None, ENDED, TEN_MINUTES)
    older = STARTED_BEFORE - timedelta(seconds=1)
    assert not is_reconnect(ENDED, older, TEN_MINUTES, previous_started_at=STARTED_BEFORE)
    # Twitch's times are to the second: a stream that drops at once may restart within its first one.
    assert is_reconnect(STARTED_BEFORE, STARTED_BEFORE, TEN_MINUTES, previous_started_at=STARTED_BEFORE)


def test_a_guild_setting_overrides_the_operator_default():
    assert effective_grace(None, TEN_MINUTES) == TEN_MINUTES
    assert effective_grace(0, TEN_MINUTES) == timedelta(0)
    assert effective_grace(120, TEN_MINUTES) == timedelta(minutes=2)
    assert effective_grace(-5, TEN_MINUTES) == timedelta(0)


def test_the_servers_bound_is_the_operators():
    assert MAX_GRACE_SECONDS == config.MAX_STREAM_RESTART_GRACE_SECONDS
