"""Radiographs: planned CR/DX images as DICOM files (PS3.3 A.2 CR, A.26 DX)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation

from medssl.demo.dicom import base_dataset, ds_str, save_dicom, set_pixels
from medssl.demo.phantoms import chest_phantom
from medssl.demo.plan import XrayPlan
from medssl.demo.seeding import XRAY_STREAM, seeded_uid, stream_rng

__all__ = [
    "XRAY_BITS",
    "XRAY_FIELD_MM",
    "XRAY_MAX",
    "write_xrays",
    "xray_dataset",
    "xray_stored_values",
]

XRAY_BITS = 12
XRAY_MAX = (1 << XRAY_BITS) - 1
XRAY_FIELD_MM = 430.0


def xray_stored_values(seed: int, plan: XrayPlan, image_size: int) -> np.ndarray:
    """The stored pixel values written for ``plan`` (reference for decoder tests).

    The phantom comes from ``chest_phantom(stream_rng(seed, XRAY_STREAM, p, i), ...)``,
    quantised to 12 bits and inverted for MONOCHROME1 (PS3.3 C.7.6.3.1.2).

    Returns:
        (image_size, image_size) uint16 in [0, 4095].
    """
    rng = stream_rng(seed, XRAY_STREAM, plan.patient_index, plan.image_index)
    image = chest_phantom(rng, image_size, plan.abnormal)
    values = np.rint(image.astype(np.float64) * XRAY_MAX).astype(np.uint16)
    if plan.photometric == "MONOCHROME1":
        values = (XRAY_MAX - values).astype(np.uint16)
    return values


def _study_tags(ds: Dataset, seed: int, plan: XrayPlan) -> None:
    """General Study and General Series elements for a radiograph."""
    key = (plan.patient_index, plan.study_index)
    ds.StudyInstanceUID = seeded_uid(seed, "xray-study", *key)
    ds.SeriesInstanceUID = seeded_uid(seed, "xray-series", *key, plan.image_index)
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = plan.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = plan.study_time
    ds.AccessionNumber = plan.accession
    ds.StudyID = f"{plan.study_index + 1}"
    ds.StudyDescription = "XR CHEST"
    ds.SeriesNumber = plan.image_index + 1
    ds.InstanceNumber = 1
    ds.Modality = plan.modality
    ds.BodyPartExamined = "CHEST"


def _image_tags(ds: Dataset, plan: XrayPlan, stored: np.ndarray) -> None:
    """CR/DX image elements: view, spacing, rescale, window (PS3.3 C.8.11, C.11)."""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = plan.view
    ds.PatientOrientation = ["L", "F"] if plan.view == "PA" else ["R", "F"]
    ds.BurnedInAnnotation = "NO"
    spacing = ds_str(XRAY_FIELD_MM / stored.shape[0])
    if plan.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImagerPixelSpacing = [spacing, spacing]
        if plan.image_index % 2:
            ds.PixelSpacing = [spacing, spacing]
    else:
        ds.PixelSpacing = [spacing, spacing]
    slope, intercept = plan.rescale or (1.0, 0.0)
    if plan.rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = ds_str(slope), ds_str(intercept)
        ds.RescaleType = "US"
    low, high = np.percentile(stored.astype(np.float64) * slope + intercept, [1.0, 99.0])
    ds.WindowCenter = ds_str((low + high) / 2)
    ds.WindowWidth = ds_str(max(high - low, 1.0))


def xray_dataset(seed: int, plan: XrayPlan, stored: np.ndarray) -> Dataset:
    """The complete CR or DX dataset for ``plan`` holding ``stored`` pixel values.

    Args:
        seed: Data set seed (for the UIDs).
        plan: What to write.
        stored: Stored pixel values, (rows, columns) uint16.

    Returns:
        The dataset, encoded in ``plan.transfer_syntax``.
    """
    sop_class = (
        ComputedRadiographyImageStorage
        if plan.modality == "CR"
        else DigitalXRayImageStorageForPresentation
    )
    sop = seeded_uid(seed, "xray-sop", plan.patient_index, plan.image_index)
    ds = base_dataset(sop_class, sop, plan.patient)
    _study_tags(ds, seed, plan)
    _image_tags(ds, plan, stored)
    set_pixels(ds, stored, plan.photometric, XRAY_BITS, plan.transfer_syntax)
    return ds


def write_xrays(
    out_dir: Path, seed: int, plans: list[XrayPlan], image_size: int, full: tuple[int, int]
) -> None:
    """Write every planned radiograph; the first ``full[0]`` patients at ``full[1]`` px.

    Args:
        out_dir: Data set root.
        seed: Data set seed.
        plans: From :func:`~medssl.demo.plan.plan_xrays`.
        image_size: Side of the other radiographs, px.
        full: ``(n_full_size, full_size)``.
    """
    n_full, full_size = full
    for plan in plans:
        size = full_size if plan.patient_index < n_full else image_size
        stored = xray_stored_values(seed, plan, size)
        save_dicom(xray_dataset(seed, plan, stored), out_dir / plan.rel_path)
