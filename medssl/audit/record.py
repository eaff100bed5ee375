"""The run record: what produced each number, written once per run and read back.

A run record (``results/audit/run_record.json``, written by the ``audit`` stage) holds the
code version (git commit, dirty flag, content hashes of the code), for every pipeline stage
the ``dvc.lock`` hashes of its inputs and outputs and the params it read, named artifacts
(manifest, label set, splits, encoder, models, metrics) with their hashes, the resolved
params and seeds, package versions, OS, CPU and GPU, determinism flags, the
de-identification profile, the patient-overlap check across splits and the headline
metrics with their confidence intervals and the stages that produced them. It holds no
timestamp, host name, user name or absolute path, so two runs of the same code on the same
data give the same record, and nothing in it identifies a patient.

References: Collins G.S. et al. (2024) TRIPOD+AI statement, BMJ 385:e078378 (items 8-12:
data, 18: code availability); Mongan J. et al. (2020, 2024 update) CLAIM, Radiology: AI;
Wilkinson M.D. et al. (2016) FAIR principles (provenance).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medssl.audit.dvcstate import producer_of
from medssl.audit.errors import AuditError
from medssl.runs import find_run_dir
from medssl.workspace import PIPELINE_FILE

RECORD_VERSION = 1
#: Code paths hashed into the record's code version, relative to the workspace root.
CODE_PATHS = ("medssl", "pipelines", PIPELINE_FILE)
#: Metrics reported as headline metrics when the record carries ``<name>_ci_low/high``.
HEADLINE_METRICS = ("auroc", "auprc", "sens_at_spec90", "sens_at_spec95")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are leaves)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def seeds_of(params: Mapping[str, Any]) -> dict[str, Any]:
    """Every ``*seed``/``*seeds`` value of the params, by dotted key."""
    return {k: v for k, v in flatten(params).items() if k.split(".")[-1] in ("seed", "seeds")}


def headline_records(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records that give headline numbers.

    Records flagged ``headline: true`` by the evaluate stage when any is; otherwise, per
    arm and mode, those with the most labels (all seeds).

    Args:
        records: ``results/label_efficiency.json``.

    Returns:
        Records sorted by arm, mode, labels and seed.
    """
    if any("headline" in r for r in records):
        chosen = [dict(r) for r in records if r.get("headline")]
    else:
        top: dict[tuple[str, str], int] = {}
        for r in records:
            key = (str(r["arm"]), str(r.get("mode", "")))
            top[key] = max(top.get(key, -1), int(r["n_labels"]))
        chosen = [
            dict(r)
            for r in records
            if int(r["n_labels"]) == top[(str(r["arm"]), str(r.get("mode", "")))]
        ]
    return sorted(chosen, key=_record_order)


def _record_order(r: Mapping[str, Any]) -> tuple[str, str, int, int]:
    return (str(r["arm"]), str(r.get("mode", "")), int(r["n_labels"]), int(r["seed"]))


def headline_metrics(
    records: Sequence[Mapping[str, Any]],
    stages: Mapping[str, Mapping[str, Any]],
    metrics_path: str,
    runs: Path,
    root: Path,
) -> list[dict[str, Any]]:
    """Headline metrics with their CIs and the stages that produced them.

    Args:
        records: ``label_efficiency.json`` records.
        stages: from :func:`read_lock`.
        metrics_path: path of ``label_efficiency.json`` relative to ``root``.
        runs: folder of fine-tuning runs.
        root: workspace root.

    Returns:
        One entry per headline record and metric: ``arm, mode, n_labels, seed, metric,
        value, ci_low, ci_high, stages`` (the evaluating and the training stage).
    """
    evaluator = producer_of(metrics_path, stages)
    out = []
    for rec in headline_records(records):
        run_dir = find_run_dir(rec, runs)
        trainer = None
        if run_dir is not None and run_dir.resolve().is_relative_to(root.resolve()):
            trainer = producer_of(run_dir.resolve().relative_to(root.resolve()).as_posix(), stages)
        for metric in HEADLINE_METRICS:
            if f"{metric}_ci_low" not in rec or rec.get(metric) is None:
                continue
            out.append(
                {
                    "arm": rec["arm"],
                    "mode": rec.get("mode"),
                    "n_labels": rec["n_labels"],
                    "seed": rec["seed"],
                    "metric": metric,
                    "value": rec[metric],
                    "ci_low": rec[f"{metric}_ci_low"],
                    "ci_high": rec[f"{metric}_ci_high"],
                    "stages": [s for s in (trainer, evaluator) if s is not None],
                }
            )
    return out


def split_summary(splits: pd.DataFrame, overlap: int) -> dict[str, Any]:
    """Patients and images per split and the overlap count.

    Args:
        splits: ``image_id, patient_key, split``.
        overlap: from :func:`medssl.data.splits.patient_overlap`.

    Returns:
        ``{"patients_in_several_splits": overlap, "patients": {...}, "images": {...}}``.
    """
    grouped = splits.groupby("split")
    return {
        "patients_in_several_splits": int(overlap),
        "patients": {str(k): int(v) for k, v in grouped["patient_key"].nunique().items()},
        "images": {str(k): int(v) for k, v in grouped.size().items()},
    }


def build_record(
    *,
    stages: Mapping[str, Mapping[str, Any]],
    params: Mapping[str, Any],
    artifacts: Mapping[str, Mapping[str, Any]],
    code: Mapping[str, Any],
    environment: Mapping[str, Any],
    determinism: Mapping[str, Any],
    deid_profile: Mapping[str, Any],
    splits: Mapping[str, Any],
    metrics: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Assemble a run record (pure: every part is computed by the caller).

    Args:
        stages: ``dvc.lock`` stages (:func:`read_lock`), the audit stage left out.
        params: the whole ``params.yaml``.
        artifacts: ``name -> {"path", "md5"}`` for manifest, label set, splits, ...
        code: ``{"git_commit", "git_dirty", "n_changed", "hashes": {path: md5}}``.
        environment: ``{"packages": ..., "hardware": ...}``.
        determinism: from :func:`determinism_flags`.
        deid_profile: ``{"implementation": PROFILE_VERSION, "manifest": [...]}``.
        splits: from :func:`split_summary`.
        metrics: from :func:`headline_metrics`.

    Returns:
        The JSON-ready record.
    """
    return {
        "record_version": RECORD_VERSION,
        "code": dict(code),
        "stages": {k: dict(v) for k, v in sorted(stages.items())},
        "artifacts": {k: dict(v) for k, v in sorted(artifacts.items())},
        "params": dict(params),
        "seeds": seeds_of(params),
        "environment": dict(environment),
        "determinism": dict(determinism),
        "deid_profile": dict(deid_profile),
        "splits": dict(splits),
        "headline_metrics": [dict(m) for m in metrics],
    }


def write_record(record: Mapping[str, Any], path: Path) -> None:
    """Write a record as sorted, indented JSON (byte-identical for equal records)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_record(path: Path) -> dict[str, Any]:
    """Read a run record.

    Raises:
        AuditError: when the file is missing, not JSON or of another record version.
    """
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise AuditError(f"{path}: run record not found (run `dvc repro audit`)") from exc
    except json.JSONDecodeError as exc:
        raise AuditError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(record, dict) or record.get("record_version") != RECORD_VERSION:
        raise AuditError(f"{path}: expected record_version {RECORD_VERSION}")
    return record
