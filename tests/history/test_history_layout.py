"""Where an import writes: `listen_events` and `listens` are clustered by `ended_at` (catalog.py `CLUSTER_BY`),
so a later download that replaces recent listens rewrites only the newest files; and an import into an
empty lake creates only the tables it fills, every reader treating the others as empty."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from spotify_pipeline import Lake
from spotify_pipeline.config import load_settings
from spotify_pipeline.history.listens import LISTENS_SQL
from spotify_pipeline.serve.dashboard import Dashboard
from spotify_pipeline.simulator.history import track_play
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import TABLES
from spotify_pipeline.transform import publish
from spotify_pipeline.transform.connection import register_table

from ..conftest import cli

USER = "alice"
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _extended(n: int) -> dict[str, Any]:
    """Play `n`: one every 10 minutes, of one of 7 tracks."""
    track = n % 7
    ts = (START + dt.timedelta(minutes=10 * n)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return track_play(ts, track, 120_000 + n, artist=f"Artist {track}", album=f"Album {track}")


def _account(n: int) -> dict[str, Any]:
    """The same play `n` as the one-year account data records it (minutes, names, no URI)."""
    play = _extended(n)
    return {
        "endTime": (START + dt.timedelta(minutes=10 * n)).strftime("%Y-%m-%d %H:%M"),
        "artistName": play["master_metadata_album_artist_name"],
        "trackName": play["master_metadata_track_name"],
        "msPlayed": play["ms_played"],
    }


def _import(lake: Path, folder: Path, files: dict[str, list[dict[str, Any]]]) -> None:
    folder.mkdir()
    for name, elements in files.items():
        (folder / name).write_text(json.dumps(elements))
    Lake.open(settings=load_settings({"lake": str(lake)}, env={})).import_history(folder, user=USER)


def _ended_at_range(path: str) -> tuple[dt.datetime, dt.datetime]:
    column = pq.read_table(path, columns=["ended_at"]).column("ended_at").to_pylist()
    return min(column), max(column)


def test_a_later_download_rewrites_only_the_newest_listens_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)  # several files per table at this size
    lake = tmp_path / "lake"
    # First: 400 plays in full, and the 20 after them only as the account data has them.
    _import(
        lake,
        tmp_path / "first",
        {
            "Streaming_History_Audio_2024.json": [_extended(n) for n in range(400)],
            "StreamingHistory_music_0.json": [_account(n) for n in range(400, 420)],
        },
    )
    catalog = Catalog(lake)
    before = {name: set(catalog.data_files(name)) for name in ("listens", "listen_events")}
    assert len(before["listens"]) >= 10
    # Then a download with those 20 plays in full: their account-data listens are replaced by these.
    _import(lake, tmp_path / "later", {"Streaming_History_Audio_2025.json": [_extended(n) for n in range(400, 420)]})
    newest = START + dt.timedelta(minutes=10 * 400)
    for name, files in before.items():
        kept = files & set(Catalog(lake).data_files(name))
        gone = files - kept
        # Only the newest files, holding the replaced plays, were rewritten (20 plays: one file, or two where
        # a file boundary falls among them); every file of older plays is kept. (Clustered by `listen_id`,
        # an md5, the 20 replaced listens lay in 9 of the 11 files, and all 9 were rewritten.)
        assert len(gone) <= 2, (name, len(gone), len(files))
        assert all(_ended_at_range(p)[1] >= newest for p in gone), name
        assert {p for p in files if _ended_at_range(p)[1] < newest} <= kept, name
    with_sources = Lake.open(settings=load_settings({"lake": str(lake)}, env={})).query(
        "SELECT source_format, count(*) AS n FROM listens GROUP BY ALL ORDER BY 1"
    )
    assert with_sources.to_pylist() == [{"source_format": "extended", "n": 420}]


def test_a_later_import_of_many_plays_searches_only_the_newest_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A later download with more new plays than pyiceberg prunes an `In` filter for (200 values) still
    searches only the files whose `ended_at` range can hold one of its keys: `Catalog.replace_rows` adds
    their range beside the `In` filter. (Before, such an import read every file of both tables.)"""
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)  # 10 files per table
    lake = tmp_path / "lake"
    _import(lake, tmp_path / "first", {"Streaming_History_Audio_2024.json": [_extended(n) for n in range(400)]})
    assert len(Catalog(lake).data_files("listen_events")) == 10
    # The newest 5 plays again (in the newest file), then 250 new ones: 255 keys of listen_events.
    caplog.set_level(logging.DEBUG, logger="spotify_pipeline.tables.replace")
    _import(lake, tmp_path / "later", {"Streaming_History_Audio_2025.json": [_extended(n) for n in range(395, 650)]})
    searched = {
        record.args[0]: (record.args[1], record.args[2])  # table: (files searched, files of the table)
        for record in caplog.records
        if record.getMessage().startswith("table ") and "searched" in record.getMessage()
    }
    assert searched == {"listen_events": (1, 10), "listens": (0, 10)}, searched
    published, expected = _listens_by_the_rule(lake)
    assert published == expected and len(published) == 650


def _listens_by_the_rule(lake: Path) -> tuple[list[Any], list[Any]]:
    """The published `listens`, and what the rule computes from the published `listen_events`, both sorted."""
    catalog = Catalog(lake)
    con = duckdb.connect()
    try:
        register_table(con, catalog, "listen_events", "staged_listen_events")
        register_table(con, catalog, "listens", "published")
        published = con.execute("SELECT * FROM published ORDER BY listen_id").fetchall()
        expected = con.execute(f"SELECT * FROM ({LISTENS_SQL}) ORDER BY listen_id").fetchall()
    finally:
        con.close()
    return published, expected


def test_publishing_only_the_changed_listens_gives_the_rule_s_rows(tmp_path: Path) -> None:
    """`listens` is published by replacing only the rows a narrow query finds changed (publish.py
    `NARROW_CHANGES`): after imports that add listens, drop outranked ones and change an event in place,
    the table is exactly what the rule computes from every event."""
    lake = tmp_path / "lake"
    _import(
        lake,
        tmp_path / "first",
        {
            "Streaming_History_Audio_2024.json": [_extended(n) for n in range(60)],
            "StreamingHistory_music_0.json": [_account(n) for n in range(60, 70)],
        },
    )
    # Adds plays 70-79, outranks the account-data listens of 60-64 and changes play 3's platform in place.
    changed = [{**_extended(3), "platform": "ios"}]
    later = [_extended(n) for n in range(60, 65)] + [_extended(n) for n in range(70, 80)] + changed
    _import(lake, tmp_path / "later", {"Streaming_History_Audio_2025.json": later})
    published, expected = _listens_by_the_rule(lake)
    assert published == expected and len(published) == 80
    platforms = Lake.open(settings=load_settings({"lake": str(lake)}, env={})).query(
        "SELECT platform FROM listens WHERE ended_at = ?", [START + dt.timedelta(minutes=30)]
    )
    assert platforms.to_pylist() == [{"platform": "ios"}]


# Filled by an export alone: what an import into an empty lake creates (quality_results and
# processed_raw_runs are its bookkeeping; artist_stats, derived, is always created, even empty).
IMPORT_TABLES = {"listen_events", "listens", "songs", "artist_stats", "quality_results", "processed_raw_runs"}


GRAPHQL = "{ playlists { nodes { id } } songs { nodes { id } } listens { pageInfo { total } } }"


def test_an_import_into_an_empty_lake_creates_only_the_tables_it_fills(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _import(lake, tmp_path / "export", {"Streaming_History_Audio_2024.json": [_extended(n) for n in range(50)]})
    assert set(Catalog(lake).table_names()) == IMPORT_TABLES
    # Every reader treats a table not created as empty.
    listed = cli("tables", "--lake", str(lake), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    counts = {t["name"]: t["rows"] for t in json.loads(listed.stdout)}
    assert counts["listens"] == 50 and counts["playlists"] == 0 and set(TABLES) <= set(counts)
    query = cli("query", "--lake", str(lake), "--format", "json", "SELECT count(*) AS n FROM playlist_songs")
    assert query.returncode == 0 and json.loads(query.stdout) == [{"n": 0}], query.stderr
    check = cli("check", "--lake", str(lake))
    assert check.returncode == 0, check.stdout + check.stderr
    for report in (("--out", str(tmp_path / "r.html")), ("--year", "2024", "--out", str(tmp_path / "y.html"))):
        made = cli("report", *report, "--lake", str(lake))
        assert made.returncode == 0, made.stderr
    export = cli("export", "--lake", str(lake), "--table", "playlists", "--format", "csv", "--out", "-")
    assert export.returncode == 0, export.stderr
    recommended = cli("recommend", "--lake", str(lake), "--for-me", "--user", USER, "--n", "3")
    assert recommended.returncode == 0 and "3 songs for user alice" in recommended.stdout, recommended.stderr
    server = Dashboard(lake, "127.0.0.1", 0).start()
    try:
        for path in ("/api/summary", "/api/reports", "/api/playlists"):
            assert httpx.get(server.url + path, timeout=30).status_code == 200, path
        answer = httpx.post(server.url + "/graphql", json={"query": GRAPHQL}, timeout=30).json()
        assert "errors" not in answer, answer
    finally:
        server.stop()
    # A second import still creates nothing it does not fill (`recommend` stored its results).
    _import(lake, tmp_path / "later", {"Streaming_History_Audio_2025.json": [_extended(n) for n in range(50, 60)]})
    assert set(Catalog(lake).table_names()) == IMPORT_TABLES | {"recommendations"}
