"""Playlist continuation and personal recommendations from what the lake already holds (issue #22).

`model.py` builds item-item co-occurrence (playlists and listening sessions) in DuckDB and ranks with it;
`evaluate.py` measures it the way the RecSys Challenge 2018 did; `metrics.py` holds the challenge's metrics;
`service.py` connects them to the lake (the stored model, `Recommender`, one-shot calls); `results.py` is
what a recommendation is and how it is stored in the `recommendations` table.
"""

from .evaluate import CATEGORIES, CategoryResult, Evaluation, Scores, format_evaluation
from .model import ModelParams
from .results import ModelInfo, Recommendation, Recommendations, as_json, save_recommendations
from .service import (
    Recommender,
    build_model,
    current_model,
    evaluate_lake,
    recommend_for_playlist,
    recommend_for_user,
)

__all__ = [
    "CATEGORIES",
    "CategoryResult",
    "Evaluation",
    "ModelInfo",
    "ModelParams",
    "Recommendation",
    "Recommendations",
    "Recommender",
    "Scores",
    "as_json",
    "build_model",
    "current_model",
    "evaluate_lake",
    "format_evaluation",
    "recommend_for_playlist",
    "recommend_for_user",
    "save_recommendations",
]
