"""DeLong's test for two correlated AUROCs (DeLong, DeLong & Clarke-Pearson 1988), by the
fast midrank algorithm of Sun & Xu (2014).

References:
    DeLong E.R., DeLong D.M., Clarke-Pearson D.L. (1988). Comparing the areas under two or
        more correlated receiver operating characteristic curves: a nonparametric approach.
        Biometrics 44(3):837-845.
    Sun X., Xu W. (2014). Fast implementation of DeLong's algorithm for comparing the areas
        under correlated receiver operating characteristic curves. IEEE Signal Processing
        Letters 21(11):1389-1393.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from medssl.eval.metrics import (
    FloatArray,
    as_labels,
    as_scores,
    check_lengths,
    labels_scores,
    require_both_classes,
)


def _midranks(x: FloatArray) -> FloatArray:
    """Midranks (1-based, ties averaged) along the last axis, shape as ``x``."""
    return np.asarray(stats.rankdata(x, method="average", axis=-1), dtype=np.float64)


def delong_auroc_cov(y_true: ArrayLike, scores: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """AUROCs of ``k`` correlated scores and their DeLong covariance (Sun & Xu 2014).

    Fast DeLong: the structural components ``V10`` (per abnormal case) and ``V01`` (per normal
    case) of DeLong et al. (1988) are obtained from midranks in O(k n log n), and
    ``cov = S10 / m + S01 / n`` with ``m`` abnormal and ``n`` normal cases.

    Args:
        y_true: Labels in {0, 1}, shape ``(N,)``, both classes present.
        scores: Scores of ``k`` models on the same cases, shape ``(k, N)`` (or ``(N,)``).

    Returns:
        ``(aucs, cov)``: AUROCs ``(k,)`` and their covariance matrix ``(k, k)``.
    """
    s2d = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    y = as_labels(y_true, "y_true")
    require_both_classes(y, "y_true")
    if s2d.ndim != 2 or s2d.shape[1] != len(y) or not np.isfinite(s2d).all():
        raise ValueError(f"scores must be finite with shape (k, {len(y)}), got {s2d.shape}")
    pos, neg = s2d[:, y == 1], s2d[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    rank_all = _midranks(np.concatenate([pos, neg], axis=1))
    v10 = (rank_all[:, :m] - _midranks(pos)) / n  # P(score_pos > score_neg), per positive
    v01 = 1.0 - (rank_all[:, m:] - _midranks(neg)) / m  # same, per negative
    aucs = v10.mean(axis=1)
    if m < 2 or n < 2:  # a variance needs two cases per class: undefined, not an error
        return aucs, np.full((len(s2d), len(s2d)), np.nan)
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def delong_pvalue(y_true: ArrayLike, s1: ArrayLike, s2: ArrayLike) -> float:
    """Two-sided DeLong test that two correlated AUROCs on the same cases are equal.

    ``z = (A1 - A2) / sqrt(var1 + var2 - 2 cov12)`` with the DeLong et al. (1988) covariance
    computed by the fast algorithm of Sun & Xu (2014); ``p = 2 * (1 - Phi(|z|))``. Assumes
    independent cases: for several images per patient prefer :func:`paired_bootstrap_pvalue`
    or aggregate with :func:`aggregate_by_patient` first.

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``, both classes present.
        s1: Scores of model 1, shape ``(n,)``.
        s2: Scores of model 2, shape ``(n,)``.

    Returns:
        The two-sided p-value (1.0 when the two score vectors rank the cases identically).
    """
    y, a = labels_scores(y_true, s1, both_classes=True)
    b = as_scores(s2, "s2")
    check_lengths(y_true=y, s1=a, s2=b)
    aucs, cov = delong_auroc_cov(y, np.stack([a, b]))
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    diff = float(aucs[0] - aucs[1])
    if var <= 1e-15:
        return 1.0 if abs(diff) < 1e-12 else 0.0
    return float(2.0 * stats.norm.sf(abs(diff) / np.sqrt(var)))
