"""One fine-tuning run on disk: its folder name, ``run.json`` and ``scores.csv``.

The finetune stage writes one folder per arm x budget x seed (``{arm}-{budget}-{seed}``,
the names ``dvc.yaml``'s matrix gives them) under ``models/finetune/``; evaluate, export,
audit and report read them back through this module only:

* ``run.json`` (:class:`RunInfo`): what was trained and on how many labels, and what each
  mode chose (probe ``C``, early-stopping step, ...);
* ``scores.csv`` (:data:`SCORE_COLUMNS`): one row per scored image (validation and test)
  and mode, the probability of the abnormal class and the raw score;
* ``model.pt``: the full fine-tuned classifier's ``state_dict`` (arms with a ``full`` mode).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd

RUN_JSON = "run.json"
SCORES_CSV = "scores.csv"
MODEL_PT = "model.pt"
#: Columns of ``scores.csv``, one row per scored image and mode.
SCORE_COLUMNS = ("image_id", "patient_key", "split", "label", "mode", "score", "raw")
#: ``run.json`` keys that identify a run in a metrics record (:func:`find_run_dir`).
MATCH_KEYS = ("arm", "seed", "n_labels", "mode", "budget")


class RunInfo(TypedDict):
    """``run.json``. Runs written before the budget protocol lack ``n_val_labels`` and
    ``val_protocol``: readers use ``.get`` for those two.

    Attributes:
        arm: ``ssl``, ``scratch`` or ``pixels``.
        budget: the budget as given (a count, a fraction or ``"all"``).
        seed: the label-subset (and init) seed.
        n_labels: labels behind the run: fitted ones plus, under the ``budget`` protocol,
            those the choices were made on.
        n_fit_labels: labels fitted on.
        n_val_labels: labels the choices were made on.
        val_protocol: ``budget`` (inside the budget) or ``oracle`` (a separate split).
        n_abnormal: abnormal labels counted in the budget.
        n_normal: the other labels.
        encoder: the network (None for the pixels arm).
        modes: mode -> what it chose.
    """

    arm: str
    budget: int | float | str
    seed: int
    n_labels: int
    n_fit_labels: int
    n_val_labels: int
    val_protocol: str
    n_abnormal: int
    n_normal: int
    encoder: str | None
    modes: dict[str, dict[str, Any]]


#: A run as the readers get it: ``run.json`` and ``scores.csv``.
RunScores = tuple[RunInfo, pd.DataFrame]


def run_name(arm: str, budget: int | float | str, seed: int) -> str:
    """The run's folder name, ``{arm}-{budget}-{seed}`` (as in ``dvc.yaml``)."""
    return f"{arm}-{budget}-{seed}"


def write_run(
    folder: Path, info: RunInfo, scores: pd.DataFrame, state: Mapping[str, Any] | None
) -> None:
    """Write ``scores.csv``, ``model.pt`` (when there is a network) and ``run.json``.

    Args:
        folder: the run's folder (created).
        info: ``run.json``.
        scores: :data:`SCORE_COLUMNS`.
        state: the fine-tuned classifier's ``state_dict``, or None.

    Raises:
        ValueError: when ``scores`` lacks a column of :data:`SCORE_COLUMNS`.
    """
    missing = [c for c in SCORE_COLUMNS if c not in scores]
    if missing:
        raise ValueError(f"{folder / SCORES_CSV}: missing columns {missing}")
    folder.mkdir(parents=True, exist_ok=True)
    scores.to_csv(folder / SCORES_CSV, index=False, lineterminator="\n")
    if state is not None:
        import torch

        torch.save(state, folder / MODEL_PT)
    (folder / RUN_JSON).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def read_info(folder: Path) -> RunInfo:
    """``run.json`` of a run folder."""
    info: RunInfo = json.loads((folder / RUN_JSON).read_text())
    return info


def read_scores(folder: Path) -> pd.DataFrame:
    """``scores.csv`` of a run folder (image and patient keys as text)."""
    return pd.read_csv(folder / SCORES_CSV, dtype={"patient_key": str, "image_id": str})


def read_runs(
    runs: Path, arms: Sequence[str], budgets: Sequence[int | float | str], seeds: Sequence[int]
) -> list[RunScores]:
    """``(run.json, scores.csv)`` of every arm x budget x seed, in that order."""
    out = []
    for arm in arms:
        for budget in budgets:
            for seed in seeds:
                folder = runs / run_name(arm, budget, seed)
                out.append((read_info(folder), read_scores(folder)))
    return out


def find_run_dir(record: Mapping[str, Any], runs: Path) -> Path | None:
    """The run folder whose ``run.json`` matches a metrics record.

    Matches ``arm``, ``seed``, ``n_labels`` and, when both state them, ``mode`` and
    ``budget``; folder names are not relied on.
    """
    if not runs.is_dir():
        return None
    for run_json in sorted(runs.glob(f"*/{RUN_JSON}")):
        run = json.loads(run_json.read_text())
        keys = [k for k in MATCH_KEYS if k in run]
        if keys and all(str(run[k]) == str(record.get(k, run[k])) for k in keys):
            return run_json.parent
    return None


def record_test_scores(record: Mapping[str, Any], runs: Path) -> pd.DataFrame | None:
    """Test-split scores of a metrics record's run and mode (None when no run matches)."""
    folder = find_run_dir(record, runs)
    if folder is None:
        return None
    scores = read_scores(folder)
    if "mode" in scores and record.get("mode") is not None:
        scores = scores[scores["mode"] == record["mode"]]
    return scores[scores["split"] == "test"]
