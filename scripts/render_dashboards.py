#!/usr/bin/env python3
"""Draws the Grafana dashboards of deploy/observability/dashboards as PNG screenshots, from a real Prometheus.

    python scripts/render_dashboards.py --prometheus http://127.0.0.1:9090 --start 2026-12-06T05:00:00Z \\
        --end 2026-12-06T05:20:00Z --out docs/dashboards

No Grafana runs here (no registry, no node), so this is a small stand-in for Grafana's renderer: for each dashboard
JSON it resolves the template variables the way Grafana does on first load (a single-value variable takes the first
value of its `label_values(...)` query, a multi-value one "All"), runs every panel target through
/api/v1/query_range over the window, and draws the panels where their gridPos puts them (24 columns, Grafana's
row height) with their titles, units, thresholds and legends (last and max, as the JSON asks). A stat panel shows
the last value on its threshold colour, or the series' name when its textMode is "name"; a panel whose queries
return nothing says "No data", as Grafana does. Drawing is pure (a `Source` gives the series), so
tests/unit/test_render_dashboards.py tests it without a network; the data for docs/dashboards comes from
scripts/dashboard_screenshots.py, which runs a real cluster, its operator and Prometheus.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import matplotlib

matplotlib.use("Agg")  # no display; before pyplot is imported anywhere
import matplotlib.dates as mdates
import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = REPO / "deploy" / "observability" / "dashboards"
GRID_COLUMNS = 24
ROW_PX = 30          # Grafana's grid row: 30 px
MARGIN_PX = 8        # between panels
HEADER_PX = 56       # the dashboard title bar
WIDTH_PX = 1600
DPI = 100
# Grafana's dark theme and its classic palette, so a screenshot reads like the dashboard it stands for.
BACKGROUND, PANEL, BORDER, TEXT, MUTED = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0", "#37872d",
           "#fade2a", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477"]
COLORS = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "yellow": "#fade2a", "blue": "#5794f2",
          "purple": "#b877d9"}


# -- data ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    times: list[float]              # unix seconds
    values: list[float]             # NaN where Prometheus had no sample

    def last(self) -> float | None:
        return next((v for v in reversed(self.values) if not math.isnan(v)), None)

    def max(self) -> float | None:
        present = [v for v in self.values if not math.isnan(v)]
        return max(present) if present else None


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    step_s: float
    scrape_interval_s: float = 5.0

    @property
    def rate_interval(self) -> str:
        """Grafana's $__rate_interval: max($__interval + scrape interval, 4 * scrape interval)."""
        return f"{int(max(self.step_s + self.scrape_interval_s, 4 * self.scrape_interval_s))}s"


class Source(Protocol):
    def query_range(self, expr: str, window: Window) -> list[Series]: ...

    def label_values(self, label: str, match: str) -> list[str]: ...


class Prometheus:
    """The two HTTP API calls a dashboard needs."""

    def __init__(self, url: str) -> None:
        import httpx  # only the command needs it; the drawing and its tests do not

        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=60)

    def query_range(self, expr: str, window: Window) -> list[Series]:
        answer = self.http.get("/api/v1/query_range", params={
            "query": expr, "start": window.start, "end": window.end, "step": window.step_s})
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {expr!r}: {body.get('error', answer.text)}")
        return [to_series(item["metric"], item["values"], window) for item in body["data"]["result"]]

    def label_values(self, label: str, match: str) -> list[str]:
        body = self.http.get(f"/api/v1/label/{label}/values", params={"match[]": match}).json()
        return sorted(body.get("data") or [])


def to_series(labels: dict[str, str], values: Sequence[tuple[float, str]], window: Window) -> Series:
    """Prometheus's [time, "value"] pairs on the window's full grid, NaN where a step had no sample (a gap)."""
    by_time = {round(float(t), 3): float(v) for t, v in values}
    steps = round((window.end - window.start) / window.step_s) + 1
    times = [window.start + i * window.step_s for i in range(steps)]
    return Series(labels, times, [by_time.get(round(t, 3), math.nan) for t in times])


# -- template variables and legends --------------------------------------------------------------------------------

LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$")


def resolve_variables(dashboard: dict[str, Any], source: Source) -> dict[str, str]:
    """What Grafana selects on first load: the first value of a single-value variable, "All" (.*) of a multi one."""
    resolved: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        if variable.get("multi") and variable.get("includeAll"):
            resolved[variable["name"]] = variable.get("allValue", ".*")
            continue
        match = LABEL_VALUES.match(variable["query"]["query"])
        assert match, f"unsupported variable query {variable['query']['query']!r}"
        values = source.label_values(match[2], substitute(match[1], resolved, None))
        resolved[variable["name"]] = values[0] if values else ""
    return resolved


def substitute(expr: str, variables: dict[str, str], window: Window | None) -> str:
    if window is not None:
        expr = expr.replace("$__rate_interval", window.rate_interval)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m[1], m[0]), expr)


def legend_name(legend_format: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: {{label}} replaced; __auto or empty is the label set, as Grafana shows it."""
    if legend_format and legend_format != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), legend_format).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if not shown:
        return labels.get("__name__", "value")
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"


# -- units ---------------------------------------------------------------------------------------------------------

def _scaled(value: float, base: float, suffixes: Sequence[str]) -> str:
    index = 0
    while abs(value) >= base and index < len(suffixes) - 1:
        value /= base
        index += 1
    return f"{_short_number(value)}{suffixes[index]}"


def _short_number(value: float) -> str:
    """Three significant digits at most, no trailing zeros: 0, 7, 12.5, 1.23, 0.0457, 512."""
    if value == 0 or float(value).is_integer() or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def format_value(value: float | None, unit: str) -> str:
    """A value as Grafana prints it in this unit (the units the dashboards use)."""
    if value is None or math.isnan(value):
        return "No data"
    if unit == "percent":
        return f"{_short_number(value)}%"
    if unit == "percentunit":
        return f"{_short_number(value * 100)}%"
    if unit == "bytes":
        return _scaled(value, 1024, [" B", " KiB", " MiB", " GiB", " TiB", " PiB"])
    if unit == "Bps":
        return _scaled(value, 1000, [" B/s", " kB/s", " MB/s", " GB/s", " TB/s"])
    if unit == "s":
        if value == 0:
            return "0 s"
        if abs(value) < 1e-3:
            return f"{_short_number(value * 1e6)} µs"
        if abs(value) < 1:
            return f"{_short_number(value * 1e3)} ms"
        if abs(value) < 60:
            return f"{_short_number(value)} s"
        return f"{_short_number(value / 60)} min"
    suffix = {"ops": " ops/s", "reqps": " req/s"}.get(unit, "")
    return _scaled(value, 1000, ["", " K", " Mil", " Bil", " Tri"]) + suffix


def threshold_color(value: float | None, steps: Sequence[dict[str, Any]]) -> str:
    """The colour of the highest threshold step the value reaches (the first step's value is null: the base)."""
    color = steps[0]["color"] if steps else "green"
    for step in steps:
        if step.get("value") is not None and value is not None and value >= step["value"]:
            color = step["color"]
    return COLORS.get(color, color)


# -- layout --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rect:
    """A panel's box in figure fractions (left, bottom, width, height), as matplotlib's add_axes takes it."""
    left: float
    bottom: float
    width: float
    height: float


def figure_height_px(panels: Iterable[dict[str, Any]]) -> int:
    rows = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1)
    return HEADER_PX + rows * ROW_PX  # a panel keeps a margin below itself, so the last row ends one above


def panel_rect(grid: dict[str, int], height_px: int, width_px: int = WIDTH_PX) -> Rect:
    """gridPos (24 columns wide, y counted down from the top in 30 px rows) → the panel's box, with a margin."""
    column_px = (width_px - MARGIN_PX) / GRID_COLUMNS
    left_px = MARGIN_PX + grid["x"] * column_px
    top_px = HEADER_PX + grid["y"] * ROW_PX
    box_w = grid["w"] * column_px - MARGIN_PX
    box_h = grid["h"] * ROW_PX - MARGIN_PX
    return Rect(left_px / width_px, 1 - (top_px + box_h) / height_px, box_w / width_px, box_h / height_px)


# -- drawing -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PanelData:
    series: list[tuple[str, Series]]   # (legend name, series)


def fetch_panel(panel: dict[str, Any], source: Source, variables: dict[str, str], window: Window) -> PanelData:
    found: list[tuple[str, Series]] = []
    for target in panel.get("targets", []):
        for series in source.query_range(substitute(target["expr"], variables, window), window):
            found.append((legend_name(target.get("legendFormat", ""), series.labels), series))
    return PanelData(found)


def _frame(fig: Figure, rect: Rect, title: str) -> Axes:
    """The panel's box and title; returns the box's axes (no ticks), on which the content is placed."""
    box = fig.add_axes((rect.left, rect.bottom, rect.width, rect.height))
    box.set_facecolor(PANEL)
    box.set_xticks([])
    box.set_yticks([])
    for spine in box.spines.values():
        spine.set_color(BORDER)
    box.text(0.01, 0.985, title, transform=box.transAxes, ha="left", va="top", color=TEXT, fontsize=10,
             fontweight="bold")
    return box


def draw_no_data(box: Axes) -> None:
    box.text(0.5, 0.45, "No data", transform=box.transAxes, ha="center", va="center", color=MUTED, fontsize=14)


def draw_stat(fig: Figure, rect: Rect, panel: dict[str, Any], data: PanelData) -> Axes:
    box = _frame(fig, rect, panel["title"])
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    steps = defaults.get("thresholds", {}).get("steps", [])
    present = [(name, s) for name, s in data.series if s.last() is not None]
    if not present:
        draw_no_data(box)
        return box
    name_mode = panel.get("options", {}).get("textMode") == "name"
    name, series = present[0]
    value = series.last()
    box.add_patch(mpatches.Rectangle((0.02, 0.06), 0.96, 0.7, transform=box.transAxes,
                                               color=threshold_color(value, steps), alpha=0.85))
    text = name if name_mode else format_value(value, defaults.get("unit", "short"))
    box.text(0.5, 0.41, text, transform=box.transAxes, ha="center", va="center", color="white", fontsize=22,
             fontweight="bold")
    return box


def draw_timeseries(fig: Figure, rect: Rect, panel: dict[str, Any], data: PanelData) -> Axes:
    box = _frame(fig, rect, panel["title"])
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "short")
    present = [(name, s) for name, s in data.series if s.last() is not None or s.max() is not None]
    if not present:
        draw_no_data(box)
        return box
    shown = present[:8]  # the legend table has room for 8 rows in an 8-row panel; more are drawn, not listed
    legend_rows = len(shown) + 1
    legend_h = min(0.45, 0.055 * legend_rows + 0.02)
    gap = 34 / (rect.height * figure_px(fig))  # room for the time axis' labels between plot and legend
    plot = fig.add_axes((rect.left + rect.width * 0.07, rect.bottom + rect.height * (legend_h + gap),
                         rect.width * 0.91, rect.height * (0.86 - legend_h - gap)))
    plot.set_facecolor(PANEL)
    stacked = defaults.get("custom", {}).get("stacking", {}).get("mode") == "normal"
    base: list[float] | None = None
    for i, (name, series) in enumerate(present):
        color = PALETTE[i % len(PALETTE)]
        times = [t / 86400 for t in series.times]  # matplotlib's dates: days since its epoch, 1970-01-01 UTC
        values = series.values
        if stacked:
            values = [v + (base[j] if base else 0.0) for j, v in enumerate(values)]
            base = [0.0 if math.isnan(v) else v for v in values]
        plot.plot(times, values, color=color, linewidth=1.2, label=name)
        plot.fill_between(times, values, color=color, alpha=0.08)
    steps = defaults.get("thresholds", {}).get("steps", [])
    if len(steps) > 1:
        for step in steps[1:]:
            plot.axhline(step["value"], color=COLORS.get(step["color"], step["color"]), linestyle="--",
                         linewidth=0.9, alpha=0.8)
    plot.tick_params(colors=MUTED, labelsize=7)
    plot.grid(color=BORDER, linewidth=0.5)
    for spine in plot.spines.values():
        spine.set_visible(False)
    span_min = (series_span(present) or 60) / 60
    every = next(m for m in (1, 2, 5, 10, 15, 30, 60, 120, 360, 720, 1440) if span_min / m <= 8)
    if every < 60:  # whole minutes, as Grafana labels its time axis: 05:00, 05:02, 05:04 …
        plot.xaxis.set_major_locator(mdates.MinuteLocator(byminute=range(0, 60, every), tz=UTC))  # type: ignore[no-untyped-call]
    else:
        plot.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, max(every // 60, 1)), tz=UTC))  # type: ignore[no-untyped-call]
    plot.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    plot.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    highest = max((s.max() or 0.0) for _, s in present)
    plot.set_ylim(bottom=min(0.0, plot.get_ylim()[0]), top=None if highest > 0 else 1.0)  # all zero: 0 at the bottom
    _legend_table(box, shown, unit, legend_h, len(present))
    return box


def series_span(present: list[tuple[str, Series]]) -> float:
    times = [t for _, s in present for t in (s.times[0], s.times[-1])] if present else []
    return max(times) - min(times) if times else 0.0


def figure_px(fig: Figure) -> float:
    return float(fig.get_figheight() * fig.dpi)


def _legend_table(box: Axes, shown: list[tuple[str, Series]], unit: str, height: float, total: int) -> None:
    """Grafana's table legend under the plot: name, Last *, Max."""
    row_h = height / (len(shown) + 1)
    top = height
    box.text(0.73, top, "Last *", transform=box.transAxes, ha="right", va="top", color=MUTED, fontsize=7.5)
    box.text(0.97, top, "Max", transform=box.transAxes, ha="right", va="top", color=MUTED, fontsize=7.5)
    for i, (name, series) in enumerate(shown):
        y = top - (i + 1) * row_h
        box.add_patch(mpatches.Rectangle((0.015, y - row_h * 0.55), 0.012, row_h * 0.4,
                                                   transform=box.transAxes, color=PALETTE[i % len(PALETTE)]))
        label = name if len(name) <= 60 else name[:57] + "…"
        if i == len(shown) - 1 and total > len(shown):
            label += f"  (+{total - len(shown)} more)"
        box.text(0.035, y, label, transform=box.transAxes, ha="left", va="top", color=TEXT, fontsize=7.5)
        box.text(0.73, y, format_value(series.last(), unit), transform=box.transAxes, ha="right", va="top",
                 color=TEXT, fontsize=7.5)
        box.text(0.97, y, format_value(series.max(), unit), transform=box.transAxes, ha="right", va="top",
                 color=TEXT, fontsize=7.5)


DRAWERS: dict[str, Callable[[Figure, Rect, dict[str, Any], PanelData], Axes]] = {
    "stat": draw_stat, "timeseries": draw_timeseries}


def render_dashboard(dashboard: dict[str, Any], source: Source, window: Window,
                     variables: dict[str, str] | None = None) -> Figure:
    variables = variables if variables is not None else resolve_variables(dashboard, source)
    panels = dashboard["panels"]
    height_px = figure_height_px(panels)
    fig = plt.figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI, facecolor=BACKGROUND)
    shown_vars = "   ".join(f"{k}: {'All' if v == '.*' else v}" for k, v in variables.items())
    span = (f"{datetime.fromtimestamp(window.start, UTC):%Y-%m-%d %H:%M} to "
            f"{datetime.fromtimestamp(window.end, UTC):%H:%M} UTC")
    fig.text(MARGIN_PX / WIDTH_PX, 1 - 22 / height_px, dashboard["title"], color=TEXT, fontsize=15,
             fontweight="bold", va="center")
    fig.text(MARGIN_PX / WIDTH_PX, 1 - 44 / height_px, f"{shown_vars}      {span}", color=MUTED, fontsize=9,
             va="center")
    for panel in panels:
        rect = panel_rect(panel["gridPos"], height_px)
        DRAWERS.get(panel["type"], draw_timeseries)(fig, rect, panel, fetch_panel(panel, source, variables, window))
    return fig


def save_png(fig: Figure, path: Path) -> int:
    """Saved as a 256-colour PNG (flat colours and thin lines survive it; the file is a third of the size)."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor=fig.get_facecolor())
    plt.close(fig)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image.save(path, format="PNG", optimize=True)
    return path.stat().st_size


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--start", required=True, help="ISO 8601, e.g. 2026-12-06T05:00:00Z")
    parser.add_argument("--end", required=True)
    parser.add_argument("--step", type=float, default=0, help="seconds between points (default: window / 240)")
    parser.add_argument("--scrape-interval", type=float, default=5, help="of the Prometheus (for $__rate_interval)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboards")
    parser.add_argument("dashboards", nargs="*", type=Path, help="default: every deploy/observability dashboard")
    args = parser.parse_args(argv)
    start, end = parse_time(args.start), parse_time(args.end)
    window = Window(start, end, args.step or max(round((end - start) / 240), 1), args.scrape_interval)
    source = Prometheus(args.prometheus)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.dashboards or sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        target = args.out / f"{path.stem}.png"
        size = save_png(render_dashboard(dashboard, source, window), target)
        print(f"wrote {target} ({size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
