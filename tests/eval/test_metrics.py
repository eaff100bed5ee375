"""Tests for medssl.eval.metrics against reference computations on seeded random data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from medssl.eval import binary_report as R
from medssl.eval import bootstrap as B
from medssl.eval import delong as D
from medssl.eval import metrics as M


def _scores(n: int, seed: int, shift: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and scores (n,) with signal ``shift``; scores rounded to create ties."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.round(rng.normal(size=n) + shift * y, 1)


def _delong_reference(y: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[float, ...]:
    """Slow O(m n) DeLong et al. (1988) test from the Mann-Whitney kernel psi."""

    def components(s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        pos, neg = s[y == 1][:, None], s[y == 0][None, :]
        psi = (pos > neg) + 0.5 * (pos == neg)  # (m, n)
        return float(psi.mean()), psi.mean(axis=1), psi.mean(axis=0)

    def cov(a: np.ndarray, b: np.ndarray) -> float:
        return float(((a - a.mean()) * (b - b.mean())).sum() / (len(a) - 1))

    a1, v10_1, v01_1 = components(s1)
    a2, v10_2, v01_2 = components(s2)
    m, n = len(v10_1), len(v01_1)
    var1 = cov(v10_1, v10_1) / m + cov(v01_1, v01_1) / n
    var2 = cov(v10_2, v10_2) / m + cov(v01_2, v01_2) / n
    cov12 = cov(v10_1, v10_2) / m + cov(v01_1, v01_2) / n
    z = (a1 - a2) / np.sqrt(var1 + var2 - 2 * cov12)
    return a1, a2, var1, var2, cov12, float(2 * stats.norm.sf(abs(z)))


# --------------------------------------------------------------------------- DeLong


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_slow_reference(seed: int) -> None:
    y, s1 = _scores(300, seed)
    s2 = np.round(s1 + np.random.default_rng(seed + 10).normal(scale=0.8, size=len(y)), 1)
    a1, a2, var1, var2, cov12, p_ref = _delong_reference(y, s1, s2)
    aucs, cov = D.delong_auroc_cov(y, np.stack([s1, s2]))
    np.testing.assert_allclose(aucs, [a1, a2], rtol=1e-12)
    np.testing.assert_allclose(cov, [[var1, cov12], [cov12, var2]], rtol=1e-9)
    assert D.delong_pvalue(y, s1, s2) == pytest.approx(p_ref, rel=1e-9)


def test_delong_auroc_equals_sklearn() -> None:
    y, s = _scores(500, 3)
    aucs, _ = D.delong_auroc_cov(y, s)
    assert aucs[0] == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert M.auroc(y, s) == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert M.auprc(y, s) == pytest.approx(average_precision_score(y, s), rel=1e-12)


def test_delong_identical_and_very_different_models() -> None:
    y, s = _scores(400, 4, shift=2.0)
    assert D.delong_pvalue(y, s, s) == 1.0
    noise = np.random.default_rng(0).normal(size=len(y))
    assert D.delong_pvalue(y, s, noise) < 1e-6


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_point_and_narrows_with_more_data() -> None:
    widths = []
    for n in (200, 2000):
        y, s = _scores(n, 5)
        point, low, high = B.bootstrap_ci(M.auroc, y, s, np.arange(n), n_boot=500, seed=0)
        assert point == pytest.approx(roc_auc_score(y, s))
        assert low < point < high
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]  # width ~ 1 / sqrt(n): expect about 0.32


def test_cluster_bootstrap_wider_than_naive_for_duplicated_patients() -> None:
    y_pat, s_pat = _scores(150, 6)
    y, s = np.repeat(y_pat, 5), np.repeat(s_pat, 5)  # 5 identical images per patient
    patients = np.repeat(np.arange(150), 5)
    _, lo_c, hi_c = B.bootstrap_ci(M.auroc, y, s, patients, n_boot=500, seed=1)
    _, lo_n, hi_n = B.bootstrap_ci(M.auroc, y, s, np.arange(len(y)), n_boot=500, seed=1)
    assert (hi_c - lo_c) > 1.6 * (hi_n - lo_n)  # about sqrt(5) = 2.2 expected


@pytest.mark.parametrize("metric", [M.auroc, M.auprc])
def test_vectorised_bootstrap_equals_generic_loop(metric: M.MetricFn) -> None:
    y, s = _scores(300, 7)
    groups = np.random.default_rng(7).integers(0, 80, len(y))

    def generic(yy: np.ndarray, ss: np.ndarray) -> float:  # not in the fast-path dict
        return metric(yy, ss)

    fast = B.bootstrap_ci(metric, y, s, groups, n_boot=300, seed=3)
    slow = B.bootstrap_ci(generic, y, s, groups, n_boot=300, seed=3)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_bootstrap_reproducible_with_seed() -> None:
    y, s = _scores(300, 9)
    groups = np.arange(300) // 2
    first = B.bootstrap_ci(M.auprc, y, s, groups, n_boot=200, seed=42)
    assert B.bootstrap_ci(M.auprc, y, s, groups, n_boot=200, seed=42) == first
    assert B.bootstrap_ci(M.auprc, y, s, groups, n_boot=200, seed=43) != first
    p = B.paired_bootstrap_pvalue(y, s, s[::-1].copy(), groups, n_boot=200, seed=42)
    assert B.paired_bootstrap_pvalue(y, s, s[::-1].copy(), groups, n_boot=200, seed=42) == p


def test_bootstrap_skips_single_class_resamples() -> None:
    y = np.array([0] * 20 + [1])  # one positive: most resamples lose it
    s = np.linspace(0.0, 1.0, 21)
    with pytest.warns(UserWarning, match="single class"):
        point, low, high = B.bootstrap_ci(M.auroc, y, s, np.arange(21), n_boot=200)
    assert point == 1.0 and low == high == 1.0


def test_paired_bootstrap_pvalue_agrees_with_delong() -> None:
    y, s1 = _scores(600, 10)
    s2 = np.round(s1 + np.random.default_rng(11).normal(scale=1.5, size=len(y)), 1)
    p_boot = B.paired_bootstrap_pvalue(y, s1, s2, np.arange(len(y)), n_boot=1000, seed=0)
    p_delong = D.delong_pvalue(y, s1, s2)
    assert p_delong < 0.01 and p_boot < 0.01
    assert np.log10(p_boot) == pytest.approx(np.log10(p_delong), abs=1.0)
    assert B.paired_bootstrap_pvalue(y, s1, s1, np.arange(len(y)), n_boot=50) == 1.0


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 0.99])
def test_threshold_at_specificity_is_lowest_reaching_target(target: float) -> None:
    y, s = _scores(400, 12)
    t = M.threshold_at_specificity(y, s, target)
    _, spec = M.sensitivity_specificity_at(y, s, t)
    assert spec >= target
    lower = s[s < t]
    if lower.size:  # the next lower candidate threshold misses the target
        assert M.sensitivity_specificity_at(y, s, lower.max())[1] < target


def test_threshold_at_specificity_one_can_be_inf() -> None:
    y = np.array([0, 1, 0, 1])
    s = np.array([0.9, 0.8, 0.1, 0.2])  # top score is a normal case
    assert M.threshold_at_specificity(y, s, 1.0) == np.inf
    with pytest.raises(ValueError, match="specificity"):
        M.threshold_at_specificity(y, s, 0.0)


def test_sensitivity_specificity_and_confusion_match_sklearn() -> None:
    y, s = _scores(300, 13)
    for t in (-0.5, 0.3, 1.2):
        pred = (s >= t).astype(int)
        tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
        assert M.confusion_at(y, s, t) == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
        sens, spec = M.sensitivity_specificity_at(y, s, t)
        assert sens == pytest.approx(tp / (tp + fn)) and spec == pytest.approx(tn / (tn + fp))


# --------------------------------------------------------------------------- calibration


def test_ece_small_when_calibrated_large_when_not() -> None:
    rng = np.random.default_rng(14)
    p = rng.random(20000)
    y = rng.binomial(1, p)
    assert M.expected_calibration_error(y, p) < 0.02
    overconfident = np.clip(0.5 + 2.0 * (p - 0.5), 0.0, 1.0)
    assert M.expected_calibration_error(y, overconfident) > 0.1
    y_skewed = rng.binomial(1, p**3)  # true risk far below the stated p
    assert M.expected_calibration_error(y_skewed, p) > 0.2


def test_ece_equals_weighted_gap_of_calibration_points_and_brier() -> None:
    rng = np.random.default_rng(15)
    p = rng.beta(0.5, 2.0, 500)  # leaves the top bins empty
    y = rng.binomial(1, np.sqrt(p))
    points = M.calibration_curve_points(y, p, n_bins=10)
    assert sum(pt["count"] for pt in points) == len(y)
    expected = sum(pt["count"] * abs(pt["prob_true"] - pt["prob_pred"]) for pt in points)
    assert M.expected_calibration_error(y, p, 10) == pytest.approx(expected / len(y))
    assert M.brier(y, p) == pytest.approx(np.mean((p - y) ** 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.brier(y, p + 1.0)


# --------------------------------------------------------------------------- curves


def test_roc_and_pr_points_are_thinned_and_json_ready() -> None:
    rng = np.random.default_rng(16)
    y, s = rng.integers(0, 2, 3000), rng.random(3000)
    roc, pr = M.roc_points(y, s), M.pr_points(y, s)
    assert 2 < len(roc) <= 200 and 2 < len(pr) <= 200
    assert (roc[0]["fpr"], roc[0]["tpr"], roc[-1]["fpr"], roc[-1]["tpr"]) == (0.0, 0.0, 1.0, 1.0)
    assert pr[0]["recall"] == 1.0 and (pr[-1]["recall"], pr[-1]["precision"]) == (0.0, 1.0)
    assert np.all(np.diff([pt["fpr"] for pt in roc]) >= 0)
    json.loads(json.dumps(roc, allow_nan=False))  # no inf thresholds


# --------------------------------------------------------------------------- aggregation


def test_aggregate_by_patient() -> None:
    ids = np.array(["b", "a", "b", "c", "a"])
    y = np.array([0, 0, 1, 0, 0])
    s = np.array([0.2, 0.4, 0.6, 0.1, 0.8])
    patients, y_pat, s_max = M.aggregate_by_patient(ids, y, s)
    assert patients.tolist() == ["a", "b", "c"]
    assert y_pat.tolist() == [0, 1, 0]
    np.testing.assert_allclose(s_max, [0.8, 0.6, 0.1])
    np.testing.assert_allclose(M.aggregate_by_patient(ids, y, s, how="mean")[2], [0.6, 0.4, 0.1])
    with pytest.raises(ValueError, match="length mismatch"):
        M.aggregate_by_patient(ids[:-1], y, s)
    with pytest.raises(ValueError, match="how"):
        M.aggregate_by_patient(ids, y, s, how="median")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- errors and report


def test_one_class_input_raises() -> None:
    y, s = np.zeros(10, dtype=int), np.linspace(0, 1, 10)
    for call in (
        lambda: M.auroc(y, s),
        lambda: M.auprc(y, s),
        lambda: D.delong_pvalue(y, s, s),
        lambda: B.bootstrap_ci(M.auroc, y, s, np.arange(10)),
        lambda: M.threshold_at_specificity(y, s, 0.9),
        lambda: R.binary_report(y, s, np.arange(10), np.array([0, 1]), np.array([0.1, 0.9])),
    ):
        with pytest.raises(ValueError, match="only one class"):
            call()
    with pytest.raises(ValueError, match="only 0"):
        M.auroc(np.array([0, 2, 1]), np.array([0.1, 0.2, 0.3]))


def test_binary_report() -> None:
    rng = np.random.default_rng(17)
    p_val, p_test = rng.random(400), rng.random(600)
    y_val, y_test = rng.binomial(1, p_val), rng.binomial(1, p_test)
    groups = np.arange(600) // 2
    report = R.binary_report(y_test, p_test, groups, y_val, p_val, n_boot=200, seed=0)
    assert report["n_cases"] == 600 and report["n_patients"] == 300
    assert report["n_positive"] == int(y_test.sum())
    assert report["auroc"] == pytest.approx(roc_auc_score(y_test, p_test))
    assert report["auprc"] == pytest.approx(average_precision_score(y_test, p_test))
    for tag, target in (("spec90", 0.90), ("spec95", 0.95)):
        t = M.threshold_at_specificity(y_val, p_val, target)
        assert report[f"threshold_{tag}"] == t
        sens, spec = M.sensitivity_specificity_at(y_test, p_test, t)
        assert (report[f"sens_at_{tag}"], report[f"spec_at_{tag}"]) == (sens, spec)
        for name in ("auroc", "auprc", f"sens_at_{tag}", f"spec_at_{tag}"):
            assert report[f"{name}_ci_low"] <= report[name] <= report[f"{name}_ci_high"]
    counts = M.confusion_at(y_test, p_test, report["threshold_spec90"])
    assert {k: report[k] for k in ("tn", "fp", "fn", "tp")} == counts
    assert report["ece"] == M.expected_calibration_error(y_test, p_test)
    assert report["brier"] == M.brier(y_test, p_test)
    assert all(isinstance(v, int | float) for v in report.values())
    json.dumps(report, allow_nan=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        R.binary_report(y_test, p_test * 3, groups, y_val, p_val, n_boot=10)
