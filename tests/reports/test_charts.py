"""The chart specs as an analyst reads them: human titles, tooltips on every mark, integer ticks for counts,
time axes in days or months, no one-dot lines; and the report's numbers agreeing with its tables."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from spotify_pipeline.query.engine import QueryEngine, QueryResult
from spotify_pipeline.reports import REPORT_ORDER, run_report
from spotify_pipeline.reports.charts import CHARTS, chart_spec, not_enough_data, render_svg
from spotify_pipeline.reports.html import build_html, summary, table_html
from spotify_pipeline.reports.listening import LISTENING_CHARTS
from spotify_pipeline.tables.catalog import Catalog

from .conftest import Lake

RAW_COLUMN = re.compile(r"^[a-z]+(_[a-z]+)+$")  # avg_popularity, popularity_band, total_items...


def encodings(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every encoding block of a (possibly layered) spec, with the shared one merged into each layer."""
    shared = spec.get("encoding", {})
    layers = spec.get("layer") or [spec]
    return [{**shared, **layer.get("encoding", {})} for layer in layers]


def marks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [layer["mark"] for layer in spec.get("layer") or [spec]]


@pytest.fixture(scope="module")
def results(lake: Lake) -> dict[str, QueryResult]:
    with QueryEngine(Catalog(lake.path)) as engine:
        return {name: run_report(engine, name) for name in REPORT_ORDER}


@pytest.mark.parametrize("name", [*CHARTS, *LISTENING_CHARTS])
def test_every_mark_has_a_tooltip_with_human_titles(name: str) -> None:
    spec = CHARTS.get(name) or LISTENING_CHARTS[name]
    for mark in marks(spec):
        assert mark.get("tooltip") is True, name
    for encoding in encodings(spec):
        assert encoding["tooltip"], name
        for tip in encoding["tooltip"]:
            assert tip.get("title") and not RAW_COLUMN.match(tip["title"]), (name, tip)
        for channel in ("x", "y"):
            axis_title = encoding[channel].get("title")
            assert axis_title is None or not RAW_COLUMN.match(axis_title), (name, channel, axis_title)


def test_song_length_shows_the_explicit_share(results: dict[str, QueryResult]) -> None:
    tips = {t["field"]: t for e in encodings(CHARTS["song_length"]) for t in e["tooltip"]}
    assert tips["explicit_share"]["format"] == ".0%"
    svg = render_svg(chart_spec("song_length", results["song_length"]) or {})
    assert "Explicit share" in svg and "100%" in svg  # drawn on its own axis, also without script


def test_count_axes_have_integer_ticks(results: dict[str, QueryResult]) -> None:
    svg = render_svg(chart_spec("popularity_distribution", results["popularity_distribution"]) or {})
    labels = re.findall(r">([^<]+)</text>", svg)
    assert not [label for label in labels if re.fullmatch(r"\d+\.\d+", label)], labels
    assert "Songs" in labels and "popularity_band" not in labels
    # Small counts are where a default axis ticks 0, 0.2, 0.4...: every count axis steps by whole numbers.
    for name, columns, rows in (
        ("release_decades", ["decade", "songs"], [("1990s", 1), ("2000s", 2)]),
        ("top_artists", ["artist", "appearances", "playlists"], [("A", 1, 1), ("B", 2, 1)]),
        (
            "playlist_growth",
            ["month", "items_added", "total_items"],
            [(dt.date(2024, 1, 1), 1, 1), (dt.date(2024, 2, 1), 1, 2)],
        ),
    ):
        small = re.findall(r">([^<]+)</text>", render_svg(chart_spec(name, QueryResult(columns, rows)) or {}))
        assert not [label for label in small if re.fullmatch(r"\d+\.\d+", label)], (name, small)
    assert any(re.fullmatch(r"\d+-\d+", label) for label in labels), labels


def test_month_axis_reads_as_months() -> None:
    rows = [(dt.date(2019, m, 1), m, m * (m + 1) // 2) for m in range(1, 10)]
    spec = chart_spec("playlist_growth", QueryResult(["month", "items_added", "total_items"], rows))
    labels = re.findall(r">([^<]+)</text>", render_svg(spec or {}))
    months = [label for label in labels if re.fullmatch(r"[A-Z][a-z]{2} \d{4}", label)]
    assert months and months[0] == "Jan 2019", labels
    assert not [label for label in labels if re.search(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d", label)]
    # Both series the description promises: monthly adds and the running total.
    assert "Added that month" in labels and "Running total" in labels


def test_a_line_of_one_point_is_not_drawn() -> None:
    one_day = QueryResult(["day", "avg_popularity", "songs"], [(dt.date(2026, 11, 1), 50.0, 10)])
    assert "Not enough data yet" in (not_enough_data("popularity_trend", one_day) or "")
    two_days = QueryResult(one_day.columns, [*one_day.rows, (dt.date(2026, 11, 2), 51.0, 10)])
    assert not_enough_data("popularity_trend", two_days) is None
    assert not_enough_data("top_artists", QueryResult(["artist", "appearances", "playlists"], [])) == "No data yet."


def test_artist_overlap_labels_are_not_cut(results: dict[str, QueryResult]) -> None:
    spec = chart_spec("artist_overlap", results["artist_overlap"]) or {}
    assert spec["encoding"]["y"]["axis"]["labelLimit"] == 0
    svg = render_svg(spec)
    first = spec["data"]["values"][0]
    assert first["pair"] in svg.replace("&amp;", "&")  # both names, whole, on the axis


def test_kpi_playlists_match_the_playlist_table(lake: Lake) -> None:
    with QueryEngine(Catalog(lake.path)) as engine:
        info = summary(engine, None)
    assert info["playlists"] == lake.rows("SELECT count(*) FROM playlists")[0][0]
    assert lake.rows("SELECT count(*) FROM playlists WHERE total_items = 0")[0][0] >= 1  # the empty one counts


def test_report_inlines_the_runtime_and_keeps_the_static_fallback(lake: Lake) -> None:
    with QueryEngine(Catalog(lake.path)) as engine:
        document = build_html(engine)
    assert document.count('<div class="static"><svg') >= len(CHARTS) - 1
    assert "vegaEmbed" in document and "expressionInterpreter" in document
    assert '<script src="http' not in document and '<link rel="stylesheet"' not in document
    assert 'class="empty not-enough" data-report="popularity_trend"' not in document  # two days in this lake


def test_long_cells_wrap_instead_of_widening_the_table() -> None:
    rows_per_table = '{"artists": 120, "albums": 95, "songs": 400, "playlists": 40, "playlist_songs": 2000}'
    result = QueryResult(
        ["run_id", "rows_per_table", "started_at"], [("r1", rows_per_table, dt.datetime(2026, 1, 2, 3, 4, 5, 678))]
    )
    table = table_html(result)
    assert "<td class=long>{&quot;artists&quot;" in table and "Rows per table" in table
    assert "2026-01-02 03:04<" in table  # no seconds or microseconds
