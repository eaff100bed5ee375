"""Stage audit: the run record (code, data and model hashes, params, environment, metrics)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from medssl.audit import (
    CODE_PATHS,
    LOCK_NAME,
    AuditError,
    build_record,
    determinism_flags,
    git_state,
    hardware,
    hash_paths,
    headline_metrics,
    package_versions,
    pipeline_stage_names,
    read_lock,
    recorded_stages,
    split_summary,
    write_record,
)
from medssl.data.splits import patient_overlap
from medssl.io.pseudonym import PROFILE_VERSION


def parse_artifact(text: str) -> tuple[str, str]:
    """``"name=path"`` -> ``("name", "path")``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="label_efficiency.json")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--artifact", type=parse_artifact, action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--root", type=Path, default=Path())
    args = parser.parse_args()
    root = args.root
    try:
        params = yaml.safe_load(args.params.read_text()) or {}
        dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
        lock = read_lock(root / LOCK_NAME)
    except AuditError as exc:
        sys.exit(f"error: {exc}")
    stages = recorded_stages(lock, pipeline_stage_names(dvc_yaml, params), args.out.as_posix())
    splits = pd.read_csv(args.splits, dtype=str)
    overlap = patient_overlap(splits)
    manifest = pd.read_csv(args.manifest, dtype=str, keep_default_na=False)
    records = json.loads(args.metrics.read_text())
    artifacts = dict(args.artifact)
    hashes = hash_paths([*artifacts.values(), *CODE_PATHS], root)
    git = git_state(root, generated=[p for s in lock.values() for p in s["outs"]])
    run_files = [*sorted(args.runs.glob("*/run.json")), args.encoder / "encoder.json"]
    record = build_record(
        stages=stages,
        params=params,
        artifacts={k: {"path": p, "md5": hashes[p]} for k, p in artifacts.items()},
        code={
            "git_commit": git["commit"],
            "git_dirty": git["dirty"],
            "n_changed": git["n_changed"],
            "hashes": {p: hashes[p] for p in CODE_PATHS},
        },
        environment={"packages": package_versions(), "hardware": hardware()},
        determinism=determinism_flags(run_files),
        deid_profile={
            "implementation": PROFILE_VERSION,
            "manifest": sorted(set(manifest["deid_profile"]) - {""}),
        },
        splits=split_summary(splits, overlap),
        metrics=headline_metrics(records, stages, args.metrics.as_posix(), args.runs, root),
    )
    write_record(record, args.out)
    dirty = " (dirty tree)" if git["dirty"] else ""
    print(f"run record: {len(stages)} stages, commit {git['commit']}{dirty} -> {args.out}")
    for m in record["headline_metrics"]:
        print(
            f"  {m['arm']:>8} {m['mode']} n={m['n_labels']} seed={m['seed']} {m['metric']} "
            f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
        )
    if overlap:
        sys.exit(f"error: {overlap} patient(s) appear in more than one split")


if __name__ == "__main__":
    main()
