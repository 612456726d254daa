"""The "Notify me" button's Discord side: a press toggles the member's opt-in role of that streamer.

The role is created on demand (Manage Roles; a new role sits at the bottom, below the bot's), recreated if a
human deleted it, and its id kept per (guild, streamer) by the store. What is said to the member is plain text
here; what the press does (give, take, explain) is `toggle_opt_in`, which the cog answers with.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Protocol

import discord

from twitch_notifier.core.opt_in import role_name
from twitch_notifier.discord_io.pacer import SendPacer
from twitch_notifier.models import OptInTarget, Streamer
from twitch_notifier.rendering.messages import escape

__all__ = [
    "MANAGE_ROLES",
    "NEEDS_MANAGE_ROLES",
    "OptInBlock",
    "OptInStore",
    "PressOutcome",
    "opt_in_block",
    "opt_in_problem",
    "toggle_opt_in",
]

_log = logging.getLogger(__name__)

MANAGE_ROLES = "Manage Roles"
"""The permission the button needs, as Discord's settings name it."""
NEEDS_MANAGE_ROLES = (
    "I can't hand out roles in this server: I need the **Manage Roles** permission. "
    "An admin can grant it (they see this in `/streamers` too); nothing was changed."
)
UNKNOWN_STREAMER = "This button belongs to a streamer this server no longer follows; nothing was changed."
TURNED_OFF = "This server has turned the \N{BELL} Notify me button off for {name}; nothing was changed."
DISCORD_FAILED = "Discord didn't let me change your roles just now ({reason}). Please try again in a moment."


class OptInStore(Protocol):
    """The storage a press needs (database.Database)."""

    async def opt_in_target(self, guild_id: int, twitch_user_id: str) -> OptInTarget | None: ...

    async def set_notify_role(self, guild_id: int, twitch_user_id: str, role_id: int) -> None: ...

    async def forget_notify_role(self, guild_id: int, twitch_user_id: str, role_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class PressOutcome:
    """What a press did: the member's ephemeral answer, and whether they now have the role (None: unchanged)."""

    text: str
    subscribed: bool | None = None


def _name(streamer: Streamer) -> str:
    return escape(streamer.display_name.strip() or streamer.login)


@dataclass(frozen=True, slots=True)
class OptInBlock:
    """What keeps the bot from handing out an opt-in role: the permission it lacks (Discord's name for it), and/or
    the opt-in role sitting at or above the bot's highest role (Discord lets a bot manage only roles below it)."""

    missing: str | None = None
    role_above: discord.Role | None = None


def opt_in_block(guild: discord.Guild, role_id: int | None = None) -> OptInBlock | None:
    """What keeps the bot from handing out the opt-in role `role_id` (None: the role does not exist yet, and the
    bot creates it below its own), from Discord's cache; None when nothing does, or the guild is not cached."""
    me: discord.Member | None = guild.me
    if me is None:
        return None  # not cached (another shard's guild): nothing to say
    missing = None if me.guild_permissions.manage_roles else MANAGE_ROLES
    role = guild.get_role(role_id) if role_id is not None else None
    above = role if role is not None and role >= me.top_role else None
    return OptInBlock(missing, above) if missing or above else None


def opt_in_problem(guild: discord.Guild, role_id: int | None = None) -> str | None:
    """Why the bot could not hand out the opt-in roles of a guild, in words for its admins (None: it can)."""
    block = opt_in_block(guild, role_id)
    if block is None:
        return None
    if block.missing is None and block.role_above is not None:
        return (
            f"the opt-in role {block.role_above.mention} is above my highest role, so I can't hand it out: "
            "move my role above it in Server Settings → Roles"
        )
    return f"the \N{BELL} Notify me button needs the **{MANAGE_ROLES}** permission, which I don't have"


async def _paced(pacer: SendPacer | None) -> None:
    if pacer is not None:
        await pacer.acquire()


_press_locks: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = weakref.WeakValueDictionary()
"""One press at a time per (guild, streamer): two at once would each create a role, and only one be remembered."""
_made_roles: dict[int, discord.Role] = {}
"""Roles this process created, until Discord's GUILD_ROLE_CREATE puts them in the cache: a press right after the
one that created the role uses it instead of taking it for deleted and creating another."""


def _known_role(guild: discord.Guild, role_id: int) -> discord.Role | None:
    role = guild.get_role(role_id)
    if role is not None:
        _made_roles.pop(role_id, None)
        return role
    return _made_roles.get(role_id)


async def _create_role(
    guild: discord.Guild, target: OptInTarget, store: OptInStore, pacer: SendPacer | None
) -> discord.Role:
    await _paced(pacer)
    role = await guild.create_role(
        name=role_name(target.streamer.display_name, target.streamer.login),
        permissions=discord.Permissions.none(),
        # Mentionable, so the announcement's ping reaches it without the bot holding Mention @everyone.
        mentionable=True,
        reason=f"Opt-in role for {target.streamer.login}'s go-live pings (the Notify me button)",
    )
    _made_roles[role.id] = role
    await store.set_notify_role(guild.id, target.streamer.twitch_user_id, role.id)
    _log.info("Created opt-in role %s for %s in guild %s", role.id, target.streamer.login, guild.id)
    return role


async def toggle_opt_in(
    store: OptInStore,
    guild: discord.Guild,
    member: discord.Member,
    twitch_user_id: str,
    *,
    pacer: SendPacer | None = None,
) -> PressOutcome:
    """Give the member the streamer's opt-in role, or take it if they have it. Never raises for Discord's
    refusals: the member is told in plain words what happened (and, for a missing permission, that nothing did)."""
    key = (guild.id, twitch_user_id)
    lock = _press_locks.get(key)
    if lock is None:
        lock = _press_locks[key] = asyncio.Lock()
    async with lock:
        return await _toggle(store, guild, member, twitch_user_id, pacer)


async def _toggle(
    store: OptInStore, guild: discord.Guild, member: discord.Member, twitch_user_id: str, pacer: SendPacer | None
) -> PressOutcome:
    target = await store.opt_in_target(guild.id, twitch_user_id)
    if target is None:
        return PressOutcome(UNKNOWN_STREAMER)
    name = _name(target.streamer)
    role = _known_role(guild, target.role_id) if target.role_id is not None else None
    if target.role_id is not None and role is None:
        # Deleted by a human (Discord told the cache so): forgotten now, created again below if wanted.
        await store.forget_notify_role(guild.id, twitch_user_id, target.role_id)
    has_role = role is not None and member.get_role(role.id) is not None
    if not has_role and not target.followed:
        return PressOutcome(UNKNOWN_STREAMER)
    if not has_role and not target.enabled:
        return PressOutcome(TURNED_OFF.format(name=name))
    block = opt_in_block(guild, role.id if role is not None else None)
    if block is not None:
        if block.missing:
            return PressOutcome(NEEDS_MANAGE_ROLES)
        return PressOutcome(
            "My role is below this streamer's opt-in role, so I can't change it. An admin can move my role above "
            "it in Server Settings → Roles; nothing was changed."
        )
    try:
        if has_role and role is not None:
            await _paced(pacer)
            await member.remove_roles(role, reason="Pressed Notify me again")
            return PressOutcome(f"You won't be pinged anymore when **{name}** goes live.", subscribed=False)
        if role is None:
            role = await _create_role(guild, target, store, pacer)
        try:
            await _paced(pacer)
            await member.add_roles(role, reason="Pressed Notify me")
        except discord.NotFound:
            # Deleted between the cache's last word and this request: forget it and make a new one, once.
            _made_roles.pop(role.id, None)
            await store.forget_notify_role(guild.id, twitch_user_id, role.id)
            role = await _create_role(guild, target, store, pacer)
            await _paced(pacer)
            await member.add_roles(role, reason="Pressed Notify me")
    except discord.Forbidden as exc:
        _log.warning("Discord refused an opt-in role change in guild %s: %s", guild.id, exc.text)
        return PressOutcome(NEEDS_MANAGE_ROLES)
    except discord.HTTPException as exc:
        _log.warning("Could not change an opt-in role in guild %s: %s", guild.id, exc)
        return PressOutcome(DISCORD_FAILED.format(reason=f"HTTP {exc.status}"))
    return PressOutcome(
        f"You'll be pinged when **{name}** goes live (you have the {role.mention} role). Press again to stop.",
        subscribed=True,
    )
