"""Tests for metrics.py: counters and gauges move, the exposition parses, instances don't share state."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from twitch_notifier.ops.metrics import Metrics

EXPECTED_FAMILIES = {
    "twitch_notifier_poll_cycles": "counter",
    "twitch_notifier_poll_cycle_duration_seconds": "histogram",
    "twitch_notifier_twitch_requests": "counter",
    "twitch_notifier_notifications": "counter",
    "twitch_notifier_monitored_streamers": "gauge",
    "twitch_notifier_guilds": "gauge",
    "twitch_notifier_live_streams": "gauge",
    "twitch_notifier_last_successful_poll_timestamp_seconds": "gauge",
}


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def parsed(metrics: Metrics) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    body, _ = metrics.render()
    families: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        families[f"{family.name}:{family.type}"] = samples
    return families


def test_known_label_values_start_at_zero() -> None:
    metrics = Metrics()
    assert value(metrics, "twitch_notifier_poll_cycles_total", outcome="ok") == 0
    assert value(metrics, "twitch_notifier_poll_cycles_total", outcome="error") == 0
    assert value(metrics, "twitch_notifier_notifications_total", result="sent") == 0
    assert value(metrics, "twitch_notifier_notifications_total", result="failed") == 0
    assert value(metrics, "twitch_notifier_last_successful_poll_timestamp_seconds") == 0


def test_observe_cycle_counts_outcome_duration_and_notifications() -> None:
    metrics = Metrics()
    metrics.observe_cycle(1.5, ok=True, announced=3, announce_failed=1)
    metrics.observe_cycle(0.2, ok=True, announced=0, announce_failed=0)
    metrics.observe_cycle(7.0, ok=False, announced=0, announce_failed=2)

    assert value(metrics, "twitch_notifier_poll_cycles_total", outcome="ok") == 2
    assert value(metrics, "twitch_notifier_poll_cycles_total", outcome="error") == 1
    assert value(metrics, "twitch_notifier_notifications_total", result="sent") == 3
    assert value(metrics, "twitch_notifier_notifications_total", result="failed") == 3
    assert value(metrics, "twitch_notifier_poll_cycle_duration_seconds_count") == 3
    assert value(metrics, "twitch_notifier_poll_cycle_duration_seconds_sum") == pytest.approx(8.7)
    assert value(metrics, "twitch_notifier_poll_cycle_duration_seconds_bucket", le="0.25") == 1
    assert value(metrics, "twitch_notifier_poll_cycle_duration_seconds_bucket", le="2.5") == 2
    assert value(metrics, "twitch_notifier_poll_cycle_duration_seconds_bucket", le="+Inf") == 3


def test_a_negative_duration_from_a_clock_step_is_recorded_as_zero() -> None:
    metrics = Metrics()
    metrics.observe_cycle(-0.5, ok=True, announced=0, announce_failed=0)
    assert value(metrics, "twitch_notifier_poll_cycle_duration_seconds_sum") == 0


def test_twitch_responses_are_counted_by_status_and_none_is_error() -> None:
    metrics = Metrics()
    for status in (200, 200, 429, 503, None, None):
        metrics.observe_twitch_response(status)
    assert value(metrics, "twitch_notifier_twitch_requests_total", status="200") == 2
    assert value(metrics, "twitch_notifier_twitch_requests_total", status="429") == 1
    assert value(metrics, "twitch_notifier_twitch_requests_total", status="503") == 1
    assert value(metrics, "twitch_notifier_twitch_requests_total", status="error") == 2


def test_gauges_are_set_not_accumulated() -> None:
    metrics = Metrics()
    metrics.set_counts(streamers=12, guilds=3, live_streams=4)
    metrics.set_counts(streamers=10, guilds=3, live_streams=1)
    metrics.mark_success(1_700_000_000.5)
    assert value(metrics, "twitch_notifier_monitored_streamers") == 10
    assert value(metrics, "twitch_notifier_guilds") == 3
    assert value(metrics, "twitch_notifier_live_streams") == 1
    assert value(metrics, "twitch_notifier_last_successful_poll_timestamp_seconds") == 1_700_000_000.5


def test_render_is_prometheus_text_that_parses_back() -> None:
    metrics = Metrics()
    metrics.observe_cycle(0.3, ok=True, announced=1, announce_failed=0)
    metrics.observe_twitch_response(200)
    metrics.set_counts(streamers=5, guilds=2, live_streams=1)
    metrics.mark_success(1234.0)

    body, content_type = metrics.render()
    assert isinstance(body, bytes)
    assert content_type.startswith("text/plain")
    assert "charset=utf-8" in content_type

    families = parsed(metrics)
    for name, kind in EXPECTED_FAMILIES.items():
        assert f"{name}:{kind}" in families, f"{name} ({kind}) missing from /metrics"
    requests = families["twitch_notifier_twitch_requests:counter"]
    assert requests[("twitch_notifier_twitch_requests_total", (("status", "200"),))] == 1
    assert families["twitch_notifier_monitored_streamers:gauge"][("twitch_notifier_monitored_streamers", ())] == 5
    # Nothing outside the bot's own namespace: no process/platform collectors in this registry.
    assert all(key.startswith("twitch_notifier_") for key in families)


def test_two_instances_are_independent() -> None:
    first, second = Metrics(), Metrics()
    first.observe_cycle(1.0, ok=True, announced=2, announce_failed=0)
    first.observe_twitch_response(500)
    first.set_counts(streamers=7, guilds=1, live_streams=2)

    assert value(first, "twitch_notifier_poll_cycles_total", outcome="ok") == 1
    assert value(second, "twitch_notifier_poll_cycles_total", outcome="ok") == 0
    assert value(second, "twitch_notifier_notifications_total", result="sent") == 0
    assert value(second, "twitch_notifier_twitch_requests_total", status="500") is None
    assert value(second, "twitch_notifier_monitored_streamers") == 0
    assert first.registry is not second.registry


def test_push_and_poll_announcements_are_told_apart_and_an_alert_is_timed_by_its_first_post() -> None:
    metrics = Metrics()
    assert value(metrics, "twitch_notifier_announcements_total", source="push") == 0
    metrics.observe_cycle(1.0, ok=True, announced=2, announce_failed=0)
    metrics.observe_push(1000, 0.012)  # one go-live fanned out to 1,000 servers: one alert, one latency
    metrics.observe_push(0, None)  # a redelivery: nothing posted, nothing timed
    assert value(metrics, "twitch_notifier_announcements_total", source="poll") == 2
    assert value(metrics, "twitch_notifier_announcements_total", source="push") == 1000
    assert value(metrics, "twitch_notifier_notifications_total", result="sent") == 1002
    assert value(metrics, "twitch_notifier_push_latency_seconds_count") == 1
    assert value(metrics, "twitch_notifier_push_latency_seconds_bucket", le="0.025") == 1


def test_eventsub_state_is_copied_into_gauges_when_rendered() -> None:
    metrics = Metrics()
    state = {"connected": True, "poll_only": 3}

    def refresh() -> None:
        metrics.set_eventsub(
            connected=state["connected"],
            shards_enabled=2 if state["connected"] else 0,
            shards_total=2,
            subscriptions={"enabled": 30, "user_removed": 1},
            streamers={"push": 10, "poll_only": state["poll_only"], "revoked": 1},
            cost=30,
            max_cost=10_000,
        )

    metrics.before_render(refresh)
    families = parsed(metrics)
    assert families["twitch_notifier_eventsub_connected:gauge"] == {("twitch_notifier_eventsub_connected", ()): 1.0}
    streamers = families["twitch_notifier_eventsub_streamers:gauge"]
    assert streamers[("twitch_notifier_eventsub_streamers", (("mode", "poll_only"),))] == 3
    state.update(connected=False, poll_only=0)
    families = parsed(metrics)
    assert families["twitch_notifier_eventsub_connected:gauge"] == {("twitch_notifier_eventsub_connected", ()): 0.0}
    assert value(metrics, "twitch_notifier_eventsub_shards", state="enabled") == 0
    assert value(metrics, "twitch_notifier_eventsub_subscriptions", status="user_removed") == 1
    assert value(metrics, "twitch_notifier_eventsub_cost", kind="limit") == 10_000


def test_shard_gauges_follow_the_shards_listed() -> None:
    metrics = Metrics()
    metrics.set_shards([(0, True, 0.05, 1200), (1, False, None, 1150)])
    assert value(metrics, "twitch_notifier_shard_connected", shard="0") == 1
    assert value(metrics, "twitch_notifier_shard_connected", shard="1") == 0
    assert value(metrics, "twitch_notifier_shard_latency_seconds", shard="0") == pytest.approx(0.05)
    latency = value(metrics, "twitch_notifier_shard_latency_seconds", shard="1")
    assert latency is not None
    assert latency != latency  # NaN before the first heartbeat ACK
    assert value(metrics, "twitch_notifier_shard_guilds", shard="1") == 1150
    metrics.set_shards([(1, True, 0.02, 1151)])  # shard 0 is no longer this process's
    assert value(metrics, "twitch_notifier_shard_connected", shard="0") is None
    assert value(metrics, "twitch_notifier_shard_connected", shard="1") == 1
    assert "twitch_notifier_shard_connected:gauge" in parsed(metrics)


def test_session_start_limit_gauges() -> None:
    metrics = Metrics()
    metrics.set_session_starts(remaining=987, total=1000, max_concurrency=16)
    assert value(metrics, "twitch_notifier_gateway_session_starts", kind="remaining") == 987
    assert value(metrics, "twitch_notifier_gateway_session_starts", kind="total") == 1000
    assert value(metrics, "twitch_notifier_gateway_max_concurrency") == 16
