"""Random views of a whole batch at once, as tensor ops on the training device (Kornia).

The per-image path (:mod:`medssl.data.transforms`, MONAI dictionary-free transforms in
DataLoader workers) costs a CPU core per loader worker and cannot use a GPU. Here the same
kinds of views are drawn for every image of a batch in one call of Kornia's batched
augmentations (Riba et al., "Kornia: an open source differentiable computer vision library
for PyTorch", WACV 2020), on the device the model runs on: a random resized crop, a random
affine (rotation, scale; border padding), gamma, intensity scaling, Gaussian blur and
noise, the kinds and ranges of :func:`medssl.data.transforms.ssl_views` (SimCLR, Chen et
al. 2020) but not their exact distributions (Kornia's crop draws area and aspect, its noise
a fixed standard deviation); MAE views (He et al. 2022) are the crop (and flip) only. The
two engines therefore give different weights.

Seeding: each batch's views are drawn from one seed derived from the per-image view seeds
(:func:`medssl.data.dataset.view_seed`, i.e. ``(seed, epoch, index)``) of its images, so
they depend on the batch's composition only: not on the number of loader workers, and a
run resumed mid-epoch draws exactly the views an uninterrupted run draws.

2D only, without CT intensity windows; 3D volumes and ``hu_windows`` use the per-image
path (:data:`ENGINES`, :func:`resolve_engine`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

#: ``pretrain.views.engine`` values: ``batch`` (this module), ``sample`` (per image, in
#: DataLoader workers, MONAI), ``auto`` (``batch`` where it applies, else ``sample``).
ENGINES = ("auto", "batch", "sample")


def batch_views_apply(spatial_dims: int, windows: Sequence[object]) -> bool:
    """Whether batch views can draw this configuration's views (2D, no intensity windows)."""
    return spatial_dims == 2 and not windows


def resolve_engine(engine: str, spatial_dims: int, windows: Sequence[object]) -> str:
    """``batch`` or ``sample`` for a configured engine.

    Raises:
        ValueError: unknown engine, or ``batch`` where it does not apply.
    """
    if engine not in ENGINES:
        raise ValueError(f"pretrain.views.engine must be one of {list(ENGINES)}, got {engine!r}")
    fits = batch_views_apply(spatial_dims, windows)
    if engine == "auto":
        return "batch" if fits else "sample"
    if engine == "batch" and not fits:
        raise ValueError(
            "pretrain.views.engine 'batch' draws 2D views without hu_windows; "
            "use 'sample' (or 'auto') for 3D volumes or CT windows"
        )
    return engine


class _ScaleIntensity(K.IntensityAugmentationBase2D):
    """``x * (1 + f)``, ``f ~ U(-factor, factor)`` per image (MONAI ``RandScaleIntensity``)."""

    def __init__(self, factor: float, p: float) -> None:
        super().__init__(p=p)
        self._param_generator = K.random_generator.PlainUniformGenerator(
            ((-factor, factor), "factor", None, None)
        )

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, object],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        factor = params["factor"].to(input).view(-1, *[1] * (input.dim() - 1))
        return input * (1.0 + factor)


def _augmentations(
    image_size: int, min_crop: float, flip: bool, noise_std: float, light: bool
) -> nn.Sequential:
    """The Kornia pipeline on ``(B, 1, H, W)`` images in [0, 1]."""
    edge = max(4, int(image_size * min_crop)) / image_size
    steps: list[nn.Module] = [
        # the range of MONAI's random-size crop (each edge in [min_crop, 1]): area in
        # [min_crop^2, 1], aspect within [min_crop, 1 / min_crop]; the distributions differ
        # (drawing MONAI's exactly measured no better: docs/benchmarks.md)
        K.RandomResizedCrop(
            (image_size, image_size), scale=(edge * edge, 1.0), ratio=(edge, 1.0 / edge), p=1.0
        ),
    ]
    if not light:
        steps += [
            K.RandomAffine(degrees=9.74, scale=(0.9, 1.1), padding_mode="border", p=0.8),
            K.RandomGamma(gamma=(0.6, 1.6), p=0.8),
            _ScaleIntensity(0.2, p=0.8),
            K.RandomGaussianBlur((5, 5), sigma=(0.25, 1.0), p=0.3),
            K.RandomGaussianNoise(std=noise_std, p=0.5),
        ]
    if flip:
        steps.append(K.RandomVerticalFlip(p=0.5))  # the first spatial axis, as ``ssl_views``
    return nn.Sequential(*steps)


class BatchViews(nn.Module):
    """``n_views`` random views of every image of a batch.

    Args:
        image_size: edge of input and output images.
        n_views: views per image (2 for SimCLR/VICReg/BYOL, 1 for MAE).
        min_crop: smallest crop edge, as a fraction of the image.
        flip: allow flips along the first spatial axis.
        noise_std: Gaussian noise standard deviation (intensities in [0, 1]).
        light: crop (and flip) only: the views of masked-image modelling.
    """

    def __init__(
        self,
        image_size: int,
        n_views: int,
        *,
        min_crop: float = 0.5,
        flip: bool = False,
        noise_std: float = 0.03,
        light: bool = False,
    ) -> None:
        super().__init__()
        self.n_views = n_views
        self.augment = _augmentations(image_size, min_crop, flip, noise_std, light)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, n_views, 1, H, W)`` float32, drawn from ``seed``."""
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            stacked = images.float().repeat(self.n_views, 1, 1, 1)  # view-major
            views: torch.Tensor = self.augment(stacked)
        b = images.shape[0]
        return views.view(self.n_views, b, *views.shape[1:]).transpose(0, 1).contiguous()


def batch_seed(view_seeds: torch.Tensor) -> int:
    """One seed from the per-image view seeds of a batch (NumPy SeedSequence hash)."""
    return int(np.random.SeedSequence(view_seeds.tolist()).generate_state(1)[0])


@dataclass
class ViewBatches:
    """Iterate ``(images, view_seeds)`` batches as view batches on ``device``.

    Attributes:
        batches: yields ``(B, 1, H, W)`` images and their ``(B,)`` view seeds.
        views: the view maker.
        device: where the views are drawn (the model's device).
    """

    batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
    views: BatchViews
    device: torch.device

    def __iter__(self) -> Iterator[torch.Tensor]:
        for images, seeds in self.batches:
            images = images.to(self.device, non_blocking=True)
            yield self.views(images, batch_seed(seeds))
