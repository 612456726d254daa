"""Prometheus metrics of the notifier: poll cycles, Twitch requests, notifications, Discord shards and current counts.

Each `Metrics` owns its own registry, so several bots (or tests) in one process never share a counter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from twitch_notifier.core.publishing import PublishResult

PREFIX = "twitch_notifier_"

# A cycle is one batched /helix/streams round plus the announcements it triggers: usually well under a
# second, several seconds when Twitch is slow or retried, up to minutes when something is wrong.
CYCLE_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Push latency: a notification's arrival to the announcement's POST; tens of milliseconds when healthy.
PUSH_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)
PUBLISH_RESULTS = tuple(result.value for result in PublishResult)


class Metrics:
    """The bot's metrics. Call the `observe_*`/`set_*`/`mark_*` methods; `render()` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.poll_cycles_total = Counter(
            f"{PREFIX}poll_cycles_total",
            "Poll cycles run, by outcome (ok: the cycle finished; error: it raised and was skipped).",
            ["outcome"],
            registry=self.registry,
        )
        self.poll_cycle_duration_seconds = Histogram(
            f"{PREFIX}poll_cycle_duration_seconds",
            "Wall-clock duration of a poll cycle, Twitch requests and announcements included.",
            buckets=CYCLE_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.twitch_requests_total = Counter(
            f"{PREFIX}twitch_requests_total",
            'HTTP exchanges with Twitch, by response status ("error": no response: connection error or timeout).',
            ["status"],
            registry=self.registry,
        )
        self.notifications_total = Counter(
            f"{PREFIX}notifications_total",
            "Live announcements, by result (sent, or failed to post).",
            ["result"],
            registry=self.registry,
        )
        self.monitored_streamers = Gauge(
            f"{PREFIX}monitored_streamers",
            "Distinct Twitch streamers followed by at least one server.",
            registry=self.registry,
        )
        self.guilds = Gauge(f"{PREFIX}guilds", "Discord servers the bot is in.", registry=self.registry)
        self.live_streams = Gauge(
            f"{PREFIX}live_streams", "Followed streamers live at the last poll.", registry=self.registry
        )
        self.last_successful_poll_timestamp_seconds = Gauge(
            f"{PREFIX}last_successful_poll_timestamp_seconds",
            "Unix time at which the last poll cycle finished successfully (0: none yet).",
            registry=self.registry,
        )
        self.announcements_total = Counter(
            f"{PREFIX}announcements_total",
            "Live announcements posted, by what caused them (push: an EventSub notification; poll: a poll).",
            ["source"],
            registry=self.registry,
        )
        self.push_latency_seconds = Histogram(
            f"{PREFIX}push_latency_seconds",
            "From an EventSub go-live notification's arrival to its first announcement's POST being answered.",
            buckets=PUSH_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.eventsub_connected = Gauge(
            f"{PREFIX}eventsub_connected",
            "1 while at least one EventSub conduit shard is served (0: push is down, polling carries on).",
            registry=self.registry,
        )
        self.eventsub_shards = Gauge(
            f"{PREFIX}eventsub_shards",
            "EventSub conduit shards, by state (enabled: served by the bot; total: the conduit's).",
            ["state"],
            registry=self.registry,
        )
        self.eventsub_subscriptions = Gauge(
            f"{PREFIX}eventsub_subscriptions",
            "The bot's EventSub subscriptions at the last full listing, by status.",
            ["status"],
            registry=self.registry,
        )
        self.eventsub_streamers = Gauge(
            f"{PREFIX}eventsub_streamers",
            "Followed streamers by how their go-lives arrive (push, or poll only: budget spent or revoked).",
            ["mode"],
            registry=self.registry,
        )
        self.eventsub_cost = Gauge(
            f"{PREFIX}eventsub_cost",
            "Twitch's EventSub cost figures for this app (used: total_cost; limit: max_total_cost).",
            ["kind"],
            registry=self.registry,
        )
        self.shard_connected = Gauge(
            f"{PREFIX}shard_connected",
            "1 while the Discord gateway shard's session is up (READY or RESUMED, socket open), per shard this "
            "process runs.",
            ["shard"],
            registry=self.registry,
        )
        self.shard_latency_seconds = Gauge(
            f"{PREFIX}shard_latency_seconds",
            "Heartbeat round trip of the Discord gateway shard (NaN before its first heartbeat ACK).",
            ["shard"],
            registry=self.registry,
        )
        self.shard_guilds = Gauge(
            f"{PREFIX}shard_guilds",
            "Discord servers on the shard (Discord closes a shard above 2,500 with 4011: re-shard past about 2,000).",
            ["shard"],
            registry=self.registry,
        )
        self.gateway_session_starts = Gauge(
            f"{PREFIX}gateway_session_starts",
            "Discord's session_start_limit at the last connect (remaining: IDENTIFYs left until it resets; total: "
            "per day). Running out makes Discord reset the bot's token.",
            ["kind"],
            registry=self.registry,
        )
        self.gateway_max_concurrency = Gauge(
            f"{PREFIX}gateway_max_concurrency",
            "Discord's max_concurrency at the last connect: shards that may IDENTIFY per 5 s (one per bucket).",
            registry=self.registry,
        )
        self.cluster_leader = Gauge(
            f"{PREFIX}cluster_leader",
            "1 while this process is the leader (polls Twitch, keeps EventSub); always 1 with SQLite (one process).",
            registry=self.registry,
        )
        self.cluster_database_connected = Gauge(
            f"{PREFIX}cluster_database_connected",
            "1 while the session holding this process's shard (and leader) locks is up; always 1 with SQLite.",
            registry=self.registry,
        )
        self.publishes_total = Counter(
            f"{PREFIX}publishes_total",
            "Announcements published (crossposted) in announcement channels, by result (published; skipped_limit: "
            "the channel's 10 per hour were spent; rate_limited: Discord refused; not_news; failed).",
            ["result"],
            registry=self.registry,
        )
        self._before_render: list[Callable[[], None]] = []
        # Known label values start at 0, so rates and alerts work before the first event of each kind.
        for outcome in ("ok", "error"):
            self.poll_cycles_total.labels(outcome=outcome)
        for result in ("sent", "failed"):
            self.notifications_total.labels(result=result)
        for source in ("push", "poll"):
            self.announcements_total.labels(source=source)
        for result in PUBLISH_RESULTS:
            self.publishes_total.labels(result=result)

    def observe_cycle(self, duration: float, ok: bool, announced: int, announce_failed: int) -> None:
        """Record one poll cycle: its outcome, its duration and the announcements it made or failed."""
        self.poll_cycles_total.labels(outcome="ok" if ok else "error").inc()
        self.poll_cycle_duration_seconds.observe(max(0.0, duration))
        if announced > 0:
            self.notifications_total.labels(result="sent").inc(announced)
            self.announcements_total.labels(source="poll").inc(announced)
        if announce_failed > 0:
            self.notifications_total.labels(result="failed").inc(announce_failed)

    def observe_fan_out(self, announced: int, announce_failed: int) -> None:
        """Record the announcements of a round that posted for this process's guilds without polling (a process
        that is not the leader); not a poll cycle."""
        if announced > 0:
            self.notifications_total.labels(result="sent").inc(announced)
            self.announcements_total.labels(source="poll").inc(announced)
        if announce_failed > 0:
            self.notifications_total.labels(result="failed").inc(announce_failed)

    def observe_publish(self, result: str) -> None:
        """One publish of an announcement, by its result (core.publishing.PublishResult's value)."""
        self.publishes_total.labels(result=result).inc()

    def set_cluster(self, *, leader: bool, connected: bool) -> None:
        self.cluster_leader.set(1 if leader else 0)
        self.cluster_database_connected.set(1 if connected else 0)

    def observe_twitch_response(self, status: int | None) -> None:
        """Record one HTTP exchange with Twitch; `None` means no response (connection error, timeout)."""
        self.twitch_requests_total.labels(status="error" if status is None else str(status)).inc()

    def set_counts(self, streamers: int, guilds: int, live_streams: int) -> None:
        self.monitored_streamers.set(streamers)
        self.guilds.set(guilds)
        self.live_streams.set(live_streams)

    def mark_success(self, timestamp: float) -> None:
        """`timestamp` is Unix time (time.time()), as Prometheus expects for *_timestamp_seconds."""
        self.last_successful_poll_timestamp_seconds.set(timestamp)

    def observe_push(self, announced: int, first_latency: float | None) -> None:
        """A push notification's announcements: how many, and how long after its arrival the first one
        was posted (the alert's latency; a fan-out's later posts wait for Discord's rate limit)."""
        if announced > 0:
            self.notifications_total.labels(result="sent").inc(announced)
            self.announcements_total.labels(source="push").inc(announced)
        if first_latency is not None:
            self.push_latency_seconds.observe(max(0.0, first_latency))

    def set_eventsub(
        self,
        *,
        connected: bool,
        shards_enabled: int,
        shards_total: int,
        subscriptions: Mapping[str, int],
        streamers: Mapping[str, int],
        cost: int,
        max_cost: int,
    ) -> None:
        self.eventsub_connected.set(1 if connected else 0)
        self.eventsub_shards.labels(state="enabled").set(shards_enabled)
        self.eventsub_shards.labels(state="total").set(shards_total)
        self.eventsub_subscriptions.clear()
        for status, count in subscriptions.items():
            self.eventsub_subscriptions.labels(status=status).set(count)
        for mode, count in streamers.items():
            self.eventsub_streamers.labels(mode=mode).set(count)
        self.eventsub_cost.labels(kind="used").set(cost)
        self.eventsub_cost.labels(kind="limit").set(max_cost)

    def set_shards(self, shards: Iterable[tuple[int, bool, float | None, int]]) -> None:
        """Every shard this process runs, as (shard id, connected, latency in seconds or None, guilds); shards
        no longer listed are dropped."""
        for gauge in (self.shard_connected, self.shard_latency_seconds, self.shard_guilds):
            gauge.clear()
        for shard_id, connected, latency, guilds in shards:
            label = str(shard_id)
            self.shard_connected.labels(shard=label).set(1 if connected else 0)
            self.shard_latency_seconds.labels(shard=label).set(math.nan if latency is None else latency)
            self.shard_guilds.labels(shard=label).set(guilds)

    def set_session_starts(self, *, remaining: int, total: int, max_concurrency: int) -> None:
        self.gateway_session_starts.labels(kind="remaining").set(remaining)
        self.gateway_session_starts.labels(kind="total").set(total)
        self.gateway_max_concurrency.set(max_concurrency)

    def before_render(self, refresh: Callable[[], None]) -> None:
        """Call `refresh` before every render (to copy live state, such as EventSub's, into gauges)."""
        self._before_render.append(refresh)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its Content-Type header value."""
        for refresh in self._before_render:
            refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
