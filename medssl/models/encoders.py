"""Encoders: an explicit mapping from name to a MONAI network factory.

Every encoder maps ``(B, C, *spatial)`` to ``(B, feature_dim)`` and serves 2D radiographs
and 3D volumes through ``spatial_dims`` (MONAI convention).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from monai.networks.blocks.pos_embed_utils import build_sincos_position_embedding
from monai.networks.blocks.transformerblock import TransformerBlock
from monai.networks.layers import Conv, trunc_normal_
from monai.networks.nets import DenseNet121, resnet10, resnet18, resnet34, resnet50
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
        out: torch.Tensor = self.head(self.features(x))  # (B, 1024)
        return out


def _densenet121(spatial_dims: int, in_channels: int, small_input: bool) -> tuple[nn.Module, int]:
    return _DenseFeatures(spatial_dims, in_channels), 1024


@dataclass(frozen=True)
class ViTSpec:
    """Width and depth of a Vision Transformer (Dosovitskiy et al., ICLR 2021).

    Attributes:
        hidden: token width (divisible by 4 for 2D and by 6 for 3D sin-cos positions).
        depth: transformer blocks.
        heads: attention heads.
        mlp: MLP hidden width.
    """

    hidden: int
    depth: int
    heads: int
    mlp: int


#: ViT sizes of DeiT (Touvron et al. 2021) and ViT-B (Dosovitskiy et al. 2021).
VIT_SPECS: dict[str, ViTSpec] = {
    "vit_tiny": ViTSpec(hidden=192, depth=12, heads=3, mlp=768),
    "vit_small": ViTSpec(hidden=384, depth=12, heads=6, mlp=1536),
    "vit_base": ViTSpec(hidden=768, depth=12, heads=12, mlp=3072),
}


def vit_patch_size(small_input: bool) -> int:
    """Patch edge in voxels: 8 for small images (e.g. 32-96 px), else 16."""
    return 8 if small_input else 16


class _PatchProjection(nn.Module):
    """Patch projection named like MONAI's ``PatchEmbeddingBlock`` (key ``patch_embeddings``)."""

    def __init__(self, spatial_dims: int, in_channels: int, hidden: int, patch: int) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.patch_embeddings = conv(in_channels, hidden, kernel_size=patch, stride=patch)


class ViTEncoder(nn.Module):
    """ViT trunk whose weights match MONAI's ``MaskedAutoEncoderViT`` encoder.

    Positions are fixed 2D/3D sin-cos embeddings (as in MAE, He et al., CVPR 2022) built
    for the input's patch grid at each call, so the state_dict does not depend on the image
    size: ``build_encoder("vit_small", 2, 1, False)`` loads weights pretrained at any size.
    The output is the mean of the final patch tokens (global average pooling, as in MAE
    fine-tuning), ``(B, hidden)``.

    Args:
        spec: width and depth.
        spatial_dims: 2 or 3.
        in_channels: input channels.
        patch: patch edge in voxels; every input edge must be a multiple of it.
    """

    def __init__(self, spec: ViTSpec, spatial_dims: int, in_channels: int, patch: int) -> None:
        super().__init__()
        if spec.hidden % (2 * spatial_dims) != 0 or spec.hidden % spec.heads != 0:
            raise ValueError(
                f"ViT width {spec.hidden} does not fit {spatial_dims}D sin-cos positions"
            )
        self.spatial_dims = spatial_dims
        self.patch = patch
        self.hidden = spec.hidden
        self.cls_token = nn.Parameter(torch.zeros(1, 1, spec.hidden))
        self.patch_embedding = _PatchProjection(spatial_dims, in_channels, spec.hidden, patch)
        blocks: list[nn.Module] = [
            TransformerBlock(spec.hidden, spec.mlp, spec.heads, use_flash_attention=True)
            for _ in range(spec.depth)
        ]
        self.blocks = nn.Sequential(*blocks, nn.LayerNorm(spec.hidden))
        trunc_normal_(self.cls_token, mean=0.0, std=0.02, a=-2.0, b=2.0)
        self._position_tables: dict[tuple[object, ...], torch.Tensor] = {}  # not in state_dict

    def _positions(self, grid: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """Fixed sin-cos table ``(1, L, D)`` for a patch grid, built once per grid and device."""
        key = (grid, like.device, like.dtype)
        if key not in self._position_tables:
            table = build_sincos_position_embedding(list(grid), self.hidden, self.spatial_dims)
            self._position_tables[key] = table.detach().to(like)
        return self._position_tables[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial)`` -> ``(B, hidden)``."""
        grid = [s // self.patch for s in x.shape[2:]]
        if any(g * self.patch != s for g, s in zip(grid, x.shape[2:], strict=True)):
            raise ValueError(f"input size {tuple(x.shape[2:])} is not a multiple of {self.patch}")
        tokens = self.patch_embedding.patch_embeddings(x).flatten(2).transpose(1, 2)  # (B, L, D)
        tokens = tokens + self._positions(tuple(grid), tokens)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        out: torch.Tensor = self.blocks(torch.cat([cls, tokens], dim=1))  # (B, 1 + L, D)
        return out[:, 1:].mean(dim=1)


def _vit(spec: ViTSpec) -> Callable[[int, int, bool], tuple[nn.Module, int]]:
    def build(spatial_dims: int, in_channels: int, small_input: bool) -> tuple[nn.Module, int]:
        patch = vit_patch_size(small_input)
        return ViTEncoder(spec, spatial_dims, in_channels, patch), spec.hidden

    return build


#: name -> factory(spatial_dims, in_channels, small_input) -> (module, feature_dim)
ENCODERS: dict[str, Callable[[int, int, bool], tuple[nn.Module, int]]] = {
    "resnet10": _resnet(resnet10, 512),  # MedicalNet's 3D trunk (Chen et al. 2019)
    "resnet18": _resnet(resnet18, 512),  # He et al. 2016
    "resnet34": _resnet(resnet34, 512),
    "resnet50": _resnet(resnet50, 2048),
    "densenet121": _densenet121,
    **{name: _vit(spec) for name, spec in VIT_SPECS.items()},
}


def build_encoder(
    name: str, spatial_dims: int, in_channels: int = 1, small_input: bool = False
) -> tuple[nn.Module, int]:
    """Build an encoder by name.

    Args:
        name: key of :data:`ENCODERS`.
        spatial_dims: 2 or 3.
        in_channels: input channels (1 for greyscale imaging).
        small_input: stem for small images (3x3 stride-1 conv, no max-pool), e.g. 28-64 px;
            for ViTs, 8-voxel patches instead of 16.

    Returns:
        ``(encoder, feature_dim)``.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return ENCODERS[name](spatial_dims, in_channels, small_input)
