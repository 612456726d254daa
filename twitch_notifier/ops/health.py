"""The bot's own HTTP endpoint: GET /healthz for the platform's health check, GET /metrics for Prometheus.

`evaluate_health` is the pure rule (every Discord shard of this process connected, polled recently); `HealthServer`
serves it with aiohttp,
together with any extra `routes` handed to it (the EventSub webhook receiver), so one port serves them all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from twitch_notifier.ops.metrics import Metrics

_log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""An aiohttp request handler, as served by an extra route."""

ALL_INTERFACES = ""
"""As the host: every IPv4 and IPv6 interface (config.DEFAULT_HTTP_HOST)."""
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
# The bot counts as stuck when no poll cycle has finished for this many intervals: one slow or failed
# cycle is not an outage, three in a row are.
STALE_AFTER_INTERVALS = 3
# Bounded so the endpoint never holds up the bot's shutdown (Fly's kill_timeout is 30 s).
SHUTDOWN_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class HealthStatus:
    healthy: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShardStatus:
    """One Discord gateway shard this process runs, as /healthz lists it."""

    id: int
    connected: bool
    """The shard's session is up: READY or RESUMED received, and its socket open."""
    latency: float | None = None
    """Seconds between the last heartbeat and its ACK; None before the first ACK."""
    guilds: int = 0

    def details(self) -> dict[str, Any]:
        latency = self.latency if self.latency is not None and math.isfinite(self.latency) else None
        return {
            "id": self.id,
            "connected": self.connected,
            "latency_seconds": None if latency is None else round(latency, 4),
            "guilds": self.guilds,
        }


def _shard_list(ids: Sequence[int]) -> str:
    return ", ".join(str(shard) for shard in ids)


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def evaluate_health(
    *,
    gateway_connected: bool,
    last_cycle_finished: float | None,
    started_at: float,
    interval: float,
    now: float,
    shards: Sequence[ShardStatus] = (),
    gateway_problem: str | None = None,
) -> HealthStatus:
    """Healthy when the Discord gateway is connected, every one of this process's `shards` with it, and a poll
    cycle finished within 3 intervals. `gateway_problem` is the reason to give when the gateway is not connected
    (Discord refused it, for instance), instead of the plain "not connected".

    `last_cycle_finished`, `started_at` and `now` are read from one clock (the bot uses time.monotonic(), so
    a jump of the wall clock cannot make it look stale or fresh).
    Until the first cycle finishes the answer is unhealthy: "starting" during the first 3 intervals,
    a failure after that.
    """
    limit = STALE_AFTER_INTERVALS * interval
    age = None if last_cycle_finished is None else max(0.0, now - last_cycle_finished)
    down = [shard.id for shard in shards if not shard.connected]
    details: dict[str, Any] = {
        "gateway_connected": gateway_connected and not down,
        "last_poll_age_seconds": None if age is None else round(age, 1),
        "interval_seconds": interval,
        "uptime_seconds": round(max(0.0, now - started_at), 1),
    }
    if shards:
        details["shards"] = [shard.details() for shard in shards]
    if not gateway_connected:
        return HealthStatus(False, gateway_problem or "Discord gateway not connected", details)
    if down:
        return HealthStatus(
            False,
            f"Discord shard{'s' if len(down) > 1 else ''} {_shard_list(down)} not connected "
            f"({len(down)} of {len(shards)})",
            details,
        )
    if age is None:
        if now - started_at > limit:
            return HealthStatus(False, "no poll cycle completed since start-up", details)
        return HealthStatus(False, "starting: no poll cycle completed yet", details)
    if age > limit:
        return HealthStatus(
            False, f"last poll cycle finished {_seconds(age)} s ago (limit {_seconds(limit)} s)", details
        )
    return HealthStatus(True, "ok", details)


class HealthServer:
    """Serves /healthz, /metrics and the extra `routes`; `start()` binds (port 0 picks a free port, see
    `.port`), `stop()` closes."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        health: Callable[[], HealthStatus],
        metrics: Metrics,
        routes: Sequence[tuple[str, str, Handler]] = (),
    ) -> None:
        """`routes` are extra (method, path, handler) triples served beside /healthz and /metrics; a path that
        is either of those, or does not start with "/", is a ValueError here rather than at start."""
        for method, path, _ in routes:
            if path in (HEALTH_PATH, METRICS_PATH):
                raise ValueError(f"the route {method} {path} collides with the health endpoint's own {path}")
            if not path.startswith("/"):
                raise ValueError(f"a route path must start with '/', got {path!r}")
        self._routes = tuple(routes)
        self._host = host
        self._port = port
        self._health = health
        self._metrics = metrics
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The bound port once started (useful with port 0), the configured one before."""
        return self._port

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Bind and serve; raises OSError (e.g. the port is taken) with nothing left open."""
        if self._runner is not None:
            raise RuntimeError("HealthServer is already started")
        app = web.Application()
        app.router.add_get(HEALTH_PATH, self._healthz)
        app.router.add_get(METRICS_PATH, self._serve_metrics)
        for method, path, handler in self._routes:
            app.router.add_route(method, path, handler)
        # No access log: the platform's check would write a line every few seconds.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        await runner.setup()
        try:
            if self._host == ALL_INTERFACES:
                await self._start_dual_stack(runner)
            else:
                await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        where = ", ".join(f"[{a[0]}]" if ":" in a[0] else a[0] for a in runner.addresses)
        # Extra routes are counted, not named: an operator may keep a webhook path unguessable.
        extra = f" and {len(self._routes)} more route(s)" if self._routes else ""
        _log.info("Health endpoint listening on %s port %d (/healthz, /metrics%s)", where, self._port, extra)

    async def _start_dual_stack(self, runner: web.AppRunner) -> None:
        """Every IPv4 and IPv6 interface on one port. asyncio sets IPV6_V6ONLY, so "::" alone would not
        take IPv4; and with port 0 each family would get its own port: bind IPv4 first, then IPv6 on the
        port it got. A machine without IPv6 serves IPv4 only."""
        await web.TCPSite(runner, "0.0.0.0", self._port).start()  # noqa: S104 - every interface, on purpose
        port = runner.addresses[0][1]
        try:
            await web.TCPSite(runner, "::", port).start()
        except OSError as exc:
            _log.info("No IPv6 for the health endpoint (%s); serving IPv4 only", exc)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            status = self._health()
        except Exception as exc:
            # A bug in the health callback must read as unhealthy, not as a 500 the check can't explain.
            _log.exception("The health check callback failed")
            status = HealthStatus(False, f"health check failed: {exc!r}", {})
        details = {k: v for k, v in status.details.items() if k not in ("status", "reason")}
        if status.healthy:
            body = {"status": "ok", **details}
        else:
            body = {"status": "unhealthy", "reason": status.reason, **details}
        return web.json_response(body, status=200 if status.healthy else 503, headers={"Cache-Control": "no-store"})

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        body, content_type = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})
