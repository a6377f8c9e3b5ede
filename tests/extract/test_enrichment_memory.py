"""Albums and artists that answered 404 (one at a time) or `null` (in a batch) are remembered for the
enrichment TTL and not requested again on every run; after the TTL they are asked for again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline.config import Secret
from spotify_pipeline.extract import ClientCredentialsAuth, Extractor, SpotifyClient
from spotify_pipeline.extract.auth import StaticTokenAuth
from spotify_pipeline.extract.extractor import ExtractOptions
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.simulator import Catalog, CatalogConfig, SimulatedSpotify

GONE = 2  # the last albums of the catalog answer 404 / null, though tracks still reference them


class GoneAlbums(Catalog):
    """A catalog whose last albums were taken down: tracks still name them, lookups do not find them."""

    def count(self, kind: str) -> int:
        return super().count(kind) - (GONE if kind == "album" else 0)


def _run(server: SimulatedSpotify, lake: Path, when: dt.datetime, user: bool) -> Any:
    auth: Any
    if user:  # Development Mode: the batch endpoints refuse, so albums are read one ID at a time (404)
        token, _ = server.issue_token(user=server.catalog.owner(0))
        auth = StaticTokenAuth(Secret(token))
    else:  # Extended quota: the batch answers null in place of each unknown ID
        auth = ClientCredentialsAuth(server.accounts_url, server.client_id, Secret(server.client_secret))
    options = ExtractOptions(full=True, enrich_ttl=dt.timedelta(days=7))
    with SpotifyClient(server.api_url, auth, clock=lambda: when) as client:
        return Extractor(client, LocalStorage(lake), options, clock=lambda: when).run(server.playlist_ids())


@pytest.mark.parametrize("mode", ["extended", "development"])
def test_albums_that_are_gone_are_not_asked_for_again_until_the_ttl(mode: str, tmp_path: Path) -> None:
    catalog = GoneAlbums(CatalogConfig(playlists=1, items_per_playlist=120, tracks=48, quirk_rate=0.0, mode=mode))
    gone = {catalog.id_of("album", catalog.n_albums - 1 - i) for i in range(GONE)}
    user = mode == "development"
    day = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with SimulatedSpotify(catalog) as server:

        def asked_for_gone() -> int:
            if user:  # a 404 is not recorded by ID: count them
                return server.stats.by_status.get(404, 0)
            return len(gone & set(server.stats.ids_by_route.get("albums", {})))

        first = _run(server, tmp_path, day, user)
        assert first.status == "succeeded"
        assert asked_for_gone() == GONE, "the playlist references the albums that are gone"
        server.stats.reset()

        second = _run(server, tmp_path, day + dt.timedelta(days=1), user)
        assert second.status == "succeeded" and second.items == first.items
        assert asked_for_gone() == 0, "remembered as gone: not asked again"
        server.stats.reset()

        third = _run(server, tmp_path, day + dt.timedelta(days=8), user)
        assert third.status == "succeeded"
        assert asked_for_gone() == GONE, "after the TTL they are asked for again"
