"""SimCLR: NT-Xent against MONAI's ContrastiveLoss and a loop reference; the module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.losses import ContrastiveLoss

from medssl.models.encoders import build_encoder
from medssl.ssl.simclr import SimCLR, nt_xent

pytestmark = pytest.mark.usefixtures("one_thread")


def _reference(z_a: np.ndarray, z_b: np.ndarray, tau: float) -> float:
    """Eq. 1 of Chen et al. (2020), one anchor at a time, float64."""
    z = np.concatenate([z_a, z_b]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        num = math.exp(z[i] @ z[j] / tau)
        den = sum(math.exp(z[i] @ z[k] / tau) for k in range(n2) if k != i)
        total += -math.log(num / den)
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.2, 0.5])
def test_nt_xent_matches_monai_and_reference(tau: float) -> None:
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    ours = nt_xent(z_a, z_b, tau)
    monai = ContrastiveLoss(temperature=tau)(z_a, z_b)
    assert torch.allclose(ours, monai, atol=1e-5)
    assert ours.item() == pytest.approx(_reference(z_a.numpy(), z_b.numpy(), tau), abs=1e-5)


def test_nt_xent_prefers_aligned_views() -> None:
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    assert nt_xent(z, z, 0.2) < nt_xent(z, torch.roll(z, 1, dims=0), 0.2)


def test_nt_xent_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="two"):
        nt_xent(torch.zeros(4, 3), torch.zeros(5, 3), 0.2)


def test_simclr_forward_shapes_and_gradients() -> None:
    torch.manual_seed(0)
    encoder, dim = build_encoder("resnet18", 2, 1, False)
    model = SimCLR(encoder, dim, proj_dim=16, temperature=0.2)
    views = torch.rand(4, 2, 1, 16, 16)
    loss, features = model(views)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert features.shape == (8, dim) and not features.requires_grad
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.embed(views[:, 0]).shape == (4, dim)
    assert set(model.encoder_state_dict()) == set(encoder.state_dict())


def test_simclr_rejects_bad_temperature() -> None:
    encoder, dim = build_encoder("resnet18", 2, 1, False)
    with pytest.raises(ValueError, match="temperature"):
        SimCLR(encoder, dim, temperature=0.0)
