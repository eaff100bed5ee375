"""Finding files under the source folders, and the skip list by rule.

Symbolic links to directories are never followed (no loops); dangling links and link
loops stay candidates, so that pass 1 quarantines them with a reason rather than losing
them; FIFOs, sockets and devices are skipped without being opened. Paths found here never
reach an output: they are keyed (``source_key``) from :func:`key_text`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medssl.io.raster import RASTER_SUFFIXES

#: File names and suffixes skipped by rule (never images).
SKIP_NAMES = frozenset({"DICOMDIR", "LOCKFILE", "VERSION", ".DS_Store", "Thumbs.db"})
SKIP_SUFFIXES = frozenset(
    {".txt", ".csv", ".json", ".md", ".xml", ".html", ".htm", ".pdf", ".ini", ".log"}
)
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class SourceFile:
    """A file found under a source folder.

    Attributes:
        path: absolute path (never written to any output).
        rel: POSIX path relative to its source folder, the join key for label CSVs.
        src: index of its source folder.
    """

    path: Path
    rel: str
    src: int = 0

    @property
    def ident(self) -> str:
        """Unique within a run (two sources may hold the same relative path)."""
        return f"{self.src}:{self.rel}"


def discover(
    sources: Sequence[Path],
) -> tuple[list[SourceFile], list[dict[str, str]], list[dict[str, str]]]:
    """List candidate files, the ones skipped by rule and unlistable folders.

    Symbolic links to directories are not followed (no loops); dangling links and link
    loops are kept as candidates so that they are quarantined with a reason rather than
    lost; FIFOs, sockets and devices are skipped without being opened.

    Args:
        sources: folders (or single files) to ingest.

    Returns:
        ``(candidates, skipped, broken)``; ``skipped`` rows are ``{"rel", "rule"}`` and
        ``broken`` rows ``{"rel", "reason", "message"}`` (raw paths: the caller
        pseudonymizes them). All sorted.

    Raises:
        FileNotFoundError: naming the source that does not exist.
    """
    candidates: list[SourceFile] = []
    skipped: list[dict[str, str]] = []
    broken: list[dict[str, str]] = []
    for src, root in enumerate(sources):
        if not root.exists():
            raise FileNotFoundError(f"data source not found: {root}")
        base = root.parent if root.is_file() else root
        unlisted: list[Path] = []
        files = [root] if root.is_file() else _walk(root, unlisted)
        for d in unlisted:
            rel = _rel(d, base)
            broken.append({"rel": rel, "reason": "unreadable_directory", "message": "cannot list"})
        for path in files:
            rel = _rel(path, base)
            rule = _skip_rule(path, rel)
            if rule:
                skipped.append({"rel": rel, "rule": rule})
            else:
                candidates.append(SourceFile(path, rel, src))
    return candidates, skipped, broken


def file_format(path: Path) -> str:
    """``"nifti"``, ``"raster"`` or ``"dicom"`` (anything else), by the file's name."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if path.suffix.lower() in RASTER_SUFFIXES:
        return "raster"
    return "dicom"


def key_text(rel: str) -> str:
    """A relative path as text that UTF-8 can encode (undecodable bytes escaped)."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _rel(path: Path, base: Path) -> str:
    rel = path.relative_to(base).as_posix()
    return rel if rel != "." else path.name


def _walk(root: Path, unlisted: list[Path]) -> list[Path]:
    out: list[Path] = []

    def onerror(err: OSError) -> None:
        unlisted.append(Path(err.filename) if err.filename else root)

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames))
        out.extend(Path(dirpath) / d for d in dirnames if (Path(dirpath) / d).is_symlink())
    return sorted(out)


def _skip_rule(path: Path, rel: str) -> str | None:
    if path.is_symlink() and path.is_dir():
        return "symlinked_directory"
    if path.name in SKIP_NAMES:
        return "dicomdir_or_system_file" if path.name == "DICOMDIR" else "system_file"
    if any(part.startswith(".") for part in rel.split("/")):
        return "hidden_file"
    if path.suffix.lower() in SKIP_SUFFIXES:
        return "non_image_extension"
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # dangling link, loop, no permission: quarantined with a reason
    if not stat.S_ISREG(mode):
        return "symlinked_directory" if stat.S_ISDIR(mode) else "not_regular_file"
    return None
