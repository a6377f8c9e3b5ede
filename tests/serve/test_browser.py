"""The HTML report and the dashboard in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from playwright.sync_api import Browser, sync_playwright

from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.reports import LISTENING_ORDER, REPORT_ORDER
from spotify_pipeline.reports.charts import CHARTS
from spotify_pipeline.reports.html import build_html
from spotify_pipeline.serve.dashboard import Dashboard
from spotify_pipeline.serve.openapi import OPENAPI
from spotify_pipeline.tables.catalog import Catalog

from ..reports.conftest import CHROMIUM_ARGS, Lake

RAW_COLUMN = re.compile(r"\b[a-z]+_[a-z_]+\b")


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def watch(page: Any) -> tuple[list[str], list[str]]:
    """Collect console errors and every request that is not to this machine or a local file."""
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def check(request: Any) -> None:
        url = request.url
        if not (url.startswith(("file://", "data:", "about:")) or url.startswith("http://127.0.0.1")):
            outside.append(url)

    page.on("request", check)
    return errors, outside


SCREENSHOTS = os.environ.get("SPOTIFY_SCREENSHOTS_DIR")  # `make screenshots` sets docs/screenshots
AXE = Path(__file__).parents[1] / "vendor" / "axe.min.js"
WIDE, PHONE = {"width": 1400, "height": 1000}, {"width": 390, "height": 844}

# Elements that stick out of their card (section): each as "section id: tag.class (right edge > card's)".
OVERFLOW_JS = """() => {
  const out = [];
  for (const card of document.querySelectorAll("section, .stat")) {
    const box = card.getBoundingClientRect();
    for (const el of card.querySelectorAll("*")) {
      if (el.closest(".scroll") && !el.classList.contains("scroll")) continue;  // scrolls inside its box
      const r = el.getBoundingClientRect();
      if (r.width === 0 || getComputedStyle(el).display === "none" || el.closest(".static")) continue;
      if (r.right > box.right + 1 || r.left < box.left - 1) {
        out.push((card.id || card.className) + ": " + el.tagName.toLowerCase() + "." + el.getAttribute("class")
                 + " " + Math.round(r.left) + ".." + Math.round(r.right) + " vs " + Math.round(box.left) + ".."
                 + Math.round(box.right));
      }
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) out.push("page scrolls sideways");
  return out;
}"""


def shoot(page: Any, name: str, tmp_path: Path) -> Path:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
    return path


def accessibility_violations(page: Any) -> list[str]:
    """axe-core (vendored from npm, test-only) run in the page: serious and critical violations."""
    page.evaluate(
        AXE.read_text(encoding="utf-8") + ";0"
    )  # through DevTools: the dashboard's CSP allows no inline script
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))"
    )
    return list(found)


@pytest.fixture(scope="module")
def report_file(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with QueryEngine(Catalog(lake.path)) as engine:
        document = build_html(engine)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(document, encoding="utf-8")
    return path


def open_report(browser: Browser, report_file: Path, viewport: dict[str, int], scheme: str = "light") -> Any:
    context = browser.new_context(offline=True, viewport=viewport, color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    errors, outside = watch(page)
    page.goto(report_file.as_uri())
    page.wait_for_function(f"document.querySelectorAll('.chart.live-ok').length === {len(CHARTS)}", timeout=30_000)
    return context, page, errors, outside


def test_html_report_renders_offline(browser: Browser, report_file: Path, tmp_path: Path) -> None:
    context, page, errors, outside = open_report(browser, report_file, WIDE)
    for name in [name for name in REPORT_ORDER if name in CHARTS]:
        chart = page.locator(f'.chart[data-report="{name}"]')
        svg = chart.locator(".live svg")
        assert svg.count() == 1, name
        box = svg.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100, name
        assert chart.locator(".live svg path").count() > 3, name
        assert chart.locator(".static svg").count() == 1 and not chart.locator(".static").is_visible(), name
        assert chart.locator("button", has_text="CSV").count() == 1, name
    assert page.locator("section").count() == len(REPORT_ORDER)
    assert "Data as of" in page.locator("footer").inner_text()
    kpis = page.locator(".stat").all_inner_texts()
    assert any(k.endswith("playlists") for k in kpis)
    shoot(page, "report-1400-light", tmp_path)
    assert errors == [] and outside == []
    context.close()


def test_without_script_the_static_charts_show(browser: Browser, report_file: Path) -> None:
    context = browser.new_context(offline=True, java_script_enabled=False, viewport=WIDE)
    page = context.new_page()
    page.goto(report_file.as_uri())
    assert page.locator(".chart .static svg").count() == len(CHARTS)
    assert page.locator(".chart .static svg").first.is_visible()
    context.close()


def test_every_report_chart_shows_a_tooltip_on_hover(browser: Browser, report_file: Path) -> None:
    context, page, errors, _ = open_report(browser, report_file, WIDE)
    expected = {
        "song_length": "Explicit share",
        "artist_overlap": "Jaccard similarity",
        "top_artists": "Playlists",
        "playlist_growth": "Running total of items",
        "popularity_trend": "Average popularity",
    }
    for name in CHARTS:
        chart = page.locator(f'.chart[data-report="{name}"] .live')
        mark = chart.locator(".mark-rect path, .mark-symbol path").first
        mark.scroll_into_view_if_needed()
        mark.hover(force=True)
        tooltip = page.locator("#vg-tooltip-element")
        tooltip.wait_for(state="visible", timeout=5_000)
        text = tooltip.inner_text()
        assert text.strip(), name
        assert expected.get(name, "") in text, (name, text)
        assert not RAW_COLUMN.search(text), (name, text)
        page.mouse.move(0, 0)
    assert errors == []
    context.close()


@pytest.mark.parametrize(("viewport", "scheme"), [(WIDE, "light"), (WIDE, "dark"), (PHONE, "light"), (PHONE, "dark")])
def test_report_layout_fits_and_is_accessible(
    browser: Browser, report_file: Path, tmp_path: Path, viewport: dict[str, int], scheme: str
) -> None:
    context, page, errors, outside = open_report(browser, report_file, viewport, scheme)
    assert page.evaluate(OVERFLOW_JS) == []
    if viewport is WIDE:  # every table fits its card on a desktop: nothing clipped or scrolled
        for table in page.locator(".scroll").all():
            assert table.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), table.evaluate("e => e.innerHTML")[:300]
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(18, 18, 18)") == (scheme == "dark")
    shoot(page, f"report-{viewport['width']}-{scheme}", tmp_path)
    assert accessibility_violations(page) == []
    assert errors == [] and outside == []
    context.close()


@pytest.fixture
def dashboard(lake: Lake) -> Iterator[Dashboard]:
    server = Dashboard(lake.path, "127.0.0.1", 0).start()
    yield server
    server.stop()


def test_dashboard_picker_updates_the_charts(dashboard: Dashboard, browser: Browser, lake: Lake) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors, outside = watch(page)
    page.goto(dashboard.url)
    page.wait_for_selector('body[data-loaded-playlist=""]')
    everything = page.locator('[data-report="top_artists"] svg').inner_html()
    assert page.locator(".chart svg").count() == len(CHARTS)
    pid = lake.server.playlist_ids()[1]
    assert page.locator(f'#playlist option[value="{pid}"]').count() == 1
    page.select_option("#playlist", pid)
    page.wait_for_selector(f'body[data-loaded-playlist="{pid}"]')
    one = page.locator('[data-report="top_artists"] svg').inner_html()
    assert one != everything
    name = lake.rows(f"SELECT name FROM playlists WHERE playlist_id = '{pid}'")[0][0]
    top = lake.rows(
        "SELECT a.name FROM playlist_songs ps JOIN song_artists sa USING (song_id) JOIN artists a USING (artist_id) "
        f"WHERE ps.playlist_id = '{pid}' GROUP BY a.artist_id, a.name ORDER BY count(*) DESC, "
        "count(DISTINCT ps.playlist_id) DESC, a.name LIMIT 1"
    )[0][0]
    assert top.split("\n")[0] in one and name
    assert errors == [] and outside == []
    page.close()


def test_json_endpoints_follow_the_openapi_document(dashboard: Dashboard, lake: Lake) -> None:
    def validate(body: Any, path: str, status: str = "200") -> None:
        responses = next(iter(OPENAPI["paths"][path].values()))["responses"]
        schema = responses[status]["content"]["application/json"]["schema"]
        OAS31Validator({**schema, "components": OPENAPI["components"]}).validate(body)

    base = dashboard.url
    listing = httpx.get(f"{base}/api/reports").json()
    validate(listing, "/api/reports")
    assert [r["name"] for r in listing] == [*REPORT_ORDER, *LISTENING_ORDER]
    pid = lake.server.playlist_ids()[2]
    for name in REPORT_ORDER:
        for params in ({}, {"playlist": pid}):
            response = httpx.get(f"{base}/api/reports/{name}", params=params)
            assert response.status_code == 200, (name, response.text)
            validate(response.json(), "/api/reports/{name}")
    validate(httpx.get(f"{base}/api/playlists").json(), "/api/playlists")
    missing = httpx.get(f"{base}/api/reports/nope")
    assert missing.status_code == 404
    validate(missing.json(), "/api/reports/{name}", "404")
    bad = httpx.get(f"{base}/api/reports/top_artists", params={"playlist": "x'; DROP TABLE songs"})
    assert bad.status_code == 400
    validate(bad.json(), "/api/reports/{name}", "400")
    assert json.loads(httpx.get(f"{base}/openapi.json").text)["openapi"] == "3.1.0"
    validate(httpx.get(f"{base}/api/summary").json(), "/api/summary")
    validate(httpx.get(f"{base}/api/summary", params={"playlist": pid}).json(), "/api/summary")
    for name in CHARTS:
        chart = httpx.get(f"{base}/api/charts/{name}.json", params={"playlist": pid})
        validate(chart.json(), "/api/charts/{name}.json")
    songs = httpx.get(f"{base}/api/playlists/{pid}/songs", params={"q": "a", "sort": "popularity", "order": "desc"})
    validate(songs.json(), "/api/playlists/{id}/songs")
    assert songs.json()["playlist"]["playlist_id"] == pid
    popularity = [r["popularity"] for r in songs.json()["rows"] if r["popularity"] is not None]
    assert popularity == sorted(popularity, reverse=True)
    for params in ({"sort": "name; DROP TABLE songs"}, {"order": "sideways"}, {"limit": "100000"}, {"offset": "-1"}):
        assert httpx.get(f"{base}/api/playlists/{pid}/songs", params=params).status_code == 400, params
    assert httpx.get(f"{base}/api/playlists/x'--/songs").status_code == 400
    gone = httpx.get(f"{base}/api/playlists/{'0' * 22}/songs")
    assert gone.status_code == 404
    validate(gone.json(), "/api/playlists/{id}/songs", "404")
    assert httpx.get(f"{base}/static/../dashboard.py").status_code == 404
    assert httpx.get(f"{base}/static/vendor/vega.min.js").headers["content-type"].startswith("text/javascript")


def test_dashboard_is_read_only_and_survives_concurrency(dashboard: Dashboard) -> None:
    base = dashboard.url
    for method in ("POST", "PUT", "DELETE"):
        assert httpx.request(method, f"{base}/api/reports/top_artists").status_code == 405
    refused = httpx.get(f"{base}/api/query", params={"sql": "DELETE FROM songs"})
    assert refused.status_code == 400 and "only read queries" in refused.json()["error"]
    assert httpx.get(f"{base}/api/query", params={"sql": "COPY songs TO '/tmp/x.csv'"}).status_code == 400
    count = httpx.get(f"{base}/api/query", params={"sql": "SELECT count(*) AS n FROM songs"}).json()["rows"][0]["n"]

    def hit(i: int) -> tuple[int, Any]:
        name = REPORT_ORDER[i % len(REPORT_ORDER)]
        response = httpx.get(f"{base}/api/reports/{name}", timeout=30)
        return response.status_code, response.json()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(hit, range(64)))
    assert all(status == 200 for status, _ in results)
    first = {REPORT_ORDER[i % len(REPORT_ORDER)]: body for i, (_, body) in enumerate(results[: len(REPORT_ORDER)])}
    for i, (_, body) in enumerate(results):
        assert body == first[REPORT_ORDER[i % len(REPORT_ORDER)]]
    again = httpx.get(f"{base}/api/query", params={"sql": "SELECT count(*) AS n FROM songs"}).json()["rows"][0]["n"]
    assert again == count


def test_dashboard_binds_loopback_by_default(lake: Lake) -> None:
    server = Dashboard(lake.path, port=0)
    try:
        assert server.httpd.server_address[0] == "127.0.0.1"
    finally:
        server.httpd.server_close()


def open_dashboard(
    browser: Browser,
    dashboard: Dashboard,
    query: str = "",
    viewport: dict[str, int] | None = None,
    scheme: str = "light",
) -> tuple[Any, Any, list[str], list[str]]:
    context = browser.new_context(viewport=viewport or WIDE, color_scheme=scheme, accept_downloads=True)  # type: ignore[arg-type]
    page = context.new_page()
    errors, outside = watch(page)
    page.goto(dashboard.url + "/" + query)
    wait_ready(page)
    return context, page, errors, outside


def wait_ready(page: Any) -> None:
    """The page's state was read from its URL and everything it shows for that state is drawn."""
    # Polled from here: the page's CSP (no eval) stops Playwright's own wait_for_function.
    deadline = time.monotonic() + 30
    while not page.evaluate("document.body.dataset.ready === location.pathname + location.search"):
        assert time.monotonic() < deadline, "the page never finished drawing " + page.url
        page.wait_for_timeout(50)


def test_dashboard_state_is_in_the_url(browser: Browser, dashboard: Dashboard, lake: Lake) -> None:
    context, page, errors, outside = open_dashboard(browser, dashboard)
    pid = lake.server.playlist_ids()[1]
    page.select_option("#playlist", pid)
    wait_ready(page)
    assert f"playlist={pid}" in page.url
    page.fill("#from", "2026-11-02")
    page.dispatch_event("#from", "change")
    wait_ready(page)
    assert "from=2026-11-02" in page.url
    shared = page.url
    other = context.new_page()  # the shared link opens the same view
    other.goto(shared)
    wait_ready(other)
    assert other.input_value("#playlist") == pid and other.input_value("#from") == "2026-11-02"
    assert other.locator('[data-report="top_artists"] .chart svg').count() == 1
    page.go_back()
    wait_ready(page)
    assert "from=" not in page.url and page.input_value("#from") == ""
    assert errors == [] and outside == []
    context.close()


def test_time_range_narrows_the_reports_that_have_time(browser: Browser, dashboard: Dashboard) -> None:
    context, page, errors, _ = open_dashboard(browser, dashboard)
    assert page.locator('[data-report="popularity_trend"] .chart svg').count() == 1  # two days: a line
    context.close()
    context, page, errors, _ = open_dashboard(browser, dashboard, "?from=2026-11-02")
    note = page.locator("#popularity_trend .not-enough")
    assert "Not enough data yet" in note.inner_text()
    assert page.locator('[data-report="top_artists"] .chart svg').count() == 1  # no time: unchanged
    context.close()
    context, page, errors, _ = open_dashboard(browser, dashboard, "?to=2026-11-01")
    assert "No rows in this time range" in page.locator("#playlist_changes").inner_text()
    assert errors == []
    context.close()


def test_kpis_agree_with_the_playlist_table(browser: Browser, dashboard: Dashboard, lake: Lake) -> None:
    context, page, _, _ = open_dashboard(browser, dashboard)
    total = lake.rows("SELECT count(*) FROM playlists")[0][0]
    assert page.locator('[data-kpi="playlists"] b').inner_text() == str(total)
    assert page.locator("#playlist option").count() == total + 1  # and "All playlists"
    assert "UTC" in page.locator('[data-kpi="data as of"] b').inner_text()
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", page.locator("body").inner_text())  # no microseconds anywhere
    context.close()


def test_playlist_page_lists_its_songs_with_search_sort_paging_and_links(
    browser: Browser, dashboard: Dashboard, lake: Lake
) -> None:
    pid = max(
        lake.server.playlist_ids(),
        key=lambda p: lake.rows(f"SELECT count(*) FROM playlist_songs WHERE playlist_id = '{p}'")[0][0],
    )
    total = lake.rows(f"SELECT count(*) FROM playlist_songs WHERE playlist_id = '{pid}'")[0][0]
    assert total > 50
    context, page, errors, outside = open_dashboard(browser, dashboard, f"?view=playlist&playlist={pid}")
    rows = page.locator("#songs tbody tr")
    assert rows.count() == 50 and page.locator("#range").inner_text() == f"1–50 of {total}"
    assert page.locator('#songs a[href^="https://open.spotify.com/playlist/"]').count() == 1
    tracks = page.locator('#songs tbody a[href^="https://open.spotify.com/track/"]')
    assert tracks.count() >= 40
    assert tracks.first.get_attribute("rel") == "noopener noreferrer"
    page.click("#next")
    wait_ready(page)
    assert "page=2" in page.url and rows.count() == min(50, total - 50)
    page.click('button[data-sort="name"]')
    wait_ready(page)
    assert "sort=name" in page.url and "page=" not in page.url
    names = lake.rows(
        "SELECT coalesce(s.name, ps.item_name) AS n FROM playlist_songs ps LEFT JOIN songs s USING (song_id) "
        f"WHERE ps.playlist_id = '{pid}' ORDER BY lower(n) NULLS LAST, ps.position LIMIT 3"
    )
    shown = [
        rows.nth(i).locator("td").nth(1).evaluate("td => td.firstChild ? td.firstChild.textContent : ''")
        for i in range(3)
    ]
    assert shown == [n for (n,) in names]
    artist = lake.rows(
        "SELECT a.name FROM playlist_songs ps JOIN song_artists sa USING (song_id) JOIN artists a USING (artist_id) "
        f"WHERE ps.playlist_id = '{pid}' GROUP BY a.name ORDER BY count(*) LIMIT 1"
    )[0][0]
    page.fill("#search", artist)
    page.wait_for_url(re.compile(r"q="))
    wait_ready(page)
    assert 0 < rows.count() < total
    for i in range(rows.count()):
        assert artist.lower() in rows.nth(i).inner_text().lower()
    reloaded = context.new_page()
    reloaded.goto(page.url)
    wait_ready(reloaded)
    assert reloaded.input_value("#search") == artist and reloaded.locator("#songs tbody tr").count() == rows.count()
    assert errors == [] and outside == []
    context.close()


def test_dashboard_charts_have_tooltips_and_downloads(browser: Browser, dashboard: Dashboard) -> None:
    context, page, errors, outside = open_dashboard(browser, dashboard)
    chart = page.locator('[data-report="song_length"]')
    mark = chart.locator(".mark-rect path").first
    mark.hover(force=True)
    tooltip = page.locator("#vg-tooltip-element")
    tooltip.wait_for(state="visible", timeout=5_000)
    assert "Explicit share" in tooltip.inner_text()
    with page.expect_download() as csv_download:
        chart.locator("button", has_text="CSV").click()
    text = Path(csv_download.value.path()).read_text(encoding="utf-8")
    assert text.startswith("minutes,songs,explicit_share") and len(text.splitlines()) > 2
    assert csv_download.value.suggested_filename == "song_length.csv"
    with page.expect_download() as png_download:
        chart.locator("button", has_text="PNG").click()
    assert Path(png_download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert errors == [] and outside == []
    context.close()


@pytest.mark.parametrize("view", ["overview", "playlists", "playlist"])
@pytest.mark.parametrize(("viewport", "scheme"), [(WIDE, "light"), (WIDE, "dark"), (PHONE, "light"), (PHONE, "dark")])
def test_dashboard_pages_fit_and_are_accessible(
    browser: Browser,
    dashboard: Dashboard,
    lake: Lake,
    tmp_path: Path,
    view: str,
    viewport: dict[str, int],
    scheme: str,
) -> None:
    query = {
        "overview": "",
        "playlists": "?view=playlists",
        "playlist": f"?view=playlist&playlist={lake.server.playlist_ids()[0]}",
    }
    context, page, errors, outside = open_dashboard(browser, dashboard, query[view], viewport, scheme)
    assert page.locator("section").count() >= 1
    assert page.evaluate(OVERFLOW_JS) == []
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(18, 18, 18)") == (scheme == "dark")
    shoot(page, f"dashboard-{view}-{viewport['width']}-{scheme}", tmp_path)
    assert accessibility_violations(page) == []
    assert errors == [] and outside == []
    context.close()
