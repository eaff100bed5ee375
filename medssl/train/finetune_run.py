"""The finetune stage's work: every mode of one arm on one label budget and seed.

Under the ``budget`` validation protocol the seed's nested label draw is split by patient
into labels to fit on and labels to choose with (early stopping, probe ``C``, Platt
scaling, thresholds), all counted in the budget; under ``oracle`` the choices use the
validation split. The run folder is written through :mod:`medssl.runs`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medssl.data.dataset import load_stack
from medssl.data.manifest import MANIFEST_NAME, read_manifest
from medssl.data.splits import SplitError, budget_parts
from medssl.data.transforms import ssl_views
from medssl.params import FinetuneParams, ModelParams, ParamsError, SplitParams
from medssl.runs import RunInfo, write_run
from medssl.train.arms import ArmConfig, Labelled, ModeOutput, check_modes, run_arm
from medssl.train.finetune import TrainConfig


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
    train, val = budget_split(table, budget, seed, split)
    init = load_pretrained(inputs.encoder, model) if arm == "ssl" else None
    scored = pd.concat([val, table[table["split"] == "test"]], ignore_index=True)
    data = Labelled(
        x_train=_images(train["nifti"].tolist(), model),
        y_train=train["label"].to_numpy(dtype=np.int64),
        x_scored=_images(scored["nifti"].tolist(), model),
        y_scored=scored["label"].to_numpy(dtype=np.int64),
        is_val=(scored["split"] == "val").to_numpy(),
    )
    protocol = split.validation
    log(
        f"{arm}: {len(train)} labels to fit ({int(data.y_train.sum())} abnormal), {len(val)} "
        f"to choose with ({protocol} protocol), modes {modes}"
    )
    views = finetune.augment
    augment = ssl_views(
        model.image_size, cfg.spatial_dims, min_crop=views.min_crop, noise_std=views.noise_std
    )
    outputs = run_arm(arm, modes, data, cfg, seed=seed, init=init, augment=augment)
    info = _run_info(arm, budget, seed, train, val, protocol, cfg, outputs)
    states = [o.state for o in outputs.values() if o.state is not None]
    write_run(out, info, score_table(scored, outputs), states[-1] if states else None)
    return info


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
) -> RunInfo:
    """``run.json``: labels behind the run (validation ones count under ``budget``)."""
    n_pos = int(train["label"].sum())
    n_val_pos = int(val["label"].sum()) if protocol == "budget" else 0
    return RunInfo(
        arm=arm,
        budget=budget,
        seed=seed,
        n_labels=len(train) + (len(val) if protocol == "budget" else 0),
        n_fit_labels=len(train),
        n_val_labels=len(val),
        val_protocol=protocol,
        n_abnormal=n_pos + n_val_pos,
        n_normal=len(train) + len(val) - n_pos - n_val_pos,
        encoder=cfg.encoder if arm != "pixels" else None,
        modes={m: o.info for m, o in outputs.items()},
    )
