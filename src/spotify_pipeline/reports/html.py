"""`spotify-pipeline report`: one self-contained HTML file (inline CSS and SVG charts, no network)."""

from __future__ import annotations

import datetime as dt
import html
import json
from importlib import resources
from typing import Any

from ..query.engine import QueryEngine, QueryResult
from . import LISTENING_ORDER, REPORT_ORDER, all_reports, run_report
from .charts import chart_spec, not_enough_data, render_svg, title

MAX_TABLE_ROWS = 25
LONG_TEXT = 40  # cells longer than this wrap instead of widening the table
VENDOR = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "vega-interpreter.js")
STYLE = """
:root { color-scheme: light dark; --bg: #fafafa; --card: #fff; --text: #191414; --muted: #555; --line: #eee;
        --accent: #127a3a; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #121212; --card: #1e1e1e; --text: #eee; --muted: #b3b3b3; --line: #333; --accent: #1ed760; }
}
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; color: var(--text);
       background: var(--bg); }
header { background: #191414; color: #fff; padding: 24px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; } header p { margin: 0; color: #b3b3b3; }
.summary { display: flex; gap: 16px; padding: 16px 32px; flex-wrap: wrap; }
.stat { background: var(--card); border-radius: 8px; padding: 12px 18px; box-shadow: 0 1px 3px rgba(0,0,0,.1); }
.stat b { display: block; font-size: 22px; color: var(--accent); }
main { padding: 0 32px 32px; display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 560px), 1fr));
       gap: 16px; }
section { background: var(--card); border-radius: 8px; padding: 16px 20px; box-shadow: 0 1px 3px rgba(0,0,0,.1);
          min-width: 0; }
section.wide { grid-column: 1 / -1; }
section h2 { margin: 0 0 4px; font-size: 17px; }
section p.desc { margin: 0 0 12px; color: var(--muted); font-size: 13px; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); white-space: nowrap;
         vertical-align: top; }
td.long { white-space: normal; overflow-wrap: anywhere; min-width: 12em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { padding: 16px 32px; color: var(--muted); font-size: 12px; }
.empty { color: var(--muted); font-style: italic; }
.chart .static svg { max-width: 100%; height: auto; }
.chart.live-ok .static { display: none; }
.chart .live { width: 100%; }
.chart-tools { display: flex; gap: 6px; justify-content: flex-end; margin-bottom: 4px; }
.chart-tools button { font-size: 12px; padding: 2px 8px; border: 1px solid var(--line); border-radius: 4px;
                      background: var(--card); color: var(--text); cursor: pointer; }
a { color: var(--accent); }
@media (max-width: 600px) {
  header, .summary, footer { padding-left: 12px; padding-right: 12px; } main { padding: 0 12px 16px; }
  section { padding: 12px; }
}
"""
INIT = """
document.documentElement.classList.add("js");
document.querySelectorAll("script.spec").forEach(node => {
  const name = node.dataset.for;
  const chart = document.querySelector('.chart[data-report="' + name + '"]');
  window.spCharts.render(chart.querySelector(".live"), JSON.parse(node.textContent), name)
    .then(() => chart.classList.add("live-ok"))
    .catch(err => console.warn("interactive chart unavailable, static SVG shown:", name, err));
});
"""


def ordered_reports(reports: dict[str, Any]) -> list[str]:
    """The playlist reports (REPORT_ORDER), the listening reports (LISTENING_ORDER), then any other shipped SQL
    file by name: what the dashboard lists."""
    known = (*REPORT_ORDER, *LISTENING_ORDER)
    return [n for n in known if n in reports] + sorted(set(reports) - set(known))


def _script_json(value: Any) -> str:
    """JSON that can sit inside a <script> element: no `</script>`, no `<!--`."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def runtime_scripts() -> str:
    """The vendored Vega runtime and charts.js as inline <script> elements (the report is one file)."""
    web = resources.files("spotify_pipeline").joinpath("web")
    parts = [web.joinpath("vendor", f).read_text(encoding="utf-8") for f in VENDOR]
    parts.append(web.joinpath("charts.js").read_text(encoding="utf-8"))
    parts.append(INIT)
    safe = [p.replace("</script", "<\\/script") for p in parts]
    return "".join(f"<script>{p}</script>\n" for p in safe)


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
    head = "".join(f"<th>{html.escape(title(c))}</th>" for c in result.columns)
    body = []
    for row in result.rows[:limit]:
        cells = []
        for value in row:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            text = _cell(value)
            kind = " class=num" if numeric else " class=long" if len(text) > LONG_TEXT else ""
            cells.append(f"<td{kind}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="empty">{len(result.rows) - limit} more rows not shown.</p>' if len(result.rows) > limit else ""
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll" tabindex="0" role="region" aria-label="Table">{table}</div>{more}'


def summary(engine: QueryEngine, playlist: str | None) -> dict[str, Any]:
    where = "" if not playlist else f" WHERE playlist_id = '{playlist}'"
    counts = engine.execute(
        f"SELECT count(DISTINCT playlist_id), count(*), count(DISTINCT song_id) FROM playlist_songs{where}"
    ).rows[0]
    # Every playlist counts, an empty one too (its items are 0): the same number as the playlist table.
    playlists = engine.execute(f"SELECT count(*) FROM playlists{where}").rows[0][0]
    artists = engine.execute(
        "SELECT count(DISTINCT sa.artist_id) FROM playlist_songs ps JOIN song_artists sa USING (song_id)"
        + where.replace("playlist_id", "ps.playlist_id")
    ).rows[0][0]
    # The newest playlist change, or the last run that checked the playlists and found them unchanged (a
    # check that finds nothing new moves no playlist's `extracted_at`).
    fresh = engine.execute(
        "SELECT greatest((SELECT max(extracted_at) FROM playlists), (SELECT max(finished_at) FROM pipeline_runs "
        "WHERE playlists_checked > 0 AND status IN ('succeeded', 'partial')))"
    ).rows[0][0]
    last = engine.execute("SELECT run_id, status, finished_at FROM pipeline_runs ORDER BY started_at DESC LIMIT 1").rows
    name = None
    if playlist:
        found = engine.execute(f"SELECT name FROM playlists WHERE playlist_id = '{playlist}'").rows
        name = found[0][0] if found else playlist
    return {
        "playlists": playlists,
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
    # The playlist reports: listening history has its own page (`report --year`, reports/listening.py).
    for name in [n for n in ordered_reports(reports) if n not in LISTENING_ORDER]:
        report = reports[name]
        result = run_report(engine, name, params)
        spec = chart_spec(name, result)
        missing = not_enough_data(name, result) if spec is not None else None
        if spec is not None and missing is None:
            body = (
                f'<div class="chart" data-report="{name}"><div class="live"></div>'
                f'<div class="static">{render_svg(spec)}</div></div>'
                f'<script type="application/json" class="spec" data-for="{name}">{_script_json(spec)}</script>'
            )
        elif spec is not None:
            body = f'<p class="empty not-enough" data-report="{name}">{html.escape(str(missing))}</p>' + (
                table_html(result) if result.rows else ""
            )
        else:
            body = table_html(result)
        sections.append(
            f'<section id="{name}"{" class=wide" if spec is None else ""}><h2>{html.escape(report.title)}</h2>'
            f'<p class="desc">{html.escape(report.description)}</p>{body}</section>'
        )
    scope = f"Playlist: {html.escape(str(info['playlist_name']))}" if playlist else "All playlists"
    last = info["last_run"]
    run_text = f"run {html.escape(last[0])} ({html.escape(last[1])})" if last else "no run recorded"
    fresh = info["fresh"].strftime("%Y-%m-%d %H:%M UTC") if info["fresh"] else "unknown"
    stats = f'<div class="stat"><b>{html.escape(fresh)}</b>data as of</div>' + "".join(
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
<footer>Data as of {fresh}, produced by {run_text}. Report generated {generated} by spotify-pipeline.
Charts are interactive (hover for values, CSV and PNG downloads); without scripts they show as static images.</footer>
{runtime_scripts()}</body></html>
"""
