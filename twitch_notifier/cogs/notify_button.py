"""The "🔔 Notify me" button on live cards: a press gives the member the streamer's opt-in role, or takes it back.

Buttons are matched by their custom id (`notify:<twitch user id>`, core.opt_in) in an `on_interaction` listener,
not by a View held in memory: a card posted before a restart, or by another process of the cluster, still works.
The member is answered ephemerally within Discord's 3 seconds: at once when the role change is quick, else after
a deferral. A role deleted by a human is forgotten at once, so the next announcement does not ping a dead role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import discord
from discord import app_commands
from discord.ext import commands

from database import Database
from twitch_notifier.cogs.context import services_of
from twitch_notifier.core.opt_in import parse_notify_custom_id
from twitch_notifier.discord_io.opt_in_roles import PressOutcome, opt_in_problem, toggle_opt_in
from twitch_notifier.discord_io.pacer import SendPacer
from twitch_notifier.discord_io.replies import reply
from twitch_notifier.models import GuildSettings, Subscription

__all__ = [
    "ANSWER_WITHIN",
    "MAX_THROTTLE_HOURS",
    "NOTIFY_OVERRIDE_CHOICES",
    "NOTIFY_SETTING",
    "OPT_IN_SETTINGS",
    "NotifyButton",
    "button_on",
    "notify_override",
    "notify_override_text",
    "notify_value",
    "opt_in_changes",
    "opt_in_warnings",
    "setup",
    "throttle_value",
]

_log = logging.getLogger(__name__)

ANSWER_WITHIN = 2.0
"""Seconds a press's role change may take before the answer is deferred (Discord's window is 3 s)."""
ONLY_IN_SERVERS = "The \N{BELL} Notify me button only works in a server."
SOMETHING_WENT_WRONG = "Something went wrong on my side; nothing was changed. Please try again later."


NOTIFY_SETTING = "\N{BELL} Notify me button"
MAX_THROTTLE_HOURS = 168
OPT_IN_SETTINGS = ("notify_button", "ping_throttle_hours")
"""The guild settings of opt-in pings, as /settings reset names them."""


NOTIFY_OVERRIDE_CHOICES = [
    app_commands.Choice(name="on", value="on"),
    app_commands.Choice(name="off", value="off"),
    app_commands.Choice(name="default (the server's setting)", value="default"),
]
"""/editstreamer's `notify_button`: an entry's own choice, or back to the server's."""


def notify_override(choice: str) -> bool | None:
    """The stored override of an /editstreamer choice (None: the server's setting)."""
    return {"on": True, "off": False}.get(choice)


def notify_override_text(value: bool | None) -> str:
    """How /streamers and /editstreamer name an entry's own choice ("" when it uses the server's)."""
    if value is None:
        return ""
    return "\N{BELL} Notify me button " + ("on" if value else "off")


def button_on(sub: Subscription, settings: GuildSettings) -> bool:
    """Whether an entry's live cards carry the button: its own choice, else the server's."""
    return settings.notify_button if sub.notify_button is None else sub.notify_button


def notify_value(settings: GuildSettings) -> str:
    """The button's line of /settings show."""
    if not settings.notify_button:
        return "off"
    return (
        "on: members opt in per streamer with the button; announcements ping that opt-in role "
        "instead of the ping above (nobody until someone opts in)"
    )


def throttle_value(settings: GuildSettings) -> str:
    hours = settings.ping_throttle_hours
    return f"at most one ping per streamer every {hours} h" if hours else "off"


def opt_in_changes(
    guild: discord.Guild, notify_button: bool | None, ping_throttle: int | None
) -> tuple[dict[str, object], str]:
    """The /settings set options of opt-in pings, as changes, and a warning when the bot lacks Manage Roles."""
    changes: dict[str, object] = {}
    warning = ""
    if notify_button is not None:
        changes["notify_button"] = notify_button
        problem = opt_in_problem(guild) if notify_button else None
        if problem:
            warning = f"\n\N{WARNING SIGN} {problem[0].upper()}{problem[1:]}: presses are refused until then."
    if ping_throttle is not None:
        changes["ping_throttle_hours"] = ping_throttle or None
    return changes, warning


async def opt_in_warnings(
    db: Database, guild: discord.Guild, settings: GuildSettings, subscriptions: list[Subscription]
) -> list[str]:
    """/streamers' guild-wide lines about the button: what keeps the bot from handing out opt-in roles, when an
    entry has the button on (the members pressing it are told too, but only the admins can fix it)."""
    on = [s for s in subscriptions if button_on(s, settings)]
    if not on:
        return []
    roles = await db.notify_roles(guild.id)
    problems = dict.fromkeys(
        problem
        for problem in [
            opt_in_problem(guild),
            *(opt_in_problem(guild, roles.get(s.streamer.twitch_user_id)) for s in on),
        ]
        if problem
    )
    return [f"\N{WARNING SIGN} {problem[0].upper()}{problem[1:]}." for problem in problems]


class NotifyButton(commands.Cog):
    """Answers presses of the "Notify me" button and forgets opt-in roles that were deleted."""

    def __init__(self, db: Database, *, pacer: SendPacer | None = None, answer_within: float = ANSWER_WITHIN) -> None:
        self.db = db
        self.pacer = pacer
        self.answer_within = answer_within

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.component or interaction.data is None:
            return
        custom_id = interaction.data.get("custom_id")
        user_id = parse_notify_custom_id(custom_id) if isinstance(custom_id, str) else None
        if user_id is None:
            return  # another component (none today), or a forged id: not ours to answer
        guild = interaction.guild
        member = interaction.user
        if guild is None or not isinstance(member, discord.Member):
            await reply(interaction, ONLY_IN_SERVERS)
            return
        work = asyncio.ensure_future(toggle_opt_in(self.db, guild, member, user_id, pacer=self.pacer))
        try:
            outcome = await asyncio.wait_for(asyncio.shield(work), self.answer_within)
        except TimeoutError:
            # Slow Discord: acknowledge now (the member sees "thinking…"), answer when the change is done.
            with contextlib.suppress(discord.HTTPException):
                await interaction.response.defer(ephemeral=True, thinking=True)
            outcome = await self._finish(work)
        except Exception:
            _log.exception("A Notify me press in guild %s failed", guild.id)
            outcome = PressOutcome(SOMETHING_WENT_WRONG)
        try:
            await reply(interaction, outcome.text)
        except discord.HTTPException as exc:
            _log.warning("Could not answer a Notify me press in guild %s: %s", guild.id, exc)

    @staticmethod
    async def _finish(work: asyncio.Future[PressOutcome]) -> PressOutcome:
        try:
            return await work
        except Exception:
            _log.exception("A Notify me press failed")
            return PressOutcome(SOMETHING_WENT_WRONG)

    @commands.Cog.listener()
    async def on_guild_role_delete(self, role: discord.Role) -> None:
        await self.db.forget_deleted_role(role.guild.id, role.id)


async def setup(bot: commands.Bot) -> None:
    services = services_of(bot)
    await bot.add_cog(NotifyButton(services.db, pacer=services.pacer))
