"""The fake Discord's role rules (discord_roles.py), checked on their own: what Discord refuses, it refuses."""

from __future__ import annotations

import itertools

import pytest

from tests.fakes.discord_payloads import FakeGuild, FakeMember, FakeMessage, FakeRole, FakeUser, permission_value
from tests.fakes.discord_roles import MANAGE_ROLES, GuildRoles, RoleApiError, pressable_button

BOT, MEMBER = 100, 200


@pytest.fixture
def guild():
    guild = FakeGuild(1, "g", owner_id=999)
    guild.roles[1] = FakeRole(1, 1, "@everyone", permission_value("view_channel"))
    guild.roles[2] = FakeRole(2, 1, "bot", MANAGE_ROLES, 1, managed=True, bot_id=BOT)
    guild.members[BOT] = FakeMember(FakeUser(BOT, "bot", bot=True), [2])
    guild.members[MEMBER] = FakeMember(FakeUser(MEMBER, "member"))
    return guild


@pytest.fixture
def roles():
    ids = itertools.count(1000)
    return GuildRoles(lambda: next(ids), BOT)


def test_a_new_role_sits_at_the_bottom_and_the_others_move_up(guild, roles):
    role, moved = roles.create(guild, {"name": "x live", "permissions": "0", "mentionable": True})
    assert (role.position, role.permissions, role.mentionable) == (1, 0, True)
    assert [r.id for r in moved] == [2]
    assert guild.roles[2].position == 2
    assert roles.create(guild, {})[0].name == "new role"


def test_creating_needs_manage_roles_and_no_permission_beyond_the_bots(guild, roles):
    with pytest.raises(RoleApiError) as refused:
        roles.create(guild, {"permissions": str(permission_value("ban_members"))})
    assert (refused.value.status, refused.value.code) == (403, 50013)
    guild.roles[2].permissions = 0
    with pytest.raises(RoleApiError) as refused:
        roles.create(guild, {"name": "x"})
    assert (refused.value.status, refused.value.code) == (403, 50013)


def test_member_roles_respect_the_hierarchy(guild, roles):
    role, _ = roles.create(guild, {"name": "x"})
    roles.add_to_member(guild, MEMBER, role.id)
    roles.add_to_member(guild, MEMBER, role.id)  # idempotent, like Discord's 204
    assert guild.members[MEMBER].role_ids == [role.id]
    role.position = guild.roles[2].position  # a human moved it up to the bot's role
    with pytest.raises(RoleApiError) as refused:
        roles.remove_from_member(guild, MEMBER, role.id)
    assert refused.value.code == 50013
    for forbidden in (1, 2):  # @everyone and a managed role
        with pytest.raises(RoleApiError):
            roles.add_to_member(guild, MEMBER, forbidden)


def test_unknown_role_or_member(guild, roles):
    role, _ = roles.create(guild, {"name": "x"})
    with pytest.raises(RoleApiError) as refused:
        roles.add_to_member(guild, MEMBER, 424242)
    assert (refused.value.status, refused.value.code) == (404, 10011)
    with pytest.raises(RoleApiError) as refused:
        roles.add_to_member(guild, 777, role.id)
    assert (refused.value.status, refused.value.code) == (404, 10007)
    roles.add_to_member(guild, MEMBER, role.id)
    roles.delete(guild, role.id)
    assert guild.members[MEMBER].role_ids == []


def test_only_buttons_with_a_custom_id_can_be_pressed():
    message = FakeMessage(1, 2, 3, FakeUser(BOT, "bot", bot=True))
    message.components = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 5, "label": "Watch", "url": "https://twitch.tv/x"},
                {"type": 2, "style": 2, "label": "Notify", "custom_id": "notify:1"},
            ],
        }
    ]
    assert pressable_button(message, "notify:1")["label"] == "Notify"
    assert pressable_button(message, "notify:2") is None
