"""The HTML report and the dashboard in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from playwright.sync_api import Browser, sync_playwright

from spotify_pipeline.catalog import Catalog
from spotify_pipeline.dashboard import OPENAPI, Dashboard
from spotify_pipeline.query import QueryEngine
from spotify_pipeline.reports import REPORT_ORDER
from spotify_pipeline.reports.charts import CHARTS
from spotify_pipeline.reports.html import build_html

from .conftest import CHROMIUM_ARGS, Lake


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


def test_html_report_renders_offline(lake: Lake, browser: Browser, tmp_path: Path) -> None:
    with QueryEngine(Catalog(lake.path)) as engine:
        document = build_html(engine)
    report = tmp_path / "report.html"
    report.write_text(document, encoding="utf-8")
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors, outside = watch(page)
    page.goto(report.as_uri())
    charts = [name for name in REPORT_ORDER if name in CHARTS]
    for name in charts:
        svg = page.locator(f'.chart[data-report="{name}"] svg')
        assert svg.count() == 1, name
        box = svg.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100, name
        assert (
            page.locator(f'.chart[data-report="{name}"] svg path, .chart[data-report="{name}"] svg rect').count() > 3
        ), name
    assert page.locator("section").count() == len(REPORT_ORDER)
    assert "Data as of" in page.locator("footer").inner_text()
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
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
    assert [r["name"] for r in listing] == list(REPORT_ORDER)
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
    first = {REPORT_ORDER[i % len(REPORT_ORDER)]: body for i, (_, body) in enumerate(results[:10])}
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
