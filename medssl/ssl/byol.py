"""BYOL: an online network predicts a momentum teacher's projection of another view.

Grill et al., "Bootstrap your own latent: a new approach to self-supervised learning",
NeurIPS 2020. The online encoder and projector are followed by a predictor; the target
(teacher) encoder and projector are an exponential moving average of the online ones and
get no gradient. No negatives, so no large batch is needed: well suited to one CPU or GPU.

The loss (paper eq. 2, symmetrised as in eq. 5) is ``2 - 2 cos(q_a, z'_b)`` plus the same
with the views swapped, averaged over the batch; the teacher's momentum follows
``tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2`` (section 3.2).

Why not ``lightly``: its ``lightly.loss`` package imports torchvision at import time, and
no torchvision wheel imports beside the CPU torch the project pins; the few lines below are
tested against the paper's formulas instead (``tests/ssl/test_byol.py``).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from medssl.ssl.heads import Gather, mlp_head, no_gather, stack_views
from medssl.ssl.precision import full_precision, no_autocast


def regression_loss(q: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(q, z)`` per row, averaged (BYOL eq. 2), in float32 with autocast off.

    Args:
        q: ``(B, P)`` online predictions.
        z: ``(B, P)`` target projections (no gradient).

    Returns:
        Scalar loss in [0, 4].
    """
    with no_autocast(q):
        cos = F.cosine_similarity(full_precision(q), full_precision(z).detach(), dim=1)
        return (2.0 - 2.0 * cos).mean()


def momentum_at(step: int, total: int, base: float) -> float:
    """Teacher momentum at optimizer step ``step`` of ``total`` (cosine from ``base`` to 1)."""
    if total <= 0:
        return 1.0
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total) / total) + 1.0) / 2.0


class BYOL(nn.Module):
    """Online encoder + projector + predictor, and an EMA teacher of encoder + projector.

    Args:
        encoder: maps ``(B, C, *spatial)`` to ``(B, feature_dim)``.
        feature_dim: encoder output width.
        proj_dim: projection (and prediction) width.
        hidden_dim: MLP hidden width.
        momentum: base teacher momentum ``tau_base`` (paper: 0.996 for 1000 epochs; lower
            for short runs).
        gather: unused (BYOL's loss is per image); kept for the common factory signature.
    """

    n_views = 2

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        proj_dim: int = 128,
        hidden_dim: int = 512,
        momentum: float = 0.99,
        gather: Gather = no_gather,
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"pretrain.byol.momentum must be in [0, 1), got {momentum}")
        self.encoder = encoder
        self.projector = mlp_head(feature_dim, hidden_dim, proj_dim, n_layers=2)
        self.predictor = mlp_head(proj_dim, hidden_dim, proj_dim, n_layers=2)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in [*self.target_encoder.parameters(), *self.target_projector.parameters()]:
            p.requires_grad = False
        self.momentum = momentum
        del gather

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetrised loss on two views.

        Args:
            views: ``(B, 2, C, *spatial)``.

        Returns:
            ``(loss, features)``: the scalar loss and the detached online encoder features
            ``(2B, feature_dim)``.
        """
        b = views.shape[0]
        x = stack_views(views)  # (2B, C, *spatial), first views first
        h = self.encoder(x)
        q = self.predictor(self.projector(h))  # (2B, P)
        with torch.no_grad():
            z = self.target_projector(self.target_encoder(x))
        loss = regression_loss(q[:b], z[b:]) + regression_loss(q[b:], z[:b])
        return loss, h.detach()

    @torch.no_grad()
    def on_step_end(self, step: int, total: int) -> None:
        """Move the teacher towards the online network after optimizer step ``step``."""
        tau = momentum_at(step, total, self.momentum)
        pairs = (
            (self.target_encoder, self.encoder),
            (self.target_projector, self.projector),
        )
        for target, online in pairs:
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.mul_(tau).add_(o.detach(), alpha=1.0 - tau)
            for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
                tb.copy_(ob)  # BatchNorm running statistics follow the online network

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Online encoder features ``(B, feature_dim)``."""
        features: torch.Tensor = self.encoder(x)
        return features

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights of the online encoder (the one fine-tuned, as in the paper)."""
        return self.encoder.state_dict()
