"""The workspace's paths, as ``dvc.yaml`` declares them once in ``vars.paths``.

Stage scripts get every path on their command line from ``dvc.yaml``; commands a user
types (``medssl results``, ``medssl audit verify``) find their defaults here, from the same
declaration, instead of repeating them in code.
"""

from __future__ import annotations

from pathlib import Path

import yaml

#: The pipeline file, at the workspace root.
PIPELINE_FILE = "dvc.yaml"


class WorkspaceError(ValueError):
    """``dvc.yaml`` is missing or does not declare the path asked for."""


def workspace_paths(root: Path = Path()) -> dict[str, str]:
    """``vars.paths`` of ``root/dvc.yaml``.

    Args:
        root: workspace root.

    Returns:
        Path names to paths relative to ``root``.

    Raises:
        WorkspaceError: no ``dvc.yaml`` there, or no ``vars.paths`` in it.
    """
    pipeline = root / PIPELINE_FILE
    if not pipeline.is_file():
        raise WorkspaceError(f"{pipeline}: not found (run from the workspace root)")
    declared = yaml.safe_load(pipeline.read_text(encoding="utf-8")) or {}
    for item in declared.get("vars") or []:
        if isinstance(item, dict) and isinstance(item.get("paths"), dict):
            return {str(k): str(v) for k, v in item["paths"].items()}
    raise WorkspaceError(f"{pipeline}: no vars.paths")


def workspace_path(name: str, root: Path = Path()) -> Path:
    """One declared path, e.g. ``workspace_path("results")``.

    Raises:
        WorkspaceError: not declared.
    """
    paths = workspace_paths(root)
    if name not in paths:
        raise WorkspaceError(f"{root / PIPELINE_FILE}: vars.paths has no {name!r}")
    return root / paths[name]
