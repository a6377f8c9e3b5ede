"""One chart per report that has one: Vega-Lite specs, drawn interactively in the browser by the vendored
Vega runtime (web/vendor/) and rendered to static SVG offline by vl-convert as the no-script fallback.

Every mark has a tooltip with human titles and formats, counts get integer ticks, time axes are UTC
(`day` or `month` units, never ticks of hours), and a line over fewer than two points is not drawn: the
report and the dashboard say "not enough data yet" instead (`not_enough_data`).
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from ..errors import ConfigError
from ..query.engine import QueryResult
from .listening import LISTENING_CHARTS

COLOR = "#1DB954"
ACCENT = "#7B61FF"
Spec = dict[str, Any]

# Human titles of the report columns, for axes, tooltips and table headers.
TITLES: dict[str, str] = {
    "artist": "Artist",
    "appearances": "Playlist appearances",
    "playlists": "Playlists",
    "genre": "Genre",
    "items": "Playlist items",
    "decade": "Release decade",
    "songs": "Songs",
    "minutes": "Length (whole minutes)",
    "explicit_share": "Explicit share",
    "popularity_band": "Popularity band",
    "band": "Popularity band",
    "day": "Day",
    "avg_popularity": "Average popularity (0-100)",
    "month": "Month",
    "items_added": "Items added that month",
    "total_items": "Running total of items",
    "pair": "Playlists",
    "playlist_a": "Playlist",
    "playlist_b": "Other playlist",
    "shared_artists": "Shared artists",
    "jaccard": "Jaccard similarity",
    "changed_at": "Changed at",
    "playlist": "Playlist",
    "change": "Change",
    "item_name": "Item",
    "item_uri": "Spotify URI",
    "run_id": "Run",
    "status": "Status",
    "started_at": "Started at",
    "api_requests": "API requests",
    "items_extracted": "Items extracted",
    "failed_checks": "Failed checks",
    "checks": "Checks",
    "rows_per_table": "Rows per table",
    "error": "Error",
}

# The column of each report that is a point in time: the dashboard's time range filters these rows.
TIME_FIELDS: dict[str, str] = {
    "popularity_trend": "day",
    "playlist_growth": "month",
    "playlist_changes": "changed_at",
    "data_health": "started_at",
    "listening_time": "period_start",
    "skip_rate": "month",
    "new_artists": "month",
}

COUNT_AXIS: dict[str, Any] = {"format": ",d", "tickMinStep": 1}


def title(column: str) -> str:
    return TITLES.get(column, column.replace("_", " ").capitalize())


def _tip(field: str, fmt: str | None = None, kind: str | None = None) -> dict[str, Any]:
    tip: dict[str, Any] = {"field": field, "title": title(field)}
    if fmt:
        tip["format"] = fmt
    if kind:
        tip["type"] = kind
    return tip


def _hbar(x: str, y: str, tooltip: list[dict[str, Any]], label_limit: int = 220) -> Spec:
    return {
        "mark": {"type": "bar", "color": COLOR, "tooltip": True},
        "encoding": {
            "y": {"field": y, "type": "nominal", "sort": "-x", "title": None, "axis": {"labelLimit": label_limit}},
            "x": {"field": x, "type": "quantitative", "title": title(x), "axis": COUNT_AXIS},
            "tooltip": tooltip,
        },
    }


def _vbar(x: str, y: str, tooltip: list[dict[str, Any]], x_title: str | None = None) -> Spec:
    return {
        "mark": {"type": "bar", "color": COLOR, "tooltip": True},
        "encoding": {
            "x": {"field": x, "type": "ordinal", "sort": None, "title": x_title or title(x), "axis": {"labelAngle": 0}},
            "y": {"field": y, "type": "quantitative", "title": title(y), "axis": COUNT_AXIS},
            "tooltip": tooltip,
        },
    }


_DAY = {"field": "day", "type": "temporal", "timeUnit": "utcyearmonthdate", "title": "Day observed"}
_MONTH = {"field": "month", "type": "temporal", "timeUnit": "utcyearmonth", "title": "Month added"}

CHARTS: dict[str, Spec] = {
    "top_artists": _hbar("appearances", "artist", [_tip("artist"), _tip("appearances", ",d"), _tip("playlists", ",d")]),
    "genre_mix": _hbar("items", "genre", [_tip("genre"), _tip("items", ",d")]),
    "release_decades": _vbar("decade", "songs", [_tip("decade"), _tip("songs", ",d")]),
    # Songs per length (bars, left axis) and the explicit share of each length (line, right axis).
    "song_length": {
        "encoding": {
            "x": {"field": "minutes", "type": "ordinal", "title": title("minutes"), "axis": {"labelAngle": 0}},
            "tooltip": [_tip("minutes"), _tip("songs", ",d"), _tip("explicit_share", ".0%")],
        },
        "layer": [
            {
                "mark": {"type": "bar", "color": COLOR, "tooltip": True},
                "encoding": {"y": {"field": "songs", "type": "quantitative", "title": "Songs", "axis": COUNT_AXIS}},
            },
            {
                "mark": {"type": "line", "color": ACCENT, "point": {"color": ACCENT}, "tooltip": True},
                "encoding": {
                    "y": {
                        "field": "explicit_share",
                        "type": "quantitative",
                        "title": "Explicit share",
                        "scale": {"domain": [0, 1]},
                        "axis": {"format": ".0%", "titleColor": ACCENT, "orient": "right"},
                    }
                },
            },
        ],
        "resolve": {"scale": {"y": "independent"}},
    },
    "popularity_distribution": {
        "transform": [
            {
                "calculate": "datum.popularity_band >= 100 ? '100' : datum.popularity_band + '-' + "
                "(datum.popularity_band + 9)",
                "as": "band",
            }
        ],
        **_vbar("band", "songs", [_tip("band"), _tip("songs", ",d")], x_title="Popularity (0-100), bands of 10"),
    },
    "popularity_trend": {
        "mark": {"type": "line", "point": True, "color": COLOR, "tooltip": True},
        "encoding": {
            "x": {**_DAY, "axis": {"format": "%b %d", "tickCount": {"interval": "day", "step": 1}}},
            "y": {"field": "avg_popularity", "type": "quantitative", "title": title("avg_popularity")},
            "tooltip": [
                {**_tip("day", "%Y-%m-%d", "temporal"), "timeUnit": "utcyearmonthdate"},
                _tip("avg_popularity", ".1f"),
                _tip("songs", ",d"),
            ],
        },
    },
    # Monthly adds (bars, left axis) and the running total (line, right axis), as the description says.
    "playlist_growth": {
        "encoding": {
            "x": {**_MONTH, "axis": {"format": "%b %Y", "tickCount": {"interval": "month", "step": 1}}},
            "tooltip": [
                {**_tip("month", "%B %Y", "temporal"), "timeUnit": "utcyearmonth"},
                _tip("items_added", ",d"),
                _tip("total_items", ",d"),
            ],
        },
        "layer": [
            {
                "mark": {"type": "bar", "color": COLOR, "tooltip": True},
                "encoding": {
                    "y": {
                        "field": "items_added",
                        "type": "quantitative",
                        "title": "Added that month",
                        "axis": COUNT_AXIS,
                    }
                },
            },
            {
                "mark": {"type": "line", "color": ACCENT, "point": {"color": ACCENT}, "tooltip": True},
                "encoding": {
                    "y": {
                        "field": "total_items",
                        "type": "quantitative",
                        "title": "Running total",
                        "axis": {**COUNT_AXIS, "titleColor": ACCENT, "orient": "right"},
                    }
                },
            },
        ],
        "resolve": {"scale": {"y": "independent"}},
    },
    "artist_overlap": _hbar(
        "shared_artists",
        "pair",
        [_tip("playlist_a"), _tip("playlist_b"), _tip("shared_artists", ",d"), _tip("jaccard", ".2f")],
        label_limit=0,
    ),
}

# Charts that draw a line: fewer distinct points than this is "not enough data yet", not one dot.
MIN_POINTS: dict[str, tuple[str, int]] = {"popularity_trend": ("day", 2), "playlist_growth": ("month", 2)}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def not_enough_data(name: str, result: QueryResult) -> str | None:
    """Why report `name`'s chart is not drawn over these rows (no rows, or a line of fewer than two
    points), or None when it is."""
    if not result.rows:
        return "No data yet."
    if name in MIN_POINTS:
        field, least = MIN_POINTS[name]
        points = {row[result.columns.index(field)] for row in result.rows}
        if len(points) < least:
            unit = "days" if field == "day" else "months"
            return f"Not enough data yet: a trend needs at least {least} {unit}; the lake has {len(points)}."
    return None


TIME_AXIS_STEP = {"popularity_trend": "day", "playlist_growth": "month"}


def _time_ticks(base: Spec, name: str, points: list[Any]) -> Spec:
    """At most about 12 ticks, each on a whole day or month: a long history steps by several."""
    unit = TIME_AXIS_STEP[name]
    dates = [p for p in points if isinstance(p, dt.date)]
    if not dates:
        return base
    first, last = min(dates), max(dates)
    span = (last - first).days if unit == "day" else (last.year - first.year) * 12 + last.month - first.month
    step = max(1, -(-span // 12))
    x = {**base["encoding"]["x"]}
    x["axis"] = {**x["axis"], "tickCount": {"interval": unit, "step": step}, "grid": False}
    return {**base, "encoding": {**base["encoding"], "x": x}}


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chart_spec(name: str, result: QueryResult, width: int = 520) -> Spec | None:
    """The Vega-Lite spec for report `name` over its rows, or None when the report is a table."""
    base = CHARTS.get(name) or LISTENING_CHARTS.get(name)  # the listening reports' charts live with them
    if base is None:
        return None
    values = [{c: _plain(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows]
    if name == "artist_overlap":
        for v in values:
            v["pair"] = f"{_short(v['playlist_a'])} ↔ {_short(v['playlist_b'])}"
    if name in TIME_AXIS_STEP and values:
        base = _time_ticks(base, name, [row[0] for row in result.rows])
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "width": width,
        "height": 220 if name not in ("top_artists", "artist_overlap", "genre_mix") else {"step": 18},
        "data": {"values": values},
        **base,
        "config": {"font": "sans-serif", "view": {"stroke": None}, "axis": {"labelFontSize": 11, "titleFontSize": 12}},
    }


def render_svg(spec: Spec) -> str:
    try:
        import vl_convert
    except ImportError as exc:  # pragma: no cover - the reports extra is part of every install target
        raise ConfigError("charts need vl-convert", hint="pip install 'spotify-pipeline[reports]'") from exc
    return str(vl_convert.vegalite_to_svg(spec))
