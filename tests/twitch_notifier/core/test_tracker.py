"""Unit tests for core.tracker.reconcile: started / continued / ended decisions, unknowns untouched."""

from datetime import UTC, datetime

import pytest

from twitch_notifier.core.tracker import reconcile
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
