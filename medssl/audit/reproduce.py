"""Reproduction: re-run the recorded stages in a scratch workspace and compare with the record.

:func:`reproduce_in` copies the code and raw data, runs ``dvc repro`` there and compares the
headline metrics within a tolerance and, on CPU, where the pipeline is bit-reproducible,
every output hash in the new ``dvc.lock``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from medssl.audit.dvcstate import LOCK_NAME, producer_of, read_lock
from medssl.audit.record import headline_metrics
from medssl.audit.verify import compare_hashes


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

    Initialises DVC without git (:meth:`dvc.repo.Repo.init`; empty cache, so every stage
    runs), then runs ``dvc repro`` as a program, not through DVC's Python API: its stage
    commands must find the interpreter's folder first on ``PATH`` and ``work`` first on
    ``PYTHONPATH`` so the copied code is what runs, an environment an in-process
    ``Repo.reproduce`` would take from this process. Metrics are compared within ``atol``;
    output hashes only on CPU, where the pipeline is bit-reproducible.

    Args:
        record: the run record.
        root: the recorded workspace (code and raw data are copied from it).
        work: an empty scratch folder.
        atol: tolerance for metrics.

    Returns:
        One message per difference; a failed run is one message with DVC's last output.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    names = prepare_workspace(record, root, work)
    try:
        Repo.init(os.fspath(work), no_scm=True).close()
    except DvcException as exc:
        return [f"re-run failed: `dvc init` in {work}: {exc}"]
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", *names],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
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
