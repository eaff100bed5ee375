"""Checks of a run record against a workspace: every hash, every param, the commit.

:func:`verify_record` re-hashes the workspace with DVC's hashing
(:func:`medssl.audit.dvcstate.hash_paths`) and lists each difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from medssl.audit.dvcstate import hash_paths
from medssl.audit.environment import git_state
from medssl.audit.record import flatten


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
