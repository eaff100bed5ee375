"""The equal-time encoder study: variant parsing and the cross-fitted probe it scores with."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import load_script


def _script() -> ModuleType:
    return load_script("encoder_at_equal_time")


def test_a_variant_names_encoder_stem_and_epochs() -> None:
    variant = _script().Variant.parse("resnet10:3x3:21")
    assert (variant.encoder, variant.stem, variant.epochs) == ("resnet10", "3x3", 21)
    assert variant.name == "resnet10-3x3-21ep"


@pytest.mark.parametrize("text", ["resnet10", "resnet10:5x5:21", "resnet10:3x3:many"])
def test_a_malformed_variant_stops_with_one_line(text: str) -> None:
    with pytest.raises(SystemExit, match=f"--variant '{text}': expected ENCODER:STEM:EPOCHS"):
        _script().Variant.parse(text)


def _table(n_train: int, n_test: int) -> pd.DataFrame:
    n = n_train + n_test
    return pd.DataFrame(
        {
            "image_id": [f"image-{i:04d}" for i in range(n)],
            "patient_key": [f"patient-{i:04d}" for i in range(n)],
            "label": np.arange(n) % 2,
            "split": ["train"] * n_train + ["test"] * n_test,
        }
    )


def test_the_probe_is_scored_per_draw_on_the_test_rows_only() -> None:
    table = _table(400, 100)
    rng = np.random.default_rng(0)
    y = table["label"].to_numpy()
    informative = rng.normal(size=(len(table), 8)) + 3.0 * y[:, None]
    noise = rng.normal(size=(len(table), 8))
    script = _script()
    good = script.probe_aurocs(table, informative, 40, 3, [0.01, 0.1, 1.0])
    bad = script.probe_aurocs(table, noise, 40, 3, [0.01, 0.1, 1.0])
    assert len(good) == 3 and min(good) > 0.99
    assert abs(np.mean(bad) - 0.5) < 0.15
    assert good == script.probe_aurocs(table, informative, 40, 3, [0.01, 0.1, 1.0])
    row = script.summary("x", good, bad, pretrain_s=1.0)
    assert row["mean"] == round(float(np.mean(good)), 4) and row["pretrain_s"] == 1.0
    assert row["flips_mean"] == round(float(np.mean(bad)), 4)
    assert row["flips_probe_test_auroc"] == bad


def test_rows_are_scored_on_plain_and_on_flip_averaged_features() -> None:
    images = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 1, 3, 3)
    corners = images[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]].mean(dim=1)

    def features(x: torch.Tensor) -> np.ndarray:
        return x.reshape(len(x), -1).double().numpy()

    def first_pixel(f: np.ndarray) -> list[float]:
        return [float(v) for v in f[:, 0]]

    plain, flipped = _script().both_ways(features, images, first_pixel)
    assert plain == [0.0, 9.0]
    assert flipped == pytest.approx(corners.tolist())
