"""Re-ingestion cache: reuse decoded units whose source files did not change.

A *unit* (one radiograph, one NIfTI, one DICOM series, ...) is identified by a keyed hash
of the SHA-256 of its source files and of a *settings fingerprint*: the ingestion
options that change outputs, the de-identification profile version and the source code
of the modules that decode and write images. Changing any of them, or the secret, misses
the cache; nothing stale can be reused.

Layout under the cache root (kept outside the stage's outputs, so that DVC deleting
``data/ingested`` before a run does not lose it)::

    units/<2 hex>/<key>.json          the unit's result (rows and outcome; keys only)
    units/<2 hex>/<key>/<image>.nii*  its images, hard links (or copies) of the outputs
    files/<2 hex>/<file key>          empty marker: this file (content and settings) is
                                      part of a cached unit, so pass 1 need not decode it

Everything in it is pseudonymous (keyed hashes, NIfTI without header text): it can be
deleted at any time, which only costs a full re-decode. Writes are atomic (temporary
file, then rename), so concurrent workers and interrupted runs leave no torn entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Bump when the cached result format changes.
CACHE_FORMAT = 1


def code_fingerprint(paths: Iterable[Path]) -> str:
    """SHA-256 over the bytes of the given source files (the decoding code).

    Args:
        paths: module files, e.g. ``[Path(medssl.io.dicom.__file__), ...]``.

    Returns:
        64 hex characters.
    """
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON-serialisable mapping (sorted keys), with :data:`CACHE_FORMAT`."""
    blob = json.dumps({"format": CACHE_FORMAT, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (copy across file systems), replacing ``dst`` atomically."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}-{os.urandom(4).hex()}")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)


class UnitCache:
    """File-based cache of unit results (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        """Use ``root``, created by the first :meth:`store` (constructing costs no I/O).

        Args:
            root: cache folder, e.g. ``.cache/ingest``.
        """
        self.root = root

    def _entry(self, key: str) -> Path:
        return self.root / "units" / key[-2:] / f"{key}.json"

    def restore(self, key: str, out_dir: Path) -> dict[str, Any] | None:
        """Bring a cached unit back into ``out_dir``.

        Args:
            key: unit key.
            out_dir: ingestion output folder; each row's ``nifti`` (relative path) is
                linked there from the cache.

        Returns:
            The cached result, or None on a miss (absent, unreadable or incomplete entry).
        """
        entry = self._entry(key)
        try:
            result = json.loads(entry.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(result, dict) or result.get("format") != CACHE_FORMAT:
            return None
        objects = entry.with_suffix("")
        try:
            for row in result.get("rows", []):
                rel = Path(row["nifti"])
                link_or_copy(objects / rel.name, out_dir / rel)
        except (OSError, KeyError, TypeError):
            return None
        return result

    def knows_file(self, file_key: str) -> bool:
        """Whether a stored unit holds this file (a hint: the unit itself may have changed).

        Args:
            file_key: keyed hash of the file's content and the settings.
        """
        return self._marker(file_key).exists()

    def _marker(self, file_key: str) -> Path:
        return self.root / "files" / file_key[-2:] / file_key

    def store(
        self,
        key: str,
        result: Mapping[str, Any],
        out_dir: Path,
        file_keys: Iterable[str] = (),
    ) -> None:
        """Keep a unit's result and images (written under ``out_dir``) for later runs.

        Args:
            key: unit key.
            result: JSON-serialisable result with ``rows`` (each with ``nifti``).
            out_dir: where the images are now.
            file_keys: keys of the unit's files (markers for :meth:`knows_file`).
        """
        entry = self._entry(key)
        objects = entry.with_suffix("")
        for row in result.get("rows", []):
            rel = Path(row["nifti"])
            link_or_copy(out_dir / rel, objects / rel.name)
        payload = json.dumps({**result, "format": CACHE_FORMAT}, sort_keys=True)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}-{os.urandom(4).hex()}")
        tmp.write_text(payload)
        tmp.replace(entry)
        for file_key in file_keys:
            marker = self._marker(file_key)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
