"""Unit tests for rendering/charts.py: the /stats charts are Discord-legal PNGs of a bounded size on an opaque
dark panel in Twitch purple, survive hostile names and empty data, bin long periods, and the cache keeps one
chart per subject, period and UTC hour within its bounds."""

import io
import random
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from PIL import Image

from twitch_notifier.core.history import server_stats, streamer_stats
from twitch_notifier.models import CategoryChange, Streamer, StreamHistory, ViewerSample
from twitch_notifier.rendering import charts
from twitch_notifier.rendering.charts import (
    CHART_DPI,
    CHART_SIZE,
    MAX_CHART_BYTES,
    ChartCache,
    render_server_chart,
    render_streamer_chart,
)

NOW = datetime(2026, 12, 2, 18, 30, tzinfo=UTC)
SIZE = (int(CHART_SIZE[0] * CHART_DPI), int(CHART_SIZE[1] * CHART_DPI))


def year_of_streams(count: int = 300, seed: int = 7, user: str = "1") -> list[StreamHistory]:
    """About `count` streams of 2-6 h over the last year, every 90 s a count, some with a second category."""
    rng = random.Random(seed)
    out = []
    start = NOW - timedelta(days=365)
    step = timedelta(days=365) / count
    for i in range(count):
        began = start + step * i + timedelta(minutes=rng.randrange(120))
        seconds = int(rng.uniform(2, 6) * 3600)
        viewers = rng.randint(100, 900)
        samples = []
        for offset in range(30, seconds, 90):
            viewers = max(0, viewers + rng.randint(-30, 40))
            samples.append(ViewerSample(offset, viewers))
        categories = [CategoryChange(0, "1", "Just Chatting")]
        if i % 3:
            categories.append(CategoryChange(seconds // 3, "2", "VALORANT"))
        end = min(began + timedelta(seconds=seconds), NOW)
        out.append(
            StreamHistory(
                f"s{i}", user, began, end, end, max(s.viewers for s in samples), tuple(samples), tuple(categories)
            )
        )
    return out


def image(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    picture = Image.open(io.BytesIO(png))
    picture.load()
    return picture


@pytest.mark.parametrize("period", ["7d", "30d", "90d", "all"])
def test_a_streamer_chart_is_a_bounded_png_on_an_opaque_dark_panel_in_twitch_purple(period):
    png = render_streamer_chart("shroud", streamer_stats(year_of_streams(), now=NOW, period=period))
    assert len(png) <= MAX_CHART_BYTES
    picture = image(png).convert("RGBA")
    assert picture.size == SIZE
    # Opaque everywhere: it reads the same on Discord's dark and light themes.
    assert picture.getextrema()[3] == (255, 255)
    assert picture.getpixel((2, 2))[:3] == (0x18, 0x18, 0x1B)
    colours = {colour for _, colour in picture.convert("RGB").getcolors(maxcolors=1 << 20)}
    assert (0x91, 0x46, 0xFF) in colours  # the bars


def test_hostile_names_and_categories_are_drawn_as_text(recwarn):
    history = year_of_streams(12)
    last = history[-1]
    weird = (
        CategoryChange(0, "1", "$\\frac{1}{0}$ ^_^ {braces}"),
        CategoryChange(600, "2", "日本語のゲーム 🎮"),
        CategoryChange(1200, "3", "\u202eevil\u202c" + "x" * 300),
    )
    history[-1] = StreamHistory(
        last.stream_id, "1", last.started_at, last.last_seen_at, last.ended_at, 5, last.samples, weird
    )
    png = render_streamer_chart("$$ \u200b\u202e" + "y" * 500, streamer_stats(history, now=NOW, period="30d"))
    assert image(png).size == SIZE
    assert [w for w in recwarn if "matplotlib" in str(w.filename)] == []


def test_a_last_stream_without_viewer_counts_says_so_instead_of_an_empty_plot():
    only_pushed = StreamHistory("s", "1", NOW - timedelta(hours=1), NOW, None, 0)
    png = render_streamer_chart("shroud", streamer_stats([only_pushed], now=NOW, period="7d"))
    assert image(png).size == SIZE


def test_long_periods_are_binned_by_week_then_by_month():
    days = [(date(2024, 1, 1) + timedelta(days=i), timedelta(hours=1)) for i in range(800)]
    assert charts._binned(days[:120]) == (days[:120], "day")
    weeks, unit = charts._binned(days[:365])
    assert unit == "week"
    assert all(day.weekday() == 0 for day, _ in weeks)
    assert sum((t for _, t in weeks), timedelta()) == timedelta(hours=365)
    months, unit = charts._binned(days)
    assert unit == "month"
    assert all(day.day == 1 for day, _ in months)
    assert sum((t for _, t in months), timedelta()) == timedelta(hours=800)


def test_a_server_chart_ranks_at_most_ten_streamers():
    streamers = [Streamer(str(i), f"streamer_{i}", f"Streamer {i}") for i in range(15)]
    histories = {s.twitch_user_id: year_of_streams(10, seed=i, user=s.twitch_user_id) for i, s in enumerate(streamers)}
    png = render_server_chart("Guild $A$", server_stats(histories, streamers, now=NOW, period="all"))
    assert len(png) <= MAX_CHART_BYTES
    assert image(png).size == SIZE


def test_charts_render_from_worker_threads_one_at_a_time():
    stats = streamer_stats(year_of_streams(30), now=NOW, period="30d")
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(render_streamer_chart("a", stats))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 3
    assert len({len(r) for r in results}) == 1  # the same chart each time: no thread disturbed another


def test_the_cache_keeps_a_chart_per_subject_period_and_utc_hour():
    cache = ChartCache()
    key = ChartCache.key("streamer:1", "30d", NOW)
    assert key == ChartCache.key("streamer:1", "30d", NOW.replace(minute=59))
    assert key != ChartCache.key("streamer:1", "30d", NOW + timedelta(hours=1))
    assert key != ChartCache.key("streamer:1", "7d", NOW)
    assert cache.get(key) is None
    cache.put(key, b"png")
    assert cache.get(key) == b"png"
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_cache_forgets_the_oldest_beyond_its_bounds():
    cache = ChartCache(max_entries=2, max_bytes=9)
    keys = [ChartCache.key(f"s{i}", "7d", NOW) for i in range(3)]
    cache.put(keys[0], b"1")
    cache.put(keys[1], b"2")
    cache.get(keys[0])  # used: now the newest
    cache.put(keys[2], b"3")
    assert [cache.get(k) for k in keys] == [b"1", None, b"3"]
    cache.put(keys[1], b"x" * 9)  # over the byte bound: the others go
    assert len(cache) == 1
    assert cache.get(keys[1]) == b"x" * 9
