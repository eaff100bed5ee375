"""The ``pixels`` baseline: downsampled raw intensities as features.

A method that cannot beat logistic regression (or kNN) on raw pixels has learned nothing
worth reporting; this arm runs beside every ``ssl`` run on the same labels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def pixel_features(images: torch.Tensor, size: int) -> np.ndarray:
    """Area-downsample images and flatten them.

    Args:
        images: ``(N, 1, *spatial)`` preprocessed images (2D or 3D).
        size: edge length after downsampling; images already at or below it are kept.

    Returns:
        ``(N, prod(out_spatial))`` float64.
    """
    if size < 1:
        raise ValueError(f"finetune.pixel_size must be >= 1, got {size}")
    spatial = tuple(images.shape[2:])
    if len(spatial) not in (2, 3):
        raise ValueError(f"images must be (N, 1, H, W) or (N, 1, D, H, W), got {images.shape}")
    target = tuple(min(size, s) for s in spatial)
    x = images.float()
    if target != spatial:
        x = F.interpolate(x, size=target, mode="area")  # area = adaptive average pooling
    return x.reshape(images.shape[0], -1).double().numpy()
