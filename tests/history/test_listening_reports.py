"""The listening reports and the year in review over a small known export, imported through the real CLI.
Every expected number is computed here, in Python, from the generated listens (not by the report SQL)."""

from __future__ import annotations

import collections
import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline.errors import InputError
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.reports import LISTENING_ORDER, all_reports, run_report
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import cli
from . import listening_data
from .listening_data import USER, Listen

Rows = list[tuple[Any, ...]]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Listen]]]:
    listens = listening_data.generate()
    yield listening_data.import_lake(tmp_path_factory.mktemp("listening"), listens), listens


def run(lake: Path, name: str, **params: str) -> Rows:
    with QueryEngine(Catalog(lake)) as engine:
        return [tuple(r) for r in run_report(engine, name, params).rows]


def chosen(listens: list[Listen], start: dt.date | None, end: dt.date | None, incognito: bool) -> list[Listen]:
    return [
        x
        for x in listens
        if (incognito or not x.incognito)
        and (start is None or x.ts.date() >= start)
        and (end is None or x.ts.date() <= end)
    ]


def minutes(ms: int) -> float:
    return round(ms / 60000, 1)


Y25 = {"from": "2025-01-01", "to": "2025-12-31"}
D25 = (dt.date(2025, 1, 1), dt.date(2025, 12, 31))


def test_every_listening_report_is_named_and_takes_the_period() -> None:
    reports = all_reports()
    for name in LISTENING_ORDER:
        assert reports[name].title and reports[name].description
        for placeholder in ("{{user}}", "{{from}}", "{{to}}", "{{include_incognito}}"):
            assert placeholder in reports[name].sql, (name, placeholder)


@pytest.mark.parametrize("period", ["day", "week", "month"])
@pytest.mark.parametrize("incognito", [False, True])
def test_listening_time(history: tuple[Path, list[Listen]], period: str, incognito: bool) -> None:
    lake, listens = history

    def bucket(t: dt.datetime) -> dt.date:
        d = t.date()
        return {"day": d, "week": d - dt.timedelta(days=d.weekday()), "month": d.replace(day=1)}[period]

    ms: collections.Counter[dt.date] = collections.Counter()
    plays: collections.Counter[dt.date] = collections.Counter()
    for x in chosen(listens, *D25, incognito):
        ms[bucket(x.ts)] += x.ms
        plays[bucket(x.ts)] += x.play
    expected = [(b, minutes(ms[b]), plays[b]) for b in sorted(ms)]
    got = run(lake, "listening_time", period=period, include_incognito=str(incognito).lower(), **Y25)
    assert got == expected and len(expected) > 1


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("top_listened_artists", lambda x: (x.artist,)),
        ("top_listened_songs", lambda x: (x.song, x.artist)),
        ("top_listened_albums", lambda x: (x.album, x.artist)),
    ],
)
@pytest.mark.parametrize("by", ["time", "plays"])
def test_top_artists_songs_albums(
    history: tuple[Path, list[Listen]], name: str, key: Callable[[Listen], tuple[str, ...]], by: str
) -> None:
    lake, listens = history
    ms: collections.Counter[tuple[str, ...]] = collections.Counter()
    plays: collections.Counter[tuple[str, ...]] = collections.Counter()
    for x in chosen(listens, *D25, False):
        if x.kind == "track":
            ms[key(x)] += x.ms
            plays[key(x)] += x.play
    order = (lambda k: (-ms[k], -plays[k], k)) if by == "time" else (lambda k: (-plays[k], -ms[k], k))
    expected = [(*k, minutes(ms[k]), plays[k]) for k in sorted(ms, key=order)][:25]
    assert run(lake, name, by=by, **Y25) == expected


def test_heatmap(history: tuple[Path, list[Listen]]) -> None:
    lake, listens = history
    cells: dict[tuple[int, int], list[int]] = collections.defaultdict(lambda: [0, 0])
    for x in chosen(listens, *D25, False):
        cell = cells[(x.ts.isoweekday(), x.ts.hour)]
        cell[0] += x.ms
        cell[1] += x.play
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    expected = [(d, names[d - 1], h, minutes(v[0]), v[1]) for (d, h), v in sorted(cells.items())]
    assert run(lake, "listening_heatmap", **Y25) == expected


def test_skip_rate(history: tuple[Path, list[Listen]]) -> None:
    lake, listens = history
    counts: dict[dt.date, list[int]] = collections.defaultdict(lambda: [0, 0])
    for x in chosen(listens, *D25, False):
        if x.kind == "track" and x.skipped is not None:
            counts[x.ts.date().replace(day=1)][0] += 1
            counts[x.ts.date().replace(day=1)][1] += x.skipped
    expected = [(m, n, s, round(s / n, 4)) for m, (n, s) in sorted(counts.items())]
    assert run(lake, "skip_rate", **Y25) == expected


def test_new_artists_per_month(history: tuple[Path, list[Listen]]) -> None:
    lake, listens = history
    first: dict[str, dt.datetime] = {}
    for x in listens:
        if x.kind == "track" and not x.incognito and x.artist and (x.artist not in first or x.ts < first[x.artist]):
            first[x.artist] = x.ts
    per_month = collections.Counter(t.date().replace(day=1) for t in first.values() if D25[0] <= t.date() <= D25[1])
    assert run(lake, "new_artists", **Y25) == sorted(per_month.items())
    assert sum(per_month.values()) >= 2  # the data spreads first listens over 2025


def test_incognito_left_out_by_default_and_included_on_request(history: tuple[Path, list[Listen]]) -> None:
    lake, listens = history
    hidden = sum(x.ms for x in listens if x.incognito)
    assert hidden > 0
    total = [r[1] for r in run(lake, "listening_time", period="year")]
    with_incognito = [r[1] for r in run(lake, "listening_time", period="year", include_incognito="true")]
    assert sum(total) == pytest.approx(minutes(sum(x.ms for x in listens if not x.incognito)), abs=0.2)
    assert sum(with_incognito) == pytest.approx(minutes(sum(x.ms for x in listens)), abs=0.2)
    with QueryEngine(Catalog(lake)) as engine:  # kept in the table all the same
        assert engine.execute("SELECT count(*) FROM listens WHERE incognito").rows[0][0] == sum(
            x.incognito for x in listens
        )
    out = cli("query", "--lake", str(lake), "--report", "listening_time", "--param", "period=year", "--format", "json")
    out_all = cli(
        "query", "--lake", str(lake), "--report", "listening_time", "--param", "period=year",
        "--param", "include_incognito=true", "--format", "json",
    )  # fmt: skip
    assert out.returncode == 0 and out_all.returncode == 0, out.stderr + out_all.stderr
    assert out.stdout != out_all.stdout


def test_other_user_sees_nothing_and_parameters_are_validated(history: tuple[Path, list[Listen]]) -> None:
    lake, _ = history
    assert run(lake, "listening_time", user="bob") == []
    assert run(lake, "listening_time", user=USER, period="year")
    for bad in (
        {"from": "2025-13-01"},
        {"from": "2025-01-01'; DROP TABLE listens; --"},
        {"to": "yesterday"},
        {"user": "x' OR '1'='1"},
        {"period": "decade"},
        {"by": "name"},
        {"include_incognito": "maybe"},
        {"from": "2025-02-01", "to": "2025-01-01"},
    ):
        with pytest.raises(InputError):
            run(lake, "listening_time", **bad)


def test_year_in_review_html(history: tuple[Path, list[Listen]], tmp_path: Path) -> None:
    lake, listens = history
    out = tmp_path / "wrapped-2025.html"
    result = cli("report", "--lake", str(lake), "--year", "2025", "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    year = chosen(listens, *D25, False)
    total_min = sum(x.ms for x in year) / 60000
    assert f"<b>{total_min:,.0f}</b>minutes listened" in page
    assert f"<b>{sum(x.play for x in year):,}</b>plays" in page
    days: collections.Counter[dt.date] = collections.Counter()
    for x in year:
        days[x.ts.date()] += x.ms
    best = max(days, key=lambda d: days[d])
    assert f"<b>{best.isoformat()}</b>most-played day" in page
    ms_by_artist: collections.Counter[str] = collections.Counter()
    for x in year:
        if x.kind == "track" and x.artist:
            ms_by_artist[x.artist] += x.ms
    top_artists = re.findall(r'<ol class="top" data-top="artist">(.*?)</ol>', page)[0]
    import html as html_lib

    shown = [html_lib.unescape(a) for a in re.findall(r"<li><span>(.*?)</span>", top_artists)]
    assert shown == [a for a, _ in ms_by_artist.most_common(5)]
    assert "Incognito listens are left out" in page and "--include-incognito" in page
    # Self-contained: no external URL at all (the SVG namespace is not a request).
    urls = set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", page)) - {"http://www.w3.org/2000/svg"}
    assert not {u for u in urls if not u.startswith("http://www.w3.org/")}, urls
    assert "<script" not in page and page.count("<svg") >= 4
    included = cli("report", "--lake", str(lake), "--year", "2025", "--include-incognito", "--out", str(out))
    assert included.returncode == 0, included.stderr
    all_min = sum(x.ms for x in chosen(listens, *D25, True)) / 60000
    assert f"<b>{all_min:,.0f}</b>minutes listened" in out.read_text(encoding="utf-8")
