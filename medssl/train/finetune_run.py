"""The finetune stage's work: every mode of one arm on one label budget and seed.

Under the ``budget`` validation protocol the seed's nested label draw is split by patient
into labels to fit on and labels to choose with (early stopping, probe ``C``, Platt
scaling, thresholds), all counted in the budget; under ``oracle`` the choices use the
validation split. With ``split.cross_fit`` the budget is dealt into folds instead and every
label is validated on out of fold (:mod:`medssl.train.cross_fit`). The run folder is
written through :mod:`medssl.runs`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.transforms import Compose

from medssl.data.dataset import load_stack
from medssl.data.manifest import MANIFEST_NAME, read_manifest
from medssl.data.splits import SplitError, budget_folds, budget_parts
from medssl.data.transforms import ssl_views
from medssl.params import FinetuneParams, ModelParams, ParamsError, SplitParams
from medssl.runs import RunInfo, write_run
from medssl.train.arms import ArmConfig, Labelled, ModeOutput, check_modes, run_arm
from medssl.train.cross_fit import Folded, cross_fit_arm
from medssl.train.finetune import TrainConfig, autocast


@dataclass(frozen=True)
class FinetuneInputs:
    """What a run reads: the ingested images, the stage tables and the encoder folder."""

    ingested: Path
    splits: Path
    labels: Path
    encoder: Path


def arm_config(model: ModelParams, finetune: FinetuneParams) -> ArmConfig:
    """The ``model`` and ``finetune`` sections as an :class:`ArmConfig`."""
    train = TrainConfig(
        steps=finetune.steps,
        batch_size=finetune.batch_size,
        lr=finetune.lr,
        encoder_lr_scale=finetune.encoder_lr_scale,
        weight_decay=finetune.weight_decay,
        eval_every=finetune.eval_every,
        patience=finetune.patience,
    )
    return ArmConfig(
        encoder=model.encoder,
        spatial_dims=model.spatial_dims,
        small_input=model.small_input,
        train=train,
        probe_c=tuple(finetune.probe_c),
        knn_k=finetune.knn_k,
        knn_bank=finetune.knn_bank,
        pixel_size=finetune.pixel_size,
        lp_ft=finetune.lp_ft,
        feature_flips=finetune.feature_flips,
    )


def load_pretrained(folder: Path, model: ModelParams) -> dict[str, torch.Tensor]:
    """The pretrained encoder, after checking it was built with the current ``model`` params.

    Raises:
        ParamsError: ``encoder.json`` records other ``model`` params.
    """
    meta = json.loads((folder / "encoder.json").read_text())
    want = {
        "encoder": model.encoder,
        "spatial_dims": model.spatial_dims,
        "small_input": model.small_input,
        "image_size": model.image_size,
    }
    wrong = {k: (meta.get(k), v) for k, v in want.items() if k in meta and meta[k] != v}
    if wrong:
        raise ParamsError(f"{folder / 'encoder.json'}: encoder built with other params {wrong}")
    state: dict[str, torch.Tensor] = torch.load(folder / "encoder.pt", weights_only=True)
    return state


def labelled_images(ingested: Path, splits: Path, labels: Path, dims: int) -> pd.DataFrame:
    """Labelled images of the model's dimensionality: manifest + ``split`` + ``label``."""
    table = read_manifest(ingested / MANIFEST_NAME).merge(
        pd.read_csv(splits, dtype=str)[["image_id", "split"]], on="image_id"
    )
    table = table.merge(pd.read_csv(labels, dtype={"image_id": str}), on="image_id")
    return table[table["spatial_dims"] == dims].sort_values("image_id").reset_index(drop=True)


def folded_budget(
    table: pd.DataFrame, budget: int | float | str, seed: int, split: SplitParams
) -> pd.DataFrame:
    """The budget's rows with their ``fold`` (cross-fitting), ``split`` set to ``val``."""
    train = table[table["split"] == "train"]
    folds = budget_folds(train, budget, seed, split.budget_val_fraction)
    fold_of = {i: f for f, ids in enumerate(folds) for i in ids}
    rows = train[train["image_id"].isin(set(fold_of))]
    return rows.assign(split="val", fold=rows["image_id"].map(fold_of))


def budget_split(
    table: pd.DataFrame, budget: int | float | str, seed: int, split: SplitParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows to fit on and validation rows (``split`` set to ``val``) for one budget and seed."""
    train = table[table["split"] == "train"]
    if split.validation == "budget":
        fit_ids, val_ids = budget_parts(train, budget, seed, split.budget_val_fraction)
        val = train[train["image_id"].isin(set(val_ids))].assign(split="val")
    else:
        fit_ids, _ = budget_parts(train, budget, seed, 0.0)
        val = table[table["split"] == "val"]
    return train[train["image_id"].isin(set(fit_ids))], val


def score_table(scored: pd.DataFrame, outputs: dict[str, ModeOutput]) -> pd.DataFrame:
    """Long table: ``image_id, patient_key, split, label, mode, score, raw``."""
    base = scored[["image_id", "patient_key", "split", "label"]].reset_index(drop=True)
    parts = [base.assign(mode=m, score=o.prob, raw=o.raw) for m, o in outputs.items()]
    return pd.concat(parts, ignore_index=True)


def finetune_run(
    arm: str,
    budget: int | float | str,
    seed: int,
    inputs: FinetuneInputs,
    out: Path,
    *,
    model: ModelParams,
    finetune: FinetuneParams,
    split: SplitParams,
    log: Callable[[str], None] = print,
) -> RunInfo:
    """Fit and score every mode of ``arm`` on one budget and seed; write the run folder.

    Args:
        arm: ``ssl``, ``scratch`` or ``pixels``.
        budget: a label count, a fraction of the training labels or ``"all"``.
        seed: the label draw's (and initialisation's) seed.
        inputs: the images, tables and encoder.
        out: the run folder (:mod:`medssl.runs`).
        model: the typed ``model`` section.
        finetune: the typed ``finetune`` section (modes, optimisation, augmentation).
        split: the typed ``split`` section (validation protocol).
        log: progress messages.

    Returns:
        The written ``run.json``.

    Raises:
        SplitError: no labelled image, or a budget the labels cannot fill.
        ParamsError: unknown modes, or an encoder built with other ``model`` params.
        ValueError: inconsistent fine-tuning settings.
    """
    cfg = arm_config(model, finetune)
    modes = _modes(arm, finetune)
    table = labelled_images(inputs.ingested, inputs.splits, inputs.labels, cfg.spatial_dims)
    if table.empty:
        raise SplitError(
            "no labelled images (labels.path is null or matches no "
            f"{cfg.spatial_dims}D image): fine-tuning waits for a label set; the encoder "
            "needs none (dvc repro pretrain)"
        )
    init = load_pretrained(inputs.encoder, model) if arm == "ssl" else None
    views = finetune.augment
    augment = ssl_views(
        model.image_size, cfg.spatial_dims, min_crop=views.min_crop, noise_std=views.noise_std
    )
    crossed = split.validation == "budget" and split.cross_fit
    run = _cross_fitted if crossed else _held_out
    with autocast(finetune.precision):
        train, val, scored, outputs = run(
            table, Plan(arm, modes, budget, seed, cfg, init, augment), model, split, log
        )
    info = _run_info(arm, budget, seed, train, val, split.validation, cfg, outputs, crossed)
    states = [o.state for o in outputs.values() if o.state is not None]
    write_run(out, info, score_table(scored, outputs), states[-1] if states else None)
    return info


@dataclass(frozen=True)
class Plan:
    """One run's arm, modes, budget, seed, settings, encoder weights and views."""

    arm: str
    modes: list[str]
    budget: int | float | str
    seed: int
    cfg: ArmConfig
    init: dict[str, torch.Tensor] | None
    augment: Compose


Ran = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, ModeOutput]]


def _held_out(
    table: pd.DataFrame,
    plan: Plan,
    model: ModelParams,
    split: SplitParams,
    log: Callable[[str], None],
) -> Ran:
    """Fit on the budget's fit part, choose on its val part (or the oracle split)."""
    train, val = budget_split(table, plan.budget, plan.seed, split)
    scored = pd.concat([val, table[table["split"] == "test"]], ignore_index=True)
    data = Labelled(
        x_train=_images(train["nifti"].tolist(), model),
        y_train=train["label"].to_numpy(dtype=np.int64),
        x_scored=_images(scored["nifti"].tolist(), model),
        y_scored=scored["label"].to_numpy(dtype=np.int64),
        is_val=(scored["split"] == "val").to_numpy(),
    )
    log(
        f"{plan.arm}: {len(train)} labels to fit ({int(data.y_train.sum())} abnormal), "
        f"{len(val)} to choose with ({split.validation} protocol), modes {plan.modes}"
    )
    outputs = run_arm(
        plan.arm, plan.modes, data, plan.cfg, seed=plan.seed, init=plan.init, augment=plan.augment
    )
    return train, val, scored, outputs


def _cross_fitted(
    table: pd.DataFrame,
    plan: Plan,
    model: ModelParams,
    split: SplitParams,
    log: Callable[[str], None],
) -> Ran:
    """Cross-fit on the budget's folds, refit on all of it (:mod:`medssl.train.cross_fit`)."""
    budget = folded_budget(table, plan.budget, plan.seed, split)
    scored = pd.concat([budget, table[table["split"] == "test"]], ignore_index=True)
    data = Folded(
        x=_images(budget["nifti"].tolist(), model),
        y=budget["label"].to_numpy(dtype=np.int64),
        folds=budget["fold"].to_numpy(dtype=np.int64),
        x_test=_images(table.loc[table["split"] == "test", "nifti"].tolist(), model),
    )
    log(
        f"{plan.arm}: {len(budget)} labels ({int(data.y.sum())} abnormal) cross-fitted in "
        f"{int(data.folds.max()) + 1} folds, then refitted on all; modes {plan.modes}"
    )
    outputs = cross_fit_arm(
        plan.arm, plan.modes, data, plan.cfg, seed=plan.seed, init=plan.init, augment=plan.augment
    )
    return budget, budget, scored, outputs


def _modes(arm: str, finetune: FinetuneParams) -> list[str]:
    """``finetune.modes.<arm>``, checked against the arm."""
    if arm not in finetune.modes:
        raise ParamsError(f"params.yaml: finetune.modes.{arm}: missing key")
    modes = list(finetune.modes[arm])
    check_modes(arm, modes)
    return modes


def _images(paths: Sequence[str], model: ModelParams) -> torch.Tensor:
    """Preprocessed ``(N, 1, *spatial)`` float32 as a plain tensor (no MONAI metadata)."""
    return load_stack(list(paths), model.image_size, model.spatial_dims, model.intensity)


def _run_info(
    arm: str,
    budget: int | float | str,
    seed: int,
    train: pd.DataFrame,
    val: pd.DataFrame,
    protocol: str,
    cfg: ArmConfig,
    outputs: dict[str, ModeOutput],
    crossed: bool = False,
) -> RunInfo:
    """``run.json``: labels behind the run (validation ones count under ``budget``).

    A cross-fitted run (``crossed``) passes the budget as both ``train`` and ``val``: each
    label is fitted on and validated on, and counted once.
    """
    n_pos = int(train["label"].sum())
    n_val_pos = int(val["label"].sum()) if protocol == "budget" and not crossed else 0
    n_extra = len(val) if protocol == "budget" and not crossed else 0
    return RunInfo(
        arm=arm,
        budget=budget,
        seed=seed,
        n_labels=len(train) + n_extra,
        n_fit_labels=len(train),
        n_val_labels=len(val),
        val_protocol=protocol,
        n_abnormal=n_pos + n_val_pos,
        n_normal=len(train) + n_extra - n_pos - n_val_pos,
        encoder=cfg.encoder if arm != "pixels" else None,
        modes={m: o.info for m, o in outputs.items()},
    )
