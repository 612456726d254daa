"""Several bot processes on one PostgreSQL database: who owns which Discord shards, who is the leader, who wakes whom.

Each process holds a session-level advisory lock per Discord shard it runs (two processes with overlapping
SHARD_IDS would post twice, so the second waits for the first to let go), and exactly one process, the
**leader**, also holds the leader lock: it alone polls Twitch and keeps the EventSub conduit. The locks live on
one dedicated connection, never a pooled one (asyncpg's pool resets advisory locks and LISTENs when a connection
goes back to it); PostgreSQL releases them the moment that session ends, so when a leader dies, the next
election round of another process (every ELECTION_INTERVAL seconds) takes over. TCP keepalives and
`tcp_user_timeout` on the session make the server notice a leader that vanished from the network within
SERVER_DEAD_PEER_SECONDS, and the leader's own check of its connection makes it stand down as fast.

The same connection LISTENs: the leader NOTIFYs `LIVE_CHANNEL` after it records what went live or ended, and
any process NOTIFYs `FOLLOWED_CHANNEL` when a server follows or unfollows a streamer (the leader's EventSub
subscriptions follow). The tables are the truth: a notification only wakes a process early; each also looks
on its own schedule.

With SQLite there is one process and `SoloCoordinator` says so: always the leader, nobody to wake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from twitch_notifier.models import ShardScope

__all__ = [
    "ELECTION_INTERVAL",
    "FOLLOWED_CHANNEL",
    "LIVE_CHANNEL",
    "ClusterStatus",
    "Coordinator",
    "PostgresCoordinator",
    "SoloCoordinator",
    "process_owner_id",
]

_log = logging.getLogger(__name__)

LIVE_CHANNEL = "twitch_notifier_live"
"""NOTIFY channel: the leader recorded live state (something may be pending for your guilds)."""
FOLLOWED_CHANNEL = "twitch_notifier_followed"
"""NOTIFY channel: the set of followed streamers changed (the leader's EventSub subscriptions follow)."""
ELECTION_INTERVAL = 5.0
"""Seconds between two attempts at the leader lock, and between two checks of the dedicated connection."""
CHECK_TIMEOUT = 5.0
"""How long a check of the dedicated connection may take before the connection counts as lost."""
SERVER_DEAD_PEER_SECONDS = 20
"""How soon the server gives up on a silent session (keepalive idle + interval x count, and tcp_user_timeout)."""
RECONNECT_DELAY = 2.0
_LOCK_CLASS_SHARD = 0x7477_0001  # advisory lock key space (classid, objid): (class, shard id) per Discord shard
_LOCK_CLASS_LEADER = 0x7477_0002  # (class, 0): the leader
_LOCK_CLASS_IDENTIFY = 0x7477_0003  # (class, bucket): held from a process's IDENTIFY until the next may go
IDENTIFY_RETRY = 0.2
"""Seconds between two attempts at a bucket's IDENTIFY lock while another process holds it."""
_LOCK_CLASS_COUNT = 0x7477_0004  # (class, shard count): shared by every process with that SHARD_COUNT
_OTHER_COUNTS_HELD = """
    SELECT string_agg(DISTINCT objid::text, ', ') FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid <> $2 AND objsubid = 2
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_ALL_SHARDS = -1  # (shard class, -1): taken alone by a process running every shard, shared by the others
_SESSION_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": str(SERVER_DEAD_PEER_SECONDS * 1000),
}


def process_owner_id() -> str:
    """This process's name in claims and notifications: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What /healthz and /metrics say about this process's place in the cluster."""

    mode: str
    """"solo" (SQLite, one process) or "postgresql"."""
    role: str
    """"leader", "follower" or "starting" (waiting for its shard locks)."""
    owner: str
    shards: str
    connected: bool
    leader_since: float | None = None
    elections_won: int = 0

    def details(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "role": self.role,
            "owner": self.owner,
            "shards": self.shards,
            "connected": self.connected,
            "elections_won": self.elections_won,
        }


Callback = Callable[[], Awaitable[None] | None]


class Coordinator:
    """The interface the bot uses; `SoloCoordinator` and `PostgresCoordinator` implement it.

    Callbacks (set by the bot before `start`): `on_elected` when this process becomes the leader, `on_deposed`
    when it was the leader and can no longer be sure it is (its connection was lost), `on_live` when another
    process recorded live state, `on_followed` when another process changed the followed streamers."""

    owner: str

    def __init__(self) -> None:
        self.on_elected: Callback | None = None
        self.on_deposed: Callback | None = None
        self.on_live: Callback | None = None
        self.on_followed: Callback | None = None

    @property
    def is_leader(self) -> bool:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def live_changed(self) -> None:
        """This process recorded live state: wake the others (nothing to do alone)."""

    async def followed_changed(self) -> None:
        """This process changed the followed streamers: tell the leader (nothing to do alone)."""

    async def identify_turn(self, bucket: int, hold: float) -> None:
        """Wait until no other process on this database has sent an IDENTIFY of this max_concurrency `bucket` in
        the last `hold` seconds, then count this process's as sent (alone: nothing to wait for)."""

    def tell_followed_changed(self) -> None:
        """`followed_changed` from code that cannot wait (the add/remove rules' callback): sent in the background."""
        _spawn(self.followed_changed(), "cluster followed_changed")

    def status(self) -> ClusterStatus:
        raise NotImplementedError

    async def _call(self, callback: Callback | None) -> None:
        if callback is None:
            return
        try:
            result = callback()
            if result is not None:
                await result
        except Exception:
            _log.exception("A cluster callback failed")


class SoloCoordinator(Coordinator):
    """One process on SQLite: it is the leader from the start and there is nobody to wake."""

    def __init__(self, shards: str = "all") -> None:
        super().__init__()
        self.owner = "solo"
        self._shards = shards

    @property
    def is_leader(self) -> bool:
        return True

    async def start(self) -> None:
        await self._call(self.on_elected)

    async def stop(self) -> None:
        return None

    def status(self) -> ClusterStatus:
        return ClusterStatus(mode="solo", role="leader", owner=self.owner, shards=self._shards, connected=True)


Connector = Callable[[], Awaitable[Any]]
"""Opens the dedicated asyncpg connection (asyncpg.connect with this module's session settings)."""


class PostgresCoordinator(Coordinator):
    """Shard locks, the leader election and wake-ups on one dedicated PostgreSQL session (see the module doc).

    `start()` returns once this process holds the locks of every shard of `scope` (waiting, with a warning,
    while another process still holds one), then elections run in the background."""

    def __init__(
        self,
        url: str,
        scope: ShardScope | None,
        *,
        owner: str | None = None,
        election_interval: float = ELECTION_INTERVAL,
        check_timeout: float = CHECK_TIMEOUT,
        connector: Connector | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self._url = url
        self.scope = scope
        self.owner = owner or process_owner_id()
        self._election_interval = election_interval
        self._check_timeout = check_timeout
        self._connector = connector or self._connect
        self._monotonic = monotonic or time.monotonic
        self._conn: Any = None
        self._leader = False
        self._leader_since: float | None = None
        self._elections_won = 0
        self._holding_shards = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lost = asyncio.Event()
        self._conn_lock = asyncio.Lock()  # one statement at a time on the session (asyncpg allows no more)

    # -- the interface --------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def start(self) -> None:
        await self._open_and_hold_shards()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster election")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_connection()  # the locks go with the session: the next leader need not wait
        self._leader = False

    async def live_changed(self) -> None:
        await self._notify(LIVE_CHANNEL)

    async def identify_turn(self, bucket: int, hold: float) -> None:
        """Discord counts IDENTIFYs per bot token, across processes (scale-facts §4.6): the bucket's lock is taken
        before this IDENTIFY and let go `hold` seconds after it, so another process's waits for its turn instead of
        getting op 9, which would cost one of the day's 1,000 session starts. A session lock is re-entrant: this
        process's own shards of one bucket are spaced by its IdentifyPacer, not by this lock."""
        waited = False
        while True:
            conn = self._conn
            if conn is None or conn.is_closed():
                return  # no session, no lock to share: the in-process pacing still holds
            try:
                won = await asyncio.wait_for(
                    self._fetchval(conn, "SELECT pg_try_advisory_lock($1, $2)", _LOCK_CLASS_IDENTIFY, bucket),
                    self._check_timeout,
                )
            except Exception as exc:
                _log.warning("Could not take the IDENTIFY lock of bucket %d (%s): identifying anyway", bucket, exc)
                return
            if won:
                break
            if not waited:
                waited = True
                _log.info("Another bot process is identifying in bucket %d: waiting for its turn", bucket)
            await asyncio.sleep(IDENTIFY_RETRY)
        _spawn(self._release_identify(conn, bucket, hold), f"IDENTIFY lock {bucket}")

    async def _release_identify(self, conn: Any, bucket: int, hold: float) -> None:
        await asyncio.sleep(hold)
        if conn is self._conn and not conn.is_closed():  # a lost session let go of it already
            with contextlib.suppress(Exception):
                await self._fetchval(conn, "SELECT pg_advisory_unlock($1, $2)", _LOCK_CLASS_IDENTIFY, bucket)

    async def followed_changed(self) -> None:
        await self._notify(FOLLOWED_CHANNEL)

    def status(self) -> ClusterStatus:
        if self._leader:
            role = "leader"
        elif self._holding_shards:
            role = "follower"
        else:
            role = "starting"
        return ClusterStatus(
            mode="postgresql",
            role=role,
            owner=self.owner,
            shards=self._describe_scope(),
            connected=self._conn is not None and not self._conn.is_closed(),
            leader_since=self._leader_since,
            elections_won=self._elections_won,
        )

    # -- the session ----------------------------------------------------------------------------------

    async def _connect(self) -> Any:
        import asyncpg  # only deployments with DATABASE_URL load the driver

        settings = {**_SESSION_SETTINGS, "application_name": f"twitch-notifier {self._describe_scope()}"[:63]}
        return await asyncpg.connect(self._url, server_settings=settings, timeout=10)

    def _describe_scope(self) -> str:
        if self.scope is None:
            return "every shard"
        ids = ",".join(str(i) for i in self.scope.ids)
        return f"shards {ids} of {self.scope.count}"

    async def _open_and_hold_shards(self) -> None:
        """Open the session, LISTEN, and hold every shard lock of the scope (waiting for another holder to go)."""
        conn = await self._connector()
        self._conn = conn
        self._lost.clear()
        conn.add_termination_listener(self._terminated)
        await conn.add_listener(LIVE_CHANNEL, self._notified)
        await conn.add_listener(FOLLOWED_CHANNEL, self._notified)
        if self.scope is not None:
            await self._agree_on_shard_count(conn, self.scope.count)
        # A process running every shard holds the "every shard" key alone; processes running some shards share
        # it, and each holds its own shards' keys alone. So two processes never run one shard at once.
        if self.scope is None:
            locks = [("pg_try_advisory_lock", _ALL_SHARDS, "every shard")]
        else:
            locks = [("pg_try_advisory_lock_shared", _ALL_SHARDS, "every shard")]
            locks += [
                ("pg_try_advisory_lock", shard, f"shard {shard} of {self.scope.count}") for shard in self.scope.ids
            ]
        for function, key, name in locks:
            waited = False
            while not await self._fetchval(conn, f"SELECT {function}($1, $2)", _LOCK_CLASS_SHARD, key):
                if self._stopping:
                    raise ConnectionError("stopped while waiting for a shard lock")
                if not waited:
                    waited = True
                    _log.warning(
                        "Discord %s is run by another bot process on this database (one still shutting down, or "
                        "two processes whose SHARD_IDS overlap): waiting until it is free",
                        name,
                    )
                await asyncio.sleep(self._election_interval)
            if waited:
                _log.info("Discord %s is free now: this process runs it", name)
        self._holding_shards = True

    async def _fetchval(self, conn: Any, sql: str, *args: object) -> Any:
        async with self._conn_lock:
            return await conn.fetchval(sql, *args)

    async def _agree_on_shard_count(self, conn: Any, count: int) -> None:
        """Processes with different SHARD_COUNTs split the guilds differently, so two of them would run one guild:
        each holds a shared lock on its count, and one that finds another count held lets go and waits (a deploy
        that changes SHARD_COUNT starts the new processes while the old ones stop)."""
        waited = False
        while True:
            await self._fetchval(conn, "SELECT pg_advisory_lock_shared($1, $2)", _LOCK_CLASS_COUNT, count)
            others = await self._fetchval(conn, _OTHER_COUNTS_HELD, _LOCK_CLASS_COUNT, count)
            if not others:
                break
            await self._fetchval(conn, "SELECT pg_advisory_unlock_shared($1, $2)", _LOCK_CLASS_COUNT, count)
            if self._stopping:
                raise ConnectionError("stopped while waiting for processes with another SHARD_COUNT")
            if not waited:
                waited = True
                _log.warning(
                    "Bot processes with another SHARD_COUNT (%s) run on this database; this one has SHARD_COUNT=%d: "
                    "waiting for them to stop (every process must have the same SHARD_COUNT)",
                    others,
                    count,
                )
            await asyncio.sleep(self._election_interval)
        if waited:
            _log.info("No process with another SHARD_COUNT is left: this one starts")

    def _terminated(self, _conn: Any) -> None:
        self._lost.set()

    def _notified(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        if payload == self.owner:
            return  # our own notification, through the pool's session
        callback = self.on_live if channel == LIVE_CHANNEL else self.on_followed
        if channel == FOLLOWED_CHANNEL and not self._leader:
            return  # only the leader keeps EventSub subscriptions
        _spawn(self._call(callback), f"cluster {channel}")

    async def _notify(self, channel: str) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            return  # the others look on their own schedule anyway
        try:
            await asyncio.wait_for(
                self._fetchval(conn, "SELECT pg_notify($1, $2)", channel, self.owner), self._check_timeout
            )
        except (OSError, TimeoutError) as exc:
            _log.warning("Could not wake the other bot processes (%s): they look on their own schedule", exc)
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            _log.warning("Could not wake the other bot processes (%s): they look on their own schedule", exc)

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._holding_shards = False
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), self._check_timeout)
            except Exception:
                conn.terminate()

    async def _connection_ok(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed() or self._lost.is_set():
            return False
        try:
            await asyncio.wait_for(self._fetchval(conn, "SELECT 1"), self._check_timeout)
        except Exception as exc:
            _log.warning("The database session holding this process's locks failed its check: %s", exc)
            return False
        return True

    # -- elections ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if await self._connection_ok():
                    if not self._leader:
                        await self._try_to_lead()
                else:
                    await self._lost_connection()
            except Exception:  # the election must outlive anything: a bug here would leave nobody leading
                _log.exception("The cluster election round failed; trying again in %s s", self._election_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._election_interval)

    async def _try_to_lead(self) -> None:
        try:
            won = await asyncio.wait_for(
                self._fetchval(self._conn, "SELECT pg_try_advisory_lock($1, 0)", _LOCK_CLASS_LEADER),
                self._check_timeout,
            )
        except Exception as exc:
            _log.warning("Could not try for the leader lock: %s", exc)
            return
        if not won:
            return
        self._leader = True
        self._leader_since = self._monotonic()
        self._elections_won += 1
        _log.info("This process is now the leader: it polls Twitch and keeps EventSub for every process")
        await self._call(self.on_elected)

    async def _lost_connection(self) -> None:
        was_leader = self._leader
        self._leader = False
        await self._close_connection()
        if was_leader:
            self._stopping = True  # a deposed leader's process exits (see the bot): no coming back as a follower
            _log.error(
                "Lost the database session holding the leader lock: this process stops leading at once (another "
                "one takes over within %d s)",
                SERVER_DEAD_PEER_SECONDS + int(self._election_interval),
            )
            await self._call(self.on_deposed)
            return
        _log.warning("Lost the database session holding this process's shard locks; reconnecting")
        while not self._stopping:
            try:
                await self._open_and_hold_shards()
                return
            except Exception as exc:  # unreachable, refused, too many connections: all worth another try
                _log.warning("Cannot reach the database yet (%s); trying again in %.0f s", exc, RECONNECT_DELAY)
                await self._close_connection()
                await asyncio.sleep(RECONNECT_DELAY)


_pending: set[asyncio.Task[None]] = set()


def _spawn(work: Coroutine[Any, Any, None], name: str) -> None:
    task = asyncio.get_running_loop().create_task(work, name=name)
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def _is_connection_error(exc: BaseException) -> bool:
    """An outage of the database (connection refused, reset, closed) rather than a bug in a statement."""
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return True
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a requirement
        return False
    lost = (
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.PostgresConnectionError,
    )
    return isinstance(exc, lost)
