"""The run record: what produced each number, and checks of a record against a workspace.

A run record (``results/audit/run_record.json``, written by the ``audit`` stage) holds the
code version (git commit, dirty flag, content hashes of the code), for every pipeline stage
the ``dvc.lock`` hashes of its inputs and outputs and the params it read, named artifacts
(manifest, label set, splits, encoder, models, metrics) with their hashes, the resolved
params and seeds, package versions, OS, CPU and GPU, determinism flags, the
de-identification profile, the patient-overlap check across splits and the headline
metrics with their confidence intervals and the stages that produced them. It holds no
timestamp, host name, user name or absolute path, so two runs of the same code on the same
data give the same record, and nothing in it identifies a patient.

:func:`verify_record` re-hashes the workspace and lists each difference;
:func:`reproduce_in` re-runs the recorded stages in a scratch workspace and compares the
metrics and, on CPU, the output hashes.

Hashes follow DVC 3 (``hash: md5``): a file's hash is the MD5 of its bytes; a folder's is
the MD5 of the JSON list of ``{"md5", "relpath"}`` of its files sorted by path, suffixed
``.dir`` (dvc-data ``Tree.as_bytes``), with ``.dvcignore`` patterns applied.

References: Collins G.S. et al. (2024) TRIPOD+AI statement, BMJ 385:e078378 (items 8-12:
data, 18: code availability); Mongan J. et al. (2020, 2024 update) CLAIM, Radiology: AI;
Wilkinson M.D. et al. (2016) FAIR principles (provenance).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import yaml

RECORD_VERSION = 1
#: Packages whose versions the record holds (distribution names).
PACKAGES = ("torch", "monai", "pydicom", "nibabel", "dvc", "numpy")
#: Code paths hashed into the record's code version, relative to the workspace root.
CODE_PATHS = ("medssl", "pipelines", "dvc.yaml")
#: Metrics reported as headline metrics when the record carries ``<name>_ci_low/high``.
HEADLINE_METRICS = ("auroc", "auprc", "sens_at_spec90", "sens_at_spec95")
LOCK_NAME = "dvc.lock"
_CHUNK = 1 << 20


class AuditError(ValueError):
    """A run record, lock file or workspace that cannot be audited."""


# --------------------------------------------------------------------------- hashing


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes (DVC 3 ``md5`` of a file)."""
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_ignore_patterns(root: Path) -> tuple[str, ...]:
    """Patterns of ``root/.dvcignore`` (comments, blanks and ``!`` negations dropped)."""
    path = root / ".dvcignore"
    if not path.exists():
        return ()
    lines = (line.strip() for line in path.read_text().splitlines())
    return tuple(line for line in lines if line and not line.startswith(("#", "!")))


def is_ignored(relpath: PurePosixPath, is_dir: bool, patterns: Sequence[str]) -> bool:
    """Whether a path relative to the root matches a ``.dvcignore`` pattern.

    Supported gitignore syntax: ``name`` and globs match any path component; a trailing
    ``/`` restricts a pattern to folders; a pattern holding ``/`` is matched against the
    path from the root. Negation (``!``) is not supported.

    Args:
        relpath: POSIX path relative to the workspace root.
        is_dir: whether the path itself is a folder.
        patterns: from :func:`read_ignore_patterns`.

    Returns:
        True when the path or one of its parent folders is ignored.
    """
    parts = relpath.parts
    for raw in patterns:
        dir_only = raw.endswith("/")
        pattern = raw.rstrip("/")
        n_parts = len(parts) if (is_dir or not dir_only) else len(parts) - 1
        if "/" in pattern:
            anchored = pattern.lstrip("/")
            if any(fnmatch.fnmatchcase("/".join(parts[: i + 1]), anchored) for i in range(n_parts)):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern) for part in parts[:n_parts]):
            return True
    return False


def dvc_hash(path: Path, root: Path, patterns: Sequence[str] = ()) -> str:
    """DVC 3 hash of a file (``md5``) or folder (``md5.dir``).

    Args:
        path: file or folder inside ``root``.
        root: workspace root (``.dvcignore`` patterns are relative to it).
        patterns: ignore patterns.

    Returns:
        The hex digest, with ``.dir`` appended for folders.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
    """
    if path.is_file():
        return file_md5(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    rel_root = PurePosixPath(path.resolve().relative_to(root.resolve()).as_posix())
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        here = Path(dirpath)
        rel_here = rel_root / PurePosixPath(here.relative_to(path).as_posix())
        dirnames[:] = sorted(d for d in dirnames if not is_ignored(rel_here / d, True, patterns))
        for name in filenames:
            if not is_ignored(rel_here / name, False, patterns):
                relpath = (here / name).relative_to(path).as_posix()
                entries.append({"md5": file_md5(here / name), "relpath": relpath})
    entries.sort(key=lambda e: e["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"


def hash_paths(paths: Iterable[str], root: Path) -> dict[str, str | None]:
    """DVC hashes of workspace paths (``None`` for a missing path), keyed by the path."""
    patterns = read_ignore_patterns(root)
    out: dict[str, str | None] = {}
    for rel in paths:
        try:
            out[rel] = dvc_hash(root / rel, root, patterns)
        except FileNotFoundError:
            out[rel] = None
    return out


# --------------------------------------------------------------------------- dvc.lock


def read_lock(path: Path) -> dict[str, dict[str, Any]]:
    """Stages of a ``dvc.lock`` (schema 2.0) as plain hashes.

    Args:
        path: the lock file.

    Returns:
        ``stage -> {"cmd", "deps": {path: md5}, "outs": {path: md5}, "params": {...}}``;
        ``params`` maps each params file to the values the stage read.

    Raises:
        AuditError: when the file is missing or not a schema-2 lock.
    """
    if not path.exists():
        raise AuditError(f"{path}: lock file not found (run `dvc repro` first)")
    data = yaml.safe_load(path.read_text()) or {}
    if str(data.get("schema")) != "2.0" or not isinstance(data.get("stages"), dict):
        raise AuditError(f"{path}: expected a dvc.lock with schema '2.0' and a 'stages' map")
    stages: dict[str, dict[str, Any]] = {}
    for name, stage in sorted(data["stages"].items()):
        stages[name] = {
            "cmd": stage.get("cmd", ""),
            "deps": {e["path"]: e.get("md5") for e in stage.get("deps") or []},
            "outs": {e["path"]: e.get("md5") for e in stage.get("outs") or []},
            "params": stage.get("params") or {},
        }
    return stages


def producer_of(path: str, stages: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Name of the stage whose output is ``path`` or contains it (``None`` when none)."""
    target = PurePosixPath(path)
    for name, stage in stages.items():
        for out in stage["outs"]:
            if target == PurePosixPath(out) or PurePosixPath(out) in target.parents:
                return str(name)
    return None


# --------------------------------------------------------------------------- environment


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of distributions (``None`` when not installed), plus Python."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """OS, CPU and GPUs of this machine (no host name, no user name)."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append({"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)})
    return {
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
    }


def determinism_flags(run_files: Sequence[Path] = ()) -> dict[str, Any]:
    """Determinism settings of the training stages.

    Stage scripts seed through :func:`monai.utils.set_determinism` (``torch``, ``numpy``
    and ``random`` seeds, ``cudnn.deterministic=True``, ``cudnn.benchmark=False``). The
    flags a stage actually ran with are those its JSON file states (a ``determinism``
    object in ``run.json`` or ``encoder.json``); the environment variables that change
    that behaviour are read here.

    Args:
        run_files: JSON files written by training stages.

    Returns:
        ``{"seeding", "env", "stated_by_runs": {folder name: flags}}``.
    """
    stated: dict[str, Any] = {}
    for path in run_files:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("determinism"), dict):
            stated[path.parent.name] = data["determinism"]
    return {
        "seeding": "monai.utils.set_determinism(seed) in each training stage",
        "env": {
            k: os.environ.get(k)
            for k in ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS")
        },
        "stated_by_runs": stated,
    }


def git_state(root: Path, generated: Iterable[str] = ()) -> dict[str, Any]:
    """Git commit of ``root`` and whether its tree differs from it.

    Pipeline outputs and ``dvc.lock`` change on every run and are not code, so paths equal
    to or under ``generated`` (and ``.gitignore`` files next to them, which DVC edits) and
    DVC's own ``.dvc/`` folder do not make the tree dirty. Only a count of changed paths is
    kept: file names can hold identifiers.

    Args:
        root: workspace root.
        generated: output paths of the pipeline, relative to ``root``.

    Returns:
        ``{"commit": sha or None, "dirty": bool or None, "n_changed": int}`` (``None``
        outside a git repository).
    """
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
        status = _git(root, "status", "--porcelain", "--untracked-files=all")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None, "n_changed": 0}
    skip = [PurePosixPath(p) for p in (*generated, LOCK_NAME, ".dvc")]
    changed = []
    for line in status.splitlines():
        rel = PurePosixPath(line[3:].split(" -> ")[-1].strip('"'))
        if any(rel == s or s in rel.parents for s in skip):
            continue
        if rel.name == ".gitignore" and any(s.parent == rel.parent for s in skip):
            continue
        changed.append(rel)
    return {"commit": commit, "dirty": bool(changed), "n_changed": len(changed)}


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return proc.stdout


# --------------------------------------------------------------------------- params, metrics


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


def find_run_dir(record: Mapping[str, Any], runs: Path) -> Path | None:
    """The fine-tuning run folder whose ``run.json`` matches a metrics record.

    Matches ``arm``, ``seed``, ``n_labels`` and, when both state them, ``mode`` and
    ``budget``; folder names are not relied on.
    """
    if not runs.is_dir():
        return None
    for run_json in sorted(runs.glob("*/run.json")):
        run = json.loads(run_json.read_text())
        keys = [k for k in ("arm", "seed", "n_labels", "mode", "budget") if k in run]
        if keys and all(str(run[k]) == str(record.get(k, run[k])) for k in keys):
            return run_json.parent
    return None


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


# --------------------------------------------------------------------------- the record


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


# --------------------------------------------------------------------------- verification


def compare_hashes(
    recorded: Mapping[str, str | None], current: Mapping[str, str | None], what: str
) -> list[str]:
    """One message per path whose current hash differs from the recorded one."""
    out = []
    for path, expected in sorted(recorded.items()):
        got = current.get(path)
        if got is None:
            out.append(f"{what} {path}: missing (recorded {expected})")
        elif got != expected:
            out.append(f"{what} {path}: md5 {got} != recorded {expected}")
    return out


def compare_params(
    recorded: Mapping[str, Any], current: Mapping[str, Any], where: str = "params.yaml"
) -> list[str]:
    """One message per dotted key whose value differs (or is missing) in ``current``."""
    rec, cur = flatten(recorded), flatten(current)
    out = []
    for key, value in sorted(rec.items()):
        if key not in cur:
            out.append(f"param {where}:{key}: missing (recorded {value!r})")
        elif cur[key] != value:
            out.append(f"param {where}:{key}: {cur[key]!r} != recorded {value!r}")
    out += [f"param {where}:{k}: not in the record" for k in sorted(set(cur) - set(rec))]
    return out


def verify_record(record: Mapping[str, Any], root: Path) -> list[str]:
    """Re-check a run record against a workspace.

    Checks the hash of every recorded stage input and output and named artifact, every
    param (all of ``params.yaml`` and each stage's), the code hashes and, for a record
    made on a clean tree, the git commit.

    Args:
        record: from :func:`read_record`.
        root: workspace root.

    Returns:
        One message per mismatch (empty when the workspace matches).
    """
    problems: list[str] = []
    stages: Mapping[str, Mapping[str, Any]] = record.get("stages", {})
    paths = {p for s in stages.values() for kind in ("deps", "outs") for p in s[kind]}
    paths |= {a["path"] for a in record.get("artifacts", {}).values()}
    paths |= set(record.get("code", {}).get("hashes", {}))
    current = hash_paths(sorted(paths), root)
    for name, stage in stages.items():
        problems += compare_hashes(stage["deps"], current, f"stage {name}: input")
        problems += compare_hashes(stage["outs"], current, f"stage {name}: output")
    for name, art in sorted(record.get("artifacts", {}).items()):
        problems += compare_hashes({art["path"]: art["md5"]}, current, f"artifact {name}:")
    problems += compare_hashes(record.get("code", {}).get("hashes", {}), current, "code")
    problems += _verify_params(record, root)
    problems += _verify_commit(record.get("code", {}), root)
    return problems


def _verify_params(record: Mapping[str, Any], root: Path) -> list[str]:
    params_file = root / "params.yaml"
    if not params_file.exists():
        return ["params.yaml: missing"]
    current = yaml.safe_load(params_file.read_text()) or {}
    problems = compare_params(record.get("params", {}), current)
    if problems:
        return problems
    flat = flatten(current)
    for name, stage in sorted(record.get("stages", {}).items()):
        for values in stage.get("params", {}).values():
            for key, value in sorted(flatten(values).items()):
                if flat.get(key) != value:
                    problems.append(f"stage {name}: param {key}: {flat.get(key)!r} != {value!r}")
    return problems


def _verify_commit(code: Mapping[str, Any], root: Path) -> list[str]:
    commit = code.get("git_commit")
    if commit is None or code.get("git_dirty"):
        return []  # a dirty tree is pinned by the code hashes, not by the commit
    state = git_state(root)
    if state["commit"] != commit:
        return [f"code: git commit {state['commit']} != recorded {commit}"]
    return []


# --------------------------------------------------------------------------- reproduction


def compare_metrics(
    recorded: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]], atol: float
) -> list[str]:
    """Compare headline metrics (value and CI bounds) within an absolute tolerance.

    Args:
        recorded: the record's ``headline_metrics``.
        current: the same list from a re-run.
        atol: largest accepted absolute difference.

    Returns:
        One message per missing or differing number.
    """

    def key(m: Mapping[str, Any]) -> tuple[str, ...]:
        return (str(m["arm"]), str(m.get("mode")), str(m["n_labels"]), str(m["seed"]), m["metric"])

    now = {key(m): m for m in current}
    out = []
    for m in recorded:
        name = "{} {} n={} seed={} {}".format(*key(m))
        if key(m) not in now:
            out.append(f"metric {name}: missing in the re-run")
            continue
        for field in ("value", "ci_low", "ci_high"):
            a, b = m[field], now[key(m)][field]
            if (a is None) != (b is None) or (
                a is not None and not math.isclose(a, b, abs_tol=atol)
            ):
                out.append(f"metric {name} {field}: {b} != recorded {a}")
    return out


def on_cpu(record: Mapping[str, Any]) -> bool:
    """Whether the record was made without a GPU and this machine has none."""
    import torch

    gpus = record.get("environment", {}).get("hardware", {}).get("gpus", [])
    return not gpus and not torch.cuda.is_available()


def prepare_workspace(record: Mapping[str, Any], root: Path, work: Path) -> list[str]:
    """Lay out a scratch workspace to re-run the recorded stages.

    Copies ``dvc.yaml``, ``.dvcignore``, the recorded code paths and every recorded stage
    input that no recorded stage produces (raw data; outputs nested inside are left out),
    and writes the record's params as ``params.yaml``.

    Args:
        record: the run record.
        root: the workspace the record was made in.
        work: an empty folder.

    Returns:
        The stage names to reproduce.
    """
    stages: Mapping[str, Mapping[str, Any]] = record["stages"]
    outs = [PurePosixPath(p) for s in stages.values() for p in s["outs"]]
    for name in ("dvc.yaml", ".dvcignore"):
        if (root / name).exists():
            shutil.copy2(root / name, work / name)
    inputs = {p for s in stages.values() for p in s["deps"]}
    inputs |= set(record.get("code", {}).get("hashes", {}))
    for rel in sorted(inputs):
        if producer_of(rel, stages) is None:
            _copy_excluding(root / rel, work / rel, PurePosixPath(rel), outs)
    params = yaml.safe_dump(record["params"], sort_keys=False)
    (work / "params.yaml").write_text(params)
    return sorted(stages)


def _copy_excluding(
    src: Path, dst: Path, rel: PurePosixPath, skip: Sequence[PurePosixPath]
) -> None:
    if any(rel == s for s in skip) or not src.exists():
        return
    if src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        return
    for child in sorted(src.iterdir()):
        if child.name != "__pycache__":
            _copy_excluding(child, dst / child.name, rel / child.name, skip)


def reproduce_in(record: Mapping[str, Any], root: Path, work: Path, atol: float) -> list[str]:
    """Re-run the recorded stages in ``work`` and compare with the record.

    Runs ``dvc repro`` (DVC initialised without git, empty cache, so every stage runs)
    with the interpreter's folder first on ``PATH`` and ``work`` first on ``PYTHONPATH``
    so the copied code is what runs. Metrics are compared within ``atol``; output hashes
    only on CPU, where the pipeline is bit-reproducible.

    Args:
        record: the run record.
        root: the recorded workspace (code and raw data are copied from it).
        work: an empty scratch folder.
        atol: tolerance for metrics.

    Returns:
        One message per difference; a failed run is one message with DVC's last output.
    """
    names = prepare_workspace(record, root, work)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work), env.get("PYTHONPATH")]))
    dvc = [sys.executable, "-m", "dvc"]
    init = subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=work, env=env, capture_output=True)
    if init.returncode != 0:
        return [f"re-run failed: `dvc init` in {work} exited {init.returncode}"]
    proc = subprocess.run(
        [*dvc, "repro", *names], cwd=work, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        return [f"re-run failed (dvc repro exit {proc.returncode}):\n{tail}"]
    return compare_rerun(record, work, atol)


def compare_rerun(record: Mapping[str, Any], work: Path, atol: float) -> list[str]:
    """Compare a re-run workspace with the record: metrics, and output hashes on CPU."""
    stages = read_lock(work / LOCK_NAME)
    problems = []
    metrics_path = _metrics_path(record)
    if metrics_path is not None:
        records = json.loads((work / metrics_path).read_text())
        runs = _runs_path(record, work)
        current = headline_metrics(records, stages, metrics_path, runs, work)
        problems += compare_metrics(record.get("headline_metrics", []), current, atol)
    if on_cpu(record):
        for name, stage in sorted(record["stages"].items()):
            outs = stages.get(name, {}).get("outs", {})
            problems += compare_hashes(stage["outs"], outs, f"stage {name}: output")
    return problems


def _metrics_path(record: Mapping[str, Any]) -> str | None:
    art = record.get("artifacts", {}).get("label_efficiency")
    return None if art is None else str(art["path"])


def _runs_path(record: Mapping[str, Any], work: Path) -> Path:
    art = record.get("artifacts", {}).get("runs")
    return work / (art["path"] if art else "models/finetune")


# --------------------------------------------------------------------------- pipeline stages


def pipeline_stage_names(dvc_yaml: Mapping[str, Any], params: Mapping[str, Any]) -> set[str]:
    """Stage names that a ``dvc.yaml`` defines, ``matrix`` stages expanded as DVC names them.

    A matrix or foreach value is a list (or mapping) or a ``${dotted.key}`` reference into
    the params; DVC names matrix members ``stage@v1-v2-...`` (a list or mapping value
    becomes ``key<index>``) and foreach members ``stage@value``, ``stage@key`` or
    ``stage@index`` (for a list of mappings).

    Args:
        dvc_yaml: the parsed ``dvc.yaml``.
        params: the parsed ``params.yaml``.

    Returns:
        The names.
    """
    flat = flatten(params)
    names: set[str] = set()
    for name, stage in (dvc_yaml.get("stages") or {}).items():
        matrix = stage.get("matrix") if isinstance(stage, Mapping) else None
        foreach = stage.get("foreach") if isinstance(stage, Mapping) else None
        if isinstance(foreach, str) and foreach.startswith("${") and foreach.endswith("}"):
            foreach = flat.get(foreach[2:-1], [])
        if foreach:  # DVC names members by key, by value, or by index for mappings
            members = (
                [str(k) for k in foreach]
                if isinstance(foreach, Mapping)
                else [_fragment("", i, v).lstrip() or str(i) for i, v in enumerate(foreach)]
            )
            names |= {f"{name}@{m}" for m in members}
            continue
        if not matrix:
            names.add(str(name))
            continue
        axes = []
        for key, values in matrix.items():
            if isinstance(values, str) and values.startswith("${") and values.endswith("}"):
                values = flat.get(values[2:-1], [])
            axes.append([_fragment(key, i, v) for i, v in enumerate(values)])
        combos: list[list[str]] = [[]]
        for axis in axes:
            combos = [c + [f] for c in combos for f in axis]
        names |= {f"{name}@{'-'.join(c)}" for c in combos}
    return names


def _fragment(key: str, index: int, value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return f"{key}{index}"  # with key "" (foreach): the index alone
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def recorded_stages(
    lock: Mapping[str, Mapping[str, Any]], current: set[str], record_path: str
) -> dict[str, dict[str, Any]]:
    """The lock's stages that the record covers.

    Stages of the current pipeline only (a lock can keep entries of removed matrix
    members), without the stage that writes the record and those that read it.

    Args:
        lock: from :func:`read_lock`.
        current: from :func:`pipeline_stage_names`.
        record_path: the record's path relative to the root.

    Returns:
        ``stage -> lock entry``.
    """
    rec = PurePosixPath(record_path)
    out = {}
    for name, stage in lock.items():
        writes = any(
            PurePosixPath(p) == rec or PurePosixPath(p) in rec.parents for p in stage["outs"]
        )
        reads = any(
            PurePosixPath(p) == rec or PurePosixPath(p) in rec.parents for p in stage["deps"]
        )
        if name in current and not writes and not reads:
            out[name] = dict(stage)
    return out
