"""The interface every self-supervised method offers the pretraining loop.

:class:`SSLMethod` is a structural type (``typing.Protocol``): SimCLR, VICReg, BYOL and MAE
satisfy it without inheriting from it, and mypy checks that they do wherever a method is
returned as an ``SSLMethod`` (the factories of :data:`medssl.train.methods.METHODS`). It
names what :mod:`medssl.train.pretrain` calls: the loss on a batch of views, the hook after
each optimizer step, the parameters to optimise, the state to checkpoint, the features of
the kNN probe and the encoder weights to export. Every method is also a ``torch.nn.Module``
(needed for devices and DDP), so the ``nn.Module`` members below come for free.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import torch
from torch import nn


class SSLMethod(Protocol):
    """A self-supervised objective around an encoder, as the training loop sees it.

    Attributes:
        training: train (True) or eval mode, as in ``nn.Module``.
    """

    training: bool

    @property
    def n_views(self) -> int:
        """Views per image the loss takes: 2 for joint embeddings, 1 for MAE."""
        ...

    def __call__(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as :meth:`forward`, through ``nn.Module`` hooks."""
        ...

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss on a batch of views.

        Args:
            views: ``(B, n_views, C, *spatial)``.

        Returns:
            ``(loss, features)``: the scalar loss and detached encoder features ``(B', D)``
            (for the collapse monitor).
        """
        ...

    def on_step_end(self, step: int, total: int) -> None:
        """Called after optimizer step ``step`` of ``total`` (BYOL: teacher momentum update)."""
        ...

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, D)`` of ``(B, C, *spatial)`` images (kNN probe)."""
        ...

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights to export, keyed for :func:`medssl.models.encoders.build_encoder`."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """Every parameter to optimise (frozen teachers have ``requires_grad=False``)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The whole method's state, for the resumable checkpoint."""
        ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> object:
        """Inverse of :meth:`state_dict`."""
        ...

    def train(self, mode: bool = True) -> object:
        """Switch to train (True) or eval (False) mode."""
        ...
