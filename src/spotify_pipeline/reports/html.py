"""`spotify-pipeline report`: one self-contained HTML file (inline CSS and SVG charts, no network)."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from ..query import QueryEngine, QueryResult
from . import REPORT_ORDER, all_reports, run_report
from .charts import chart_spec, render_svg

MAX_TABLE_ROWS = 25
STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #191414;
       background: #fafafa; }
header { background: #191414; color: #fff; padding: 24px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; } header p { margin: 0; color: #b3b3b3; }
.summary { display: flex; gap: 16px; padding: 16px 32px; flex-wrap: wrap; }
.stat { background: #fff; border-radius: 8px; padding: 12px 18px; box-shadow: 0 1px 3px rgba(0,0,0,.1); }
.stat b { display: block; font-size: 22px; color: #1DB954; }
main { padding: 0 32px 32px; display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 16px; }
section { background: #fff; border-radius: 8px; padding: 16px 20px; box-shadow: 0 1px 3px rgba(0,0,0,.1);
          overflow-x: auto; }
section h2 { margin: 0 0 4px; font-size: 17px; } section p.desc { margin: 0 0 12px; color: #555; font-size: 13px; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eee; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { padding: 16px 32px; color: #666; font-size: 12px; }
.empty { color: #888; font-style: italic; }
"""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def table_html(result: QueryResult, limit: int = MAX_TABLE_ROWS) -> str:
    if not result.rows:
        return '<p class="empty">No rows.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in result.columns)
    body = []
    for row in result.rows[:limit]:
        cells = []
        for value in row:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cells.append(f"<td{' class=num' if numeric else ''}>{html.escape(_cell(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="empty">{len(result.rows) - limit} more rows not shown.</p>' if len(result.rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def summary(engine: QueryEngine, playlist: str | None) -> dict[str, Any]:
    where = "" if not playlist else f" WHERE playlist_id = '{playlist}'"
    counts = engine.execute(
        f"SELECT count(DISTINCT playlist_id), count(*), count(DISTINCT song_id) FROM playlist_songs{where}"
    ).rows[0]
    artists = engine.execute(
        "SELECT count(DISTINCT sa.artist_id) FROM playlist_songs ps JOIN song_artists sa USING (song_id)"
        + where.replace("playlist_id", "ps.playlist_id")
    ).rows[0][0]
    fresh = engine.execute("SELECT max(extracted_at) FROM playlists").rows[0][0]
    last = engine.execute("SELECT run_id, status, finished_at FROM pipeline_runs ORDER BY started_at DESC LIMIT 1").rows
    name = None
    if playlist:
        found = engine.execute(f"SELECT name FROM playlists WHERE playlist_id = '{playlist}'").rows
        name = found[0][0] if found else playlist
    return {
        "playlists": counts[0],
        "items": counts[1],
        "songs": counts[2],
        "artists": artists,
        "fresh": fresh,
        "last_run": last[0] if last else None,
        "playlist_name": name,
    }


def build_html(engine: QueryEngine, playlist: str | None = None) -> str:
    """The whole report as one HTML document."""
    from ..ids import parse_playlist_ref

    playlist = parse_playlist_ref(playlist) if playlist else None
    params = {"playlist": playlist} if playlist else {}
    reports = all_reports()
    info = summary(engine, playlist)
    sections = []
    for name in REPORT_ORDER:
        report = reports[name]
        result = run_report(engine, name, params)
        spec = chart_spec(name, result)
        if spec is not None and result.rows:
            body = f'<div class="chart" data-report="{name}">{render_svg(spec)}</div>'
        else:
            body = table_html(result)
        sections.append(
            f'<section id="{name}"><h2>{html.escape(report.title)}</h2>'
            f'<p class="desc">{html.escape(report.description)}</p>{body}</section>'
        )
    scope = f"Playlist: {html.escape(str(info['playlist_name']))}" if playlist else "All playlists"
    last = info["last_run"]
    run_text = f"run {html.escape(last[0])} ({html.escape(last[1])})" if last else "no run recorded"
    fresh = info["fresh"].strftime("%Y-%m-%d %H:%M UTC") if info["fresh"] else "unknown"
    stats = "".join(
        f'<div class="stat"><b>{info[key]:,}</b>{label}</div>'
        for key, label in (
            ("playlists", "playlists"),
            ("items", "playlist items"),
            ("songs", "songs"),
            ("artists", "artists"),
        )
    )
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Spotify playlists report</title><link rel="icon" href="data:,"><style>{STYLE}</style></head>
<body><header><h1>Spotify playlists report</h1><p>{scope}</p></header>
<div class="summary">{stats}</div>
<main>{"".join(sections)}</main>
<footer>Data as of {fresh}, produced by {run_text}. Report generated {generated} by spotify-pipeline.</footer>
</body></html>
"""
