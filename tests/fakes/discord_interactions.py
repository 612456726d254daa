"""Slash-command invocations for the fake Discord: schema checks, option payloads and reply tracking.

Mirrors what Discord's client and API check before an INTERACTION_CREATE reaches a bot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.discord_payloads import (
    ADMINISTRATOR,
    FLAG_LOADING,
    JSON,
    FakeChannel,
    FakeGuild,
    FakeMessage,
    FakeUser,
    message_text,
    resolved_channel,
)

Waiter = Callable[..., Awaitable[None]]


class InteractionRefused(Exception):
    """Discord would not deliver this interaction (unknown command, bad options, missing permission)."""


@dataclass(frozen=True, slots=True)
class TypedChannel:
    """A channel option's value that did not come from Discord's picker: an id pasted by hand, or a pick the
    admin made just before the channel was deleted.

    A plain id (or FakeChannel) is a pick: Discord's picker offers only live channels of the guild whose type
    is in the option's ``channel_types`` (documented as "the channels shown will be restricted to these
    types"), so the fake refuses anything else. The docs promise no such check on what reaches the API, so a
    TypedChannel skips that filter: the option carries the id and ``data.resolved.channels`` the channel's
    partial object (id, name, type, permissions, guild_id, ...) as Discord last knew it, whatever its type,
    guild or deletion. With ``resolved=False`` the id arrives with no resolved entry, as for a channel
    Discord could no longer resolve. A bot must answer all of these well.
    """

    id: int
    resolved: bool = True


@dataclass(slots=True)
class InteractionReply:
    """The final visible answer to an interaction."""

    content: str
    embeds: list[JSON]
    ephemeral: bool
    deferred: bool
    payload: JSON

    @property
    def text(self) -> str:
        """Content plus every embed's author, title, description, fields and footer, one per line."""
        return message_text(self.content, self.embeds)


class FakeInteraction:
    """One slash-command or autocomplete interaction the fake sent, and everything the bot answered."""

    def __init__(self, payload: JSON, *, created: float, wait_until: Waiter) -> None:
        self._wait_until = wait_until
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        # A command's name, or for a button press (type 3) the button's custom id.
        self.name: str = payload["data"].get("name") or payload["data"].get("custom_id", "")
        self.guild_id = int(payload["guild_id"]) if "guild_id" in payload else None
        self.channel_id = int(payload["channel_id"])
        self.user_id = int((payload.get("member") or payload)["user"]["id"])
        self.created = created  # event-loop time, for the 3 s answer window
        self.callbacks: list[JSON] = []
        self.original: FakeMessage | None = None
        self.followups: list[FakeMessage] = []
        self.shards: tuple[int, ...] = ()  # the shards whose sessions INTERACTION_CREATE went to (none: undelivered)

    @property
    def deferred(self) -> bool:
        return bool(self.callbacks) and self.callbacks[0].get("type") == 5

    @property
    def choices(self) -> list[JSON] | None:
        """The autocomplete result (callback type 8), if the bot sent one."""
        if self.callbacks and self.callbacks[0].get("type") == 8:
            return list(self.callbacks[0].get("data", {}).get("choices", []))
        return None

    def _final_message(self) -> FakeMessage | None:
        if self.callbacks and self.callbacks[0].get("type") == 6:  # a deferred update: the answer is a follow-up
            return self.followups[0] if self.followups else None
        if not self.callbacks or self.original is None or self.original.flags & FLAG_LOADING:
            return None
        return self.original

    async def wait_reply(self, timeout: float = 5.0) -> InteractionReply:
        """Wait for a type-4 reply, or after a defer for the first follow-up or the edit of @original."""
        await self._wait_until(
            lambda: self._final_message() is not None, timeout=timeout, what=f"a final reply to /{self.name}"
        )
        msg = self._final_message()
        assert msg is not None
        return InteractionReply(msg.content, list(msg.embeds), msg.ephemeral, self.deferred, msg.payload())

    def __repr__(self) -> str:
        return f"<FakeInteraction /{self.name} id={self.id} callbacks={[c.get('type') for c in self.callbacks]}>"


def find_command(name: str, scopes: Sequence[Sequence[JSON]]) -> JSON:
    """The first chat-input command called ``name`` in the given scopes (guild commands first)."""
    for commands in scopes:
        for cmd in commands:
            if cmd["name"] == name and cmd.get("type", 1) == 1:
                return cmd
    raise InteractionRefused(f"/{name} is not a synced command here")


def check_allowed(cmd: JSON, guild_id: int | None, permissions: int, *, bypass: bool) -> None:
    """Discord hides commands outside their contexts and from members lacking default permissions."""
    contexts = cmd.get("contexts")
    if contexts is not None and (1 if guild_id is None else 0) not in contexts:
        raise InteractionRefused(f"/{cmd['name']} is not available in this context (contexts={contexts})")
    if contexts is None and guild_id is None and cmd.get("dm_permission") is False:
        raise InteractionRefused(f"/{cmd['name']} is guild-only (dm_permission false)")
    raw = cmd.get("default_member_permissions")
    if guild_id is None or raw is None or bypass or permissions & ADMINISTRATOR:
        return
    required = int(raw)  # "0" means administrators only
    if required == 0 or permissions & required != required:
        raise InteractionRefused(
            f"/{cmd['name']} needs default_member_permissions={required}, member has {permissions}"
        )


def walk_subcommands(cmd: JSON, subcommand: str | None) -> tuple[list[tuple[str, int]], list[JSON]]:
    """Follow ``"group sub"`` through the schema; return the path and the leaf's option schema."""
    schema: list[JSON] = cmd.get("options") or []
    path: list[tuple[str, int]] = []
    for part in (subcommand or "").split():
        match = next((o for o in schema if o.get("type") in (1, 2) and o["name"] == part), None)
        if match is None:
            raise InteractionRefused(f"/{cmd['name']} has no subcommand {part!r} at {path}")
        path.append((part, match["type"]))
        schema = match.get("options") or []
    if any(o.get("type") in (1, 2) for o in schema):
        raise InteractionRefused(f"/{cmd['name']} {subcommand or ''} needs a subcommand")
    return path, schema


@dataclass(slots=True)
class OptionResolver:
    """Turns test-friendly option values into Discord's typed options plus ``data.resolved``."""

    guild: FakeGuild | None
    channels: Mapping[int, FakeChannel]
    users: Mapping[int, FakeUser]
    permissions: int  # the invoking member's, also reported on resolved channels
    resolved: JSON = field(default_factory=dict)

    def command_data(self, cmd: JSON, subcommand: str | None, given: Mapping[str, Any], focused: str | None) -> JSON:
        path, schema = walk_subcommands(cmd, subcommand)
        options = self.convert(schema, given, focused)
        for sub_name, sub_type in reversed(path):
            options = [{"name": sub_name, "type": sub_type, "options": options}]
        data: JSON = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": options}
        if self.resolved:
            data["resolved"] = self.resolved
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return data

    def convert(self, schema: list[JSON], given: Mapping[str, Any], focused: str | None) -> list[JSON]:
        names = {o["name"] for o in schema}
        if unknown := set(given) - names:
            raise InteractionRefused(f"unknown option(s) {sorted(unknown)}; command has {sorted(names)}")
        out: list[JSON] = []
        for opt in schema:
            name = opt["name"]
            if name not in given:
                # Autocomplete only carries what the user has filled in so far.
                if opt.get("required") and focused is None:
                    raise InteractionRefused(f"required option {name!r} is missing")
                continue
            if name == focused:  # whatever has been typed so far, even for numeric options
                out.append({"name": name, "type": opt["type"], "value": str(given[name]), "focused": True})
                continue
            out.append({"name": name, "type": opt["type"], "value": self._value(opt, given[name])})
        return out

    def _value(self, opt: JSON, value: Any) -> Any:
        otype, name, guild = opt["type"], opt["name"], self.guild
        snowflake = getattr(value, "id", value)

        def refuse(why: str) -> InteractionRefused:
            return InteractionRefused(f"option {name!r} (type {otype}): {why}: {value!r}")

        if otype == 3:
            if not isinstance(value, str):
                raise refuse("expected a string")
            if not opt.get("min_length", 0) <= len(value) <= opt.get("max_length", 6000):
                raise refuse("length out of range")
        elif otype in (4, 10):
            if isinstance(value, bool) or not isinstance(value, int if otype == 4 else (int, float)):
                raise refuse("expected a number")
            if opt.get("min_value") is not None and value < opt["min_value"]:
                raise refuse("below min_value")
            if opt.get("max_value") is not None and value > opt["max_value"]:
                raise refuse("above max_value")
        elif otype == 5:
            if not isinstance(value, bool):
                raise refuse("expected a boolean")
        elif otype == 7:
            if isinstance(value, TypedChannel):
                return self._typed_channel(value, refuse)
            channel = self.channels.get(snowflake) if isinstance(snowflake, int) else None
            if channel is None or channel.deleted or guild is None or channel.guild_id != guild.id:
                raise refuse("not a live channel of this guild")
            if opt.get("channel_types") and channel.type not in opt["channel_types"]:
                raise refuse(f"channel type {channel.type} not in {opt['channel_types']}")
            self.resolved.setdefault("channels", {})[str(channel.id)] = resolved_channel(channel, self.permissions)
            return str(channel.id)
        elif otype in (6, 8, 9):
            return self._user_or_role(otype, snowflake, refuse)
        else:
            raise refuse("option type not supported by the fake")
        if opt.get("choices") and value not in [c["value"] for c in opt["choices"]]:
            raise refuse("not one of the choices")
        return value

    def _typed_channel(self, typed: TypedChannel, refuse: Callable[[str], InteractionRefused]) -> str:
        if typed.resolved:
            channel = self.channels.get(typed.id)
            if channel is None:
                raise refuse("Discord cannot resolve a channel it never had (give resolved=False)")
            self.resolved.setdefault("channels", {})[str(channel.id)] = resolved_channel(channel, self.permissions)
        return str(typed.id)

    def _user_or_role(self, otype: int, snowflake: Any, refuse: Callable[[str], InteractionRefused]) -> str:
        guild = self.guild
        role = guild.roles.get(snowflake) if guild is not None and isinstance(snowflake, int) else None
        user = self.users.get(snowflake) if isinstance(snowflake, int) else None
        if role is not None and otype in (8, 9):
            self.resolved.setdefault("roles", {})[str(role.id)] = role.payload()
        elif user is not None and otype in (6, 9):
            self.resolved.setdefault("users", {})[str(user.id)] = user.payload()
            if guild is not None and user.id in guild.members:
                member = guild.members[user.id].payload(with_user=False) | {"permissions": str(self.permissions)}
                self.resolved.setdefault("members", {})[str(user.id)] = member
        else:
            raise refuse("unknown role/user")
        return str(snowflake)
