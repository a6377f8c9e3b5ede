"""The transform's DuckDB temp relations are declared once (transform/relations.py) and the declaration holds:
a real transform builds every declared relation with its declared columns, a step run before the relations it
reads exists fails naming them, and no SQL under transform/ (or the listening-history step) creates a temp
relation the declaration does not name."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

import spotify_pipeline
from spotify_pipeline.config import Secret
from spotify_pipeline.extract import ClientCredentialsAuth, Extractor, SpotifyClient
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import DATA_TABLES
from spotify_pipeline.transform import changes, raw, transform, user_tables
from spotify_pipeline.transform.connection import connect
from spotify_pipeline.transform.merge import MERGES, Derived
from spotify_pipeline.transform.relations import (
    RAW_ENTITIES,
    RELATIONS,
    STEPS,
    RelationError,
    checked_step,
    temp_columns,
    verify,
)

from ..conftest import SimulatorFactory

SRC = Path(spotify_pipeline.__file__).parent
# The modules whose SQL builds the transform's relations.
TRANSFORM_SQL = [*sorted((SRC / "transform").glob("*.py")), SRC / "history" / "listens.py"]


def test_the_declaration_is_consistent() -> None:
    """Each relation names a declared step, each step builds what names it, raw views match the read shapes."""
    for relation in RELATIONS.values():
        assert relation.step in STEPS, f"{relation.name}: unknown step {relation.step}"
        assert relation.scratch or relation.columns, f"{relation.name}: no columns declared"
    for step in STEPS.values():
        for name in (*step.reads, *step.changes):
            assert name in RELATIONS, f"step {step.name} reads undeclared {name}"
    assert set(RAW_ENTITIES) == set(raw.BODY_TYPES)
    for table, rule in MERGES.items():  # each staging step reads what its merge rule reads
        # a derived table reads its inputs after their merge (listens: history/listens.py reads the staged
        # events, merged whole: transform/scope.py); the others, the batch and the old rows of its keys
        inputs = ["staged_listen_events"] if table == "listens" else [f"new_{i}" for i in getattr(rule, "inputs", ())]
        reads = inputs if isinstance(rule, Derived) else [f"b_{table}", f"touched_{table}"]
        assert list(STEPS[f"stage_{table}"].reads) == reads
        assert all(name in RELATIONS and not RELATIONS[name].scratch for name in reads)


@pytest.fixture
def small_raw_run(make_simulator: SimulatorFactory, tmp_path: Path) -> Path:
    """A lake with one raw run of two small playlists, extracted over real HTTP."""
    server: SimulatedSpotify = make_simulator(playlists=2, items_per_playlist=6)
    auth = ClientCredentialsAuth(server.accounts_url, server.client_id, Secret(server.client_secret))
    with SpotifyClient(server.api_url, auth) as client:
        Extractor(client, LocalStorage(tmp_path)).run(server.playlist_ids())
    return tmp_path


def test_a_transform_builds_every_declared_relation_with_its_columns(small_raw_run: Path) -> None:
    seen: dict[str, list[str]] = {}

    def inspect(con: duckdb.DuckDBPyConnection) -> None:
        seen.update(temp_columns(con))

    result = transform(LocalStorage(small_raw_run), Catalog(small_raw_run), stage_hook=inspect)
    assert result.raw_runs
    lasting = {name: r for name, r in RELATIONS.items() if not r.scratch}
    # every DATA table staged, and on a first transform every table's old rows are registered
    assert {f"staged_{n}" for n in DATA_TABLES} <= set(lasting)
    for name, relation in lasting.items():
        if name in ("old_listens", "old_artist_stats", "keys_artist_stats", "touched_artist_stats", "artist_credits"):
            continue  # derived tables recomputed whole on a first transform: their old rows are never read
        assert name in seen, f"{name} was not built"
        assert seen[name] == list(relation.columns), f"{name}: columns differ from the declaration"
    built_scratch = sorted(n for n in seen if n in RELATIONS and RELATIONS[n].scratch)
    assert built_scratch == [], "scratch relations outlive their step"


def test_a_step_run_before_its_inputs_fails_naming_them() -> None:
    con = connect()
    try:
        with pytest.raises(RelationError, match=r"build_changes reads item_rows, .*not built yet.*build_batch"):
            changes.build_changes(con)
        with pytest.raises(RelationError, match=r"build_user_tables reads raw_saved_tracks, .*not built yet"):
            user_tables.build_user_tables(con)
        with (
            pytest.raises(RelationError, match=r"add_listened_songs reads b_listen_events"),
            checked_step(con, "add_listened_songs"),
        ):
            pytest.fail("the step's body ran")
        # a derived table staged before its inputs
        with (
            pytest.raises(RelationError, match=r"stage_artist_stats reads new_playlist_songs"),
            checked_step(con, "stage_artist_stats"),
        ):
            pytest.fail("the step's body ran")
        # and nothing was built by the refused steps
        assert temp_columns(con) == {}
    finally:
        con.close()


def test_a_relation_built_with_other_columns_fails_naming_them() -> None:
    con = connect()
    try:
        con.execute("CREATE TEMP TABLE complete (run_id VARCHAR, playlist_id VARCHAR, snapshot_id VARCHAR)")
        with pytest.raises(RelationError, match=r"complete has columns .* declared .*missing: items, manifest"):
            verify(con, ["complete"])
        con.execute("CREATE TEMP TABLE complete_sources (run_id VARCHAR, source VARCHAR)")
        verify(con, ["complete_sources"])  # as declared: passes
        with pytest.raises(RelationError, match="b_plays_typo is not declared"):
            verify(con, ["b_plays_typo"])
    finally:
        con.close()


CREATE = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+(?:TABLE|VIEW)\s+([\w{}\[\]\"'.]+)"
    r"|ALTER\s+TABLE\s+\S+\s+RENAME\s+TO\s+([\w{}]+)",
    re.IGNORECASE,
)
# Helpers whose relation name is wholly chosen by their caller; their callers' names are checked below.
CALLER_NAMED = {"{table}", "{view}"}
CALLERS = re.compile(r"(?<!\w)accumulate\(\s*con,\s*\"(\w+)\"|register_base\(con, catalog, \"(\w+)\"")


def _matches(template: str) -> list[str]:
    """Declared relations a name template (`staged_{name}`, `raw_{entity}`) stands for."""
    pattern = re.compile("^" + re.sub(r"\\\{[^}]*\\\}", r"\\w+", re.escape(template)) + "$")
    return [name for name in RELATIONS if pattern.match(name)]


def test_no_sql_in_the_transform_creates_an_undeclared_relation() -> None:
    found: list[tuple[str, str]] = []
    for module in TRANSFORM_SQL:
        text = module.read_text()
        found += [(module.name, a or b) for a, b in CREATE.findall(text)]
        found += [(module.name, a or f"old_{b}") for a, b in CALLERS.findall(text)]
    assert len(found) > 20, "the pattern no longer finds the transform's SQL"
    undeclared = [(m, n) for m, n in found if n not in CALLER_NAMED and not _matches(n)]
    assert undeclared == []


def test_publishing_is_a_checked_step(small_raw_run: Path) -> None:
    # Publishing reads the staged rows (and, for a keyed table, the batch's keys): run before they exist it
    # fails naming them, and commits nothing.
    from spotify_pipeline.transform.publish import publish_table

    catalog, con = Catalog(small_raw_run), connect()
    try:
        with pytest.raises(RelationError, match=r"publish_songs reads staged_songs, .*not built yet.*stage_songs"):
            publish_table(con, catalog, "songs", False, {})
        assert "songs" not in catalog.table_names()
    finally:
        con.close()


def test_a_filtered_publish_leaves_no_relation_behind(small_raw_run: Path) -> None:
    # The keys a publish replaces (`changed_<table>`) live only inside the publish step (scratch): a
    # filtered publish of one song's rows drops them before the step ends, and the table keeps the others.
    from spotify_pipeline.transform.connection import register_table
    from spotify_pipeline.transform.publish import publish_table

    storage, catalog = LocalStorage(small_raw_run), Catalog(small_raw_run)
    transform(storage, catalog)
    before = catalog.read("songs").sort_by("song_id").to_pylist()
    base = {"songs": catalog.snapshot_id("songs")}
    con = connect()
    try:
        register_table(con, catalog, "songs", "old_songs", base["songs"])
        con.execute("CREATE TEMP TABLE staged_songs AS SELECT * FROM old_songs")
        first = before[0]["song_id"]
        con.execute("UPDATE staged_songs SET name = name || '!' WHERE song_id = ?", [first])
        con.execute("CREATE TEMP TABLE b_songs AS SELECT * FROM staged_songs WHERE song_id = ?", [first])
        publish_table(con, catalog, "songs", False, base)
        assert catalog.snapshot_id("songs") != base["songs"]  # the one song's rows were replaced
        assert "changed_songs" not in temp_columns(con)
    finally:
        con.close()
    before[0]["name"] += "!"
    assert catalog.read("songs").sort_by("song_id").to_pylist() == before
