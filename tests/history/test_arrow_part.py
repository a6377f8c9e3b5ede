"""The raw part built in Arrow from the strict decode (history/arrow_part.py) is the part DuckDB's typed reader
writes from the file (raw_parts.py `write_typed_part`), for every format and kind of value; a value it
cannot render as DuckDB does makes it decline, writing nothing, so the caller falls back to DuckDB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from spotify_pipeline.history.arrow_part import write_arrow_part
from spotify_pipeline.history.formats import FORMATS, format_by_name
from spotify_pipeline.history.raw_parts import write_typed_part
from spotify_pipeline.history.strict import strict_plays

from .test_raw_parts import small_export

META = {"run_id": "r1", "fetched_at": "2026-01-01T00:00:00+00:00", "user_id": "u", "file": "f.json", "format": "x"}
PLAY: dict[str, Any] = {
    "ts": "2024-01-31T23:59:07Z",
    "ms_played": 1,
    "master_metadata_track_name": 'Björk – Jóga "live"\n',
    "episode_name": "東京 🎧 \\ back\\slash",
    "ip_addr": "198.51.100.7",
    "offline_timestamp": 1706745547000,
    "shuffle": True,
    "skipped": None,
}


def _rows(part: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT meta, body FROM read_parquet('{part}')").fetchall()
    finally:
        con.close()


def _both(source: Path, tmp_path: Path) -> tuple[list[tuple[Any, ...]] | None, list[tuple[Any, ...]]]:
    """(the Arrow part's rows, or None when it declined; the DuckDB part's rows)."""
    fmt = format_by_name(source.name)
    assert fmt is not None
    plays = strict_plays(source, fmt)
    assert plays is not None, source.name
    arrow, typed = tmp_path / f"{source.stem}.arrow.parquet", tmp_path / f"{source.stem}.duckdb.parquet"
    meta = META | {"format": fmt.name}
    written = write_arrow_part(plays, fmt, meta, arrow)
    assert written == arrow.exists()
    con = duckdb.connect()
    try:
        write_typed_part(con, source, fmt, meta, typed)
    finally:
        con.close()
    return (_rows(arrow) if written else None), _rows(typed)


def test_every_format_gives_the_duckdb_part(tmp_path: Path) -> None:
    export = small_export(tmp_path / "export")
    files = sorted(p for p in export.rglob("*.json") if format_by_name(p.name) is not None)
    assert {format_by_name(p.name).name for p in files} >= {"extended", "legacy", "account_music"}  # type: ignore[union-attr]
    for source in files:
        arrow, typed = _both(source, tmp_path)
        assert arrow is not None, source.name  # none of these values is declined
        assert arrow == typed, source.name
    odd = tmp_path / "Streaming_History_Audio_odd.json"
    odd.write_text(json.dumps([PLAY, PLAY | {"offline_timestamp": None, "ts": "2024-02-29T00:00:00Z"}], indent=2))
    arrow, typed = _both(odd, tmp_path)
    assert arrow == typed and arrow is not None
    assert json.loads(arrow[0][1]["offline_timestamp"]) == 1706745547000 and arrow[1][1]["offline_timestamp"] is None
    # every JSON value Arrow renders itself (arrow_part.py `_json`), beside nulls; and a file of nulls only
    kept = [-7, 0, "plain", "caf\u00e9 \u5fc3", None, 999999999999999999]
    odd.write_text(json.dumps([PLAY | {"offline_timestamp": v} for v in kept], indent=2, ensure_ascii=False))
    arrow, typed = _both(odd, tmp_path)
    assert arrow == typed and arrow is not None
    assert [None if r[1]["offline_timestamp"] is None else json.loads(r[1]["offline_timestamp"]) for r in arrow] == kept
    odd.write_text(json.dumps([PLAY | {"offline_timestamp": None}] * 3))
    arrow, typed = _both(odd, tmp_path)
    assert arrow == typed and arrow is not None and all(r[1]["offline_timestamp"] is None for r in arrow)


@pytest.mark.parametrize(
    "change",
    [
        {"ts": "2024-02-30T00:00:00Z"},  # not a day: DuckDB's strptime refuses it, the checked parse names it
        {"ts": "2024-2-01T00:00:00Z"},  # not the exact pattern: DuckDB decides
        {"ts": "2024-02-01T24:00:00Z"},
        {"offline_timestamp": 1.50},  # JSON DuckDB renders its own way
        {"offline_timestamp": {"odd": [1, None]}},
        {"offline_timestamp": "caf\u00e9 \\ escaped"},
        {"offline_timestamp": 12345678901234567890},
    ],
)
def test_values_duckdb_renders_its_own_way_are_declined(tmp_path: Path, change: dict[str, Any]) -> None:
    source = tmp_path / "Streaming_History_Audio_0.json"
    source.write_text(json.dumps([PLAY, PLAY | change]))
    plays = strict_plays(source, FORMATS["extended"])
    assert plays is not None  # the strict check accepts it: only the Arrow rendering declines
    part = tmp_path / "part.parquet"
    assert not write_arrow_part(plays, FORMATS["extended"], META, part)
    assert not part.exists()
