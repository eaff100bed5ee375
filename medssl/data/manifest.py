"""The manifest and quarantine tables: schema, read, write.

The manifest has one row per ingested image or volume; every identifier in it is a keyed
hash (see :mod:`medssl.io.pseudonym`), so it can be shared, versioned and logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

MANIFEST_NAME = "manifest.csv"
QUARANTINE_NAME = "quarantine.csv"
SKIPPED_NAME = "skipped.csv"

SCHEMAS: dict[str, tuple[str, ...]] = {
    "manifest": (
        "image_id",  # keyed hash of the source content; names the NIfTI file
        "patient_key",  # keyed hash of PatientID
        "study_key",  # keyed hash of StudyInstanceUID
        "series_key",  # keyed hash of SeriesInstanceUID
        "sop_key",  # keyed hash of SOPInstanceUID (single-file images)
        "source_key",  # keyed hash of the path relative to its source folder
        "source_sha256",  # sha256 of the source file (of the concatenated hashes for series)
        "source_format",  # dicom | nifti | raster
        "n_files",  # files that make the image (slices of a series)
        "modality",  # DICOM Modality (CR, DX, CT, MR, ...; OT for NIfTI/raster)
        "spatial_dims",  # 2 or 3
        "shape",  # e.g. 128x128 or 48x48x16, NIfTI (X, Y, Z) order
        "spacing",  # mm, same order
        "view_position",  # PA/AP/LL for radiographs
        "nifti",  # path of the written image, relative to the manifest's folder
        "qc_flags",  # ;-separated QC flags (nonuniform_spacing, gantry_tilt, ...)
        "deid_profile",  # de-identification profile and version applied
        "volume_index",  # 0-based volume of a unit that holds several (4D split), else 0
        "n_volumes",  # volumes decoded from the unit (1 unless 4D)
        "axcodes",  # voxel axis directions of 3D volumes, e.g. RAS (empty for 2D)
        "body_part",  # BodyPartExamined (DICOM code string) when present
    ),
    "quarantine": ("source_key", "reason", "message"),
    "skipped": ("source_key", "rule"),
}


class ManifestError(ValueError):
    """A manifest that does not follow the schema."""


def write_table(path: Path, rows: Sequence[dict[str, Any]], kind: str) -> None:
    """Write rows as CSV with the schema's column order.

    Args:
        path: destination CSV.
        rows: one dict per row; extra keys are an error.
        kind: ``"manifest"``, ``"quarantine"`` or ``"skipped"``.
    """
    columns = list(SCHEMAS[kind])
    frame = pd.DataFrame(list(rows), columns=columns)
    extra = {k for r in rows for k in r} - set(columns)
    if extra:
        raise ManifestError(f"{path.name}: columns outside the {kind} schema: {sorted(extra)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")


def read_manifest(path: Path) -> pd.DataFrame:
    """Read and check a manifest.

    Args:
        path: ``manifest.csv``.

    Returns:
        The table, identifiers as strings, ``nifti`` made absolute.

    Raises:
        ManifestError: naming the file and the missing columns.
    """
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found (run the ingest stage first)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in SCHEMAS["manifest"] if c not in frame.columns]
    if missing:
        raise ManifestError(f"{path}: missing columns {missing}")
    frame["spatial_dims"] = frame["spatial_dims"].astype(int)
    frame["nifti"] = [str(path.parent / p) for p in frame["nifti"]]
    return frame


def unusable_sources(ingested: Path) -> set[str]:
    """``source_key`` of files quarantined, skipped as duplicates or dropped by a QC rule.

    Label rows naming them are dropped rather than failing: the image is unreadable (see
    ``quarantine.csv``), already present under another path, or excluded on purpose
    (``ingest.drop_flags``, e.g. localizers). Other skipped files (hidden, non-image
    extensions) are not images, so a label row naming one stays an error.
    """
    keys = set(pd.read_csv(ingested / QUARANTINE_NAME, dtype=str)["source_key"])
    skipped = ingested / SKIPPED_NAME
    if skipped.exists():
        table = pd.read_csv(skipped, dtype=str)
        dropped = (table["rule"] == "duplicate_instance") | table["rule"].str.startswith("qc_")
        keys |= set(table.loc[dropped, "source_key"])
    return keys
