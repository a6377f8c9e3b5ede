"""`artist_stats` of a small run from its changes (transform/artist_stats.py): the moved artists' stored rows
plus what the changed playlists and credits add and remove must be exactly what recomputing the whole
tables gives, whatever changed: positions added, removed and moved, songs leaving their last playlist or
still held by another, credits changed on songs held only by the changed playlists or also elsewhere, over
runs in sequence. Both are checked against a count made here in Python, position by position: the whole
recompute (`ARTIST_STATS_SQL`, grouped in steps DuckDB can spill) is not its own reference."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotify_pipeline.tables.contract import TABLES
from spotify_pipeline.transform import artist_stats
from spotify_pipeline.transform.scope import scope, whole_table

SONGS = [f"s{i}" for i in range(8)]
ARTISTS = [f"a{i}" for i in range(4)]
PLAYLISTS = [f"p{i}" for i in range(4)]


def _table(con: duckdb.DuckDBPyConnection, name: str, contract: str, rows: list[dict[str, Any]]) -> None:
    """A temp table `name` with `contract`'s columns (those `rows` lack are NULL)."""
    schema = TABLES[contract].schema
    data = pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)
    con.register("_rows", data)
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM _rows")
    con.unregister("_rows")


Playlists = dict[str, list[str | None]]  # playlist -> its songs in order (None: a position with no song)
Credits = dict[str, list[str]]  # song -> its artists in credited order (an artist may be credited twice)


def _positions(playlist: str, songs: list[str | None]) -> list[dict[str, Any]]:
    return [{"playlist_id": playlist, "position": i, "song_id": s} for i, s in enumerate(songs)]


def _credits(song: str, artists: list[str], repeated: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The song's credit rows; a song in `repeated` has its first row twice (a duplicate row, as a broken
    upstream or a replayed batch could leave: each copy is a credit)."""
    rows = [{"song_id": song, "artist_id": a, "position": i} for i, a in enumerate(artists)]
    return rows + rows[:1] if song in repeated else rows


def counted(playlists: Playlists, credits: Credits, repeated: frozenset[str] = frozenset()) -> list[Any]:
    """`artist_stats` counted row by row: per artist, its credited positions, their playlists and songs."""
    stats: dict[str, tuple[int, set[str], set[str]]] = {}
    for playlist, songs in playlists.items():
        for song in songs:
            if song is None:
                continue
            for row in _credits(song, credits.get(song, []), repeated):
                n, held, sung = stats.get(row["artist_id"], (0, set(), set()))
                stats[row["artist_id"]] = (n + 1, held | {playlist}, sung | {song})
    return sorted((a, n, len(p), len(s)) for a, (n, p, s) in stats.items())


def stage(
    old_playlists: Playlists,
    old_credits: Credits,
    new_playlists: Playlists,
    new_credits: Credits,
    repeated: frozenset[str] = frozenset(),
    stored: list[Any] | None = None,
) -> tuple[bool, list[Any], list[Any]]:
    """Run `scope_artist_stats` and the stage from the changes on relations laid out as the runner's are:
    `new_playlists` replace those playlists whole (the changed keys of `playlist_songs`), `new_credits`
    those songs' credits; `stored`, the table before (default: counted from the old tables). (from the
    changes?, the table after the merge, `ARTIST_STATS_SQL` on the tables after the merge)."""
    con = duckdb.connect()
    _table(con, "old_playlist_songs", "playlist_songs", [r for p, s in old_playlists.items() for r in _positions(p, s)])
    _table(
        con, "old_song_artists", "song_artists", [r for s, a in old_credits.items() for r in _credits(s, a, repeated)]
    )
    _table(
        con, "staged_playlist_songs", "playlist_songs", [r for p, s in new_playlists.items() for r in _positions(p, s)]
    )
    _table(
        con,
        "staged_song_artists",
        "song_artists",
        [r for s, a in new_credits.items() for r in _credits(s, a, repeated)],
    )
    con.execute(
        "CREATE TEMP TABLE keys_playlist_songs AS SELECT unnest(?::VARCHAR[]) AS playlist_id", [list(new_playlists)]
    )
    con.execute("CREATE TEMP TABLE keys_song_artists AS SELECT unnest(?::VARCHAR[]) AS song_id", [list(new_credits)])
    for name, key in (("playlist_songs", "playlist_id"), ("song_artists", "song_id")):
        con.execute(f"CREATE TEMP TABLE touched_{name} AS SELECT * FROM old_{name} WHERE {key} IN (FROM keys_{name})")
        whole_table(con, name, scoped=True)
    before = counted(old_playlists, old_credits, repeated) if stored is None else stored
    _table(con, "old_artist_stats", "artist_stats", [dict(zip(COLUMNS, r, strict=True)) for r in before])
    assert scope(con, "artist_stats", allowed=True, table_rows=1)
    from_changes = artist_stats.stage_changed(con)
    whole_table(con, "artist_stats", scoped=True)
    after = con.execute("SELECT * FROM new_artist_stats ORDER BY ALL").fetchall()
    recomputed = con.execute(artist_stats.ARTIST_STATS_SQL.format(where="") + " ORDER BY ALL").fetchall()
    return from_changes, after, recomputed


COLUMNS = ("artist_id", "appearances", "playlists", "songs")


_songs = st.lists(st.sampled_from([*SONGS, None]), max_size=6)
_artists = st.lists(st.sampled_from(ARTISTS), min_size=1, max_size=3)
_playlists = st.dictionaries(st.sampled_from(PLAYLISTS), _songs)
_credited = st.dictionaries(st.sampled_from(SONGS), _artists)  # songs left out have no credit
_repeated = st.frozensets(st.sampled_from(SONGS), max_size=2)
_run = st.tuples(
    st.dictionaries(st.sampled_from(PLAYLISTS), _songs, max_size=2),
    st.dictionaries(st.sampled_from(SONGS), _artists, max_size=3),
)


@settings(max_examples=50, deadline=None)
@given(playlists=_playlists, credits=_credited, repeated=_repeated)
def test_the_whole_recompute_counts_every_credited_position(
    playlists: Playlists, credits: Credits, repeated: frozenset[str]
) -> None:
    """Positions with no song, songs with no credit, an artist credited twice on a song, a credit row
    present twice: `ARTIST_STATS_SQL` counts them as the row-by-row count does."""
    con = duckdb.connect()
    _table(con, "new_playlist_songs", "playlist_songs", [r for p, s in playlists.items() for r in _positions(p, s)])
    _table(con, "new_song_artists", "song_artists", [r for s, a in credits.items() for r in _credits(s, a, repeated)])
    got = con.execute(artist_stats.ARTIST_STATS_SQL.format(where="") + " ORDER BY ALL").fetchall()
    assert got == counted(playlists, credits, repeated)
    assert con.execute(f"DESCRIBE {artist_stats.ARTIST_STATS_SQL.format(where='')}").fetchall() == [
        (c, "VARCHAR" if c == "artist_id" else "BIGINT", "YES", None, None, None) for c in COLUMNS
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old_playlists=_playlists, old_credits=_credited, run=_run, repeated=_repeated)
def test_the_moved_artists_rows_are_a_recomputes(
    old_playlists: Playlists, old_credits: Credits, run: tuple[Playlists, Credits], repeated: frozenset[str]
) -> None:
    new_playlists, new_credits = run
    _, after, recomputed = stage(old_playlists, old_credits, new_playlists, new_credits, repeated)
    want = counted({**old_playlists, **new_playlists}, {**old_credits, **new_credits}, repeated)
    assert after == recomputed == want


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(playlists=_playlists, credits=_credited, runs=st.lists(_run, min_size=2, max_size=4), repeated=_repeated)
def test_runs_in_sequence_stay_a_recomputes(
    playlists: Playlists, credits: Credits, runs: list[tuple[Playlists, Credits]], repeated: frozenset[str]
) -> None:
    """Each run starts from the rows the one before stored (not a fresh count), while playlists and credits
    drift run after run: an error would carry over and grow."""
    stored = counted(playlists, credits, repeated)
    for new_playlists, new_credits in runs:
        _, after, _ = stage(playlists, credits, new_playlists, new_credits, repeated, stored)
        playlists, credits = {**playlists, **new_playlists}, {**credits, **new_credits}
        assert after == counted(playlists, credits, repeated)
        stored = after


def test_a_changed_playlist_is_counted_from_its_changes() -> None:
    """Songs added and removed, one of them still in another playlist, one leaving its last: no recompute."""
    credits = {"s1": ["a1"], "s2": ["a1", "a2"], "s3": ["a2"], "s4": ["a3"]}
    old = {"p1": ["s1", "s2", "s3"], "p2": ["s3", "s4"]}
    from_changes, after, recomputed = stage(old, credits, {"p1": ["s2", "s4", "s4"]}, {"s2": ["a1", "a2"]})
    assert from_changes
    assert after == recomputed == [("a1", 1, 1, 1), ("a2", 2, 2, 2), ("a3", 3, 2, 1)]


def test_a_song_credited_anew_in_another_playlist_recomputes_its_artists() -> None:
    """A song's credits changed while an unchanged playlist holds it: its artists' counts move in that
    playlist too, which the changes do not show: those artists are recomputed from the whole tables."""
    credits = {"s1": ["a1"], "s2": ["a2"]}
    old = {"p1": ["s1", "s2"], "p2": ["s1"]}
    from_changes, after, recomputed = stage(old, credits, {"p1": ["s1"]}, {"s1": ["a3"]})
    assert not from_changes
    assert after == recomputed == [("a3", 2, 2, 1)]
    # The same change with no other playlist holding the song: from the changes.
    from_changes, after, recomputed = stage({"p1": ["s1", "s2"]}, credits, {"p1": ["s1"]}, {"s1": ["a3"]})
    assert from_changes and after == recomputed == [("a3", 1, 1, 1)]


def test_the_whole_recompute_in_passes_gives_the_same_rows(monkeypatch: Any) -> None:
    """`stage_whole` recomputes in passes over slices of the artists (one per `WHOLE_PASS_CREDITS` credits):
    every artist lands in exactly one slice, so the rows are one pass's."""
    playlists: Playlists = {"p0": ["s0", "s1", None, "s1"], "p1": ["s1", "s2", "s3"], "p2": ["s4", "s5", "s0"]}
    credits: Credits = {"s0": ["a0", "a1"], "s1": ["a1", "a1"], "s2": ["a2"], "s3": ["a3", "a0"], "s5": ["a2"]}
    repeated = frozenset({"s2"})
    con = duckdb.connect()
    _table(con, "new_playlist_songs", "playlist_songs", [r for p, s in playlists.items() for r in _positions(p, s)])
    _table(con, "new_song_artists", "song_artists", [r for s, a in credits.items() for r in _credits(s, a, repeated)])
    monkeypatch.setattr(artist_stats, "WHOLE_PASS_CREDITS", 2)  # 10 credit rows: 5 passes
    artist_stats.stage_whole(con)
    got = con.execute("SELECT * FROM staged_artist_stats ORDER BY ALL").fetchall()
    assert got == counted(playlists, credits, repeated) and len(got) == 4
