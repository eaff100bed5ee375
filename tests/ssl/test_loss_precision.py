"""The SSL losses run in float32 even inside the training loop's bfloat16 autocast."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from medssl.ssl.byol import regression_loss
from medssl.ssl.mae import masked_mse
from medssl.ssl.simclr import nt_xent
from medssl.ssl.vicreg import vicreg_loss

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: dict[str, Loss] = {
    "simclr": lambda a, b: nt_xent(a, b, 0.2),
    "vicreg": vicreg_loss,
    "byol": regression_loss,
    "mae": lambda a, b: masked_mse(a.view(8, 4, 64), b.view(8, 4, 64), torch.ones(8, 4)),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_under_bf16_autocast_equals_the_float32_loss(name: str) -> None:
    """Same float32 inputs, with and without autocast: the same value to float32 rounding
    (a bfloat16 matmul would differ by about 1e-2 on these logits)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g)
    reference = LOSSES[name](a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = LOSSES[name](a, b)
    assert autocast.dtype == torch.float32
    assert torch.allclose(autocast, reference, rtol=1e-6, atol=1e-6)
