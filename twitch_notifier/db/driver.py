"""The small interface database.py runs its SQL through, whichever engine is behind it (SQLite or PostgreSQL).

A driver executes statements written once, in SQL both engines accept, with SQLite's parameter styles (`?` and
`:name`): reads (fetchall, fetchone), writes that report the rows they changed (execute), batches
(executemany), and a write transaction yielding an Executor with the same four methods. Rows are read by
column name (`row["x"]`) or position (`row[0]`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypeAlias, overload

__all__ = ["Backend", "Driver", "Executor", "Row", "SqlParams"]

SqlParams: TypeAlias = Sequence[object] | Mapping[str, object]
"""Bound parameters of one statement: positional (`?`) or named (`:name`), never interpolated."""

Backend: TypeAlias = Literal["sqlite", "postgresql"]


class Row(Protocol):
    """One result row: sqlite3.Row and asyncpg.Record both are one."""

    @overload
    def __getitem__(self, key: str, /) -> Any: ...

    @overload
    def __getitem__(self, key: int, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Executor(Protocol):
    """What runs statements: a driver itself (each write its own transaction), or one open transaction."""

    async def fetchall(self, sql: str, params: SqlParams = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: SqlParams = ()) -> Row | None: ...

    async def execute(self, sql: str, params: SqlParams = ()) -> int:
        """Run one statement; returns the number of rows it inserted, updated or deleted."""
        ...

    async def executemany(self, sql: str, rows: Iterable[SqlParams]) -> None:
        """Run one statement once per parameter set (nothing when there is none)."""
        ...


class Driver(Executor, Protocol):
    """One open database: its engine, a name for messages (never holding a password), and its transactions."""

    backend: Backend
    name: str

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """One write transaction, committed when the block ends and rolled back if it raises. Within one
        process write transactions run one at a time; what the block runs goes through the Executor it yields."""
        ...

    async def schema_version(self) -> int: ...

    async def close(self) -> None: ...
