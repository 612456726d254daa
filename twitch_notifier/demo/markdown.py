"""The part of Discord's markdown the bot writes, read into styled spans both renderers draw: bold, italics,
underline, strike-through, code, masked links, backslash escapes, mentions and `<t:…>` timestamps.

Discord's own parser does more (headings, lists, quotes, spoilers); the bot writes none of it, and anything
not understood here stays literal text, as it would in Discord for markup that does not close."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

__all__ = ["Span", "format_timestamp", "parse", "plain", "relative_time"]

_LINK = re.compile(r"\[((?:\\.|[^\]\\])*)\]\((https?://[^\s)]+)\)")
_TIMESTAMP = re.compile(r"<t:(-?\d{1,13})(?::([tTdDfFR]))?>")
_CHANNEL = re.compile(r"<#(\d{1,20})>")
_ROLE = re.compile(r"<@&(\d{1,20})>")
_USER = re.compile(r"<@!?(\d{1,20})>")
_SPECIALS = (_TIMESTAMP, _CHANNEL, _ROLE, _USER, _LINK)
_DELIMITERS = ("**", "__", "~~", "*", "_", "`")


@dataclass(frozen=True, slots=True)
class Span:
    """A run of text with one style: what a renderer draws as one piece."""

    text: str
    bold: bool = False
    italic: bool = False
    underline: bool = False
    strike: bool = False
    code: bool = False
    link: str | None = None
    mention: bool = False
    """A channel, role or user mention: Discord draws it as a tinted pill."""
    timestamp: bool = False
    """A `<t:…>` timestamp, drawn in the reader's time zone."""


def relative_time(moment: datetime, now: datetime) -> str:
    """Discord's `<t:…:R>` style: "a few seconds ago", "3 minutes ago", "in an hour"."""
    seconds = (now - moment).total_seconds()
    past = seconds >= 0
    seconds = abs(seconds)
    if seconds < 45:
        words = "a few seconds"
    elif seconds < 90:
        words = "a minute"
    elif seconds < 45 * 60:
        words = f"{round(seconds / 60)} minutes"
    elif seconds < 90 * 60:
        words = "an hour"
    elif seconds < 22 * 3600:
        words = f"{round(seconds / 3600)} hours"
    elif seconds < 36 * 3600:
        words = "a day"
    else:
        words = f"{round(seconds / 86400)} days"
    return f"{words} ago" if past else f"in {words}"


def format_timestamp(moment: datetime, style: str, now: datetime) -> str:
    """A `<t:…:style>` timestamp as Discord shows it, in this machine's time zone."""
    local = moment.astimezone()
    if style == "R":
        return relative_time(moment, now)
    formats = {
        "t": "%H:%M",
        "T": "%H:%M:%S",
        "d": "%d/%m/%Y",
        "D": "%d %B %Y",
        "f": "%d %B %Y %H:%M",
        "F": "%A, %d %B %Y %H:%M",
    }
    return local.strftime(formats.get(style, formats["f"]))


def _styled(style: Span, delimiter: str) -> Span:
    """`style` inside a pair of `delimiter`s."""
    if delimiter == "**":
        return replace(style, bold=True)
    if delimiter == "__":
        return replace(style, underline=True)
    if delimiter == "~~":
        return replace(style, strike=True)
    return replace(style, italic=True)


class _Parser:
    def __init__(self, names: Mapping[int, str], now: datetime) -> None:
        self.names = names
        self.now = now
        self.spans: list[Span] = []

    def emit(self, text: str, style: Span) -> None:
        if not text:
            return
        last = self.spans[-1] if self.spans else None
        if last is not None and replace(last, text="") == replace(style, text=""):
            self.spans[-1] = replace(last, text=last.text + text)
        else:
            self.spans.append(replace(style, text=text))

    def special(self, text: str, i: int, style: Span) -> int:
        """The mention, timestamp or link starting at `i` (one of _SPECIALS matches there): emit it and
        return where it ends."""
        if match := _TIMESTAMP.match(text, i):
            moment = datetime.fromtimestamp(int(match.group(1)), tz=UTC)
            self.emit(format_timestamp(moment, match.group(2) or "f", self.now), replace(style, timestamp=True))
            return match.end()
        if match := _CHANNEL.match(text, i):
            name = self.names.get(int(match.group(1)), "unknown-channel")
            self.emit(f"#{name}", replace(style, mention=True))
            return match.end()
        if match := _ROLE.match(text, i):
            self.emit(f"@{self.names.get(int(match.group(1)), 'unknown-role')}", replace(style, mention=True))
            return match.end()
        if match := _USER.match(text, i):
            self.emit(f"@{self.names.get(int(match.group(1)), 'user')}", replace(style, mention=True))
            return match.end()
        if match := _LINK.match(text, i):
            self.run(match.group(1), replace(style, link=match.group(2)))
            return match.end()
        raise ValueError(f"no mention, timestamp or link at {i}")

    def run(self, text: str, style: Span) -> None:
        i = 0
        buffer: list[str] = []

        def flush() -> None:
            self.emit("".join(buffer), style)
            buffer.clear()

        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text) and not text[i + 1].isalnum() and not text[i + 1].isspace():
                buffer.append(text[i + 1])
                i += 2
                continue
            if char in "<[" and any(pattern.match(text, i) for pattern in _SPECIALS):
                flush()
                i = self.special(text, i, style)
                continue
            delimiter = next((d for d in _DELIMITERS if text.startswith(d, i)), None)
            if delimiter == "_" and i > 0 and text[i - 1].isalnum():
                delimiter = None  # snake_case_name: Discord italicises only whole words with underscores
            if delimiter is not None and (close := self._closing(text, i + len(delimiter), delimiter)) is not None:
                flush()
                inner = text[i + len(delimiter) : close]
                if delimiter == "`":
                    self.emit(inner, replace(style, code=True))
                else:
                    self.run(inner, _styled(style, delimiter))
                i = close + len(delimiter)
                continue
            buffer.append(char)
            i += 1
        flush()

    @staticmethod
    def _closing(text: str, start: int, delimiter: str) -> int | None:
        """Where `delimiter` opened before `start` closes (an unescaped copy, not at once), or None."""
        i = start
        if text.startswith(delimiter, i) or i >= len(text) or text[i].isspace():
            return None
        while i < len(text):
            if text[i] == "\\" and delimiter != "`":
                i += 2
                continue
            if text.startswith(delimiter, i) and not text[i - 1].isspace():
                # "**" is not a close of "*": a single star must not stop at the first of a pair.
                if len(delimiter) == 1 and delimiter != "`" and text.startswith(delimiter * 2, i):
                    i += 2
                    continue
                if delimiter == "_" and i + 1 < len(text) and text[i + 1].isalnum():
                    i += 1
                    continue
                return i
            i += 1
        return None


def parse(text: str, names: Mapping[int, str] | None = None, now: datetime | None = None) -> list[Span]:
    """`text` in Discord's markdown as spans; `names` resolves mention ids, `now` relative timestamps."""
    parser = _Parser(names or {}, now or datetime.now(UTC))
    parser.run(text, Span(""))
    return parser.spans


def plain(text: str, names: Mapping[int, str] | None = None, now: datetime | None = None) -> str:
    """`text` as a reader sees it, without the styles."""
    return "".join(span.text for span in parse(text, names, now))
