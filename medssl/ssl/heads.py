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
