"""Guild roles and button presses for the fake Discord: `POST /guilds/{id}/roles`, `PUT/DELETE
/guilds/{id}/members/{user}/roles/{role}`, and MESSAGE_COMPONENT interactions (a member pressing a button).

Checked against Discord's docs (developers/docs resources/guild "Create Guild Role", "Add/Remove Guild Member
Role", topics/permissions "Permission Hierarchy", interactions/receiving-and-responding):
- creating a role needs MANAGE_ROLES, and a role may not be given permissions the bot lacks (403 50013); its name
  defaults to "new role", at most 100 characters; a guild holds at most 250 roles (400 30005); a new role is placed
  at position 1, just above @everyone, the others moving up; GUILD_ROLE_CREATE is dispatched (guilds intent);
- adding or removing a member's role needs MANAGE_ROLES and the role strictly below the bot's highest role, and the
  role must not be managed (an integration's) nor @everyone (403 50013); unknown role 404 10011, unknown member 404
  10007; 204 either way, also when nothing changed; GUILD_MEMBER_UPDATE needs the privileged members intent, so a
  bot without it is sent nothing;
- a press is an INTERACTION_CREATE of type 3 (MESSAGE_COMPONENT) on the guild's shard, with `data.custom_id`,
  `data.component_type` (2, a button) and the whole `message` the button is on; only a button with a custom_id
  (not a link button) on a message still there can be pressed; the answer is type 4 (a message, flag 64
  ephemeral), 5 (deferred, "thinking"), 6 (deferred update, no message) or 7 (update the button's message).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.fakes.discord_payloads import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    JSON,
    FakeGuild,
    FakeMessage,
    FakeRole,
    permission_value,
)

__all__ = ["MANAGE_ROLES", "MAX_ROLES", "GuildRoles", "RoleApiError", "pressable_button"]

MANAGE_ROLES = permission_value("manage_roles")
MAX_ROLES = 250
ROLE_NAME_LIMIT = 100


class RoleApiError(Exception):
    """Discord's answer refusing a role request: status, JSON error code and message."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors


def _member_permissions(guild: FakeGuild, user_id: int) -> int:
    if user_id == guild.owner_id:
        return ALL_PERMISSIONS
    member = guild.members[user_id]
    perms = guild.everyone_role.permissions
    for role_id in member.role_ids:
        if role_id in guild.roles:
            perms |= guild.roles[role_id].permissions
    return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms


def _top_position(guild: FakeGuild, user_id: int) -> int:
    member = guild.members[user_id]
    return max((guild.roles[r].position for r in member.role_ids if r in guild.roles), default=0)


def pressable_button(message: FakeMessage, custom_id: str) -> JSON | None:
    """The button with that custom id on the message (link buttons have none), if there is one."""

    def buttons() -> Iterator[Any]:
        for row in message.components:
            yield from row.get("components") or []

    return next((b for b in buttons() if b.get("type") == 2 and b.get("custom_id") == custom_id), None)


@dataclass(slots=True)
class GuildRoles:
    """What Discord does with roles, for the bot (`actor`); the fake dispatches the gateway events it returns."""

    next_id: Callable[[], int]
    actor: int

    def _need_manage_roles(self, guild: FakeGuild) -> None:
        if not _member_permissions(guild, self.actor) & MANAGE_ROLES:
            raise RoleApiError(403, 50013, "Missing Permissions")

    def create(self, guild: FakeGuild, body: JSON) -> tuple[FakeRole, list[FakeRole]]:
        """Create a role at position 1; returns it and the roles whose position moved up."""
        self._need_manage_roles(guild)
        if len(guild.roles) >= MAX_ROLES:
            raise RoleApiError(400, 30005, "Maximum number of guild roles reached (250)")
        name = body.get("name") or "new role"
        if not isinstance(name, str) or len(name) > ROLE_NAME_LIMIT:
            raise RoleApiError(
                400, 50035, "Invalid Form Body", {"name": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH"}]}}
            )
        raw = body.get("permissions")
        permissions = guild.everyone_role.permissions if raw is None else int(raw)
        mine = _member_permissions(guild, self.actor)
        if permissions & ~mine and not mine & ADMINISTRATOR:
            raise RoleApiError(403, 50013, "Missing Permissions")
        moved = [r for r in guild.roles.values() if r.id != guild.id and r.position >= 1]
        for role in moved:
            role.position += 1
        role = FakeRole(self.next_id(), guild.id, name, permissions, 1, mentionable=bool(body.get("mentionable")))
        guild.roles[role.id] = role
        return role, moved

    def _assignable(self, guild: FakeGuild, user_id: int, role_id: int) -> list[int]:
        self._need_manage_roles(guild)
        role = guild.roles.get(role_id)
        if role is None:
            raise RoleApiError(404, 10011, "Unknown Role")
        member = guild.members.get(user_id)
        if member is None:
            raise RoleApiError(404, 10007, "Unknown Member")
        if role.managed or role.id == guild.id or role.position >= _top_position(guild, self.actor):
            raise RoleApiError(403, 50013, "Missing Permissions")
        return member.role_ids

    def add_to_member(self, guild: FakeGuild, user_id: int, role_id: int) -> None:
        role_ids = self._assignable(guild, user_id, role_id)
        if role_id not in role_ids:
            role_ids.append(role_id)

    def remove_from_member(self, guild: FakeGuild, user_id: int, role_id: int) -> None:
        role_ids = self._assignable(guild, user_id, role_id)
        if role_id in role_ids:
            role_ids.remove(role_id)

    @staticmethod
    def delete(guild: FakeGuild, role_id: int) -> FakeRole:
        """A human deletes a role: gone from the guild and from every member."""
        role = guild.roles.pop(role_id)
        for member in guild.members.values():
            if role_id in member.role_ids:
                member.role_ids.remove(role_id)
        return role
