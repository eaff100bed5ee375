"""Stage finetune@ARM-BUDGET-SEED: few-label training of one arm; scores val and test."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from medssl.data.dataset import load_stack
from medssl.data.manifest import MANIFEST_NAME, read_manifest
from medssl.data.splits import select_budget
from medssl.data.transforms import ssl_views
from medssl.params import get, get_positive, load_params
from medssl.train.finetune import build_classifier, predict, train_classifier

ARMS = ("ssl", "scratch")


def parse_budget_arg(text: str) -> int | float | str:
    """``"8"`` -> 8, ``"0.1"`` -> 0.1, ``"all"`` -> ``"all"``."""
    if text == "all":
        return text
    return float(text) if "." in text else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arm", choices=ARMS, required=True)
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
    dims = get(p, "model.spatial_dims", int)
    size = get_positive(p, "model.image_size", int)
    small = get(p, "model.small_input", bool)
    encoder_name = get(p, "model.encoder", str)

    manifest = read_manifest(args.ingested / MANIFEST_NAME)
    table = manifest.merge(
        pd.read_csv(args.splits, dtype=str)[["image_id", "split"]], on="image_id"
    )
    table = table.merge(pd.read_csv(args.labels, dtype={"image_id": str}), on="image_id")
    table = table[table["spatial_dims"] == dims]
    train = table[table["split"] == "train"]
    chosen = select_budget(train, args.budget, args.seed)
    train = train[train["image_id"].isin(chosen)].sort_values("image_id")
    scored = table[table["split"].isin(["val", "test"])].sort_values("image_id")

    init = None
    mode = "full"
    if args.arm == "ssl":
        init = torch.load(args.encoder / "encoder.pt", weights_only=True)
        mode = get(p, "finetune.mode", str)
    model = build_classifier(encoder_name, dims, small, init)
    x_train = load_stack(train["nifti"].tolist(), size, dims, get(p, "model.intensity", str))
    y_train = torch.tensor(train["label"].to_numpy(dtype="int64"))
    print(f"{args.arm}: {len(train)} labels ({int(y_train.sum())} abnormal), mode {mode}")
    model = train_classifier(
        model,
        x_train,
        y_train,
        mode=mode,
        epochs=get_positive(p, "finetune.epochs", int),
        batch_size=get_positive(p, "finetune.batch_size", int),
        lr=get_positive(p, "finetune.lr", float),
        encoder_lr_scale=get_positive(p, "finetune.encoder_lr_scale", float),
        weight_decay=get(p, "finetune.weight_decay", float),
        seed=args.seed,
        augment=ssl_views(size, dims, min_crop=0.8, noise_std=0.01),
    )
    x_scored = load_stack(scored["nifti"].tolist(), size, dims, get(p, "model.intensity", str))
    scores = scored[["image_id", "patient_key", "split", "label"]].assign(
        score=predict(model, x_scored)
    )
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "model.pt")
    scores.to_csv(args.out / "scores.csv", index=False, lineterminator="\n", float_format="%.6f")
    run = {
        "arm": args.arm,
        "mode": mode,
        "budget": args.budget,
        "n_labels": len(train),
        "seed": args.seed,
        "encoder": encoder_name,
    }
    (args.out / "run.json").write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
