"""MAE on MONAI's MaskedAutoEncoderViT: patch order, masked loss, encoder export."""

from __future__ import annotations

import importlib.util
import itertools

import pytest
import torch

from medssl.models.encoders import VIT_SPECS, build_encoder
from medssl.ssl.mae import MAE, masked_mse, patchify

pytestmark = pytest.mark.usefixtures("one_thread")


needs_einops = pytest.mark.skipif(
    importlib.util.find_spec("einops") is None, reason="MONAI's ViT blocks need einops"
)


def _patchify_reference(x: torch.Tensor, p: int) -> torch.Tensor:
    """Loop over the patch grid in row-major order (the order of conv-output flatten)."""
    b, c, *size = x.shape
    grid = [s // p for s in size]
    rows = []
    for cell in itertools.product(*[range(g) for g in grid]):
        sl = tuple(slice(i * p, (i + 1) * p) for i in cell)
        patch = x[(slice(None), slice(None), *sl)]  # (B, C, p, p[, p])
        rows.append(patch.movedim(1, -1).reshape(b, -1))  # voxels, channel last
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize("shape", [(2, 1, 8, 12), (2, 2, 8, 4, 12), (1, 1, 4, 4)])
def test_patchify_matches_loop_reference(shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(patchify(x, 4), _patchify_reference(x, 4))


def test_patchify_token_order_matches_conv_embedding() -> None:
    """Token i of patchify sits where token i of a stride-p conv does."""
    x = torch.randn(1, 1, 8, 12)
    conv = torch.nn.Conv2d(1, 1, kernel_size=4, stride=4, bias=False)
    torch.nn.init.ones_(conv.weight)
    sums = conv(x).flatten(2).transpose(1, 2)[..., 0]  # (1, L)
    assert torch.allclose(patchify(x, 4).sum(-1), sums, atol=1e-5)


def test_masked_mse_reference() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    mask = torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 1, 1]])
    per = {(b, t): ((pred[b, t] - target[b, t]) ** 2).mean() for b in range(2) for t in range(5)}
    expected = sum(per[k] for k in per if mask[k] == 1) / 4
    assert masked_mse(pred, target, mask, norm_pix=False).item() == pytest.approx(expected.item())
    t = target
    normed = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
    got = masked_mse(pred, target, mask, norm_pix=True)
    assert got.item() == pytest.approx(masked_mse(pred, normed, mask, norm_pix=False).item())


@needs_einops
@pytest.mark.parametrize("dims", [2, 3])
def test_mae_trains_and_exports_a_vit_encoder(dims: int) -> None:
    torch.manual_seed(0)
    size = 16
    mae = MAE(VIT_SPECS["vit_tiny"], dims, size, patch=8, decoder_dim=96 if dims == 2 else 192)
    x = torch.rand(2, 1, 1, *[size] * dims)
    loss, features = mae(x)
    assert torch.isfinite(loss) and features.shape == (2, 192)
    loss.backward()
    encoder, dim = build_encoder("vit_tiny", dims, 1, small_input=True)
    encoder.load_state_dict(mae.encoder_state_dict())  # strict: same keys and shapes
    mae.eval()
    encoder.eval()
    with torch.no_grad():
        assert torch.allclose(encoder(x[:, 0]), mae.embed(x[:, 0]), atol=1e-5)


@needs_einops
def test_mae_rejects_bad_decoder_width() -> None:
    with pytest.raises(ValueError, match="decoder_dim"):
        MAE(VIT_SPECS["vit_tiny"], 3, 16, patch=8, decoder_dim=128)
