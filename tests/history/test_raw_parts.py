"""History raw parts built from Arrow buffers: every line is `{"meta", "body"}` with the body exactly the
parsed element, whatever the text holds, and the part passes the raw zone's own check."""

from __future__ import annotations

import gzip
import hashlib
import json

import duckdb
import pyarrow as pa

from spotify_pipeline.history.raw_parts import gzip_part, line_prefix, part_lines
from spotify_pipeline.lake.raw import verify_part

ELEMENTS = [
    {"ts": "2024-01-31T23:59:07Z", "ms_played": 1, "master_metadata_track_name": 'Björk – Jóga "live"\n'},
    {"ts": "2024-02-01T00:00:00Z", "ms_played": 0, "master_metadata_track_name": None, "nested": {"a": [1, 2.5]}},
    {"ts": "2024-02-01T00:00:01Z", "ms_played": 9, "episode_name": "東京 🎧 \\ back\\slash", "shuffle": True},
]


def test_a_part_round_trips_every_element_and_passes_the_raw_check() -> None:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE export_plays (file_idx INTEGER, i BIGINT, j JSON)")
    for i, element in enumerate(ELEMENTS, start=1):
        con.execute("INSERT INTO export_plays VALUES (0, ?, ?)", [i, json.dumps(element)])
    con.execute('INSERT INTO export_plays VALUES (1, 1, \'{"other": "file"}\')')
    meta = {"run_id": "r", "file": "Streaming_History_Audio_ü.json", "format": "extended"}
    part = gzip_part(part_lines(con, line_prefix(meta), "file_idx = 0"))
    text = gzip.decompress(part.data)
    assert [json.loads(line) for line in text.splitlines()] == [{"meta": meta, "body": e} for e in ELEMENTS]
    assert text.endswith(b"}\n") and part.raw_bytes == len(text)
    assert part.sha256 == hashlib.sha256(part.data).hexdigest()
    entry = {"bytes": len(part.data), "sha256": part.sha256, "raw_bytes": part.raw_bytes, "records": 3}
    assert verify_part(entry, part.data) is None


def test_sliced_and_chunked_columns_give_only_their_own_lines() -> None:
    whole = pa.array(["zero\n", "one\n", "two\n", "three\n"], type=pa.string())
    lines = pa.table({"line": pa.chunked_array([whole.slice(1, 2), whole.slice(3, 1)])})
    assert gzip.decompress(gzip_part(lines).data) == b"one\ntwo\nthree\n"
    large = pa.table({"line": pa.array(["a\n", "b\n"], type=pa.large_string()).slice(1)})
    assert gzip.decompress(gzip_part(large).data) == b"b\n"
