"""What DVC knows about a workspace: hashes of paths, the lock file, the pipeline's stages.

Each function goes through DVC's own code, so the values are those ``dvc repro`` writes:

- hashes: :func:`dvc_data.hashfile.build.build`, the function behind ``dvc add`` and
  ``dvc repro``, with the workspace's ignore filter (:attr:`dvc.repo.Repo.dvcignore`: full
  gitignore syntax, ``!`` negations and nested ``.dvcignore`` files included). A file's hash
  is the MD5 of its bytes, a folder's the MD5 of its file listing suffixed ``.dir`` (DVC 3,
  ``hash: md5``);
- the lock: :class:`dvc.dvcfile.Lockfile`, which parses ``dvc.lock`` and validates it
  against DVC's schema;
- stage names: the stage loader of :class:`dvc.dvcfile.ProjectFile`, which expands
  ``matrix`` and ``foreach`` stages with DVC's resolver (``finetune@ssl-8-0``).

No ``dvc ... --json`` command prints these (``dvc status --json`` and ``dvc data status
--json`` list changes, not hashes; ``dvc stage list`` has no JSON output), so the Python API
is used. Outside a DVC repository DVC is opened uninitialised: ignore rules and pipeline
files still apply.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from dvc.dvcfile import LOCK_FILE, PROJECT_FILE

from medssl.audit.errors import AuditError

#: The lock file's name in the workspace root.
LOCK_NAME: str = LOCK_FILE
#: Hash DVC 3 writes (``hash: md5`` in ``dvc.lock``).
HASH_NAME = "md5"


@contextmanager
def open_repo(root: Path) -> Iterator[Any]:
    """DVC's :class:`~dvc.repo.Repo` for ``root`` (uninitialised outside a DVC repository)."""
    from dvc.repo import Repo

    with Repo(os.fspath(root.resolve()), uninitialized=True) as repo:
        yield repo


def hash_paths(paths: Iterable[str], root: Path) -> dict[str, str | None]:
    """DVC hashes of workspace paths (``None`` for a missing path), keyed by the path.

    Every file is read: DVC's state cache (hashes keyed by inode, modification time and
    size) is left out, because a verification must not trust timestamps. The hashes are
    computed as ``dvc repro`` computes them (``dry_run``: nothing reaches DVC's cache).

    Args:
        paths: file or folder paths relative to ``root``.
        root: workspace root (its ``.dvcignore`` files apply).

    Returns:
        ``path -> md5`` (``<md5>.dir`` for folders).
    """
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.memory import MemoryFileSystem

    # build() stages folder listings beside an object store: an in-memory one, without
    # DVC's state (the constructor is unannotated in dvc_objects, hence Any)
    memory: Any = MemoryFileSystem
    store = HashFileDB(memory(global_store=False), "/", hash_name=HASH_NAME)
    base = root.resolve()
    out: dict[str, str | None] = {}
    with open_repo(root) as repo:
        for rel in paths:
            try:
                _, _, obj = build(
                    store,
                    os.path.normpath(base / rel),
                    repo.fs,
                    HASH_NAME,
                    ignore=repo.dvcignore,
                    dry_run=True,
                )
            except FileNotFoundError:
                out[rel] = None
            else:
                out[rel] = obj.hash_info.value
    return out


def read_lock(path: Path) -> dict[str, dict[str, Any]]:
    """Stages of a ``dvc.lock`` as plain hashes, read and validated by DVC.

    Args:
        path: the lock file.

    Returns:
        ``stage -> {"cmd", "deps": {path: md5}, "outs": {path: md5}, "params": {...}}``;
        ``params`` maps each params file to the values the stage read.

    Raises:
        AuditError: when the file is missing or DVC rejects it (not a schema-2 lock).
    """
    from dvc.dvcfile import Lockfile
    from dvc.exceptions import DvcException

    if not path.is_file():
        raise AuditError(f"{path}: lock file not found (run `dvc repro` first)")
    with open_repo(path.parent) as repo:
        try:
            data = Lockfile(repo, os.fspath(path.resolve())).load()
        except DvcException as exc:
            raise AuditError(f"{path}: not a dvc.lock of schema '2.0' ({exc})") from exc
    stages: dict[str, dict[str, Any]] = {}
    for name, stage in sorted((data.get("stages") or {}).items()):
        stages[str(name)] = {
            "cmd": stage.get("cmd", ""),
            "deps": {e["path"]: e.get("md5") for e in stage.get("deps", [])},
            "outs": {e["path"]: e.get("md5") for e in stage.get("outs", [])},
            "params": stage.get("params", {}),
        }
    return stages


def producer_of(path: str, stages: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Name of the stage whose output is ``path`` or contains it (``None`` when none).

    Args:
        path: POSIX path relative to the workspace root.
        stages: from :func:`read_lock` (or a run record's ``stages``).
    """
    target = PurePosixPath(path)
    for name, stage in stages.items():
        for out in stage["outs"]:
            if target == PurePosixPath(out) or PurePosixPath(out) in target.parents:
                return str(name)
    return None


def pipeline_stage_names(dvc_yaml: Mapping[str, Any], params: Mapping[str, Any]) -> set[str]:
    """Stage names that a ``dvc.yaml`` defines, ``matrix`` and ``foreach`` members expanded.

    DVC resolves ``${...}`` from files (``params.yaml`` beside ``dvc.yaml``), so both are
    written to a scratch folder and read back with DVC's stage loader, which names members
    as ``dvc repro`` does (``finetune@ssl-8-0``, ``sweep@cfg0-true``, ``each@b``). Inline
    ``vars`` apply; ``vars`` naming other files are not copied.

    Args:
        dvc_yaml: the parsed ``dvc.yaml``.
        params: the parsed ``params.yaml``.

    Returns:
        The names.

    Raises:
        AuditError: when DVC cannot resolve the pipeline.
    """
    from dvc.dvcfile import load_file
    from dvc.exceptions import DvcException

    with tempfile.TemporaryDirectory(prefix="medssl-stages-") as tmp:
        folder = Path(tmp)
        (folder / PROJECT_FILE).write_text(yaml.safe_dump(dict(dvc_yaml), sort_keys=False))
        (folder / "params.yaml").write_text(yaml.safe_dump(dict(params), sort_keys=False))
        with open_repo(folder) as repo:
            try:
                return {str(name) for name in load_file(repo, str(folder / PROJECT_FILE)).stages}
            except DvcException as exc:
                raise AuditError(f"{PROJECT_FILE}: {exc}") from exc


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

    def touches(paths: Iterable[str]) -> bool:
        return any(PurePosixPath(p) == rec or PurePosixPath(p) in rec.parents for p in paths)

    return {
        name: dict(stage)
        for name, stage in lock.items()
        if name in current and not touches(stage["outs"]) and not touches(stage["deps"])
    }
