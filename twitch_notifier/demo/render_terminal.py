"""The demo's messages in the terminal, drawn with rich as Discord would show them: the author line, the text
with its markdown, each embed with its colour bar (author, linked title, description, fields, thumbnail and
image, footer), and the buttons under it. Without a colour terminal it is the same layout in plain text."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rich.box import Box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.style import Style
from rich.table import Table
from rich.text import Text

from twitch_notifier.demo.markdown import Span, parse
from twitch_notifier.demo.presentation import CHANGE_LABELS, embed_colour, image_label, when
from twitch_notifier.demo.transcript import ChannelChange, CommandRun, Event, Narration, ShownMessage

__all__ = ["TerminalView", "make_console"]

JSON = dict[str, Any]

# Discord's dark theme, as far as a terminal can follow it.
LINK = "#00a8fc"
MUTED = "#949ba4"
MENTION = Style(color="#c9cdfb", bgcolor="#3c4270")
APP_TAG = Style(color="white", bgcolor="#5865f2", bold=True)
BUTTON = Style(color="white", bgcolor="#4e5058", bold=True)
CHANGE_STYLES = {"posted": "bold green", "edited": "bold yellow", "deleted": "bold red"}

# A box that draws only its left edge: the embed's colour bar. (Each line: left, horizontal, divider, right.)
COLOUR_BAR = Box("▌   \n▌   \n▌   \n▌   \n▌   \n▌   \n▌   \n▌   \n")


def make_console(*, file: Any = None, width: int | None = None) -> Console:
    """A console for the demo: rich decides on colour (NO_COLOR / FORCE_COLOR are honoured); text is never read
    as rich markup or emoji codes, since it is Discord's text, drawn here by our own rules."""
    out = file if file is not None else sys.stdout
    if width is None and not out.isatty():
        width = 100
    return Console(file=out, width=width, markup=False, emoji=False, highlight=False, soft_wrap=False)


class TerminalView:
    """Draws transcript events on a rich console as they happen."""

    def __init__(self, console: Console, names: Mapping[int, str]) -> None:
        self.console = console
        self.names = names

    def show(self, event: Event) -> None:
        if isinstance(event, Narration):
            self._narration(event)
        elif isinstance(event, CommandRun):
            self._command(event)
        else:
            self._change(event)

    def banner(self, title: str, lines: Iterable[str]) -> None:
        body = Text("\n".join(lines), style=MUTED)
        self.console.print(Panel(body, title=Text(title, style="bold"), border_style="#5865f2", expand=False))

    # -- events -------------------------------------------------------------------------------------------

    def _indented(self, renderable: RenderableType, *, gap: bool = False) -> None:
        """Under the narration's heading, two columns in; `gap` puts an empty line before it."""
        if gap:
            self.console.print()
        self.console.print(Padding(renderable, (0, 0, 0, 2), expand=False))

    def _narration(self, event: Narration) -> None:
        self.console.print()
        self.console.print(Text("▶ " + event.title, style="bold cyan"))
        if event.detail:
            self._indented(Text(event.detail, style=MUTED))

    def _command(self, event: CommandRun) -> None:
        used = Text.assemble(
            ("╭─ ", MUTED), (event.user, "bold"), (" used ", MUTED), (event.command, f"bold {LINK}"),
            (f"  in #{event.channel}", MUTED),
        )  # fmt: skip
        self._indented(used, gap=True)
        if event.reply is None:
            self._indented(Text(f"Discord refused it: {event.refused}", style="red"))
            return
        self._indented(self.message(event.reply))

    def _change(self, event: ChannelChange) -> None:
        label = Text.assemble(
            (f"#{event.channel}", f"bold {MUTED}"), (" · ", MUTED),
            (CHANGE_LABELS[event.kind], CHANGE_STYLES[event.kind]),
        )  # fmt: skip
        if event.note:
            label.append(f" ({event.note})", style=MUTED)
        self._indented(label, gap=True)
        self._indented(self.message(event.message))

    # -- one message --------------------------------------------------------------------------------------

    def message(self, message: ShownMessage) -> RenderableType:
        header = Text.assemble((message.author, "bold"), " ", (" APP ", APP_TAG), "  ", (when(message.at), MUTED))
        parts: list[RenderableType] = [header]
        if message.content:
            content = self.text(message.content)
            if message.edited:
                content.append(" (edited)", style=MUTED)
            parts.append(content)
        parts.extend(self.embed(embed) for embed in message.embeds)
        if buttons := self.buttons(message.components):
            parts.append(buttons)
        if message.ephemeral:
            parts.append(Text("👁 Only you can see this · Dismiss message", style=MUTED))
        return Group(*parts)

    def text(self, markdown: str, base: Style | str = "") -> Text:
        text = Text(style=base)
        for span in parse(markdown, self.names):
            text.append(span.text, style=self._style(span))
        return text

    @staticmethod
    def _style(span: Span) -> Style:
        if span.mention or span.timestamp:
            return MENTION
        return Style(
            bold=span.bold or None,
            italic=span.italic or None,
            underline=span.underline or None,
            strike=span.strike or None,
            color=LINK if span.link else ("#e6e6e6" if span.code else None),
            bgcolor="#2b2d31" if span.code else None,
            link=span.link,
        )

    def embed(self, embed: JSON) -> RenderableType:
        rows: list[RenderableType] = []
        author = embed.get("author") or {}
        if author.get("name"):
            rows.append(Text.assemble(("◉ " if author.get("icon_url") else "", MUTED), (author["name"], "bold")))
        if embed.get("title"):
            title = self.text(embed["title"], Style(bold=True, color=LINK if embed.get("url") else None))
            if embed.get("url"):
                title.stylize(Style(link=embed["url"]))
            rows.append(title)
        if embed.get("description"):
            rows.append(self.text(embed["description"]))
        rows.extend(self._fields(embed.get("fields") or []))
        thumbnail = (embed.get("thumbnail") or {}).get("url")
        if thumbnail:
            rows.append(Text(f"▣ thumbnail: {image_label(thumbnail)}", style=MUTED))
        image = (embed.get("image") or {}).get("url")
        if image:
            rows.append(Text(f"▭ image: {image_label(image)}", style=MUTED))
        footer = self._footer(embed)
        if footer:
            rows.append(Text(footer, style=MUTED))
        return Panel(Group(*rows), box=COLOUR_BAR, border_style=embed_colour(embed), expand=False, padding=(0, 1))

    def _fields(self, fields: list[JSON]) -> list[RenderableType]:
        """Inline fields side by side, up to three a row, as Discord lays them out; the others on their own."""
        rows: list[RenderableType] = []
        inline: list[JSON] = []

        def close_row() -> None:
            if not inline:
                return
            grid = Table.grid(padding=(0, 4))
            for _ in inline:
                grid.add_column()
            grid.add_row(*(self._field(f) for f in inline))
            rows.append(grid)
            inline.clear()

        for field in fields:
            if field.get("inline"):
                inline.append(field)
                if len(inline) == 3:
                    close_row()
            else:
                close_row()
                rows.append(self._field(field))
        close_row()
        return rows

    def _field(self, field: JSON) -> RenderableType:
        return Group(self.text(str(field.get("name", "")), "bold"), self.text(str(field.get("value", ""))))

    @staticmethod
    def _footer(embed: JSON) -> str:
        parts = []
        if (embed.get("footer") or {}).get("text"):
            parts.append(embed["footer"]["text"])
        if embed.get("timestamp"):
            try:
                moment = datetime.fromisoformat(embed["timestamp"])
            except ValueError:
                pass
            else:
                parts.append(when(moment))
        return " • ".join(parts)

    @staticmethod
    def buttons(components: Iterable[JSON]) -> Text | None:
        text = Text()
        for row in components:
            for button in row.get("components") or []:
                if button.get("type") != 2:
                    continue
                if text:
                    text.append("  ")
                is_link = button.get("style") == 5 and button.get("url")
                label = f" {button.get('label', '')}{' ↗' if is_link else ''} "
                text.append(label, style=BUTTON + Style(link=button["url"]) if is_link else BUTTON)
                if is_link:
                    text.append(f" {button['url']}", style=MUTED)
        return text or None
