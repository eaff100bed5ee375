"""Preprocessing and view pipelines: shapes, ranges, seeding, HU windows."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medssl.data.transforms import (
    CT_WINDOWS_HU,
    RandIntensityWindow,
    mae_view,
    preprocess,
    preprocessing_config,
    preprocessing_steps,
    ssl_views,
    windows_in_unit_range,
)


def _nifti(path: Path, array: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(array.astype(np.float32), np.eye(4)), str(path))
    return str(path)


@pytest.mark.parametrize("dims", [2, 3])
def test_preprocess_shape_and_range(tmp_path: Path, dims: int) -> None:
    rng = np.random.default_rng(0)
    array = rng.uniform(-2000, 3000, size=[20] * dims)
    item = preprocess(8, dims, "ct_lung")({"image": _nifti(tmp_path / "x.nii.gz", array)})
    image = torch.as_tensor(item["image"])
    assert image.shape == (1, *[8] * dims)
    assert image.dtype == torch.float32 and image.min() >= 0.0 and image.max() <= 1.0


def test_preprocess_rejects_unknown_intensity() -> None:
    with pytest.raises(ValueError, match="intensity"):
        preprocess(8, 2, "ct_brain")


def test_preprocessing_steps_are_the_one_definition() -> None:
    """Training Compose and bundle config come from the same steps (tensors: tests/export)."""
    steps = preprocessing_steps(8, 3, "ct_lung")
    assert [type(t) for t in preprocess(8, 3, "ct_lung").transforms] == [c for c, _ in steps]
    config = preprocessing_config(8, 3, "ct_lung")
    assert json.loads(json.dumps(config)) == config
    assert config["transforms"] == [{"_target_": c.__name__, **kw} for c, kw in steps]
    with pytest.raises(ValueError, match="spatial_dims"):
        preprocessing_steps(8, 4, "xray")
    with pytest.raises(ValueError, match="image_size"):
        preprocessing_steps(0, 2, "xray")


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("factory", [ssl_views, mae_view])
def test_views_keep_shape_and_follow_the_seed(dims: int, factory: object) -> None:
    image = torch.rand(1, *[16] * dims, generator=torch.Generator().manual_seed(0))
    views = factory(16, dims, min_crop=0.5)  # type: ignore[operator]
    views.set_random_state(seed=3)
    a = torch.as_tensor(views(image))
    views.set_random_state(seed=3)
    b = torch.as_tensor(views(image))
    c = torch.as_tensor(views(image))
    assert a.shape == image.shape
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_flips_are_opt_in() -> None:
    """No mirroring of chests unless asked (situs: the heart is on the left)."""
    steps = [type(t).__name__ for t in ssl_views(16, 2).transforms]
    assert "RandFlip" not in steps
    assert "RandFlip" in [type(t).__name__ for t in ssl_views(16, 2, flip=True).transforms]


def test_windows_in_unit_range_reference() -> None:
    got = windows_in_unit_range("ct_full", [CT_WINDOWS_HU["soft_tissue"]])
    lo, hi = (-160 + 1024) / 4095, (240 + 1024) / 4095
    assert got == [pytest.approx((lo, hi))]
    with pytest.raises(ValueError, match="lower < upper"):
        windows_in_unit_range("ct_full", [(10.0, -10.0)])


def test_rand_intensity_window_reference() -> None:
    image = torch.linspace(0, 1, 11).reshape(1, 11, 1)
    window = RandIntensityWindow([(0.2, 0.6)], prob=1.0)
    window.set_random_state(seed=0)
    expected = np.clip((image.numpy() - 0.2) / 0.4, 0, 1)
    assert np.allclose(torch.as_tensor(window(image)).numpy(), expected, atol=1e-6)
    never = RandIntensityWindow([(0.2, 0.6)], prob=0.0)
    assert torch.equal(torch.as_tensor(never(image)), image)


def test_ssl_views_apply_hu_windows_first() -> None:
    windows = windows_in_unit_range("ct_full", list(CT_WINDOWS_HU.values()))
    views = ssl_views(16, 2, windows=windows)
    assert isinstance(views.transforms[0], RandIntensityWindow)
    out = torch.as_tensor(views(torch.rand(1, 16, 16)))
    assert out.shape == (1, 16, 16)
