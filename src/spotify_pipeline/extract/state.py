"""What extraction remembers between runs: each playlist's last complete snapshot and enrichment times,
including when an artist or album was last found missing (404, or `null` in a batch answer).

A derived cache kept at `_state/extract_state.json` in the lake and rewritten atomically at the end of a
run. Losing it costs one full extraction, never data: the raw zone stays the source of truth.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

from ..errors import LakeError
from ..lake.layout import STATE_KEY
from ..lake.storage import Storage


class ExtractState:
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        data = data or {}
        self.playlists: dict[str, dict[str, Any]] = data.get("playlists", {})
        self.enriched: dict[str, dict[str, str]] = data.get("enriched", {"artists": {}, "albums": {}})
        # IDs that answered 404 or null: not asked for again until the enrichment TTL has passed
        self.missing: dict[str, dict[str, str]] = data.get("missing", {})
        self.cursors: dict[str, str] = data.get("cursors", {})
        self._lock = threading.Lock()

    @classmethod
    def load(cls, storage: Storage) -> ExtractState:
        if not storage.exists(STATE_KEY):
            return cls()
        try:
            return cls(json.loads(storage.read(STATE_KEY)))
        except (ValueError, LakeError):
            return cls()  # a broken cache only costs a full extraction

    def save(self, storage: Storage) -> None:
        """Write the state, merged with what another run may have saved meanwhile (parallel extract
        batches on AWS): the newest entry of each playlist, enrichment time and cursor wins."""
        with self._lock:
            current = ExtractState.load(storage)
            playlists = dict(current.playlists)
            for pid, entry in self.playlists.items():
                if pid not in playlists or entry["extracted_at"] >= playlists[pid]["extracted_at"]:
                    playlists[pid] = entry
            enriched = _merged(current.enriched, self.enriched)
            missing = _merged(current.missing, self.missing)
            for kind, ids in enriched.items():  # found since it went missing: no longer missing
                bucket = missing.get(kind, {})
                for entity_id in [i for i, when in bucket.items() if ids.get(i, "") >= when]:
                    del bucket[entity_id]
            cursors = dict(current.cursors)
            for name, value in self.cursors.items():
                cursors[name] = max(value, cursors.get(name, value), key=lambda v: (len(v), v))
            data = {"playlists": playlists, "enriched": enriched, "missing": missing, "cursors": cursors}
            storage.write_atomic(STATE_KEY, json.dumps(data, sort_keys=True).encode(), overwrite=True)

    def snapshot_of(self, playlist_id: str) -> str | None:
        entry = self.playlists.get(playlist_id)
        return None if entry is None else entry.get("snapshot_id")

    def record_playlist(self, playlist_id: str, snapshot_id: str | None, at: dt.datetime) -> None:
        with self._lock:
            self.playlists[playlist_id] = {"snapshot_id": snapshot_id, "extracted_at": at.isoformat()}

    def is_fresh(self, kind: str, entity_id: str, ttl: dt.timedelta, now: dt.datetime) -> bool:
        """Fetched, or found missing, less than `ttl` ago: no need to ask again."""
        for known in (self.enriched, self.missing):
            when = known.get(kind, {}).get(entity_id)
            if when is not None and now - dt.datetime.fromisoformat(when) < ttl:
                return True
        return False

    def record_enriched(self, kind: str, entity_ids: list[str], at: dt.datetime) -> None:
        with self._lock:
            bucket = self.enriched.setdefault(kind, {})
            for entity_id in entity_ids:
                bucket[entity_id] = at.isoformat()

    def record_missing(self, kind: str, entity_ids: list[str], at: dt.datetime) -> None:
        with self._lock:
            bucket = self.missing.setdefault(kind, {})
            for entity_id in entity_ids:
                bucket[entity_id] = at.isoformat()

    def cursor(self, name: str) -> str | None:
        return self.cursors.get(name)

    def set_cursor(self, name: str, value: str) -> None:
        with self._lock:
            self.cursors[name] = value


def _merged(saved: dict[str, dict[str, str]], ours: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Per kind and ID, the later of two times."""
    merged = {kind: dict(ids) for kind, ids in saved.items()}
    for kind, ids in ours.items():
        bucket = merged.setdefault(kind, {})
        for entity_id, when in ids.items():
            bucket[entity_id] = max(when, bucket.get(entity_id, when))
    return merged
