"""The polling event source and the housekeeping that rides along with it.

`Poller.run_cycle` asks Twitch about every followed streamer in one batched round and hands the answer
to the notifier. `Housekeeping` does what is due now and then: Twitch's hourly token validation, the
6-hourly refresh of streamer names and avatars (which also flags users Twitch no longer returns),
forgetting old announcement records, and the upkeep of the stream history (streams past the retention period
forgotten, old streams' samples thinned). Both read time from injected clocks, so tests can move them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from twitch_notifier.core.history import THIN_AFTER, thin
from twitch_notifier.core.notifier import CycleReport, Notifier
from twitch_notifier.core.ports import PollerStore, TwitchSource
from twitch_notifier.twitch.errors import TwitchError
from twitch_notifier.twitch.mapping import streamer_from_user

__all__ = [
    "HISTORY_RETENTION",
    "HISTORY_UPKEEP_INTERVAL",
    "STREAMER_REFRESH_INTERVAL",
    "THIN_BATCH",
    "TOKEN_VALIDATION_INTERVAL",
    "Housekeeping",
    "Poller",
    "describe_cycle",
]

_log = logging.getLogger(__name__)

TOKEN_VALIDATION_INTERVAL = 3600.0
"""Twitch asks apps that keep a session to validate their token at start-up and then hourly."""
STREAMER_REFRESH_INTERVAL = 6 * 3600.0
HISTORY_UPKEEP_INTERVAL = 6 * 3600.0
HISTORY_RETENTION = timedelta(days=365)
"""STATS_RETENTION_DAYS' default: streams that ended longer ago are forgotten."""
THIN_BATCH = 200
"""Streams thinned per upkeep at most: one upkeep never holds the database for long (a backlog, such as a year
of history on the first run, is worked off over the next ones)."""

Clock = Callable[[], float]


class Poller:
    """The polling event source: one cycle asks Twitch about every monitored streamer."""

    def __init__(
        self,
        db: PollerStore,
        twitch: TwitchSource,
        notifier: Notifier,
        *,
        monotonic: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self._db = db
        self._twitch = twitch
        self._notifier = notifier
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self.last_report: CycleReport | None = None
        self.last_success: float | None = None
        """When the last cycle finished, as Unix time: for the metrics (Prometheus wants wall time)."""
        self.last_finished: float | None = None
        """When the last cycle finished, by the monotonic clock: for the health check, which must not be
        fooled by the wall clock jumping (NTP, a suspended VM)."""
        self.cycles = 0

    async def run_cycle(self) -> CycleReport:
        started = self._monotonic()
        report = CycleReport()
        user_ids = await self._db.monitored_user_ids()
        if user_ids:
            snapshot = await self._twitch.get_streams(user_ids)
            report.twitch_requests = snapshot.requests
            await self._notifier.apply(snapshot, report)
        report.duration = self._monotonic() - started
        self.last_report = report
        self.last_success = self._wall_clock()
        self.last_finished = self._monotonic()
        self.cycles += 1
        _log.debug("Poll cycle: %s", report)
        return report


class Housekeeping:
    """The periodic chores of a running bot, each run when due by the injected monotonic clock."""

    def __init__(
        self,
        db: PollerStore,
        twitch: TwitchSource,
        notifier: Notifier,
        *,
        monotonic: Clock = time.monotonic,
        token_validation_interval: float = TOKEN_VALIDATION_INTERVAL,
        streamer_refresh_interval: float = STREAMER_REFRESH_INTERVAL,
        history_retention: timedelta = HISTORY_RETENTION,
        history_upkeep_interval: float = HISTORY_UPKEEP_INTERVAL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._twitch = twitch
        self._notifier = notifier
        self._monotonic = monotonic
        self._clock = clock
        self._token_interval = token_validation_interval
        self._refresh_interval = streamer_refresh_interval
        self._history_retention = history_retention
        self._history_interval = history_upkeep_interval
        # The start-up validates the token; the first hourly check is an hour after the bot is built.
        self._last_token_validation = monotonic()
        self._last_streamer_refresh: float | None = None
        self._last_history_upkeep: float | None = None

    async def validate_token_if_due(self) -> None:
        now = self._monotonic()
        if now - self._last_token_validation < self._token_interval:
            return
        self._last_token_validation = now
        try:
            await self._twitch.validate_token()
        except TwitchError as exc:
            _log.warning("Could not validate the Twitch token: %s", exc)

    async def refresh_streamers_if_due(self) -> None:
        """Renames are also picked up from live streams; this catches offline renames, new avatars, and
        users Twitch no longer returns (banned or deleted), which /streamers then flags. The history's upkeep
        rides along (it asks nothing of Twitch, so it runs whether or not Twitch answers)."""
        now = self._monotonic()
        await self.keep_history_if_due()
        if self._last_streamer_refresh is not None and now - self._last_streamer_refresh < self._refresh_interval:
            return
        user_ids = await self._db.monitored_user_ids()
        try:
            users = await self._twitch.get_users(ids=user_ids)
        except TwitchError as exc:
            _log.warning("Could not refresh streamer names from Twitch: %s", exc)
            return
        self._last_streamer_refresh = now
        found = {user.id for user in users}
        missing = [user_id for user_id in user_ids if user_id not in found]
        if missing:
            _log.warning("Twitch no longer returns %d followed users (banned or deleted): %s", len(missing), missing)
        await self._db.refresh_streamers((streamer_from_user(user) for user in users), missing)
        # Announcement records are kept 30 days (a stream id never repeats within that), then forgotten,
        # so the table stays the size of a month of streams.
        pruned = await self._notifier.prune()
        if pruned:
            _log.info("Forgot %d announcement records older than 30 days", pruned)

    async def keep_history_if_due(self) -> None:
        """Every HISTORY_UPKEEP_INTERVAL (and at start-up): forget streams older than the retention period, end
        any left open, and thin up to THIN_BATCH streams older than THIN_AFTER to one sample per 10 minutes."""
        now = self._monotonic()
        if self._last_history_upkeep is not None and now - self._last_history_upkeep < self._history_interval:
            return
        self._last_history_upkeep = now  # a failing upkeep is tried again an interval later, not every cycle
        today = self._clock()
        forgotten = await self._db.prune_history(today - self._history_retention)
        old = await self._db.history_to_thin(today - THIN_AFTER, THIN_BATCH)
        await self._db.store_thinned(thin(history) for history in old)
        if forgotten or old:
            _log.info(
                "Stream history: forgot %d streams older than %d days, thinned the samples of %d older than %d days",
                forgotten,
                self._history_retention.days,
                len(old),
                THIN_AFTER.days,
            )


def describe_cycle(report: CycleReport) -> str | None:
    """The log line of a cycle that changed or failed something; None for an uneventful one."""
    if not (report.started or report.ended or report.announced or report.announce_failed or report.failed):
        return None
    return (
        f"Poll: {report.checked} checked, {report.live} live, {report.started} started, {report.ended} ended, "
        f"{report.announced} announced, {report.announce_failed} failed to post, "
        f"{report.failed} unknown (Twitch errors), {report.duration:.2f} s"
    )
