"""Encoders: every name builds, maps (B, C, *spatial) to (B, feature_dim), in 2D and 3D."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from medssl.models.encoders import ENCODERS, VIT_SPECS, build_encoder

needs_einops = pytest.mark.skipif(
    importlib.util.find_spec("einops") is None, reason="MONAI's ViT blocks need einops"
)
CNNS = sorted(set(ENCODERS) - set(VIT_SPECS))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", CNNS)
def test_cnn_encoders_2d(name: str) -> None:
    net, dim = build_encoder(name, 2, 1, small_input=False)
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(2, 1, 32, 32)).shape == (2, dim)


@pytest.mark.parametrize("small_input", [False, True])
def test_resnet18_3d(small_input: bool) -> None:
    net, dim = build_encoder("resnet18", 3, 1, small_input)
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 16, 16, 16)).shape == (1, 512) and dim == 512


@needs_einops
@pytest.mark.parametrize("dims", [2, 3])
def test_vit_weights_do_not_depend_on_image_size(dims: int) -> None:
    torch.manual_seed(0)
    net, dim = build_encoder("vit_tiny", dims, 1, small_input=True)
    other, _ = build_encoder("vit_tiny", dims, 1, small_input=True)
    other.load_state_dict(net.state_dict())  # strict
    net.eval()
    with torch.no_grad():
        for size in (16, 24):
            assert net(torch.rand(2, 1, *[size] * dims)).shape == (2, dim)
    assert dim == VIT_SPECS["vit_tiny"].hidden


@needs_einops
def test_vit_rejects_sizes_off_the_patch_grid() -> None:
    net, _ = build_encoder("vit_tiny", 2, 1, small_input=True)
    with pytest.raises(ValueError, match="multiple of 8"):
        net(torch.rand(1, 1, 20, 20))


def test_unknown_encoder_and_dims() -> None:
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("resnet1000", 2)
    with pytest.raises(ValueError, match="spatial_dims"):
        build_encoder("resnet18", 4)
