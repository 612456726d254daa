"""The /stats charts as PNG bytes: a streamer's last stream, hours live per day and hours of the week; a server's
streamers ranked by hours live and by peak viewers. Plus the small cache that keeps them an hour.

matplotlib is imported inside the render functions only (its Agg renderer, through the object-oriented API,
never pyplot): a bot that never draws never loads it. Rendering is CPU work, so the cog runs it in a thread, one
chart at a time. The charts are dark panels of their own (readable on Discord's dark and light themes alike), in
Twitch purple, every axis labelled, all times in UTC and saying so.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from twitch_notifier.core.history import ServerStats, StreamerRank, StreamerStats
from twitch_notifier.rendering.invisible import strip_invisible

__all__ = [
    "CHART_DPI",
    "CHART_SIZE",
    "MAX_CHART_BYTES",
    "ChartCache",
    "render_server_chart",
    "render_streamer_chart",
]

CHART_SIZE = (12.0, 8.0)
"""Inches; at CHART_DPI a 1200 x 800 PNG, which Discord shows whole and zooms on a click."""
CHART_DPI = 100
MAX_CHART_BYTES = 512 * 1024
"""What a chart may weigh at most (a few hundred KB, far below Discord's 10 MiB per file); the tests hold it."""
RANKED = 10
"""Streamers shown per ranking of the server chart."""
LABEL_LENGTH = 24

BACKGROUND = "#18181B"
PANEL = "#1F1F23"
TEXT = "#EFEFF1"
MUTED = "#ADADB8"
GRID = "#3A3A3D"
PURPLE = "#9146FF"
LIGHT_PURPLE = "#BF94FF"
PERIOD_LABELS = {"7d": "last 7 days", "30d": "last 30 days", "90d": "last 90 days", "all": "all history kept"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_render_lock = threading.Lock()  # matplotlib's global state (font cache, rcParams) is not for two threads at once


def _label(text: str, limit: int = LABEL_LENGTH) -> str:
    shown = strip_invisible(text).strip() or "?"
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _matplotlib() -> Any:
    """matplotlib, imported on first use, its own log lines (font cache, missing glyphs) kept out of the bot's."""
    import matplotlib  # here, not at the top: a bot that never draws never loads it

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    return matplotlib


def _style() -> dict[str, Any]:
    return {
        "figure.facecolor": BACKGROUND,
        "axes.facecolor": PANEL,
        "axes.edgecolor": GRID,
        "axes.labelcolor": TEXT,
        "axes.titlecolor": TEXT,
        "axes.titleweight": "bold",
        "axes.titlesize": 13,
        "axes.labelsize": 11,
        "axes.grid": True,
        "grid.color": GRID,
        "grid.linewidth": 0.6,
        "xtick.color": MUTED,
        "ytick.color": MUTED,
        "xtick.labelsize": 10,
        "ytick.labelsize": 10,
        "text.color": TEXT,
        "font.size": 11,
        "font.family": "DejaVu Sans",
        # Names come from Twitch: a "$" must print as a dollar, never start matplotlib's maths.
        "text.parse_math": False,
        "svg.fonttype": "none",
    }


def _png(build: Any) -> bytes:
    """Run `build(figure)` on a fresh Agg figure and return the PNG."""
    matplotlib = _matplotlib()
    from matplotlib.figure import Figure

    with _render_lock, matplotlib.rc_context(_style()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a glyph DejaVu lacks (CJK, emoji) draws as a box, not a log line
        figure = Figure(figsize=CHART_SIZE, dpi=CHART_DPI)
        build(figure)
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=CHART_DPI, facecolor=BACKGROUND, metadata={"Software": None})
    return out.getvalue()


# -- a streamer --------------------------------------------------------------------------------------------


def render_streamer_chart(name: str, stats: StreamerStats) -> bytes:
    """Viewers over the last stream (category changes marked), hours live per day (per week or month over long
    periods) and a weekday x hour heat map of the period; PNG bytes."""

    def build(figure: Any) -> None:
        grid = figure.add_gridspec(2, 2, height_ratios=(1.1, 1), width_ratios=(1.35, 1), hspace=0.42, wspace=0.22)
        _last_stream(figure.add_subplot(grid[0, :]), stats)
        _per_day(figure.add_subplot(grid[1, 0]), stats.per_day)
        _heatmap(figure, figure.add_subplot(grid[1, 1]), stats.heatmap)
        period = PERIOD_LABELS.get(stats.period, stats.period)
        figure.suptitle(
            f"{_label(name, 40)} · {period} · times in UTC", x=0.08, ha="left", fontsize=16, fontweight="bold"
        )
        _footer(figure, stats.end)
        figure.subplots_adjust(left=0.08, right=0.94, top=0.90, bottom=0.09)

    return _png(build)


def _last_stream(axes: Any, stats: StreamerStats) -> None:
    from matplotlib.dates import AutoDateLocator, DateFormatter

    last = stats.last_stream
    if last is None or not stats.last_samples:
        axes.set_title("Viewers, last stream")
        axes.text(
            0.5,
            0.5,
            "No viewer counts recorded for it yet",
            ha="center",
            va="center",
            color=MUTED,
            transform=axes.transAxes,
        )
        axes.set_xticks([])
        axes.set_yticks([])
        return
    times = [at for at, _ in stats.last_samples]
    viewers = [count for _, count in stats.last_samples]
    end = max(last.ended_at, times[-1])
    times_plot, viewers_plot = [*times, end], [*viewers, viewers[-1]]
    axes.step(times_plot, viewers_plot, where="post", color=LIGHT_PURPLE, linewidth=2)
    axes.fill_between(times_plot, viewers_plot, step="post", color=PURPLE, alpha=0.35, linewidth=0)
    when = last.started_at.astimezone(UTC).strftime("%a %d %b %Y, %H:%M")
    state = "live now" if last.live else f"{_hours(last.duration):.1f} h"
    axes.set_title(f"Viewers, last stream ({when} UTC, {state})", loc="left")
    axes.set_ylabel("viewers")
    axes.yaxis.set_major_formatter(_thousands())
    axes.set_xlabel("time (UTC)")
    axes.set_ylim(bottom=0, top=max(viewers) * 1.25 + 1)
    axes.set_xlim(min(last.started_at, times[0]), end)
    axes.xaxis.set_major_locator(AutoDateLocator(tz=UTC, minticks=4, maxticks=10))  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    top = axes.get_ylim()[1]
    for period in last.timeline:
        at = last.started_at + period.offset
        axes.axvline(at, color=MUTED, linestyle=":", linewidth=1)
        axes.text(
            at, top * 0.97, " " + _label(period.game_name), va="top", ha="left", fontsize=9, color=TEXT, clip_on=True
        )
    peak_index = viewers.index(max(viewers))
    # Near either end the label leans inwards, or the axes would cut it.
    lean = "left" if peak_index < len(viewers) * 0.1 else "right" if peak_index > len(viewers) * 0.9 else "center"
    axes.annotate(
        f"peak {max(viewers):,}",
        (times[peak_index], max(viewers)),
        xytext=(0, 8),
        textcoords="offset points",
        ha=lean,
        fontsize=9,
        color=LIGHT_PURPLE,
    )


def _per_day(axes: Any, per_day: Sequence[tuple[date, timedelta]]) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    bins, unit = _binned(per_day)
    days = [day for day, _ in bins]
    hours = [_hours(time) for _, time in bins]
    width = {"day": 0.8, "week": 6.0, "month": 26.0}[unit]
    axes.bar(days, hours, width=width, align="edge" if unit != "day" else "center", color=PURPLE)
    axes.set_title(f"Hours live per {unit}", loc="left")
    axes.set_ylabel("hours")
    axes.set_xlabel("date (UTC)")
    axes.set_ylim(bottom=0, top=max([*hours, 1.0]) * 1.15)
    locator = AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.grid(axis="x", visible=False)


def _binned(per_day: Sequence[tuple[date, timedelta]]) -> tuple[list[tuple[date, timedelta]], str]:
    """Days as they are up to four months; weeks (from Monday) up to two years; months beyond."""
    if len(per_day) <= 120:
        return list(per_day), "day"
    sums: dict[date, timedelta] = {}
    unit = "week" if len(per_day) <= 730 else "month"
    for day, time in per_day:
        key = day - timedelta(days=day.weekday()) if unit == "week" else day.replace(day=1)
        sums[key] = sums.get(key, timedelta()) + time
    return sorted(sums.items()), unit


def _heatmap(figure: Any, axes: Any, heatmap: Sequence[Sequence[float]]) -> None:
    from matplotlib.colors import LinearSegmentedColormap

    colours = LinearSegmentedColormap.from_list("twitch", [PANEL, "#4B2A8A", PURPLE, LIGHT_PURPLE])
    rows = [list(row) for row in heatmap]
    image = axes.imshow(
        rows, aspect="auto", cmap=colours, vmin=0, vmax=max([max(r) for r in rows] + [0.5]), interpolation="nearest"
    )
    axes.set_title("When: hours live by weekday and hour", loc="left")
    axes.set_yticks(range(7), WEEKDAYS)
    axes.set_xticks(range(0, 24, 3), [f"{hour:02d}" for hour in range(0, 24, 3)])
    axes.set_xlabel("hour of day (UTC)")
    axes.grid(visible=False)
    bar = figure.colorbar(image, ax=axes, fraction=0.05, pad=0.02)
    bar.set_label("hours live", color=TEXT)
    bar.ax.tick_params(colors=MUTED)
    bar.outline.set_edgecolor(GRID)


def _footer(figure: Any, now: datetime) -> None:
    figure.text(0.97, 0.015, f"as of {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC", ha="right", fontsize=9, color=MUTED)


# -- a server ----------------------------------------------------------------------------------------------


def render_server_chart(guild_name: str, stats: ServerStats) -> bytes:
    """The server's followed streamers ranked by hours live and by peak viewers (the top RANKED of each)."""

    def build(figure: Any) -> None:
        left, right = figure.subplots(1, 2)
        _ranking(left, stats.by_hours[:RANKED], lambda r: _hours(r.live_time), "Hours live", "hours live", "{:.1f}")
        _ranking(right, stats.by_peak[:RANKED], lambda r: float(r.peak_viewers), "Peak viewers", "viewers", "{:,.0f}")
        period = PERIOD_LABELS.get(stats.period, stats.period)
        figure.suptitle(
            f"{_label(guild_name, 40)} · followed streamers · {period} · times in UTC",
            x=0.04,
            ha="left",
            fontsize=16,
            fontweight="bold",
        )
        _footer(figure, stats.end)
        figure.subplots_adjust(left=0.15, right=0.96, top=0.88, bottom=0.10, wspace=0.45)

    return _png(build)


def _ranking(axes: Any, ranks: Sequence[StreamerRank], value: Any, title: str, unit: str, fmt: str) -> None:
    names = [_label(rank.streamer.display_name or rank.streamer.login) for rank in ranks][::-1]
    values = [value(rank) for rank in ranks][::-1]
    bars = axes.barh(range(len(values)), values, color=PURPLE, height=0.7)
    axes.set_yticks(range(len(values)), names)
    axes.set_title(title, loc="left")
    axes.set_xlabel(unit)
    axes.set_xlim(left=0, right=max([*values, 1.0]) * 1.18)
    axes.xaxis.set_major_formatter(_thousands())
    axes.grid(axis="y", visible=False)
    for bar, number in zip(bars, values, strict=True):
        axes.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            " " + fmt.format(number),
            va="center",
            fontsize=9,
            color=TEXT,
        )


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:,.0f}")


# -- the cache ---------------------------------------------------------------------------------------------


class ChartCache:
    """The last charts drawn, by (what, period, hour): asked again within the same UTC hour, a chart is not
    drawn again. Bounded by entries and by bytes, the oldest forgotten first."""

    def __init__(self, max_entries: int = 32, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._charts: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(subject: str, period: str, now: datetime) -> tuple[str, str, str]:
        return subject, period, now.astimezone(UTC).strftime("%Y-%m-%dT%H")

    def get(self, key: tuple[str, str, str]) -> bytes | None:
        chart = self._charts.get(key)
        if chart is None:
            self.misses += 1
            return None
        self._charts.move_to_end(key)
        self.hits += 1
        return chart

    def peek(self, key: tuple[str, str, str]) -> bytes | None:
        """The chart if it is cached, counting neither a hit nor a miss."""
        return self._charts.get(key)

    def put(self, key: tuple[str, str, str], chart: bytes) -> None:
        self._charts[key] = chart
        self._charts.move_to_end(key)
        while len(self._charts) > self._max_entries or sum(map(len, self._charts.values())) > self._max_bytes:
            self._charts.popitem(last=False)

    def __len__(self) -> int:
        return len(self._charts)
