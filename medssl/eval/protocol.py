"""Score fine-tuning runs on the test split: one record per arm x budget x seed.

Each run's validation scores freeze the operating thresholds; its test scores give the
metrics (:func:`medssl.eval.metrics.binary_report`), with CIs from a bootstrap that
resamples patients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from medssl.eval.metrics import aggregate_by_patient, binary_report, delong_pvalue, roc_points

AGGREGATIONS = ("none", "max", "mean")


def patient_level(scores: pd.DataFrame, how: str) -> pd.DataFrame:
    """Collapse image scores to one row per patient (``how="none"`` keeps images).

    Args:
        scores: ``patient_key, label, score`` (one split).
        how: ``"none"``, ``"max"`` or ``"mean"``.

    Returns:
        ``patient_key, label, score``.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"patient aggregation must be one of {AGGREGATIONS}, got {how!r}")
    if how == "none":
        return scores[["patient_key", "label", "score"]].reset_index(drop=True)
    patients, y, s = aggregate_by_patient(
        scores["patient_key"].to_numpy(),
        scores["label"].to_numpy(),
        scores["score"].to_numpy(),
        how=how,  # type: ignore[arg-type]
    )
    return pd.DataFrame({"patient_key": patients, "label": y, "score": s})


def score_run(
    run: Mapping[str, Any], scores: pd.DataFrame, *, how: str, n_boot: int, seed: int
) -> dict[str, Any]:
    """Metrics of one run.

    Args:
        run: ``arm, mode, n_labels, seed, budget`` from the run's ``run.json``.
        scores: ``patient_key, split, label, score`` for val and test images.
        how: patient aggregation.
        n_boot: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        A flat, JSON-ready record (non-finite thresholds become ``None``).
    """
    val = patient_level(scores[scores["split"] == "val"], how)
    test = patient_level(scores[scores["split"] == "test"], how)
    report = binary_report(
        test["label"],
        test["score"],
        test["patient_key"],
        val["label"],
        val["score"],
        n_boot=n_boot,
        seed=seed,
    )
    record: dict[str, Any] = {k: run[k] for k in ("arm", "mode", "n_labels", "seed", "budget")}
    record.update({k: (v if math.isfinite(v) else None) for k, v in report.items()})
    return record


def compare_arms(a: pd.DataFrame, b: pd.DataFrame, how: str) -> float:
    """DeLong p-value for two runs scored on the same test cases (e.g. ssl vs scratch)."""
    ta = patient_level(a[a["split"] == "test"], how).sort_values("patient_key", kind="stable")
    tb = patient_level(b[b["split"] == "test"], how).sort_values("patient_key", kind="stable")
    if not np.array_equal(ta["label"].to_numpy(), tb["label"].to_numpy()):
        raise ValueError("runs were not scored on the same test cases")
    return delong_pvalue(ta["label"], ta["score"], tb["score"])


def roc_table(curves: Mapping[str, pd.DataFrame], how: str, grid: int = 101) -> pd.DataFrame:
    """ROC curves of several arms on one false-positive-rate grid (for DVC plots).

    Args:
        curves: ``arm -> scores`` (test split used).
        how: patient aggregation.
        grid: number of FPR points in [0, 1].

    Returns:
        ``fpr`` plus one TPR column per arm.
    """
    fpr = np.linspace(0.0, 1.0, grid)
    table = {"fpr": fpr}
    for arm, scores in curves.items():
        test = patient_level(scores[scores["split"] == "test"], how)
        pts = roc_points(test["label"], test["score"], max_points=10_000)
        x = np.array([p["fpr"] for p in pts])
        y = np.array([p["tpr"] for p in pts])
        table[arm] = np.interp(fpr, x, y)
    return pd.DataFrame(table).round(4)
