"""User-facing image keys (paths, DICOM UIDs) and the manifest columns that hold their hashes.

Label and reserve CSVs name images by a raw identifier; it is hashed with the ingestion
pseudonymizer (:class:`medssl.io.pseudonym.Pseudonymizer`) and matched to the manifest, so raw
paths and UIDs are never written out.
"""

from __future__ import annotations

#: Key name -> (pseudonym kind, manifest column).
KEY_COLUMNS: dict[str, tuple[str, str]] = {
    "path": ("path", "source_key"),
    "sop_instance_uid": ("sop", "sop_key"),
    "series_instance_uid": ("series", "series_key"),
    "study_instance_uid": ("study", "study_key"),
}


def normalise_key(key: str, value: str) -> str:
    """Strip blanks; for ``path`` keys also use POSIX separators and drop a leading ``./``."""
    value = str(value).strip()
    if key == "path":
        value = value.replace("\\", "/")
        while value.startswith("./"):
            value = value[2:]
    return value
