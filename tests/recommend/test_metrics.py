"""The challenge metrics on examples computed by hand."""

from __future__ import annotations

import math

import pytest

from spotify_pipeline.recommend.metrics import NO_CLICK, clicks, ndcg, r_precision

ARTISTS = {"a": "x", "b": "y", "c": "z", "d": "x", "e": "w", "f": "y"}


def test_r_precision_counts_hits_in_the_first_len_g() -> None:
    # |G| = 4: only R[:4] = a, q, b, r counts; c at rank 5 does not.
    assert r_precision({"a", "b", "c", "e"}, ["a", "q", "b", "r", "c"]) == 2 / 4
    assert r_precision({"a"}, ["a", "b"]) == 1.0
    assert r_precision(set(), ["a"]) == 0.0
    assert r_precision({"a", "b"}, []) == 0.0


def test_r_precision_gives_a_quarter_for_a_held_out_artist() -> None:
    # G = a(x), b(y); R[:2] = d(x), a(x): a is a hit; d's artist x belongs only to the found a -> no credit.
    assert r_precision({"a", "b"}, ["d", "a"], ARTISTS.get) == 1 / 2
    # R[:2] = d(x), f(y): no hit; d and f share the artists x, y of the missed a, b -> 2 * 0.25 / 2.
    assert r_precision({"a", "b"}, ["d", "f"], ARTISTS.get) == 0.25
    # Each artist once: two tracks by y earn one credit. G = b(y), c(z), e(w); R[:3] = f(y), f2(y), q.
    artists = {**ARTISTS, "f2": "y"}
    assert r_precision({"b", "c", "e"}, ["f", "f2", "q"], artists.get) == 0.25 / 3


def test_r_precision_by_hand_on_a_challenge_sized_example() -> None:
    """G = 5 held-out tracks g1..g5 by artists A, A, B, C, D; the first |G| = 5 recommendations are
    g1 (hit), x1 by A (A also made the missed g2: credit), x2 by B (missed g3: credit), g4 (hit), x3 by E
    (no held-out artist). Hits 2, artist credits 2 x 0.25: R-precision = (2 + 0.5) / 5 = 0.5. Ranks 6+
    (g5 at rank 6) never count."""
    artists = {"g1": "A", "g2": "A", "g3": "B", "g4": "C", "g5": "D", "x1": "A", "x2": "B", "x3": "E"}
    ranked = ["g1", "x1", "x2", "g4", "x3", "g5"]
    assert r_precision({"g1", "g2", "g3", "g4", "g5"}, ranked, artists.get) == pytest.approx(0.5)
    # A track whose artist is only among the found ones earns nothing: x1 by C (g4 found) instead.
    assert r_precision({"g1", "g2", "g3", "g4", "g5"}, ranked, {**artists, "x1": "C"}.get) == pytest.approx(0.45)
    # Never above 1: one missed track, one recommendation by its artist -> 0.25.
    assert r_precision({"g1"}, ["x1"], artists.get) == 0.25


def test_ndcg_by_hand() -> None:
    # Hits at ranks 1 and 3: DCG = 1 + 1/log2(3); IDCG (2 hits) = 1 + 1/log2(2) = 2.
    assert ndcg({"a", "c"}, ["a", "b", "c"]) == pytest.approx((1 + 1 / math.log2(3)) / 2)
    # One hit at rank 2: DCG = 1/log2(2) = 1; IDCG = 1.
    assert ndcg({"b", "zz"}, ["a", "b"]) == pytest.approx(1.0)
    # One hit at rank 4: 1/log2(4) = 0.5.
    assert ndcg({"d"}, ["a", "b", "c", "d"]) == pytest.approx(0.5)
    assert ndcg({"a", "b"}, ["a", "b"]) == 1.0
    assert ndcg({"x"}, ["a", "b"]) == 0.0


def test_clicks_by_hand() -> None:
    ranked = [f"t{i}" for i in range(1, 501)]
    assert clicks({"t1"}, ranked) == 0
    assert clicks({"t10"}, ranked) == 0
    assert clicks({"t11"}, ranked) == 1
    assert clicks({"t35", "t400"}, ranked) == 3
    assert clicks({"t500"}, ranked) == 49
    assert clicks({"nope"}, ranked) == NO_CLICK == 51
