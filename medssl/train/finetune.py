"""Few-label supervised fine-tuning of an encoder with a linear head.

``full`` fine-tuning trains encoder and head together, the encoder at a lower learning rate
when it is pretrained (SimCLR's fine-tuning protocol, Chen et al. 2020, appendix B.6), for a
fixed number of steps with early stopping on validation AUROC (the best checkpoint is kept).
Frozen-feature modes (linear probe, kNN) use :func:`embed` and live in
:mod:`medssl.train.probe` and :mod:`medssl.eval.anomaly`.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from monai.transforms import Compose
from monai.utils import set_determinism
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm import tqdm

from medssl.data.dataset import apply_views
from medssl.models.encoders import build_encoder

#: Arm -> the modes it can run. ``ssl``: pretrained encoder; ``scratch``: same network,
#: random init; ``pixels``: downsampled raw pixels (no network).
ARM_MODES: dict[str, tuple[str, ...]] = {
    "ssl": ("linear", "full", "knn"),
    "scratch": ("full", "linear", "knn"),
    "pixels": ("logistic", "knn"),
}


class Classifier(nn.Module):
    """Encoder plus a single-logit linear head: ``(B, 1, *spatial) -> (B,)`` logits."""

    def __init__(self, encoder: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(feature_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.encoder(x))
        return logits.squeeze(1)


def build_classifier(
    encoder_name: str,
    spatial_dims: int,
    small_input: bool,
    init: dict[str, torch.Tensor] | None,
    seed: int = 0,
) -> Classifier:
    """A classifier with pretrained (``init``) or seeded random encoder weights.

    Args:
        encoder_name: key of :data:`medssl.models.encoders.ENCODERS`.
        spatial_dims: 2 or 3.
        small_input: small-image stem.
        init: encoder ``state_dict`` from pretraining, or ``None`` for random init.
        seed: seed of the random initialisation (global RNG state is restored).

    Returns:
        The classifier (head always randomly initialised).
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        encoder, dim = build_encoder(encoder_name, spatial_dims, 1, small_input)
        model = Classifier(encoder, dim)
    if init is not None:
        model.encoder.load_state_dict(init)
    return model


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of full fine-tuning (``finetune`` section of params.yaml).

    Attributes:
        steps: maximum optimiser steps (batches are drawn from seeded permutations).
        batch_size: images per step (capped at the number of labels).
        lr: head learning rate (AdamW).
        encoder_lr_scale: encoder learning rate = ``lr * encoder_lr_scale``.
        weight_decay: AdamW weight decay.
        eval_every: steps between validation AUROC checks.
        patience: checks without improvement before stopping (0: never stop early).
    """

    steps: int
    batch_size: int
    lr: float
    encoder_lr_scale: float
    weight_decay: float
    eval_every: int
    patience: int

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"finetune.{name} must be >= 1, got {getattr(self, name)}")
        if self.patience < 0:
            raise ValueError(f"finetune.patience must be >= 0, got {self.patience}")


@dataclass
class TrainResult:
    """Outcome of :func:`train_classifier`.

    Attributes:
        model: the best checkpoint by validation AUROC, in eval mode.
        best_step: step of that checkpoint.
        val_auroc: its validation AUROC (image level).
        history: ``(step, val_auroc)`` at every check.
        predictions: step -> ``(M,)`` validation probabilities at that check (kept when
            asked for: cross-fitting pools them across folds).
    """

    model: Classifier
    best_step: int
    val_auroc: float
    history: list[tuple[int, float]] = field(default_factory=list)
    predictions: dict[int, np.ndarray] = field(default_factory=dict)


def _batches(n: int, bs: int, steps: int, gen: torch.Generator) -> list[torch.Tensor]:
    """``steps`` index batches of size ``bs`` from consecutive seeded permutations of ``n``."""
    per_epoch = n // bs
    out: list[torch.Tensor] = []
    while len(out) < steps:
        order = torch.randperm(n, generator=gen)
        out.extend(order[i * bs : (i + 1) * bs] for i in range(per_epoch))
    return out[:steps]


def _start(
    model: Classifier, config: TrainConfig, seed: int, augment: Compose | None
) -> tuple[torch.optim.Optimizer, torch.Generator]:
    """Seed everything, unfreeze the model and build AdamW (head and encoder rates)."""
    set_determinism(seed=seed)
    if augment is not None:
        augment.set_random_state(seed=seed)
    for p in model.parameters():
        p.requires_grad = True
    opt = torch.optim.AdamW(
        [
            {"params": model.head.parameters(), "lr": config.lr},
            {"params": model.encoder.parameters(), "lr": config.lr * config.encoder_lr_scale},
        ],
        weight_decay=config.weight_decay,
    )
    return opt, torch.Generator().manual_seed(seed)


def _step(
    model: Classifier,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    augment: Compose | None,
) -> None:
    """One optimiser step of binary cross-entropy on a batch (views drawn when augmenting)."""
    model.train()
    if augment is not None:
        with torch.autocast("cpu", enabled=False):  # views in float32 (MONAI, NumPy)
            x = apply_views(augment, list(x))
    loss = nn.BCEWithLogitsLoss()(model(x), y.float())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _val_check(
    model: Classifier, images: torch.Tensor, labels: np.ndarray
) -> tuple[float, np.ndarray]:
    """Validation AUROC and the ``(M,)`` probabilities it ranks."""
    prob = predict(model, images)
    return float(roc_auc_score(labels, prob)), prob


def _check_size(images: torch.Tensor) -> None:
    if images.shape[0] < 2:
        raise ValueError(f"fine-tuning needs at least 2 labelled images, got {images.shape[0]}")


def train_classifier(
    model: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: np.ndarray,
    config: TrainConfig,
    *,
    seed: int,
    augment: Compose | None = None,
    keep_predictions: bool = False,
) -> TrainResult:
    """Fine-tune encoder and head with binary cross-entropy; keep the best validation step.

    Args:
        model: from :func:`build_classifier`.
        images: ``(N, 1, *spatial)`` labelled training images, N >= 2.
        labels: ``(N,)`` in {0, 1}.
        val_images: ``(M, 1, *spatial)`` validation images.
        val_labels: ``(M,)`` in {0, 1}, both classes present.
        config: optimisation settings.
        seed: seed for batch order and augmentation.
        augment: optional random transform on one ``(1, *spatial)`` image.
        keep_predictions: keep the validation probabilities of every check.

    Returns:
        The best checkpoint (by validation AUROC; earliest on ties) and its history.
    """
    _check_size(images)
    opt, gen = _start(model, config, seed, augment)
    bs = min(config.batch_size, images.shape[0])
    score, prob = _val_check(model, val_images, val_labels)
    best = TrainResult(copy.deepcopy(model), 0, score)
    best.history.append((0, best.val_auroc))
    if keep_predictions:
        best.predictions[0] = prob
    stale = 0
    batches = _batches(images.shape[0], bs, config.steps, gen)
    bar = tqdm(total=len(batches), unit="step", desc="fine-tune", disable=not sys.stderr.isatty())
    for step, idx in enumerate(batches, start=1):
        bar.update(1)
        _step(model, opt, images[idx], labels[idx], augment)
        if step % config.eval_every and step != config.steps:
            continue
        score, prob = _val_check(model, val_images, val_labels)
        best.history.append((step, score))
        if keep_predictions:
            best.predictions[step] = prob
        if score > best.val_auroc:
            best.model, best.best_step, best.val_auroc, stale = copy.deepcopy(model), step, score, 0
        else:
            stale += 1
            if config.patience and stale >= config.patience:
                break
    bar.close()
    set_determinism(seed=None)
    best.model.eval()
    return best


def train_steps(
    model: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    *,
    steps: int,
    seed: int,
    augment: Compose | None = None,
) -> Classifier:
    """Fine-tune for exactly ``steps`` steps, no validation (a refit with a chosen length).

    The batches, views and optimiser are those of :func:`train_classifier` with the same
    seed, so its first ``steps`` steps are these.

    Args:
        model: from :func:`build_classifier`.
        images: ``(N, 1, *spatial)`` labelled images, N >= 2.
        labels: ``(N,)`` in {0, 1}.
        config: optimisation settings (``steps`` is the cap of the batch plan only).
        steps: optimiser steps, 0 to return the model as given.
        seed: seed for batch order and augmentation.
        augment: optional random transform on one ``(1, *spatial)`` image.

    Returns:
        The model after ``steps`` steps, in eval mode.
    """
    _check_size(images)
    opt, gen = _start(model, config, seed, augment)
    bs = min(config.batch_size, images.shape[0])
    batches = _batches(images.shape[0], bs, max(steps, 1), gen)[:steps]
    for idx in tqdm(batches, unit="step", desc="refit", disable=not sys.stderr.isatty()):
        _step(model, opt, images[idx], labels[idx], augment)
    set_determinism(seed=None)
    model.eval()
    return model


def autocast(precision: str) -> torch.autocast:
    """The arithmetic of fine-tuning and feature extraction (on the CPU).

    ``bf16``: every forward pass (and so its backward) autocasts to bfloat16, as the
    pretraining stage's ``pretrain.precision`` does (outputs are cast back to float64 for
    scores and features). ``fp32``: autocast off.

    Raises:
        ValueError: any other value.
    """
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"finetune.precision must be bf16 or fp32, got {precision!r}")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def predict(model: Classifier, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Probabilities of the abnormal class, ``(N,)`` float64 in [0, 1]."""
    model.eval()
    out = [
        torch.sigmoid(model(images[i : i + batch_size].float()).double())
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0)


@torch.no_grad()
def embed(encoder: nn.Module, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Frozen features (encoder in eval mode: BatchNorm running statistics).

    Args:
        encoder: maps ``(B, 1, *spatial)`` to ``(B, D)``.
        images: ``(N, 1, *spatial)``.
        batch_size: images per forward pass.

    Returns:
        ``(N, D)`` float64.
    """
    encoder.eval()
    out = [encoder(images[i : i + batch_size].float()) for i in range(0, len(images), batch_size)]
    return torch.cat(out).double().numpy() if out else np.zeros((0, 0))
