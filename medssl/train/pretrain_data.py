"""The pretraining data path: the method's random views, batch sizes, the seeded loader.

Views are drawn from the cached images either per image in DataLoader workers (engine
``sample``, :class:`medssl.data.dataset.ViewDataset`, seeded per ``(seed, epoch, image)``)
or per batch on the training device (engine ``batch``,
:class:`medssl.data.batch_views.ViewBatches`, seeded from its images' seeds); either way
they depend neither on the number of workers nor on where a resumed run restarts
(:class:`medssl.train.distributed.EpochSampler`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from monai.transforms.compose import Compose
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from medssl.data.batch_views import BatchViews, ViewBatches
from medssl.data.dataset import KeyedImages, ViewDataset
from medssl.data.transforms import mae_view, ssl_views
from medssl.train import distributed as dist
from medssl.train.determinism import seed_worker
from medssl.train.pretrain_config import PretrainConfig, RunOptions

#: ``(N, 1, *spatial)`` cached images, or a dataset of ``(1, *spatial)`` ones.
Images = torch.Tensor | TorchDataset[Any]


def build_views(c: PretrainConfig) -> Compose:
    """The random view transform of the configured method."""
    if c.method == "mae":
        return mae_view(
            c.image_size, c.spatial_dims, min_crop=c.min_crop, flip=c.flip, windows=c.windows
        )
    return ssl_views(
        c.image_size,
        c.spatial_dims,
        min_crop=c.min_crop,
        flip=c.flip,
        noise_std=c.noise_std,
        windows=c.windows,
    )


def build_batch_views(c: PretrainConfig, n_views: int) -> BatchViews:
    """The whole-batch view maker of the configured method (engine ``batch``)."""
    return BatchViews(
        c.image_size,
        n_views,
        min_crop=c.min_crop,
        flip=c.flip,
        noise_std=c.noise_std,
        light=c.method == "mae",
    )


def batch_sizes(c: PretrainConfig, n: int, world: int) -> tuple[int, int]:
    """``(per-rank batch, steps per epoch)`` for ``n`` images on ``world`` ranks."""
    per_rank = min(c.batch_size, n) // world
    if per_rank < 1 or (c.method != "mae" and per_rank * world < 2):
        raise ValueError(
            f"pretrain.batch_size {c.batch_size} with {n} images on {world} processes leaves "
            "no batch; use more images or fewer processes"
        )
    return per_rank, (n // world) // per_rank


def make_loader(
    images: Images,
    c: PretrainConfig,
    o: RunOptions,
    info: dist.DistInfo,
    n_views: int,
    per_rank: int,
) -> tuple[Iterable[torch.Tensor], dist.EpochSampler]:
    """Views of the cached images, ``(per_rank, n_views, 1, *spatial)`` batches.

    With ``c.views_engine == "sample"`` the views are made in the loader's workers; with
    ``"batch"`` the loader yields images and the views are drawn on ``info.device``.

    Args:
        images: cached images (see :func:`medssl.train.pretrain.pretrain`).
        c: configuration (views, seed).
        o: options (workers).
        info: rank and device.
        n_views: views per image of the method.
        per_rank: batch size of this rank.

    Returns:
        The loader and its sampler (call ``set_epoch`` / ``set_start`` before each epoch).
    """
    dataset: TorchDataset[Any]
    if c.views_engine == "batch":
        dataset = KeyedImages(images, c.seed)
    else:
        dataset = ViewDataset(images, build_views(c), n_views, c.seed)
    sampler = dist.EpochSampler(dataset, info.world_size, info.rank, c.seed)
    loader: DataLoader[Any] = DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=sampler,
        num_workers=o.workers,
        drop_last=True,
        pin_memory=info.device.type == "cuda",
        persistent_workers=o.workers > 0,
        prefetch_factor=4 if o.workers > 0 else None,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(c.seed),
    )
    if c.views_engine == "batch":
        return ViewBatches(
            loader, build_batch_views(c, n_views).to(info.device), info.device
        ), sampler
    return loader, sampler
