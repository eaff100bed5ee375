"""Sidecar CSVs: patient, study and view for image exports that carry no DICOM header.

PNG/JPEG/TIFF (and NIfTI) exports lose the DICOM header, so the patient grouping that
patient-level splits rely on must come from a table. A sidecar is a CSV with one row per
image; its columns (names configurable) are:

* ``path`` (required): the image's path relative to its source folder (POSIX ``/``), or
  its file name, or its file name without extension, depending on ``match``;
* ``patient_id`` (recommended), ``study_id``, ``view`` (optional).

Identifiers are only ever used through keyed hashes (:mod:`medssl.io.pseudonym`); ``view`` is
reduced to a DICOM View Position code (PS3.3 C.8.11.5: AP, PA, LL, RL, ...) or ``OTHER``,
so free text never reaches an output. Error messages name CSV rows, never their content.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from medssl.data.rows import listed_rows

MATCH_MODES = ("path", "name", "stem")
FIELDS = ("path", "patient_id", "study_id", "view")
#: DICOM View Position (0018,5101) defined terms and common export spellings.
VIEW_CODES: dict[str, str] = {
    "AP": "AP",
    "PA": "PA",
    "LL": "LL",
    "RL": "RL",
    "RLD": "RLD",
    "LLD": "LLD",
    "RLO": "RLO",
    "LLO": "LLO",
    "LAT": "LL",
    "LATERAL": "LL",
    "AP SUPINE": "AP",
    "AP ERECT": "AP",
}


class SidecarError(ValueError):
    """A sidecar CSV that cannot be used; the message names the file and rows."""


@dataclass(frozen=True)
class SidecarSpec:
    """Where the sidecar is and how to read it (``data.sidecar`` in params).

    Attributes:
        path: the CSV.
        match: how ``path`` values name images: ``"path"`` (relative path), ``"name"``
            (file name) or ``"stem"`` (file name without extensions).
        columns: CSV column for each of :data:`FIELDS` (missing: the field's own name).
    """

    path: str
    match: str = "path"
    columns: Mapping[str, str] = field(default_factory=dict)


def normalize_view(value: str) -> str:
    """View code from free text: a :data:`VIEW_CODES` value, ``OTHER`` or ``""``."""
    text = re.sub(r"\s+", " ", str(value or "").strip().upper())
    if not text:
        return ""
    return VIEW_CODES.get(text, "OTHER")


def match_key(rel: str, match: str) -> str:
    """The part of a relative path that a sidecar row names under ``match``."""
    p = PurePosixPath(rel)
    if match == "path":
        return p.as_posix()
    if match == "name":
        return p.name
    name = p.name
    return name.split(".")[0] if not name.startswith(".") else name


def read_sidecar(spec: SidecarSpec) -> dict[str, dict[str, str]]:
    """Read a sidecar into ``key -> {"patient_id", "study_id", "view"}``.

    Args:
        spec: the sidecar's location and options.

    Returns:
        One entry per row, keyed by the (stripped) ``path`` value; missing optional
        columns give empty strings.

    Raises:
        SidecarError: unreadable file, unknown match mode or columns, empty keys, or a key
            repeated with different values (naming the rows).
    """
    if spec.match not in MATCH_MODES:
        raise SidecarError(f"sidecar match must be one of {list(MATCH_MODES)}: {spec.match!r}")
    unknown = sorted(set(spec.columns) - set(FIELDS))
    if unknown:
        raise SidecarError(f"sidecar columns: unknown field(s) {unknown}; use {list(FIELDS)}")
    names = {f: spec.columns.get(f, f) for f in FIELDS}
    try:
        with open(spec.path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            header = set(rows[0]) if rows else set()
    except FileNotFoundError as exc:
        raise SidecarError(f"{spec.path}: sidecar CSV not found") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SidecarError(f"{spec.path}: not a readable CSV ({type(exc).__name__})") from exc
    if not rows:
        raise SidecarError(f"{spec.path}: no rows")
    if names["path"] not in header:
        raise SidecarError(f"{spec.path}: no column {names['path']!r} (the image path)")
    return _entries(spec.path, rows, names)


def _entries(
    path: str, rows: Iterable[dict[str, str]], names: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    first_row: dict[str, int] = {}
    empty, conflicts = [], []
    for line, row in enumerate(rows, start=2):
        key = (row.get(names["path"]) or "").strip()
        if not key:
            empty.append(line)
            continue
        entry = {
            "patient_id": (row.get(names["patient_id"]) or "").strip(),
            "study_id": (row.get(names["study_id"]) or "").strip(),
            "view": normalize_view(row.get(names["view"]) or ""),
        }
        if key in out and out[key] != entry:
            conflicts.extend([first_row[key], line])
        out.setdefault(key, entry)
        first_row.setdefault(key, line)
    if empty:
        raise SidecarError(f"{path}: row {listed_rows(empty)}: empty image path")
    if conflicts:
        raise SidecarError(f"{path}: row {listed_rows(sorted(set(conflicts)))}: conflicting rows")
    return out
