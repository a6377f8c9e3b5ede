"""What checking the transform's relations against transform/relations.py costs: one transform of a simulated
raw run, timing every step's checks (inputs exist before, columns after) against the whole transform.

    python -m bench.relation_checks --playlists 20 --items 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from spotify_pipeline.config import Secret
from spotify_pipeline.extract import ClientCredentialsAuth, Extractor, SpotifyClient
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.simulator.catalog import Catalog as SimulatedCatalog
from spotify_pipeline.simulator.catalog import CatalogConfig
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import relations, transform

REPEAT = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--playlists", type=int, default=20)
    parser.add_argument("--items", type=int, default=100)
    args = parser.parse_args()
    server = SimulatedSpotify(SimulatedCatalog(CatalogConfig(playlists=args.playlists, items_per_playlist=args.items)))
    server.start()
    try:
        lake = Path(tempfile.mkdtemp(prefix="relation-checks-"))
        auth = ClientCredentialsAuth(server.accounts_url, server.client_id, Secret(server.client_secret))
        with SpotifyClient(server.api_url, auth) as client:
            Extractor(client, LocalStorage(lake)).run(server.playlist_ids())
        per_step: list[float] = []

        def time_checks(con: duckdb.DuckDBPyConnection) -> None:
            # every step's checks, with every relation of a transform present (as for the last steps)
            steps = [s for s in relations.STEPS if s not in ("register_listens", "register_artist_stats")]
            start = time.perf_counter()
            for _ in range(REPEAT):
                for step in steps:
                    relations.require(con, step)
                    relations.verify(con, [*relations.built_by(step), *relations.STEPS[step].changes])
            per_step.append((time.perf_counter() - start) / (REPEAT * len(steps)))
            per_step.append(len(steps))

        start = time.perf_counter()
        transform(LocalStorage(lake), Catalog(lake), stage_hook=time_checks)
        total = time.perf_counter() - start - per_step[0] * per_step[1] * REPEAT
        checks = per_step[0] * per_step[1]
        print(f"{args.playlists} playlists x {args.items} items; {int(per_step[1])} checked steps")
        print(f"one step's checks: {per_step[0] * 1e3:.2f} ms; all steps: {checks * 1e3:.1f} ms")
        print(f"transform: {total:.2f} s; checks' share: {checks / total:.1%}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
