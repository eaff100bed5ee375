"""Pass 1: one file to a record (quarantined, a series slice, or a unit written now).

Each file is read once when it fits in memory (:data:`IN_MEMORY_BYTES`): its SHA-256, its
header and its pixels come from the same bytes. A file that is a unit on its own (a
radiograph, a NIfTI, a raster, an enhanced multi-frame object, a mosaic) is decoded and
written right away (:func:`medssl.ingest.units.run_unit`); a slice of a cross-sectional
series is decoded too and spilled to the scratch folder
(:func:`medssl.ingest.series.spill_slice`), unless it belongs to a cached unit. Records
hold keyed hashes only, except raw identifiers for the re-identification table when it
was asked for.
"""

from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medssl.burned_in.flags import has_burned_in_annotation
from medssl.ingest.cache import UnitCache
from medssl.ingest.context import Context, file_key
from medssl.ingest.discovery import SourceFile, file_format, key_text
from medssl.ingest.series import spill_slice
from medssl.ingest.units import run_unit
from medssl.io import identity, pseudonym
from medssl.io.dicom import PROJECTION_MODALITIES, DicomError, check_image_object, read_dataset
from medssl.io.sidecar import normalize_view

#: Files up to this size are read into memory once; larger ones are hashed in chunks and
#: read again to decode (bounded memory per worker).
IN_MEMORY_BYTES = 256 * 2**20


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Content hash of a file, read in 1 MiB chunks (bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def process_file(task: tuple[SourceFile, dict[str, str] | None], ctx: Context) -> dict[str, Any]:
    """Pass 1 for one file: hash, classify, read; decode single-file units and slices.

    Args:
        task: the file and its sidecar entry (None when it has none).
        ctx: run context.

    Returns:
        A picklable record with ``kind``: ``"quarantine"`` (``reason``, ``message``),
        ``"slice"`` (keys, and unless deferred to pass 2 its ``frame`` geometry and the
        scratch file of its values, ``pixels``) or ``"unit"`` (``result`` of
        :func:`~medssl.ingest.units.run_unit`). Holds keys only, except ``reid`` (raw
        identifiers) when the re-identification table was asked for.
    """
    sf, side = task
    pseudo = pseudonym.Pseudonymizer(ctx.secret)
    rec: dict[str, Any] = {
        "rel": sf.rel,
        "id": sf.ident,
        "source_key": pseudo.key("path", key_text(sf.rel)),
    }
    if ctx.reid:
        rec["reid"] = {"source_path": key_text(str(sf.path))}
    ds, data = None, None
    try:
        data = _read_source(sf, rec)
        if rec["format"] != "dicom":
            rec.update(_sidecar_keys(sf.rel, side, pseudo), kind="unit")
            if ctx.reid and side:
                rec["reid_side"] = {"patient_id": side.get("patient_id", "")}
        else:
            ds = _read_header(sf.path, data)
            rec.update(_dicom_record(ds, sf.rel, pseudo, ctx, full=data is not None))
            if data is None:
                ds = None  # header only: decoding reads the file again
    except _Quarantine as q:
        rec.update(kind="quarantine", reason=q.reason, message=q.message)
    except Exception as exc:  # noqa: BLE001 - one hostile file never stops the run
        rec.update(
            kind="quarantine", reason="decode_error", message=f"unexpected {type(exc).__name__}"
        )
    if rec["kind"] == "unit":
        raw = data if rec["format"] == "raster" else None
        rec["result"] = run_unit([rec], {sf.ident: sf.path}, ctx, dataset=ds, data=raw)
    elif rec["kind"] == "slice" and ds is not None and not _cached_file(rec, ctx):
        rec.update(spill_slice(ds, sf, ctx))
    return rec


class _Quarantine(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


_ERRNO_REASONS = {
    errno.ENOENT: "broken_link",
    errno.ELOOP: "broken_link",
    errno.EACCES: "permission_denied",
    errno.EPERM: "permission_denied",
}


def _os_quarantine(exc: OSError) -> _Quarantine:
    reason = _ERRNO_REASONS.get(exc.errno or 0, "unreadable")
    return _Quarantine(reason, f"{type(exc).__name__} (errno {exc.errno})")


def _read_source(sf: SourceFile, rec: dict[str, Any]) -> bytes | None:
    """Hash the file (one read when small enough); sets ``source_sha256``, ``format``, ``bytes``.

    Returns:
        The file's bytes, or None when it is larger than :data:`IN_MEMORY_BYTES`.
    """
    try:
        size = sf.path.stat().st_size
        if size == 0:
            raise _Quarantine("empty_file", "zero-byte file")
        data = sf.path.read_bytes() if size <= IN_MEMORY_BYTES else None
        sha = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(sf.path)
    except OSError as exc:
        raise _os_quarantine(exc) from exc
    rec.update(source_sha256=sha, format=file_format(sf.path), bytes=size)
    return data


def _read_header(path: Path, data: bytes | None) -> Any:
    """The dataset, in full from ``data`` when in memory, else its header from ``path``."""
    try:
        return read_dataset(path, header_only=data is None, data=data)
    except DicomError as exc:
        raise _Quarantine(exc.reason, exc.message) from exc
    except OSError as exc:
        raise _os_quarantine(exc) from exc
    except Exception as exc:  # noqa: BLE001 - hostile headers must not stop the run
        raise _Quarantine("malformed_header", f"header error: {type(exc).__name__}") from exc


def _sidecar_keys(
    rel: str, side: dict[str, str] | None, pseudo: pseudonym.Pseudonymizer
) -> dict[str, Any]:
    side = side or {}
    patient = side.get("patient_id", "")
    out: dict[str, Any] = {
        "patient_key": pseudo.key("patient", patient or key_text(rel)),
        "study_key": pseudo.key("study", side["study_id"]) if side.get("study_id") else "",
        "view_position": side.get("view", ""),
        "side_digest": hashlib.sha256(json.dumps(side, sort_keys=True).encode()).hexdigest(),
    }
    if not patient:
        out["flags"] = ["no_patient_id"]
    return out


def _dicom_record(
    ds: Any, rel: str, pseudo: pseudonym.Pseudonymizer, ctx: Context, *, full: bool
) -> dict[str, Any]:
    try:
        check_image_object(ds, header_only=not full)
    except DicomError as exc:
        raise _Quarantine(exc.reason, exc.message) from exc
    except Exception as exc:  # noqa: BLE001 - hostile headers must not stop the run
        raise _Quarantine("malformed_header", f"header error: {type(exc).__name__}") from exc
    flags: list[str] = []
    if has_burned_in_annotation(ds):
        if ctx.options.quarantine_burned_in:
            raise _Quarantine(
                "burned_in_annotation", "BurnedInAnnotation is YES (PS3.3 C.7.6.1.1.6)"
            )
        flags.append("burned_in_annotation")
    voxels = _declared_voxels(ds)
    if voxels > ctx.options.max_voxels:
        raise _Quarantine(
            "resource_limit", f"declares {voxels} voxels > limit {ctx.options.max_voxels}"
        )
    rec = _dicom_keys(ds, rel, pseudo)
    rec.update(flags=flags + rec["flags"], voxels=voxels)
    if ctx.reid:
        rec["reid_dicom"] = _raw_ids(ds)
    return {**rec, "kind": "slice" if _is_series_slice(ds) else "unit"}


def _cached_file(rec: Mapping[str, Any], ctx: Context) -> bool:
    """True when the file is part of a cached unit (its series is likely restored whole)."""
    cache_dir = ctx.options.cache_dir
    return cache_dir is not None and UnitCache(cache_dir).knows_file(file_key(rec, ctx))


def _text(ds: Any, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:  # noqa: BLE001 - malformed values
        return ""


def _dicom_keys(ds: Any, rel: str, pseudo: pseudonym.Pseudonymizer) -> dict[str, Any]:
    patient = _text(ds, "PatientID")
    fallback = key_text(rel)
    study, no_study = identity.study_identity(ds, fallback)
    series, no_series = identity.series_identity(ds, fallback)
    sop, no_sop = identity.instance_identity(ds, fallback)
    out: dict[str, Any] = {
        "modality": _safe_code(_text(ds, "Modality")) or "OT",
        "patient_key": pseudo.key("patient", patient or fallback),
        "study_key": pseudo.key("study", study),
        "series_key": pseudo.key("series", series),
        "sop_key": pseudo.key("sop", sop),
        "view_position": normalize_view(_text(ds, "ViewPosition")),
        "body_part": _safe_code(_text(ds, "BodyPartExamined")),
    }
    out["flags"] = [] if patient else ["no_patient_id"]
    if no_study or no_series or no_sop:
        out["flags"].append("uid_missing")
    return out


def _safe_code(value: str) -> str:
    """A DICOM code string (CS: upper case, digits, space, underscore, 16 chars) or ``""``."""
    text = value.upper()
    ok = len(text) <= 16 and all(c.isalnum() or c in " _" for c in text) and text.isascii()
    return text if ok else ""


def _raw_ids(ds: Any) -> dict[str, str]:
    return {
        "patient_id": _text(ds, "PatientID"),
        "study_instance_uid": _text(ds, "StudyInstanceUID"),
        "series_instance_uid": _text(ds, "SeriesInstanceUID"),
        "sop_instance_uid": _text(ds, "SOPInstanceUID"),
    }


def _declared_voxels(ds: Any) -> int:
    try:
        rows = int(ds.get("Rows", 0) or 0)
        cols = int(ds.get("Columns", 0) or 0)
        frames = int(float(str(ds.get("NumberOfFrames", 1) or 1)))
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
    except (TypeError, ValueError):
        return 0
    return max(rows, 0) * max(cols, 0) * max(frames, 1) * max(samples, 1)


def _is_series_slice(ds: Any) -> bool:
    """Single-frame cross-sectional slice with a position: joins its series in pass 2."""
    try:
        frames = int(float(str(ds.get("NumberOfFrames", 1) or 1)))
    except (TypeError, ValueError):
        frames = 1
    image_type = [str(v).upper() for v in (ds.get("ImageType", None) or [])]
    return (
        frames == 1
        and "MOSAIC" not in image_type
        and not ds.get("PerFrameFunctionalGroupsSequence")
        and _text(ds, "Modality").upper() not in PROJECTION_MODALITIES
        and "ImagePositionPatient" in ds
    )
