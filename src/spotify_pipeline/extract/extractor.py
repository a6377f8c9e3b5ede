"""One extraction run: playlists (incrementally, by snapshot_id), their items, then artist/album enrichment.

Every response goes to the raw zone as it arrives; a playlist counts as extracted only when its last page
is stored, and the manifest written at the end lists which playlists are complete.

Longer than the ~400 lines we aim for: the playlists and the enrichment of one run share its client, raw
writer, state, summary and stop signal, so a split would mean handing all of those from object to object.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ApiError, AuthError, ResponseError, RetryWaitTooLong, TokenUnavailable, interruption_reason
from ..lake.layout import new_run_id
from ..lake.raw import RawZoneWriter
from ..lake.recovery import recover_interrupted_runs
from ..lake.storage import Storage
from ..reliability.crashpoints import crash_point
from .client import ApiResponse, RequestCancelled, SpotifyClient
from .sources import SOURCES, UserSources, describe_failure
from .state import ExtractState

log = logging.getLogger(__name__)

# Failures that stop the whole run (not one playlist): another request would fail the same way.
FATAL = (RetryWaitTooLong, AuthError, TokenUnavailable)

# The incremental check: what the playlists table keeps of a playlist (transform/raw.py `CHECKED_PLAYLIST`),
# no items. Every run checks every unchanged playlist and the transform parses every check (~100k a run at
# 10M items): each field asked for and not kept is sent, stored and parsed for nothing (`href`, `type`, the
# owner's `type` and `uri`, the images' sizes: 15% of a check's record; docs/BENCHMARKS.md).
CHECK_FIELDS = (
    "id,name,description,public,collaborative,snapshot_id,uri,external_urls(spotify),"
    "owner(id,display_name),followers(total),images(url),items(total),tracks(total)"
)
BATCH_SIZES = {"artists": 50, "albums": 20}
TRACK_BATCH = 50  # IDs per `/tracks?ids=` request
# Fields the OpenAPI document (and the real API) use; anything else is new: warn once, keep going.
KNOWN_FIELDS = {
    "playlist item": frozenset(
        {"added_at", "added_by", "is_local", "item", "track", "primary_color", "video_thumbnail"}
    ),
    "track": frozenset(
        {
            "album",
            "artists",
            "available_markets",
            "disc_number",
            "duration_ms",
            "explicit",
            "external_ids",
            "external_urls",
            "href",
            "id",
            "is_local",
            "is_playable",
            "linked_from",
            "name",
            "popularity",
            "preview_url",
            "restrictions",
            "track_number",
            "type",
            "uri",
            "episode",
            "track",
        }
    ),
    "episode": frozenset(
        {
            "audio_preview_url",
            "description",
            "duration_ms",
            "explicit",
            "external_urls",
            "href",
            "html_description",
            "id",
            "images",
            "is_externally_hosted",
            "is_playable",
            "language",
            "languages",
            "name",
            "release_date",
            "release_date_precision",
            "restrictions",
            "resume_point",
            "show",
            "type",
            "uri",
            "episode",
            "track",
            "album",
            "artists",
        }
    ),
}


@dataclass(frozen=True)
class ExtractOptions:
    full: bool = False  # ignore known snapshot ids and extract every playlist's items
    enrich: bool = True
    enrich_ttl: dt.timedelta = dt.timedelta(days=7)
    concurrency: int = 8
    page_size: int = 100
    # Listened songs still without album and artist, most-played first (history/enrichment.py), and how many
    # `/tracks` requests this run may spend on them; the next run goes on with the rest.
    tracks: tuple[str, ...] = ()
    track_budget: int = 0


@dataclass
class ExtractSummary:
    run_id: str
    started_at: str
    finished_at: str = ""
    status: str = "running"  # succeeded | partial (some playlists failed) | stopped | failed | interrupted
    playlists_checked: int = 0
    playlists_changed: int = 0
    playlists_unchanged: int = 0
    metadata_only: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    items: int = 0
    item_kinds: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    artists_enriched: int = 0
    albums_enriched: int = 0
    tracks_enriched: int = 0
    tracks_stopped: str | None = None  # why the optional `/tracks` step stopped early (a long Retry-After)
    enrichment_missing: dict[str, int] = field(default_factory=dict)  # kind -> IDs that answered 404 or null
    batch_refused: list[str] = field(default_factory=list)
    # Lookups not sent because they would add nothing the tables keep: `batch_probes` (a batch lookup of one
    # more kind once one was refused: Development Mode refuses them all) and `tracks_in_items` (listened songs
    # this run's items already carried as full track objects).
    enrichment_skipped: dict[str, int] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)
    bytes_written: int = 0
    files_written: int = 0
    stop_reason: str | None = None
    manifest: str | None = None
    recovered_runs: list[str] = field(default_factory=list)
    user_id: str | None = None
    sources: dict[str, int] = field(default_factory=dict)  # source -> items (liked songs, plays, top items)
    gaps: list[dict[str, Any]] = field(default_factory=list)  # recently played: plays possibly missed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Progress:
    """Receives counters as the run goes; the CLI draws a bar, tests and Lambda ignore it.

    `phase` names what the run is doing (extract, enrich, transform, publish; `total` playlists for extract);
    `update` adds counters: `playlists` (one per playlist finished, failed or not), `pages`, `items`."""

    stats: Any = None  # the client's request statistics, set by the extractor

    def phase(self, name: str, total: int | None = None) -> None:
        return None

    def update(self, **counters: int) -> None:
        return None


@dataclass
class _PlaylistOutcome:
    kind: str  # changed | unchanged | metadata_only
    snapshot_id: str | None
    items: int = 0
    pages: int = 0


def item_kind(playlist_item: dict[str, Any]) -> str:
    """track / episode / local / unavailable, for a PlaylistTrackObject (`item`, else deprecated `track`)."""
    obj = playlist_item.get("item", playlist_item.get("track"))
    if playlist_item.get("is_local") or (isinstance(obj, dict) and obj.get("is_local")):
        return "local"
    if not isinstance(obj, dict) or obj.get("type") not in ("track", "episode"):
        return "unavailable"
    return "episode" if obj.get("type") == "episode" else "track" if obj.get("id") else "unavailable"


class Extractor(UserSources):
    # Leave out lookups that would add nothing the tables keep (Development Mode): see `enrichment_skipped`.
    # False only to measure what they cost (bench/devmode_requests.py) and to prove the tables are the same.
    skip_needless = True

    def __init__(
        self,
        client: SpotifyClient,
        storage: Storage,
        options: ExtractOptions | None = None,
        progress: Progress | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        writer_options: dict[str, Any] | None = None,
    ) -> None:
        self.writer_options = writer_options or {}
        self.client = client
        self.storage = storage
        self.options = options or ExtractOptions()
        self.progress = progress or Progress()
        self.clock = clock
        self.progress.stats = client.stats  # requests and retries, for the bar
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._items_path = "items"  # switches to the deprecated "tracks" if a server only has that
        self._batch_refused: set[str] = set()
        self._refs: dict[str, set[str]] = {"artists": set(), "albums": set()}
        # Listened songs (options.tracks) this run's items and sources carried as full track objects; only
        # those are remembered, so a large run's memory does not grow with every song it sees.
        self._listened = frozenset(self.options.tracks)
        self._seen_tracks: set[str] = set()
        self._skipped: collections.Counter[str] = collections.Counter()
        self._kinds: collections.Counter[str] = collections.Counter()
        self._warned: set[str] = set()

    # ---- the run -------------------------------------------------------------------------------------
    def run(
        self, playlist_ids: Iterable[str], run_id: str | None = None, sources: Iterable[str] = ()
    ) -> ExtractSummary:
        started = self.clock()
        run_id = run_id or new_run_id(started, secrets.token_hex(3))
        summary = ExtractSummary(run_id=run_id, started_at=started.isoformat())
        state = ExtractState.load(self.storage)
        for manifest in recover_interrupted_runs(self.storage):
            summary.recovered_runs.append(manifest["run_id"])
            for pid, outcome in manifest["playlists"].items():
                state.record_playlist(pid, outcome.get("snapshot_id"), started)
            log.warning(
                "run %s was interrupted; %d complete playlists kept from it",
                manifest["run_id"],
                len(manifest["playlists"]),
            )
        writer = RawZoneWriter(self.storage, run_id, started.date(), **self.writer_options)
        outcomes: dict[str, dict[str, Any]] = {}
        ids = list(playlist_ids)
        fatal: BaseException | None = None
        interrupted: BaseException | None = None
        wanted = [src for src in SOURCES if src in set(sources)]
        futures: dict[Future[_PlaylistOutcome], str] = {}
        try:
            if wanted:
                fatal = self._user_sources_first(wanted, writer, summary, ids)
            with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="extract") as pool:
                try:
                    if fatal is None:
                        self.progress.phase("extract", len(ids))
                        futures = {pool.submit(self._playlist, pid, state, writer): pid for pid in ids}
                        fatal = self._collect(futures, outcomes, summary, state)
                    if fatal is None and wanted:
                        fatal = self._user_sources_rest(wanted, writer, summary, state)
                    if fatal is None and self.options.enrich:
                        self.progress.phase("enrich")
                        fatal = self._enrich(pool, state, writer, summary)
                    if fatal is None and self.options.enrich and self.options.track_budget:
                        self._enrich_tracks(pool, state, writer, summary)
                except KeyboardInterrupt:
                    # Ctrl-C / SIGTERM: nothing new starts, waits are cut short, requests already sent finish
                    # (bounded by the timeout); playlists finished meanwhile still count, then the manifest.
                    self._stop.set()
                    self.client.cancel()
                    pool.shutdown(wait=True, cancel_futures=True)
                    self._collect_after_stop(futures, outcomes, summary, state)
                    raise
        except KeyboardInterrupt as exc:
            interrupted = exc
            raise
        finally:
            summary.finished_at = self.clock().isoformat()
            summary.items = sum(self._kinds.values())
            summary.item_kinds = dict(self._kinds)
            summary.batch_refused = sorted(self._batch_refused)
            summary.enrichment_skipped = dict(self._skipped)
            summary.requests = self.client.stats.as_dict()
            if interrupted is not None:
                summary.status, summary.stop_reason = "interrupted", interruption_reason(interrupted)
            elif isinstance(fatal, RetryWaitTooLong):
                summary.status, summary.stop_reason = "stopped", str(fatal)
            elif fatal is not None:
                summary.status, summary.stop_reason = "failed", str(fatal)
            elif ids and not summary.sources and all(pid in summary.failed for pid in ids):
                fatal = _every_playlist_failed([summary.failed[pid] for pid in ids])
                summary.status, summary.stop_reason = "failed", str(fatal)
            else:
                summary.status = "partial" if summary.failed else "succeeded"
            summary.manifest = writer.close({**summary.as_dict(), "playlists": outcomes, "bytes_written": None})
            summary.bytes_written = writer.bytes_written
            summary.files_written = len(writer.files)
            state.save(self.storage)
        if fatal is not None and summary.status == "failed":
            raise fatal  # bad credentials, no token, or no playlist extracted: the run failed
        return summary

    def _user_sources_first(
        self, wanted: list[str], writer: RawZoneWriter, summary: ExtractSummary, ids: list[str]
    ) -> BaseException | None:
        """Who the user is, and (for my-playlists) which playlists to add to this run."""
        try:
            summary.user_id = self.current_user(writer)
            if "my-playlists" in wanted:
                mine = self.my_playlists(writer, summary.user_id)
                summary.sources["my-playlists"] = len(mine)
                ids.extend(pid for pid in mine if pid not in set(ids))
        except FATAL as exc:
            return exc
        except ApiError as exc:
            if exc.status == 401:
                return AuthError(describe_failure("user sources", exc), status=401, url=exc.url)
            summary.failed["my-playlists"] = describe_failure("my-playlists", exc)
        return None

    def _user_sources_rest(
        self, wanted: list[str], writer: RawZoneWriter, summary: ExtractSummary, state: ExtractState
    ) -> BaseException | None:
        assert summary.user_id is not None
        steps = {
            "liked": lambda: self.liked(writer, summary.user_id or ""),
            "recently-played": lambda: self.recently_played(writer, summary.user_id or "", state, summary.gaps),
            "top": lambda: self.top(writer, summary.user_id or ""),
        }
        for source in wanted:
            if source not in steps:
                continue
            try:
                summary.sources[source] = steps[source]()
            except FATAL as exc:
                return exc
            except ApiError as exc:
                summary.failed[source] = describe_failure(source, exc)
        return None

    def _collect(
        self,
        futures: dict[Future[_PlaylistOutcome], str],
        outcomes: dict[str, dict[str, Any]],
        summary: ExtractSummary,
        state: ExtractState,
    ) -> BaseException | None:
        fatal: BaseException | None = None
        pending = set(futures)
        while pending:
            # Each playlist as it finishes (not all at the end): the progress count moves with the run.
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pid = futures[future]
                try:
                    outcome = future.result()
                except FATAL as exc:
                    fatal = fatal or exc
                    self._stop.set()
                    for other in pending:
                        other.cancel()
                    outcomes[pid] = {"status": "incomplete"}
                    continue
                except ApiError as exc:
                    summary.failed[pid] = _playlist_error(pid, exc)
                    outcomes[pid] = {"status": "failed", "error": summary.failed[pid]}
                    log.warning("playlist %s failed: %s", pid, summary.failed[pid])
                    self.progress.update(playlists=1)  # finished too: the count reaches the total
                    continue
                except (_Stopped, CancelledError, RequestCancelled):
                    outcomes[pid] = {"status": "incomplete"}
                    continue
                summary.playlists_checked += 1
                if outcome.kind == "unchanged":
                    summary.playlists_unchanged += 1
                elif outcome.kind == "metadata_only":
                    summary.metadata_only.append(pid)
                else:
                    summary.playlists_changed += 1
                    summary.pages += outcome.pages
                if outcome.kind == "changed":
                    state.record_playlist(pid, outcome.snapshot_id, self.clock())
                outcomes[pid] = {
                    "status": outcome.kind if outcome.kind != "changed" else "complete",
                    "snapshot_id": outcome.snapshot_id,
                    "items": outcome.items,
                }
                self.progress.update(playlists=1)
                log.info(
                    "playlist %s: %s",
                    pid,
                    outcomes[pid]["status"],
                    extra={
                        "fields": {
                            "playlist_id": pid,
                            **outcomes[pid],
                            "requests": self.client.stats.total_requests,
                            "retries": self.client.stats.retries,
                        }
                    },
                )
        return fatal

    def _collect_after_stop(
        self,
        futures: dict[Future[_PlaylistOutcome], str],
        outcomes: dict[str, dict[str, Any]],
        summary: ExtractSummary,
        state: ExtractState,
    ) -> None:
        """Once the pool is shut down: count the playlists that finished meanwhile. (A future cancelled by the
        shutdown never reaches `wait`'s notion of done, so only finished ones are passed on.)"""
        finished = {f: pid for f, pid in futures.items() if pid not in outcomes and f.done() and not f.cancelled()}
        self._collect(finished, outcomes, summary, state)
        for pid in futures.values():
            outcomes.setdefault(pid, {"status": "incomplete"})

    # ---- one playlist --------------------------------------------------------------------------------
    def _playlist(self, pid: str, state: ExtractState, writer: RawZoneWriter) -> _PlaylistOutcome:
        self._check_stop()
        known = None if self.options.full else state.snapshot_of(pid)
        embedded = 0
        totals: set[object] = set()
        if known is not None:
            check = self.client.get(f"playlists/{pid}", {"fields": CHECK_FIELDS})
            self._store(writer, "playlist_checks", check, playlist_id=pid)
            snapshot = _snapshot(check, pid)
            if snapshot == known:
                return _PlaylistOutcome("unchanged", snapshot)
            pages = self._pages_from_offset(pid, 0)
        else:
            response = self.client.get(f"playlists/{pid}")
            self._store(writer, "playlists", response, playlist_id=pid)
            snapshot = _snapshot(response, pid)
            container = response.data.get("items", response.data.get("tracks"))
            if not isinstance(container, dict):
                return _PlaylistOutcome("metadata_only", snapshot)
            embedded = self._take_items(container)
            totals.add(container.get("total"))
            pages = self._follow(pid, container)
        count, page_count = 0, 0
        for page in pages:
            self._check_stop()
            self._store(writer, "playlist_items", page, playlist_id=pid, snapshot_id=snapshot)
            crash_point("extract.page_stored")
            count += self._take_items(page.data)
            page_count += 1
            totals.add(page.data.get("total"))
        totals.discard(None)
        if totals and totals != {count + embedded}:
            # Someone edited the playlist between two pages: the positions read are not one version of it.
            said = ", ".join(str(t) for t in totals)
            raise ResponseError(
                f"playlist {pid} changed while it was read ({count + embedded} items, pages said {said}); "
                "the next run reads it again"
            )
        writer.mark_complete(pid, {"snapshot_id": snapshot, "items": count + embedded})
        return _PlaylistOutcome("changed", snapshot, count + embedded, page_count)

    def _pages_from_offset(self, pid: str, offset: int) -> Iterator[ApiResponse]:
        limit = self.options.page_size
        try:
            first = self.client.get(f"playlists/{pid}/{self._items_path}", {"offset": offset, "limit": limit})
        except ApiError as exc:
            if exc.status != 404 or self._items_path == "tracks":
                raise
            log.warning("the server has no /playlists/{id}/items; using the deprecated /tracks for this run")
            self._items_path = "tracks"
            first = self.client.get(f"playlists/{pid}/tracks", {"offset": offset, "limit": limit})
        yield first
        yield from self._follow(pid, first.data)

    def _follow(self, pid: str, page: dict[str, Any]) -> Iterator[ApiResponse]:
        """Follow `next` links, refusing to loop: a URL seen twice or more pages than `total` allows."""
        seen: set[str] = set()
        total = int(page.get("total") or 0)
        max_pages = total // max(1, int(page.get("limit") or 1)) + 2
        url = page.get("next")
        while url:
            if url in seen or len(seen) > max_pages:
                raise ResponseError(f"loop detected in pagination of playlist {pid} at {url}", url=url)
            seen.add(url)
            response = self.client.get(url)
            yield response
            if not isinstance(response.data, dict) or not isinstance(response.data.get("items"), list):
                raise ResponseError(f"page without items from {url}", url=url)
            url = response.data.get("next")

    def _take_items(self, page: dict[str, Any]) -> int:
        """Count item kinds and remember referenced artists and albums for enrichment."""
        items = page.get("items")
        if not isinstance(items, list):
            raise ResponseError(f"page without items in the response for {page.get('href') or 'a playlist'}")
        kinds: collections.Counter[str] = collections.Counter()
        artists: set[str] = set()
        albums: set[str] = set()
        tracks: set[str] = set()
        for entry in items:
            if not isinstance(entry, dict):
                kinds["unavailable"] += 1
                continue
            kind = item_kind(entry)
            kinds[kind] += 1
            obj = entry.get("item", entry.get("track"))
            self._notice_drift("playlist item", entry)
            if isinstance(obj, dict):
                if obj.get("type") not in ("track", "episode"):
                    self._warn_once(
                        f"type:{obj.get('type')}",
                        f"unexpected item type {obj.get('type')!r}: stored raw, counted as unavailable",
                    )
                else:
                    self._notice_drift(str(obj["type"]), obj)
            if kind != "track":
                continue
            if isinstance(obj, dict):
                _track_refs(obj, artists, albums)
                if self._listened and _is_full_track(obj) and obj["id"] in self._listened:
                    tracks.add(obj["id"])
        with self._lock:
            self._kinds.update(kinds)
            self._refs["artists"] |= artists
            self._refs["albums"] |= albums
            self._seen_tracks |= tracks
        self.progress.update(pages=1, items=len(items))
        return len(items)

    def _remember_track(self, track: dict[str, Any]) -> None:
        artists: set[str] = set()
        albums: set[str] = set()
        _track_refs(track, artists, albums)
        with self._lock:
            self._refs["artists"] |= artists
            self._refs["albums"] |= albums
            if self._listened and _is_full_track(track) and track["id"] in self._listened:
                self._seen_tracks.add(track["id"])

    def _notice_drift(self, kind: str, obj: dict[str, Any]) -> None:
        unknown = obj.keys() - KNOWN_FIELDS[kind]
        for name in unknown:
            self._warn_once(
                f"{kind}:{name}", f"unknown field {name!r} in {kind} objects (API change?): kept in the raw zone"
            )

    def _warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(message)

    # ---- enrichment ----------------------------------------------------------------------------------
    def _enrich(
        self, pool: ThreadPoolExecutor, state: ExtractState, writer: RawZoneWriter, summary: ExtractSummary
    ) -> BaseException | None:
        now = self.clock()
        for kind in ("artists", "albums"):
            wanted = sorted(i for i in self._refs[kind] if not state.is_fresh(kind, i, self.options.enrich_ttl, now))
            size = BATCH_SIZES[kind]
            batches = [wanted[i : i + size] for i in range(0, len(wanted), size)]
            futures: list[Future[tuple[list[str], list[str]] | None]] = []
            if batches and not self._batch_refused and self.skip_needless:
                # One batch lookup first, alone: refused (Development Mode), no other kind is probed and no
                # concurrent batch lookup is sent only to be refused too.
                probe = pool.submit(self._batch_lookup, kind, batches[0], writer)
                wait([probe])
                if probe.exception() is not None or probe.result() is not None:
                    futures.append(probe)  # answered (or failed: reported below like any batch)
                    batches = batches[1:]
            futures += [pool.submit(self._enrich_batch, kind, batch, writer) for batch in batches]
            for future in futures:
                try:
                    fetched, missing = future.result() or ([], [])
                except FATAL as exc:
                    self._stop.set()
                    for other in futures:
                        other.cancel()
                    return exc
                except ApiError as exc:
                    summary.failed[f"{kind}-enrichment"] = str(exc)
                    continue
                except (_Stopped, CancelledError, RequestCancelled):
                    continue
                state.record_enriched(kind, fetched, now)
                if missing:  # gone from Spotify (or never there): not asked for again until the TTL passes
                    state.record_missing(kind, missing, now)
                    summary.enrichment_missing[kind] = summary.enrichment_missing.get(kind, 0) + len(missing)
                if kind == "artists":
                    summary.artists_enriched += len(fetched)
                else:
                    summary.albums_enriched += len(fetched)
        return None

    def _enrich_batch(self, kind: str, ids: list[str], writer: RawZoneWriter) -> tuple[list[str], list[str]]:
        """Fetch these IDs: (the IDs found, the IDs that answered 404 or `null`)."""
        answered = self._batch_lookup(kind, ids, writer)
        return answered if answered is not None else self._one_at_a_time(kind, ids, writer)

    def _batch_lookup(self, kind: str, ids: list[str], writer: RawZoneWriter) -> tuple[list[str], list[str]] | None:
        """One batch lookup: (found, missing), or None when batch lookups are refused (Development Mode)."""
        self._check_stop()
        with self._lock:
            if self._batch_refused and kind not in self._batch_refused and self.skip_needless:
                self._batch_refused.add(kind)  # Development Mode refuses every batch lookup: not probed again
                self._skipped["batch_probes"] += 1
        if kind not in self._batch_refused:
            try:
                response = self.client.get(kind, {"ids": ",".join(ids)})
            except ApiError as exc:
                if exc.status != 403:
                    raise
                with self._lock:
                    if kind not in self._batch_refused:
                        log.warning("batch /%s refused (Development Mode?): fetching one ID at a time", kind)
                    self._batch_refused.add(kind)
            else:
                self._store(writer, kind, response)
                found = [o["id"] for o in response.data.get(kind) or [] if isinstance(o, dict) and o.get("id")]
                return found, sorted(set(ids) - set(found))
        return None

    def _one_at_a_time(self, kind: str, ids: list[str], writer: RawZoneWriter) -> tuple[list[str], list[str]]:
        fetched: list[str] = []
        missing: list[str] = []
        for entity_id in ids:
            self._check_stop()
            try:
                response = self.client.get(f"{kind}/{entity_id}")
            except ApiError as exc:
                if exc.status == 404:
                    missing.append(entity_id)
                    continue
                raise
            self._store(writer, kind, response)
            fetched.append(entity_id)
        return fetched, missing

    def _enrich_tracks(
        self, pool: ThreadPoolExecutor, state: ExtractState, writer: RawZoneWriter, summary: ExtractSummary
    ) -> None:
        """Listened songs' `/tracks`, most-played first, at most `track_budget` requests: `/tracks?ids=` (50 per
        request) or, once that answers 403 (Development Mode; known already if another batch lookup was
        refused this run), `/tracks/{id}`. Optional: a 429 whose Retry-After is above the cap stops this step
        only (logged; the next run goes on), never the run."""
        now = self.clock()
        ttl = self.options.enrich_ttl
        wanted = [t for t in dict.fromkeys(self.options.tracks) if not state.is_fresh("tracks", t, ttl, now)]
        budget = self.options.track_budget
        if self._batch_refused:
            self._batch_refused.add("tracks")  # Development Mode: a batch probe would only be refused
            # One at a time, `/tracks/{id}` of a song this run's items carried in full returns the same object
            # (Development Mode serves no popularity to observe): asked for, it would add nothing.
            carried = [t for t in wanted if t in self._seen_tracks] if self.skip_needless else []
            if carried:
                self._skipped["tracks_in_items"] += len(carried)
                wanted = [t for t in wanted if t not in self._seen_tracks]
        if "tracks" not in self._batch_refused and wanted:
            # One batch probe; refused (403) it costs nothing from the budget and switches to one ID at a time.
            done = 0
            for start in range(0, min(len(wanted), budget * TRACK_BATCH), TRACK_BATCH):
                ids = wanted[start : start + TRACK_BATCH]
                try:
                    response = self.client.get("tracks", {"ids": ",".join(ids)})
                except RetryWaitTooLong as exc:
                    return self._tracks_stopped(summary, exc)
                except ApiError as exc:
                    if exc.status != 403:
                        summary.failed["tracks-enrichment"] = str(exc)
                        return None
                    log.warning("batch /tracks refused (Development Mode?): fetching one ID at a time")
                    self._batch_refused.add("tracks")
                    break
                self._store(writer, "tracks", response)
                found = [o["id"] for o in response.data.get("tracks") or [] if isinstance(o, dict) and o.get("id")]
                self._record_tracks(state, summary, found, sorted(set(ids) - set(found)), now)
                done = start + len(ids)
            else:
                return None
            wanted = wanted[done:]
        stop = threading.Event()
        futures = [pool.submit(self._one_track, t, writer, stop) for t in wanted[:budget]]
        for track_id, future in zip(wanted, futures, strict=False):
            try:
                answered = future.result()
            except RetryWaitTooLong as exc:
                stop.set()
                self._tracks_stopped(summary, exc)
                continue
            except ApiError as exc:
                summary.failed["tracks-enrichment"] = str(exc)
                continue
            except (_Stopped, CancelledError, RequestCancelled):
                continue
            if answered is not None:
                hit = [track_id] if answered else []
                self._record_tracks(state, summary, hit, [] if answered else [track_id], now)
        return None

    def _one_track(self, track_id: str, writer: RawZoneWriter, stop: threading.Event) -> bool | None:
        """`/tracks/{id}`: True (stored), False (404), None (not asked: the step or the run is stopping)."""
        if stop.is_set():
            return None
        self._check_stop()
        try:
            response = self.client.get(f"tracks/{track_id}")
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        self._store(writer, "tracks", response)
        return True

    def _record_tracks(
        self, state: ExtractState, summary: ExtractSummary, found: list[str], missing: list[str], now: dt.datetime
    ) -> None:
        state.record_enriched("tracks", found, now)
        summary.tracks_enriched += len(found)
        if missing:  # not asked for again until the enrichment TTL has passed
            state.record_missing("tracks", missing, now)
            summary.enrichment_missing["tracks"] = summary.enrichment_missing.get("tracks", 0) + len(missing)

    def _tracks_stopped(self, summary: ExtractSummary, exc: RetryWaitTooLong) -> None:
        if summary.tracks_stopped is None:
            log.warning("looking up listened tracks stopped until the next run: %s", exc)
        summary.tracks_stopped = str(exc)

    # ---- helpers -------------------------------------------------------------------------------------
    def _store(self, writer: RawZoneWriter, entity: str, response: ApiResponse, **meta: Any) -> None:
        writer.write(
            entity,
            {
                "run_id": writer.run_id,
                "entity": entity,
                "endpoint": response.endpoint,
                "url": response.url,  # never carries credentials: the token travels in a header
                "status": response.status,
                "fetched_at": response.fetched_at.isoformat(),
                **meta,
            },
            response.body,
        )

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped


def _track_refs(track: dict[str, Any], artists: set[str], albums: set[str]) -> None:
    """Add the artist and album IDs a track object references."""
    artists.update(a["id"] for a in track.get("artists") or [] if isinstance(a, dict) and a.get("id"))
    album = track.get("album") or {}
    if isinstance(album, dict) and album.get("id"):
        albums.add(album["id"])
        artists.update(a["id"] for a in album.get("artists") or [] if isinstance(a, dict) and a.get("id"))


def _is_full_track(track: dict[str, Any]) -> bool:
    """A full track object with an ID (album and artists embedded): a `/tracks/{id}` lookup would repeat it."""
    return bool(track.get("id")) and track.get("type") == "track" and isinstance(track.get("album"), dict)


class _Stopped(Exception):
    """The run is stopping (another worker hit a fatal condition); this worker stops too."""


def _snapshot(response: ApiResponse, pid: str) -> str | None:
    if not isinstance(response.data, dict):
        raise ResponseError(f"playlist {pid}: the response is not a JSON object", url=response.url)
    snapshot = response.data.get("snapshot_id")
    return str(snapshot) if snapshot is not None else None


def _every_playlist_failed(reasons: list[str]) -> ApiError:
    """One line for a run in which no playlist could be extracted: the reason, or the first of several."""
    reason = reasons[0] if len(set(reasons)) == 1 else f"{reasons[0]}; and {len(reasons) - 1} more (see the log)"
    return ApiError(
        f"every playlist failed ({len(reasons)} of {len(reasons)}): {reason}",
        hint="nothing was extracted, so nothing was published; fix the cause and re-run",
    )


def _playlist_error(pid: str, exc: ApiError) -> str:
    if exc.status == 404:
        return f"playlist {pid} not found (404): check the ID, or it may be private or deleted"
    if exc.status == 403:
        return f"playlist {pid} is not accessible to this app (403)"
    return str(exc)
