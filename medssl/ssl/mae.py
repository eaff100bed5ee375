"""MAE: masked autoencoders (He et al., CVPR 2022) on MONAI's ``MaskedAutoEncoderViT``.

MONAI supplies the network (patch embedding with fixed sin-cos positions, random masking,
ViT encoder and light decoder, 2D or 3D); this module adds the pixel-reconstruction loss on
masked patches (with per-patch normalised targets, the paper's default) and maps the
encoder weights onto :class:`medssl.models.encoders.ViTEncoder`.
"""

from __future__ import annotations

import math

import torch
from monai.networks.nets.masked_autoencoder_vit import MaskedAutoEncoderViT
from torch import nn

from medssl.models.encoders import ViTSpec
from medssl.ssl.precision import full_precision, no_autocast

#: Keys of ``MaskedAutoEncoderViT.state_dict()`` that form the encoder (positions are fixed).
ENCODER_PREFIXES = ("cls_token", "patch_embedding.patch_embeddings.", "blocks.")


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into non-overlapping patches in the token order of a strided conv.

    Args:
        x: ``(B, C, *spatial)``, every spatial edge a multiple of ``patch``.
        patch: patch edge in voxels.

    Returns:
        ``(B, L, patch**dims * C)``, L = number of patches, row-major over the patch grid.
    """
    b, c, *size = x.shape
    dims = len(size)
    grid = [s // patch for s in size]
    if any(g * patch != s for g, s in zip(grid, size, strict=True)):
        raise ValueError(f"image size {tuple(size)} is not a multiple of patch {patch}")
    split = [b, c] + [v for g in grid for v in (g, patch)]
    x = x.reshape(split)  # (B, C, g1, p, g2, p[, g3, p])
    grid_axes = [2 + 2 * i for i in range(dims)]
    patch_axes = [3 + 2 * i for i in range(dims)]
    x = x.permute(0, *grid_axes, *patch_axes, 1)  # (B, g1, g2[, g3], p, p[, p], C)
    return x.reshape(b, math.prod(grid), patch**dims * c)


def masked_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool = True
) -> torch.Tensor:
    """Mean squared error on masked patches only (MAE eq. in Sec. 3, "Reconstruction target").

    Args:
        pred: ``(B, L, P)`` predicted patch voxels.
        target: ``(B, L, P)`` true patch voxels.
        mask: ``(B, L)``, 1 where the patch was masked (hidden from the encoder), 0 where seen.
        norm_pix: normalise each target patch to zero mean and unit variance first.

    Returns:
        Scalar loss.
    """
    with no_autocast(pred):
        pred, target = full_precision(pred), full_precision(target)
        if norm_pix:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        per_patch = (pred - target).pow(2).mean(dim=-1)  # (B, L)
        mask = mask.to(per_patch.dtype)
        return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


class MAE(nn.Module):
    """Masked autoencoder with a ViT encoder of the given size.

    Args:
        spec: encoder width and depth (see :data:`medssl.models.encoders.VIT_SPECS`).
        spatial_dims: 2 or 3.
        image_size: input edge in voxels (a multiple of ``patch``).
        patch: patch edge in voxels.
        mask_ratio: fraction of patches hidden from the encoder (0.75 in the paper).
        decoder_dim: decoder width (divisible by 32, and by 4 in 2D or 6 in 3D).
        decoder_depth: decoder transformer blocks.
        norm_pix: per-patch normalised targets.
    """

    n_views = 1

    def __init__(
        self,
        spec: ViTSpec,
        spatial_dims: int,
        image_size: int,
        patch: int,
        mask_ratio: float = 0.75,
        decoder_dim: int = 192,
        decoder_depth: int = 2,
        norm_pix: bool = True,
    ) -> None:
        super().__init__()
        if decoder_dim % 32 != 0 or decoder_dim % (2 * spatial_dims) != 0:
            raise ValueError(
                f"mae decoder_dim must be a multiple of 32 and of {2 * spatial_dims}, "
                f"got {decoder_dim}"
            )
        if image_size % patch != 0:
            raise ValueError(f"image_size {image_size} is not a multiple of the patch {patch}")
        self.patch = patch
        self.norm_pix = norm_pix
        self.net = MaskedAutoEncoderViT(
            in_channels=1,
            img_size=image_size,
            patch_size=patch,
            hidden_size=spec.hidden,
            mlp_dim=spec.mlp,
            num_layers=spec.depth,
            num_heads=spec.heads,
            masking_ratio=mask_ratio,
            decoder_hidden_size=decoder_dim,
            decoder_mlp_dim=4 * decoder_dim,
            decoder_num_layers=decoder_depth,
            decoder_num_heads=decoder_dim // 32,
            spatial_dims=spatial_dims,
        )
        self._visible: torch.Tensor | None = None
        self.net.blocks.register_forward_hook(self._keep_visible_tokens)

    def _keep_visible_tokens(self, module: nn.Module, args: object, out: torch.Tensor) -> None:
        self._visible = out[:, 1:].mean(dim=1).detach()  # (B, hidden), cls token dropped

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction loss of the masked patches.

        Args:
            views: ``(B, 1, C, *spatial)``, one view per image.

        Returns:
            ``(loss, features)``: the scalar loss and the detached mean encoder token of
            the visible patches ``(B, hidden)``.
        """
        x = views[:, 0]
        pred, mask = self.net(x)  # (B, L, P), (B, L)
        loss = masked_mse(pred, patchify(x, self.patch), mask, self.norm_pix)
        assert self._visible is not None
        return loss, self._visible

    def on_step_end(self, step: int, total: int) -> None:
        """Nothing to update after an optimizer step (no momentum encoder)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Mean encoder token of all patches (no masking), ``(B, hidden)``."""
        tokens = self.net.patch_embedding(x)  # (B, L, D) with positions
        cls = self.net.cls_token.expand(x.shape[0], -1, -1)
        blocks: torch.Tensor = self.net.blocks(torch.cat([cls, tokens], dim=1))  # (B, 1 + L, D)
        return blocks[:, 1:].mean(dim=1)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Encoder weights keyed for :class:`medssl.models.encoders.ViTEncoder`."""
        state = self.net.state_dict()
        return {k: v for k, v in state.items() if k.startswith(ENCODER_PREFIXES)}
