"""What the store raises when the database itself cannot be used, whichever engine holds it.

database.py re-exports DatabaseError and DatabaseLocked; the drivers raise IntegrityViolation in place of their
engine's own constraint error, so the store's callers never see sqlite3 or asyncpg types.
"""

from __future__ import annotations

__all__ = ["DatabaseError", "DatabaseLocked", "IntegrityViolation"]


class DatabaseError(Exception):
    """The database cannot be used (unreachable, unreadable, corrupt, or from a newer version of the bot)."""


class DatabaseLocked(DatabaseError):
    """Another running bot holds the database file: two bots on one file would announce everything twice."""


class IntegrityViolation(Exception):
    """A statement broke a uniqueness or foreign-key rule of the schema; the engine's own error is its cause."""
