"""`./quickstart.sh demo` (twitch_notifier/demo/): the story against the real `python bot.py` and the fakes, what
reached the fake Discord and what the terminal showed, nothing left running (Ctrl-C and SIGTERM included), the
interactive prompt with its tab completion on a terminal of its own, and the HTML page in headless Chromium."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from twitch_notifier.demo.__main__ import run_story
from twitch_notifier.demo.interactive import DemoShell
from twitch_notifier.demo.markdown import parse, plain
from twitch_notifier.demo.render_html import render_page
from twitch_notifier.demo.render_terminal import make_console
from twitch_notifier.demo.story import NEW_GAME, field_value, has_ended
from twitch_notifier.demo.transcript import ChannelChange, CommandRun, ShownMessage, Transcript
from twitch_notifier.demo.world import DemoWorld

ROOT = Path(__file__).resolve().parent.parent
DEMO = [sys.executable, "-m", "twitch_notifier.demo"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[=>]")
BANNER_PID = re.compile(r"pid (\d+)\), database in (\S+)")


@dataclass
class StoryRun:
    world: DemoWorld
    output: str
    html: Path
    seconds: float


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> StoryRun:
    """The whole story, once for this module: in-process, so the fakes' state can be read afterwards."""
    out = io.StringIO()
    html = tmp_path_factory.mktemp("demo") / "demo.html"
    started = time.monotonic()
    world = asyncio.run(run_story(make_console(file=out), html=html))
    return StoryRun(world, out.getvalue(), html, time.monotonic() - started)


def cards(world: DemoWorld) -> dict[str, object]:
    """The cards in #alerts by the streamer's name (live, or "… was live")."""
    return {m.embeds[0]["author"]["name"].removesuffix(" was live"): m for m in world.channel_messages() if m.embeds}


def children_of_this_process() -> list[str]:
    mine = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():
                mine.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return mine


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "(zombie)" not in Path(f"/proc/{pid}/status").read_text()


# -- the story ------------------------------------------------------------------------------------------------


def test_the_story_reaches_the_fake_discord_as_the_bot_posts_it(story: StoryRun) -> None:
    world = story.world
    by_name = cards(world)
    assert sorted(by_name) == ["Pokimane", "shroud"]  # two went live; LIRIK stayed offline
    shroud, pokimane = by_name["shroud"], by_name["Pokimane"]

    # shroud: announced by push in Counter-Strike, then the card edited to VALORANT (and the viewer count).
    assert shroud.edits, "shroud's card was never edited"
    assert shroud.edits[0]["embeds"][0]["title"] == "ranked grind with the squad"
    assert field_value(shroud, "Game") == NEW_GAME
    assert field_value(shroud, "Viewers") == "23,456"
    assert [b["label"] for row in shroud.components for b in row["components"]] == ["Watch stream"]
    first = world.transcript.changes("posted")[0].message.embeds[0]
    assert [f["value"] for f in first["fields"][:2]] == ["Counter\\-Strike", "0"]  # pushed: no viewers yet

    # Pokimane: found by the poll, then ended: the grey recap with the VOD.
    assert has_ended(pokimane)
    assert pokimane.content == "**Pokimane** was live on Twitch."
    assert field_value(pokimane, "Duration") == "2h 13m"
    assert [b["label"] for row in pokimane.components for b in row["components"]] == ["Watch the VOD"]

    # Each message once: two posts, two edits, nothing deleted, nothing the fakes refused or did not know.
    kinds = [(c.kind, c.message_id) for c in world.transcript.changes()]
    assert kinds == [("posted", shroud.id), ("posted", pokimane.id), ("edited", shroud.id), ("edited", pokimane.id)]
    assert world.discord.unhandled == []
    assert world.discord.rejected == []
    assert world.twitch.unhandled == []


def test_the_push_and_the_poll_each_announced_their_streamer(story: StoryRun) -> None:
    online = [m for m in story.world.twitch.eventsub.sent if m.type == "notification"]
    pushed = {m.message["payload"]["subscription"]["type"]: m for m in online}
    assert set(pushed) == {"stream.online", "channel.update", "stream.offline"}
    assert pushed["stream.online"].message["payload"]["event"]["broadcaster_user_login"] == "shroud"
    assert pushed["stream.offline"].message["payload"]["event"]["broadcaster_user_login"] == "pokimane"
    notes = [c.note for c in story.world.transcript.changes("posted")]
    assert notes[0].endswith("after Twitch's push")
    assert notes[1].startswith("posted by the poll")


def test_the_admins_commands_and_the_bots_replies(story: StoryRun) -> None:
    runs = story.world.transcript.commands()
    assert [r.command.split()[0] for r in runs] == [
        "/setchannel", "/addstreamer", "/addstreamer", "/addstreamer", "/streamers", "/live", "/live",
    ]  # fmt: skip
    assert all(r.reply is not None and r.reply.ephemeral for r in runs)
    names = story.world.transcript.names
    replies = [plain(r.reply.content + "".join(str(e) for e in r.reply.embeds), names) for r in runs if r.reply]
    assert "#alerts" in replies[0]
    assert all("Now following" in reply for reply in replies[1:4])
    assert "Followed streamers: 3 (0 live)" in replies[4]
    assert "Live now: 2" in replies[5]
    assert "Live now: 1" in replies[6]


def test_the_terminal_shows_each_message_as_discord_would(story: StoryRun) -> None:
    out = story.output
    for text in (
        "admin used /setchannel channel:#alerts",
        "admin used /addstreamer streamer:lirik",
        "Followed streamers: 3 (0 live)",
        "LIRIK (twitch.tv/lirik) → #alerts · offline",  # markdown and the channel mention resolved
        "#alerts · new message",
        "🔴 shroud is live on Twitch!",
        "ranked grind with the squad",
        "Counter-Strike",  # escaped by the bot as Counter\-Strike; drawn as Discord draws it
        "Watch stream ↗  https://www.twitch.tv/shroud",
        "▣ thumbnail: box art",
        "▭ image: live preview (live_user_shroud-1280x720.jpg)",
        "Live now: 2",
        "#alerts · message edited",
        "VALORANT",
        "23,456",
        "Pokimane was live on Twitch. (edited)",
        "Duration",
        "Watch the VOD ↗  https://www.twitch.tv/videos/",
        "Only you can see this",
        "Stream ended • Today at",
    ):
        assert text in out, f"{text!r} is not in the demo's output:\n{out}"
    assert "Counter\\-Strike" not in out
    assert "**" not in out
    assert "<#" not in out


def test_the_story_ends_within_a_minute_and_leaves_nothing_running(story: StoryRun) -> None:
    world = story.world
    assert story.seconds < 60
    assert world.process is not None
    assert world.process.returncode == 0, world.log_tail()
    assert not process_exists(world.process.pid)
    assert [c for c in children_of_this_process() if "bot.py" in c] == []
    assert world.workdir is not None
    assert not world.workdir.exists()
    assert world.health_port is not None
    for port in (world.discord.port, world.twitch.port, world.health_port):
        assert port_is_closed(port), f"port {port} is still open"
    said = " ".join(story.output.split())
    assert f"exited with status 0, both fakes are closed, and {world.workdir} is removed" in said
    assert "Traceback" not in world.log_tail(10_000)
    assert " ERROR " not in world.log_tail(10_000)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_stopping_the_demo_midway_stops_the_bot_and_the_fakes(stop: signal.Signals) -> None:
    process = subprocess.Popen(
        DEMO, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "#alerts · new message" in line:
                process.send_signal(stop)
                break
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:  # the test failed: stop it as a person would, so it cleans up after itself
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    output = "".join(lines) + rest
    assert process.returncode == 130, output
    found = BANNER_PID.search(output)
    assert found, output
    pid, workdir = int(found.group(1)), Path(found.group(2).rstrip(","))
    assert not process_exists(pid), f"the bot (pid {pid}) is still running"
    assert not workdir.exists()
    assert "Interrupted after" in output
    assert f"(pid {pid}) exited with status" in output
    assert "Traceback" not in output


# -- the interactive prompt, on a terminal ---------------------------------------------------------------------


class Terminal:
    """`python -m twitch_notifier.demo --interactive` on a pseudo-terminal of its own, as a person runs it."""

    def __init__(self, *args: str) -> None:
        self.output = ""
        self.mark = 0  # read_until looks at what came after the last send
        env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "COLUMNS": "120", "LINES": "50"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the demo at once, never return into pytest
            try:
                os.chdir(ROOT)
                os.execve(sys.executable, [*DEMO, *args], env)  # noqa: S606
            finally:
                os._exit(127)

    def read_until(self, text: str, timeout: float = 30) -> str:
        """Wait until `text` shows after the last `send`; returns what showed since then."""
        deadline = time.monotonic() + timeout
        while text not in self.screen[self.mark :]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the demo never showed {text!r}; it showed:\n{self.screen[-3000:]}")
            ready, _, _ = select.select([self.fd], [], [], min(remaining, 0.5))
            if ready:
                try:
                    self.output += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:  # the child is gone and the terminal closed
                    pytest.fail(f"the demo ended before showing {text!r}:\n{self.screen[-3000:]}")
        return self.screen[self.mark :]

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.output).replace("\r", "")

    def send(self, keys: str) -> None:
        self.mark = len(self.screen)
        os.write(self.fd, keys.encode())

    def stop(self) -> None:
        """If the test failed midway: SIGTERM (the demo cleans up after itself), SIGKILL only if it must."""
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                os.kill(self.pid, signal.SIGTERM)
                deadline = time.monotonic() + 20
                while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                    if time.monotonic() > deadline:
                        os.kill(self.pid, signal.SIGKILL)
                        os.waitpid(self.pid, 0)
                        break
                    time.sleep(0.1)
        os.close(self.fd)

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if ready:
                    self.output += os.read(self.fd, 65536).decode(errors="replace")
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        pytest.fail(f"the demo did not exit; it showed:\n{self.screen[-3000:]}")


def test_the_interactive_prompt_drives_the_bot_with_tab_completion(tmp_path: Path) -> None:
    page = tmp_path / "session.html"
    terminal = Terminal("--interactive", "--html", str(page))
    try:
        terminal.read_until("demo> ")
        assert "Now following shroud" in terminal.screen  # the server is set up for the prompt
        terminal.send("help\n")
        terminal.read_until("Tab completes")
        # Tab completes the command, the streamer and the quoted game.
        terminal.send('liv\tshr\t"hello chat" "Mine\t\n')
        announced = terminal.read_until("Watch stream")
        assert 'live shroud "hello chat" "Minecraft"' in announced  # the line as Tab completed it
        assert "#alerts · new message" in announced
        assert "hello chat" in announced
        assert "Minecraft" in announced
        terminal.send("bogus\n")
        terminal.read_until("Unknown command: 'bogus'")
        terminal.send("offline sh\t\n")
        terminal.read_until("shroud was live on Twitch.")
        terminal.send("/stre\t\n")
        terminal.read_until("Followed streamers: 1 (0 live)")
        terminal.send("quit\n")
        code = terminal.wait()
    finally:
        terminal.stop()
    screen = terminal.screen
    assert code == 0, screen[-3000:]
    found = BANNER_PID.search(screen)
    assert found, screen
    assert not process_exists(int(found.group(1)))
    assert not Path(found.group(2).rstrip(",")).exists()
    assert "Done after" in screen
    assert "hello chat" in page.read_text()


def test_tab_offers_commands_streamers_channels_and_games() -> None:
    world = DemoWorld()
    world.add_twitch_user("shroud")
    world.add_twitch_user("pokimane", "Pokimane")
    world.twitch.go_live("shroud", push=False)
    shell = DemoShell(world, loop=None, console=make_console(file=io.StringIO()))  # type: ignore[arg-type]
    assert shell.candidates("", "") == [
        "live", "offline", "wait", "help", "quit", "/addstreamer", "/removestreamer", "/setchannel", "/streamers",
        "/live",
    ]  # fmt: skip
    assert shell.candidates("/add", "/add") == ["/addstreamer"]
    assert shell.candidates("live ", "") == ["pokimane", "shroud"]  # not the fake's unrelated "top streams"
    assert shell.candidates("offline ", "") == ["shroud"]  # only who is live
    assert shell.candidates("/setchannel #a", "#a") == ["#alerts"]
    assert shell.candidates('live shroud "title" "Ju', '"Ju') == ['"Just Chatting"']
    assert shell.candidates("live shroud --p", "--p") == ["--poll"]
    assert shell.candidates("help of", "of") == ["offline"]


# -- the HTML page ----------------------------------------------------------------------------------------------


def test_the_page_is_self_contained_and_escapes_everything() -> None:
    hostile = '<script>alert(1)</script> & "quotes"'
    transcript = Transcript()
    message = ShownMessage(
        author="<b>bot</b>",
        content=f"**{hostile}** [link](javascript:alert(1))",
        embeds=(
            {
                "title": hostile,
                "url": "javascript:alert(2)",
                "color": 0x9146FF,
                "author": {"name": hostile, "url": 'https://www.twitch.tv/x"onmouseover="alert(3)'},
                "fields": [{"name": hostile, "value": hostile, "inline": True}],
                "image": {"url": "https://static-cdn.jtvnw.net/previews-ttv/live_user_x-1280x720.jpg"},
            },
        ),
        components=({"type": 1, "components": [{"type": 2, "style": 5, "label": hostile, "url": "javascript:x"}]},),
        at=datetime.now(UTC),
    )
    transcript.add(ChannelChange("alerts", "posted", 1, message))
    transcript.add(CommandRun(hostile, f"/live {hostile}", "general", message))
    page = render_page(transcript)
    assert "<script" not in page
    assert not re.search(r"href=[\"']?javascript:", page)
    assert "[link](javascript:alert(1))" in page  # Discord shows a link it does not allow as the text it is
    assert 'onmouseover="' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Nothing is loaded from anywhere: no src, no external stylesheet or font, and a policy that forbids it.
    assert not re.search(r"\ssrc=|<link\b|@import|url\(", page)
    assert "default-src 'none'" in page


def test_discord_markdown_is_read_as_discord_reads_it() -> None:
    names = {42: "alerts"}
    assert plain("**Pokimane** ([twitch.tv/pokimane](https://www.twitch.tv/pokimane)) → <#42>", names) == (
        "Pokimane (twitch.tv/pokimane) → #alerts"
    )
    assert plain("Counter\\-Strike \\_x\\_ snake_case_name a * b") == "Counter-Strike _x_ snake_case_name a * b"
    spans = parse("**bold *both* bold** `code **not bold**`")
    assert [(s.text, s.bold, s.italic, s.code) for s in spans] == [
        ("bold ", True, False, False),
        ("both", True, True, False),
        (" bold", True, False, False),
        (" ", False, False, False),
        ("code **not bold**", False, False, True),
    ]
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert plain(f"<t:{int(now.timestamp()) - 125}:R>", now=now) == "2 minutes ago"
    assert plain(f"<t:{int(now.timestamp()) + 3 * 3600}:R>", now=now) == "in 3 hours"
    [link] = [s for s in parse("[Watch the VOD](https://www.twitch.tv/videos/1)") if s.link]
    assert (link.text, link.link) == ("Watch the VOD", "https://www.twitch.tv/videos/1")


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """A tiny PNG decoder (8-bit RGB or RGBA, not interlaced): width, height and each row's pixels as RGB."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), "unexpected PNG format"
    assert colour_type in (2, 6), "unexpected PNG format"
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * bpp
    previous, rows = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + previous[i]) & 255
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + previous[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                left, up = (line[i - bpp] if i >= bpp else 0), previous[i]
                up_left = previous[i - bpp] if i >= bpp else 0
                guess = left + up - up_left
                far_left, far_up, far_up_left = abs(guess - left), abs(guess - up), abs(guess - up_left)
                paeth = (
                    left if far_left <= far_up and far_left <= far_up_left else up if far_up <= far_up_left else up_left
                )
                line[i] = (line[i] + paeth) & 255
        rows.append(bytes(line) if bpp == 3 else b"".join(line[x : x + 3] for x in range(0, stride, bpp)))
        previous = line
    return width, height, rows


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed by scripts/ensure_chromium.sh if it is missing: never a silent skip."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        pytest.fail(f"no headless Chromium for the HTML test (scripts/ensure_chromium.sh):\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.chromium
def test_the_page_shows_the_messages_in_headless_chromium(story: StoryRun, chromium: str, tmp_path: Path) -> None:
    browser = [chromium, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}"]
    url = story.html.resolve().as_uri()
    shot = tmp_path / "demo.png"
    subprocess.run(
        [*browser, f"--screenshot={shot}", "--window-size=1200,1600", url], capture_output=True, timeout=120, check=True
    )
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    colours = {row[x : x + 3] for row in rows[::4] for x in range(0, len(row), 12)}
    assert len(colours) > 100, f"the screenshot looks blank: {len(colours)} colours"
    background = bytes((0x31, 0x33, 0x38))  # Discord's dark theme behind the messages
    assert sum(row.count(background) for row in rows[::50]) > 0, "not the dark theme"

    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    on_the_page = (
        "ranked grind with the squad", "cozy morning stream, come hang out", "Pokimane was live", NEW_GAME,
        "Watch stream", "Watch the VOD", "Followed streamers: 3 (0 live)", "Only you can see this",
    )  # fmt: skip
    for text in on_the_page:
        assert text in dom.stdout, f"{text!r} is not on the page"


# -- where it comes from, how it is started ----------------------------------------------------------------------


def test_the_demo_imports_the_fakes_and_forks_none() -> None:
    imported, defined = set(), []
    for path in (ROOT / "twitch_notifier" / "demo").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        defined += [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    assert {"tests.fakes.fake_discord", "tests.fakes.fake_twitch"} <= imported
    assert not [name for name in defined if name.startswith("Fake")]
    assert not {name for name in imported if name.startswith("tests.") and not name.startswith("tests.fakes.")}


def test_quickstart_demo_installs_what_the_demo_needs_then_runs_it(tmp_path: Path) -> None:
    shutil.copy(ROOT / "quickstart.sh", tmp_path / "quickstart.sh")
    log = tmp_path / "calls.log"
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "python $*" >> "{log}"\n')
    python.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", "quickstart.sh", "demo", "--html", "out.html"], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines()[-2:] == [
        "python -m pip install --quiet --disable-pip-version-check -r requirements-demo.txt",
        "python -m twitch_notifier.demo --html out.html",
    ]
    demo = (ROOT / "requirements-demo.txt").read_text().splitlines()
    assert "-r requirements.txt" in demo
    assert any(re.fullmatch(r"rich==[\d.]+", line) for line in demo)
    assert "-r requirements-demo.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
