"""A download's events published without a sort when they already are in the table's order (publish.py
`_in_order`): the raw parts are written earliest plays first, whatever the files' names, and the events read
in part order are then checked, not assumed. Either way each `listen_events` file holds its rows in
`ended_at` order and the files' ranges do not overlap."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from spotify_pipeline.lake.raw import RawZoneReader
from spotify_pipeline.lake.storage import LocalStorage
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import publish

from .test_history_layout import _extended, _import


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    seen: list[tuple[str, bool]] = []
    real = publish._in_order

    def spy(con: Any, name: str, source: str, order: str) -> bool:
        seen.append((name, real(con, name, source, order)))
        return seen[-1][1]

    monkeypatch.setattr(publish, "_in_order", spy)
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)  # several files
    return seen


def _files_in_order(lake: Path) -> list[list[dt.datetime]]:
    """Each `listen_events` file's `ended_at` values, files by their first value; asserts each file is in
    order and the files' ranges do not overlap."""
    files = [
        pq.read_table(p.removeprefix("file://"), columns=["ended_at"]).column("ended_at").to_pylist()
        for p in Catalog(lake).data_files("listen_events")
    ]
    files.sort(key=lambda values: values[0])
    assert all(values == sorted(values) for values in files)
    assert all(a[-1] <= b[0] for a, b in itertools.pairwise(files))
    return files


def test_files_named_out_of_time_order_are_published_without_a_sort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _spy(monkeypatch)
    lake = tmp_path / "lake"
    # "_10" sorts before "_2" by name, but holds the latest plays; "_2" the earliest.
    _import(
        lake,
        tmp_path / "export",
        {
            "Streaming_History_Audio_10.json": [_extended(n) for n in range(200, 300)],
            "Streaming_History_Audio_2.json": [_extended(n) for n in range(0, 100)],
            "Streaming_History_Audio_5.json": [_extended(n) for n in range(100, 200)],
        },
    )
    assert ("listen_events", True) in seen
    assert sum(len(f) for f in _files_in_order(lake)) == 300
    # The raw run's parts are numbered earliest plays first; the manifest still lists the files as shipped.
    (manifest,) = RawZoneReader(LocalStorage(lake)).manifests()
    firsts = [
        pq.read_table(lake / e["key"], columns=["body"]).column("body").combine_chunks().field("ts")[0].as_py()
        for e in manifest["files"]
    ]
    assert firsts == sorted(firsts) and len(firsts) == 3
    assert [f["name"] for f in manifest["history_files"]] == [
        "Streaming_History_Audio_10.json",
        "Streaming_History_Audio_2.json",
        "Streaming_History_Audio_5.json",
    ]


def test_plays_out_of_order_are_sorted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch)
    lake = tmp_path / "lake"
    plays = [_extended(n) for n in range(300)]
    plays[150], plays[151] = plays[151], plays[150]  # one pair swapped in the middle of a file
    _import(lake, tmp_path / "export", {"Streaming_History_Audio_0.json": plays})
    assert ("listen_events", False) in seen
    assert sum(len(f) for f in _files_in_order(lake)) == 300


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("range(300000)", True),  # several row groups, inserted in parallel keeping their order
        ("[3, 3, 3, 5]", True),  # ties are in order
        ("[1, 2, 4, 3, 5]", False),
        ("[1, NULL, 3]", False),  # NULLs sort last: sorted rather than reasoned about
        ("[7]", True),
        ("[]", True),
    ],
)
def test_one_column_order_is_checked_as_the_rows_lie(values: str, expected: bool) -> None:
    """`_in_order` of `listen_events`' one-column order (`ended_at`) compares each row with the one inserted
    before it; the general multi-column check (a window over rowid) agrees on the same rows."""
    from spotify_pipeline.history.listens import insertion_order
    from spotify_pipeline.transform.connection import connect

    con = connect(memory_limit="400MB")
    try:
        with insertion_order(con):
            con.execute(
                "CREATE TEMP TABLE staged AS SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' + v * INTERVAL 1 SECOND AS "
                f"ended_at, v::VARCHAR AS listen_id FROM (SELECT unnest({values}) AS v)"
            )
        assert publish._in_order(con, "listen_events", "staged", "ended_at") is expected
        assert publish._in_order(con, "listen_events", "staged", "ended_at, ended_at") is expected
    finally:
        con.close()
