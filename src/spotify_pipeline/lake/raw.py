"""The raw zone: every API response kept exactly as received, compressed NDJSON, never rewritten.

Each line is `{"meta": {...}, "body": <the response body>}`. The body bytes are spliced in verbatim; only
raw CR/LF bytes are turned into spaces, which JSON allows only as whitespace between tokens (inside strings
they are always escaped), so the JSON value is exactly what the API sent.

A run's manifest lists each part file with what it must still be: `records` (lines), `bytes` (gzip size),
`raw_bytes` (uncompressed size) and `sha256` (of the gzip bytes; manifests written before it have none, and
recovered runs have only `bytes`). `verify_part` compares a file with its entry. A history import's parts are
Parquet instead (history/raw_parts.py: typed, every field kept), with `records`, `bytes` and `sha256`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import threading
import time
import zlib
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import LakeError
from ..reliability.crashpoints import crash_point
from .layout import MANIFEST_PREFIX, checkpoint_key, manifest_key, raw_part_key, run_id_of
from .storage import Storage

PART_TARGET_BYTES = 8 * 1024 * 1024  # uncompressed bytes per part file
FLUSH_INTERVAL_S = 30.0  # a slow run still checkpoints this often
_NEWLINES = bytes.maketrans(b"\r\n", b"  ")


@dataclass(frozen=True)
class RawRecord:
    meta: dict[str, Any]
    body: Any


@dataclass
class _Buffer:
    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    records: int = 0


class RawZoneWriter:
    """Buffers records and writes part files atomically. Thread-safe.

    Every flush writes all buffered records, then a checkpoint listing the files and the playlists marked
    complete since the previous checkpoint (their pages are all on disk by then): each checkpoint is small,
    so a run of 100k playlists does not rewrite a growing list a thousand times (it did: 15 GB of
    checkpoints for 5M items, measured). A run killed mid-way can thus be
    finalised from its checkpoints (`recover_interrupted_runs`). The manifest is written last by
    `close()`: a run without one is incomplete.
    """

    def __init__(
        self,
        storage: Storage,
        run_id: str,
        extracted_date: dt.date,
        *,
        part_target_bytes: int = PART_TARGET_BYTES,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.storage = storage
        self.run_id = run_id
        self.extracted_date = extracted_date
        self.part_target_bytes = part_target_bytes
        self.flush_interval_s = flush_interval_s
        self._buffers: dict[str, _Buffer] = {}
        self._buffered = 0
        self._parts: dict[str, int] = {}
        self._checkpoints = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._pending_complete: dict[str, dict[str, Any]] = {}  # since the last checkpoint
        self._files_checkpointed = 0
        self.files: list[dict[str, Any]] = []
        self.bytes_written = 0
        self.records_written = 0

    def write(self, entity: str, meta: dict[str, Any], body: bytes) -> None:
        line = b'{"meta":' + json.dumps(meta, ensure_ascii=False).encode() + b',"body":'
        line += body.translate(_NEWLINES) + b"}\n"
        with self._lock:
            buffer = self._buffers.setdefault(entity, _Buffer())
            buffer.lines.append(line)
            buffer.size += len(line)
            buffer.records += 1
            self._buffered += len(line)
            due = time.monotonic() - self._last_flush >= self.flush_interval_s
            if self._buffered >= self.part_target_bytes or due:
                self._flush_all()

    def mark_complete(self, playlist_id: str, outcome: dict[str, Any]) -> None:
        """Every page of this playlist has been written; the next checkpoint records it as complete."""
        with self._lock:
            self._pending_complete[playlist_id] = outcome

    def flush(self) -> None:
        with self._lock:
            self._flush_all()

    def _flush_all(self) -> None:
        for entity in list(self._buffers):
            self._flush_entity(entity)
        self._buffered = 0
        self._last_flush = time.monotonic()
        new_files = self.files[self._files_checkpointed :]
        if new_files or self._pending_complete:
            self._checkpoints += 1
            checkpoint = {
                "run_id": self.run_id,
                "extracted_date": self.extracted_date.isoformat(),
                "files": new_files,
                "complete": self._pending_complete,
            }
            key = checkpoint_key(self.run_id, self._checkpoints)
            self.storage.write_atomic(key, json.dumps(checkpoint, ensure_ascii=False).encode())
            self._files_checkpointed = len(self.files)
            self._pending_complete = {}

    def _flush_entity(self, entity: str) -> None:
        buffer = self._buffers.pop(entity, None)
        if buffer is None or not buffer.lines:
            return
        part = self._parts.get(entity, 0) + 1
        self._parts[entity] = part
        key = raw_part_key(entity, self.extracted_date, self.run_id, part)
        raw = b"".join(buffer.lines)
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
            gz.write(raw)
        data = out.getvalue()
        self.storage.write_atomic(key, data)
        crash_point("raw.part_written")
        self.files.append(
            {
                "key": key,
                "entity": entity,
                "records": buffer.records,
                "bytes": len(data),
                "raw_bytes": len(raw),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        self.bytes_written += len(data)
        self.records_written += buffer.records

    def close(self, summary: dict[str, Any]) -> str:
        """Flush everything, then write the run's manifest (the marker that the run's files are complete)."""
        self.flush()
        key = manifest_key(self.extracted_date, self.run_id)
        manifest = {
            "run_id": self.run_id,
            "extracted_date": self.extracted_date.isoformat(),
            "files": self.files,
            **summary,
        }
        self.storage.write_atomic(key, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
        return key


class RawZoneReader:
    """Reads manifests and raw records back (the transform reads part files directly with DuckDB)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def manifests(self, skip: Container[str] = ()) -> list[dict[str, Any]]:
        """Every run's manifest, oldest run first; with `skip`, not those of these run ids, which are never
        read (told from the key: the transform reads only the runs it has not processed, where reading every
        manifest of a lake of hourly runs grew with its history, ~1.2 MB each at 10k playlists)."""
        out = []
        for key in self.storage.list(MANIFEST_PREFIX):
            if not key.endswith(".json") or run_id_of(key) in skip:
                continue
            try:
                out.append(json.loads(self.storage.read(key)))
            except ValueError as exc:
                raise LakeError(f"corrupted manifest {key}", hint="restore it or move it aside") from exc
        return sorted(out, key=lambda m: str(m["run_id"]))

    def records(self, key: str) -> Iterator[RawRecord]:
        try:
            text = gzip.decompress(self.storage.read(key))
        except (OSError, EOFError) as exc:
            raise LakeError(f"corrupted raw file {key}: {exc}", hint="restore it from a backup") from exc
        for line in text.splitlines():
            if line:
                record = json.loads(line)
                yield RawRecord(record["meta"], record["body"])


def verify_part(entry: dict[str, Any], data: bytes) -> str | None:
    """What is wrong with the part file `data` given its manifest entry, or None: size, checksum, then
    every line a JSON object and as many lines as the manifest says. Fields an older manifest lacks are
    not checked."""
    if entry.get("bytes") is not None and len(data) != entry["bytes"]:
        return f"{len(data)} bytes, the manifest says {entry['bytes']}"
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return "content differs from the manifest (sha256)"
    if str(entry.get("key", "")).endswith(".parquet") or data[:4] == _PARQUET_MAGIC:
        return _parquet_problem(entry, data)
    try:
        text = gzip.decompress(data)
        records = 0
        for line in text.splitlines():
            if line.strip():
                json.loads(line)
                records += 1
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        return f"corrupted ({type(exc).__name__})"
    if entry.get("raw_bytes") is not None and len(text) != entry["raw_bytes"]:
        return f"{len(text)} bytes uncompressed, the manifest says {entry['raw_bytes']}"
    if entry.get("records") is not None and records != entry["records"]:
        return f"{records} records, the manifest says {entry['records']}"
    return None


_PARQUET_MAGIC = b"PAR1"


def _parquet_problem(entry: dict[str, Any], data: bytes) -> str | None:
    """A columnar part (history imports, history/raw_parts.py): every page reads, and as many rows as the
    manifest says."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(pa.BufferReader(data)).read().num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        return f"corrupted ({type(exc).__name__})"
    if entry.get("records") is not None and rows != entry["records"]:
        return f"{rows} records, the manifest says {entry['records']}"
    return None
