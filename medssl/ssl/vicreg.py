"""VICReg: variance-invariance-covariance regularisation (Bardes et al., ICLR 2022).

A non-contrastive joint-embedding method: no negatives, no momentum encoder. The loss
(eq. 6 of the paper, Algorithm 1) is computed on the global batch gathered from all ranks,
as in the authors' implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medssl.ssl.heads import Gather, JointEmbedding, mlp_head, no_gather
from medssl.ssl.precision import full_precision, no_autocast


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """Off-diagonal entries of a square ``(D, D)`` matrix, flattened ``(D * (D - 1),)``."""
    d = m.shape[0]
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def vicreg_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """VICReg loss ``lambda * s + mu * [v(Z) + v(Z')] / 2 + nu * [c(Z) + c(Z')]``.

    Args:
        z_a: ``(N, D)`` embeddings of the first views, N >= 2.
        z_b: ``(N, D)`` embeddings of the second views.
        sim_weight: lambda, weight of the invariance term (mean squared error).
        var_weight: mu, weight of the hinge on each dimension's standard deviation (gamma=1).
        cov_weight: nu, weight of the squared off-diagonal covariances (divided by D).
        eps: added to the variance before the square root.

    Returns:
        Scalar loss, computed in float32 with autocast off.
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2 or z_a.shape[0] < 2:
        shapes = f"{tuple(z_a.shape)}, {tuple(z_b.shape)}"
        raise ValueError(f"expected two (N>=2, D) tensors, got {shapes}")
    n, d = z_a.shape
    with no_autocast(z_a):  # float32 covariances
        z_a, z_b = full_precision(z_a), full_precision(z_b)
        invariance = F.mse_loss(z_a, z_b)
        z_a = z_a - z_a.mean(dim=0)
        z_b = z_b - z_b.mean(dim=0)
        std_a = torch.sqrt(z_a.var(dim=0) + eps)
        std_b = torch.sqrt(z_b.var(dim=0) + eps)
        variance = F.relu(1 - std_a).mean() / 2 + F.relu(1 - std_b).mean() / 2
        cov_a = (z_a.T @ z_a) / (n - 1)
        cov_b = (z_b.T @ z_b) / (n - 1)
        covariance = _off_diagonal(cov_a).pow(2).sum() / d + _off_diagonal(cov_b).pow(2).sum() / d
        return sim_weight * invariance + var_weight * variance + cov_weight * covariance


class VICReg(JointEmbedding):
    """Encoder, 3-layer expander and VICReg loss.

    Args:
        encoder: maps ``(B, C, *spatial)`` to ``(B, feature_dim)``.
        feature_dim: encoder output width.
        proj_dim: expander width (hidden and output; 8192 in the paper).
        sim_weight: invariance weight lambda.
        var_weight: variance weight mu.
        cov_weight: covariance weight nu.
        gather: all-gather of embeddings across ranks (identity on one process).
    """

    n_views = 2

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        proj_dim: int = 2048,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        gather: Gather = no_gather,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.expander = mlp_head(feature_dim, proj_dim, proj_dim, n_layers=3)
        self.weights = (sim_weight, var_weight, cov_weight)
        self.gather = gather

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss on two views.

        Args:
            views: ``(B, 2, C, *spatial)``.

        Returns:
            ``(loss, features)``: the scalar loss and the detached encoder features
            ``(2B, feature_dim)``.
        """
        z, h = self.two_view_embeddings(views, self.expander)  # (world * B, 2, P)
        sim, var, cov = self.weights
        return vicreg_loss(z[:, 0], z[:, 1], sim, var, cov), h
