"""Decides, from one observation of Twitch, which streams started, continued or ended.

Pure logic over dataclasses (no I/O), shared by every event source: the poll loop today, EventSub later.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from twitch_notifier.models import LiveStream
from twitch_notifier.twitch.mapping import live_stream_from
from twitch_notifier.twitch.models import StreamsSnapshot


@dataclass(frozen=True, slots=True)
class PollOutcome:
    live: list[LiveStream] = field(default_factory=list)
    """Every stream seen live in this observation, to store (new, updated or unchanged)."""
    started: list[LiveStream] = field(default_factory=list)
    """Streams whose id was not live before: candidates for an announcement."""
    ended: list[LiveStream] = field(default_factory=list)
    """Streams that are over: absent long enough, or replaced by a new stream of the same streamer."""
    offline: list[str] = field(default_factory=list)
    """User ids that are no longer live at all (their live state is removed)."""
    missed: dict[str, int] = field(default_factory=dict)
    """User ids absent from this observation but not yet considered offline, with their new miss count."""


def reconcile(
    previous: Mapping[str, LiveStream], snapshot: StreamsSnapshot, offline_after_polls: int = 2
) -> PollOutcome:
    """Compare what was live with what Twitch reports now.

    A streamer Twitch did not answer for (`snapshot.failed`, or simply not checked) is unknown and left
    exactly as it was: an outage must never look like the end of a stream. A streamer checked and absent
    is counted as missed; after `offline_after_polls` consecutive misses its stream has ended. This absorbs
    Twitch's habit of dropping a live stream from one listing and returning it, same id, in the next.
    """
    if offline_after_polls < 1:
        raise ValueError("offline_after_polls must be at least 1")
    outcome = PollOutcome()
    for user_id, stream in snapshot.streams.items():
        current = live_stream_from(stream)
        outcome.live.append(current)
        before = previous.get(user_id)
        if before is None or before.stream_id != current.stream_id:
            outcome.started.append(current)
            if before is not None:
                outcome.ended.append(before)
    for user_id, before in previous.items():
        if user_id in snapshot.streams or user_id not in snapshot.checked or user_id in snapshot.failed:
            continue
        misses = before.missed_polls + 1
        if misses >= offline_after_polls:
            outcome.ended.append(before)
            outcome.offline.append(user_id)
        else:
            outcome.missed[user_id] = misses
    return outcome


def screen_poll(
    snapshot: StreamsSnapshot,
    previous: Mapping[str, LiveStream],
    ended_by_push: AbstractSet[str],
    *,
    now: datetime,
    listing_grace: timedelta,
) -> StreamsSnapshot:
    """What a poll may say, once push has spoken: Twitch's listing lags a go-live and keeps showing a stream
    a while after it ended, so where push is ahead the poll's word is taken as "unknown", never as news.

    - a stream id that push already ended is stale listing: unknown, not a stream that started again;
    - a streamer push reported live (`pushed_at`, within `listing_grace`) whose stream the listing does not
      show yet: unknown, not a miss;
    - a stream that began before the one known live is stale listing too: unknown.
    Everything else passes through as it is."""
    streams = dict(snapshot.streams)
    unknown = set(snapshot.failed)
    for user_id, stream in snapshot.streams.items():
        current = previous.get(user_id)
        older = current is not None and current.stream_id != stream.id and stream.started_at < current.started_at
        if stream.id in ended_by_push or older:
            del streams[user_id]
            unknown.add(user_id)
    for user_id, current in previous.items():
        awaited = current.pushed_at is not None and now - current.pushed_at < listing_grace
        if awaited and user_id in snapshot.checked and user_id not in streams:
            unknown.add(user_id)
    if unknown == set(snapshot.failed) and len(streams) == len(snapshot.streams):
        return snapshot
    return StreamsSnapshot(
        streams=streams, checked=snapshot.checked, failed=frozenset(unknown), requests=snapshot.requests
    )
