"""Unit tests for the words of stream history: the ended card's recap (rendering/messages.py) and the /stats
embeds (rendering/statistics.py). VOD links in Twitch's `?t=1h2m3s` form, Twitch's text escaped, and every
field and embed within Discord's limits however long the history."""

from datetime import UTC, datetime, timedelta

from tests.fakes.discord_payloads import validate_message
from twitch_notifier.core.history import (
    CategoryPeriod,
    CategoryTime,
    ServerStats,
    StreamerRank,
    StreamerStats,
    StreamSummary,
)
from twitch_notifier.models import Streamer
from twitch_notifier.rendering.messages import ended_announcement, recap_fields, stream_offset, vod_at
from twitch_notifier.rendering.statistics import (
    chart_filename,
    no_history_text,
    server_stats_embed,
    streamer_stats_embed,
)

T0 = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
SHROUD = Streamer("1", "shroud", "shroud")
VOD = "https://www.twitch.tv/videos/123"


def recap(timeline=(), *, average: float | None = 200.4, peak: int = 1234) -> StreamSummary:
    return StreamSummary(
        stream_id="s1",
        started_at=T0,
        ended_at=T0 + timedelta(hours=3),
        live=False,
        duration=timedelta(hours=3),
        peak_viewers=peak,
        average_viewers=average,
        observed=timedelta(hours=3),
        timeline=tuple(timeline),
    )


def period(minutes: int, length: int, name: str, game_id: str = "1") -> CategoryPeriod:
    return CategoryPeriod(timedelta(minutes=minutes), timedelta(minutes=length), game_id, name)


def test_vod_links_start_at_the_moment_in_twitchs_own_form():
    assert vod_at(VOD, timedelta(hours=1, minutes=2, seconds=3)) == f"{VOD}?t=1h2m3s"
    assert vod_at(VOD, timedelta(0)) == f"{VOD}?t=0h0m0s"
    assert vod_at(f"{VOD}?x=1", timedelta(minutes=90)) == f"{VOD}?x=1&t=1h30m0s"
    assert vod_at(VOD, timedelta(hours=27, seconds=5)) == f"{VOD}?t=27h0m5s"
    assert stream_offset(timedelta(hours=1, minutes=2, seconds=3)) == "1:02:03"
    assert stream_offset(timedelta(seconds=-5)) == "0:00:00"


def test_the_recap_gives_peak_and_rounded_average_and_a_linked_timeline():
    fields = recap_fields(recap([period(0, 62, "VALORANT"), period(62, 118, "Just_Chatting *", "2")]), VOD)
    assert fields == [
        {"name": "Peak viewers", "value": "1,234", "inline": True},
        {"name": "Average viewers", "value": "200", "inline": True},
        {
            "name": "Categories",
            "value": (
                f"[0:00:00]({VOD}?t=0h0m0s) VALORANT · 1h 02m\n[1:02:00]({VOD}?t=1h2m0s) Just\\_Chatting \\* · 1h 58m"
            ),
            "inline": False,
        },
    ]


def test_one_category_and_no_viewer_count_add_only_what_is_known():
    assert recap_fields(recap([period(0, 180, "VALORANT")], average=None), VOD) == [
        {"name": "Peak viewers", "value": "1,234", "inline": True}
    ]


def test_a_very_long_timeline_is_cut_to_one_field_saying_how_many_more():
    timeline = [period(i, 1, f"Game {i} " + "x" * 80, str(i % 2)) for i in range(300)]
    [_, _, categories] = recap_fields(recap(timeline), VOD)
    assert len(categories["value"]) <= 1024
    assert categories["value"].endswith(" more")
    shown = categories["value"].count("\n")
    assert f"… and {300 - shown} more" in categories["value"]


def test_the_ended_card_with_a_recap_stays_within_every_embed_limit():
    timeline = [period(i, 1, "@everyone " + "n" * 200, str(i % 2)) for i in range(300)]
    card = ended_announcement(
        Streamer("1", "shroud", "S" * 300, "https://x/a.png"),
        title="t" * 500,
        game_name="g" * 2000,
        started_at=T0,
        ended_at=T0 + timedelta(hours=5),
        vod_url=VOD,
        recap=recap(timeline),
    )
    assert not validate_message({"content": card.content, "embeds": [card.embed], "components": card.components})
    assert "@everyone" not in card.embed["fields"][-1]["value"]  # defused
    assert len(card.embed["fields"]) <= 25


def stats(**changes) -> StreamerStats:
    values = dict(
        period="30d",
        start=T0 - timedelta(days=30),
        end=T0,
        streams=3,
        live_time=timedelta(hours=10, minutes=30),
        average_length=timedelta(hours=3, minutes=30),
        peak_viewers=4321,
        average_viewers=987.6,
        top_categories=(
            CategoryTime("1", "VALORANT", timedelta(hours=7)),
            CategoryTime("2", "Just Chatting", timedelta(hours=3, minutes=30)),
        ),
        per_day=(),
        heatmap=(),
        last_stream=recap(),
        last_samples=(),
    )
    return StreamerStats(**(values | changes))


def test_the_streamer_embed_has_the_numbers_the_categories_and_the_chart():
    embed = streamer_stats_embed(SHROUD, stats(), image="stats_streamer_shroud_30d.png")
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields == {
        "Streams": "3",
        "Hours live": "10.5 h",
        "Average length": "3h 30m",
        "Peak viewers": "4,321",
        "Average viewers": "988",
        "Top categories": "VALORANT · 7.0 h (67%)\nJust Chatting · 3.5 h (33%)",
        "Last stream": f"<t:{int(T0.timestamp())}:f> · 3h 00m · peak 1,234 · average 200",
    }
    assert embed["image"] == {"url": "attachment://stats_streamer_shroud_30d.png"}
    assert embed["url"] == "https://www.twitch.tv/shroud"
    assert "the last 30 days" in embed["description"]
    assert "UTC" in embed["description"]
    assert "image" not in streamer_stats_embed(SHROUD, stats(), image=None)


def test_the_streamer_embed_escapes_twitchs_text_and_fits_discord():
    hostile = Streamer("1", "x", "**@everyone**" * 40)
    many = tuple(CategoryTime(str(i), "`" * 400 + "@here", timedelta(hours=1)) for i in range(5))
    embed = streamer_stats_embed(hostile, stats(top_categories=many, average_viewers=None), image=None)
    assert not validate_message({"embeds": [embed]})
    assert "@everyone" not in embed["title"]
    assert {f["name"]: f["value"] for f in embed["fields"]}["Average viewers"] == "—"


def test_the_server_embed_ranks_and_counts_the_quiet_ones():
    ranks = tuple(
        StreamerRank(Streamer(str(i), f"s{i}", f"S_{i}"), i, timedelta(hours=20 - i), 1000 * i) for i in range(1, 13)
    )
    embed = server_stats_embed(
        "Guild *A*",
        ServerStats("7d", T0 - timedelta(days=7), T0, ranks, tuple(reversed(ranks)), quiet=2),
        image="x.png",
    )
    assert not validate_message({"embeds": [embed]})
    hours = embed["fields"][0]["value"].splitlines()
    assert len(hours) == 10
    assert hours[0] == "1. **S\\_1** · 19.0 h · 1 stream"
    assert embed["fields"][1]["value"].splitlines()[0] == "1. **S\\_12** · 12,000 viewers · 12 streams"
    assert "2 did not" in embed["description"]
    assert embed["title"] == "Guild \\*A\\*: stream statistics"


def test_chart_filenames_are_what_discord_accepts_in_attachment_urls():
    assert chart_filename("streamer", "shroud_2", "30d") == "stats_streamer_shroud_2_30d.png"
    assert chart_filename("server", "名前 / ../x", "all") == "stats_server_" + "_" * 8 + "x_all.png"


def test_no_history_says_why():
    assert "recorded yet" in no_history_text(SHROUD, None, "30d")
    later = no_history_text(SHROUD, T0, "7d")
    assert "the last 7 days" in later
    assert f"<t:{int(T0.timestamp())}:R>" in later
    assert "this server's streamers" in no_history_text(None, None, "all")
