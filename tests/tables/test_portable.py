"""A lake is a folder you can copy, move and back up: a copy never reads or writes its original, a moved or
copied lake is refused with one line until `repair` makes it independent, and a lost catalog is never
silently replaced by an empty one (real processes against the simulated API)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline import Lake
from spotify_pipeline.lake.layout import PUBLISH_JOURNAL_KEY
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig, SimulatedSpotify
from spotify_pipeline.tables.catalog import open_catalog
from tests.conftest import LakeTemplates, SimulatorFactory, cli, comparable_tables, referenced_files, sim_env
from tests.serve.test_consistent_open import FINGERPRINT, start_paused_run

# Tables whose rows are history: not rebuildable from the raw zone, so a repair must keep every row.
HISTORY = {
    "pipeline_runs": "run_id, status, error",
    "processed_raw_runs": "raw_run_id",
    "quality_results": "run_id, check_name, passed",
}


SERVER = {"playlists": 3, "items_per_playlist": 20}


@pytest.fixture
def server(make_simulator: SimulatorFactory) -> SimulatedSpotify:
    return make_simulator(**SERVER)


@pytest.fixture
def lake(lake_templates: LakeTemplates) -> Path:
    """A lake made by a real run and a transform (two rows of pipeline_runs, history in every table), at
    <folder>/original/lake, copies going beside it: made once per worker from a simulator with the same seed
    as `server`'s, and restored into its own folder for each test (conftest.py LakeTemplates)."""

    def build(folder: Path) -> None:
        source = SimulatedSpotify(SimCatalog(CatalogConfig(**SERVER))).start()
        try:
            root = folder / "original" / "lake"
            ok(cli("run", *playlists(source), env=sim_env(source, root)))
            ok(cli("transform", env=sim_env(source, root)))
        finally:
            source.stop()

    return lake_templates.restore("portable", build) / "original" / "lake"


def playlists(server: SimulatedSpotify) -> list[str]:
    return [arg for pid in server.playlist_ids() for arg in ("--playlist", pid)]


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def refused(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The command failed cleanly: exit 6 (a lake error), one line, no traceback, saying `words`."""
    assert result.returncode == 6, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root with its content hash and modification time."""
    return {
        str(path.relative_to(root)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def history(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    with QueryEngine(open_catalog(str(root))) as engine:
        return {
            name: sorted(engine.execute(f"SELECT {cols} FROM {name}").rows, key=repr) for name, cols in HISTORY.items()
        }


def files_of(root: Path) -> set[str]:
    return referenced_files(open_catalog(str(root)))


def test_a_copied_lake_never_touches_its_original_and_works_after_repair(lake: Path, server: SimulatedSpotify) -> None:
    copy = lake.parent.parent / "copy" / "lake"
    shutil.copytree(lake, copy)
    before = fingerprint(lake)
    line = refused(cli("run", *playlists(server), "--lake", str(copy), env=sim_env(server, copy)), "repair", str(copy))
    assert str(lake) in line  # where it was copied from
    refused(cli("transform", "--lake", str(copy)), "repair")
    refused(cli("query", "--lake", str(copy), "SELECT count(*) FROM songs"), "repair")
    refused(cli("check", "--lake", str(copy)), "repair")
    assert fingerprint(lake) == before

    ok(cli("repair", "--lake", str(copy)))
    assert all(path.startswith(copy.as_uri() + "/") for path in files_of(copy))
    ok(cli("run", *playlists(server), "--full", "--lake", str(copy), env=sim_env(server, copy)))
    ok(cli("query", "--lake", str(copy), "SELECT count(*) FROM songs"))
    assert fingerprint(lake) == before  # not one byte of the original changed, nothing was added to it
    assert all(path.startswith(copy.as_uri() + "/") for path in files_of(copy))
    assert comparable_tables(copy) == comparable_tables(lake)
    assert len(history(copy)["pipeline_runs"]) == len(history(lake)["pipeline_runs"]) + 1


def test_a_copy_outlives_its_deleted_original(lake: Path, server: SimulatedSpotify) -> None:
    tables, runs = comparable_tables(lake), history(lake)
    copy = lake.parent.parent / "copy"
    shutil.copytree(lake, copy)
    shutil.rmtree(lake.parent)
    refused(cli("query", "--lake", str(copy), "SELECT count(*) FROM songs"), "repair")
    refused(cli("tables", "--lake", str(copy)), "repair")

    result = ok(cli("repair", "--lake", str(copy)))
    assert "history" in result.stdout  # says what a repair of a copy gives up: earlier snapshots
    assert not result.stderr  # no warnings either
    assert comparable_tables(copy) == tables
    assert history(copy) == runs  # every row of the run history is kept
    ok(cli("transform", "--lake", str(copy)))
    assert not lake.parent.exists()
    # The copied files of the old catalog are gone: the warehouse holds only what the new one references.
    warehouse = {p.as_uri() for p in (copy / "warehouse").rglob("*") if p.is_file() and "metadata.json" not in p.name}
    assert warehouse == files_of(copy)


def test_a_moved_lake_is_refused_until_repaired(lake: Path, server: SimulatedSpotify) -> None:
    tables, runs = comparable_tables(lake), history(lake)
    moved = lake.parent / "renamed"
    lake.rename(moved)
    refused(cli("run", *playlists(server), "--lake", str(moved), env=sim_env(server, moved)), "moved", "repair")
    assert not lake.exists()  # nothing recreated at the old place
    ok(cli("repair", "--lake", str(moved)))
    assert comparable_tables(moved) == tables and history(moved) == runs
    ok(cli("run", *playlists(server), "--lake", str(moved), env=sim_env(server, moved)))
    assert not lake.exists()


def test_repair_leaves_a_healthy_lake_alone(lake: Path) -> None:
    before = fingerprint(lake)
    result = ok(cli("repair", "--lake", str(lake)))
    assert "nothing to repair" in result.stdout
    assert fingerprint(lake) == before


@pytest.mark.parametrize("damage", ["empty", "missing", "garbage"])
def test_a_lost_catalog_is_refused_not_recreated(lake: Path, server: SimulatedSpotify, damage: str) -> None:
    tables, runs = comparable_tables(lake), history(lake)
    snapshots = {n: len(open_catalog(str(lake)).table(n).metadata.snapshots) for n in HISTORY}
    db = lake / "catalog.db"
    if damage == "missing":
        db.unlink()
    else:
        db.write_bytes(b"" if damage == "empty" else b"not a database" * 100)
    refused(cli("run", *playlists(server), env=sim_env(server, lake)), "catalog.db", "repair")
    refused(cli("query", "--lake", str(lake), "SELECT count(*) FROM songs"), "catalog.db")
    refused(cli("transform", "--rebuild", "--lake", str(lake)), "catalog.db")
    assert db.exists() == (damage != "missing") and (not db.exists() or b"SQLite" not in db.read_bytes())

    ok(cli("repair", "--lake", str(lake)))
    assert comparable_tables(lake) == tables and history(lake) == runs
    # The tables were registered again from their own metadata files: their snapshot history is kept.
    assert {n: len(open_catalog(str(lake)).table(n).metadata.snapshots) for n in HISTORY} == snapshots
    ok(cli("transform", "--lake", str(lake)))


def test_a_new_lake_still_starts_from_nothing(tmp_path: Path, server: SimulatedSpotify) -> None:
    root = tmp_path / "fresh"
    ok(cli("run", *playlists(server), env=sim_env(server, root)))
    assert (root / "catalog.db").stat().st_size > 0


def test_a_lake_whose_path_has_a_space_keeps_every_file_inside_it(tmp_path: Path) -> None:
    # pyiceberg 0.12 took a percent-encoded warehouse URI literally: metadata went to `my%20lake` beside it.
    import pyarrow as pa

    from spotify_pipeline.tables.catalog import Catalog
    from spotify_pipeline.tables.contract import TABLES

    schema = TABLES["processed_raw_runs"].schema
    catalog = Catalog(tmp_path / "my lake")
    catalog.overwrite("processed_raw_runs", pa.Table.from_pylist([{"raw_run_id": "r1"}], schema=schema))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my lake"]
    assert Catalog(tmp_path / "my lake").read("processed_raw_runs").column("raw_run_id").to_pylist() == ["r1"]


def test_repairing_an_incomplete_copy_is_refused_and_changes_no_catalog(lake: Path) -> None:
    copy = lake.parent.parent / "copy"
    shutil.copytree(lake, copy)
    for path in (copy / "warehouse" / "spotify" / "songs" / "data").iterdir():
        path.unlink()
    catalog = (copy / "catalog.db").read_bytes()
    refused(cli("repair", "--lake", str(copy)), "songs", "incomplete")
    assert (copy / "catalog.db").read_bytes() == catalog
    assert not (copy / "catalog.db.repair").exists()
    refused(cli("tables", "--lake", str(copy)), "moved", "repair")


def test_a_copy_whose_tables_have_delete_files_repairs_to_the_same_rows(
    lake: Path, server: SimulatedSpotify, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from spotify_pipeline.lake import LocalStorage
    from spotify_pipeline.tables import replace
    from spotify_pipeline.tables.catalog import Catalog
    from spotify_pipeline.transform import transform
    from tests.transform.test_transform import extract_at

    monkeypatch.setattr(replace, "REWRITE_SHARE", 1.0)  # small tables: mark rows deleted, never rewrite
    server.mutate([0])
    extract_at(server, lake, dt.datetime.now(dt.UTC))
    transform(LocalStorage(lake), Catalog(lake))
    assert Catalog(lake).files("songs").deletes  # the delete files name the original's data files
    tables, runs = comparable_tables(lake), history(lake)
    copy = lake.parent.parent / "copy" / "lake"
    shutil.copytree(lake, copy)
    ok(cli("repair", "--lake", str(copy)))
    assert comparable_tables(copy) == tables and history(copy) == runs
    assert all(path.startswith(copy.as_uri() + "/") for path in files_of(copy))


def test_a_repaired_copy_keeps_its_tables_properties(lake: Path) -> None:
    """The copy's tables are recreated by `repair`: they must keep what the original's tables say about
    themselves (e.g. tables/contract.py `LAST_SEEN_MODEL`, without which the next transform rebuilds the
    whole lake from the raw zone)."""
    copy = lake.parent.parent / "copy" / "lake"
    shutil.copytree(lake, copy)
    ok(cli("repair", "--lake", str(copy)))
    original, copied = open_catalog(str(lake)), open_catalog(str(copy))
    for name in original.table_names():
        assert copied.table(name).properties == original.table(name).properties, name


# What readers see of a lake: every table a publish commits (rows and a sum of row hashes), and the run history.
READERS_VIEW = f"{FINGERPRINT} UNION ALL SELECT 'pipeline_runs', count(*), '' FROM pipeline_runs"


def readers_view(root: Path) -> dict[str, tuple[int, str]]:
    """The lake as `query`, `report` and the library show it (Lake.engine: the snapshots query/consistent.py
    picks; `serve` opens the same)."""
    with Lake.open(root).engine() as engine:
        return {t: (n, h) for t, n, h in engine.execute(READERS_VIEW).rows}


@pytest.mark.parametrize(
    "command, point",
    [("run", "transform.run_recorded"), ("rebuild", "transform.table_committed:7")],
)
def test_a_lake_left_mid_publish_then_copied_or_its_catalog_lost_repairs_and_finishes_the_run(
    lake: Path, server: SimulatedSpotify, command: str, point: str
) -> None:
    """A run killed in its publish leaves its journal, naming snapshot ids: here after every table and its own
    pipeline_runs line were committed, or a rebuild half-way through its tables. A backup taken then (a copy,
    whose tables `repair` rewrites as new ones, new ids): after `repair` its readers show every table as
    before the run (never half of it, never an error), and the next `run` (or `transform`) finishes it, alike
    with the original's own re-run. The rebuild's original also loses its catalog.db (tables registered
    again, ids kept) and is repaired first. The copy's first repair is killed between its catalog's rename
    and its journal's: the next repair finishes it."""
    args = playlists(server)
    tables = comparable_tables(lake)
    server.mutate([0, 1])
    if command == "rebuild":  # every table overwritten from the raw zone, the new run's raw files included
        ok(cli("extract", *args, env=sim_env(server, lake)))
    before = readers_view(lake)
    if command == "rebuild":
        killed = start_paused_run(lake, sim_env(server, lake), ["transform", "--rebuild"], point)
    else:
        killed = start_paused_run(lake, sim_env(server, lake), ["run", *args], point)
    os.kill(killed.pid, signal.SIGKILL)  # dies mid-publish: its journal stays
    killed.wait(timeout=60)
    assert (lake / PUBLISH_JOURNAL_KEY).exists()
    assert readers_view(lake) == before
    copy = lake.parent.parent / "copy" / "lake"
    shutil.copytree(lake, copy)  # the backup taken after the crash
    repaired = [copy]
    if command == "rebuild":
        (lake / "catalog.db").unlink()  # and the original loses its catalog
        repaired.append(lake)
    killed_repair = cli("repair", "--lake", str(copy), env={"SPOTIFY_PIPELINE_CRASH_AT": "repair.catalog_swapped"})
    assert killed_repair.returncode == -signal.SIGKILL  # its new catalog in place, its journal staged beside
    for root in repaired:
        said = ok(cli("repair", "--lake", str(root))).stdout
        assert ("finished an interrupted repair" in said) == (root == copy), said
        assert readers_view(root) == before, root
    finish = ["transform"] if command == "rebuild" else ["run", *args]
    for root in (copy, lake):
        ok(cli(*finish, "--lake", str(root), env=sim_env(server, root)))
        assert not (root / PUBLISH_JOURNAL_KEY).exists()
    after = comparable_tables(lake)
    assert comparable_tables(copy) == after and after != tables
    counts = {root: {t: n for t, (n, _) in readers_view(root).items()} for root in (copy, lake)}
    assert counts[copy] == counts[lake]  # processed_raw_runs and pipeline_runs too
