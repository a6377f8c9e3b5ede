"""A lake observed on two days, with playlists changed in between, shared by the report tests."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline.config import Secret
from spotify_pipeline.extract import ClientCredentialsAuth, Extractor, SpotifyClient
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig, SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import transform

DAY1 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
CHANGED = [0, 2]


@dataclass
class Lake:
    path: Path
    server: SimulatedSpotify
    before: dict[int, list[Any]]  # playlist index -> catalog entries on day 1

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with QueryEngine(Catalog(self.path)) as engine:
            return engine.execute(sql).rows


def _extract(server: SimulatedSpotify, lake: Path, when: dt.datetime) -> None:
    auth = ClientCredentialsAuth(server.accounts_url, server.client_id, Secret(server.client_secret))
    with SpotifyClient(server.api_url, auth, clock=lambda: when) as client:
        Extractor(client, LocalStorage(lake), clock=lambda: when).run(server.playlist_ids())
    transform(LocalStorage(lake), Catalog(lake), by_run_id=f"test-{when:%d}")


@pytest.fixture(scope="package")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    path = tmp_path_factory.mktemp("reports-lake")
    server = SimulatedSpotify(SimCatalog(CatalogConfig(seed=11, playlists=6, items_per_playlist=70))).start()
    try:
        before = {i: list(server.catalog.entries(i)) for i in range(6)}
        _extract(server, path, DAY1)
        server.mutate(CHANGED)
        _extract(server, path, DAY2)
        yield Lake(path, server, before)
    finally:
        server.stop()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium: `make test` installs it first (`make browser`); a bare pytest run installs it here
    when missing (root can apt-get; CI runs as root), waiting for the package lock rather than failing when
    another install holds it."""
    path = shutil.which("chromium")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        wait = ["-o", "DPkg::Lock::Timeout=600"]
        subprocess.run(["apt-get", *wait, "update", "-qq"], check=True, env=env, timeout=900, capture_output=True)
        subprocess.run(
            ["apt-get", *wait, "install", "-y", "-qq", "chromium"],
            check=True,
            env=env,
            timeout=1500,
            capture_output=True,
        )
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed and cannot be installed here (needs root and apt-get)")
    return path
