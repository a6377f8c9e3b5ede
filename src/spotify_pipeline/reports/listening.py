"""The listening reports' charts, and the listening page: `report --year 2025` (a year in review) or any
period (`report --from/--to`). One self-contained HTML file, like the playlist report: inline CSS and SVG
charts rendered offline by vl-convert, no script, no network."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from ..query.engine import QueryEngine, QueryResult
from . import get_report, run_report

COLOR = "#1DB954"
Spec = dict[str, Any]


TITLES = {
    "minutes": "Minutes",
    "plays": "Plays",
    "artist": "Artist",
    "label": "Song or album",
    "period_start": "Period",
    "month": "Month",
    "skip_rate": "Skip rate",
    "new_artists": "New artists",
    "day": "Weekday",
    "hour": "Hour of day (UTC)",
}
COUNT_AXIS: dict[str, Any] = {"format": ",d", "tickMinStep": 1}


def _tip(field: str, **extra: Any) -> dict[str, Any]:
    return {"field": field, "title": TITLES.get(field, field), **extra}


def _bars(y: str, label: str, *, calculate: str | None = None) -> Spec:
    spec: Spec = {
        "mark": {"type": "bar", "color": COLOR, "tooltip": True},
        "encoding": {
            "y": {"field": label, "type": "nominal", "sort": "-x", "title": None},
            "x": {"field": y, "type": "quantitative", "title": TITLES[y], "axis": COUNT_AXIS},
            "tooltip": [_tip(label), _tip("minutes", format=",d"), _tip("plays", format=",d")],
        },
    }
    if calculate:
        spec["transform"] = [{"calculate": calculate, "as": label}]
    return spec


def _over_time(x: str, y: str, mark: str = "bar", unit: str = "yearmonth") -> Spec:
    """Bars: one band per period (ordinal, labelled by `unit`); a line: a temporal axis."""
    axis: dict[str, Any] = {"field": x, "title": TITLES.get(x)}
    axis.update({"type": "temporal"} if mark == "line" else {"type": "ordinal", "timeUnit": unit})
    share = mark == "line"
    return {
        "mark": {"type": mark, "color": COLOR, "tooltip": True, **({"point": True} if share else {})},
        "encoding": {
            "x": axis,
            "y": {
                "field": y,
                "type": "quantitative",
                "title": TITLES.get(y, y),
                "axis": {"format": ".0%"} if share else COUNT_AXIS,
            },
            "tooltip": [
                _tip(x, type="temporal", timeUnit=f"utc{unit}" if not share else "utcyearmonth"),
                _tip(y, format=".1%" if share else ",d"),
            ],
        },
    }


HEATMAP: Spec = {
    "height": 200,
    "width": 480,
    "mark": {"type": "rect", "tooltip": True},
    "encoding": {
        "x": {"field": "hour", "type": "ordinal", "title": "Hour of day (UTC)", "axis": {"labelAngle": 0}},
        "y": {
            "field": "day",
            "type": "ordinal",
            "sort": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
            "title": None,
        },
        "color": {"field": "minutes", "type": "quantitative", "scale": {"scheme": "greens"}, "title": "Minutes"},
        "tooltip": [_tip("day"), _tip("hour"), _tip("minutes", format=",d"), _tip("plays", format=",d")],
    },
}

LISTENING_CHARTS: dict[str, Spec] = {
    "listening_time": _over_time("period_start", "minutes", unit="yearmonthdate"),
    "top_listened_artists": _bars("minutes", "artist"),
    "top_listened_songs": _bars("minutes", "label", calculate="datum.song + ' · ' + datum.artist"),
    "top_listened_albums": _bars("minutes", "label", calculate="datum.album + ' · ' + datum.artist"),
    "listening_heatmap": HEATMAP,
    "skip_rate": _over_time("month", "skip_rate", "line"),
    "new_artists": _over_time("month", "new_artists"),
}

TOP = 5


def _chart(name: str, result: QueryResult) -> str:
    from .charts import chart_spec, render_svg
    from .html import table_html

    spec = chart_spec(name, result)
    if spec is None or not result.rows:
        return table_html(result)
    return f'<div class="chart" data-report="{name}">{render_svg(spec)}</div>'


def _top_list(result: QueryResult, kind: str) -> str:
    if not result.rows:
        return '<p class="empty">No listens.</p>'
    items = []
    for row in result.rows[:TOP]:
        values = dict(zip(result.columns, row, strict=True))
        name = html.escape(str(values[kind]))
        by = f" <small>{html.escape(str(values['artist']))}</small>" if kind != "artist" else ""
        items.append(f"<li><span>{name}{by}</span><b>{values['minutes']:,.0f} min</b> · {values['plays']:,} plays</li>")
    return f'<ol class="top" data-top="{kind}">{"".join(items)}</ol>'


def listening_summary(engine: QueryEngine, params: dict[str, str]) -> dict[str, Any]:
    """Totals over the period: minutes, plays, most-played day, skip rate, new artists (all from the reports)."""
    total = run_report(engine, "listening_time", {**params, "period": "year"}).rows
    days = run_report(engine, "listening_time", {**params, "period": "day"}).rows
    skips = run_report(engine, "skip_rate", params).rows
    new = run_report(engine, "new_artists", params).rows
    top_day = max(days, key=lambda r: (r[1], r[2]), default=None)
    listened = sum(r[1] for r in skips)
    return {
        "minutes": sum(r[1] for r in total),
        "plays": sum(r[2] for r in total),
        "days": len(days),
        "top_day": top_day,
        "skip_rate": sum(r[2] for r in skips) / listened if listened else None,
        "new_artists": sum(r[1] for r in new),
    }


PAGE_STYLE = """
ol.top { margin: 0; padding-left: 22px; } ol.top li { margin: 6px 0; font-size: 15px; }
ol.top li span { display: inline-block; min-width: 60%; } ol.top small { color: #666; }
ol.top b { color: #1DB954; margin-right: 4px; }
.note { padding: 0 32px; color: #555; font-size: 13px; }
"""


def build_listening_html(
    engine: QueryEngine,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    user: str | None = None,
    include_incognito: bool = False,
    title: str | None = None,
) -> str:
    """The listening page for [start, end] (inclusive UTC dates; None = unbounded) as one HTML document."""
    from .html import STYLE

    params: dict[str, str] = {"include_incognito": "true" if include_incognito else "false"}
    if start:
        params["from"] = start.isoformat()
    if end:
        params["to"] = end.isoformat()
    if user:
        params["user"] = user
    get_report("listening_time").render(params)  # validates the parameters before any work
    info = listening_summary(engine, params)
    period = "month" if not start or not end or (end - start).days > 62 else "day"
    sections = []
    tops = (("top_listened_artists", "artist"), ("top_listened_songs", "song"), ("top_listened_albums", "album"))
    for name, kind in tops:
        heading = {"artist": "Top artists", "song": "Top songs", "album": "Top albums"}[kind]
        sections.append(
            f'<section id="{name}"><h2>{heading}</h2>'
            f'<p class="desc">By minutes listened.</p>{_top_list(run_report(engine, name, params), kind)}</section>'
        )
    for name, heading, extra in (
        ("listening_time", f"Listening by {period}", {"period": period}),
        ("listening_heatmap", "When you listen", {}),
        ("new_artists", "New artists discovered", {}),
        ("skip_rate", "Skip rate", {}),
    ):
        description = get_report(name).description
        body = _chart(name, run_report(engine, name, {**params, **extra}))
        sections.append(
            f'<section id="{name}"><h2>{html.escape(heading)}</h2>'
            f'<p class="desc">{html.escape(description)}</p>{body}</section>'
        )
    top_day = info["top_day"]
    skip = f"{info['skip_rate']:.1%}" if info["skip_rate"] is not None else "n/a"
    stats = [
        (f"{info['minutes']:,.0f}", "minutes listened"),
        (f"{info['plays']:,}", "plays"),
        (f"{info['new_artists']:,}", "new artists"),
        (
            top_day[0].isoformat() if top_day else "n/a",
            "most-played day" + (f" ({top_day[1]:,.0f} min)" if top_day else ""),
        ),
        (skip, "skip rate"),
    ]
    stat_html = "".join(
        f'<div class="stat" data-stat="{i}"><b>{html.escape(v)}</b>{html.escape(label)}</div>'
        for i, (v, label) in enumerate(stats)
    )
    span = f"{start or 'the beginning'} to {end or 'now'}"
    heading = title or f"Listening, {span}"
    who = f"User {html.escape(user)}. " if user else ""
    incognito = (
        "Incognito listens are included."
        if include_incognito
        else "Incognito listens are left out (include them with --include-incognito)."
    )
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(heading)}</title><link rel="icon" href="data:,"><style>{STYLE}{PAGE_STYLE}</style></head>
<body><header><h1>{html.escape(heading)}</h1><p>{html.escape(span)} (UTC days)</p></header>
<div class="summary">{stat_html}</div>
<p class="note">{who}{incognito} Minutes count what the data download records; plays are listens of 30 s or more.</p>
<main>{"".join(sections)}</main>
<footer>Report generated {generated} by spotify-pipeline from the listens table.</footer>
</body></html>
"""
