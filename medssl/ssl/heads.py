"""Pieces shared by the joint-embedding methods: projection MLPs and the batch gather.

Under ``torch.distributed`` the losses of SimCLR and VICReg are computed on the global
batch: embeddings are gathered from every rank with a differentiable all-gather (see
:func:`medssl.train.distributed.gather_with_grad`), passed in here as a ``Gather``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: Maps a local ``(b, ...)`` tensor to the global ``(world * b, ...)`` one, keeping gradients.
Gather = Callable[[torch.Tensor], torch.Tensor]


def no_gather(x: torch.Tensor) -> torch.Tensor:
    """Single process: the local batch is the global batch."""
    return x


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int, n_layers: int) -> nn.Sequential:
    """Projection / expander MLP: ``n_layers - 1`` times Linear-BN-ReLU, then a Linear.

    SimCLR (Chen et al. 2020) uses 2 layers; VICReg (Bardes et al. 2022) uses 3.

    Args:
        in_dim: input width (the encoder's feature width).
        hidden_dim: width of the hidden layers.
        out_dim: output width.
        n_layers: number of Linear layers, >= 1.

    Returns:
        A module mapping ``(B, in_dim)`` to ``(B, out_dim)``.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_layers - 1):
        layers += [nn.Linear(width, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def stack_views(views: torch.Tensor) -> torch.Tensor:
    """``(B, V, C, *spatial)`` -> ``(V * B, C, *spatial)``, all first views first."""
    return views.transpose(0, 1).reshape(-1, *views.shape[2:])


class JointEmbedding(nn.Module):
    """Encoder plus head applied to two views; the base of SimCLR and VICReg.

    Subclasses set ``self.encoder``, ``self.gather`` and a head, and compute their loss on
    the embeddings returned by :meth:`two_view_embeddings`.
    """

    n_views = 2
    encoder: nn.Module
    gather: Gather

    def two_view_embeddings(
        self, views: torch.Tensor, head: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed both views of every image and gather them over ranks.

        Args:
            views: ``(B, 2, C, *spatial)``.
            head: projector (SimCLR) or expander (VICReg).

        Returns:
            ``(z, h)``: embeddings ``(world * B, 2, P)`` and the detached encoder
            features ``(2B, feature_dim)`` (for the collapse monitor).
        """
        b = views.shape[0]
        h = self.encoder(stack_views(views))  # (2B, F)
        z = head(h).view(2, b, -1).transpose(0, 1)  # (B, 2, P)
        return self.gather(z.contiguous()), h.detach()

    def on_step_end(self, step: int, total: int) -> None:
        """Nothing to update after an optimizer step (no momentum encoder)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, feature_dim)`` of ``(B, C, *spatial)`` images."""
        features: torch.Tensor = self.encoder(x)
        return features

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights for :func:`medssl.models.encoders.build_encoder`."""
        return self.encoder.state_dict()
