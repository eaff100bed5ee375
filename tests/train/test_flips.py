"""Flip-averaged frozen features: invariant to every flip, equal to the plain mean."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from medssl.train.flips import flip_averaged, flip_sets, flip_views


def test_flip_sets_cover_every_axis_subset() -> None:
    assert flip_sets(2) == [(), (2,), (3,), (2, 3)]
    sets = flip_sets(3)
    assert len(sets) == 8 and len(set(sets)) == 8 and sets[0] == ()
    assert all(all(2 <= d <= 4 for d in dims) for dims in sets)


def _linear_features(
    spatial: tuple[int, ...],
) -> tuple[torch.Tensor, Callable[[torch.Tensor], np.ndarray]]:
    """A fixed random linear map of the pixels: not invariant to any flip."""
    weight = torch.randn(int(np.prod(spatial)), 5, generator=torch.Generator().manual_seed(0))

    def features(x: torch.Tensor) -> np.ndarray:
        return (x.reshape(len(x), -1) @ weight).double().numpy()

    return weight, features


@pytest.mark.parametrize("spatial", [(6, 7), (3, 4, 5)])
def test_averaged_features_do_not_change_under_any_flip(spatial: tuple[int, ...]) -> None:
    x = torch.rand((4, 1, *spatial), generator=torch.Generator().manual_seed(1))
    _, features = _linear_features(spatial)
    plain = features(x)
    averaged = flip_averaged(features, x)
    assert averaged.shape == (4, 5) and averaged.dtype == np.float64
    assert not np.allclose(features(torch.flip(x, (2,))), plain)
    for dims in flip_sets(len(spatial)):
        flipped = flip_averaged(features, torch.flip(x, dims) if dims else x)
        np.testing.assert_allclose(flipped, averaged, rtol=1e-6, atol=1e-5)


def test_average_of_a_linear_map_is_the_map_of_the_averaged_image() -> None:
    x = torch.rand((3, 1, 5, 5), generator=torch.Generator().manual_seed(2))
    weight, features = _linear_features((5, 5))
    mean_image = sum(torch.flip(x, d) if d else x for d in flip_sets(2)) / 4
    expected = (mean_image.reshape(3, -1) @ weight).double().numpy()
    np.testing.assert_allclose(flip_averaged(features, x), expected, rtol=1e-5, atol=1e-5)


def test_the_first_view_is_the_image_itself_and_the_average_is_their_mean() -> None:
    x = torch.rand((3, 1, 4, 6), generator=torch.Generator().manual_seed(3))
    _, features = _linear_features((4, 6))
    views = flip_views(features, x)
    assert len(views) == 4
    np.testing.assert_array_equal(views[0], features(x))
    np.testing.assert_allclose(flip_averaged(features, x), np.mean(views, axis=0))
