"""Cluster (patient-level) percentile bootstrap CIs and the paired bootstrap test.

Whole patients are resampled with replacement, so several images of one patient never count
as independent evidence (Efron & Tibshirani 1993, ch. 13; Field & Welsh 2007); AUROC and
AUPRC of all resamples come from per-patient count tables at once.

References:
    Efron B., Tibshirani R.J. (1993). An Introduction to the Bootstrap. Chapman & Hall.
    Field C.A., Welsh A.H. (2007). Bootstrapping clustered data. JRSS-B 69(3):369-390.
    Robin X. et al. (2011). pROC: an open-source package for R and S+ to analyze and compare
        ROC curves. BMC Bioinformatics 12:77 (bootstrap test for paired AUROCs).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse, stats

from medssl.eval.metrics import (
    FloatArray,
    IntArray,
    MetricFn,
    as_scores,
    auprc,
    auroc,
    check_lengths,
    labels_scores,
)

_BOOT_CELLS_PER_BATCH = 1 << 22  # bootstrap rows are drawn in batches of about this many cells
_MAX_SKIPPED_FRACTION = 0.1  # warn when more single-class resamples than this are skipped


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
    check_lengths(y_true=y, y_score=s, groups=grp)
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
    y, s = labels_scores(y_true, y_score, both_classes=True)
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
    y, a = labels_scores(y_true, s1, both_classes=True)
    b = as_scores(s2, "s2")
    check_lengths(y_true=y, s1=a, s2=b)
    diff = _bootstrap_stats(metric_fn, y, a, groups, n_boot, seed) - _bootstrap_stats(
        metric_fn, y, b, groups, n_boot, seed
    )
    diff = _valid(diff, "paired_bootstrap_pvalue")
    observed = float(metric_fn(y, a) - metric_fn(y, b))
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    if sd <= 1e-15:
        return 1.0 if abs(observed) < 1e-12 else 0.0
    return float(2.0 * stats.norm.sf(abs(observed) / sd))
