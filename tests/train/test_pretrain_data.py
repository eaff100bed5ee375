"""Pretraining data path: cached images, seeded views, resumable distributed sampler."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medssl.data.dataset import DiskCachedImages, ViewDataset, load_stack, view_seed
from medssl.data.transforms import ssl_views
from medssl.train.distributed import EpochSampler


def _views_loader(images: torch.Tensor, workers: int, start: int = 0) -> list[torch.Tensor]:
    dataset = ViewDataset(images, ssl_views(16, 2), n_views=2, seed=5)
    sampler = EpochSampler(dataset, num_replicas=1, rank=0, seed=5)
    sampler.set_epoch(1)
    sampler.set_start(start)
    loader = DataLoader(dataset, batch_size=3, sampler=sampler, num_workers=workers)
    return list(loader)


def test_views_do_not_depend_on_workers_or_resume_point() -> None:
    images = torch.rand(9, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    serial = _views_loader(images, workers=0)
    parallel = _views_loader(images, workers=2)
    resumed = _views_loader(images, workers=0, start=3)
    assert [b.shape for b in serial] == [(3, 2, 1, 16, 16)] * 3
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(serial[1:], resumed, strict=True))
    assert not torch.equal(serial[0][:, 0], serial[0][:, 1])  # two different views


def test_view_seed_changes_with_each_input() -> None:
    seeds = {view_seed(s, e, i) for s in (0, 1) for e in (0, 1) for i in (0, 1)}
    assert len(seeds) == 8 and view_seed(0, 1, 2) == view_seed(0, 1, 2)


def test_epoch_sampler_partitions_ranks_and_reshuffles() -> None:
    data = list(range(10))
    parts = []
    for rank in range(2):
        sampler = EpochSampler(data, num_replicas=2, rank=rank, seed=0)  # type: ignore[arg-type]
        sampler.set_epoch(3)
        parts.append([i for e, i in sampler if e == 3])
    assert len(parts[0]) == len(parts[1]) == 5 and not set(parts[0]) & set(parts[1])
    other = EpochSampler(data, num_replicas=2, rank=0, seed=0)  # type: ignore[arg-type]
    other.set_epoch(4)
    assert [i for _, i in other] != parts[0]
    other.set_start(2)
    assert len(other) == 3
    with pytest.raises(ValueError, match="start"):
        other.set_start(6)


def test_disk_cache_matches_the_memory_cache(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"image-{i}.nii.gz"
        nib.save(nib.Nifti1Image(rng.random((20, 24)).astype(np.float32), np.eye(4)), str(path))
        paths.append(str(path))
    memory = load_stack(paths, 16, 2, "xray")
    disk = DiskCachedImages(paths, 16, 2, "xray", tmp_path / "cache")
    disk.warm(workers=2)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 3
    assert all(torch.equal(disk[i], memory[i]) for i in range(3))
