"""Stage export: the fine-tuned classifier as a MONAI bundle with a model card."""

from __future__ import annotations

import argparse
import json

from medssl.export.assemble import ExportInputs, export_bundle
from medssl.params import Params
from medssl.stage import run_stage


def main(args: argparse.Namespace, p: Params) -> None:
    records = json.loads(args.metrics.read_text())
    inputs = ExportInputs(
        runs=args.runs, ingested=args.ingested, splits=args.splits, labels=args.labels,
        encoder=args.encoder,
    )  # fmt: skip
    done = export_bundle(records, inputs, args.out, p.model, p.export, demo=p.data.demo_mode)
    r = done.record
    what = f"{r['arm']} {done.mode} n={r['n_labels']} seed={r['seed']}"
    print(f"bundle {args.out}: {what}, {done.target}")


if __name__ == "__main__":
    paths = ("--runs", "--metrics", "--ingested", "--splits", "--labels", "--encoder", "--out")
    run_stage(main, __doc__, paths=paths, errors=(ValueError,))
