"""The raw zone: every API response kept exactly as received, compressed NDJSON, never rewritten.

Each line is `{"meta": {...}, "body": <the response body>}`. The body bytes are spliced in verbatim; only
raw CR/LF bytes are turned into spaces, which JSON allows only as whitespace between tokens (inside strings
they are always escaped), so the JSON value is exactly what the API sent.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import LakeError
from .layout import MANIFEST_PREFIX, manifest_key, raw_part_key
from .storage import Storage

PART_TARGET_BYTES = 8 * 1024 * 1024  # uncompressed bytes per part file
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
    """Buffers records per entity and writes part files atomically. Thread-safe.

    Records reach disk when a part fills up and on `flush()`; the manifest is written last by `close()`,
    so a run without a manifest is known to be incomplete.
    """

    def __init__(self, storage: Storage, run_id: str, extracted_date: dt.date) -> None:
        self.storage = storage
        self.run_id = run_id
        self.extracted_date = extracted_date
        self._buffers: dict[str, _Buffer] = {}
        self._parts: dict[str, int] = {}
        self._lock = threading.Lock()
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
            if buffer.size >= PART_TARGET_BYTES:
                self._flush_entity(entity)

    def flush(self) -> None:
        with self._lock:
            for entity in list(self._buffers):
                self._flush_entity(entity)

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
        self.files.append(
            {
                "key": key,
                "entity": entity,
                "records": buffer.records,
                "bytes": len(data),
                "raw_bytes": len(raw),
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

    def manifests(self) -> list[dict[str, Any]]:
        """Every run's manifest, oldest run first."""
        out = []
        for key in self.storage.list(MANIFEST_PREFIX):
            if not key.endswith(".json"):
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
