"""Walk hospital exports into de-identified NIfTI images, a manifest and a quarantine table.

Data flow: every file under each source folder is *seen* once and ends in exactly one of
three places: an ingested image (a manifest row, possibly shared by the slices of a
series), the quarantine table (with a reason code, :data:`REASONS`), or the skip list (by
rule, :data:`SKIP_RULES`). The invariant ``files_seen == files_ingested +
files_quarantined + files_skipped`` is checked at the end of every run.

Nothing identifying leaves this module (DICOM PS3.15 Annex E, Basic Application Level
Confidentiality Profile, applied to every output): patient, study, series and instance
identifiers and source paths become keyed hashes (:class:`medssl.io.deid.Pseudonymizer`);
messages name reason codes and exception types, never header values or paths; library
warnings are silenced in workers because their text can quote header values. The only
exception is the re-identification table, written when asked to a path outside the
repository (:func:`check_reid_path`).

Two passes over an :mod:`medssl.engines` engine (local processes or Dask):

1. per file (read once: hash, header and pixels come from one read): classify; a file
   that is a unit on its own (a radiograph, a NIfTI, a raster, an enhanced multi-frame
   object, a mosaic) is decoded and written right away; a slice of a cross-sectional
   series is decoded too (:func:`medssl.io.dicom.slice_frame`), its modality values are
   spilled to a scratch ``.npy`` inside the partial output folder, and a small record
   (geometry, keys) goes back, so decoding is parallel per file even for one huge series;
2. per series: slices grouped by SeriesInstanceUID (never by folder) are assembled
   (:func:`medssl.io.dicom.assemble_slices`: sorting along the slice normal, 4D split)
   from their scratch files and written. A slice that fails to decode is quarantined on
   its own; the rest of its series is still assembled (gaps are flagged).

With a re-ingestion cache, a slice whose file is already part of a cached unit is not
decoded in pass 1; its series is restored from the cache in pass 2, or decoded there from
the files if the series changed.

Workers write the NIfTI files and return only rows, so the parent holds small records
whatever the number of files. Units whose source files (by SHA-256) and settings are
unchanged are reused from the cache (:mod:`medssl.ingest_cache`).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import re
import shutil
import stat
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from medssl.burned_in import POLICIES, redact, screen_image
from medssl.burned_in.ocr import check_available as check_ocr
from medssl.data.manifest import MANIFEST_NAME, QUARANTINE_NAME, SKIPPED_NAME, write_table
from medssl.engines import WorkerCrash, make_engine
from medssl.ingest_cache import UnitCache, code_fingerprint, settings_fingerprint
from medssl.io import dicom as dicom_io
from medssl.io import identity
from medssl.io import pseudonym as deid
from medssl.io.dicom import (
    PROJECTION_MODALITIES,
    DecodedImage,
    DicomError,
    Frame,
    assemble_slices,
    check_image_object,
    decode_datasets,
    read_dataset,
    slice_frame,
)
from medssl.io.nifti import (
    NiftiError,
    axcodes,
    read_nifti,
    resample,
    split_4d,
    to_canonical,
    write_nifti,
)
from medssl.io.raster import MAX_PIXELS, RASTER_SUFFIXES, RasterError, read_raster
from medssl.io.sidecar import SidecarSpec, match_key, normalize_view, read_sidecar

#: File names and suffixes skipped by rule (never images).
SKIP_NAMES = frozenset({"DICOMDIR", "LOCKFILE", "VERSION", ".DS_Store", "Thumbs.db"})
SKIP_SUFFIXES = frozenset(
    {".txt", ".csv", ".json", ".md", ".xml", ".html", ".htm", ".pdf", ".ini", ".log"}
)
NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGES_DIR = "images"
#: Scratch folder (inside the partial output, removed before it is moved into place) for
#: the decoded values of series slices between pass 1 and pass 2.
SCRATCH_DIR = ".slices"
#: Files up to this size are read into memory once; larger ones are hashed in chunks and
#: read again to decode (bounded memory per worker).
IN_MEMORY_BYTES = 256 * 2**20
SUMMARY_NAME = "summary.json"

#: Rules of the skip list (``skipped.csv``, column ``rule``).
SKIP_RULES: dict[str, str] = {
    "dicomdir_or_system_file": "DICOMDIR (PS3.10 media directory, not an image)",
    "system_file": "LOCKFILE, VERSION, .DS_Store, Thumbs.db",
    "hidden_file": "a path part starts with '.'",
    "non_image_extension": "txt, csv, json, md, xml, html, pdf, ini, log",
    "symlinked_directory": "symbolic link to a directory (never followed: no loops)",
    "not_regular_file": "FIFO, socket or device (never opened)",
    "duplicate_instance": "byte-identical file or repeated SOPInstanceUID (first path kept)",
    "qc_<flag>": "every image of the unit has a flag of ingest.drop_flags (drop_action skip)",
}

#: Quarantine reason codes (``quarantine.csv``, column ``reason``).
REASONS: dict[str, str] = {
    "empty_file": "zero-byte file",
    "unreadable": "cannot be opened or parsed (I/O error, corrupt NIfTI/PNG, bad DICOM)",
    "permission_denied": "no read permission",
    "broken_link": "dangling symbolic link or link loop",
    "unreadable_directory": "a folder that cannot be listed (its files are not seen)",
    "not_dicom": "no DICOM preamble and no DICOM image attributes",
    "truncated_pixel_data": "file ends inside its data elements or pixel data",
    "non_image_object": "SR, RT objects, presentation states, SEG, KO, PDF, waveforms",
    "no_pixel_data": "image module or pixel data element absent",
    "colour_image": "RGB, YBR or PALETTE COLOR DICOM, or colour raster content",
    "unsupported_syntax": "no installed decoder for the transfer syntax",
    "decode_failed": "pixel data present but the decoder failed",
    "malformed_header": "header values that cannot be interpreted (wrong VM, non-numbers)",
    "unsupported_multiframe": "multi-frame object without per-frame plane geometry",
    "unsupported_mosaic": "Siemens mosaic without a usable tile count",
    "unsupported_geometry": "more than 4 dimensions, multi-page raster, bad affine",
    "inconsistent_geometry": "slices of a series that do not form volumes",
    "burned_in_annotation": "BurnedInAnnotation is YES (pixels may show identity)",
    "burned_in_text": "identity-like text read in the pixels (ingest.burned_in_text: "
    "quarantine; medssl.burned_in)",
    "non_finite": "NaN or infinite voxel values",
    "empty_image": "image with no or a single pixel",
    "resource_limit": "declared size over ingest.max_voxels (or decoding ran out of memory)",
    "decode_error": "unexpected error while decoding a unit (a bug: please report)",
    "write_failed": "the NIfTI could not be written",
    "worker_crashed": "the worker process died on this unit (retried alone first)",
    "timeout": "decoding ran past ingest.timeout_s (a hung decoder; its worker was stopped)",
    "qc_<flag>": "every image of the unit has a flag of ingest.drop_flags (quarantine)",
}

#: QC flags that can appear in the manifest's ``qc_flags`` column.
QC_FLAGS: dict[str, str] = {
    "nonuniform_spacing": "slice gaps differ from their median by more than 1 %",
    "missing_slices": "a slice gap over 1.5x the median gap",
    "gantry_tilt": "slice step off the slice normal by more than 0.1 degree",
    "localizer": "ImageType contains LOCALIZER (scout)",
    "derived": "ImageType value 1 is DERIVED (reformat, MIP, subtraction, ...)",
    "single_slice": "a single cross-sectional slice (2D)",
    "spacing_unknown": "no pixel spacing in the source (1 mm assumed)",
    "volume_of_4d": "one 3D volume of a 4D series or NIfTI (see volume_index)",
    "no_patient_id": "no patient identifier (per-file patient key)",
    "uid_missing": "blank Study/Series/SOP Instance UID: identity from other attributes "
    "(medssl.io.identity)",
    "burned_in_annotation": "kept although BurnedInAnnotation is YES (option)",
    "burned_in_text": "identity-like text read in the pixels, kept (ingest.burned_in_text: flag)",
    "text_redacted": "text regions blacked out before writing (ingest.burned_in_text: redact)",
}
DROP_ACTIONS = ("skip", "quarantine")


@dataclass(frozen=True)
class IngestOptions:
    """Ingestion settings (the ``ingest`` section of ``params.yaml``).

    Attributes:
        workers: worker processes (local) or LocalCluster workers (dask).
        engine: ``"local"`` or ``"dask"``.
        dask_address: scheduler address for ``engine="dask"``; None starts a LocalCluster.
        drop_flags: QC flags whose images are not ingested.
        drop_action: ``"skip"`` (skip list, rule ``qc_<flag>``) or ``"quarantine"``.
        quarantine_burned_in: quarantine BurnedInAnnotation=YES (else flag and keep).
        burned_in_text: what to do with identity-like text in the pixels of 2D images
            (``quarantine``, ``redact``, ``flag`` or ``off``; see :mod:`medssl.burned_in`).
        canonical: reorient 3D volumes to the closest RAS+ axes (no resampling).
        spacing_2d, spacing_3d: target spacing (mm) of 2D images / 3D volumes.
        size_2d, size_3d: target array size instead of a spacing.
        compress: write ``.nii.gz`` (else ``.nii``).
        max_voxels: refuse (``resource_limit``) units that declare more voxels.
        cache_dir: re-ingestion cache folder (None: no cache).
        sidecar: sidecar CSV for non-DICOM files (patient, study, view).
        reid_table: write the re-identification table there (outside the repository).
        parquet: also write ``manifest.parquet`` and ``quarantine.parquet``.
        progress: progress bars on stderr.
        timeout_s: seconds a worker may spend on one file or series before it is stopped
            and the item quarantined (``timeout``); local engine with workers >= 2 only.
    """

    workers: int = 1
    engine: str = "local"
    dask_address: str | None = None
    drop_flags: tuple[str, ...] = ("localizer",)
    drop_action: str = "skip"
    quarantine_burned_in: bool = True
    burned_in_text: str = "quarantine"
    canonical: bool = True
    spacing_2d: tuple[float, ...] | None = None
    spacing_3d: tuple[float, ...] | None = None
    size_2d: tuple[int, ...] | None = None
    size_3d: tuple[int, ...] | None = None
    compress: bool = True
    max_voxels: int = 1_000_000_000
    cache_dir: Path | None = None
    sidecar: SidecarSpec | None = None
    reid_table: Path | None = None
    parquet: bool = False
    progress: bool = True
    timeout_s: float | None = 600.0

    def __post_init__(self) -> None:
        """Check values, naming the offending option."""
        if self.workers < 1:
            raise ValueError(f"ingest.workers must be >= 1, got {self.workers}")
        if self.burned_in_text not in POLICIES:
            raise ValueError(f"ingest.burned_in_text must be one of {list(POLICIES)}")
        if self.drop_action not in DROP_ACTIONS:
            raise ValueError(f"ingest.drop_action must be one of {list(DROP_ACTIONS)}")
        unknown = sorted(set(self.drop_flags) - set(QC_FLAGS))
        if unknown:
            raise ValueError(f"ingest.drop_flags: unknown flag(s) {unknown}; see QC_FLAGS")
        for dims, spacing, size in (
            (2, self.spacing_2d, self.size_2d),
            (3, self.spacing_3d, self.size_3d),
        ):
            if spacing is not None and size is not None:
                raise ValueError(f"ingest.resample: give spacing_{dims}d or size_{dims}d, not both")
            target = spacing if spacing is not None else size
            if target is not None and (len(target) != dims or min(target) <= 0):
                raise ValueError(f"ingest.resample: {dims}D target needs {dims} values > 0")
        if self.max_voxels < 1:
            raise ValueError("ingest.max_voxels must be >= 1")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("ingest.timeout_s must be > 0 (or null: no limit)")

    def output_settings(self) -> dict[str, Any]:
        """The options that change written images or rows (for the cache fingerprint)."""
        keep = (
            "drop_flags",
            "drop_action",
            "quarantine_burned_in",
            "burned_in_text",
            "canonical",
            "compress",
        )
        out: dict[str, Any] = {k: getattr(self, k) for k in keep}
        out.update(max_voxels=self.max_voxels)
        for k in ("spacing_2d", "spacing_3d", "size_2d", "size_3d"):
            out[k] = getattr(self, k)
        return out


@dataclass(frozen=True)
class SourceFile:
    """A file found under a source folder.

    Attributes:
        path: absolute path (never written to any output).
        rel: POSIX path relative to its source folder, the join key for label CSVs.
    """

    path: Path
    rel: str
    src: int = 0

    @property
    def ident(self) -> str:
        """Unique within a run (two sources may hold the same relative path)."""
        return f"{self.src}:{self.rel}"


@dataclass(frozen=True)
class _Context:
    """What a worker needs, picklable (the secret travels to workers, never to outputs)."""

    secret: bytes
    out_dir: Path
    options: IngestOptions
    settings_fp: str
    reid: bool = False


@dataclass
class _Accounts:
    """Everything the parent accumulates (small records only)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    files_ingested: int = 0
    images_dropped: int = 0
    units_cached: int = 0
    units_decoded: int = 0


# --------------------------------------------------------------------------- discovery


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


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if path.suffix.lower() in RASTER_SUFFIXES:
        return "raster"
    return "dicom"


def key_text(rel: str) -> str:
    """A relative path as text that UTF-8 can encode (undecodable bytes escaped)."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Content hash of a file, read in 1 MiB chunks (bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- pass 1: files


def process_file(task: tuple[SourceFile, dict[str, str] | None], ctx: _Context) -> dict[str, Any]:
    """Pass 1 for one file: hash, classify, read; decode single-file units and slices.

    Args:
        task: the file and its sidecar entry (None when it has none).
        ctx: run context.

    Returns:
        A picklable record with ``kind``: ``"quarantine"`` (``reason``, ``message``),
        ``"slice"`` (keys, and unless deferred to pass 2 its ``frame`` geometry and the
        scratch file of its values, ``pixels``) or ``"unit"`` (``result`` of
        :func:`run_unit`). Holds keys only, except ``reid`` (raw identifiers) when the
        re-identification table was asked for.
    """
    sf, side = task
    pseudo = deid.Pseudonymizer(ctx.secret)
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
        rec.update(_spill_slice(ds, sf, ctx))
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
    rec.update(source_sha256=sha, format=_kind(sf.path), bytes=size)
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
    rel: str, side: dict[str, str] | None, pseudo: deid.Pseudonymizer
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
    ds: Any, rel: str, pseudo: deid.Pseudonymizer, ctx: _Context, *, full: bool
) -> dict[str, Any]:
    try:
        check_image_object(ds, header_only=not full)
    except DicomError as exc:
        raise _Quarantine(exc.reason, exc.message) from exc
    except Exception as exc:  # noqa: BLE001 - hostile headers must not stop the run
        raise _Quarantine("malformed_header", f"header error: {type(exc).__name__}") from exc
    flags: list[str] = []
    if deid.has_burned_in_annotation(ds):
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


def _scratch(ident: str) -> str:
    """Relative path (under the partial output folder) of a slice's decoded values."""
    return f"{SCRATCH_DIR}/{hashlib.sha256(ident.encode()).hexdigest()[:40]}.npy"


def _cached_file(rec: Mapping[str, Any], ctx: _Context) -> bool:
    """True when the file is part of a cached unit (its series is likely restored whole)."""
    cache_dir = ctx.options.cache_dir
    return cache_dir is not None and UnitCache(cache_dir).knows_file(_file_key(rec, ctx))


def _file_key(rec: Mapping[str, Any], ctx: _Context) -> str:
    parts = f"{ctx.settings_fp}|{rec['format']}:{rec['source_sha256']}"
    return deid.Pseudonymizer(ctx.secret).key("cachefil", parts)


def _spill_slice(ds: Any, sf: SourceFile, ctx: _Context) -> dict[str, Any]:
    """Decode a series slice now and keep its values in the scratch folder for pass 2."""
    try:
        frame = slice_frame(ds)
    except Exception as exc:  # noqa: BLE001 - one bad slice never stops the run
        reason, message = _decode_failure(exc)
        return {"kind": "quarantine", "reason": reason, "message": message}
    rel = _scratch(sf.ident)
    try:
        path = ctx.out_dir / rel
        path.parent.mkdir(exist_ok=True)
        np.save(path, frame.values, allow_pickle=False)
    except OSError as exc:
        reason, message = _write_failure(exc)
        return {"kind": "quarantine", "reason": reason, "message": message}
    return {"frame": replace(frame, values=np.empty(0, frame.values.dtype)), "pixels": rel}


def _decode_failure(exc: Exception) -> tuple[str, str]:
    """Quarantine reason and message for an error while decoding a unit or a slice."""
    if isinstance(exc, DicomError | NiftiError | RasterError):
        return exc.reason, exc.message
    if isinstance(exc, MemoryError | RecursionError):
        return "resource_limit", type(exc).__name__
    return "decode_error", f"unexpected {type(exc).__name__}"


def _write_failure(exc: OSError) -> tuple[str, str]:
    return "write_failed", f"{type(exc).__name__} (errno {exc.errno})"


def _text(ds: Any, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:  # noqa: BLE001 - malformed values
        return ""


def _dicom_keys(ds: Any, rel: str, pseudo: deid.Pseudonymizer) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- units


def unit_key(unit: Sequence[Mapping[str, Any]], ctx: _Context) -> str:
    """Cache key of a unit: keyed hash of its files' content, format, sidecar and settings."""
    parts = [ctx.settings_fp]
    parts += [f"{r['format']}:{r['source_sha256']}:{r.get('side_digest', '')}" for r in unit]
    return deid.Pseudonymizer(ctx.secret).key("cache", "|".join(parts))


def run_unit(
    unit: list[dict[str, Any]],
    paths: Mapping[str, Path],
    ctx: _Context,
    *,
    dataset: Any = None,
    data: bytes | None = None,
) -> dict[str, Any]:
    """Decode one unit, write its NIfTI file(s), return its rows (cache first).

    Args:
        unit: pass-1 records of one image source (one file, or the slices of a series).
        paths: ``id -> absolute path`` for the unit's files.
        ctx: run context.
        dataset: the full dataset of a single-file DICOM unit, when already read.
        data: the bytes of a single-file raster unit, when already read.

    Returns:
        ``{"key", "rows", "quarantine": [reason, message] | None, "dropped": [flags] |
        None, "n_dropped", "cached"}``; rows lack ``source_key`` (set by the parent).
    """
    key = unit_key(unit, ctx)
    cache_dir = ctx.options.cache_dir
    if cache_dir is not None:
        hit = UnitCache(cache_dir).restore(key, ctx.out_dir)
        if hit is not None:
            return {**hit, "key": key, "cached": True}
    result = _decode_and_write(unit, paths, ctx, dataset, data)
    return {**result, "key": key, "cached": False}


def _decode_and_write(
    unit: list[dict[str, Any]],
    paths: Mapping[str, Path],
    ctx: _Context,
    dataset: Any = None,
    data: bytes | None = None,
) -> dict[str, Any]:
    empty: dict[str, Any] = {"rows": [], "quarantine": None, "dropped": None, "n_dropped": 0}
    try:
        images = _decode(unit, paths, ctx, dataset, data)
        images = [_screen(img, ctx.options.burned_in_text) for img in images]
        images = [_finalize(img, ctx.options) for img in images]
    except Exception as exc:  # noqa: BLE001 - one bad unit never stops the run
        return {**empty, "quarantine": list(_decode_failure(exc))}
    extra = sorted({f for r in unit for f in r.get("flags", [])})
    if len(images) > 1:
        extra.append("volume_of_4d")
    drop = set(ctx.options.drop_flags)
    kept = [(k, im) for k, im in enumerate(images) if not (set(im.flags + extra) & drop)]
    if not kept:
        hit = sorted({f for im in images for f in im.flags + extra} & drop)
        return {**empty, "dropped": hit, "n_dropped": len(images)}
    try:
        rows = [_write(unit, im, k, len(images), extra, ctx) for k, im in kept]
    except OSError as exc:
        return {**empty, "quarantine": list(_write_failure(exc))}
    return {**empty, "rows": rows, "n_dropped": len(images) - len(kept)}


def _decode(
    unit: list[dict[str, Any]],
    paths: Mapping[str, Path],
    ctx: _Context,
    dataset: Any = None,
    data: bytes | None = None,
) -> list[DecodedImage]:
    options = ctx.options
    first = unit[0]
    path = paths[first["id"]]
    if first["format"] == "nifti":
        array, affine = read_nifti(path, max_voxels=options.max_voxels)
        return [DecodedImage(_storable(v), affine) for v in split_4d(array)]
    if first["format"] == "raster":
        limit = min(options.max_voxels, MAX_PIXELS)
        array, affine = read_raster(path, max_pixels=limit, data=data)
        return [DecodedImage(array, affine, ["spacing_unknown"])]
    total = sum(int(r.get("voxels", 0)) for r in unit)
    if total > options.max_voxels:
        raise DicomError("resource_limit", f"series declares {total} voxels > limit")
    if first["kind"] == "slice":
        return assemble_slices(_series_frames(unit, paths, ctx.out_dir))
    if dataset is not None:
        return decode_datasets([dataset])
    return decode_datasets([read_dataset(paths[r["id"]]) for r in unit])


def _screen(image: DecodedImage, policy: str) -> DecodedImage:
    """Apply the burned-in text policy to a 2D image (3D volumes pass unchanged).

    Raises:
        DicomError: ``burned_in_text`` (policy quarantine, or text left after redaction).
    """
    if policy == "off" or image.array.ndim != 2:
        return image
    found = screen_image(image.array)
    if not found.found:
        return image
    message = f"burned-in text, rule {'+'.join(found.rules)} ({found.n_regions} text regions)"
    if policy == "flag":
        return replace(image, flags=[*image.flags, "burned_in_text"])
    if policy == "redact":
        cleaned = replace(image, array=redact(image.array, found.regions))
        if not screen_image(cleaned.array).found:
            return replace(cleaned, flags=[*image.flags, "text_redacted"])
        message += "; still readable after redaction"
    raise DicomError("burned_in_text", message)


def _series_frames(
    unit: Sequence[Mapping[str, Any]], paths: Mapping[str, Path], out_dir: Path
) -> list[Frame]:
    """Frames of a series: from pass 1's scratch files, or decoded now when deferred."""
    frames = []
    for index, rec in enumerate(unit):
        if "frame" in rec:
            meta: Frame = rec["frame"]
            values = np.load(out_dir / rec["pixels"], allow_pickle=False)
            frames.append(replace(meta, values=values, order=(*meta.order[:2], index)))
        else:
            frames.append(slice_frame(read_dataset(paths[rec["id"]]), index))
    return frames


def _storable(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    return array


def _finalize(image: DecodedImage, options: IngestOptions) -> DecodedImage:
    """Canonical orientation (3D) and optional resampling (MONAI)."""
    array, affine = image.array, image.affine
    if options.canonical:
        array, affine = to_canonical(array, affine)
    spacing = options.spacing_2d if array.ndim == 2 else options.spacing_3d
    size = options.size_2d if array.ndim == 2 else options.size_3d
    if spacing is not None or size is not None:
        array, affine = resample(array, affine, spacing=spacing, size=size)
    return DecodedImage(array, affine, list(image.flags), image.scale)


def _write(
    unit: list[dict[str, Any]],
    image: DecodedImage,
    index: int,
    n_images: int,
    extra: list[str],
    ctx: _Context,
) -> dict[str, Any]:
    first = unit[0]
    pseudo = deid.Pseudonymizer(ctx.secret)
    base = "|".join(r["source_sha256"] for r in unit)
    image_id = pseudo.key("image", base if index == 0 else f"{base}#{index}")
    suffix = ".nii.gz" if ctx.options.compress else ".nii"
    rel_nifti = f"{IMAGES_DIR}/{image_id}{suffix}"
    write_nifti(ctx.out_dir / rel_nifti, image.array, image.affine, scale=image.scale)
    ndim = image.array.ndim
    spacing = np.sqrt((image.affine[:3, :ndim] ** 2).sum(axis=0))
    return {
        "image_id": image_id,
        "patient_key": first.get("patient_key", ""),
        "study_key": first.get("study_key", ""),
        "series_key": first.get("series_key", ""),
        "sop_key": first.get("sop_key", "") if len(unit) == 1 else "",
        "source_sha256": first["source_sha256"] if len(unit) == 1 else _combined(unit),
        "source_format": first["format"],
        "n_files": len(unit),
        "modality": first.get("modality", "OT"),
        "spatial_dims": ndim,
        "shape": "x".join(str(s) for s in image.array.shape),
        "spacing": "x".join(f"{s:.4g}" for s in spacing),
        "view_position": first.get("view_position", ""),
        "nifti": rel_nifti,
        "qc_flags": ";".join(sorted(set(image.flags + extra))),
        "deid_profile": deid.PROFILE_VERSION,
        "volume_index": index,
        "n_volumes": n_images,
        "axcodes": axcodes(image.affine) if ndim == 3 else "",
        "body_part": first.get("body_part", ""),
    }


def _combined(unit: Sequence[Mapping[str, Any]]) -> str:
    return hashlib.sha256("".join(r["source_sha256"] for r in unit).encode()).hexdigest()


def _run_series(
    packed: tuple[list[dict[str, Any]], dict[str, Path]], ctx: _Context
) -> dict[str, Any]:
    unit, paths = packed
    try:
        return run_unit(unit, paths, ctx)
    finally:
        for rec in unit:
            if "pixels" in rec:
                (ctx.out_dir / rec["pixels"]).unlink(missing_ok=True)


# --------------------------------------------------------------------------- grouping


def group_units(records: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group slice records into series units by series key (never by folder).

    Args:
        records: pass-1 ``"slice"`` records (duplicates already removed).

    Returns:
        Units sorted by their first relative path; slices of a unit sorted by path (the
        decoder sorts them along the slice normal).
    """
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        series[rec["series_key"]].append(rec)
    units = [sorted(members, key=lambda r: r["id"]) for members in series.values()]
    return sorted(units, key=lambda u: u[0]["id"])


def drop_duplicates(
    records: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Keep one of byte-identical files or repeated SOP instances.

    The copy kept is an ingested one when there is one (a truncated copy of an instance
    never hides a complete one), then the first by source and relative path.

    Args:
        records: records with ``id``, ``source_sha256`` and optionally ``sop_key`` and
            ``result`` (pass-1 unit records).

    Returns:
        ``(kept, duplicates)``.
    """
    seen: set[str] = set()
    kept, dupes = [], []

    def order(r: dict[str, Any]) -> tuple[int, str]:
        return (0 if r.get("result", {"rows": [1]})["rows"] else 1, r["id"])

    for rec in sorted(records, key=order):
        keys = {rec["source_sha256"]} | ({rec["sop_key"]} if rec.get("sop_key") else set())
        if keys & seen:
            dupes.append(rec)
            continue
        seen |= keys
        kept.append(rec)
    return kept, dupes


# --------------------------------------------------------------------------- re-identification


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


class _ReidWriter:
    """Streams the re-identification table (mode 0600) as pass-1 records arrive."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: Any = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._fh, fieldnames=REID_COLUMNS)
            self._writer.writeheader()

    def add(self, rec: dict[str, Any]) -> None:
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
        if self._fh is not None:
            self._fh.close()


# --------------------------------------------------------------------------- driver


def ingest(
    sources: Sequence[Path],
    out_dir: Path,
    *,
    secret: bytes,
    workers: int = 1,
    options: IngestOptions | None = None,
) -> dict[str, int]:
    """Ingest sources into ``out_dir`` (manifest, quarantine and skip tables, NIfTI, summary).

    Outputs are built in a temporary sibling folder and moved into place at the end, so a
    failed run leaves no partial outputs.

    Args:
        sources: folders or files.
        out_dir: output folder (replaced).
        secret: pseudonymization key (see :func:`medssl.io.deid.secret_from_env`).
        workers: worker processes (shortcut for ``IngestOptions(workers=...)``; ignored
            when ``options`` is given).
        options: all settings (:class:`IngestOptions`).

    Returns:
        The summary counts; ``files_seen == files_ingested + files_quarantined +
        files_skipped`` always holds.

    Raises:
        FileNotFoundError: a source does not exist.
        ValueError: bad options, sidecar or re-identification path.
        medssl.burned_in.ocr.OcrUnavailable: Tesseract is missing (and the policy is not off).
    """
    options = options or IngestOptions(workers=workers)
    deid.Pseudonymizer(secret)  # fail early on a bad secret
    if options.burned_in_text != "off":
        check_ocr()  # fail before reading anything when Tesseract is missing
    reid_path = None
    if options.reid_table is not None:
        forbidden = [*repo_roots(Path.cwd(), out_dir.parent), out_dir, *sources]
        reid_path = check_reid_path(options.reid_table, forbidden=forbidden)
    sidecar = read_sidecar(options.sidecar) if options.sidecar else None
    candidates, skipped_raw, broken = discover(sources)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ctx = _Context(secret, tmp, options, _settings_fp(options), reid=reid_path is not None)
    reid = _ReidWriter(reid_path)
    try:
        summary = _ingest_into(candidates, skipped_raw, broken, sidecar, ctx, reid)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        reid.close()
    shutil.rmtree(tmp / SCRATCH_DIR, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return summary


def _source_files(module: Any) -> list[Path]:
    """A module's file, or every ``.py`` file of a package (for the cache fingerprint)."""
    path = Path(module.__file__)
    return sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]


def _settings_fp(options: IngestOptions) -> str:
    import nibabel
    import pydicom

    import medssl.burned_in
    from medssl import ingest_cache
    from medssl.io import nifti, raster, sidecar

    packages = [dicom_io, nifti, raster, deid, sidecar, ingest_cache, identity, medssl.burned_in]
    modules = [Path(__file__)] + [f for m in packages for f in _source_files(m)]
    return settings_fingerprint(
        {
            "options": options.output_settings(),
            "profile": deid.PROFILE_VERSION,
            "code": code_fingerprint(modules),
            "versions": [pydicom.__version__, nibabel.__version__, np.__version__],
        }
    )


def _sidecar_entry(
    rel: str, sidecar: dict[str, dict[str, str]] | None, match: str, ambiguous: set[str]
) -> dict[str, str] | None:
    if sidecar is None:
        return None
    key = match_key(rel, match)
    return None if key in ambiguous else sidecar.get(key)


def _ingest_into(
    candidates: list[SourceFile],
    skipped_raw: list[dict[str, str]],
    broken: list[dict[str, str]],
    sidecar: dict[str, dict[str, str]] | None,
    ctx: _Context,
    reid: _ReidWriter,
) -> dict[str, int]:
    pseudo = deid.Pseudonymizer(ctx.secret)
    acc = _Accounts()
    acc.skipped = [
        {"source_key": pseudo.key("path", key_text(s["rel"])), "rule": s["rule"]}
        for s in skipped_raw
    ]
    acc.quarantine = [
        {
            "source_key": pseudo.key("path", key_text(b["rel"])),
            "reason": b["reason"],
            "message": b["message"],
        }
        for b in broken
    ]
    match = ctx.options.sidecar.match if ctx.options.sidecar else "path"
    counts = Counter(match_key(c.rel, match) for c in candidates if _kind(c.path) != "dicom")
    ambiguous = {k for k, n in counts.items() if n > 1}
    tasks = [(c, _sidecar_entry(c.rel, sidecar, match, ambiguous)) for c in candidates]
    engine = make_engine(
        ctx.options.engine,
        ctx.options.workers,
        address=ctx.options.dask_address,
        progress=ctx.options.progress,
        timeout_s=ctx.options.timeout_s,
    )
    cache = UnitCache(ctx.options.cache_dir) if ctx.options.cache_dir else None
    try:
        slices, singles = _pass_files(engine, tasks, ctx, acc, reid)
        _account_singles(singles, ctx, acc, cache)
        _pass_series(engine, slices, {c.ident: c.path for c in candidates}, ctx, acc, cache)
    finally:
        engine.close()
    return _write_outputs(ctx, acc, seen=len(candidates) + len(skipped_raw) + len(broken))


def _pass_files(
    engine: Any,
    tasks: list[tuple[SourceFile, dict[str, str] | None]],
    ctx: _Context,
    acc: _Accounts,
    reid: _ReidWriter,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pass 1; returns slice records and single-file unit records (deduplicated later)."""
    slices: list[dict[str, Any]] = []
    singles: list[dict[str, Any]] = []
    fn = partial(process_file, ctx=ctx)
    for i, rec in engine.imap(fn, tasks, "files"):
        if isinstance(rec, WorkerCrash):
            rel = tasks[i][0].rel
            rec = {
                "rel": rel,
                "id": tasks[i][0].ident,
                "source_key": deid.Pseudonymizer(ctx.secret).key("path", key_text(rel)),
                "kind": "quarantine",
                "reason": rec.reason,
                "message": rec.message,
            }
        reid.add(rec)
        if rec["kind"] == "quarantine":
            acc.quarantine.append(_qrow(rec, rec["reason"], rec["message"]))
        elif rec["kind"] == "slice":
            slices.append(rec)
        else:
            singles.append(rec)
    return slices, singles


def _qrow(rec: Mapping[str, Any], reason: str, message: str) -> dict[str, str]:
    return {"source_key": rec["source_key"], "reason": reason, "message": sanitize(message)}


_STANDARD_UID = "1.2.840.10008."
_UID_RE = re.compile(r"\b\d+(?:\.\d+){2,}\b")
_QUOTED_RE = re.compile(r"(SOP class |transfer syntax |syntax )(\S+)")
MAX_MESSAGE = 160


def sanitize(message: str) -> str:
    """A quarantine message safe to write out (DICOM PS3.15 Annex E applies to outputs).

    Messages are built from reason templates, numbers and exception type names, but a few
    quote a header value (SOP Class UID, Transfer Syntax UID), which a malformed file can
    fill with anything: such values are kept only when they are standard DICOM UIDs
    (``1.2.840.10008.*``); any other UID-like number is masked; the text is reduced to
    printable ASCII and :data:`MAX_MESSAGE` characters.
    """

    def quoted(m: re.Match[str]) -> str:
        value = m.group(2).rstrip(")")
        tail = m.group(2)[len(value) :]
        keep = value.startswith(_STANDARD_UID) and _UID_RE.fullmatch(value) is not None
        return m.group(1) + (value if keep else "<non-standard>") + tail

    def uid(m: re.Match[str]) -> str:
        return m.group(0) if m.group(0).startswith(_STANDARD_UID) else "<uid>"

    text = _UID_RE.sub(uid, _QUOTED_RE.sub(quoted, message))
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text[:MAX_MESSAGE]


def _account_singles(
    singles: list[dict[str, Any]], ctx: _Context, acc: _Accounts, cache: UnitCache | None
) -> None:
    kept, dupes = drop_duplicates(singles)
    used = {row["nifti"] for rec in kept for row in rec["result"]["rows"]}
    for rec in dupes:
        acc.skipped.append({"source_key": rec["source_key"], "rule": "duplicate_instance"})
        for row in rec["result"]["rows"]:
            if row["nifti"] not in used:
                (ctx.out_dir / row["nifti"]).unlink(missing_ok=True)
    for rec in kept:
        _account_unit([rec], rec["result"], ctx, acc, cache)


def _account_unit(
    unit: list[dict[str, Any]],
    result: dict[str, Any],
    ctx: _Context,
    acc: _Accounts,
    cache: UnitCache | None,
) -> None:
    """Book a unit's outcome: rows, quarantine or QC drop, and cache it."""
    if result.get("cached"):
        acc.units_cached += 1
    else:
        acc.units_decoded += 1
        if cache is not None and result.get("key"):
            stored = {k: v for k, v in result.items() if k not in ("cached", "key")}
            files = [_file_key(r, ctx) for r in unit]
            cache.store(result["key"], stored, ctx.out_dir, files)
    acc.images_dropped += int(result.get("n_dropped", 0))
    if result.get("rows"):
        acc.files_ingested += len(unit)
        for row in result["rows"]:
            acc.rows.append({**row, "source_key": unit[0]["source_key"]})
    elif result.get("quarantine"):
        reason, message = result["quarantine"]
        acc.quarantine.extend(_qrow(r, reason, message) for r in unit)
    else:
        flag = (result.get("dropped") or ["unknown"])[0]
        message = f"QC flag {flag} is in ingest.drop_flags"
        for r in unit:
            if ctx.options.drop_action == "quarantine":
                acc.quarantine.append(_qrow(r, f"qc_{flag}", message))
            else:
                acc.skipped.append({"source_key": r["source_key"], "rule": f"qc_{flag}"})


def _pass_series(
    engine: Any,
    slices: list[dict[str, Any]],
    paths: Mapping[str, Path],
    ctx: _Context,
    acc: _Accounts,
    cache: UnitCache | None,
) -> None:
    """Pass 2: deduplicate slices, group by series, reuse cached units, decode the rest."""
    kept, dupes = drop_duplicates(slices)
    acc.skipped.extend({"source_key": r["source_key"], "rule": "duplicate_instance"} for r in dupes)
    todo: list[list[dict[str, Any]]] = []
    for unit in group_units(kept):
        hit = cache.restore(unit_key(unit, ctx), ctx.out_dir) if cache else None
        if hit is not None:
            _account_unit(unit, {**hit, "cached": True}, ctx, acc, cache)
        else:
            todo.append(unit)
    work = [(u, {r["id"]: paths[r["id"]] for r in u}) for u in todo]
    for i, result in engine.imap(partial(_run_series, ctx=ctx), work, "series"):
        if isinstance(result, WorkerCrash):
            result = {"rows": [], "quarantine": [result.reason, result.message], "key": None}
        _account_unit(todo[i], result, ctx, acc, cache)


def _write_outputs(ctx: _Context, acc: _Accounts, seen: int) -> dict[str, int]:
    out = ctx.out_dir
    rows = sorted(acc.rows, key=lambda r: r["image_id"])
    quarantine = sorted(acc.quarantine, key=lambda r: (r["source_key"], r["reason"]))
    skipped = sorted(acc.skipped, key=lambda r: (r["source_key"], r["rule"]))
    write_table(out / MANIFEST_NAME, rows, kind="manifest")
    write_table(out / QUARANTINE_NAME, quarantine, "quarantine")
    write_table(out / SKIPPED_NAME, skipped, "skipped")
    if ctx.options.parquet:
        import pandas as pd

        pd.read_csv(out / MANIFEST_NAME, dtype=str, keep_default_na=False).to_parquet(
            out / "manifest.parquet", index=False
        )
        pd.read_csv(out / QUARANTINE_NAME, dtype=str, keep_default_na=False).to_parquet(
            out / "quarantine.parquet", index=False
        )
    summary = _summary(seen, rows, quarantine, skipped, acc)
    (out / SUMMARY_NAME).write_text(
        json.dumps(stable_summary(summary), indent=2, sort_keys=True) + "\n"
    )
    return summary


#: Summary counts that depend on the re-ingestion cache, not on the data: printed, never
#: written to tracked outputs (they would make two runs on the same data differ).
RUN_DEPENDENT_KEYS = ("units_decoded", "units_reused")


def stable_summary(summary: Mapping[str, int]) -> dict[str, int]:
    """The summary without cache-dependent counts, for files that DVC hashes."""
    return {k: v for k, v in summary.items() if k not in RUN_DEPENDENT_KEYS}


def _summary(
    seen: int,
    rows: list[dict[str, Any]],
    quarantine: list[dict[str, str]],
    skipped: list[dict[str, str]],
    acc: _Accounts,
) -> dict[str, int]:
    accounted = acc.files_ingested + len(quarantine) + len(skipped)
    if accounted != seen:
        raise RuntimeError(f"ingestion lost files: saw {seen}, accounted for {accounted}")
    summary = {
        "files_seen": seen,
        "files_ingested": acc.files_ingested,
        "files_quarantined": len(quarantine),
        "files_skipped": len(skipped),
        "images_ingested": len(rows),
        "images_2d": sum(1 for r in rows if r["spatial_dims"] == 2),
        "volumes_3d": sum(1 for r in rows if r["spatial_dims"] == 3),
        "images_dropped_qc": acc.images_dropped,
        "units_decoded": acc.units_decoded,
        "units_reused": acc.units_cached,
    }
    for reason, n in sorted(Counter(q["reason"] for q in quarantine).items()):
        summary[f"quarantined_{reason}"] = n
    return summary


def invariant_line(summary: Mapping[str, int]) -> str:
    """The accounting invariant as one line (printed at the end of every run)."""
    return (
        f"files seen {summary['files_seen']} = ingested {summary['files_ingested']} "
        f"+ quarantined {summary['files_quarantined']} + skipped {summary['files_skipped']}; "
        f"{summary['images_ingested']} images ({summary['images_2d']} 2D, "
        f"{summary['volumes_3d']} 3D)"
    )


# --------------------------------------------------------------------------- params


def _optional(
    params: Mapping[str, Any], dotted: str, kind: type | tuple[type, ...], default: Any
) -> Any:
    from medssl.params import get

    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    if node is None:
        return default
    return get(params, dotted, kind)


def _target(params: Mapping[str, Any], dotted: str, kind: type) -> tuple[Any, ...] | None:
    value = _optional(params, dotted, list, None)
    return None if value is None else tuple(kind(v) for v in value)


def sidecar_from_params(params: Mapping[str, Any]) -> SidecarSpec | None:
    """``data.sidecar`` (null, a path, or ``{path, match, columns}``) as a spec."""
    node = (
        params.get("data", {}).get("sidecar") if isinstance(params.get("data"), Mapping) else None
    )
    if node is None:
        return None
    if isinstance(node, str):
        return SidecarSpec(node)
    from medssl.params import get

    columns = _optional(params, "data.sidecar.columns", dict, {})
    return SidecarSpec(
        get(params, "data.sidecar.path", str),
        match=_optional(params, "data.sidecar.match", str, "path"),
        columns={str(k): str(v) for k, v in columns.items()},
    )


def options_from_params(params: Mapping[str, Any]) -> IngestOptions:
    """Build :class:`IngestOptions` from the ``data`` and ``ingest`` sections of params.

    Only ``ingest.workers`` is required; other keys take the defaults of
    :class:`IngestOptions` when absent or null.

    Raises:
        medssl.params.ParamsError: naming a key of the wrong type.
        ValueError: inconsistent values (see :class:`IngestOptions`).
    """
    from medssl.params import get_positive

    d = IngestOptions()
    cache = _optional(params, "ingest.cache_dir", str, None)
    reid = _optional(params, "ingest.reid_table", str, None)
    return IngestOptions(
        workers=get_positive(params, "ingest.workers", int),
        engine=_optional(params, "ingest.engine", str, d.engine),
        dask_address=_optional(params, "ingest.dask_address", str, None),
        drop_flags=tuple(
            str(f) for f in _optional(params, "ingest.drop_flags", list, list(d.drop_flags))
        ),
        drop_action=_optional(params, "ingest.drop_action", str, d.drop_action),
        quarantine_burned_in=_optional(params, "ingest.quarantine_burned_in", bool, True),
        burned_in_text=_optional(params, "ingest.burned_in_text", str, d.burned_in_text),
        canonical=_optional(params, "ingest.canonical", bool, d.canonical),
        spacing_2d=_target(params, "ingest.resample.spacing_2d", float),
        spacing_3d=_target(params, "ingest.resample.spacing_3d", float),
        size_2d=_target(params, "ingest.resample.size_2d", int),
        size_3d=_target(params, "ingest.resample.size_3d", int),
        compress=_optional(params, "ingest.compress", bool, d.compress),
        max_voxels=_optional(params, "ingest.max_voxels", int, d.max_voxels),
        cache_dir=Path(cache) if cache else None,
        sidecar=sidecar_from_params(params),
        reid_table=Path(reid) if reid else None,
        parquet=_optional(params, "ingest.parquet", bool, d.parquet),
        timeout_s=_timeout(params),
    )


def _timeout(params: Mapping[str, Any]) -> float | None:
    """``ingest.timeout_s``: absent means the default, null means no limit."""
    section = params.get("ingest") or {}
    if "timeout_s" in section and section["timeout_s"] is None:
        return None
    return _optional(params, "ingest.timeout_s", float, IngestOptions().timeout_s)
