"""Held-out evaluation on the lake's own playlists, the way the RecSys Challenge 2018 built its test set.

1. Split (deterministic, `seed`): each playlist's unique tracks in position order; test playlists are
   picked per category, the categories with most seeds first (they need the longest playlists), in the
   order of md5(seed:playlist_id), from playlists with at least `seeds + MIN_HELD_OUT` tracks. Categories:
   title only (0 seeds) and the first 1, 5, 10, 25 and 100 tracks. The split reads only playlist IDs and
   lengths, never which songs were held out.
2. Hold out: a test playlist keeps its first N tracks (the seeds); the rest (G) are removed.
3. Train: the model and the popularity baseline are built from every other playlist plus the seeds of the
   test playlists, nothing else: no held-out row reaches the model (tests/recommend/test_evaluate.py),
   and listens are left out, since a play from a held-out playlist would reveal it.
4. Score: 500 recommendations per test playlist, by the model and by popularity (the most widespread
   training songs), with R-precision, NDCG and clicks (`metrics.py`) averaged per category. The model
   also sees each test playlist's name (as the challenge's title did); title-only playlists get the songs
   of training playlists named with the same words (`model.py`), the baseline popular songs.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from . import metrics
from .model import ModelParams, build, rank, title_tokens

CATEGORIES = (0, 1, 5, 10, 25, 100)
MIN_HELD_OUT = 5
LIST_LENGTH = 500


@dataclass(frozen=True)
class Scores:
    r_precision: float
    ndcg: float
    clicks: float


@dataclass(frozen=True)
class CategoryResult:
    seeds: int  # 0 = title only
    playlists: int
    model: Scores
    baseline: Scores

    @property
    def label(self) -> str:
        return "title only" if self.seeds == 0 else f"first {self.seeds}"


@dataclass
class Evaluation:
    categories: list[CategoryResult]
    train_playlists: int
    params: ModelParams
    ranked: dict[str, list[str]] = field(default_factory=dict, repr=False)  # the model's lists, by playlist


@dataclass(frozen=True)
class TestCase:
    playlist_id: str
    seeds: int
    tracks: tuple[str, ...]  # unique, in position order

    @property
    def seed_tracks(self) -> tuple[str, ...]:
        return self.tracks[: self.seeds]

    @property
    def held_out(self) -> tuple[str, ...]:
        return self.tracks[self.seeds :]


def _order(seed: int, playlist_id: str) -> str:
    return hashlib.md5(f"{seed}:{playlist_id}".encode(), usedforsecurity=False).hexdigest()


def split(lengths: dict[str, int], seed: int, per_category: int) -> dict[str, int]:
    """Test playlist -> its number of seed tracks, from playlist lengths alone."""
    order = sorted(lengths, key=lambda pid: _order(seed, pid))
    chosen: dict[str, int] = {}
    for seeds in sorted(CATEGORIES, reverse=True):
        eligible = [pid for pid in order if pid not in chosen and lengths[pid] >= seeds + MIN_HELD_OUT]
        for pid in eligible[:per_category]:
            chosen[pid] = seeds
    return chosen


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _scores(cases: list[TestCase], ranked: dict[str, list[str]], artists: dict[str, str]) -> Scores:
    return Scores(
        _mean([metrics.r_precision(c.held_out, ranked.get(c.playlist_id, []), artists.get) for c in cases]),
        _mean([metrics.ndcg(c.held_out, ranked.get(c.playlist_id, [])) for c in cases]),
        _mean([float(metrics.clicks(c.held_out, ranked.get(c.playlist_id, []))) for c in cases]),
    )


def evaluate(
    con: duckdb.DuckDBPyConnection,
    *,
    seed: int = 0,
    per_category: int | None = None,
    params: ModelParams | None = None,
) -> Evaluation:
    """Evaluate on `members(playlist_id, song_id, position)`; `song_artists(song_id, artist_id, position)`
    gives the artist credit and `titles(playlist_id, name)` the playlists' names, when present. Creates the
    model's temp tables in `con` (from the training rows only)."""
    params = params or ModelParams()
    rows = con.execute(
        """
        SELECT playlist_id, list(song_id ORDER BY position, song_id) AS tracks
        FROM (SELECT playlist_id, song_id, min(position) AS position FROM members
              WHERE song_id IS NOT NULL AND playlist_id IS NOT NULL GROUP BY playlist_id, song_id)
        GROUP BY playlist_id
        """
    ).fetchall()
    tracks = {pid: tuple(songs) for pid, songs in rows}
    if per_category is None:  # about 30% of the playlists under test, at most 100 per category
        per_category = max(1, min(100, len(tracks) * 3 // (10 * len(CATEGORIES))))
    chosen = split({pid: len(songs) for pid, songs in tracks.items()}, seed, per_category)
    cases = [TestCase(pid, seeds, tracks[pid]) for pid, seeds in sorted(chosen.items())]
    con.register("rec_eval_test", pa.table({"playlist_id": pa.array(list(chosen), pa.string())}))
    seed_rows = [(c.playlist_id, song, i) for c in cases for i, song in enumerate(c.seed_tracks)]
    con.register(
        "rec_eval_seeds",
        pa.table(
            {
                "target": pa.array([r[0] for r in seed_rows], pa.string()),
                "song_id": pa.array([r[1] for r in seed_rows], pa.string()),
                "position": pa.array([r[2] for r in seed_rows], pa.int32()),
            }
        ),
    )
    # The training rows: other playlists whole, test playlists' seeds only.
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW rec_eval_train AS
        SELECT playlist_id, song_id, position FROM members
        WHERE playlist_id NOT IN (SELECT playlist_id FROM rec_eval_test)
        UNION ALL
        SELECT target AS playlist_id, song_id, position FROM rec_eval_seeds
        """
    )
    has_titles = _has_relation(con, "titles")
    build(con, params, members="rec_eval_train", titles="titles" if has_titles else None)
    seeds = pa.table(
        {
            "target": pa.array([r[0] for r in seed_rows], pa.string()),
            "song_id": pa.array([r[1] for r in seed_rows], pa.string()),
        }
    )
    # Every test playlist is a target; its seeds are excluded (a sentinel row for title-only playlists).
    exclude = pa.concat_tables(
        [seeds, pa.table({"target": [c.playlist_id for c in cases], "song_id": pa.nulls(len(cases), pa.string())})]
    )
    # The test playlists' names are part of the question (the challenge gave titles too), never held out.
    names = (
        con.sql(
            f"SELECT playlist_id AS target, unnest({title_tokens('name')}) AS token FROM titles "
            "WHERE playlist_id IN (SELECT playlist_id FROM rec_eval_test)"
        ).to_arrow_table()
        if has_titles
        else None
    )
    model_lists = _lists(rank(con, seeds, exclude, LIST_LENGTH, titles=names))
    con.execute("CREATE OR REPLACE TEMP TABLE rec_no_neighbors AS SELECT * FROM rec_neighbors LIMIT 0")
    baseline_lists = _lists(rank(con, seeds, exclude, LIST_LENGTH, neighbors="rec_no_neighbors"))
    # The challenge credited a track's one artist (the MPD's artist_uri): the first credited one here.
    artists: dict[str, str] = {}
    if _has_relation(con, "song_artists"):
        rows = con.execute("SELECT song_id, artist_id FROM song_artists WHERE position = 0").fetchall()
        artists = {song: artist for song, artist in rows if song is not None and artist is not None}
    results = []
    for seeds_n in CATEGORIES:
        group = [c for c in cases if c.seeds == seeds_n]
        results.append(
            CategoryResult(
                seeds_n, len(group), _scores(group, model_lists, artists), _scores(group, baseline_lists, artists)
            )
        )
    train = len(tracks) - len(chosen)
    return Evaluation(results, train, params, model_lists)


def _lists(ranked: pa.Table) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for target, song in zip(ranked.column("target").to_pylist(), ranked.column("song_id").to_pylist(), strict=True):
        out[target].append(song)
    return dict(out)


def _has_relation(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [name]).fetchall()[0][0]
    found += con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[0][0]
    return bool(found)


def format_evaluation(result: Evaluation) -> str:
    """The evaluation table: one line per category, the model against the popularity baseline."""
    head = (
        f"{'category':<12} {'playlists':>9}  {'R-prec':>7} {'NDCG':>7} {'clicks':>7}  "
        f"{'pop R-prec':>10} {'pop NDCG':>8} {'pop clicks':>10}  {'R-prec x':>8} {'NDCG x':>7}"
    )
    lines = [head, "-" * len(head)]
    for c in result.categories:
        if not c.playlists:
            lines.append(f"{c.label:<12} {0:>9}  (no playlist long enough)")
            continue
        ratio_r = c.model.r_precision / c.baseline.r_precision if c.baseline.r_precision else float("inf")
        ratio_n = c.model.ndcg / c.baseline.ndcg if c.baseline.ndcg else float("inf")
        lines.append(
            f"{c.label:<12} {c.playlists:>9}  {c.model.r_precision:>7.4f} {c.model.ndcg:>7.4f} {c.model.clicks:>7.2f}  "
            f"{c.baseline.r_precision:>10.4f} {c.baseline.ndcg:>8.4f} {c.baseline.clicks:>10.2f}  "
            f"{ratio_r:>8.2f} {ratio_n:>7.2f}"
        )
    lines.append(
        f"trained on {result.train_playlists} playlists + the test playlists' seeds; 500 recommendations each; "
        f"baseline: popularity"
    )
    return "\n".join(lines)
