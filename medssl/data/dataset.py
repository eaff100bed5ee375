"""Preprocessed images (MONAI CacheDataset in memory, PersistentDataset on disk) and views.

Decoding and resizing happen once per image; only the random views are computed per step:
per image in DataLoader workers (:class:`ViewDataset`), or per batch on the training device
(:class:`KeyedImages` feeding :class:`medssl.data.batch_views.ViewBatches`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import CacheDataset, PersistentDataset, get_track_meta, set_track_meta
from monai.data.utils import json_hashing
from monai.transforms import Compose
from torch.utils.data import Dataset as TorchDataset

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
    # plain tensors: MONAI MetaTensors carry per-item metadata that slows every later op
    return torch.stack([_plain(ds[i]["image"]) for i in range(len(ds))])


def _plain(x: object) -> torch.Tensor:
    """A MONAI output (MetaTensor or array) as a plain float32 tensor (cheap to collate)."""
    return torch.as_tensor(x).as_subclass(torch.Tensor).float()


def apply_views(transform: Callable[[Any], Any], images: Sequence[torch.Tensor]) -> torch.Tensor:
    """``transform`` of each image, stacked as plain float32 tensors ``(N, C, *spatial)``.

    MONAI's metadata tracking is off meanwhile: the outputs are plain tensors, without
    MetaTensor bookkeeping.
    """
    tracking = get_track_meta()
    set_track_meta(False)
    try:
        return torch.stack([_plain(transform(image)) for image in images])
    finally:
        set_track_meta(tracking)


class DiskCachedImages(TorchDataset[torch.Tensor]):
    """Preprocessed images cached on disk by MONAI's PersistentDataset, shared by processes.

    For data sets larger than memory and for several ranks on one machine: each image is
    decoded and resized once into ``cache_dir`` (keyed by its path and the preprocessing),
    then read back through the page cache.

    Args:
        paths: NIfTI files written by ingestion (file names are content hashes).
        image_size: edge length after resizing.
        spatial_dims: 2 or 3.
        intensity: intensity preset.
        cache_dir: folder of the cache.
    """

    def __init__(
        self,
        paths: Sequence[str],
        image_size: int,
        spatial_dims: int,
        intensity: str,
        cache_dir: Path,
    ) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.ds = PersistentDataset(
            [{"image": p} for p in paths],
            transform=preprocess(image_size, spatial_dims, intensity),
            cache_dir=cache_dir,
            hash_transform=json_hashing,
        )

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> torch.Tensor:
        """``(1, *spatial)`` float32."""
        return _plain(self.ds[index]["image"])

    def warm(self, workers: int) -> None:
        """Fill the cache with ``workers`` threads (items already cached are only read)."""
        with ThreadPool(max(1, workers)) as pool:
            pool.map(self.__getitem__, range(len(self)))


def view_seed(seed: int, epoch: int, index: int) -> int:
    """Seed of the random views of image ``index`` in ``epoch`` (NumPy SeedSequence hash).

    Augmentations thus depend on ``(seed, epoch, index)`` only, not on the number of
    DataLoader workers, ranks, or where a resumed run restarted.
    """
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class ViewDataset(TorchDataset[torch.Tensor]):
    """Random views of cached images, keyed by ``(epoch, index)``.

    Args:
        images: ``(N, 1, *spatial)`` tensor or a sequence of ``(1, *spatial)`` tensors.
        views: random MONAI transform on one ``(1, *spatial)`` image.
        n_views: views per image (2 for SimCLR/VICReg, 1 for MAE).
        seed: run seed.
    """

    def __init__(
        self,
        images: torch.Tensor | TorchDataset[torch.Tensor],
        views: Compose,
        n_views: int,
        seed: int,
    ) -> None:
        self.images = images
        self.views = views
        self.n_views = n_views
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        """``(epoch, index)`` -> ``(n_views, 1, *spatial)`` float32."""
        epoch, index = key
        self.views.set_random_state(seed=view_seed(self.seed, epoch, index))
        image = self.images[index]
        return apply_views(self.views, [image] * self.n_views)


class KeyedImages(TorchDataset[tuple[torch.Tensor, int]]):
    """Cached images with their view seeds, keyed by ``(epoch, index)``: the input of
    batch views (:class:`medssl.data.batch_views.ViewBatches`).

    Args:
        images: ``(N, 1, *spatial)`` tensor or a sequence of ``(1, *spatial)`` tensors.
        seed: run seed.
    """

    def __init__(self, images: torch.Tensor | TorchDataset[torch.Tensor], seed: int) -> None:
        self.images = images
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        """``(epoch, index)`` -> ``((1, *spatial)`` float32, view seed)."""
        epoch, index = key
        return _plain(self.images[index]), view_seed(self.seed, epoch, index)
