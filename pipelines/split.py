"""Stage split: join the label CSV to the manifest and split by patient (seeded)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from medssl.data.labels import LabelError, join_labels
from medssl.data.manifest import MANIFEST_NAME, QUARANTINE_NAME, read_manifest
from medssl.data.splits import (
    SPLITS,
    SplitError,
    check_both_classes,
    make_splits,
    patient_overlap,
)
from medssl.io.deid import Pseudonymizer, secret_from_env
from medssl.params import ParamsError, get, load_params


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
        quarantine = pd.read_csv(args.ingested / QUARANTINE_NAME, dtype=str)
        pseudo = Pseudonymizer(secret_from_env(demo=get(p, "data.demo_mode", bool)))
        labels = join_labels(
            Path(get(p, "labels.path", str)),
            manifest,
            set(quarantine["source_key"]),
            pseudo,
            key=get(p, "labels.key", str),
            label_column=get(p, "labels.column", str),
            positive=[str(v) for v in get(p, "labels.positive", list)],
            negative=[str(v) for v in get(p, "labels.negative", list)],
        )
        fractions = {s: get(p, f"split.fractions.{s}", float) for s in SPLITS}
        splits = make_splits(manifest, labels, fractions, get(p, "split.seed", int))
        check_both_classes(splits, labels)
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


if __name__ == "__main__":
    main()
