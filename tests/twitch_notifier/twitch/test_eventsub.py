"""Unit tests for twitch.eventsub: every EventSub message shape parsed, hostile or odd input refused or
tolerated as Twitch's documentation and observed behaviour require (facts §3, §6)."""

import json
from datetime import UTC, datetime

import pytest

from twitch_notifier.twitch.eventsub import (
    ChannelUpdate,
    Keepalive,
    MalformedMessage,
    Notification,
    Reconnect,
    Revocation,
    StreamOffline,
    StreamOnline,
    Welcome,
    parse_envelope,
    parse_time,
    parse_webhook,
)

SUBSCRIPTION = {
    "id": "f1c2a387-161a-49f9-a165-0f21d7a4e1c4",
    "status": "enabled",
    "type": "stream.online",
    "version": "1",
    "cost": 1,
    "condition": {"broadcaster_user_id": "1337"},
    "transport": {"method": "conduit", "conduit_id": "bfcfc993-26b1-b876-44d9-afe75a379dac"},
    "created_at": "2019-11-16T10:11:12.634234626Z",
}


def envelope(message_type: str, payload: dict, **metadata) -> dict:
    return {
        "metadata": {
            "message_id": "befa7b53-d79d-478f-86b9-120f112b044e",
            "message_type": message_type,
            "message_timestamp": "2022-11-16T10:11:12.464757833Z",
            **metadata,
        },
        "payload": payload,
    }


def notification(sub_type: str, version: str, event: dict) -> dict:
    sub = {**SUBSCRIPTION, "type": sub_type, "version": version}
    return envelope(
        "notification",
        {"subscription": sub, "event": event},
        subscription_type=sub_type,
        subscription_version=version,
    )


def test_the_documented_welcome_with_an_unknown_extra_field():
    # Twitch's example (D-WS) plus `recovery_url`, a field seen in the wild but not in the reference.
    text = (
        '{"metadata":{"message_id":"96a3f3b5-5dec-4eed-908e-e11ee657416c","message_type":"session_welcome",'
        '"message_timestamp":"2023-07-19T14:56:51.634234626Z"},"payload":{"session":{"id":'
        '"AQoQILE98gtqShGmLD7AM6yJThAB","status":"connected","connected_at":"2023-07-19T14:56:51.616329898Z",'
        '"keepalive_timeout_seconds":10,"reconnect_url":null,"recovery_url":null}}}'
    )
    message = parse_envelope(json.loads(text))
    assert isinstance(message, Welcome)
    assert message.session.id == "AQoQILE98gtqShGmLD7AM6yJThAB"
    assert message.session.keepalive_timeout_seconds == 10
    assert message.session.reconnect_url is None
    assert message.metadata.timestamp == datetime(2023, 7, 19, 14, 56, 51, 634234, tzinfo=UTC)


def test_keepalive_and_reconnect():
    assert isinstance(parse_envelope(envelope("session_keepalive", {})), Keepalive)
    url = "wss://cell-a.eventsub.wss.twitch.tv/ws?challenge=abc&id=1"
    reconnect = parse_envelope(
        envelope(
            "session_reconnect",
            {
                "session": {
                    "id": "AQoQ",
                    "status": "reconnecting",
                    "keepalive_timeout_seconds": None,
                    "reconnect_url": url,
                }
            },
        )
    )
    assert isinstance(reconnect, Reconnect)
    assert reconnect.session.reconnect_url == url  # as given: Twitch says not to modify it
    with pytest.raises(MalformedMessage):
        parse_envelope(envelope("session_reconnect", {"session": {"id": "AQoQ", "reconnect_url": None}}))


def test_stream_online_offline_and_channel_update_events():
    online = parse_envelope(
        notification(
            "stream.online",
            "1",
            {
                "id": "9001",
                "broadcaster_user_id": "1337",
                "broadcaster_user_login": "Cool_User",
                "broadcaster_user_name": "Cool_User",
                "type": "live",
                "started_at": "2020-10-11T10:11:12.123Z",
            },
        )
    )
    assert isinstance(online, Notification)
    assert online.event == StreamOnline(
        "1337", "cool_user", "Cool_User", "9001", "live", datetime(2020, 10, 11, 10, 11, 12, 123000, tzinfo=UTC)
    )
    assert online.subscription.conduit_id == "bfcfc993-26b1-b876-44d9-afe75a379dac"
    assert online.subscription.cost == 1
    offline = parse_envelope(
        notification(
            "stream.offline",
            "1",
            {"broadcaster_user_id": "1337", "broadcaster_user_login": "cool_user", "broadcaster_user_name": "Cool"},
        )
    )
    assert offline.event == StreamOffline("1337", "cool_user", "Cool")
    update = parse_envelope(
        notification(
            "channel.update",
            "2",
            {
                "broadcaster_user_id": "1337",
                "broadcaster_user_login": "cool_user",
                "broadcaster_user_name": "Cool_User",
                "title": "Best Stream Ever",
                "language": "en",
                "category_id": "12453",
                "category_name": "Grand Theft Auto",
                "content_classification_labels": ["MatureGame"],
            },
        )
    )
    assert update.event == ChannelUpdate(
        "1337", "cool_user", "Cool_User", "Best Stream Ever", "12453", "Grand Theft Auto", "en"
    )


def test_a_type_the_bot_did_not_ask_for_has_no_event():
    message = parse_envelope(notification("channel.follow", "2", {"user_id": "1"}))
    assert isinstance(message, Notification)
    assert message.event is None
    # channel.update v1 is not the version asked for either.
    assert parse_envelope(notification("channel.update", "1", {"broadcaster_user_id": "1"})).event is None


def test_revocation():
    message = parse_envelope(envelope("revocation", {"subscription": {**SUBSCRIPTION, "status": "user_removed"}}))
    assert isinstance(message, Revocation)
    assert message.subscription.status == "user_removed"
    assert message.subscription.broadcaster_user_id == "1337"


@pytest.mark.parametrize(
    "raw",
    [
        [],
        "text",
        {"metadata": {}, "payload": {}},
        envelope("mystery", {}),
        envelope("session_welcome", {"session": {}}),
        envelope("notification", {"event": {}}),
        notification("stream.online", "1", {"broadcaster_user_id": "1337"}),  # no stream id
        notification("stream.online", "1", {"id": "1", "broadcaster_user_id": "../etc"}),
        notification("stream.offline", "1", {"broadcaster_user_id": None}),
    ],
)
def test_malformed_messages_are_refused(raw):
    with pytest.raises(MalformedMessage):
        parse_envelope(raw)


def test_odd_field_types_do_not_raise_anything_but_malformed():
    event = {"id": {"x": 1}, "broadcaster_user_id": "1337", "broadcaster_user_login": ["a"], "started_at": 12}
    with pytest.raises(MalformedMessage):
        parse_envelope(notification("stream.online", "1", event))  # the id is an object: no stream id
    event["id"] = 9001  # a number where Twitch sends a string is read as its text
    message = parse_envelope(notification("stream.online", "1", event))
    assert message.event.stream_id == "9001"
    assert message.event.login == ""
    assert message.event.started_at is None


def test_webhook_metadata_comes_from_the_headers():
    headers = {
        "Twitch-Eventsub-Message-Id": "e76c6bd4-55c9-4987-8304-da1588d8988b",
        "Twitch-Eventsub-Message-Type": "notification",
        "Twitch-Eventsub-Message-Timestamp": "2026-01-01T00:00:00.000000001Z",
        "Twitch-Eventsub-Subscription-Type": "stream.offline",
        "Twitch-Eventsub-Subscription-Version": "1",
    }
    body = {"subscription": {**SUBSCRIPTION, "type": "stream.offline"}, "event": {"broadcaster_user_id": "1337"}}
    message = parse_webhook(headers, body)
    assert message.metadata.message_id == "e76c6bd4-55c9-4987-8304-da1588d8988b"
    assert message.event == StreamOffline("1337", "", "")
    with pytest.raises(MalformedMessage):
        parse_webhook({}, body)
    with pytest.raises(MalformedMessage):
        parse_webhook(headers, ["not", "an", "object"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-07-19T14:56:51.634234626Z", datetime(2023, 7, 19, 14, 56, 51, 634234, tzinfo=UTC)),
        ("2020-10-11T10:11:12.1Z", datetime(2020, 10, 11, 10, 11, 12, 100000, tzinfo=UTC)),
        ("2020-10-11T10:11:12Z", datetime(2020, 10, 11, 10, 11, 12, tzinfo=UTC)),
        ("2020-10-11T12:11:12.5+02:00", datetime(2020, 10, 11, 10, 11, 12, 500000, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
        ("9" * 100, None),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected
