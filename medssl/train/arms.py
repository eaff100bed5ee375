"""Run every mode of one arm on one label budget and score validation and test images.

Arms and modes (:data:`medssl.train.finetune.ARM_MODES`):

* ``ssl`` / ``scratch`` (pretrained / random encoder): ``linear`` (logistic probe on frozen
  features), ``full`` (fine-tuning, early-stopped on validation AUROC), ``knn`` (normal-only
  memory bank, no abnormal label used for ranking);
* ``pixels``: ``logistic`` and ``knn`` on downsampled raw pixels.

Every mode returns abnormal-class probabilities for the scored images (kNN distances are
Platt-scaled on validation) plus its raw score, so evaluation can report every mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose
from sklearn.metrics import roc_auc_score

from medssl.eval.anomaly import build_memory_bank, knn_scores, platt_fit
from medssl.train.finetune import (
    ARM_MODES,
    Classifier,
    TrainConfig,
    build_classifier,
    embed,
    predict,
    train_classifier,
)
from medssl.train.flips import flip_views
from medssl.train.pixels import pixel_features
from medssl.train.probe import Probe, fit_probe

#: Modes fitted on frozen features (``full`` trains the network).
FROZEN_MODES = frozenset({"linear", "logistic", "knn"})


@dataclass(frozen=True)
class ArmConfig:
    """Everything a mode needs besides the data (``finetune`` section of params.yaml).

    Attributes:
        encoder: encoder name (:data:`medssl.models.encoders.ENCODERS`).
        spatial_dims: 2 or 3.
        small_input: small-image stem.
        train: full fine-tuning settings.
        probe_c: candidate inverse regularisation strengths of logistic probes.
        knn_k: neighbours averaged by the kNN score.
        knn_bank: memory-bank coreset cap (0: no cap).
        pixel_size: edge length of the ``pixels`` arm's downsampled images.
        lp_ft: start full fine-tuning from the fitted linear probe as the head (LP-FT,
            Kumar et al., ICLR 2022), so early steps do not distort the features with
            gradients from a random head.
        feature_flips: frozen features averaged over each image's mirror images
            (:mod:`medssl.train.flips`); full fine-tuning is unchanged.
    """

    encoder: str
    spatial_dims: int
    small_input: bool
    train: TrainConfig
    probe_c: tuple[float, ...]
    knn_k: int
    knn_bank: int
    pixel_size: int
    lp_ft: bool = False
    feature_flips: bool = False


@dataclass(frozen=True)
class Labelled:
    """Images and labels of the budget's training set and of the scored (val + test) set.

    Attributes:
        x_train: ``(N, 1, *spatial)`` labelled training images of the budget.
        y_train: ``(N,)`` labels.
        x_scored: ``(M, 1, *spatial)`` validation and test images.
        y_scored: ``(M,)`` labels.
        is_val: ``(M,)`` True for validation images.
    """

    x_train: torch.Tensor
    y_train: np.ndarray
    x_scored: torch.Tensor
    y_scored: np.ndarray
    is_val: np.ndarray


@dataclass(frozen=True)
class FrozenFeatures:
    """Frozen features of the labelled (``N``) and scored (``M``) images.

    Attributes:
        modes: ``((N, D), (M, D))`` float64, what the frozen-feature modes fit and score
            (flip-averaged with ``feature_flips``).
        lp_ft: ``((N, D), (M, D))`` of the images alone, what LP-FT's probe is fitted on:
            full fine-tuning sees one image at a time (the same arrays as ``modes``
            without ``feature_flips``).
    """

    modes: tuple[np.ndarray, np.ndarray]
    lp_ft: tuple[np.ndarray, np.ndarray]

    @property
    def shared(self) -> bool:
        """Whether the modes' features are LP-FT's (so a ``linear`` probe serves LP-FT)."""
        return self.modes is self.lp_ft


@dataclass
class ModeOutput:
    """Scores of one mode on the scored images.

    Attributes:
        prob: ``(M,)`` abnormal-class probabilities.
        raw: ``(M,)`` raw scores (probabilities, or kNN distances before Platt scaling).
        info: JSON-ready facts (chosen ``C``, best step, validation AUROC, bank size, ...).
        state: weights worth keeping (fine-tuned classifier ``state_dict``), if any.
    """

    prob: np.ndarray
    raw: np.ndarray
    info: dict[str, Any]
    state: dict[str, torch.Tensor] | None = None


def check_modes(arm: str, modes: Sequence[str]) -> None:
    """Raise ValueError unless ``modes`` is a non-empty, duplicate-free subset of the arm's."""
    if arm not in ARM_MODES:
        raise ValueError(f"finetune.arms: unknown arm {arm!r}; choose from {sorted(ARM_MODES)}")
    bad = [m for m in modes if m not in ARM_MODES[arm]]
    if not modes or bad or len(set(modes)) != len(modes):
        raise ValueError(
            f"finetune.modes.{arm} must list distinct modes of {list(ARM_MODES[arm])}, "
            f"got {list(modes)}"
        )


def check_arm(arm: str, modes: Sequence[str], init: dict[str, torch.Tensor] | None) -> None:
    """:func:`check_modes`, and pretrained weights for the ``ssl`` arm and no other."""
    check_modes(arm, modes)
    if (arm == "ssl") != (init is not None):
        raise ValueError("the ssl arm needs the pretrained encoder; other arms must not get it")


def _probe_mode(
    f_train: np.ndarray, f_scored: np.ndarray, data: Labelled, cfg: ArmConfig
) -> ModeOutput:
    probe = fit_probe(
        f_train, data.y_train, f_scored[data.is_val], data.y_scored[data.is_val], cfg.probe_c
    )
    prob = probe.predict(f_scored)
    return ModeOutput(
        prob, prob, {"c": probe.c, "val_auroc": probe.val_auroc, "probe": probe.to_json()}
    )


def _knn_mode(
    f_train: np.ndarray, f_scored: np.ndarray, data: Labelled, cfg: ArmConfig, seed: int
) -> ModeOutput:
    bank = build_memory_bank(f_train, data.y_train, cfg.knn_bank, seed)
    raw = knn_scores(bank, f_scored, cfg.knn_k)
    y_val = data.y_scored[data.is_val]
    platt = platt_fit(raw[data.is_val], y_val)
    info = {
        "val_auroc": float(roc_auc_score(y_val, raw[data.is_val])),
        "bank_size": len(bank),
        "k": min(cfg.knn_k, len(bank)),
        "platt": vars(platt),
    }
    return ModeOutput(platt.apply(raw), raw, info)


def set_probe_head(model: Classifier, probe: Probe) -> None:
    """Set the linear head to the probe: ``w = coef / scale``, ``b = b0 - w . mean``."""
    weight = probe.coef / probe.scale
    with torch.no_grad():
        model.head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32).view(1, -1))
        model.head.bias.fill_(float(probe.intercept - weight @ probe.mean))


def full_start(
    cfg: ArmConfig, init: dict[str, torch.Tensor] | None, seed: int, probe: Probe | None
) -> tuple[Classifier, TrainConfig]:
    """The classifier full fine-tuning starts from, and its optimisation settings.

    Args:
        cfg: settings.
        init: pretrained encoder ``state_dict``, or None for a seeded random encoder (which
            then learns at the full rate: ``encoder_lr_scale`` 1).
        seed: seed of the random initialisation.
        probe: LP-FT: the fitted probe that becomes the head, or None.

    Returns:
        The classifier and the :class:`TrainConfig` to train it with.
    """
    model = build_classifier(cfg.encoder, cfg.spatial_dims, cfg.small_input, init, seed)
    if probe is not None:
        set_probe_head(model, probe)
    train = cfg.train
    if init is None:
        train = TrainConfig(**{**vars(train), "encoder_lr_scale": 1.0})
    return model, train


def _full_mode(
    init: dict[str, torch.Tensor] | None,
    data: Labelled,
    cfg: ArmConfig,
    seed: int,
    augment: Compose | None,
    probe: Probe | None = None,
) -> ModeOutput:
    model, train = full_start(cfg, init, seed, probe)
    result = train_classifier(
        model,
        data.x_train,
        torch.tensor(data.y_train),
        data.x_scored[torch.from_numpy(np.asarray(data.is_val, dtype=bool).copy())],
        data.y_scored[data.is_val],
        train,
        seed=seed,
        augment=augment,
    )
    prob = predict(result.model, data.x_scored)
    info = {
        "best_step": result.best_step,
        "val_auroc": result.val_auroc,
        "lp_ft": probe is not None,
        "encoder_lr_scale": train.encoder_lr_scale,
        "history": result.history,
    }
    return ModeOutput(prob, prob, info, result.model.state_dict())


def frozen_features(
    arm: str,
    modes: Sequence[str],
    cfg: ArmConfig,
    init: dict[str, torch.Tensor] | None,
    seed: int,
    x_train: torch.Tensor,
    x_scored: torch.Tensor,
) -> FrozenFeatures | None:
    """Features of the frozen-feature modes: downsampled pixels, or the encoder's embedding.

    Args:
        arm: ``ssl``, ``scratch`` or ``pixels``.
        modes: the modes to run (no features when only ``full`` without LP-FT runs).
        cfg: settings.
        init: pretrained encoder ``state_dict`` (``ssl``), else a seeded random encoder.
        seed: seed of that random encoder.
        x_train: ``(N, 1, *spatial)`` images.
        x_scored: ``(M, 1, *spatial)`` images.

    Returns:
        The features, or None.
    """
    features: Callable[[torch.Tensor], np.ndarray]
    if arm == "pixels":
        features = partial(pixel_features, size=cfg.pixel_size)
    elif set(modes) & FROZEN_MODES or ("full" in modes and cfg.lp_ft):
        encoder = build_classifier(
            cfg.encoder, cfg.spatial_dims, cfg.small_input, init, seed
        ).encoder
        features = partial(embed, encoder)
    else:
        return None
    if not cfg.feature_flips or not set(modes) & FROZEN_MODES:
        plain = features(x_train), features(x_scored)  # LP-FT alone needs no flips
        return FrozenFeatures(modes=plain, lp_ft=plain)
    train, scored = flip_views(features, x_train), flip_views(features, x_scored)
    return FrozenFeatures(
        modes=(np.mean(train, axis=0), np.mean(scored, axis=0)), lp_ft=(train[0], scored[0])
    )


def run_arm(
    arm: str,
    modes: Sequence[str],
    data: Labelled,
    cfg: ArmConfig,
    *,
    seed: int,
    init: dict[str, torch.Tensor] | None = None,
    augment: Compose | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, ModeOutput]:
    """Run the requested modes of one arm.

    Args:
        arm: ``ssl``, ``scratch`` or ``pixels``.
        modes: subset of ``ARM_MODES[arm]``.
        data: training budget and scored images.
        cfg: settings.
        seed: seed of initialisation, batches, augmentation and coresets.
        init: pretrained encoder ``state_dict`` (``ssl`` arm only).
        augment: random view transform for full fine-tuning.
        log: progress printer.

    Returns:
        ``mode -> ModeOutput``.
    """
    check_arm(arm, modes, init)
    feats = frozen_features(arm, modes, cfg, init, seed, data.x_train, data.x_scored)
    out: dict[str, ModeOutput] = {}
    for mode in sorted(modes, key=lambda m: m == "full"):  # probes first: LP-FT reuses one
        if mode == "full":
            probe = None
            if cfg.lp_ft and feats is not None:
                fitted = out.get("linear") if feats.shared else None
                fitted = fitted or _probe_mode(*feats.lp_ft, data, cfg)
                probe = Probe.from_json(fitted.info["probe"])
            out[mode] = _full_mode(init, data, cfg, seed, augment, probe)
        elif mode in ("linear", "logistic"):
            assert feats is not None
            out[mode] = _probe_mode(*feats.modes, data, cfg)
        else:
            assert feats is not None
            out[mode] = _knn_mode(*feats.modes, data, cfg, seed)
        val = out[mode].info.get("val_auroc")
        log(f"{arm}/{mode}: " + (f"validation AUROC {val:.3f}" if val is not None else "done"))
    return {m: out[m] for m in modes}
