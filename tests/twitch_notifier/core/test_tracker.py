"""Unit tests for core.tracker.reconcile: started / continued / ended decisions, unknowns untouched."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from twitch_notifier.core.tracker import reconcile, screen_poll
from twitch_notifier.models import LiveStream
from twitch_notifier.twitch.mapping import live_stream_from
from twitch_notifier.twitch.models import StreamsSnapshot, TwitchStream

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def stream(user_id: str, stream_id: str, title: str = "t") -> TwitchStream:
    return TwitchStream(
        id=stream_id,
        user_id=user_id,
        user_login=f"login{user_id}",
        user_name=f"Name{user_id}",
        game_id="1",
        game_name="Game",
        title=title,
        viewer_count=5,
        started_at=T0,
        thumbnail_url="https://x/{width}x{height}.jpg",
    )


def snapshot(live: list[TwitchStream], checked: set[str], failed: set[str] = frozenset()) -> StreamsSnapshot:
    return StreamsSnapshot(
        streams={s.user_id: s for s in live}, checked=frozenset(checked), failed=frozenset(failed), requests=1
    )


def state(user_id: str, stream_id: str, missed: int = 0) -> LiveStream:
    current = live_stream_from(stream(user_id, stream_id))
    return LiveStream(**{**{f: getattr(current, f) for f in current.__slots__}, "missed_polls": missed})


def test_new_stream_started():
    outcome = reconcile({}, snapshot([stream("1", "a")], {"1", "2"}))
    assert [s.stream_id for s in outcome.started] == ["a"]
    assert [s.stream_id for s in outcome.live] == ["a"]
    assert outcome.ended == []
    assert outcome.offline == []
    assert outcome.missed == {}


def test_continuing_stream_is_not_started_again_and_resets_misses():
    outcome = reconcile({"1": state("1", "a", missed=1)}, snapshot([stream("1", "a", "new title")], {"1"}))
    assert outcome.started == []
    assert outcome.live[0].title == "new title"
    assert outcome.live[0].missed_polls == 0


def test_absent_needs_consecutive_misses_before_offline():
    previous = {"1": state("1", "a")}
    first = reconcile(previous, snapshot([], {"1"}), offline_after_polls=2)
    assert first.offline == []
    assert first.missed == {"1": 1}
    assert first.ended == []
    second = reconcile({"1": state("1", "a", missed=1)}, snapshot([], {"1"}), offline_after_polls=2)
    assert second.offline == ["1"]
    assert [s.stream_id for s in second.ended] == ["a"]


def test_single_poll_offline_when_configured():
    outcome = reconcile({"1": state("1", "a")}, snapshot([], {"1"}), offline_after_polls=1)
    assert outcome.offline == ["1"]


@pytest.mark.parametrize("how", ["failed", "unchecked"])
def test_unknown_streamers_are_left_alone(how):
    failed = {"1"} if how == "failed" else set()
    checked = {"1"} if how == "failed" else set()
    outcome = reconcile({"1": state("1", "a", missed=1)}, snapshot([], checked, failed), offline_after_polls=2)
    assert outcome == reconcile({}, snapshot([], set()))


def test_new_stream_id_replaces_the_old_one():
    outcome = reconcile({"1": state("1", "a")}, snapshot([stream("1", "b")], {"1"}))
    assert [s.stream_id for s in outcome.started] == ["b"]
    assert [s.stream_id for s in outcome.ended] == ["a"]
    assert outcome.offline == []


def test_invalid_threshold():
    with pytest.raises(ValueError, match="offline_after_polls"):
        reconcile({}, snapshot([], set()), offline_after_polls=0)


# ---------------------------------------------------------------------------------- screen_poll (push ahead)

GRACE = timedelta(minutes=5)


def screen(poll, previous, ended=frozenset(), now=T0 + timedelta(minutes=1)):
    return screen_poll(poll, previous, ended, now=now, listing_grace=GRACE)


def later(user_id: str, stream_id: str, minutes: int) -> TwitchStream:
    return dataclasses.replace(stream(user_id, stream_id), started_at=T0 + timedelta(minutes=minutes))


def pushed(user_id: str, stream_id: str, minutes: int = 0) -> LiveStream:
    """A live row push wrote (at T0), started `minutes` after T0."""
    row = dataclasses.replace(state(user_id, stream_id), pushed_at=T0)
    return dataclasses.replace(row, started_at=T0 + timedelta(minutes=minutes))


def test_screen_poll_passes_a_poll_through_when_push_said_nothing():
    poll = snapshot([stream("1", "a")], {"1", "2"})
    assert screen(poll, {"1": state("1", "a")}) is poll


def test_a_pushed_stream_the_listing_does_not_show_yet_is_unknown_not_missed():
    screened = screen(snapshot([], {"1", "2"}), {"1": pushed("1", "b")})
    assert "1" in screened.failed
    assert "2" not in screened.failed
    outcome = reconcile({"1": pushed("1", "b")}, screened, offline_after_polls=1)
    assert outcome.offline == []
    assert outcome.ended == []
    assert outcome.missed == {}


def test_past_the_grace_a_pushed_stream_the_listing_never_showed_counts_as_missed():
    screened = screen(snapshot([], {"1"}), {"1": pushed("1", "b")}, now=T0 + GRACE + timedelta(seconds=1))
    assert not screened.failed


def test_the_listing_still_showing_the_previous_stream_does_not_replace_the_pushed_one():
    # Push said stream "b" began at T0+10 min; the lagging listing still shows the old stream "a" (T0).
    current = pushed("1", "b", minutes=10)
    screened = screen(snapshot([stream("1", "a")], {"1"}), {"1": current})
    assert screened.streams == {}
    assert screened.failed == {"1"}
    outcome = reconcile({"1": current}, screened)
    assert outcome.started == []
    assert outcome.ended == []


def test_an_older_stream_than_the_one_live_is_stale_even_when_the_poll_found_it():
    current = dataclasses.replace(state("1", "b"), started_at=T0 + timedelta(minutes=10))
    screened = screen(snapshot([stream("1", "a")], {"1"}), {"1": current})
    assert screened.failed == {"1"}
    assert reconcile({"1": current}, screened).ended == []


def test_a_newer_stream_than_the_pushed_one_is_news():
    screened = screen(snapshot([later("1", "c", 20)], {"1"}), {"1": pushed("1", "b")})
    assert set(screened.streams) == {"1"}
    assert not screened.failed


def test_a_stream_push_ended_is_stale_in_the_listing():
    screened = screen(snapshot([stream("1", "a"), stream("2", "z")], {"1", "2"}), {}, {"a"})
    assert set(screened.streams) == {"2"}
    assert screened.failed == {"1"}
    assert [s.stream_id for s in reconcile({}, screened).started] == ["z"]
