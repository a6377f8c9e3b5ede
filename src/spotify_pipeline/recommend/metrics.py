"""The RecSys Challenge 2018 metrics, as the challenge's rules define them, as small pure functions.

For one playlist with held-out tracks G (unique, none of them a seed) and a ranked list R of recommended
tracks (up to 500, no seeds):

- R-precision: (|G ∩ R[:|G|]| + 0.25 · |artists(G') ∩ artists(R')|) / |G|, where R[:|G|] is the first |G|
  recommendations, R' its tracks that are not in G and G' the held-out tracks it did not find: a track by a
  held-out artist earns a quarter of a hit (the challenge's artist match), each artist once. As in the
  challenge's data (one `artist_uri` per track), a track has one artist (here its first credited one), so
  the artist credit never exceeds 0.25 per missed track and R-precision never exceeds 1.
- NDCG: DCG / IDCG with DCG = rel_1 + Σ_{i≥2} rel_i / log2(i) (rel_i = 1 when R_i ∈ G) and
  IDCG = 1 + Σ_{i=2}^{|G ∩ R|} 1 / log2(i), the DCG of the same hits ranked first; 0 with no hit.
- Recommended songs clicks: floor((i - 1) / 10) for the first rank i holding a held-out track (Spotify's
  "refresh" shows ten at a time), 51 when none of the 500 does (one more than the 50 pages 500 tracks fill).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

NO_CLICK = 51
ARTIST_CREDIT = 0.25


def r_precision(
    relevant: Iterable[str],
    ranked: Sequence[str],
    artist_of: Callable[[str], str | None] = lambda _: None,
) -> float:
    """R-precision with the challenge's artist partial credit (0 when nothing is held out)."""
    truth = set(relevant)
    if not truth:
        return 0.0
    top = list(dict.fromkeys(ranked[: len(truth)]))
    hits = {t for t in top if t in truth}
    missed_artists = {artist_of(t) for t in truth - hits} - {None}
    other_artists = {artist_of(t) for t in top if t not in truth} - {None}
    return (len(hits) + ARTIST_CREDIT * len(missed_artists & other_artists)) / len(truth)


def dcg(relevance: Sequence[int]) -> float:
    """rel_1 + Σ_{i≥2} rel_i / log2(i), ranks from 1."""
    return sum(rel if i == 1 else rel / math.log2(i) for i, rel in enumerate(relevance, start=1))


def ndcg(relevant: Iterable[str], ranked: Sequence[str]) -> float:
    truth = set(relevant)
    relevance = [1 if t in truth else 0 for t in ranked]
    hits = sum(relevance)
    return dcg(relevance) / dcg([1] * hits) if hits else 0.0


def clicks(relevant: Iterable[str], ranked: Sequence[str]) -> int:
    truth = set(relevant)
    for i, track in enumerate(ranked, start=1):
        if track in truth:
            return (i - 1) // 10
    return NO_CLICK
