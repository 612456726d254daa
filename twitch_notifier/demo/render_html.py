"""The demo's messages as one static page in Discord's dark theme: the server's sidebar, then the story in order,
each message with its author line, text, embed (colour bar, author, title, fields, thumbnail, image, footer) and
buttons. Self-contained: inline CSS, no script, nothing loaded from the network (images are drawn placeholders,
since the page must open offline), and every piece of text escaped."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any

from twitch_notifier.demo.markdown import Span, parse, plain
from twitch_notifier.demo.presentation import CHANGE_LABELS, embed_colour, image_label, when
from twitch_notifier.demo.transcript import ChannelChange, CommandRun, Event, Narration, ShownMessage, Transcript

__all__ = ["render_page"]

JSON = dict[str, Any]

EXTERNAL_LINK_ICON = (
    '<svg class="icon" aria-hidden="true" width="16" height="16" viewBox="0 0 24 24"><path fill="currentColor" '
    'd="M15 2a1 1 0 0 0 0 2h3.59l-7.3 7.3a1 1 0 0 0 1.42 1.4L20 5.42V9a1 1 0 1 0 2 0V3a1 1 0 0 0-1-1h-6Z"/>'
    '<path fill="currentColor" d="M5 5a3 3 0 0 0-3 3v11a3 3 0 0 0 3 3h11a3 3 0 0 0 3-3v-6a1 1 0 1 0-2 0v6a1 1 0 0 '
    '1-1 1H5a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1h6a1 1 0 1 0 0-2H5Z"/></svg>'
)
EYE_ICON = (
    '<svg class="icon" aria-hidden="true" width="16" height="16" viewBox="0 0 24 24"><path fill="currentColor" '
    'd="M12 5C5.6 5 2 12 2 12s3.6 7 10 7 10-7 10-7-3.6-7-10-7Zm0 11a4 4 0 1 1 0-8 4 4 0 0 1 0 8Zm0-2a2 2 0 1 0 '
    '0-4 2 2 0 0 0 0 4Z"/></svg>'
)

STYLE = """
* { box-sizing: border-box; }
html, body { margin: 0; background: #313338; color: #dbdee1; }
body { font: 16px/1.375 "gg sans", "Noto Sans", "Helvetica Neue", Helvetica, Arial, sans-serif; }
a { color: #00a8fc; text-decoration: none; }
.app { display: flex; min-height: 100vh; }
.servers { width: 72px; flex: none; background: #1e1f22; padding-top: 12px; }
.server-icon { width: 48px; height: 48px; margin: 0 auto; border-radius: 16px; background: #5865f2; color: #fff;
  display: flex; align-items: center; justify-content: center; font-weight: 600; }
.sidebar { width: 240px; flex: none; background: #2b2d31; }
.sidebar h1 { margin: 0; height: 48px; padding: 12px 16px; font-size: 16px; color: #f2f3f5;
  border-bottom: 1px solid #1f2023; }
.sidebar .heading { margin: 16px 8px 4px 16px; font-size: 12px; font-weight: 600; color: #949ba4;
  text-transform: uppercase; }
.sidebar .ch { margin: 1px 8px; padding: 6px 8px; border-radius: 4px; color: #949ba4; }
.sidebar .ch.active { background: #404249; color: #f2f3f5; }
.sidebar .ch b { margin-right: 6px; color: #80848e; font-weight: 400; }
main { flex: 1; min-width: 0; }
.topbar { height: 48px; padding: 12px 16px; border-bottom: 1px solid #1f2023; color: #f2f3f5; font-weight: 600; }
.topbar span { margin-left: 12px; padding-left: 12px; border-left: 1px solid #3f4147; color: #949ba4;
  font-weight: 400; font-size: 14px; }
.log { padding: 8px 0 32px; }
.divider { display: flex; align-items: center; margin: 28px 16px 4px; color: #f2f3f5; font-size: 13px;
  font-weight: 600; }
.divider::before, .divider::after { content: ""; flex: 1; height: 1px; background: #3f4147; }
.divider span { padding: 0 8px; }
.note { margin: 2px 72px 0; font-size: 14px; color: #949ba4; }
.message { position: relative; display: grid; grid-template-columns: 56px 1fr; margin-top: 17px;
  padding: 2px 48px 2px 16px; }
.message.ephemeral { background: rgba(88, 101, 242, 0.05); }
.used { grid-column: 2; display: flex; align-items: center; gap: 4px; font-size: 14px; color: #b5bac1;
  margin-bottom: 4px; }
.used::before { content: ""; position: absolute; left: 35px; top: 11px; width: 33px; height: 9px;
  border-left: 2px solid #4e5058; border-top: 2px solid #4e5058; border-top-left-radius: 6px; }
.used .user { color: #f2f3f5; font-weight: 500; }
.used .command { color: #00a8fc; font-weight: 500; }
.where { grid-column: 2; font-size: 12px; color: #949ba4; margin-bottom: 2px; text-transform: none; }
.where .kind { font-weight: 600; }
.where .kind.posted { color: #23a55a; }
.where .kind.edited { color: #f0b232; }
.where .kind.deleted { color: #f23f43; }
.avatar { grid-column: 1; width: 40px; height: 40px; border-radius: 50%; display: flex; align-items: center;
  justify-content: center; color: #fff; font-weight: 600; background: #5865f2; }
.body { grid-column: 2; min-width: 0; }
.header { display: flex; align-items: center; gap: 4px; }
.name { color: #f2f3f5; font-weight: 500; }
.tag { background: #5865f2; color: #fff; font-size: 10px; font-weight: 600; line-height: 15px; height: 15px;
  padding: 0 4px; border-radius: 3px; }
.header time { margin-left: 4px; font-size: 12px; color: #949ba4; }
.content { white-space: pre-wrap; overflow-wrap: anywhere; }
.edited { font-size: 10px; color: #949ba4; }
.mention { background: rgba(88, 101, 242, 0.3); color: #c9cdfb; border-radius: 3px; padding: 0 2px;
  font-weight: 500; }
.ts { background: rgba(255, 255, 255, 0.06); border-radius: 3px; padding: 0 2px; }
.code { background: #2b2d31; border: 1px solid #1e1f22; border-radius: 4px; padding: 0 3px;
  font: 85% "Consolas", "DejaVu Sans Mono", monospace; }
.embed { max-width: 520px; margin-top: 4px; background: #2b2d31; border-left: 4px solid; border-radius: 4px;
  padding: 8px 16px 16px 12px; }
.embed-top { display: flex; align-items: flex-start; }
.embed-main { flex: 1; min-width: 0; }
.embed-main > *, .embed > .embed-image, .embed > .embed-footer { margin-top: 8px; }
.embed-author { display: flex; align-items: center; gap: 8px; font-size: 14px; font-weight: 600; }
.embed-author a, .embed-author span.plain { color: #f2f3f5; }
.embed-author .icon-circle { width: 24px; height: 24px; border-radius: 50%; font-size: 11px; }
.embed-title { font-weight: 600; }
.embed-desc, .embed-field-value { font-size: 14px; white-space: pre-wrap; overflow-wrap: anywhere; }
.embed-fields { display: grid; grid-template-columns: repeat(12, 1fr); gap: 8px; }
.embed-field { grid-column: span 12; min-width: 0; }
.embed-field.inline { grid-column: span 4; }
.embed-field-name { font-size: 14px; font-weight: 600; color: #f2f3f5; margin-bottom: 2px; }
.embed-thumb { flex: none; margin: 8px 0 0 16px; width: 60px; height: 80px; border-radius: 4px; font-size: 10px;
  overflow-wrap: anywhere; }
.embed-image { width: 100%; aspect-ratio: 16 / 9; border-radius: 4px; font-size: 14px; position: relative; }
.embed-image .live { position: absolute; left: 10px; top: 10px; background: #eb0400; color: #fff; font-size: 12px;
  font-weight: 700; padding: 0 5px; border-radius: 4px; }
.embed-footer { font-size: 12px; font-weight: 500; }
.placeholder { display: flex; align-items: center; justify-content: center; text-align: center; color: #fff;
  font-weight: 600; padding: 4px; overflow: hidden; }
.icon-circle { display: inline-flex; align-items: center; justify-content: center; color: #fff; font-weight: 600; }
.buttons { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }
.button { display: inline-flex; align-items: center; gap: 6px; height: 32px; padding: 2px 16px; border-radius: 8px;
  background: #4e5058; color: #fff; font-size: 14px; font-weight: 500; }
.only-you { display: flex; align-items: center; gap: 4px; margin-top: 4px; font-size: 12px; color: #949ba4; }
.refused { color: #f23f43; font-size: 14px; }
.icon { flex: none; }
"""


def _hue(text: str) -> int:
    return zlib.crc32(text.encode()) % 360


def _safe_url(url: Any) -> str | None:
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def _initials(text: str, count: int = 1) -> str:
    words = [w for w in text.replace("_", " ").split() if w[:1].isalnum()]
    return "".join(w[0] for w in words[:count]).upper() or "?"


class _Page:
    def __init__(self, names: Mapping[int, str]) -> None:
        self.names = names

    def spans(self, markdown: str, now: datetime) -> str:
        return "".join(self.span(span) for span in parse(markdown, self.names, now))

    @staticmethod
    def span(span: Span) -> str:
        html = escape(span.text)
        if span.code:
            html = f'<code class="code">{html}</code>'
        for flag, tag in ((span.bold, "strong"), (span.italic, "em"), (span.underline, "u"), (span.strike, "s")):
            if flag:
                html = f"<{tag}>{html}</{tag}>"
        if span.mention:
            html = f'<span class="mention">{html}</span>'
        if span.timestamp:
            html = f'<span class="ts">{html}</span>'
        if (url := _safe_url(span.link)) is not None:
            html = f'<a href="{escape(url)}">{html}</a>'
        return html

    # -- events --------------------------------------------------------------------------------------------

    def event(self, event: Event) -> str:
        if isinstance(event, Narration):
            note = f'<p class="note">{escape(event.detail)}</p>' if event.detail else ""
            return f'<div class="divider"><span>{escape(event.title)}</span></div>{note}'
        if isinstance(event, CommandRun):
            return self.command(event)
        return self.change(event)

    def command(self, event: CommandRun) -> str:
        name, _, options = event.command.partition(" ")
        used = (
            f'<div class="used"><span class="user">{escape(event.user)}</span> used '
            f'<span class="command">{escape(name)}</span> <span>{escape(options)}</span></div>'
        )
        if event.reply is None:
            refused = f'<div class="refused">Discord refused it: {escape(event.refused or "")}</div>'
            return f'<div class="message">{used}<div class="body">{refused}</div></div>'
        return self.message(event.reply, before=used)

    def change(self, event: ChannelChange) -> str:
        note = f" ({escape(event.note)})" if event.note else ""
        where = (
            f'<div class="where">#{escape(event.channel)} · <span class="kind {event.kind}">'
            f"{escape(CHANGE_LABELS[event.kind])}</span>{note}</div>"
        )
        return self.message(event.message, before=where)

    # -- one message ---------------------------------------------------------------------------------------

    def message(self, message: ShownMessage, *, before: str = "") -> str:
        now = message.at
        parts = [
            f'<div class="header"><span class="name">{escape(message.author)}</span><span class="tag">APP</span>'
            f'<time datetime="{escape(message.at.astimezone(UTC).isoformat())}">{escape(when(message.at))}</time></div>'
        ]
        if message.content:
            edited = ' <span class="edited">(edited)</span>' if message.edited else ""
            parts.append(f'<div class="content">{self.spans(message.content, now)}{edited}</div>')
        parts.extend(self.embed(embed, now) for embed in message.embeds)
        parts.append(self.buttons(message.components))
        if message.ephemeral:
            parts.append(f'<div class="only-you">{EYE_ICON}Only you can see this · <a>Dismiss message</a></div>')
        classes = "message ephemeral" if message.ephemeral else "message"
        avatar = f'<div class="avatar" aria-hidden="true">{escape(_initials(message.author))}</div>'
        return f'<div class="{classes}">{before}{avatar}<div class="body">{"".join(parts)}</div></div>'

    def embed(self, embed: JSON, now: datetime) -> str:
        colour = embed_colour(embed)
        parts: list[str] = []
        author = embed.get("author") or {}
        if author.get("name"):
            name = escape(str(author["name"]))
            icon = ""
            if author.get("icon_url"):
                icon = (
                    f'<span class="icon-circle" style="background: hsl({_hue(str(author["name"]))} 45% 42%)">'
                    f"{escape(_initials(str(author['name'])))}</span>"
                )
            url = _safe_url(author.get("url"))
            label = f'<a href="{escape(url)}">{name}</a>' if url else f'<span class="plain">{name}</span>'
            parts.append(f'<div class="embed-author">{icon}{label}</div>')
        if embed.get("title"):
            title = self.spans(str(embed["title"]), now)
            url = _safe_url(embed.get("url"))
            parts.append(
                f'<div class="embed-title"><a href="{escape(url)}">{title}</a></div>'
                if url
                else f'<div class="embed-title">{title}</div>'
            )
        if embed.get("description"):
            parts.append(f'<div class="embed-desc">{self.spans(str(embed["description"]), now)}</div>')
        if fields := embed.get("fields"):
            parts.append(self.fields(fields, now))
        # As Discord lays it out: the thumbnail at the top right, beside the text; the image below, full width.
        top = f'<div class="embed-main">{"".join(parts)}</div>'
        if thumbnail := _safe_url((embed.get("thumbnail") or {}).get("url")):
            top += self.thumbnail(embed, thumbnail)
        below = ""
        if image := _safe_url((embed.get("image") or {}).get("url")):
            below += self.image(embed, image)
        if footer := self.footer(embed):
            below += f'<div class="embed-footer">{footer}</div>'
        return f'<div class="embed" style="border-left-color: {colour}"><div class="embed-top">{top}</div>{below}</div>'

    def fields(self, fields: Iterable[JSON], now: datetime) -> str:
        cells = []
        for field in fields:
            inline = " inline" if field.get("inline") else ""
            cells.append(
                f'<div class="embed-field{inline}"><div class="embed-field-name">'
                f"{self.spans(str(field.get('name', '')), now)}</div>"
                f'<div class="embed-field-value">{self.spans(str(field.get("value", "")), now)}</div></div>'
            )
        return f'<div class="embed-fields">{"".join(cells)}</div>'

    @staticmethod
    def _game(embed: JSON) -> str:
        return next((str(f.get("value", "")) for f in embed.get("fields") or [] if f.get("name") == "Game"), "")

    def thumbnail(self, embed: JSON, url: str) -> str:
        game = plain(self._game(embed), self.names)
        label = game if "/ttv-boxart/" in url else _initials(str((embed.get("author") or {}).get("name", "")))
        hue = _hue(label)
        return (
            f'<div class="embed-thumb placeholder" title="{escape(image_label(url))}" data-src="{escape(url)}" '
            f'style="background: linear-gradient(160deg, hsl({hue} 55% 45%), hsl({(hue + 40) % 360} 60% 22%))">'
            f"{escape(label)}</div>"
        )

    def image(self, embed: JSON, url: str) -> str:
        live = '<span class="live">LIVE</span>' if "/previews-ttv/" in url else ""
        title = escape(str((embed.get("author") or {}).get("name", "")))
        return (
            f'<div class="embed-image placeholder" title="{escape(image_label(url))}" data-src="{escape(url)}" '
            'style="background: linear-gradient(135deg, #9146ff 0%, #3a1f75 55%, #0e0e10 100%)">'
            f"{live}{title} · live preview</div>"
        )

    @staticmethod
    def footer(embed: JSON) -> str:
        parts = []
        if (embed.get("footer") or {}).get("text"):
            parts.append(escape(str(embed["footer"]["text"])))
        if embed.get("timestamp"):
            with contextlib.suppress(ValueError):
                parts.append(escape(when(datetime.fromisoformat(str(embed["timestamp"])))))
        return " • ".join(parts)

    @staticmethod
    def buttons(components: Iterable[JSON]) -> str:
        buttons = []
        for row in components:
            for button in row.get("components") or []:
                if button.get("type") != 2:
                    continue
                label = escape(str(button.get("label", "")))
                url = _safe_url(button.get("url")) if button.get("style") == 5 else None
                if url is not None:
                    buttons.append(f'<a class="button" href="{escape(url)}">{label}{EXTERNAL_LINK_ICON}</a>')
                else:
                    buttons.append(f'<span class="button">{label}</span>')
        return f'<div class="buttons">{"".join(buttons)}</div>' if buttons else ""


TOPIC = "The demo's story, in order: the admin's commands (in #general) and what the bot posted"


def render_page(transcript: Transcript) -> str:
    """The whole transcript as one self-contained HTML page."""
    page = _Page(transcript.names)
    server = escape(transcript.server)
    channels = "".join(
        f'<div class="ch{" active" if name == "alerts" else ""}"><b>#</b>{escape(name)}</div>'
        for name in sorted(set(transcript.names.values()))
    )
    log = "\n".join(page.event(event) for event in transcript.events)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Twitch notifier demo · {server}</title>
<style>{STYLE}</style>
</head>
<body>
<div class="app">
<nav class="servers" aria-label="Servers"><div class="server-icon">{escape(_initials(transcript.server, 2))}</div></nav>
<aside class="sidebar"><h1>{server}</h1><div class="heading">Text channels</div>{channels}</aside>
<main>
<div class="topbar"># alerts<span>{TOPIC}</span></div>
<div class="log">
{log}
</div>
</main>
</div>
</body>
</html>
"""
