"""Title filters: whether a stream's title (and EventSub type) passes an entry's words, regex and rerun rule.

Pure: what an admin types is parsed and checked here (a friendly FilterError otherwise), and the notifier asks
`title_allows` / `stream_allows` of each candidate. A typed regex is bounded in length and shape before it is
accepted, so that no title can make it backtrack for long: evaluating it never stalls the event loop.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
import unicodedata
from collections.abc import Sequence
from enum import Enum
from typing import Any

from twitch_notifier.models import Category, LiveStream, TitleFilter

__all__ = [
    "CLEAR_WORDS",
    "LIVE_TYPE",
    "MAX_PHRASES",
    "MAX_PHRASE_LENGTH",
    "MAX_REGEX_LENGTH",
    "MAX_REGEX_REPEATS",
    "TITLE_SCANNED",
    "ExitReason",
    "FilterError",
    "apply_title_options",
    "exit_reason",
    "games_allow",
    "parse_phrases",
    "stream_allows",
    "title_allows",
    "validate_regex",
]

LIVE_TYPE = "live"
"""EventSub's stream.online type of a real live stream; rerun, playlist, premiere and watch_party are not."""
MAX_PHRASES = 20
"""At most this many words or phrases in one include or exclude list."""
MAX_PHRASE_LENGTH = 60
MAX_REGEX_LENGTH = 200
MAX_REGEX_REPEATS = 2
"""At most this many repetitions (`*`, `+`, `{m,n}`) in a regex: with none nested, the work to try one on a title
grows at most with the cube of its length (a few milliseconds for a whole title)."""
MAX_REGEX_COUNT = 100
"""The largest bounded count `{m,n}` a regex may use."""
TITLE_SCANNED = 200
"""A regex sees at most this much of a title (Twitch allows 140 characters)."""

# re's own parser: the one reading of a pattern that is certain to agree with re.compile. Loaded by name, since
# it is an implementation module (stable in CPython 3.11+; sre_parse, its old name, warns on import).
_parser: Any = importlib.import_module("re._parser")
_MAXREPEAT: int = importlib.import_module("re._constants").MAXREPEAT
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


class ExitReason(Enum):
    """Why a live stream does not pass its entry's filters (what a card that left the filter says)."""

    GAME = "game"
    TITLE = "title"
    RERUN = "rerun"
    UNREADABLE = "unreadable"


class FilterError(ValueError):
    """What an admin typed is not a usable filter; `str()` says why, in words for the reply."""


def _visible(text: str) -> str:
    # Format characters (zero-width spaces, bidi overrides) would make a phrase that looks right never match.
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


def parse_phrases(text: str, *, what: str = "words") -> tuple[str, ...]:
    """A comma-separated list of words or phrases as typed (`giveaway, just chatting`): each trimmed, its spaces
    collapsed, duplicates (ignoring case) dropped. Raises FilterError for an empty list, too many entries or one
    too long."""
    phrases: dict[str, str] = {}
    for part in text.split(","):
        phrase = " ".join(_visible(part).split())
        if not phrase:
            continue
        if len(phrase) > MAX_PHRASE_LENGTH:
            raise FilterError(f"Each of the {what} may be at most {MAX_PHRASE_LENGTH} characters long.")
        phrases.setdefault(phrase.casefold(), phrase)
    if not phrases:
        raise FilterError(f"Give at least one word for the {what} (separate several with commas), or `none`.")
    if len(phrases) > MAX_PHRASES:
        raise FilterError(f"At most {MAX_PHRASES} {what} per streamer.")
    return tuple(phrases.values())


def validate_regex(text: str) -> str:
    """A typed regex, checked: at most MAX_REGEX_LENGTH characters, valid, no back-reference, no repetition
    inside another (`(a+)+`) or of an alternation (`(a|b)*`), at most MAX_REGEX_REPEATS repetitions, counts up to
    MAX_REGEX_COUNT. Returns it as it will be used (trimmed); raises FilterError saying what to change."""
    pattern = text.strip()
    if not pattern:
        raise FilterError("The regex is empty: give a pattern, or `none` to remove it.")
    if len(pattern) > MAX_REGEX_LENGTH:
        raise FilterError(f"The regex may be at most {MAX_REGEX_LENGTH} characters long (it has {len(pattern)}).")
    try:
        tree = _parser.parse(pattern)
    except re.error as exc:
        raise FilterError(f"That regex is not valid: {exc}.") from None
    repeats = [0]
    _check(list(tree), inside_repeat=False, repeats=repeats)
    if repeats[0] > MAX_REGEX_REPEATS:
        raise FilterError(
            f"That regex repeats {repeats[0]} times (`*`, `+`, `{{m,n}}`); at most {MAX_REGEX_REPEATS} are allowed, "
            "so that it stays quick on any title."
        )
    try:
        _compiled(pattern)
    except re.error as exc:  # the parser accepted it, the compiler not (rare): refuse it all the same
        raise FilterError(f"That regex is not valid: {exc}.") from None
    return pattern


def _check(items: Sequence[tuple[Any, Any]], *, inside_repeat: bool, repeats: list[int]) -> None:
    """Walk re's parse tree of a pattern, refusing what can backtrack without bound (see validate_regex)."""
    for op, arg in items:
        name = str(op)
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            raise FilterError("A regex may not refer back to a group (`\\1`, `(?P=name)`, `(?(1)…)`).")
        wide = False
        if name in _REPEATS:
            low, high, body = arg
            wide = high > 1
            if wide:
                _check_repeat(low, high, list(body), inside_repeat=inside_repeat)
                repeats[0] += 1
        for child in _children(name, arg):
            _check(child, inside_repeat=inside_repeat or wide, repeats=repeats)


def _check_repeat(low: int, high: int, body: list[tuple[Any, Any]], *, inside_repeat: bool) -> None:
    if inside_repeat:
        raise FilterError(
            "A regex may not repeat something that itself repeats, like `(a+)+` or `(\\w*\\s)*`: such a pattern "
            "can take forever on some titles."
        )
    if max(low, 0 if high == _MAXREPEAT else high) > MAX_REGEX_COUNT:
        raise FilterError(f"A count in a regex (`{{m,n}}`) may be at most {MAX_REGEX_COUNT}.")
    if any(str(inner) == "BRANCH" for inner, _ in _flatten(body)):
        raise FilterError(
            "A regex may not repeat an alternation, like `(foo|bar)+`: use `(foo|bar)` without the repetition."
        )


def _children(name: str, arg: Any) -> list[list[tuple[Any, Any]]]:
    """The subtrees under one node of re's parse tree."""
    if name in _REPEATS:
        return [list(arg[2])]
    if name == "SUBPATTERN":
        return [list(arg[3])]
    if name == "BRANCH":
        return [list(branch) for branch in arg[1]]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [list(arg[1])]
    if name == "ATOMIC_GROUP":
        return [list(arg)]
    return []


def _flatten(items: Sequence[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every node of a parse (sub)tree, depth first."""
    found: list[tuple[Any, Any]] = []
    for op, arg in items:
        found.append((op, arg))
        for child in _children(str(op), arg):
            found += _flatten(child)
    return found


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    """Each regex is compiled once (the filters of every entry share the cache)."""
    return re.compile(pattern, re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _phrase(phrase: str) -> re.Pattern[str]:
    """A phrase as whole words of a casefolded title: `just chatting` matches `Just  Chatting!` but not
    `justchatting` or `adjust chatting`. Word characters are Unicode's (`\\w`)."""
    words = phrase.casefold().split()
    body = r"\s+".join(re.escape(word) for word in words)
    start = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    end = r"(?!\w)" if re.search(r"\w$", words[-1]) else ""
    return re.compile(start + body + end)


def _has(title: str, phrases: Sequence[str]) -> bool:
    return any(_phrase(phrase).search(title) for phrase in phrases)


@functools.lru_cache(maxsize=8192)
def title_allows(title_filter: TitleFilter | None, title: str, stream_type: str = LIVE_TYPE) -> bool:
    """Whether a stream passes a title filter (None passes everything). Cached: a card is asked about each
    cycle, and its answer changes only with its title or type."""
    if title_filter is None:
        return True
    if title_filter.skip_reruns and (stream_type or LIVE_TYPE) != LIVE_TYPE:
        return False
    folded = _visible(title).casefold()
    if title_filter.include and not _has(folded, title_filter.include):
        return False
    if title_filter.exclude and _has(folded, title_filter.exclude):
        return False
    if title_filter.regex:
        try:
            pattern = _compiled(title_filter.regex)
        except re.error:
            return False  # stored by an older rule, or by hand: fails closed, like an unreadable filter
        if pattern.search(_visible(title)[:TITLE_SCANNED]) is None:
            return False
    return True


def games_allow(games: Sequence[Category] | None, game_id: str) -> bool:
    """The game filter (as SQL applies it when announcing): None allows every category."""
    return games is None or any(game.id == game_id for game in games)


def stream_allows(
    live: LiveStream,
    *,
    games: Sequence[Category] | None,
    title_filter: TitleFilter | None,
    unreadable: bool = False,
) -> bool:
    """Whether an entry's filters, game and title, let this live stream through now (an unreadable one: never)."""
    if unreadable:
        return False
    return games_allow(games, live.game_id) and title_allows(title_filter, live.title, live.stream_type)


def exit_reason(
    live: LiveStream,
    *,
    games: Sequence[Category] | None,
    title_filter: TitleFilter | None,
    unreadable: bool = False,
) -> ExitReason | None:
    """Why the entry's filters keep this live stream out (None: they let it through)."""
    if unreadable:
        return ExitReason.UNREADABLE
    if not games_allow(games, live.game_id):
        return ExitReason.GAME
    if title_filter is not None and title_filter.skip_reruns and (live.stream_type or LIVE_TYPE) != LIVE_TYPE:
        return ExitReason.RERUN
    if not title_allows(title_filter, live.title, live.stream_type):
        return ExitReason.TITLE
    return None


CLEAR_WORDS = frozenset({"none", "any", "off"})
"""What an admin types to remove a word list or the regex (`/editstreamer include_words:none`)."""


def apply_title_options(
    base: TitleFilter | None,
    *,
    include: str | None = None,
    exclude: str | None = None,
    regex: str | None = None,
    skip_reruns: bool | None = None,
) -> TitleFilter | None:
    """An entry's title filter after the options of /addstreamer or /editstreamer (None: left as it is; `none`
    removes a list or the regex); None when nothing is left to filter by. Raises FilterError for a bad value."""
    current = base or TitleFilter()

    def cleared(text: str) -> bool:
        return text.strip().lower() in CLEAR_WORDS

    if include is not None:
        current = dataclasses.replace(current, include=() if cleared(include) else parse_phrases(include))
    if exclude is not None:
        current = dataclasses.replace(
            current, exclude=() if cleared(exclude) else parse_phrases(exclude, what="excluded words")
        )
    if regex is not None:
        current = dataclasses.replace(current, regex=None if cleared(regex) else validate_regex(regex))
    if skip_reruns is not None:
        current = dataclasses.replace(current, skip_reruns=skip_reruns)
    return None if current.empty else current
