"""One test report: point metrics, patient-level CIs, operating points frozen on validation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from medssl.eval.bootstrap import bootstrap_ci
from medssl.eval.metrics import (
    FloatArray,
    IntArray,
    MetricFn,
    as_probabilities,
    auprc,
    auroc,
    brier,
    check_lengths,
    confusion_at,
    expected_calibration_error,
    labels_scores,
    sensitivity_specificity_at,
    threshold_at_specificity,
)


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
    y, s = labels_scores(y_test, s_test, both_classes=True)
    as_probabilities(s, "s_test")
    groups = np.asarray(groups_test)
    check_lengths(y_test=y, s_test=s, groups_test=groups)
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
