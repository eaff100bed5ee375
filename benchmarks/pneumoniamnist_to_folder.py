"""Write PneumoniaMNIST (MedMNIST v2) as a folder of PNGs plus ``labels.csv``.

The layout is the one ``benchmarks/label_efficiency.py`` (and the pipeline) reads:

    DIR/images/train/00000.png ...   official train split (pretraining and labels)
    DIR/images/test/00000.png ...    official validation split, scored as the test set
    DIR/labels.csv                   path,label,split  (label 1 = pneumonia, 0 = normal)
    DIR/reserve.csv                  path: the evaluation reserve (no labels)

The reserve lists the official validation split (scored as the test set) and a seeded,
class-stratified part of the official train split written with ``split=val``: the oracle
protocol's validation set. Neither is ever pretrained on. The realistic (budget) protocol
makes its choices on labels inside each budget and does not use the ``val`` rows.
PneumoniaMNIST has no patient identifiers, so every image counts as its own patient.

``--tune`` writes the folder to tune on instead: the carved part of the train split is
scored as the test set and the official validation split is pinned ``val`` (which the
budget protocol neither uses nor scores). The images and the reserve are the same, so the
pretraining pool and the encoder are too; choices made on this folder's results never saw
the official validation split.

Data: Yang et al., MedMNIST v2, Scientific Data 2023 (CC BY 4.0); Kermany et al., Cell 2018.

Usage:
    python benchmarks/pneumoniamnist_to_folder.py \
        --npz ../shared/data/pneumoniamnist/pneumoniamnist_train_val.npz --out /tmp/pmnist
    python benchmarks/pneumoniamnist_to_folder.py --out /tmp/pmnist_tune --tune
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

DEFAULT_NPZ = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "pneumoniamnist"
    / "pneumoniamnist_train_val.npz"
)


def holdout_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Seeded, class-stratified hold-out: ``True`` for the images sent to validation.

    Args:
        labels: ``(N,)`` binary labels.
        fraction: share of each class held out, in (0, 1).
        seed: ``numpy.random.Generator`` seed.

    Returns:
        ``(N,)`` boolean mask.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        mask[rng.permutation(idx)[: int(round(fraction * len(idx)))]] = True
    return mask


def write_split(images: np.ndarray, folder: Path, rel: str) -> list[str]:
    """Write ``(N, H, W)`` uint8 images as 8-bit greyscale PNGs; return their relative paths."""
    (folder / rel).mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = f"{rel}/{i:05d}.png"
        Image.fromarray(img, mode="L").save(folder / path, optimize=False)
        paths.append(path)
    return paths


def convert(
    npz: Path, out: Path, val_fraction: float, seed: int, tune: bool = False
) -> pd.DataFrame:
    """Write the PNG folder, ``labels.csv`` and ``reserve.csv``; return the label table.

    Args:
        npz: ``pneumoniamnist_train_val.npz`` with ``train_*`` and ``val_*`` arrays.
        out: destination folder (created).
        val_fraction: share of the official train split held out as validation.
        seed: hold-out seed.
        tune: score the carved part as ``test``, pin the official validation split ``val``.

    Returns:
        ``path, label, split`` as written to ``out/labels.csv``.
    """
    data = np.load(npz)
    y_train = data["train_labels"].reshape(-1).astype(int)
    y_test = data["val_labels"].reshape(-1).astype(int)
    train_paths = write_split(data["train_images"], out, "images/train")
    test_paths = write_split(data["val_images"], out, "images/test")
    held = holdout_mask(y_train, val_fraction, seed)
    carved, official = ("test", "val") if tune else ("val", "test")
    table = pd.DataFrame(
        {
            "path": train_paths + test_paths,
            "label": np.concatenate([y_train, y_test]),
            "split": np.concatenate([np.where(held, carved, "train"), [official] * len(y_test)]),
        }
    )
    table.to_csv(out / "labels.csv", index=False, lineterminator="\n")
    reserve = table.loc[table["split"] != "train", ["path"]]
    reserve.to_csv(out / "reserve.csv", index=False, lineterminator="\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npz", type=Path, default=DEFAULT_NPZ)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tune", action="store_true", help="score the part carved from train (to tune on)"
    )
    args = parser.parse_args()
    if not args.npz.exists():
        raise SystemExit(f"error: {args.npz} not found")
    table = convert(args.npz, args.out, args.val_fraction, args.seed, args.tune)
    for split, part in table.groupby("split", sort=False):
        print(f"{split}: {len(part)} images, {int(part['label'].sum())} pneumonia")


if __name__ == "__main__":
    main()
