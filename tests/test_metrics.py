"""Metrics against small examples worked out by hand (unit vectors at known angles)."""

from __future__ import annotations

import numpy as np
import pytest

from logosim.search.metrics import METRIC_KEYS, leave_one_out, pair_recall, relevant_ranks


def at_angles(*degrees: float) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def test_single_pair_with_a_distractor_between():
    # A0=0°, B=10°, A1=20°, C=90°: each A finds B first, its partner second.
    vectors = at_angles(0, 10, 20, 90)
    metrics = leave_one_out(vectors, ["a", "", "a", ""])
    assert set(metrics) == set(METRIC_KEYS)
    assert metrics["queries"] == 2
    assert metrics["gallery"] == 3
    assert metrics["recall@1"] == 0.0
    assert metrics["recall@10"] == 1.0
    assert metrics["map"] == pytest.approx(0.5)
    # NAR = (Σrank − n(n+1)/2) / (n·(N−1)) = (2 − 1) / (1·3)
    assert metrics["nar"] == pytest.approx(1 / 3)
    assert metrics["precision@10"] == pytest.approx(0.1)


def test_group_of_three():
    # G0=0°, G1=5°, X=11°, G2=15°, Y=90°
    vectors = at_angles(0, 5, 11, 15, 90)
    groups = ["g", "g", "", "g", None]
    ranks, _ = relevant_ranks(vectors, groups)
    assert [r.tolist() for r in ranks] == [[1, 3], [1, 3], [2, 3]]
    metrics = leave_one_out(vectors, groups)
    assert metrics["recall@1"] == pytest.approx(2 / 3)
    assert metrics["map"] == pytest.approx((5 / 6 + 5 / 6 + 7 / 12) / 3)
    assert metrics["nar"] == pytest.approx((1 / 8 + 1 / 8 + 1 / 4) / 3)
    assert metrics["precision@10"] == pytest.approx(0.2)


def test_a_twin_descriptor_scores_the_best_of_four_pairings():
    # A0=0°, B=10°, A1=20°, C=90°: A1's twin (1°, e.g. its text painted out) sits by A0.
    vectors = at_angles(0, 10, 20, 90)
    groups = ["a", "", "a", ""]
    assert leave_one_out(vectors, groups, twin=vectors) == leave_one_out(vectors, groups)
    twin = vectors.copy()
    twin[2] = at_angles(1)[0]
    ranks, _ = relevant_ranks(vectors, groups, twin=twin)
    assert [r.tolist() for r in ranks] == [[1], [1]]  # twin·plain both ways


def test_perfect_and_singleton_groups():
    vectors = at_angles(0, 1, 60, 61, 120)
    metrics = leave_one_out(vectors, ["a", "a", "b", "b", "lonely"])
    assert metrics["queries"] == 4  # a group of one has nothing to find
    assert metrics["recall@1"] == 1.0
    assert metrics["map"] == 1.0
    assert metrics["nar"] == 0.0


def test_blocks_do_not_change_results():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    groups = [f"g{i % 40}" if i % 3 else "" for i in range(300)]
    whole, _ = relevant_ranks(vectors, groups, block_cells=1 << 30)
    blocked, _ = relevant_ranks(vectors, groups, block_cells=300 * 7)
    assert [r.tolist() for r in whole] == [r.tolist() for r in blocked]


def test_pair_recall():
    vectors = at_angles(0, 5, 11, 15, 90)
    ids = ["g0", "g1", "x", "g2", "y"]
    result = pair_recall(vectors, ids, [("g2", "g0"), ("g0", "missing")], ks=(1, 3))
    assert result == {"pair_recall@1": 0.0, "pair_recall@3": 1.0, "pairs": 1}
    assert pair_recall(vectors, ids, [("g0", "g1")], ks=(1,))["pair_recall@1"] == 1.0
