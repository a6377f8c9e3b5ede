"""The dashboard of a lake with listening history, in a real headless Chromium: the listening reports get the
same treatment as the playlist ones (issue #21): every chart drawn, tooltips with human titles on hover,
nothing overflowing its card at 1400 and 390 px in light and dark mode, no console error, no request
leaving the machine, no serious accessibility violation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from spotify_pipeline.reports import LISTENING_ORDER
from spotify_pipeline.serve.dashboard import Dashboard

from ..history import listening_data
from .test_browser import OVERFLOW_JS, PHONE, WIDE, accessibility_violations, browser, open_dashboard, shoot

__all__ = ["browser"]  # the module-scoped browser fixture, shared with test_browser.py


@pytest.fixture(scope="module")
def listening_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    listens = listening_data.generate(seed=9, count=1200)
    lake = listening_data.import_lake(tmp_path_factory.mktemp("listening-dashboard"), listens)
    server = Dashboard(lake, "127.0.0.1", 0).start()
    yield server
    server.stop()


def drawn_charts(page: Any) -> set[str]:
    return set(
        page.evaluate(
            "[...document.querySelectorAll('section .chart svg, section .chart canvas')]"
            ".map(n => n.closest('section').dataset.report)"
        )
    )


@pytest.mark.parametrize(("viewport", "scheme"), [(WIDE, "light"), (WIDE, "dark"), (PHONE, "light"), (PHONE, "dark")])
def test_listening_reports_draw_and_fit(
    browser: Browser, listening_dashboard: Dashboard, tmp_path: Path, viewport: dict[str, int], scheme: str
) -> None:
    context, page, errors, outside = open_dashboard(browser, listening_dashboard, "", viewport, scheme)
    assert set(LISTENING_ORDER) <= drawn_charts(page)
    assert page.evaluate(OVERFLOW_JS) == []
    shoot(page, f"dashboard-listening-{viewport['width']}-{scheme}", tmp_path)
    assert accessibility_violations(page) == []
    assert errors == [] and outside == []
    context.close()


def test_listening_charts_show_tooltips_with_human_titles(browser: Browser, listening_dashboard: Dashboard) -> None:
    context, page, errors, outside = open_dashboard(browser, listening_dashboard)
    tooltip = page.locator("#vg-tooltip-element")
    for name, title in (("listening_heatmap", "Hour of day (UTC)"), ("top_listened_artists", "Minutes")):
        page.locator(f'[data-report="{name}"] .mark-rect path').first.hover(force=True)
        tooltip.wait_for(state="visible", timeout=5_000)
        assert title in tooltip.inner_text(), name
        page.mouse.move(0, 0)
    assert errors == [] and outside == []
    context.close()
