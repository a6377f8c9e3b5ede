"""A raw part against its manifest entry: size, checksum, uncompressed size, records; older manifests too."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

from spotify_pipeline.lake import LocalStorage, RawZoneWriter
from spotify_pipeline.lake.layout import MANIFEST_PREFIX
from spotify_pipeline.lake.raw import verify_part
from spotify_pipeline.quality.lake_checks import verify_raw_zone

RUN = "20261101T120000Z-000002"


def written_lake(root: Path) -> tuple[LocalStorage, dict[str, Any]]:
    """A raw zone of one run with one part of ten records; its manifest entry for that part."""
    storage = LocalStorage(root)
    writer = RawZoneWriter(storage, RUN, dt.date(2026, 11, 1))
    for n in range(10):
        writer.write("playlists", {"run_id": RUN, "playlist_id": f"p{n}"}, json.dumps({"id": f"p{n}"}).encode())
    writer.close({"status": "succeeded"})
    (entry,) = writer.files
    return storage, entry


def without_a_line(data: bytes) -> bytes:
    lines = gzip.decompress(data).splitlines(keepends=True)
    return gzip.compress(b"".join(lines[:4] + lines[5:]))  # still valid gzip, one record fewer


def test_the_manifest_records_what_each_part_must_be(tmp_path: Path) -> None:
    storage, entry = written_lake(tmp_path)
    data = storage.read(entry["key"])
    assert entry["records"] == 10 and entry["bytes"] == len(data) and len(entry["sha256"]) == 64
    assert verify_part(entry, data) is None
    assert verify_raw_zone(storage) == []


def test_a_deleted_line_is_caught_by_each_field_alone(tmp_path: Path) -> None:
    storage, entry = written_lake(tmp_path)
    data = storage.read(entry["key"])
    shorter = without_a_line(data)
    assert verify_part(entry, shorter) == f"{len(shorter)} bytes, the manifest says {len(data)}"
    assert verify_part({"records": 10}, shorter) == "9 records, the manifest says 10"
    assert verify_part({"raw_bytes": entry["raw_bytes"]}, shorter) is not None
    same_size = data[:-9] + bytes([data[-9] ^ 1]) + data[-8:]  # one byte of the gzip CRC flipped
    assert verify_part(entry, same_size) == "content differs from the manifest (sha256)"


def test_manifests_without_the_newer_fields_are_still_accepted(tmp_path: Path) -> None:
    storage, entry = written_lake(tmp_path)
    (key,) = storage.list(MANIFEST_PREFIX)
    manifest = json.loads(storage.read(key))
    manifest["files"] = [{"key": entry["key"], "entity": "playlists", "records": 10, "bytes": entry["bytes"]}]
    storage.write_atomic(key, json.dumps(manifest).encode(), overwrite=True)  # as written before sha256
    assert verify_raw_zone(storage) == []
    # A recovered run's manifest knows only each file's size.
    recovered = {"key": entry["key"], "records": None, "bytes": entry["bytes"]}
    assert verify_part(recovered, storage.read(entry["key"])) is None
