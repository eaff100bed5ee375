"""The audit stage's work: collect every part of the run record from the workspace.

Reads ``dvc.yaml``, ``dvc.lock`` and the params file, hashes the named artifacts and the
code, records the git state, environment and determinism flags, summarises the splits and
picks the headline metrics, then assembles them with :func:`medssl.audit.record.build_record`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from medssl.audit.dvcstate import (
    LOCK_NAME,
    hash_paths,
    pipeline_stage_names,
    read_lock,
    recorded_stages,
)
from medssl.audit.environment import determinism_flags, git_state, hardware, package_versions
from medssl.audit.record import CODE_PATHS, build_record, headline_metrics, split_summary
from medssl.data.splits import patient_overlap
from medssl.io.pseudonym import PROFILE_VERSION
from medssl.params import read_yaml
from medssl.runs import RUN_JSON
from medssl.workspace import PIPELINE_FILE


@dataclass(frozen=True)
class AuditInputs:
    """What the record covers.

    Attributes:
        root: the workspace root (``dvc.yaml``, ``dvc.lock``, code paths).
        params: the params file (recorded as written).
        splits: ``splits.csv``.
        manifest: ``manifest.csv``.
        metrics: ``label_efficiency.json``.
        runs: the fine-tuning runs' folder.
        encoder: the pretrained encoder's folder.
        artifacts: name -> path of each artifact to hash (relative to ``root``).
        out: the record's path (the audit stage itself is left out of it).
    """

    root: Path
    params: Path
    splits: Path
    manifest: Path
    metrics: Path
    runs: Path
    encoder: Path
    artifacts: Mapping[str, str]
    out: Path


@dataclass(frozen=True)
class Collected:
    """The record and what the stage reports about it.

    Attributes:
        record: the JSON-ready run record.
        n_stages: stages it covers.
        git: ``{"commit", "dirty", "n_changed"}``.
        overlap: patients found in more than one split (must be 0).
    """

    record: dict[str, Any]
    n_stages: int
    git: dict[str, Any]
    overlap: int


def collect_record(inputs: AuditInputs) -> Collected:
    """Build the run record of the workspace.

    Raises:
        medssl.audit.AuditError: a missing or unreadable ``dvc.lock``.
        medssl.params.ParamsError: an unreadable params file.
    """
    root = inputs.root
    params = read_yaml(inputs.params)
    dvc_yaml = yaml.safe_load((root / PIPELINE_FILE).read_text()) or {}
    lock = read_lock(root / LOCK_NAME)
    stages = recorded_stages(lock, pipeline_stage_names(dvc_yaml, params), inputs.out.as_posix())
    splits = pd.read_csv(inputs.splits, dtype=str)
    overlap = patient_overlap(splits)
    manifest = pd.read_csv(inputs.manifest, dtype=str, keep_default_na=False)
    records = json.loads(inputs.metrics.read_text())
    hashes = hash_paths([*inputs.artifacts.values(), *CODE_PATHS], root)
    git = git_state(root, generated=[p for s in lock.values() for p in s["outs"]])
    run_files = [*sorted(inputs.runs.glob(f"*/{RUN_JSON}")), inputs.encoder / "encoder.json"]
    record = build_record(
        stages=stages,
        params=params,
        artifacts={k: {"path": p, "md5": hashes[p]} for k, p in inputs.artifacts.items()},
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
        metrics=headline_metrics(records, stages, inputs.metrics.as_posix(), inputs.runs, root),
    )
    return Collected(record, len(stages), git, overlap)
