"""The PneumoniaMNIST folder writer: the scored folder and the folder to tune on."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from tests.conftest import load_script


def _script() -> ModuleType:
    return load_script("pneumoniamnist_to_folder")


def test_the_tuning_folder_scores_the_carved_part_and_keeps_the_reserve(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    npz = tmp_path / "pm.npz"
    np.savez(
        npz,
        train_images=rng.integers(0, 255, (40, 28, 28), dtype=np.uint8),
        train_labels=(np.arange(40) % 2).reshape(-1, 1),
        val_images=rng.integers(0, 255, (10, 28, 28), dtype=np.uint8),
        val_labels=(np.arange(10) % 2).reshape(-1, 1),
    )
    script = _script()
    scored = script.convert(npz, tmp_path / "a", 0.25, 0)
    tuned = script.convert(npz, tmp_path / "b", 0.25, 0, tune=True)
    assert list(scored["path"]) == list(tuned["path"])
    official = scored["path"].str.startswith("images/test/")
    assert set(scored.loc[official, "split"]) == {"test"} and set(tuned.loc[official, "split"]) == {
        "val"
    }
    carved = scored["split"] == "val"
    assert carved.sum() == 10 and set(tuned.loc[carved, "split"]) == {"test"}
    reserves = [pd.read_csv(tmp_path / d / "reserve.csv") for d in ("a", "b")]
    assert reserves[0].equals(reserves[1])  # same pretraining pool, hence the same encoder
