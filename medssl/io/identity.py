"""Which study, series and instance a DICOM file belongs to, also when its UIDs are blank.

Anonymisers and export tools sometimes empty or drop StudyInstanceUID, SeriesInstanceUID
and SOPInstanceUID (PS3.3 C.7.2.1, C.7.3.1, C.12.1). Grouping such files by the blank UID
would merge every series of an export, and grouping by file would split a CT into
single-slice "radiographs". When a UID is missing, identity falls back, in the spirit of
dcm2niix's series splitting, to attributes that are constant within a series and tell
series apart (PS3.3 C.7.3.1 General Series, C.7.6.2 Image Plane, C.7.6.3 Image Pixel):

* series: patient ID, study date and time, modality, the file-meta SOP class
  (MediaStorageSOPClassUID, PS3.10 7.1), SeriesNumber, AcquisitionNumber, ImageType,
  ImageOrientationPatient (rounded to 1e-4), Rows, Columns, PixelSpacing, EchoTime, and
  the folder as a last resort (two blank-UID series are never merged across folders, and
  one spread over folders is ingested per folder);
* study: patient ID, study date and time, accession number, and the folder;
* instance: the file meta's MediaStorageSOPInstanceUID, else the file's path.

The fallback text is hashed with the site's key like a real UID, so keys are stable
across runs; images that used it carry the QC flag ``uid_missing``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

#: Attributes of the series fallback, in order (values joined after normalisation).
SERIES_ATTRIBUTES = (
    "PatientID",
    "StudyDate",
    "StudyTime",
    "Modality",
    "SeriesNumber",
    "AcquisitionNumber",
    "ImageType",
    "ImageOrientationPatient",
    "Rows",
    "Columns",
    "PixelSpacing",
    "EchoTime",
)
STUDY_ATTRIBUTES = ("PatientID", "StudyDate", "StudyTime", "AccessionNumber")


def text(ds: Any, keyword: str) -> str:
    """A stripped string value, ``""`` when absent, empty or unreadable."""
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:  # noqa: BLE001 - malformed values of any kind
        return ""


def _value(ds: Any, keyword: str) -> str:
    """Normalised text of one attribute: numbers rounded, multi-values joined by ``\\``."""
    try:
        raw = ds.get(keyword, None)
    except Exception:  # noqa: BLE001
        return ""
    if raw is None or raw == "":
        return ""
    many = isinstance(raw, Sequence) and not isinstance(raw, str | bytes)
    values = list(raw) if many else [raw]
    out = []
    for v in values:
        try:
            out.append(f"{float(v):.4f}" if keyword in _NUMERIC else str(v).strip())
        except (TypeError, ValueError):
            out.append(str(v).strip())
    return "\\".join(out)


_NUMERIC = {"ImageOrientationPatient", "PixelSpacing", "EchoTime"}


def _meta(ds: Any, keyword: str) -> str:
    meta = getattr(ds, "file_meta", None)
    return text(meta, keyword) if meta is not None else ""


def _folder(rel: str) -> str:
    return str(PurePosixPath(rel.replace("\\", "/")).parent)


def series_identity(ds: Any, rel: str) -> tuple[str, bool]:
    """The text that names a file's series, and whether it is a fallback.

    Args:
        ds: the dataset (header is enough).
        rel: the file's path relative to its source folder.

    Returns:
        ``(SeriesInstanceUID, False)``, or ``(fallback text, True)`` when the UID is blank.
    """
    uid = text(ds, "SeriesInstanceUID")
    if uid:
        return uid, False
    parts = [_meta(ds, "MediaStorageSOPClassUID") or text(ds, "SOPClassUID")]
    parts += [_value(ds, k) for k in SERIES_ATTRIBUTES]
    return "uidless-series|" + "|".join([*parts, _folder(rel)]), True


def study_identity(ds: Any, rel: str) -> tuple[str, bool]:
    """Like :func:`series_identity` for the study (StudyInstanceUID)."""
    uid = text(ds, "StudyInstanceUID")
    if uid:
        return uid, False
    parts = [_value(ds, k) for k in STUDY_ATTRIBUTES]
    return "uidless-study|" + "|".join([*parts, _folder(rel)]), True


def instance_identity(ds: Any, rel: str) -> tuple[str, bool]:
    """SOPInstanceUID, else the file meta's MediaStorageSOPInstanceUID, else the path."""
    uid = text(ds, "SOPInstanceUID")
    if uid:
        return uid, False
    meta = _meta(ds, "MediaStorageSOPInstanceUID")
    return (meta, True) if meta else (f"uidless-instance|{rel}", True)
