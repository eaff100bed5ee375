"""L2-regularised logistic regression on fixed features (linear probe, pixel baseline).

The standard linear-evaluation protocol for self-supervised features (Chen et al. 2020,
SimCLR, section 4; Kolesnikov et al. 2019): features are frozen, standardised, and a
logistic regression is fitted; its inverse regularisation strength ``C`` is chosen on the
validation split only, by AUROC (ties: the smaller ``C``, i.e. the simpler model).
:func:`cross_fit_probe` chooses ``C`` on out-of-fold scores instead and refits on every label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import PredefinedSplit, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class Probe:
    """A fitted probe: ``p = sigmoid(((x - mean) / scale) @ coef + intercept)``.

    Attributes:
        mean: ``(D,)`` feature means on the training labels.
        scale: ``(D,)`` feature standard deviations (1 where constant).
        coef: ``(D,)`` weights in standardised units.
        intercept: bias.
        c: chosen inverse regularisation strength.
        val_auroc: validation AUROC of the chosen ``c``.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    c: float
    val_auroc: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Abnormal-class probabilities ``(N,)`` for ``(N, D)`` features."""
        z = ((np.asarray(features, dtype=np.float64) - self.mean) / self.scale) @ self.coef
        return np.asarray(1.0 / (1.0 + np.exp(-(z + self.intercept))), dtype=np.float64)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Probe:
        """Inverse of :meth:`to_json`."""
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
            c=float(data["c"]),
            val_auroc=float(data["val_auroc"]),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (lists of floats) to store beside the run."""
        return {
            "c": self.c,
            "val_auroc": self.val_auroc,
            "intercept": self.intercept,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
        }


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    c_grid: Sequence[float],
) -> Probe:
    """Fit one logistic regression per ``C`` and keep the best on validation AUROC.

    Args:
        x_train: ``(N, D)`` training features.
        y_train: ``(N,)`` labels in {0, 1}, both classes present.
        x_val: ``(M, D)`` validation features.
        y_val: ``(M,)`` labels in {0, 1}, both classes present.
        c_grid: candidate ``C`` values (> 0).

    Returns:
        The chosen :class:`Probe`.

    Raises:
        ValueError: empty or non-positive grid, or a single class in train or validation.
    """
    _check_grid(c_grid)
    for name, y in (("training", y_train), ("validation", y_val)):
        if len(np.unique(y)) != 2:
            raise ValueError(f"the probe needs both classes in the {name} labels")
    scaler = StandardScaler().fit(x_train)
    z_train, z_val = scaler.transform(x_train), scaler.transform(x_val)
    best: Probe | None = None
    for c in sorted(float(v) for v in c_grid):
        model = LogisticRegression(C=c, max_iter=5000).fit(z_train, y_train)
        score = float(roc_auc_score(y_val, model.decision_function(z_val)))
        if best is None or score > best.val_auroc:
            best = _as_probe(scaler, model, c, score)
    assert best is not None
    return best


def _check_grid(c_grid: Sequence[float]) -> None:
    if not c_grid or min(c_grid) <= 0:
        raise ValueError(f"finetune.probe_c must be a non-empty list of values > 0, got {c_grid}")


def fit_probe_at(x: np.ndarray, y: np.ndarray, c: float, val_auroc: float = float("nan")) -> Probe:
    """One standardised logistic regression at ``C = c`` on every row of ``x`` (``(N, D)``)."""
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), y)
    return _as_probe(scaler, model, c, val_auroc)


def _as_probe(
    scaler: StandardScaler, model: LogisticRegression, c: float, val_auroc: float
) -> Probe:
    """A fitted scaler and logistic regression as a :class:`Probe`."""
    return Probe(
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        coef=model.coef_[0].astype(np.float64),
        intercept=float(model.intercept_[0]),
        c=c,
        val_auroc=val_auroc,
    )


def cross_fit_probe(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, c_grid: Sequence[float]
) -> tuple[Probe, np.ndarray]:
    """Choose ``C`` on pooled out-of-fold AUROC, then refit on every label.

    Each fold is scored by a probe (scaler included) fitted on the other folds
    (scikit-learn ``cross_val_predict`` with a ``PredefinedSplit``); the ``C`` whose pooled
    out-of-fold probabilities rank best wins (ties: the smaller ``C``).

    Args:
        x: ``(N, D)`` features of the budget.
        y: ``(N,)`` labels in {0, 1}.
        folds: ``(N,)`` fold index of each row (every fold and its complement hold both
            classes).
        c_grid: candidate ``C`` values (> 0).

    Returns:
        The probe refitted on all ``N`` rows at the chosen ``C`` (its ``val_auroc`` is the
        out-of-fold one) and the ``(N,)`` out-of-fold probabilities at that ``C``.
    """
    _check_grid(c_grid)
    cv = PredefinedSplit(np.asarray(folds))
    best: tuple[float, float, np.ndarray] | None = None
    for c in sorted(float(v) for v in c_grid):
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        oof = cross_val_predict(pipe, x, y, cv=cv, method="predict_proba")[:, 1]
        score = float(roc_auc_score(y, oof))
        if best is None or score > best[0]:
            best = (score, c, np.asarray(oof, dtype=np.float64))
    assert best is not None
    return fit_probe_at(x, y, best[1], best[0]), best[2]
