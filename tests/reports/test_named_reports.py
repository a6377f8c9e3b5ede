"""Every named report against a lake with known contents; expected answers computed here, in Python,
from the tables' plain rows (and, for changes, from the simulator's own catalog)."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
from typing import Any

import pytest

from spotify_pipeline.errors import InputError
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.reports import LISTENING_ORDER, REPORT_ORDER, all_reports, run_report
from spotify_pipeline.tables.catalog import Catalog

from .conftest import CHANGED, DAY1, DAY2, Lake


def report(lake: Lake, name: str, playlist: str | None = None) -> list[tuple[Any, ...]]:
    with QueryEngine(Catalog(lake.path)) as engine:
        return run_report(engine, name, {"playlist": playlist} if playlist else {}).rows


def members(lake: Lake, playlist: str | None = None) -> list[tuple[str, str]]:
    rows = lake.rows("SELECT playlist_id, song_id FROM playlist_songs WHERE song_id IS NOT NULL")
    return [(p, s) for p, s in rows if playlist is None or p == playlist]


def test_every_report_is_listed_with_title_and_description() -> None:
    reports = all_reports()
    assert set(reports) == set(REPORT_ORDER) | set(LISTENING_ORDER) and len(REPORT_ORDER) == 11
    for r in reports.values():
        assert r.title and r.description, r.name
        if r.name in REPORT_ORDER and r.name != "data_health":  # every other playlist report takes a playlist
            assert "{{playlist}}" in r.sql, r.name


@pytest.mark.parametrize("playlist_index", [None, 1])
def test_top_artists(lake: Lake, playlist_index: int | None) -> None:
    playlist = None if playlist_index is None else lake.server.playlist_ids()[playlist_index]
    artists_of = collections.defaultdict(list)
    for song, artist in lake.rows("SELECT song_id, artist_id FROM song_artists"):
        artists_of[song].append(artist)
    names = dict(lake.rows("SELECT artist_id, name FROM artists"))
    appearances: collections.Counter[str] = collections.Counter()
    playlists: dict[str, set[str]] = collections.defaultdict(set)
    for pid, song in members(lake, playlist):
        for artist in artists_of[song]:
            appearances[artist] += 1
            playlists[artist].add(pid)
    expected = sorted(
        ((names[a], n, len(playlists[a])) for a, n in appearances.items()), key=lambda r: (-r[1], -r[2], r[0])
    )[:15]
    assert report(lake, "top_artists", playlist) == expected
    assert expected


def test_genre_mix(lake: Lake) -> None:
    first_artist = dict(lake.rows("SELECT song_id, artist_id FROM songs"))
    genres = dict(lake.rows("SELECT artist_id, genres FROM artists"))
    counts: collections.Counter[str] = collections.Counter()
    for _, song in members(lake):
        for genre in genres[first_artist[song]] or ["unclassified"]:
            counts[genre] += 1
    expected = sorted(counts.items(), key=lambda r: (-r[1], r[0]))
    assert report(lake, "genre_mix") == expected and len(expected) > 2


def test_release_decades(lake: Lake) -> None:
    album_of = dict(lake.rows("SELECT song_id, album_id FROM songs"))
    released = dict(lake.rows("SELECT album_id, release_date FROM albums"))
    decades: collections.Counter[str] = collections.Counter()
    for song in {s for _, s in members(lake)}:
        date = released[album_of[song]]
        decades["unknown" if date is None else f"{date.year // 10 * 10}s"] += 1
    assert report(lake, "release_decades") == sorted(decades.items())
    assert "unknown" in decades  # the 0000 release date


def test_song_length_and_explicit_share(lake: Lake) -> None:
    songs = {s for _, s in members(lake)}
    bands: dict[int, list[bool]] = collections.defaultdict(list)
    for song, duration, explicit in lake.rows("SELECT song_id, duration_ms, explicit FROM songs"):
        if song in songs:
            bands[duration // 60000].append(explicit)
    expected = [(m, len(v), round(sum(v) / len(v), 3)) for m, v in sorted(bands.items())]
    got = [(m, n, float(share)) for m, n, share in report(lake, "song_length")]
    assert got == expected


def test_popularity_distribution(lake: Lake) -> None:
    songs = {s for _, s in members(lake)}
    bands: collections.Counter[int] = collections.Counter()
    for song, popularity in lake.rows("SELECT song_id, popularity FROM songs"):
        if song in songs and popularity is not None:
            bands[popularity // 10 * 10] += 1
    assert report(lake, "popularity_distribution") == sorted(bands.items())


def test_popularity_trend_has_both_days(lake: Lake) -> None:
    songs = {s for _, s in members(lake)}
    days: dict[dt.date, list[int]] = collections.defaultdict(list)
    for song, day, popularity in lake.rows("SELECT song_id, observed_date, popularity FROM song_popularity"):
        if song in songs:
            days[day].append(popularity)
    expected = [(d, round(sum(v) / len(v), 2), len(v)) for d, v in sorted(days.items())]
    got = [(d, float(avg), n) for d, avg, n in report(lake, "popularity_trend")]
    assert got == expected
    assert [d for d, _, _ in got] == [DAY1.date(), DAY2.date()]


def test_playlist_growth(lake: Lake) -> None:
    months: collections.Counter[dt.date] = collections.Counter()
    for (added_at,) in lake.rows("SELECT added_at FROM playlist_songs WHERE added_at IS NOT NULL"):
        months[added_at.date().replace(day=1)] += 1
    running = list(itertools.accumulate(months[m] for m in sorted(months)))
    expected = [(m, months[m], total) for m, total in zip(sorted(months), running, strict=True)]
    assert [(m, n, int(t)) for m, n, t in report(lake, "playlist_growth")] == expected


def test_playlist_changes_match_the_simulator(lake: Lake) -> None:
    catalog = lake.server.catalog

    def uris(entries: list[Any]) -> set[str]:
        return {f"spotify:{e.kind}:{catalog.id_of(e.kind, e.ref)}" for e in entries if e.kind in ("track", "episode")}

    for index in range(6):
        pid = catalog.id_of("playlist", index)
        rows = report(lake, "playlist_changes", pid)
        added = {uri for _, _, change, _, uri in rows if change == "added"}
        removed = {uri for _, _, change, _, uri in rows if change == "removed"}
        old, new = uris(lake.before[index]), uris(list(catalog.entries(index)))
        assert added == new - old, index
        assert removed == old - new, index
        assert bool(rows) == (index in CHANGED and old != new)


def test_artist_overlap(lake: Lake) -> None:
    artists_of = collections.defaultdict(set)
    for song, artist in lake.rows("SELECT song_id, artist_id FROM song_artists"):
        artists_of[song].add(artist)
    per_playlist: dict[str, set[str]] = collections.defaultdict(set)
    for pid, song in members(lake):
        per_playlist[pid] |= artists_of[song]
    names = dict(lake.rows("SELECT playlist_id, name FROM playlists"))
    expected = []
    for a, b in itertools.combinations(sorted(per_playlist), 2):
        shared = len(per_playlist[a] & per_playlist[b])
        if shared:
            jaccard = round(shared / len(per_playlist[a] | per_playlist[b]), 3)
            expected.append((names[a], names[b], shared, jaccard))
    expected.sort(key=lambda r: (-r[2], -r[3], r[0], r[1]))
    got = [(a, b, n, float(j)) for a, b, n, j in report(lake, "artist_overlap")]
    assert got == expected[:20]


def test_data_health(lake: Lake) -> None:
    rows = report(lake, "data_health")
    runs = lake.rows("SELECT run_id FROM pipeline_runs")
    checks = lake.rows("SELECT run_id, count(*) FILTER (WHERE NOT passed), count(*) FROM quality_results GROUP BY 1")
    assert len(rows) == len(runs)
    expected = {run: (failed, total) for run, failed, total in checks}
    for row in rows:
        assert (row[5], row[6]) == expected.get(row[0], (0, 0))


def test_bad_report_input(lake: Lake) -> None:
    with QueryEngine(Catalog(lake.path)) as engine:
        with pytest.raises(InputError, match="no report named"):  # bad input (exit 2), like a bad parameter
            run_report(engine, "no_such_report")
        with pytest.raises(InputError):
            run_report(engine, "top_artists", {"playlist": "'; DROP TABLE songs; --"})
        with pytest.raises(InputError):
            run_report(engine, "top_artists", {"user": "x"})
