"""Logistic probe: C chosen on validation, predictions equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from medssl.train.probe import fit_probe


def data(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 5.0, d)
    x[:, :3] += 0.8 * y[:, None]
    return x, y


def test_probe_matches_sklearn_and_picks_best_c() -> None:
    x, y = data(80, 20, 0)
    xv, yv = data(60, 20, 1)
    grid = [0.001, 0.1, 10.0]
    probe = fit_probe(x, y, xv, yv, grid)
    scaler = StandardScaler().fit(x)
    val_scores = {}
    for c in grid:
        ref = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), y)
        val_scores[c] = roc_auc_score(yv, ref.decision_function(scaler.transform(xv)))
    best = max(grid, key=lambda c: (val_scores[c], -c))
    assert probe.c == best
    assert probe.val_auroc == pytest.approx(val_scores[best])
    ref = LogisticRegression(C=best, max_iter=5000).fit(scaler.transform(x), y)
    expected = ref.predict_proba(scaler.transform(xv))[:, 1]
    np.testing.assert_allclose(probe.predict(xv), expected, rtol=1e-6, atol=1e-9)
    saved = probe.to_json()
    assert saved["c"] == best and len(saved["coef"]) == 20


def test_probe_errors() -> None:
    x, y = data(20, 4, 0)
    with pytest.raises(ValueError, match="probe_c"):
        fit_probe(x, y, x, y, [])
    with pytest.raises(ValueError, match="probe_c"):
        fit_probe(x, y, x, y, [0.0, 1.0])
    with pytest.raises(ValueError, match="both classes in the validation"):
        fit_probe(x, y, x, np.zeros_like(y), [1.0])
