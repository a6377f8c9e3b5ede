"""The raw zone as DuckDB reads it: the typed shape of each response, the SQL that reads part files into them,
and the files grouped into batches of about a given size.

No per-item Python: each raw file is parsed once by DuckDB's JSON reader into typed structs (only the
fields we use; unknown fields are ignored), and every relation of the transform is a set-based query over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..tables.files import sql_paths

# The fields read from each object, as nested dicts: {name: DuckDB type | nested dict | [element]}.
Shape = dict[str, Any]
EXTERNAL_URLS: Shape = {"spotify": "VARCHAR"}
IMAGE: Shape = {"url": "VARCHAR"}  # only the first image's url is kept
ARTIST_REF: Shape = {"id": "VARCHAR", "name": "VARCHAR", "uri": "VARCHAR", "external_urls": EXTERNAL_URLS}
ALBUM: Shape = {
    "id": "VARCHAR",
    "name": "VARCHAR",
    "album_type": "VARCHAR",
    "release_date": "VARCHAR",
    "release_date_precision": "VARCHAR",
    "total_tracks": "INTEGER",
    "label": "VARCHAR",
    "popularity": "INTEGER",
    "external_ids": {"upc": "VARCHAR"},
    "uri": "VARCHAR",
    "external_urls": EXTERNAL_URLS,
    "images": [IMAGE],
    "artists": [ARTIST_REF],
}
ARTIST: Shape = {
    "id": "VARCHAR",
    "name": "VARCHAR",
    "uri": "VARCHAR",
    "external_urls": EXTERNAL_URLS,
    "genres": ["VARCHAR"],
    "followers": {"total": "BIGINT"},
    "popularity": "INTEGER",
    "images": [IMAGE],
}
PLAYABLE: Shape = {
    "type": "VARCHAR",
    "id": "VARCHAR",
    "name": "VARCHAR",
    "uri": "VARCHAR",
    "duration_ms": "BIGINT",
    "explicit": "BOOLEAN",
    "popularity": "INTEGER",
    "disc_number": "INTEGER",
    "track_number": "INTEGER",
    "is_local": "BOOLEAN",
    "external_ids": {"isrc": "VARCHAR"},
    "external_urls": EXTERNAL_URLS,
    "artists": [ARTIST_REF],
    "album": ALBUM,
}
PLAYLIST_ITEM: Shape = {
    "added_at": "VARCHAR",
    "added_by": {"id": "VARCHAR"},
    "is_local": "BOOLEAN",
    "item": PLAYABLE,
    "track": PLAYABLE,
}
PAGE: Shape = {"offset": "BIGINT", "total": "BIGINT", "items": [PLAYLIST_ITEM]}
PLAYLIST: Shape = {
    "id": "VARCHAR",
    "name": "VARCHAR",
    "description": "VARCHAR",
    "public": "BOOLEAN",
    "collaborative": "BOOLEAN",
    "snapshot_id": "VARCHAR",
    "uri": "VARCHAR",
    "external_urls": EXTERNAL_URLS,
    "owner": {"id": "VARCHAR", "display_name": "VARCHAR"},
    "followers": {"total": "BIGINT"},
    "images": [IMAGE],
    "items": PAGE,
    "tracks": PAGE,
}
META: Shape = {
    "run_id": "VARCHAR",
    "entity": "VARCHAR",
    "endpoint": "VARCHAR",
    "url": "VARCHAR",
    "fetched_at": "VARCHAR",
    "playlist_id": "VARCHAR",
    "snapshot_id": "VARCHAR",
    "user_id": "VARCHAR",
    "kind": "VARCHAR",
    "time_range": "VARCHAR",
}
# Since 2026 the API sends each position's track or episode twice, as `item` and as its deprecated alias
# `track` (and a playlist's first page may come as `items` and as `tracks`). Reading both into structs would
# parse the largest objects of the raw zone twice, so playlist files are read in the *current* shape: the
# deprecated fields only as markers of presence. A file in which some response has only the deprecated
# field (written before the rename) is read again in the shapes above, which take either.
CURRENT_PAGE: Shape = {**PAGE, "items": [{**PLAYLIST_ITEM, "track": {"type": "VARCHAR"}}]}
CURRENT_PLAYLIST: Shape = {**PLAYLIST, "items": CURRENT_PAGE, "tracks": {"total": "BIGINT"}}
# A snapshot check asks only for the playlist's metadata (`fields=`): its `items` is `{"total": n}`. Typed as
# that, not as a whole playlist with an item page of nested tracks, ~10k checks a run (one per unchanged
# playlist at 1M items) are parsed into a narrow struct.
CHECKED_PLAYLIST: Shape = {**PLAYLIST, "items": {"total": "BIGINT"}, "tracks": {"total": "BIGINT"}}
SAVED_PAGE: Shape = {"items": [{"added_at": "VARCHAR", "track": PLAYABLE}]}
PLAYS_PAGE: Shape = {
    "items": [{"played_at": "VARCHAR", "track": PLAYABLE, "context": {"type": "VARCHAR", "uri": "VARCHAR"}}]
}


def sql_type(shape: Any) -> str:
    """The DuckDB type of a shape, e.g. STRUCT("id" VARCHAR, "images" STRUCT(...)[])."""
    if isinstance(shape, str):
        return shape
    if isinstance(shape, list):
        return sql_type(shape[0]) + "[]"
    return "STRUCT(" + ", ".join(f'"{name}" {sql_type(kind)}' for name, kind in shape.items()) + ")"


def pick(shape: Shape, expr: str) -> str:
    """A struct literal of `shape`'s top-level fields taken from `expr`, which has at least those fields
    (e.g. one album out of a body typed as the union of single and batch responses)."""
    return "{" + ", ".join(f"'{name}': {expr}.\"{name}\"" for name in shape) + "}"


# Responses that come in two shapes are read as the union of both, so that DuckDB's JSON reader parses
# each body once into typed structs (fields a shape lacks are NULL): an album or artist endpoint answers
# one object, the batch endpoint `{"albums": [...]}`; a top-items page lists artists or tracks by kind.
ALBUMS_BODY: Shape = {**ALBUM, "albums": [ALBUM]}
ARTISTS_BODY: Shape = {**ARTIST, "artists": [ARTIST]}
TOP_ITEMS_PAGE: Shape = {"items": [{**PLAYABLE, **ARTIST}]}
TRACKS_BODY: Shape = {**PLAYABLE, "tracks": [PLAYABLE]}  # `/tracks/{id}` or `/tracks?ids=`

# Enrichment responses tolerate a field of an unexpected type (e.g. an API change): that field reads as NULL
# and the rest of the object is kept, as `json_transform` did when these bodies were read as JSON text. The
# playlist bodies, whose positions are the tables' backbone, stay strict.
LENIENT = frozenset({"artists", "albums", "top_items", "tracks"})

BODY_TYPES: dict[str, Any] = {
    "playlists": PLAYLIST,
    "playlist_checks": CHECKED_PLAYLIST,
    "playlist_items": PAGE,
    "artists": ARTISTS_BODY,
    "albums": ALBUMS_BODY,
    "saved_tracks": SAVED_PAGE,
    "recently_played": PLAYS_PAGE,
    "top_items": TOP_ITEMS_PAGE,
    "tracks": TRACKS_BODY,
}


# What the transform reads of a snapshot check's meta: the rest (its URL, ~40% of the record) is parsed by the
# JSON reader but not copied into ~100k structs a run at 10M items.
CHECK_META: Shape = {"run_id": "VARCHAR", "fetched_at": "VARCHAR"}


def raw_relation(
    entity: str,
    files: Sequence[str],
    body_shape: Shape | None = None,
    filename: bool = False,
    meta_shape: Shape = META,
) -> str:
    """SQL for the raw records of `entity` in `files`: columns run_id, fetched_at, meta (typed as `meta_shape`),
    body (typed as `body_shape`, by default the entity's), and with `filename` the file each record came from."""
    body = sql_type(body_shape or BODY_TYPES[entity])
    meta = sql_type(meta_shape)
    if not files:
        return (
            f"(SELECT NULL::VARCHAR AS run_id, NULL::TIMESTAMPTZ AS fetched_at, NULL::{meta} AS meta,"
            f" NULL::{body} AS body{', NULL::VARCHAR AS filename' if filename else ''} LIMIT 0)"
        )
    file_list = sql_paths(files)
    return (
        f"(SELECT meta.run_id AS run_id, meta.fetched_at::TIMESTAMPTZ AS fetched_at, meta, body"
        f"{', filename' if filename else ''} FROM read_json("
        f"{file_list}, format='newline_delimited', compression='gzip', maximum_object_size=33554432,"
        f" ignore_errors={'true' if entity in LENIENT else 'false'}, filename={'true' if filename else 'false'},"
        f" columns={{'meta': '{meta}', 'body': '{body}'}}))"
    )


@dataclass(frozen=True)
class RawFile:
    """One raw part file to read: where it is and how many bytes of JSON it holds (sizes the batches)."""

    entity: str
    uri: str
    raw_bytes: int


def file_batches(files: Sequence[RawFile], batch_bytes: int) -> list[list[RawFile]]:
    """Consecutive groups of files holding at most `batch_bytes` of JSON each (at least one file each);
    always one group, possibly empty, so the batch tables exist even when there is nothing to read."""
    batches: list[list[RawFile]] = [[]]
    size = 0
    for raw_file in files:
        if batches[-1] and size + raw_file.raw_bytes > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(raw_file)
        size += raw_file.raw_bytes
    return batches


def uris(batch: list[RawFile], entity: str | None = None) -> list[str]:
    return [f.uri for f in batch if entity is None or f.entity == entity]
