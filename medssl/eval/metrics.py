"""Binary classification metrics for anomaly detection (normal = 0, abnormal = 1).

Scores are "higher means more abnormal"; a case is called abnormal when ``score >= threshold``
(the convention of :func:`sklearn.metrics.roc_curve`). Inputs are 1-D array-likes of equal
length ``(n,)``; outputs are plain Python floats, ints, lists and dicts, ready for JSON and
DVC plots.

Confidence intervals come from a cluster (patient-level) percentile bootstrap (Efron &
Tibshirani 1993, ch. 13; Field & Welsh 2007 for clustered data): whole patients are resampled
with replacement, so several images of one patient never count as independent evidence.
Two correlated AUROCs are compared with DeLong's test (DeLong, DeLong & Clarke-Pearson 1988)
computed by the fast midrank algorithm of Sun & Xu (2014), or with a paired patient bootstrap.
Calibration follows Naeini, Cooper & Hauskrecht (2015) and Guo et al. (2017).

References:
    DeLong E.R., DeLong D.M., Clarke-Pearson D.L. (1988). Comparing the areas under two or
        more correlated receiver operating characteristic curves: a nonparametric approach.
        Biometrics 44(3):837-845.
    Sun X., Xu W. (2014). Fast implementation of DeLong's algorithm for comparing the areas
        under correlated receiver operating characteristic curves. IEEE Signal Processing
        Letters 21(11):1389-1393.
    Efron B., Tibshirani R.J. (1993). An Introduction to the Bootstrap. Chapman & Hall.
    Field C.A., Welsh A.H. (2007). Bootstrapping clustered data. JRSS-B 69(3):369-390.
    Robin X. et al. (2011). pROC: an open-source package for R and S+ to analyze and compare
        ROC curves. BMC Bioinformatics 12:77 (bootstrap test for paired AUROCs).
    Naeini M.P., Cooper G., Hauskrecht M. (2015). Obtaining well calibrated probabilities
        using Bayesian binning. AAAI.
    Guo C., Pleiss G., Sun Y., Weinberger K.Q. (2017). On calibration of modern neural
        networks. ICML.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse, stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
MetricFn = Callable[[IntArray, FloatArray], float]

MAX_CURVE_POINTS = 200
#: The one calibration binning of medssl: this many equal-width bins on [0, 1], bin ``k``
#: being ``((k-1)/M, k/M]`` (the first also holds 0), as ``strategy="uniform"`` of
#: :func:`sklearn.calibration.calibration_curve`. ECE, the reliability points of the
#: evaluate stage (``plots/calibration/*.json``) and the report's calibration panel all use
#: it, so the ECE is the count-weighted gap of the plotted points.
CALIBRATION_BINS = 10
_BOOT_CELLS_PER_BATCH = 1 << 22  # bootstrap rows are drawn in batches of about this many cells
_MAX_SKIPPED_FRACTION = 0.1  # warn when more single-class resamples than this are skipped


# --------------------------------------------------------------------------- validation


def _as_labels(y: ArrayLike, name: str) -> IntArray:
    """Return ``y`` as a 1-D int64 array of 0/1 labels, or raise ValueError."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 (normal) and 1 (abnormal)")
    return arr.astype(np.int64)


def _as_scores(s: ArrayLike, name: str) -> FloatArray:
    """Return ``s`` as a 1-D finite float64 array, or raise ValueError."""
    arr = np.asarray(s, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _as_probabilities(p: ArrayLike, name: str) -> FloatArray:
    """Return ``p`` as a 1-D float64 array of probabilities in [0, 1], or raise ValueError."""
    arr = _as_scores(p, name)
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(f"{name} must be probabilities in [0, 1] (got [{arr.min()}, {arr.max()}])")
    return arr


def _check_lengths(**arrays: np.ndarray) -> None:
    """Raise ValueError unless all arrays have the same, non-zero length."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"length mismatch: {lengths}")
    if next(iter(lengths.values())) == 0:
        raise ValueError(f"empty input: {lengths}")


def _require_both_classes(y: IntArray, name: str) -> None:
    """Raise ValueError unless ``y`` holds at least one 0 and one 1."""
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(
            f"{name} contains only one class ({n_pos} abnormal of {len(y)}); "
            "this metric needs both normal (0) and abnormal (1) cases"
        )


def _labels_scores(
    y: ArrayLike, s: ArrayLike, *, both_classes: bool
) -> tuple[IntArray, FloatArray]:
    """Validate a (labels, scores) pair of shape ``(n,)`` each."""
    y_arr, s_arr = _as_labels(y, "y_true"), _as_scores(s, "y_score")
    _check_lengths(y_true=y_arr, y_score=s_arr)
    if both_classes:
        _require_both_classes(y_arr, "y_true")
    return y_arr, s_arr


# --------------------------------------------------------------------------- aggregation


def aggregate_by_patient(
    patient_ids: ArrayLike,
    y_true: ArrayLike,
    y_score: ArrayLike,
    how: Literal["max", "mean"] = "max",
) -> tuple[np.ndarray, IntArray, FloatArray]:
    """Collapse image-level labels and scores to one row per patient.

    A patient is abnormal if any of their images is abnormal (label = max); the patient score
    is the max or the mean of their image scores.

    Args:
        patient_ids: Patient key per image, shape ``(n,)`` (pseudonymous keys).
        y_true: Image labels in {0, 1}, shape ``(n,)``.
        y_score: Image scores, shape ``(n,)``.
        how: ``"max"`` (any suspicious image flags the patient) or ``"mean"``.

    Returns:
        ``(patients, y, s)``: sorted unique patient keys ``(p,)``, patient labels ``(p,)``
        (int64) and patient scores ``(p,)`` (float64), aligned.

    Raises:
        ValueError: On length mismatch, non-binary labels, non-finite scores or unknown ``how``.
    """
    if how not in ("max", "mean"):
        raise ValueError(f"how must be 'max' or 'mean', got {how!r}")
    ids = np.asarray(patient_ids)
    y, s = _as_labels(y_true, "y_true"), _as_scores(y_score, "y_score")
    _check_lengths(patient_ids=ids, y_true=y, y_score=s)
    patients, inverse = np.unique(ids, return_inverse=True)
    y_pat = np.zeros(len(patients), dtype=np.int64)
    np.maximum.at(y_pat, inverse, y)
    if how == "max":
        s_pat = np.full(len(patients), -np.inf)
        np.maximum.at(s_pat, inverse, s)
    else:
        s_pat = np.bincount(inverse, weights=s) / np.bincount(inverse)
    return patients, y_pat, s_pat


# --------------------------------------------------------------------------- point metrics


def auroc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (:func:`sklearn.metrics.roc_auc_score`).

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``, both classes present.
        y_score: Scores, shape ``(n,)``; higher means more abnormal.

    Returns:
        AUROC in [0, 1]; ties count one half (Mann-Whitney U / (n_pos * n_neg)).
    """
    y, s = _labels_scores(y_true, y_score, both_classes=True)
    return float(roc_auc_score(y, s))


def auprc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision.

    Uses :func:`sklearn.metrics.average_precision_score` (step-wise sum, no interpolation).
    Its chance level is the prevalence, not 0.5.

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``, both classes present.
        y_score: Scores, shape ``(n,)``.

    Returns:
        Average precision in [0, 1].
    """
    y, s = _labels_scores(y_true, y_score, both_classes=True)
    return float(average_precision_score(y, s))


def threshold_at_specificity(y_val: ArrayLike, s_val: ArrayLike, specificity: float) -> float:
    """Lowest threshold that reaches at least ``specificity`` on the validation set.

    The threshold is chosen on validation data and then frozen and applied to the test set,
    so that the test sensitivity / specificity are honest estimates. Among thresholds with
    validation specificity >= target, the lowest one (highest sensitivity) is returned.

    Args:
        y_val: Validation labels in {0, 1}, shape ``(n,)``; at least one normal case.
        s_val: Validation scores, shape ``(n,)``.
        specificity: Target specificity in (0, 1].

    Returns:
        A threshold ``t`` (one of the validation scores; ``inf`` if only "call nothing
        abnormal" reaches the target); cases with ``score >= t`` are called abnormal.
    """
    if not 0.0 < specificity <= 1.0:
        raise ValueError(f"specificity must be in (0, 1], got {specificity}")
    y, s = _labels_scores(y_val, s_val, both_classes=True)
    fpr, _, thresholds = roc_curve(y, s, drop_intermediate=False)
    ok = np.flatnonzero(fpr <= (1.0 - specificity) + 1e-12)  # fpr is non-decreasing
    return float(thresholds[ok[-1]])


def confusion_at(y_true: ArrayLike, y_score: ArrayLike, threshold: float) -> dict[str, int]:
    """Confusion counts when cases with ``score >= threshold`` are called abnormal.

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``.
        y_score: Scores, shape ``(n,)``.
        threshold: Decision threshold (e.g. from :func:`threshold_at_specificity`).

    Returns:
        ``{"tn", "fp", "fn", "tp"}`` as ints (:func:`sklearn.metrics.confusion_matrix`).
    """
    y, s = _labels_scores(y_true, y_score, both_classes=False)
    pred = (s >= threshold).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def sensitivity_specificity_at(
    y_true: ArrayLike, y_score: ArrayLike, threshold: float
) -> tuple[float, float]:
    """Sensitivity (TPR) and specificity (TNR) at a frozen threshold.

    Computed directly with numpy (it runs inside bootstrap loops); equals
    ``tp / (tp + fn)`` and ``tn / (tn + fp)`` from :func:`confusion_at`.

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``, both classes present.
        y_score: Scores, shape ``(n,)``.
        threshold: Cases with ``score >= threshold`` are called abnormal.

    Returns:
        ``(sensitivity, specificity)``.
    """
    y, s = _labels_scores(y_true, y_score, both_classes=True)
    called = s >= threshold
    return float(called[y == 1].mean()), float(1.0 - called[y == 0].mean())


# --------------------------------------------------------------------------- calibration


def _calibration_bins(p: FloatArray, n_bins: int) -> IntArray:
    """Bin index per probability, :data:`CALIBRATION_BINS`-style equal-width bins (as sklearn)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], p).astype(np.int64)


def expected_calibration_error(
    y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = CALIBRATION_BINS
) -> float:
    """Expected calibration error with equal-width bins (Naeini et al. 2015; Guo et al. 2017).

    ``ECE = sum_b (n_b / n) * |mean(y in b) - mean(p in b)|`` over ``n_bins`` equal-width bins
    on [0, 1] (same binning as :func:`sklearn.calibration.calibration_curve`). Only
    meaningful when ``y_prob`` are probabilities of the abnormal class (e.g. a sigmoid
    output), not arbitrary anomaly scores.

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``.
        y_prob: Predicted probabilities of class 1 in [0, 1], shape ``(n,)``.
        n_bins: Number of equal-width bins.

    Returns:
        ECE in [0, 1].
    """
    y, p = _as_labels(y_true, "y_true"), _as_probabilities(y_prob, "y_prob")
    _check_lengths(y_true=y, y_prob=p)
    bins = _calibration_bins(p, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    gap = np.abs(
        np.bincount(bins, weights=y, minlength=n_bins)
        - np.bincount(bins, weights=p, minlength=n_bins)
    )
    return float(gap.sum() / counts.sum())


def brier(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Brier score, the mean squared error of probabilities (Brier 1950).

    Uses :func:`sklearn.metrics.brier_score_loss`; only meaningful for probabilities.

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``.
        y_prob: Predicted probabilities of class 1 in [0, 1], shape ``(n,)``.

    Returns:
        Brier score in [0, 1]; lower is better.
    """
    y, p = _as_labels(y_true, "y_true"), _as_probabilities(y_prob, "y_prob")
    _check_lengths(y_true=y, y_prob=p)
    return float(brier_score_loss(y, p, labels=[0, 1]))


def calibration_curve_points(
    y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = CALIBRATION_BINS
) -> list[dict[str, float]]:
    """Reliability-diagram points (:func:`sklearn.calibration.calibration_curve`, uniform).

    The only calibration curve of medssl: the evaluate stage's plot files and the report's
    calibration panel both come from it (binning: :data:`CALIBRATION_BINS`).

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``.
        y_prob: Predicted probabilities of class 1 in [0, 1], shape ``(n,)``.
        n_bins: Number of equal-width bins; empty bins are omitted.

    Returns:
        One dict per non-empty bin: ``prob_pred`` (mean predicted probability), ``prob_true``
        (observed fraction abnormal) and ``count`` (cases in the bin).
    """
    y, p = _as_labels(y_true, "y_true"), _as_probabilities(y_prob, "y_prob")
    _check_lengths(y_true=y, y_prob=p)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform", pos_label=1)
    counts = np.bincount(_calibration_bins(p, n_bins), minlength=n_bins)
    return [
        {"prob_pred": float(pp), "prob_true": float(pt), "count": int(c)}
        for pp, pt, c in zip(prob_pred, prob_true, counts[counts > 0], strict=True)
    ]


# --------------------------------------------------------------------------- curves


def _thin(n: int, max_points: int | None) -> IntArray:
    """Indices of at most ``max_points`` evenly spaced points in ``range(n)``, ends kept.

    ``None`` keeps every point.
    """
    if max_points is None or n <= max_points:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def roc_points(
    y_true: ArrayLike, y_score: ArrayLike, max_points: int | None = MAX_CURVE_POINTS
) -> list[dict[str, float]]:
    """ROC curve points for DVC plots (:func:`sklearn.metrics.roc_curve`).

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``, both classes present.
        y_score: Scores, shape ``(n,)``.
        max_points: Thin the curve to at most this many points (first and last kept);
            ``None`` keeps every point.

    Returns:
        Dicts with ``fpr``, ``tpr`` and ``threshold``. sklearn's leading ``inf`` threshold
        (nothing called abnormal) is reported as ``max(score) + 1`` to stay JSON-valid.
    """
    y, s = _labels_scores(y_true, y_score, both_classes=True)
    fpr, tpr, thr = roc_curve(y, s)
    thr = np.where(np.isfinite(thr), thr, s.max() + 1.0)
    return [
        {"fpr": float(fpr[i]), "tpr": float(tpr[i]), "threshold": float(thr[i])}
        for i in _thin(len(fpr), max_points)
    ]


def pr_points(
    y_true: ArrayLike, y_score: ArrayLike, max_points: int | None = MAX_CURVE_POINTS
) -> list[dict[str, float]]:
    """Precision-recall curve points for DVC plots (:func:`sklearn.metrics.precision_recall_curve`).

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``, both classes present.
        y_score: Scores, shape ``(n,)``.
        max_points: Thin the curve to at most this many points (first and last kept);
            ``None`` keeps every point.

    Returns:
        Dicts with ``recall`` and ``precision``, recall decreasing to the (0, 1) end point.
    """
    y, s = _labels_scores(y_true, y_score, both_classes=True)
    precision, recall, _ = precision_recall_curve(y, s)
    return [
        {"recall": float(recall[i]), "precision": float(precision[i])}
        for i in _thin(len(recall), max_points)
    ]


def curve_points(
    y_true: ArrayLike, y_score: ArrayLike, max_points: int | None = MAX_CURVE_POINTS
) -> dict[str, list[dict[str, float]]]:
    """ROC, precision-recall and reliability points of one set of scores.

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``, both classes present.
        y_score: Probabilities of class 1 in [0, 1], shape ``(n,)``.
        max_points: Thinning of the ROC and PR curves (``None``: every point).

    Returns:
        ``{"roc": roc_points, "pr": pr_points, "calibration": calibration_curve_points}``
        (:func:`roc_points`, :func:`pr_points`, :func:`calibration_curve_points`).
    """
    return {
        "roc": roc_points(y_true, y_score, max_points),
        "pr": pr_points(y_true, y_score, max_points),
        "calibration": calibration_curve_points(y_true, y_score),
    }


# --------------------------------------------------------------------------- DeLong


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
    y = _as_labels(y_true, "y_true")
    _require_both_classes(y, "y_true")
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
    y, a = _labels_scores(y_true, s1, both_classes=True)
    b = _as_scores(s2, "s2")
    _check_lengths(y_true=y, s1=a, s2=b)
    aucs, cov = delong_auroc_cov(y, np.stack([a, b]))
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    diff = float(aucs[0] - aucs[1])
    if var <= 1e-15:
        return 1.0 if abs(diff) < 1e-12 else 0.0
    return float(2.0 * stats.norm.sf(abs(diff) / np.sqrt(var)))


# --------------------------------------------------------------------------- bootstrap


def _group_count_batches(
    rng: np.random.Generator, n_groups: int, n_boot: int
) -> Iterator[IntArray]:
    """Yield ``(b, n_groups)`` multiplicities of groups drawn with replacement, ``n_boot`` rows."""
    rows = max(1, _BOOT_CELLS_PER_BATCH // n_groups)
    for start in range(0, n_boot, rows):
        b = min(rows, n_boot - start)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        flat = (draws + n_groups * np.arange(b)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n_groups).reshape(b, n_groups)


def _class_tables(y: IntArray, s: FloatArray, group_idx: IntArray) -> tuple[sparse.csr_array, ...]:
    """Sparse ``(n_groups, n_unique_scores)`` counts of abnormal and of normal cases."""
    _, score_idx = np.unique(s, return_inverse=True)
    shape = (int(group_idx.max()) + 1, int(score_idx.max()) + 1)
    return tuple(
        sparse.csr_array(
            (np.ones(int(mask.sum())), (group_idx[mask], score_idx[mask])), shape=shape
        )
        for mask in (y == 1, y == 0)
    )


def _auroc_from_counts(pos: FloatArray, neg: FloatArray) -> FloatArray:
    """Weighted AUROC per row from ``(b, u)`` class weights at ascending unique scores."""
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    u_stat = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u_stat / (n_pos * n_neg), np.nan)


def _auprc_from_counts(pos: FloatArray, neg: FloatArray) -> FloatArray:
    """Weighted average precision per row, as sklearn's step-wise sum, from ``(b, u)`` weights."""
    pos_desc, neg_desc = pos[:, ::-1], neg[:, ::-1]
    tp, fp = np.cumsum(pos_desc, axis=1), np.cumsum(neg_desc, axis=1)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = (pos_desc * precision).sum(axis=1) / n_pos
    return np.where((n_pos > 0) & (n_neg > 0), ap, np.nan)


# Metrics with a vectorised bootstrap; any other callable is evaluated resample by resample.
_BATCHED_METRICS: dict[Callable[..., float], Callable[[FloatArray, FloatArray], FloatArray]] = {
    auroc: _auroc_from_counts,
    auprc: _auprc_from_counts,
}


def _loop_stats(
    metric_fn: MetricFn, y: IntArray, s: FloatArray, group_idx: IntArray, counts: IntArray
) -> FloatArray:
    """Evaluate ``metric_fn`` on each resample given as ``(b, n_groups)`` group multiplicities."""
    out = np.full(len(counts), np.nan)
    cases = np.arange(len(y))
    for row, group_counts in enumerate(counts):
        idx = np.repeat(cases, group_counts[group_idx])
        n_pos = int(y[idx].sum())
        if 0 < n_pos < len(idx):
            out[row] = metric_fn(y[idx], s[idx])
    return out


def _bootstrap_stats(
    metric_fn: MetricFn, y: IntArray, s: FloatArray, groups: ArrayLike, n_boot: int, seed: int
) -> FloatArray:
    """Metric on ``n_boot`` cluster resamples, shape ``(n_boot,)``; NaN for one-class ones."""
    grp = np.asarray(groups)
    _check_lengths(y_true=y, y_score=s, groups=grp)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    _, group_idx = np.unique(grp, return_inverse=True)
    group_idx = group_idx.astype(np.int64)
    n_groups = int(group_idx.max()) + 1
    rng = np.random.default_rng(seed)
    batched = _BATCHED_METRICS.get(metric_fn)
    tables = _class_tables(y, s, group_idx) if batched is not None else ()
    out = []
    for counts in _group_count_batches(rng, n_groups, n_boot):
        if batched is not None:
            weights = counts.astype(np.float64)
            out.append(batched(weights @ tables[0], weights @ tables[1]))
        else:
            out.append(_loop_stats(metric_fn, y, s, group_idx, counts))
    return np.concatenate(out)


class SingleClassResamplesWarning(UserWarning):
    """Many bootstrap resamples held one class only and were skipped (few cases)."""


def _valid(boot: FloatArray, what: str) -> FloatArray:
    """Drop NaN (single-class) resamples, warning if many and raising if none remain."""
    keep = boot[np.isfinite(boot)]
    if keep.size == 0:
        raise ValueError(f"{what}: every bootstrap resample held a single class")
    skipped = 1.0 - keep.size / boot.size
    if skipped > _MAX_SKIPPED_FRACTION:
        warnings.warn(
            f"{what}: {skipped:.0%} of bootstrap resamples had a single class and were skipped",
            SingleClassResamplesWarning,
            stacklevel=3,
        )
    return keep


def bootstrap_ci(
    metric_fn: MetricFn,
    y_true: ArrayLike,
    y_score: ArrayLike,
    groups: ArrayLike,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile confidence interval by cluster bootstrap over groups (patients).

    Each resample draws ``n_groups`` groups with replacement and keeps all cases of each
    drawn group (Efron & Tibshirani 1993; Field & Welsh 2007). Resamples with a single class
    are skipped. :func:`auroc` and :func:`auprc` are computed for all resamples at once
    from per-score class weights (exact, same resamples as the generic path); any other
    ``metric_fn(y, s) -> float`` is called once per resample.

    Args:
        metric_fn: Metric of ``(labels (n,), scores (n,))``, e.g. :func:`auroc`.
        y_true: Labels in {0, 1}, shape ``(n,)``, both classes present.
        y_score: Scores, shape ``(n,)``.
        groups: Cluster key per case (patient), shape ``(n,)``; pass ``np.arange(n)`` for an
            ordinary case-level bootstrap.
        n_boot: Number of resamples.
        alpha: Two-sided level; the interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles.
        seed: Seed of the ``numpy.random.Generator``.

    Returns:
        ``(point, low, high)``: the metric on all data and the percentile bounds.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    y, s = _labels_scores(y_true, y_score, both_classes=True)
    point = float(metric_fn(y, s))
    boot = _valid(_bootstrap_stats(metric_fn, y, s, groups, n_boot, seed), "bootstrap_ci")
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, float(low), float(high)


def paired_bootstrap_pvalue(
    y_true: ArrayLike,
    s1: ArrayLike,
    s2: ArrayLike,
    groups: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    metric_fn: MetricFn = auroc,
) -> float:
    """Two-sided paired bootstrap test that two models have the same metric (default AUROC).

    Both models are evaluated on the same patient resamples; with ``D`` the observed
    difference and ``sd`` the standard deviation of the bootstrap differences,
    ``p = 2 * (1 - Phi(|D| / sd))`` as in pROC's bootstrap test (Robin et al. 2011).

    Args:
        y_true: Labels in {0, 1}, shape ``(n,)``, both classes present.
        s1: Scores of model 1, shape ``(n,)``.
        s2: Scores of model 2, shape ``(n,)``.
        groups: Cluster key per case (patient), shape ``(n,)``.
        n_boot: Number of resamples.
        seed: Seed of the ``numpy.random.Generator``.
        metric_fn: Metric to compare.

    Returns:
        The two-sided p-value (1.0 when the models never differ).
    """
    y, a = _labels_scores(y_true, s1, both_classes=True)
    b = _as_scores(s2, "s2")
    _check_lengths(y_true=y, s1=a, s2=b)
    diff = _bootstrap_stats(metric_fn, y, a, groups, n_boot, seed) - _bootstrap_stats(
        metric_fn, y, b, groups, n_boot, seed
    )
    diff = _valid(diff, "paired_bootstrap_pvalue")
    observed = float(metric_fn(y, a) - metric_fn(y, b))
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    if sd <= 1e-15:
        return 1.0 if abs(observed) < 1e-12 else 0.0
    return float(2.0 * stats.norm.sf(abs(observed) / sd))


# --------------------------------------------------------------------------- report


def _spec_tag(specificity: float) -> str:
    """Key suffix for a specificity, e.g. 0.9 -> ``"spec90"``, 0.975 -> ``"spec97.5"``."""
    return f"spec{100.0 * specificity:g}"


def _rate_at(threshold: float, which: int) -> MetricFn:
    """Metric returning sensitivity (``which=0``) or specificity (``which=1``) at a threshold."""

    def metric(y: IntArray, s: FloatArray) -> float:
        return sensitivity_specificity_at(y, s, threshold)[which]

    return metric


def _operating_point(
    y: IntArray,
    s: FloatArray,
    groups: ArrayLike,
    threshold: float,
    tag: str,
    n_boot: int,
    seed: int,
) -> dict[str, float]:
    """Test sensitivity / specificity at a frozen threshold, with cluster-bootstrap CIs."""
    out: dict[str, float] = {f"threshold_{tag}": threshold}
    for which, name in enumerate(("sens", "spec")):
        metric = _rate_at(threshold, which)
        point, low, high = bootstrap_ci(metric, y, s, groups, n_boot=n_boot, seed=seed)
        key = f"{name}_at_{tag}"
        out |= {key: point, f"{key}_ci_low": low, f"{key}_ci_high": high}
    return out


def binary_report(
    y_test: ArrayLike,
    s_test: ArrayLike,
    groups_test: ArrayLike,
    y_val: ArrayLike,
    s_val: ArrayLike,
    specificities: Sequence[float] = (0.90, 0.95),
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float | int]:
    """All test metrics in one flat dict (for ``metrics.json`` / dvclive).

    Discrimination (AUROC, AUPRC) with patient-level cluster-bootstrap 95 % CIs; operating
    points whose thresholds are chosen on validation at each target specificity and frozen
    on test (``sens_at_spec90`` and the achieved test ``spec_at_spec90``, with CIs);
    confusion counts at the first target's threshold; calibration (ECE, Brier). ``s_test``
    must be probabilities of the abnormal class in [0, 1]: ECE and Brier are meaningful only
    for (calibrated) probabilities, so callers with raw anomaly scores must calibrate first.
    Metrics are per case; for per-patient metrics aggregate first with
    :func:`aggregate_by_patient`.

    Args:
        y_test: Test labels in {0, 1}, shape ``(n,)``, both classes present.
        s_test: Test probabilities in [0, 1], shape ``(n,)``.
        groups_test: Patient key per test case, shape ``(n,)``.
        y_val: Validation labels, shape ``(m,)``, both classes present.
        s_val: Validation scores on the same scale as ``s_test``, shape ``(m,)``.
        specificities: Target specificities; keys use ``spec{100*target:g}``.
        n_boot: Bootstrap resamples for every CI.
        seed: Seed; all CIs use the same patient resamples.

    Returns:
        Flat dict: ``n_cases``, ``n_positive``, ``n_patients``, ``auroc``, ``auroc_ci_low``,
        ``auroc_ci_high``, ``auprc`` (+ CIs), per target ``threshold_spec90``,
        ``sens_at_spec90``, ``spec_at_spec90`` (+ ``_ci_low`` / ``_ci_high``), ``tn``,
        ``fp``, ``fn``, ``tp`` (first target), ``ece``, ``brier``.

    Raises:
        ValueError: If ``y_test`` or ``y_val`` holds a single class, lengths differ, or
            ``s_test`` is not in [0, 1].
    """
    y, s = _labels_scores(y_test, s_test, both_classes=True)
    _as_probabilities(s, "s_test")
    groups = np.asarray(groups_test)
    _check_lengths(y_test=y, s_test=s, groups_test=groups)
    if not specificities:
        raise ValueError("specificities must not be empty")
    report: dict[str, float | int] = {
        "n_cases": len(y),
        "n_positive": int(y.sum()),
        "n_patients": len(np.unique(groups)),
    }
    for name, fn in (("auroc", auroc), ("auprc", auprc)):
        point, low, high = bootstrap_ci(fn, y, s, groups, n_boot=n_boot, seed=seed)
        report |= {name: point, f"{name}_ci_low": low, f"{name}_ci_high": high}
    thresholds = [threshold_at_specificity(y_val, s_val, spec) for spec in specificities]
    for spec, thr in zip(specificities, thresholds, strict=True):
        report |= _operating_point(y, s, groups, thr, _spec_tag(spec), n_boot, seed)
    report |= confusion_at(y, s, thresholds[0])
    report |= {"ece": expected_calibration_error(y, s), "brier": brier(y, s)}
    return report
