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


def test_cross_fit_probe_chooses_c_on_pooled_out_of_fold_scores_and_refits_on_all() -> None:
    from sklearn.model_selection import PredefinedSplit, cross_val_predict
    from sklearn.pipeline import make_pipeline

    from medssl.train.probe import cross_fit_probe, fit_probe_at

    x, y = data(60, 12, 3)
    folds = np.arange(60) % 4
    grid = [0.001, 0.1, 10.0]
    probe, oof = cross_fit_probe(x, y, folds, grid)
    pooled = {}
    for c in grid:
        got = np.empty(60)
        for f in range(4):  # each fold scored by a probe fitted on the others
            m = folds == f
            got[m] = fit_probe_at(x[~m], y[~m], c).predict(x[m])
        ref = cross_val_predict(
            make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)),
            x, y, cv=PredefinedSplit(folds), method="predict_proba",
        )[:, 1]  # fmt: skip
        np.testing.assert_allclose(got, ref, atol=1e-6)
        pooled[c] = roc_auc_score(y, ref)
    best = max(grid, key=lambda c: (pooled[c], -c))
    assert probe.c == best and probe.val_auroc == pytest.approx(pooled[best])
    whole = fit_probe_at(x, y, best)
    np.testing.assert_allclose(probe.predict(x), whole.predict(x))
    np.testing.assert_allclose(
        oof, cross_val_predict(
            make_pipeline(StandardScaler(), LogisticRegression(C=best, max_iter=5000)),
            x, y, cv=PredefinedSplit(folds), method="predict_proba",
        )[:, 1], atol=1e-9,
    )  # fmt: skip
