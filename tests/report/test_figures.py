"""Report figures: orientation, curves against sklearn, reproducible PNG bytes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import auc, roc_auc_score, roc_curve

from medssl.eval.metrics import calibration_curve_points, expected_calibration_error
from medssl.eval.protocol import headline_curves, patient_level
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


def test_report_draws_the_evaluate_stage_curves() -> None:
    """One source of curves (protocol.headline_curves) and one calibration binning."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {"patient_key": [f"p{i // 2:02d}" for i in range(80)], "split": "test",
         "label": [(i // 2) % 2 for i in range(80)]}
    )  # fmt: skip
    scores = frame.assign(score=np.clip(0.3 * frame["label"] + 0.7 * rng.random(80), 0, 1))
    records: list[dict[str, Any]] = [
        {"arm": "ssl", "mode": "full", "n_labels": 8, "seed": 0},
        {"arm": "scratch", "mode": "full", "n_labels": 8, "seed": 0},  # run missing
        {"arm": "pixels", "mode": "knn", "n_labels": 8, "seed": 0},  # one class only
        {"arm": "ssl", "mode": "full", "n_labels": 16, "seed": 0},  # other budget
    ]
    by_arm = {"ssl": scores, "pixels": scores.assign(label=0)}
    got = figures.arm_curves(records, lambda r: by_arm.get(r["arm"]), 8, 0, "max")
    assert list(got) == ["ssl full"]
    c, per = got["ssl full"], patient_level(scores, "max")
    cal = calibration_curve_points(per["label"], per["score"])
    assert headline_curves(scores, "max")["calibration"] == cal  # the evaluate plot file
    assert c.prob_pred.tolist() == [p["prob_pred"] for p in cal]
    assert c.prob_true.tolist() == [p["prob_true"] for p in cal]
    gap = sum(p["count"] * abs(p["prob_true"] - p["prob_pred"]) for p in cal) / len(per)
    assert gap == pytest.approx(expected_calibration_error(per["label"], per["score"]))
    fpr, tpr, _ = roc_curve(per["label"], per["score"])
    assert np.allclose(c.fpr, fpr) and np.allclose(c.tpr, tpr)
    assert c.auroc == pytest.approx(roc_auc_score(per["label"], per["score"]))
    assert c.prevalence == pytest.approx(per["label"].mean())


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
