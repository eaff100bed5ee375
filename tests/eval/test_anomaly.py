"""kNN memory bank, greedy coreset and Platt scaling against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score

from medssl.eval.anomaly import (
    build_memory_bank,
    greedy_coreset,
    knn_scores,
    l2_normalise,
    platt_fit,
)


def test_knn_scores_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    bank = l2_normalise(rng.normal(size=(30, 8)))
    queries = rng.normal(size=(50, 8))
    dist = cdist(l2_normalise(queries), bank, metric="cosine")
    for k in (1, 4, 100):
        expected = np.sort(dist, axis=1)[:, : min(k, 30)].mean(axis=1)
        np.testing.assert_allclose(knn_scores(bank, queries, k, chunk=7), expected, atol=1e-12)
    with pytest.raises(ValueError, match="knn_k"):
        knn_scores(bank, queries, 0)


def _coreset_reference(x: np.ndarray, n: int, first: int) -> list[int]:
    chosen = [first]
    for _ in range(n - 1):
        d = cdist(x, x[chosen]).min(axis=1)
        chosen.append(int(np.argmax(d)))
    return chosen


def test_greedy_coreset_matches_reference_and_covers() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5))
    idx = greedy_coreset(x, 20, seed=3)
    assert idx.tolist() == _coreset_reference(x, 20, int(idx[0]))
    radius = cdist(x, x[idx]).min(axis=1).max()
    random_radius = cdist(x, x[rng.choice(200, 20, replace=False)]).min(axis=1).max()
    assert radius < random_radius
    assert greedy_coreset(x, 500).tolist() == list(range(200))


def test_memory_bank_holds_normals_only() -> None:
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(10, 4))
    labels = np.array([0, 1] * 5)
    bank = build_memory_bank(feats, labels)
    np.testing.assert_allclose(bank, l2_normalise(feats[labels == 0]))
    assert len(build_memory_bank(feats, labels, max_size=2)) == 2
    with pytest.raises(ValueError, match="at least one normal"):
        build_memory_bank(feats, np.ones(10))


def test_platt_is_increasing_and_calibrates() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    s = rng.normal(size=400) + 1.5 * y
    platt = platt_fit(s, y)
    p = platt.apply(s)
    assert platt.slope > 0
    assert roc_auc_score(y, p) == pytest.approx(roc_auc_score(y, s))
    assert abs(p.mean() - y.mean()) < 0.02  # calibration-in-the-large
    anti = platt_fit(-s, y)  # a score that ranks backwards keeps its (bad) ranking
    assert anti.slope == pytest.approx(1e-3)
    q = anti.apply(-s)
    assert roc_auc_score(y, q) == pytest.approx(roc_auc_score(y, -s))
    with pytest.raises(ValueError, match="both classes"):
        platt_fit(s, np.zeros(400))
