"""Stage split: join the label CSV to the manifest and split by patient (seeded)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from medssl.data.labels import LabelError, join_labels
from medssl.data.manifest import MANIFEST_NAME, QUARANTINE_NAME, SKIPPED_NAME, read_manifest
from medssl.data.splits import (
    SPLITS,
    SplitError,
    check_both_classes,
    check_budgets,
    make_splits,
    patient_overlap,
)
from medssl.io.deid import Pseudonymizer, secret_from_env
from medssl.params import ParamsError, get, load_params


def unusable_sources(ingested: Path) -> set[str]:
    """``source_key`` of files quarantined, skipped as duplicates or dropped by a QC rule.

    Label rows naming them are dropped rather than failing: the image is unreadable (see
    ``quarantine.csv``), already present under another path, or excluded on purpose
    (``ingest.drop_flags``, e.g. localizers). Other skipped files (hidden, non-image
    extensions) are not images, so a label row naming one stays an error.
    """
    keys = set(pd.read_csv(ingested / QUARANTINE_NAME, dtype=str)["source_key"])
    skipped = ingested / SKIPPED_NAME
    if skipped.exists():
        table = pd.read_csv(skipped, dtype=str)
        dropped = (table["rule"] == "duplicate_instance") | table["rule"].str.startswith("qc_")
        keys |= set(table.loc[dropped, "source_key"])
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    try:
        p = load_params(args.params)
        manifest = read_manifest(args.ingested / MANIFEST_NAME)
        unusable = unusable_sources(args.ingested)
        pseudo = Pseudonymizer(secret_from_env(demo=get(p, "data.demo_mode", bool)))
        labels = join_labels(
            Path(get(p, "labels.path", str)),
            manifest,
            unusable,
            pseudo,
            key=get(p, "labels.key", str),
            label_column=get(p, "labels.column", str),
            positive=[str(v) for v in get(p, "labels.positive", list)],
            negative=[str(v) for v in get(p, "labels.negative", list)],
        )
        fractions = {s: get(p, f"split.fractions.{s}", float) for s in SPLITS}
        splits = make_splits(manifest, labels, fractions, get(p, "split.seed", int))
        check_both_classes(splits, labels)
        dims = get(p, "model.spatial_dims", int)
        usable = manifest.loc[manifest["spatial_dims"] == dims, ["image_id"]]
        train = usable.merge(splits[splits["split"] == "train"], on="image_id").merge(
            labels, on="image_id"
        )
        budgets = check_budgets(train, get(p, "finetune.budgets", list))
    except (LabelError, SplitError, ParamsError) as exc:
        sys.exit(f"error: {exc}")
    assert patient_overlap(splits) == 0
    args.splits.parent.mkdir(parents=True, exist_ok=True)
    splits.to_csv(args.splits, index=False, lineterminator="\n")
    labels[["image_id", "label"]].to_csv(args.labels, index=False, lineterminator="\n")
    joined = splits.merge(labels, on="image_id", how="left")
    for s in SPLITS:
        part = joined[joined["split"] == s]
        n_labelled, n_abnormal = int(part["label"].notna().sum()), int((part["label"] == 1).sum())
        print(
            f"{s}: {part['patient_key'].nunique()} patients, {len(part)} images, "
            f"{n_labelled} labelled ({n_abnormal} abnormal)"
        )
    for budget, n_pos, n_neg in budgets:
        print(f"budget {budget}: {n_pos} abnormal + {n_neg} normal training labels")


if __name__ == "__main__":
    main()
