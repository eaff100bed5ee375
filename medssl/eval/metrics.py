"""Binary classification metrics for anomaly detection (normal = 0, abnormal = 1).

Scores are "higher means more abnormal"; a case is called abnormal when ``score >= threshold``
(the convention of :func:`sklearn.metrics.roc_curve`). Inputs are 1-D array-likes of equal
length ``(n,)``; outputs are plain Python floats, ints, lists and dicts, ready for JSON and
DVC plots.

Confidence intervals come from a cluster (patient-level) percentile bootstrap
(:mod:`medssl.eval.bootstrap`; Efron & Tibshirani 1993, ch. 13; Field & Welsh 2007): whole
patients are resampled with replacement, so several images of one patient never count as
independent evidence. Two correlated AUROCs are compared with DeLong's test
(:mod:`medssl.eval.delong`; DeLong, DeLong & Clarke-Pearson 1988, fast midrank algorithm of
Sun & Xu 2014) or with a paired patient bootstrap. :mod:`medssl.eval.binary_report` puts
them together. Calibration follows Naeini, Cooper & Hauskrecht (2015) and Guo et al. (2017).

References (DeLong and bootstrap: in their modules):
    Naeini M.P., Cooper G., Hauskrecht M. (2015). Obtaining well calibrated probabilities
        using Bayesian binning. AAAI.
    Guo C., Pleiss G., Sun Y., Weinberger K.Q. (2017). On calibration of modern neural
        networks. ICML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
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


# --------------------------------------------------------------------------- validation


def as_labels(y: ArrayLike, name: str) -> IntArray:
    """Return ``y`` as a 1-D int64 array of 0/1 labels, or raise ValueError."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 (normal) and 1 (abnormal)")
    return arr.astype(np.int64)


def as_scores(s: ArrayLike, name: str) -> FloatArray:
    """Return ``s`` as a 1-D finite float64 array, or raise ValueError."""
    arr = np.asarray(s, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_probabilities(p: ArrayLike, name: str) -> FloatArray:
    """Return ``p`` as a 1-D float64 array of probabilities in [0, 1], or raise ValueError."""
    arr = as_scores(p, name)
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(f"{name} must be probabilities in [0, 1] (got [{arr.min()}, {arr.max()}])")
    return arr


def check_lengths(**arrays: np.ndarray) -> None:
    """Raise ValueError unless all arrays have the same, non-zero length."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"length mismatch: {lengths}")
    if next(iter(lengths.values())) == 0:
        raise ValueError(f"empty input: {lengths}")


def require_both_classes(y: IntArray, name: str) -> None:
    """Raise ValueError unless ``y`` holds at least one 0 and one 1."""
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(
            f"{name} contains only one class ({n_pos} abnormal of {len(y)}); "
            "this metric needs both normal (0) and abnormal (1) cases"
        )


def labels_scores(y: ArrayLike, s: ArrayLike, *, both_classes: bool) -> tuple[IntArray, FloatArray]:
    """Validate a (labels, scores) pair of shape ``(n,)`` each."""
    y_arr, s_arr = as_labels(y, "y_true"), as_scores(s, "y_score")
    check_lengths(y_true=y_arr, y_score=s_arr)
    if both_classes:
        require_both_classes(y_arr, "y_true")
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
    y, s = as_labels(y_true, "y_true"), as_scores(y_score, "y_score")
    check_lengths(patient_ids=ids, y_true=y, y_score=s)
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
    y, s = labels_scores(y_true, y_score, both_classes=True)
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
    y, s = labels_scores(y_true, y_score, both_classes=True)
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
    y, s = labels_scores(y_val, s_val, both_classes=True)
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
    y, s = labels_scores(y_true, y_score, both_classes=False)
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
    y, s = labels_scores(y_true, y_score, both_classes=True)
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
    y, p = as_labels(y_true, "y_true"), as_probabilities(y_prob, "y_prob")
    check_lengths(y_true=y, y_prob=p)
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
    y, p = as_labels(y_true, "y_true"), as_probabilities(y_prob, "y_prob")
    check_lengths(y_true=y, y_prob=p)
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
    y, p = as_labels(y_true, "y_true"), as_probabilities(y_prob, "y_prob")
    check_lengths(y_true=y, y_prob=p)
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
    y, s = labels_scores(y_true, y_score, both_classes=True)
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
    y, s = labels_scores(y_true, y_score, both_classes=True)
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
