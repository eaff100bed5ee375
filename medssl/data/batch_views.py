"""Random views of a whole batch at once, as tensor ops on the training device (Kornia).

The per-image path (:mod:`medssl.data.transforms`, MONAI dictionary-free transforms in
DataLoader workers) costs a CPU core per loader worker and cannot use a GPU. Here the same
kinds of views are drawn for every image of a batch in one call of Kornia's batched
augmentations (Riba et al., "Kornia: an open source differentiable computer vision library
for PyTorch", WACV 2020), on the device the model runs on, with the distributions of
:func:`medssl.data.transforms.ssl_views` (SimCLR, Chen et al. 2020): a crop whose edges
are drawn independently in ``[min_crop, 1]`` of the image, resized back; a random affine
(rotation, scale; border padding); gamma; intensity scaling; Gaussian blur; Gaussian noise
of a standard deviation drawn per image. MAE views (He et al. 2022) are the crop (and flip)
only.

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
from kornia.geometry.transform import crop_and_resize
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


class _GaussianNoise(K.IntensityAugmentationBase2D):
    """``x + N(0, s^2)``, ``s ~ U(0, std)`` per image (MONAI ``RandGaussianNoise``, whose
    ``sample_std`` draws the standard deviation per call)."""

    def __init__(self, std: float, p: float) -> None:
        super().__init__(p=p)
        self._param_generator = K.random_generator.PlainUniformGenerator(
            ((0.0, std), "std", None, None)
        )

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, object],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        std = params["std"].to(input).view(-1, *[1] * (input.dim() - 1))
        return input + torch.randn_like(input) * std


def crop_boxes(n: int, image_size: int, min_edge: int, device: torch.device) -> torch.Tensor:
    """Random crop boxes as MONAI's ``RandSpatialCrop(random_size=True)`` draws them.

    Each edge is an integer uniform in ``[min_edge, image_size]``, independently, and the
    box lies anywhere inside the image.

    Returns:
        ``(n, 4, 2)`` corners ``(x, y)``: top-left, top-right, bottom-right, bottom-left
        (Kornia's box format), in pixels.
    """
    w = torch.randint(min_edge, image_size + 1, (n,))
    h = torch.randint(min_edge, image_size + 1, (n,))
    x0 = (torch.rand(n) * (image_size - w + 1)).floor()
    y0 = (torch.rand(n) * (image_size - h + 1)).floor()
    x1, y1 = x0 + w - 1, y0 + h - 1
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return torch.stack([torch.stack(c, dim=1) for c in corners], dim=1).float().to(device)


def _augmentations(noise_std: float, flip: bool, light: bool) -> nn.Sequential:
    """The Kornia pipeline after the crop, on ``(B, 1, H, W)`` images in [0, 1]."""
    steps: list[nn.Module] = []
    if not light:
        steps += [
            K.RandomAffine(
                degrees=9.74, scale=(0.9, 1.1, 0.9, 1.1), padding_mode="border", p=0.8
            ),  # rotation of up to 0.17 rad, each axis scaled by 0.9-1.1 (``RandAffine``)
            K.RandomGamma(gamma=(0.6, 1.6), p=0.8),
            _ScaleIntensity(0.2, p=0.8),
            K.RandomGaussianBlur((5, 5), sigma=(0.25, 1.0), p=0.3),
            _GaussianNoise(noise_std, p=0.5),
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
        self.image_size = image_size
        self.min_edge = max(4, int(image_size * min_crop))  # as ``ssl_views``
        self.augment = _augmentations(noise_std, flip, light)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, n_views, 1, H, W)`` float32, drawn from ``seed``."""
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            stacked = images.float().repeat(self.n_views, 1, 1, 1)  # view-major
            boxes = crop_boxes(len(stacked), self.image_size, self.min_edge, images.device)
            size = (self.image_size, self.image_size)
            views: torch.Tensor = self.augment(crop_and_resize(stacked, boxes, size))
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
