"""Pixel baseline features: area downsampling equals block means."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medssl.train.pixels import pixel_features


def test_area_downsampling_is_block_mean() -> None:
    x = torch.rand(3, 1, 8, 8)
    feats = pixel_features(x, 4)
    ref = x.numpy().reshape(3, 1, 4, 2, 4, 2).mean(axis=(3, 5)).reshape(3, -1)
    assert feats.shape == (3, 16) and feats.dtype == np.float64
    np.testing.assert_allclose(feats, ref, rtol=1e-6)


def test_small_images_are_kept_and_3d_works() -> None:
    x = torch.rand(2, 1, 6, 6)
    np.testing.assert_allclose(pixel_features(x, 28), x.reshape(2, -1).numpy(), rtol=1e-7)
    assert pixel_features(torch.rand(2, 1, 8, 8, 8), 2).shape == (2, 8)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="pixel_size"):
        pixel_features(torch.rand(2, 1, 8, 8), 0)
    with pytest.raises(ValueError, match="images must be"):
        pixel_features(torch.rand(2, 8), 4)
