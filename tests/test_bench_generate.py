"""The benchmark's raw-run generator: what it caches between runs must not change a byte of what a run holds,
and a benchmark carried on over an existing lake must continue it, not rewind it."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

from bench.generate import RenderCache, catalog_for, remember_parts, write_run
from bench.steady_state import restore

from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.lake.raw import RawZoneReader

WHEN = dt.datetime(2026, 11, 1, 0, tzinfo=dt.UTC)


def records(lake: Path) -> list[str]:
    """Every record line of every run, run by run and entity by entity (part boundaries depend on timing)."""
    out: list[str] = []
    for manifest in RawZoneReader(LocalStorage(lake)).manifests():
        for entry in sorted(manifest["files"], key=lambda f: (f["key"].split("/")[0], f["key"])):
            out.extend(gzip.decompress((lake / entry["key"]).read_bytes()).decode().splitlines())
    return out


def hourly_runs(lake: Path, cache: RenderCache | None) -> None:
    catalog = remember_parts(catalog_for(3000)) if cache else catalog_for(3000)
    everything = list(range(catalog.config.playlists))
    write_run(lake, catalog, f"{WHEN:%Y%m%dT%H%M%SZ}-000001", WHEN, everything, cache=cache)
    for step, changed in enumerate(([0, 3, 7], [3, 11], [5]), start=1):
        at = WHEN + dt.timedelta(hours=step)
        catalog.mutate(changed)
        checked = sorted(set(everything) - set(changed))
        write_run(lake, catalog, f"{at:%Y%m%dT%H%M%SZ}-{step + 1:06d}", at, changed, checked=checked, cache=cache)


def test_cached_rendering_writes_the_same_records(tmp_path: Path) -> None:
    hourly_runs(tmp_path / "plain", None)
    cache = RenderCache()
    hourly_runs(tmp_path / "cached", cache)
    plain, cached = records(tmp_path / "plain"), records(tmp_path / "cached")
    assert len(plain) > 100 and cached == plain
    assert cache.hits > 0  # the later runs did reuse what the first rendered


def test_restore_continues_the_lake_where_it_stopped(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    hourly_runs(lake, None)
    fresh = catalog_for(3000)
    latest, seq = restore(fresh, lake)
    assert (latest, seq) == (WHEN + dt.timedelta(hours=3), 4)  # new runs sort after the ones in the lake
    assert [fresh.version(i) for i in (0, 3, 5, 7, 11, 1)] == [1, 2, 1, 1, 1, 0]
    assert fresh._popularity_epoch == 3  # one mutation per hourly run


def test_a_reused_lake_starts_the_enrichment_ttl_where_its_runs_left_it(tmp_path: Path) -> None:
    """`--reuse --enrich-ttl-hours`: the artists and albums the lake enriched are not enriched again within the
    TTL (started empty, the generator enriched every one a run referenced: a benchmark artifact)."""
    from bench.steady_state import enriched_in

    from spotify_pipeline.tables.catalog import Catalog
    from spotify_pipeline.transform import transform

    lake = tmp_path / "lake"
    catalog = catalog_for(3000)
    write_run(lake, catalog, f"{WHEN:%Y%m%dT%H%M%SZ}-000001", WHEN, list(range(catalog.config.playlists)))
    transform(LocalStorage(lake), Catalog(lake))
    seeded = enriched_in(lake, catalog_for(3000))
    assert len(seeded["artists"]) > 10 and len(seeded["albums"]) > 10
    assert set(seeded["artists"].values()) == {WHEN}  # the build enriched every artist it referenced

    def enrichment_files(run: int, enriched: dict[str, dict[int, dt.datetime]]) -> list[str]:
        at = WHEN + dt.timedelta(hours=run)
        manifest = write_run(
            lake, catalog, f"{at:%Y%m%dT%H%M%SZ}-{run + 1:06d}", at, [0], enriched=enriched, enrich_ttl=dt.timedelta(7)
        )
        return [f["key"] for f in manifest["files"] if f["entity"] in ("artists", "albums")]

    assert enrichment_files(1, seeded) == []
    assert enrichment_files(2, {}) != []  # started empty: enriched again


def test_a_generated_snapshot_check_is_what_the_extractor_stores(tmp_path: Path) -> None:
    """The benchmark's checks (~100k a run at 10M items, the bulk of what a one-playlist run parses) are the
    records the extractor writes for the same catalog: the same body (its `fields`) and the same URL."""
    import json

    from spotify_pipeline import pipeline
    from spotify_pipeline.simulator import SimulatedSpotify

    from .conftest import settings_for

    catalog = catalog_for(300)
    server = SimulatedSpotify(catalog).start()
    try:
        settings = settings_for(server, tmp_path / "extracted")
        pipeline.extract(settings, server.playlist_ids())
        second = pipeline.extract(settings, server.playlist_ids())
    finally:
        server.stop()
    everything = list(range(catalog.config.playlists))
    write_run(tmp_path / "generated", catalog, "20261101T010000Z-000002", WHEN, [], checked=everything)

    def checks(lake: Path, run_id: str) -> dict[str, tuple[str, object]]:
        storage = LocalStorage(lake)
        return {
            r.meta["playlist_id"]: (r.meta["url"].split("/v1/", 1)[1], r.body)
            for key in storage.list("raw/playlist_checks/")
            if f"run_id={run_id}/" in key
            for r in RawZoneReader(storage).records(key)
        }

    extracted = checks(tmp_path / "extracted", second.run_id)
    generated = checks(tmp_path / "generated", "20261101T010000Z-000002")
    assert len(extracted) == catalog.config.playlists
    assert json.dumps(generated, sort_keys=True) == json.dumps(extracted, sort_keys=True)
