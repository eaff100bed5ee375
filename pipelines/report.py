"""Stage report: one self-contained HTML page (data, metrics, curves, saliency, run record)."""

from __future__ import annotations

import argparse

from medssl.audit import AuditError
from medssl.params import Params
from medssl.report.assemble import ReportInputs, report_html
from medssl.stage import run_stage


def main(args: argparse.Namespace, p: Params) -> None:
    inputs = ReportInputs(
        ingested=args.ingested, splits=args.splits, labels=args.labels, metrics=args.metrics,
        runs=args.runs, bundle=args.bundle, record=args.record,
    )  # fmt: skip
    how, demo = p.evaluate.patient_aggregation, p.data.demo_mode
    html = report_html(inputs, p.report, how=how, demo=demo)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(html)
    print(f"report {args.out}: {len(html) / 1e6:.2f} MB, {html.count('<img ')} images")


if __name__ == "__main__":
    paths = ("--ingested", "--splits", "--labels", "--metrics", "--runs", "--bundle", "--record")
    errors = (FileNotFoundError, AuditError)
    run_stage(main, __doc__, paths=(*paths, "--out"), errors=errors)
