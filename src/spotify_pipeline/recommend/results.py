"""What a recommendation is (the model it came from, each song with its score and reason), how results are
stored in the `recommendations` table (one target's rows replaced in one commit) and printed as JSON."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..tables.catalog import Catalog
from ..tables.contract import TABLES


@dataclass(frozen=True)
class ModelInfo:
    built_at: str
    sources: dict[str, int | None]  # table -> snapshot id built from
    songs: int
    neighbors: int
    build_seconds: float
    params: dict[str, float]


@dataclass(frozen=True)
class Recommendation:
    rank: int
    song_id: str
    song: str | None
    artist: str | None
    score: float
    source: str  # playlists, listens or popularity
    because_of: str | None  # the seed song behind it
    reason: str


@dataclass(frozen=True)
class Recommendations:
    target_type: str  # playlist or user
    target_id: str
    target_name: str | None
    seeds: int
    items: list[Recommendation]
    model: ModelInfo


def save_recommendations(catalog: Catalog, result: Recommendations) -> None:
    """Replace the target's rows of the `recommendations` table with these (one commit)."""
    now = dt.datetime.now(dt.UTC)
    built = dt.datetime.fromisoformat(result.model.built_at)
    schema = TABLES["recommendations"].schema
    new = pa.Table.from_pylist(
        [
            {
                "target_type": result.target_type,
                "target_id": result.target_id,
                "rank": r.rank,
                "song_id": r.song_id,
                "score": r.score,
                "source": r.source,
                "because_of": r.because_of,
                "reason": r.reason,
                "model_built_at": built,
                "generated_at": now,
            }
            for r in result.items
        ],
        schema=schema,
    )
    old = catalog.read("recommendations") if "recommendations" in catalog.table_names() else schema.empty_table()
    keep = [
        not (t == result.target_type and i == result.target_id)
        for t, i in zip(old.column("target_type").to_pylist(), old.column("target_id").to_pylist(), strict=True)
    ]
    catalog.overwrite("recommendations", pa.concat_tables([old.filter(pa.array(keep, pa.bool_())).cast(schema), new]))


def as_json(result: Recommendations) -> dict[str, Any]:
    return {
        "target_type": result.target_type,
        "target_id": result.target_id,
        "target_name": result.target_name,
        "seeds": result.seeds,
        "model_built_at": result.model.built_at,
        "recommendations": [r.__dict__ for r in result.items],
    }
