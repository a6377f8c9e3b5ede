"""Raw zone -> Iceberg tables -> DuckDB, end to end from the simulator over real HTTP and real files."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.config import Secret
from spotify_pipeline.extract import ClientCredentialsAuth, Extractor, SpotifyClient
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import DATA_TABLES, TABLES
from spotify_pipeline.transform import partials, transform
from spotify_pipeline.transform.connection import connect

from ..conftest import SimulatorFactory, comparable_tables, expected_enrichment, rewrite_raw_part, settings_for

# Engines kept open on lakes no test writes (`shared_lake_run`): a test making dozens of queries then opens no
# engine per query (each open reads every table's metadata). Any other lake gets a new engine per query.
READ_ONLY_ENGINES: dict[Path, QueryEngine] = {}


def rows(lake: Path, sql: str) -> list[tuple[Any, ...]]:
    if lake in READ_ONLY_ENGINES:
        return READ_ONLY_ENGINES[lake].execute(sql).rows
    with QueryEngine(Catalog(lake)) as engine:
        return engine.execute(sql).rows


def table_contents(lake: Path) -> dict[str, list[tuple[Any, ...]]]:
    with QueryEngine(Catalog(lake)) as engine:
        return {name: sorted(engine.execute(f"SELECT * FROM {name}").rows, key=repr) for name in DATA_TABLES}


def extract_at(server: SimulatedSpotify, lake: Path, when: dt.datetime) -> None:
    """An extraction whose clock says `when` (to observe the same playlists on different days)."""
    auth = ClientCredentialsAuth(server.accounts_url, server.client_id, Secret(server.client_secret))
    with SpotifyClient(server.api_url, auth, clock=lambda: when) as client:
        Extractor(client, LocalStorage(lake), clock=lambda: when).run(server.playlist_ids())


@pytest.fixture
def lake_run(simulator: SimulatedSpotify, tmp_path: Path) -> Path:
    report = pipeline.run(settings_for(simulator, tmp_path), simulator.playlist_ids())
    assert report.status == "succeeded"
    return tmp_path


@pytest.fixture(scope="module")
def shared_lake_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`lake_run` made once per module and worker, for the tests that only read it: from a simulator with
    `simulator`'s settings and seed, so its tables are the ones `simulator.catalog` describes."""
    from spotify_pipeline.simulator import Catalog as SimCatalog
    from spotify_pipeline.simulator import CatalogConfig

    server = SimulatedSpotify(SimCatalog(CatalogConfig(playlists=5, items_per_playlist=30, large_playlist_items=260)))
    server.start()
    try:
        lake = tmp_path_factory.mktemp("shared-lake-run")
        report = pipeline.run(settings_for(server, lake), server.playlist_ids())
        assert report.status == "succeeded"
    finally:
        server.stop()
    with QueryEngine(Catalog(lake)) as engine:
        READ_ONLY_ENGINES[lake] = engine
        try:
            yield lake
        finally:
            del READ_ONLY_ENGINES[lake]


def test_every_table_has_the_expected_rows(simulator: SimulatedSpotify, shared_lake_run: Path) -> None:
    catalog = simulator.catalog
    n = catalog.config.playlists
    entries = {catalog.id_of("playlist", i): catalog.entries(i) for i in range(n)}
    tracks = {catalog.id_of("track", e.ref) for es in entries.values() for e in es if e.kind == "track"}
    artists, albums = expected_enrichment(simulator, list(range(n)))

    assert rows(shared_lake_run, "SELECT count(*) FROM playlists") == [(n,)]
    assert rows(shared_lake_run, "SELECT count(*) FROM playlist_songs") == [(sum(len(e) for e in entries.values()),)]
    assert {r[0] for r in rows(shared_lake_run, "SELECT song_id FROM songs")} == tracks
    assert {r[0] for r in rows(shared_lake_run, "SELECT artist_id FROM artists")} == artists
    assert {r[0] for r in rows(shared_lake_run, "SELECT album_id FROM albums")} == albums
    for name, spec in TABLES.items():
        if name in DATA_TABLES:
            key = ", ".join(spec.key)
            dupes = rows(shared_lake_run, f"SELECT {key}, count(*) FROM {name} GROUP BY ALL HAVING count(*) > 1")
            assert dupes == [], f"duplicate keys in {name}"
            nulls = rows(
                shared_lake_run, f"SELECT count(*) FROM {name} WHERE " + " OR ".join(f"{k} IS NULL" for k in spec.key)
            )
            assert nulls == [(0,)], f"null keys in {name}"


def test_references_resolve(shared_lake_run: Path) -> None:
    orphans = {
        "songs.album_id": "SELECT count(*) FROM songs s LEFT JOIN albums a USING (album_id) WHERE a.album_id IS NULL",
        "songs.artist_id": "SELECT count(*) FROM songs s LEFT JOIN artists a USING (artist_id) "
        "WHERE a.artist_id IS NULL",
        "song_artists": "SELECT count(*) FROM song_artists x LEFT JOIN artists a USING (artist_id) "
        "WHERE a.artist_id IS NULL",
        "song_artists.song": "SELECT count(*) FROM song_artists x LEFT JOIN songs s USING (song_id) "
        "WHERE s.song_id IS NULL",
        "album_artists": "SELECT count(*) FROM album_artists x LEFT JOIN artists a USING (artist_id) "
        "WHERE a.artist_id IS NULL",
        "playlist_songs.song": "SELECT count(*) FROM playlist_songs x LEFT JOIN songs s USING (song_id) "
        "WHERE x.song_id IS NOT NULL AND s.song_id IS NULL",
        "playlist_songs.playlist": "SELECT count(*) FROM playlist_songs x LEFT JOIN playlists p USING (playlist_id) "
        "WHERE p.playlist_id IS NULL",
    }
    for name, sql in orphans.items():
        assert rows(shared_lake_run, sql) == [(0,)], name


def test_songs_keep_every_artist_in_order(simulator: SimulatedSpotify, shared_lake_run: Path) -> None:
    catalog = simulator.catalog
    multi = [t for t in range(catalog.n_tracks) if len(catalog.track_artists(t)) > 1]
    stored = {r[0] for r in rows(shared_lake_run, "SELECT song_id FROM songs")}
    checked = 0
    for track in multi:
        song_id = catalog.id_of("track", track)
        if song_id not in stored:
            continue
        got = rows(shared_lake_run, f"SELECT artist_id FROM song_artists WHERE song_id = '{song_id}' ORDER BY position")
        assert [r[0] for r in got] == [catalog.id_of("artist", a) for a in catalog.track_artists(track)]
        first = rows(shared_lake_run, f"SELECT artist_id FROM songs WHERE song_id = '{song_id}'")
        assert first == [(catalog.id_of("artist", catalog.track_artists(track)[0]),)]
        checked += 1
    assert checked >= 3


def test_quirks_are_represented_not_dropped(simulator: SimulatedSpotify, shared_lake_run: Path) -> None:
    catalog = simulator.catalog
    expected: dict[str, int] = {}
    for i in range(catalog.config.playlists):
        for e in catalog.entries(i):
            kind = {"track": "track", "episode": "episode", "local": "local", "null": "unavailable"}[e.kind]
            expected[kind] = expected.get(kind, 0) + 1
    got = dict(rows(shared_lake_run, "SELECT item_type, count(*) FROM playlist_songs GROUP BY 1"))
    assert got == expected
    assert rows(
        shared_lake_run, "SELECT count(*) FROM playlist_songs WHERE item_type <> 'track' AND song_id IS NOT NULL"
    ) == [(0,)]
    local = rows(shared_lake_run, "SELECT item_uri, item_name FROM playlist_songs WHERE item_type = 'local' LIMIT 1")
    assert local[0][0].startswith("spotify:local:") and local[0][1]
    assert rows(shared_lake_run, "SELECT count(*) FROM playlist_songs WHERE added_at IS NULL")[0][0] >= 1
    duplicates = rows(
        shared_lake_run,
        "SELECT count(*) FROM (SELECT playlist_id, song_id FROM playlist_songs "
        "WHERE song_id IS NOT NULL GROUP BY ALL HAVING count(*) > 1)",
    )
    assert duplicates[0][0] >= 1


def test_release_dates_by_precision(simulator: SimulatedSpotify, shared_lake_run: Path) -> None:
    got = rows(shared_lake_run, "SELECT release_date_raw, release_date_precision, release_date FROM albums")
    assert got
    for raw, precision, date in got:
        if raw == "0000":
            assert date is None
        elif precision == "year":
            assert date == dt.date(int(raw), 1, 1)
        elif precision == "month":
            year, month = map(int, raw.split("-"))
            assert date == dt.date(year, month, 1)
        else:
            assert date == dt.date.fromisoformat(raw)
    assert any(raw == "0000" for raw, _, _ in got)


def test_running_twice_changes_nothing(simulator: SimulatedSpotify, lake_run: Path) -> None:
    before = table_contents(lake_run)
    again = pipeline.run(settings_for(simulator, lake_run), simulator.playlist_ids())
    assert again.extract is not None and again.extract.playlists_unchanged == simulator.catalog.config.playlists
    after = table_contents(lake_run)
    # The second run re-checked every playlist and found each as stored: not even `extracted_at` moves
    # (it is when the pipeline last found something new, tests/transform/test_playlist_checks.py).
    for name in DATA_TABLES:
        assert after[name] == before[name], name


def test_transform_twice_over_the_same_raw_is_a_no_op(lake_run: Path) -> None:
    before = table_contents(lake_run)
    result = transform(LocalStorage(lake_run), Catalog(lake_run))
    assert result.raw_runs == []
    assert table_contents(lake_run) == before


def test_applying_a_raw_run_again_changes_nothing(lake_run: Path) -> None:
    """What a crash between two table commits leads to: raw runs already in some tables applied again. Every
    merge must be idempotent, including playlist positions whose pages were fetched at different times."""
    catalog = Catalog(lake_run)
    before = table_contents(lake_run)
    assert len({row[-1] for row in rows(lake_run, "SELECT playlist_id, extracted_at FROM playlist_songs")}) > 1
    catalog.overwrite("processed_raw_runs", TABLES["processed_raw_runs"].schema.empty_table())
    result = transform(LocalStorage(lake_run), catalog)
    assert result.raw_runs  # every raw run was applied a second time
    assert table_contents(lake_run) == before


def test_snapshot_change_updates_membership_and_keeps_history(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=4, items_per_playlist=40)
    day1 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
    day2 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    extract_at(server, tmp_path, day1)
    transform(LocalStorage(tmp_path), Catalog(tmp_path))
    server.mutate([0, 2])
    extract_at(server, tmp_path, day2)
    transform(LocalStorage(tmp_path), Catalog(tmp_path))

    catalog = server.catalog
    for index in (0, 1, 2):
        pid = catalog.id_of("playlist", index)
        got = rows(tmp_path, f"SELECT position, item_uri FROM playlist_songs WHERE playlist_id = '{pid}' ORDER BY 1")
        want = []
        for pos, e in enumerate(catalog.entries(index)):
            uri = None
            if e.kind == "track":
                uri = f"spotify:track:{catalog.id_of('track', e.ref)}"
            elif e.kind == "episode":
                uri = f"spotify:episode:{catalog.id_of('episode', e.ref)}"
            want.append((pos, uri))
        assert len(got) == len(want)
        for (position, uri), (_, wanted) in zip(got, want, strict=True):
            if wanted is None:  # unavailable (null) or a local file: no catalog URI
                assert uri is None or uri.startswith("spotify:local:"), position
            else:
                assert uri == wanted, position
        assert [p for p, _ in got] == list(range(catalog.playlist_size(index)))
        tracks = [u for _, u in want if u and u.startswith("spotify:track:")]
        assert [u for _, u in got if u and u.startswith("spotify:track:")] == tracks
    name = rows(tmp_path, f"SELECT name FROM playlists WHERE playlist_id = '{catalog.id_of('playlist', 0)}'")
    assert name == [(catalog.playlist_name(0),)] and "(v2)" in name[0][0]
    days = rows(tmp_path, "SELECT observed_date, count(*) FROM song_popularity GROUP BY 1 ORDER BY 1")
    assert [d for d, _ in days] == [day1.date(), day2.date()]
    both = rows(tmp_path, "SELECT count(*) FROM (SELECT song_id FROM song_popularity GROUP BY 1 HAVING count(*) = 2)")
    assert both[0][0] > 0


def test_rebuild_equals_the_incremental_path(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_simulator(playlists=5, items_per_playlist=50, large_playlist_items=400)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    for day, changed in ((1, []), (2, [1, 3]), (3, [0])):
        server.mutate(changed) if changed else None
        extract_at(server, tmp_path, dt.datetime(2026, 10, day, 12, tzinfo=dt.UTC))
        transform(storage, catalog)
    incremental = table_contents(tmp_path)
    result = transform(storage, catalog, rebuild=True)
    assert len(result.raw_runs) == 3 and result.rebuilt
    assert table_contents(tmp_path) == incremental
    # Reading the raw zone one file at a time (the smallest batches) gives the same tables: the partial
    # aggregates are folded across batches, positions of one playlist span several files and runs.
    result = transform(storage, catalog, rebuild=True, batch_bytes=1)
    assert len(result.raw_runs) == 3
    assert table_contents(tmp_path) == incremental
    # And with the partial aggregates folded as often as possible (normally only past 1M rows).
    monkeypatch.setattr(partials, "COMPACT_MIN_ROWS", 1)
    transform(storage, catalog, rebuild=True, batch_bytes=1)
    assert table_contents(tmp_path) == incremental


def test_folding_a_partial_table_keeps_the_newest_and_the_extremes() -> None:
    con = connect()
    con.execute(
        """CREATE TEMP TABLE song_partials AS SELECT * FROM (VALUES
            ('s1', {'name': 'old'}, TIMESTAMPTZ '2026-01-01', TIMESTAMPTZ '2026-01-01', TIMESTAMPTZ '2025-06-01'),
            ('s1', {'name': 'new'}, TIMESTAMPTZ '2026-03-01', TIMESTAMPTZ '2026-02-01', NULL),
            ('s1', {'name': 'mid'}, TIMESTAMPTZ '2026-02-01', TIMESTAMPTZ '2025-12-01', TIMESTAMPTZ '2025-07-01'),
            ('s2', {'name': 'only'}, TIMESTAMPTZ '2026-01-05', TIMESTAMPTZ '2026-01-05', NULL)
        ) t(song_id, song, last_seen_at, first_seen_at, song_added)"""
    )
    fold = partials.PartialCompactor(con, tables=("song_partials",), min_rows=2)
    fold()
    got = con.execute(
        "SELECT song_id, song.name, last_seen_at::DATE, first_seen_at::DATE, song_added::DATE"
        " FROM song_partials ORDER BY 1"
    ).fetchall()
    assert [tuple(str(v) for v in row) for row in got] == [
        ("s1", "new", "2026-03-01", "2025-12-01", "2025-06-01"),
        ("s2", "only", "2026-01-05", "2026-01-05", "None"),
    ]
    # Until it has doubled since (4 rows) a table is left alone.
    con.execute("INSERT INTO song_partials SELECT * FROM song_partials LIMIT 1")
    fold()
    assert con.execute("SELECT count(*) FROM song_partials").fetchall() == [(3,)]
    con.execute("INSERT INTO song_partials SELECT * FROM song_partials LIMIT 1")
    fold()
    assert con.execute("SELECT count(*) FROM song_partials").fetchall() == [(2,)]


def test_artist_stats_summarises_the_merged_tables(shared_lake_run: Path) -> None:
    # Counted here row by row in Python, not with the transform's SQL.
    positions = rows(shared_lake_run, "SELECT playlist_id, song_id FROM playlist_songs WHERE song_id IS NOT NULL")
    credits = rows(shared_lake_run, "SELECT song_id, artist_id FROM song_artists")
    artists_of: dict[str, list[str]] = {}
    for song_id, artist_id in credits:
        artists_of.setdefault(song_id, []).append(artist_id)
    expected: dict[str, list[Any]] = {}
    for playlist_id, song_id in positions:
        for artist_id in artists_of.get(song_id, []):
            stat = expected.setdefault(artist_id, [0, set(), set()])
            stat[0] += 1
            stat[1].add(playlist_id)
            stat[2].add(song_id)
    want = sorted((a, n, len(p), len(s)) for a, (n, p, s) in expected.items())
    got = sorted(rows(shared_lake_run, "SELECT artist_id, appearances, playlists, songs FROM artist_stats"))
    assert got == want and len(got) >= 5


def test_a_lake_without_a_derived_table_gets_it_on_the_next_transform(lake_run: Path) -> None:
    catalog = Catalog(lake_run)
    before = rows(lake_run, "SELECT * FROM artist_stats")
    catalog.iceberg.drop_table(f"{catalog.namespace}.artist_stats")  # as a lake from an older version
    assert "artist_stats" not in catalog.table_names()
    result = transform(LocalStorage(lake_run), catalog)
    assert result.raw_runs == [] and "artist_stats" in catalog.table_names()
    assert sorted(rows(lake_run, "SELECT * FROM artist_stats")) == sorted(before)


def test_publishing_in_slices_gives_the_same_tables_in_one_commit(
    lake_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spotify_pipeline.transform import publish

    catalog = Catalog(lake_run)
    before = table_contents(lake_run)
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 7)  # many slices per table
    commits = {name: len(catalog.table(name).metadata.metadata_log) for name in DATA_TABLES}
    snapshots = {name: len(catalog.table(name).metadata.snapshots) for name in DATA_TABLES}
    transform(LocalStorage(lake_run), catalog, rebuild=True)
    assert table_contents(lake_run) == before
    songs = catalog.data_files("songs")
    assert len(songs) >= len(before["songs"]) // 7  # written slice by slice
    for name in DATA_TABLES:
        metadata = catalog.table(name).metadata
        # One catalog commit per table: one new metadata file, whatever the number of slices ...
        assert len(metadata.metadata_log) == commits[name] + 1, name
        # ... holding at most two snapshots (delete the old rows, append the new), not one per slice.
        assert len(metadata.snapshots) - snapshots[name] <= 2, name


def test_an_enrichment_field_of_an_unexpected_type_reads_as_null_not_a_failure(lake_run: Path) -> None:
    # An API change (a number sent as text, a list as a string) in one album response must not stop every
    # transform from then on: that field is NULL, the rest of the album is read. Written as raw, as stored.
    from spotify_pipeline.lake import RawZoneWriter

    album_id, popularity = rows(lake_run, "SELECT album_id, popularity FROM albums WHERE popularity IS NOT NULL")[0]
    when = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    run_id = f"{when:%Y%m%dT%H%M%SZ}-999999"
    writer = RawZoneWriter(LocalStorage(lake_run), run_id, when.date())
    body = {"id": album_id, "name": "Renamed by a newer response", "popularity": "very", "images": "none"}
    meta = {
        "run_id": run_id,
        "entity": "albums",
        "endpoint": "album",
        "url": f"https://api.spotify.com/v1/albums/{album_id}",
    }
    writer.write("albums", {**meta, "status": 200, "fetched_at": when.isoformat()}, json.dumps(body).encode())
    writer.close({"status": "succeeded", "playlists": {}})

    result = transform(LocalStorage(lake_run), Catalog(lake_run))
    assert result.raw_runs == [run_id]
    assert rows(lake_run, f"SELECT name, popularity FROM albums WHERE album_id = '{album_id}'") == [
        ("Renamed by a newer response", popularity)  # the unreadable popularity keeps the last known value
    ]


def _pre_2026_shape(body: dict[str, Any]) -> dict[str, Any]:
    """A playlist or item-page body as the API sent it before 2026: the page only as `tracks`, each track
    or episode only as `track` (no `items` / `item`)."""
    if isinstance(body.get("items"), dict):  # a playlist with its first page
        body = {**body}
        body["tracks"] = _pre_2026_shape(body.pop("items"))
        return body
    return {**body, "items": [{k: v for k, v in i.items() if k != "item"} for i in body.get("items") or []]}


def test_responses_in_the_pre_2026_shape_give_the_same_tables(lake_run: Path, tmp_path_factory: Any) -> None:
    # Raw files from before the API's rename hold only the deprecated `tracks` / `track`; a file may mix
    # both shapes (one run across the change). Every item-page file here is wholly old, every playlist
    # file alternates old and current responses line by line.
    old = tmp_path_factory.mktemp("old-shape")
    shutil.copytree(lake_run / "raw", old / "raw")
    converted = 0
    for part in (old / "raw").glob("playlist*/**/*.jsonl.gz"):
        if part.parts[len(old.parts) + 1] not in ("playlists", "playlist_items"):
            continue
        lines = gzip.decompress(part.read_bytes()).splitlines()
        for number, line in enumerate(lines):
            record = json.loads(line)
            if "playlist_items" in part.parts or number % 2 == 0:
                record["body"] = _pre_2026_shape(record["body"])
                lines[number] = json.dumps(record).encode()
                converted += 1
        rewrite_raw_part(old, part, lines)
    assert converted >= 3
    transform(LocalStorage(old), Catalog(old))
    assert comparable_tables(old) == comparable_tables(lake_run)


def test_the_latest_extraction_wins_even_when_its_run_id_sorts_first(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    """Run ids sort by their start second, then random hex: two runs in one second (parallel Lambda extracts,
    a retry) can sort against their order. Positions come from the extraction fetched last; before, a
    playlist could end with no positions at all when the two orders disagreed."""
    server = make_simulator(playlists=3, items_per_playlist=20)
    settings = settings_for(server, tmp_path)
    pipeline.extract(settings, server.playlist_ids(), run_id="20261130T000000Z-ffffff")
    server.mutate([0])
    pipeline.extract(settings, server.playlist_ids(), run_id="20261130T000000Z-000000", full=True)
    transform(LocalStorage(tmp_path), Catalog(tmp_path))
    got = rows(tmp_path, "SELECT playlist_id, count(*), min(run_id) FROM playlist_songs GROUP BY 1 ORDER BY 1")
    expected = sorted(
        (server.catalog.id_of("playlist", i), server.catalog.playlist_size(i), "20261130T000000Z-000000")
        for i in range(3)
        if server.catalog.playlist_size(i)
    )
    assert got == expected
