"""scripts/render_dashboards.py, the pure parts: where gridPos puts a panel, how values print in each unit, what a
legend says, which variables Grafana would pick, and that a panel whose queries return nothing says "No data" while
one with data draws its lines and legend. The series come from an in-memory source (no Prometheus, no network);
the screenshots in docs/dashboards come from a real one."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
OVERVIEW = REPO / "deploy" / "observability" / "dashboards" / "goqueue-overview.json"


def renderer() -> ModuleType:
    name = "goqueue_scripts_render_dashboards"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "render_dashboards.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


r = renderer()
WINDOW = r.Window(start=1_000_000.0, end=1_000_600.0, step_s=60.0, scrape_interval_s=5.0)


class Memory:
    """Series by metric name found in the expression; every query it was asked is kept."""

    def __init__(self, series: dict[str, list[Any]], labels: dict[str, list[str]] | None = None) -> None:
        self.series = series
        self.labels = labels or {}
        self.asked: list[str] = []

    def query_range(self, expr: str, window: Any) -> list[Any]:
        self.asked.append(expr)
        return [s for name, found in self.series.items() if name in expr for s in found]

    def label_values(self, label: str, match: str) -> list[str]:
        self.asked.append(f"label_values({match}, {label})")
        return self.labels.get(label, [])


def ramp(labels: dict[str, str], top: float) -> Any:
    times = [WINDOW.start + i * WINDOW.step_s for i in range(11)]
    return r.Series(labels, times, [top * i / 10 for i in range(11)])


def texts(fig: Any) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]


def test_grid_positions_become_boxes_in_grafanas_24_columns() -> None:
    height = r.figure_height_px([{"gridPos": {"x": 0, "y": 0, "w": 24, "h": 4}},
                                 {"gridPos": {"x": 12, "y": 4, "w": 12, "h": 8}}])
    assert height == r.HEADER_PX + 12 * r.ROW_PX
    left = r.panel_rect({"x": 0, "y": 4, "w": 12, "h": 8}, height)
    right = r.panel_rect({"x": 12, "y": 4, "w": 12, "h": 8}, height)
    top = r.panel_rect({"x": 0, "y": 0, "w": 4, "h": 4}, height)
    assert left.width == pytest.approx(right.width)          # equal halves
    assert right.left == pytest.approx(left.left + left.width + r.MARGIN_PX / r.WIDTH_PX)  # side by side, a margin
    assert left.bottom == pytest.approx(right.bottom)        # same row
    assert top.bottom > left.bottom + left.height            # y grows downwards: row 0 above row 4
    assert left.height == pytest.approx(2 * top.height + r.MARGIN_PX / height)  # h 8 is twice h 4, less a margin
    assert left.bottom == pytest.approx(r.MARGIN_PX / height)  # the last row ends one margin above the bottom
    assert right.left + right.width == pytest.approx(1 - r.MARGIN_PX / r.WIDTH_PX)  # the grid fills the width


@pytest.mark.parametrize(("value", "unit", "text"), [
    (0.0042, "s", "4.2 ms"), (0.000_25, "s", "250 µs"), (1.5, "s", "1.5 s"), (90, "s", "1.5 min"),
    (3 * 1024**3, "bytes", "3 GiB"), (1536, "bytes", "1.5 KiB"), (12.5, "bytes", "12.5 B"),
    (2_500_000, "Bps", "2.5 MB/s"), (1234, "ops", "1.23 K ops/s"), (7, "reqps", "7 req/s"),
    (87.5, "percent", "87.5%"), (0.125, "percentunit", "12.5%"), (3, "short", "3"), (0, "short", "0"),
    (None, "s", "No data"), (math.nan, "bytes", "No data"),
])
def test_values_print_in_the_panels_unit(value: float | None, unit: str, text: str) -> None:
    assert r.format_value(value, unit) == text


def test_threshold_colours_follow_the_highest_step_reached() -> None:
    steps = [{"color": "green", "value": None}, {"color": "orange", "value": 80}, {"color": "red", "value": 90}]
    assert r.threshold_color(10, steps) == r.COLORS["green"]
    assert r.threshold_color(80, steps) == r.COLORS["orange"]
    assert r.threshold_color(95, steps) == r.COLORS["red"]


def test_legends_and_substitution() -> None:
    assert r.legend_name("{{group}} {{topic}}/{{partition}}", {"group": "g", "topic": "t", "partition": "3"}) == \
        "g t/3"
    assert r.legend_name("__auto", {"pod": "goqueue-1", "namespace": "q"}) == '{namespace="q", pod="goqueue-1"}'
    assert r.legend_name("", {}) == "value"
    expr = 'sum(rate(x_total{namespace="$namespace", pod=~"$pod"}[$__rate_interval]))'
    assert r.substitute(expr, {"namespace": "goqueue", "pod": ".*"}, WINDOW) == \
        'sum(rate(x_total{namespace="goqueue", pod=~".*"}[65s]))'  # max(60 + 5, 4 * 5)


def test_variables_resolve_as_grafana_first_loads_them() -> None:
    source = Memory({}, {"namespace": ["goqueue", "other"], "pod": ["goqueue-0"]})
    resolved = r.resolve_variables(json.loads(OVERVIEW.read_text()), source)
    assert resolved == {"namespace": "goqueue", "pod": ".*"}  # the first namespace; every broker (All)
    assert source.asked == ["label_values(goqueue_broker_ready, namespace)"]


def test_a_dashboard_draws_data_and_says_no_data_where_there_is_none() -> None:
    source = Memory({"goqueue_broker_ready": [ramp({}, 3)],
                     "goqueue_disk_usage_percent": [ramp({"pod": "goqueue-0"}, 85), ramp({"pod": "goqueue-1"}, 40)]})
    dashboard = json.loads(OVERVIEW.read_text())
    fig = r.render_dashboard(dashboard, source, WINDOW, {"namespace": "goqueue", "pod": ".*"})
    shown = texts(fig)
    assert "GoQueue Overview" in shown
    assert {p["title"] for p in dashboard["panels"]} <= set(shown)  # every panel drawn, titled
    assert "3" in shown                                        # the stat's last value (Brokers ready)
    assert {"goqueue-0", "goqueue-1", "85%", "40%"} <= set(shown)  # the Disk usage legend: names, last values
    lines = [line for ax in fig.axes for line in ax.get_lines() if line.get_label() in ("goqueue-0", "goqueue-1")]
    assert len(lines) == 2
    panels_without_data = len(dashboard["panels"]) - 2
    assert shown.count("No data") == panels_without_data
    assert len(source.asked) == sum(len(p["targets"]) for p in dashboard["panels"])  # every target queried once
    assert all("$" not in expr for expr in source.asked)  # no variable left for Prometheus to refuse


def test_gaps_stay_gaps() -> None:
    series = r.to_series({"pod": "a"}, [(WINDOW.start, "1"), (WINDOW.start + 120, "3")], WINDOW)
    assert len(series.times) == 11
    assert series.values[:3] == [1.0, pytest.approx(math.nan, nan_ok=True), 3.0]
    assert (series.last(), series.max()) == (3.0, 3.0)


def test_every_dashboard_has_its_screenshot_in_the_docs() -> None:
    """A dashboard added without a screenshot (or a screenshot grown past what a docs page should carry) fails;
    scripts/dashboard_screenshots.py renders them all."""
    docs = (REPO / "docs" / "DASHBOARDS.md").read_text()
    for path in sorted((REPO / "deploy" / "observability" / "dashboards").glob("*.json")):
        png = REPO / "docs" / "dashboards" / f"{path.stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert png.stat().st_size < 300 * 1024, png
        assert f"](dashboards/{png.name})" in docs, f"docs/DASHBOARDS.md does not show {png.name}"
