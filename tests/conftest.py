"""Shared fixtures: a simulated Spotify Web API over real HTTP on 127.0.0.1, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from spotify_pipeline.simulator import Catalog, CatalogConfig, FaultPlan, SimulatedSpotify

SimulatorFactory = Callable[..., SimulatedSpotify]


@pytest.fixture
def make_simulator() -> Iterator[SimulatorFactory]:
    """Start simulators with any catalog/fault settings; all are stopped when the test ends."""
    started: list[SimulatedSpotify] = []

    def factory(
        faults: FaultPlan | None = None, legacy_items: bool = False, token_ttl: float = 3600.0, **catalog: Any
    ) -> SimulatedSpotify:
        server = SimulatedSpotify(
            Catalog(CatalogConfig(**catalog)), faults=faults, legacy_items=legacy_items, token_ttl=token_ttl
        )
        started.append(server.start())
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def simulator(make_simulator: SimulatorFactory) -> SimulatedSpotify:
    return make_simulator(playlists=5, items_per_playlist=30, large_playlist_items=260)


def client_token(server: SimulatedSpotify) -> str:
    response = httpx.post(
        f"{server.accounts_url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=(server.client_id, server.client_secret),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def api_get(server: SimulatedSpotify, path: str, token: str | None = None, **params: Any) -> httpx.Response:
    token = token or client_token(server)
    url = path if path.startswith("http") else f"{server.api_url}{path}"
    return httpx.get(url, params=params or None, headers={"Authorization": f"Bearer {token}"}, timeout=10)
