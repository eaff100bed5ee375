"""SimCLR: contrastive learning of visual representations (Chen et al., ICML 2020).

The encoder is any :mod:`medssl.models.encoders` network; the projection head is a
2-layer MLP; the loss is NT-Xent over the global batch (all ranks). :func:`nt_xent` is a
matrix-product form of MONAI's :class:`monai.losses.ContrastiveLoss` (tested equal to it):
MONAI's builds a ``(2N, 2N, D)`` tensor (at N = 1024, D = 128: 2 GiB of float32 by
arithmetic, before autograd keeps intermediates); this one needs ``(2N, 2N)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medssl.ssl.heads import Gather, JointEmbedding, mlp_head, no_gather
from medssl.ssl.precision import full_precision, no_autocast


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross-entropy (SimCLR eq. 1), averaged over all 2N anchors.

    Args:
        z_a: ``(N, D)`` projections of the first views.
        z_b: ``(N, D)`` projections of the second views; row i is the positive of ``z_a[i]``.
        temperature: softmax temperature tau > 0.

    Returns:
        Scalar loss; every other row of both views is a negative. Computed in float32
        with autocast off (:mod:`medssl.ssl.precision`).
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(f"expected two (N, D) tensors, got {tuple(z_a.shape)}, {tuple(z_b.shape)}")
    n = z_a.shape[0]
    with no_autocast(z_a):  # see Returns
        z = F.normalize(full_precision(torch.cat([z_a, z_b])), dim=1)  # (2N, D)
        logits = (z @ z.T) / temperature  # (2N, 2N) cosine similarities / tau
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        idx = torch.arange(n, device=z.device)
        targets = torch.cat([idx + n, idx])  # the other view of the same image
        return F.cross_entropy(logits, targets)


class SimCLR(JointEmbedding):
    """Encoder, projection head and NT-Xent loss.

    Args:
        encoder: maps ``(B, C, *spatial)`` to ``(B, feature_dim)``.
        feature_dim: encoder output width.
        proj_dim: projection width (the space where the loss is computed).
        temperature: NT-Xent temperature.
        hidden_dim: projection MLP hidden width.
        gather: all-gather of projections across ranks (identity on one process).
    """

    n_views = 2

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        proj_dim: int = 128,
        temperature: float = 0.2,
        hidden_dim: int = 512,
        gather: Gather = no_gather,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.encoder = encoder
        self.projector = mlp_head(feature_dim, hidden_dim, proj_dim, n_layers=2)
        self.temperature = temperature
        self.gather = gather

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss on two views.

        Args:
            views: ``(B, 2, C, *spatial)``.

        Returns:
            ``(loss, features)``: the scalar loss and the detached encoder features
            ``(2B, feature_dim)`` (for the collapse monitor).
        """
        z, h = self.two_view_embeddings(views, self.projector)  # (world * B, 2, P)
        return nt_xent(z[:, 0], z[:, 1], self.temperature), h
