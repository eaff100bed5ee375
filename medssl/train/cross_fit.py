"""Cross-fitted choices inside a label budget, then a refit on the whole budget.

With a few dozen labels, a single held-out part of the budget (a quarter: ~11 labels at
42) ranks modes and settings coarsely (validation AUROC ties at 1.0) and its labels are
never fitted on. Cross-fitting deals the budget into folds by patient
(:func:`medssl.data.splits.budget_folds`); each fold is scored by a model fitted on the
others, so every label of the budget is both fitted on and validated on, once each
(K-fold cross-validation by group; Hastie et al., *The Elements of Statistical Learning*,
2nd ed., section 7.10). Every choice (probe ``C``, fine-tuning length, kNN Platt scaling,
operating thresholds, the headline mode) is made on the pooled out-of-fold scores, and the
chosen model is refitted on the whole budget to score the test split. Validation rows of
``scores.csv`` hold the out-of-fold scores; test rows the refitted model's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import Compose
from sklearn.metrics import roc_auc_score

from medssl.eval.anomaly import build_memory_bank, knn_scores, platt_fit
from medssl.train.arms import (
    ArmConfig,
    ModeOutput,
    check_arm,
    frozen_features,
    full_start,
)
from medssl.train.finetune import TrainResult, predict, train_classifier, train_steps
from medssl.train.probe import Probe, cross_fit_probe, fit_probe_at


@dataclass(frozen=True)
class Folded:
    """A budget dealt into folds, and the test images.

    Attributes:
        x: ``(N, 1, *spatial)`` the budget's images.
        y: ``(N,)`` their labels.
        folds: ``(N,)`` fold index of each image (0 .. K-1).
        x_test: ``(M, 1, *spatial)`` test images.
    """

    x: torch.Tensor
    y: np.ndarray
    folds: np.ndarray
    x_test: torch.Tensor

    def masks(self) -> list[np.ndarray]:
        """``(N,)`` boolean mask of each fold, in fold order."""
        return [self.folds == f for f in np.unique(self.folds)]


def _probe_mode(fb: np.ndarray, ft: np.ndarray, data: Folded, cfg: ArmConfig) -> ModeOutput:
    probe, oof = cross_fit_probe(fb, data.y, data.folds, cfg.probe_c)
    prob = np.concatenate([oof, probe.predict(ft)])
    info = {"c": probe.c, "val_auroc": probe.val_auroc, "probe": probe.to_json()}
    return ModeOutput(prob, prob, info)


def _knn_mode(
    fb: np.ndarray, ft: np.ndarray, data: Folded, cfg: ArmConfig, seed: int
) -> ModeOutput:
    """Out-of-fold kNN distances (bank of the other folds' normals); test: every normal."""
    oof = np.empty(len(data.y), dtype=np.float64)
    for m in data.masks():
        bank = build_memory_bank(fb[~m], data.y[~m], cfg.knn_bank, seed)
        oof[m] = knn_scores(bank, fb[m], cfg.knn_k)
    bank = build_memory_bank(fb, data.y, cfg.knn_bank, seed)
    raw = np.concatenate([oof, knn_scores(bank, ft, cfg.knn_k)])
    platt = platt_fit(oof, data.y)
    info = {
        "val_auroc": float(roc_auc_score(data.y, oof)),
        "bank_size": len(bank),
        "k": min(cfg.knn_k, len(bank)),
        "platt": vars(platt),
    }
    return ModeOutput(platt.apply(raw), raw, info)


def pooled_curve(
    results: Sequence[TrainResult], masks: Sequence[np.ndarray], y: np.ndarray
) -> tuple[list[tuple[int, float]], dict[int, np.ndarray]]:
    """Pooled out-of-fold AUROC at every checked step of the folds' fine-tuning runs.

    A fold that stopped early (patience) keeps its last checked predictions at later steps.

    Args:
        results: one :func:`medssl.train.finetune.train_classifier` result per fold, with
            ``predictions`` kept.
        masks: ``(N,)`` boolean mask of each fold.
        y: ``(N,)`` labels of the budget.

    Returns:
        ``[(step, AUROC)]`` in step order and step -> ``(N,)`` out-of-fold probabilities.
    """
    steps = sorted({s for r in results for s in r.predictions})
    curve: list[tuple[int, float]] = []
    oof: dict[int, np.ndarray] = {}
    for step in steps:
        pooled = np.empty(len(y), dtype=np.float64)
        for r, m in zip(results, masks, strict=True):
            pooled[m] = r.predictions[max(s for s in r.predictions if s <= step)]
        oof[step] = pooled
        curve.append((step, float(roc_auc_score(y, pooled))))
    return curve, oof


def _full_mode(
    init: dict[str, torch.Tensor] | None,
    data: Folded,
    cfg: ArmConfig,
    seed: int,
    augment: Compose | None,
    probes: tuple[list[Probe], Probe] | None,
) -> ModeOutput:
    """Fine-tune per fold, choose the length on pooled AUROC, refit that long on the budget."""
    masks = data.masks()
    results = []
    for f, m in enumerate(masks):
        model, train = full_start(cfg, init, seed, None if probes is None else probes[0][f])
        fit, val = torch.from_numpy(~m), torch.from_numpy(m)
        results.append(
            train_classifier(
                model,
                data.x[fit],
                torch.tensor(data.y[~m]),
                data.x[val],
                data.y[m],
                train,
                seed=seed,
                augment=augment,
                keep_predictions=True,
            )
        )
    curve, oof = pooled_curve(results, masks, data.y)
    best_step, best_auroc = max(curve, key=lambda c: (c[1], -c[0]))
    model, train = full_start(cfg, init, seed, None if probes is None else probes[1])
    model = train_steps(
        model, data.x, torch.tensor(data.y), train, steps=best_step, seed=seed, augment=augment
    )
    prob = np.concatenate([oof[best_step], predict(model, data.x_test)])
    info = {
        "best_step": best_step,
        "val_auroc": best_auroc,
        "lp_ft": probes is not None,
        "encoder_lr_scale": train.encoder_lr_scale,
        "history": curve,
        "fold_best_steps": [r.best_step for r in results],
    }
    return ModeOutput(prob, prob, info, model.state_dict())


def cross_fit_arm(
    arm: str,
    modes: Sequence[str],
    data: Folded,
    cfg: ArmConfig,
    *,
    seed: int,
    init: dict[str, torch.Tensor] | None = None,
    augment: Compose | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, ModeOutput]:
    """Run the requested modes of one arm, cross-fitted on the budget's folds.

    Args:
        arm: ``ssl``, ``scratch`` or ``pixels``.
        modes: subset of ``ARM_MODES[arm]``.
        data: the folded budget and the test images.
        cfg: settings.
        seed: seed of initialisation, batches, augmentation and coresets.
        init: pretrained encoder ``state_dict`` (``ssl`` arm only).
        augment: random view transform for full fine-tuning.
        log: progress printer.

    Returns:
        ``mode -> ModeOutput`` whose scores are the budget's ``N`` out-of-fold scores
        followed by the ``M`` test scores of the refitted model.
    """
    check_arm(arm, modes, init)
    feats = frozen_features(arm, modes, cfg, init, seed, data.x, data.x_test)
    out: dict[str, ModeOutput] = {}
    for mode in sorted(modes, key=lambda m: m == "full"):  # probes first: LP-FT reuses one
        if mode == "full":
            probes = None
            if cfg.lp_ft and feats is not None:
                fitted = out.get("linear") if feats.shared else None
                fitted = fitted or _probe_mode(*feats.lp_ft, data, cfg)
                whole = Probe.from_json(fitted.info["probe"])
                f_fit = feats.lp_ft[0]
                per_fold = [fit_probe_at(f_fit[~m], data.y[~m], whole.c) for m in data.masks()]
                probes = (per_fold, whole)
            out[mode] = _full_mode(init, data, cfg, seed, augment, probes)
        elif mode in ("linear", "logistic"):
            assert feats is not None
            out[mode] = _probe_mode(*feats.modes, data, cfg)
        else:
            assert feats is not None
            out[mode] = _knn_mode(*feats.modes, data, cfg, seed)
        log(f"{arm}/{mode}: out-of-fold validation AUROC {out[mode].info['val_auroc']:.3f}")
    return {m: out[m] for m in modes}
