"""Stage audit: the run record (code, data and model hashes, params, environment, metrics)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medssl.audit import AuditError, write_record
from medssl.audit.collect import AuditInputs, collect_record
from medssl.params import Params
from medssl.stage import run_stage


def parse_artifact(text: str) -> tuple[str, str]:
    """``"name=path"`` -> ``("name", "path")``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifact", type=parse_artifact, action="append", default=[])
    parser.add_argument("--root", type=Path, default=Path())


def main(args: argparse.Namespace, _: Params) -> None:
    inputs = AuditInputs(
        root=args.root, params=args.params, splits=args.splits, manifest=args.manifest,
        metrics=args.metrics, runs=args.runs, encoder=args.encoder,
        artifacts=dict(args.artifact), out=args.out,
    )  # fmt: skip
    done = collect_record(inputs)
    write_record(done.record, args.out)
    dirty = " (dirty tree)" if done.git["dirty"] else ""
    print(f"run record: {done.n_stages} stages, commit {done.git['commit']}{dirty} -> {args.out}")
    for m in done.record["headline_metrics"]:
        print(
            f"  {m['arm']:>8} {m['mode']} n={m['n_labels']} seed={m['seed']} {m['metric']} "
            f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
        )
    if done.overlap:
        sys.exit(f"error: {done.overlap} patient(s) appear in more than one split")


if __name__ == "__main__":
    paths = ("--splits", "--manifest", "--metrics", "--runs", "--encoder", "--out")
    run_stage(main, __doc__, paths=paths, arguments=arguments, errors=(AuditError,))
