"""Stage split: join a label set to the reserve-based splits and check every budget.

Pool patients give training labels; reserved patients are tested (and, under the oracle
protocol, validate). Writes ``splits.csv`` (``image_id, patient_key, split``) and
``labels.csv`` (``image_id, label``). With ``labels.path: null`` it writes empty tables and
says that evaluation waits for a label set; the encoder does not need one.
"""

from __future__ import annotations

import argparse

from medssl.data.labelled_splits import split_labels
from medssl.data.labels import LabelError
from medssl.data.reserve import ReserveError
from medssl.data.splits import SplitError
from medssl.io.pseudonym import DeidError
from medssl.params import Params
from medssl.stage import run_stage

NO_LABELS = (
    "no label set (labels.path is null): ingestion, the reserve and pretraining do not need "
    "one; put a label CSV in {lists}/ and set labels.path to evaluate"
)


def main(args: argparse.Namespace, p: Params) -> None:
    result = split_labels(
        args.ingested, args.reserve, args.lists, p.labels, p.split,
        spatial_dims=p.model.spatial_dims, budgets=p.finetune.budgets,
        seeds=p.finetune.seeds, demo=p.data.demo_mode,
    )  # fmt: skip
    args.splits.parent.mkdir(parents=True, exist_ok=True)
    result.splits.to_csv(args.splits, index=False, lineterminator="\n")
    result.labels[["image_id", "label"]].to_csv(args.labels, index=False, lineterminator="\n")
    print("\n".join(result.summary()) if result.labelled else NO_LABELS.format(lists=args.lists))


if __name__ == "__main__":
    paths = ("--ingested", "--reserve", "--lists", "--splits", "--labels")
    errors = (LabelError, SplitError, ReserveError, DeidError)
    run_stage(main, __doc__, paths=paths, errors=errors)
