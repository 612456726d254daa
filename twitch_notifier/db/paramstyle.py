"""SQLite's parameter styles (`?` and `:name`) rewritten as PostgreSQL's numbered `$n`, for asyncpg.

Only placeholders are touched: text inside quotes ('…', "…", $tag$…$tag$) and comments is copied as it is,
and so is a `::` cast. A statement uses one style; a name used twice is one number. Conversions are cached
per statement text, so each distinct statement is scanned once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Numbered", "bind", "numbered"]


@dataclass(frozen=True, slots=True)
class Numbered:
    """A statement with `$n` placeholders, and what each number stands for."""

    sql: str
    names: tuple[str, ...] | None
    """For `:name` statements the name of $1, $2, …; None for `?` statements."""
    count: int
    """How many numbers the statement has."""


def _identifier_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _skip_quoted(sql: str, start: int, quote: str) -> int:
    """The index just past the quote opened at `start` (a doubled quote inside is part of the text)."""
    i = start + 1
    while True:
        end = sql.find(quote, i)
        if end < 0:
            return len(sql)
        if sql.startswith(quote, end + 1):
            i = end + 2
            continue
        return end + 1


def _dollar_tag(sql: str, start: int) -> str | None:
    """The `$tag$` opening a dollar-quoted string at `start`, if one does ($1 is a placeholder, not a tag)."""
    end = start + 1
    while end < len(sql) and _identifier_char(sql[end]):
        end += 1
    inner = sql[start + 1 : end]
    if end < len(sql) and sql[end] == "$" and not inner[:1].isdigit():
        return sql[start : end + 1]
    return None


def _skip_comment_or_quote(sql: str, i: int) -> int | None:
    """Where the quoted text or comment starting at `i` ends, or None when none starts there."""
    char = sql[i]
    if char in "'\"":
        return _skip_quoted(sql, i, char)
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        return len(sql) if end < 0 else end + 2
    if char == "$":
        tag = _dollar_tag(sql, i)
        if tag is not None:
            end = sql.find(tag, i + len(tag))
            return len(sql) if end < 0 else end + len(tag)
    return None


@functools.lru_cache(maxsize=2048)
def numbered(sql: str) -> Numbered:
    """`sql` with its `?` or `:name` placeholders as `$1`, `$2`, …; raises ValueError when it mixes both."""
    out: list[str] = []
    names: dict[str, int] = {}
    positional = 0
    i = 0
    copied = 0
    while i < len(sql):
        skipped = _skip_comment_or_quote(sql, i)
        if skipped is not None:
            i = skipped
            continue
        char = sql[i]
        if char == ":" and sql.startswith("::", i):
            i += 2
        elif char == ":" and i + 1 < len(sql) and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            end = i + 1
            while end < len(sql) and _identifier_char(sql[end]):
                end += 1
            number = names.setdefault(sql[i + 1 : end], len(names) + 1)
            out += [sql[copied:i], f"${number}"]
            i = copied = end
        elif char == "?":
            positional += 1
            out += [sql[copied:i], f"${positional}"]
            i = copied = i + 1
        else:
            i += 1
    if names and positional:
        raise ValueError(f"a statement mixes ? and :name parameters: {sql!r}")
    out.append(sql[copied:])
    if names:
        return Numbered("".join(out), tuple(names), len(names))
    return Numbered("".join(out), None, positional)


def bind(statement: Numbered, params: Sequence[object] | Mapping[str, object]) -> list[object]:
    """The values of $1, $2, … from the parameters given as SQLite takes them (a mapping's other keys are ignored)."""
    if statement.names is not None:
        if not isinstance(params, Mapping):
            raise TypeError(f"the statement takes named parameters {list(statement.names)}, got a sequence")
        missing = [name for name in statement.names if name not in params]
        if missing:
            raise KeyError(f"no value for the statement's parameters {missing}")
        return [params[name] for name in statement.names]
    if isinstance(params, Mapping):
        if statement.count:
            raise TypeError("the statement takes positional parameters, got a mapping")
        return []
    if len(params) != statement.count:
        raise ValueError(f"the statement takes {statement.count} parameter(s), got {len(params)}")
    return list(params)
