"""Stage finetune@ARM-BUDGET-SEED: every mode of one arm on one label budget.

Under the ``budget`` validation protocol the seed's nested label draw is split by patient
into labels to fit on and labels to choose with (early stopping, probe ``C``, Platt
scaling, thresholds), all counted in the budget; under ``oracle`` the choices use the
validation split. Writes ``scores.csv`` (one row per scored val/test image and mode:
probability and raw score), ``run.json`` (budget, label counts, ``n_val_labels``,
``val_protocol``, what each mode chose) and, for full fine-tuning, ``model.pt``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medssl.data.dataset import load_stack
from medssl.data.manifest import MANIFEST_NAME, read_manifest
from medssl.data.splits import SplitError, budget_parts
from medssl.data.transforms import ssl_views
from medssl.params import ParamsError, get, get_positive, load_params
from medssl.train.arms import ArmConfig, Labelled, ModeOutput, check_modes, run_arm
from medssl.train.finetune import ARM_MODES, TrainConfig


def parse_budget_arg(text: str) -> int | float | str:
    """``"8"`` -> 8, ``"0.1"`` -> 0.1, ``"all"`` -> ``"all"``."""
    if text == "all":
        return text
    return float(text) if "." in text else int(text)


def arm_config(p: dict[str, Any]) -> ArmConfig:
    """The ``model`` and ``finetune`` params as an :class:`ArmConfig`."""
    train = TrainConfig(
        steps=get_positive(p, "finetune.steps", int),
        batch_size=get_positive(p, "finetune.batch_size", int),
        lr=get_positive(p, "finetune.lr", float),
        encoder_lr_scale=get_positive(p, "finetune.encoder_lr_scale", float),
        weight_decay=get(p, "finetune.weight_decay", float),
        eval_every=get_positive(p, "finetune.eval_every", int),
        patience=get(p, "finetune.patience", int),
    )
    return ArmConfig(
        encoder=get(p, "model.encoder", str),
        spatial_dims=get(p, "model.spatial_dims", int),
        small_input=get(p, "model.small_input", bool),
        train=train,
        probe_c=tuple(float(c) for c in get(p, "finetune.probe_c", list)),
        knn_k=get_positive(p, "finetune.knn_k", int),
        knn_bank=get(p, "finetune.knn_bank", int),
        pixel_size=get_positive(p, "finetune.pixel_size", int),
        lp_ft=get(p, "finetune.lp_ft", bool),
    )


def load_pretrained(folder: Path, p: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The pretrained encoder, after checking it was built with the current ``model`` params."""
    meta = json.loads((folder / "encoder.json").read_text())
    want = {
        "encoder": get(p, "model.encoder", str),
        "spatial_dims": get(p, "model.spatial_dims", int),
        "small_input": get(p, "model.small_input", bool),
        "image_size": get(p, "model.image_size", int),
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
    table: pd.DataFrame, budget: int | float | str, seed: int, protocol: str, p: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows to fit on and validation rows (``split`` set to ``val``) for one budget and seed."""
    train = table[table["split"] == "train"]
    if protocol == "budget":
        fraction = get(p, "split.budget_val_fraction", float)
        fit_ids, val_ids = budget_parts(train, budget, seed, fraction)
        val = train[train["image_id"].isin(set(val_ids))].assign(split="val")
    elif protocol == "oracle":
        fit_ids, _ = budget_parts(train, budget, seed, 0.0)
        val = table[table["split"] == "val"]
    else:
        raise ParamsError(f"params.yaml: 'split.validation' must be budget or oracle: {protocol!r}")
    return train[train["image_id"].isin(set(fit_ids))], val


def load_images(paths: list[str], size: int, dims: int, intensity: str) -> torch.Tensor:
    """Preprocessed ``(N, 1, *spatial)`` float32 as a plain tensor (no MONAI metadata)."""
    return load_stack(paths, size, dims, intensity)


def score_table(scored: pd.DataFrame, outputs: dict[str, ModeOutput]) -> pd.DataFrame:
    """Long table: ``image_id, patient_key, split, label, mode, score, raw``."""
    base = scored[["image_id", "patient_key", "split", "label"]].reset_index(drop=True)
    parts = [base.assign(mode=m, score=o.prob, raw=o.raw) for m, o in outputs.items()]
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arm", choices=sorted(ARM_MODES), required=True)
    parser.add_argument("--budget", type=parse_budget_arg, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    p = load_params(args.params)
    try:
        cfg = arm_config(p)
        modes = [str(m) for m in get(p, f"finetune.modes.{args.arm}", list)]
        check_modes(args.arm, modes)
        size = get_positive(p, "model.image_size", int)
        protocol = get(p, "split.validation", str)
        table = labelled_images(args.ingested, args.splits, args.labels, cfg.spatial_dims)
        if table.empty:
            raise SplitError(
                "no labelled images (labels.path is null or matches no "
                f"{cfg.spatial_dims}D image): fine-tuning waits for a label set; the encoder "
                "needs none (dvc repro pretrain)"
            )
        train, val = budget_split(table, args.budget, args.seed, protocol, p)
        init = load_pretrained(args.encoder, p) if args.arm == "ssl" else None
    except (ParamsError, SplitError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    scored = pd.concat([val, table[table["split"] == "test"]], ignore_index=True)
    intensity = get(p, "model.intensity", str)
    data = Labelled(
        x_train=load_images(train["nifti"].tolist(), size, cfg.spatial_dims, intensity),
        y_train=train["label"].to_numpy(dtype=np.int64),
        x_scored=load_images(scored["nifti"].tolist(), size, cfg.spatial_dims, intensity),
        y_scored=scored["label"].to_numpy(dtype=np.int64),
        is_val=(scored["split"] == "val").to_numpy(),
    )
    n_pos = int(data.y_train.sum())
    n_val_pos = int(val["label"].sum()) if protocol == "budget" else 0
    print(
        f"{args.arm}: {len(train)} labels to fit ({n_pos} abnormal), {len(val)} to choose with "
        f"({protocol} protocol), modes {modes}"
    )
    augment = ssl_views(size, cfg.spatial_dims, min_crop=0.8, noise_std=0.01)
    outputs = run_arm(args.arm, modes, data, cfg, seed=args.seed, init=init, augment=augment)

    args.out.mkdir(parents=True, exist_ok=True)
    score_table(scored, outputs).to_csv(args.out / "scores.csv", index=False, lineterminator="\n")
    for o in outputs.values():
        if o.state is not None:
            torch.save(o.state, args.out / "model.pt")
    run = {
        "arm": args.arm,
        "budget": args.budget,
        "seed": args.seed,
        "n_labels": len(train) + (len(val) if protocol == "budget" else 0),
        "n_fit_labels": len(train),
        "n_val_labels": len(val),
        "val_protocol": protocol,
        "n_abnormal": n_pos + n_val_pos,
        "n_normal": len(train) + len(val) - n_pos - n_val_pos,
        "encoder": cfg.encoder if args.arm != "pixels" else None,
        "modes": {m: o.info for m, o in outputs.items()},
    }
    (args.out / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
