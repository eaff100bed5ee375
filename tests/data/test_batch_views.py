"""Whole-batch views (Kornia): seeded, resumable, the same kinds of views as per image."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from medssl.data.batch_views import BatchViews, ViewBatches, batch_seed, resolve_engine
from medssl.data.dataset import KeyedImages, view_seed
from medssl.train.distributed import EpochSampler


def _images(n: int = 9, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0))


def _batches(images: torch.Tensor, workers: int, start: int = 0) -> list[torch.Tensor]:
    dataset = KeyedImages(images, seed=5)
    sampler = EpochSampler(dataset, num_replicas=1, rank=0, seed=5)
    sampler.set_epoch(1)
    sampler.set_start(start)
    loader = DataLoader(dataset, batch_size=3, sampler=sampler, num_workers=workers)
    return list(ViewBatches(loader, BatchViews(16, 2), torch.device("cpu")))


def test_views_do_not_depend_on_workers_or_resume_point() -> None:
    images = _images()
    serial = _batches(images, workers=0)
    parallel = _batches(images, workers=2)
    resumed = _batches(images, workers=0, start=3)
    assert [b.shape for b in serial] == [(3, 2, 1, 16, 16)] * 3
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(serial[1:], resumed, strict=True))
    assert not torch.equal(serial[0][:, 0], serial[0][:, 1])  # two different views
    assert not torch.equal(serial[0][0, 0], serial[0][1, 0])  # per-image parameters


def test_keyed_images_carry_the_per_image_view_seed() -> None:
    image, seed = KeyedImages(_images(), seed=5)[(2, 4)]
    assert image.shape == (1, 16, 16) and seed == view_seed(5, 2, 4)


def test_batch_seed_depends_on_every_image() -> None:
    a = batch_seed(torch.tensor([1, 2, 3]))
    assert a == batch_seed(torch.tensor([1, 2, 3]))
    assert len({a, batch_seed(torch.tensor([1, 2, 4])), batch_seed(torch.tensor([3, 2, 1]))}) == 3


def test_views_crop_and_perturb_but_keep_the_image() -> None:
    """A bright square on black stays recognisable: crops keep part of it, intensities stay
    near [0, 1] (gamma, +-20 % scaling, noise of std 0.03)."""
    images = torch.zeros(64, 1, 32, 32)
    images[:, :, 8:24, 8:24] = 1.0
    views = BatchViews(32, 2, min_crop=0.5)(images, seed=0)
    assert views.shape == (64, 2, 1, 32, 32) and views.dtype == torch.float32
    assert float(views.min()) > -0.3 and float(views.max()) < 1.5
    assert bool((views.amax(dim=(2, 3, 4)) > 0.5).all())  # the square is in every view
    changed = (views[:, 0] - images).abs().mean(dim=(1, 2, 3))
    assert float((changed > 1e-3).float().mean()) > 0.9


def test_mae_views_are_crops_only() -> None:
    """The light (MAE) views resample but neither add noise nor change the intensity range."""
    images = torch.ones(8, 1, 16, 16)
    views = BatchViews(16, 1, light=True)(images, seed=3)
    assert views.shape == (8, 1, 1, 16, 16)
    assert torch.allclose(views, torch.ones_like(views), atol=1e-5)


def test_engine_resolution() -> None:
    assert resolve_engine("auto", 2, []) == "batch"
    assert resolve_engine("auto", 3, []) == "sample"
    assert resolve_engine("auto", 2, [(0.0, 1.0)]) == "sample"
    assert resolve_engine("sample", 2, []) == "sample"
    with pytest.raises(ValueError, match="pretrain.views.engine 'batch'"):
        resolve_engine("batch", 3, [])
    with pytest.raises(ValueError, match="pretrain.views.engine must be one of"):
        resolve_engine("gpu", 2, [])
