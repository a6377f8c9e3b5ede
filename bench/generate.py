"""Benchmark data: a raw zone rendered from the simulator's generated catalog, exactly as an extraction
would store it (same records, same meta), but without the HTTP round trips, so 1M items take a minute,
not an hour. The extraction scenario, which is about HTTP, goes through the real server instead."""

from __future__ import annotations

import datetime as dt
import functools
import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spotify_pipeline.extract.extractor import CHECK_FIELDS
from spotify_pipeline.lake import LocalStorage, RawZoneWriter
from spotify_pipeline.simulator import Catalog, CatalogConfig
from spotify_pipeline.simulator.fields import filter_fields

BASE = "https://api.spotify.com/v1"
PAGE = 100


def catalog_for(items: int, seed: int = 42) -> Catalog:
    """A catalog of about `items` playlist items: playlists of ~100 items, plus one of 5,000."""
    per_playlist = 100
    playlists = max(3, (items - 5000) // per_playlist) if items > 10_000 else max(3, items // per_playlist)
    large = 5000 if items > 10_000 else 0
    return Catalog(
        CatalogConfig(seed=seed, playlists=playlists, items_per_playlist=per_playlist, large_playlist_items=large)
    )


def remember_parts(catalog: Catalog, size: int = 500_000) -> Catalog:
    """The catalog, with the album and artist objects every track carries rendered once each (an album's 8
    tracks and every playlist holding one repeat them): 1.4x faster item pages at 10M, the same bytes
    (tests/test_bench_generate.py). Callers get a shallow copy, as `album_full` adds keys to its copy."""
    for name in ("album_simplified", "artist_simplified"):
        cached = functools.lru_cache(maxsize=size)(getattr(catalog, name))

        def copy(index: int, base: str, cached: Callable[[int, str], Any] = cached) -> Any:
            return dict(cached(index, base))

        setattr(catalog, name, copy)
    return catalog


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def check_body(catalog: Catalog, index: int, size: int) -> tuple[str, bytes]:
    """The snapshot id and body of a snapshot check of playlist `index` (of `size` items), as the extractor
    stores it: the playlist header filtered by the extractor's `fields`, as the simulator and Spotify filter
    it (tests/test_bench_generate.py), so the benchmark parses what a run would."""
    header = catalog.playlist_header(index, BASE)
    for key in ("items", "tracks") if catalog.config.items_shape == "both" else ("items",):  # as the simulator
        header[key] = {"total": size}
    return header["snapshot_id"], _dump(filter_fields(header, CHECK_FIELDS))


def check_url(pid: str) -> str:
    """The URL the extractor records for a snapshot check (`SpotifyClient.url_for`)."""
    return f"{BASE}/playlists/{pid}?" + urllib.parse.urlencode({"fields": CHECK_FIELDS}, safe=",()!")


class RenderCache:
    """What an hourly run renders again unchanged, rendered once: the snapshot-check response of a playlist at
    a version, and the enrichment body of an artist or album (neither depends on the run). Rendering them was
    most of a steady-state run's wall time at 1M (the benchmark's own cost, not the pipeline's: 13 s of checks
    and 17 s of album bodies per 1% run); the bytes written are the same (tests/test_bench_generate.py).
    At most `max_bodies` enrichment bodies are kept (~6 KB per album), so a 10M run stays bounded."""

    def __init__(self, max_bodies: int = 100_000) -> None:
        self.checks: dict[tuple[int, int], tuple[str, bytes]] = {}
        self.bodies: dict[tuple[str, int], bytes] = {}
        self.max_bodies = max_bodies
        self.hits = 0

    def check(self, catalog: Catalog, index: int) -> tuple[str, bytes]:
        """The snapshot id and response body of a snapshot check of playlist `index` as it is now."""
        key = (index, catalog.version(index))
        if key in self.checks:
            self.hits += 1
            return self.checks[key]
        # An unchanged playlist's size is its generated size: counting its entries would generate them
        # (~1 ms a playlist, 100 s for the first run at 10M). Private, but what `entries` does first.
        size = catalog._base_size(index) if key[1] == 0 else catalog.playlist_size(index)
        self.checks.pop((index, key[1] - 1), None)  # the previous version is never asked for again
        self.checks[key] = check_body(catalog, index, size)
        return self.checks[key]

    def body(self, kind: str, index: int, render: Callable[[int, str], Any]) -> bytes:
        """One artist's or album's full object, as JSON."""
        cached = self.bodies.get((kind, index))
        if cached is not None:
            self.hits += 1
            return cached
        text = _dump(render(index, BASE))
        if len(self.bodies) < self.max_bodies:
            self.bodies[kind, index] = text
        return text


def write_run(
    lake: Path,
    catalog: Catalog,
    run_id: str,
    when: dt.datetime,
    playlists: list[int],
    checked: list[int] | None = None,
    cache: RenderCache | None = None,
    enriched: dict[str, dict[int, dt.datetime]] | None = None,
    enrich_ttl: dt.timedelta = dt.timedelta(0),
) -> dict[str, Any]:
    """One run's raw zone: full playlists (embedded first page + item pages), snapshot checks for
    `checked`, and batch enrichment of every referenced artist and album. Returns the manifest.
    With `cache`, what an earlier run rendered is not rendered again (same bytes). With `enriched` (kind ->
    index -> when last enriched, updated here) and an `enrich_ttl`, an artist or album enriched less than
    `enrich_ttl` ago is not enriched again, as the extractor does (`ExtractOptions.enrich_ttl`, 7 days)."""
    writer = RawZoneWriter(LocalStorage(lake), run_id, when.date())
    fetched = when.isoformat()
    outcomes: dict[str, Any] = {}
    artists: set[int] = set()
    albums: set[int] = set()

    def meta(entity: str, endpoint: str, url: str, **extra: Any) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "entity": entity,
            "endpoint": endpoint,
            "url": url,
            "status": 200,
            "fetched_at": fetched,
            **extra,
        }

    for index in playlists:
        pid = catalog.id_of("playlist", index)
        header = catalog.playlist_header(index, BASE)
        header["items"] = catalog.items_page(index, 0, PAGE, BASE)
        writer.write(
            "playlists", meta("playlists", "playlist", f"{BASE}/playlists/{pid}", playlist_id=pid), _dump(header)
        )
        size = catalog.playlist_size(index)
        for offset in range(PAGE, size, PAGE):
            page = catalog.items_page(index, offset, PAGE, BASE)
            writer.write(
                "playlist_items",
                meta(
                    "playlist_items", "playlist_items", page["href"], playlist_id=pid, snapshot_id=header["snapshot_id"]
                ),
                _dump(page),
            )
        for entry in catalog.entries(index):
            if entry.kind == "track":
                album = entry.ref // 8
                albums.add(album)
                artists.update(catalog.track_artists(entry.ref) + catalog.album_artists(album))
        writer.mark_complete(pid, {"snapshot_id": header["snapshot_id"], "items": size})
        outcomes[pid] = {"status": "complete", "snapshot_id": header["snapshot_id"], "items": size}
    for index in checked or []:
        pid = catalog.id_of("playlist", index)
        if cache is None:
            snapshot_id, body = check_body(catalog, index, catalog.playlist_size(index))
        else:
            snapshot_id, body = cache.check(catalog, index)
        writer.write("playlist_checks", meta("playlist_checks", "playlist", check_url(pid), playlist_id=pid), body)
        outcomes[pid] = {"status": "unchanged", "snapshot_id": snapshot_id}
    for kind, ids, size, render in (
        ("artists", sorted(artists), 50, catalog.artist_full),
        ("albums", sorted(albums), 20, catalog.album_full),
    ):
        if enriched is not None:
            last = enriched.setdefault(kind, {})
            ids = [i for i in ids if i not in last or when - last[i] >= enrich_ttl]
            last.update(dict.fromkeys(ids, when))
        for start in range(0, len(ids), size):
            batch = ids[start : start + size]
            if cache is None:
                body = _dump({kind: [render(i, BASE) for i in batch]})
            else:  # the same bytes as _dump of the whole batch: compact JSON joins its members with ","
                body = b'{"%s":[' % kind.encode() + b",".join(cache.body(kind, i, render) for i in batch) + b"]}"
            writer.write(kind, meta(kind, kind, f"{BASE}/{kind}?ids=..."), body)
    writer.close({"status": "succeeded", "playlists": outcomes})
    return {
        "files": writer.files,
        "bytes": writer.bytes_written,
        "raw_bytes": sum(f["raw_bytes"] for f in writer.files),
        "items": sum(catalog.playlist_size(i) for i in playlists),
    }


def main() -> None:
    """`python -m bench.generate --items N --lake DIR [--part I --parts K]`: a lake for measuring by hand
    (e.g. 10M items: run K parts at once, one per core; each part is one raw run of every K-th playlist)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--part", type=int, default=0)
    parser.add_argument("--parts", type=int, default=1)
    args = parser.parse_args()
    catalog = remember_parts(catalog_for(args.items))
    day = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
    playlists = [i for i in range(catalog.config.playlists) if i % args.parts == args.part]
    run = write_run(args.lake, catalog, f"20261101T120000Z-{args.part + 1:06d}", day, playlists)
    print(json.dumps({"items": run["items"], "bytes": run["bytes"], "raw_bytes": run["raw_bytes"]}))


if __name__ == "__main__":
    main()
