"""Volumes: CT phantoms as DICOM series (PS3.3 A.3), and CT and MR volumes as NIfTI-1.

Each CT series is written one file per slice with shuffled file names (every other series
without an extension); the first CT also goes to ``nifti/ct_0.nii.gz`` in RAS+ world
space (qform and sform both scanner-based), beside a standalone MR-like head volume.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from medssl.demo.dicom import base_dataset, ds_str, save_dicom, set_pixels
from medssl.demo.patients import FakePatient
from medssl.demo.phantoms import ct_phantom, mr_phantom
from medssl.demo.seeding import (
    CT_STREAM,
    MR_STREAM,
    random_date,
    random_time,
    seeded_uid,
    stream_rng,
)

__all__ = [
    "CT_INTERCEPT",
    "CT_PIXEL_SPACING_MM",
    "CT_SLICE_SPACING_MM",
    "MR_SPACING_MM",
    "ct_affine",
    "save_nifti",
    "write_ct_series",
    "write_mr_volume",
]

CT_PIXEL_SPACING_MM = 0.8
CT_SLICE_SPACING_MM = 2.5
CT_INTERCEPT = -1024
MR_SPACING_MM = (1.2, 1.2, 3.0)


@dataclass(frozen=True)
class _CtSeries:
    """Series-level CT settings: origin (LPS mm of voxel (0, 0, 0)) and shared elements."""

    origin: tuple[float, float, float]
    tags: dict[str, object]


def _ct_series(rng: np.random.Generator, shape: tuple[int, int, int]) -> _CtSeries:
    """Draw the date and table position of a CT series of ``shape`` (Z, Y, X)."""
    _, n_y, n_x = shape
    date = random_date(rng, dt.date(2016, 1, 1), dt.date(2023, 12, 31))
    time = random_time(rng)
    spacing = ds_str(CT_PIXEL_SPACING_MM)
    origin = (
        -(n_x - 1) / 2 * CT_PIXEL_SPACING_MM,
        -(n_y - 1) / 2 * CT_PIXEL_SPACING_MM,
        float(np.round(rng.uniform(-300.0, -100.0), 1)),
    )
    tags: dict[str, object] = {
        "StudyDate": date, "SeriesDate": date, "ContentDate": date,
        "StudyTime": time, "SeriesTime": time, "ContentTime": time,
        "AccessionNumber": f"A{int(rng.integers(10**7, 10**8))}",
        "StudyID": "1", "SeriesNumber": 2, "AcquisitionNumber": 1,
        "StudyDescription": "CT CHEST", "BodyPartExamined": "CHEST",
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "PatientPosition": "HFS",
        "ImageOrientationPatient": ["1", "0", "0", "0", "1", "0"],
        "PixelSpacing": [spacing, spacing],
        "SliceThickness": ds_str(CT_SLICE_SPACING_MM), "KVP": "120",
        "RescaleIntercept": str(CT_INTERCEPT), "RescaleSlope": "1", "RescaleType": "HU",
        "WindowCenter": "40", "WindowWidth": "400",
    }  # fmt: skip
    return _CtSeries(origin, tags)


def _ct_slice(seed: int, index: int, patient: FakePatient, series: _CtSeries, k: int) -> Dataset:
    """Slice ``k`` of CT series ``index``, without pixel data (PS3.3 A.3, C.7.6.2)."""
    ds = base_dataset(CTImageStorage, seeded_uid(seed, "ct-sop", index, k), patient)
    ds.StudyInstanceUID = seeded_uid(seed, "ct-study", index)
    ds.SeriesInstanceUID = seeded_uid(seed, "ct-series", index)
    ds.FrameOfReferenceUID = seeded_uid(seed, "ct-frame", index)
    ds.Modality = "CT"
    for keyword, value in series.tags.items():
        setattr(ds, keyword, value)
    x_mm, y_mm, z0_mm = series.origin
    z_mm = z0_mm + CT_SLICE_SPACING_MM * k
    ds.ImagePositionPatient = [ds_str(x_mm), ds_str(y_mm), ds_str(z_mm)]
    ds.SliceLocation = ds_str(z_mm)
    return ds


def ct_affine(origin_lps: tuple[float, float, float]) -> np.ndarray:
    """RAS+ NIfTI affine of a demo CT stored as (X, Y, Z) with identity orientation.

    DICOM LPS (PS3.3 C.7.6.2.1.1) maps to NIfTI RAS+ by negating x and y.

    Args:
        origin_lps: ImagePositionPatient of the first slice (lowest z), mm.

    Returns:
        (4, 4) float64 mapping voxel (i, j, k) to RAS mm.
    """
    affine = np.diag([-CT_PIXEL_SPACING_MM, -CT_PIXEL_SPACING_MM, CT_SLICE_SPACING_MM, 1.0])
    affine[:3, 3] = [-origin_lps[0], -origin_lps[1], origin_lps[2]]
    return affine


def save_nifti(volume_zyx: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Save a (Z, Y, X) volume as NIfTI-1 (X, Y, Z) with scanner-space qform and sform."""
    image = nib.Nifti1Image(np.ascontiguousarray(volume_zyx.transpose(2, 1, 0)), affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)


def write_ct_series(
    out_dir: Path, seed: int, index: int, patient: FakePatient, shape: tuple[int, int, int]
) -> int:
    """Write CT series ``index`` (and ``nifti/ct_0.nii.gz`` for the first).

    Args:
        out_dir: Data set root.
        seed: Data set seed.
        index: Series index (its own CT stream and UIDs).
        patient: Owner of the series.
        shape: Volume shape (Z, Y, X).

    Returns:
        The number of slice files written.
    """
    volume = ct_phantom(stream_rng(seed, CT_STREAM, index), shape)
    rng = stream_rng(seed, CT_STREAM, index, 1)
    series = _ct_series(rng, shape)
    names = rng.permutation(shape[0])
    folder = out_dir / "ct" / f"{patient.patient_id}_CT{index + 1}"
    suffix = ".dcm" if index % 2 == 0 else ""
    for k in range(shape[0]):
        ds = _ct_slice(seed, index, patient, series, k)
        ds.InstanceNumber = shape[0] - k
        stored = (volume[k].astype(np.int32) - CT_INTERCEPT).astype(np.uint16)
        set_pixels(ds, stored, "MONOCHROME2", 12, ExplicitVRLittleEndian)
        save_dicom(ds, folder / f"IM{int(names[k]) + 1:04d}{suffix}")
    if index == 0:
        save_nifti(volume, ct_affine(series.origin), out_dir / "nifti" / "ct_0.nii.gz")
    return shape[0]


def write_mr_volume(out_dir: Path, seed: int, shape: tuple[int, int, int]) -> None:
    """Write the standalone MR-like NIfTI volume ``nifti/mr_0.nii.gz``."""
    volume = mr_phantom(stream_rng(seed, MR_STREAM), shape)
    affine = np.diag([*MR_SPACING_MM, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(shape[::-1], MR_SPACING_MM, strict=True)]
    save_nifti(volume, affine, out_dir / "nifti" / "mr_0.nii.gz")
