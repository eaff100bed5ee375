"""BYOL against the paper's formulas (Grill et al. 2020, eqs. 2 and 5, section 3.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medssl.models.encoders import build_encoder
from medssl.ssl.byol import BYOL, momentum_at, regression_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _reference(q: np.ndarray, z: np.ndarray) -> float:
    """``|| q/|q| - z/|z| ||^2`` per row (eq. 2), averaged, with explicit sums."""
    total = 0.0
    for a, b in zip(q.astype(np.float64), z.astype(np.float64), strict=True):
        a, b = a / math.sqrt(sum(a * a)), b / math.sqrt(sum(b * b))
        total += sum((a - b) ** 2)
    return total / len(q)


def test_regression_loss_matches_reference() -> None:
    g = torch.Generator().manual_seed(0)
    q, z = torch.randn(9, 6, generator=g), torch.randn(9, 6, generator=g)
    assert regression_loss(q, z).item() == pytest.approx(_reference(q.numpy(), z.numpy()), 1e-6)
    assert regression_loss(q, 3.0 * q).item() == pytest.approx(0.0, abs=1e-6)
    assert regression_loss(q, -q).item() == pytest.approx(4.0, abs=1e-5)


def test_momentum_schedule() -> None:
    assert momentum_at(0, 100, 0.99) == pytest.approx(0.99)
    assert momentum_at(50, 100, 0.99) == pytest.approx(0.995)
    assert momentum_at(100, 100, 0.99) == pytest.approx(1.0)


def _byol() -> BYOL:
    torch.manual_seed(0)
    encoder, dim = build_encoder("resnet10", 2, 1, False)
    return BYOL(encoder, dim, proj_dim=8, hidden_dim=16, momentum=0.9)


def test_loss_is_symmetric_and_only_the_online_network_learns() -> None:
    model = _byol()
    views = torch.rand(4, 2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    model.train()
    loss, features = model(views)
    swapped, _ = model(views.flip(1))
    assert loss.item() == pytest.approx(swapped.item(), rel=1e-4)
    assert features.shape == (8, 512) and 0.0 <= loss.item() <= 8.0
    loss.backward()
    assert all(p.grad is None for p in model.target_encoder.parameters())
    assert any(p.grad is not None for p in model.encoder.parameters())


def test_teacher_follows_the_exponential_moving_average() -> None:
    model = _byol()
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = [t.clone() for t in model.target_encoder.parameters()]
    model.on_step_end(step=0, total=10)  # tau = 0.9 at step 0
    for t, old, o in zip(model.target_encoder.parameters(), before, model.encoder.parameters(),
                         strict=True):  # fmt: skip
        assert torch.allclose(t, 0.9 * old + 0.1 * o, atol=1e-6)
    with pytest.raises(ValueError, match="byol.momentum"):
        BYOL(build_encoder("resnet10", 2, 1, False)[0], 512, momentum=1.0)
