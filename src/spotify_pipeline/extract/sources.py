"""What a user token can reach besides playlists: the user's playlists, liked songs, plays and top items.

Each source stores its responses in the raw zone as received; tracks they contain feed enrichment like
playlist items do. Used by `Extractor` (a mixin: it needs the extractor's client, raw writer and refs).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, ResponseError

if TYPE_CHECKING:
    from ..lake.raw import RawZoneWriter
    from .client import ApiResponse, SpotifyClient
    from .state import ExtractState

log = logging.getLogger(__name__)

SOURCES = ("my-playlists", "liked", "recently-played", "top")
TIME_RANGES = ("short_term", "medium_term", "long_term")
PAGE = 50


class UserSources:
    client: SpotifyClient

    def _store(self, writer: RawZoneWriter, entity: str, response: ApiResponse, **meta: Any) -> None:
        raise NotImplementedError

    def _remember_track(self, track: dict[str, Any]) -> None:
        raise NotImplementedError

    def _pages(self, path: str, params: dict[str, Any]) -> list[ApiResponse]:
        """Every page of an offset-paged /me endpoint, following `next` with a loop guard."""
        pages = [self.client.get(path, params)]
        seen: set[str] = set()
        while isinstance(pages[-1].data, dict) and pages[-1].data.get("next"):
            url = str(pages[-1].data["next"])
            if url in seen or len(seen) > 10_000:
                raise ResponseError(f"loop detected in pagination at {url}", url=url)
            seen.add(url)
            pages.append(self.client.get(url))
        for page in pages:
            if not isinstance(page.data, dict) or not isinstance(page.data.get("items"), list):
                raise ResponseError(f"page without items from {page.url}", url=page.url)
        return pages

    def current_user(self, writer: RawZoneWriter) -> str:
        response = self.client.get("me")
        self._store(writer, "me", response)
        if not isinstance(response.data, dict) or not response.data.get("id"):
            raise ResponseError("the /me response has no user id", url=response.url)
        return str(response.data["id"])

    def my_playlists(self, writer: RawZoneWriter, user: str) -> list[str]:
        """IDs of every playlist in the user's library (owned, collaborative and followed)."""
        ids = []
        for page in self._pages("me/playlists", {"limit": PAGE}):
            self._store(writer, "me_playlists", page, user_id=user)
            ids += [p["id"] for p in page.data["items"] if isinstance(p, dict) and p.get("id")]
        return ids

    def liked(self, writer: RawZoneWriter, user: str) -> int:
        count = 0
        for page in self._pages("me/tracks", {"limit": PAGE}):
            self._store(writer, "saved_tracks", page, user_id=user)
            for saved in page.data["items"]:
                if isinstance(saved, dict) and isinstance(saved.get("track"), dict):
                    self._remember_track(saved["track"])
                    count += 1
        return count

    def recently_played(
        self, writer: RawZoneWriter, user: str, state: ExtractState, gaps: list[dict[str, Any]] | None = None
    ) -> int:
        """New plays since the last run's cursor (the API keeps only the last 50: run often). A full first
        page after the cursor may mean plays were dropped in between: that gap is appended to `gaps`."""
        cursor = state.cursor(f"recently_played:{user}")
        first_cursor = cursor
        count = 0
        for _ in range(100):  # at most 50 plays a page; the API keeps 50, so this ends after one or two
            params: dict[str, Any] = {"limit": PAGE}
            if cursor:
                params["after"] = cursor
            page = self.client.get("me/player/recently-played", params)
            items = page.data.get("items") if isinstance(page.data, dict) else None
            if not isinstance(items, list):
                raise ResponseError(f"page without items from {page.url}", url=page.url)
            if not items:
                break
            if first_cursor and count == 0 and len(items) >= PAGE and gaps is not None:
                gap = find_gap(user, int(first_cursor), items)
                if gap is not None:
                    gaps.append(gap)
                    log.warning(gap_warning(gap))
            self._store(writer, "recently_played", page, user_id=user)
            for play in items:
                if isinstance(play, dict) and isinstance(play.get("track"), dict):
                    self._remember_track(play["track"])
            count += len(items)
            after = (page.data.get("cursors") or {}).get("after")
            if not after or after == cursor:
                break
            cursor = str(after)
            state.set_cursor(f"recently_played:{user}", cursor)
            if "after" not in params:
                break  # without a cursor the API returns the latest plays; the next run continues from here
        return count

    def top(self, writer: RawZoneWriter, user: str) -> int:
        count = 0
        for kind in ("artists", "tracks"):
            for time_range in TIME_RANGES:
                page = self.client.get(f"me/top/{kind}", {"time_range": time_range, "limit": PAGE})
                items = page.data.get("items") if isinstance(page.data, dict) else None
                if not isinstance(items, list):
                    raise ResponseError(f"page without items from {page.url}", url=page.url)
                self._store(writer, "top_items", page, user_id=user, kind=kind, time_range=time_range)
                if kind == "tracks":
                    for track in items:
                        if isinstance(track, dict):
                            self._remember_track(track)
                count += len(items)
        return count


def find_gap(user: str, cursor_ms: int, items: list[Any]) -> dict[str, Any] | None:
    """The gap between the last stored play (`cursor_ms`) and the oldest of a full page of newer plays, or
    None when the page's play rate says nothing is missing. The API keeps only the last 50 plays and cannot
    page further back, so the count is an estimate: the gap's length over the page's mean time per play."""
    stamps = sorted(
        dt.datetime.fromisoformat(str(p["played_at"]).replace("Z", "+00:00"))
        for p in items
        if isinstance(p, dict) and p.get("played_at")
    )
    if len(stamps) < 2:
        return None
    last_stored = dt.datetime.fromtimestamp(cursor_ms / 1000, dt.UTC)
    per_play = (stamps[-1] - stamps[0]).total_seconds() / (len(stamps) - 1)
    gap = (stamps[0] - last_stored).total_seconds()
    missing = round(gap / per_play) - 1 if per_play > 0 else len(stamps)
    if missing < 1:
        return None
    return {
        "user_id": user,
        "from_played_at": last_stored.isoformat(),  # strings: the gap is also in the run's manifest (JSON)
        "to_played_at": stamps[0].isoformat(),
        "plays_missing": missing,
        # half the time the API's 50 plays last at this play rate: a margin for bursts
        "every_minutes": max(1, int(PAGE * per_play / 2 / 60)),
        "detected_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def gap_warning(gap: dict[str, Any]) -> str:
    return (
        f"about {gap['plays_missing']} plays may be missing between {gap['from_played_at'][:16].replace('T', ' ')} "
        f"and {gap['to_played_at'][:16].replace('T', ' ')} UTC (the API keeps only the last {PAGE}): run "
        f"`spotify-pipeline run --source recently-played` at least every {gap['every_minutes']} minutes "
        "(or `spotify-pipeline poll`)"
    )


def describe_failure(source: str, exc: ApiError) -> str:
    if exc.status == 401:
        return f"{source}: needs a user login (client credentials have no user): run `spotify-pipeline login`"
    if exc.status == 403:
        return f"{source}: not allowed for this app or login (403): check the login's scopes"
    return f"{source}: {exc}"
