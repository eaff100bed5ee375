"""Few-label supervised fine-tuning of an encoder with a linear head.

Modes: ``full`` (encoder and head trained; encoder at a lower learning rate, as in
SimCLR's fine-tuning protocol) and ``linear`` (frozen encoder, linear probe).
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Compose
from monai.utils import set_determinism
from torch import nn

from medssl.models.encoders import build_encoder

MODES = ("full", "linear")


class Classifier(nn.Module):
    """Encoder plus a single-logit linear head: ``(B, 1, *spatial) -> (B,)`` logits."""

    def __init__(self, encoder: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(feature_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x)).squeeze(1)


def build_classifier(
    encoder_name: str, spatial_dims: int, small_input: bool, init: dict[str, torch.Tensor] | None
) -> Classifier:
    """A classifier with random or pretrained encoder weights."""
    encoder, dim = build_encoder(encoder_name, spatial_dims, 1, small_input)
    if init is not None:
        encoder.load_state_dict(init)
    return Classifier(encoder, dim)


def train_classifier(
    model: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    mode: str,
    epochs: int,
    batch_size: int,
    lr: float,
    encoder_lr_scale: float,
    weight_decay: float,
    seed: int,
    augment: Compose | None = None,
) -> Classifier:
    """Train on a few labels with binary cross-entropy.

    Args:
        model: from :func:`build_classifier`.
        images: ``(N, 1, *spatial)``.
        labels: ``(N,)`` in {0, 1}.
        mode: ``"full"`` or ``"linear"``.
        epochs: passes over the labelled set.
        batch_size: images per step (capped at N).
        lr: head learning rate (AdamW).
        encoder_lr_scale: encoder learning rate = ``lr * encoder_lr_scale`` in full mode.
        weight_decay: AdamW weight decay.
        seed: seed for batch order and augmentation.
        augment: optional random transform on one ``(1, *spatial)`` image.

    Returns:
        The trained model (in eval mode).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    set_determinism(seed=seed)
    if augment is not None:
        augment.set_random_state(seed=seed)
    frozen = mode == "linear"
    for p in model.encoder.parameters():
        p.requires_grad = not frozen
    groups = [{"params": model.head.parameters(), "lr": lr}]
    if not frozen:
        groups.append({"params": model.encoder.parameters(), "lr": lr * encoder_lr_scale})
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    n = images.shape[0]
    bs = min(batch_size, n)
    gen = torch.Generator().manual_seed(seed)
    pos = labels.float().mean().clamp(0.05, 0.95)
    criterion = nn.BCEWithLogitsLoss(pos_weight=(1 - pos) / pos)
    for _ in range(epochs):
        model.train()
        if frozen:
            model.encoder.eval()  # keep BatchNorm statistics of the pretrained encoder
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - bs + 1, bs):
            idx = order[start : start + bs]
            x = images[idx]
            if augment is not None:
                x = torch.stack([torch.as_tensor(augment(i)) for i in x]).float()
            loss = criterion(model(x), labels[idx].float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    set_determinism(seed=None)
    return model.eval()


@torch.no_grad()
def predict(model: Classifier, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Probabilities of the abnormal class, ``(N,)`` float64 in [0, 1]."""
    model.eval()
    out = [
        torch.sigmoid(model(images[i : i + batch_size])) for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).double().numpy() if out else np.zeros(0)
