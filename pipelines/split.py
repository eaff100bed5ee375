"""Stage split: join a label set to the reserve-based splits and check every budget.

Pool patients give training labels; reserved patients are tested (and, under the oracle
protocol, validate). Writes ``splits.csv`` (``image_id, patient_key, split``) and
``labels.csv`` (``image_id, label``). With ``labels.path: null`` it writes empty tables and
says that evaluation waits for a label set; the encoder does not need one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from medssl.data.labels import LabelError, join_labels
from medssl.data.manifest import MANIFEST_NAME, read_manifest, unusable_sources
from medssl.data.reserve import ReserveError, read_reserve
from medssl.data.splits import (
    SPLITS,
    SplitError,
    check_both_classes,
    check_budgets,
    make_splits,
    patient_overlap,
)
from medssl.io.pseudonym import DeidError, Pseudonymizer, secret_from_env
from medssl.params import ParamsError, get, load_params, tracked_file

NO_LABELS = (
    "no label set (labels.path is null): ingestion, the reserve and pretraining do not need "
    "one; put a label CSV in {lists}/ and set labels.path to evaluate"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--reserve", type=Path, required=True)
    parser.add_argument("--lists", type=Path, required=True, help="folder of label sets")
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    try:
        p = load_params(args.params)
        manifest = read_manifest(args.ingested / MANIFEST_NAME)
        reserve = read_reserve(args.reserve)
        pseudo = Pseudonymizer(secret_from_env(demo=get(p, "data.demo_mode", bool)))
        label_path = tracked_file(p, "labels.path", args.lists)
        labels = pd.DataFrame(columns=["image_id", "label", "split_pin", "patient_pin", "row"])
        if label_path is not None:
            labels = join_labels(
                label_path,
                manifest,
                unusable_sources(args.ingested),
                pseudo,
                key=get(p, "labels.key", str),
                label_column=get(p, "labels.column", str),
                positive=[str(v) for v in get(p, "labels.positive", list)],
                negative=[str(v) for v in get(p, "labels.negative", list)],
            )
        protocol = get(p, "split.validation", str)
        splits = make_splits(
            reserve,
            labels,
            protocol=protocol,
            oracle_val_fraction=get(p, "split.oracle_val_fraction", float),
            seed=get(p, "split.seed", int),
            pseudo=pseudo,
        )
        if patient_overlap(splits):
            raise SplitError("a patient landed in two splits")  # make_splits rules it out
        budgets = []
        if label_path is not None:
            check_both_classes(splits, labels)
            dims = get(p, "model.spatial_dims", int)
            usable = manifest.loc[manifest["spatial_dims"] == dims, ["image_id"]]
            train = usable.merge(splits[splits["split"] == "train"], on="image_id")
            val_fraction = get(p, "split.budget_val_fraction", float)
            budgets = check_budgets(
                train.merge(labels, on="image_id"),
                get(p, "finetune.budgets", list),
                [int(s) for s in get(p, "finetune.seeds", list)],
                val_fraction if protocol == "budget" else 0.0,
            )
    except (LabelError, SplitError, ReserveError, ParamsError, DeidError) as exc:
        sys.exit(f"error: {exc}")
    args.splits.parent.mkdir(parents=True, exist_ok=True)
    splits.to_csv(args.splits, index=False, lineterminator="\n")
    labels[["image_id", "label"]].to_csv(args.labels, index=False, lineterminator="\n")
    if label_path is None:
        print(NO_LABELS.format(lists=args.lists))
        return
    joined = splits.merge(labels, on="image_id", how="left")
    for s in [s for s in SPLITS if s in set(splits["split"])]:
        part = joined[joined["split"] == s]
        n_labelled, n_abnormal = int(part["label"].notna().sum()), int((part["label"] == 1).sum())
        print(
            f"{s}: {part['patient_key'].nunique()} patients, {len(part)} images, "
            f"{n_labelled} labelled ({n_abnormal} abnormal)"
        )
    for budget, n_pos, n_neg, n_val in budgets:
        where = f"{n_val} of them for validation" if protocol == "budget" else "oracle validation"
        print(f"budget {budget}: {n_pos} abnormal + {n_neg} normal training labels ({where})")


if __name__ == "__main__":
    main()
