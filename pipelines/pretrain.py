"""Stage pretrain: self-supervised pretraining of the encoder on training-split images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch
from dvclive import Live

from medssl.data.dataset import load_stack
from medssl.data.manifest import MANIFEST_NAME, read_manifest
from medssl.data.transforms import ssl_views
from medssl.params import get, get_positive, load_params
from medssl.train.pretrain import pretrain_simclr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    p = load_params(args.params)
    dims = get(p, "model.spatial_dims", int)
    size = get_positive(p, "model.image_size", int)
    method = get(p, "pretrain.method", str)
    if method != "simclr":
        raise SystemExit(f"error: params.yaml: 'pretrain.method' must be 'simclr', got {method!r}")
    manifest = read_manifest(args.ingested / MANIFEST_NAME)
    splits = pd.read_csv(args.splits, dtype=str)
    train = manifest.merge(splits[splits["split"] == "train"][["image_id"]], on="image_id")
    train = train[train["spatial_dims"] == dims]
    images = load_stack(train["nifti"].tolist(), size, dims, get(p, "model.intensity", str))
    print(f"pretraining on {len(images)} training images of {size}^{dims} voxels")
    with Live(str(args.live), dvcyaml=None, save_dvc_exp=False) as live:

        def log(epoch: int, metrics: dict[str, float]) -> None:
            for name, value in metrics.items():
                live.log_metric(f"train/{name}", value)
            live.next_step()

        state = pretrain_simclr(
            images,
            ssl_views(size, dims),
            encoder_name=get(p, "model.encoder", str),
            small_input=get(p, "model.small_input", bool),
            epochs=get_positive(p, "pretrain.epochs", int),
            batch_size=get_positive(p, "pretrain.batch_size", int),
            lr=get_positive(p, "pretrain.lr", float),
            weight_decay=get(p, "pretrain.weight_decay", float),
            temperature=get_positive(p, "pretrain.temperature", float),
            proj_dim=get_positive(p, "pretrain.proj_dim", int),
            seed=get(p, "pretrain.seed", int),
            on_epoch=log,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out / "encoder.pt")
    meta = {
        "method": method,
        "encoder": get(p, "model.encoder", str),
        "spatial_dims": dims,
        "image_size": size,
        "small_input": get(p, "model.small_input", bool),
        "n_images": len(images),
    }
    (args.out / "encoder.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
