"""Walk hospital exports into de-identified NIfTI images, a manifest and a quarantine table.

Data flow: every file under each source folder is *seen* once and ends in exactly one of
three places: an ingested image (a manifest row, possibly shared by the slices of a
series), the quarantine table (with a reason code), or the skip list (by rule, e.g.
DICOMDIR or a README). Nothing identifying leaves this module: patient, study, series and
instance identifiers, and source paths, become keyed hashes (:mod:`medssl.io.deid`).

Two passes, both parallel over processes: a header scan per file (cheap, bounded memory),
then a decode per unit (one file for a radiograph or NIfTI, one series for CT/MR).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from medssl.data.manifest import MANIFEST_NAME, QUARANTINE_NAME, write_table
from medssl.io import deid
from medssl.io.dicom import (
    PROJECTION_MODALITIES,
    DecodedImage,
    DicomError,
    check_image_object,
    decode_projection,
    decode_series,
    read_dataset,
)
from medssl.io.nifti import NiftiError, read_nifti, write_nifti
from medssl.io.raster import RASTER_SUFFIXES, RasterError, read_raster

#: File names and suffixes skipped by rule (never images).
SKIP_NAMES = frozenset({"DICOMDIR", "LOCKFILE", "VERSION", ".DS_Store", "Thumbs.db"})
SKIP_SUFFIXES = frozenset(
    {".txt", ".csv", ".json", ".md", ".xml", ".html", ".htm", ".pdf", ".ini", ".log"}
)
NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGES_DIR = "images"
SUMMARY_NAME = "summary.json"

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class SourceFile:
    """A file found under a source folder.

    Attributes:
        path: absolute path (never written to any output).
        rel: POSIX path relative to its source folder, the join key for label CSVs.
    """

    path: Path
    rel: str


def discover(sources: Sequence[Path]) -> tuple[list[SourceFile], list[dict[str, str]]]:
    """List candidate files and the ones skipped by rule, deterministically sorted.

    Symbolic links to directories are not followed (no loops); dangling links are kept
    as candidates so that they are quarantined with a reason rather than lost.

    Args:
        sources: folders (or single files) to ingest.

    Returns:
        ``(candidates, skipped)``; ``skipped`` rows are ``{"rel", "rule"}`` (raw paths,
        pseudonymized by the caller).

    Raises:
        FileNotFoundError: naming the source that does not exist.
    """
    candidates: list[SourceFile] = []
    skipped: list[dict[str, str]] = []
    for root in sources:
        if not root.exists():
            raise FileNotFoundError(f"data source not found: {root}")
        files = [root] if root.is_file() else _walk(root)
        base = root.parent if root.is_file() else root
        for path in files:
            rel = path.relative_to(base).as_posix()
            rule = _skip_rule(path)
            if rule:
                skipped.append({"rel": rel, "rule": rule})
            else:
                candidates.append(SourceFile(path, rel))
    return candidates, skipped


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames))
        out.extend(Path(dirpath) / d for d in dirnames if (Path(dirpath) / d).is_symlink())
    return sorted(out)


def _skip_rule(path: Path) -> str | None:
    if path.is_symlink() and path.is_dir():
        return "symlinked_directory"
    if path.name in SKIP_NAMES:
        return "dicomdir_or_system_file" if path.name == "DICOMDIR" else "system_file"
    if path.name.startswith("."):
        return "hidden_file"
    if path.suffix.lower() in SKIP_SUFFIXES:
        return "non_image_extension"
    return None


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if path.suffix.lower() in RASTER_SUFFIXES:
        return "raster"
    return "dicom"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Content hash of a file, read in 1 MiB chunks (bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def scan_file(sf: SourceFile, secret: bytes) -> dict[str, Any]:
    """Header pass for one file: hash, classify, pseudonymize keys.

    Args:
        sf: the file.
        secret: pseudonymization key.

    Returns:
        A picklable record holding keys only (no identifiers): ``status`` is ``"ok"`` or
        ``"quarantine"`` (with ``reason`` and ``message``).
    """
    pseudo = deid.Pseudonymizer(secret)
    rec: dict[str, Any] = {"rel": sf.rel, "source_key": pseudo.key("path", sf.rel)}
    try:
        rec["source_sha256"] = sha256_file(sf.path)
    except OSError as exc:
        return {**rec, "status": "quarantine", "reason": "unreadable", "message": _os_msg(exc)}
    kind = _kind(sf.path)
    rec["format"] = kind
    if kind != "dicom":
        return {**rec, "status": "ok", "unit": f"{kind}:{rec['source_sha256']}"}
    try:
        ds = read_dataset(sf.path, header_only=True)
        check_image_object(ds, header_only=True)
    except DicomError as exc:
        return {**rec, "status": "quarantine", "reason": exc.reason, "message": exc.message}
    if deid.has_burned_in_annotation(ds):
        msg = "BurnedInAnnotation is YES (PS3.3 C.7.6.1.1.6)"
        return {**rec, "status": "quarantine", "reason": "burned_in_annotation", "message": msg}
    modality = str(ds.get("Modality", "OT"))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    series_uid = str(ds.get("SeriesInstanceUID", ""))
    volume = modality not in PROJECTION_MODALITIES and "ImagePositionPatient" in ds
    rec.update(
        status="ok",
        modality=modality,
        frames=frames,
        patient_key=pseudo.key("patient", str(ds.get("PatientID", "")) or sf.rel),
        study_key=pseudo.key("study", str(ds.get("StudyInstanceUID", "")) or sf.rel),
        series_key=pseudo.key("series", series_uid or sf.rel),
        sop_key=pseudo.key("sop", str(ds.get("SOPInstanceUID", "")) or sf.rel),
        volume_candidate=bool(volume and frames == 1),
    )
    return rec


def _os_msg(exc: OSError) -> str:
    return f"{type(exc).__name__} (errno {exc.errno})"


def group_units(records: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group scanned files into decode units.

    Rule: single-frame slices of a cross-sectional modality (CT, MR, PT, ...) that share a
    SeriesInstanceUID form one volume when there are at least two; everything else
    (projection radiographs, single slices, NIfTI, rasters) is its own unit. Grouping is by
    series key, never by folder.

    Args:
        records: ``status == "ok"`` scan records.

    Returns:
        Units, sorted deterministically.
    """
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    units: list[list[dict[str, Any]]] = []
    for rec in records:
        if rec.get("volume_candidate"):
            series[rec["series_key"]].append(rec)
        else:
            units.append([rec])
    for members in series.values():
        if len(members) >= 2:
            units.append(sorted(members, key=lambda r: r["rel"]))
        else:
            units.extend([m] for m in members)
    return sorted(units, key=lambda u: u[0]["rel"])


def decode_unit(
    unit: list[dict[str, Any]], paths: dict[str, Path], out_dir: Path, secret: bytes
) -> dict[str, Any]:
    """Decode one unit, write its NIfTI and return its manifest row.

    Args:
        unit: scan records of one image (one record) or one series (several).
        paths: ``rel -> absolute path`` for the unit's files.
        out_dir: ingestion output folder (NIfTI go to ``out_dir/images``).
        secret: pseudonymization key.

    Returns:
        ``{"row": {...}}`` on success or ``{"quarantine": [rows]}``.
    """
    first = unit[0]
    pseudo = deid.Pseudonymizer(secret)
    image_id = pseudo.key("image", "|".join(r["source_sha256"] for r in unit))
    rel_nifti = f"{IMAGES_DIR}/{image_id}.nii.gz"
    try:
        decoded, meta = _decode(unit, paths)
        write_nifti(out_dir / rel_nifti, decoded.array, decoded.affine)
    except (DicomError, NiftiError, RasterError) as exc:
        return {"quarantine": _quarantine_rows(unit, exc.reason, exc.message)}
    except (MemoryError, RecursionError) as exc:
        return {"quarantine": _quarantine_rows(unit, "resource_limit", type(exc).__name__)}
    except Exception as exc:  # noqa: BLE001 - one bad unit never stops the run
        message = f"unexpected {type(exc).__name__} while decoding or writing"
        return {"quarantine": _quarantine_rows(unit, "decode_error", message)}
    spacing = np.sqrt((decoded.affine[:3, : decoded.array.ndim] ** 2).sum(axis=0))
    fallback = pseudo.key("patient", first["rel"])
    row = {
        "image_id": image_id,
        "patient_key": first.get("patient_key", fallback),
        "study_key": first.get("study_key", ""),
        "series_key": first.get("series_key", ""),
        "sop_key": first.get("sop_key", "") if len(unit) == 1 else "",
        "source_key": first["source_key"],
        "source_sha256": first["source_sha256"] if len(unit) == 1 else _combined(unit),
        "source_format": first["format"],
        "n_files": len(unit),
        "modality": meta.get("modality", first.get("modality", "OT")),
        "spatial_dims": decoded.array.ndim,
        "shape": "x".join(str(s) for s in decoded.array.shape),
        "spacing": "x".join(f"{s:.4g}" for s in spacing),
        "view_position": meta.get("view_position", ""),
        "nifti": rel_nifti,
        "qc_flags": ";".join(sorted(set(decoded.flags))),
        "deid_profile": deid.PROFILE_VERSION,
    }
    return {"row": row}


def _quarantine_rows(unit: list[dict[str, Any]], reason: str, message: str) -> list[dict[str, str]]:
    return [{"source_key": r["source_key"], "reason": reason, "message": message} for r in unit]


def _combined(unit: list[dict[str, Any]]) -> str:
    return hashlib.sha256("".join(r["source_sha256"] for r in unit).encode()).hexdigest()


def _decode(
    unit: list[dict[str, Any]], paths: dict[str, Path]
) -> tuple[DecodedImage, dict[str, str]]:
    first = unit[0]
    path = paths[first["rel"]]
    if first["format"] == "nifti":
        array, affine = read_nifti(path)
        if array.ndim > 3:
            raise NiftiError("unsupported_geometry", f"{array.ndim}D NIfTI (4D not ingested)")
        return DecodedImage(array, affine), {"modality": "OT"}
    if first["format"] == "raster":
        array, affine = read_raster(path)
        return DecodedImage(array, affine, ["spacing_unknown"]), {"modality": "OT"}
    datasets = [read_dataset(paths[r["rel"]]) for r in unit]
    for ds in datasets:
        check_image_object(ds)
    meta = {"modality": str(datasets[0].get("Modality", "OT"))}
    meta["view_position"] = str(datasets[0].get("ViewPosition", ""))
    if len(datasets) > 1:
        return decode_series(datasets), meta
    if int(datasets[0].get("NumberOfFrames", 1) or 1) > 1:
        raise DicomError("unsupported_multiframe", "multi-frame object not yet supported")
    decoded = decode_projection(datasets[0])
    if meta["modality"] not in PROJECTION_MODALITIES:
        decoded.flags.append("single_slice")
    return decoded, meta


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int, desc: str) -> Iterator[R]:
    """Ordered map over processes with a progress bar (inline when ``workers == 1``)."""
    bar = tqdm(total=len(items), desc=desc, unit="file", disable=None)
    if workers <= 1 or len(items) < 2:
        for item in items:
            yield fn(item)
            bar.update()
    else:
        chunk = max(1, min(64, len(items) // (workers * 8)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(fn, items, chunksize=chunk):
                yield result
                bar.update()
    bar.close()


def ingest(
    sources: Sequence[Path], out_dir: Path, *, secret: bytes, workers: int = 1
) -> dict[str, int]:
    """Ingest sources into ``out_dir`` (manifest, quarantine table, NIfTI, summary).

    Outputs are built in a temporary sibling folder and moved into place at the end, so a
    failed run leaves no partial outputs.

    Args:
        sources: folders or files.
        out_dir: output folder (replaced).
        secret: pseudonymization key (see :func:`medssl.io.deid.secret_from_env`).
        workers: processes for both passes.

    Returns:
        The summary counts; ``files_seen == files_ingested + files_quarantined +
        files_skipped`` always holds.
    """
    candidates, skipped_raw = discover(sources)
    pseudo = deid.Pseudonymizer(secret)
    skipped = [{"source_key": pseudo.key("path", s["rel"]), "rule": s["rule"]} for s in skipped_raw]
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        summary = _ingest_into(candidates, skipped, tmp, secret, workers)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return summary


def _ingest_into(
    candidates: list[SourceFile],
    skipped: list[dict[str, str]],
    out: Path,
    secret: bytes,
    workers: int,
) -> dict[str, int]:
    scans = list(parallel_map(partial(scan_file, secret=secret), candidates, workers, "scan"))
    quarantine = [
        {"source_key": s["source_key"], "reason": s["reason"], "message": s["message"]}
        for s in scans
        if s["status"] == "quarantine"
    ]
    ok, dupes = _drop_duplicates([s for s in scans if s["status"] == "ok"])
    skipped = skipped + dupes
    paths = {c.rel: c.path for c in candidates}
    units = group_units(ok)
    work = [(u, {r["rel"]: paths[r["rel"]] for r in u}) for u in units]
    fn = partial(_decode_packed, out_dir=out, secret=secret)
    rows = []
    for result in parallel_map(fn, work, workers, "decode"):
        if "row" in result:
            rows.append(result["row"])
        else:
            quarantine.extend(result["quarantine"])
    rows.sort(key=lambda r: r["image_id"])
    write_table(out / MANIFEST_NAME, rows, kind="manifest")
    write_table(
        out / QUARANTINE_NAME, sorted(quarantine, key=lambda r: r["source_key"]), "quarantine"
    )
    write_table(out / "skipped.csv", sorted(skipped, key=lambda r: r["source_key"]), "skipped")
    summary = _summary(len(candidates) + len(skipped) - len(dupes), rows, quarantine, skipped)
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _decode_packed(
    packed: tuple[list[dict[str, Any]], dict[str, Path]], out_dir: Path, secret: bytes
) -> dict[str, Any]:
    unit, paths = packed
    return decode_unit(unit, paths, out_dir, secret)


def _drop_duplicates(
    scans: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Keep the first copy of byte-identical files or repeated SOP instances."""
    seen: set[str] = set()
    kept, dupes = [], []
    for s in scans:
        key = s.get("sop_key") or s["source_sha256"]
        if key in seen or s["source_sha256"] in seen:
            dupes.append({"source_key": s["source_key"], "rule": "duplicate_instance"})
            continue
        seen.update({key, s["source_sha256"]})
        kept.append(s)
    return kept, dupes


def _summary(
    seen: int, rows: list[dict[str, Any]], quarantine: list[dict[str, str]], skipped: list[Any]
) -> dict[str, int]:
    files_ingested = sum(int(r["n_files"]) for r in rows)
    accounted = files_ingested + len(quarantine) + len(skipped)
    if accounted != seen:
        raise RuntimeError(f"ingestion lost files: saw {seen}, accounted for {accounted}")
    return {
        "files_seen": seen,
        "files_ingested": files_ingested,
        "files_quarantined": len(quarantine),
        "files_skipped": len(skipped),
        "images_ingested": len(rows),
        "images_2d": sum(1 for r in rows if r["spatial_dims"] == 2),
        "volumes_3d": sum(1 for r in rows if r["spatial_dims"] == 3),
    }
