"""The re-identification table: the one output that links keys to identities.

Written only when ``ingest.reid_table`` is set, with mode 0600, to a path outside the
repository, the outputs and the sources (:func:`check_reid_path`). Pass-1 records carry
the raw identifiers it needs; :class:`ReidWriter` takes them off each record as it arrives,
so they never reach the parent's other records or any other output.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REID_COLUMNS = (
    "source_path",
    "source_key",
    "patient_id",
    "patient_key",
    "study_instance_uid",
    "study_key",
    "series_instance_uid",
    "series_key",
    "sop_instance_uid",
    "sop_key",
)


def check_reid_path(path: Path, *, forbidden: Sequence[Path]) -> Path:
    """Refuse a re-identification table inside the repository, outputs or sources.

    Args:
        path: requested location.
        forbidden: folders it must not be in (the repository roots above the working
            directory and the output folder, the output folder, the sources).

    Returns:
        The resolved path.

    Raises:
        ValueError: naming the folder the path is inside.
    """
    target = path.expanduser().resolve()
    for root in forbidden:
        r = root.resolve()
        if target == r or r in target.parents:
            raise ValueError(
                f"re-identification table {target} is inside {r}: write it outside the "
                "repository, the outputs and the sources (it links keys to identities)"
            )
    return target


def repo_roots(*starts: Path) -> list[Path]:
    """Folders above ``starts`` holding ``.git`` or ``.dvc`` (the repositories)."""
    roots = []
    for start in starts:
        for p in [start.resolve(), *start.resolve().parents]:
            if (p / ".git").exists() or (p / ".dvc").exists():
                roots.append(p)
    return sorted(set(roots))


class ReidWriter:
    """Streams the re-identification table (mode 0600) as pass-1 records arrive."""

    def __init__(self, path: Path | None) -> None:
        """Open the table and write its header; None writes nothing.

        Args:
            path: checked location (:func:`check_reid_path`), or None.
        """
        self.path = path
        self._fh: Any = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._fh, fieldnames=REID_COLUMNS)
            self._writer.writeheader()

    def add(self, rec: dict[str, Any]) -> None:
        """Take the raw identifiers off a pass-1 record and write its row (when open).

        Args:
            rec: the record; ``reid``, ``reid_dicom`` and ``reid_side`` are removed.
        """
        reid = rec.pop("reid", None)
        dicom = rec.pop("reid_dicom", None) or {}
        side = rec.pop("reid_side", None) or {}
        if self._fh is None or reid is None:
            return
        row = {"source_path": reid["source_path"], "source_key": rec["source_key"]}
        row.update({k: v for k, v in {**side, **dicom}.items() if k in REID_COLUMNS})
        for kind in ("patient", "study", "series", "sop"):
            row[f"{kind}_key"] = rec.get(f"{kind}_key", "")
        self._writer.writerow(row)

    def close(self) -> None:
        """Close the table."""
        if self._fh is not None:
            self._fh.close()
