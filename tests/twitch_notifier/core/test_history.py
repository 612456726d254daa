"""Unit tests for core/history.py: time-weighted viewer averages over irregular and missing samples, streams
across midnight, a stream id that ends and comes back, the category timeline, thinning, and the period and
server statistics."""

from datetime import UTC, date, datetime, timedelta

import pytest

from twitch_notifier.core.history import (
    MAX_HOLD,
    CategoryPeriod,
    category_timeline,
    observations,
    server_stats,
    split_by_day,
    split_by_hour,
    streamer_stats,
    summarize,
    thin,
    viewer_totals,
)
from twitch_notifier.models import CategoryChange, LiveStream, Streamer, StreamHistory, ViewerSample

T0 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # a Monday
HOLD = int(MAX_HOLD.total_seconds())
VALORANT_ONLY = (CategoryChange(0, "1", "VALORANT"),)


def history(
    samples=(),
    *,
    start=T0,
    minutes=60,
    categories=VALORANT_ONLY,
    ended=True,
    stream_id="s1",
    user="1",
    peak=None,
) -> StreamHistory:
    end = start + timedelta(minutes=minutes)
    return StreamHistory(
        stream_id=stream_id,
        twitch_user_id=user,
        started_at=start,
        last_seen_at=end,
        ended_at=end if ended else None,
        peak_viewers=max((v for _, v in samples), default=0) if peak is None else peak,
        samples=tuple(ViewerSample(o, v) for o, v in samples),
        categories=tuple(categories),
    )


# -- one stream --------------------------------------------------------------------------------------------


def test_the_average_is_weighted_by_how_long_each_count_stood():
    # 100 for one minute, 200 for four, 50 for one: the mean of the counts would be 116.7.
    viewer_seconds, observed = viewer_totals([ViewerSample(0, 100), ViewerSample(60, 200), ViewerSample(300, 50)], 360)
    assert (viewer_seconds, observed) == (100 * 60 + 200 * 240 + 50 * 60, 360)
    recap = summarize(history([(0, 100), (60, 200), (300, 50)], minutes=6))
    assert recap.average_viewers == pytest.approx(57_000 / 360)
    assert recap.peak_viewers == 200


def test_samples_arriving_in_any_order_and_twice_at_one_moment_count_once():
    shuffled = [ViewerSample(300, 50), ViewerSample(0, 100), ViewerSample(60, 999), ViewerSample(60, 200)]
    assert viewer_totals(shuffled, 360) == viewer_totals(
        [ViewerSample(0, 100), ViewerSample(60, 200), ViewerSample(300, 50)], 360
    )


def test_a_gap_longer_than_the_hold_is_not_observed():
    # The bot was down for two hours: 100 viewers stand for MAX_HOLD after the last count, not for the gap.
    viewer_seconds, observed = viewer_totals([ViewerSample(0, 100), ViewerSample(7200, 300)], 7500)
    assert observed == HOLD + 300
    assert viewer_seconds == 100 * HOLD + 300 * 300
    recap = summarize(history([(0, 100), (7200, 300)], minutes=125))
    assert recap.duration == timedelta(minutes=125)  # the stream was live all along: the gap is only unobserved
    assert recap.observed == timedelta(seconds=HOLD + 300)
    assert recap.average_viewers == pytest.approx((100 * HOLD + 300 * 300) / (HOLD + 300))


def test_one_count_only_or_none_at_all():
    assert summarize(history([(3600, 42)], minutes=60)).average_viewers == 42  # seen once, at its very end
    empty = summarize(history([], minutes=60, peak=0))
    assert empty.average_viewers is None
    assert empty.peak_viewers == 0
    assert empty.observed == timedelta()


def test_a_stream_id_that_ended_and_came_back_is_one_stream_whose_break_is_unobserved():
    # Seen for ten minutes, gone for forty (ended, then Twitch listed the same id again), ten minutes more.
    samples = [(0, 10), (300, 10), (600, 10), (3000, 30), (3300, 30), (3600, 30)]
    recap = summarize(history(samples, minutes=60))
    assert recap.duration == timedelta(hours=1)
    assert recap.observed == timedelta(seconds=600 + HOLD + 600)
    assert recap.average_viewers == pytest.approx((10 * 600 + 10 * HOLD + 30 * 600) / (600 + HOLD + 600))
    stats = streamer_stats([history(samples, minutes=60)], now=T0 + timedelta(days=1), period="7d")
    assert stats.streams == 1
    assert stats.live_time == timedelta(hours=1)


def test_a_live_stream_ends_for_now_at_its_last_sighting():
    recap = summarize(history([(0, 5), (600, 8)], minutes=10, ended=False))
    assert recap.live
    assert recap.ended_at == T0 + timedelta(minutes=10)
    assert recap.duration == timedelta(minutes=10)


def test_the_category_timeline_joins_repeats_and_merges_listing_flaps():
    changes = [
        CategoryChange(0, "1", "VALORANT"),
        CategoryChange(600, "2", "Just Chatting"),
        CategoryChange(630, "1", "VALORANT"),  # the lagging listing said the old category once more
        CategoryChange(700, "2", "Just Chatting"),
        CategoryChange(1800, "2", "Just Chatting"),  # the same again: not a change
        CategoryChange(3000, "3", "Elden Ring"),
    ]
    assert category_timeline(changes, timedelta(seconds=3600)) == (
        CategoryPeriod(timedelta(0), timedelta(seconds=600), "1", "VALORANT"),
        CategoryPeriod(timedelta(seconds=600), timedelta(seconds=2400), "2", "Just Chatting"),
        CategoryPeriod(timedelta(seconds=3000), timedelta(seconds=600), "3", "Elden Ring"),
    )


def test_a_short_category_between_two_different_ones_is_a_real_change():
    changes = [CategoryChange(0, "1", "A"), CategoryChange(600, "2", "B"), CategoryChange(660, "3", "C")]
    assert [p.game_name for p in category_timeline(changes, timedelta(seconds=1200))] == ["A", "B", "C"]
    assert category_timeline([], timedelta(hours=1)) == ()


def test_thinning_keeps_the_totals_and_the_peak_and_a_sample_per_bucket():
    samples = [(offset, 100 + (offset // 90) % 7 * 10) for offset in range(0, 4 * 3600, 90)]
    full = history(samples, minutes=240, peak=999)
    thinned = thin(full)
    assert len(thinned.samples) == 24  # one per 10 minutes of 4 hours
    assert all(s.offset % 600 < 90 for s in thinned.samples)
    assert (thinned.viewer_seconds, thinned.observed_seconds) == viewer_totals(full.samples, 4 * 3600)
    assert summarize(thinned).average_viewers == summarize(full).average_viewers
    assert summarize(thinned).peak_viewers == 999  # kept per stream, whatever the samples left say
    assert thin(thinned).viewer_seconds == thinned.viewer_seconds  # thinning twice changes nothing more


def test_observations_count_viewers_only_when_the_source_did():
    live = LiveStream("1", "s1", "title", "VALORANT", 321, T0, "", game_id="9")
    [polled] = observations([live], viewers_counted=True)
    [pushed] = observations([live], viewers_counted=False)
    assert (polled.viewers, pushed.viewers) == (321, None)
    assert (polled.stream_id, polled.game_id, polled.game_name, polled.started_at) == ("s1", "9", "VALORANT", T0)


# -- days and hours ----------------------------------------------------------------------------------------


def test_a_stream_across_midnight_counts_on_both_days_and_hours():
    start = datetime(2026, 11, 30, 22, 30, tzinfo=UTC)
    end = start + timedelta(hours=3)
    assert split_by_day(start, end) == {
        date(2026, 11, 30): timedelta(hours=1, minutes=30),
        date(2026, 12, 1): timedelta(hours=1, minutes=30),
    }
    hours = split_by_hour(start, end)
    assert hours[(0, 22)] == timedelta(minutes=30)  # Monday 22:30-23:00
    assert hours[(1, 1)] == timedelta(minutes=30)  # Tuesday 01:00-01:30
    assert sum(hours.values(), timedelta()) == timedelta(hours=3)


def test_times_in_another_zone_are_counted_in_utc():
    from zoneinfo import ZoneInfo

    start = datetime(2026, 12, 1, 0, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 23:30 UTC the day before
    assert split_by_day(start, start + timedelta(hours=1)) == {
        date(2026, 11, 30): timedelta(minutes=30),
        date(2026, 12, 1): timedelta(minutes=30),
    }


# -- a period ----------------------------------------------------------------------------------------------


def test_streamer_stats_over_a_period_clip_to_it_and_weigh_every_stream():
    now = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    old = history([(0, 1000)], start=now - timedelta(days=40), minutes=60, stream_id="old")
    straddling = history(
        [(0, 10), (3600, 30)], start=now - timedelta(days=7, hours=1), minutes=120, stream_id="edge", peak=35
    )
    recent = history(
        [(0, 100), (1800, 300)],
        start=now - timedelta(days=1),
        minutes=60,
        stream_id="recent",
        categories=[CategoryChange(0, "1", "VALORANT"), CategoryChange(1800, "2", "Just Chatting")],
    )
    stats = streamer_stats([old, straddling, recent], now=now, period="7d")
    assert stats.streams == 2  # the old one is outside, the one straddling the start counts
    assert stats.live_time == timedelta(hours=2)  # one hour of the straddling stream, all of the recent one
    assert stats.average_length == timedelta(minutes=90)
    assert stats.peak_viewers == 300
    # Each count stands MAX_HOLD (15 min) at most: the streams were sampled every hour and every half hour.
    assert stats.average_viewers == pytest.approx((10 + 30 + 100 + 300) * HOLD / (4 * HOLD))
    assert [(c.game_name, c.time) for c in stats.top_categories] == [
        ("VALORANT", timedelta(minutes=90)),
        ("Just Chatting", timedelta(minutes=30)),
    ]
    assert len(stats.per_day) == 8  # every day from the period's start to today, empty ones included
    assert sum((t for _, t in stats.per_day), timedelta()) == stats.live_time
    assert sum(sum(row) for row in stats.heatmap) == pytest.approx(2.0)
    assert stats.last_stream is not None
    assert stats.last_stream.stream_id == "recent"
    assert stats.last_samples == ((recent.started_at, 100), (recent.started_at + timedelta(minutes=30), 300))
    everything = streamer_stats([old, straddling, recent], now=now, period="all")
    assert (everything.streams, everything.start) == (3, old.started_at)


def test_streamer_stats_of_nothing():
    stats = streamer_stats([], now=T0, period="30d")
    assert (stats.streams, stats.live_time, stats.average_viewers, stats.last_stream) == (0, timedelta(), None, None)
    assert streamer_stats([], now=T0, period="all").start == T0
    with pytest.raises(KeyError):
        streamer_stats([], now=T0, period="1y")


def test_server_stats_rank_by_hours_and_by_peak():
    now = T0 + timedelta(days=1)
    a, b, c = Streamer("1", "alice", "Alice"), Streamer("2", "bob", "Bob"), Streamer("3", "carol", "Carol")
    histories = {
        "1": [history([(0, 50)], minutes=240, user="1", stream_id="a1")],
        "2": [
            history([(0, 900)], minutes=30, user="2", stream_id="b1"),
            history([(0, 10)], start=T0 + timedelta(hours=2), minutes=30, user="2", stream_id="b2"),
        ],
        "3": [history([(0, 5)], start=T0 - timedelta(days=60), user="3", stream_id="c1")],
    }
    stats = server_stats(histories, [a, b, c], now=now, period="7d")
    assert [(r.streamer.login, r.live_time, r.streams) for r in stats.by_hours] == [
        ("alice", timedelta(hours=4), 1),
        ("bob", timedelta(hours=1), 2),
    ]
    assert [(r.streamer.login, r.peak_viewers) for r in stats.by_peak] == [("bob", 900), ("alice", 50)]
    assert stats.quiet == 1  # carol streamed, but not in the period


# -- the upkeep (core/poller.py Housekeeping, over the real store) -------------------------------------------


class NoTwitch:
    async def get_users(self, *, logins=(), ids=()):
        return []

    async def validate_token(self):
        return True

    async def get_streams(self, user_ids):
        raise AssertionError("the upkeep asks nothing of Twitch")


class NoNotifier:
    async def prune(self):
        return 0


async def test_the_upkeep_forgets_old_streams_thins_old_samples_and_waits_its_interval(tmp_path):
    from database import Database
    from twitch_notifier.core.poller import Housekeeping
    from twitch_notifier.models import StreamObservation

    now = [T0]
    db = await Database.open(str(tmp_path / "bot.db"), clock=lambda: now[0])
    streamer = Streamer("1", "alice", "Alice")
    await db.add_subscription(1, 10, streamer)

    async def stream(stream_id: str, started: datetime, polls: int) -> None:
        for poll in range(polls):
            now[0] = started + timedelta(seconds=90 * poll)
            seen = StreamObservation("1", stream_id, started, "1", "VALORANT", 100 + poll)
            await db.apply_live_changes([], {}, [], observations=[seen])
        await db.apply_live_changes([], {}, [], ended_streams=[stream_id])

    await stream("ancient", T0 - timedelta(days=400), 10)
    await stream("old", T0 - timedelta(days=45), 80)
    await stream("recent", T0 - timedelta(days=2), 80)
    now[0] = T0
    monotonic = [1000.0]
    chores = Housekeeping(
        db, NoTwitch(), NoNotifier(), monotonic=lambda: monotonic[0], clock=lambda: now[0],
        history_retention=timedelta(days=365),
    )  # fmt: skip
    try:
        await chores.refresh_streamers_if_due()  # the upkeep rides along, Twitch or not
        assert {h.stream_id for h in await db.streamer_history("1", None)} == {"old", "recent"}
        kept = await db.stream_histories(["old", "recent"])
        assert len(kept["old"].samples) == 12  # two hours at one per 10 minutes
        assert kept["old"].viewer_seconds is not None
        assert len(kept["recent"].samples) == 80  # younger than THIN_AFTER: every sample
        await stream("another ancient", T0 - timedelta(days=500), 3)
        now[0] = T0
        monotonic[0] += 3600  # an hour later: not due yet
        await chores.keep_history_if_due()
        assert len(await db.streamer_history("1", None)) == 3
        monotonic[0] += 6 * 3600
        await chores.keep_history_if_due()
        assert len(await db.streamer_history("1", None)) == 2
    finally:
        await db.close()
