"""One unit to NIfTI files and manifest rows: decode, screen, finalize, write.

A *unit* is one image source: a radiograph, a NIfTI, a raster, an enhanced multi-frame
object, a mosaic, or the slices of one series. :func:`run_unit` restores it from the
re-ingestion cache when it can; otherwise it decodes it (a 4D source gives several
images), applies the burned-in text policy to 2D images (:mod:`medssl.burned_in`),
reorients and resamples (:func:`medssl.io.nifti.to_canonical`,
:func:`medssl.io.nifti.resample`), drops images with a flag of ``ingest.drop_flags`` and
writes the rest. Any failure is the unit's quarantine reason; nothing raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from medssl.burned_in import redact, screen_image
from medssl.ingest.cache import UnitCache
from medssl.ingest.codes import decode_failure, write_failure
from medssl.ingest.context import Context, unit_key
from medssl.ingest.options import IngestOptions
from medssl.ingest.series import series_frames
from medssl.io import pseudonym
from medssl.io.dicom import DecodedImage, DicomError, assemble_slices, decode_datasets, read_dataset
from medssl.io.nifti import axcodes, read_nifti, resample, split_4d, to_canonical, write_nifti
from medssl.io.raster import MAX_PIXELS, read_raster

#: Folder of the written NIfTI files, inside the output folder.
IMAGES_DIR = "images"


def run_unit(
    unit: list[dict[str, Any]],
    paths: Mapping[str, Path],
    ctx: Context,
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
    ctx: Context,
    dataset: Any = None,
    data: bytes | None = None,
) -> dict[str, Any]:
    empty: dict[str, Any] = {"rows": [], "quarantine": None, "dropped": None, "n_dropped": 0}
    try:
        images = _decode(unit, paths, ctx, dataset, data)
        images = [_screen(img, ctx.options.burned_in_text) for img in images]
        images = [_finalize(img, ctx.options) for img in images]
    except Exception as exc:  # noqa: BLE001 - one bad unit never stops the run
        return {**empty, "quarantine": list(decode_failure(exc))}
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
        return {**empty, "quarantine": list(write_failure(exc))}
    return {**empty, "rows": rows, "n_dropped": len(images) - len(kept)}


def _decode(
    unit: list[dict[str, Any]],
    paths: Mapping[str, Path],
    ctx: Context,
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
        return assemble_slices(series_frames(unit, paths, ctx.out_dir))
    if dataset is not None:
        return decode_datasets([dataset])
    return decode_datasets([read_dataset(paths[r["id"]]) for r in unit])


def _screen(image: DecodedImage, policy: str) -> DecodedImage:
    """Apply the burned-in text policy to a 2D image (3D volumes pass unchanged).

    Radiographs are screened on their stored values (``image.screen_pixels``), other
    images on ``image.array``; redaction blacks out both.

    Raises:
        DicomError: ``burned_in_text`` (policy quarantine, or text left after redaction).
    """
    if policy == "off" or image.array.ndim != 2:
        return image
    pixels = image.array if image.screen_pixels is None else image.screen_pixels
    found = screen_image(pixels)
    if not found.found:
        return image
    message = f"burned-in text, rule {'+'.join(found.rules)} ({found.n_regions} text regions)"
    if policy == "flag":
        return replace(image, flags=[*image.flags, "burned_in_text"])
    if policy == "redact":
        cleaned = redact(pixels, found)
        if not screen_image(cleaned).found:
            array = cleaned if pixels is image.array else redact(image.array, found)
            return replace(
                image, array=array, flags=[*image.flags, "text_redacted"], screen_pixels=None
            )
        message += "; still readable after redaction"
    raise DicomError("burned_in_text", message)


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
    ctx: Context,
) -> dict[str, Any]:
    first = unit[0]
    pseudo = pseudonym.Pseudonymizer(ctx.secret)
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
        "deid_profile": pseudonym.PROFILE_VERSION,
        "volume_index": index,
        "n_volumes": n_images,
        "axcodes": axcodes(image.affine) if ndim == 3 else "",
        "body_part": first.get("body_part", ""),
    }


def _combined(unit: Sequence[Mapping[str, Any]]) -> str:
    return hashlib.sha256("".join(r["source_sha256"] for r in unit).encode()).hexdigest()
