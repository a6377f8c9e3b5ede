"""One chart per report that has one: Vega-Lite specs, rendered to SVG offline by vl-convert."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from ..errors import ConfigError
from ..query import QueryResult
from .listening import LISTENING_CHARTS

COLOR = "#1DB954"
Spec = dict[str, Any]


def _bar(x: str, y: str, *, horizontal: bool = False, tooltip: tuple[str, ...] = ()) -> Spec:
    if horizontal:
        encoding = {
            "y": {"field": y, "type": "nominal", "sort": "-x", "title": None},
            "x": {"field": x, "type": "quantitative"},
        }
    else:
        encoding = {"x": {"field": x, "type": "ordinal", "sort": None}, "y": {"field": y, "type": "quantitative"}}
    encoding["tooltip"] = [{"field": f} for f in (x, y, *tooltip)]
    return {"mark": {"type": "bar", "color": COLOR}, "encoding": encoding}


def _line(x: str, y: str) -> Spec:
    return {
        "mark": {"type": "line", "point": True, "color": COLOR},
        "encoding": {
            "x": {"field": x, "type": "temporal"},
            "y": {"field": y, "type": "quantitative"},
            "tooltip": [{"field": x, "type": "temporal"}, {"field": y}],
        },
    }


CHARTS: dict[str, Spec] = {
    "top_artists": _bar("appearances", "artist", horizontal=True, tooltip=("playlists",)),
    "genre_mix": _bar("items", "genre", horizontal=True),
    "release_decades": _bar("decade", "songs"),
    "song_length": _bar("minutes", "songs", tooltip=("explicit_share",)),
    "popularity_distribution": _bar("popularity_band", "songs"),
    "popularity_trend": _line("day", "avg_popularity"),
    "playlist_growth": _line("month", "total_items"),
    "artist_overlap": _bar("shared_artists", "pair", horizontal=True, tooltip=("jaccard",)),
}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def chart_spec(name: str, result: QueryResult, width: int = 520) -> Spec | None:
    """The Vega-Lite spec for report `name` over its rows, or None when the report is a table."""
    base = CHARTS.get(name) or LISTENING_CHARTS.get(name)  # the listening reports' charts live with them
    if base is None:
        return None
    values = [{c: _plain(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows]
    if name == "artist_overlap":
        for v in values:
            v["pair"] = f"{v['playlist_a']} + {v['playlist_b']}"
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": width,
        "height": 220,
        "data": {"values": values},
        **base,
        "config": {"font": "sans-serif", "view": {"stroke": None}},
    }


def render_svg(spec: Spec) -> str:
    try:
        import vl_convert
    except ImportError as exc:  # pragma: no cover - the reports extra is part of every install target
        raise ConfigError("charts need vl-convert", hint="pip install 'spotify-pipeline[reports]'") from exc
    return str(vl_convert.vegalite_to_svg(spec))
