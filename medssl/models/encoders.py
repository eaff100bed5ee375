"""Encoders: an explicit mapping from name to a MONAI network factory.

Every encoder maps ``(B, C, *spatial)`` to ``(B, feature_dim)`` and serves 2D radiographs
and 3D volumes through ``spatial_dims`` (MONAI convention).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.networks.nets import DenseNet121, resnet18, resnet34, resnet50
from torch import nn


def _resnet(factory: Callable[..., nn.Module], dim: int) -> Callable[..., tuple[nn.Module, int]]:
    def build(spatial_dims: int, in_channels: int, small_input: bool) -> tuple[nn.Module, int]:
        net = factory(
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            feed_forward=False,  # drop the classifier: forward returns pooled features
            conv1_t_size=3 if small_input else 7,
            conv1_t_stride=1 if small_input else 2,
            no_max_pool=small_input,
        )
        return net, dim

    return build


class _DenseFeatures(nn.Module):
    """DenseNet-121 (Huang et al. 2017) trunk with global average pooling."""

    def __init__(self, spatial_dims: int, in_channels: int) -> None:
        super().__init__()
        net = DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=1)
        pool = nn.AdaptiveAvgPool2d(1) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.features = net.features
        self.head = nn.Sequential(nn.ReLU(), pool, nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, 1024)


def _densenet121(spatial_dims: int, in_channels: int, small_input: bool) -> tuple[nn.Module, int]:
    return _DenseFeatures(spatial_dims, in_channels), 1024


#: name -> factory(spatial_dims, in_channels, small_input) -> (module, feature_dim)
ENCODERS: dict[str, Callable[[int, int, bool], tuple[nn.Module, int]]] = {
    "resnet18": _resnet(resnet18, 512),  # He et al. 2016
    "resnet34": _resnet(resnet34, 512),
    "resnet50": _resnet(resnet50, 2048),
    "densenet121": _densenet121,
}


def build_encoder(
    name: str, spatial_dims: int, in_channels: int = 1, small_input: bool = False
) -> tuple[nn.Module, int]:
    """Build an encoder by name.

    Args:
        name: key of :data:`ENCODERS`.
        spatial_dims: 2 or 3.
        in_channels: input channels (1 for greyscale imaging).
        small_input: stem for small images (3x3 stride-1 conv, no max-pool), e.g. 28-64 px.

    Returns:
        ``(encoder, feature_dim)``.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return ENCODERS[name](spatial_dims, in_channels, small_input)
