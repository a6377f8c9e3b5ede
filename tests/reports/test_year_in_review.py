"""The year in review in a real headless Chromium, offline, and the listening reports through `serve`."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from spotify_pipeline.serve.dashboard import Dashboard

from ..conftest import cli
from ..history import listening_data
from ..history.listening_data import Listen
from ..serve.test_browser import watch
from .conftest import CHROMIUM_ARGS


@pytest.fixture(scope="module")
def listening_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Listen]]]:
    listens = listening_data.generate(seed=8, count=1500)
    yield listening_data.import_lake(tmp_path_factory.mktemp("year"), listens), listens


def test_year_in_review_opens_offline_with_no_console_errors(
    listening_lake: tuple[Path, list[Listen]], chromium: str, tmp_path: Path
) -> None:
    lake, listens = listening_lake
    out = tmp_path / "wrapped-2025.html"
    result = cli("report", "--lake", str(lake), "--year", "2025", "--out", str(out))
    assert result.returncode == 0, result.stderr
    year = [x for x in listens if x.ts.year == 2025 and not x.incognito]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
        page = context.new_page()
        errors, outside = watch(page)
        page.goto(out.as_uri())
        assert page.locator("h1").inner_text() == "Your 2025 in music"
        stats = page.locator(".stat").all_inner_texts()
        assert f"{sum(x.ms for x in year) / 60000:,.0f}\nminutes listened" in stats
        assert f"{sum(x.play for x in year):,}\nplays" in stats
        for kind in ("artist", "song", "album"):
            assert page.locator(f'ol[data-top="{kind}"] li').count() == 5, kind
        for name in ("listening_time", "listening_heatmap", "new_artists", "skip_rate"):
            svg = page.locator(f'.chart[data-report="{name}"] svg')
            assert svg.count() == 1, name
            box = svg.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 100, name
        # the heatmap: one rect per (weekday, hour) cell that has listens
        cells = {(x.ts.isoweekday(), x.ts.hour) for x in year}
        rects = page.locator('.chart[data-report="listening_heatmap"] svg path[aria-roledescription="rect mark"]')
        assert rects.count() == len(cells)
        shot = tmp_path / "wrapped.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        if os.environ.get("SPOTIFY_PIPELINE_DOCS_SCREENSHOT"):  # refresh the README's picture
            shutil.copy(shot, os.environ["SPOTIFY_PIPELINE_DOCS_SCREENSHOT"])
        assert errors == [] and outside == []
        context.close()
        browser.close()


def test_listening_reports_through_serve(listening_lake: tuple[Path, list[Listen]]) -> None:
    lake, listens = listening_lake
    server = Dashboard(lake, "127.0.0.1", 0).start()
    try:
        base = server.url.rstrip("/")
        got = httpx.get(f"{base}/api/reports/listening_time", params={"period": "year", "from": "2025-01-01"})
        assert got.status_code == 200, got.text
        rows = got.json()["rows"]
        since = [x for x in listens if x.ts.date() >= dt.date(2025, 1, 1) and not x.incognito]
        by_year = {y: sum(x.play for x in since if x.ts.year == y) for y in {x.ts.year for x in since}}
        assert {r["period_start"][:4]: r["plays"] for r in rows} == {str(y): n for y, n in by_year.items()}
        svg = httpx.get(f"{base}/api/charts/listening_heatmap.svg", params={"from": "2025-01-01", "to": "2025-12-31"})
        assert svg.status_code == 200 and svg.text.startswith("<svg")
        bad = httpx.get(f"{base}/api/reports/listening_time", params={"from": "2025-01-01' OR 1=1 --"})
        assert bad.status_code == 400 and "from" in bad.json()["error"]
    finally:
        server.stop()
