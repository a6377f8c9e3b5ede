"""A lake (or a history download) whose path holds `[`, `*`, `?`, a space or a `'` reads its own files, never
those of a folder the path would match as a glob pattern: DuckDB's readers glob every path they are given.

Beside each real folder sits a decoy that the unescaped pattern matches (`[1]` matches `1`, `*` and `?` any
character), holding the same files with other rows: every string a decoy Parquet file holds is `DECOY`, and
every name in a decoy raw file too. Real runs against the simulated API over HTTP, real Parquet and Iceberg.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.errors import QueryError
from spotify_pipeline.history.importer import import_history
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.query.export import export_table
from spotify_pipeline.recommend.service import build_model, recommend_for_playlist
from spotify_pipeline.simulator.history import write_export
from spotify_pipeline.tables.catalog import Catalog, open_catalog
from spotify_pipeline.tables.contract import TABLES
from spotify_pipeline.tables.files import glob_escaped, glob_unescaped, sql_path, sql_string
from spotify_pipeline.tables.repair import repair_lake
from tests.conftest import SimulatorFactory, settings_for

DECOY = "DECOY"
HOSTILE = "music [1] it's a*b"  # what a user may name a folder (a lake's path holds no `?`: catalog.py)
MATCHED = "music 1 it's aXb"  # a folder the unescaped pattern of HOSTILE matches
DOWNLOAD, DOWNLOAD_MATCHED = "my data [1] it's a*b?", "my data 1 it's aXbZ"  # a history download may hold `?`


def poison(folder: Path) -> None:
    """Give every Parquet file under `folder` other rows (each string `DECOY`) and every raw file other
    names, so that a reader that opened one of them shows it."""
    for path in folder.rglob("*.parquet"):
        table = pq.read_table(path)
        columns = [
            pc.if_else(pc.is_null(c), pa.scalar(None, c.type), pa.scalar(DECOY, c.type))
            if pa.types.is_string(c.type) or pa.types.is_large_string(c.type)
            else c
            for c in table.columns
        ]
        pq.write_table(pa.Table.from_arrays(columns, schema=table.schema), path)
    for path in folder.rglob("*.jsonl.gz"):
        lines = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        path.write_bytes(gzip.compress(b"".join(json.dumps(_renamed(r)).encode() + b"\n" for r in lines)))


def _renamed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: DECOY if k == "name" and isinstance(v, str) else _renamed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return value


def every_row(lake: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows as the query sandbox reads them (DuckDB over the files), sorted."""
    with QueryEngine(open_catalog(str(lake))) as engine:
        return {n: sorted(engine.execute(f"SELECT * FROM {n}").rows, key=repr) for n in engine.tables if n in TABLES}


def as_pyiceberg_reads(lake: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The same through pyiceberg (pyarrow, which never globs): the truth to compare with."""
    catalog = Catalog(lake)
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name in catalog.table_names():
        if name in TABLES:
            arrow = catalog.table(name).scan().to_arrow()
            out[name] = sorted((tuple(r.values()) for r in arrow.to_pylist()), key=repr)
    return out


def no_decoy(rows: dict[str, list[tuple[Any, ...]]]) -> None:
    for name, table in rows.items():
        assert not [r for r in table if DECOY in r], f"{name} shows rows of the decoy folder"


def test_sql_path_matches_only_that_file(tmp_path: Path) -> None:
    """The literal opens the file itself for every special character, and no other file."""
    import duckdb

    pairs = (("x[1]", "x1"), ("a*b", "aXb"), ("q?r", "qZr"), ("it's [o]", "it's o"), (DOWNLOAD, DOWNLOAD_MATCHED))
    for real, decoy in pairs:
        for folder, value in ((tmp_path / decoy, 2), (tmp_path / real, 1)):
            folder.mkdir()
            pq.write_table(pa.table({"v": [value]}), folder / "f.parquet")
        path = str(tmp_path / real / "f.parquet")
        got = duckdb.connect().execute(f"SELECT v, filename FROM read_parquet({sql_path(path)}, filename = true)")
        assert got.fetchall() == [(1, path)]  # `filename` is the file's own path, unescaped


def test_an_escaped_path_names_one_path_and_a_pattern_none() -> None:
    """`glob_unescaped` (the S3 lookup, lake/s3.py) undoes exactly `glob_escaped`, and refuses real patterns."""
    for path in ("s3://b/x[1]/f.parquet", "a*b?c", "plain", "it's [o]", "[[]", "]", "a["):
        assert glob_unescaped(glob_escaped(path)) == path
    for pattern in ("s3://b/x[1]/f", "*.parquet", "a?", "x[ab]", "x[", "x[[]1]/*"):
        assert glob_unescaped(pattern) is None


def test_a_lake_under_glob_characters_reads_only_its_own_files(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    lake, decoy = tmp_path / HOSTILE / "lake", tmp_path / MATCHED / "lake"
    settings = settings_for(server, lake)
    assert pipeline.run(settings, server.playlist_ids()).status == "succeeded"
    build_model(LocalStorage(lake), Catalog(lake))
    shutil.copytree(lake, decoy)
    poison(decoy)

    # A second run: its transform reads the raw zone and the tables, and a keyed replace writes deletes.
    server.catalog.empty([1])
    assert pipeline.run(settings, server.playlist_ids()).status == "succeeded"
    rows, truth = every_row(lake), as_pyiceberg_reads(lake)
    assert {n: rows[n] for n in truth} == truth
    no_decoy(rows)
    assert len(rows["playlists"]) == 3 and rows["songs"]

    # The query sandbox allows the escaped spelling of its files, and nothing the unescaped one matches.
    own = next(p for p in (lake / "warehouse").rglob("*.parquet") if "/songs/data/" in p.as_posix())
    with QueryEngine(open_catalog(str(lake))) as engine:
        assert engine.execute(f"SELECT count(*) FROM read_parquet({sql_path(str(own))})").rows[0][0] > 0
        for pattern in (str(own), str(decoy / own.relative_to(lake))):
            with pytest.raises(QueryError, match="Permission"):
                engine.execute(f"SELECT * FROM read_parquet({sql_string(pattern)})")

    # `export` writes (COPY ... TO) the literal path, into a folder of the same kind.
    out = tmp_path / HOSTILE / "songs.parquet"
    assert export_table(Catalog(lake), "songs", "parquet", out) == len(rows["songs"]) == pq.read_table(out).num_rows
    assert not (tmp_path / MATCHED / "songs.parquet").exists()

    # Recommendations read the model file (Parquet) in the lake.
    pid = server.catalog.id_of("playlist", 2)  # no seeds left in common: the popular songs, named by the model
    found = recommend_for_playlist(LocalStorage(lake), Catalog(lake), pid, 5)
    assert found.items and all(r.song and DECOY not in (r.song, r.artist, r.reason) for r in found.items)

    # A history download in such a folder, beside a decoy download of another user's other plays. Its user
    # is read from the legacy files, and a field the format does not document sends it to the checked parse:
    # both read the files with DuckDB.
    user, formats = server.login_user, ("extended", "legacy")
    export = write_export(
        server.catalog, user, tmp_path / DOWNLOAD / "export", plays=30, formats=formats, form="folder", extra_field=True
    )
    beside = tmp_path / DOWNLOAD_MATCHED / "export"
    write_export(server.catalog, "someone-else", beside, plays=7, formats=formats, form="folder")
    names = [{p.relative_to(d) for p in d.rglob("*.json")} for d in (beside, export.path)]
    assert names[0] == names[1]  # the decoy holds files of the same names
    import_history(settings, export.path)
    with QueryEngine(open_catalog(str(lake))) as engine:
        plays = engine.execute("SELECT user_id, count(*) FROM listens WHERE source = 'export' GROUP BY 1").rows
    assert plays == [(user, len(export.distinct_detailed_plays()))]

    # A copy repaired in a folder of the same kind reads the copy's files, not its decoy's.
    copy, copy_decoy = tmp_path / "copy [1]" / "lake", tmp_path / "copy 1" / "lake"
    shutil.copytree(lake, copy)
    shutil.copytree(lake, copy_decoy)
    poison(copy_decoy)
    before = every_row(lake)
    repair_lake(copy)
    after = every_row(copy)
    no_decoy(after)
    assert {n: len(r) for n, r in after.items()} == {n: len(r) for n, r in before.items()}
