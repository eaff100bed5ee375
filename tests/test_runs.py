"""The fine-tuning run folder (medssl.runs): written once, read the same way by every stage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from medssl.runs import (
    MODEL_PT,
    SCORE_COLUMNS,
    RunInfo,
    find_run_dir,
    read_info,
    read_runs,
    read_scores,
    record_test_scores,
    run_name,
    write_run,
)


def info(arm: str, budget: int | str, seed: int, n_labels: int) -> RunInfo:
    return RunInfo(
        arm=arm, budget=budget, seed=seed, n_labels=n_labels, n_fit_labels=n_labels - 2,
        n_val_labels=2, val_protocol="budget", n_abnormal=n_labels // 2,
        n_normal=n_labels - n_labels // 2, encoder="resnet18", modes={"full": {"step": 4}},
    )  # fmt: skip


def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": ["007", "008", "009", "010"],
            "patient_key": ["0001", "0002", "0003", "0003"],
            "split": ["val", "test", "test", "test"],
            "label": [0, 1, 0, 1],
            "mode": ["full", "full", "full", "linear"],
            "score": [0.1, 0.9, 0.2, 0.7],
            "raw": [-2.0, 2.0, -1.0, 0.5],
        }
    )


def test_a_run_round_trips_with_keys_as_text(tmp_path: Path) -> None:
    folder = tmp_path / run_name("ssl", 8, 0)
    state = {"w": torch.ones(2)}
    write_run(folder, info("ssl", 8, 0, 8), scores(), state)
    assert folder.name == "ssl-8-0" and (folder / MODEL_PT).exists()
    assert read_info(folder) == info("ssl", 8, 0, 8)
    back = read_scores(folder)
    assert list(back.columns) == list(SCORE_COLUMNS)
    assert back["image_id"].tolist()[0] == "007" and back["patient_key"].tolist()[0] == "0001"
    write_run(tmp_path / "pixels-8-0", info("pixels", 8, 0, 8), scores(), None)
    assert not (tmp_path / "pixels-8-0" / MODEL_PT).exists()
    with pytest.raises(ValueError, match=r"scores.csv: missing columns \['raw'\]"):
        write_run(tmp_path / "bad", info("ssl", 8, 0, 8), scores().drop(columns="raw"), None)


def test_readers_find_runs_by_their_record(tmp_path: Path) -> None:
    for arm in ("ssl", "scratch"):
        for budget, n in ((8, 8), ("all", 30)):
            write_run(tmp_path / run_name(arm, budget, 0), info(arm, budget, 0, n), scores(), None)
    pairs = read_runs(tmp_path, ["ssl", "scratch"], [8, "all"], [0])
    assert [(r["arm"], r["budget"]) for r, _ in pairs] == [
        ("ssl", 8), ("ssl", "all"), ("scratch", 8), ("scratch", "all"),
    ]  # fmt: skip
    record = {"arm": "scratch", "n_labels": 30, "seed": 0, "mode": "full", "budget": "all"}
    assert find_run_dir(record, tmp_path) == tmp_path / "scratch-all-0"
    assert find_run_dir({**record, "seed": 1}, tmp_path) is None
    assert find_run_dir(record, tmp_path / "absent") is None
    test = record_test_scores(record, tmp_path)
    assert test is not None and test["image_id"].tolist() == ["008", "009"]  # full, test only
