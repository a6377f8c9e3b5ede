"""The current user's routes of the simulated API: `/v1/me`, their playlists, liked songs, library checks,
recently played and top items (a user token is needed)."""

from __future__ import annotations

from typing import Any

from .handler import HandlerBase, HttpError
from .ids import is_base62_id

LIBRARY_CONTAINS_MAX = 40


class MeRoutes(HandlerBase):
    """`/v1/me/...`."""

    def _user(self) -> str:
        token = self._auth()
        if token.user is None:
            raise HttpError(401, "This endpoint requires a user access token (client credentials have no user)")
        return str(token.user)

    def _route_me(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        return 200, self.app.catalog.user_object(self._user(), self.app.api_url), None

    def _list_page(self, query: dict[str, str], all_items: list[Any], path: str, max_limit: int = 50) -> dict[str, Any]:
        limit, offset = self._paging_params(query, max_limit, 20)
        base = f"{self.app.api_url}/{path}"
        total = len(all_items)
        return {
            "href": f"{base}?offset={offset}&limit={limit}",
            "items": all_items[offset : offset + limit],
            "limit": limit,
            "offset": offset,
            "total": total,
            "next": f"{base}?offset={offset + limit}&limit={limit}" if offset + limit < total else None,
            "previous": f"{base}?offset={max(0, offset - limit)}&limit={limit}" if offset else None,
        }

    def _route_me_playlists(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        user, catalog, base = self._user(), self.app.catalog, self.app.api_url
        indices = catalog.user_playlists(user)
        page = self._list_page(query, indices, "me/playlists")
        page["items"] = [catalog.simplified_playlist(i, base) for i in page["items"]]
        return 200, page, None

    def _route_me_tracks(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        user, catalog, base = self._user(), self.app.catalog, self.app.api_url
        page = self._list_page(query, catalog.saved_tracks(user), "me/tracks")
        page["items"] = [{"added_at": added, "track": catalog.track_full(t, base)} for t, added in page["items"]]
        return 200, page, None

    def _route_recently_played(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        """The last 50 plays at most (as the real API keeps), newest first, paged by cursor: `after` (ms)
        keeps newer plays, `before` (ms) older ones. A page has `cursors` and a `next` link with
        `before=` while older plays remain; it has no `total`."""
        user, catalog, base = self._user(), self.app.catalog, self.app.api_url
        limit, _ = self._paging_params({"limit": query.get("limit", "20")}, 50, 20)
        if "after" in query and "before" in query:
            raise HttpError(400, "Only one of after and before may be given")
        after, before = (self._millis(query, key) for key in ("after", "before"))
        total = self.app.plays_of(user)
        kept = []  # (millis, play) newest first
        for number in range(total - 1, max(-1, total - 51), -1):
            track, played_at, playlist = catalog.play(user, number)
            kept.append((int(played_at.timestamp() * 1000), track, played_at, playlist))
        if after is not None:
            chosen = [p for p in kept if p[0] > after][-limit:]  # the plays just after the cursor
        else:
            chosen = [p for p in kept if before is None or p[0] < before][:limit]
        plays = []
        for _, track, played_at, playlist in chosen:
            context = None
            if playlist is not None:
                pid = catalog.id_of("playlist", playlist)
                context = {
                    "type": "playlist",
                    "href": f"{base}/playlists/{pid}",
                    "external_urls": {"spotify": f"https://open.spotify.com/playlist/{pid}"},
                    "uri": f"spotify:playlist:{pid}",
                }
            plays.append(
                {
                    "track": catalog.track_full(track, base),
                    "played_at": played_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "context": context,
                }
            )
        stamps = [p[0] for p in chosen]
        cursors = {"after": str(max(stamps)), "before": str(min(stamps))} if stamps else None
        older = bool(stamps) and any(p[0] < min(stamps) for p in kept)
        url = f"{base}/me/player/recently-played"
        cursor = "".join(f"&{key}={query[key]}" for key in ("after", "before") if key in query)
        page = {
            "href": f"{url}?limit={limit}{cursor}",
            "items": plays,
            "limit": limit,
            "next": f"{url}?before={min(stamps)}&limit={limit}" if older else None,
            "cursors": cursors,
        }
        return 200, page, None

    @staticmethod
    def _millis(query: dict[str, str], key: str) -> int | None:
        if key not in query:
            return None
        if not query[key].isdigit():
            raise HttpError(400, f"Invalid {key} cursor")
        return int(query[key])

    def _route_top(self, query: dict[str, str], body: bytes, kind: str) -> tuple[int, Any, None]:
        user, catalog, base = self._user(), self.app.catalog, self.app.api_url
        time_range = query.get("time_range", "medium_term")
        if time_range not in ("short_term", "medium_term", "long_term"):
            raise HttpError(400, "Invalid time range")
        indices = catalog.top(user, kind, time_range)
        render = catalog.artist_full if kind == "artists" else catalog.track_full
        page = self._list_page(query, indices, f"me/top/{kind}")
        page["items"] = [render(i, base) for i in page["items"]]
        return 200, page, None

    def _route_library_contains(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        """Whether each URI is in the user's library: liked tracks and the playlists in it."""
        user, catalog = self._user(), self.app.catalog
        uris = [u for u in query.get("uris", "").split(",") if u]
        if not uris:
            raise HttpError(400, "Missing required parameter: uris")
        if len(uris) > LIBRARY_CONTAINS_MAX:
            raise HttpError(400, "Too many ids requested")
        liked = {catalog.id_of("track", t) for t, _ in catalog.saved_tracks(user)}
        playlists = {catalog.id_of("playlist", p) for p in catalog.user_playlists(user)}
        answers = []
        for uri in uris:
            scheme, kind, spotify_id = [*uri.split(":"), "", ""][:3]
            if scheme != "spotify" or not is_base62_id(spotify_id) or uri.count(":") != 2:
                raise HttpError(400, f"Invalid URI: {uri}")
            answers.append(spotify_id in {"track": liked, "playlist": playlists}.get(kind, set()))
        return 200, answers, None
