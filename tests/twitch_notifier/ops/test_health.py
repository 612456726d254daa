"""Tests for ops/health.py: the health rule at its boundaries, and a real server answering on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from twitch_notifier.ops.health import (
    ALL_INTERFACES,
    HEALTH_PATH,
    METRICS_PATH,
    HealthServer,
    HealthStatus,
    ShardStatus,
    evaluate_health,
)
from twitch_notifier.ops.metrics import Metrics

INTERVAL = 90.0
START = 1_000_000.0


def health(*, connected: bool = True, last: float | None = None, now: float, interval: float = INTERVAL):
    return evaluate_health(
        gateway_connected=connected, last_cycle_finished=last, started_at=START, interval=interval, now=now
    )


# -- evaluate_health ----------------------------------------------------------------------------------


def test_healthy_when_connected_and_polled_recently() -> None:
    status = health(last=START + 100, now=START + 130)
    assert status.healthy
    assert status.reason == "ok"
    assert status.details == {
        "gateway_connected": True,
        "last_poll_age_seconds": 30.0,
        "interval_seconds": INTERVAL,
        "uptime_seconds": 130.0,
    }


def test_gateway_down_is_unhealthy_even_with_a_fresh_poll() -> None:
    status = health(connected=False, last=START + 100, now=START + 101)
    assert not status.healthy
    assert status.reason == "Discord gateway not connected"
    assert status.details["gateway_connected"] is False


@pytest.mark.parametrize("since_start", [0.0, 1.0, 3 * INTERVAL])
def test_starting_within_three_intervals_without_a_cycle(since_start: float) -> None:
    status = health(last=None, now=START + since_start)
    assert not status.healthy
    assert status.reason == "starting: no poll cycle completed yet"
    assert status.details["last_poll_age_seconds"] is None


def test_no_cycle_after_three_intervals_is_a_failure() -> None:
    status = health(last=None, now=START + 3 * INTERVAL + 0.001)
    assert not status.healthy
    assert status.reason == "no poll cycle completed since start-up"


def test_gateway_is_reported_before_the_start_up_state() -> None:
    assert health(connected=False, last=None, now=START + 1).reason == "Discord gateway not connected"


def test_last_cycle_exactly_three_intervals_ago_is_still_healthy() -> None:
    now = START + 10_000
    assert health(last=now - 3 * INTERVAL, now=now).healthy


def test_last_cycle_just_over_three_intervals_ago_is_stale() -> None:
    now = START + 10_000
    status = health(last=now - 3 * INTERVAL - 0.5, now=now)
    assert not status.healthy
    assert status.reason == "last poll cycle finished 270 s ago (limit 270 s)"


def test_stale_reason_names_age_and_limit() -> None:
    now = START + 10_000
    status = health(last=now - 400, now=now)
    assert status.reason == "last poll cycle finished 400 s ago (limit 270 s)"
    assert status.details["last_poll_age_seconds"] == 400.0


def test_short_intervals_keep_a_decimal_in_the_reason() -> None:
    status = health(last=START, now=START + 2.0, interval=0.5)
    assert status.reason == "last poll cycle finished 2.0 s ago (limit 1.5 s)"


def test_a_cycle_stamped_after_now_counts_as_just_finished() -> None:
    status = health(last=START + 50, now=START + 40)
    assert status.healthy
    assert status.details["last_poll_age_seconds"] == 0.0


# -- HealthServer ---------------------------------------------------------------------------------------


@dataclass
class State:
    status: HealthStatus


@pytest.fixture
async def served() -> AsyncIterator[tuple[HealthServer, State, Metrics]]:
    state = State(HealthStatus(True, "ok", {"gateway_connected": True, "last_poll_age_seconds": 3.0}))
    metrics = Metrics()
    server = HealthServer(host="127.0.0.1", port=0, health=lambda: state.status, metrics=metrics)
    await server.start()
    try:
        yield server, state, metrics
    finally:
        await server.stop()


async def get(server: HealthServer, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, response.headers["Content-Type"], await response.text()


async def get_json(server: HealthServer, path: str) -> tuple[int, str, dict]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, response.content_type, await response.json()


async def test_port_zero_binds_a_real_port(served) -> None:
    server, _, _ = served
    assert server.running
    assert 0 < server.port < 65536


async def test_healthz_answers_200_with_the_details(served) -> None:
    server, _, _ = served
    status, content_type, body = await get_json(server, HEALTH_PATH)
    assert status == 200
    assert content_type == "application/json"
    assert body == {"status": "ok", "gateway_connected": True, "last_poll_age_seconds": 3.0}


async def test_healthz_answers_503_with_the_reason(served) -> None:
    server, state, _ = served
    state.status = evaluate_health(
        gateway_connected=False, last_cycle_finished=None, started_at=START, interval=INTERVAL, now=START + 5
    )
    status, content_type, body = await get_json(server, HEALTH_PATH)
    assert status == 503
    assert content_type == "application/json"
    assert body["status"] == "unhealthy"
    assert body["reason"] == "Discord gateway not connected"
    assert body["interval_seconds"] == INTERVAL
    assert body["last_poll_age_seconds"] is None


async def test_healthz_follows_the_state_on_every_request(served) -> None:
    server, state, _ = served
    assert (await get_json(server, HEALTH_PATH))[0] == 200
    state.status = HealthStatus(False, "starting: no poll cycle completed yet", {})
    assert (await get_json(server, HEALTH_PATH))[0] == 503
    state.status = HealthStatus(True, "ok", {})
    assert (await get_json(server, HEALTH_PATH)) == (200, "application/json", {"status": "ok"})


async def test_details_cannot_overwrite_status_or_reason(served) -> None:
    server, state, _ = served
    state.status = HealthStatus(False, "real reason", {"status": "ok", "reason": "fake"})
    _, _, body = await get_json(server, HEALTH_PATH)
    assert body == {"status": "unhealthy", "reason": "real reason"}


async def test_a_failing_health_callback_reads_as_unhealthy() -> None:
    def broken() -> HealthStatus:
        raise RuntimeError("boom")

    server = HealthServer(host="127.0.0.1", port=0, health=broken, metrics=Metrics())
    await server.start()
    try:
        status, _, body = await get_json(server, HEALTH_PATH)
    finally:
        await server.stop()
    assert status == 503
    assert body["status"] == "unhealthy"
    assert "boom" in body["reason"]


async def test_metrics_answers_prometheus_text(served) -> None:
    server, _, metrics = served
    metrics.observe_cycle(0.4, ok=True, announced=2, announce_failed=0)
    metrics.set_counts(streamers=9, guilds=2, live_streams=3)
    status, content_type, text = await get(server, METRICS_PATH)
    assert status == 200
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("twitch_notifier_poll_cycles_total", (("outcome", "ok"),))] == 1
    assert samples[("twitch_notifier_notifications_total", (("result", "sent"),))] == 2
    assert samples[("twitch_notifier_monitored_streamers", ())] == 9


async def test_unknown_paths_are_404(served) -> None:
    server, _, _ = served
    status, _, _ = await get(server, "/")
    assert status == 404


async def test_stop_closes_the_port_and_is_idempotent() -> None:
    server = HealthServer(host="127.0.0.1", port=0, health=lambda: HealthStatus(True, "ok", {}), metrics=Metrics())
    await server.start()
    port = server.port
    await server.stop()
    await server.stop()
    assert not server.running
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{HEALTH_PATH}"):
            pass


async def test_starting_twice_is_an_error(served) -> None:
    server, _, _ = served
    with pytest.raises(RuntimeError):
        await server.start()


async def test_a_taken_port_raises_oserror_and_leaves_nothing_running(served) -> None:
    taken, _, _ = served
    other = HealthServer(
        host="127.0.0.1", port=taken.port, health=lambda: HealthStatus(True, "ok", {}), metrics=Metrics()
    )
    with pytest.raises(OSError, match=r"in use"):
        await other.start()
    assert not other.running
    await other.stop()


def test_port_before_start_is_the_configured_one() -> None:
    server = HealthServer(host="127.0.0.1", port=8080, health=lambda: HealthStatus(True, "ok", {}), metrics=Metrics())
    assert server.port == 8080
    assert not server.running


def _has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_all_interfaces_serves_ipv4_and_ipv6_on_one_port() -> None:
    # `fly proxy` reaches the machine over Fly's IPv6 private network; 0.0.0.0 alone refused it.
    server = HealthServer(host=ALL_INTERFACES, port=0, health=lambda: HealthStatus(True, "ok", {}), metrics=Metrics())
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            for base in (f"http://127.0.0.1:{server.port}", f"http://[::1]:{server.port}"):
                async with session.get(base + HEALTH_PATH) as response:
                    assert response.status == 200, base
    finally:
        await server.stop()


# -- extra routes -------------------------------------------------------------------------------------------


async def test_extra_routes_are_served_beside_healthz() -> None:
    seen: list[bytes] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        seen.append(await request.read())
        return web.Response(status=202, text="taken")

    server = HealthServer(
        host="127.0.0.1",
        port=0,
        health=lambda: HealthStatus(True, "ok", {}),
        metrics=Metrics(),
        routes=[("POST", "/eventsub/webhook", echo)],
    )
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{server.port}"
            async with session.post(base + "/eventsub/webhook", data=b"payload") as response:
                assert response.status == 202
                assert await response.text() == "taken"
            async with session.get(base + "/eventsub/webhook") as response:
                assert response.status == 405
            async with session.get(base + HEALTH_PATH) as response:
                assert response.status == 200
            async with session.get(base + METRICS_PATH) as response:
                assert response.status == 200
    finally:
        await server.stop()
    assert seen == [b"payload"]


async def test_no_routes_is_the_default(served) -> None:
    server, _, _ = served
    status, _, _ = await get(server, "/eventsub/webhook")
    assert status == 404


@pytest.mark.parametrize(("method", "path"), [("POST", HEALTH_PATH), ("GET", METRICS_PATH), ("*", HEALTH_PATH)])
def test_a_route_colliding_with_healthz_or_metrics_is_refused(method: str, path: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response()

    with pytest.raises(ValueError, match="collides"):
        HealthServer(
            host="127.0.0.1",
            port=0,
            health=lambda: HealthStatus(True, "ok", {}),
            metrics=Metrics(),
            routes=[("POST", "/fine", handler), (method, path, handler)],
        )


def test_a_route_path_without_a_slash_is_refused() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response()

    with pytest.raises(ValueError, match="start with"):
        HealthServer(
            host="127.0.0.1",
            port=0,
            health=lambda: HealthStatus(True, "ok", {}),
            metrics=Metrics(),
            routes=[("POST", "eventsub", handler)],
        )


async def test_the_start_up_line_counts_extra_routes_without_naming_them(caplog) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response()

    caplog.set_level(logging.INFO, logger="twitch_notifier.ops.health")
    server = HealthServer(
        host="127.0.0.1",
        port=0,
        health=lambda: HealthStatus(True, "ok", {}),
        metrics=Metrics(),
        routes=[("POST", "/unguessable-token-path", handler)],
    )
    await server.start()
    await server.stop()
    [line] = [r.getMessage() for r in caplog.records if "listening" in r.getMessage()]
    assert "1 more route" in line
    assert "unguessable" not in line


# -- shards ---------------------------------------------------------------------------------------------


def sharded(*shards: ShardStatus, connected: bool = True, problem: str | None = None) -> HealthStatus:
    return evaluate_health(
        gateway_connected=connected,
        last_cycle_finished=START + 100,
        started_at=START,
        interval=INTERVAL,
        now=START + 130,
        shards=shards,
        gateway_problem=problem,
    )


def test_every_shard_connected_is_healthy_and_each_is_listed() -> None:
    status = sharded(ShardStatus(0, True, 0.0421, guilds=1200), ShardStatus(1, True, None, guilds=1180))
    assert status.healthy
    assert status.details["gateway_connected"] is True
    assert status.details["shards"] == [
        {"id": 0, "connected": True, "latency_seconds": 0.0421, "guilds": 1200},
        {"id": 1, "connected": True, "latency_seconds": None, "guilds": 1180},
    ]


def test_one_shard_down_is_unhealthy_and_named() -> None:
    status = sharded(ShardStatus(0, True, 0.01), ShardStatus(1, False), ShardStatus(2, True, 0.02))
    assert not status.healthy
    assert status.reason == "Discord shard 1 not connected (1 of 3)"
    assert status.details["gateway_connected"] is False
    assert [s["connected"] for s in status.details["shards"]] == [True, False, True]


def test_several_shards_down_are_all_named() -> None:
    status = sharded(ShardStatus(4, False), ShardStatus(5, True), ShardStatus(7, False))
    assert status.reason == "Discord shards 4, 7 not connected (2 of 3)"


def test_a_latency_that_is_not_a_number_is_reported_as_none() -> None:
    status = sharded(ShardStatus(0, True, float("inf")), ShardStatus(1, True, float("nan")))
    assert [s["latency_seconds"] for s in status.details["shards"]] == [None, None]


def test_a_known_gateway_problem_is_the_reason() -> None:
    problem = "Discord refused the gateway: 4011 Sharding required (set SHARD_COUNT higher)"
    status = sharded(ShardStatus(0, False), connected=False, problem=problem)
    assert not status.healthy
    assert status.reason == problem


def test_without_shards_the_details_have_no_shard_list() -> None:
    assert "shards" not in health(last=START + 100, now=START + 130).details
