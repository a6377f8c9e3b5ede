"""Table layout (issue #20): tables are written sorted by one column in files of `PUBLISH_ROWS` rows, and a
run replaces only the rows of the keys it changed, so it rewrites only the files holding them; time series
are appended. A lake made before the layout needs nothing: its next run is correct, if not yet as cheap."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import publish, transform

from ..conftest import SimulatorFactory
from .test_transform import extract_at, rows, table_contents


def data_files(catalog: Catalog, name: str) -> set[str]:
    return set(catalog.data_files(name))


def deleted_positions(catalog: Catalog, name: str) -> dict[str, set[int]]:
    """The rows of each data file that the table's position delete files mark deleted."""
    deleted: dict[str, set[int]] = {}
    for path in catalog.files(name).deletes:
        for row in pq.read_table(path).to_pylist():
            deleted.setdefault(row["file_path"].removeprefix("file://"), set()).add(row["pos"])
    return deleted


def holding(paths: set[str], column: str, value: str) -> set[str]:
    """The files among `paths` with a row whose `column` is `value`."""
    return {p for p in paths if value in pq.read_table(p, columns=[column]).column(column).to_pylist()}


def day(n: int) -> dt.datetime:
    return dt.datetime(2026, 10, n, 12, tzinfo=dt.UTC)


def test_a_changed_playlist_rewrites_only_the_files_holding_it(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)  # several files per table at this size
    server = make_simulator(playlists=8, items_per_playlist=30)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    extract_at(server, tmp_path, day(1))
    transform(storage, catalog)
    before = {name: data_files(catalog, name) for name in ("playlist_songs", "song_popularity", "songs")}
    assert len(before["playlist_songs"]) > 4
    changed = server.catalog.id_of("playlist", 3)
    touched = holding(before["playlist_songs"], "playlist_id", changed)
    assert len(touched) <= 2  # sorted by playlist: one playlist's rows lie in one file, or two adjacent
    server.mutate([3])
    extract_at(server, tmp_path, day(2))
    result = transform(storage, catalog)
    assert result.batch_rows["playlist_songs"] > 0
    after = {name: data_files(catalog, name) for name in before}
    assert after["playlist_songs"] >= before["playlist_songs"] - touched  # every other file kept as it was
    # A touched file is rewritten, or keeps its other rows with the playlist's marked deleted (merge-on-read).
    deleted = deleted_positions(catalog, "playlist_songs")
    assert deleted.keys() <= touched
    for path in after["playlist_songs"] & touched:
        ids = pq.read_table(path, columns=["playlist_id"]).column("playlist_id").to_pylist()
        assert deleted[path] == {pos for pos, pid in enumerate(ids) if pid == changed}
    assert after["song_popularity"] > before["song_popularity"]  # a new day of popularity: appended
    # A song file is rewritten only if it holds a song the batch saw again (its last_seen_at moves on).
    seen = {s for (s,) in rows(tmp_path, f"SELECT song_id FROM playlist_songs WHERE playlist_id = '{changed}'")}
    for path in before["songs"] - after["songs"]:
        assert seen & set(pq.read_table(path, columns=["song_id"]).column("song_id").to_pylist()), path
    for path, positions in deleted_positions(catalog, "songs").items():
        ids = pq.read_table(path, columns=["song_id"]).column("song_id").to_pylist()
        assert {ids[pos] for pos in positions} <= seen, path
    incremental = table_contents(tmp_path)
    transform(storage, catalog, rebuild=True)
    assert table_contents(tmp_path) == incremental


def test_a_lake_made_before_the_layout_is_right_on_its_next_run(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_simulator(playlists=6, items_per_playlist=30)
    storage = LocalStorage(tmp_path)
    with monkeypatch.context() as old_code:  # before #20: every changed table overwritten whole, unsorted
        old_code.setattr(publish, "FILTERED_PUBLISH", False)
        old_code.setattr(publish, "sort_order", lambda name: "")
        extract_at(server, tmp_path, day(1))
        transform(storage, Catalog(tmp_path))
    for step, changed in ((2, [2]), (3, [4, 0])):
        server.mutate(changed)
        extract_at(server, tmp_path, day(step))
        before = data_files(Catalog(tmp_path), "song_popularity")
        transform(storage, Catalog(tmp_path))
        assert data_files(Catalog(tmp_path), "song_popularity") > before  # appended, not rewritten
    incremental = table_contents(tmp_path)
    transform(storage, Catalog(tmp_path), rebuild=True)
    assert table_contents(tmp_path) == incremental
