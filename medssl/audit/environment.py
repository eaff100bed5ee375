"""The machine and code a run used: package versions, hardware, determinism flags, git state.

Nothing here names the host, the user or a file: two runs of the same code on the same
kind of machine give the same values.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from medssl.audit.dvcstate import LOCK_NAME

#: Packages whose versions the record holds (distribution names).
PACKAGES = ("torch", "monai", "pydicom", "nibabel", "dvc", "numpy")


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
