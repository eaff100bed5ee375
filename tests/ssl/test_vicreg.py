"""VICReg loss against a float64 reference written from the paper's Algorithm 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medssl.models.encoders import build_encoder
from medssl.ssl.vicreg import VICReg, vicreg_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _reference(x: np.ndarray, y: np.ndarray, lam: float, mu: float, nu: float) -> float:
    """Bardes et al. (ICLR 2022), Algorithm 1, with explicit sums."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    n, d = x.shape
    sim = ((x - y) ** 2).mean()
    std = 0.0
    cov = 0.0
    for z in (x, y):
        zc = z - z.mean(axis=0)
        s = np.sqrt(zc.var(axis=0, ddof=1) + 1e-4)
        std += np.maximum(0.0, 1.0 - s).mean() / 2
        c = zc.T @ zc / (n - 1)
        cov += sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return lam * sim + mu * std + nu * cov


@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 2.0, 3.0)])
def test_vicreg_loss_matches_reference(weights: tuple[float, float, float]) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 7, generator=g) * 0.5, torch.randn(10, 7, generator=g)
    got = vicreg_loss(x.double(), y.double(), *weights).item()
    assert got == pytest.approx(_reference(x.numpy(), y.numpy(), *weights), rel=1e-9)


def test_vicreg_variance_term_punishes_collapse() -> None:
    collapsed = torch.ones(8, 4)
    # invariance 0, covariance 0, each std = sqrt(1e-4) = 0.01: hinge (1 - 0.01) for both views
    assert vicreg_loss(collapsed, collapsed, 25.0, 25.0, 1.0).item() == pytest.approx(25 * 0.99)


def test_vicreg_module_forward() -> None:
    torch.manual_seed(0)
    encoder, dim = build_encoder("resnet18", 2, 1, False)
    model = VICReg(encoder, dim, proj_dim=32)
    loss, features = model(torch.rand(4, 2, 1, 16, 16))
    assert torch.isfinite(loss) and features.shape == (8, dim)
    loss.backward()
    assert next(iter(model.encoder.parameters())).grad is not None


def test_vicreg_rejects_single_sample() -> None:
    with pytest.raises(ValueError, match="N>=2"):
        vicreg_loss(torch.zeros(1, 3), torch.zeros(1, 3))
