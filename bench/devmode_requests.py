"""Requests per new song in Development Mode (batch lookups refused, one ID at a time), counted by the
simulator's own request log, with the lookups that add nothing left out (the default) and sent (before).

A Development Mode user token (`alice`) extracts the playlists it may read from a fresh raw zone, plus
`--listened` listened songs on `/tracks` (half of them songs the playlist items carry in full, as after a
history import of songs also on playlists). Also shows which fields a single `/artists/{id}`,
`/albums/{id}` and `/tracks/{id}` adds over the objects embedded in a playlist item, and which of those the
tables keep. Prints one JSON document.

    python -m bench.devmode_requests --playlists 40 --items 100 --listened 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from spotify_pipeline.config import Secret
from spotify_pipeline.extract import Extractor, SpotifyClient
from spotify_pipeline.extract.auth import StaticTokenAuth
from spotify_pipeline.extract.extractor import ExtractOptions
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.simulator import Catalog, CatalogConfig, SimulatedSpotify

# Fields of a full object that become a column (transform/batch.py): artists, albums, songs.
KEPT = {
    "artist": {"genres", "images", "followers", "popularity"},
    "album": {"label", "external_ids", "popularity"},
    "track": {"popularity", "external_ids", "album", "artists"},
}


def added_fields(server: SimulatedSpotify, readable: list[int]) -> dict[str, dict[str, Any]]:
    """Fields a single lookup adds over the embedded object (not null), and which of them the tables keep."""
    catalog, base = server.catalog, server.api_url
    entry = next(e for e in catalog.entries(readable[0]) if e.kind == "track")
    track = catalog.track_full(entry.ref, base)
    album_index = entry.ref // 8
    artist_index = catalog.track_artists(entry.ref)[0]
    pairs = {
        "artist": (catalog.artist_simplified(artist_index, base), catalog.artist_full(artist_index, base)),
        "album": (track["album"], catalog.album_full(album_index, base)),
        "track": (track, catalog.track_full(entry.ref, base)),
    }
    out: dict[str, dict[str, Any]] = {}
    for kind, (embedded, full) in pairs.items():
        added = sorted(k for k in full.keys() - embedded.keys() if full[k] is not None)
        out[kind] = {"adds": added, "kept": sorted(set(added) & KEPT[kind])}
    return out


def measure(server: SimulatedSpotify, readable: list[int], listened: int, skip: bool) -> dict[str, Any]:
    catalog = server.catalog
    carried = sorted({e.ref for i in readable for e in catalog.entries(i) if e.kind == "track"})
    others = [t for t in range(catalog.n_tracks) if t not in set(carried)]
    tracks = [catalog.id_of("track", t) for t in carried[: listened // 2] + others[: listened - listened // 2]]
    before = Counter(server.stats.by_route)
    token, _ = server.issue_token(user="alice")
    with tempfile.TemporaryDirectory() as lake, SpotifyClient(server.api_url, StaticTokenAuth(Secret(token))) as c:
        extractor = Extractor(c, LocalStorage(Path(lake)), ExtractOptions(tracks=tuple(tracks), track_budget=10**6))
        extractor.skip_needless = skip
        summary = extractor.run(server.playlist_ids())
    routes = Counter(server.stats.by_route)
    routes.subtract(before)
    routes.pop("token", None)
    by_route = {k: v for k, v in sorted(routes.items()) if v}
    lookups = sum(v for k, v in by_route.items() if k in ("artist", "album", "track", "artists", "albums", "tracks"))
    songs = len(carried) + len(others[: listened - listened // 2])
    return {
        "requests": sum(by_route.values()),
        "by_route": by_route,
        "lookups": lookups,
        "new_songs": songs,
        "lookups_per_new_song": round(lookups / songs, 3),
        "enrichment_skipped": summary.enrichment_skipped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--playlists", type=int, default=40)
    parser.add_argument("--items", type=int, default=100, help="items per playlist")
    parser.add_argument("--listened", type=int, default=200, help="listened songs looked up on /tracks")
    args = parser.parse_args()
    config = CatalogConfig(playlists=args.playlists, items_per_playlist=args.items, mode="development")
    server = SimulatedSpotify(Catalog(config)).start()
    try:
        readable = [i for i in range(args.playlists) if server.catalog.can_edit("alice", i)]
        before = measure(server, readable, args.listened, skip=False)
        after = measure(server, readable, args.listened, skip=True)
        result = {
            "playlists": args.playlists,
            "readable_playlists": len(readable),
            "items_per_playlist": args.items,
            "listened": args.listened,
            "added_fields": added_fields(server, readable),
            "before": before,
            "after": after,
            "saved": before["requests"] - after["requests"],
            "machine": f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        }
    finally:
        server.stop()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
