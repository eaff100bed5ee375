"""Which encoder to pretrain: variants at about equal pretraining time, scored by the 1 % probe.

A full label-efficiency run costs about an hour here, so the network a preset pretrains is
chosen with this cheaper study: each variant (encoder, stem, epochs; pick the epochs so
that every variant gets about the same wall time, which this script reports) is pretrained
by the pipeline's own ``pretrain`` stage on the same images, then its frozen features are
scored as the ``linear`` mode of preset ``long`` scores them: the budget drawn and dealt
into folds by :func:`medssl.data.splits.budget_folds`, ``C`` chosen on out-of-fold AUROC
and the probe refitted on the budget (:func:`medssl.train.probe.cross_fit_probe`), over
``--draws`` label draws, test AUROC on the folder's ``test`` split. Raw pixels are scored
the same way beside them. Every row is scored twice: on the plain features and on the
features averaged over each image's mirror images (``finetune.feature_flips``,
:mod:`medssl.train.flips`), fields ``flips_*``.

Run it on the folder to tune on (``pneumoniamnist_to_folder.py --tune``: its ``test``
split is carved from the training images), never on the split the results are reported
on:

    python benchmarks/pneumoniamnist_to_folder.py --out /tmp/pmnist_tune --tune
    python benchmarks/encoder_at_equal_time.py --data /tmp/pmnist_tune \\
        --variant resnet18:7x7:60 --variant resnet10:3x3:21 --variant resnet18:3x3:10 \\
        --out benchmarks/results/encoder_at_equal_time.json --threads 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_efficiency import (  # noqa: E402
    PRESETS,
    _env,
    make_workspace,
    merge,
    resolve_preset,
    set_threads,
    versions,
)

from medssl.data.dataset import load_stack  # noqa: E402
from medssl.data.splits import budget_folds  # noqa: E402
from medssl.train.finetune import build_classifier, embed  # noqa: E402
from medssl.train.finetune_run import labelled_images  # noqa: E402
from medssl.train.flips import flip_views  # noqa: E402
from medssl.train.pixels import pixel_features  # noqa: E402
from medssl.train.probe import cross_fit_probe  # noqa: E402

#: ``--variant`` stem names -> ``model.small_input``.
STEMS = {"7x7": False, "3x3": True}


@dataclass(frozen=True)
class Variant:
    """One encoder to pretrain: ``ENCODER:STEM:EPOCHS``, e.g. ``resnet10:3x3:21``."""

    encoder: str
    stem: str
    epochs: int

    @classmethod
    def parse(cls, text: str) -> Variant:
        parts = text.split(":")
        if len(parts) != 3 or parts[1] not in STEMS or not parts[2].isdigit():
            raise SystemExit(
                f"error: --variant {text!r}: expected ENCODER:STEM:EPOCHS with STEM in "
                f"{sorted(STEMS)}, e.g. resnet10:3x3:21"
            )
        return cls(parts[0], parts[1], int(parts[2]))

    @property
    def name(self) -> str:
        return f"{self.encoder}-{self.stem}-{self.epochs}ep"


def prepare(ws: Path, data: Path, preset: str, log: Path) -> dict[str, Any]:
    """A workspace with preset ``preset`` whose stages up to ``split`` have run."""
    params = make_workspace(ws, data, resolve_preset(yaml.safe_load(PRESETS.read_text()), preset))
    with log.open("a") as out:
        proc = subprocess.run(["dvc", "repro", "split"], cwd=ws, env=_env(), stdout=out, stderr=out)
    if proc.returncode != 0:
        raise SystemExit(f"error: ingest .. split failed (see {log})")
    return params


def pretrain(ws: Path, params: dict[str, Any], variant: Variant, log: Path) -> float:
    """Pretrain ``variant`` with the pipeline's stage (from scratch); wall seconds."""
    over = {
        "model": {"encoder": variant.encoder, "small_input": STEMS[variant.stem]},
        "pretrain": {"epochs": variant.epochs},
    }
    (ws / "params.yaml").write_text(yaml.safe_dump(merge(params, over), sort_keys=False))
    shutil.rmtree(ws / "models" / "pretrain_ckpt", ignore_errors=True)
    start = time.perf_counter()
    with log.open("a") as out:
        proc = subprocess.run(
            ["dvc", "repro", "-s", "pretrain"], cwd=ws, env=_env(), stdout=out, stderr=out
        )
    if proc.returncode != 0:
        raise SystemExit(f"error: pretraining {variant.name} failed (see {log})")
    return round(time.perf_counter() - start, 1)


def scored_images(ws: Path, size: int, intensity: str) -> tuple[pd.DataFrame, torch.Tensor]:
    """The ``train`` and ``test`` rows of the labelled 2D images and their ``(N, 1, H, W)``
    images, preprocessed as fine-tuning preprocesses them."""
    table = labelled_images(
        ws / "data/ingested", ws / "data/splits/splits.csv", ws / "data/splits/labels.csv", 2
    )
    table = table[table["split"].isin(["train", "test"])].reset_index(drop=True)
    paths = [str(ws / "data/ingested" / p) for p in table["nifti"]]
    return table, load_stack(paths, size, 2, intensity)


def probe_aurocs(
    table: pd.DataFrame, features: np.ndarray, budget: float, draws: int, c_grid: list[float]
) -> list[float]:
    """Test AUROC of the cross-fitted probe for label draws ``0 .. draws - 1``.

    Args:
        table: labelled images (``image_id``, ``patient_key``, ``label``, ``split``).
        features: ``(len(table), D)`` frozen features, in ``table``'s row order.
        budget: label budget (fraction or count) drawn from the ``train`` rows.
        draws: label draws (the pipeline's ``finetune.seeds``).
        c_grid: candidate ``C`` values.
    """
    train = table[table["split"] == "train"]
    test = (table["split"] == "test").to_numpy()
    y = table["label"].astype(int).to_numpy()
    out = []
    for draw in range(draws):
        folds = budget_folds(train, budget, draw, 0.25)
        fold_of = {i: k for k, ids in enumerate(folds) for i in ids}
        rows = table.index[table["image_id"].isin(fold_of)].to_numpy()
        fold = table.loc[rows, "image_id"].map(fold_of).to_numpy()
        probe, _ = cross_fit_probe(features[rows], y[rows], fold, c_grid)
        out.append(float(roc_auc_score(y[test], probe.predict(features[test]))))
    return out


def summary(name: str, aurocs: list[float], flipped: list[float], **facts: Any) -> dict[str, Any]:
    """One result row: the facts, the per-draw AUROCs, their mean and SD, on plain and on
    flip-averaged features (``flips_*``)."""
    return {
        "variant": name,
        **facts,
        "probe_test_auroc": aurocs,
        "mean": round(float(np.mean(aurocs)), 4),
        "sd": round(float(np.std(aurocs)), 4),
        "flips_probe_test_auroc": flipped,
        "flips_mean": round(float(np.mean(flipped)), 4),
        "flips_sd": round(float(np.std(flipped)), 4),
    }


def both_ways(
    features: Callable[[torch.Tensor], np.ndarray],
    images: torch.Tensor,
    score: Callable[[np.ndarray], list[float]],
) -> tuple[list[float], list[float]]:
    """``score`` of the plain features and of the flip-averaged ones (one pass per view)."""
    views = flip_views(features, images)
    return score(views[0]), score(np.mean(views, axis=0))


def line(row: dict[str, Any]) -> str:
    """``mean ± sd (flip-averaged: mean ± sd)`` of one row."""
    return (
        f"probe {row['mean']:.4f} ± {row['sd']:.4f} "
        f"(flip-averaged: {row['flips_mean']:.4f} ± {row['flips_sd']:.4f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with labels.csv")
    parser.add_argument("--out", type=Path, required=True, help="JSON to write")
    parser.add_argument("--variant", action="append", required=True, help="ENCODER:STEM:EPOCHS")
    parser.add_argument("--preset", default="long", help="preset the rest comes from")
    parser.add_argument("--budget", type=float, default=0.01, help="label fraction (or count)")
    parser.add_argument("--draws", type=int, default=10, help="label draws per variant")
    parser.add_argument("--workdir", type=Path, help="keep the workspace here (default: temp)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for every stage")
    args = parser.parse_args()
    variants = [Variant.parse(v) for v in args.variant]
    set_threads(args.threads)
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = int(args.budget) if args.budget >= 1 else args.budget
    ws = args.workdir or Path(tempfile.mkdtemp(prefix="medssl-encoders-")) / "ws"
    log = args.out.with_suffix(".log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    params = prepare(ws, args.data.resolve(), args.preset, log)
    size, c_grid = params["model"]["image_size"], list(params["finetune"]["probe_c"])
    table, images = scored_images(ws, size, params["model"]["intensity"])

    def score(features: np.ndarray) -> list[float]:
        return probe_aurocs(table, features, budget, args.draws, c_grid)

    pixels = partial(pixel_features, size=params["finetune"]["pixel_size"])
    rows = [summary("pixels", *both_ways(pixels, images, score))]
    print(f"pixels: {line(rows[0])}", flush=True)
    for variant in variants:
        seconds = pretrain(ws, params, variant, log)
        state = torch.load(ws / "models/pretrain/encoder.pt", weights_only=True)
        encoder = build_classifier(variant.encoder, 2, STEMS[variant.stem], state, 0).encoder
        with torch.no_grad():
            aurocs = both_ways(partial(embed, encoder), images, score)
        rows.append(summary(variant.name, *aurocs, **asdict(variant), pretrain_s=seconds))
        print(f"{variant.name}: pretrain {seconds:.0f} s, {line(rows[-1])}", flush=True)
    record = {
        "command": " ".join(sys.argv),
        "data": str(args.data),
        "preset": args.preset,
        "budget": budget,
        "draws": args.draws,
        "n_test": int((table["split"] == "test").sum()),
        "versions": versions(),
        "rows": rows,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
