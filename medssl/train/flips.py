"""Frozen features averaged over an image's mirror images (flip test-time augmentation).

For a feature map ``f`` and the reflections ``g`` of an image's spatial axes (2D: the
image, each axis, both: 4 images; 3D: 8), the averaged feature ``mean_g f(g x)`` is
invariant to those flips by construction. Averaging over flips at test time goes back to
Krizhevsky et al. 2012 (NeurIPS, "ImageNet classification with deep convolutional neural
networks", section 4.1); MONAI's ``TestTimeAugmentation`` averages predictions the same
way. The frozen-feature modes (linear probe, kNN, the pixel baseline) use it for the
labelled and the scored images alike (``finetune.feature_flips``), so a probe is fitted on
the kind of feature it scores.

Use it where the finding does not depend on orientation (pneumonia in either lung): the
averaged features cannot tell left from right or up from down.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import numpy as np
import torch


def flip_sets(spatial_dims: int) -> list[tuple[int, ...]]:
    """The axes to flip for each mirror image of a ``(N, C, *spatial)`` batch.

    Args:
        spatial_dims: 2 or 3.

    Returns:
        ``2 ** spatial_dims`` tuples of tensor dimensions, the first empty (the image
        itself), e.g. ``[(), (2,), (3,), (2, 3)]`` in 2D.
    """
    axes = range(2, 2 + spatial_dims)
    return [dims for r in range(spatial_dims + 1) for dims in combinations(axes, r)]


def flip_views(
    features: Callable[[torch.Tensor], np.ndarray], images: torch.Tensor
) -> list[np.ndarray]:
    """``features`` of the images and of each mirror image, in :func:`flip_sets` order.

    Args:
        features: maps ``(N, C, *spatial)`` images to ``(N, D)`` features.
        images: ``(N, C, *spatial)``, 2 or 3 spatial dimensions.

    Returns:
        ``2 ** spatial_dims`` arrays ``(N, D)`` float64, the first of the images themselves.
    """
    return [
        np.asarray(features(torch.flip(images, dims) if dims else images), dtype=np.float64)
        for dims in flip_sets(images.dim() - 2)
    ]


def flip_averaged(
    features: Callable[[torch.Tensor], np.ndarray], images: torch.Tensor
) -> np.ndarray:
    """``(N, D)`` float64: the mean of :func:`flip_views`."""
    return np.asarray(np.mean(flip_views(features, images), axis=0), dtype=np.float64)
