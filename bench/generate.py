"""Benchmark data: a raw zone rendered from the simulator's generated catalog, exactly as an extraction
would store it (same records, same meta), but without the HTTP round trips, so 1M items take a minute,
not an hour. The extraction scenario, which is about HTTP, goes through the real server instead."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from spotify_pipeline.lake import LocalStorage, RawZoneWriter
from spotify_pipeline.simulator import Catalog, CatalogConfig

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


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def write_run(
    lake: Path, catalog: Catalog, run_id: str, when: dt.datetime, playlists: list[int], checked: list[int] | None = None
) -> dict[str, Any]:
    """One run's raw zone: full playlists (embedded first page + item pages), snapshot checks for
    `checked`, and batch enrichment of every referenced artist and album. Returns the manifest."""
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
        header = catalog.playlist_header(index, BASE)
        header["items"] = {"total": catalog.playlist_size(index)}
        writer.write(
            "playlist_checks",
            meta("playlist_checks", "playlist", f"{BASE}/playlists/{pid}?fields=...", playlist_id=pid),
            _dump(header),
        )
        outcomes[pid] = {"status": "unchanged", "snapshot_id": header["snapshot_id"]}
    for kind, ids, size, render in (
        ("artists", sorted(artists), 50, catalog.artist_full),
        ("albums", sorted(albums), 20, catalog.album_full),
    ):
        for start in range(0, len(ids), size):
            batch = ids[start : start + size]
            body = {kind: [render(i, BASE) for i in batch]}
            writer.write(kind, meta(kind, kind, f"{BASE}/{kind}?ids=..."), _dump(body))
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
    catalog = catalog_for(args.items)
    day = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
    playlists = [i for i in range(catalog.config.playlists) if i % args.parts == args.part]
    run = write_run(args.lake, catalog, f"20261101T120000Z-{args.part + 1:06d}", day, playlists)
    print(json.dumps({"items": run["items"], "bytes": run["bytes"], "raw_bytes": run["raw_bytes"]}))


if __name__ == "__main__":
    main()
