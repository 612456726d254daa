"""State objects, payload builders and request validation for the fake Discord server.

Everything here is plain data: the shapes discord.py 2.7 parses and the limits real Discord enforces.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
ALL_PERMISSIONS = discord.Permissions.all().value

# Gateway intents the fake checks (discord.Intents bit values).
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message_content

# Channel types (discord.ChannelType values).
TEXT_CHANNEL = 0
DM_CHANNEL = 1
VOICE_CHANNEL = 2
CATEGORY_CHANNEL = 4
NEWS_CHANNEL = 5

# Message flags.
FLAG_CROSSPOSTED = 1 << 0  # published to the channels following this announcement channel
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7


def permission_value(*names: str) -> int:
    """Return the permission bits for discord.py permission names, e.g. ``"manage_guild"``."""
    value = 0
    for name in names:
        try:
            value |= discord.Permissions.VALID_FLAGS[name]
        except KeyError:
            raise ValueError(f"unknown permission name {name!r}") from None
    return value


VIEW_CHANNEL = permission_value("view_channel")
SEND_MESSAGES = permission_value("send_messages")
EMBED_LINKS = permission_value("embed_links")
READ_MESSAGE_HISTORY = permission_value("read_message_history")
MANAGE_MESSAGES = permission_value("manage_messages")
MENTION_EVERYONE = permission_value("mention_everyone")
ADMINISTRATOR = permission_value("administrator")
# Permissions that Discord drops implicitly when Send Messages is denied.
_SEND_DEPENDENT = SEND_MESSAGES | EMBED_LINKS | permission_value("attach_files", "send_tts_messages") | MENTION_EVERYONE

MEMBER_PERMISSIONS = permission_value(
    "view_channel",
    "send_messages",
    "embed_links",
    "attach_files",
    "read_message_history",
    "add_reactions",
    "use_external_emojis",
    "use_application_commands",
    "create_instant_invite",
    "change_nickname",
    "connect",
    "speak",
)
MANAGE_GUILD_PERMISSIONS = MEMBER_PERMISSIONS | permission_value("manage_guild")
ADMIN_PERMISSIONS = MANAGE_GUILD_PERMISSIONS | permission_value(
    "administrator", "manage_channels", "manage_roles", "manage_messages", "mention_everyone"
)
DEFAULT_BOT_PERMISSIONS = permission_value(
    "view_channel", "send_messages", "embed_links", "attach_files", "read_message_history", "add_reactions"
)


class SnowflakeFactory:
    """Generates increasing snowflake ids whose timestamp part is the current time."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last

    def spread(self, shard: tuple[int, int] | None = None) -> int:
        """An id in a millisecond no earlier id has. The shard of an id is its millisecond modulo the shard
        count, so ids made one after another this way fall on consecutive shards, as real guild ids (spread
        over years) fall evenly. With ``shard=(shard_id, num_shards)``: the first such id on that shard."""
        millisecond = max(int(time.time() * 1000) - DISCORD_EPOCH_MS, (self._last >> 22) + 1)
        if shard is not None:
            shard_id, num_shards = shard
            if not 0 <= shard_id < num_shards:
                raise ValueError(f"no shard {shard_id} among {num_shards}")
            millisecond += (shard_id - millisecond) % num_shards
        self._last = millisecond << 22
        return self._last


def shard_of(snowflake: int, num_shards: int) -> int:
    """Discord's shard for a guild id: (guild_id >> 22) % num_shards."""
    return (snowflake >> 22) % num_shards


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(slots=True)
class FakeUser:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
        }


@dataclass(slots=True)
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    mentionable: bool = False
    bot_id: int | None = None

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(slots=True)
class FakeMember:
    user: FakeUser
    role_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=iso_now)

    def payload(self, *, with_user: bool = True) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in self.role_ids],
            "joined_at": self.joined_at,
            "nick": None,
            "avatar": None,
            "banner": None,
            "premium_since": None,
            "communication_disabled_until": None,
            "pending": False,
            "deaf": False,
            "mute": False,
            "flags": 0,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass(slots=True)
class Overwrite:
    id: int
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0

    def payload(self) -> JSON:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass(slots=True)
class FakeChannel:
    id: int
    guild_id: int
    name: str
    type: int = TEXT_CHANNEL
    position: int = 0
    topic: str | None = None
    parent_id: int | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    deleted: bool = False
    last_message_id: int | None = None

    def payload(self, *, with_guild_id: bool = True) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.payload() for o in self.overwrites],
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "flags": 0,
        }
        if self.type in (TEXT_CHANNEL, NEWS_CHANNEL):
            data |= {
                "topic": self.topic,
                "nsfw": False,
                "rate_limit_per_user": 0,
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            }
        if self.type == VOICE_CHANNEL:
            data |= {"bitrate": 64000, "user_limit": 0, "rtc_region": None, "nsfw": False}
        if with_guild_id:
            data["guild_id"] = str(self.guild_id)
        return data


@dataclass(slots=True)
class FakeGuild:
    id: int
    name: str
    owner_id: int
    bot_joined: bool = False
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)

    @property
    def everyone_role(self) -> FakeRole:
        return self.roles[self.id]

    def live_channels(self) -> list[FakeChannel]:
        return [c for c in self.channels.values() if not c.deleted]

    def rest_payload(self) -> JSON:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "widget_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "features": [],
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
        }

    def gateway_payload(self, *, initial: bool) -> JSON:
        """GUILD_CREATE data; ``unavailable`` is only present for guilds announced in READY."""
        data = self.rest_payload() | {
            "joined_at": iso_now(),
            "large": False,
            "member_count": len(self.members),
            "members": [m.payload() for m in self.members.values()],
            "channels": [c.payload(with_guild_id=False) for c in self.live_channels()],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
        if initial:
            data["unavailable"] = False
        return data


@dataclass(slots=True)
class FakeMessage:
    """A message created by the bot, as the fake stores it."""

    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[JSON] = field(default_factory=list)
    allowed_mentions: JSON | None = None
    nonce: str | int | None = None
    flags: int = 0
    tts: bool = False
    message_reference: JSON | None = None
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    deleted: bool = False
    edits: list[JSON] = field(default_factory=list)
    # Interaction responses: the webhook id is the application id.
    webhook_id: int | None = None
    interaction: JSON | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def text(self) -> str:
        return message_text(self.content, self.embeds)

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": self.tts,
            "mention_everyone": self.mention_everyone,
            "mentions": [],
            "mention_roles": [str(r) for r in self.mention_roles],
            "attachments": self.attachments,
            "embeds": self.embeds,
            "components": self.components,
            "reactions": [],
            "pinned": False,
            "type": 0,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
            data["type"] = 19
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        if self.interaction is not None:
            data["type"] = 20
            data["interaction"] = self.interaction
            data["interaction_metadata"] = {
                "id": self.interaction["id"],
                "type": self.interaction["type"],
                "user": self.interaction["user"],
                "authorizing_integration_owners": {},
            }
        return data


def message_text(content: str | None, embeds: Sequence[Mapping[str, Any]]) -> str:
    """Content plus every visible embed text, one piece per line, for easy assertions."""
    parts = [content or ""]
    for embed in embeds:
        parts += [embed.get("author", {}).get("name", ""), embed.get("title", ""), embed.get("description", "")]
        for f in embed.get("fields", []):
            parts += [f.get("name", ""), f.get("value", "")]
        parts.append(embed.get("footer", {}).get("text", ""))
    return "\n".join(p for p in parts if p)


def channel_permissions(guild: FakeGuild, channel: FakeChannel, member: FakeMember) -> int:
    """Discord's permission resolution for a member in a guild channel."""
    if member.user.id == guild.owner_id:
        return ALL_PERMISSIONS
    perms = guild.everyone_role.permissions
    for role_id in member.role_ids:
        if role_id in guild.roles:
            perms |= guild.roles[role_id].permissions
    if perms & ADMINISTRATOR:
        return ALL_PERMISSIONS
    by_target = {(o.type, o.id): o for o in channel.overwrites}
    everyone = by_target.get((0, guild.id))
    if everyone:
        perms = (perms & ~everyone.deny) | everyone.allow
    allow = deny = 0
    for role_id in member.role_ids:
        ow = by_target.get((0, role_id))
        if ow:
            allow, deny = allow | ow.allow, deny | ow.deny
    perms = (perms & ~deny) | allow
    own = by_target.get((1, member.user.id))
    if own:
        perms = (perms & ~own.deny) | own.allow
    if not perms & VIEW_CHANNEL:
        return 0
    if not perms & SEND_MESSAGES:
        perms &= ~_SEND_DEPENDENT
    return perms


# --------------------------------------------------------------------------- validation


class FormErrors:
    """Builds the nested ``errors`` object of Discord's 50035 Invalid Form Body."""

    def __init__(self) -> None:
        self.tree: JSON = {}

    def __bool__(self) -> bool:
        return bool(self.tree)

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_length(self, path: Sequence[str | int], value: Any, limit: int, *, required: bool = False) -> None:
        if value is None:
            if required:
                self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
            return
        if not isinstance(value, str):
            self.add(path, "BASE_TYPE_STRING", "Could not interpret value as string.")
        elif required and not value.strip():
            self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
        elif len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def url(self, path: Sequence[str | int], value: Any, *, allow_attachment: bool = False) -> None:
        if value is None:
            return
        schemes = ("http://", "https://", "attachment://") if allow_attachment else ("http://", "https://")
        if not isinstance(value, str) or not value.startswith(schemes) or len(value) > 2048 or " " in value:
            self.add(path, "URL_TYPE_INVALID_URL", "Not a well formed URL.")


def _embed_size(embed: Mapping[str, Any]) -> int:
    def length(value: Any) -> int:
        return len(value) if isinstance(value, str) else 0

    total = length(embed.get("title")) + length(embed.get("description"))
    total += length((embed.get("footer") or {}).get("text")) + length((embed.get("author") or {}).get("name"))
    for f in embed.get("fields") or []:
        if isinstance(f, Mapping):
            total += length(f.get("name")) + length(f.get("value"))
    return total


def _validate_embed(errors: FormErrors, path: list[str | int], embed: Any) -> None:
    if not isinstance(embed, Mapping):
        errors.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    errors.max_length([*path, "title"], embed.get("title"), 256)
    errors.max_length([*path, "description"], embed.get("description"), 4096)
    errors.url([*path, "url"], embed.get("url"))
    color = embed.get("color")
    if color is not None and (not isinstance(color, int) or not 0 <= color <= 0xFFFFFF):
        errors.add([*path, "color"], "NUMBER_TYPE_MAX", "int value should be less than or equal to 16777215.")
    timestamp = embed.get("timestamp")
    if timestamp is not None:
        try:
            datetime.fromisoformat(str(timestamp))
        except ValueError:
            errors.add([*path, "timestamp"], "DATE_TYPE_PARSE", f"Could not parse {timestamp}. Should be ISO8601.")
    fields = embed.get("fields") or []
    if len(fields) > 25:
        errors.add([*path, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for i, f in enumerate(fields):
        if not isinstance(f, Mapping):
            errors.add([*path, "fields", i], "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        errors.max_length([*path, "fields", i, "name"], f.get("name"), 256, required=True)
        errors.max_length([*path, "fields", i, "value"], f.get("value"), 1024, required=True)
    if (footer := embed.get("footer")) is not None:
        errors.max_length([*path, "footer", "text"], footer.get("text"), 2048, required=True)
        errors.url([*path, "footer", "icon_url"], footer.get("icon_url"), allow_attachment=True)
    if (author := embed.get("author")) is not None:
        errors.max_length([*path, "author", "name"], author.get("name"), 256, required=True)
        errors.url([*path, "author", "url"], author.get("url"))
        errors.url([*path, "author", "icon_url"], author.get("icon_url"), allow_attachment=True)
    for key in ("image", "thumbnail"):
        if (media := embed.get(key)) is not None:
            if not media.get("url"):
                errors.add([*path, key, "url"], "BASE_TYPE_REQUIRED", "This field is required")
            errors.url([*path, key, "url"], media.get("url"), allow_attachment=True)


def validate_message(payload: Mapping[str, Any]) -> FormErrors:
    """Check a message create/edit body against Discord's documented limits."""
    errors = FormErrors()
    errors.max_length(["content"], payload.get("content"), 2000)
    embeds = payload.get("embeds")
    if embeds is not None:
        if not isinstance(embeds, list):
            errors.add(["embeds"], "BASE_TYPE_LIST", "Must be a list.")
        else:
            if len(embeds) > 10:
                errors.add(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
            for i, embed in enumerate(embeds):
                _validate_embed(errors, ["embeds", i], embed)
            # Discord counts the 6000-character budget over all embeds of one message.
            if sum(_embed_size(e) for e in embeds if isinstance(e, Mapping)) > 6000:
                errors.add(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
    mentions = payload.get("allowed_mentions")
    if mentions is not None:
        parse = mentions.get("parse", [])
        for i, kind in enumerate(parse):
            if kind not in ("roles", "users", "everyone"):
                errors.add(
                    ["allowed_mentions", "parse", i], "ENUM_TYPE_COERCE", f'Value "{kind}" is not a valid enum value.'
                )
        for kind in ("users", "roles"):
            ids = mentions.get(kind) or []
            if kind in parse and ids:
                errors.add(
                    ["allowed_mentions"],
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                )
            if len(ids) > 100:
                errors.add(["allowed_mentions", kind], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
    components = payload.get("components")
    if isinstance(components, list) and len(components) > 5 and not (payload.get("flags") or 0) & (1 << 15):
        errors.add(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    if isinstance(components, list) and not (payload.get("flags") or 0) & (1 << 15):
        for i, row in enumerate(components):
            _validate_action_row(errors, ["components", i], row)
    return errors


def _validate_action_row(errors: FormErrors, path: list[str | int], row: Any) -> None:
    """Classic components: an action row (type 1) of at most 5 buttons; a link button (style 5) has a url
    and no custom_id, every other button a custom_id and no url; labels at most 80 characters."""
    if not isinstance(row, Mapping) or row.get("type") != 1:
        errors.add([*path, "type"], "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "Top-level components must be action rows")
        return
    items = row.get("components") or []
    if not 1 <= len(items) <= 5:
        errors.add([*path, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
    for j, item in enumerate(items):
        here = [*path, "components", j]
        if not isinstance(item, Mapping) or item.get("type") != 2:
            continue  # select menus and the like: not used by the bots tested here
        errors.max_length([*here, "label"], item.get("label"), 80)
        if item.get("style") == 5:
            if not item.get("url"):
                errors.add([*here, "url"], "BASE_TYPE_REQUIRED", "This field is required")
            errors.url([*here, "url"], item.get("url"))
            if item.get("custom_id") is not None:
                errors.add([*here, "custom_id"], "COMPONENT_INVALID_CUSTOM_ID", "A link button cannot have a custom_id")
        elif not item.get("custom_id"):
            errors.add([*here, "custom_id"], "BASE_TYPE_REQUIRED", "This field is required")


def is_empty_message(payload: Mapping[str, Any]) -> bool:
    keys = ("content", "embeds", "components", "attachments", "sticker_ids", "poll")
    return not any(payload.get(k) for k in keys)


def validate_choices(choices: Any) -> FormErrors:
    errors = FormErrors()
    if not isinstance(choices, list):
        errors.add(["data", "choices"], "BASE_TYPE_LIST", "Must be a list.")
        return errors
    if len(choices) > 25:
        errors.add(["data", "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for i, choice in enumerate(choices):
        errors.max_length(["data", "choices", i, "name"], choice.get("name"), 100, required=True)
        if isinstance(choice.get("value"), str):
            errors.max_length(["data", "choices", i, "value"], choice["value"], 100)
    return errors


_COMMAND_NAME = re.compile(r"[-_\w]{1,32}")


def _validate_command_options(errors: FormErrors, path: list[str | int], options: Sequence[Any]) -> None:
    if len(options) > 25:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen: set[str] = set()
    optional_seen = False
    for i, opt in enumerate(options):
        here = [*path, i]
        name = opt.get("name", "")
        if not _COMMAND_NAME.fullmatch(name) or name != name.lower():
            errors.add([*here, "name"], "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}")
        if name in seen:
            errors.add(
                [*here, "name"], "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique"
            )
        seen.add(name)
        errors.max_length([*here, "description"], opt.get("description"), 100, required=True)
        if opt.get("type") in (1, 2):
            _validate_command_options(errors, [*here, "options"], opt.get("options") or [])
            continue
        if opt.get("required"):
            if optional_seen:
                errors.add(
                    [*here, "required"],
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            optional_seen = True
        if len(opt.get("choices") or []) > 25:
            errors.add([*here, "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if opt.get("choices") and opt.get("autocomplete"):
            errors.add(
                [*here, "autocomplete"],
                "APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES",
                "Autocomplete cannot be set with choices",
            )


def validate_commands(commands: Any) -> FormErrors:
    """Check a bulk-overwrite body the way Discord rejects bad command definitions."""
    errors = FormErrors()
    if not isinstance(commands, list):
        errors.add([], "BASE_TYPE_LIST", "Must be a list.")
        return errors
    names: set[tuple[int, str]] = set()
    for i, cmd in enumerate(commands):
        name = cmd.get("name", "")
        ctype = cmd.get("type", 1)
        if ctype == 1 and (not _COMMAND_NAME.fullmatch(name) or name != name.lower()):
            errors.add([i, "name"], "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}")
        if (ctype, name) in names:
            errors.add(
                [i, "name"], "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Application command names must be unique: {name}"
            )
        names.add((ctype, name))
        if ctype == 1:
            errors.max_length([i, "description"], cmd.get("description"), 100, required=True)
            _validate_command_options(errors, [i, "options"], cmd.get("options") or [])
    return errors


def resolved_channel(channel: FakeChannel, permissions: int) -> JSON:
    return {
        "id": str(channel.id),
        "name": channel.name,
        "type": channel.type,
        "parent_id": str(channel.parent_id) if channel.parent_id else None,
        "permissions": str(permissions),
        "guild_id": str(channel.guild_id),
        "position": channel.position,
        "nsfw": False,
        "topic": channel.topic,
        "flags": 0,
    }
