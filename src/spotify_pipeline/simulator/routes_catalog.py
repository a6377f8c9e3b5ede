"""The catalog routes of the simulated API: playlists and their items, artists, albums, tracks (one or a
batch), an album's tracks, an artist's albums, and search."""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from .fields import FieldsSyntaxError, filter_fields
from .handler import HandlerBase, HttpError, Token
from .ids import is_base62_id

# Playlist item pages: the real API accepts up to 100 items per page (the OpenAPI document's shared
# `QueryLimit` says 50; the real endpoint's own documentation and behaviour say 100). Other pages: 50.
PLAYLIST_ITEMS_MAX_LIMIT = 100
BATCH_LIMITS = {"artists": 50, "albums": 20, "tracks": 50}
# Search and an artist's albums: (default, maximum) of `limit`. Development Mode apps get at most 10 (default 5)
# since February 2026; extended quota keeps 20 and 50.
SMALL_PAGES = {"extended": (20, 50), "development": (5, 10)}
SEARCH_TYPES = ("album", "artist", "playlist", "track", "show", "episode", "audiobook")


class CatalogRoutes(HandlerBase):
    """`/v1/playlists/...`, `/v1/artists...`, `/v1/albums...`, `/v1/tracks...`, `/v1/search`."""

    def _index(self, kind: str, spotify_id: str) -> int:
        if not is_base62_id(spotify_id):
            raise HttpError(400, "Invalid base62 id")
        from .ids import decode_id

        index = decode_id(self.app.catalog.config.seed, kind, spotify_id)
        if index is None or index >= self.app.catalog.count(kind):
            raise HttpError(404, "Resource not found")
        return index

    def _can_read_items(self, token: Token, playlist: int) -> bool:
        """Development Mode: items only for playlists the token's user owns or collaborates on."""
        catalog = self.app.catalog
        if catalog.extended:
            return True
        if token.user is None:
            return False
        return catalog.can_edit(token.user, playlist)

    def _items_page(self, playlist: int, offset: int, limit: int, path: str, fields: str | None) -> dict[str, Any]:
        page = self.app.catalog.items_page(playlist, offset, limit, self.app.api_url, path, fields)
        page["items"] = [self._legacy_item(item) for item in page["items"]]
        return page

    def _legacy_item(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.app.legacy_items:
            item.pop("item", None)
        return item

    def _filtered(self, payload: Any, query: dict[str, str]) -> Any:
        if "fields" not in query or not query["fields"]:
            return payload
        try:
            return filter_fields(payload, query["fields"])
        except FieldsSyntaxError as exc:
            raise HttpError(400, f"Invalid fields parameter: {exc}") from exc

    def _route_playlist(self, query: dict[str, str], body: bytes, playlist_id: str) -> tuple[int, Any, list[str]]:
        token = self._auth()
        index = self._index("playlist", playlist_id)
        catalog = self.app.catalog
        payload = catalog.playlist_header(index, self.app.api_url)
        if self.app.legacy_items:
            keys = ["tracks"]
        else:  # `tracks` is the deprecated alias of `items`, left out in the current-names-only shape
            keys = ["items", "tracks"] if catalog.config.items_shape == "both" else ["items"]
        if self._can_read_items(token, index):
            wants_items = "fields" not in query or re.search(r"(^|[,(])!?(items|tracks)\b", query["fields"])
            if wants_items:
                path = "tracks" if self.app.legacy_items else "items"
                page = self._items_page(index, 0, PLAYLIST_ITEMS_MAX_LIMIT, path, None)
                for key in keys:
                    payload[key] = page
        return 200, self._filtered(payload, query), [playlist_id]

    def _route_playlist_items(self, query: dict[str, str], body: bytes, playlist_id: str) -> tuple[int, Any, list[str]]:
        if self.app.legacy_items:
            raise HttpError(404, "Service not found")
        return self._playlist_page(query, playlist_id, "items")

    def _route_playlist_tracks(
        self, query: dict[str, str], body: bytes, playlist_id: str
    ) -> tuple[int, Any, list[str]]:
        if not self.app.catalog.extended and not self.app.legacy_items:
            self._auth()
            raise HttpError(403, "Forbidden")  # deprecated; refused to Development Mode apps since March 2026
        return self._playlist_page(query, playlist_id, "tracks")

    def _playlist_page(self, query: dict[str, str], playlist_id: str, path: str) -> tuple[int, Any, list[str]]:
        token = self._auth()
        index = self._index("playlist", playlist_id)
        if not self._can_read_items(token, index):
            raise HttpError(403, "Forbidden")
        limit, offset = self._paging_params(query, PLAYLIST_ITEMS_MAX_LIMIT, 100)
        page = self._items_page(index, offset, limit, path, query.get("fields"))
        return 200, self._filtered(page, query), [f"{playlist_id}@{offset}"]

    def _single(self, kind: str, spotify_id: str) -> tuple[int, Any, list[str]]:
        self._auth()
        index = self._index(kind, spotify_id)
        render = {
            "artist": self.app.catalog.artist_full,
            "album": self.app.catalog.album_full,
            "track": self.app.catalog.track_full,
        }[kind]
        return 200, render(index, self.app.api_url), [spotify_id]

    def _batch(self, kind: str, query: dict[str, str]) -> tuple[int, Any, list[str]]:
        self._auth()
        plural = f"{kind}s"
        if not self.app.catalog.extended:
            raise HttpError(403, "Forbidden")  # removed for Development Mode apps since Feb 2026
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not ids:
            raise HttpError(400, "invalid id")
        if len(ids) > BATCH_LIMITS[plural]:
            raise HttpError(400, "Too many ids requested")
        render = {
            "artist": self.app.catalog.artist_full,
            "album": self.app.catalog.album_full,
            "track": self.app.catalog.track_full,
        }[kind]
        objects: list[Any] = []
        for spotify_id in ids:
            try:
                objects.append(render(self._index(kind, spotify_id), self.app.api_url))
            except HttpError as err:
                if err.status == 400:
                    raise
                objects.append(None)  # unknown IDs come back as null, in place
        return 200, {plural: objects}, ids

    def _route_artist(self, query: dict[str, str], body: bytes, spotify_id: str) -> tuple[int, Any, list[str]]:
        return self._single("artist", spotify_id)

    def _route_album(self, query: dict[str, str], body: bytes, spotify_id: str) -> tuple[int, Any, list[str]]:
        return self._single("album", spotify_id)

    def _route_track(self, query: dict[str, str], body: bytes, spotify_id: str) -> tuple[int, Any, list[str]]:
        return self._single("track", spotify_id)

    def _route_artists(self, query: dict[str, str], body: bytes) -> tuple[int, Any, list[str]]:
        return self._batch("artist", query)

    def _route_albums(self, query: dict[str, str], body: bytes) -> tuple[int, Any, list[str]]:
        return self._batch("album", query)

    def _route_tracks(self, query: dict[str, str], body: bytes) -> tuple[int, Any, list[str]]:
        return self._batch("track", query)

    def _small_page_params(self, query: dict[str, str]) -> tuple[int, int]:
        default, maximum = SMALL_PAGES[self.app.catalog.config.mode]
        return self._paging_params(query, maximum, default)

    def _offset_page(self, items: list[Any], limit: int, offset: int, url: str, params: str = "") -> dict[str, Any]:
        """An offset paging object over `items`, with links that keep the request's other `params`."""
        total = len(items)

        def link(off: int) -> str:
            return f"{url}?{params}offset={off}&limit={limit}"

        return {
            "href": link(offset),
            "items": items[offset : offset + limit],
            "limit": limit,
            "next": link(offset + limit) if offset + limit < total else None,
            "offset": offset,
            "previous": link(max(0, offset - limit)) if offset else None,
            "total": total,
        }

    def _route_search(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        """Names containing every word of `q` (field filters such as `artist:` match the name too)."""
        self._auth()
        text = (query.get("q") or query.get("query", "")).strip()  # `next` links spell it `query`, as Spotify's do
        if not text:
            raise HttpError(400, "No search query")
        if not query.get("type"):
            raise HttpError(400, "Missing parameter type")
        kinds = query["type"].split(",")
        if any(kind not in SEARCH_TYPES for kind in kinds):
            raise HttpError(400, "Bad search type field")
        limit, offset = self._small_page_params(query)
        if offset > 1000:
            raise HttpError(400, "Invalid offset")
        words = [w.partition(":")[2] if ":" in w else w for w in text.split()]
        words = [w.strip('"') for w in words if w.strip('"')]
        catalog, base = self.app.catalog, self.app.api_url
        render: dict[str, Callable[[int, str], dict[str, Any]]] = {
            "track": catalog.track_full,
            "album": catalog.album_simplified,
            "artist": catalog.artist_full,
            "playlist": catalog.simplified_playlist,
            "show": catalog.show,
            "episode": functools.partial(catalog.episode, simplified=True),
        }
        params = f"query={urllib.parse.quote(text)}&type={{kind}}&"
        result = {}
        for kind in dict.fromkeys(kinds):
            found = [] if kind == "audiobook" else catalog.search(kind, words)
            page = self._offset_page(found, limit, offset, f"{base}/search", params.format(kind=kind))
            page["items"] = [render[kind](i, base) for i in page["items"]]
            result[f"{kind}s"] = page
        return 200, result, None

    def _route_album_tracks(self, query: dict[str, str], body: bytes, album_id: str) -> tuple[int, Any, list[str]]:
        self._auth()
        album = self._index("album", album_id)
        catalog = self.app.catalog
        limit, offset = self._paging_params(query, 50, 20)
        first = album * 8
        tracks = list(range(first, min(first + 8, catalog.n_tracks)))
        page = self._offset_page(tracks, limit, offset, f"{self.app.api_url}/albums/{album_id}/tracks")
        page["items"] = [catalog.track_simplified(t, self.app.api_url) for t in page["items"]]
        return 200, page, [album_id]

    def _route_artist_albums(self, query: dict[str, str], body: bytes, artist_id: str) -> tuple[int, Any, list[str]]:
        self._auth()
        artist = self._index("artist", artist_id)
        catalog, base = self.app.catalog, self.app.api_url
        groups = [g for g in query.get("include_groups", "").split(",") if g]
        if any(g not in ("album", "single", "appears_on", "compilation") for g in groups):
            raise HttpError(400, "Invalid include_groups")
        limit, offset = self._small_page_params(query)
        albums = []
        for album in catalog.artist_albums(artist):
            obj = catalog.album_simplified(album, base)
            obj["album_group"] = obj["album_type"]  # a release of the artist's own: its group is its type
            if not groups or obj["album_group"] in groups:
                albums.append(obj)
        params = f"include_groups={','.join(groups)}&" if groups else ""
        return 200, self._offset_page(albums, limit, offset, f"{base}/artists/{artist_id}/albums", params), [artist_id]
