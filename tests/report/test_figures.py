"""Report figures: orientation, curves against sklearn, reproducible PNG bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import auc, roc_auc_score, roc_curve

from medssl.report import figures


def test_display_slice_orientation() -> None:
    radiograph = np.zeros((4, 3))  # NIfTI (X=column, Y=row)
    radiograph[3, 0] = 1.0  # last column, first row
    shown = figures.display_slice(radiograph[None])
    assert shown.shape == (3, 4) and shown[0, 3] == 1.0
    volume = np.zeros((4, 3, 5))  # RAS+: x to the patient's right... left, y anterior
    volume[3, 2, 2] = 1.0  # most left (x high), most anterior (y high), middle slice
    axial = figures.display_slice(volume)
    assert axial.shape == (3, 4) and axial[0, 0] == 1.0  # top (anterior), picture left
    with pytest.raises(ValueError, match="2D or 3D"):
        figures.display_slice(np.zeros(5))


def test_curves_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.clip(y * 0.3 + rng.random(60) * 0.7, 0, 1)
    c = figures.curves_of(y, s)
    fpr, tpr, _ = roc_curve(y, s)
    assert np.allclose(c.fpr, fpr) and np.allclose(c.tpr, tpr)
    assert c.auroc == pytest.approx(roc_auc_score(y, s)) == pytest.approx(auc(c.fpr, c.tpr))
    assert c.prevalence == pytest.approx(y.mean())
    assert np.all((c.prob_true >= 0) & (c.prob_true <= 1))
    with pytest.raises(ValueError, match="both classes"):
        figures.curves_of(np.ones(4), np.ones(4))


def test_pngs_are_valid_and_reproducible() -> None:
    rng = np.random.default_rng(1)
    images = [(rng.random((16, 16)), "normal"), (rng.random((16, 16, 4)), "abnormal")]
    a, b = figures.sample_grid(images), figures.sample_grid(images)
    assert a == b
    assert Image.open(io.BytesIO(a)).format == "PNG"
    assert b"Software" not in a
    records = [
        {"arm": "ssl", "mode": "full", "n_labels": n, "seed": 0, "auroc": 0.6 + n / 100,
         "auroc_ci_low": 0.5, "auroc_ci_high": 0.9, "headline": True}
        for n in (4, 8, 16)
    ]  # fmt: skip
    png = figures.label_efficiency_png(records)
    assert Image.open(io.BytesIO(png)).size[0] > 300
    y = np.array([0, 1, 0, 1, 1, 0])
    curves = {"ssl full": figures.curves_of(y, np.linspace(0.1, 0.9, 6))}
    assert figures.curves_png(curves)[:4] == b"\x89PNG"
    heat = np.zeros((1, 16, 16))
    heat[0, :4, :4] = 1.0
    assert figures.saliency_png([(rng.random((1, 16, 16)), heat, "p = 0.9")])[:4] == b"\x89PNG"
