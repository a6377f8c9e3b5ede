"""The table contract: names, columns, types and keys of every published table, in one place.

docs/SCHEMA.md describes the same tables for people; a test checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key: tuple[str, ...]  # unique per row
    description: str


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in fields])


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "artists",
            _schema(
                ("artist_id", pa.string()),
                ("name", pa.string()),
                ("uri", pa.string()),
                ("url", pa.string()),
                ("genres", pa.list_(pa.string())),
                ("followers", pa.int64()),
                ("popularity", pa.int32()),
                ("image_url", pa.string()),
                ("enriched_at", TS),
                ("first_seen_at", TS),
                ("last_seen_at", TS),
            ),
            ("artist_id",),
            "One row per artist: from enrichment (/artists) where fetched, else from the simplified artist.",
        ),
        TableSpec(
            "albums",
            _schema(
                ("album_id", pa.string()),
                ("name", pa.string()),
                ("album_type", pa.string()),
                ("release_date", pa.date32()),
                ("release_date_precision", pa.string()),
                ("release_date_raw", pa.string()),
                ("total_tracks", pa.int32()),
                ("label", pa.string()),
                ("upc", pa.string()),
                ("popularity", pa.int32()),
                ("uri", pa.string()),
                ("url", pa.string()),
                ("image_url", pa.string()),
                ("enriched_at", TS),
                ("first_seen_at", TS),
                ("last_seen_at", TS),
            ),
            ("album_id",),
            "One row per album: from enrichment (/albums) where fetched, else from the track's album.",
        ),
        TableSpec(
            "album_artists",
            _schema(("album_id", pa.string()), ("artist_id", pa.string()), ("position", pa.int32())),
            ("album_id", "position"),
            "Every artist of every album, in credited order (position 0 first).",
        ),
        TableSpec(
            "songs",
            _schema(
                ("song_id", pa.string()),
                ("name", pa.string()),
                ("duration_ms", pa.int64()),
                ("explicit", pa.bool_()),
                ("popularity", pa.int32()),
                ("isrc", pa.string()),
                ("disc_number", pa.int32()),
                ("track_number", pa.int32()),
                ("album_id", pa.string()),
                ("artist_id", pa.string()),
                ("song_added", TS),
                ("uri", pa.string()),
                ("url", pa.string()),
                ("first_seen_at", TS),
                ("last_seen_at", TS),
            ),
            ("song_id",),
            "One row per Spotify track (the original schema's name). artist_id is the first-listed artist.",
        ),
        TableSpec(
            "song_artists",
            _schema(("song_id", pa.string()), ("artist_id", pa.string()), ("position", pa.int32())),
            ("song_id", "position"),
            "Every artist of every song, in credited order (position 0 first).",
        ),
        TableSpec(
            "playlists",
            _schema(
                ("playlist_id", pa.string()),
                ("name", pa.string()),
                ("description", pa.string()),
                ("owner_id", pa.string()),
                ("owner_name", pa.string()),
                ("public", pa.bool_()),
                ("collaborative", pa.bool_()),
                ("followers", pa.int64()),
                ("snapshot_id", pa.string()),
                ("total_items", pa.int64()),
                ("url", pa.string()),
                ("uri", pa.string()),
                ("image_url", pa.string()),
                ("extracted_at", TS),
                ("items_extracted_at", TS),
            ),
            ("playlist_id",),
            "One row per playlist, as last seen.",
        ),
        TableSpec(
            "playlist_songs",
            _schema(
                ("playlist_id", pa.string()),
                ("position", pa.int32()),
                ("item_type", pa.string()),
                ("song_id", pa.string()),
                ("item_uri", pa.string()),
                ("item_name", pa.string()),
                ("added_at", TS),
                ("added_by", pa.string()),
                ("snapshot_id", pa.string()),
                ("extracted_at", TS),
                ("run_id", pa.string()),
            ),
            ("playlist_id", "position"),
            "Current membership: one row per playlist position (track, episode, local or unavailable).",
        ),
        TableSpec(
            "playlist_changes",
            _schema(
                ("playlist_id", pa.string()),
                ("changed_at", TS),
                ("run_id", pa.string()),
                ("previous_run_id", pa.string()),
                ("snapshot_id", pa.string()),
                ("previous_snapshot_id", pa.string()),
                ("change", pa.string()),
                ("item_uri", pa.string()),
                ("song_id", pa.string()),
                ("item_name", pa.string()),
            ),
            ("playlist_id", "run_id", "change", "item_uri"),
            "Songs and episodes added to or removed from a playlist between two complete extractions.",
        ),
        TableSpec(
            "song_popularity",
            _schema(
                ("song_id", pa.string()),
                ("observed_date", pa.date32()),
                ("popularity", pa.int32()),
                ("observed_at", TS),
            ),
            ("song_id", "observed_date"),
            "Popularity history: one row per song per day it was observed (the last observation that day).",
        ),
        TableSpec(
            "saved_songs",
            _schema(("user_id", pa.string()), ("song_id", pa.string()), ("added_at", TS), ("extracted_at", TS)),
            ("user_id", "song_id"),
            "The logged-in user's liked songs (/me/tracks), as of the latest extraction of them.",
        ),
        TableSpec(
            "plays",
            _schema(
                ("user_id", pa.string()),
                ("played_at", TS),
                ("song_id", pa.string()),
                ("context_type", pa.string()),
                ("context_uri", pa.string()),
                ("extracted_at", TS),
            ),
            ("user_id", "played_at"),
            "The user's listening history (/me/player/recently-played), accumulated run after run.",
        ),
        *(
            TableSpec(
                name,
                _schema(
                    ("listen_id", pa.string()),
                    ("user_id", pa.string()),
                    ("ended_at", TS),
                    ("ms_played", pa.int64()),
                    ("item_type", pa.string()),
                    ("song_id", pa.string()),
                    ("item_uri", pa.string()),
                    ("track_name", pa.string()),
                    ("artist_name", pa.string()),
                    ("album_name", pa.string()),
                    ("reason_start", pa.string()),
                    ("reason_end", pa.string()),
                    ("shuffle", pa.bool_()),
                    ("skipped", pa.bool_()),
                    ("offline", pa.bool_()),
                    ("incognito", pa.bool_()),
                    ("platform", pa.string()),
                    ("country", pa.string()),
                    ("source", pa.string()),
                    ("source_format", pa.string()),
                    ("imported_at", TS),
                ),
                ("listen_id",),
                description,
            )
            for name, description in (
                (
                    "listen_events",
                    "Each play record of each source (export files, recently played) once; listens is built from it.",
                ),
                ("listens", "One row per listening event, from every export and the API, each play counted once."),
            )
        ),
        TableSpec(
            "user_top",
            _schema(
                ("user_id", pa.string()),
                ("observed_date", pa.date32()),
                ("time_range", pa.string()),
                ("item_type", pa.string()),
                ("rank", pa.int32()),
                ("item_id", pa.string()),
                ("item_name", pa.string()),
                ("observed_at", TS),
            ),
            ("user_id", "observed_date", "time_range", "item_type", "rank"),
            "The user's top artists and tracks per time range, one list per day observed.",
        ),
        TableSpec(
            "artist_stats",
            _schema(
                ("artist_id", pa.string()),
                ("appearances", pa.int64()),
                ("playlists", pa.int64()),
                ("songs", pa.int64()),
            ),
            ("artist_id",),
            "Summary of playlist_songs x song_artists per artist, recomputed by every transform.",
        ),
        TableSpec(
            "listening_gaps",
            _schema(
                ("user_id", pa.string()),
                ("from_played_at", TS),
                ("to_played_at", TS),
                ("plays_missing", pa.int64()),
                ("every_minutes", pa.int64()),
                ("detected_at", TS),
                ("run_id", pa.string()),
            ),
            ("user_id", "from_played_at"),
            "Recently played: spans where plays may be missing (more plays between two runs than the API keeps).",
        ),
        TableSpec(
            "recommendations",
            _schema(
                ("target_type", pa.string()),
                ("target_id", pa.string()),
                ("rank", pa.int32()),
                ("song_id", pa.string()),
                ("score", pa.float64()),
                ("source", pa.string()),
                ("because_of", pa.string()),
                ("reason", pa.string()),
                ("model_built_at", TS),
                ("generated_at", TS),
            ),
            ("target_type", "target_id", "rank"),
            "The latest recommendations (`recommend`) per playlist and per user, each with its reason.",
        ),
        TableSpec(
            "pipeline_runs",
            _schema(
                ("run_id", pa.string()),
                ("started_at", TS),
                ("finished_at", TS),
                ("status", pa.string()),
                ("playlists_checked", pa.int64()),
                ("playlists_changed", pa.int64()),
                ("playlists_failed", pa.int64()),
                ("api_requests", pa.int64()),
                ("items_extracted", pa.int64()),
                ("raw_runs_processed", pa.int64()),
                ("rows_per_table", pa.string()),
                ("error", pa.string()),
            ),
            ("run_id",),
            "One row per pipeline command (run, extract+transform, transform); rows_per_table is JSON.",
        ),
        TableSpec(
            "quality_results",
            _schema(
                ("run_id", pa.string()),
                ("check_name", pa.string()),
                ("table_name", pa.string()),
                ("severity", pa.string()),
                ("passed", pa.bool_()),
                ("failing_rows", pa.int64()),
                ("checked_at", TS),
                ("description", pa.string()),
            ),
            ("run_id", "check_name"),
            "One row per data-quality check per run that ran them (transform, run, check).",
        ),
        TableSpec(
            "rejected_records",
            _schema(
                ("raw_run_id", pa.string()),
                ("raw_file", pa.string()),
                ("line_number", pa.int64()),
                ("entity", pa.string()),
                ("playlist_id", pa.string()),
                ("user_id", pa.string()),
                ("field", pa.string()),
                ("error", pa.string()),
                ("rejected_at", TS),
                ("by_run_id", pa.string()),
            ),
            ("raw_file", "line_number", "playlist_id"),
            "Raw records (stored API responses) the transform set aside because they do not read as typed, and "
            "playlist extractions whose positions are not one version of the playlist (line 0, the run's manifest).",
        ),
        TableSpec(
            "processed_raw_runs",
            _schema(("raw_run_id", pa.string()), ("processed_at", TS), ("by_run_id", pa.string())),
            ("raw_run_id",),
            "Bookkeeping: which raw-zone runs the tables already contain (so none is processed twice).",
        ),
    )
}

# `last_seen_at` of songs, albums and artists is when the pipeline last found something new about them
# (docs/SCHEMA.md; issue #20: moving it at every sighting rewrote every song a run saw again). A table property
# of `songs` marks a lake written so; a lake without it holds each row's last sighting there, and its next
# transform rebuilds the tables from the raw zone once (transform/runner.py).
LAST_SEEN_MODEL = ("spotify-pipeline.last-seen-at", "values-changed")

DATA_TABLES = (
    "artists",
    "albums",
    "album_artists",
    "songs",
    "song_artists",
    "playlists",
    "playlist_songs",
    "playlist_changes",
    "song_popularity",
    "saved_songs",
    "plays",
    "user_top",
    "listen_events",
    "listens",  # derived from the merged listen_events: keep after it
    "artist_stats",  # derived from the merged playlist_songs and song_artists: keep after them
)
