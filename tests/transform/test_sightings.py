"""Sightings that find nothing new change no row (issue #20): `last_seen_at` of songs, albums and artists is
when the pipeline last found something new about them, so a run that sees them again unchanged (a playlist
extracted again, another playlist holding the same songs) commits nothing to those tables, and a rebuild
still gives exactly the incremental rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from spotify_pipeline.config import Secret
from spotify_pipeline.extract import ClientCredentialsAuth, Extractor, SpotifyClient
from spotify_pipeline.extract.extractor import ExtractOptions
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import LAST_SEEN_MODEL
from spotify_pipeline.transform import transform

from ..conftest import SimulatorFactory
from .test_layout import day
from .test_transform import extract_at, rows, table_contents

# The tables whose rows a song seen again unchanged must leave as they are.
SONG_TABLES = ("songs", "albums", "artists", "song_artists", "album_artists")


def extract_all_at(server: SimulatedSpotify, lake: Path, when: dt.datetime) -> None:
    """Extract every playlist's items again (`--full`), as if each had a new snapshot of the same tracks."""
    auth = ClientCredentialsAuth(server.accounts_url, server.client_id, Secret(server.client_secret))
    with SpotifyClient(server.api_url, auth, clock=lambda: when) as client:
        Extractor(client, LocalStorage(lake), ExtractOptions(full=True), clock=lambda: when).run(server.playlist_ids())


def snapshots(catalog: Catalog) -> dict[str, int | None]:
    return {name: catalog.snapshot_id(name) for name in SONG_TABLES}


def test_songs_seen_again_unchanged_commit_no_rows(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=4, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    extract_at(server, tmp_path, day(1))
    transform(storage, catalog)
    before, seen = snapshots(catalog), rows(tmp_path, "SELECT song_id, last_seen_at FROM songs ORDER BY 1")
    extract_all_at(server, tmp_path, day(1) + dt.timedelta(hours=1))
    result = transform(storage, catalog)
    assert result.batch_rows["songs"] == len(seen)  # every song was seen again
    assert snapshots(catalog) == before  # and none of their tables was committed
    assert rows(tmp_path, "SELECT song_id, last_seen_at FROM songs ORDER BY 1") == seen
    incremental = table_contents(tmp_path)
    transform(storage, catalog, rebuild=True)
    assert table_contents(tmp_path) == incremental


def test_a_changed_song_alone_is_rewritten_and_dated(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    """A playlist changed upstream: only songs whose values changed (here: none but the new ones and those
    whose popularity moved) are written, and `last_seen_at` moves only for songs first seen or changed."""
    server = make_simulator(playlists=4, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    extract_at(server, tmp_path, day(1))
    transform(storage, catalog)
    old = dict(rows(tmp_path, "SELECT song_id, last_seen_at FROM songs"))
    old_rows = {r[0]: r for r in rows(tmp_path, "SELECT * FROM songs")}
    server.mutate([1])
    extract_at(server, tmp_path, day(2))
    result = transform(storage, catalog)
    new = dict(rows(tmp_path, "SELECT song_id, last_seen_at FROM songs"))
    moved = {s for s in new if s not in old or new[s] != old[s]}
    assert moved == {s for s in new if s not in old}  # names, albums, artists of old songs did not change
    # Only the rows that changed (new songs, a popularity moved on) were written, not every song seen again.
    changed = {r[0] for r in rows(tmp_path, "SELECT * FROM songs") if old_rows.get(r[0]) != r}
    written = int(catalog.table("songs").current_snapshot().summary["added-records"])
    assert 0 < written == len(changed) < result.batch_rows["songs"]
    incremental = table_contents(tmp_path)
    transform(storage, catalog, rebuild=True)
    assert table_contents(tmp_path) == incremental


def test_a_lake_written_before_is_rebuilt_once_on_its_next_run(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    """A lake whose songs hold each row's last sighting (written before this model: no table property) gets
    the rows a rebuild gives on its next transform, even with nothing new to read, and then runs as usual."""
    server = make_simulator(playlists=3, items_per_playlist=15)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    extract_at(server, tmp_path, day(1))
    transform(storage, catalog)
    extract_all_at(server, tmp_path, day(2))
    transform(storage, catalog)
    current = table_contents(tmp_path)
    # As the code before wrote it: last_seen_at the last sighting (day 2), no property saying otherwise.
    songs = catalog.read("songs")
    sighted = pa.array([day(2)] * songs.num_rows, songs.schema.field("last_seen_at").type)
    catalog.overwrite("songs", songs.set_column(songs.schema.get_field_index("last_seen_at"), "last_seen_at", sighted))
    catalog.table("songs").transaction().remove_properties(LAST_SEEN_MODEL[0]).commit_transaction()
    assert table_contents(tmp_path) != current
    result = transform(storage, catalog)
    assert result.rebuilt and table_contents(tmp_path) == current
    assert catalog.marked("songs", *LAST_SEEN_MODEL)
    assert not transform(storage, catalog).rebuilt  # once
