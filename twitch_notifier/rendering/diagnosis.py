"""What /testalert posts and what /diagnose says: a live card marked as a test that pings nobody, and the lines of
a server's diagnosis (per channel what the bot may do there, per entry its ping, last announcement and failure).

Plain data in, Discord's JSON shapes and text out (no discord import), so all of it is testable alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from twitch_notifier.models import Announcement, LastAnnouncement, LiveStream, Streamer
from twitch_notifier.rendering.limits import CONTENT_LIMIT, EMBED_FOOTER_LIMIT
from twitch_notifier.rendering.messages import NOTIFY_LABEL, escape, live_announcement, shown

__all__ = [
    "MENTION_EVERYONE_LABEL",
    "TEST_MARK",
    "ChannelDiagnosis",
    "EntryDiagnosis",
    "alert_preview",
    "as_test_alert",
    "channel_line",
    "entry_line",
    "message_link",
    "throttle_note",
]

TEST_MARK = "\N{TEST TUBE} Test alert"
MENTION_EVERYONE_LABEL = "Mention @everyone, @here, and All Roles"
OK = "\N{WHITE HEAVY CHECK MARK}"
NO = "\N{CROSS MARK}"
NO_MENTIONS = {"parse": [], "replied_user": False}


def message_link(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def as_test_alert(card: Announcement, *, ping_described: str) -> Announcement:
    """The live card `card` (rendered with no ping) marked as a test in its text and footer, allowing no mention
    at all; `ping_described` says whom a real announcement would ping, in words that ping nobody."""
    note = f"-# {TEST_MARK}: a preview, {ping_described}"
    content = f"{note}\n{card.content}" if card.content else note
    embed = dict(card.embed)
    footer = embed.get("footer", {}).get("text", "")
    embed["footer"] = {"text": f"{TEST_MARK} · {footer}"[:EMBED_FOOTER_LIMIT] if footer else TEST_MARK}
    return dataclasses.replace(card, content=content[:CONTENT_LIMIT], embed=embed, allowed_mentions=NO_MENTIONS)


def alert_preview(
    stream: LiveStream, streamer: Streamer, *, template: str | None, notify_button: bool, ping_described: str
) -> Announcement:
    """What /testalert posts: the entry's live card as a real announcement draws it (its template, its buttons, the
    \N{BELL} Notify me one included when the entry has it on), with no ping in its text, marked as a test."""
    card = live_announcement(stream, streamer, ping=None, template=template, notify=notify_button)
    # A template's {ping} renders as nothing here: no space is left where it stood.
    card = dataclasses.replace(card, content=card.content.strip())
    return as_test_alert(card, ping_described=ping_described)


@dataclass(frozen=True, slots=True)
class ChannelDiagnosis:
    """What the bot may do in one announcement channel, each missing permission in Discord's words."""

    channel_id: int
    exists: bool = True
    cannot_post: tuple[str, ...] = ()
    """Missing for posting at all (View Channel, Send Messages)."""
    cannot_embed: tuple[str, ...] = ()
    news: bool = False
    publish_wanted: bool = False
    """The server chose to publish (only a news channel publishes)."""


@dataclass(frozen=True, slots=True)
class EntryDiagnosis:
    """One entry: whom it pings and whether Discord would deliver that (and, with the Notify me button, whether the
    bot can hand out the opt-in role), its last announcement and failure."""

    subscription_id: int
    streamer: Streamer
    channel_id: int
    ping: str
    """The ping in effect, as the reply shows it (e.g. "@everyone", "@Live", "none")."""
    ping_problem: str | None = None
    last: LastAnnouncement | None = None
    last_failure: str | None = None
    last_failure_at: datetime | None = None
    current_error: str | None = None
    """The failure still standing (the next announcement is expected to fail the same way), if any."""
    notify_button: bool = False
    """The entry has the Notify me button on: the bot must be able to hand out its opt-in role."""
    opt_in_missing: tuple[str, ...] = ()
    """Missing for handing out the opt-in role (Manage Roles)."""
    opt_in_role_above: str | None = None
    """The name of the opt-in role when it sits at or above the bot's highest role (so it can't hand it out)."""
    pings_held_until: datetime | None = None
    """The server's ping throttle keeps the streamer's next stream from pinging until then."""


def _check(label: str, missing: Sequence[str]) -> str:
    return f"{label} {OK}" if not missing else f"{label} {NO} missing **{', '.join(missing)}**"


def channel_line(channel: ChannelDiagnosis) -> str:
    """The heading of one channel's entries: whether the bot can post, embed and publish there."""
    where = f"<#{channel.channel_id}>"
    if not channel.exists:
        return f"**{where}** {NO} the channel was deleted (or I can't see it): pick another with `/editstreamer`"
    parts = [_check("post", channel.cannot_post), _check("embed", channel.cannot_embed)]
    if not channel.publish_wanted:
        parts.append("publish: off")
    elif not channel.news:
        parts.append("publish: not an announcement channel")
    else:
        parts.append(_check("publish", channel.cannot_post))
    return f"**{where}** — " + " · ".join(parts)


def _opt_in_check(entry: EntryDiagnosis) -> str:
    check = _check(NOTIFY_LABEL, entry.opt_in_missing)
    if entry.opt_in_role_above is None:
        return check
    above = f"@{escape(entry.opt_in_role_above)} is above my highest role: move mine above it (Server Settings → Roles)"
    return f"{check}; {above}" if entry.opt_in_missing else f"{NOTIFY_LABEL} {NO} {above}"


def _when(moment: datetime) -> str:
    return f"<t:{int(moment.timestamp())}:R>"


def throttle_note(until: datetime) -> str:
    """The ping throttle at work: a new stream of the streamer pings nobody until `until`."""
    return f"\N{HOURGLASS WITH FLOWING SAND} a new stream pings nobody until {_when(until)}"


def entry_line(guild_id: int, entry: EntryDiagnosis) -> str:
    """One entry under its channel: name, ping (and why it would not notify), whether the bot can hand out its
    opt-in role (with the Notify me button on), last announcement, last failure."""
    name = escape(shown(entry.streamer.display_name, "") or entry.streamer.login)
    ping = f"ping {escape(entry.ping)}" + (f" {NO} {entry.ping_problem}" if entry.ping_problem else "")
    parts = [f"• **{name}**", ping]
    if entry.pings_held_until is not None:
        parts.append(throttle_note(entry.pings_held_until))
    if entry.notify_button:
        parts.append(_opt_in_check(entry))
    if entry.last is None:
        parts.append("no announcement on record")
    elif entry.last.message_id is None:
        parts.append(f"last announced {_when(entry.last.posted_at)}")
    else:
        link = message_link(guild_id, entry.last.channel_id, entry.last.message_id)
        parts.append(f"last announced {_when(entry.last.posted_at)} ([message]({link}))")
    line = " · ".join(parts)
    if entry.current_error:
        line += f"\n  {NO} failing: {escape(entry.current_error)}"
    if entry.last_failure and entry.last_failure_at and entry.last_failure != entry.current_error:
        line += f"\n  last failure {_when(entry.last_failure_at)}: {escape(entry.last_failure)}"
    elif entry.last_failure_at and entry.current_error:
        line += f" (since {_when(entry.last_failure_at)})"
    return line
