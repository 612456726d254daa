"""Proves the fake Discord's file uploads against Discord's "Uploading Files": multipart bodies with
`payload_json` and `files[n]`, the `attachments` array's placeholders, the limits, and edits keeping or dropping
files. Bare HTTP, so each rule is exercised exactly as written (the e2e tests cover discord.py's own uploads)."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.fake_discord import FakeDiscord

TOKEN = "fake-discord-token.Upload.Secret"


def png(width: int, height: int) -> bytes:
    """A real (tiny) PNG: the signature, then IHDR with its width and height."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    discord_fake = FakeDiscord(token=TOKEN)
    await discord_fake.start()
    yield discord_fake
    await discord_fake.stop()


@pytest.fixture
async def http(fake: FakeDiscord) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        fake.api_base.rstrip("/") + "/", headers={"Authorization": f"Bot {TOKEN}"}
    ) as session:
        yield session


@pytest.fixture
def channel(fake: FakeDiscord) -> int:
    guild = fake.add_guild("Guild A")
    return fake.add_text_channel(guild.id, "alerts").id


def form(payload: dict[str, Any] | None, *files: tuple[str, bytes, str | None]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    if payload is not None:
        data.add_field("payload_json", json.dumps(payload), content_type="application/json")
    for name, content, filename in files:
        if filename is None:
            data.add_field(name, content.decode())
        else:
            data.add_field(name, content, filename=filename, content_type="application/octet-stream")
    return data


async def post(http: aiohttp.ClientSession, path: str, data: Any, method: str = "POST") -> tuple[int, Any]:
    async with http.request(method, path.lstrip("/"), data=data) as response:
        return response.status, await response.json()


async def test_files_become_attachments_with_their_placeholders_metadata_and_bytes(fake, http, channel):
    chart = png(1200, 800)
    payload = {
        "content": "two files",
        "embeds": [{"title": "chart", "image": {"url": "attachment://chart.png"}}],
        "attachments": [{"id": 1, "filename": "chart.png", "description": "a chart"}, {"id": 0}],
    }
    status, message = await post(
        http,
        f"channels/{channel}/messages",
        form(payload, ("files[0]", b"hello", "hello.txt"), ("files[1]", chart, "c.png")),
    )
    assert status == 200
    chart_file, text_file = message["attachments"]  # in the order the array lists them
    assert chart_file["filename"] == "chart.png"  # the array's name wins over the part's
    assert (chart_file["content_type"], chart_file["width"], chart_file["height"]) == ("image/png", 1200, 800)
    assert chart_file["description"] == "a chart"
    assert chart_file["size"] == len(chart)
    assert chart_file["url"].endswith(f"/{chart_file['id']}/chart.png")
    assert (text_file["filename"], text_file["content_type"], text_file["size"]) == ("hello.txt", "text/plain", 5)
    assert "width" not in text_file
    assert fake.attachment_bytes(chart_file) == chart
    assert fake.messages[0].attachments == message["attachments"]


async def test_without_an_attachments_array_every_file_is_attached(http, channel):
    status, message = await post(http, f"channels/{channel}/messages", form(None, ("files[7]", b"x", "a.bin")))
    assert status == 200  # files alone are a message: no content or embed needed
    assert [a["filename"] for a in message["attachments"]] == ["a.bin"]


@pytest.mark.parametrize(
    ("files", "payload", "code"),
    [
        ([("files[0]", b"x", None)], {"content": "no filename"}, 50035),
        ([("files[0]", b"x", "a.txt"), ("files[0]", b"y", "b.txt")], {"content": "one name twice"}, 50035),
        ([("files[0]", b"x", "a.txt")], {"content": "?", "attachments": [{"id": 3}]}, 50035),
        ([("files[0]", b"x", "a.txt")], {"content": "?", "attachments": [{"id": 0, "description": "d" * 1025}]}, 50035),
        ([(f"files[{i}]", b"x", f"{i}.txt") for i in range(11)], {"content": "eleven"}, 30015),
    ],
    ids=["no filename", "a name twice", "unknown placeholder", "long description", "eleven files"],
)
async def test_what_discord_refuses_is_refused_with_its_code(fake, http, channel, files, payload, code):
    status, error = await post(http, f"channels/{channel}/messages", form(payload, *files))
    assert (status, error["code"]) == (400, code)
    assert fake.messages == []


async def test_a_file_over_the_size_limit_is_too_large(fake, http, channel):
    status, error = await post(
        http, f"channels/{channel}/messages", form({}, ("files[0]", b"\0" * (10 * 1024 * 1024 + 1), "big.bin"))
    )
    assert (status, error["code"]) == (413, 40005)
    assert fake.messages == []


async def test_an_edit_appends_files_or_keeps_exactly_those_its_array_lists(fake, http, channel):
    _, first = await post(http, f"channels/{channel}/messages", form({"content": "a"}, ("files[0]", b"1", "one.txt")))
    path = f"channels/{channel}/messages/{first['id']}"
    status, edited = await post(http, path, form({"content": "b"}, ("files[0]", b"22", "two.txt")), method="PATCH")
    assert status == 200
    assert [a["filename"] for a in edited["attachments"]] == ["one.txt", "two.txt"]  # appended
    keep = edited["attachments"][1]["id"]
    payload = {"attachments": [{"id": keep}, {"id": 0}]}
    _, edited = await post(http, path, form(payload, ("files[0]", b"333", "three.txt")), method="PATCH")
    assert [a["filename"] for a in edited["attachments"]] == ["two.txt", "three.txt"]  # one.txt was not listed
    async with http.patch(path, json={"attachments": []}) as response:
        assert response.status == 200
        assert (await response.json())["attachments"] == []
