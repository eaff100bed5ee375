"""Preprocessed image stacks through MONAI's CacheDataset."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.data import CacheDataset

from medssl.data.transforms import preprocess


def load_stack(
    paths: Sequence[str],
    image_size: int,
    spatial_dims: int,
    intensity: str = "xray",
    workers: int = 0,
) -> torch.Tensor:
    """Load, preprocess and stack images.

    Args:
        paths: NIfTI files written by ingestion.
        image_size: edge length after resizing.
        spatial_dims: 2 or 3.
        intensity: intensity preset (see :data:`medssl.data.transforms.INTENSITY_WINDOWS`).
        workers: cache-filling threads (0 = all cores, MONAI default).

    Returns:
        ``(N, 1, *[image_size] * spatial_dims)`` float32.
    """
    if not paths:
        return torch.zeros((0, 1, *[image_size] * spatial_dims))
    data = [{"image": p} for p in paths]
    ds = CacheDataset(
        data,
        transform=preprocess(image_size, spatial_dims, intensity),
        cache_rate=1.0,
        num_workers=workers or None,
        progress=False,
    )
    return torch.stack([torch.as_tensor(ds[i]["image"]) for i in range(len(ds))])
