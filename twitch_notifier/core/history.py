"""Stream history, aggregated: one stream's recap (duration, peak, time-weighted average viewers, category
timeline), a period's statistics per streamer and per server, and the thinning of old streams' samples.

Pure functions over the models' dataclasses (no I/O, no clock of its own): the notifier, housekeeping and the
/stats cog hand in what the store returned and the time it is now.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from twitch_notifier.models import (
    CategoryChange,
    LiveStream,
    Streamer,
    StreamHistory,
    StreamObservation,
    ViewerSample,
)

__all__ = [
    "MAX_HOLD",
    "MIN_CATEGORY",
    "PERIODS",
    "THIN_AFTER",
    "THIN_BUCKET",
    "CategoryPeriod",
    "CategoryTime",
    "ServerStats",
    "StreamSummary",
    "StreamerRank",
    "StreamerStats",
    "category_timeline",
    "observations",
    "period_length",
    "server_stats",
    "split_by_day",
    "split_by_hour",
    "streamer_stats",
    "summarize",
    "thin",
    "viewer_totals",
]

MAX_HOLD = timedelta(minutes=15)
"""A viewer count stands for at most this long after it was seen. Past that (the bot was down, Twitch did not
answer, the stream id came back after a break) the time is not observed: it weighs nothing in the average."""
MIN_CATEGORY = timedelta(minutes=2)
"""A category shorter than this between two stretches of one other category is a flap of Twitch's lagging
listing (push said B, the next poll still said A), not a change: the timeline merges it away."""
THIN_AFTER = timedelta(days=30)
"""Streams that ended longer ago than this keep one sample per THIN_BUCKET (their totals are kept first)."""
THIN_BUCKET = 600
"""Seconds per sample kept for a thinned stream: enough for a chart, a tenth of a 90 s poll's samples."""
PERIODS: dict[str, timedelta | None] = {
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
"""The periods /stats offers; None is everything kept (STATS_RETENTION_DAYS)."""
TOP_CATEGORIES = 5
_HOLD_SECONDS = int(MAX_HOLD.total_seconds())


# -- recording ---------------------------------------------------------------------------------------------


def observations(live: Iterable[LiveStream], *, viewers_counted: bool) -> list[StreamObservation]:
    """What one observation adds to the history: every stream seen live, with its viewer count only when
    the source counted them (a poll does; a push's count is 0 or the last known one, not a new sample)."""
    return [
        StreamObservation(
            twitch_user_id=s.twitch_user_id,
            stream_id=s.stream_id,
            started_at=s.started_at,
            game_id=s.game_id,
            game_name=s.game_name,
            viewers=max(0, s.viewer_count) if viewers_counted else None,
        )
        for s in live
    ]


# -- one stream --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CategoryPeriod:
    """A stretch of one category: from `offset` (since the stream started) for `duration`."""

    offset: timedelta
    duration: timedelta
    game_id: str
    game_name: str


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """What the recap of one stream says."""

    stream_id: str
    started_at: datetime
    ended_at: datetime
    """When it ended, or when it was last seen while it is still live."""
    live: bool
    duration: timedelta
    peak_viewers: int
    average_viewers: float | None
    """Time-weighted over the observed time; None with no viewer count at all."""
    observed: timedelta
    timeline: tuple[CategoryPeriod, ...]


def _end(history: StreamHistory) -> datetime:
    return max(history.started_at, history.ended_at or history.last_seen_at)


def _ordered(samples: Iterable[ViewerSample]) -> list[ViewerSample]:
    """By offset; of two samples at one offset the later written (the last in the input) wins."""
    by_offset: dict[int, ViewerSample] = {}
    for sample in samples:
        by_offset[sample.offset] = sample
    return [by_offset[offset] for offset in sorted(by_offset)]


def viewer_totals(samples: Iterable[ViewerSample], end_offset: int) -> tuple[int, int]:
    """(viewer-seconds, observed seconds) of a stream sampled irregularly: each count holds until the next one
    (the last until `end_offset`), but never longer than MAX_HOLD. The average is their quotient."""
    ordered = _ordered(samples)
    viewer_seconds = observed = 0
    for index, sample in enumerate(ordered):
        until = ordered[index + 1].offset if index + 1 < len(ordered) else max(end_offset, sample.offset)
        hold = min(until - sample.offset, _HOLD_SECONDS)
        viewer_seconds += sample.viewers * hold
        observed += hold
    return viewer_seconds, observed


def _totals(history: StreamHistory) -> tuple[int, int]:
    if history.viewer_seconds is not None and history.observed_seconds is not None:
        return history.viewer_seconds, history.observed_seconds
    end_offset = int((_end(history) - history.started_at).total_seconds())
    return viewer_totals(history.samples, end_offset)


def _average(history: StreamHistory) -> float | None:
    viewer_seconds, observed = _totals(history)
    if observed > 0:
        return viewer_seconds / observed
    if history.samples:  # seen once (or only at its very end): that count is all there is
        return sum(s.viewers for s in history.samples) / len(history.samples)
    return None


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    game_id: str
    game_name: str


def category_timeline(categories: Sequence[CategoryChange], duration: timedelta) -> tuple[CategoryPeriod, ...]:
    """The stretches of each category in order, flaps shorter than MIN_CATEGORY between two stretches of one
    other category merged away, and neighbours of one category joined."""
    total = max(0, int(duration.total_seconds()))
    changes = sorted({c.offset: c for c in categories if c.offset <= total}.values(), key=lambda c: c.offset)
    spans = _join_neighbours(
        _Span(change.offset, changes[i + 1].offset if i + 1 < len(changes) else total, change.game_id, change.game_name)
        for i, change in enumerate(changes)
    )
    minimum = MIN_CATEGORY.total_seconds()
    flap = _last_flap(spans, minimum)
    while flap is not None:
        del spans[flap]
        spans = _join_neighbours(spans)
        flap = _last_flap(spans, minimum)
    return tuple(
        CategoryPeriod(timedelta(seconds=s.start), timedelta(seconds=s.end - s.start), s.game_id, s.game_name)
        for s in spans
    )


def _last_flap(spans: Sequence[_Span], minimum: float) -> int | None:
    """The last short stretch between two of one category. The last first: Twitch's lagging listing brings the
    old category back just after a change (A, B, A, B), and that late A is the flap, not the B before it."""
    for i in reversed(range(1, len(spans) - 1)):
        if spans[i].end - spans[i].start < minimum and spans[i - 1].game_id == spans[i + 1].game_id:
            return i
    return None


def _join_neighbours(spans: Iterable[_Span]) -> list[_Span]:
    """Consecutive spans of one category as one; each span ends where the next begins."""
    joined: list[_Span] = []
    for span in spans:
        if joined and joined[-1].game_id == span.game_id:
            joined[-1].end = span.end
            continue
        if joined:
            joined[-1].end = span.start
        joined.append(_Span(span.start, span.end, span.game_id, span.game_name))
    return joined


def _peak(history: StreamHistory) -> int:
    return max([history.peak_viewers, *(s.viewers for s in history.samples)])


def summarize(history: StreamHistory) -> StreamSummary:
    """The recap of one stream."""
    end = _end(history)
    duration = end - history.started_at
    _, observed = _totals(history)
    return StreamSummary(
        stream_id=history.stream_id,
        started_at=history.started_at,
        ended_at=end,
        live=history.ended_at is None,
        duration=duration,
        peak_viewers=_peak(history),
        average_viewers=_average(history),
        observed=timedelta(seconds=observed),
        timeline=category_timeline(history.categories, duration),
    )


def thin(history: StreamHistory, bucket: int = THIN_BUCKET) -> StreamHistory:
    """An old stream with one sample per `bucket` seconds (each the time-weighted mean of its bucket, at the
    bucket's first sample), its totals computed from every sample first so the average does not change."""
    viewer_seconds, observed = _totals(history)
    ordered = _ordered(history.samples)
    end_offset = int((_end(history) - history.started_at).total_seconds())
    buckets: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # bucket -> (offset, viewers, weight)
    for index, sample in enumerate(ordered):
        until = ordered[index + 1].offset if index + 1 < len(ordered) else max(end_offset, sample.offset)
        weight = min(until - sample.offset, _HOLD_SECONDS)
        buckets[sample.offset // bucket].append((sample.offset, sample.viewers, weight))
    kept = []
    for key in sorted(buckets):
        items = buckets[key]
        weights = sum(w for _, _, w in items)
        mean = sum(v * w for _, v, w in items) / weights if weights else sum(v for _, v, _ in items) / len(items)
        kept.append(ViewerSample(items[0][0], round(mean)))
    return dataclasses.replace(history, samples=tuple(kept), viewer_seconds=viewer_seconds, observed_seconds=observed)


# -- periods -----------------------------------------------------------------------------------------------


def period_length(name: str) -> timedelta | None:
    """The span of a /stats period (KeyError for an unknown one); None is "all"."""
    return PERIODS[name]


def _clip(start: datetime, end: datetime, low: datetime, high: datetime) -> tuple[datetime, datetime] | None:
    start, end = max(start, low), min(end, high)
    return (start, end) if end > start else None


def split_by_day(start: datetime, end: datetime) -> dict[date, timedelta]:
    """How much of [start, end) falls on each UTC day (a stream across midnight counts on both)."""
    out: dict[date, timedelta] = defaultdict(timedelta)
    current = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while current < end:
        midnight = datetime.combine(current.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        step = min(end, midnight)
        out[current.date()] += step - current
        current = step
    return dict(out)


def split_by_hour(start: datetime, end: datetime) -> dict[tuple[int, int], timedelta]:
    """How much of [start, end) falls in each (weekday, hour) of the week, UTC (Monday is 0)."""
    out: dict[tuple[int, int], timedelta] = defaultdict(timedelta)
    current = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while current < end:
        next_hour = current.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        step = min(end, next_hour)
        out[(current.weekday(), current.hour)] += step - current
        current = step
    return dict(out)


@dataclass(frozen=True, slots=True)
class CategoryTime:
    game_id: str
    game_name: str
    time: timedelta


@dataclass(frozen=True, slots=True)
class StreamerStats:
    """A streamer's streams in a period, for /stats streamer and its chart."""

    period: str
    start: datetime
    end: datetime
    streams: int
    live_time: timedelta
    """Time live within the period (a stream that began before it counts from its start)."""
    average_length: timedelta
    peak_viewers: int
    average_viewers: float | None
    top_categories: tuple[CategoryTime, ...]
    per_day: tuple[tuple[date, timedelta], ...]
    """Every UTC day of the period, in order, with the time live on it."""
    heatmap: tuple[tuple[float, ...], ...]
    """Hours live in each hour of the week over the period: 7 rows (Monday first) of 24 UTC hours."""
    last_stream: StreamSummary | None
    last_samples: tuple[tuple[datetime, int], ...]
    """The last stream's viewer counts, as (time, viewers)."""


def _window(histories: Sequence[StreamHistory], now: datetime, period: str) -> datetime:
    length = period_length(period)
    if length is not None:
        return now - length
    starts = [h.started_at for h in histories]
    return min(starts) if starts else now


def streamer_stats(histories: Sequence[StreamHistory], *, now: datetime, period: str) -> StreamerStats:
    """Aggregate one streamer's history over `period` ending `now`. Streams that overlap the period count;
    their time is clipped to it; averages are time-weighted over every stream's observed time."""
    start = _window(histories, now, period)
    inside = sorted(
        (h for h in histories if _clip(h.started_at, _end(h), start, now) is not None or h.started_at >= start),
        key=lambda h: h.started_at,
    )
    live_time = timedelta()
    lengths = timedelta()
    viewer_seconds = observed = 0
    by_day: dict[date, timedelta] = defaultdict(timedelta)
    by_hour: dict[tuple[int, int], timedelta] = defaultdict(timedelta)
    by_category: dict[str, timedelta] = defaultdict(timedelta)
    names: dict[str, str] = {}
    samples_only: list[float] = []
    for history in inside:
        end = _end(history)
        lengths += end - history.started_at
        vs, obs = _totals(history)
        viewer_seconds += vs
        observed += obs
        if not obs and history.samples:
            samples_only.extend(s.viewers for s in history.samples)
        clipped = _clip(history.started_at, end, start, now)
        if clipped is None:
            continue
        live_time += clipped[1] - clipped[0]
        for day, time in split_by_day(*clipped).items():
            by_day[day] += time
        for slot, time in split_by_hour(*clipped).items():
            by_hour[slot] += time
        for span in category_timeline(history.categories, end - history.started_at):
            span_start = history.started_at + span.offset
            part = _clip(span_start, span_start + span.duration, start, now)
            if part is not None:
                by_category[span.game_id] += part[1] - part[0]
                names[span.game_id] = span.game_name
    if observed:
        average: float | None = viewer_seconds / observed
    else:
        average = sum(samples_only) / len(samples_only) if samples_only else None
    top = sorted(by_category.items(), key=lambda item: (-item[1], names[item[0]].lower()))[:TOP_CATEGORIES]
    days = []
    day = start.astimezone(UTC).date()
    while day <= now.astimezone(UTC).date():
        days.append((day, by_day.get(day, timedelta())))
        day += timedelta(days=1)
    heatmap = tuple(
        tuple(by_hour.get((weekday, hour), timedelta()).total_seconds() / 3600 for hour in range(24))
        for weekday in range(7)
    )
    last = inside[-1] if inside else None
    return StreamerStats(
        period=period,
        start=start,
        end=now,
        streams=len(inside),
        live_time=live_time,
        average_length=lengths / len(inside) if inside else timedelta(),
        peak_viewers=max((_peak(h) for h in inside), default=0),
        average_viewers=average,
        top_categories=tuple(CategoryTime(game_id, names[game_id], time) for game_id, time in top),
        per_day=tuple(days),
        heatmap=heatmap,
        last_stream=summarize(last) if last is not None else None,
        last_samples=tuple((last.started_at + timedelta(seconds=s.offset), s.viewers) for s in _ordered(last.samples))
        if last is not None
        else (),
    )


@dataclass(frozen=True, slots=True)
class StreamerRank:
    streamer: Streamer
    streams: int
    live_time: timedelta
    peak_viewers: int


@dataclass(frozen=True, slots=True)
class ServerStats:
    """A server's followed streamers over a period, for /stats server and its chart."""

    period: str
    start: datetime
    end: datetime
    by_hours: tuple[StreamerRank, ...]
    """Streamers who streamed in the period, most hours live first."""
    by_peak: tuple[StreamerRank, ...]
    """The same, highest peak first."""
    quiet: int
    """Followed streamers with no stream in the period."""


def server_stats(
    histories: Mapping[str, Sequence[StreamHistory]], streamers: Sequence[Streamer], *, now: datetime, period: str
) -> ServerStats:
    """Rank a server's followed `streamers` by hours live and by peak viewers over `period`; `histories` are
    their streams by Twitch user id (samples are not needed: peaks are kept per stream)."""
    everything = [h for items in histories.values() for h in items]
    start = _window(everything, now, period)
    ranks = []
    for streamer in streamers:
        streams = peak = 0
        live_time = timedelta()
        for history in histories.get(streamer.twitch_user_id, ()):
            clipped = _clip(history.started_at, _end(history), start, now)
            if clipped is None and history.started_at < start:
                continue
            streams += 1
            peak = max(peak, _peak(history))
            if clipped is not None:
                live_time += clipped[1] - clipped[0]
        if streams:
            ranks.append(StreamerRank(streamer, streams, live_time, peak))
    return ServerStats(
        period=period,
        start=start,
        end=now,
        by_hours=tuple(sorted(ranks, key=lambda r: (-r.live_time, r.streamer.login))),
        by_peak=tuple(sorted(ranks, key=lambda r: (-r.peak_viewers, r.streamer.login))),
        quiet=len(streamers) - len(ranks),
    )
