"""Saliency maps point at the pixels that drive the logit (MONAI Grad-CAM and occlusion)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medssl.report.saliency import choose_method, layer_resolution, saliency_maps


class CornerLogit(nn.Module):
    """Logit = mean intensity of the top-left 8 x 8 corner (nothing else matters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, :8, :8].mean(dim=(1, 2)) * 10 - 5


class TinyCNN(nn.Module):
    """conv -> ReLU -> global average -> linear, weights set so bright pixels raise the logit."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.act = nn.ReLU()
        self.fc = nn.Linear(1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / 9)
            self.fc.weight.fill_(1.0)
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


def _bright_corner(n: int = 2) -> torch.Tensor:
    x = torch.zeros(n, 1, 32, 32)
    x[:, :, :8, :8] = 1.0
    return x


def test_occlusion_finds_the_deciding_region() -> None:
    maps = saliency_maps(CornerLogit(), _bright_corner(), "occlusion", mask_size=8)
    assert maps.shape == (2, 1, 32, 32) and maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    inside, outside = maps[:, 0, :8, :8].mean(), maps[:, 0, 16:, 16:].mean()
    assert inside > 0.3 and outside < 0.05


def test_gradcam_follows_activations() -> None:
    torch.manual_seed(0)
    maps = saliency_maps(TinyCNN(), _bright_corner(1), "gradcam", target_layer="act")
    assert maps.shape == (1, 1, 32, 32)
    assert maps[0, 0, :6, :6].mean() > 0.5 > maps[0, 0, 20:, 20:].mean()


def test_method_choice() -> None:
    net = TinyCNN()
    assert layer_resolution(net, "act", (1, 1, 32, 32)) == 32
    assert choose_method(net, "act", (1, 1, 32, 32), "auto") == "gradcam"
    assert choose_method(net, None, (1, 1, 32, 32), "auto") == "occlusion"
    assert choose_method(net, "act", (1, 1, 32, 32), "occlusion") == "occlusion"
    with pytest.raises(ValueError, match="saliency method"):
        saliency_maps(net, _bright_corner(1), "lime")
    with pytest.raises(ValueError, match="target layer"):
        saliency_maps(net, _bright_corner(1), "gradcam")


def test_constant_maps_do_not_give_nan() -> None:
    maps = saliency_maps(CornerLogit(), torch.zeros(1, 1, 16, 16), "occlusion", mask_size=4)
    assert np.isfinite(maps).all()
