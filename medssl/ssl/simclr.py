"""SimCLR: contrastive learning of visual representations (Chen et al., ICML 2020).

The encoder is any :mod:`medssl.models.encoders` network; the projection head is a
2-layer MLP; the loss is MONAI's NT-Xent (:class:`monai.losses.ContrastiveLoss`).
"""

from __future__ import annotations

import torch
from monai.losses import ContrastiveLoss
from torch import nn


class SimCLR(nn.Module):
    """Encoder plus projection head.

    Args:
        encoder: maps ``(B, C, *spatial)`` to ``(B, feature_dim)``.
        feature_dim: encoder output width.
        proj_dim: projection width (the space where the loss is computed).
        hidden_dim: projection MLP hidden width.
    """

    def __init__(
        self, encoder: nn.Module, feature_dim: int, proj_dim: int = 128, hidden_dim: int = 512
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = nn.Sequential(
            nn.Linear(feature_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, proj_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features (B, feature_dim), projections (B, proj_dim))``."""
        h = self.encoder(x)
        return h, self.projector(h)


def loss_fn(temperature: float) -> nn.Module:
    """NT-Xent loss on two batches of projections ``(B, D)`` (positives: same row)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return ContrastiveLoss(temperature=temperature)
